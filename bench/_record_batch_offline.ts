/**
 * Offline cost per record of a Kafka RecordBatch: the sink's own writer
 * (`sinks/kafka/record_batch.ts`) against the client's encoder (`createRecordsBatch` of
 * `@platformatic/kafka`), on the same records of about 430 bytes with Spillway's four headers
 * (and without headers), after a warm-up. Both write the same bytes (`record_batch_test.ts`).
 *
 *     deno run -A bench/_record_batch_offline.ts [records per batch] [batches per round]
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createRecordsBatch } from "npm:@platformatic/kafka@2.12.1";
import { type BatchRecord, RecordBatchWriter } from "../sinks/kafka/record_batch.ts";
import { headerBytes } from "../sinks/kafka/producer.ts";
import { joinedBytes } from "../formats/byte_writer.ts";

const perBatch = Number(Deno.args[0] ?? 1000);
const batches = Number(Deno.args[1] ?? 50);
const encoder = new TextEncoder();
const value = encoder.encode("v".repeat(400));
const headers = new Map([
  [headerBytes("spillway.lsn"), headerBytes("16/B374D848")],
  [headerBytes("spillway.xid"), headerBytes("741")],
  [headerBytes("spillway.commit_time"), headerBytes("2026-12-06T00:00:00.000000Z")],
  [headerBytes("spillway.schema_version"), headerBytes("1")],
]);

function records(withHeaders: boolean): BatchRecord[] {
  return Array.from({ length: perBatch }, (_, i) => ({
    key: encoder.encode(`{"id":${i}}`),
    value,
    headers: withHeaders ? headers : undefined,
  }));
}

/** µs per record of `encode`, over `batches` batches after as many to warm up. */
function time(encode: () => unknown): number {
  for (let i = 0; i < batches; i++) encode();
  const started = performance.now();
  for (let i = 0; i < batches; i++) encode();
  return (performance.now() - started) * 1000 / batches / perBatch;
}

for (const withHeaders of [true, false]) {
  const ours = records(withHeaders);
  const theirs = ours.map((record) => ({
    topic: "t",
    partition: 0,
    key: Buffer.from(record.key!),
    value: Buffer.from(joinedBytes(record.value!)),
    headers: record.headers,
    timestamp: 1_700_000_000_000n,
  }));
  const writer = new RecordBatchWriter();
  const own = time(() => writer.batch(ours, { timestamp: 1_700_000_000_000, producerId: 5n }));
  const client = time(() =>
    (createRecordsBatch(theirs as never, { producerId: 5n } as never) as unknown as {
      buffer: Uint8Array;
    }).buffer
  );
  console.log(
    `${withHeaders ? "4 headers" : "no headers"}: own ${own.toFixed(2)} µs/record, client ${
      client.toFixed(2)
    } µs/record (${(client / own).toFixed(2)}x)`,
  );
}
