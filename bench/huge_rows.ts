/**
 * `deno task bench huge`: one huge row change, Spillway against `pg_recvlogical`, measured in
 * the same run.
 *
 * One PostgreSQL 17 server (test harness; 1GB of shared buffers, PostgreSQL's default
 * `logical_decoding_work_mem` of 64MB, so the big transactions spill to disk in the walsender)
 * gets a table `huge_rows (id int PRIMARY KEY, v text)` whose `v` has `STORAGE EXTERNAL` (stored
 * out of line, uncompressed: the WAL and the decoding carry every byte), and a publication
 * `huge_pub` for it. The value is a 1,000-character string of hex digits (md5 sums) repeated to
 * the case's size. Cases:
 *
 * - (a) a 40 MB value (40,000,000 bytes);
 * - (b) a 1 GB value (1,000,000,000 bytes: with the message's headers it stays below the 1 GiB
 *   that PostgreSQL allots to one value and to one message);
 * - (b2) a 500 MB value, just under the longest string V8 makes (2^29 - 24 characters, about
 *   537 million): Spillway decodes a text value into one string, so it cannot deliver (b) and
 *   fails there once the message has arrived; (b2) measures the largest value it can deliver;
 * - (c) the 1 GB value again, read by Spillway with `maxMessageBytes` (`ConnectOptions`) of
 *   64 MiB: the message is refused as soon as its header arrives. pg_recvlogical has no such
 *   limit, so that case has no peer.
 *
 * Each measurement has a fresh slot, created just before, and a reader that is streaming from it
 * (its walsender in state `streaming`) before the row is inserted. The driver then inserts the row
 * in a transaction of its own on its own connection and takes the time the COMMIT returns. The
 * readers, with the same pgoutput options (`proto_version '1'`, `publication_names 'huge_pub'`):
 *
 * - Spillway: this file run as its own process (`--reader`), reading through
 *   {@linkcode ReplicationSource} with its default `maxMessageBytes` (1 GiB plus headers), unless
 *   the case sets one. It takes the time the change event for the row is delivered by
 *   `batches()` (its value checked for length), or the time it fails, and reports its peak RSS
 *   (`VmHWM` of `/proc/self/status`) at the end.
 * - pg_recvlogical (`/usr/bin/pg_recvlogical -F 0 -f FILE`, FILE on tmpfs in `/dev/shm`): the
 *   driver polls the file's size every millisecond and takes the time it holds Begin, Relation
 *   and Insert (each followed by a newline; the sizes follow from the table's definition), reads
 *   the process's `VmHWM` then, stops it with SIGINT, and checks that the file ends with the
 *   Commit at exactly the size expected.
 *
 * Times are from the COMMIT returning in the driver to the change (both clocks are the
 * machine's wall clock, `performance.timeOrigin + performance.now()`); that includes the
 * walsender decoding the transaction's WAL and replaying it from its spill files, the same work
 * for both readers. A second time leaves that out: from the transaction's first message reaching
 * the reader (Spillway: its Begin item delivered; pg_recvlogical: its file no longer empty) to
 * the change. pgoutput sends Begin and Relation just before it builds the Insert, so this is the
 * walsender building and sending the message plus the reader receiving and decoding it. The
 * reader's own cost, which the server's time does not blur, is its CPU time (user + system of
 * all its threads, `/proc/<pid>/stat`) from the COMMIT returning to the change.
 *
 * After each measurement the reader is stopped, its slot dropped, the table truncated and a
 * checkpoint taken. Case (a) is measured `--reps` times per reader (default 3, alternating which
 * reader goes first; the table shows medians and the highest peak RSS), the ~1 GB cases once
 * each, Spillway first. Raw results go to `bench/out/huge_rows.json`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { PgConnection } from "../postgres/connection.ts";
import type { ConnectOptions } from "../postgres/connection_string.ts";
import { ReplicationSource } from "../source/replication_source.ts";
import { readVmHwmKib } from "./_drain_common.ts";

const TABLE = "huge_rows";
const PUBLICATION = "huge_pub";
const COLUMNS = ["id", "v"] as const;
const SCRIPT = fileURLToPath(import.meta.url);
/** How long one measurement may take, reader start to change, before it is given up. */
const MEASURE_TIMEOUT_MS = 15 * 60_000;
/** The value is this many characters (hex digits of md5 sums), repeated. */
const PIECE_CHARS = 1000;

/** One row change to measure. */
interface HugeCase {
  key: "a" | "b" | "b2" | "c";
  label: string;
  /** Bytes of the text value (a multiple of {@linkcode PIECE_CHARS}). */
  bytes: number;
  /** Spillway's `maxMessageBytes`; its default when absent. */
  maxMessageBytes?: number;
  /** Whether pg_recvlogical reads it too. */
  peer: boolean;
  /** Measurements per reader. */
  reps: number;
}

const MIB = 2 ** 20;

const CASES: readonly HugeCase[] = [
  { key: "a", label: "(a) 40 MB value", bytes: 40_000_000, peer: true, reps: 3 },
  { key: "b", label: "(b) 1 GB value", bytes: 1_000_000_000, peer: true, reps: 1 },
  { key: "b2", label: "(b2) 500 MB value", bytes: 500_000_000, peer: true, reps: 1 },
  {
    key: "c",
    label: "(c) 1 GB value, max 64 MiB",
    bytes: 1_000_000_000,
    maxMessageBytes: 64 * MIB,
    peer: false,
    reps: 1,
  },
];

const USAGE = `deno task bench huge [options]

Times one huge row change from COMMIT to the change received, and the reader's peak RSS,
Spillway (ReplicationSource) against pg_recvlogical: (a) a 40 MB text value, (b) a 1 GB value,
(b2) a 500 MB value (under V8's string length limit), (c) the 1 GB value with Spillway's
maxMessageBytes at 64 MiB (refused; no peer). Needs about 8 GB of free memory for (b).

Options:
  --quick       only case (a)
  --cases LIST  the cases to run, comma-separated, of a,b,b2,c (default all)
  --reps N      measurements per reader of case (a), 1-9 (default 3); the others run once`;

/** What the Spillway reader process prints as its last stdout line. */
export interface ReaderResult {
  /** The change event was delivered with a value of the expected length. */
  delivered: boolean;
  /** Epoch ms (sub-ms resolution) when the change was delivered or the reader failed. */
  atMs: number;
  /** Epoch ms when the row's transaction began (its Begin item was delivered), if it did. */
  beginAtMs: number | null;
  /** CPU time (user + system) of the reader process at `atMs`, in seconds. */
  cpuSeconds: number;
  /** Characters of the delivered value. */
  valueLength: number | null;
  /** The error that ended the reader, if one did. */
  error: string | null;
  /** Peak RSS of the reader process (VmHWM) at its end, in KiB. */
  vmHwmKib: number;
  reconnects: number;
}

/** One measurement of one reader. */
interface Measurement {
  case: HugeCase["key"];
  tool: "spillway" | "pg_recvlogical";
  rep: number;
  /** COMMIT returned → change received (or the reader failed), seconds. */
  seconds: number;
  /**
   * The transaction's first message reached the reader → change received (or failed), seconds:
   * without the walsender's decoding of the WAL before it. Null when not seen.
   */
  beginSeconds: number | null;
  /** CPU time (user + system) the reader process used from COMMIT returned to the change. */
  cpuSeconds: number;
  peakRssKib: number;
  /** "delivered", or "failed: …" / "refused: …" with the error. */
  outcome: string;
  ok: boolean;
  /** The INSERT before the COMMIT, seconds (context: the server's share). */
  insertSeconds: number;
  /** For Spillway: what its process printed. */
  reader?: ReaderResult;
}

/** The machine's wall clock in ms, with sub-millisecond resolution. */
function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

// ---------------------------------------------------------------------------------------------
// The Spillway reader (this file run with --reader)

interface ReaderOptions {
  port: number;
  slot: string;
  bytes: number;
  maxMessageBytes?: number;
}

/**
 * Reads the slot through {@linkcode ReplicationSource} until the change event of the table
 * arrives or the source fails; prints a {@linkcode ReaderResult} line.
 */
async function runReader(options: ReaderOptions): Promise<ReaderResult> {
  const connection: ConnectOptions = {
    host: "127.0.0.1",
    port: options.port,
    user: "postgres",
    database: "postgres",
    sslmode: "disable",
    applicationName: "spillway-bench-huge",
  };
  if (options.maxMessageBytes !== undefined) connection.maxMessageBytes = options.maxMessageBytes;
  const source = await ReplicationSource.open({
    connection,
    slot: options.slot,
    publication: PUBLICATION,
    // The options pg_recvlogical is given: proto_version 1, the publication, nothing else.
    protoVersion: 1,
    messages: false,
    reconnect: { maxAttempts: 1 },
  });
  let atMs = 0;
  let beginAtMs: number | null = null;
  let cpuSeconds = 0;
  let valueLength: number | null = null;
  let error: string | null = null;
  try {
    outer: for await (const batch of source.batches()) {
      for (const item of batch) {
        if (item.kind === "restart") throw new Error(`The source restarted: ${item.reason}`);
        if (item.kind === "begin") beginAtMs = epochMs();
        if (item.kind !== "change" || item.event.source.table !== TABLE) continue;
        atMs = epochMs();
        cpuSeconds = cpuSecondsOf("self");
        const value = item.event.after?.v;
        valueLength = typeof value === "string" ? value.length : null;
        break outer;
      }
    }
    if (atMs === 0) throw new Error("The stream ended before the change arrived");
  } catch (failure) {
    atMs = epochMs();
    cpuSeconds = cpuSecondsOf("self");
    error = failure instanceof Error ? `${failure.name}: ${failure.message}` : String(failure);
  }
  const reconnects = source.reconnects;
  await source.close().catch(() => {});
  return {
    delivered: error === null && valueLength === options.bytes,
    atMs,
    beginAtMs,
    cpuSeconds,
    valueLength,
    error,
    vmHwmKib: readVmHwmKib(),
    reconnects,
  };
}

function parseReaderArgs(args: string[]): ReaderOptions {
  const { values } = parseArgs({
    args,
    options: {
      reader: { type: "boolean", default: false },
      port: { type: "string" },
      slot: { type: "string" },
      bytes: { type: "string" },
      "max-message-bytes": { type: "string" },
    },
    strict: true,
  });
  if (values.port === undefined || values.slot === undefined || values.bytes === undefined) {
    throw new Error("The reader needs --port, --slot and --bytes");
  }
  const maxMessageBytes = values["max-message-bytes"];
  return {
    port: Number(values.port),
    slot: values.slot,
    bytes: Number(values.bytes),
    maxMessageBytes: maxMessageBytes === undefined ? undefined : Number(maxMessageBytes),
  };
}

// ---------------------------------------------------------------------------------------------
// The driver

/** Runs the huge-rows benchmark; returns the exit code. */
export async function hugeRowsBench(args: string[]): Promise<number> {
  // The driver's helpers and the test harness are loaded here, not in the reader processes.
  const common = await import("./_common.ts");
  const values = common.parseBenchArgs("huge", USAGE, () =>
    parseArgs({
      args,
      options: {
        quick: { type: "boolean", default: false },
        cases: { type: "string" },
        reps: { type: "string", default: "3" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }).values);
  if (typeof values === "number") return values;
  const reps = Number(values.reps);
  const invalidReps = common.invalidCount("reps", reps, 9);
  if (invalidReps !== null) return common.cannotRun("huge", invalidReps);
  let keys: string[] = values.quick ? ["a"] : CASES.map((c) => c.key);
  if (values.cases !== undefined) {
    if (values.quick) return common.cannotRun("huge", `--quick and --cases exclude each other`);
    keys = values.cases.split(",").map((key) => key.trim());
    const unknown = keys.find((key) => !CASES.some((c) => c.key === key));
    if (unknown !== undefined) {
      return common.cannotRun("huge", `there is no case "${unknown}" (a, b, b2, c)\n\n${USAGE}`);
    }
  }
  const cases = CASES.filter((c) => keys.includes(c.key))
    .map((c) => c.key === "a" ? { ...c, reps } : c);
  const missing = await common.missingTool([common.PG_RECVLOGICAL]);
  if (missing !== null) return common.cannotRun("huge", missing);
  await Deno.mkdir(common.OUT_DIR, { recursive: true });
  const results = await measure(cases, common);
  printResults(results, common.formatTable);
  common.writeResults("huge_rows", { date: new Date().toISOString(), ...results });
  return 0;
}

type Common = typeof import("./_common.ts");

interface Results {
  loadBefore: string;
  loadAfter: string;
  serverVersion: string;
  recvlogicalVersion: string;
  cases: HugeCase[];
  measurements: Measurement[];
}

/** The server, the driver's SQL connection and where pg_recvlogical writes. */
interface Context {
  port: number;
  sql: PgConnection;
  work: string;
  common: Common;
  progress: (message: string) => void;
  nextId: number;
}

async function measure(cases: HugeCase[], common: Common): Promise<Results> {
  const progress = common.progressFor("huge");
  const loadBefore = await common.loadAverage();
  progress(`Starting PostgreSQL 17 (load average ${loadBefore})`);
  await using pg = await common.startBenchPostgres({ shared_buffers: "1GB" });
  const sql = await PgConnection.connect({
    host: "127.0.0.1",
    port: pg.port,
    user: "postgres",
    database: "postgres",
    sslmode: "disable",
    applicationName: "spillway-bench-huge-driver",
  });
  const work = await makeWorkDir();
  const measurements: Measurement[] = [];
  try {
    const [version] = await sql.queryObjects("SHOW server_version");
    const serverVersion = version?.server_version ?? "unknown";
    await sql.query(`
      CREATE TABLE ${TABLE} (id int PRIMARY KEY, v text);
      ALTER TABLE ${TABLE} ALTER COLUMN v SET STORAGE EXTERNAL;
      CREATE PUBLICATION ${PUBLICATION} FOR TABLE ${TABLE};
    `);
    const context: Context = { port: pg.port, sql, work, common, progress, nextId: 1 };
    for (const kase of cases) {
      const tools: Measurement["tool"][] = kase.peer ? ["spillway", "pg_recvlogical"] : [
        "spillway",
      ];
      for (let rep = 1; rep <= kase.reps; rep++) {
        const order = rep % 2 === 1 ? tools : [...tools].reverse();
        for (const tool of order) {
          const measurement = await measureOne(context, kase, tool, rep);
          measurements.push(measurement);
          progress(
            `${kase.label} ${tool} rep ${rep}: ${measurement.seconds.toFixed(3)} s, peak RSS ${
              (measurement.peakRssKib / 1024).toFixed(0)
            } MB, ${measurement.outcome} (insert ${measurement.insertSeconds.toFixed(1)} s)`,
          );
        }
      }
    }
    return {
      loadBefore,
      loadAfter: await common.loadAverage(),
      serverVersion,
      recvlogicalVersion: await recvlogicalVersion(common.PG_RECVLOGICAL),
      cases,
      measurements,
    };
  } finally {
    await sql.close();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** A directory for pg_recvlogical's output: on tmpfs (`/dev/shm`) when there is one. */
async function makeWorkDir(): Promise<string> {
  try {
    return await Deno.makeTempDir({ dir: "/dev/shm", prefix: "spillway-bench-huge-" });
  } catch {
    return await Deno.makeTempDir({ prefix: "spillway-bench-huge-" });
  }
}

async function recvlogicalVersion(binary: string): Promise<string> {
  const out = await new Deno.Command(binary, { args: ["--version"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

/** A running reader: waits for its result once the row is committed, and stops. */
interface Reader {
  /** Ends when the reader process exits (a reader that is not streaming yet has failed). */
  exited: Promise<Deno.CommandStatus>;
  /** The measurement's time, peak RSS and outcome, given when the COMMIT returned. */
  result(
    committedAtMs: number,
  ): Promise<
    Pick<
      Measurement,
      "seconds" | "beginSeconds" | "cpuSeconds" | "peakRssKib" | "outcome" | "ok" | "reader"
    >
  >;
  /** Stops the process if it still runs. */
  stop(): Promise<void>;
}

async function measureOne(
  context: Context,
  kase: HugeCase,
  tool: Measurement["tool"],
  rep: number,
): Promise<Measurement> {
  const { sql } = context;
  const slot = `huge_${kase.key}_${tool === "spillway" ? "spillway" : "recv"}_${rep}`;
  await sql.query(`SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`);
  const id = context.nextId++;
  const reader = tool === "spillway"
    ? startSpillway(context, kase, slot)
    : startRecvlogical(context, kase, slot, id);
  try {
    await waitStreaming(sql, slot, reader);
    const pieces = kase.bytes / PIECE_CHARS;
    const insertStarted = performance.now();
    await sql.query(`
      BEGIN;
      INSERT INTO ${TABLE} (id, v)
        SELECT ${id}, repeat(piece, ${pieces})
          FROM (SELECT substr(string_agg(md5(g::text), '' ORDER BY g), 1, ${PIECE_CHARS}) AS piece
                  FROM generate_series(1, ${Math.ceil(PIECE_CHARS / 32)}) AS g) AS p;
    `);
    const insertSeconds = (performance.now() - insertStarted) / 1000;
    await sql.query("COMMIT");
    const committedAt = epochMs();
    const result = await reader.result(committedAt);
    return { case: kase.key, tool, rep, insertSeconds, ...result };
  } finally {
    await reader.stop();
    await dropSlot(sql, slot);
    await sql.query(`TRUNCATE ${TABLE}`);
    await sql.query("CHECKPOINT");
  }
}

/** Waits until the slot's walsender is streaming (caught up, waiting for WAL). */
async function waitStreaming(sql: PgConnection, slot: string, reader: Reader): Promise<void> {
  let exited = false;
  reader.exited.then(() => exited = true, () => exited = true);
  const deadline = performance.now() + 60_000;
  while (performance.now() < deadline) {
    const [row] = await sql.queryObjects(
      `SELECT count(*) AS n FROM pg_stat_replication s
         JOIN pg_replication_slots r ON r.active_pid = s.pid
        WHERE r.slot_name = '${slot}' AND s.state = 'streaming'`,
    );
    if (row?.n === "1") return;
    if (exited) throw new Error(`The reader of slot "${slot}" exited before it was streaming`);
    await sleep(20);
  }
  throw new Error(`The reader of slot "${slot}" was not streaming within 60 s`);
}

/** Drops the slot once its walsender is gone (terminating it after 10 s). */
async function dropSlot(sql: PgConnection, slot: string): Promise<void> {
  const started = performance.now();
  for (;;) {
    const [row] = await sql.queryObjects(
      `SELECT active_pid FROM pg_replication_slots WHERE slot_name = '${slot}'`,
    );
    if (row === undefined) return;
    if (row.active_pid === null) break;
    if (performance.now() - started > 10_000) {
      await sql.query(`SELECT pg_terminate_backend(${row.active_pid})`);
    }
    await sleep(50);
  }
  await sql.query(`SELECT pg_drop_replication_slot('${slot}')`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function startSpillway(context: Context, kase: HugeCase, slot: string): Reader {
  const args = [
    "run",
    "-A",
    SCRIPT,
    "--reader",
    "--port",
    String(context.port),
    "--slot",
    slot,
    "--bytes",
    String(kase.bytes),
  ];
  if (kase.maxMessageBytes !== undefined) {
    args.push("--max-message-bytes", String(kase.maxMessageBytes));
  }
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: context.common.cleanEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  let done = false;
  output.finally(() => done = true).catch(() => {});
  return {
    exited: child.status,
    async result(committedAtMs) {
      const cpuAtCommit = cpuSecondsOf(child.pid);
      const timer = setTimeout(() => child.kill("SIGKILL"), MEASURE_TIMEOUT_MS);
      const out = await output.finally(() => clearTimeout(timer));
      const decoder = new TextDecoder();
      const lastLine = decoder.decode(out.stdout).trim().split("\n").pop() ?? "";
      if (out.code !== 0 || !lastLine.startsWith("{")) {
        throw new Error(
          `The Spillway reader of slot "${slot}" failed (exit ${out.code}): ${
            decoder.decode(out.stderr).trim()
          }`,
        );
      }
      const reader = JSON.parse(lastLine) as ReaderResult;
      if (reader.reconnects > 0) {
        throw new Error(`The Spillway reader of slot "${slot}" reconnected; the time is void`);
      }
      const refused = kase.maxMessageBytes !== undefined;
      let outcome = "delivered";
      if (reader.error !== null) outcome = `${refused ? "refused" : "failed"}: ${reader.error}`;
      else if (!reader.delivered) outcome = `wrong value length ${reader.valueLength}`;
      return {
        seconds: (reader.atMs - committedAtMs) / 1000,
        beginSeconds: reader.beginAtMs === null ? null : (reader.atMs - reader.beginAtMs) / 1000,
        cpuSeconds: reader.cpuSeconds - cpuAtCommit,
        peakRssKib: reader.vmHwmKib,
        outcome,
        ok: refused ? reader.error !== null : reader.delivered,
        reader,
      };
    },
    async stop() {
      if (!done) {
        try {
          child.kill("SIGKILL");
        } catch {
          // It exited meanwhile.
        }
      }
      await output.catch(() => {});
    },
  };
}

/**
 * The bytes pg_recvlogical writes for the row's transaction (each message and a newline):
 * through the Insert (`change`) and with the Commit (`total`).
 */
function recvlogicalBytes(valueBytes: number, id: number): { change: number; total: number } {
  const cString = (text: string) => new TextEncoder().encode(text).byteLength + 1;
  const begin = 1 + 8 + 8 + 4; // 'B', final LSN, commit time, xid
  const relation = 1 + 4 + cString("public") + cString(TABLE) + 1 + 2 +
    COLUMNS.reduce((sum, name) => sum + 1 + cString(name) + 4 + 4, 0); // flags, name, type, typmod
  const insert = 1 + 4 + 1 + 2 + (1 + 4 + String(id).length) + (1 + 4 + valueBytes);
  const commit = 1 + 1 + 8 + 8 + 8; // 'C', flags, commit LSN, end LSN, commit time
  const change = begin + 1 + relation + 1 + insert + 1;
  return { change, total: change + commit + 1 };
}

/** Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = 100;

/**
 * User plus system CPU time of process `pid` (all its threads), in seconds, from
 * `/proc/<pid>/stat`; 0 when it cannot be read.
 */
function cpuSecondsOf(pid: number | "self"): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name in parentheses: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** `VmHWM` of process `pid`, in KiB; 0 when it cannot be read. */
function vmHwmKibOf(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

function startRecvlogical(context: Context, kase: HugeCase, slot: string, id: number): Reader {
  const file = join(context.work, `${slot}.out`);
  // deno-fmt-ignore
  const args = [
    "--start", "-S", slot, "-d", "postgres", "-h", "127.0.0.1", "-p", String(context.port),
    "-U", "postgres", "--no-loop", "-o", "proto_version=1", "-o", `publication_names=${PUBLICATION}`,
    "-F", "0", "-f", file,
  ];
  const child = new Deno.Command(context.common.PG_RECVLOGICAL, {
    args,
    env: context.common.cleanEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  let exitedEarly = false;
  output.finally(() => exitedEarly = true).catch(() => {});
  const expected = recvlogicalBytes(kase.bytes, id);
  const sizeOf = () => {
    try {
      return Deno.statSync(file).size;
    } catch {
      return 0;
    }
  };
  return {
    exited: child.status,
    async result(committedAtMs) {
      const cpuAtCommit = cpuSecondsOf(child.pid);
      const deadline = performance.now() + MEASURE_TIMEOUT_MS;
      let firstBytesAtMs: number | null = null;
      for (;;) {
        const size = sizeOf();
        if (size > 0) firstBytesAtMs ??= epochMs();
        if (size >= expected.change) break;
        if (exitedEarly) {
          const out = await output;
          throw new Error(
            `pg_recvlogical on slot "${slot}" exited (code ${out.code}) before the change: ${
              new TextDecoder().decode(out.stderr).trim()
            }`,
          );
        }
        if (performance.now() > deadline) {
          throw new Error(`pg_recvlogical on slot "${slot}" did not receive the change in time`);
        }
        await sleep(1);
      }
      const atMs = epochMs();
      // Peak RSS now, while it runs; then the Commit must follow, and nothing else.
      const peakRssKib = vmHwmKibOf(child.pid);
      const cpuSeconds = cpuSecondsOf(child.pid) - cpuAtCommit;
      while (sizeOf() < expected.total && performance.now() < deadline && !exitedEarly) {
        await sleep(5);
      }
      await sleep(100);
      child.kill("SIGINT");
      await output;
      const size = sizeOf();
      const tail = new Uint8Array(27);
      using handle = await Deno.open(file);
      await handle.seek(size - 27, Deno.SeekMode.Start);
      await handle.read(tail);
      await Deno.remove(file);
      if (size !== expected.total || tail[0] !== 0x43 || tail[26] !== 0x0a) {
        throw new Error(
          `pg_recvlogical on slot "${slot}" wrote ${size} bytes, expected ${expected.total} ending with the Commit`,
        );
      }
      return {
        seconds: (atMs - committedAtMs) / 1000,
        beginSeconds: firstBytesAtMs === null ? null : (atMs - firstBytesAtMs) / 1000,
        cpuSeconds,
        peakRssKib,
        outcome: "delivered",
        ok: true,
      };
    },
    async stop() {
      if (!exitedEarly) {
        try {
          child.kill("SIGKILL");
        } catch {
          // It exited meanwhile.
        }
      }
      await output.catch(() => {});
      await Deno.remove(file).catch(() => {});
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The table

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The table's short outcome of a run: the errors are listed in full below it, numbered. */
function shortOutcome(outcome: string, notes: string[]): string {
  const colon = outcome.indexOf(": ");
  if (colon === -1) return outcome;
  let index = notes.indexOf(outcome);
  if (index === -1) index = notes.push(outcome) - 1;
  return `${outcome.slice(0, colon)} [${index + 1}]`;
}

function printResults(results: Results, formatTable: Common["formatTable"]): void {
  console.log(
    `PostgreSQL ${results.serverVersion}, ${results.recvlogicalVersion}; ` +
      `load average ${results.loadBefore} before, ${results.loadAfter} after`,
  );
  const header = [
    "case",
    "reader",
    "outcome",
    "commit->change s",
    "runs (s)",
    "begin->change s",
    "reader CPU s",
    "peak RSS MB",
  ];
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const kase of results.cases) {
    const summary: Partial<
      Record<Measurement["tool"], { seconds: number; cpu: number; rssMb: number }>
    > = {};
    for (const tool of ["spillway", "pg_recvlogical"] as const) {
      const runs = results.measurements.filter((m) => m.case === kase.key && m.tool === tool);
      if (runs.length === 0) {
        if (tool === "pg_recvlogical") {
          rows.push([kase.label, tool, "no peer (it has no size limit)", "-", "", "-", "-", "-"]);
        }
        continue;
      }
      const seconds = median(runs.map((m) => m.seconds));
      const rssMb = Math.max(...runs.map((m) => m.peakRssKib)) / 1024;
      const begins = runs.map((m) => m.beginSeconds).filter((b) => b !== null);
      const cpu = median(runs.map((m) => m.cpuSeconds));
      if (runs.every((m) => m.ok)) summary[tool] = { seconds, cpu, rssMb };
      const outcomes = [...new Set(runs.map((m) => shortOutcome(m.outcome, notes)))].join(", ");
      rows.push([
        kase.label,
        tool,
        outcomes,
        seconds.toFixed(3),
        runs.map((m) => m.seconds.toFixed(3)).join(" "),
        begins.length === runs.length ? median(begins).toFixed(3) : "-",
        cpu.toFixed(2),
        rssMb.toFixed(0),
      ]);
    }
    const spillway = summary.spillway;
    const peer = summary.pg_recvlogical;
    if (kase.peer) {
      rows.push(
        spillway !== undefined && peer !== undefined
          ? [
            kase.label,
            "ratio",
            "Spillway / pg_recvlogical",
            `${(spillway.seconds / peer.seconds).toFixed(2)}x`,
            "",
            "",
            `${(spillway.cpu / peer.cpu).toFixed(2)}x`,
            `${(spillway.rssMb / peer.rssMb).toFixed(2)}x`,
          ]
          : [kase.label, "ratio", "none: a reader did not deliver", "-", "", "", "-", "-"],
      );
    }
  }
  for (const line of formatTable(header, rows, 3)) console.log(line);
  notes.forEach((note, i) => console.log(`[${i + 1}] ${note}`));
  console.log(
    "commit->change s: COMMIT returned in the driver -> Spillway's change event delivered " +
      "(or its error) / pg_recvlogical's file holding the Insert; median of runs. " +
      "begin->change s: the same end, from the transaction's Begin delivered (Spillway) / the " +
      "file's first bytes (pg_recvlogical): the server building and sending the Insert and the " +
      "reader taking it, without the WAL decoding before; median. " +
      "reader CPU s: user+sys CPU time of the reading process from COMMIT to the change " +
      "(/proc/<pid>/stat, 10 ms ticks); median. " +
      "Peak RSS: VmHWM of the reading process, max of runs.",
  );
}

if (import.meta.main) {
  if (Deno.args.includes("--reader")) {
    const options = parseReaderArgs(Deno.args);
    const timer = setTimeout(() => {
      console.error("The reader timed out");
      Deno.exit(3);
    }, MEASURE_TIMEOUT_MS);
    try {
      console.log(JSON.stringify(await runReader(options)));
    } finally {
      clearTimeout(timer);
    }
  } else {
    Deno.exitCode = await hugeRowsBench(Deno.args);
  }
}
