/**
 * Spillway's Avro output checked by Apache Avro's own Java library: one pipeline, two Kafka
 * sinks on one real broker, one `format: debezium-avro` with a real schema registry (Apicurio
 * Registry, Confluent-compatible API), one `format: debezium-json, schemas: false`, each on its
 * own topic prefix. The Avro topic is read by `tests/avro/AvroRead.java` (kafka-clients, the
 * registry's schema for each record's id, `GenericDatumReader`), through
 * `testing/avro_reader.ts`; the JSON topic by a consumer. Every record's key and value must be
 * equal field by field, numbers compared exactly (int8 past 2^53 too), so a bug shared by
 * Spillway's encoder (`formats/avro/encode.ts`) and avsc cannot hide.
 *
 * Fields that differ by nature, and only those: the envelope's `ts_ms`, `ts_us` and `ts_ns`
 * (when each sink encoded), and `source.name`, Debezium's `topic.prefix`, which is each sink's
 * own `topic_prefix` (checked to be that, on both sides).
 *
 * @module
 */

import assert from "node:assert/strict";
import { startKafka } from "../testing/kafka.ts";
import { startRegistry } from "../testing/registry.ts";
import { readAvroTopics } from "../testing/avro_reader.ts";
import { sharedServers } from "./_replication.ts";
import { consume } from "./_kafka.ts";
import { dropItemsPipeline, itemsPipelineYaml, Poller, startRunner } from "./_runner_util.ts";
import { differences } from "./_diff.ts";
import { allTypesColumns, allTypesValues } from "./_all_types.ts";

const { server, stopAll } = sharedServers({ settings: { autovacuum: "off" } });

const NAME = "kajava";
const TABLE = `${NAME}_items`;
const AVRO_PREFIX = "kajava_avro";
const JSON_PREFIX = "kajava_json";

/** Envelope fields (of the value) set when each sink encoded. */
const BY_NATURE = ["ts_ms", "ts_us", "ts_ns"];

const SCHEMA = `
  DROP TYPE IF EXISTS ${NAME}_mood;
  CREATE TYPE ${NAME}_mood AS ENUM ('sad', 'ok', 'happy');
  CREATE TABLE ${TABLE} (
    id bigint PRIMARY KEY,${allTypesColumns(`${NAME}_mood`)}
  );
`;

const WORKLOAD = `
  INSERT INTO ${TABLE} VALUES (
    1, ${allTypesValues(`'text ✓ "quoted" \\ back ☃ 𝄞'`)}
  );
  INSERT INTO ${TABLE} (id, i4) VALUES (2, 0);
  INSERT INTO ${TABLE} (id, i4, i8, n, f4, f8, t, by, ai, at, d, ts) VALUES
    (9007199254740993, -1, -9223372036854775808, '-0.000001', 'Infinity', 'NaN', '', '', '{}', '{}',
     '0001-01-01', '1970-01-01 00:00:00');
  BEGIN;
  UPDATE ${TABLE} SET t = 'changed', n = -0.5, f4 = -0.1, f8 = 1e300 WHERE id = 1;
  UPDATE ${TABLE} SET id = 3 WHERE id = 2;
  COMMIT;
  DELETE FROM ${TABLE} WHERE id = 9007199254740993;
`;

/** Insert 1, 2, big; update 1; update 2 → 3 (delete, tombstone, create); delete big + tombstone. */
const RECORDS = 9;

/** One record as both sides are compared: key and value parsed with exact numbers. */
interface Comparable {
  partition: number;
  offset: number;
  key: unknown;
  value: unknown;
}

/**
 * JSON text parsed with every number exact: integers (and integral numbers written with a
 * fraction, as Java writes doubles: `1.0`) as bigint, others as numbers.
 */
function parseExact(text: string | null): unknown {
  if (text === null) return null;
  return JSON.parse(text, (_key, value, context?: { source?: string }) => {
    if (typeof value !== "number") return value;
    const source = context?.source ?? String(value);
    if (/^-?\d+$/.test(source)) return BigInt(source);
    if (Number.isSafeInteger(value)) return BigInt(value);
    return value;
  });
}

/**
 * The value with the fields that differ by nature set aside, after checking that
 * `source.name` is the sink's topic prefix.
 */
function withoutNature(value: unknown, prefix: string, where: string): unknown {
  if (value === null || typeof value !== "object") return value;
  const copy = structuredClone(value) as Record<string, unknown>;
  for (const field of BY_NATURE) {
    if (field in copy) copy[field] = "(by nature)";
  }
  const source = copy.source as Record<string, unknown> | undefined;
  if (source) {
    assert.equal(source.name, prefix, `${where}: source.name is not the sink's topic prefix`);
    source.name = "(the topic prefix)";
  }
  return copy;
}

function sorted(records: Comparable[]): Comparable[] {
  return records.toSorted((a, b) => a.partition - b.partition || a.offset - b.offset);
}

Deno.test("kafka avro (Apache Avro's Java reader): every record decodes to what debezium-json writes, key and value, but for the fields that differ by nature", async () => {
  const pg = await server();
  await using kafka = await startKafka();
  await using registry = await startRegistry();
  const poller = new Poller(pg);
  const avroTopic = `${AVRO_PREFIX}.public.${TABLE}`;
  const jsonTopic = `${JSON_PREFIX}.public.${TABLE}`;
  const broker = kafka.brokers[0];
  const yaml = itemsPipelineYaml(pg, NAME, {
    sinks: [
      `kafka: { brokers: [${broker}], topic_prefix: ${AVRO_PREFIX}, format: debezium-avro, ` +
      `schema_registry: "${registry.url}" }`,
      `kafka: { brokers: [${broker}], topic_prefix: ${JSON_PREFIX}, format: debezium-json, ` +
      `schemas: false }`,
    ],
  });
  try {
    await pg.psql(SCHEMA);
    let avro: Comparable[] = [];
    let json: Comparable[] = [];
    const running = await startRunner(yaml);
    try {
      await pg.psql(WORKLOAD);
      const [avroRecords, jsonRecords] = await Promise.all([
        readAvroTopics({
          brokers: kafka.brokers,
          registryUrl: registry.url,
          topics: [avroTopic],
          count: RECORDS,
          timeoutMs: 60_000,
        }),
        consume(kafka.brokers, [jsonTopic], RECORDS, { settleMs: 500 }),
      ]);
      avro = sorted(avroRecords.map((r) => ({
        partition: r.partition,
        offset: r.offset,
        key: parseExact(r.key),
        value: parseExact(r.value),
      })));
      json = sorted(jsonRecords.map((r) => ({
        partition: r.partition,
        offset: r.offset,
        key: parseExact(r.key),
        value: parseExact(r.value),
      })));
    } finally {
      await running.stop();
    }

    assert.equal(json.length, RECORDS, `the JSON sink wrote ${json.length} records`);
    assert.equal(avro.length, RECORDS, `the Avro sink wrote ${avro.length} records`);
    // The workload's shape, so that an empty comparison cannot pass.
    const ops = json.map((r) => (r.value as { op?: string } | null)?.op ?? null);
    assert.deepEqual(ops, ["c", "c", "c", "u", "d", null, "c", "d", null]);
    assert.deepEqual(
      (json[2]!.key as Record<string, unknown>).id,
      9007199254740993n,
      "the JSON key past 2^53",
    );

    const problems: string[] = [];
    for (let i = 0; i < RECORDS; i++) {
      const a = avro[i]!;
      const j = json[i]!;
      for (const line of differences(a.key, j.key)) problems.push(`[${i}].key${line}`);
      const av = withoutNature(a.value, AVRO_PREFIX, `avro[${i}]`);
      const jv = withoutNature(j.value, JSON_PREFIX, `json[${i}]`);
      for (const line of differences(av, jv)) problems.push(`[${i}].value${line}`);
    }
    assert.deepEqual(
      problems,
      [],
      `${problems.length} differences between Apache Avro's decoding (left) and debezium-json ` +
        `(right)`,
    );
  } finally {
    await dropItemsPipeline(pg, poller, NAME);
    await pg.psql(`DROP TYPE IF EXISTS ${NAME}_mood`);
  }
});

Deno.test({
  name: "kafka avro (Apache Avro's Java reader): stop the shared servers",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: stopAll,
});
