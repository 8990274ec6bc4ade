/**
 * One seeded pseudo-random generator for tests, fuzzers, bench and test-data scripts, so a
 * failure can be replayed from its seed. The generator is mulberry32: 32 bits of state, one
 * number per step, fast and well spread; not for anything secret.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { seededRandom } from "./random.ts";
 * const a = seededRandom(42);
 * const b = seededRandom(42);
 * assert.equal(a.next(), b.next());
 * const roll = a.between(1, 6);
 * assert(roll >= 1 && roll <= 6);
 * ```
 *
 * @module
 */

/** A seeded sequence of pseudo-random numbers; see {@linkcode seededRandom}. */
export interface Random {
  /** The seed the sequence started from, for failure messages. */
  readonly seed: number;
  /** The next number in [0, 1). */
  next(): number;
  /** The next 32-bit unsigned integer, in [0, 2³²). */
  uint32(): number;
  /** An integer in [0, `below`). */
  int(below: number): number;
  /** An integer in [`min`, `max`], both included. */
  between(min: number, max: number): number;
  /** One of `items`, which must not be empty. */
  pick<T>(items: readonly T[]): T;
  /** `length` random bytes. */
  bytes(length: number): Uint8Array;
}

/**
 * A {@linkcode Random} starting from `seed` (taken as a 32-bit unsigned integer); the same
 * seed gives the same sequence.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { seededRandom } from "./random.ts";
 * const random = seededRandom(7);
 * assert.equal(random.seed, 7);
 * assert.equal(random.pick(["only"]), "only");
 * assert.equal(random.bytes(3).length, 3);
 * ```
 */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  function uint32(): number {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  function next(): number {
    return uint32() / 0x1_0000_0000;
  }
  function int(below: number): number {
    return Math.floor(next() * below);
  }
  return {
    seed,
    next,
    uint32,
    int,
    between: (min, max) => min + int(max - min + 1),
    pick: (items) => {
      if (items.length === 0) throw new RangeError("Cannot pick from an empty list");
      return items[int(items.length)]!;
    },
    bytes: (length) => {
      const out = new Uint8Array(length);
      for (let i = 0; i < length; i++) out[i] = int(256);
      return out;
    },
  };
}
