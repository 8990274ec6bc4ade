/**
 * How `spillway run` ends, as a subprocess against a real PostgreSQL 17 server:
 *
 * - SIGTERM drains what was read into the file sink, confirms it and exits 0: the slot ends at
 *   the end of the last commit written, and the next run delivers exactly the rest.
 * - A second signal during a drain that cannot finish (the stdout sink blocked on a pipe
 *   nobody reads) exits at once with 130 and confirms nothing more; everything confirmed was
 *   written.
 * - The server down for longer than `source.reconnect` allows: the reconnect attempts are
 *   logged, then the run exits 1 with an error saying the connection is lost; the slot confirms
 *   nothing beyond what was written.
 *
 * One server for the file (autovacuum off; pg_walinspect to find where commit records end).
 * About 10 s on 2 cores.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { formatLsn } from "../decoder/lsn.ts";
import { sharedServers } from "./_replication.ts";
import {
  assertAtLastWritten,
  type ChangeLine,
  commitsBetween,
  confirmedReaches,
  dropItemsPipeline,
  ids,
  insertTransactions,
  itemsPipelineYaml,
  Poller,
  range,
  readJsonLines,
  recordEnd,
  releasedConfirmed,
  sleep,
  slotPosition,
  SpillwayProcess,
  waitFor,
} from "./_runner_util.ts";

/** The file's server: autovacuum off, pg_walinspect to find where commit records end. */
const { server, stopAll } = sharedServers({
  settings: { autovacuum: "off" },
  setup: "CREATE EXTENSION pg_walinspect",
});

// ---------------------------------------------------------------------------------------------
// SIGTERM

Deno.test("signals: SIGTERM drains to the file, confirms the last commit written and exits 0; the next run delivers exactly the rest", async () => {
  const pg = await server();
  const poller = new Poller(pg);
  const workload = new Poller(pg);
  const dir = await Deno.makeTempDir({ prefix: "spillway-sigterm-" });
  const out = join(dir, "out.jsonl");
  const pipeline = join(dir, "p.yaml");
  const table = "term_items";
  let child: SpillwayProcess | null = null;
  try {
    await pg.psql(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await Deno.writeTextFile(
      pipeline,
      itemsPipelineYaml(pg, "term", {
        sinks: ["file: { path: out.jsonl, fsync: true }"],
      }),
    );
    child = new SpillwayProcess(pipeline);
    await child.started();
    // 60 transactions of 100 rows, 20 ms apart; SIGTERM in the middle of them.
    const TOTAL = 60 * 100;
    const work = insertTransactions(workload, table, {
      first: 1,
      count: 60,
      size: 100,
      pauseMs: 20,
    });
    await waitFor(
      "a few transactions in the file",
      async () => (await readJsonLines(out)).lines.length >= 500,
    );
    const stopped = await child.stop("SIGTERM");
    const stderr = child.stderr;
    child = null;
    await work;
    assert.equal(stopped.code, 0, stderr);
    assert.equal(stopped.signal, null, "it exited by itself, not killed by the signal");
    assert.match(stderr, /Stopping: draining to the sinks/);
    assert.match(stderr, /Pipeline stopped/);

    const written = await readJsonLines(out);
    assert.equal(written.torn, null);
    const k = written.lines.length;
    assert.ok(k >= 500 && k < TOTAL, `the first run wrote ${k} rows`);
    assert.equal(k % 100, 0, "only whole transactions are written");
    assert.deepEqual(ids(written.lines), range(1, k));
    const lastEnd = await recordEnd(poller, written.lines.at(-1)!.source.commitLsn);
    const confirmed = await releasedConfirmed(poller, "term_slot");
    await assertAtLastWritten(poller, confirmed, lastEnd);
    console.log(
      `SIGTERM: exit in ${stopped.elapsedMs} ms; ${k} rows written; confirmed ${
        formatLsn(confirmed)
      }, last commit end ${formatLsn(lastEnd)}`,
    );

    child = new SpillwayProcess(pipeline);
    await child.started();
    await waitFor(
      `${TOTAL} rows in the file`,
      async () => (await readJsonLines(out)).lines.length >= TOTAL,
      { detail: () => child!.stderr },
    );
    await sleep(300);
    assert.equal((await child.stop("SIGTERM")).code, 0, child.stderr);
    child = null;
    assert.deepEqual(ids((await readJsonLines(out)).lines), range(1, TOTAL));
  } finally {
    await child?.kill();
    await dropItemsPipeline(pg, poller, "term");
    await workload.close();
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// The second signal

Deno.test("signals: a second SIGTERM while the drain is blocked (stdout sink on a full pipe) exits 130 at once and confirms nothing more; everything confirmed was written", async () => {
  const pg = await server();
  const poller = new Poller(pg);
  const dir = await Deno.makeTempDir({ prefix: "spillway-second-signal-" });
  const pipeline = join(dir, "p.yaml");
  const table = "second_items";
  const SMALL_TX = 20;
  const BIG_TX = 1000;
  let child: SpillwayProcess | null = null;
  try {
    await pg.psql(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await Deno.writeTextFile(
      pipeline,
      itemsPipelineYaml(pg, "second", {
        sinks: ["stdout: { format: json }"],
        source: { status_interval: "500ms" },
      }),
    );
    // stdout is a pipe this test does not read until the process is gone: once its buffer is
    // full, the sink's write cannot finish.
    child = new SpillwayProcess(pipeline, { stdout: "unread" });
    await child.started();
    const startLsn = (await slotPosition(poller, "second_slot"))!.confirmed!;

    // Three transactions of 20 rows fit in the pipe: printed and confirmed.
    await insertTransactions(poller, table, { first: 1, count: 3, size: SMALL_TX });
    const afterSmall = (await slotPosition(poller, "second_slot"))!.current;
    await confirmedReaches(
      poller,
      "second_slot",
      afterSmall,
      "the slot to confirm the small transactions",
    );
    // Then 20 transactions of 1,000 rows: several MB of lines for a 64 kB pipe.
    await insertTransactions(pg, table, {
      first: 1001,
      count: 20,
      size: BIG_TX,
      value: "repeat('v', 100)",
    });
    await sleep(1_000);

    child.signal("SIGTERM");
    await waitFor(
      "the drain to start",
      () => child!.stderr.includes("Stopping: draining to the sinks"),
      { detail: () => child!.stderr },
    );
    // The drain cannot finish: the process is still there a while later.
    await sleep(2_000);
    assert.equal(child.exitCode, null, `the first signal ended the run:\n${child.stderr}`);
    const confirmedBefore = (await slotPosition(poller, "second_slot"))!.confirmed!;

    child.signal("SIGTERM");
    // 15 s only catches a hang: exit code 130 is the second signal's own path (it exits at once).
    await Promise.race([child.exited, sleep(15_000)]);
    assert.ok(child.exitCode !== null, `the second signal did not end the run:\n${child.stderr}`);
    assert.equal(child.exitCode, 130, child.stderr);
    assert.doesNotMatch(child.stderr, /Pipeline stopped/, "it did not finish the drain");
    await child.finished();
    // What the blocked pipe holds is all the sink ever wrote.
    const printed = await child.readStdout();
    child = null;

    const confirmed = await releasedConfirmed(poller, "second_slot");
    assert.equal(
      formatLsn(confirmed),
      formatLsn(confirmedBefore),
      "nothing was confirmed after the second signal",
    );
    // Every transaction the slot confirmed was printed whole.
    const rows = new Map<string, number>();
    for (const text of printed.split("\n")) {
      if (!text.endsWith("}")) continue; // a line the exit cut short
      const line = JSON.parse(text) as ChangeLine;
      rows.set(line.source.commitLsn, (rows.get(line.source.commitLsn) ?? 0) + 1);
    }
    const confirmedCommits = await commitsBetween(poller, startLsn, confirmed);
    assert.ok(confirmedCommits.length >= 3, `${confirmedCommits.length} commits confirmed`);
    for (const commit of confirmedCommits) {
      const count = rows.get(commit.start);
      assert.ok(
        count === SMALL_TX || count === BIG_TX,
        `transaction ${commit.xid} (commit ${commit.start}) was confirmed but ${
          count ?? 0
        } of its rows were printed`,
      );
    }
    // The backlog was not printed (nor confirmed): the drain really was blocked.
    const whole = [...rows.values()].filter((n) => n === BIG_TX).length;
    assert.ok(whole < 20, `${whole} big transactions printed whole`);
    console.log(
      `second signal: exit 130; ${printed.length} bytes printed; ${confirmedCommits.length} transactions confirmed; ${whole} big ones printed whole`,
    );
  } finally {
    await child?.kill();
    await dropItemsPipeline(pg, poller, "second");
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// The server down past the reconnect limit (last: it stops the shared server)

Deno.test("signals: the server down past source.reconnect (3 attempts) stops spillway run with exit 1 and an error saying so; the slot confirms nothing beyond what was written", async () => {
  const pg = await server();
  const poller = new Poller(pg);
  const dir = await Deno.makeTempDir({ prefix: "spillway-down-" });
  const out = join(dir, "out.jsonl");
  const pipeline = join(dir, "p.yaml");
  const table = "down_items";
  let child: SpillwayProcess | null = null;
  try {
    await pg.psql(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await Deno.writeTextFile(
      pipeline,
      itemsPipelineYaml(pg, "down", {
        sinks: ["file: { path: out.jsonl, fsync: true }"],
        source: {
          reconnect: "{ max_attempts: 3, initial_delay: 200ms, max_delay: 400ms }",
          status_interval: "500ms",
        },
      }),
    );
    child = new SpillwayProcess(pipeline);
    await child.started();
    await insertTransactions(poller, table, { first: 1, count: 3, size: 10 });
    await waitFor("30 rows in the file", async () => (await readJsonLines(out)).lines.length >= 30);
    const lastEnd = await recordEnd(
      poller,
      (await readJsonLines(out)).lines.at(-1)!.source.commitLsn,
    );
    await confirmedReaches(poller, "down_slot", lastEnd, "the slot to confirm the last commit");
    await poller.close();

    const stoppedAt = Date.now();
    await pg.stop("fast");
    try {
      const ended = await Promise.race([child.exited, sleep(30_000).then(() => null)]);
      assert.ok(ended !== null, `spillway run did not give up:\n${child.stderr}`);
      const stderr = child.stderr;
      await child.stop(); // collects the rest of its output
      child = null;
      const elapsedMs = Date.now() - stoppedAt;
      assert.equal(ended.code, 1, stderr);
      assert.match(stderr, /Replication connection lost; reconnecting/);
      // Attempts 1 and 2 fail and are retried; the third is the last.
      const retries = stderr.match(/Reconnect failed; retrying/g)?.length ?? 0;
      assert.equal(retries, 2, stderr);
      const last = stderr.trimEnd().split("\n").at(-1)!;
      assert.match(last, /^spillway run: /, stderr);
      assert.match(last, new RegExp(`127\\.0\\.0\\.1:${pg.port}`), last);
      assert.match(last, /refused|ECONNREFUSED|connect/i, last);
      assert.match(last, /Gave up reconnecting after 3 attempts .*source\.reconnect\.max_attempts/);
      console.log(`server down: exit 1 after ${elapsedMs} ms; ${last}`);
    } finally {
      await pg.start();
    }
    const after = new Poller(pg);
    try {
      const confirmed = await releasedConfirmed(after, "down_slot");
      await assertAtLastWritten(after, confirmed, lastEnd);
      assert.deepEqual(ids((await readJsonLines(out)).lines), range(1, 30));
    } finally {
      await after.close();
    }
  } finally {
    await child?.kill();
    const cleanup = new Poller(pg);
    await dropItemsPipeline(pg, cleanup, "down");
    await cleanup.close();
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("teardown: stop the shared server", async () => {
  await stopAll();
});
