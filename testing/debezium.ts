/**
 * Debezium peer harness: runs Debezium's PostgreSQL connector (embedded engine,
 * {@linkcode DEBEZIUM_VERSION}) against a test PostgreSQL, for conformance tests (diff its
 * output with ours) and benchmarks (produce into a real Kafka broker).
 *
 * The jars (`io.debezium:debezium-embedded`, `debezium-connector-postgres`, `debezium-api` and
 * the `slf4j-simple` logging binding) are fetched once from Maven Central with `mvn` into the
 * shared cache (see `testing/embedded_postgres.ts`), and the driver program
 * `tests/debezium/DebeziumRun.java` is compiled there with `javac`:
 *
 *     ${SPILLWAY_CACHE_DIR:-/var/tmp/spillway-cache}/m2                          (Maven's local repository)
 *     ${SPILLWAY_CACHE_DIR:-/var/tmp/spillway-cache}/debezium-3.6.3.Final/libs   (the jars)
 *     ${SPILLWAY_CACHE_DIR:-/var/tmp/spillway-cache}/debezium-3.6.3.Final/classes-<hash>
 *     ${SPILLWAY_CACHE_DIR:-/var/tmp/spillway-cache}/debezium-3.6.3.Final/libs-<hash>  (with extra artifacts)
 *
 * `<hash>` of `classes-` is of the program's source, so an edited program compiles anew.
 * {@linkcode DebeziumOptions.artifacts} (another converter, say) are fetched with Debezium's
 * jars into a folder of their own, `libs-<hash>` (`<hash>` of the artifact list), resolved
 * together by Maven so that each library comes in one version: the plain class path stays as it
 * is. Later fetches run Maven offline. A file lock serializes fetching and compiling across
 * processes, and every folder appears by an atomic rename only once complete.
 *
 * {@linkcode runDebezium} runs one JVM that streams from an existing slot (no snapshot) until a
 * record count or an idle time is reached, writing JSON lines to a file or producing to Kafka.
 * The JVM is killed on timeout, when the module unloads, and (it watches its stdin) when the
 * test process dies.
 *
 * @module
 */

import { dirname } from "node:path";
import { lastLines } from "./embedded_postgres.ts";
import { type Artifact, cachedJars, compiledProgram, once, runJava, shortHash } from "./_java.ts";

export type { Artifact } from "./_java.ts";

/** The Debezium version the harness runs. */
export const DEBEZIUM_VERSION = "3.6.3.Final";

const JARS: Artifact[] = [
  ...["debezium-embedded", "debezium-connector-postgres", "debezium-api"].map((artifact) => ({
    group: "io.debezium",
    artifact,
    version: DEBEZIUM_VERSION,
  })),
  // Debezium 3.6.3 brings slf4j-api 1.7.36; this is its matching simple binding.
  { group: "org.slf4j", artifact: "slf4j-simple", version: "1.7.36" },
];

/** The driver program, compiled by the harness. */
const PROGRAM = new URL("../tests/debezium/DebeziumRun.java", import.meta.url);
const MAIN_CLASS = "DebeziumRun";

/** JVM options used unless {@linkcode DebeziumOptions.jvmOptions} replaces them. */
export const DEFAULT_JVM_OPTIONS: readonly string[] = Object.freeze([
  "-Xmx1g",
  "-XX:+UseParallelGC",
  "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
  "-Dorg.slf4j.simpleLogger.logFile=System.err",
]);

const DEFAULT_TIMEOUT_MS = 300_000;
/** How much of the JVM's stderr is kept for error messages. */
const STDERR_KEEP = 256 * 1024;

/** Where and how to connect to PostgreSQL. */
export interface DebeziumDatabase {
  host: string;
  port: number;
  user: string;
  password?: string;
  dbname: string;
}

/** Options for {@linkcode runDebezium}. Give exactly one of `out` and `kafka`. */
export interface DebeziumOptions {
  database: DebeziumDatabase;
  /** An existing pgoutput slot; Debezium streams from its confirmed position and keeps it. */
  slot: string;
  /** An existing publication covering {@linkcode DebeziumOptions.tables}. */
  publication: string;
  /** Captured tables, `schema.table` (Debezium's `table.include.list`). */
  tables: string[];
  /** Debezium's `topic.prefix`: topics are `<prefix>.<schema>.<table>`. */
  topicPrefix: string;
  /** JsonConverter `schemas.enable`, for key and value; default true (JsonConverter only). */
  schemas?: boolean;
  /**
   * The Kafka Connect `Converter` class for keys and values; default Kafka's JsonConverter.
   * Configure it with `key.converter.*` / `value.converter.*` in
   * {@linkcode DebeziumOptions.properties}; put it on the class path with
   * {@linkcode DebeziumOptions.artifacts}. With `out`, the records of any other converter carry
   * their bytes in base64 ({@linkcode DebeziumRecord.keyBase64}), not parsed.
   */
  converter?: string;
  /** More Maven artifacts (with their runtime dependencies) on the class path. */
  artifacts?: Artifact[];
  /** Stop after this many records (change events, tombstones and transaction records). */
  count?: number;
  /** Stop after this many ms without a record, once at least one arrived. */
  idleMs?: number;
  /** Connector/engine properties on top of the program's defaults (see DebeziumRun.java). */
  properties?: Record<string, string>;
  /** Write one JSON line per record to this file; the result then carries the parsed lines. */
  out?: string;
  /**
   * Read and parse the `out` file into {@linkcode DebeziumResult.lines}; default true. Turn it
   * off for large outputs (benchmarks): a file over a few hundred MB does not fit one string.
   */
  readLines?: boolean;
  /** Produce to these brokers (`host:port`) instead, waiting for every ack. */
  kafka?: string[];
  /** KafkaProducer settings on top of the program's defaults (only with `kafka`). */
  producer?: Record<string, string>;
  /** Kill the JVM after this long; default 300 s. */
  timeoutMs?: number;
  /** JVM options replacing {@linkcode DEFAULT_JVM_OPTIONS}. */
  jvmOptions?: string[];
}

/** One record as the program wrote it with `out`. */
export interface DebeziumRecord {
  topic: string;
  /**
   * The key as the JsonConverter serialized it, parsed; null for a null key. Absent with
   * another {@linkcode DebeziumOptions.converter}.
   */
  key?: unknown;
  /** The value as the JsonConverter serialized it, parsed; null for a tombstone. */
  value?: unknown;
  /**
   * With another {@linkcode DebeziumOptions.converter}: the key's bytes in base64, null for a
   * null key (see {@linkcode recordBytes}).
   */
  keyBase64?: string | null;
  /** With another converter: the value's bytes in base64, null for a tombstone. */
  valueBase64?: string | null;
  /** Header values as text (the SimpleHeaderConverter's bytes), null for a null header. */
  headers: Record<string, string | null>;
}

/** What {@linkcode runDebezium} reports. */
export interface DebeziumResult {
  /** Records handled (written or acknowledged by Kafka). */
  records: number;
  /** Epoch ms when the first record reached the program; 0 without records. */
  firstMs: number;
  /** Epoch ms of the last record written (`out`) or the last Kafka ack (`kafka`). */
  lastMs: number;
  /** `lastMs - firstMs`. */
  elapsedMs: number;
  /** The parsed records, when `out` was used (and `readLines` was not false). */
  lines?: DebeziumRecord[];
}

/**
 * Ensure the jars (with `artifacts`, if any) are in the cache and the driver program is
 * compiled; return the Java class path (`<libs>/*:<classes>`).
 */
export async function debeziumClassPath(artifacts: Artifact[] = []): Promise<string> {
  const { libs, classes } = await prepare();
  // The program is compiled against the plain jars; it loads a converter by its name.
  const jars = artifacts.length === 0 ? libs : await extraLibs(artifacts);
  return `${jars}/*:${classes}`;
}

/** A record's key and value bytes, from the base64 of a non-JSON converter (null stays null). */
export function recordBytes(
  record: DebeziumRecord,
): { key: Uint8Array | null; value: Uint8Array | null } {
  const bytes = (text: string | null | undefined) => {
    if (text === undefined) {
      throw new Error(`record of ${record.topic} has no base64 bytes: was --converter set?`);
    }
    return text === null ? null : Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  };
  return { key: bytes(record.keyBase64), value: bytes(record.valueBase64) };
}

/**
 * Run Debezium once: stream the changes of `tables` from `slot` until `count` records or
 * `idleMs` of quiet, into `out` or `kafka`. Rejects (with the end of the JVM's stderr) when the
 * JVM fails or `timeoutMs` passes; the JVM is killed then.
 */
export async function runDebezium(options: DebeziumOptions): Promise<DebeziumResult> {
  if ((options.out === undefined) === (options.kafka === undefined)) {
    throw new Error("runDebezium: give exactly one of `out` and `kafka`");
  }
  if (!options.count && !options.idleMs) {
    throw new Error("runDebezium: give `count` or `idleMs`, or it never stops");
  }
  const classPath = await debeziumClassPath(options.artifacts);
  const args = [
    ...(options.jvmOptions ?? DEFAULT_JVM_OPTIONS),
    "-cp",
    classPath,
    MAIN_CLASS,
    "--watch-stdin",
  ];
  if (options.schemas !== undefined) args.push("--schemas", String(options.schemas));
  if (options.converter !== undefined) args.push("--converter", options.converter);
  const db = options.database;
  const properties: Record<string, string> = {
    "database.hostname": db.host,
    "database.port": String(db.port),
    "database.user": db.user,
    "database.dbname": db.dbname,
    ...(db.password === undefined ? {} : { "database.password": db.password }),
    "slot.name": options.slot,
    "publication.name": options.publication,
    "table.include.list": options.tables.join(","),
    "topic.prefix": options.topicPrefix,
    ...options.properties,
  };
  for (const [k, v] of Object.entries(properties)) args.push("--set", `${k}=${v}`);
  for (const [k, v] of Object.entries(options.producer ?? {})) args.push("--producer", `${k}=${v}`);
  if (options.count) args.push("--count", String(options.count));
  if (options.idleMs) args.push("--idle-ms", String(options.idleMs));
  if (options.out !== undefined) args.push("--out", options.out);
  else args.push("--kafka", options.kafka!.join(","));

  // stdin stays open and empty: the program exits when it closes (this process died).
  const { code, stdout, stderr, timedOut } = await runJava(
    "Debezium",
    args,
    options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    { stdinOpen: true, stderrKeep: STDERR_KEEP },
  );
  const tail = () => `--- last 30 lines of its stderr ---\n${lastLines(stderr, 30)}`;
  if (timedOut) {
    throw new Error(
      `Debezium did not finish within ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms ` +
        `(killed; did the slot get changes of the captured tables?); ${tail()}`,
    );
  }
  const done = /^done records=(\d+) first_ms=(\d+) last_ms=(\d+) elapsed_ms=(-?\d+)$/m.exec(
    stdout,
  );
  if (code !== 0 || !done) {
    throw new Error(`Debezium failed (exit ${code}); ${tail()}\n--- stdout ---\n${stdout}`);
  }
  const result: DebeziumResult = {
    records: Number(done[1]),
    firstMs: Number(done[2]),
    lastMs: Number(done[3]),
    elapsedMs: Number(done[4]),
  };
  if (options.out !== undefined && options.readLines !== false) {
    const text = await Deno.readTextFile(options.out);
    result.lines = text.split("\n").filter((line) => line !== "").map((line) =>
      JSON.parse(line) as DebeziumRecord
    );
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Fetching the jars and compiling the program

const prepare = once(async (): Promise<{ libs: string; classes: string }> => {
  const libs = await cachedJars("Debezium", DEBEZIUM_VERSION, JARS);
  const home = dirname(libs);
  const classes = await compiledProgram("Debezium", PROGRAM, MAIN_CLASS, `${libs}/*`, home);
  return { libs, classes };
});

/** The folder of Debezium's jars with `artifacts`: `libs-<hash of the list>`. */
async function extraLibs(artifacts: Artifact[]): Promise<string> {
  const list = artifacts.map((a) => `${a.group}:${a.artifact}:${a.version}`).join("\n");
  const hash = await shortHash(new TextEncoder().encode(list));
  return await cachedJars("Debezium", DEBEZIUM_VERSION, [...JARS, ...artifacts], `libs-${hash}`);
}
