/**
 * The Kafka sink against a real broker (Apache Kafka 4.4, KRaft, started by
 * `testing/kafka.ts`) and a real PostgreSQL 17: Debezium's envelope on each table's topic,
 * keyed by the primary key, tombstones, the transaction metadata topic, headers, and the slot
 * confirmed only once the broker has the records.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { Kafka, logLevel } from "npm:kafkajs@2.2.4";
import { parsePipelineConfig } from "../config/mod.ts";
import { EVENT_RELATION, type SinkRecord } from "../events.ts";
import { KafkaSink } from "../sinks/kafka/mod.ts";
import { startKafka, topicBytesOnDisk } from "../testing/kafka.ts";
import { sharedServers } from "./_replication.ts";
import { consume, type Consumed, ordered, reshapingPipeline } from "./_kafka.ts";
import { lsn, parseLsn } from "../decoder/lsn.ts";
import {
  confirmedReaches,
  dropItemsPipeline,
  itemsPipelineYaml,
  Poller,
  startRunner,
} from "./_runner_util.ts";

const { server, stopAll } = sharedServers({
  settings: { autovacuum: "off" },
  setup: "CREATE EXTENSION pg_walinspect",
});

let brokerStarting: ReturnType<typeof startKafka> | null = null;
const broker = () => brokerStarting ??= startKafka();

Deno.test("kafka sink: Debezium envelopes keyed by the primary key, a tombstone after a delete, transaction metadata and headers; the slot confirms what the broker acknowledged", async () => {
  const pg = await server();
  const kafka = await broker();
  const poller = new Poller(pg);
  const name = "kshop";
  try {
    await pg.psql(
      `CREATE TABLE ${name}_items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), note text DEFAULT 'none')`,
    );
    const topic = `${name}.public.${name}_items`;
    let records: Consumed[] = [];
    const running = await startRunner(
      itemsPipelineYaml(pg, name, {
        sinks: [
          `kafka: { brokers: [${kafka.brokers[0]}], schemas: false, transaction_metadata: true }`,
        ],
      }),
    );
    try {
      await pg.psql(
        `BEGIN;
         INSERT INTO ${name}_items VALUES (1, 'one', 1.50, 'a'), (2, 'two', 2.00, NULL);
         COMMIT;
         UPDATE ${name}_items SET price = 3.25 WHERE id = 1;
         DELETE FROM ${name}_items WHERE id = 2;`,
      );
      records = await consume(kafka.brokers, [topic, `${name}.transaction`], 11);
      // The slot moves past the last transaction once the broker acknowledged it.
      const last = JSON.parse(ordered(records, `${name}.transaction`).at(-1)!.value!);
      // Debezium's END id ends with the position where the commit record ends.
      const end = lsn(BigInt(last.id.split(":")[1]));
      await confirmedReaches(poller, `${name}_slot`, end);
    } finally {
      await running.stop();
    }
    const changes = ordered(records, topic);
    assert.deepEqual(
      changes.map((r) => [r.key, r.value === null ? null : JSON.parse(r.value).op]),
      [['{"id":1}', "c"], ['{"id":2}', "c"], ['{"id":1}', "u"], ['{"id":2}', "d"], [
        '{"id":2}',
        null,
      ]],
    );
    const insert = JSON.parse(changes[0]!.value!);
    assert.deepEqual(insert.before, null);
    // numeric(10,2) with Debezium's decimal.handling.mode=precise: base64 of the unscaled 150.
    assert.deepEqual(insert.after, { id: 1, name: "one", price: "AJY=", note: "a" });
    assert.equal(insert.source.connector, "postgresql");
    assert.equal(insert.source.name, name);
    assert.equal(insert.source.schema, "public");
    assert.equal(insert.source.table, `${name}_items`);
    assert.equal(insert.source.snapshot, "false");
    assert.equal(typeof insert.source.lsn, "number");
    assert.equal(typeof insert.source.txId, "number");
    assert.match(insert.transaction.id, /^\d+:\d+$/);
    assert.deepEqual([insert.transaction.total_order, insert.transaction.data_collection_order], [
      1,
      1,
    ]);
    const remove = JSON.parse(changes[3]!.value!);
    // Columns a delete's old key tuple lacks are null; with a default, JsonConverter writes the
    // default instead (replace.null.with.default), and so does Spillway.
    assert.deepEqual(remove.before, { id: 2, name: null, price: null, note: "none" });
    assert.equal(remove.after, null);
    assert.match(changes[0]!.headers["spillway.lsn"]!, /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.equal(changes[0]!.headers["spillway.xid"], String(insert.source.txId));
    assert.match(changes[0]!.headers["spillway.commit_time"]!, /^\d{4}-\d\d-\d\dT/);
    assert.equal(changes[0]!.headers["spillway.schema_version"], "1");
    // The second change of the same transaction shares the xid, not the position.
    assert.equal(changes[1]!.headers["spillway.xid"], String(insert.source.txId));
    assert.notEqual(changes[1]!.headers["spillway.lsn"], changes[0]!.headers["spillway.lsn"]);

    const transactions = ordered(records, `${name}.transaction`).map((r) => JSON.parse(r.value!));
    assert.deepEqual(transactions.map((t) => [t.status, t.event_count]), [
      ["BEGIN", null],
      ["END", 2],
      ["BEGIN", null],
      ["END", 1],
      ["BEGIN", null],
      ["END", 1],
    ]);
    assert.deepEqual(transactions[1].data_collections, [
      { data_collection: `public.${name}_items`, event_count: 2 },
    ]);
    assert.equal(transactions[0].id, insert.transaction.id);
  } finally {
    await dropItemsPipeline(pg, poller, name);
  }
});

Deno.test("kafka sink: a transform's dead letters go to a Kafka topic, with the error in headers; the other changes to the table's topic", async () => {
  const pg = await server();
  const kafka = await broker();
  const poller = new Poller(pg);
  const name = "kdlq";
  const dir = await Deno.makeTempDir({ prefix: "spillway-kafka-dlq-" });
  try {
    await pg.psql(`CREATE TABLE ${name}_items (id int PRIMARY KEY, v text)`);
    await Deno.writeTextFile(
      join(dir, "t.ts"),
      `import { defineTransform } from "spillway";
export default defineTransform<{ id: number; v: string | null }>({
  change(event) {
    if (event.after?.id === 2) throw new Error("no twos");
    return event;
  },
});
`,
    );
    const brokers = `[${kafka.brokers[0]}]`;
    const running = await startRunner(
      itemsPipelineYaml(pg, name, {
        tables: { [`public.${name}_items`]: "{ transform: t.ts }" },
        sinks: [`kafka: { brokers: ${brokers}, schemas: false }`],
      }) +
        `transforms: { on_error: [dead_letter], dead_letter: { kafka: { brokers: ${brokers}, topic: ${name}.dlq } } }\n`,
      { file: join(dir, "p.yaml") },
    );
    let records: Consumed[];
    try {
      await pg.psql(`INSERT INTO ${name}_items VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
      records = await consume(kafka.brokers, [`${name}.public.${name}_items`, `${name}.dlq`], 3);
    } finally {
      await running.stop();
    }
    const changes = ordered(records, `${name}.public.${name}_items`);
    assert.deepEqual(changes.map((r) => r.key), ['{"id":1}', '{"id":3}']);
    const [letter] = ordered(records, `${name}.dlq`);
    assert.ok(letter !== undefined, "no dead letter on the topic");
    assert.equal(letter.key, '{"id":2}');
    assert.equal(letter.headers["spillway.dead_letter.reason"], "failed");
    assert.match(letter.headers["spillway.dead_letter.error"]!, /Error: no twos/);
    assert.match(letter.headers["spillway.dead_letter.transform"]!, /t\.ts$/);
    const value = JSON.parse(letter.value!);
    assert.equal(value.type, "dead-letter");
    assert.equal(value.event.after.id, 2);
    assert.equal(value.error.message, "no twos");
  } finally {
    await dropItemsPipeline(pg, poller, name);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kafka sink: a transform's retyped, dropped and added fields are in the Connect schema and the payload", async () => {
  const pg = await server();
  const kafka = await broker();
  const poller = new Poller(pg);
  const name = "kshape";
  const topic = `${name}.public.${name}_items`;
  const dir = await Deno.makeTempDir({ prefix: "spillway-kafka-shape-" });
  try {
    const running = await startRunner(
      await reshapingPipeline(
        pg,
        name,
        dir,
        `kafka: { brokers: [${kafka.brokers[0]}], tombstones: false }`,
      ),
      { file: join(dir, "p.yaml") },
    );
    let records: Consumed[];
    try {
      await pg.psql(
        `INSERT INTO ${name}_items VALUES (1, 1.50, 'n', 's'), (2, NULL, NULL, 's');
         DELETE FROM ${name}_items WHERE id = 2;`,
      );
      records = await consume(kafka.brokers, [topic], 3);
    } finally {
      await running.stop();
    }
    const values = ordered(records, topic).map((r) => JSON.parse(r.value!));
    const fields = (value: { schema: { fields: { field: string; fields?: unknown[] }[] } }) =>
      value.schema.fields.find((f) => f.field === "after")!.fields as {
        field: string;
        type: string;
        optional: boolean;
        items?: { type: string };
      }[];
    // secret dropped; price a double now; price_cents (declared int8) and tags (inferred) added.
    assert.deepEqual(
      fields(values[0]).map((f) => [f.field, f.type, f.optional, f.items?.type]),
      [
        ["id", "int32", false, undefined],
        ["price", "double", true, undefined],
        ["note", "string", true, undefined],
        ["price_cents", "int64", true, undefined],
        ["tags", "array", true, "string"],
      ],
    );
    assert.deepEqual(values.map((v) => v.payload.after), [
      { id: 1, price: 1.5, note: "n", price_cents: 150, tags: ["a", "n"] },
      { id: 2, price: null, note: null, price_cents: null, tags: ["a", "none"] },
      null,
    ]);
    // The delete went through as it came, written in the same shape (one schema).
    assert.deepEqual(values[2].payload.before, {
      id: 2,
      price: null,
      note: null,
      price_cents: null,
      tags: null,
    });
    assert.deepEqual(values[2].schema, values[0].schema);
  } finally {
    await dropItemsPipeline(pg, poller, name);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kafka sink: changes of a table without a primary key have a null key and are spread over the partitions (keyless: null_key)", async () => {
  const pg = await server();
  const kafka = await broker();
  const poller = new Poller(pg);
  const name = "knokey";
  try {
    await pg.psql(
      `CREATE TABLE ${name}_items (id int, v text); ALTER TABLE ${name}_items REPLICA IDENTITY FULL`,
    );
    const running = await startRunner(
      itemsPipelineYaml(pg, name, {
        sinks: [`kafka: { brokers: [${kafka.brokers[0]}], schemas: false, partitions: 3 }`],
      }),
    );
    let records: Consumed[];
    try {
      await pg.psql(`INSERT INTO ${name}_items SELECT g, 'v' || g FROM generate_series(1, 30) g`);
      records = await consume(kafka.brokers, [`${name}.public.${name}_items`], 30);
    } finally {
      await running.stop();
    }
    assert.deepEqual(records.filter((r) => r.key !== null), []);
    const partitions = new Map<number, number>();
    for (const r of records) partitions.set(r.partition, (partitions.get(r.partition) ?? 0) + 1);
    assert.deepEqual([...partitions.keys()].sort(), [0, 1, 2], `per partition: ${[...partitions]}`);
    const ids = records.map((r) => JSON.parse(r.value!).after.id).sort((a, b) => a - b);
    assert.deepEqual(ids, Array.from({ length: 30 }, (_, i) => i + 1));
  } finally {
    await dropItemsPipeline(pg, poller, name);
  }
});

for (
  const [exactlyOnce, format] of [[false, "debezium-json"], [true, "debezium-json"], [
    false,
    "json",
  ]] as const
) {
  const mode = `${exactlyOnce ? "exactly-once" : "at-least-once"}, ${format}`;
  Deno.test(`kafka sink (${mode}): logical decoding messages go to <prefix>.message, transactional ones in their transaction; the slot confirms past a non-transactional one once Kafka has it`, async () => {
    const pg = await server();
    const kafka = await broker();
    const poller = new Poller(pg);
    const name = exactlyOnce ? "kmsgx" : format === "json" ? "kmsgj" : "kmsg";
    try {
      await pg.psql(`CREATE TABLE ${name}_items (id int PRIMARY KEY)`);
      const running = await startRunner(
        itemsPipelineYaml(pg, name, {
          sinks: [
            `kafka: { brokers: [${
              kafka.brokers[0]
            }], schemas: false, exactly_once: ${exactlyOnce}, transactional_id: ${name}-tx, format: ${format} }`,
          ],
        }),
      );
      let records: Consumed[];
      let end: string;
      try {
        await pg.psql(
          `BEGIN;
           INSERT INTO ${name}_items VALUES (1);
           SELECT pg_logical_emit_message(true, 'outbox', 'in the transaction');
           COMMIT;
           SELECT pg_logical_emit_message(false, 'audit', '\\x00ff'::bytea);`,
        );
        end = (await pg.psql("SELECT pg_current_wal_insert_lsn()")).trim();
        records = await consume(
          kafka.brokers,
          [`${name}.message`, `${name}.public.${name}_items`],
          3,
        );
        // Nothing follows the non-transactional message: the slot moves past it because it
        // was a commit of its own for the sink (exactly-once: it ended a Kafka transaction).
        await confirmedReaches(poller, `${name}_slot`, parseLsn(end));
      } finally {
        await running.stop();
      }
      const messages = ordered(records, `${name}.message`).map((r) => ({
        key: r.key,
        value: JSON.parse(r.value!),
      }));
      if (format === "json") {
        // Spillway's own form of a message, keyed by its prefix as Debezium's.
        assert.deepEqual(
          messages.map((m) => [m.key, m.value.prefix, m.value.content, m.value.transactional]),
          [
            ['{"prefix":"outbox"}', "outbox", btoa("in the transaction"), true],
            ['{"prefix":"audit"}', "audit", "AP8=", false],
          ],
        );
        return;
      }
      assert.deepEqual(messages.map((m) => [m.key, m.value.op, m.value.message]), [
        ['{"prefix":"outbox"}', "m", { prefix: "outbox", content: btoa("in the transaction") }],
        ['{"prefix":"audit"}', "m", { prefix: "audit", content: "AP8=" }],
      ]);
      assert.equal(typeof messages[0]!.value.source.txId, "number");
      assert.equal(messages[1]!.value.source.txId, null);
    } finally {
      await dropItemsPipeline(pg, poller, name);
    }
  });
}

Deno.test("kafka sink: a non-transactional message sent again (a reconnect re-reads from its position) is written once", async () => {
  const kafka = await broker();
  const config = parsePipelineConfig(
    "source: { url: postgres://u@h/db, slot: s, publication: p }\n" +
      `tables: { public.t: {} }\nsinks: [kafka: { brokers: ['${
        kafka.brokers[0]
      }'], schemas: false }]\n`,
    { file: "p.yaml", env: {} },
  );
  const sinkConfig = config.sinks[0]!;
  if (sinkConfig.type !== "kafka") throw new Error("not a kafka sink");
  const sink = new KafkaSink({
    config: sinkConfig,
    pipeline: "again",
    topicPrefix: "again",
    database: "db",
  });
  const message = (at: bigint): SinkRecord => ({
    kind: "message",
    event: {
      op: "m",
      transactional: false,
      prefix: "audit",
      content: new TextEncoder().encode(`at ${at}`),
      lsn: lsn(at),
    },
  });
  await sink.open();
  try {
    await sink.write([message(100n)]);
    await sink.write([message(100n)]); // the same one, after a reconnect
    await sink.write([message(300n)]);
  } finally {
    await sink.close();
  }
  const records = await consume(kafka.brokers, ["again.message"], 2, { settleMs: 1_000 });
  assert.deepEqual(records.map((r) => JSON.parse(r.value!).message.content), [
    btoa("at 100"),
    btoa("at 300"),
  ]);
});

Deno.test("kafka sink: every compression the config offers is taken by the broker (gzip read back by an independent consumer)", async () => {
  const kafka = await broker();
  const relation = {
    type: "Relation" as const,
    relationId: 4242,
    namespace: "public",
    relationName: "zipped",
    replicaIdentity: "d" as const,
    columns: [
      { flags: 1, isKey: true, name: "id", typeOid: 23, typeModifier: -1 },
      { flags: 0, isKey: false, name: "v", typeOid: 25, typeModifier: -1 },
    ],
  };
  /** Bytes of `topic` in the broker's log segments. */
  const onDisk = (topic: string) => topicBytesOnDisk(kafka, topic);
  const sizes = new Map<string, number>();
  // "none" first: the size the compressed batches are held against.
  for (const compression of ["none", "gzip", "snappy", "lz4", "zstd"]) {
    const config = parsePipelineConfig(
      "source: { url: postgres://u@h/db, slot: s, publication: p }\n" +
        `tables: { public.t: {} }\nsinks: [kafka: { brokers: ['${
          kafka.brokers[0]
        }'], compression: ${compression}, schemas: false }]\n`,
      { file: "p.yaml", env: {} },
    );
    const sinkConfig = config.sinks[0]!;
    if (sinkConfig.type !== "kafka") throw new Error("not a kafka sink");
    const sink = new KafkaSink({
      config: sinkConfig,
      pipeline: "zip",
      topicPrefix: `zip-${compression}`,
      database: "db",
    });
    const topic = `zip-${compression}.public.zipped`;
    const tx = { xid: 7, commitLsn: lsn(1000n), commitTime: 0n, streamed: false };
    const records: SinkRecord[] = [{ kind: "begin", tx }];
    for (let id = 1; id <= 200; id++) {
      records.push({
        kind: "change",
        topic,
        key: { id },
        event: {
          op: "c",
          source: {
            schema: "public",
            table: "zipped",
            relid: 4242,
            lsn: lsn(BigInt(id)),
            commitLsn: lsn(1000n),
            xid: 7,
            commitTime: 0n,
          },
          before: null,
          after: { id, v: "a fairly repetitive value ".repeat(8) },
          unchanged: [],
          [EVENT_RELATION]: relation,
        },
      });
    }
    records.push({ kind: "commit", tx, endLsn: lsn(1100n), eventCount: 200 });
    await sink.open();
    try {
      await sink.write(records);
    } finally {
      await sink.close();
    }
    sizes.set(compression, await onDisk(topic));
    if (compression !== "none") {
      // The batches really are compressed: 200 repetitive values take far less room.
      assert.ok(
        sizes.get(compression)! < sizes.get("none")! / 2,
        `${compression}: ${sizes.get(compression)} bytes on disk, uncompressed ${
          sizes.get("none")
        }`,
      );
    }
    if (compression === "gzip") {
      const read = await consume(kafka.brokers, [topic], 200);
      assert.equal(read.length, 200);
      assert.equal(JSON.parse(read[0]!.value!).after.v, "a fairly repetitive value ".repeat(8));
    } else {
      const admin = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      try {
        const offsets = await admin.fetchTopicOffsets(topic);
        const total = offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
        assert.equal(total, 200, `${compression}: ${total} records on ${topic}`);
      } finally {
        await admin.disconnect();
      }
    }
  }
});

Deno.test({
  name: "kafka sink: stop the shared servers",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await stopAll();
    if (brokerStarting) await (await brokerStarting).stop();
  },
});
