/**
 * `deno task bench transforms`: what the transform stage costs the pipeline.
 *
 * The server, load, drains and latency runs are those of `bench/pipeline.ts`: Spillway runs as
 * its own process (`bench/_pipeline_run.ts`), a `PipelineRunner` built from a pipeline file, in
 * the default streaming mode, with `--unstable-worker-options` as `deno task run` has it. The
 * transform modules are written to the run's work folder; each run's pipeline file
 * (`bench.yaml` in that folder) gives every table `transform: <file>` and
 * `transforms: { on_error: skip, timeout: <--timeout> }` (a failing event shows as a missing
 * row, which fails the run), with hot reload on. The time budget is 10 s by default, not the
 * pipeline's 200 ms: the per-event watchdog counts a batch's transfer to and from the Worker
 * against its first and last event, which on a busy machine takes past 200 ms on batches of
 * thousands of events, so that events fail that did nothing wrong (see bench/RESULTS.md).
 * The watchdog costs the same at either budget (it looks every 50 ms).
 *
 * 1. Throughput: one transaction of `--rows` orders (default 1,000,000), drained into the null
 *    sink and into the file sink (fsync on) with (a) no transform, (b) the identity transform
 *    `change: (event) => event`, (c) a light one (one field renamed, one dropped, one computed),
 *    `--reps` times each, the order reversed on even reps. Timed as the pipeline benchmark
 *    times Spillway: `runner.run()` called → the commit confirmed and sent to the server (so
 *    a transform's start-up, tens of ms, is in it).
 * 2. Latency: `pgbench -R <rate>` single-row transactions into `ticks` for `--latency-seconds`,
 *    into a running pipeline with a null sink, without a transform and with the identity one
 *    (`--reps` runs each, alternating): commit → sink write resolved, per event, after a 2 s
 *    warm-up. The added latency is the identity runs' p99 minus the others', each case's lowest
 *    of its runs: other processes on the machine only ever add to a p99 (one of them took a
 *    run's p99 from 4 to 30 ms), so the least disturbed run is the one to compare; p50 likewise.
 *
 * The last line printed is `identity transform throughput ratio: <R>`: identity rows/s ÷
 * no-transform rows/s on the file sink (medians of the reps).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  type BenchTransform,
  DEFAULT_MODE,
  type Drain,
  type DrainStep,
  type LatencyResult,
  loadSingle,
  measureLatency,
  rowsLabel,
  runWorkload,
  SHARED_OPTIONS,
  type SinkKind,
  startContext,
} from "./pipeline.ts";
import type { LatencySummary } from "./_pipeline_run.ts";
import {
  formatTable,
  invalidCount,
  loadAverage,
  parseParts,
  progressFor,
  RUN_COLUMNS,
  runBenchmark,
  runCells,
  writeResults,
} from "./_common.ts";
import { clientBinary } from "./_pipeline_util.ts";

const progress = progressFor("transforms");
const MAX_REPS = 5;

const USAGE = `deno task bench transforms [options]

Options:
  --quick              a smaller run: 200,000 rows, 1 rep, 5 s of latency load
  --rows N             rows of the single-transaction load (default 1000000)
  --reps N             drains per transform and sink, and latency runs per case, 1-${MAX_REPS}
                       (default 2)
  --latency-seconds S  duration of each 1,000 tx/s load (default 20)
  --rate R             transactions per second of the latency load (default 1000)
  --timeout DURATION   transforms.timeout of the runs (default 200ms, the pipeline's default)
  --only LIST          run only some parts: throughput,latency (comma-separated)
  --cpu-prof           run the Spillway processes under --cpu-prof (bench/out/profiles/;
                       timings are then not comparable)`;

/**
 * The transforms measured, by name: `identity` passes every event on as it came; `light`
 * renames `customer` to `customer_name`, drops `created_at` and adds `amount_cents`.
 */
export const TRANSFORM_SOURCES: Readonly<Record<string, string>> = {
  identity: `import { defineTransform } from "spillway";

export default defineTransform({ change: (event) => event });
`,
  light: `import { defineTransform } from "spillway";

export default defineTransform({
  change(event) {
    const after = event.after;
    if (after === null) return event;
    const { customer, created_at: _created, ...rest } = after;
    const amountCents = Math.round(Number(after.amount) * 100);
    return { ...event, after: { ...rest, customer_name: customer, amount_cents: amountCents } };
  },
});
`,
};

/** The cases measured: no transform, then each of {@linkcode TRANSFORM_SOURCES}. */
const CASES: readonly string[] = ["none", ...Object.keys(TRANSFORM_SOURCES)];
const SINKS: readonly SinkKind[] = ["null", "file"];

type Part = "throughput" | "latency";
const PARTS: readonly Part[] = ["throughput", "latency"];

interface Options {
  rows: number;
  /** `transforms.timeout` of the runs. */
  timeout: string;
  reps: number;
  latencySeconds: number;
  rate: number;
  parts: Part[];
  cpuProf: boolean;
  quick: boolean;
}

/** Runs the transforms benchmark; returns the exit code. */
export function transformsBench(args: string[]): Promise<number> {
  return runBenchmark({
    name: "transforms",
    usage: USAGE,
    args,
    parse: parseOptions,
    run: async (options) => printResults(await measure(options)),
  });
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: { ...SHARED_OPTIONS, timeout: { type: "string", default: "200ms" } },
    strict: true,
  });
  const quick = values.quick;
  const options: Options = {
    rows: Number(values.rows ?? (quick ? 200_000 : 1_000_000)),
    timeout: values.timeout,
    reps: Number(values.reps ?? (quick ? 1 : 2)),
    latencySeconds: Number(values["latency-seconds"] ?? (quick ? 5 : 20)),
    rate: Number(values.rate),
    parts: parseParts(values.only, PARTS),
    cpuProf: values["cpu-prof"],
    quick,
  };
  const invalid = invalidCount("rows", options.rows) ??
    invalidCount("reps", options.reps, MAX_REPS) ??
    invalidCount("latency-seconds", options.latencySeconds) ?? invalidCount("rate", options.rate);
  if (invalid !== null) throw new Error(invalid);
  return options;
}

// ---------------------------------------------------------------------------------------
// Measurements

interface Results {
  date: string;
  options: Options;
  loadBefore: string;
  loadAfter: string;
  serverVersion: string;
  pgbench: string;
  deno: string;
  /** Rows of the throughput load; 0 when it did not run. */
  rows: number;
  loadSeconds: number;
  drains: Drain[];
  latency: LatencyResult[];
  seconds: number;
}

async function measure(options: Options): Promise<Results> {
  const started = performance.now();
  const loadBefore = await loadAverage();
  const pgbench = await clientBinary("pgbench");
  progress(`Starting PostgreSQL 17 (load average ${loadBefore})`);
  await using context = await startContext({
    recvlogical: "", // not raced here
    cpuProf: options.cpuProf,
    progress,
  });
  const serverVersion = await context.psql("SHOW server_version");
  const folder = join(context.work, "transforms");
  await Deno.mkdir(folder);
  const transforms = new Map<string, BenchTransform>();
  for (const [name, source] of Object.entries(TRANSFORM_SOURCES)) {
    const path = join(folder, `${name}.ts`);
    await Deno.writeTextFile(path, source);
    transforms.set(name, { name, path, timeout: options.timeout });
  }
  let rows = 0;
  let loadSeconds = 0;
  if (options.parts.includes("throughput")) {
    const steps: DrainStep[] = [];
    for (let rep = 1; rep <= options.reps; rep++) {
      const round = CASES.flatMap((name) =>
        SINKS.map((sink): DrainStep => {
          const transform = transforms.get(name);
          return {
            slot: `tx_${name}_${sink}_${rep}`,
            tool: "spillway",
            sink,
            streaming: DEFAULT_MODE,
            rep,
            ...(transform === undefined ? {} : { transform }),
          };
        })
      );
      steps.push(...(rep % 2 === 1 ? round : round.reverse()));
    }
    const load = await runWorkload(
      context,
      "transforms",
      steps,
      `${options.rows} rows in one transaction`,
      () => loadSingle(context, options.rows),
    );
    rows = load.rows;
    loadSeconds = load.seconds;
  }
  const latency: LatencyResult[] = [];
  if (options.parts.includes("latency")) {
    const cases = [undefined, transforms.get("identity")];
    for (let rep = 1; rep <= options.reps; rep++) {
      for (const transform of rep % 2 === 1 ? cases : [...cases].reverse()) {
        latency.push(await measureLatency(context, { ...options, transform }, pgbench.path));
      }
    }
  }
  return {
    date: new Date().toISOString(),
    options,
    loadBefore,
    loadAfter: await loadAverage(),
    serverVersion,
    pgbench: pgbench.version,
    deno: `${Deno.version.deno} (V8 ${Deno.version.v8})`,
    rows,
    loadSeconds,
    drains: context.drains,
    latency,
    seconds: (performance.now() - started) / 1000,
  };
}

// ---------------------------------------------------------------------------------------
// Report

function printResults(results: Results): void {
  const rates = new Map<string, number>();
  const lines: string[][] = [];
  for (const sink of SINKS) {
    for (const name of CASES) {
      const runs = results.drains.filter((drain) =>
        drain.sink === sink && (drain.transform?.name ?? "none") === name
      );
      if (runs.length === 0) continue;
      const { rate, cells } = runCells(runs, results.rows);
      rates.set(`${name}|${sink}`, rate);
      const none = rates.get(`none|${sink}`);
      lines.push([name, sink, ...cells, none === undefined ? "" : (rate / none).toFixed(2)]);
    }
  }
  console.log(
    `PostgreSQL ${results.serverVersion}; ${rowsLabel(results.rows)} rows in one transaction ` +
      `(load ${results.loadSeconds.toFixed(1)} s), streaming ${DEFAULT_MODE}, transforms.timeout ` +
      `${results.options.timeout}; median of ` +
      `${results.options.reps}; load average ${results.loadBefore} before, ` +
      `${results.loadAfter} after; ${results.seconds.toFixed(0)} s in all`,
  );
  if (lines.length > 0) {
    for (const line of formatTable(["transform", "sink", ...RUN_COLUMNS, "vs none"], lines)) {
      console.log(line);
    }
    console.log(
      "seconds: Spillway run() -> last commit confirmed and sent to the server (transform " +
        "start-up included). Peak RSS: VmRSS sampled every 100 ms. vs none: rows/s against " +
        "no transform on the same sink.",
    );
  }
  const lowest = new Map<string, { p50: number; p99: number }>();
  for (const name of ["none", "identity"]) {
    const runs = results.latency.filter((run) => (run.transform?.name ?? "none") === name);
    if (runs.length === 0) continue;
    lowest.set(name, {
      p50: Math.min(...runs.map((run) => run.commitToSink.p50)),
      p99: Math.min(...runs.map((run) => run.commitToSink.p99)),
    });
    const summaries = runs.map((run) => describe(run.commitToSink)).join("; ");
    console.log(
      `commit -> sink at ${results.options.rate} tx/s, null sink, transform ${name}: ${summaries}`,
    );
  }
  const identity = lowest.get("identity");
  const without = lowest.get("none");
  if (identity !== undefined && without !== undefined) {
    const added = (quantile: "p50" | "p99") =>
      `${(identity[quantile] - without[quantile]).toFixed(2)} ms (${
        identity[quantile].toFixed(2)
      } - ${without[quantile].toFixed(2)})`;
    console.log(
      `p99 added latency per transaction (identity - none, lowest of runs): ${added("p99")}; ` +
        `p50: ${added("p50")}`,
    );
  }
  // No transform here drops a row: a run that delivered fewer lost some to on_error (skip).
  for (const drain of results.drains) {
    if (drain.rows === results.rows) continue;
    console.log(
      `MISSING ROWS: ${drain.transform?.name ?? "none"} into ${drain.sink}, rep ${drain.rep}: ` +
        `${drain.rows} of ${results.rows} (events that failed, e.g. past transforms.timeout)`,
    );
    Deno.exitCode = 1;
  }
  writeResults("transforms", { ...results, ratios: Object.fromEntries(rates) });
  const identityRate = rates.get("identity|file");
  const noneRate = rates.get("none|file");
  const ratio = identityRate === undefined || noneRate === undefined
    ? "n/a"
    : (identityRate / noneRate).toFixed(2);
  console.log(`identity transform throughput ratio: ${ratio}`);
}

function describe(summary: LatencySummary): string {
  return `p50 ${summary.p50.toFixed(2)} ms, p99 ${summary.p99.toFixed(2)}, max ${
    summary.max.toFixed(2)
  } (${summary.count} events)`;
}
