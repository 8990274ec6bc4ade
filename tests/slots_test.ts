/**
 * `spillway slots list` and `spillway slots drop` against real servers: the listing
 * shows a slot with its lag (PostgreSQL 17, and 14 for the version-dependent columns),
 * `drop --yes` drops it, an active slot gives the 55006 explanation (and `--wait`
 * waits for its reader), a missing slot the 42704 one, and without `--yes` a drop is
 * confirmed on a terminal and refused without one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { PgConnection } from "../postgres/connection.ts";
import { slotsCommand } from "../cli/slots.ts";
import { type CommandOptions } from "../cli/_common.ts";
import { type PgServer, PRIMARY_VERSION } from "../testing/embedded_postgres.ts";
import { connectOptions, sharedServers } from "./_replication.ts";

/** Shared servers with a published table. */
const { server, stopAll } = sharedServers(`
  CREATE TABLE t (id int PRIMARY KEY, note text);
  CREATE PUBLICATION slots_pub FOR TABLE t;
`);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(args: string[], options: CommandOptions = {}): Promise<Result> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await slotsCommand(args, {
    stdout: (line) => stdout.push(line),
    stderr: (line) => stderr.push(line),
    interactive: false,
    ...options,
  });
  return { code, stdout: stdout.join("\n"), stderr: stderr.join("\n") };
}

async function slotNames(pg: PgServer): Promise<string[]> {
  const text = await pg.psql("SELECT slot_name FROM pg_replication_slots ORDER BY 1");
  return text === "" ? [] : text.split("\n");
}

/** A replication connection streaming from `slot` (created here), so the slot is active. */
async function reader(pg: PgServer, slot: string) {
  const connection = await PgConnection.connect(connectOptions(pg, { replication: "database" }));
  await connection.createReplicationSlot(slot, { snapshot: "nothing" });
  const stream = await connection.startReplication({
    slot,
    pgoutput: { protoVersion: 1, publicationNames: ["slots_pub"] },
  });
  return {
    pid: connection.backendPid,
    async close() {
      await stream.stop().catch(() => {});
      await connection.close();
    },
  };
}

for (const version of [PRIMARY_VERSION, 14] as const) {
  Deno.test(`slots list (PG${version}): shows a created slot with its lag, as a table and as JSON`, async () => {
    const pg = await server(version);
    const url = pg.url();
    let result = await run(["list", url]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'No logical replication slots in database "postgres"');

    await pg.psql(`
      SELECT pg_create_logical_replication_slot('list_slot', 'pgoutput');
      INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 200) g;
    `);
    try {
      result = await run(["list", url]);
      assert.equal(result.code, 0, result.stderr);
      const [header, row, ...more] = result.stdout.split("\n");
      assert.deepEqual(more, []);
      const columns = [
        "SLOT",
        "PLUGIN",
        "ACTIVE",
        "CONFIRMED_FLUSH",
        "RESTART",
        "LAG",
        "WAL_STATUS",
        "SAFE_WAL_SIZE",
        "TEMPORARY",
        "TWO_PHASE",
        ...(version >= 17 ? ["FAILOVER"] : []),
      ];
      assert.deepEqual(header?.split(/\s+/), columns);
      assert.match(
        row ?? "",
        /^list_slot\s+pgoutput\s+no\s+[0-9A-F]+\/[0-9A-F]+\s+[0-9A-F]+\/[0-9A-F]+\s+\d+(\.\d)? kB\s+reserved\s+unlimited\s+no\s+no/,
      );

      result = await run(["list", url, "--json"]);
      assert.equal(result.code, 0, result.stderr);
      const [slot] = JSON.parse(result.stdout);
      assert.equal(slot.slot, "list_slot");
      assert.equal(slot.plugin, "pgoutput");
      assert.equal(slot.database, "postgres");
      assert.equal(slot.active, false);
      assert.equal(slot.activePid, null);
      assert.ok(slot.lagBytes > 20_000, `lag ${slot.lagBytes}`);
      assert.equal(slot.walStatus, "reserved");
      assert.equal(slot.safeWalSize, null);
      assert.equal(slot.temporary, false);
      assert.equal(slot.twoPhase, false);
      assert.equal(slot.failover, version >= 17 ? false : null);
      assert.match(slot.confirmedFlushLsn, /^[0-9A-F]+\/[0-9A-F]+$/);

      // Slots of other databases are not listed.
      await pg.psql("CREATE DATABASE elsewhere");
      await pg.psql("SELECT pg_create_logical_replication_slot('elsewhere_slot', 'pgoutput')", {
        database: "elsewhere",
      });
      result = await run(["list", url, "--json"]);
      assert.deepEqual(JSON.parse(result.stdout).map((s: { slot: string }) => s.slot), [
        "list_slot",
      ]);
      result = await run(["list", pg.url({ database: "elsewhere" }), "--json"]);
      assert.deepEqual(JSON.parse(result.stdout).map((s: { slot: string }) => s.slot), [
        "elsewhere_slot",
      ]);
    } finally {
      await pg.psql(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active",
      );
      await pg.psql("DROP DATABASE IF EXISTS elsewhere");
    }
  });
}

Deno.test("slots list: an active slot shows its reader's PID", async () => {
  const pg = await server();
  const active = await reader(pg, "active_list");
  try {
    const result = await run(["list", pg.url(), "--json"]);
    const [slot] = JSON.parse(result.stdout);
    assert.equal(slot.active, true);
    assert.equal(slot.activePid, active.pid);
    const text = await run(["list", pg.url()]);
    assert.match(text.stdout, new RegExp(`\\nactive_list\\s+pgoutput\\s+pid ${active.pid}\\s`));
  } finally {
    await active.close();
    await run(["drop", pg.url(), "active_list", "--yes", "--wait"]);
  }
});

Deno.test("slots drop --yes drops the slot", async () => {
  const pg = await server();
  await pg.psql("SELECT pg_create_logical_replication_slot('drop_me', 'pgoutput')");
  const result = await run(["drop", pg.url(), "drop_me", "--yes"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, 'Dropped replication slot "drop_me"');
  assert.deepEqual(await slotNames(pg), []);
});

Deno.test("slots drop: an active slot gives the 55006 explanation; --wait waits for the reader", async () => {
  const pg = await server();
  const active = await reader(pg, "busy_slot");
  try {
    const result = await run(["drop", pg.url(), "busy_slot", "--yes"]);
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `spillway slots drop: Cannot drop replication slot "busy_slot": it is in use by PID ${active.pid} (SQLSTATE 55006); stop that reader (SELECT pg_terminate_backend(${active.pid}) ends it), or run again with --wait to drop it as soon as the reader lets go`,
    );
    assert.deepEqual(await slotNames(pg), ["busy_slot"]);

    const waiting = run(["drop", pg.url(), "busy_slot", "--yes", "--wait"]);
    let settled = false;
    waiting.finally(() => settled = true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(settled, false, "drop --wait returned while the slot was still read");
    await active.close();
    const dropped = await waiting;
    assert.equal(dropped.code, 0, dropped.stderr);
    assert.equal(
      dropped.stderr,
      `Waiting for PID ${active.pid} to release replication slot "busy_slot"...`,
    );
    assert.equal(dropped.stdout, 'Dropped replication slot "busy_slot"');
    assert.deepEqual(await slotNames(pg), []);
  } finally {
    await active.close();
  }
});

Deno.test("slots drop: a missing slot gives the 42704 explanation", async () => {
  const pg = await server();
  const result = await run(["drop", pg.url(), "no_such_slot", "--yes"]);
  assert.equal(result.code, 1);
  assert.equal(
    result.stderr,
    `spillway slots drop: Cannot drop replication slot "no_such_slot": it does not exist (SQLSTATE 42704); check the name with "spillway slots list ${pg.url()}"`,
  );
});

Deno.test("slots drop: asks on a terminal; refuses without --yes when stdin is not a terminal", async () => {
  const pg = await server();
  await pg.psql("SELECT pg_create_logical_replication_slot('ask_me', 'pgoutput')");
  try {
    const questions: string[] = [];
    let result = await run(["drop", pg.url(), "ask_me"], {
      interactive: true,
      confirm: (question) => {
        questions.push(question);
        return Promise.resolve(false);
      },
    });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, 'Replication slot "ask_me" not dropped');
    assert.match(
      questions[0] ?? "",
      /^Drop replication slot "ask_me" \(logical pgoutput, database "postgres", .* behind, not in use\) on 127\.0\.0\.1:\d+\? /,
    );
    assert.deepEqual(await slotNames(pg), ["ask_me"]);

    result = await run(["drop", pg.url(), "ask_me"], { interactive: false });
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /refusing to drop replication slot "ask_me" without --yes: stdin is not a terminal/,
    );
    assert.deepEqual(await slotNames(pg), ["ask_me"]);

    // The real check of the terminal, in a process whose stdin is not one.
    const module = fileURLToPath(new URL("../cli/slots.ts", import.meta.url));
    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { slotsCommand } from ${
          JSON.stringify(module)
        }; Deno.exit(await slotsCommand(Deno.args));`,
        "--",
        "drop",
        pg.url(),
        "ask_me",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(child.stderr);
    assert.equal(child.code, 2, stderr);
    assert.match(stderr, /stdin is not a terminal, so nobody can confirm; run again with --yes/);
    assert.deepEqual(await slotNames(pg), ["ask_me"]);

    result = await run(["drop", pg.url(), "ask_me"], {
      interactive: true,
      confirm: () => Promise.resolve(true),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await slotNames(pg), []);
  } finally {
    await pg.psql(
      "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active",
    );
  }
});

Deno.test("slots: usage errors exit 2, --help exits 0, an unreachable server exits 1", async () => {
  let result = await run([]);
  assert.equal(result.code, 2);
  assert.ok(
    result.stderr.startsWith("spillway slots: wrong arguments\nUsage:\n  spillway slots list"),
  );
  result = await run(["list"]);
  assert.equal(result.code, 2);
  result = await run(["drop", "postgres://localhost/db"]);
  assert.equal(result.code, 2);
  result = await run(["rename", "x"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /unknown subcommand "rename"; expected list or drop/);
  result = await run(["list", "postgres://localhost/db", "--bogus"]);
  assert.equal(result.code, 2);
  result = await run(["drop", "postgres://localhost/db", "Bad-Name", "--yes"]);
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /Cannot use replication slot name "Bad-Name": slot names are 1 to 63/,
  );
  result = await run(["list", "http://localhost/db"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /scheme must be postgres:\/\//);
  result = await run(["--help"]);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /^spillway slots list <postgres-url> \[--json\]/);
  result = await run(["list", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable"]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^spillway slots list: /);
});

Deno.test("teardown: stop the shared servers", async () => {
  await stopAll();
});
