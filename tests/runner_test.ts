/**
 * The pipeline runner against real PostgreSQL servers: end to end through the file sink,
 * durable-before-confirm, commit records counting what the sinks got, a transient sink error
 * retried during a graceful stop, backpressure with a stalled sink, heartbeats on an idle
 * database, the four TOAST policies, graceful shutdown and restart of `spillway run`, and a
 * server restart mid-workload.
 *
 * Every test runs on each version of `testVersions("full")` (PostgreSQL 17; every version with
 * `SPILLWAY_PG_MATRIX=full`, as `deno task test:matrix` sets), with the version in its name: the
 * tests of a version run one after the other on one server, which stops before the next
 * version's starts. The server has `wal_sender_timeout = 2s` (so a walsender that hears nothing
 * for 2 s is terminated: the backpressure test stalls the sink for 3× that) and autovacuum off
 * (so no transaction other than the tests' own is written to the WAL). Tests that read the WAL
 * with pg_walinspect are skipped on PostgreSQL 14, their names saying so.
 *
 * Environment:
 * - `SPILLWAY_SOAK=1`: long versions. The heartbeat test lets another database write for
 *   3 minutes at the bgwriter's own running-xacts cadence (instead of 20 s with one forced
 *   every second); the backpressure test writes 100k rows instead of 20k.
 * - `SPILLWAY_TEST_LOG=1`: echo the in-process runners' logs on stderr.
 *
 * The default run takes about 50 s on 2 cores (about as long again per version in the matrix).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { formatLsn, type Lsn, parseLsn } from "../decoder/lsn.ts";
import { readAheadBytes } from "../pipelines/runner.ts";
import { DEBEZIUM_UNAVAILABLE_VALUE } from "../pipelines/toast.ts";
import { FileSink } from "../sinks/file.ts";
import type { SinkRecord } from "../events.ts";
import { type PgServer, type PgVersion, testVersions } from "../testing/embedded_postgres.ts";
import { sharedServers } from "./_replication.ts";
import {
  assertAtLastWritten,
  commitsBetween,
  confirmedReaches,
  dropItemsPipeline,
  dropSlot,
  failure,
  ids,
  insertTransactions,
  itemsPipelineYaml,
  logSince,
  logSize,
  pipelineYaml,
  Poller,
  range,
  readJsonLines,
  recordEnd,
  recordingLogger,
  RecordingSink,
  type Running,
  sleep,
  slotPosition,
  SOAK,
  SpillwayProcess,
  startRunner,
  waitFor,
} from "./_runner_util.ts";
import { versionTests } from "./_versions.ts";

// ---------------------------------------------------------------------------------------------
// Shared server and helpers

/** pg_walinspect, which commitsBetween and recordEnd query, came with PostgreSQL 15. */
const WALINSPECT_SINCE: PgVersion = 15;

const servers = sharedServers({
  settings: { wal_sender_timeout: "2s", autovacuum: "off" },
  async setup(pg) {
    if (pg.version >= WALINSPECT_SINCE) await pg.psql(`CREATE EXTENSION pg_walinspect`);
    await pg.psql(`CREATE DATABASE other`);
  },
});
const server = servers.server;

/** The tests of the file, registered per version at its end. */
const tests = versionTests(servers);

/** A test to run on every version of `testVersions("full")`, as `${name} (PostgreSQL N)`. */
function test(name: string, fn: (version: PgVersion) => Promise<void>): void {
  tests.test(name, fn);
}

/** A test that reads the WAL with pg_walinspect: skipped on PostgreSQL 14, which lacks it. */
test.walinspect = (name: string, fn: (version: PgVersion) => Promise<void>): void => {
  const reason = `pg_walinspect came with PostgreSQL ${WALINSPECT_SINCE}`;
  tests.test(name, fn, { version: WALINSPECT_SINCE, reason });
};

/**
 * A row with every value as text (null stays null), so assertions hold whether the decoder
 * hands on text or typed values (numbers for int4, and so on).
 */
function asText(
  row: Record<string, unknown> | null | undefined,
): Record<string, string | null> | null {
  if (row === null || row === undefined) return null;
  const out: Record<string, string | null> = {};
  for (const [key, value] of Object.entries(row)) out[key] = value === null ? null : String(value);
  return out;
}

function idOf(
  line: { after: Record<string, unknown> | null; before: Record<string, unknown> | null },
) {
  return Number((line.after ?? line.before)?.id);
}

/**
 * The slot's confirmed position must be exactly `lastEnd` (the end of the last commit written).
 * The keepalive confirm of an idle stream may carry it further, over WAL that holds no
 * transaction (e.g. a running-xacts record); that is allowed, a commit in between is not.
 */
async function assertConfirmedAtLastCommit(
  poller: Poller,
  slot: string,
  lastEnd: Lsn,
): Promise<Lsn> {
  const confirmed = await confirmedReaches(poller, slot, lastEnd);
  await assertAtLastWritten(poller, confirmed, lastEnd);
  return confirmed;
}

// ---------------------------------------------------------------------------------------------
// End to end through the file sink, and durable-before-confirm

test.walinspect("runner: inserts/updates/deletes of a configured table reach the file sink as JSON lines; unconfigured tables leave nothing; confirm waits for the sinks", async (version) => {
  const pg = await server(version);
  const poller = new Poller(pg);
  const dir = await Deno.makeTempDir({ prefix: "spillway-e2e-" });
  const path = join(dir, "changes.jsonl");
  try {
    // The publication covers the unconfigured table too: the runner itself must drop it.
    await pg.psql(`
      CREATE TABLE e2e_orders (id int PRIMARY KEY, status text NOT NULL, amount numeric);
      CREATE TABLE e2e_ignored (id int PRIMARY KEY, note text);
      CREATE PUBLICATION e2e_pub FOR TABLE e2e_orders, e2e_ignored;
    `);
    const yaml = pipelineYaml({
      name: "e2e",
      url: pg.url(),
      slot: "e2e_slot",
      publication: "e2e_pub",
      tables: { "public.e2e_orders": "{ topic: shop.orders }" },
    });
    // The config's file sink writes no begin/commit lines; this one does, so their absence
    // for filtered transactions shows.
    const file = new FileSink({ path, transactions: true, fsync: true });
    const recording = new RecordingSink();
    const running = await startRunner(yaml, { sinks: [file, recording] });
    let release = () => {};
    try {
      await pg.psql(`
        INSERT INTO e2e_orders VALUES (1, 'new', 10.5), (2, 'new', 20), (3, 'new', NULL);
        UPDATE e2e_orders SET status = 'paid' WHERE id = 2;
        DELETE FROM e2e_orders WHERE id = 3;
        INSERT INTO e2e_ignored VALUES (1, 'only an unconfigured table');
        BEGIN;
        INSERT INTO e2e_orders VALUES (4, 'new', 40);
        INSERT INTO e2e_ignored VALUES (2, 'mixed');
        COMMIT;
        UPDATE e2e_ignored SET note = 'again only unconfigured' WHERE id = 1;
      `);
      await waitFor("4 transactions in the sinks", () => recording.commits().length >= 4);
      // The last transaction (an unconfigured table only) comes after; let it be read too.
      await sleep(500);

      const { lines, torn } = await readJsonLines(path);
      assert.equal(torn, null);
      const kinds = lines.map((line) => line.type ?? line.op);
      assert.deepEqual(kinds, [
        "begin",
        "c",
        "c",
        "c",
        "commit",
        "begin",
        "u",
        "commit",
        "begin",
        "d",
        "commit",
        "begin",
        "c",
        "commit",
      ]);
      const changes = lines.filter((line) => line.op !== undefined);
      for (const line of changes) {
        assert.equal(line.topic, "shop.orders");
        assert.equal(line.source.schema, "public");
        assert.equal(line.source.table, "e2e_orders");
        assert.deepEqual(asText(line.key), { id: String(idOf(line)) });
        assert.match(line.source.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
        assert.match(line.source.commitLsn, /^[0-9A-F]+\/[0-9A-F]+$/);
        assert.deepEqual(line.unchanged, []);
      }
      assert.deepEqual(asText(changes[0]!.after), { id: "1", status: "new", amount: "10.5" });
      assert.deepEqual(asText(changes[2]!.after), { id: "3", status: "new", amount: null });
      assert.equal(changes[3]!.op, "u");
      assert.deepEqual(asText(changes[3]!.after), { id: "2", status: "paid", amount: "20" });
      assert.equal(changes[4]!.op, "d");
      assert.equal(changes[4]!.after, null);
      // REPLICA IDENTITY DEFAULT: the old row is the key only.
      assert.deepEqual(asText(changes[4]!.before), { id: "3" });
      assert.deepEqual(asText(changes[5]!.after), { id: "4", status: "new", amount: "40" });
      assert.ok(!lines.some((line) => JSON.stringify(line).includes("e2e_ignored")));
      const commits = lines.filter((line) => line.type === "commit") as unknown as {
        endLsn: string;
        commitLsn: string;
      }[];

      // The last transaction (an unconfigured table only) wrote nothing, but its position is
      // confirmed too, so the slot ends at the newest commit in the WAL.
      const lastWritten = parseLsn(commits[commits.length - 1]!.endLsn);
      assert.equal(recording.commits().at(-1)?.endLsn, lastWritten);
      const newest = await commitsBetween(
        poller,
        lastWritten,
        (await slotPosition(poller, "e2e_slot"))!.current,
      );
      assert.equal(newest.length, 1, "one transaction after the last written one");
      const lastEnd = parseLsn(newest[0]!.end);
      await assertConfirmedAtLastCommit(poller, "e2e_slot", lastEnd);

      // Hold the recording sink's write open: the file has the next transaction, but the
      // slot must not confirm it until every sink's write resolved.
      release = recording.hold();
      await pg.psql(`INSERT INTO e2e_orders VALUES (5, 'held', 50)`);
      await waitFor("the held write", () => recording.writing);
      // The sinks are written side by side: the file's write of the same batch may still be
      // under way when the recording sink's has begun. The held batch may end before the
      // commit (which then waits behind it), so wait for the held change, not its commit.
      let heldStart = parseLsn("0/0");
      await waitFor("the file sink to write the held change", async () => {
        const change = (await readJsonLines(path)).lines.find((line) =>
          line.op === "c" && Number(line.after?.id) === 5
        );
        if (change !== undefined) heldStart = parseLsn(change.source.commitLsn);
        return change !== undefined;
      });
      // The server sends a keepalive asking for a reply every second (wal_sender_timeout / 2),
      // and every reply carries the position the runner confirms: sample the slot until the
      // runner's stream has sent 3 status updates since the write was held (counted, not
      // timed), and at least 5 times.
      const stream = running.runner.source!.stream!;
      const updatesBefore = stream.stats.statusUpdatesSent;
      let samples = 0;
      await waitFor("3 status updates while the write is held", async () => {
        const updates = stream.stats.statusUpdatesSent - updatesBefore;
        const confirmed = (await slotPosition(poller, "e2e_slot"))!.confirmed!;
        // At or before the start of the held commit: the server would send it again.
        assert.ok(
          confirmed <= heldStart,
          `confirmed_flush_lsn moved to ${formatLsn(confirmed)} while the write of the commit at ${
            formatLsn(heldStart)
          } was held`,
        );
        samples++;
        return samples >= 5 && updates >= 3;
      }, { timeoutMs: 30_000, intervalMs: 200 });
      assert.equal(running.runner.state().confirmedLsn <= heldStart, true);
      release();
      let heldEnd = parseLsn("0/0");
      await waitFor("the held commit in the file", async () => {
        const commit = ((await readJsonLines(path)).lines as unknown as Record<string, string>[])
          .find((line) => line.type === "commit" && parseLsn(line.commitLsn!) === heldStart);
        if (commit !== undefined) heldEnd = parseLsn(commit.endLsn!);
        return commit !== undefined;
      });
      await assertConfirmedAtLastCommit(poller, "e2e_slot", heldEnd);
      assert.equal(recording.changes().length, 7);
    } finally {
      release(); // a failure while the write was held must not leave the stop waiting for it
      await running.stop();
    }
    assert.equal(running.runner.state().running, false);
    assert.equal((await slotPosition(poller, "e2e_slot"))?.active, false);
  } finally {
    await dropSlot(poller, "e2e_slot").catch(() => {});
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
});

test("runner: a commit record's eventCount counts what reached the sinks, not changes of tables the pipeline leaves out", async (version) => {
  const pg = await server(version);
  const poller = new Poller(pg);
  try {
    await pg.psql(`
      CREATE TABLE ec_kept (id int PRIMARY KEY);
      CREATE TABLE ec_left_out (id int PRIMARY KEY);
      CREATE PUBLICATION ec_pub FOR TABLE ec_kept, ec_left_out;
    `);
    const yaml = pipelineYaml({
      name: "ec",
      url: pg.url(),
      slot: "ec_slot",
      publication: "ec_pub",
      tables: { "public.ec_kept": "{}" },
    });
    const sink = new RecordingSink();
    const running = await startRunner(yaml, { sinks: [sink] });
    try {
      await pg.psql(`
        BEGIN;
        INSERT INTO ec_kept VALUES (1), (2);
        INSERT INTO ec_left_out VALUES (1), (2), (3);
        SELECT pg_logical_emit_message(true, 'ec', 'in the transaction');
        COMMIT;
      `);
      await waitFor("the transaction in the sink", () => sink.commits().length >= 1);
      const records = sink.records;
      assert.deepEqual(records.map((record) => record.kind), [
        "begin",
        "change",
        "change",
        "message",
        "commit",
      ]);
      // Two changes and the transactional message; the 3 rows of ec_left_out never arrived.
      assert.equal(sink.commits()[0]!.eventCount, 3);
    } finally {
      await running.stop();
    }
  } finally {
    await dropSlot(poller, "ec_slot").catch(() => {});
    await pg.psql(
      `DROP TABLE IF EXISTS ec_kept, ec_left_out; DROP PUBLICATION IF EXISTS ec_pub;`,
    );
    await poller.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Graceful stop

test("runner: a graceful stop retries a sink's transient error while it drains; the run ends cleanly with the transaction written and confirmed", async (version) => {
  const pg = await server(version);
  const poller = new Poller(pg);
  try {
    await pg.psql(`CREATE TABLE gs_items (id int PRIMARY KEY)`);
    const yaml = itemsPipelineYaml(pg, "gs");
    const sink = new RecordingSink();
    const running = await startRunner(yaml, { sinks: [sink] });
    let stopping: Promise<void> | null = null;
    const release = sink.hold();
    try {
      await pg.psql(`INSERT INTO gs_items VALUES (1), (2)`);
      await waitFor("the held write", () => sink.writing);
      // The held write fails once it is let go, after the stop: a transient error to retry.
      sink.failNext(1);
      stopping = running.stop();
      await sleep(100);
      release();
      await stopping;
    } finally {
      release();
      await (stopping ?? running.stop()).catch(() => {});
    }
    assert.ok(
      running.log.lines.some((line) => line.message === "Sink write failed; retrying"),
      JSON.stringify(running.log.lines),
    );
    assert.deepEqual(sink.changes().map((record) => Number(record.event.after?.id)), [1, 2]);
    const commit = sink.commits()[0]!;
    const confirmed = (await slotPosition(poller, "gs_slot"))?.confirmed ?? null;
    assert.ok(
      confirmed !== null && confirmed >= commit.endLsn,
      `confirmed_flush_lsn ${confirmed === null ? "null" : formatLsn(confirmed)} before ${
        formatLsn(commit.endLsn)
      }`,
    );
  } finally {
    await dropItemsPipeline(pg, poller, "gs");
    await poller.close();
  }
});

test.walinspect("runner: a sink that keeps failing during a graceful stop is given up when the grace period (10 s) ends; nothing unwritten is confirmed", async (version) => {
  const pg = await server(version);
  const poller = new Poller(pg);
  try {
    await pg.psql(`CREATE TABLE gu_items (id int PRIMARY KEY)`);
    const yaml = itemsPipelineYaml(pg, "gu");
    const sink = new RecordingSink();
    // When each wait between two attempts is due to end, on this clock: the runner logs the
    // wait's delay just before it starts waiting.
    const waitsEnd: number[] = [];
    const log = recordingLogger();
    const logged = Object.assign((...args: Parameters<typeof log>) => {
      const [, message, fields] = args;
      if (message === "Sink write failed; retrying") {
        waitsEnd.push(Date.now() + Number(fields?.delayMs));
      }
      log(...args);
    }, { lines: log.lines });
    const running = await startRunner(yaml, { sinks: [sink], log: logged });
    const before = (await slotPosition(poller, "gu_slot"))!.confirmed!;
    const release = sink.hold();
    let stopping: Promise<void> | null = null;
    let elapsedMs = 0;
    let endedAt = 0;
    try {
      await pg.psql(`INSERT INTO gu_items VALUES (1)`);
      await waitFor("the held write", () => sink.writing);
      sink.failNext(1_000);
      const started = Date.now();
      stopping = running.stop();
      release();
      const error = await failure(() => stopping!);
      endedAt = Date.now();
      elapsedMs = endedAt - started;
      assert.match(error.message, /briefly unavailable/);
    } finally {
      release();
      await (stopping ?? running.stop()).catch(() => {});
    }
    // Given up when the grace period ended, counted in attempts rather than timed: the waits
    // of 0.2, 0.4, 0.8, 1.6 and 3.2 s (±20 %) bring the 6th attempt within 7.5 s of the stop,
    // and a 7th would come more than 10 s after it; not all 8 attempts (7 waits, ~23 s).
    assert.ok(sink.writes >= 5 && sink.writes <= 6, `${sink.writes} attempts`);
    assert.ok(
      log.lines.some((line) =>
        line.message === "Sink write failed; not retried further: the pipeline is stopping"
      ),
      JSON.stringify(log.lines),
    );
    // Not before the grace period ended (a lower bound, which no load can break)...
    assert.ok(elapsedMs >= 9_000, `gave up after ${elapsedMs} ms`);
    // ...and the wait in progress then was cut short: the run ended before that wait would.
    const lastWaitEnd = waitsEnd.at(-1) ?? 0;
    assert.ok(
      endedAt < lastWaitEnd,
      `the run ended ${
        endedAt - lastWaitEnd
      } ms after the last wait (of ${waitsEnd.length}) was due to end`,
    );
    assert.deepEqual(sink.changes(), []);
    const confirmed = (await slotPosition(poller, "gu_slot"))!.confirmed!;
    const commits = await commitsBetween(poller, before, confirmed);
    assert.deepEqual(commits, [], "the failed transaction was not confirmed");
  } finally {
    await dropItemsPipeline(pg, poller, "gu");
    await poller.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Backpressure

const BP_ROWS = SOAK ? 100_000 : 20_000;
const BP_PAD = 1_536; // 48 md5 strings
const BP_CAPACITY = 100;
/** The stream stops reading the socket at this many bytes of XLogData waiting (stream.ts). */
const STREAM_BUFFER_BYTES = 8 << 20;

/** JS heap plus memory outside it (ArrayBuffers such as received frames). */
function memoryInUse(): number {
  const usage = Deno.memoryUsage();
  return usage.heapUsed + usage.external;
}

/**
 * Table `name` (id, pad text with the given storage) and the YAML of a pipeline over it alone,
 * through slot `${name}_slot` and publication `${name}_pub`.
 */
async function padTable(
  pg: PgServer,
  name: string,
  storage: "PLAIN" | "EXTERNAL",
  queue: string,
  source?: Record<string, string>,
): Promise<string> {
  await pg.psql(`
    CREATE TABLE ${name} (id int PRIMARY KEY, pad text NOT NULL);
    ALTER TABLE ${name} ALTER COLUMN pad SET STORAGE ${storage};
  `);
  return pipelineYaml({
    name,
    url: pg.url(),
    slot: `${name}_slot`,
    publication: `${name}_pub`,
    tables: { [`public.${name}`]: "{}" },
    queue,
    source,
  });
}

async function dropPadTable(pg: PgServer, poller: Poller, name: string): Promise<void> {
  await dropSlot(poller, `${name}_slot`).catch(() => {});
  await pg.psql(`DROP TABLE IF EXISTS ${name}; DROP PUBLICATION IF EXISTS ${name}_pub;`);
  await poller.close();
}

async function backpressure(
  version: PgVersion,
  name: string,
  source: Record<string, string>,
): Promise<void> {
  const pg = await server(version);
  const poller = new Poller(pg);
  try {
    const yaml = await padTable(pg, name, "PLAIN", `{ capacity: ${BP_CAPACITY} }`, source);
    const sink = new RecordingSink();
    const logOffset = await logSize(pg);
    const running = await startRunner(yaml, { sinks: [sink] });
    const runner = running.runner;
    const pidSql =
      `SELECT string_agg(pid::text, ',') FROM pg_stat_replication WHERE application_name = 'spillway-${name}'`;
    const pids = new Set<string | null>([await poller.value(pidSql)]);
    let release: (() => void) | null = null;
    let stopSampling = false;
    let maxDepth = 0;
    let pausedSamples = 0;
    let socketPausedSamples = 0;
    let samples = 0;
    let maxHeap = 0;
    const heapBefore = memoryInUse();
    const sampleState = (async () => {
      while (!stopSampling) {
        const state = runner.state();
        samples++;
        maxDepth = Math.max(maxDepth, state.queueDepth);
        if (state.paused) pausedSamples++;
        if (runner.source?.stream?.paused) socketPausedSamples++;
        maxHeap = Math.max(maxHeap, memoryInUse());
        await sleep(10);
      }
    })();
    // The writer drains without yielding to timers when the sink resolves at once, so the
    // depth is also sampled inside every write (after the writer took its records).
    sink.onWrite = (records) => {
      maxDepth = Math.max(maxDepth, runner.state().queueDepth + records.length);
    };
    const samplePids = (async () => {
      while (!stopSampling) {
        pids.add(await poller.value(pidSql));
        await sleep(250);
      }
    })();
    try {
      release = sink.hold();
      // Rows in transactions of 1,000, in id order.
      const statements: string[] = [];
      for (let first = 1; first <= BP_ROWS; first += 1000) {
        statements.push(
          `INSERT INTO ${name} SELECT g, repeat(md5(g::text), ${BP_PAD / 32})
             FROM generate_series(${first}, ${Math.min(BP_ROWS, first + 999)}) g;`,
        );
      }
      const started = Date.now();
      await pg.psql(statements.join("\n"));
      const generatedMs = Date.now() - started;
      await waitFor("the sink's write to be held", () => sink.writing);
      // Stall the sink for 3 × wal_sender_timeout in all.
      const heldSince = Date.now();
      await sleep(Math.max(0, 6_500 - generatedMs));
      const heldMs = Date.now() - started;
      const pausedWhileHeld = pausedSamples;
      const socketPausedWhileHeld = socketPausedSamples;
      // Until now the sink kept nothing: the heap holds only what the runner buffers.
      const heapWhileHeld = maxHeap;
      release();
      release = null;
      await waitFor(`${BP_ROWS} rows in the sink`, () => sink.changes().length >= BP_ROWS, {
        timeoutMs: SOAK ? 300_000 : 60_000,
        detail: () => `${sink.changes().length} rows; log: ${JSON.stringify(running.log.lines)}`,
      });
      await sleep(300);
      stopSampling = true;
      await Promise.all([sampleState, samplePids]);

      // Bounded: the queue holds at most its capacity plus one batch of the source, and a
      // batch is at most what the stream buffers before it stops reading the socket.
      const rowBytes = BP_PAD + 64; // the stream counts 64 bytes of overhead per message
      const batchBound = Math.ceil((STREAM_BUFFER_BYTES + (256 << 10)) / rowBytes);
      const serverLog = await logSince(pg, logOffset);
      const report = {
        rows: BP_ROWS,
        generatedMs,
        heldMs,
        holdAfterGeneration: Date.now() - heldSince,
        samples,
        pausedSamples: pausedWhileHeld,
        socketPausedSamples: socketPausedWhileHeld,
        maxDepth,
        depthBound: BP_CAPACITY + batchBound,
        largestWrite: sink.largestWrite,
        walsenderPids: [...pids],
        memoryGrowthWhileHeldMB: Math.round((heapWhileHeld - heapBefore) / 1e5) / 10,
        reconnects: running.log.lines.filter((line) =>
          line.message.includes("reconnecting")
        ).length,
      };
      console.log(`backpressure (${name}): ${JSON.stringify(report)}`);
      assert.ok(
        !serverLog.includes("replication timeout"),
        `the server timed the walsender out:\n${serverLog}`,
      );
      assert.equal(pids.size, 1, `the walsender changed: ${[...pids].join(" → ")}`);
      assert.equal(report.reconnects, 0, JSON.stringify(running.log.lines));
      const ids = sink.changes().map((record) => Number(record.event.after?.id));
      assert.equal(ids.length, BP_ROWS, "every row exactly once");
      for (let i = 0; i < ids.length; i++) {
        if (ids[i] !== i + 1) {
          assert.fail(`row ${i + 1} out of order or duplicated: found id ${ids[i]}`);
        }
      }
      assert.ok(pausedWhileHeld > 0, "the runner paused reading while the sink was stalled");
      assert.ok(
        socketPausedWhileHeld > 0,
        "the stream stopped reading the socket (the walsender was blocked)",
      );
      assert.ok(maxDepth <= BP_CAPACITY + batchBound, `queue depth reached ${maxDepth}`);
      assert.ok(maxDepth < BP_ROWS / 2, `queue depth reached ${maxDepth} of ${BP_ROWS} rows`);
      assert.ok(sink.largestWrite <= BP_CAPACITY, `a write of ${sink.largestWrite} records`);
      // Writes that end inside a transaction confirm nothing and need not be durable; every
      // write that carries a commit must be.
      const loose = sink.writeLog.filter((write) => !write.durable);
      assert.ok(loose.length > 0, "some writes ended inside a 1,000-row transaction");
      assert.deepEqual(loose.filter((write) => write.commits > 0), []);
    } finally {
      stopSampling = true;
      release?.();
      await Promise.all([sampleState, samplePids]);
      await running.stop();
    }
  } finally {
    await dropPadTable(pg, poller, name);
  }
}

test("runner: a sink stalled for 3 × wal_sender_timeout (status_interval set to 500ms) pauses reading without a reconnect; the queue stays bounded; every row arrives once, in order", async (version) => {
  await backpressure(version, "bp_tuned", { status_interval: "500ms" });
});

test(
  "runner: with the default status_interval, a sink stalled for 3 × wal_sender_timeout (2 s) pauses reading without a reconnect",
  async (version) => {
    await backpressure(version, "bp", {});
  },
);

// ---------------------------------------------------------------------------------------------
// Memory bound in bytes: wide rows under a stalled sink

const MB_ROWS = 3_000;
const MB_ROW_BYTES = 32 << 10; // TOASTed, stored uncompressed: ~32 KiB of WAL and of pgoutput
const MB_MAX_BYTES = 2 << 20;
/** Socket reads the transport holds before it pauses the socket (`postgres/_transport.ts`). */
const TRANSPORT_BYTES = 4 << 20;

/** The most the kernel buffers on a TCP connection: our receive buffer and the server's send. */
async function kernelSocketBytes(): Promise<number> {
  const max = async (file: string) =>
    Number((await Deno.readTextFile(file)).trim().split(/\s+/)[2] ?? "0");
  return await max("/proc/sys/net/ipv4/tcp_rmem") + await max("/proc/sys/net/ipv4/tcp_wmem");
}

test("runner: under a stalled sink, wide rows are held up to queue.max_bytes (queue and writer) plus the read-ahead, whatever the capacity; the server waits with the rest", async (version) => {
  const pg = await server(version);
  const poller = new Poller(pg);
  const name = "max_bytes";
  try {
    // The capacity alone would take every row of the workload.
    const yaml = await padTable(
      pg,
      name,
      "EXTERNAL",
      `{ capacity: 10000, max_bytes: ${MB_MAX_BYTES}, high_watermark: 0.8 }`,
    );
    const sink = new RecordingSink();
    const running = await startRunner(yaml, { sinks: [sink] });
    const runner = running.runner;
    let release: (() => void) | null = sink.hold();
    let stopSampling = false;
    let maxQueueBytes = 0;
    let maxReadAhead = 0;
    sink.onWrite = () => maxQueueBytes = Math.max(maxQueueBytes, runner.state().queueBytes);
    const sampling = (async () => {
      while (!stopSampling) {
        maxQueueBytes = Math.max(maxQueueBytes, runner.state().queueBytes);
        const buffered = runner.source?.stream?.stats.bufferedBytes ?? 0;
        maxReadAhead = Math.max(maxReadAhead, buffered);
        await sleep(5);
      }
    })();
    try {
      const before = parseLsn((await poller.value("SELECT pg_current_wal_lsn()"))!);
      const statements: string[] = [];
      for (let first = 1; first <= MB_ROWS; first += 10) {
        statements.push(
          `INSERT INTO ${name} SELECT g, repeat(md5(g::text), ${MB_ROW_BYTES / 32})
             FROM generate_series(${first}, ${Math.min(MB_ROWS, first + 9)}) g;`,
        );
      }
      await pg.psql(statements.join("\n"));
      const written = parseLsn((await poller.value("SELECT pg_current_wal_lsn()"))!) - before;
      // Wait until the walsender is blocked: what it sent stops moving for a second.
      const sentSql =
        `SELECT sent_lsn FROM pg_stat_replication WHERE application_name = 'spillway-${name}'`;
      let sent = 0n;
      let steadySince = Date.now();
      await waitFor("the walsender to block on the stalled pipeline", async () => {
        const now = parseLsn((await poller.value(sentSql)) ?? "0/0");
        if (now !== sent) {
          sent = now;
          steadySince = Date.now();
        }
        return runner.state().paused && Date.now() - steadySince >= 1_000;
      }, { timeoutMs: 60_000 });
      const held = sent - before;
      const readAhead = readAheadBytes(MB_MAX_BYTES);
      const kernel = await kernelSocketBytes();
      const bound = BigInt(MB_MAX_BYTES + 2 * readAhead + TRANSPORT_BYTES + kernel);
      const report = {
        writtenMB: Number(written) / 1e6,
        sentMB: Number(held) / 1e6,
        boundMB: Number(bound) / 1e6,
        kernelMB: kernel / 1e6,
        maxQueueBytes,
        maxBytes: MB_MAX_BYTES,
        maxReadAhead,
        readAhead,
        memoryMB: Math.round(memoryInUse() / 1e5) / 10,
      };
      console.log(`max_bytes: ${JSON.stringify(report)}`);
      assert.ok(
        written > bound,
        `the workload (${written} bytes) must exceed the bound (${bound})`,
      );
      // The pipeline's own accounting: the queue and the writer's batches, which may pass the
      // high watermark (0.8 here) by one chunk of the source (max_bytes/256) and one message.
      assert.ok(maxQueueBytes > 0 && maxQueueBytes <= MB_MAX_BYTES, JSON.stringify(report));
      // The stream's read-ahead: it stops reading the socket at its bound, which one socket read
      // (64 KiB here) may pass.
      assert.ok(
        maxReadAhead > 0 && maxReadAhead <= readAhead + (256 << 10),
        JSON.stringify(report),
      );
      // The server's: what it sent is at most that, the read-ahead and the sockets' buffers.
      assert.ok(held <= bound, JSON.stringify(report));
      release();
      release = null;
      await waitFor(`${MB_ROWS} rows in the sink`, () => sink.changes().length >= MB_ROWS, {
        timeoutMs: 120_000,
        detail: () => `${sink.changes().length} rows`,
      });
      const ids = sink.changes().map((record) => Number(record.event.after?.id));
      assert.deepEqual(ids, range(1, MB_ROWS), "every row exactly once, in order");
    } finally {
      stopSampling = true;
      release?.();
      await sampling;
      await running.stop();
    }
  } finally {
    await dropPadTable(pg, poller, name);
  }
});

// ---------------------------------------------------------------------------------------------
// Heartbeats on an idle database while another database fills the WAL

/**
 * The other database's workload: steps of ~1.1 MB of heap records each, at most one every
 * 250 ms, so it lasts 20 s at least (3 minutes under SPILLWAY_SOAK). The slots are sampled every
 * 4 steps.
 */
const HB_STEPS = SOAK ? 720 : 80;
const HB_STEP_MS = 250;
const HB_SAMPLE_STEPS = 4;
/** The least time the workload takes. */
const HB_SECONDS = (HB_STEPS * HB_STEP_MS) / 1000;
/**
 * In the default run a running-xacts record is forced every 4 steps (about a second), with
 * pg_log_standby_snapshot() (PostgreSQL 16+) or else a CHECKPOINT (which logs one too):
 * restart_lsn can only move to such a record, and the bgwriter writes one every 15 s, so 20 s
 * would not show a bound. Under SPILLWAY_SOAK the bgwriter's own cadence is used over 3 minutes.
 */
const HB_FORCE_SNAPSHOT = !SOAK;
const HB_SNAPSHOT_STEPS = 4;

interface HbSample {
  t: number;
  confirmed: Lsn;
  restart: Lsn;
  current: Lsn;
}

test("runner: heartbeats keep the slot's confirmed position and restart_lsn moving while another database fills the WAL", async (version) => {
  const pg = await server(version);
  const poller = new Poller(pg);
  const writerDb = new Poller(pg, "other");
  const names = ["hb_on", "hb_off"] as const;
  const runners: Running[] = [];
  try {
    await pg.psql(`CREATE TABLE hb_idle (id int PRIMARY KEY);`);
    await writerDb.rows(`CREATE TABLE IF NOT EXISTS w (id bigserial PRIMARY KEY, pad text)`);
    for (const name of names) {
      const yaml = pipelineYaml({
        name,
        url: pg.url(),
        slot: `${name}_slot`,
        publication: `${name}_pub`,
        tables: { "public.hb_idle": "{}" },
        heartbeat: name === "hb_on" ? "1s" : "off",
      });
      runners.push(await startRunner(yaml, { sinks: [new RecordingSink()] }));
    }
    const samples: Record<string, HbSample[]> = { hb_on: [], hb_off: [] };
    const startLsn = (await slotPosition(poller, "hb_on_slot"))!.current;
    const snapshotSql = version >= 16 ? `SELECT pg_log_standby_snapshot()` : `CHECKPOINT`;
    const started = Date.now();
    let steps = 0;
    while (steps < HB_STEPS) {
      const stepStarted = Date.now();
      await writerDb.rows(
        `INSERT INTO w (pad) SELECT repeat(md5(g::text), 32) FROM generate_series(1, 1000) g`,
      );
      steps++;
      if (HB_FORCE_SNAPSHOT && steps % HB_SNAPSHOT_STEPS === 0) await writerDb.rows(snapshotSql);
      if (steps % HB_SAMPLE_STEPS === 0) {
        for (const name of names) {
          const position = (await slotPosition(poller, `${name}_slot`))!;
          samples[name]!.push({
            t: Date.now() - started,
            confirmed: position.confirmed!,
            restart: position.restart!,
            current: position.current,
          });
        }
      }
      await sleep(Math.max(0, HB_STEP_MS - (Date.now() - stepStarted)));
    }
    const endLsn = (await slotPosition(poller, "hb_on_slot"))!.current;
    const seconds = (Date.now() - started) / 1000;
    const written = Number(endLsn - startLsn);
    const MB = 1 << 20;
    const rate = written / (seconds * MB); // MB/s, for the report only
    const summary = (name: string) => {
      const list = samples[name]!;
      const retained = list.map((s) => Number(s.current - s.restart) / MB);
      const lag = list.map((s) => Number(s.current - s.confirmed) / MB);
      let advances = 0;
      for (let i = 1; i < list.length; i++) {
        if (list[i]!.confirmed > list[i - 1]!.confirmed) advances++;
      }
      return {
        samples: list.length,
        confirmedAdvances: advances,
        restartAdvances: new Set(list.map((s) => s.restart)).size - 1,
        maxRetainedMB: Math.round(Math.max(...retained) * 10) / 10,
        lastRetainedMB: Math.round(retained.at(-1)! * 10) / 10,
        maxConfirmLagMB: Math.round(Math.max(...lag) * 10) / 10,
      };
    };
    const on = summary("hb_on");
    // Measured on PostgreSQL 17: without heartbeats the slot advances just as well, because
    // the stream confirms a keepalive's walEnd while nothing it delivered is unconfirmed (the
    // walsender sends one whenever it has caught up). So the positions of the heartbeat case are
    // asserted, the other's printed for comparison, and the heartbeats themselves counted: the
    // run with them must see about one a second come back through its stream. (The run without
    // them sees the same ones: a logical message reaches every slot of its database.)
    const off = summary("hb_off");
    const heartbeats = runners.map((running) => running.runner.state().heartbeatsSeen);
    // The bound, in WAL the workload wrote rather than in time: restart_lsn may lag behind by
    // one running-xacts period (4 steps forced, or the bgwriter's 15 s), plus a heartbeat
    // period, plus the time a confirm takes to reach the server (the server asks for a reply
    // every wal_sender_timeout / 2 = 1 s), plus slack for sampling and scheduling (more for the
    // bgwriter's own cadence, which a busy machine stretches). A step takes 250 ms at least, so
    // a second holds 4 steps at most: a loaded machine, which slows the workload too, writes
    // less in those seconds, not more.
    const lagSteps = HB_FORCE_SNAPSHOT ? HB_SNAPSHOT_STEPS + 4 * (1 + 1 + 2) : 4 * (15 + 1 + 1 + 5);
    const boundMB = Math.ceil(((written / HB_STEPS) * lagSteps) / MB);
    console.log(
      `heartbeat: other database wrote ${Math.round(written / MB)} MB in ${
        Math.round(seconds)
      } s (${rate.toFixed(1)} MB/s, ${steps} steps); bound ${boundMB} MB; heartbeat on ${
        JSON.stringify(on)
      }; heartbeat off ${JSON.stringify(off)}; heartbeats seen ${heartbeats.join("/")}`,
    );
    assert.ok(heartbeats[0]! >= HB_SECONDS / 2, `${heartbeats[0]} heartbeats in ${HB_SECONDS} s`);
    assert.ok(
      on.confirmedAdvances >= on.samples * 0.8,
      `confirmed advanced ${on.confirmedAdvances}×`,
    );
    assert.ok(on.restartAdvances >= (HB_FORCE_SNAPSHOT ? HB_SECONDS / 3 : HB_SECONDS / 30));
    assert.ok(on.maxRetainedMB <= boundMB, `retained ${on.maxRetainedMB} MB > ${boundMB} MB`);
    assert.ok(written / MB >= 3 * boundMB, "the other database wrote several times the bound");
  } finally {
    for (const running of runners) await running.stop();
    for (const name of names) await dropSlot(poller, `${name}_slot`).catch(() => {});
    await pg.psql(`DROP TABLE IF EXISTS hb_idle CASCADE`);
    await writerDb.rows(`DROP TABLE IF EXISTS w`).catch(() => {});
    await writerDb.close();
    await poller.close();
  }
});

// ---------------------------------------------------------------------------------------------
// TOAST policies

/** SQL for ~100 kB of random printable text that pglz cannot compress much. */
const BIG_TEXT =
  `(SELECT string_agg(chr(33 + floor(random() * 90)::int), '') FROM generate_series(1, 100000))`;

/**
 * Row 2 is inserted before the slot exists (never seen by the runner), row 1 after; then an
 * UPDATE of another column on each. Returns the change records of the table, in order, and
 * the big value of row 1.
 */
async function toastCase(
  version: PgVersion,
  mode: "unchanged" | "omit" | "placeholder" | "last_value",
  tableOptions: string,
): Promise<
  { events: Extract<SinkRecord, { kind: "change" }>[]; doc: string }
> {
  const pg = await server(version);
  const poller = new Poller(pg);
  const table = `toast_${mode}`;
  const slot = `${table}_slot`;
  try {
    await pg.psql(`
      CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL, doc text);
      ALTER TABLE ${table} ALTER COLUMN doc SET STORAGE EXTERNAL;
      INSERT INTO ${table} VALUES (2, 0, ${BIG_TEXT});
    `);
    const sink = new RecordingSink();
    const running = await startRunner(
      pipelineYaml({
        name: table,
        url: pg.url(),
        slot,
        publication: `${table}_pub`,
        tables: { [`public.${table}`]: tableOptions },
      }),
      { sinks: [sink] },
    );
    try {
      await pg.psql(`
        INSERT INTO ${table} VALUES (1, 0, ${BIG_TEXT});
        UPDATE ${table} SET n = n + 1 WHERE id = 1;
        UPDATE ${table} SET n = n + 1 WHERE id = 2;
      `);
      await waitFor("3 changes", () => sink.changes().length >= 3);
    } finally {
      await running.stop();
    }
    const doc = await poller.value(`SELECT doc FROM ${table} WHERE id = 1`);
    const external = await poller.value(
      `SELECT pg_column_size(doc) > 90000 AND pg_column_compression(doc) IS NULL FROM ${table} WHERE id = 1`,
    );
    assert.equal(external, "t", "the value is stored out of line, uncompressed");
    const events = sink.changes();
    assert.deepEqual(events.map((e) => [e.event.op, String(e.event.after?.id)]), [
      ["c", "1"],
      ["u", "1"],
      ["u", "2"],
    ]);
    // The insert carries the whole value under every policy.
    assert.equal(events[0]!.event.after?.doc, doc);
    assert.equal((doc ?? "").length, 100_000);
    assert.deepEqual(events[0]!.event.unchanged, []);
    for (const e of events.slice(1)) assert.equal(String(e.event.after?.n), "1");
    return { events, doc: doc! };
  } finally {
    await dropSlot(poller, slot).catch(() => {});
    await pg.psql(
      `DROP TABLE IF EXISTS ${table} CASCADE; DROP PUBLICATION IF EXISTS ${table}_pub;`,
    );
    await poller.close();
  }
}

test("runner: toast unchanged (default): an unchanged TOASTed column is absent from after and listed in unchanged", async (version) => {
  const { events } = await toastCase(version, "unchanged", "{}");
  for (const e of events.slice(1)) {
    assert.ok(!("doc" in e.event.after!), `doc in after of id ${e.event.after?.id}`);
    assert.deepEqual(e.event.unchanged, ["doc"]);
  }
});

test("runner: toast omit: the column is absent from after and not listed", async (version) => {
  const { events } = await toastCase(version, "omit", "{ toast: omit }");
  for (const e of events.slice(1)) {
    assert.ok(!("doc" in e.event.after!));
    assert.deepEqual(e.event.unchanged, []);
  }
});

test("runner: toast placeholder: the column holds __debezium_unavailable_value and stays listed", async (version) => {
  const { events } = await toastCase(version, "placeholder", "{ toast: placeholder }");
  assert.equal(DEBEZIUM_UNAVAILABLE_VALUE, "__debezium_unavailable_value");
  for (const e of events.slice(1)) {
    assert.equal(e.event.after?.doc, "__debezium_unavailable_value");
    assert.deepEqual(e.event.unchanged, ["doc"]);
  }
});

test("runner: toast last_value: filled from the previous event of the same key; a key never seen stays listed as unchanged", async (version) => {
  const { events, doc } = await toastCase(version, "last_value", "{ toast: last_value }");
  const [, seen, unseen] = events;
  assert.equal(seen!.event.after?.doc, doc);
  assert.deepEqual(seen!.event.unchanged, []);
  assert.ok(!("doc" in unseen!.event.after!));
  assert.deepEqual(unseen!.event.unchanged, ["doc"]);
});

// ---------------------------------------------------------------------------------------------
// spillway run: graceful shutdown and restart

/** How many times `part` occurs in `text`. */
function occurrences(text: string, part: string): number {
  return text.split(part).length - 1;
}

test.walinspect("spillway run: SIGINT drains to the file and exits 0; the slot ends at the last written commit; a restart delivers only what was committed meanwhile", async (version) => {
  const pg = await server(version);
  const poller = new Poller(pg);
  const workload = new Poller(pg);
  const dir = await Deno.makeTempDir({ prefix: "spillway-cli-" });
  const out = join(dir, "out", "changes.jsonl");
  const pipeline = join(dir, "cli.yaml");
  const table = "cli_items";
  let child: SpillwayProcess | null = null;
  try {
    await pg.psql(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await Deno.writeTextFile(
      pipeline,
      itemsPipelineYaml(pg, "cli", {
        sinks: ["file: { path: out/changes.jsonl, fsync: true }"],
      }),
    );

    // Run 1: everything committed while it runs reaches the file.
    child = new SpillwayProcess(pipeline);
    await child.started();
    await insertTransactions(workload, table, { first: 1, count: 10, size: 100 });
    await waitFor(
      "1,000 rows in the file",
      async () => (await readJsonLines(out)).lines.length >= 1000,
      {
        detail: () => child!.stderr,
      },
    );

    // Then SIGINT in the middle of a stream of 100 transactions of 100 rows.
    const B_FIRST = 1001;
    const B_COUNT = 100;
    const streaming = insertTransactions(workload, table, {
      first: B_FIRST,
      count: B_COUNT,
      size: 100,
      pauseMs: 20,
    });
    await sleep(700);
    const stopped = await child.stop("SIGINT");
    const stderr1 = child.stderr;
    child = null;
    // It exited by itself (stop() kills it after 15 s, a hang); that it stopped reading at the
    // signal, not at the end of the grace period, shows in what it wrote (checked below: not
    // every transaction of the stream).
    assert.equal(stopped.code, 0, stderr1);
    assert.equal(stopped.signal, null, stderr1);
    await streaming;

    const afterRun1 = await readJsonLines(out);
    assert.equal(afterRun1.torn, null);
    const written1 = ids(afterRun1.lines);
    // Whole transactions, in commit order, nothing skipped: ids 1..K with K a multiple of 100.
    const k = written1.length;
    assert.ok(k >= 1000 && k < 1000 + B_COUNT * 100, `run 1 wrote ${k} rows`);
    assert.equal(k % 100, 0, "only whole transactions are written");
    assert.deepEqual(written1, range(1, k));
    // The slot ends at the end of the last commit written.
    const lastCommitStart = afterRun1.lines.at(-1)!.source.commitLsn;
    const lastEnd = await recordEnd(poller, lastCommitStart);
    await waitFor(
      "the slot to be released",
      async () => !(await slotPosition(poller, "cli_slot"))!.active,
    );
    const confirmed = (await slotPosition(poller, "cli_slot"))!.confirmed!;
    const between = await commitsBetween(poller, lastEnd, confirmed);
    assert.ok(
      confirmed === lastEnd || (confirmed > lastEnd && between.length === 0),
      `confirmed_flush_lsn ${formatLsn(confirmed)}, last written commit ends at ${
        formatLsn(lastEnd)
      }; commits between: ${JSON.stringify(between)}`,
    );
    console.log(
      `spillway run: SIGINT exit in ${stopped.elapsedMs} ms; ${k} rows written; confirmed ${
        formatLsn(confirmed)
      } = last commit end ${formatLsn(lastEnd)}`,
    );

    // While it is down: more transactions.
    await insertTransactions(workload, table, {
      first: B_FIRST + B_COUNT * 100,
      count: 5,
      size: 100,
    });
    const total = B_FIRST + B_COUNT * 100 + 500 - 1;

    // Run 2 delivers exactly the rest.
    child = new SpillwayProcess(pipeline);
    await child.started();
    await waitFor(
      `${total} rows in the file`,
      async () => (await readJsonLines(out)).lines.length >= total,
      {
        detail: () => child!.stderr,
      },
    );
    await sleep(500);
    const stopped2 = await child.stop("SIGINT");
    assert.equal(stopped2.code, 0, child.stderr);
    child = null;
    const all = await readJsonLines(out);
    assert.equal(all.torn, null);
    assert.deepEqual(ids(all.lines), range(1, total));
  } finally {
    await child?.kill();
    await dropItemsPipeline(pg, poller, "cli");
    await workload.close();
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
});

test(
  "spillway run: SIGINT while the server is down (the source is reconnecting) exits 0",
  async (version) => {
    const pg = await server(version);
    const poller = new Poller(pg);
    const dir = await Deno.makeTempDir({ prefix: "spillway-down-" });
    const pipeline = join(dir, "down.yaml");
    let child: SpillwayProcess | null = null;
    try {
      await pg.psql(`CREATE TABLE down_items (id int PRIMARY KEY)`);
      await Deno.writeTextFile(
        pipeline,
        itemsPipelineYaml(pg, "down", {
          sinks: ["file: { path: out.jsonl }"],
        }),
      );
      child = new SpillwayProcess(pipeline);
      await child.started();
      await pg.stop("fast");
      try {
        await waitFor("a reconnect attempt", () => child!.stderr.includes("Reconnect failed"));
        const attempts = occurrences(child.stderr, "Reconnect failed");
        const stopped = await child.stop("SIGINT");
        // It exited by itself (stop() kills it after 15 s), and the signal ended the waits
        // between attempts: counted, at most the attempt under way when it came, and one more
        // if the signal was slow to be handled (ignoring it, attempts go on every 0.25, 0.5, 1,
        // 2, 4, 8 s).
        assert.equal(stopped.code, 0, child.stderr);
        assert.equal(stopped.signal, null, child.stderr);
        const more = occurrences(child.stderr, "Reconnect failed") - attempts;
        assert.ok(more <= 2, `${more} reconnect attempts after SIGINT:\n${child.stderr}`);
      } finally {
        await pg.start();
      }
    } finally {
      await child?.kill();
      await dropItemsPipeline(pg, poller, "down");
      await poller.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

test(
  "spillway run: a second run on a slot in use waits for it (55006, retried and logged); SIGINT while it waits exits 0 and leaves the first run streaming",
  async (version) => {
    const pg = await server(version);
    const poller = new Poller(pg);
    const dir = await Deno.makeTempDir({ prefix: "spillway-busy-" });
    const pipeline = join(dir, "busy.yaml");
    let first: SpillwayProcess | null = null;
    let second: SpillwayProcess | null = null;
    try {
      await pg.psql(`CREATE TABLE busy_items (id int PRIMARY KEY)`);
      await Deno.writeTextFile(
        pipeline,
        itemsPipelineYaml(pg, "busy", {
          sinks: ["file: { path: out.jsonl }"],
          source: { reconnect: "{ max_attempts: 50, initial_delay: 100ms, max_delay: 300ms }" },
        }),
      );
      first = new SpillwayProcess(pipeline);
      await first.started();
      second = new SpillwayProcess(pipeline);
      await waitFor(
        "the second run to retry on the busy slot",
        () => second!.stderr.includes("Replication slot is in use by another reader; retrying"),
        { detail: () => second!.stderr },
      );
      assert.equal(second.exitCode, null, "still waiting, not failed");
      const busy = "Replication slot is in use by another reader; retrying";
      const retries = occurrences(second.stderr, busy);
      const stopped = await second.stop("SIGINT");
      // It exited by itself (stop() kills it after 15 s), and the signal ended its retries:
      // counted, a few at most while the signal is handled (ignoring it, 50 attempts 0.1–0.3 s
      // apart).
      assert.equal(stopped.code, 0, second.stderr);
      assert.equal(stopped.signal, null, second.stderr);
      const more = occurrences(second.stderr, busy) - retries;
      assert.ok(more <= 5, `${more} retries after SIGINT:\n${second.stderr}`);
      second = null;
      // The first run kept the slot and still delivers.
      await pg.psql(`INSERT INTO busy_items VALUES (1)`);
      await waitFor("the first run to write the row", async () => {
        const text = await Deno.readTextFile(join(dir, "out.jsonl")).catch(() => "");
        return text.includes('"id":1');
      });
      assert.equal(first.exitCode, null, first.stderr);
      const done = await first.stop("SIGINT");
      assert.equal(done.code, 0, first.stderr);
      first = null;
    } finally {
      await second?.kill();
      await first?.kill();
      await dropItemsPipeline(pg, poller, "busy");
      await poller.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

// ---------------------------------------------------------------------------------------------
// Server restart mid-workload

test('runner: pg.restart("fast") mid-workload: the runner reconnects and delivers every committed row', async (version) => {
  const pg = await server(version);
  const poller = new Poller(pg);
  const workload = new Poller(pg);
  const table = "rc_items";
  const slot = "rc_slot";
  const TX = 300;
  const SIZE = 50;
  try {
    await pg.psql(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
    const sink = new RecordingSink();
    const running = await startRunner(itemsPipelineYaml(pg, "rc"), { sinks: [sink] });
    const pidBefore = await poller.value(
      `SELECT pid FROM pg_stat_replication WHERE application_name = 'spillway-rc'`,
    );
    let restartedAt = -1;
    let confirmedAtRestart = 0n as Lsn;
    let pidAfter: string | null = null;
    try {
      // The workload's poller runs a statement that failed across the restart again on a new
      // connection; ON CONFLICT makes a retry of one that did commit harmless. The table is
      // the truth of what committed.
      const work = (async () => {
        for (let i = 0; i < TX; i++) {
          const from = i * SIZE + 1;
          await workload.rows(
            `INSERT INTO ${table} SELECT g FROM generate_series(${from}, ${
              from + SIZE - 1
            }) g ON CONFLICT DO NOTHING`,
          );
          await sleep(10);
        }
      })();
      await waitFor("a third of the workload", () => sink.changes().length >= (TX * SIZE) / 3);
      restartedAt = sink.changes().length;
      confirmedAtRestart = running.runner.state().confirmedLsn;
      await pg.restart("fast");
      await work;
      const committed = Number(await poller.value(`SELECT count(*) FROM ${table}`));
      assert.equal(committed, TX * SIZE);
      await waitFor(`${committed} distinct rows in the sink`, () => {
        return new Set(sink.changes().map((r) => r.event.after?.id)).size >= committed;
      }, { timeoutMs: 60_000, detail: () => JSON.stringify(running.log.lines) });
      pidAfter = await poller.value(
        `SELECT string_agg(pid::text, ',') FROM pg_stat_replication WHERE application_name = 'spillway-rc'`,
      );
      // The new session carries on confirming: the slot reaches the last commit delivered.
      const lastEnd = sink.commits().reduce((max, c) => c.endLsn > max ? c.endLsn : max, 0n);
      await waitFor(
        "the slot to confirm the last delivered commit after the reconnect",
        async () => {
          const position = await slotPosition(poller, slot);
          return (position?.confirmed ?? 0n) >= lastEnd;
        },
        { timeoutMs: 30_000 },
      );
    } finally {
      await running.stop();
    }
    const delivered = sink.changes().map((r) => Number(r.event.after?.id));
    const distinct = new Set(delivered);
    const truth = (await poller.rows(`SELECT id FROM ${table} ORDER BY id`)).map((r) =>
      Number(r.id)
    );
    const lost = truth.filter((id) => !distinct.has(id));
    const reconnects = running.log.lines.filter((l) => l.message.includes("reconnecting")).length;
    console.log(
      `reconnect: restart after ${restartedAt} rows; ${delivered.length} delivered, ${distinct.size} distinct, ${
        delivered.length - distinct.size
      } duplicates, ${lost.length} lost; ${workload.retries} workload statements retried; ${reconnects} reconnect(s); walsender ${pidBefore} → ${
        pidAfter ?? "gone"
      }`,
    );
    assert.deepEqual(lost, [], "zero loss");
    // A row delivered twice belongs to a transaction that was not confirmed when the
    // connection dropped (one cut off mid-way is re-sent whole).
    const seenAt = new Map<number, string>();
    for (const record of sink.changes()) {
      const id = Number(record.event.after?.id);
      const commitLsn = record.event.source.commitLsn;
      const earlier = seenAt.get(id);
      if (earlier !== undefined) {
        assert.equal(formatLsn(commitLsn), earlier, `id ${id} came back in another transaction`);
        assert.ok(
          commitLsn >= confirmedAtRestart,
          `id ${id} (commit ${formatLsn(commitLsn)}) was confirmed (${
            formatLsn(confirmedAtRestart)
          }) before the restart yet delivered again`,
        );
      }
      seenAt.set(id, formatLsn(commitLsn));
    }
    assert.notEqual(pidAfter, pidBefore, "a new walsender");
    assert.ok(reconnects >= 1, "the runner saw the connection drop and reconnected");
    assert.equal(sink.commits().length >= TX, true);
  } finally {
    await dropItemsPipeline(pg, poller, "rc");
    await workload.close();
    await poller.close();
  }
});

// ---------------------------------------------------------------------------------------------
// One version after the other: its tests, then its server stops.

tests.register(testVersions("full"));
