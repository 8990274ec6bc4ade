/**
 * `source.capture_ddl` against real servers: the event triggers the source installs send each
 * DDL command's tag, objects and text as a transactional `spillway.ddl` message, inside the
 * DDL's transaction and in order with its changes; installing again is harmless; a role that
 * may not create event triggers gets an error naming the privilege and the fix; and `spillway
 * check` prints the SQL that installs and removes them, which works as printed.
 *
 * Each test uses its own database (event triggers belong to one database).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import type { SourceItem } from "../events.ts";
import { PgConnection } from "../postgres/connection.ts";
import {
  DDL_CAPTURE,
  ddlCaptureInstallSql,
  ddlCaptureRemovalSql,
  readDdlCapture,
} from "../postgres/catalog.ts";
import {
  DDL_MESSAGE_PREFIX,
  type DdlMessage,
  installDdlCapture,
  parseDdlMessage,
} from "../source/ddl_capture.ts";
import { ReplicationSource, type SourceOptions } from "../source/replication_source.ts";
import { checkCommand } from "../cli/check.ts";
import { type PgServer, testVersions } from "../testing/embedded_postgres.ts";
import { connectOptions, nextBatch, sharedServers } from "./_replication.ts";
import { failure } from "./_runner_util.ts";
import { versionTests } from "./_versions.ts";

/** Servers with a role that may replicate but is no superuser. */
const servers = sharedServers("CREATE ROLE app LOGIN REPLICATION;");
const { test, register } = versionTests(servers);

/** A fresh database owned by `owner`, with table `t` made by that owner. */
async function database(pg: PgServer, name: string, owner = "postgres"): Promise<void> {
  await pg.psql(`CREATE DATABASE ${name} OWNER ${owner}`);
  await pg.psql(
    `SET ROLE ${owner}; CREATE TABLE t (id int PRIMARY KEY, note text);`,
    { database: name },
  );
}

/** A source on `name`'s database making slot and publication (`FOR TABLE t`) when missing. */
function open(
  pg: PgServer,
  name: string,
  extra: Partial<SourceOptions> = {},
): Promise<ReplicationSource> {
  return ReplicationSource.open({
    connection: connectOptions(pg, { database: name, applicationName: name }),
    slot: `${name}_slot`,
    publication: `${name}_pub`,
    createSlot: true,
    createPublication: true,
    publicationTarget: () => Promise.resolve("FOR TABLE t"),
    captureDdl: true,
    statusIntervalMs: 1000,
    ...extra,
  });
}

/** Runs each statement on its own (as separate Query messages) over one SQL session. */
async function run(pg: PgServer, database: string, statements: string[], user = "postgres") {
  const connection = await PgConnection.connect(connectOptions(pg, { database, user }));
  try {
    for (const sql of statements) await connection.query(sql);
  } finally {
    await connection.close();
  }
}

/**
 * Reads `source` until `commits` transactions with something in them ended (PostgreSQL 14
 * also sends empty ones), confirming them; returns every item. On a timeout the generator is
 * left as it is (its `return()` would wait for the read in flight): closing the source ends it.
 */
async function collect(source: ReplicationSource, commits: number): Promise<SourceItem[]> {
  const iterator = source.batches();
  const items: SourceItem[] = [];
  let seen = 0;
  const deadline = Date.now() + 15_000;
  while (seen < commits) {
    const batch = await nextBatch(iterator, deadline, {
      timeout: `timed out after ${seen} of ${commits} commits: ${summary(items).join(", ")}`,
      ended: "the source ended",
    });
    for (const item of batch) {
      if (item.kind === "commit") {
        if (items.at(-1)?.kind !== "begin") seen++;
        source.confirm(item.endLsn);
      }
      items.push(item);
    }
  }
  await iterator.return(undefined);
  return items;
}

/**
 * The items as short text, without schema changes and without empty transactions (PostgreSQL
 * 14 sends those for transactions with nothing published).
 */
function summary(items: SourceItem[]): string[] {
  const lines: string[] = [];
  for (const item of items) {
    if (item.kind === "commit" && lines.at(-1) === "begin") {
      lines.pop();
      continue;
    }
    if (item.kind === "begin" || item.kind === "commit") lines.push(item.kind);
    else if (item.kind === "change") {
      lines.push(`${item.event.op} ${JSON.stringify(item.event.after)}`);
    } else if (item.kind === "message") {
      lines.push(parseDdlMessage(item.event)?.tag ?? `message ${item.event.prefix}`);
    }
  }
  return lines;
}

/** The DDL messages among `items`, read. */
function ddlMessages(items: SourceItem[]): DdlMessage[] {
  return items.flatMap((item) => {
    const ddl = item.kind === "message" ? parseDdlMessage(item.event) : null;
    return ddl === null ? [] : [ddl];
  });
}

/** What of DDL capture exists in `database`: its triggers (name, event, enabled), function, schema. */
async function installed(pg: PgServer, database: string): Promise<string> {
  return await pg.psql(
    `SELECT evtname || ' ' || evtevent || ' ' || evtenabled::text FROM pg_event_trigger
      UNION ALL SELECT 'function ' || oid::regprocedure FROM pg_proc
      WHERE proname = 'spillway_capture_ddl'
      UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = 'spillway'
      ORDER BY 1`,
    { database },
  );
}

const INSTALLED = [
  "function spillway.spillway_capture_ddl()",
  "schema spillway",
  "spillway_capture_ddl ddl_command_end O",
  "spillway_capture_ddl_drop sql_drop O",
].join("\n");

test("capture_ddl: ALTER TABLE arrives as a spillway.ddl message inside its transaction, in order with the changes", async (version) => {
  const pg = await servers.server(version);
  const name = "ddl_order";
  await database(pg, name);
  const source = await open(pg, name);
  try {
    await run(pg, name, [
      "INSERT INTO t (id) VALUES (1)",
      "BEGIN",
      "INSERT INTO t (id) VALUES (2)",
      "ALTER TABLE t ADD COLUMN c int",
      "INSERT INTO t (id, c) VALUES (3, 30)",
      "COMMIT",
      "INSERT INTO t (id, c) VALUES (4, 40)",
    ]);
    const items = await collect(source, 3);
    assert.deepEqual(summary(items), [
      "begin",
      'c {"id":1,"note":null}',
      "commit",
      "begin",
      'c {"id":2,"note":null}',
      "ALTER TABLE",
      'c {"id":3,"note":null,"c":30}',
      "commit",
      "begin",
      'c {"id":4,"note":null,"c":40}',
      "commit",
    ]);
    const message = items.find((item) => item.kind === "message");
    const begin = items.filter((item) => item.kind === "begin")[1];
    assert.ok(message?.kind === "message" && begin?.kind === "begin");
    assert.equal(message.event.prefix, DDL_MESSAGE_PREFIX);
    assert.equal(message.event.transactional, true);
    assert.equal(message.event.xid, begin.tx.xid, "the message is in the DDL's transaction");
    assert.equal(message.event.commitLsn, begin.tx.commitLsn);
    assert.deepEqual(parseDdlMessage(message.event), {
      tag: "ALTER TABLE",
      objects: [{ type: "table", schema: "public", identity: "public.t" }],
      dropped: [],
      query: "ALTER TABLE t ADD COLUMN c int",
    });
  } finally {
    await source.close();
  }
});

test("capture_ddl: a DROP names what it dropped; temporary objects send nothing; one query string of two commands sends two messages", async (version) => {
  const pg = await servers.server(version);
  const name = "ddl_drop";
  await database(pg, name);
  await pg.psql("CREATE TABLE other (x int)", { database: name });
  const source = await open(pg, name);
  try {
    await run(pg, name, [
      "CREATE TEMP TABLE scratch (x int)",
      "DROP TABLE scratch",
      "ALTER TABLE t DROP COLUMN note",
      "DROP TABLE other",
      "CREATE TABLE a (x int); CREATE INDEX a_x ON a (x)",
      "INSERT INTO t (id) VALUES (1)",
    ]);
    const items = await collect(source, 4);
    assert.deepEqual(summary(items), [
      "begin",
      "ALTER TABLE",
      "commit",
      "begin",
      "DROP TABLE",
      "commit",
      "begin",
      "CREATE TABLE",
      "CREATE INDEX",
      "commit",
      "begin",
      'c {"id":1}',
      "commit",
    ]);
    const [alter, drop, create, index] = ddlMessages(items);
    assert.deepEqual(alter?.dropped, [
      { type: "table column", schema: "public", identity: "public.t.note" },
    ]);
    assert.deepEqual(drop, {
      tag: "DROP TABLE",
      objects: [],
      dropped: [{ type: "table", schema: "public", identity: "public.other" }],
      query: "DROP TABLE other",
    });
    assert.equal(create?.query, "CREATE TABLE a (x int); CREATE INDEX a_x ON a (x)");
    assert.deepEqual(index?.objects, [{ type: "index", schema: "public", identity: "public.a_x" }]);
  } finally {
    await source.close();
  }
});

test("capture_ddl: installing twice is harmless: found in place, reinstalled without a message, a disabled trigger replaced", async (version) => {
  const pg = await servers.server(version);
  const name = "ddl_twice";
  await database(pg, name);
  const first = await open(pg, name);
  await first.close();
  assert.equal(await installed(pg, name), INSTALLED);
  // A second source finds it in place; so does a direct call.
  const source = await open(pg, name);
  try {
    const connection = await PgConnection.connect(connectOptions(pg, { database: name }));
    try {
      assert.equal(await installDdlCapture(connection), false, "already installed");
      // The install SQL run twice more by hand: it replaces the objects, and sends nothing.
      await connection.query(ddlCaptureInstallSql());
      await connection.query(ddlCaptureInstallSql());
      assert.equal((await readDdlCapture(connection)).status, "installed");
      await connection.query(`ALTER EVENT TRIGGER ${DDL_CAPTURE.trigger} DISABLE`);
      assert.equal((await readDdlCapture(connection)).status, "outdated");
      assert.equal(await installDdlCapture(connection), true, "a disabled trigger is replaced");
      assert.equal((await readDdlCapture(connection)).status, "installed");
    } finally {
      await connection.close();
    }
    assert.equal(await installed(pg, name), INSTALLED);
    await run(pg, name, ["ALTER TABLE t ADD COLUMN c int", "INSERT INTO t (id) VALUES (1)"]);
    const items = await collect(source, 2);
    assert.deepEqual(summary(items), [
      "begin",
      "ALTER TABLE",
      "commit",
      "begin",
      'c {"id":1,"note":null,"c":null}',
      "commit",
    ]);
  } finally {
    await source.close();
  }
});

test("capture_ddl: a role that is no superuser gets an error naming the privilege and the fix, and nothing is left behind; once a superuser installed it, the role starts", async (version) => {
  const pg = await servers.server(version);
  const name = "ddl_role";
  await database(pg, name, "app");
  const asApp = { connection: connectOptions(pg, { database: name, user: "app" }) };
  const error = await failure(() => open(pg, name, asApp));
  assert.ok(error instanceof ConfigError, String(error));
  assert.equal(
    error.message,
    `Cannot capture DDL in database "${name}": role "app" may not create the event triggers it needs (permission denied to create event trigger "spillway_capture_ddl"); PostgreSQL lets only superusers create event triggers, so have a superuser run the install SQL once (spillway check shows it under capture_ddl), connect as a superuser, or set capture_ddl: false`,
  );
  assert.equal(await installed(pg, name), "", "the failed install left nothing");
  assert.equal(
    await pg.psql(
      `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${name}_slot') ||
              ' ' || (SELECT count(*) FROM pg_publication)`,
      { database: name },
    ),
    "0 0",
    "nothing was created",
  );
  await pg.psql(ddlCaptureInstallSql(), { database: name });
  const source = await open(pg, name, asApp);
  try {
    // The trigger runs for the role's own DDL too.
    await run(pg, name, ["ALTER TABLE t ADD COLUMN c int"], "app");
    assert.deepEqual(ddlMessages(await collect(source, 1)).map((ddl) => ddl.query), [
      "ALTER TABLE t ADD COLUMN c int",
    ]);
  } finally {
    await source.close();
  }
});

test("capture_ddl: spillway check shows the install and removal SQL, which work as shown, and whether the role may install it", async (version) => {
  const pg = await servers.server(version);
  const name = "ddl_check";
  await database(pg, name, "app");
  const dir = await Deno.makeTempDir({ prefix: "spillway-ddl-check-" });
  try {
    const check = async (user: string) => {
      const file = join(dir, `${user}.yaml`);
      await Deno.writeTextFile(
        file,
        [
          "source:",
          `  url: "${pg.url({ user, database: name })}"`,
          `  slot: ${name}_slot`,
          `  publication: ${name}_pub`,
          "  capture_ddl: true",
          "  state_file: off",
          "tables:",
          "  public.t: {}",
          "sinks: [stdout: {}]",
        ].join("\n"),
      );
      const lines: string[] = [];
      await checkCommand([file], { stdout: (line) => lines.push(line), color: false });
      return lines.join("\n");
    };
    const asApp = await check("app");
    const shown = [
      "         -- install (as a superuser)",
      ...ddlCaptureInstallSql().split("\n").map((line) => `         ${line}`),
      "         -- remove (as a superuser, once no pipeline of this database captures DDL)",
      ...ddlCaptureRemovalSql().split("\n").map((line) => `         ${line}`),
    ].join("\n");
    assert.match(asApp, /^info {3}capture_ddl: each DDL command sends its tag, objects and text/m);
    assert.ok(asApp.includes(shown), asApp);
    assert.match(
      asApp,
      /^warn {3}capture_ddl: the event triggers are not installed in database "ddl_check", and "app" is not a superuser/m,
    );
    assert.match(asApp, /^ {7}fix: have a superuser run the install SQL above/m);
    assert.match(
      await check("postgres"),
      /^ok {5}capture_ddl: .* "postgres" is a superuser, so spillway run installs them at start$/m,
    );

    // The SQL as printed (without the indentation) installs, then removes.
    const [install, remove] = shown.replaceAll(/^ {9}/gm, "").split("-- remove");
    await pg.psql(install!, { database: name });
    assert.equal(await installed(pg, name), INSTALLED);
    assert.match(
      await check("app"),
      /^ok {5}capture_ddl: the event triggers spillway_capture_ddl and spillway_capture_ddl_drop are installed in database "ddl_check"$/m,
    );
    await pg.psql(`-- remove${remove}`, { database: name });
    assert.equal(await installed(pg, name), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

register(testVersions("full"));
