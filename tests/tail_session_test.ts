/**
 * The publications Spillway creates, against a real server: a `tail` session never makes
 * the application's UPDATE and DELETE fail (tables without a replica identity get only
 * their INSERT and TRUNCATE published), follows tables as they come and lose their
 * identity, drops its publications when the stream dies, and drops the leftovers of
 * crashed sessions; a start that fails leaves nothing behind; a publication made for a
 * pipeline is refused when it would cover a table without a replica identity.
 *
 * Each test uses its own database, so session leftovers of one never meet another.
 *
 * @module
 */

import assert from "node:assert/strict";
import { tail, type TailOptions } from "../cli/tail.ts";
import { parsePipelineConfig } from "../config/mod.ts";
import { ConfigError } from "../errors.ts";
import { publicationTarget } from "../pipelines/route.ts";
import { ReplicationSource } from "../source/replication_source.ts";
import { TailSession } from "../source/publications.ts";
import { type PgServer, startPostgres, testVersions } from "../testing/embedded_postgres.ts";
import { connectOptions, sqlConnection } from "./_replication.ts";
import { within } from "./_fake_server.ts";

const NO_LOG = () => {};

/** Runs `tail` on database `db` until `during` returns; the printed lines, parsed. */
async function tailWhile(
  pg: PgServer,
  db: string,
  during: (printed: Record<string, unknown>[]) => Promise<void>,
  options: Partial<TailOptions> = {},
): Promise<Record<string, unknown>[]> {
  const controller = new AbortController();
  const printed: Record<string, unknown>[] = [];
  let started!: () => void;
  const streaming = new Promise<void>((resolve) => started = resolve);
  const running = tail({
    connection: connectOptions(pg, { database: db }),
    signal: controller.signal,
    log: (_level, message) => {
      if (message === "Streaming started") started();
    },
    write: (bytes) => {
      for (const line of new TextDecoder().decode(bytes).split("\n")) {
        if (line !== "") printed.push(JSON.parse(line));
      }
      return Promise.resolve();
    },
    ...options,
  });
  try {
    await Promise.race([streaming, running]);
    await during(printed);
  } finally {
    controller.abort();
    await running;
  }
  return printed;
}

/** Polls `check` every 100 ms for up to 20 s. */
async function until(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The session objects in database `db` (publications) and on the server (slots). */
async function leftovers(pg: PgServer, db: string): Promise<string> {
  return await pg.psql(
    `SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE 'spillway\\_tail\\_%'
     UNION ALL
     SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE 'spillway\\_tail\\_%'`,
    { database: db },
  );
}

function ops(printed: Record<string, unknown>[], table: string): string[] {
  return printed
    .filter((line) => (line.source as { table?: string } | undefined)?.table === table)
    .map((line) => `${line.op}`);
}

for (const version of testVersions("full")) {
  let shared: Promise<PgServer> | undefined;
  const server = () => shared ??= startPostgres({ version });

  Deno.test(`PG${version}: a tail session leaves UPDATE and DELETE of a table without replica identity working`, async () => {
    const pg = await server();
    await pg.psql("CREATE DATABASE ident");
    await pg.psql(
      `CREATE TABLE nokey (id int, v text);
       CREATE TABLE keyed (id int PRIMARY KEY, v text);
       -- PostgreSQL uses neither a deferrable key nor a parent's key as a replica identity.
       CREATE TABLE defpk (id int PRIMARY KEY DEFERRABLE);
       CREATE TABLE parent (id int PRIMARY KEY);
       CREATE TABLE child () INHERITS (parent);
       CREATE TABLE meas (id int, v text) PARTITION BY RANGE (id);
       CREATE TABLE meas_1 PARTITION OF meas FOR VALUES FROM (0) TO (100);
       INSERT INTO nokey VALUES (1, 'a');
       INSERT INTO keyed VALUES (1, 'a');
       INSERT INTO defpk VALUES (1);
       INSERT INTO child VALUES (1);
       INSERT INTO meas VALUES (1, 'a');`,
      { database: "ident" },
    );
    const printed = await tailWhile(pg, "ident", async (printed) => {
      // Under a FOR ALL TABLES publication these fail with SQLSTATE 55000.
      await pg.psql(
        `UPDATE nokey SET v = 'b'; DELETE FROM nokey;
         INSERT INTO nokey VALUES (2, 'c');
         UPDATE keyed SET v = 'b'; DELETE FROM keyed;
         UPDATE defpk SET id = 2; UPDATE child SET id = 2; UPDATE meas SET v = 'b';
         UPDATE parent SET id = 3;
         TRUNCATE nokey;`,
        { database: "ident" },
      );
      await until("the truncate", () => printed.some((line) => line.op === "t"));
    });
    assert.deepEqual(ops(printed, "nokey"), ["c", "t"]);
    assert.deepEqual(ops(printed, "keyed"), ["u", "d"]);
    assert.equal(await leftovers(pg, "ident"), "");
  });

  Deno.test(`PG${version}: a tail session follows new tables and tables that lose their identity`, async () => {
    const pg = await server();
    await pg.psql("CREATE DATABASE follow");
    await pg.psql("CREATE TABLE later_lost (id int PRIMARY KEY, v text)", { database: "follow" });
    const keyed = async (table: string) =>
      (await pg.psql(
        `SELECT count(*) FROM pg_publication_tables
          WHERE pubname LIKE 'spillway\\_tail\\_%\\_k' AND tablename = '${table}'`,
        { database: "follow" },
      )) === "1";
    const printed = await tailWhile(pg, "follow", async (printed) => {
      await pg.psql("CREATE TABLE newcomer (id int PRIMARY KEY, v text)", { database: "follow" });
      await until("the new table to be followed", () => keyed("newcomer"));
      await pg.psql(
        "INSERT INTO newcomer VALUES (1, 'a'); UPDATE newcomer SET v = 'b'",
        { database: "follow" },
      );
      await until("the update", () => ops(printed, "newcomer").includes("u"));
      await pg.psql("ALTER TABLE later_lost REPLICA IDENTITY NOTHING", { database: "follow" });
      await until("the table without identity to leave", async () => !(await keyed("later_lost")));
      // Its writes work again.
      await pg.psql(
        "INSERT INTO later_lost VALUES (1, 'a'); UPDATE later_lost SET v = 'b'",
        { database: "follow" },
      );
      await until("the insert", () => ops(printed, "later_lost").includes("c"));
    }, { refreshMs: 100 });
    assert.deepEqual(ops(printed, "newcomer"), ["c", "u"]);
    assert.deepEqual(ops(printed, "later_lost"), ["c"]);
    assert.equal(await leftovers(pg, "follow"), "");
  });

  Deno.test(`PG${version}: a tail session whose stream dies still drops its publications`, async () => {
    const pg = await server();
    await pg.psql("CREATE DATABASE dies");
    let started!: () => void;
    const streaming = new Promise<void>((resolve) => started = resolve);
    const running = tail({
      connection: connectOptions(pg, { database: "dies" }),
      log: (_level, message) => {
        if (message === "Streaming started") started();
      },
      write: () => Promise.resolve(),
    });
    await Promise.race([streaming, running]);
    await pg.psql(
      `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
        WHERE slot_name LIKE 'spillway\\_tail\\_%' AND database = 'dies'`,
    );
    const failure = await running.then(() => null, (error) => error);
    assert.ok(failure instanceof Error, "tail ends with the stream's error");
    assert.match(failure.message, /temporary slot/);
    assert.equal(await leftovers(pg, "dies"), "");
  });

  Deno.test(`PG${version}: a new tail session drops the publications crashed sessions left, and no live session's`, async () => {
    const pg = await server();
    await pg.psql("CREATE DATABASE crashed");
    await pg.psql(
      `CREATE PUBLICATION spillway_tail_101_abc_i FOR ALL TABLES;
       CREATE PUBLICATION spillway_tail_101_abc_k;
       CREATE PUBLICATION spillway_tail_102_old FOR ALL TABLES;
       CREATE PUBLICATION spillway_tail_103_starting_i;
       CREATE PUBLICATION spillway_tail_104_streaming_i;
       SELECT pg_create_logical_replication_slot('spillway_tail_104_streaming', 'pgoutput');
       CREATE PUBLICATION spillway_tail_is_mine;`,
      { database: "crashed" },
    );
    // A session still starting holds its lock (and has no slot yet).
    const starting = await sqlConnection(pg, { database: "crashed" });
    await starting.query(
      "SELECT pg_advisory_lock(hashtext('spillway_tail'), hashtext('spillway_tail_103_starting'))",
    );
    try {
      // Two sessions at once: neither drops the other's publications.
      const [one, two] = await Promise.all(
        [0, 1].map(() =>
          TailSession.begin({ connection: connectOptions(pg, { database: "crashed" }) })
        ),
      );
      const live = [...one!.publications, ...two!.publications];
      assert.equal(
        await pg.psql(
          `SELECT count(*) FROM pg_publication WHERE pubname IN ('${live.join("', '")}')`,
          { database: "crashed" },
        ),
        "4",
      );
      await one!.end();
      await two!.end();
      // Gone: those without a slot or a lock holder (the old single-publication name too).
      // Kept: one whose session is starting, one whose slot lives, and other names.
      assert.equal(
        await pg.psql("SELECT pubname FROM pg_publication ORDER BY 1", { database: "crashed" }),
        [
          "spillway_tail_103_starting_i",
          "spillway_tail_104_streaming_i",
          "spillway_tail_is_mine",
        ].join("\n"),
      );
    } finally {
      await starting.close();
      await pg.psql(`SELECT pg_drop_replication_slot('spillway_tail_104_streaming')`);
    }
  });

  Deno.test(`PG${version}: a tail session whose own connection dies, or whose server restarts, recovers or cleans up`, async () => {
    const pg = await server();
    await pg.psql("CREATE DATABASE revive");
    await pg.psql("CREATE TABLE rekey (id int PRIMARY KEY, v text)", { database: "revive" });
    const session = await TailSession.begin({
      connection: connectOptions(pg, { database: "revive" }),
    });
    const listed = async () =>
      await pg.psql(
        `SELECT count(*) FROM pg_publication_tables WHERE pubname = '${session.keyed}'`,
        { database: "revive" },
      );
    try {
      assert.equal(await listed(), "1");
      // The session's connection (the one holding its lock) is killed; the table then loses
      // its key. The next refresh reconnects and takes it out, so its writes work again.
      await pg.psql(
        `SELECT pg_terminate_backend(pid) FROM pg_locks
          WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = 'revive')`,
      );
      await pg.psql("ALTER TABLE rekey DROP CONSTRAINT rekey_pkey", { database: "revive" });
      await until("the refresh to reconnect", async () => {
        await session.refresh();
        return await listed() === "0";
      });
      await pg.psql("UPDATE rekey SET v = 'b'", { database: "revive" });
    } finally {
      // A restart kills its connection again; the end drops the publications anyway.
      await pg.restart();
      await session.end();
    }
    assert.equal(await leftovers(pg, "revive"), "");
  });

  Deno.test(`PG${version}: a session's catalog change waits a second at most for a lock, and its end does not wait`, async () => {
    const pg = await server();
    await pg.psql("CREATE DATABASE locked");
    const session = await TailSession.begin({
      connection: connectOptions(pg, { database: "locked" }),
    });
    const holder = await sqlConnection(pg, { database: "locked" });
    try {
      await holder.query("CREATE TABLE busy (id int PRIMARY KEY)");
      await holder.query("BEGIN");
      await holder.query("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE");
      // The ADD cannot get its lock: the refresh gives up (lock_timeout) instead of queueing
      // the application behind it, and tries again later.
      await within(session.refresh(), 20_000);
      assert.equal(
        await pg.psql(
          `SELECT count(*) FROM pg_publication_tables WHERE pubname = '${session.keyed}'`,
          { database: "locked" },
        ),
        "0",
      );
      const refreshing = session.refresh();
      await within(session.end(), 20_000);
      await refreshing;
    } finally {
      await holder.query("ROLLBACK");
      await holder.close();
    }
    assert.equal(await leftovers(pg, "locked"), "");
  });

  Deno.test(`PG${version}: a start that fails after the publication drops it again; one refused before creates nothing`, async () => {
    const pg = await server();
    await pg.psql("CREATE DATABASE rollback");
    await pg.psql(
      `CREATE TABLE t (id int PRIMARY KEY);
       SELECT pg_create_physical_replication_slot('phys_slot');`,
      { database: "rollback" },
    );
    try {
      // Refused by the slot check, which now comes before the publication is made.
      await assert.rejects(
        tail({
          connection: connectOptions(pg, { database: "rollback" }),
          slot: "phys_slot",
          publication: "rb_pub",
          create: true,
          log: NO_LOG,
        }),
        /physical slot/,
      );
      assert.equal(
        await pg.psql("SELECT count(*) FROM pg_publication", { database: "rollback" }),
        "0",
      );
      // Options the server cannot stream with are refused before anything is created.
      await assert.rejects(
        tail({
          connection: connectOptions(pg, { database: "rollback" }),
          slot: "combo_slot",
          publication: "rb_pub",
          create: true,
          protoVersion: 1,
          streaming: true,
          log: NO_LOG,
        }),
        /streaming on proto_version 1: it needs proto_version 2/,
      );
      assert.equal(
        await pg.psql(
          "SELECT (SELECT count(*) FROM pg_publication) + (SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'combo_slot')",
          { database: "rollback" },
        ),
        "0",
      );
      // The slot cannot be made, after the publication was: every slot is in use.
      const sql = await sqlConnection(pg, { database: "rollback" });
      const max = Number(
        (await sql.queryObjects("SHOW max_replication_slots"))[0]!.max_replication_slots,
      );
      const used = Number(
        (await sql.queryObjects("SELECT count(*) AS n FROM pg_replication_slots"))[0]!.n,
      );
      for (let i = used; i < max; i++) {
        await sql.query(`SELECT pg_create_physical_replication_slot('filler_${i}')`);
      }
      try {
        await assert.rejects(
          ReplicationSource.open({
            connection: connectOptions(pg, { database: "rollback" }),
            slot: "rb_slot",
            createSlot: true,
            publication: "rb_pub",
            createPublication: true,
            log: NO_LOG,
          }),
          /replication slots are in use|max_replication_slots/,
        );
        assert.equal(
          await pg.psql("SELECT count(*) FROM pg_publication", { database: "rollback" }),
          "0",
        );
      } finally {
        for (let i = used; i < max; i++) {
          await sql.query(`SELECT pg_drop_replication_slot('filler_${i}')`);
        }
        await sql.close();
      }
    } finally {
      await pg.psql("SELECT pg_drop_replication_slot('phys_slot')");
    }
  });

  Deno.test(`PG${version}: a publication Spillway would create over a table without replica identity is refused`, async () => {
    const pg = await server();
    await pg.psql("CREATE DATABASE refuse");
    await pg.psql(
      `CREATE TABLE ok (id int PRIMARY KEY);
       CREATE TABLE "no key" (id int);
       CREATE UNLOGGED TABLE scratch (id int);
       CREATE SCHEMA parts;
       CREATE TABLE parts.meas (id int, v text) PARTITION BY RANGE (id);
       CREATE TABLE parts.meas_1 PARTITION OF parts.meas FOR VALUES FROM (0) TO (100);
       CREATE TABLE parts.parent (id int PRIMARY KEY);
       CREATE TABLE parts.child () INHERITS (parts.parent);`,
      { database: "refuse" },
    );
    // tail --publication P --create (FOR ALL TABLES): refused, nothing made.
    await assert.rejects(
      tail({
        connection: connectOptions(pg, { database: "refuse" }),
        publication: "refused_pub",
        create: true,
        log: NO_LOG,
      }),
      (error) =>
        error instanceof ConfigError && /public\."no key"/.test(error.message) &&
        /REPLICA IDENTITY FULL/.test(error.message) && !/scratch/.test(error.message),
    );
    assert.equal(await leftovers(pg, "refuse"), "");
    assert.equal(
      await pg.psql("SELECT count(*) FROM pg_publication", { database: "refuse" }),
      "0",
    );
    // A pipeline's publication: "*" and a list naming the table are refused; a list
    // without it is made FOR TABLE ONLY (the unlogged table, never published, is left out,
    // with a warning). A partitioned table is refused when a partition has no identity; an
    // inheritance parent is published without its children (ONLY), which then block nothing.
    const sql = await sqlConnection(pg, { database: "refuse" });
    try {
      const config = (tables: string) =>
        parsePipelineConfig(
          `source: {url: "postgres://x@h/refuse", slot: s, publication: p}\ntables: ${tables}\nsinks: [stdout: {}]`,
          { file: "p.yaml", env: {} },
        );
      await assert.rejects(
        publicationTarget(config(`{"*": {}}`), sql),
        /Cannot create publication "p": .*public\."no key".*leave them out of tables in p\.yaml/,
      );
      await assert.rejects(publicationTarget(config(`{"public.*": {}}`), sql), /"no key"/);
      const warnings: string[] = [];
      assert.equal(
        await publicationTarget(
          config(`{"public.ok": {}, "public.scratch": {}}`),
          sql,
          (_level, message) => warnings.push(message),
        ),
        "FOR TABLE ONLY public.ok",
      );
      assert.match(warnings.join("\n"), /Unlogged tables match .* never publishes/);
      await assert.rejects(
        publicationTarget(config(`{"parts.meas": {}}`), sql),
        /without a replica identity \(parts\.meas_1\)/,
      );
      assert.equal(
        await publicationTarget(config(`{"parts.parent": {}}`), sql),
        "FOR TABLE ONLY parts.parent",
      );
    } finally {
      await sql.close();
    }
  });

  Deno.test(`PG${version}: stop the server`, async () => {
    if (shared !== undefined) await (await shared)[Symbol.asyncDispose]();
  });
}
