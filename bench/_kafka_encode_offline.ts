/**
 * Offline cost per change of the Kafka sink's encoding: the Debezium envelope
 * (`formats/debezium.ts`), then the client's record batches (`createRecordsBatch` of
 * `@platformatic/kafka`, as its producer builds them: partitioner, headers, CRC), on rows shaped
 * like `bench/pipeline.ts`'s `orders` table.
 *
 *     deno run -A bench/_kafka_encode_offline.ts [rows] [--no-schemas]
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { compatibilityPartitioner, createRecordsBatch } from "npm:@platformatic/kafka@2.12.1";
import { DebeziumFormat } from "../formats/debezium.ts";
import { formatLsn, formatUnixMicros } from "../decoder/lsn.ts";
import { orderRecords } from "./_orders_records.ts";
import { keyHash } from "../sinks/kafka/murmur2.ts";

const rows = Number(Deno.args.find((arg) => !arg.startsWith("--")) ?? 200_000);
const schemas = !Deno.args.includes("--no-schemas");
const records = orderRecords(rows);
const PARTITIONS = 3;
const BATCH = 600;

function time(label: string, body: () => void): void {
  for (let rep = 0; rep < 4; rep++) {
    const started = performance.now();
    body();
    const micros = (performance.now() - started) * 1000 / rows;
    if (rep >= 2) console.log(`${label}: ${micros.toFixed(2)} µs/change`);
  }
}

interface Encoded {
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: Record<string, string>;
}

let encoded: Encoded[] = [];
time(`envelope (schemas ${schemas})`, () => {
  const format = new DebeziumFormat({
    serverName: "bench",
    database: "postgres",
    schemas,
    version: "0",
  });
  encoded = [];
  for (const record of records) {
    if (record.kind !== "change") continue;
    const source = record.event.source;
    const headers = {
      "spillway.lsn": formatLsn(source.lsn),
      "spillway.xid": String(source.xid),
      "spillway.commit_time": formatUnixMicros(source.commitTime),
      "spillway.schema_version": "1",
    };
    for (const out of format.change(record, true)) encoded.push({ ...out, headers });
  }
});
console.log(
  `bytes per value: ${
    Math.round(encoded.reduce((n, e) => n + (e.value?.length ?? 0), 0) / encoded.length)
  }`,
);

const toBuffer = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

const KEYS = new Map<string, Buffer>();
function batches(
  withHeaders: boolean | "cached",
  partitioner: (key: Buffer) => number,
): void {
  let lastXid = "";
  let cached: Buffer[] = [];
  const byPartition: unknown[][] = Array.from({ length: PARTITIONS }, () => []);
  const flush = (p: number) => {
    createRecordsBatch(byPartition[p] as never, { producerId: 1n, producerEpoch: 0 } as never);
    byPartition[p] = [];
  };
  for (const e of encoded) {
    const key = e.key === null ? undefined : toBuffer(e.key);
    const headers = new Map<Buffer, Buffer>();
    if (withHeaders === "cached") {
      const h = e.headers;
      if (h["spillway.xid"] !== lastXid) {
        lastXid = h["spillway.xid"]!;
        cached = [Buffer.from(lastXid), Buffer.from(h["spillway.commit_time"]!), Buffer.from("1")];
      }
      const key = (name: string) => {
        let b = KEYS.get(name);
        if (b === undefined) KEYS.set(name, b = Buffer.from(name));
        return b;
      };
      headers.set(key("spillway.lsn"), Buffer.from(h["spillway.lsn"]!));
      headers.set(key("spillway.xid"), cached[0]!);
      headers.set(key("spillway.commit_time"), cached[1]!);
      headers.set(key("spillway.schema_version"), cached[2]!);
    } else if (withHeaders) {
      for (const [k, v] of Object.entries(e.headers)) headers.set(Buffer.from(k), Buffer.from(v));
    }
    const partition = key === undefined ? 0 : partitioner(key) % PARTITIONS;
    byPartition[partition]!.push({
      key,
      value: e.value === null ? null : toBuffer(e.value),
      headers,
      topic: "t",
      partition,
    });
    if (byPartition[partition]!.length >= BATCH) flush(partition);
  }
  for (let p = 0; p < PARTITIONS; p++) if (byPartition[p]!.length > 0) flush(p);
}

const theirs = (key: Buffer) => compatibilityPartitioner(undefined as never, key);
time("client batches, headers, client murmur2", () => batches(true, theirs));
time("client batches, no headers, client murmur2", () => batches(false, theirs));
time("client murmur2 alone", () => {
  for (const e of encoded) if (e.key !== null) theirs(toBuffer(e.key));
});

const mine = (key: Buffer) => keyHash(key);
let mismatches = 0;
for (const e of encoded) {
  if (e.key !== null && mine(toBuffer(e.key)) !== theirs(toBuffer(e.key))) mismatches++;
}
console.log(`murmur2 mismatches: ${mismatches}`);
time("own murmur2 alone", () => {
  for (const e of encoded) if (e.key !== null) mine(toBuffer(e.key));
});
time("client batches, no headers, own murmur2", () => batches(false, mine));
time("client batches, cached headers, own murmur2", () => batches("cached", mine));
