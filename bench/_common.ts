/**
 * Helpers shared by the benchmarks that race Spillway against `pg_recvlogical`
 * (`bench/decode.ts`, `bench/types.ts`): timing a child process under GNU time, the load's
 * transaction, `pg_recvlogical`'s command line, the slot check and the result table.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { join } from "node:path";

/** The peer every benchmark compares against (PostgreSQL 15 client tools). */
export const PG_RECVLOGICAL = "/usr/bin/pg_recvlogical";
/** GNU time: peak RSS and CPU time of a child (`%M %U %S`). */
export const GNU_TIME = "/usr/bin/time";
export const TIMEOUT = "/usr/bin/timeout";
/** A drain that takes longer than this is killed. */
export const RUN_TIMEOUT_S = 600;
/** `bench/out/` (git-ignored): raw results, profiles, captures. */
export const OUT_DIR = fileURLToPath(new URL("./out/", import.meta.url));

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
 * Runs a command under GNU time (and `timeout`, which kills it after {@linkcode RUN_TIMEOUT_S}):
 * wall seconds from spawn to exit, CPU time and peak RSS. `PG*` variables are not passed on, so
 * `pg_recvlogical` gets the server's defaults, like Spillway.
 */
export async function timeProcess(
  command: string,
  args: string[],
  usageFile: string,
): Promise<Timed> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) if (name.startsWith("PG")) delete env[name];
  const started = performance.now();
  const child = new Deno.Command(GNU_TIME, {
    // deno-fmt-ignore
    args: ["-f", "%M %U %S", "-o", usageFile, TIMEOUT, "--signal=KILL", String(RUN_TIMEOUT_S),
      command, ...args],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = await child.output();
  const seconds = (performance.now() - started) / 1000;
  // GNU time writes "Command exited with non-zero status N" first when the command fails.
  const usage = (await Deno.readTextFile(usageFile).catch(() => "")).trim().split("\n").pop() ?? "";
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
 * `deno run` arguments for a drain script, with `--cpu-prof` into `bench/out/profiles/NAME`
 * when `cpuProfName` is given.
 */
export function denoRunArgs(script: string, cpuProfName?: string, v8Flags?: string): string[] {
  const flags = ["run", "-A"];
  if (v8Flags !== undefined) flags.push(`--v8-flags=${v8Flags}`);
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

/** `pg_recvlogical` arguments that drain `slot` up to `endLsn` into `output`. */
export function recvlogicalArgs(options: {
  port: number;
  slot: string;
  /** pgoutput options, each passed as `-o NAME=VALUE`. */
  pluginOptions: string[];
  endLsn: string;
  output: string;
}): string[] {
  // deno-fmt-ignore
  const args = [
    "--start", "-S", options.slot, "-d", "postgres", "-h", "127.0.0.1",
    "-p", String(options.port), "-U", "postgres", "--no-loop",
  ];
  for (const option of options.pluginOptions) args.push("-o", option);
  args.push("-F", "0", "-f", options.output, "-E", options.endLsn);
  return args;
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
  const [xid8, endLsn] = out.split("\n");
  if (xid8 === undefined || endLsn === undefined) {
    throw new Error(`Cannot read the load's xid and end LSN from psql output "${out}"`);
  }
  // pgoutput carries the 32-bit xid; pg_current_xact_id() adds the epoch above it.
  return { xid: Number(BigInt(xid8) & 0xffff_ffffn), endLsn, seconds };
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

/** The error to print when a tool the benchmarks need is missing, else null. */
export async function missingTool(): Promise<string | null> {
  for (const binary of [PG_RECVLOGICAL, GNU_TIME, TIMEOUT]) {
    if (!(await exists(binary))) return `${binary} is missing; install it`;
  }
  return null;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The 1, 5 and 15 minute load averages, e.g. "0.12 0.30 0.41". */
export async function loadAverage(): Promise<string> {
  const text = await Deno.readTextFile("/proc/loadavg").catch(() => "");
  return text.split(" ").slice(0, 3).join(" ") || "unknown";
}

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

/** Progress on stderr, e.g. `[bench decode] …`. */
export function progressFor(bench: string): (message: string) => void {
  return (message) => console.error(`[bench ${bench}] ${message}`);
}
