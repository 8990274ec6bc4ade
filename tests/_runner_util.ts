/**
 * Test-only helpers shared by `runner_test.ts`, `crash_test.ts` and other integration tests:
 * polling and expected failures, a recording sink whose writes can be held open, a recording
 * logger, pipeline YAML text, slot positions, server logs, JSON-lines files, and `spillway run`
 * as a subprocess.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { PgConnection } from "../postgres/connection.ts";
import { type Lsn, parseLsn } from "../decoder/lsn.ts";
import type { Logger } from "../ops/log.ts";
import type { Sink, SinkStatus, WriteOptions } from "../sinks/types.ts";
import type { SinkRecord } from "../events.ts";
import type { PgServer } from "../testing/embedded_postgres.ts";
import { sqlConnection } from "./_replication.ts";

export const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
export const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** True when env `SPILLWAY_SOAK=1` asks for the long versions of the tests. */
export const SOAK = Deno.env.get("SPILLWAY_SOAK") === "1";

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve function. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

/** Polls `check` until it holds; fails with `what` (and `detail()`) after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; intervalMs?: number; detail?: () => string | Promise<string> } =
    {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      const detail = options.detail ? `\n${await options.detail()}` : "";
      assert.fail(`Timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(options.intervalMs ?? 50);
  }
}

/** Runs `body`, expecting it to throw; returns the error. */
export async function failure(body: () => Promise<unknown>): Promise<Error> {
  try {
    await body();
  } catch (error) {
    assert.ok(error instanceof Error, `Expected an Error, got ${String(error)}`);
    return error;
  }
  assert.fail("Expected a failure, but it succeeded");
}

// ---------------------------------------------------------------------------------------------
// A sink for in-process runners

/**
 * Keeps every record it is given. `hold()` makes writes wait (not resolve, so not durable)
 * until the returned release function is called: the runner must not confirm past them.
 */
export class RecordingSink implements Sink {
  readonly name: string;
  readonly records: SinkRecord[] = [];
  /** Calls of write(), including one still held. */
  writes = 0;
  /** True while a write() call has not resolved yet. */
  writing = false;
  /** Per write(): whether it had to be durable, and how many commit records it held. */
  readonly writeLog: { durable: boolean; commits: number }[] = [];
  /** Largest number of records handed to one write(). */
  largestWrite = 0;
  /** Called at the start of every write(), e.g. to sample the runner's state. */
  onWrite: ((records: readonly SinkRecord[]) => void) | null = null;
  #gate: Promise<void> | null = null;
  #failures = 0;

  constructor(name = "recording") {
    this.name = name;
  }

  open(): Promise<void> {
    return Promise.resolve();
  }

  async write(records: readonly SinkRecord[], options?: WriteOptions): Promise<void> {
    this.writes++;
    this.writeLog.push({
      durable: options?.durable !== false,
      commits: records.filter((record) => record.kind === "commit").length,
    });
    this.writing = true;
    this.onWrite?.(records);
    this.largestWrite = Math.max(this.largestWrite, records.length);
    try {
      while (this.#gate !== null) await this.#gate;
      if (this.#failures > 0) {
        this.#failures--;
        throw Object.assign(new Error("Cannot write: the sink is briefly unavailable (test)"), {
          retriable: true,
        });
      }
      // Kept only once durable, as a real sink would.
      this.records.push(...records);
    } finally {
      this.writing = false;
    }
  }

  /** Holds every write from now on until the returned function is called. */
  hold(): () => void {
    const gate = deferred();
    this.#gate = gate.promise;
    return () => {
      if (this.#gate === gate.promise) this.#gate = null;
      gate.resolve();
    };
  }

  /**
   * Fails the next `count` writes (once released, if held) with a retriable error, keeping
   * none of their records.
   */
  failNext(count: number): void {
    this.#failures = count;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  status(): SinkStatus {
    return { state: "ok", written: this.records.length };
  }

  /** The change records kept so far. */
  changes(): Extract<SinkRecord, { kind: "change" }>[] {
    return this.records.filter((record) => record.kind === "change");
  }

  /** The commit records kept so far. */
  commits(): Extract<SinkRecord, { kind: "commit" }>[] {
    return this.records.filter((record) => record.kind === "commit");
  }
}

/** A logger that keeps its lines (and can echo them when `SPILLWAY_TEST_LOG=1`). */
export function recordingLogger(): Logger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const echo = Deno.env.get("SPILLWAY_TEST_LOG") === "1";
  const log = ((level: string, message: string, fields?: Record<string, unknown>) => {
    lines.push({ level, message });
    if (echo) console.error(`[runner ${level}] ${message} ${JSON.stringify(fields ?? {})}`);
  }) as Logger & { lines: typeof lines };
  log.lines = lines;
  return log;
}

// ---------------------------------------------------------------------------------------------
// Pipeline YAML

/** Options of {@linkcode pipelineYaml}. */
export interface PipelineYamlOptions {
  name: string;
  url: string;
  slot: string;
  publication: string;
  /** `tables:` entries: pattern → flow-map text, e.g. `{ toast: omit }`. */
  tables: Record<string, string>;
  /** `heartbeat:` value; default `off`. */
  heartbeat?: string;
  /** More `source:` keys, as `key: value` text. */
  source?: Record<string, string>;
  /** `sinks:` list items as flow text, e.g. `file: { path: out.jsonl }`; default stdout json. */
  sinks?: string[];
  /** `queue:` flow map, e.g. `{ capacity: 100 }`. */
  queue?: string;
  /** `log:` flow map; default `{ level: info, format: text }`. */
  log?: string;
}

/** Pipeline YAML text; build configs from it with `parsePipelineConfig`, or write it to a file. */
export function pipelineYaml(options: PipelineYamlOptions): string {
  const lines = [
    `name: ${options.name}`,
    "source:",
    `  url: ${JSON.stringify(options.url)}`,
    `  slot: ${options.slot}`,
    `  publication: ${options.publication}`,
    `  heartbeat: ${options.heartbeat ?? "off"}`,
  ];
  for (const [key, value] of Object.entries(options.source ?? {})) lines.push(`  ${key}: ${value}`);
  lines.push("tables:");
  for (const [pattern, value] of Object.entries(options.tables)) {
    lines.push(`  ${JSON.stringify(pattern)}: ${value}`);
  }
  lines.push("sinks:");
  for (const sink of options.sinks ?? ["stdout: { format: json }"]) lines.push(`  - ${sink}`);
  if (options.queue) lines.push(`queue: ${options.queue}`);
  lines.push("http: off");
  lines.push(`log: ${options.log ?? "{ level: info, format: text }"}`);
  return `${lines.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------
// SQL polling

/**
 * A SQL session for polling that survives server restarts: a failed query reconnects once
 * and runs again.
 */
export class Poller {
  readonly #pg: PgServer;
  readonly #database: string;
  #connection: PgConnection | null = null;
  /** Statements that failed and were run again on a new connection. */
  retries = 0;

  constructor(pg: PgServer, database = "postgres") {
    this.#pg = pg;
    this.#database = database;
  }

  async rows(sql: string): Promise<Record<string, string | null>[]> {
    for (let attempt = 1;; attempt++) {
      try {
        this.#connection ??= await sqlConnection(this.#pg, { database: this.#database });
        return await this.#connection.queryObjects(sql);
      } catch (error) {
        this.#connection?.destroy();
        this.#connection = null;
        if (attempt >= 5) throw error;
        this.retries++;
        await sleep(300);
      }
    }
  }

  async value(sql: string): Promise<string | null> {
    const [row] = await this.rows(sql);
    return row === undefined ? null : Object.values(row)[0] ?? null;
  }

  async close(): Promise<void> {
    await this.#connection?.close().catch(() => {});
    this.#connection = null;
  }
}

/** A slot's positions, and the server's current WAL position. */
export interface SlotPosition {
  confirmed: Lsn | null;
  restart: Lsn | null;
  active: boolean;
  activePid: number | null;
  current: Lsn;
}

export async function slotPosition(poller: Poller, slot: string): Promise<SlotPosition | null> {
  const [row] = await poller.rows(
    `SELECT confirmed_flush_lsn, restart_lsn, active, active_pid, pg_current_wal_lsn() AS current
       FROM pg_replication_slots WHERE slot_name = '${slot}'`,
  );
  if (row === undefined) return null;
  return {
    confirmed: row.confirmed_flush_lsn ? parseLsn(row.confirmed_flush_lsn) : null,
    restart: row.restart_lsn ? parseLsn(row.restart_lsn) : null,
    active: row.active === "t",
    activePid: row.active_pid ? Number(row.active_pid) : null,
    current: parseLsn(row.current ?? "0/0"),
  };
}

/** The end LSN of the WAL record that starts at `start` (pg_walinspect must be installed). */
export async function recordEnd(poller: Poller, start: string): Promise<Lsn> {
  const end = await poller.value(`SELECT end_lsn FROM pg_get_wal_record_info('${start}')`);
  assert.ok(end !== null, `no WAL record at ${start}`);
  return parseLsn(end);
}

/**
 * Transaction commit records that start at or after `from` and before `to`, from
 * pg_walinspect: (start LSN, end LSN, xid).
 */
export async function commitsBetween(
  poller: Poller,
  from: Lsn,
  to: Lsn,
): Promise<{ start: string; end: string; xid: string }[]> {
  if (to <= from) return [];
  const rows = await poller.rows(
    `SELECT start_lsn, end_lsn, xid FROM pg_get_wal_records_info('${lsnText(from)}', '${
      lsnText(to)
    }') WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%'`,
  );
  return rows.map((row) => ({
    start: row.start_lsn ?? "",
    end: row.end_lsn ?? "",
    xid: row.xid ?? "",
  }));
}

export function lsnText(value: bigint): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${
    (value & 0xffffffffn).toString(16).toUpperCase()
  }`;
}

/** Size of the server log now, to read only what follows later. */
export async function logSize(pg: PgServer): Promise<number> {
  return (await Deno.stat(pg.logFile)).size;
}

/** The server log written since `offset`. */
export async function logSince(pg: PgServer, offset: number): Promise<string> {
  const bytes = await Deno.readFile(pg.logFile);
  return new TextDecoder().decode(bytes.subarray(offset));
}

// ---------------------------------------------------------------------------------------------
// JSON-lines output files

/** A change line as the file sink writes it. */
export interface ChangeLine {
  topic: string;
  key: Record<string, unknown> | null;
  op: string;
  source: {
    schema: string;
    table: string;
    relid: number;
    lsn: string;
    commitLsn: string;
    xid: number;
    commitTime: string;
  };
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  unchanged: string[];
  type?: string;
}

/**
 * Reads a JSON-lines file. A last line without its newline (a write cut short by SIGKILL) is
 * reported as `torn` rather than parsed; every other line must parse.
 */
export async function readJsonLines(
  path: string,
): Promise<{ lines: ChangeLine[]; torn: string | null }> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { lines: [], torn: null };
    throw error;
  }
  const parts = text.split("\n");
  const last = parts.pop() ?? "";
  const lines = parts.map((line, index) => {
    try {
      return JSON.parse(line) as ChangeLine;
    } catch (error) {
      throw new Error(`${path}:${index + 1}: not JSON (${error}): ${line.slice(0, 200)}`);
    }
  });
  return { lines, torn: last === "" ? null : last };
}

// ---------------------------------------------------------------------------------------------
// `spillway run` as a subprocess

/** A running `deno run -A main.ts run <file>`; its stderr is collected as it comes. */
export class SpillwayProcess {
  stderr = "";
  readonly #child: Deno.ChildProcess;
  readonly #pumps: Promise<void>[];
  readonly startedAt = Date.now();
  exitCode: number | null = null;
  readonly exited: Promise<Deno.CommandStatus>;

  constructor(
    pipelineFile: string,
    options: { env?: Record<string, string>; args?: string[] } = {},
  ) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "run", pipelineFile, ...options.args ?? []],
      cwd: ROOT,
      env: options.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.exited = this.#child.status.then((status) => {
      this.exitCode = status.code;
      return status;
    });
    this.#pumps = [
      this.#pump(this.#child.stdout, () => {}),
      this.#pump(this.#child.stderr, (text) => this.stderr += text),
    ];
  }

  get pid(): number {
    return this.#child.pid;
  }

  async #pump(stream: ReadableStream<Uint8Array>, onText: (text: string) => void): Promise<void> {
    try {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) onText(text);
    } catch {
      // The process was killed; what arrived is kept.
    }
  }

  /** Waits until the log says streaming started (fails early if the process exits). */
  async started(timeoutMs = 20_000): Promise<void> {
    await waitFor("spillway run to start streaming", () => {
      if (this.exitCode !== null) {
        assert.fail(`spillway run exited with ${this.exitCode} before streaming:\n${this.stderr}`);
      }
      return this.stderr.includes("Streaming started");
    }, { timeoutMs, detail: () => this.stderr });
  }

  /** Sends `signal`; waits for the exit; returns the code and how long the exit took. */
  async stop(
    signal: Deno.Signal = "SIGINT",
    timeoutMs = 15_000,
  ): Promise<{ code: number; elapsedMs: number; signal: Deno.Signal | null }> {
    const started = Date.now();
    try {
      this.#child.kill(signal);
    } catch {
      // Already gone: its status says how.
    }
    const timer = setTimeout(() => this.#kill(), timeoutMs);
    try {
      const status = await this.exited;
      await Promise.all(this.#pumps);
      return { code: status.code, elapsedMs: Date.now() - started, signal: status.signal };
    } finally {
      clearTimeout(timer);
    }
  }

  #kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }

  /** Waits for an exit that comes by itself (with all of stderr); returns the code. */
  async finished(): Promise<number> {
    const status = await this.exited;
    await Promise.all(this.#pumps);
    return status.code;
  }

  /** SIGKILL, then waits for the process to be gone. */
  async kill(): Promise<void> {
    this.#kill();
    await this.exited;
    await Promise.all(this.#pumps);
  }
}
