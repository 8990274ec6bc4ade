/**
 * kill -9 at random moments: `spillway run` (file sink with fsync) runs as a subprocess while
 * a workload commits 200,000 rows in 2,000 transactions; the runner is SIGKILLed at random
 * moments (a seeded PRNG; the seed is printed) and started again, until the workload has
 * finished and a last run has caught up and stopped with SIGINT. Every run appends to the same
 * file, as a deployment does.
 *
 * Asserted: every committed row is in the file (zero lost); every line of the file is whole
 * JSON (a line a kill tore is cut off by the next run, never continued); a row written again
 * after a kill belongs to a transaction whose commit starts at or after the position the slot
 * had confirmed at that kill (so nothing confirmed is ever re-delivered). Reported: kills,
 * duplicates per kill, torn lines cut, timings.
 *
 * Environment:
 * - `SPILLWAY_SOAK=1`: 500,000 rows in 5,000 transactions and at least 30 kill/restart cycles
 *   (the default: at least 10, about 70 s on 2 cores).
 * - `SPILLWAY_CRASH_SEED=N`: replay the kill schedule of a printed seed.
 * - `SPILLWAY_PG_MATRIX=full`: run it on every PostgreSQL version, not only 17 (one test per
 *   version, named with it, each printing its seed).
 *
 * The pipeline sets `status_interval: 1s`: a run confirms nothing before its first status
 * update, and with the default of 10 s a runner killed every few seconds would never advance.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { formatLsn, type Lsn, parseLsn } from "../decoder/lsn.ts";
import { type PgVersion, startPostgres, testVersions } from "../testing/embedded_postgres.ts";
import { seededRandom } from "../testing/random.ts";
import {
  type ChangeLine,
  pipelineYaml,
  Poller,
  readJsonLines,
  sleep,
  slotPosition,
  SOAK,
  SpillwayProcess,
  waitFor,
} from "./_runner_util.ts";

const TRANSACTIONS = SOAK ? 5_000 : 2_000;
const ROWS_PER_TRANSACTION = 100;
const MIN_KILLS = SOAK ? 30 : 10;
/** Pause between the workload's transactions: the default workload lasts about a minute. */
const PAUSE_MS = SOAK ? 40 : 25;
/** A run is killed this long after it was started: from before it connects to well into it. */
const KILL_AFTER_MS: [number, number] = [50, 4_500];

interface Run {
  index: number;
  /** Whole lines in the file when the run started: its own lines come after them. */
  firstLine: number;
  startedAt: number;
  /** Milliseconds between spawn and SIGKILL; null for the last run (SIGINT). */
  killAfterMs: number | null;
  /** Whether "Streaming started" was logged before the kill. */
  streamed: boolean;
  /** The slot's confirmed_flush_lsn once the killed run's walsender had gone. */
  confirmedAfter: Lsn | null;
}

for (const version of testVersions("full")) {
  Deno.test(
    `crash: spillway run killed with SIGKILL at random moments loses no committed row (PostgreSQL ${version})`,
    () => crashRun(version),
  );
}

async function crashRun(version: PgVersion): Promise<void> {
  const seed = Number(Deno.env.get("SPILLWAY_CRASH_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  console.log(`crash test seed: ${seed} (SPILLWAY_CRASH_SEED=${seed} replays it)`);
  const random = seededRandom(seed);
  const began = Date.now();

  await using pg = await startPostgres({
    version,
    settings: { autovacuum: "off" },
  });
  const poller = new Poller(pg);
  const workload = new Poller(pg);
  const dir = await Deno.makeTempDir({ prefix: "spillway-crash-" });
  const pipeline = join(dir, "p.yaml");
  const table = "crash_items";
  const runs: Run[] = [];
  let child: SpillwayProcess | null = null;
  let work: Promise<void> | null = null;
  // Set when the test ends: the workload stops, so it outlives neither the test nor the
  // server (if a failure left it running, its error would cancel the other versions' tests).
  let abandoned = false;
  try {
    await pg.psql(`CREATE TABLE ${table} (id int PRIMARY KEY, tx int NOT NULL)`);
    await Deno.writeTextFile(
      pipeline,
      pipelineYaml({
        name: "crash",
        url: pg.url(),
        slot: "crash_slot",
        publication: "crash_pub",
        tables: { [`public.${table}`]: "{}" },
        heartbeat: "1s",
        source: { status_interval: "1s" },
        sinks: ['file: { path: "${SPILLWAY_TEST_OUT}", fsync: true }'],
        log: "{ level: info, format: text }",
      }),
    );

    let workloadDone = false;
    let workloadMs = 0;
    let lastCommitEnd: Lsn | null = null;
    const startWorkload = () =>
      (async () => {
        const started = Date.now();
        for (let tx = 0; tx < TRANSACTIONS && !abandoned; tx++) {
          const first = tx * ROWS_PER_TRANSACTION + 1;
          await workload.rows(
            `INSERT INTO ${table} SELECT g, ${tx} FROM generate_series(${first}, ${
              first + ROWS_PER_TRANSACTION - 1
            }) g`,
          );
          await sleep(PAUSE_MS);
        }
        lastCommitEnd = parseLsn((await workload.value("SELECT pg_current_wal_lsn()"))!);
        workloadMs = Date.now() - started;
        workloadDone = true;
      })();

    const file = join(dir, "out.jsonl");
    let tornCut = 0;
    for (let index = 0;; index++) {
      const { whole, torn } = await lineCount(file);
      if (torn) tornCut++;
      const kill = !workloadDone || runs.length < MIN_KILLS;
      const killAfterMs = kill
        ? Math.round(KILL_AFTER_MS[0] + random.next() * (KILL_AFTER_MS[1] - KILL_AFTER_MS[0]))
        : null;
      const run: Run = {
        index,
        firstLine: whole,
        startedAt: Date.now(),
        killAfterMs,
        streamed: false,
        confirmedAfter: null,
      };
      runs.push(run);
      child = new SpillwayProcess(pipeline, { env: { SPILLWAY_TEST_OUT: file } });
      if (index === 0) {
        // The slot must exist before the workload commits anything.
        await child.started();
        work = startWorkload();
      }
      if (killAfterMs !== null) {
        await sleep(Math.max(0, run.startedAt + killAfterMs - Date.now()));
        if (child.exitCode !== null) {
          assert.fail(`run ${index} exited with ${child.exitCode} by itself:\n${child.stderr}`);
        }
        await child.kill();
        run.streamed = child.stderr.includes("Streaming started");
        // The walsender notices the closed socket; then the slot's position is final.
        await waitFor("the killed run's walsender to go", async () => {
          const position = await slotPosition(poller, "crash_slot");
          return position !== null && !position.active;
        });
        run.confirmedAfter = (await slotPosition(poller, "crash_slot"))!.confirmed;
        child = null;
        // A kill rarely lands inside a write: make one torn line for sure, as such a kill would.
        if (index === 2 && !(await lineCount(file)).torn) {
          await Deno.writeTextFile(file, '{"topic":"crash.public.crash_items","op":"c","aft', {
            append: true,
          });
        }
        continue;
      }
      // The last run: catch up with the finished workload, then stop gracefully.
      await child.started();
      await waitFor("the last run to confirm the workload's last commit", async () => {
        const position = await slotPosition(poller, "crash_slot");
        return position?.confirmed != null && position.confirmed >= lastCommitEnd!;
      }, { timeoutMs: 120_000, detail: () => child!.stderr.slice(-2000) });
      const stopped = await child.stop("SIGINT");
      assert.equal(stopped.code, 0, child.stderr);
      child = null;
      break;
    }
    await work;

    // Read the file: whole lines only, each run's after the lines of the runs before it.
    const { lines, torn } = await readJsonLines(file);
    assert.equal(torn, null, "the last run stopped gracefully: the file ends with a whole line");
    const seen = new Map<number, number>(); // id → first run that wrote it
    let duplicates = 0;
    const perKill: number[] = [];
    const violations: string[] = [];
    for (const run of runs) {
      const next = runs[run.index + 1];
      const own = lines.slice(run.firstLine, next?.firstLine ?? lines.length) as ChangeLine[];
      let again = 0;
      const inRun = new Set<number>();
      const previous = runs[run.index - 1];
      for (const line of own) {
        const id = Number(line.after?.id);
        assert.ok(Number.isInteger(id) && id >= 1, `bad line in ${file}: ${JSON.stringify(line)}`);
        if (inRun.has(id)) violations.push(`run ${run.index} wrote id ${id} twice`);
        inRun.add(id);
        // A run starts at what the slot had confirmed when the previous run died: whatever it
        // writes (a duplicate or not) commits at or after that position.
        const floor = previous?.confirmedAfter ?? null;
        const first = seen.get(id);
        if (floor !== null && parseLsn(line.source.commitLsn) < floor) {
          violations.push(
            `run ${run.index} wrote id ${id} (commit ${line.source.commitLsn}${
              first === undefined ? "" : `, first written by run ${first}`
            }) though the slot had confirmed ${formatLsn(floor)}`,
          );
        }
        if (first === undefined) seen.set(id, run.index);
        else again++;
      }
      duplicates += again;
      if (run.index > 0) perKill.push(again);
    }
    const committed = (await poller.rows(`SELECT id FROM ${table} ORDER BY id`)).map((row) =>
      Number(row.id)
    );
    assert.equal(committed.length, TRANSACTIONS * ROWS_PER_TRANSACTION);
    const lost = committed.filter((id) => !seen.has(id));
    const kills = runs.filter((run) => run.killAfterMs !== null);
    console.log(
      `crash (PostgreSQL ${version}): seed ${seed}; ${kills.length} kills (${
        kills.filter((run) => !run.streamed).length
      } before streaming started); ${committed.length} rows committed in ${workloadMs} ms; ${lost.length} lost; ${duplicates} duplicates (per restart: ${
        perKill.join(" ")
      }); ${tornCut} torn last lines cut; ${Math.round((Date.now() - began) / 1000)} s in all`,
    );
    assert.deepEqual(lost.slice(0, 20), [], `${lost.length} committed rows lost`);
    assert.deepEqual(violations.slice(0, 20), [], `${violations.length} violations`);
    assert.ok(kills.length >= MIN_KILLS, `only ${kills.length} kills`);
    assert.ok(tornCut >= 1, "no run started on a torn line");
  } finally {
    abandoned = true;
    await work?.catch(() => {});
    await child?.kill();
    await workload.close();
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Whole lines in `path`, and whether a torn (unfinished) line follows them. */
async function lineCount(path: string): Promise<{ whole: number; torn: boolean }> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { whole: 0, torn: false };
    throw error;
  }
  let whole = 0;
  for (const byte of bytes) if (byte === 0x0a) whole++;
  return { whole, torn: bytes.byteLength > 0 && bytes[bytes.byteLength - 1] !== 0x0a };
}
