/**
 * Conformance with Debezium itself: Debezium 3.6.3.Final's PostgreSQL connector (embedded
 * engine, Kafka Connect's JsonConverter with schemas, `testing/debezium.ts`) and Spillway's
 * Kafka sink read the same workload from two slots of one PostgreSQL 17 server, and their
 * records are compared field by field, key and value, schema and payload, record by record
 * per topic:
 *
 * - every operation (insert, update, delete with its tombstone, truncate), in several
 *   transactions, with the transaction metadata topic on (`provide.transaction.metadata`);
 * - every common column type, NULLs, NOT NULL columns and constant defaults;
 * - an UPDATE that leaves a TOASTed value unchanged (Debezium's placeholder);
 * - REPLICA IDENTITY DEFAULT and FULL (the key is the primary key under both), and a table
 *   without a primary key (key `null`);
 * - logical decoding messages (`<prefix>.message`), transactional and not.
 *
 * Fields that differ by nature, and only those, are left out of the comparison
 * ({@linkcode BY_NATURE}): the envelope's `ts_ms`/`ts_us`/`ts_ns` (when each connector
 * processed the event), `source.version` (the connector's own version), and the headers
 * (Debezium's `__debezium.context.*`, Spillway's `spillway.*`). One more is renamed rather
 * than left out: in an END record, Debezium counts a transaction's logical decoding messages
 * under the `toString()` of an internal object (`…LogicalDecodingMessageId@1c2c4f1a`, an
 * identity hash, in a HashMap position that follows it); Spillway under `message`. Both are
 * compared as `message`, last in the list, with their counts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startKafka } from "../testing/kafka.ts";
import { startPostgres } from "../testing/embedded_postgres.ts";
import { type DebeziumRecord, runDebezium } from "../testing/debezium.ts";
import { consume } from "./_kafka.ts";
import { pipelineYaml, startRunner } from "./_runner_util.ts";
import { differences } from "./_diff.ts";
import { allTypesColumns, allTypesValues } from "./_all_types.ts";

const PREFIX = "conf";

/** Paths (in the value's payload) whose values differ by nature. */
export const BY_NATURE = ["ts_ms", "ts_us", "ts_ns", "source.version"];

const SCHEMA = `
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
  CREATE TABLE all_types (
    id int PRIMARY KEY,${allTypesColumns("mood")}
  );
  CREATE TABLE full_rows (id int PRIMARY KEY, name text NOT NULL, qty int);
  ALTER TABLE full_rows REPLICA IDENTITY FULL;
  CREATE TABLE no_key (a int, b text);
  ALTER TABLE no_key REPLICA IDENTITY FULL;
  CREATE TABLE toasted (id int PRIMARY KEY, big text, small int);
  ALTER TABLE toasted ALTER COLUMN big SET STORAGE EXTERNAL;
  CREATE PUBLICATION conf_pub FOR TABLE all_types, full_rows, no_key, toasted;
  SELECT pg_create_logical_replication_slot('debezium_slot', 'pgoutput');
  SELECT pg_create_logical_replication_slot('spillway_slot', 'pgoutput');
`;

const WORKLOAD = `
  INSERT INTO all_types VALUES (
    1, ${allTypesValues(`'text ✓'`)}
  );
  INSERT INTO all_types (id, i4) VALUES (2, 0);
  BEGIN;
  UPDATE all_types SET t = 'changed', n = -0.5 WHERE id = 1;
  INSERT INTO full_rows VALUES (1, 'one', 10), (2, 'two', 20);
  COMMIT;
  UPDATE full_rows SET qty = 11 WHERE id = 1;
  UPDATE full_rows SET id = 3 WHERE id = 2;
  DELETE FROM full_rows WHERE id = 1;
  DELETE FROM all_types WHERE id = 2;
  INSERT INTO no_key VALUES (1, 'x'), (2, 'y');
  UPDATE no_key SET b = 'z' WHERE a = 1;
  DELETE FROM no_key WHERE a = 2;
  INSERT INTO toasted VALUES (1, repeat('0123456789', 1000), 1);
  UPDATE toasted SET small = 2 WHERE id = 1;
  TRUNCATE full_rows;
  BEGIN;
  INSERT INTO no_key VALUES (3, 'm');
  SELECT pg_logical_emit_message(true, 'outbox', 'order ✓ placed');
  COMMIT;
  SELECT pg_logical_emit_message(false, 'audit', '\\x00ff'::bytea);
  INSERT INTO no_key VALUES (4, 'after the message');
`;

/** What both connectors produce, without what differs by nature. */
interface Comparable {
  topic: string;
  key: unknown;
  value: unknown;
}

/** Debezium's name for the data collection of logical decoding messages in END records. */
const DEBEZIUM_MESSAGE_COLLECTION =
  /^io\.debezium\.connector\.postgresql\.LogicalDecodingMessageMonitor\$LogicalDecodingMessageId@[0-9a-f]+$/;

/** An END record's per-collection counts with the messages' entry named `message`, last. */
function messagesLast(payload: Record<string, unknown>): void {
  const collections = payload.data_collections;
  if (!Array.isArray(collections)) return;
  const isMessage = (c: { data_collection: string }) =>
    c.data_collection === "message" || DEBEZIUM_MESSAGE_COLLECTION.test(c.data_collection);
  const messages = collections.filter(isMessage).map((c) => ({ ...c, data_collection: "message" }));
  payload.data_collections = [...collections.filter((c) => !isMessage(c)), ...messages];
}

function withoutNature(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  const copy = structuredClone(value) as
    & { payload?: Record<string, unknown> }
    & Record<
      string,
      unknown
    >;
  const payload = (copy.payload ?? copy) as Record<string, unknown>;
  for (const path of BY_NATURE) {
    const parts = path.split(".");
    let target: Record<string, unknown> | undefined = payload;
    for (const part of parts.slice(0, -1)) {
      target = target?.[part] as Record<string, unknown> | undefined;
    }
    if (target && parts.at(-1)! in target) target[parts.at(-1)!] = "(by nature)";
  }
  messagesLast(payload);
  return copy;
}

Deno.test("debezium conformance: Spillway's Kafka records equal Debezium 3.6's, key and value, schema and payload, but for the fields that differ by nature", async () => {
  await using kafka = await startKafka();
  await using pg = await startPostgres({ settings: { autovacuum: "off" } });
  await pg.psql(SCHEMA);
  await pg.psql(WORKLOAD);
  const dir = await Deno.makeTempDir({ prefix: "spillway-conformance-" });
  try {
    const tables = ["public.all_types", "public.full_rows", "public.no_key", "public.toasted"];
    const debezium = await runDebezium({
      database: { host: pg.host, port: pg.port, user: "postgres", dbname: "postgres" },
      slot: "debezium_slot",
      publication: "conf_pub",
      tables,
      topicPrefix: PREFIX,
      schemas: true,
      idleMs: 5_000,
      properties: { "provide.transaction.metadata": "true", "skipped.operations": "none" },
      out: join(dir, "debezium.jsonl"),
      timeoutMs: 240_000,
    });
    const theirs: Comparable[] = (debezium.lines as DebeziumRecord[]).map((r) => ({
      topic: r.topic,
      key: r.key,
      value: r.value,
    }));
    assert.ok(theirs.length >= 20, `Debezium wrote only ${theirs.length} records`);

    const running = await startRunner(
      pipelineYaml({
        name: PREFIX,
        url: pg.url(),
        slot: "spillway_slot",
        publication: "conf_pub",
        tables: Object.fromEntries(tables.map((t) => [t, "{}"])),
        sinks: [
          `kafka: { brokers: [${kafka.brokers[0]}], transaction_metadata: true, truncate: true }`,
        ],
      }),
    );
    let ours: Comparable[] = [];
    try {
      const topics = [...new Set(theirs.map((r) => r.topic))];
      const records = await consume(kafka.brokers, topics, theirs.length, { settleMs: 2_000 });
      ours = records.map((r) => ({
        topic: r.topic,
        key: r.key === null ? null : JSON.parse(r.key),
        value: r.value === null ? null : JSON.parse(r.value),
      }));
    } finally {
      await running.stop();
    }

    const problems: string[] = [];
    const topics = [...new Set([...theirs, ...ours].map((r) => r.topic))].sort();
    for (const topic of topics) {
      const a = theirs.filter((r) => r.topic === topic);
      const b = ours.filter((r) => r.topic === topic);
      if (a.length !== b.length) {
        problems.push(`${topic}: Debezium wrote ${a.length} records, Spillway ${b.length}`);
      }
      for (let i = 0; i < Math.min(a.length, b.length); i++) {
        for (const part of ["key", "value"] as const) {
          for (const line of differences(withoutNature(a[i]![part]), withoutNature(b[i]![part]))) {
            problems.push(`${topic}[${i}].${part}${line}`);
          }
        }
      }
    }
    if (problems.length > 0) {
      await Deno.writeTextFile("/tmp/conformance.json", JSON.stringify({ theirs, ours }, null, 1));
    }
    assert.deepEqual(problems, [], `${problems.length} differences from Debezium`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
