/**
 * Test-only helpers shared by `runner_test.ts`, `crash_test.ts` and other integration tests:
 * polling and expected failures, a recording sink whose writes can be held open, a recording
 * logger, an in-process runner, pipeline YAML text, a workload of numbered rows, slot positions
 * and where they must end, server logs, JSON-lines files, and `spillway run` (or any command)
 * as a subprocess.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { connectOptions, parsePipelineConfig } from "../config/mod.ts";
import type { PgConnection } from "../postgres/connection.ts";
import { formatLsn, type Lsn, parseLsn } from "../decoder/lsn.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import { TableFactsRegistry } from "../decoder/table_facts.ts";
import type { Logger } from "../ops/log.ts";
import type { HealthRegistry } from "../ops/health.ts";
import type { SpillwayMetrics } from "../ops/metrics.ts";
import { createDeadLetterSink, createSinks } from "../pipelines/run_pipeline.ts";
import type { TransformSource } from "../transforms/api.ts";
import type { TransformMetrics } from "../transforms/metrics.ts";
import { PipelineRunner } from "../pipelines/runner.ts";
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

/** A logger of {@linkcode recordingLogger}: a Logger with the lines it was given. */
export type RecordingLogger = Logger & { lines: { level: string; message: string }[] };

/** A logger that keeps its lines (and can echo them when `SPILLWAY_TEST_LOG=1`). */
export function recordingLogger(): RecordingLogger {
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
// An in-process runner

/** Options of {@linkcode startRunner}. */
export interface RunnerOptions {
  /** The file the YAML is said to come from: relative sink paths are in its folder. */
  file?: string;
  /** The sinks to write to; default: the ones the configuration names. */
  sinks?: Sink[];
  /** Default: a new {@linkcode recordingLogger}. */
  log?: RecordingLogger;
  /** Metrics for the runner to update; default none. */
  metrics?: SpillwayMetrics;
  /** The dead-letter sink; default: the one the configuration implies (see run_pipeline.ts). */
  deadLetter?: Sink | null;
  /** The transforms' metrics; default none. */
  transformMetrics?: TransformMetrics;
  /** Where the runner registers its health checks; default none. */
  health?: HealthRegistry;
}

/** An in-process runner, its log, and a way to stop it. */
export interface Running {
  runner: PipelineRunner;
  log: RecordingLogger;
  /** Settles when the run ends: the error it failed with, or null. */
  ended: Promise<unknown>;
  /** Aborts the run (gracefully) and waits for it to end; rethrows a failure of the run. */
  stop(): Promise<void>;
}

/** Parses `yaml` (env empty), starts a {@linkcode PipelineRunner} and waits for streaming. */
export async function startRunner(yaml: string, options: RunnerOptions = {}): Promise<Running> {
  const config = parsePipelineConfig(yaml, { file: options.file ?? "test.yaml", env: {} });
  const log = options.log ?? recordingLogger();
  const controller = new AbortController();
  const types = new TypeRegistry();
  const tables = new TableFactsRegistry();
  const runner = new PipelineRunner({
    config,
    log,
    sinks: options.sinks ??
      await createSinks(config, types, log, { tables, database: connectOptions(config).database }),
    types,
    tables,
    metrics: options.metrics,
    signal: controller.signal,
    deadLetter: options.deadLetter === undefined
      ? await createDeadLetterSink(config, types)
      : options.deadLetter,
    transformMetrics: options.transformMetrics,
    health: options.health,
  });
  let done = false;
  const ended = runner.run().then(() => null, (error) => error).finally(() => done = true);
  const stop = async () => {
    controller.abort();
    const error = await ended;
    if (error !== null) throw error;
  };
  try {
    await waitFor("the runner to start streaming", async () => {
      if (done) assert.fail(`The runner ended before streaming: ${await ended}`);
      return runner.source?.stream != null;
    });
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
  return { runner, log, ended, stop };
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

/**
 * The YAML of pipeline `name` over table `${name}_items` alone, through slot `${name}_slot` and
 * publication `${name}_pub`; `options` add to it or override it (sinks, source keys…).
 */
export function itemsPipelineYaml(
  pg: PgServer,
  name: string,
  options: Partial<PipelineYamlOptions> = {},
): string {
  return pipelineYaml({
    name,
    url: pg.url(),
    slot: `${name}_slot`,
    publication: `${name}_pub`,
    tables: { [`public.${name}_items`]: "{}" },
    ...options,
  });
}

/**
 * Drops what pipeline `name` of {@linkcode itemsPipelineYaml} leaves behind: its slot once
 * released (a failure to is ignored), its table and its publication.
 */
export async function dropItemsPipeline(pg: PgServer, poller: Poller, name: string): Promise<void> {
  await dropSlot(poller, `${name}_slot`).catch(() => {});
  await pg.psql(`DROP TABLE IF EXISTS ${name}_items; DROP PUBLICATION IF EXISTS ${name}_pub;`);
}

// ---------------------------------------------------------------------------------------------
// A workload of numbered rows

/**
 * `count` transactions of `size` rows into `table` (id, value), ids from `first`; the value is
 * the SQL expression `value` of the id `g` (default `'v' || g`). Through a {@linkcode Poller},
 * one statement at a time, `pauseMs` apart; through a server's psql, all in one call.
 */
export async function insertTransactions(
  via: Poller | PgServer,
  table: string,
  options: { first: number; count: number; size: number; pauseMs?: number; value?: string },
): Promise<void> {
  const value = options.value ?? "'v' || g";
  const statements = Array.from({ length: options.count }, (_, i) => {
    const from = options.first + i * options.size;
    return `INSERT INTO ${table} SELECT g, ${value} FROM generate_series(${from}, ${
      from + options.size - 1
    }) g`;
  });
  if (via instanceof Poller) {
    for (const statement of statements) {
      await via.rows(statement);
      if (options.pauseMs) await sleep(options.pauseMs);
    }
  } else {
    await via.psql(statements.map((statement) => `${statement};`).join("\n"));
  }
}

/** The `id` of each line's new row. */
export function ids(lines: ChangeLine[]): number[] {
  return lines.map((line) => Number(line.after?.id));
}

/** `first`, `first + 1`, … `last`. */
export function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
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

/** Waits until the slot's confirmed position reaches `target`; returns what it is then. */
export async function confirmedReaches(
  poller: Poller,
  slot: string,
  target: Lsn,
  what = `slot ${slot} to confirm ${formatLsn(target)}`,
): Promise<Lsn> {
  let confirmed: Lsn | null = null;
  await waitFor(what, async () => {
    confirmed = (await slotPosition(poller, slot))?.confirmed ?? null;
    return confirmed !== null && confirmed >= target;
  }, {
    detail: () => `confirmed_flush_lsn: ${confirmed === null ? "null" : formatLsn(confirmed)}`,
  });
  return confirmed!;
}

/** The slot's confirmed position once no walsender holds it. */
export async function releasedConfirmed(poller: Poller, slot: string): Promise<Lsn> {
  await waitFor(`slot ${slot} to be released`, async () => {
    const position = await slotPosition(poller, slot);
    return position !== null && !position.active;
  });
  return (await slotPosition(poller, slot))!.confirmed!;
}

/**
 * `confirmed` is at least `lastEnd` (the end of the last commit written) and passes no commit
 * after it: an idle stream may confirm WAL without transactions (such as a running-xacts
 * record), never a commit it did not write. pg_walinspect must be installed.
 */
export async function assertAtLastWritten(
  poller: Poller,
  confirmed: Lsn,
  lastEnd: Lsn,
): Promise<void> {
  assert.ok(
    confirmed >= lastEnd,
    `confirmed_flush_lsn ${formatLsn(confirmed)} is behind the last commit written (${
      formatLsn(lastEnd)
    })`,
  );
  const passed = await commitsBetween(poller, lastEnd, confirmed);
  assert.deepEqual(
    passed,
    [],
    `confirmed_flush_lsn ${formatLsn(confirmed)} passed commits after the last one written (${
      formatLsn(lastEnd)
    })`,
  );
}

/** Drops the slot once no walsender holds it (or it is gone already). */
export async function dropSlot(poller: Poller, slot: string): Promise<void> {
  await waitFor(`slot ${slot} to be released`, async () => {
    const position = await slotPosition(poller, slot);
    return position === null || !position.active;
  });
  await poller.rows(
    `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}'`,
  );
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

/**
 * The `source` of a change line (as the file sink or `spillway tail` prints it): the text form a
 * transform sees too.
 */
export type ChangeSource = TransformSource;

/** A change line as the file sink writes it. */
export interface ChangeLine {
  topic: string;
  key: Record<string, unknown> | null;
  op: string;
  source: ChangeSource;
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
// `spillway run`, or any command, as a subprocess

/**
 * What becomes of a child's stdout: read and dropped (`"drain"`), kept in `stdout`
 * (`"collect"`), left in its pipe until {@linkcode Subprocess.readStdout} (`"unread"`: once the
 * pipe is full, the child's writes block), or not a pipe at all (`"null"`).
 */
export type StdoutMode = "drain" | "collect" | "unread" | "null";

/** Options of {@linkcode Subprocess}. */
export interface SubprocessOptions {
  /** Added to the environment it inherits. */
  env?: Record<string, string>;
  /** Default `"drain"`. */
  stdout?: StdoutMode;
  /** What failure messages call it; default `spillway run`. */
  name?: string;
}

/** A running command, started in the repository root; its stderr is collected as it comes. */
export class Subprocess {
  stderr = "";
  /** What stdout said so far, with `stdout: "collect"`. */
  stdout = "";
  readonly #child: Deno.ChildProcess;
  readonly #pumps: Promise<void>[];
  readonly #name: string;
  readonly #stdout: StdoutMode;
  readonly startedAt = Date.now();
  exitCode: number | null = null;
  readonly exited: Promise<Deno.CommandStatus>;

  constructor(command: string, args: string[], options: SubprocessOptions = {}) {
    const stdout = options.stdout ?? "drain";
    this.#stdout = stdout;
    this.#name = options.name ?? "spillway run";
    this.#child = new Deno.Command(command, {
      args,
      cwd: ROOT,
      env: options.env,
      stdin: "null",
      stdout: stdout === "null" ? "null" : "piped",
      stderr: "piped",
    }).spawn();
    this.exited = this.#child.status.then((status) => {
      this.exitCode = status.code;
      return status;
    });
    this.#pumps = [this.#pump(this.#child.stderr, (text) => this.stderr += text)];
    if (stdout === "drain") this.#pumps.push(this.#pump(this.#child.stdout, () => {}));
    if (stdout === "collect") {
      this.#pumps.push(this.#pump(this.#child.stdout, (text) => this.stdout += text));
    }
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
    await waitFor(`${this.#name} to start streaming`, () => {
      if (this.exitCode !== null) {
        assert.fail(`${this.#name} exited with ${this.exitCode} before streaming:\n${this.stderr}`);
      }
      return this.stderr.includes("Streaming started");
    }, { timeoutMs, detail: () => this.stderr });
  }

  /** Sends `signal`, unless the process is gone already. */
  signal(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // Already gone: its status says how.
    }
  }

  /** Sends `signal`; waits for the exit; returns the code and how long the exit took. */
  async stop(
    signal: Deno.Signal = "SIGINT",
    timeoutMs = 15_000,
  ): Promise<{ code: number; elapsedMs: number; signal: Deno.Signal | null }> {
    const started = Date.now();
    this.signal(signal);
    const timer = setTimeout(() => this.signal("SIGKILL"), timeoutMs);
    try {
      const status = await this.exited;
      await Promise.all(this.#pumps);
      return { code: status.code, elapsedMs: Date.now() - started, signal: status.signal };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for an exit that comes by itself (with all of stderr); returns the code. */
  async finished(): Promise<number> {
    const status = await this.exited;
    await Promise.all(this.#pumps);
    return status.code;
  }

  /** With `stdout: "unread"`: all that stdout holds, read to its end (the process gone). */
  readStdout(): Promise<string> {
    return new Response(this.#child.stdout).text();
  }

  /** SIGKILL, then waits for the process to be gone (and lets go of an unread stdout). */
  async kill(): Promise<void> {
    this.signal("SIGKILL");
    await this.exited;
    await Promise.all(this.#pumps);
    if (this.#stdout === "unread" && !this.#child.stdout.locked) {
      await this.#child.stdout.cancel().catch(() => {});
    }
  }
}

/** A running `deno run -A main.ts run <file> [args…]`. */
export class SpillwayProcess extends Subprocess {
  constructor(
    pipelineFile: string,
    options: { env?: Record<string, string>; args?: string[]; stdout?: StdoutMode } = {},
  ) {
    super(
      Deno.execPath(),
      ["run", "-A", MAIN, "run", pipelineFile, ...options.args ?? []],
      options,
    );
  }
}
