/**
 * Sink failures against a real PostgreSQL 17 server, with the real file sink and real
 * file-system errors:
 *
 * - a write that fails once (a rotation onto a name a directory holds) is retried, and the
 *   pipeline goes on: every row once, in order, the slot at the last commit;
 * - a sink that keeps failing (the file-size limit of `ulimit -f`: EFBIG on every attempt)
 *   stops `spillway run` after its retries with exit code 1 and an error naming the file;
 *   meanwhile /health answers 503 naming the sink's error; the slot stays at the last
 *   transaction written, and a run without the limit delivers the rest, once;
 * - an fsync that fails stops the pipeline at once (not retried), confirms nothing past the
 *   last fsync'ed commit, and the next run delivers the unconfirmed transaction again.
 *
 * One server for the file (autovacuum off, so the WAL holds only the tests' transactions, and
 * pg_walinspect to find where commit records end). About 35 s on 2 cores, most of it the
 * retries of the sink that keeps failing (8 attempts, about 23 s of backoff).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type Lsn } from "../decoder/lsn.ts";
import type { PgServer } from "../testing/embedded_postgres.ts";
import { isRetriable } from "../errors.ts";
import { MetricsRegistry } from "../ops/prometheus.ts";
import { standardMetrics } from "../ops/metrics.ts";
import { sharedServers } from "./_replication.ts";
import {
  assertAtLastWritten,
  type ChangeLine,
  confirmedReaches,
  dropItemsPipeline,
  ids,
  insertTransactions,
  itemsPipelineYaml,
  MAIN,
  Poller,
  range,
  readJsonLines,
  recordEnd,
  releasedConfirmed,
  sleep,
  SpillwayProcess,
  startRunner,
  Subprocess,
  waitFor,
} from "./_runner_util.ts";

// ---------------------------------------------------------------------------------------------
// Shared server and helpers

/** The file's server: autovacuum off, pg_walinspect to find where commit records end. */
const { server, stopAll } = sharedServers({
  settings: { autovacuum: "off" },
  setup: "CREATE EXTENSION pg_walinspect",
});

/** Every line of a file sink: its rotated files (`out-NNNNNN.jsonl`) in order, then `out.jsonl`. */
async function allLines(dir: string): Promise<ChangeLine[]> {
  const rotated: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && /^out-\d{6}\.jsonl$/.test(entry.name)) rotated.push(entry.name);
  }
  const lines: ChangeLine[] = [];
  for (const name of [...rotated.sort(), "out.jsonl"]) {
    const read = await readJsonLines(join(dir, name));
    assert.equal(read.torn, null, `${name} ends with a torn line`);
    lines.push(...read.lines);
  }
  return lines;
}

/** `count` transactions of `size` rows of about 100 bytes each, ids from `first`, by psql. */
function insertRows(
  pg: PgServer,
  table: string,
  options: { first: number; count: number; size: number },
): Promise<void> {
  return insertTransactions(pg, table, { ...options, value: "repeat('v', 100) || g" });
}

// ---------------------------------------------------------------------------------------------
// A write that fails once

Deno.test("sink failure: a file sink write that fails once (its rotation target is a directory) is retried; every row arrives once, in order; the slot confirms the last commit", async () => {
  const pg = await server();
  const poller = new Poller(pg);
  const dir = await Deno.makeTempDir({ prefix: "spillway-sink-retry-" });
  const table = "retry_items";
  try {
    await pg.psql(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    const file = join(dir, "p.yaml");
    const metrics = standardMetrics(new MetricsRegistry());
    const running = await startRunner(
      itemsPipelineYaml(pg, "retry", {
        sinks: ["file: { path: out.jsonl, rotate_bytes: 8KB, fsync: true }"],
      }),
      { file, metrics },
    );
    try {
      // The first rotation renames out.jsonl to out-000001.jsonl: a directory made after the
      // sink opened (it skips names taken when it opens) holds that name, so the rename fails
      // (EISDIR) and the write with it. The retry rotates to the next name.
      await Deno.mkdir(join(dir, "out-000001.jsonl"));
      await Deno.writeTextFile(join(dir, "out-000001.jsonl", "keep"), "in the way\n");
      // 20 transactions of 10 rows (about 4 kB each), one write each: several rotations.
      for (let tx = 0; tx < 20; tx++) {
        await insertRows(pg, table, { first: tx * 10 + 1, count: 1, size: 10 });
        await waitFor(
          `${tx * 10 + 10} rows in the files`,
          async () => (await allLines(dir)).length >= tx * 10 + 10,
          {
            detail: () => JSON.stringify(running.log.lines),
          },
        );
      }
      const lines = await allLines(dir);
      const lastEnd = await recordEnd(poller, lines.at(-1)!.source.commitLsn);
      await confirmedReaches(poller, "retry_slot", lastEnd, "the slot to confirm the last commit");
      await running.stop();

      const retries = running.log.lines.filter((line) =>
        line.message === "Sink write failed; retrying"
      );
      assert.equal(retries.length, 1, JSON.stringify(running.log.lines));
      const sinkName = `file:${join(dir, "out.jsonl")}`;
      assert.equal(metrics.sinkErrorsTotal.get({ sink: sinkName }), 1);
      assert.equal(running.log.lines.filter((line) => line.level === "error").length, 0);
      // Every row exactly once, in commit order: the failed attempt appended nothing.
      assert.deepEqual(ids(await allLines(dir)), range(1, 200));
      const rotated = [...Deno.readDirSync(dir)].filter((e) => /^out-\d+\.jsonl$/.test(e.name));
      assert.ok(rotated.length >= 3, `only ${rotated.length} rotated names`);
    } finally {
      await running.stop().catch(() => {});
    }
  } finally {
    await dropItemsPipeline(pg, poller, "retry");
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// A sink that keeps failing

/** `spillway run` under `ulimit -f` (KiB), with SIGXFSZ ignored so a write past it is EFBIG. */
function runWithFileSizeLimit(pipelineFile: string, limitKiB: number): Subprocess {
  const script = `trap '' XFSZ; ulimit -f ${limitKiB}; exec "$0" run -A "$1" run "$2"`;
  return new Subprocess("bash", ["-c", script, Deno.execPath(), MAIN, pipelineFile], {
    stdout: "null",
  });
}

Deno.test("sink failure: a file sink that keeps failing (EFBIG past ulimit -f) stops spillway run after its retries with exit 1 naming the file; /health says 503 meanwhile; the slot stays at the last transaction written; the next run delivers the rest once", async () => {
  const pg = await server();
  const poller = new Poller(pg);
  const dir = await Deno.makeTempDir({ prefix: "spillway-sink-full-" });
  const table = "full_items";
  const out = join(dir, "out.jsonl");
  let child: Subprocess | null = null;
  let next: SpillwayProcess | null = null;
  try {
    await pg.psql(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    const pipeline = join(dir, "p.yaml");
    await Deno.writeTextFile(
      pipeline,
      itemsPipelineYaml(pg, "full", {
        sinks: ["file: { path: out.jsonl, fsync: true }"],
        source: { status_interval: "1s" },
      }).replace("http: off", "http: { listen: 127.0.0.1:0 }"),
    );
    const limited = child = runWithFileSizeLimit(pipeline, 256);
    await limited.started();
    const url = /HTTP server listening url=(\S+)/.exec(limited.stderr)?.[1];
    assert.ok(url, limited.stderr);

    // Two transactions of 100 rows (about 40 kB of lines each) fit under 256 KiB; the third,
    // of 1,000 rows, does not.
    await insertRows(pg, table, { first: 1, count: 2, size: 100 });
    await waitFor(
      "200 rows in the file",
      async () => (await readJsonLines(out)).lines.length >= 200,
      { detail: async () => `${limited.stderr}\n${(await readJsonLines(out)).lines.length} lines` },
    );
    const lastEnd = await recordEnd(
      poller,
      (await readJsonLines(out)).lines.at(-1)!.source.commitLsn,
    );
    await confirmedReaches(
      poller,
      "full_slot",
      lastEnd,
      "the slot to confirm the second transaction",
    );
    await insertRows(pg, table, { first: 201, count: 1, size: 1000 });
    await insertRows(pg, table, { first: 1201, count: 2, size: 100 });

    // While the sink retries: /health fails, naming the sink's error.
    await waitFor("a retried write", () => limited.stderr.includes("Sink write failed; retrying"), {
      detail: () => limited.stderr,
    });
    const response = await fetch(`${url}/health`);
    const health = await response.json();
    assert.equal(response.status, 503, JSON.stringify(health));
    assert.equal(health.status, "failing");
    const sinkCheck = health.checks[`sink:file:${out}`];
    assert.equal(sinkCheck?.status, "failing", JSON.stringify(health));
    assert.match(sinkCheck.detail, /File too large/);

    // 8 attempts with backoff (about 23 s), then the pipeline stops.
    const status = await Promise.race([
      limited.exited,
      sleep(60_000).then(() => "hung" as const),
    ]);
    assert.notEqual(status, "hung", `spillway run did not stop:\n${limited.stderr}`);
    await limited.finished();
    assert.equal(limited.exitCode, 1, limited.stderr);
    const attempts = limited.stderr.match(/Sink write failed; retrying/g)?.length ?? 0;
    assert.equal(attempts, 7, limited.stderr);
    assert.match(
      limited.stderr,
      new RegExp(
        `spillway run: Cannot write to file sink "${
          out.replaceAll(".", "\\.")
        }": File too large.*check free space and permissions`,
      ),
    );

    // The file holds the two whole transactions, then at most a part of the third that was
    // handed on without being durable (a batch that ends inside a transaction) before the
    // write that failed, which was cut back: whole lines only.
    const written = await readJsonLines(out);
    assert.equal(written.torn, null);
    const kept = written.lines.length;
    assert.ok(kept >= 200 && kept < 1200, `${kept} lines`);
    assert.deepEqual(ids(written.lines), range(1, kept));
    await assertAtLastWritten(poller, await releasedConfirmed(poller, "full_slot"), lastEnd);

    // Without the limit, the next run delivers every transaction not confirmed, whole.
    next = new SpillwayProcess(pipeline);
    await next.started();
    await waitFor(
      "the next run's 1,200 rows in the file",
      async () => (await readJsonLines(out)).lines.length >= kept + 1200,
      { detail: () => next!.stderr },
    );
    await sleep(300);
    assert.equal((await next.stop("SIGINT")).code, 0, next.stderr);
    next = null;
    assert.deepEqual(ids((await readJsonLines(out)).lines), [
      ...range(1, kept),
      ...range(201, 1400),
    ]);
  } finally {
    await child?.kill();
    await next?.kill();
    await dropItemsPipeline(pg, poller, "full");
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// fsync failure

Deno.test("sink failure: a failed fsync stops the pipeline at once (not retried) and confirms nothing past the last fsync'ed commit; the next run delivers that transaction again", async () => {
  const pg = await server();
  const poller = new Poller(pg);
  const dir = await Deno.makeTempDir({ prefix: "spillway-sink-fsync-" });
  const table = "fsync_items";
  const out = join(dir, "out.jsonl");
  // The file sink's fsync fails while `failing` is set, as on a disk that reports EIO.
  const sync = Deno.FsFile.prototype.sync;
  let failing = false;
  let failedSyncs = 0;
  Deno.FsFile.prototype.sync = function (this: Deno.FsFile) {
    if (!failing) return sync.call(this);
    failedSyncs++;
    return Promise.reject(new Error("Input/output error (os error 5)"));
  };
  try {
    await pg.psql(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    const yaml = itemsPipelineYaml(pg, "fsync", {
      sinks: ["file: { path: out.jsonl, fsync: true }"],
    });
    const file = join(dir, "p.yaml");
    const running = await startRunner(yaml, {
      file,
      metrics: standardMetrics(new MetricsRegistry()),
    });
    let lastEnd: Lsn;
    try {
      await insertRows(pg, table, { first: 1, count: 1, size: 3 });
      await waitFor("3 rows in the file", async () => (await readJsonLines(out)).lines.length >= 3);
      lastEnd = await recordEnd(poller, (await readJsonLines(out)).lines.at(-1)!.source.commitLsn);
      await confirmedReaches(
        poller,
        "fsync_slot",
        lastEnd,
        "the slot to confirm the first transaction",
      );

      failing = true;
      await insertRows(pg, table, { first: 4, count: 1, size: 3 });
      const error = await Promise.race([
        running.ended,
        sleep(20_000).then(() => "hung" as const),
      ]);
      assert.notEqual(error, "hung", "the pipeline did not stop");
      assert.ok(error instanceof Error, `the run ended with ${String(error)}`);
      assert.match(
        error.message,
        /^File sink ".*out\.jsonl" cannot make its writes durable: fsync failed \(Input\/output error \(os error 5\)\); the pipeline stops without confirming them/,
      );
      assert.equal(isRetriable(error), false);
      assert.equal(running.runner.state().lastError, error.message);
    } finally {
      failing = false;
      await running.stop().catch(() => {});
    }
    // Not retried: one failed fsync for the write (and one more when close() tries again).
    assert.ok(failedSyncs >= 1 && failedSyncs <= 2, `${failedSyncs} failed fsyncs`);
    assert.equal(
      running.log.lines.filter((line) => line.message === "Sink write failed; retrying").length,
      0,
      JSON.stringify(running.log.lines),
    );
    const confirmed = await releasedConfirmed(poller, "fsync_slot");
    await assertAtLastWritten(poller, confirmed, lastEnd);

    // The second transaction's lines may be in the file (written, never made durable): the
    // next run delivers it again, so every row is there, and a repeated one is newer than the
    // confirmed position.
    const before = (await readJsonLines(out)).lines.length;
    const again = await startRunner(yaml, {
      file,
      metrics: standardMetrics(new MetricsRegistry()),
    });
    try {
      // The next run's own lines come after the ones already there, and end with row 6.
      await waitFor("rows 4..6 from the next run", async () => {
        const lines = (await readJsonLines(out)).lines;
        return lines.length >= before + 3 && ids(lines).at(-1) === 6;
      });
      await sleep(300);
    } finally {
      await again.stop();
    }
    const lines = (await readJsonLines(out)).lines;
    assert.deepEqual([...new Set(ids(lines))].sort((a, b) => a - b), range(1, 6));
    const seen = new Set<number>();
    for (const line of lines) {
      const id = Number(line.after?.id);
      if (seen.has(id)) {
        assert.ok(id >= 4, `row ${id} of the confirmed transaction came again`);
      }
      seen.add(id);
    }
    assert.ok(
      ids(lines).slice(0, 3).join() === "1,2,3",
      `the confirmed transaction comes first: ${ids(lines)}`,
    );
    assert.ok(confirmed >= lastEnd);
  } finally {
    Deno.FsFile.prototype.sync = sync;
    await dropItemsPipeline(pg, poller, "fsync");
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("teardown: stop the shared server", async () => {
  await stopAll();
});
