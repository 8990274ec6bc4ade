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
 * - Spillway (`bench/_drain.ts`, its own process): the same START_REPLICATION options, every
 *   XLogData decoded by `PgoutputDecoder` and assembled by `TransactionAssembler` into a null
 *   sink, timed from connect until the commit is confirmed and the copy ended.
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
import { startPostgres } from "../tests/harness/postgres.ts";
import type { DrainResult } from "./_drain.ts";
import {
  checkSlotsConfirmed,
  denoRunArgs,
  formatTable,
  lastJsonLine,
  type Load,
  loadAverage,
  loadInOneTransaction,
  median,
  missingTool,
  OUT_DIR,
  PG_RECVLOGICAL,
  progressFor,
  recvlogicalArgs,
  timeProcess,
} from "./_common.ts";

const PUBLICATION = "orders_pub";
/** `max_replication_slots` of the server; each rep needs 4 slots, plus 2 verify slots. */
const MAX_SLOTS = 32;
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

type Tool = "spillway" | "pg_recvlogical";

/** One timed drain. */
interface Run {
  mode: string;
  tool: Tool;
  rep: number;
  /** Spillway: connect → end; pg_recvlogical: process start → exit. */
  seconds: number;
  /** Process start → exit, for both. */
  processSeconds: number;
  /** User plus system CPU seconds of the process (the server's walsender not included). */
  cpuSeconds: number;
  peakRssKib: number;
  drain?: DrainResult;
}

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
  let values;
  try {
    values = parseArgs({
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
    }).values;
  } catch (error) {
    console.error(`Cannot run the decode benchmark: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const rows = Number(values.rows);
  const reps = Number(values.reps);
  if (!Number.isInteger(rows) || rows < 1) {
    console.error(`Cannot run the decode benchmark: --rows must be a positive integer`);
    return 2;
  }
  if (!Number.isInteger(reps) || reps < 1 || reps > MAX_REPS) {
    console.error(`Cannot run the decode benchmark: --reps must be within 1 and ${MAX_REPS}`);
    return 2;
  }
  const missing = await missingTool();
  if (missing !== null) {
    console.error(`Cannot run the decode benchmark: ${missing}`);
    return 2;
  }
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
  await using pg = await startPostgres({
    version: 17,
    settings: {
      shared_buffers: "256MB",
      max_wal_size: "4GB",
      checkpoint_timeout: "1h",
      autovacuum: "off",
      max_replication_slots: String(MAX_SLOTS),
      ...(options.workMem === undefined ? {} : { logical_decoding_work_mem: options.workMem }),
    },
  });
  const serverVersion = await pg.psql("SHOW server_version");
  const slotName = (mode: Mode, tool: Tool | "verify", rep: number) =>
    tool === "verify"
      ? `bench_${mode.key}_verify`
      : `bench_${mode.key}_${tool === "spillway" ? "spillway" : "recv"}_${rep}`;
  const allSlots: string[] = [];
  for (const mode of MODES) {
    for (let rep = 1; rep <= options.reps; rep++) {
      allSlots.push(slotName(mode, "spillway", rep), slotName(mode, "pg_recvlogical", rep));
    }
    allSlots.push(slotName(mode, "verify", 0));
  }
  await pg.psql(`
    CREATE TABLE orders (
      id bigint PRIMARY KEY,
      customer text NOT NULL,
      amount numeric(12,2) NOT NULL,
      status text NOT NULL,
      created_at timestamptz NOT NULL
    );
    CREATE PUBLICATION ${PUBLICATION} FOR TABLE orders;
    ${
    allSlots.map((slot) => `SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput');`)
      .join("\n")
  }
  `);
  progress(`Created ${allSlots.length} slots; loading ${options.rows} rows in one transaction`);
  const load = await loadOrders(pg.psql.bind(pg), options.rows);
  progress(
    `Loaded in ${load.seconds.toFixed(1)} s: xid ${load.xid}, end LSN ${load.endLsn}`,
  );
  await pg.psql("CHECKPOINT");

  const work = await Deno.makeTempDir({ prefix: "spillway-bench-" });
  const runs: Run[] = [];
  const verified: Results["verified"] = {};
  try {
    for (let rep = 1; rep <= options.reps; rep++) {
      const modes = rep % 2 === 1 ? MODES : [...MODES].reverse();
      for (const mode of modes) {
        // Each mode alternates which tool goes first; the two modes start with different tools.
        const tools: Tool[] = (rep + MODES.indexOf(mode)) % 2 === 1
          ? ["spillway", "pg_recvlogical"]
          : ["pg_recvlogical", "spillway"];
        for (const tool of tools) {
          const slot = slotName(mode, tool, rep);
          const run = tool === "spillway"
            ? await runSpillway({
              port: pg.port,
              slot,
              mode,
              load,
              work,
              cpuProf: options.cpuProf,
              capture: options.capture && rep === 1
                ? join(OUT_DIR, `${mode.key}.frames`)
                : undefined,
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
      }
    }
    for (const mode of MODES) {
      verified[mode.key] = await verifyRecvlogical(pg.port, slotName(mode, "verify", 0), mode, {
        load,
        work,
        runs: runs.filter((run) => run.mode === mode.key && run.tool === "spillway"),
      });
    }
    const commitEnd = runs.find((run) => run.drain !== undefined)!.drain!.commitEndLsn;
    await checkSlotsConfirmed(pg.psql.bind(pg), "bench%", commitEnd);
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

/** Inserts the rows in one transaction; returns its xid and the WAL position after its commit. */
function loadOrders(psql: (sql: string) => Promise<string>, rows: number): Promise<Load> {
  return loadInOneTransaction(
    psql,
    `INSERT INTO orders (id, customer, amount, status, created_at)
    SELECT g,
           'customer-' || (g % 50000),
           ((g * 7919) % 10000000) / 100.0,
           (ARRAY['new', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + g % 5],
           timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
      FROM generate_series(1::bigint, ${rows}) AS g;`,
  );
}

interface SpillwayRun {
  port: number;
  slot: string;
  mode: Mode;
  load: Load;
  work: string;
  cpuProf: boolean;
  capture?: string;
}

async function runSpillway(options: SpillwayRun): Promise<Run> {
  const drainArgs = [
    ...denoRunArgs(DRAIN, options.cpuProf ? `${options.slot}.cpuprofile` : undefined),
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
  const timed = await timeProcess(
    Deno.execPath(),
    drainArgs,
    join(options.work, `${options.slot}.usage`),
  );
  const drain = lastJsonLine<DrainResult>(timed, `Spillway drain of slot "${options.slot}"`);
  return {
    mode: options.mode.key,
    tool: "spillway",
    rep: 0,
    seconds: drain.seconds,
    processSeconds: timed.seconds,
    cpuSeconds: timed.cpuSeconds,
    peakRssKib: timed.peakRssKib,
    drain,
  };
}

interface RecvlogicalRun {
  port: number;
  slot: string;
  mode: Mode;
  load: Load;
  work: string;
  /** `/dev/null` for timed runs; a regular file (written without fsync) to verify. */
  output: string;
}

async function runRecvlogical(options: RecvlogicalRun): Promise<Run> {
  const pluginOptions = [
    `proto_version=${options.mode.protoVersion}`,
    `publication_names=${PUBLICATION}`,
  ];
  if (options.mode.streaming) pluginOptions.push("streaming=on");
  const args = recvlogicalArgs({
    port: options.port,
    slot: options.slot,
    pluginOptions,
    endLsn: options.load.endLsn,
    output: options.output,
  });
  const timed = await timeProcess(
    PG_RECVLOGICAL,
    args,
    join(options.work, `${options.slot}.usage`),
  );
  if (timed.code !== 0) {
    throw new Error(
      `pg_recvlogical on slot "${options.slot}" failed (exit ${timed.code}): ${timed.stderr}`,
    );
  }
  return {
    mode: options.mode.key,
    tool: "pg_recvlogical",
    rep: 0,
    seconds: timed.seconds,
    processSeconds: timed.seconds,
    cpuSeconds: timed.cpuSeconds,
    peakRssKib: timed.peakRssKib,
  };
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
  const header = [
    "mode",
    "tool",
    "rows/s",
    "seconds",
    "runs (s)",
    "process s",
    "CPU s",
    "peak RSS MB",
  ];
  const lines: string[][] = [];
  const ratios: number[] = [];
  for (const mode of MODES) {
    const rates: Record<Tool, number> = { spillway: 0, pg_recvlogical: 0 };
    for (const tool of ["spillway", "pg_recvlogical"] as const) {
      const runs = results.runs.filter((run) => run.mode === mode.key && run.tool === tool);
      const seconds = median(runs.map((run) => run.seconds));
      rates[tool] = results.rows / seconds;
      lines.push([
        mode.label,
        tool,
        Math.round(rates[tool]).toLocaleString("en-US"),
        seconds.toFixed(2),
        runs.map((run) => run.seconds.toFixed(2)).join(" "),
        median(runs.map((run) => run.processSeconds)).toFixed(2),
        median(runs.map((run) => run.cpuSeconds)).toFixed(2),
        (Math.max(...runs.map((run) => run.peakRssKib)) / 1024).toFixed(0),
      ]);
    }
    const ratio = rates.spillway / rates.pg_recvlogical;
    ratios.push(ratio);
    lines.push([mode.label, "ratio", `${ratio.toFixed(2)}x`, "", "", "", "", ""]);
  }
  console.log(
    `PostgreSQL ${results.serverVersion}, ${results.rows} rows in one transaction ` +
      `(load ${results.load.seconds.toFixed(1)} s), median of ${results.reps}; ` +
      `load average ${results.loadBefore} before, ${results.loadAfter} after`,
  );
  for (const line of formatTable(header, lines)) console.log(line);
  console.log(
    "seconds: Spillway connect -> commit confirmed; pg_recvlogical process start -> exit. " +
      "CPU s: client process user+sys (GNU time, median). Peak RSS: GNU time, max of runs.",
  );
  const summary = { date: new Date().toISOString(), ...results };
  Deno.writeTextFileSync(join(OUT_DIR, "decode.json"), JSON.stringify(summary, null, 2) + "\n");
  console.log(`decode ratio vs pg_recvlogical: ${Math.min(...ratios).toFixed(2)}`);
}
