/**
 * `spillway tail` as a subprocess against a real server: the JSON line shapes of
 * changes and transaction markers, a clean exit on SIGINT that removes the session's
 * temporary slot and publication, and resuming a permanent slot.
 *
 * The tests that need a server run on each version of `testVersions("full")` (PostgreSQL 17;
 * every version with `SPILLWAY_PG_MATRIX=full`, as `deno task test:matrix` sets), with the
 * version in their names; the tests of a version share one server, which stops before the
 * next version's starts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseLsn } from "../decoder/lsn.ts";
import { tail } from "../cli/tail.ts";
import { type PgServer, testVersions } from "../testing/embedded_postgres.ts";
import { connectOptions, sharedServers } from "./_replication.ts";
import { type ChangeSource, MAIN, ROOT } from "./_runner_util.ts";
import { versionTests } from "./_versions.ts";

// A short wal_sender_timeout makes tail send status updates every second (timeout / 3), so
// tests can wait for a confirmation to reach the server.
const servers = sharedServers({ settings: { wal_sender_timeout: "3s" } });
const server = servers.server;

/** The tests that need a server, each run on every version of `testVersions("full")`. */
const { test, register } = versionTests(servers);

/** One line printed by `tail`, parsed. */
type Line = Record<string, unknown>;

/** A running `spillway tail` whose stdout lines and stderr text are collected as they come. */
class Tail {
  readonly lines: Line[] = [];
  /** The stdout lines as printed, before parsing (int8 values above 2^53 are exact only here). */
  readonly text: string[] = [];
  stderr = "";
  readonly #child: Deno.ChildProcess;
  readonly #pumps: Promise<void>[];
  #changed: (() => void) | null = null;

  constructor(args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "tail", ...args],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#pumps = [
      this.#pump(this.#child.stdout, (line) => {
        this.text.push(line);
        this.lines.push(JSON.parse(line));
      }),
      this.#pump(this.#child.stderr, (line) => this.stderr += `${line}\n`),
    ];
  }

  async #pump(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
    let pending = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      pending += text;
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        onLine(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
      this.#wake();
    }
    if (pending !== "") onLine(pending);
    this.#wake();
  }

  #wake(): void {
    const changed = this.#changed;
    this.#changed = null;
    changed?.();
  }

  /** Waits until `check()` holds, re-checking whenever output arrives. */
  async until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        assert.fail(
          `Timed out after ${timeoutMs} ms waiting for ${what}\nstdout: ${
            JSON.stringify(this.lines)
          }\nstderr: ${this.stderr}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#changed = resolve;
        timer = setTimeout(resolve, Math.min(remaining, 200));
      });
      clearTimeout(timer);
    }
  }

  /** Waits for "Streaming started" on stderr. */
  started(): Promise<void> {
    return this.until("streaming to start", () => this.stderr.includes("Streaming started"));
  }

  /** Sends SIGINT and returns the exit code and how long the exit took. */
  async interrupt(timeoutMs = 10_000): Promise<{ code: number; elapsedMs: number }> {
    const started = Date.now();
    try {
      this.#child.kill("SIGINT");
    } catch {
      // It has exited already; its status tells how.
    }
    const timer = setTimeout(() => this.kill(), timeoutMs);
    try {
      const status = await this.#child.status;
      await Promise.all(this.#pumps);
      return { code: status.code, elapsedMs: Date.now() - started };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for the process to end by itself. */
  async exit(timeoutMs = 15_000): Promise<number> {
    const timer = setTimeout(() => this.kill(), timeoutMs);
    try {
      const status = await this.#child.status;
      await Promise.all(this.#pumps);
      return status.code;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the process if it still runs (cleanup after a failed assertion). */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await this.#child.status;
    await Promise.all(this.#pumps).catch(() => {});
  }

  changes(): Line[] {
    return this.lines.filter((line) => "op" in line);
  }

  commits(): Line[] {
    return this.lines.filter((line) => line.type === "commit");
  }
}

/** Runs `body` with a started `tail`; always reaps the process. */
async function withTail<T>(args: string[], body: (tail: Tail) => Promise<T>): Promise<T> {
  const tail = new Tail(args);
  try {
    return await body(tail);
  } finally {
    await tail.kill();
  }
}

const LSN_TEXT = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/;
const ISO_MICROS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

/** A change line as printed. */
interface ChangeLine {
  op: string;
  source: ChangeSource;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  unchanged: string[];
  truncate?: { cascade: boolean; restartIdentity: boolean };
}

/** Splits lines into transactions (begin … commit), checking the framing on the way. */
function transactions(lines: Line[]): { begin: Line; changes: Line[]; commit: Line }[] {
  const out: { begin: Line; changes: Line[]; commit: Line }[] = [];
  let open: { begin: Line; changes: Line[] } | null = null;
  for (const line of lines) {
    if (line.type === "begin") {
      assert.equal(open, null, "begin inside a transaction");
      open = { begin: line, changes: [] };
    } else if (line.type === "commit") {
      assert.ok(open !== null, "commit without begin");
      out.push({ ...open, commit: line });
      open = null;
    } else if ("op" in line) {
      assert.ok(open !== null, `a change outside begin/commit: ${JSON.stringify(line)}`);
      open.changes.push(line);
    }
  }
  return out;
}

/** The slot's confirmed_flush_lsn. */
async function confirmedFlush(pg: PgServer, slot: string): Promise<bigint> {
  const text = await pg.psql(
    `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`,
  );
  return parseLsn(text);
}

/**
 * Waits until the server shows the confirmation of `endLsn` (status updates are periodic), so the
 * resume tests check resumption rather than the shutdown path, which has its own test ("an abort
 * while a batch is being printed …").
 */
async function waitForConfirmation(pg: PgServer, slot: string, endLsn: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (await confirmedFlush(pg, slot) < parseLsn(endLsn)) {
    if (Date.now() > deadline) assert.fail(`The slot never confirmed ${endLsn}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function sessionLeftovers(pg: PgServer): Promise<string> {
  return await pg.psql(`
    SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE 'spillway_tail_%'
    UNION ALL
    SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE 'spillway_tail_%'
  `);
}

test("tail --tx: JSON lines for insert/update/delete/truncate with begin/commit; SIGINT exits 0 and cleans up", async (version) => {
  const pg = await server(version);
  await pg.psql(`
    CREATE TABLE shapes (id int PRIMARY KEY, name text, big text);
    CREATE TABLE full_rows (id int PRIMARY KEY, v text);
    ALTER TABLE full_rows REPLICA IDENTITY FULL;
  `);
  const testStarted = Date.now();
  await withTail([pg.url(), "--tx"], async (tail) => {
    await tail.started();
    // While it runs, its temporary slot and publication exist.
    const during = await pg.psql(
      "SELECT temporary, active FROM pg_replication_slots WHERE slot_name LIKE 'spillway_tail_%'",
    );
    assert.equal(during, "t|t");

    // A TOASTed value (incompressible enough to be stored out of line), then changes.
    const xids = (await pg.psql(`
      BEGIN;
      INSERT INTO shapes VALUES
        (1, 'a', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 300) g));
      SELECT pg_current_xact_id();
      COMMIT;
      UPDATE shapes SET name = 'b' WHERE id = 1;
      UPDATE shapes SET id = 2 WHERE id = 1;
      DELETE FROM shapes WHERE id = 2;
      INSERT INTO full_rows VALUES (1, 'x');
      UPDATE full_rows SET v = 'y';
      DELETE FROM full_rows;
      BEGIN;
      INSERT INTO shapes VALUES (10, 'ten', NULL);
      INSERT INTO full_rows VALUES (10, 'z');
      SELECT pg_current_xact_id();
      COMMIT;
      TRUNCATE shapes;
    `)).split("\n").map(Number);
    const walAfter = parseLsn(await pg.psql("SELECT pg_current_wal_lsn()"));
    await tail.until("9 transactions", () => tail.commits().length >= 9);

    const txs = transactions(tail.lines);
    assert.equal(txs.length, 9);
    let previousEnd = 0n;
    for (const { begin, changes, commit } of txs) {
      // begin: {type, xid, commitLsn, commitTime, streamed}
      assert.deepEqual(Object.keys(begin).sort(), [
        "commitLsn",
        "commitTime",
        "streamed",
        "type",
        "xid",
      ]);
      assert.equal(typeof begin.xid, "number");
      assert.match(begin.commitLsn as string, LSN_TEXT);
      assert.match(begin.commitTime as string, ISO_MICROS);
      const commitTime = Date.parse(begin.commitTime as string);
      assert.ok(commitTime >= testStarted - 1000 && commitTime <= Date.now() + 1000);
      assert.equal(begin.streamed, false);
      // commit: {type, xid, commitLsn, endLsn, events}
      assert.deepEqual(Object.keys(commit).sort(), [
        "commitLsn",
        "endLsn",
        "events",
        "type",
        "xid",
      ]);
      assert.equal(commit.xid, begin.xid);
      assert.equal(commit.commitLsn, begin.commitLsn);
      assert.equal(commit.events, changes.length);
      const commitLsn = parseLsn(begin.commitLsn as string);
      const endLsn = parseLsn(commit.endLsn as string);
      assert.ok(commitLsn < endLsn && endLsn <= walAfter, "commitLsn < endLsn <= current WAL");
      assert.ok(commitLsn > previousEnd, "transactions come in commit order");
      previousEnd = endLsn;
      for (const change of changes) {
        assert.deepEqual(
          Object.keys(change).sort(),
          ["after", "before", "op", "source", "unchanged"]
            .concat(change.op === "t" ? ["truncate"] : []).sort(),
        );
        const source = change.source as ChangeSource;
        assert.deepEqual(Object.keys(source).sort(), [
          "commitLsn",
          "commitTime",
          "lsn",
          "relid",
          "schema",
          "table",
          "xid",
        ]);
        assert.equal(source.schema, "public");
        assert.equal(source.xid, begin.xid);
        assert.equal(source.commitLsn, begin.commitLsn);
        assert.equal(source.commitTime, begin.commitTime);
        assert.match(source.lsn, LSN_TEXT);
        assert.ok(parseLsn(source.lsn) < commitLsn, "a change comes before its commit record");
        assert.equal(typeof source.relid, "number");
        assert.ok(Array.isArray(change.unchanged));
      }
    }

    const only = (i: number): ChangeLine => {
      const tx = txs[i]!;
      assert.equal(tx.changes.length, 1, `transaction ${i} has one change`);
      return tx.changes[0]! as unknown as ChangeLine;
    };
    // 1. Insert with a TOASTed value: everything in `after`.
    const insert = only(0);
    assert.equal(insert.op, "c");
    assert.equal(insert.source.table, "shapes");
    assert.equal(txs[0]!.begin.xid, xids[0]);
    assert.equal(insert.before, null);
    const after = insert.after as Record<string, unknown>;
    assert.equal(after.id, 1);
    assert.equal(after.name, "a");
    assert.equal(typeof after.big, "string");
    assert.equal((after.big as string).length, 300 * 32);
    assert.deepEqual(insert.unchanged, []);
    // 2. Update of a non-key column: no old key is sent; the TOASTed column is unchanged.
    const update = only(1);
    assert.equal(update.op, "u");
    assert.equal(update.before, null);
    assert.deepEqual(update.after, { id: 1, name: "b" });
    assert.deepEqual(update.unchanged, ["big"]);
    // 3. Update of the key: the old key comes in `before`.
    const keyUpdate = only(2);
    assert.equal(keyUpdate.op, "u");
    assert.deepEqual(keyUpdate.before, { id: 1 });
    assert.deepEqual(keyUpdate.after, { id: 2, name: "b" });
    assert.deepEqual(keyUpdate.unchanged, ["big"]);
    // 4. Delete under the default replica identity: key only.
    const del = only(3);
    assert.equal(del.op, "d");
    assert.deepEqual(del.before, { id: 2 });
    assert.equal(del.after, null);
    // 5–7. REPLICA IDENTITY FULL: whole old rows.
    assert.deepEqual(only(4).after, { id: 1, v: "x" });
    assert.equal(only(4).source.table, "full_rows");
    assert.deepEqual(only(5).before, { id: 1, v: "x" });
    assert.deepEqual(only(5).after, { id: 1, v: "y" });
    assert.equal(only(6).op, "d");
    assert.deepEqual(only(6).before, { id: 1, v: "y" });
    // 8. Two changes in one transaction, both with its xid.
    const both = txs[7]!;
    assert.equal(both.begin.xid, xids[1]);
    assert.deepEqual(both.changes.map((c) => (c.source as ChangeSource).table), [
      "shapes",
      "full_rows",
    ]);
    assert.deepEqual(both.changes.map((c) => c.after), [
      { id: 10, name: "ten", big: null },
      { id: 10, v: "z" },
    ]);
    const [lsnA, lsnB] = both.changes.map((c) => parseLsn((c.source as ChangeSource).lsn));
    assert.ok(lsnA! < lsnB!, "changes of a transaction come in WAL order");
    // 9. Truncate.
    const truncate = only(8);
    assert.equal(truncate.op, "t");
    assert.equal(truncate.source.table, "shapes");
    assert.deepEqual(truncate.truncate, { cascade: false, restartIdentity: false });

    // SIGINT: a clean exit, by itself (interrupt() kills it after 10 s, a hang).
    const { code } = await tail.interrupt();
    assert.equal(code, 0, tail.stderr);
    assert.ok(tail.stderr.includes("Stopped"), tail.stderr);
    assert.ok(tail.stderr.includes("changes=10"), tail.stderr);
  });
  // The session's temporary slot and publication are gone.
  assert.equal(await sessionLeftovers(pg), "");
  await pg.psql("DROP TABLE shapes, full_rows");
});

test("tail without --tx prints changes only", async (version) => {
  const pg = await server(version);
  await pg.psql("CREATE TABLE quiet (id int PRIMARY KEY)");
  await withTail([pg.url()], async (tail) => {
    await tail.started();
    await pg.psql("INSERT INTO quiet VALUES (1), (2)");
    await tail.until("two changes", () => tail.changes().length >= 2);
    assert.equal(tail.lines.filter((line) => "type" in line).length, 0);
    assert.deepEqual(tail.changes().map((line) => line.after), [{ id: 1 }, { id: 2 }]);
    assert.equal((await tail.interrupt()).code, 0, tail.stderr);
  });
  assert.equal(await sessionLeftovers(pg), "");
  await pg.psql("DROP TABLE quiet");
});

test("tail prints column values typed, in Spillway's JSON (exact int8, ISO times, base64 bytea)", async (version) => {
  const pg = await server(version);
  await pg.psql(`
    CREATE TABLE typed (
      id int8 PRIMARY KEY, small int2, ok bool, amount numeric(10,4), ratio float8,
      data bytea, at timestamptz, day date, doc jsonb, tags int4[], note text)
  `);
  let printed: string[] = [];
  await withTail([pg.url()], async (tail) => {
    await tail.started();
    await pg.psql(`
      INSERT INTO typed VALUES
        (9007199254740993, -2, true, 123.45, 0.5, '\\x00ff10', '2024-02-29 13:45:00.123456+00',
         '2024-02-29', '{"b": [1, null], "a": "ü"}', '{1,NULL,3}', 'x'),
        (1, NULL, false, 'NaN', '-Infinity', '', '2024-02-29 13:45:00.5+00', 'infinity', 'null',
         '{}', NULL)
    `);
    await tail.until("two changes", () => tail.changes().length >= 2);
    assert.equal((await tail.interrupt()).code, 0, tail.stderr);
    printed = tail.text;
  });
  // The printed text, so that int8 is checked exactly (JSON.parse would round it).
  const after = (line: string) =>
    line.slice(line.indexOf('"after":'), line.indexOf(',"unchanged"'));
  assert.equal(printed.length, 2);
  const [first, second] = printed;
  assert.equal(
    after(first!),
    '"after":{"id":9007199254740993,"small":-2,"ok":true,"amount":"123.4500","ratio":0.5,' +
      '"data":"AP8Q","at":"2024-02-29T13:45:00.123456Z","day":"2024-02-29",' +
      '"doc":"{\\"a\\": \\"ü\\", \\"b\\": [1, null]}","tags":[1,null,3],"note":"x"}',
  );
  assert.equal(
    after(second!),
    '"after":{"id":1,"small":null,"ok":false,"amount":"NaN","ratio":"-Infinity","data":"",' +
      '"at":"2024-02-29T13:45:00.5Z","day":"infinity","doc":"null","tags":[],"note":null}',
  );
  await pg.psql("DROP TABLE typed");
});

test("tail --slot NAME --create makes a permanent slot; a second run with --slot NAME resumes after what was confirmed", async (version) => {
  const pg = await server(version);
  await pg.psql("CREATE TABLE resumed (id int PRIMARY KEY)");
  let firstEnd = "";
  await withTail([pg.url(), "--slot", "tail_keep", "--create", "--tx"], async (tail) => {
    await tail.started();
    await pg.psql("INSERT INTO resumed VALUES (1)");
    await tail.until("row 1", () => tail.commits().length >= 1);
    firstEnd = tail.commits()[0]!.endLsn as string;
    await waitForConfirmation(pg, "tail_keep", firstEnd);
    assert.equal((await tail.interrupt()).code, 0, tail.stderr);
  });
  // The slot survives the session, permanent, and holds at least what was printed.
  const [temporary, active, confirmed] = (await pg.psql(
    "SELECT temporary, active, confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'tail_keep'",
  )).split("|");
  assert.equal(temporary, "f");
  assert.equal(active, "f");
  assert.ok(parseLsn(confirmed!) >= parseLsn(firstEnd), `confirmed ${confirmed} < ${firstEnd}`);
  assert.equal(await sessionLeftovers(pg), "", "the session publication was dropped");

  await withTail([pg.url(), "--slot", "tail_keep", "--tx"], async (tail) => {
    await tail.started();
    assert.ok(tail.stderr.includes("slot=tail_keep"), tail.stderr);
    await pg.psql("INSERT INTO resumed VALUES (2)");
    await tail.until("row 2", () => tail.commits().length >= 1);
    assert.equal((await tail.interrupt()).code, 0, tail.stderr);
    const ids = tail.changes().map((line) => (line.after as { id: number }).id);
    assert.deepEqual(ids, [2], "row 1 was confirmed in the first run and is not printed again");
  });
  assert.equal(
    await pg.psql("SELECT temporary FROM pg_replication_slots WHERE slot_name = 'tail_keep'"),
    "f",
  );
  await pg.psql("SELECT pg_drop_replication_slot('tail_keep'); DROP TABLE resumed");
});

test("tail --publication P --create without --slot creates P (FOR ALL TABLES) and keeps it", async (version) => {
  const pg = await server(version);
  await pg.psql("CREATE TABLE named_pub_rows (id int PRIMARY KEY)");
  await withTail([pg.url(), "--publication", "tail_named_pub", "--create"], async (tail) => {
    await tail.started();
    await pg.psql("INSERT INTO named_pub_rows VALUES (1)");
    await tail.until("row 1", () => tail.changes().length >= 1);
    assert.equal((await tail.interrupt()).code, 0, tail.stderr);
  });
  assert.equal(
    await pg.psql(
      "SELECT puballtables FROM pg_publication WHERE pubname = 'tail_named_pub'",
    ),
    "t",
  );
  await pg.psql("DROP PUBLICATION tail_named_pub; DROP TABLE named_pub_rows");
});

test("tail --slot NAME --publication P resumes with the changes made while it was stopped", async (version) => {
  const pg = await server(version);
  await pg.psql("CREATE TABLE downtime (id int PRIMARY KEY)");
  const args = [pg.url(), "--slot", "tail_resume", "--publication", "tail_pub", "--tx"];
  await withTail([...args, "--create"], async (tail) => {
    await tail.started();
    await pg.psql("INSERT INTO downtime VALUES (1)");
    await tail.until("row 1", () => tail.commits().length >= 1);
    const endLsn = tail.commits()[0]!.endLsn as string;
    await waitForConfirmation(pg, "tail_resume", endLsn);
    assert.equal((await tail.interrupt()).code, 0, tail.stderr);
  });
  // A named publication is the user's: it stays, like the slot.
  assert.equal(
    await pg.psql("SELECT count(*) FROM pg_publication WHERE pubname = 'tail_pub'"),
    "1",
  );

  await pg.psql("INSERT INTO downtime VALUES (2); INSERT INTO downtime VALUES (3)");
  await withTail(args, async (tail) => {
    await tail.started();
    await pg.psql("INSERT INTO downtime VALUES (4)");
    await tail.until("rows 2–4", () => tail.commits().length >= 3);
    assert.equal((await tail.interrupt()).code, 0, tail.stderr);
    const ids = tail.changes().map((line) => (line.after as { id: number }).id);
    assert.deepEqual(ids, [2, 3, 4]);
  });
  await pg.psql(
    "SELECT pg_drop_replication_slot('tail_resume'); DROP PUBLICATION tail_pub; DROP TABLE downtime",
  );
});

test(
  "tail --slot NAME resumes across downtime without --publication",
  async (version) => {
    const pg = await server(version);
    await pg.psql("CREATE TABLE gap (id int PRIMARY KEY)");
    await withTail([pg.url(), "--slot", "tail_gap", "--create", "--tx"], async (tail) => {
      await tail.started();
      await pg.psql("INSERT INTO gap VALUES (1)");
      await tail.until("row 1", () => tail.commits().length >= 1);
      assert.equal((await tail.interrupt()).code, 0, tail.stderr);
    });
    await pg.psql("INSERT INTO gap VALUES (2)");
    try {
      await withTail([pg.url(), "--slot", "tail_gap", "--tx"], async (tail) => {
        await tail.started();
        const failed = () => tail.stderr.includes("spillway tail:");
        await tail.until("row 2", () => tail.commits().length >= 1 || failed());
        const code = failed() ? await tail.exit() : (await tail.interrupt()).code;
        assert.equal(code, 0, tail.stderr);
        const ids = tail.changes().map((line) => (line.after as { id: number }).id);
        assert.deepEqual(ids, [2]);
      });
      assert.equal(await sessionLeftovers(pg), "");
    } finally {
      await pg.psql(`
        SELECT pg_drop_replication_slot('tail_gap');
        DROP TABLE gap;
      `);
      for (const pub of (await pg.psql("SELECT pubname FROM pg_publication")).split("\n")) {
        if (pub.startsWith("spillway_tail_")) await pg.psql(`DROP PUBLICATION "${pub}"`);
      }
    }
  },
);

test(
  "tail: an abort while a batch is being printed still confirms every printed transaction",
  async (version) => {
    const pg = await server(version);
    await pg.psql(`
      CREATE TABLE blocked (id int PRIMARY KEY);
      CREATE PUBLICATION blocked_pub FOR TABLE blocked;
      SELECT pg_create_logical_replication_slot('blocked_slot', 'pgoutput');
      INSERT INTO blocked VALUES (1);
    `);
    const controller = new AbortController();
    const printed: string[] = [];
    try {
      await tail({
        connection: connectOptions(pg),
        slot: "blocked_slot",
        publication: "blocked_pub",
        transactions: true,
        signal: controller.signal,
        log: () => {},
        write: async (bytes) => {
          const text = new TextDecoder().decode(bytes);
          printed.push(...text.split("\n").filter((line) => line !== ""));
          // Ctrl-C while this write (with a commit line in it) is still in flight.
          if (text.includes('"type":"commit"')) controller.abort();
          await new Promise((resolve) => setTimeout(resolve, 200));
        },
      });
      const commit = printed.find((line) => line.includes('"type":"commit"'));
      assert.ok(commit, "the transaction was printed");
      const endLsn = JSON.parse(commit).endLsn as string;
      const confirmed = await confirmedFlush(pg, "blocked_slot");
      assert.ok(confirmed >= parseLsn(endLsn), `printed ${endLsn} but the slot confirmed less`);
    } finally {
      await pg.psql(`
        SELECT pg_drop_replication_slot('blocked_slot');
        DROP PUBLICATION blocked_pub;
        DROP TABLE blocked;
      `);
    }
  },
);

Deno.test("tail: SIGINT while a silent server keeps the start-up waiting exits at once", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn); // accepted, never answered
  })().catch(() => {});
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    await withTail([`postgres://u@127.0.0.1:${port}/d?sslmode=disable`], async (tail) => {
      await tail.until("the connection attempt", () => held.length > 0);
      // Left alone it would wait for the connect timeout (30 s). The signal ends the wait: it
      // exits 0 by itself (interrupt() kills it after 10 s, which would be code 137) while the
      // server still holds the connection, saying nothing of a timeout.
      const { code } = await tail.interrupt();
      assert.equal(code, 0, tail.stderr);
      assert.ok(!tail.stderr.includes("did not finish the start-up"), tail.stderr);
      assert.equal(held.length, 1, "one connection attempt, still open");
    });
  } finally {
    listener.close();
    for (const conn of held) conn.close();
    await accepting;
  }
});

// ---------------------------------------------------------------------------------------------
// One version after the other: its tests, then its server stops.

register(testVersions("full"));
