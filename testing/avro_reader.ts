/**
 * An independent Avro reader for tests: Apache Avro's own Java library
 * ({@linkcode AVRO_VERSION}) decodes what a Kafka topic holds in Confluent's wire format (magic
 * byte 0, a 4-byte big-endian schema id, the Avro binary body), with the schemas the registry
 * serves for those ids. A bug shared by Spillway's encoder and a JavaScript Avro library cannot
 * hide from it.
 *
 * The jars (`org.apache.avro:avro` and its runtime dependencies) are fetched once from Maven
 * Central with `mvn` into the shared cache (see `testing/embedded_postgres.ts`), and the program
 * `tests/avro/AvroRead.java` is compiled there with `javac` against them and Kafka's jars
 * (`kafkaLibDir()` of `testing/kafka.ts`, for kafka-clients):
 *
 *     ${SPILLWAY_CACHE_DIR:-/var/tmp/spillway-cache}/avro-1.12.0/libs            (the jars)
 *     ${SPILLWAY_CACHE_DIR:-/var/tmp/spillway-cache}/avro-1.12.0/classes-<hash>
 *
 * `<hash>` is of the program's source, so an edited program compiles anew. A file lock
 * serializes fetching and compiling across processes, and both folders appear by an atomic
 * rename only once complete.
 *
 * @module
 */

import { dirname } from "node:path";
import { lastLines } from "./embedded_postgres.ts";
import { kafkaLibDir } from "./kafka.ts";
import { type Artifact, cachedJars, compiledProgram, once, runJava } from "./_java.ts";

/** The Apache Avro version the reader runs. */
export const AVRO_VERSION = "1.12.0";

const WHAT = "the Avro reader";

const JARS: Artifact[] = [{ group: "org.apache.avro", artifact: "avro", version: AVRO_VERSION }];

/** The reader program, compiled by the harness. */
const PROGRAM = new URL("../tests/avro/AvroRead.java", import.meta.url);
const MAIN_CLASS = "AvroRead";

/** How long the JVM gets beyond the reader's own timeout before it is killed. */
const KILL_GRACE_MS = 30_000;

/** Options for {@linkcode readAvroTopics}. */
export interface AvroReadOptions {
  /** Bootstrap brokers, `host:port`. */
  brokers: string[];
  /** The registry's Confluent-compatible base URL (`http://127.0.0.1:PORT/apis/ccompat/v7`). */
  registryUrl: string;
  /** The topics, read from the beginning by a `read_committed` consumer in a fresh group. */
  topics: string[];
  /** Stop once this many records were read. */
  count: number;
  /** Fail if `count` records did not arrive within this long; default 60 s. */
  timeoutMs?: number;
}

/** One record as Apache Avro's Java library decoded it. */
export interface AvroReadRecord {
  topic: string;
  partition: number;
  offset: number;
  /**
   * The decoded key as JSON text, null for a null key. Records are objects in field order,
   * unions are unwrapped, `bytes` and `fixed` are base64, longs are exact digits (parse with
   * care past 2^53), NaN and infinities are the strings "NaN", "Infinity" and "-Infinity".
   */
  key: string | null;
  /** The decoded value as JSON text (as `key`), null for a tombstone. */
  value: string | null;
}

/**
 * Ensure the Avro jars are in the cache and the reader is compiled; return the Java class path
 * (Kafka's jars, Avro's jars, the compiled program).
 */
export function avroReaderClassPath(): Promise<string> {
  return prepare();
}

/**
 * Read `count` records of `topics` with Apache Avro's Java library, key and value decoded
 * with the registry's schemas. Rejects (with the end of the JVM's stderr) when a record is not
 * in Confluent's wire format, a schema cannot be fetched or parsed, a body does not decode, or
 * `count` records do not arrive in time.
 */
export async function readAvroTopics(options: AvroReadOptions): Promise<AvroReadRecord[]> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const classPath = await avroReaderClassPath();
  const args = [
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-cp",
    classPath,
    MAIN_CLASS,
    options.brokers.join(","),
    options.registryUrl,
    options.topics.join(","),
    String(options.count),
    String(timeoutMs),
  ];
  const { code, stdout, stderr, timedOut: killed } = await runJava(
    WHAT,
    args,
    timeoutMs + KILL_GRACE_MS,
  );
  const tail = `--- last 30 lines of its stderr ---\n${lastLines(stderr, 30)}`;
  if (killed) {
    throw new Error(
      `${WHAT} (tests/avro/AvroRead.java) did not end ${KILL_GRACE_MS} ms after its own timeout ` +
        `of ${timeoutMs} ms and was killed: are the brokers ${options.brokers} up?\n${tail}`,
    );
  }
  if (code === 2) {
    throw new Error(
      `${WHAT} read fewer than ${options.count} records of ${options.topics} within ` +
        `${timeoutMs} ms: did the sink write them (and commit its transactions)? Raise ` +
        `timeoutMs or lower count.\n${tail}`,
    );
  }
  if (code !== 0) {
    throw new Error(
      `${WHAT} (tests/avro/AvroRead.java) failed (exit ${code}): the records may not be in ` +
        `Confluent's wire format or the registry (${options.registryUrl}) may not serve their ` +
        `schemas.\n${tail}`,
    );
  }
  return stdout.split("\n").filter((line) => line !== "").map((line) => {
    const { topic, partition, offset } = JSON.parse(line) as AvroReadRecord;
    return { topic, partition, offset, ...rawParts(line) };
  });
}

/**
 * The `key` and `value` members of a line the program wrote, as JSON text: the program writes
 * `{"topic":…,"partition":…,"offset":…,"key":<json>,"value":<json>}`, and the key's and
 * value's text is kept as written so that no long loses digits on the way.
 */
function rawParts(line: string): { key: string | null; value: string | null } {
  const keyAt = line.indexOf(',"key":');
  const end = keyAt < 0 ? -1 : valueEnd(line, keyAt + ',"key":'.length);
  if (keyAt < 0 || end < 0 || !line.startsWith(',"value":', end) || !line.endsWith("}")) {
    throw new Error(`${WHAT} wrote a line it should not have: ${line.slice(0, 500)}`);
  }
  const key = line.slice(keyAt + ',"key":'.length, end);
  const value = line.slice(end + ',"value":'.length, -1);
  return { key: key === "null" ? null : key, value: value === "null" ? null : value };
}

/** Where the JSON value starting at `from` in `text` ends. */
function valueEnd(text: string, from: number): number {
  let depth = 0;
  let inString = false;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") depth--;
    else if (c === "," && depth === 0) return i;
    if (depth < 0) return -1;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Fetching the jars and compiling the program

const prepare = once(async (): Promise<string> => {
  const [avroLibs, kafkaLibs] = await Promise.all([
    cachedJars("Avro", AVRO_VERSION, JARS),
    kafkaLibDir(),
  ]);
  // Kafka's jars first: its Jackson (newer than Avro's, and complete) and its slf4j binding win.
  const libs = `${kafkaLibs}/*:${avroLibs}/*`;
  const home = dirname(avroLibs);
  const classes = await compiledProgram(WHAT, PROGRAM, MAIN_CLASS, libs, home);
  return `${libs}:${classes}`;
});
