/**
 * Helpers shared by the processes the benchmarks spawn and time (`bench/_drain.ts`,
 * `bench/_types_drain.ts`, `bench/_pipeline_run.ts`): the options naming the slot and where to
 * stop, the replication connection, the loop that drains a slot up to a commit, this process's
 * peak RSS, and printing the result as one JSON line. It keeps the drivers' helpers
 * (`bench/_common.ts`) and the test harness out of the processes being measured.
 *
 * @module
 */

import { PgConnection } from "../postgres/connection.ts";
import { formatLsn, type Lsn, parseLsn } from "../decoder/lsn.ts";
import type { XLogData } from "../decoder/replication.ts";
import type { ReplicationStream } from "../postgres/stream.ts";
import type { TransactionAssembler } from "../source/assembler.ts";
import type { StreamItem } from "../events.ts";

/** The `parseArgs` options every drain takes: the slot, and the commit to stop at. */
export const DRAIN_OPTIONS = {
  port: { type: "string" },
  slot: { type: "string" },
  xid: { type: "string" },
  "end-lsn": { type: "string" },
} as const;

/** Where a drain connects and the commit it stops at. */
export interface DrainTarget {
  port: number;
  slot: string;
  /** The 32-bit xid of the load's transaction. */
  xid: number;
  /** The load's end: the commit must not end after it. */
  endLsn: Lsn;
}

/** The {@linkcode DrainTarget} of parsed {@linkcode DRAIN_OPTIONS}; throws if one is missing. */
export function drainTarget(
  values: { port?: string; slot?: string; xid?: string; "end-lsn"?: string },
): DrainTarget {
  for (const name of ["port", "slot", "xid", "end-lsn"] as const) {
    if (values[name] === undefined) throw new Error(`Cannot drain: option "--${name}" is required`);
  }
  return {
    port: Number(values.port),
    slot: values.slot!,
    xid: Number(values.xid),
    endLsn: parseLsn(values["end-lsn"]!),
  };
}

/** Connects to the server on `port` as a logical walsender (`postgres`, no TLS). */
export function connectReplication(port: number, applicationName: string): Promise<PgConnection> {
  return PgConnection.connect({
    host: "127.0.0.1",
    port,
    user: "postgres",
    database: "postgres",
    sslmode: "disable",
    replication: "database",
    applicationName,
  });
}

/** A sink that remembers the last commit that went through it. */
export interface CommitSink {
  write(item: StreamItem): void;
  readonly endOf: { xid: number; endLsn: Lsn } | null;
}

/** What {@linkcode drainToCommit} received. */
export interface Drained {
  /** XLogData messages received. */
  messages: number;
  /** Bytes of pgoutput payload received (XLogData data, without headers). */
  payloadBytes: number;
  /** `performance.now()` when the commit had gone through the sink. */
  committedAt: number;
}

/**
 * Feeds every XLogData of `stream` through `assembler` into `sink` (calling `onMessage` with it
 * first) until the commit of transaction `target.xid` has gone through; then confirms that
 * commit, which must not end after `target.endLsn`, and ends the copy.
 */
export async function drainToCommit(
  stream: ReplicationStream,
  assembler: TransactionAssembler,
  sink: CommitSink,
  target: DrainTarget,
  onMessage: (xlog: XLogData) => void,
): Promise<Drained> {
  let messages = 0;
  let payloadBytes = 0;
  while (sink.endOf?.xid !== target.xid) {
    const batch = await stream.nextBatch();
    if (batch === null) {
      throw new Error(
        `The replication stream ended before the commit of transaction ${target.xid}`,
      );
    }
    for (const xlog of batch) {
      messages++;
      payloadBytes += xlog.data.byteLength;
      onMessage(xlog);
      for (const item of assembler.push(xlog.walStart, xlog.data)) sink.write(item);
      if (sink.endOf?.xid === target.xid) break;
    }
  }
  const committedAt = performance.now();
  const end = sink.endOf!;
  if (end.endLsn > target.endLsn) {
    throw new Error(
      `The commit of transaction ${target.xid} ends at ${
        formatLsn(end.endLsn)
      }, after the end position ${formatLsn(target.endLsn)}`,
    );
  }
  stream.confirm(end.endLsn);
  await stream.stop();
  return { messages, payloadBytes, committedAt };
}

/** Peak resident set size of this process from /proc/self/status, in KiB (0 if unknown). */
export function readVmHwmKib(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Runs a full garbage collection when V8 exposes `gc` (`--v8-flags=--expose-gc`). */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** The q-quantile (0..1) of sorted values, nearest rank; NaN if there are none. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/**
 * Prints what `run` returns as one JSON line on stdout. If it throws, prints the error on
 * stderr and sets exit code 1; if it takes more than `timeoutMs`, prints `timeoutMessage` and
 * exits with 1.
 */
export async function printResult(
  run: () => Promise<unknown>,
  timeoutMs: number,
  timeoutMessage: string,
): Promise<void> {
  const timer = setTimeout(() => {
    console.error(timeoutMessage);
    Deno.exit(1);
  }, timeoutMs);
  try {
    console.log(JSON.stringify(await run()));
  } catch (error) {
    console.error(error instanceof Error ? error.stack ?? error.message : String(error));
    Deno.exitCode = 1;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `SPILLWAY_BENCH_EXTRA_YAML`: top-level lines added to the pipeline files the benches write,
 * separated by `;` (e.g. `queue: { capacity: 500 };spill: { memory_limit: 16MB }`), for probes.
 */
export function extraYamlLines(): string[] {
  return (Deno.env.get("SPILLWAY_BENCH_EXTRA_YAML") ?? "").split(";").filter((line) => line !== "");
}
