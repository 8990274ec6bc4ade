/**
 * Routing from a table in the source database (`routing: { table: … }`), against a real
 * PostgreSQL 17: its rows override the topic and key of the tables they match (an exact name
 * over a glob); it is read at start, and its changes, which come through the same slot, apply
 * from the next change on, in stream order. Its own changes go to no sink.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startPostgres } from "../testing/embedded_postgres.ts";
import { pipelineYaml, RecordingSink, startRunner, waitFor } from "./_runner_util.ts";

Deno.test("routing table: rows set topics and keys, read at start and followed through the slot as they change", async () => {
  await using pg = await startPostgres({ settings: { autovacuum: "off" } });
  await pg.psql(`
    CREATE TABLE routes (pattern text PRIMARY KEY, topic text, key text[]);
    INSERT INTO routes VALUES ('public.rt_orders', 'team.orders', '{ref}');
    CREATE TABLE rt_orders (id int PRIMARY KEY, ref text NOT NULL);
    CREATE TABLE rt_items (id int PRIMARY KEY);
  `);
  const sink = new RecordingSink();
  const running = await startRunner(
    pipelineYaml({
      name: "rt",
      url: pg.url(),
      slot: "rt_slot",
      publication: "rt_pub",
      tables: { "public.rt_*": "{}" },
    }) + "routing: { table: public.routes }\n",
    { sinks: [sink] },
  );
  /** Topic and key of the change records so far, as `topic key-json`. */
  const routed = () => sink.changes().map((r) => `${r.topic} ${JSON.stringify(r.key)}`);
  try {
    await pg.psql(`
      INSERT INTO rt_orders VALUES (1, 'a');
      INSERT INTO rt_items VALUES (1);
      UPDATE routes SET topic = 'team.orders.v2', key = NULL WHERE pattern = 'public.rt_orders';
      INSERT INTO routes VALUES ('public.rt_i*', 'items.{table}', NULL);
      BEGIN;
      INSERT INTO rt_orders VALUES (2, 'b');
      INSERT INTO rt_items VALUES (2);
      COMMIT;
      DELETE FROM routes WHERE pattern = 'public.rt_orders';
      INSERT INTO routes VALUES ('public.rt_x', 'not a table name', NULL);
      INSERT INTO routes VALUES ('bad pattern', 'x', NULL);
      INSERT INTO rt_orders VALUES (3, 'c');
    `);
    await waitFor("five changes", () => sink.changes().length >= 5);
  } finally {
    await running.stop();
  }
  assert.deepEqual(routed(), [
    'team.orders {"ref":"a"}', // the row read at start: its topic, its key column
    'rt.public.rt_items {"id":1}', // no row: the entry's topic and the primary key
    'team.orders.v2 {"id":2}', // the updated row; its key NULL: the primary key again
    'items.rt_items {"id":2}', // a glob row, its template filled in
    'rt.public.rt_orders {"id":3}', // the row deleted: the entry's topic
  ]);
  assert.ok(
    sink.changes().every((r) => r.event.source.table !== "routes"),
    "the routing table's own changes went to a sink",
  );
  assert.ok(
    running.log.lines.some((line) =>
      line.message === "A routing table row is left out" && line.level === "warn"
    ),
    "a row whose pattern does not parse is reported",
  );
});
