/**
 * The Debezium harness against a real server: Debezium's embedded PostgreSQL connector streams
 * an insert, an update and a delete from an existing pgoutput slot (no snapshot) and writes
 * them as Kafka Connect's JsonConverter would (schemas on), tombstone included; the slot stays.
 * Slow on a cold cache: the first run fetches Debezium with Maven.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startPostgres } from "../testing/embedded_postgres.ts";
import { type DebeziumRecord, runDebezium } from "../testing/debezium.ts";

const PREFIX = "harness";
const TABLE = "items";
const SLOT = "debezium_slot";
const PUBLICATION = "debezium_pub";

/** A JsonConverter envelope: `{"schema": …, "payload": …}`. */
interface Envelope {
  schema: { type: string; name?: string; fields?: { field: string; [k: string]: unknown }[] };
  payload: Record<string, unknown>;
}

/** The type (and name, for logical types) of `field` inside `struct` of a value schema. */
function fieldSchema(envelope: Envelope, struct: string, field: string): unknown {
  const outer = envelope.schema.fields?.find((f) => f.field === struct) as
    | { fields?: { field: string }[] }
    | undefined;
  return outer?.fields?.find((f) => f.field === field);
}

Deno.test("debezium harness: insert, update and delete from a slot, as JsonConverter writes them", async () => {
  await using pg = await startPostgres();
  await pg.psql(`
    CREATE TABLE public.${TABLE} (
      id integer PRIMARY KEY,
      name text NOT NULL,
      qty bigint,
      active boolean,
      added date
    );
    ALTER TABLE public.${TABLE} REPLICA IDENTITY FULL;
    CREATE PUBLICATION ${PUBLICATION} FOR TABLE public.${TABLE};
    SELECT pg_create_logical_replication_slot('${SLOT}', 'pgoutput');
    INSERT INTO public.${TABLE} VALUES (1, 'apple', 3, true, '2024-02-29');
    UPDATE public.${TABLE} SET name = 'pear', qty = 4 WHERE id = 1;
    DELETE FROM public.${TABLE} WHERE id = 1;
  `);

  const dir = await Deno.makeTempDir({ prefix: "spillway-debezium-test-" });
  try {
    const result = await runDebezium({
      database: { host: pg.host, port: pg.port, user: "postgres", dbname: "postgres" },
      slot: SLOT,
      publication: PUBLICATION,
      tables: [`public.${TABLE}`],
      topicPrefix: PREFIX,
      schemas: true,
      count: 4,
      out: join(dir, "out.jsonl"),
      timeoutMs: 240_000,
    });
    assert.equal(result.records, 4);
    assert.ok(result.firstMs > 0 && result.lastMs >= result.firstMs, JSON.stringify(result));
    assert.equal(result.elapsedMs, result.lastMs - result.firstMs);
    const lines = result.lines as DebeziumRecord[];
    assert.equal(lines.length, 4);

    const topic = `${PREFIX}.public.${TABLE}`;
    for (const line of lines) {
      assert.equal(line.topic, topic);
      // Debezium's context headers (extended.headers.enabled, on by default).
      const { "__debezium.context.runId": runId, ...context } = line.headers;
      assert.match(runId ?? "", /^[0-9a-f-]{36}$/);
      assert.deepEqual(context, {
        "__debezium.context.connectorLogicalName": PREFIX,
        "__debezium.context.connectorName": "postgresql",
        "__debezium.context.taskId": "0",
      });
      const key = line.key as Envelope;
      assert.deepEqual(key.payload, { id: 1 });
      assert.equal(key.schema.type, "struct");
      assert.deepEqual(key.schema.fields, [{ type: "int32", optional: false, field: "id" }]);
    }

    const [insert, update, del, tombstone] = lines.map((l) => l.value as Envelope | null);
    const row = { id: 1, name: "apple", qty: 3, active: true, added: 19782 };
    const changed = { ...row, name: "pear", qty: 4 };

    assert.equal(insert?.payload.op, "c");
    assert.equal(insert.payload.before, null);
    assert.deepEqual(insert.payload.after, row);

    assert.equal(update?.payload.op, "u");
    assert.deepEqual(update.payload.before, row);
    assert.deepEqual(update.payload.after, changed);

    assert.equal(del?.payload.op, "d");
    assert.deepEqual(del.payload.before, changed);
    assert.equal(del.payload.after, null);

    assert.equal(tombstone, null, "a tombstone follows the delete");

    // The envelope's schema and source block, as Debezium describes them.
    assert.equal(insert.schema.name, `${topic}.Envelope`);
    assert.deepEqual(fieldSchema(insert, "after", "added"), {
      type: "int32",
      optional: true,
      name: "io.debezium.time.Date",
      version: 1,
      field: "added",
    });
    assert.deepEqual(fieldSchema(insert, "after", "qty"), {
      type: "int64",
      optional: true,
      field: "qty",
    });
    const source = insert.payload.source as Record<string, unknown>;
    assert.equal(source.connector, "postgresql");
    assert.equal(source.name, PREFIX);
    assert.equal(source.db, "postgres");
    assert.equal(source.schema, "public");
    assert.equal(source.table, TABLE);
    assert.equal(typeof source.lsn, "number");
    assert.equal(typeof source.txId, "number");

    // The slot is kept (slot.drop.on.stop=false).
    assert.equal(
      await pg.psql(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${SLOT}'`),
      "1",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
