/**
 * Crash and reconnect with `streaming: on` while a big transaction is open and streamed, and
 * keepalives keep arriving: `spillway run` (file sink) is killed with SIGKILL, started again,
 * and the new run's walsender is terminated (an in-process reconnect), all before the
 * transaction commits.
 *
 * Asserted: the slot's confirmed_flush_lsn, sampled every 100 ms from pg_replication_slots, never
 * passes the first WAL record of the open transaction before its COMMIT is even sent (while the
 * walsender has decoded past that record: the keepalives' walEnd is past it, so only the guard
 * keeps the runner from confirming it); once it commits, every row arrives exactly once and the
 * slot confirms the commit.
 *
 * The server streams every transaction bigger than `logical_decoding_work_mem = 64kB`; WAL of
 * a table outside the publication makes the walsender move on and send keepalives. About 15 s.
 *
 * The guard covers what the runner holds: a keepalive that comes before the transaction's first
 * stream block (the walsender decoded less than 64kB of it and waits for WAL) may confirm past its
 * start, as PostgreSQL's own subscriber does, and harmlessly: the slot's restart_lsn stays before
 * every open transaction and its commit lies past the confirmed position, so the server sends it
 * whole. The test keeps that window shut so that it checks the guard: the WAL writer sleeps 10 s,
 * so the 2,000-row statement's WAL is flushed (by the next commit) only once it is complete, and
 * the walsender streams it before it waits again.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { formatLsn, type Lsn, LSN_ZERO, parseLsn } from "../decoder/lsn.ts";
import type { PgConnection } from "../postgres/connection.ts";
import { PRIMARY_VERSION, startPostgres } from "../testing/embedded_postgres.ts";
import { sqlConnection } from "./_replication.ts";
import {
  confirmedReaches,
  lsnText,
  pipelineYaml,
  Poller,
  readJsonLines,
  recordEnd,
  sleep,
  slotPosition,
  SpillwayProcess,
  waitFor,
} from "./_runner_util.ts";

interface Sample {
  at: number;
  phase: "open" | "committing";
  confirmed: Lsn | null;
  /** The walsender's sent_lsn (pg_stat_replication), when one was serving the slot. */
  sent: Lsn | null;
}

Deno.test("streaming crash: with streaming on, a SIGKILL and a terminated walsender while a streamed transaction is open never let keepalives confirm past its start; after the commit every row arrives once", async () => {
  await using pg = await startPostgres({
    version: PRIMARY_VERSION,
    settings: { autovacuum: "off", logical_decoding_work_mem: "64kB", wal_writer_delay: "10s" },
  });
  await pg.psql(`
    CREATE EXTENSION pg_walinspect;
    CREATE TABLE big (id int PRIMARY KEY, pad text);
    CREATE TABLE noise (id bigserial PRIMARY KEY, pad text);
  `);
  const poller = new Poller(pg);
  const sampler = new Poller(pg);
  const noiseSql = new Poller(pg);
  const dir = await Deno.makeTempDir({ prefix: "spillway-stream-crash-" });
  const out = join(dir, "out.jsonl");
  const pipeline = join(dir, "p.yaml");
  let child: SpillwayProcess | null = null;
  let holder: PgConnection | null = null;
  let sampling = true;
  let sampleLoop: Promise<void> | null = null;
  try {
    await Deno.writeTextFile(
      pipeline,
      pipelineYaml({
        name: "stream",
        url: pg.url(),
        slot: "stream_slot",
        publication: "stream_pub",
        tables: { "public.big": "{}" },
        source: { streaming: "on", status_interval: "500ms" },
        sinks: ["file: { path: out.jsonl, fsync: true }"],
      }),
    );
    /** Writes WAL outside the publication for `ms`: the walsender moves on, with keepalives. */
    const noise = async (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        await noiseSql.rows(
          `INSERT INTO noise (pad) SELECT repeat('n', 100) FROM generate_series(1, 20)`,
        );
        await sleep(50);
      }
    };

    child = new SpillwayProcess(pipeline);
    await child.started();
    await pg.psql(`INSERT INTO big SELECT g, 'small' FROM generate_series(1, 10) g`);
    await waitFor(
      "rows 1..10 in the file",
      async () => (await readJsonLines(out)).lines.length >= 10,
    );
    const firstEnd = await recordEnd(
      poller,
      (await readJsonLines(out)).lines.at(-1)!.source.commitLsn,
    );
    await confirmedReaches(poller, "stream_slot", firstEnd, "the slot to confirm rows 1..10");

    // The big transaction: 2,000 rows of 256 bytes now (streamed), 1,000 more before COMMIT.
    const lsnBefore = parseLsn((await poller.value("SELECT pg_current_wal_lsn()"))!);
    holder = await sqlConnection(pg);
    await holder.query(
      `BEGIN; INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1001, 3000) g`,
    );
    const [xidRow] = await holder.queryObjects("SELECT txid_current() AS xid");
    const xid = xidRow!.xid!;
    let phase: Sample["phase"] = "open";
    const samples: Sample[] = [];
    sampleLoop = (async () => {
      while (sampling) {
        const [row] = await sampler.rows(
          `SELECT s.confirmed_flush_lsn, r.sent_lsn FROM pg_replication_slots s
             LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
            WHERE s.slot_name = 'stream_slot'`,
        );
        samples.push({
          at: Date.now(),
          phase,
          confirmed: row?.confirmed_flush_lsn ? parseLsn(row.confirmed_flush_lsn) : null,
          sent: row?.sent_lsn ? parseLsn(row.sent_lsn) : null,
        });
        await sleep(100);
      }
    })();
    await noise(1_500);

    // Crash: SIGKILL while the transaction is open; its streamed part was never written.
    await child.kill();
    child = null;
    await waitFor(
      "the killed run's walsender to go",
      async () => !(await slotPosition(poller, "stream_slot"))!.active,
    );
    await noise(500);
    child = new SpillwayProcess(pipeline);
    await child.started();
    await noise(1_500);

    // The new run's walsender is terminated: the runner reconnects in-process.
    await pg.psql(
      `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'stream_slot'`,
    );
    await waitFor(
      "the reconnect",
      () => child!.stderr.split("Streaming started").length - 1 >= 2,
      { detail: () => child!.stderr },
    );
    assert.match(child.stderr, /Replication connection lost; reconnecting/);
    await noise(1_500);

    await holder.query(
      `INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(3001, 4000) g`,
    );
    phase = "committing";
    await holder.query("COMMIT");
    await holder.close();
    holder = null;

    const expected = [
      ...Array.from({ length: 10 }, (_, i) => i + 1),
      ...Array.from({ length: 3000 }, (_, i) => i + 1001),
    ];
    await waitFor(
      `${expected.length} rows in the file`,
      async () => (await readJsonLines(out)).lines.length >= expected.length,
      { timeoutMs: 30_000, detail: () => child!.stderr },
    );
    const commits = await poller.rows(
      `SELECT start_lsn, end_lsn FROM pg_get_wal_records_info('${
        lsnText(lsnBefore)
      }', pg_current_wal_lsn())
        WHERE xid = '${xid}' AND resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%'`,
    );
    assert.equal(commits.length, 1, JSON.stringify(commits));
    const commitEnd = parseLsn(commits[0]!.end_lsn!);
    await confirmedReaches(poller, "stream_slot", commitEnd, "the slot to confirm the commit");
    sampling = false;
    await sampleLoop;
    assert.equal((await child.stop("SIGINT")).code, 0, child.stderr);
    child = null;

    const txStart = parseLsn(
      (await poller.value(
        `SELECT min(start_lsn) FROM pg_get_wal_records_info('${lsnText(lsnBefore)}', '${
          lsnText(commitEnd)
        }') WHERE xid = '${xid}'`,
      ))!,
    );
    const open = samples.filter((sample) => sample.phase === "open");
    const report = {
      samples: samples.length,
      openSamples: open.length,
      txStart: formatLsn(txStart),
      maxConfirmedWhileOpen: formatLsn(
        open.reduce(
          (max, s) => s.confirmed !== null && s.confirmed > max ? s.confirmed : max,
          LSN_ZERO,
        ),
      ),
      maxSentWhileOpen: formatLsn(
        open.reduce((max, s) => s.sent !== null && s.sent > max ? s.sent : max, LSN_ZERO),
      ),
      commitEnd: formatLsn(commitEnd),
    };
    console.log(`streaming crash: ${JSON.stringify(report)}`);
    assert.ok(open.length >= 15, `only ${open.length} samples while the transaction was open`);
    const past = open.filter((sample) => sample.confirmed !== null && sample.confirmed > txStart);
    assert.deepEqual(
      past.map((sample) => formatLsn(sample.confirmed!)),
      [],
      `confirmed_flush_lsn passed the open transaction's start ${formatLsn(txStart)}`,
    );
    // The walsender had decoded past the transaction's start (so its keepalives carried a
    // walEnd past it) while the transaction was open, in each of the sessions.
    assert.ok(
      open.filter((sample) => sample.sent !== null && sample.sent > txStart).length >= 5,
      JSON.stringify(report),
    );
    // It was streamed (sent before its commit), not just decoded at commit.
    const streamed = Number(
      await poller.value(
        "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'stream_slot'",
      ),
    );
    assert.ok(streamed >= 1, `stream_txns ${streamed}`);

    const { lines, torn } = await readJsonLines(out);
    assert.equal(torn, null);
    assert.deepEqual(lines.map((line) => Number(line.after?.id)), expected);
  } finally {
    sampling = false;
    await sampleLoop?.catch(() => {});
    await holder?.close().catch(() => {});
    await child?.kill();
    await noiseSql.close();
    await sampler.close();
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
});
