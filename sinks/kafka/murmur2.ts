/**
 * Java's murmur2 hash, as Kafka's Java producer partitions keyed records with it
 * (`Utils.murmur2`, then `toPositive(hash) % partitions`), so a key lands on the partition
 * Debezium's producer would choose.
 *
 * In 32-bit integer arithmetic (`Math.imul`): about 10× faster than `@platformatic/kafka`'s
 * port, which computes in BigInt and was 3–6 µs of every record (bench/RESULTS.md).
 *
 * @module
 */

const M = 0x5bd1e995;
const SEED = 0x9747b28c;

/** The murmur2 hash of `data`, a signed 32-bit integer as Java's `Utils.murmur2` returns it. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = SEED ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  switch (length & 3) {
    case 3:
      h ^= data[whole + 2]! << 16;
    // falls through
    case 2:
      h ^= data[whole + 1]! << 8;
    // falls through
    case 1:
      h ^= data[whole]!;
      h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * The partition-to-be of a keyed record before the modulo (the producer takes it modulo the
 * topic's partition count): Java's `toPositive(murmur2(key))`.
 */
export function keyHash(key: Uint8Array): number {
  return murmur2(key) & 0x7fffffff;
}
