/**
 * The sink's RecordBatch writer against the Kafka client's own encoder (`createRecordsBatch` of
 * `@platformatic/kafka`, which real brokers take in the Kafka tests): byte for byte equal, for
 * keys, tombstones, headers, many records, long values, producer ids and transactions.
 */

import assert from "node:assert/strict";
import { crc32c as clientCrc32c, createRecordsBatch } from "npm:@platformatic/kafka@2.12.1";
import {
  batchCrc,
  type BatchRecord,
  crc32c,
  headerCount,
  headerEntries,
  NATIVE_CRC,
  RecordBatchWriter,
} from "./record_batch.ts";
import { headerBytes } from "./producer.ts";
import { joinedBytes, PrefixedBytes } from "../../formats/byte_writer.ts";

const text = (value: string) => new TextEncoder().encode(value);

/** The client's batch of the same records, as bytes. */
function clientBatch(
  records: readonly BatchRecord[],
  options: {
    producerId?: bigint;
    producerEpoch?: number;
    baseSequence?: number;
    transactional?: boolean;
    timestamp: number;
  },
): Uint8Array {
  const messages = records.map((record) => ({
    topic: "t",
    partition: 0,
    key: record.key === null ? undefined : Buffer.from(record.key),
    value: record.value === null ? undefined : Buffer.from(joinedBytes(record.value)),
    headers: record.headers === undefined ? undefined : new Map(
      [...record.headers as ReadonlyMap<Uint8Array, Uint8Array>].map((
        [name, value],
      ) => [Buffer.from(name), Buffer.from(value)]),
    ),
    timestamp: BigInt(record.timestamp ?? options.timestamp),
  }));
  const writer = createRecordsBatch(messages as never, {
    producerId: options.producerId,
    producerEpoch: options.producerEpoch,
    transactionalId: options.transactional ? "tx" : undefined,
    sequences: options.baseSequence === undefined
      ? undefined
      : { getWithDefault: () => options.baseSequence } as never,
  } as never);
  return new Uint8Array((writer as unknown as { buffer: Uint8Array }).buffer);
}

Deno.test("record batch: byte for byte the Kafka client's, for keys, tombstones, headers, values in two parts and producer fields", () => {
  const sharedHead = new Uint8Array(200).map((_, i) => i);
  const headers = new Map([
    [headerBytes("spillway.lsn"), headerBytes("16/B374D848")],
    [headerBytes("spillway.xid"), headerBytes("741")],
    [headerBytes("empty"), new Uint8Array()],
  ]);
  const cases: { records: BatchRecord[]; options: Parameters<typeof clientBatch>[1] }[] = [
    { records: [{ key: null, value: text("v") }], options: { timestamp: 0 } },
    {
      records: [
        { key: text('{"id":1}'), value: text('{"after":{"id":1}}'), headers },
        { key: text('{"id":1}'), value: null, headers },
        { key: null, value: text(""), timestamp: 1_700_000_000_123 },
      ],
      options: {
        timestamp: 1_700_000_000_000,
        producerId: 4242n,
        producerEpoch: 3,
        baseSequence: 2_147_483_000,
      },
    },
    {
      // Long values (multi-byte length varints), many records, a transaction.
      records: Array.from({ length: 300 }, (_, i) => ({
        key: text(`{"id":${i}}`),
        value: new Uint8Array(i * 97).fill(i % 251),
        headers: i % 2 === 0 ? headers : undefined,
        timestamp: 1_700_000_000_000 + i * 1000,
      })),
      options: { timestamp: 1_700_000_000_000, producerId: 7n, transactional: true },
    },
    {
      // Values in two parts (a shared head, as the embedded schema): written as one.
      records: Array.from({ length: 40 }, (_, i) => ({
        key: text(`{"id":${i}}`),
        value: new PrefixedBytes(sharedHead, new Uint8Array(i * 13).fill(i)),
      })),
      options: { timestamp: 1_700_000_000_000, producerId: 8n },
    },
  ];
  const writer = new RecordBatchWriter(64); // small: the buffer grows while writing
  for (const { records, options } of cases) {
    const ours = writer.batch(records, options);
    assert.deepEqual(ours, clientBatch(records, options));
  }
  // Batches handed out stay as they were while later ones are written.
  const first = writer.batch(cases[0]!.records, cases[0]!.options);
  const copy = first.slice();
  writer.batch(cases[2]!.records, cases[2]!.options);
  assert.deepEqual(first, copy);
});

Deno.test("record batch: a header section encoded beforehand is written as the same headers given by name", () => {
  const headers = new Map([
    [headerBytes("spillway.lsn"), headerBytes("16/B374D848")],
    [headerBytes("spillway.xid"), headerBytes("741")],
    [headerBytes("x".repeat(200)), headerBytes("y".repeat(70))], // two-byte lengths
  ]);
  const section = new Uint8Array([...headerCount(headers.size), ...headerEntries([...headers])]);
  const writer = new RecordBatchWriter();
  const records = (h: BatchRecord["headers"]): BatchRecord[] => [
    { key: text("k"), value: text("v"), headers: h },
    { key: null, value: null, headers: h },
  ];
  const byName = writer.batch(records(headers), { timestamp: 5, producerId: 3n });
  assert.deepEqual(writer.batch(records(section), { timestamp: 5, producerId: 3n }), byName);
  assert.deepEqual(byName, clientBatch(records(headers), { timestamp: 5, producerId: 3n }));
});

Deno.test("record batch: CRC-32C equals the client's on every length and offset", () => {
  const bytes = new Uint8Array(300).map((_, i) => (i * 131 + 7) & 0xff);
  for (let start = 0; start < 9; start++) {
    for (let end = start; end <= bytes.length; end += 7) {
      assert.equal(
        crc32c(bytes, start, end),
        clientCrc32c(Buffer.from(bytes.subarray(start, end))),
        `${start}..${end}`,
      );
    }
  }
});

Deno.test("record batch: the addon's CRC-32C (loaded here) equals the JavaScript one", () => {
  assert.ok(NATIVE_CRC, "@node-rs/crc32 did not load");
  const bytes = new Uint8Array(5000).map((_, i) => (i * 197 + 3) & 0xff);
  for (let start = 0; start < 9; start++) {
    for (let end = start; end <= bytes.length; end += 331) {
      assert.equal(batchCrc(bytes, start, end), crc32c(bytes, start, end), `${start}..${end}`);
    }
  }
});

Deno.test("record batch: an empty batch is refused", () => {
  assert.throws(() => new RecordBatchWriter().batch([]), /at least one record/);
});
