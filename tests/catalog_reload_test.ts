/**
 * Catalog types changed mid-stream, and catalog lookups during a server restart, against real
 * servers through a `ReplicationSource`.
 *
 * What the server does (PostgreSQL 14 to 18 alike): `ALTER TYPE … ADD/DROP/RENAME ATTRIBUTE`
 * of a composite, `ALTER TYPE … ADD/RENAME VALUE` of an enum, `ALTER DOMAIN` and
 * `ALTER TYPE … RENAME` send no new Relation message for the tables that use the type (only
 * DDL on the table itself, or a new session, does), and `ALTER TYPE … ALTER ATTRIBUTE … TYPE`
 * is refused while a column uses the type. So the source reads a type again when one of its
 * values does not fit the registered description.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseLsn } from "../decoder/lsn.ts";
import { EVENT_RELATION, type Row, type SourceItem } from "../events.ts";
import { ReplicationSource, type SourceOptions } from "../source/replication_source.ts";
import { type PgServer, type PgVersion, testVersions } from "../testing/embedded_postgres.ts";
import { connectOptions, pullItems, sharedServers, sourceOptions } from "./_replication.ts";
import { recordingLogger, waitFor } from "./_runner_util.ts";
import { versionTests } from "./_versions.ts";

const servers = sharedServers("");
const { test, register } = versionTests(servers);

/** Commits of transactions with changes (PostgreSQL 14 also sends DDL's empty ones). */
function commits(items: SourceItem[]): number {
  return items.filter((item) => item.kind === "commit" && item.eventCount > 0).length;
}

function committed(items: SourceItem[]): boolean {
  return commits(items) > 0;
}

/** The rows inserted, in order. */
function inserted(items: SourceItem[]): Row[] {
  return items.flatMap((item) =>
    item.kind === "change" && item.event.op === "c" ? [item.event.after!] : []
  );
}

/** What the items are, leaving out empty transactions. */
function kinds(items: SourceItem[]): string[] {
  return items.filter((item, i) =>
    !(item.kind === "begin" && items[i + 1]?.kind === "commit") &&
    !(item.kind === "commit" && item.eventCount === 0)
  ).map((item) =>
    item.kind === "change"
      ? `change:${item.event.source.table}`
      : item.kind === "schema-change"
      ? `schema-change:${item.table}`
      : item.kind
  );
}

/** What a test body gets from {@linkcode withSource}. */
interface Streaming {
  pg: PgServer;
  source: ReplicationSource;
  iterator: AsyncIterator<SourceItem[]>;
}

/**
 * Runs `sql` (types and tables) on the version's server, publishes `tables` (default the table
 * `name`) as `name`_pub, opens a source on a new slot of it (application name `name`), runs
 * `body`, and closes the source.
 */
async function withSource(
  version: PgVersion,
  setup: { name: string; sql: string; tables?: string[]; options?: Partial<SourceOptions> },
  body: (streaming: Streaming) => Promise<void>,
): Promise<void> {
  const pg = await servers.server(version);
  const name = setup.name;
  await pg.psql(`${setup.sql};
    CREATE PUBLICATION ${name}_pub FOR TABLE ${(setup.tables ?? [name]).join(", ")}`);
  const source = await ReplicationSource.open(sourceOptions(pg, name, {
    createSlot: true,
    messages: false,
    statusIntervalMs: 1000,
    reconnect: { maxAttempts: 60, initialDelayMs: 100, maxDelayMs: 300 },
    ...setup.options,
  }));
  try {
    await body({ pg, source, iterator: source.batches()[Symbol.asyncIterator]() });
  } finally {
    await source.close();
  }
}

for (const binary of [false, true]) {
  const mode = binary ? "binary" : "text";
  test(`catalog types (${mode}): a composite's new and dropped attribute and an enum's new label are read again mid-stream`, async (version) => {
    const name = `altered_${mode}`;
    const log = recordingLogger();
    await withSource(version, {
      name,
      sql: `
        CREATE TYPE ${name}_pair AS (a int, b text);
        CREATE TYPE ${name}_mood AS ENUM ('sad', 'ok');
        CREATE TABLE ${name} (id int PRIMARY KEY, p ${name}_pair, m ${name}_mood)`,
      options: { binary, log },
    }, async ({ pg, source, iterator }) => {
      const next = async (sql: string) => {
        await pg.psql(sql);
        const items = await pullItems(iterator, committed);
        const [row] = inserted(items);
        assert.ok(row !== undefined, `an insert in ${kinds(items).join(", ")}`);
        return { row, items };
      };

      const first = await next(`INSERT INTO ${name} VALUES (1, ROW(1, 'x'), 'sad')`);
      assert.deepEqual(first.row, { id: 1, p: { a: 1, b: "x" }, m: "sad" });
      const moodOid = first.items.flatMap((item) =>
        item.kind === "change" ? item.event[EVENT_RELATION]!.columns : []
      ).find((column) =>
        column.name === "m"
      )!.typeOid;
      const generation = source.assembler.types.generation;

      const added = await next(`
        ALTER TYPE ${name}_pair ADD ATTRIBUTE x int;
        INSERT INTO ${name} VALUES (2, ROW(2, 'y', 7), 'ok');
      `);
      assert.deepEqual(added.row, { id: 2, p: { a: 2, b: "y", x: 7 }, m: "ok" });
      assert.deepEqual(kinds(added.items), ["begin", `change:${name}`, "commit"]);
      assert.ok(source.assembler.types.generation > generation, "renderers see a new generation");

      const labelled = await next(`
        ALTER TYPE ${name}_mood ADD VALUE 'happy';
        INSERT INTO ${name} VALUES (3, ROW(3, 'z', 8), 'happy');
      `);
      assert.deepEqual(labelled.row, { id: 3, p: { a: 3, b: "z", x: 8 }, m: "happy" });
      assert.deepEqual(source.assembler.types.get(moodOid)?.enumLabels, ["sad", "ok", "happy"]);

      const dropped = await next(`
        ALTER TYPE ${name}_pair DROP ATTRIBUTE b;
        INSERT INTO ${name} VALUES (4, ROW(4, 9), 'happy');
      `);
      assert.deepEqual(dropped.row, { id: 4, p: { a: 4, x: 9 }, m: "happy" });

      assert.equal(source.reconnects, 0, "read again in place, without a reconnect");
      assert.ok(
        log.lines.some((line) => line.message === "Types changed in the catalog were read again"),
      );
    });
  });
}

test("catalog types: a composite changed before a streamed transaction is read again, and the transaction sent again", async (version) => {
  const name = "altered_streamed";
  const pg = await servers.server(version);
  await withSource(version, {
    name,
    sql: `
      CREATE TYPE ${name}_pair AS (a int, b text);
      CREATE TABLE ${name} (id int PRIMARY KEY, p ${name}_pair)`,
    options: {
      connection: connectOptions(pg, {
        applicationName: name,
        parameters: { logical_decoding_work_mem: "64kB" },
      }),
      streaming: true,
    },
  }, async ({ source, iterator }) => {
    await pg.psql(`INSERT INTO ${name} VALUES (0, ROW(0, 'x'))`);
    assert.deepEqual(inserted(await pullItems(iterator, committed)), [{
      id: 0,
      p: { a: 0, b: "x" },
    }]);
    // Not confirmed: the reconnect has the server send that insert again too, and its value
    // (two fields) must not be decoded with the changed type.

    const rows = 3000; // well over 64kB: streamed before its commit
    await pg.psql(`
      ALTER TYPE ${name}_pair ADD ATTRIBUTE x int;
      INSERT INTO ${name} SELECT g, ROW(g, 'y', g * 2)::${name}_pair FROM generate_series(1, ${rows}) g;
    `);
    const items = await pullItems(iterator, committed);
    const restart = items.findIndex((item) => item.kind === "restart");
    assert.ok(restart > 0, `a restart item in ${kinds(items).slice(0, 5).join(", ")}…`);
    const resent = items.slice(restart + 1);
    assert.equal(resent[0]?.kind === "begin" && resent[0].tx.streamed, true);
    const after = inserted(resent);
    assert.equal(after.length, rows);
    assert.deepEqual(after[rows - 1], { id: rows, p: { a: rows, b: "y", x: rows * 2 } });
    assert.equal(source.reconnects, 1);
  });
});

test("catalog lookup: a catalog connection whose backend was terminated is replaced, without a reconnect", async (version) => {
  const name = "catalog_terminated";
  await withSource(version, {
    name,
    sql: `
      CREATE TYPE ${name}_mood AS ENUM ('sad', 'ok');
      CREATE TABLE ${name} (id int PRIMARY KEY, m ${name}_mood)`,
  }, async ({ pg, source, iterator }) => {
    await pg.psql(`INSERT INTO ${name} VALUES (1, 'sad')`);
    await pullItems(iterator, committed); // the catalog connection loaded the enum
    assert.equal(
      await pg.psql(`
        SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = '${name}-catalog'`),
      "1",
    );
    await pg.psql(`
      CREATE TYPE ${name}_pair AS (a int, b text);
      ALTER TABLE ${name} ADD COLUMN p ${name}_pair;
      INSERT INTO ${name} VALUES (2, 'ok', ROW(2, 'y'));
    `);
    const items = await pullItems(iterator, committed);
    assert.deepEqual(inserted(items), [{ id: 2, m: "ok", p: { a: 2, b: "y" } }]);
    assert.equal(source.reconnects, 0);
    assert.ok(!items.some((item) => item.kind === "restart"));
  });
});

test("catalog lookup: failing while the server restarts reconnects; the re-sent transaction announces its schema change again", async (version) => {
  const name = "catalog_restart";
  const log = recordingLogger();
  await withSource(version, {
    name,
    sql: `
      CREATE TYPE ${name}_mood AS ENUM ('sad', 'ok');
      CREATE TABLE ${name}_a (id int PRIMARY KEY);
      CREATE TABLE ${name}_b (id int PRIMARY KEY, m ${name}_mood)`,
    tables: [`${name}_a`, `${name}_b`],
    options: { log },
  }, async ({ pg, source, iterator }) => {
    await pg.psql(`INSERT INTO ${name}_a VALUES (0); INSERT INTO ${name}_b VALUES (0, 'sad')`);
    await pullItems(iterator, (items) => commits(items) > 1);

    // One transaction: a schema change of a, then a column of a type the source must load.
    const beforeCommit = await pg.psql(`
      CREATE TYPE ${name}_pair AS (a int, b text);
      BEGIN;
      ALTER TABLE ${name}_a ADD COLUMN z int;
      INSERT INTO ${name}_a VALUES (1, 10);
      ALTER TABLE ${name}_b ADD COLUMN p ${name}_pair;
      INSERT INTO ${name}_b VALUES (1, 'ok', ROW(1, 'y'));
      SELECT pg_current_wal_insert_lsn();
      COMMIT;
    `);
    // Everything received (the Commit starts past that position), nothing consumed yet: the
    // server goes away before the source asks the catalog for the new type.
    await waitFor(
      "the transaction to be received",
      () => source.stream!.receivedLsn >= parseLsn(beforeCommit),
    );
    await pg.stop("immediate");
    const cut = await pullItems(iterator, (items) => items.some((i) => i.kind === "restart"));
    assert.deepEqual(kinds(cut), [
      "begin",
      `schema-change:${name}_a`,
      `change:${name}_a`,
      "restart",
    ]);
    await pg.start();

    const resent = await pullItems(iterator, committed);
    assert.deepEqual(kinds(resent), [
      "begin",
      `schema-change:${name}_a`,
      `change:${name}_a`,
      `schema-change:${name}_b`,
      `change:${name}_b`,
      "commit",
    ]);
    const schemaChange = (items: SourceItem[]) => items.find((i) => i.kind === "schema-change");
    assert.deepEqual(schemaChange(resent), schemaChange(cut), "the same schema change, once more");
    assert.deepEqual(inserted(resent), [{ id: 1, z: 10 }, { id: 1, m: "ok", p: { a: 1, b: "y" } }]);
    assert.equal(source.reconnects, 1);
    assert.ok(
      log.lines.some((line) => line.message === "Replication connection lost; reconnecting"),
    );
  });
});

register(testVersions("full"));
