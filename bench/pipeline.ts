/**
 * `deno task bench pipeline`: end-to-end benchmarks of the full pipeline (issue 5).
 *
 * One PostgreSQL 17 server (test harness) gets the `orders` table of `bench/decode.ts`, a
 * `ticks` table, and a publication `bench_pub` for both. Every measurement drains its own slot,
 * created before the load it reads. Spillway runs as its own process (`bench/_pipeline_run.ts`):
 * a `PipelineRunner` built from a pipeline file (`proto_version: auto`, which is 4 on
 * PostgreSQL 17, the default `streaming` mode unless noted, metrics and health registries as `spillway run`
 * has them), through the whole path source → assembler (typed values) → routing/TOAST → queue
 * → sink → confirm.
 *
 * 1. Throughput, one transaction of `--rows` rows (default 1,000,000; far above
 *    `logical_decoding_work_mem`, so with `streaming: on` the server streams it before its
 *    commit, and with `off` it spills it to its own disk): Spillway into a null sink and into the
 *    file sink (fsync on, a temp dir on the same disk), against `pg_recvlogical` with the same
 *    START_REPLICATION options (`-f /dev/null -F 0`, and `-f FILE` with its default 10 s fsync
 *    interval), `--reps` times each with the order alternating, and once per rep `spillway tail`
 *    itself (the CLI, its lines counted by this process; timed from spawn to its last line). Spillway is timed from
 *    `runner.run()` (which connects) until it has confirmed the load's commit and sent that
 *    position to the server; pg_recvlogical from process start until it exits at `-E`, the
 *    commit's end, having sent its position. The same four drains run once more in the other
 *    streaming mode.
 * 2. Throughput, many small transactions (`--small-txns` of 10 rows; 0 skips), the same four
 *    drains once each.
 * 3. Latency: `pgbench -R <rate>` inserts one row per transaction into `ticks` for
 *    `--latency-seconds`, while a running pipeline with a null sink records, per event, the
 *    time from the transaction's commit timestamp (server clock, same machine) to its sink
 *    write resolving.
 * 4. RSS: one transaction of `--rss-rows` rows (default 5,000,000), drained with `streaming:
 *    on` and with `streaming: off` (`--rss-streaming` for one of them), `--rss-reps` times each,
 *    VmRSS of the Spillway process sampled every 100 ms.
 *
 * The last lines printed are `pipeline ratio vs pg_recvlogical: <R>` (the lower of the
 * null-sink and file-sink ratios of workload 1 in the default streaming mode), `latency p50/p99 ms: <a>/<b>`,
 * `peak rss MB on 5M-row txn: <M>` (the highest of its drains), then issue 14's
 * `peak rss MB on 1M-row drain: <M>` (the highest of workload 1's Spillway drains in the default
 * streaming mode: both sinks and `tail`) and `cpu us per row (file sink): <C>` (their file-sink drains'
 * CPU seconds per row, the lower median).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { PgServer } from "../testing/embedded_postgres.ts";
import { DEFAULT_STREAMING } from "../config/mod.ts";
import { type LatencySummary, type PipelineRunResult, SHUTDOWN_WAIT_MS } from "./_pipeline_run.ts";
import {
  benchV8Flags,
  createSlots,
  denoRunArgs,
  formatTable,
  insertOrders,
  loadAverage,
  loadInOneTransaction,
  ORDERS_TABLE,
  OUT_DIR,
  parseParts,
  parseXidAndLsn,
  progressFor,
  recvlogicalTimes,
  RUN_COLUMNS,
  runBenchmark,
  runCells,
  spawnPiped,
  startBenchPostgres,
  type Timed,
  timeProcess,
  timeRecvlogical,
  type Tool,
  writeResults,
} from "./_common.ts";
import {
  clientBinary,
  countLines,
  LineChild,
  type RssSample,
  RssSampler,
} from "./_pipeline_util.ts";

const PUBLICATION = "bench_pub";
const STOP_PREFIX = "spillway-bench.stop";
/** A pg_recvlogical run that takes longer than this is killed. */
const RUN_TIMEOUT_S = 900;
const RUNNER = fileURLToPath(new URL("./_pipeline_run.ts", import.meta.url));
const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const SMALL_TXN_ROWS = 10;
/** The pipeline's default streaming mode: the headline's; the other is measured once. */
export const DEFAULT_MODE = DEFAULT_STREAMING === "off" ? "off" : "on";
const OTHER_MODE = DEFAULT_MODE === "on" ? "off" : "on";
const progress = progressFor("pipeline");

const USAGE = `deno task bench pipeline [options]

Options:
  --quick              a smaller run: 200,000 rows, 1 rep, 10,000 small transactions,
                       5 s of latency load, 1,000,000 rows for RSS
  --rows N             rows of the single-transaction throughput load (default 1000000)
  --reps N             throughput measurements per tool and sink, 1-5 (default 2)
  --small-txns N       transactions of ${SMALL_TXN_ROWS} rows in the small-transaction load; 0 skips
                       it (default 50000)
  --latency-seconds S  duration of the 1,000 tx/s load (default 20)
  --rate R             transactions per second of the latency load (default 1000)
  --rss-rows N         rows of the transaction the RSS is measured on (default 5000000)
  --rss-reps N         drains of that transaction per streaming mode, 1-5 (default 1)
  --rss-streaming M    on, off or both (default both)
  --only LIST          run only some parts: throughput,small,latency,rss (comma-separated)
  --v8-flags FLAGS     V8 flags for the Spillway processes (default: those of "deno task
                       run"; none for V8's own defaults)
  --cpu-prof           run the Spillway processes under --cpu-prof (bench/out/profiles/;
                       timings are then not comparable)

Probes (environment; timings and peaks of a probed run are not comparable):
  SPILLWAY_BENCH_EXTRA_YAML     more top-level lines of the pipeline files, separated by ";"
  SPILLWAY_BENCH_MEMORY=1       each Spillway process's memory peaks and mappings, on stderr
  SPILLWAY_BENCH_HEAP_PROFILE   "all" or "survivors" (of scavenges): V8's sampling heap profile
                                by function, in bench/out/heap-<slot>-<mode>.txt
  SPILLWAY_BENCH_PROBE_FROM=first-write   the heap profile and the snapshot's seconds start at
                                the first sink write
  SPILLWAY_BENCH_SNAP_S=<s>     a V8 heap snapshot <s> seconds into each Spillway run, in
                                bench/out/snap-<slot>.heapsnapshot
  SPILLWAY_BENCH_STDOUT=1       each Spillway process's whole stdout (--v8-flags=--trace-gc,
                                say) in bench/out/stdout-<slot>.txt`;

type Part = "throughput" | "small" | "latency" | "rss";
const PARTS: readonly Part[] = ["throughput", "small", "latency", "rss"];

interface Options {
  rows: number;
  reps: number;
  smallTxns: number;
  latencySeconds: number;
  rate: number;
  rssRows: number;
  rssReps: number;
  rssModes: ("on" | "off")[];
  parts: Set<Part>;
  cpuProf: boolean;
  v8Flags: string | undefined;
  quick: boolean;
}

/** Runs the pipeline benchmark; returns the exit code. */
export function pipelineBench(args: string[]): Promise<number> {
  return runBenchmark({
    name: "pipeline",
    usage: USAGE,
    args,
    parse: parseOptions,
    run: async (options) => printResults(await measure(options)),
  });
}

/** The options (as `parseArgs` takes them) that `bench/transforms.ts` has too. */
export const SHARED_OPTIONS = {
  quick: { type: "boolean", default: false },
  rows: { type: "string" },
  reps: { type: "string" },
  "latency-seconds": { type: "string" },
  rate: { type: "string", default: "1000" },
  only: { type: "string" },
  "cpu-prof": { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      ...SHARED_OPTIONS,
      "small-txns": { type: "string" },
      "rss-rows": { type: "string" },
      "rss-reps": { type: "string" },
      "rss-streaming": { type: "string", default: "both" },
      "v8-flags": { type: "string" },
    },
    strict: true,
  });
  const quick = values.quick;
  const integer = (
    name: string,
    text: string | undefined,
    fallback: number,
    min: number,
    max = Infinity,
  ) => {
    const value = Number(text ?? fallback);
    if (!Number.isInteger(value) || value < min) {
      throw new Error(`--${name} must be an integer of at least ${min}`);
    }
    if (value > max) throw new Error(`--${name} must be at most ${max}`);
    return value;
  };
  const parts = new Set(parseParts(values.only, PARTS));
  const reps = integer("reps", values.reps, quick ? 1 : 2, 1, 5);
  const rssReps = integer("rss-reps", values["rss-reps"], 1, 1, 5);
  const rssStreaming = values["rss-streaming"];
  if (rssStreaming !== "on" && rssStreaming !== "off" && rssStreaming !== "both") {
    throw new Error(`--rss-streaming must be on, off or both, not "${rssStreaming}"`);
  }
  return {
    rows: integer("rows", values.rows, quick ? 200_000 : 1_000_000, 1),
    reps,
    smallTxns: integer("small-txns", values["small-txns"], quick ? 10_000 : 50_000, 0),
    latencySeconds: integer("latency-seconds", values["latency-seconds"], quick ? 5 : 20, 1),
    rate: integer("rate", values.rate, 1000, 1),
    rssRows: integer("rss-rows", values["rss-rows"], quick ? 1_000_000 : 5_000_000, 1),
    rssReps,
    rssModes: rssStreaming === "both" ? ["on", "off"] : [rssStreaming],
    parts,
    cpuProf: values["cpu-prof"],
    v8Flags: benchV8Flags(values["v8-flags"]),
    quick,
  };
}

// ---------------------------------------------------------------------------------------
// Measurements

/** `tail`: not a pipeline but `spillway tail`, its lines counted and dropped. */
export type SinkKind = "null" | "file" | "tail";

/**
 * A transform module that a Spillway run binds to every table (`transform:` of `public.*`);
 * `name` labels it in slot names and output (lower case letters, digits and `_`).
 */
export interface BenchTransform {
  name: string;
  /** The file, absolute; the run's pipeline file is `bench.yaml` in the same folder. */
  path: string;
  /** `transforms.timeout` of the run, e.g. `10s`; the pipeline's default when absent. */
  timeout?: string;
}

/** What names a drain: its workload, slot, tool, sink, streaming mode, rep and transform. */
interface DrainId {
  workload: string;
  slot: string;
  tool: Tool;
  sink: SinkKind;
  streaming: "on" | "off";
  rep: number;
  /** Spillway only: the transform of every table; none when absent. */
  transform?: BenchTransform;
}

/** One drain of one slot up to a load's last commit. */
export interface Drain extends DrainId {
  rows: number;
  /**
   * Spillway: `run()` called → the load's commit confirmed and that position sent to the
   * server; pg_recvlogical: spawn → exit (it sends its position before exiting).
   */
  seconds: number;
  /** Spawn → exit, both tools. */
  processSeconds: number;
  cpuSeconds: number;
  /** Spillway: VmRSS sampled every 100 ms; pg_recvlogical: GNU time's maximum RSS. */
  peakRssKib: number;
  spillway?: PipelineRunResult;
  /** JSON lines in the file sink's output (rows plus logical messages). */
  fileLines?: number;
  fileBytes?: number;
  rssSamples?: RssSample[];
}

/** A load's last transaction, as the drains must find it. */
export interface Load {
  rows: number;
  transactions: number;
  xid: number;
  endLsn: string;
  seconds: number;
}

/** What {@linkcode measureLatency} measured. */
export interface LatencyResult {
  /** The transform the pipeline ran, if any. */
  transform?: BenchTransform;
  seconds: number;
  rate: number;
  pgbench: { tps: number; latencyAvgMs: number; transactions: number };
  events: number;
  warmupEvents: number;
  commitToSink: LatencySummary;
  insertToSink: LatencySummary;
  commitToSinkAll: LatencySummary;
  peakRssKib: number;
  cpuSeconds: number;
}

interface Results {
  date: string;
  options: Omit<Options, "parts"> & { parts: Part[] };
  loadBefore: string;
  loadAfter: string;
  serverVersion: string;
  recvlogical: string;
  pgbench: string;
  deno: string;
  loads: Record<string, Load>;
  drains: Drain[];
  latency: LatencyResult | null;
  seconds: number;
}

/** The server, work folder and drains of a benchmark run; see {@linkcode startContext}. */
export interface Context {
  pg: PgServer;
  /** `pg.psql`. */
  psql: (sql: string) => Promise<string>;
  work: string;
  recvlogical: string;
  cpuProf: boolean;
  /** V8 flags for the Spillway processes. */
  v8Flags?: string;
  drains: Drain[];
  /** Next `orders.id` to insert. */
  nextId: number;
  /** Progress lines on stderr, `[bench <name>] …`. */
  progress: (message: string) => void;
}

/**
 * Starts the server with the `orders` and `ticks` tables and the publication `bench_pub`, and
 * makes a work folder; disposing of the context removes the folder and stops the server.
 */
export async function startContext(
  options: {
    recvlogical: string;
    cpuProf: boolean;
    v8Flags?: string;
    progress: (message: string) => void;
  },
): Promise<Context & AsyncDisposable> {
  const pg = await startBenchPostgres({ max_wal_size: "16GB" });
  let work: string;
  try {
    await pg.psql(`
      ${ORDERS_TABLE}
      CREATE TABLE ticks (id bigserial PRIMARY KEY, sent_us bigint NOT NULL, note text NOT NULL);
      CREATE PUBLICATION ${PUBLICATION} FOR TABLE orders, ticks;
    `);
    work = await Deno.makeTempDir({ dir: "/tmp", prefix: "spillway-bench-pipeline-" });
  } catch (error) {
    await pg[Symbol.asyncDispose]();
    throw error;
  }
  return {
    pg,
    psql: pg.psql.bind(pg),
    work,
    recvlogical: options.recvlogical,
    cpuProf: options.cpuProf,
    v8Flags: options.v8Flags,
    drains: [],
    nextId: 1,
    progress: options.progress,
    async [Symbol.asyncDispose]() {
      await Deno.remove(work, { recursive: true }).catch(() => {});
      await pg[Symbol.asyncDispose]();
    },
  };
}

async function measure(options: Options): Promise<Results> {
  const benchStarted = performance.now();
  const loadBefore = await loadAverage();
  const recvlogical = await clientBinary("pg_recvlogical");
  const pgbench = await clientBinary("pgbench");
  progress(`Starting PostgreSQL 17 (load average ${loadBefore})`);
  await using context = await startContext({
    recvlogical: recvlogical.path,
    cpuProf: options.cpuProf,
    v8Flags: options.v8Flags,
    progress,
  });
  const serverVersion = await context.psql("SHOW server_version");
  const loads: Record<string, Load> = {};
  let latency: LatencyResult | null = null;
  if (options.parts.has("throughput")) {
    loads.single = await throughputSingle(context, options);
  }
  if (options.parts.has("small") && options.smallTxns > 0) {
    loads.small = await throughputSmall(context, options);
  }
  if (options.parts.has("latency")) {
    latency = await measureLatency(context, options, pgbench.path);
  }
  if (options.parts.has("rss")) {
    loads.rss = await measureRss(context, options);
  }
  const loadAfter = await loadAverage();
  const { parts, ...rest } = options;
  return {
    date: new Date().toISOString(),
    options: { ...rest, parts: [...parts] },
    loadBefore,
    loadAfter,
    serverVersion,
    recvlogical: recvlogical.version,
    pgbench: pgbench.version,
    deno: `${Deno.version.deno} (V8 ${Deno.version.v8})`,
    loads,
    drains: context.drains,
    latency,
    seconds: (performance.now() - benchStarted) / 1000,
  };
}

/**
 * Workload 1: one big transaction; per rep, four drains in the pipeline's default streaming
 * mode (order alternating), then the same four once in the other mode.
 */
async function throughputSingle(context: Context, options: Options): Promise<Load> {
  const plan: { tool: Tool; sink: SinkKind; streaming: "on" | "off"; rep: number }[] = [];
  const drains = (streaming: "on" | "off", rep: number): typeof plan => [
    { tool: "spillway", sink: "null", streaming, rep },
    { tool: "pg_recvlogical", sink: "null", streaming, rep },
    { tool: "spillway", sink: "file", streaming, rep },
    { tool: "pg_recvlogical", sink: "file", streaming, rep },
  ];
  for (let rep = 1; rep <= options.reps; rep++) {
    const round = drains(DEFAULT_MODE, rep);
    plan.push(...(rep % 2 === 1 ? round : round.reverse()));
    // `spillway tail`, whose streaming default is the pipeline's: issue 14's memory target.
    plan.push({ tool: "spillway", sink: "tail", streaming: DEFAULT_MODE, rep });
  }
  plan.push(...drains(OTHER_MODE, 1));
  const steps = plan.map((step) => {
    const tool = step.tool === "spillway" ? "sp" : "recv";
    return { ...step, slot: `single_${tool}_${step.sink}_${step.streaming}_${step.rep}` };
  });
  return await runWorkload(
    context,
    "single",
    steps,
    `${options.rows} rows in one transaction`,
    () => loadSingle(context, options.rows),
  );
}

/** Workload 2: many small transactions, four drains. */
async function throughputSmall(context: Context, options: Options): Promise<Load> {
  const plan: { tool: Tool; sink: SinkKind }[] = [
    { tool: "pg_recvlogical", sink: "null" },
    { tool: "spillway", sink: "null" },
    { tool: "pg_recvlogical", sink: "file" },
    { tool: "spillway", sink: "file" },
  ];
  const steps: DrainStep[] = plan.map((step) => ({
    ...step,
    slot: `small_${step.tool === "spillway" ? "sp" : "recv"}_${step.sink}`,
    streaming: DEFAULT_MODE,
    rep: 1,
  }));
  return await runWorkload(
    context,
    "small",
    steps,
    `${options.smallTxns} transactions of ${SMALL_TXN_ROWS} rows`,
    () => loadSmall(context, options.smallTxns),
  );
}

/** Workload 4: the RSS of Spillway over one huge transaction, streaming on and off. */
async function measureRss(context: Context, options: Options): Promise<Load> {
  const steps: DrainStep[] = [];
  for (let rep = 1; rep <= options.rssReps; rep++) {
    for (const streaming of options.rssModes) {
      const slot = `rss_sp_null_${streaming}${rep === 1 ? "" : `_${rep}`}`;
      steps.push({ slot, tool: "spillway", sink: "null", streaming, rep });
    }
  }
  return await runWorkload(
    context,
    "rss",
    steps,
    `${options.rssRows} rows in one transaction`,
    () => loadSingle(context, options.rssRows),
  );
}

/**
 * Runs a workload: creates the steps' slots, loads (`loading` says what, for the progress line),
 * drains each step's slot in turn up to the load's end, then checks and drops the slots.
 */
export async function runWorkload(
  context: Context,
  workload: string,
  steps: readonly DrainStep[],
  loading: string,
  load: () => Promise<Load>,
): Promise<Load> {
  const slots = steps.map((step) => step.slot);
  await createSlots(context.psql, slots);
  context.progress(`Created ${slots.length} slots; loading ${loading}`);
  const loaded = await load();
  for (const step of steps) await drain(context, { workload, load: loaded, ...step });
  await checkAndDropSlots(context.pg, slots, loaded.endLsn);
  return loaded;
}

/** Checks that every slot confirmed the load's end, then drops them (they pin WAL). */
async function checkAndDropSlots(pg: PgServer, slots: string[], endLsn: string): Promise<void> {
  const list = slots.map((slot) => `'${slot}'`).join(", ");
  const lagging = await pg.psql(
    `SELECT slot_name || ' at ' || coalesce(confirmed_flush_lsn::text, 'nothing')
       FROM pg_replication_slots
      WHERE slot_name IN (${list})
        AND (confirmed_flush_lsn IS NULL OR confirmed_flush_lsn < '${endLsn}'::pg_lsn)`,
  );
  if (lagging !== "") {
    throw new Error(
      `Slots did not confirm the load's end ${endLsn}: ${lagging.replaceAll("\n", ", ")}`,
    );
  }
  await pg.psql(slots.map((slot) => `SELECT pg_drop_replication_slot('${slot}');`).join("\n"));
}

/** Inserts `rows` orders in one transaction; its xid and the WAL position after its commit. */
export async function loadSingle(context: Context, rows: number): Promise<Load> {
  const first = context.nextId;
  context.nextId += rows;
  const { xid, endLsn, seconds } = await loadInOneTransaction(
    context.psql,
    insertOrders(`generate_series(${first}::bigint, ${first + rows - 1})`),
  );
  await context.psql("CHECKPOINT");
  const load = { xid, endLsn, rows, transactions: 1, seconds };
  context.progress(`Loaded in ${seconds.toFixed(1)} s: xid ${load.xid}, end LSN ${load.endLsn}`);
  return load;
}

/**
 * Inserts `transactions` transactions of {@linkcode SMALL_TXN_ROWS} orders each (a DO block
 * that commits after every insert), then one transaction with a logical message, whose xid and
 * end are where the drains stop.
 */
async function loadSmall(context: Context, transactions: number): Promise<Load> {
  const first = context.nextId;
  const rows = transactions * SMALL_TXN_ROWS;
  context.nextId += rows;
  const batch = `${first}::bigint + t * ${SMALL_TXN_ROWS}`;
  const insert = insertOrders(`generate_series(${batch}, ${batch} + ${SMALL_TXN_ROWS - 1})`);
  const started = performance.now();
  const out = await context.psql(`
    DO $$
    BEGIN
      FOR t IN 0..${transactions - 1} LOOP
        ${insert}
        COMMIT;
      END LOOP;
    END $$;
    BEGIN;
    SELECT pg_logical_emit_message(true, '${STOP_PREFIX}', 'small') IS NOT NULL;
    SELECT pg_current_xact_id();
    COMMIT;
    SELECT pg_current_wal_lsn();
  `);
  const seconds = (performance.now() - started) / 1000;
  await context.psql("CHECKPOINT");
  const [, ...rest] = out.split("\n"); // the message's "t"
  const load = {
    ...parseXidAndLsn(rest.join("\n")),
    rows,
    transactions: transactions + 1,
    seconds,
  };
  context.progress(
    `Loaded in ${seconds.toFixed(1)} s: last xid ${load.xid}, end LSN ${load.endLsn}`,
  );
  return load;
}

/** A drain to make, up to the end of `load`. */
interface DrainPlan extends DrainId {
  load: Load;
}

/** One drain of a workload's plan. */
export type DrainStep = Omit<DrainId, "workload">;

async function drain(context: Context, plan: DrainPlan): Promise<void> {
  const file = plan.sink === "file" ? join(context.work, `${plan.slot}.out`) : undefined;
  let result: Drain;
  if (plan.sink === "tail") {
    result = { ...drainFields(plan), ...await runTail(context, plan) };
  } else if (plan.tool === "spillway") {
    const run = await runSpillway(context, {
      slot: plan.slot,
      sink: plan.sink,
      file,
      streaming: plan.streaming,
      stop: ["--xid", String(plan.load.xid)],
      transform: plan.transform,
    });
    const spillway = run.result;
    if (spillway.rows !== plan.load.rows) {
      throw new Error(`Spillway on ${plan.slot} saw ${spillway.rows} rows, not ${plan.load.rows}`);
    }
    if (spillway.commitEndLsn !== plan.load.endLsn) {
      throw new Error(
        `Spillway on ${plan.slot} stopped at ${spillway.commitEndLsn}, not ${plan.load.endLsn}`,
      );
    }
    result = {
      ...drainFields(plan),
      rows: spillway.rows,
      seconds: spillway.seconds,
      processSeconds: run.processSeconds,
      cpuSeconds: spillway.cpuSeconds,
      peakRssKib: run.peakRssKib,
      spillway,
      rssSamples: run.samples,
    };
  } else {
    const timed = await runRecvlogical(context, plan, file ?? "/dev/null");
    result = {
      ...drainFields(plan),
      rows: plan.load.rows,
      ...recvlogicalTimes(timed),
    };
  }
  if (file !== undefined) {
    result.fileBytes = (await Deno.stat(file)).size;
    if (plan.tool === "spillway") {
      result.fileLines = await countLines(file);
      const messages = plan.load.transactions > 1 ? 1 : 0;
      if (result.fileLines !== plan.load.rows + messages) {
        throw new Error(
          `The file sink wrote ${result.fileLines} lines, not ${plan.load.rows + messages}`,
        );
      }
    }
    await Deno.remove(file);
  }
  context.drains.push(result);
  const transform = plan.transform ? ` transform ${plan.transform.name}` : "";
  context.progress(
    `${plan.workload} ${plan.tool}${transform} ${plan.sink} streaming ${plan.streaming} rep ${plan.rep}: ${
      result.seconds.toFixed(2)
    } s (${Math.round(result.rows / result.seconds).toLocaleString("en-US")} rows/s), peak RSS ${
      (result.peakRssKib / 1024).toFixed(0)
    } MB, CPU ${result.cpuSeconds.toFixed(2)} s${
      result.spillway ? `, ${spillwayDetail(result.spillway)}` : ""
    }`,
  );
}

function drainFields(plan: DrainPlan): DrainId {
  const { workload, slot, tool, sink, streaming, rep, transform } = plan;
  return { workload, slot, tool, sink, streaming, rep, ...(transform ? { transform } : {}) };
}

/** When the sink's first write came, how shutdown went, reconnects. */
function spillwayDetail(run: PipelineRunResult): string {
  const shutdown = run.shutdownStalled
    ? `run() had not returned ${SHUTDOWN_WAIT_MS / 1000} s after the abort`
    : `run() returned ${(run.runSeconds - run.seconds).toFixed(2)} s after`;
  const reconnects = run.reconnects > 0 ? `, ${run.reconnects} reconnect(s)` : "";
  return `first sink write at ${run.firstWriteSeconds.toFixed(2)} s, ${shutdown}${reconnects}`;
}

interface SpillwayRun {
  slot: string;
  sink: SinkKind;
  file?: string;
  streaming: "on" | "off";
  /** `--xid N` or `--stop-prefix P`. */
  stop: string[];
  latency?: boolean;
  /** Called once the pipeline is streaming; the run waits for it. */
  whileRunning?: () => Promise<void>;
  transform?: BenchTransform;
}

async function runSpillway(
  context: Context,
  run: SpillwayRun,
): Promise<
  { result: PipelineRunResult; processSeconds: number; peakRssKib: number; samples: RssSample[] }
> {
  // As `deno task run` has it: transforms run in Workers with their own permissions.
  const script = denoRunArgs(
    RUNNER,
    context.cpuProf ? `pipeline-${run.slot}.cpuprofile` : undefined,
    { flags: ["--unstable-worker-options"], v8Flags: context.v8Flags },
  );
  // deno-fmt-ignore
  const args = [...script, "--url", context.pg.url(), "--slot", run.slot,
    "--publication", PUBLICATION, "--sink", run.sink, "--streaming", run.streaming, ...run.stop];
  if (run.file !== undefined) args.push("--file", run.file);
  if (run.latency) args.push("--latency");
  if (run.transform !== undefined) args.push("--transform", run.transform.path);
  if (run.transform?.timeout !== undefined) {
    args.push("--transform-timeout", run.transform.timeout);
  }
  const started = performance.now();
  const child = new LineChild(Deno.execPath(), args);
  const sampler = new RssSampler(child.pid, 100);
  let line: string;
  try {
    if (run.whileRunning) {
      await child.waitForLine((text) => text.includes('"event":"ready"'));
      await run.whileRunning();
    }
    line = await child.waitForLine((text) => text.includes('"event":"result"'));
  } catch (error) {
    sampler.stop();
    try {
      child.child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    throw new Error(
      `The Spillway run on slot "${run.slot}" failed: ${(error as Error).message}\n` +
        `--- server log ---\n${await context.pg.tailLog(15)}`,
    );
  }
  const exit = await child.wait();
  sampler.stop();
  // SPILLWAY_BENCH_STDOUT=1: the process's whole stdout (V8's --trace-gc, say) into bench/out/.
  if (Deno.env.get("SPILLWAY_BENCH_STDOUT") === "1") {
    await Deno.writeTextFile(join(OUT_DIR, `stdout-${run.slot}.txt`), child.lines.join("\n"));
  }
  const processSeconds = (performance.now() - started) / 1000;
  if (exit.code !== 0) {
    throw new Error(`The Spillway run on slot "${run.slot}" exited ${exit.code}: ${exit.stderr}`);
  }
  if (exit.stderr !== "") context.progress(`(stderr of ${run.slot}: ${exit.stderr.slice(0, 500)})`);
  // From where the object starts: with --trace-gc, V8's own output can share the line.
  const result = JSON.parse(line.slice(line.indexOf('{"event":"result"'))) as PipelineRunResult;
  if (result.protoVersion !== 4) {
    throw new Error(`The pipeline used proto_version ${result.protoVersion}, expected 4`);
  }
  return {
    result,
    processSeconds,
    peakRssKib: Math.max(sampler.peakKib, 0),
    samples: sampler.samples,
  };
}

/**
 * `spillway tail` on the plan's slot, as `deno task tail` runs it (the tasks' V8 flags), its
 * stdout counted and dropped, until the load's rows were printed and their end confirmed; then
 * SIGINT. Timed from spawn, so Deno's start-up counts; CPU from /proc just before the signal.
 */
async function runTail(
  context: Context,
  plan: DrainPlan,
): Promise<Pick<Drain, "rows" | "seconds" | "processSeconds" | "cpuSeconds" | "peakRssKib">> {
  const script = denoRunArgs(
    MAIN,
    context.cpuProf ? `tail-${plan.slot}.cpuprofile` : undefined,
    { v8Flags: context.v8Flags },
  );
  // deno-fmt-ignore
  const args = [...script, "tail", context.pg.url(), "--slot", plan.slot,
    "--publication", PUBLICATION, "--streaming", plan.streaming, "--log-level", "warn",
    // Not the other runs' heartbeat messages: only the load's rows.
    "--no-messages"];
  const started = performance.now();
  const child = spawnPiped(Deno.execPath(), args);
  const stderr = new Response(child.stderr).text();
  const sampler = new RssSampler(child.pid, 100);
  let lines = 0;
  let printedAt = 0;
  let head = "";
  try {
    const reader = child.stdout.getReader();
    while (lines < plan.load.rows) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`it exited after ${lines} lines: ${await stderr}`);
      if (head === "") head = new TextDecoder().decode(value.subarray(0, 1024));
      for (let i = value.indexOf(0x0a); i >= 0; i = value.indexOf(0x0a, i + 1)) lines++;
    }
    printedAt = performance.now();
    reader.releaseLock();
    child.stdout.cancel().catch(() => {}); // nothing more is printed: the load was all
    const confirmed = `SELECT confirmed_flush_lsn >= '${plan.load.endLsn}'::pg_lsn
      FROM pg_replication_slots WHERE slot_name = '${plan.slot}'`;
    for (let waited = 0; (await context.psql(confirmed)) !== "t"; waited += 50) {
      if (waited > 30_000) throw new Error("it did not confirm the load's end within 30 s");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (error) {
    sampler.stop();
    child.kill("SIGKILL");
    await child.status;
    throw new Error(`spillway tail on slot "${plan.slot}" failed: ${(error as Error).message}`);
  }
  const cpuSeconds = await processCpuSeconds(child.pid);
  child.kill("SIGINT");
  const status = await child.status;
  sampler.stop();
  if (status.code !== 0) {
    throw new Error(`spillway tail on slot "${plan.slot}" exited ${status.code}: ${await stderr}`);
  }
  if (lines !== plan.load.rows) {
    throw new Error(
      `spillway tail on ${plan.slot} printed ${lines} lines, not ${plan.load.rows}, beginning ${head}`,
    );
  }
  return {
    rows: lines,
    seconds: (printedAt - started) / 1000,
    processSeconds: (performance.now() - started) / 1000,
    cpuSeconds,
    peakRssKib: sampler.peakKib,
  };
}

/** User and system CPU seconds of a running process (/proc/<pid>/stat, 100 ticks a second). */
async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function runRecvlogical(
  context: Context,
  plan: DrainPlan,
  output: string,
): Promise<Timed> {
  return await timeRecvlogical({
    binary: context.recvlogical,
    port: context.pg.port,
    slot: plan.slot,
    // The options Spillway's source sends: proto_version (auto: 4 on PostgreSQL 17),
    // publication_names, binary false, messages true, streaming on or off.
    pluginOptions: [
      "proto_version=4",
      `publication_names=${PUBLICATION}`,
      "binary=false",
      "messages=true",
      `streaming=${plan.streaming}`,
    ],
    endLsn: plan.load.endLsn,
    output,
    // /dev/null: no fsync at all (-F 0). A file: the default fsync interval of 10 s, plus the
    // fsync pg_recvlogical does before it exits at the end position.
    keepFsync: output !== "/dev/null",
    work: context.work,
    timeoutSeconds: RUN_TIMEOUT_S,
  });
}

/** What {@linkcode measureLatency} runs: the load's rate and length, and a transform if any. */
export interface LatencyOptions {
  rate: number;
  latencySeconds: number;
  transform?: BenchTransform;
}

/**
 * Workload 3: commit-to-sink latency under a steady single-row insert load (`pgbench` is its
 * binary), into a pipeline with a null sink.
 */
export async function measureLatency(
  context: Context,
  options: LatencyOptions,
  pgbench: string,
): Promise<LatencyResult> {
  const transform = options.transform;
  const slot = transform === undefined ? "latency_sp_null" : `latency_sp_null_${transform.name}`;
  await createSlots(context.psql, [slot]);
  const script = join(context.work, "tick.sql");
  await Deno.writeTextFile(
    script,
    "INSERT INTO ticks (sent_us, note) VALUES " +
      "((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, 'tick');\n",
  );
  let pgbenchOut = "";
  const into = transform === undefined ? "" : ` with transform ${transform.name}`;
  context.progress(
    `Latency: pgbench at ${options.rate} tx/s for ${options.latencySeconds} s into a running pipeline${into}`,
  );
  const run = await runSpillway(context, {
    slot,
    sink: "null",
    streaming: "on",
    stop: ["--stop-prefix", STOP_PREFIX],
    latency: true,
    transform,
    whileRunning: async () => {
      // deno-fmt-ignore
      const bench = await timeProcess(pgbench, [
        "-n", "-h", "127.0.0.1", "-p", String(context.pg.port), "-U", "postgres",
        "-c", "4", "-j", "2", "-R", String(options.rate), "-T", String(options.latencySeconds),
        "-f", script, "postgres",
      ], join(context.work, "pgbench.usage"), RUN_TIMEOUT_S);
      if (bench.code !== 0) throw new Error(`pgbench failed (exit ${bench.code}): ${bench.stderr}`);
      pgbenchOut = bench.stdout;
      await context.pg.psql(`SELECT pg_logical_emit_message(true, '${STOP_PREFIX}', 'latency')`);
    },
  });
  await context.pg.psql(`SELECT pg_drop_replication_slot('${slot}')`);
  const number = (pattern: RegExp) => Number(pattern.exec(pgbenchOut)?.[1] ?? Number.NaN);
  const result = run.result;
  const latency: LatencyResult = {
    ...(transform === undefined ? {} : { transform }),
    seconds: options.latencySeconds,
    rate: options.rate,
    pgbench: {
      tps: number(/^tps = ([\d.]+)/m),
      latencyAvgMs: number(/^latency average = ([\d.]+) ms/m),
      transactions: number(/^number of transactions actually processed: (\d+)/m),
    },
    events: result.rows,
    warmupEvents: result.warmupEvents ?? 0,
    commitToSink: result.commitToSink!,
    insertToSink: result.insertToSink!,
    commitToSinkAll: result.commitToSinkAll!,
    peakRssKib: run.peakRssKib,
    cpuSeconds: result.cpuSeconds,
  };
  if (latency.events !== latency.pgbench.transactions) {
    throw new Error(
      `The pipeline saw ${latency.events} events but pgbench committed ${latency.pgbench.transactions}`,
    );
  }
  context.progress(
    `Latency${into}: ${latency.events} events, commit → sink p50 ${
      latency.commitToSink.p50.toFixed(2)
    } ms, p99 ${latency.commitToSink.p99.toFixed(2)} ms`,
  );
  return latency;
}

// ---------------------------------------------------------------------------------------
// Report

const WORKLOADS: Record<string, string> = {
  single: "1 txn",
  small: "small txns",
  rss: "RSS txn",
};

function printResults(results: Results): void {
  const header = ["workload", "streaming", "sink", "tool", ...RUN_COLUMNS];
  const rows: string[][] = [];
  const ratios: Record<string, number> = {};
  const groups = new Map<string, Drain[]>();
  for (const drain of results.drains) {
    const key = `${drain.workload}|${drain.streaming}|${drain.sink}`;
    groups.set(key, [...(groups.get(key) ?? []), drain]);
  }
  for (const [key, drains] of groups) {
    const [workload, streaming, sink] = key.split("|") as [string, string, string];
    const rates: Partial<Record<Tool, number>> = {};
    for (const tool of ["spillway", "pg_recvlogical"] as const) {
      const runs = drains.filter((drain) => drain.tool === tool);
      if (runs.length === 0) continue;
      const { rate, cells } = runCells(runs, runs[0]!.rows);
      rates[tool] = rate;
      rows.push([
        `${WORKLOADS[workload] ?? workload} (${rowsLabel(runs[0]!.rows)} rows)`,
        streaming,
        sink,
        tool,
        ...cells,
      ]);
    }
    if (rates.spillway !== undefined && rates.pg_recvlogical !== undefined) {
      const ratio = rates.spillway / rates.pg_recvlogical;
      ratios[key] = ratio;
      rows.push(["", "", "", "ratio", `${ratio.toFixed(2)}x`, "", "", "", "", ""]);
    }
  }
  const rowsText = results.loads.single
    ? `${results.loads.single.rows} rows in one transaction (load ${
      results.loads.single.seconds.toFixed(1)
    } s)`
    : "";
  console.log(
    `PostgreSQL ${results.serverVersion}; ${rowsText}; median of ${results.options.reps}; ` +
      `load average ${results.loadBefore} before, ${results.loadAfter} after; ` +
      `${results.seconds.toFixed(0)} s in all`,
  );
  for (const line of formatTable(header, rows, 4)) console.log(line);
  console.log(
    "seconds: Spillway run() -> last commit confirmed and sent to the server; pg_recvlogical " +
      "spawn -> exit at -E. process s: spawn -> exit. Peak RSS: Spillway VmRSS sampled every " +
      "100 ms, pg_recvlogical GNU time.",
  );
  const latency = results.latency;
  if (latency) {
    const show = (name: string, s: LatencySummary) =>
      `${name}: p50 ${s.p50.toFixed(2)} ms, p90 ${s.p90.toFixed(2)}, p99 ${
        s.p99.toFixed(2)
      }, p99.9 ${s.p999.toFixed(2)}, max ${s.max.toFixed(2)}, mean ${
        s.mean.toFixed(2)
      } (${s.count} events)`;
    console.log(
      `Latency: pgbench -R ${latency.rate} for ${latency.seconds} s: ${latency.pgbench.tps} tx/s, ` +
        `${latency.pgbench.transactions} transactions, pgbench latency average ` +
        `${latency.pgbench.latencyAvgMs} ms; pipeline peak RSS ${
          (latency.peakRssKib / 1024).toFixed(0)
        } MB, CPU ${latency.cpuSeconds.toFixed(2)} s`,
    );
    console.log(`  ${show("commit -> sink (after 2 s warm-up)", latency.commitToSink)}`);
    console.log(`  ${show("commit -> sink (all)", latency.commitToSinkAll)}`);
    console.log(`  ${show("INSERT -> sink (after warm-up)", latency.insertToSink)}`);
  }
  const rss = results.drains.filter((drain) => drain.workload === "rss");
  const repeated = rss.some((drain) => drain.rep > 1);
  const rssRows = results.loads.rss?.rows;
  if (rss.length > 0) {
    for (const drain of rss) {
      const spill = drain.spillway?.spilledBytes ?? 0;
      console.log(
        `RSS on a ${rowsLabel(drain.rows)}-row transaction, streaming ${drain.streaming}${
          repeated ? ` rep ${drain.rep}` : ""
        }: peak ${(drain.peakRssKib / 1024).toFixed(0)} MB (VmHWM ${
          ((drain.spillway?.vmHwmKib ?? 0) / 1024).toFixed(0)
        } MB), ${drain.seconds.toFixed(1)} s, spilled ${
          (spill / 1e6).toFixed(0)
        } MB; same mode at ${rowsLabel(results.loads.single?.rows ?? 0)} rows: ${
          peakOf(results.drains, "single", drain.streaming)
        } MB`,
      );
    }
  }
  const summary = { ...results, ratios };
  for (const drain of summary.drains) {
    // Keep the timeline of the RSS runs only; the others would make the file large.
    if (drain.workload !== "rss") delete drain.rssSamples;
  }
  writeResults("pipeline", summary);
  const headline = [`single|${DEFAULT_MODE}|null`, `single|${DEFAULT_MODE}|file`]
    .map((key) => ratios[key])
    .filter((ratio): ratio is number => ratio !== undefined);
  console.log(
    `pipeline ratio vs pg_recvlogical: ${
      headline.length === 0 ? "n/a" : Math.min(...headline).toFixed(2)
    }`,
  );
  console.log(
    `latency p50/p99 ms: ${
      latency
        ? `${latency.commitToSink.p50.toFixed(2)}/${latency.commitToSink.p99.toFixed(2)}`
        : "n/a"
    }`,
  );
  const peak = rss.length === 0
    ? "n/a"
    : (Math.max(...rss.map((d) => d.peakRssKib)) / 1024).toFixed(0);
  console.log(
    `peak rss MB on ${rssRows === undefined ? "5M" : rowsLabel(rssRows)}-row txn: ${peak}`,
  );
  // Issue 14's figures: the single-transaction drain (default streaming mode) into both sinks.
  const single = results.drains.filter((drain) =>
    drain.workload === "single" && drain.tool === "spillway" && drain.streaming === DEFAULT_MODE
  );
  const drainPeak = single.length === 0
    ? "n/a"
    : (Math.max(...single.map((d) => d.peakRssKib)) / 1024).toFixed(0);
  console.log(
    `peak rss MB on ${rowsLabel(results.loads.single?.rows ?? 0)}-row drain: ${drainPeak}`,
  );
  const fileCpu = single.filter((drain) => drain.sink === "file").map((drain) =>
    drain.cpuSeconds / drain.rows * 1e6
  ).sort((a, b) => a - b);
  console.log(
    `cpu us per row (file sink): ${
      fileCpu.length === 0 ? "n/a" : fileCpu[Math.floor((fileCpu.length - 1) / 2)]!.toFixed(1)
    }`,
  );
}

function peakOf(drains: Drain[], workload: string, streaming: string): string {
  const runs = drains.filter((drain) =>
    drain.workload === workload && drain.streaming === streaming && drain.tool === "spillway" &&
    drain.sink === "null"
  );
  return runs.length === 0
    ? "n/a"
    : (Math.max(...runs.map((run) => run.peakRssKib)) / 1024).toFixed(0);
}

/** 5000000 → "5M", 200000 → "200k". */
export function rowsLabel(rows: number): string {
  if (rows % 1_000_000 === 0) return `${rows / 1_000_000}M`;
  if (rows % 1000 === 0) return `${rows / 1000}k`;
  return String(rows);
}
