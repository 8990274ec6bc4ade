/**
 * Helpers shared by the benchmarks that race Spillway against `pg_recvlogical`
 * (`bench/decode.ts`, `bench/types.ts`, `bench/pipeline.ts`): their command lines, the server
 * and its slots, the `orders` load, timing a child process under GNU time, `pg_recvlogical`'s
 * command line, the order and the table of the timed drains, and the result files.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { type PgServer, startPostgres } from "../testing/embedded_postgres.ts";

/** The `pg_recvlogical` that decode and types race (PostgreSQL 15 client tools). */
export const PG_RECVLOGICAL = "/usr/bin/pg_recvlogical";
/** GNU time: peak RSS and CPU time of a child (`%M %U %S`). */
export const GNU_TIME = "/usr/bin/time";
export const TIMEOUT = "/usr/bin/timeout";
/** A drain that takes longer than this is killed. */
export const RUN_TIMEOUT_S = 600;
/** `max_replication_slots` of the benchmarks' server. */
export const MAX_SLOTS = 32;
/** `bench/out/` (git-ignored): raw results, profiles, captures. */
export const OUT_DIR = fileURLToPath(new URL("./out/", import.meta.url));

/**
 * A benchmark's options as `parse` reads them, or the exit code to return at once: 2 after
 * printing the error `parse` threw, with the usage; 0 after printing the usage for `--help`.
 */
export function parseBenchArgs<T extends { help: boolean }>(
  bench: string,
  usage: string,
  parse: () => T,
): T | number {
  let values: T;
  try {
    values = parse();
  } catch (error) {
    return cannotRun(bench, `${(error as Error).message}\n\n${usage}`);
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  return values;
}

/** What {@linkcode runBenchmark} runs. */
export interface Benchmark<O> {
  /** The benchmark's name in messages, e.g. `pipeline`. */
  name: string;
  usage: string;
  args: string[];
  /** Reads the options from `args`; throws on one that is wrong. */
  parse: (args: string[]) => O;
  /** Binaries that must exist (default GNU time and timeout). */
  tools?: readonly string[];
  /** Measures and prints. */
  run: (options: O) => Promise<void>;
}

/**
 * A benchmark's entry point: its options (the usage for `--help`, exit code 2 for a wrong
 * one), the tools it needs, `bench/out/`, then the run. Returns the exit code.
 */
export async function runBenchmark<O>(benchmark: Benchmark<O>): Promise<number> {
  const { name, args } = benchmark;
  const parsed = parseBenchArgs(name, benchmark.usage, () => ({
    options: benchmark.parse(args),
    help: args.includes("--help") || args.includes("-h"),
  }));
  if (typeof parsed === "number") return parsed;
  const missing = await missingTool(benchmark.tools ?? [GNU_TIME, TIMEOUT]);
  if (missing !== null) return cannotRun(name, missing);
  await Deno.mkdir(OUT_DIR, { recursive: true });
  await benchmark.run(parsed.options);
  return 0;
}

/** The parts `--only` names (comma-separated; all of `parts` when `only` is undefined). */
export function parseParts<P extends string>(only: string | undefined, parts: readonly P[]): P[] {
  const chosen: P[] = [];
  for (const name of (only ?? parts.join(",")).split(",")) {
    if (!(parts as readonly string[]).includes(name)) {
      throw new Error(`--only takes ${parts.join(", ")}, not "${name}"`);
    }
    chosen.push(name as P);
  }
  return chosen;
}

/** Prints `Cannot run the BENCH benchmark: MESSAGE` on stderr; returns exit code 2. */
export function cannotRun(bench: string, message: string): number {
  console.error(`Cannot run the ${bench} benchmark: ${message}`);
  return 2;
}

/** The error for a count option `--NAME` that is not an integer from 1 (to `max`), else null. */
export function invalidCount(name: string, value: number, max?: number): string | null {
  const valid = Number.isInteger(value) && value >= 1 && (max === undefined || value <= max);
  if (valid) return null;
  return max === undefined
    ? `--${name} must be a positive integer`
    : `--${name} must be within 1 and ${max}`;
}

/** The environment without libpq variables (PGHOST, PGPORT, …) that would redirect clients. */
export function cleanEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) if (name.startsWith("PG")) delete env[name];
  return env;
}

/** Starts `command` with {@linkcode cleanEnv}, no stdin, and stdout and stderr piped. */
export function spawnPiped(command: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command(command, {
    args,
    env: cleanEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** What a child process cost, as GNU time saw it. */
export interface Timed {
  code: number;
  /** Spawn → exit, wall clock. */
  seconds: number;
  peakRssKib: number;
  /** User plus system CPU time of the process and its children. */
  cpuSeconds: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command under GNU time (and `timeout`, which kills it after `timeoutSeconds`): wall
 * seconds from spawn to exit, CPU time and peak RSS. `PG*` variables are not passed on, so
 * `pg_recvlogical` gets the server's defaults, like Spillway. `usageFile` is removed once read.
 */
export async function timeProcess(
  command: string,
  args: string[],
  usageFile: string,
  timeoutSeconds = RUN_TIMEOUT_S,
): Promise<Timed> {
  const started = performance.now();
  const out = await new Deno.Command(GNU_TIME, {
    // deno-fmt-ignore
    args: ["-f", "%M %U %S", "-o", usageFile, TIMEOUT, "--signal=KILL", String(timeoutSeconds),
      command, ...args],
    env: cleanEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - started) / 1000;
  // GNU time writes "Command exited with non-zero status N" first when the command fails.
  const usage = (await Deno.readTextFile(usageFile).catch(() => "")).trim().split("\n").pop() ?? "";
  await Deno.remove(usageFile).catch(() => {});
  const [peakRssKib, userSeconds, systemSeconds] = usage.split(" ").map(Number);
  const decoder = new TextDecoder();
  return {
    code: out.code,
    seconds,
    peakRssKib: peakRssKib || 0,
    cpuSeconds: (userSeconds || 0) + (systemSeconds || 0),
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr).trim(),
  };
}

/**
 * The V8 flags of `deno task run` (deno.json), which the benches give Spillway's processes
 * unless `--v8-flags` says otherwise (`--v8-flags none` for V8's defaults): what users run.
 */
export function taskV8Flags(): string | undefined {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  return /--v8-flags=(\S+)/.exec(String(config.tasks.run))?.[1];
}

/** `--v8-flags` of a bench: the task's flags when absent, none for `none`. */
export function benchV8Flags(option: string | undefined): string | undefined {
  if (option === undefined) return taskV8Flags();
  return option === "none" || option === "" ? undefined : option;
}

/** More of {@linkcode denoRunArgs}: V8 flags, and other `deno run` flags. */
export interface DenoRunOptions {
  /** Passed as `--v8-flags=...`. */
  v8Flags?: string;
  /** Given as they are, e.g. `--unstable-worker-options`. */
  flags?: string[];
}

/**
 * `deno run` arguments for a drain script, with `--cpu-prof` into `bench/out/profiles/NAME`
 * when `cpuProfName` is given.
 */
export function denoRunArgs(
  script: string,
  cpuProfName?: string,
  options: DenoRunOptions = {},
): string[] {
  const flags = ["run", "-A", ...options.flags ?? []];
  if (options.v8Flags !== undefined) flags.push(`--v8-flags=${options.v8Flags}`);
  if (cpuProfName !== undefined) {
    flags.push("--cpu-prof", `--cpu-prof-dir=${join(OUT_DIR, "profiles")}`);
    flags.push(`--cpu-prof-name=${cpuProfName}`);
  }
  return [...flags, script];
}

/** The JSON object a drain script printed as its last stdout line. */
export function lastJsonLine<T>(timed: Timed, what: string): T {
  if (timed.code !== 0) throw new Error(`${what} failed (exit ${timed.code}): ${timed.stderr}`);
  const lastLine = timed.stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(lastLine) as T;
}

/** Where and how `pg_recvlogical` drains a slot. */
export interface RecvlogicalOptions {
  port: number;
  slot: string;
  /** pgoutput options, each passed as `-o NAME=VALUE`. */
  pluginOptions: string[];
  endLsn: string;
  output: string;
  /** Keep pg_recvlogical's default fsync interval (10 s) rather than `-F 0` (no fsync). */
  keepFsync?: boolean;
}

/** `pg_recvlogical` arguments that drain `slot` up to `endLsn` into `output`. */
export function recvlogicalArgs(options: RecvlogicalOptions): string[] {
  // deno-fmt-ignore
  const args = [
    "--start", "-S", options.slot, "-d", "postgres", "-h", "127.0.0.1",
    "-p", String(options.port), "-U", "postgres", "--no-loop",
  ];
  for (const option of options.pluginOptions) args.push("-o", option);
  if (!options.keepFsync) args.push("-F", "0");
  args.push("-f", options.output, "-E", options.endLsn);
  return args;
}

/**
 * Times `pg_recvlogical` (`binary`, default {@linkcode PG_RECVLOGICAL}) draining a slot, with
 * its usage file in `work`; throws if it fails.
 */
export async function timeRecvlogical(
  options: RecvlogicalOptions & { work: string; binary?: string; timeoutSeconds?: number },
): Promise<Timed> {
  const timed = await timeProcess(
    options.binary ?? PG_RECVLOGICAL,
    recvlogicalArgs(options),
    join(options.work, `${options.slot}.usage`),
    options.timeoutSeconds,
  );
  if (timed.code !== 0) {
    throw new Error(
      `pg_recvlogical on slot "${options.slot}" failed (exit ${timed.code}): ${timed.stderr}`,
    );
  }
  return timed;
}

/** What a timed run of either tool measured, as the result tables show it. */
export interface RunTimes {
  /** The time measured: as the Spillway process timed itself; pg_recvlogical's spawn → exit. */
  seconds: number;
  /** Spawn → exit, for both. */
  processSeconds: number;
  cpuSeconds: number;
  peakRssKib: number;
}

/** The two tools a benchmark races. */
export type Tool = "spillway" | "pg_recvlogical";

/** One timed drain of a race; `D` is what a Spillway drain script reports. */
export interface TimedRun<D> extends RunTimes {
  mode: string;
  tool: Tool;
  rep: number;
  drain?: D;
}

/**
 * Runs a drain script (`deno` with `args`, see {@linkcode denoRunArgs}) under GNU time, with its
 * usage file in `work`: the run of `mode` its last JSON line reports, timed by the script itself.
 */
export async function timeDrain<D extends { seconds: number }>(
  mode: string,
  slot: string,
  args: string[],
  work: string,
): Promise<TimedRun<D>> {
  const timed = await timeProcess(Deno.execPath(), args, join(work, `${slot}.usage`));
  const drain = lastJsonLine<D>(timed, `Spillway drain of slot "${slot}"`);
  return {
    mode,
    tool: "spillway",
    rep: 0,
    seconds: drain.seconds,
    processSeconds: timed.seconds,
    cpuSeconds: timed.cpuSeconds,
    peakRssKib: timed.peakRssKib,
    drain,
  };
}

/** What a {@linkcode timeRecvlogical} measurement shows: pg_recvlogical's spawn → exit. */
export function recvlogicalTimes(timed: Timed): RunTimes {
  return {
    seconds: timed.seconds,
    processSeconds: timed.seconds,
    cpuSeconds: timed.cpuSeconds,
    peakRssKib: timed.peakRssKib,
  };
}

/** The run of `mode` that a {@linkcode timeRecvlogical} measurement makes. */
export function recvlogicalRun(mode: string, timed: Timed): TimedRun<never> {
  return { mode, tool: "pg_recvlogical", rep: 0, ...recvlogicalTimes(timed) };
}

/**
 * The order of a race's timed drains: every rep runs every mode (in reverse on even reps) with
 * both tools; each mode alternates which tool goes first, and the modes start with different
 * tools.
 */
export function* raceOrder<M>(
  modes: readonly M[],
  reps: number,
): Generator<{ rep: number; mode: M; tool: Tool }> {
  for (let rep = 1; rep <= reps; rep++) {
    const ordered = rep % 2 === 1 ? modes : [...modes].reverse();
    for (const mode of ordered) {
      const tools: Tool[] = (rep + modes.indexOf(mode)) % 2 === 1
        ? ["spillway", "pg_recvlogical"]
        : ["pg_recvlogical", "spillway"];
      for (const tool of tools) yield { rep, mode, tool };
    }
  }
}

/** An untimed drain of a race: a Spillway `capture` or a `pg_recvlogical` `verify` run. */
export type Untimed = "capture" | "verify";

/**
 * The slot of one drain of a race: `bench_<mode>_spillway_<rep>` or `bench_<mode>_recv_<rep>`
 * for a timed drain, `bench_<mode>_<untimed>` for an untimed one.
 */
export function raceSlot(modeKey: string, tool: Tool | Untimed, rep = 0): string {
  if (tool === "capture" || tool === "verify") return `bench_${modeKey}_${tool}`;
  return `bench_${modeKey}_${tool === "spillway" ? "spillway" : "recv"}_${rep}`;
}

/** Every slot of a race: per mode, those of the timed drains of every rep, then `untimed`. */
export function raceSlots(
  modes: readonly { key: string }[],
  reps: number,
  untimed: readonly Untimed[],
): string[] {
  const slots: string[] = [];
  for (const mode of modes) {
    for (let rep = 1; rep <= reps; rep++) {
      slots.push(raceSlot(mode.key, "spillway", rep), raceSlot(mode.key, "pg_recvlogical", rep));
    }
    for (const tool of untimed) slots.push(raceSlot(mode.key, tool));
  }
  return slots;
}

/**
 * Starts the benchmarks' PostgreSQL 17 server: 256MB of shared buffers, checkpoints and
 * autovacuum out of the way, {@linkcode MAX_SLOTS} slots; `settings` add to these or override
 * them.
 */
export function startBenchPostgres(settings: Record<string, string> = {}): Promise<PgServer> {
  return startPostgres({
    version: 17,
    settings: {
      shared_buffers: "256MB",
      max_wal_size: "4GB",
      checkpoint_timeout: "1h",
      autovacuum: "off",
      max_replication_slots: String(MAX_SLOTS),
      ...settings,
    },
  });
}

/** Creates a logical replication slot with pgoutput for each name. */
export async function createSlots(
  psql: (sql: string) => Promise<string>,
  slots: string[],
): Promise<void> {
  await psql(
    slots.map((slot) => `SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput');`)
      .join("\n"),
  );
}

/** The `orders` table that `bench/decode.ts` and `bench/pipeline.ts` load. */
export const ORDERS_TABLE = `CREATE TABLE orders (
      id bigint PRIMARY KEY,
      customer text NOT NULL,
      amount numeric(12,2) NOT NULL,
      status text NOT NULL,
      created_at timestamptz NOT NULL
    );`;

/** Inserts the order `g` for every `g` of `series`, e.g. `generate_series(1::bigint, 100)`. */
export function insertOrders(series: string): string {
  return `INSERT INTO orders (id, customer, amount, status, created_at)
    SELECT g,
           'customer-' || (g % 50000),
           ((g * 7919) % 10000000) / 100.0,
           (ARRAY['new', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + g % 5],
           timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
      FROM ${series} AS g;`;
}

/** The load's transaction, as the drains must find it. */
export interface Load {
  /** The 32-bit xid pgoutput carries. */
  xid: number;
  /** `pg_current_wal_lsn()` after the commit. */
  endLsn: string;
  seconds: number;
}

/** Runs `statements` in one transaction; returns its xid and the WAL position after its commit. */
export async function loadInOneTransaction(
  psql: (sql: string) => Promise<string>,
  statements: string,
): Promise<Load> {
  const started = performance.now();
  const out = await psql(`
    BEGIN;
    ${statements}
    SELECT pg_current_xact_id();
    COMMIT;
    SELECT pg_current_wal_lsn();
  `);
  const seconds = (performance.now() - started) / 1000;
  return { ...parseXidAndLsn(out), seconds };
}

/** The xid and end LSN of psql output `pg_current_xact_id()`, then `pg_current_wal_lsn()`. */
export function parseXidAndLsn(out: string): { xid: number; endLsn: string } {
  const [xid8, endLsn] = out.split("\n");
  if (xid8 === undefined || endLsn === undefined) {
    throw new Error(`Cannot read the load's xid and end LSN from psql output "${out}"`);
  }
  // pgoutput carries the 32-bit xid; pg_current_xact_id() adds the epoch above it.
  return { xid: Number(BigInt(xid8) & 0xffff_ffffn), endLsn };
}

/** Throws unless every slot named `LIKE pattern` confirmed `commitEnd`. */
export async function checkSlotsConfirmed(
  psql: (sql: string) => Promise<string>,
  pattern: string,
  commitEnd: string,
): Promise<void> {
  const lagging = await psql(
    `SELECT slot_name || ' at ' || coalesce(confirmed_flush_lsn::text, 'nothing')
       FROM pg_replication_slots
      WHERE slot_name LIKE '${pattern}'
        AND (confirmed_flush_lsn IS NULL OR confirmed_flush_lsn < '${commitEnd}'::pg_lsn)`,
  );
  if (lagging !== "") {
    throw new Error(
      `Slots did not confirm the load's commit (end ${commitEnd}): ${
        lagging.replaceAll("\n", ", ")
      }`,
    );
  }
}

/** The error to print when one of `tools` is missing, else null. */
export async function missingTool(
  tools: readonly string[] = [PG_RECVLOGICAL, GNU_TIME, TIMEOUT],
): Promise<string | null> {
  for (const binary of tools) {
    if (!(await exists(binary))) return `${binary} is missing; install it`;
  }
  return null;
}

/** The median of `values`; NaN if there are none. */
export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The 1, 5 and 15 minute load averages, e.g. "0.12 0.30 0.41". */
export async function loadAverage(): Promise<string> {
  const text = await Deno.readTextFile("/proc/loadavg").catch(() => "");
  return text.split(" ").slice(0, 3).join(" ") || "unknown";
}

/** Whether `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Lays out a table: the first `textColumns` columns left-aligned, the rest right-aligned, two
 * spaces apart. Returns the lines, header first.
 */
export function formatTable(header: string[], rows: string[][], textColumns = 2): string[] {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((r) => r[i]!.length)));
  const format = (cells: string[]) =>
    cells.map((cell, i) => i >= textColumns ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))
      .join("  ").trimEnd();
  return [format(header), ...rows.map(format)];
}

/** The columns of the result tables that {@linkcode runCells} fills. */
export const RUN_COLUMNS: readonly string[] = [
  "rows/s",
  "seconds",
  "runs (s)",
  "process s",
  "CPU s",
  "peak RSS MB",
];

/**
 * The {@linkcode RUN_COLUMNS} cells of one tool's runs over `rows` rows: medians, the seconds of
 * every run, and the highest peak RSS. Returns the median rows/s too.
 */
export function runCells(
  runs: readonly RunTimes[],
  rows: number,
): { rate: number; cells: string[] } {
  const seconds = median(runs.map((run) => run.seconds));
  const rate = rows / seconds;
  return {
    rate,
    cells: [
      Math.round(rate).toLocaleString("en-US"),
      seconds.toFixed(2),
      runs.map((run) => run.seconds.toFixed(2)).join(" "),
      median(runs.map((run) => run.processSeconds)).toFixed(2),
      median(runs.map((run) => run.cpuSeconds)).toFixed(2),
      (Math.max(...runs.map((run) => run.peakRssKib)) / 1024).toFixed(0),
    ],
  };
}

/**
 * Prints the table of a race's timed runs: per mode, each tool's median of its `runs` (rows/s
 * over `rows`), then Spillway's ratio to pg_recvlogical; and a note on what the columns measure.
 * Returns each mode's rows/s per tool and the lowest of the modes' ratios.
 */
export function printRaceTable(
  modes: readonly { key: string; label: string }[],
  runs: readonly TimedRun<unknown>[],
  rows: number,
): { rates: Record<string, Record<Tool, number>>; lowestRatio: number } {
  const header = ["mode", "tool", ...RUN_COLUMNS];
  const lines: string[][] = [];
  const ratios: number[] = [];
  const allRates: Record<string, Record<Tool, number>> = {};
  for (const mode of modes) {
    const rates: Record<Tool, number> = { spillway: 0, pg_recvlogical: 0 };
    for (const tool of ["spillway", "pg_recvlogical"] as const) {
      const { rate, cells } = runCells(
        runs.filter((run) => run.mode === mode.key && run.tool === tool),
        rows,
      );
      rates[tool] = rate;
      lines.push([mode.label, tool, ...cells]);
    }
    const ratio = rates.spillway / rates.pg_recvlogical;
    ratios.push(ratio);
    allRates[mode.key] = rates;
    lines.push([mode.label, "ratio", `${ratio.toFixed(2)}x`, "", "", "", "", ""]);
  }
  for (const line of formatTable(header, lines)) console.log(line);
  console.log(
    "seconds: Spillway connect -> commit confirmed; pg_recvlogical process start -> exit. " +
      "CPU s: client process user+sys (GNU time, median). Peak RSS: GNU time, max of runs.",
  );
  return { rates: allRates, lowestRatio: Math.min(...ratios) };
}

/** Writes a benchmark's results to `bench/out/NAME.json`. */
export function writeResults(name: string, results: unknown): void {
  Deno.writeTextFileSync(join(OUT_DIR, `${name}.json`), JSON.stringify(results, null, 2) + "\n");
}

/** Progress on stderr, e.g. `[bench decode] …`. */
export function progressFor(bench: string): (message: string) => void {
  return (message) => console.error(`[bench ${bench}] ${message}`);
}
