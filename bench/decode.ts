/**
 * `deno task bench decode`: decode-only throughput of Spillway against `pg_recvlogical`.
 *
 * One PostgreSQL 17 server (test harness) gets a table `orders`, a publication `orders_pub` for
 * it, and, before anything is loaded, one fresh logical slot per measurement. Then a single
 * transaction inserts `--rows` rows (default 1,000,000). Each measurement drains one slot up to
 * that commit:
 *
 * - `pg_recvlogical` (`/usr/bin/pg_recvlogical`) with `-o proto_version=…
 *   -o publication_names=orders_pub [-o streaming=on] -f /dev/null -E <end LSN>`, timed from
 *   process start to exit;
 * - Spillway (`bench/_drain.ts`, its own process, with the V8 flags of `deno task tail`): the
 *   same START_REPLICATION options, every XLogData decoded by `PgoutputDecoder` and assembled by
 *   `TransactionAssembler` into a null sink, timed from connect until the commit is confirmed
 *   and the copy ended.
 *
 * Two modes: proto_version 1, and proto_version 2 with streaming on (the walsender's default
 * `logical_decoding_work_mem` of 64MB is far below the transaction, so it is streamed; the drain
 * checks that it saw Stream Start). Each measurement is repeated `--reps` times (default 3) with
 * the order of tools and modes alternating; the table shows medians. Peak RSS comes from GNU
 * `/usr/bin/time` (`%M`) for both tools. A last, untimed `pg_recvlogical` run per mode writes
 * to a file whose size must equal the payload bytes Spillway received plus one newline per
 * message, which shows both tools were sent the same stream.
 *
 * The last line printed is `decode ratio vs pg_recvlogical: <R>`, R being the lower of the two
 * modes' ratios of Spillway rows/s to pg_recvlogical rows/s.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { DrainResult } from "./_drain.ts";
import {
  cannotRun,
  checkSlotsConfirmed,
  createSlots,
  denoRunArgs,
  insertOrders,
  invalidCount,
  type Load,
  loadAverage,
  loadInOneTransaction,
  MAX_SLOTS,
  missingTool,
  ORDERS_TABLE,
  OUT_DIR,
  parseBenchArgs,
  printRaceTable,
  progressFor,
  raceOrder,
  raceSlot,
  raceSlots,
  recvlogicalRun,
  startBenchPostgres,
  taskV8Flags,
  timeDrain,
  type TimedRun,
  timeRecvlogical,
  writeResults,
} from "./_common.ts";

const PUBLICATION = "orders_pub";
/** Each rep needs 4 of the server's {@linkcode MAX_SLOTS} slots, plus 2 verify slots. */
const MAX_REPS = Math.floor((MAX_SLOTS - 2) / 4);
const DRAIN = fileURLToPath(new URL("./_drain.ts", import.meta.url));
const progress = progressFor("decode");

/** A set of START_REPLICATION options measured as one row pair of the table. */
interface Mode {
  key: string;
  label: string;
  protoVersion: 1 | 2;
  streaming: boolean;
}

const MODES: readonly Mode[] = [
  { key: "v1", label: "proto 1", protoVersion: 1, streaming: false },
  { key: "v2s", label: "proto 2 + streaming", protoVersion: 2, streaming: true },
];

/** One timed drain. */
type Run = TimedRun<DrainResult>;

const USAGE = `deno task bench decode [options]

Options:
  --rows N      rows inserted by the single transaction (default 1000000)
  --reps N      measurements per tool and mode, 1-7; the table shows medians (default 3)
  --work-mem M  the server's logical_decoding_work_mem (default: PostgreSQL's 64MB); lower it
                (e.g. 4MB) so that a small --rows load is still streamed
  --cpu-prof    run the Spillway drains under --cpu-prof (profiles in bench/out/profiles/;
                timings are then not comparable)
  --capture     save the XLogData payloads of the first Spillway drain of each mode to
                bench/out/<mode>.frames, for bench/_decode_offline.ts`;

/** Runs the decode benchmark; returns the exit code. */
export async function decodeBench(args: string[]): Promise<number> {
  const values = parseBenchArgs("decode", USAGE, () =>
    parseArgs({
      args,
      options: {
        rows: { type: "string", default: "1000000" },
        reps: { type: "string", default: "3" },
        "cpu-prof": { type: "boolean", default: false },
        capture: { type: "boolean", default: false },
        "work-mem": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }).values);
  if (typeof values === "number") return values;
  const rows = Number(values.rows);
  const reps = Number(values.reps);
  const invalid = invalidCount("rows", rows) ?? invalidCount("reps", reps, MAX_REPS) ??
    await missingTool();
  if (invalid !== null) return cannotRun("decode", invalid);
  await Deno.mkdir(OUT_DIR, { recursive: true });
  const results = await measure({
    rows,
    reps,
    cpuProf: values["cpu-prof"],
    capture: values.capture,
    workMem: values["work-mem"],
  });
  printResults(results);
  return 0;
}

interface MeasureOptions {
  rows: number;
  reps: number;
  cpuProf: boolean;
  capture: boolean;
  /** `logical_decoding_work_mem` for the server; PostgreSQL's default when absent. */
  workMem?: string;
}

interface Results {
  /** /proc/loadavg (1, 5, 15 minutes) before and after: other work on the machine skews runs. */
  loadBefore: string;
  loadAfter: string;
  rows: number;
  reps: number;
  serverVersion: string;
  load: Load;
  runs: Run[];
  verified: Record<string, { recvlogicalBytes: number; expectedBytes: number }>;
}

async function measure(options: MeasureOptions): Promise<Results> {
  const loadBefore = await loadAverage();
  progress(`Starting PostgreSQL 17 (load average ${loadBefore})`);
  await using pg = await startBenchPostgres(
    options.workMem === undefined ? {} : { logical_decoding_work_mem: options.workMem },
  );
  const psql = pg.psql.bind(pg);
  const serverVersion = await psql("SHOW server_version");
  const allSlots = raceSlots(MODES, options.reps, ["verify"]);
  await psql(`
    ${ORDERS_TABLE}
    CREATE PUBLICATION ${PUBLICATION} FOR TABLE orders;
  `);
  await createSlots(psql, allSlots);
  progress(`Created ${allSlots.length} slots; loading ${options.rows} rows in one transaction`);
  const load = await loadInOneTransaction(
    psql,
    insertOrders(`generate_series(1::bigint, ${options.rows})`),
  );
  progress(
    `Loaded in ${load.seconds.toFixed(1)} s: xid ${load.xid}, end LSN ${load.endLsn}`,
  );
  await psql("CHECKPOINT");

  const work = await Deno.makeTempDir({ prefix: "spillway-bench-" });
  const runs: Run[] = [];
  const verified: Results["verified"] = {};
  try {
    for (const { rep, mode, tool } of raceOrder(MODES, options.reps)) {
      const slot = raceSlot(mode.key, tool, rep);
      const run = tool === "spillway"
        ? await runSpillway({
          port: pg.port,
          slot,
          mode,
          load,
          work,
          cpuProf: options.cpuProf,
          capture: options.capture && rep === 1 ? join(OUT_DIR, `${mode.key}.frames`) : undefined,
        })
        : await runRecvlogical({ port: pg.port, slot, mode, load, work, output: "/dev/null" });
      run.rep = rep;
      checkRun(run, options.rows, mode);
      runs.push(run);
      progress(
        `rep ${rep} ${mode.label} ${tool}: ${run.seconds.toFixed(2)} s, peak RSS ${
          (run.peakRssKib / 1024).toFixed(0)
        } MB`,
      );
    }
    for (const mode of MODES) {
      verified[mode.key] = await verifyRecvlogical(pg.port, raceSlot(mode.key, "verify"), mode, {
        load,
        work,
        runs: runs.filter((run) => run.mode === mode.key && run.tool === "spillway"),
      });
    }
    const commitEnd = runs.find((run) => run.drain !== undefined)!.drain!.commitEndLsn;
    await checkSlotsConfirmed(psql, "bench%", commitEnd);
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  const loadAfter = await loadAverage();
  return {
    loadBefore,
    loadAfter,
    rows: options.rows,
    reps: options.reps,
    serverVersion,
    load,
    runs,
    verified,
  };
}

/** Where one drain runs. */
interface DrainContext {
  port: number;
  slot: string;
  mode: Mode;
  load: Load;
  work: string;
}

interface SpillwayRun extends DrainContext {
  cpuProf: boolean;
  capture?: string;
}

async function runSpillway(options: SpillwayRun): Promise<Run> {
  const drainArgs = [
    // As `deno task tail` runs it: with the tasks' V8 flags.
    ...denoRunArgs(DRAIN, options.cpuProf ? `${options.slot}.cpuprofile` : undefined, {
      v8Flags: taskV8Flags(),
    }),
    "--port",
    String(options.port),
    "--slot",
    options.slot,
    "--publication",
    PUBLICATION,
    "--proto",
    String(options.mode.protoVersion),
    "--xid",
    String(options.load.xid),
    "--end-lsn",
    options.load.endLsn,
  ];
  if (options.mode.streaming) drainArgs.push("--streaming");
  if (options.capture) drainArgs.push("--capture", options.capture);
  return await timeDrain<DrainResult>(options.mode.key, options.slot, drainArgs, options.work);
}

interface RecvlogicalRun extends DrainContext {
  /** `/dev/null` for timed runs; a regular file (written without fsync) to verify. */
  output: string;
}

async function runRecvlogical(options: RecvlogicalRun): Promise<Run> {
  const pluginOptions = [
    `proto_version=${options.mode.protoVersion}`,
    `publication_names=${PUBLICATION}`,
  ];
  if (options.mode.streaming) pluginOptions.push("streaming=on");
  const timed = await timeRecvlogical({
    port: options.port,
    slot: options.slot,
    pluginOptions,
    endLsn: options.load.endLsn,
    output: options.output,
    work: options.work,
  });
  return recvlogicalRun(options.mode.key, timed);
}

/**
 * Runs pg_recvlogical once more into a file and checks that it received exactly the payload
 * Spillway did: pg_recvlogical writes each message's bytes followed by a newline.
 */
async function verifyRecvlogical(
  port: number,
  slot: string,
  mode: Mode,
  context: { load: Load; work: string; runs: Run[] },
): Promise<{ recvlogicalBytes: number; expectedBytes: number }> {
  const output = join(context.work, `${slot}.out`);
  await runRecvlogical({ port, slot, mode, load: context.load, work: context.work, output });
  const recvlogicalBytes = (await Deno.stat(output)).size;
  await Deno.remove(output);
  const sizes = new Set(
    context.runs.map((run) => run.drain!.payloadBytes + run.drain!.messages),
  );
  if (sizes.size !== 1) {
    throw new Error(
      `Spillway drains of ${mode.label} received different streams: ${[...sizes].join(", ")} bytes`,
    );
  }
  const [expectedBytes] = sizes;
  if (recvlogicalBytes !== expectedBytes) {
    throw new Error(
      `pg_recvlogical wrote ${recvlogicalBytes} bytes for ${mode.label} but Spillway received ${expectedBytes} (payload plus one newline per message): the two tools did not get the same stream`,
    );
  }
  progress(`verified ${mode.label}: pg_recvlogical and Spillway got ${expectedBytes} bytes`);
  return { recvlogicalBytes, expectedBytes: expectedBytes! };
}

function checkRun(run: Run, rows: number, mode: Mode): void {
  const drain = run.drain;
  if (drain === undefined) return;
  if (drain.rows !== rows) {
    throw new Error(`Spillway drain of ${mode.label} saw ${drain.rows} rows, expected ${rows}`);
  }
  if (mode.streaming && (drain.streamStarts === 0 || !drain.streamed)) {
    throw new Error(
      `The load was not streamed in ${mode.label}: raise --rows or lower --work-mem`,
    );
  }
  if (!mode.streaming && drain.streamStarts !== 0) {
    throw new Error(`Stream Start arrived in ${mode.label}, where streaming is off`);
  }
}

function printResults(results: Results): void {
  console.log(
    `PostgreSQL ${results.serverVersion}, ${results.rows} rows in one transaction ` +
      `(load ${results.load.seconds.toFixed(1)} s), median of ${results.reps}; ` +
      `load average ${results.loadBefore} before, ${results.loadAfter} after`,
  );
  const { lowestRatio } = printRaceTable(MODES, results.runs, results.rows);
  writeResults("decode", { date: new Date().toISOString(), ...results });
  console.log(`decode ratio vs pg_recvlogical: ${lowestRatio.toFixed(2)}`);
}
