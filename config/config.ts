/**
 * Pipeline configuration: one YAML file describes a source, the tables to follow, how
 * each is routed and transformed, and the sinks.
 *
 * Parsing is strict and complete. Every problem in a file is reported at once, sorted
 * by position, one per line, in the form
 * `orders.yaml:12:5: "sinks[0].file.rotate_bytes": expected a size like 100MB, found "big"`.
 * Unknown keys are errors with a "did you mean" suggestion. Every default is filled in,
 * so the runner never looks for a missing value.
 *
 * The file is read as YAML 1.2 (core schema): `on`, `off`, `yes` and `no` are strings,
 * only `true` and `false` are booleans.
 *
 * `${NAME}` and `${NAME:-default}` in scalar values are replaced with environment
 * variables (`:-` also applies when the variable is empty; `$${` writes a literal `${`).
 * A substituted value takes the type its field expects: `capacity: "${QUEUE_CAPACITY}"`
 * with `QUEUE_CAPACITY=500` is the number 500, `publication: ${PUB}` with `PUB=123` the
 * string "123", and `${START_LSN:-}` with nothing set is `null`. (Inside a flow map
 * `{ ... }` a `${...}` must be quoted, since braces end plain values there.) A value
 * written without a variable keeps its YAML type, so `capacity: "500"` is an error. Keys
 * are not interpolated.
 *
 * @module
 */

import { basename, dirname, extname, resolve } from "node:path";
import {
  type Alias,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type YAMLMap,
  type YAMLSeq,
} from "npm:yaml@2.9.1";
import { redact, type SslMode } from "../postgres/connection.ts";
import { ConfigError } from "../errors.ts";
import { type Lsn, parseLsn } from "../decoder/lsn.ts";
import type { ProtoVersion } from "../decoder/pgoutput.ts";
import { formatDuration, parseDuration, parseSize } from "./units.ts";

// ---------------------------------------------------------------------------------------
// The typed configuration

/** A parsed pipeline file with every default filled in. */
export interface PipelineConfig {
  /** `name`, or the file name without its extension. */
  name: string;
  /** The file as it was named to the parser, for messages. */
  file: string;
  /** Absolute directory that relative paths in the file were resolved against. */
  baseDir: string;
  source: SourceConfig;
  /** Table entries in file order; see {@linkcode matchTable}. */
  tables: TableEntry[];
  /** What a table entry gets for each option it does not set. */
  defaults: TableDefaults;
  transforms: TransformsConfig;
  /** At least one. */
  sinks: SinkConfig[];
  queue: QueueConfig;
  spill: SpillConfig;
  /** `null` when the HTTP endpoint is off. */
  http: HttpConfig | null;
  log: LogConfig;
}

/**
 * `source.streaming` when the file does not say: `off`, as Debezium. A transaction then
 * arrives after its commit (the server spills a big one to its own disk meanwhile), which
 * costs Spillway less CPU and memory than keeping and replaying a streamed one
 * (`bench/RESULTS.md`). `on` moves that spill from the server to Spillway.
 */
export const DEFAULT_STREAMING: SourceConfig["streaming"] = "off";

/** The replication source: where to connect, which slot and publication to use. */
export interface SourceConfig {
  /** Connection URL, environment variables already substituted. */
  url: string;
  /** Replication slot name: 1 to 63 of `a-z`, `0-9`, `_`. */
  slot: string;
  publication: string;
  /** Default true. */
  createSlot: boolean;
  /** Default true: `FOR TABLE` the matched tables, or `FOR ALL TABLES` for a `*` entry. */
  createPublication: boolean;
  /** Make a failover slot (PostgreSQL 17+). Default false. */
  failover: boolean;
  /** Default false. */
  twoPhase: boolean;
  /** `"auto"` (default): the highest the server supports. */
  protoVersion: "auto" | ProtoVersion;
  /** Default {@linkcode DEFAULT_STREAMING}. */
  streaming: "off" | "on" | "parallel";
  /** Default false. */
  binary: boolean;
  /** Idle-database heartbeat period; 0 when off. Default 10 s. */
  heartbeatMs: number;
  /** Standby status update period. Default 10 s. */
  statusIntervalMs: number;
  /** Start here instead of the slot's confirmed position; `null` (default) for the slot's. */
  startLsn: Lsn | null;
  reconnect: ReconnectConfig;
  /** Overrides the URL's `sslmode`; `null` (default) keeps the URL's. */
  sslmode: SslMode | null;
  /** Absolute path of a CA certificate file; `null` (default) keeps the URL's. */
  sslrootcert: string | null;
}

/** Reconnect policy of the source. */
export interface ReconnectConfig {
  /** Attempts in all; `Infinity` for `unlimited`. Default 10. */
  maxAttempts: number;
  /** Default 250 ms. */
  initialDelayMs: number;
  /** Default 15 s. */
  maxDelayMs: number;
}

/** How TOASTed values that the server did not send are handled. */
export type ToastMode = "unchanged" | "omit" | "placeholder" | "last_value";

/** Options a table entry sets or takes from `defaults`. */
export interface TableOptions {
  /** Topic template with `{prefix}`, `{schema}` and `{table}` placeholders. */
  topic: string;
  /** Key columns; `null` (default) for the table's replica identity (usually the primary key). */
  key: string[] | null;
  /** Absolute path of the transform module; `null` (default) for none. */
  transform: string | null;
  /** Default `"unchanged"`: list the column in `unchanged`, never invent a value. */
  toast: ToastMode;
  /** Value written for an unchanged TOASTed column when `toast` is `"placeholder"`. */
  toastPlaceholder: string;
  /** Values remembered per table when `toast` is `"last_value"`. Default 10000. */
  toastCacheSize: number;
}

/** The `defaults` section. */
export interface TableDefaults extends TableOptions {
  /** Value of `{prefix}` in topics; default the pipeline name. */
  topicPrefix: string;
}

/** One part of a table name: a name, or a glob where `*` and `?` are wildcards. */
export interface NamePattern {
  /** The name as PostgreSQL stores it (quotes removed), or the glob. */
  name: string;
  /** True when `name` is a glob (written unquoted with `*` or `?`). */
  glob: boolean;
}

/** One entry of `tables`, with the defaults applied. */
export interface TableEntry extends TableOptions {
  /** The key as written in the file, e.g. `public.*` or `"Sales"."Order Items"`. */
  pattern: string;
  schema: NamePattern;
  table: NamePattern;
  /** Position of the key in the file, for messages. */
  line: number;
  column: number;
}

/** A table's options after {@linkcode matchTable} picked its entry. */
export interface ResolvedTable extends TableOptions {
  schema: string;
  table: string;
  /** The entry that matched, as written in the file. */
  pattern: string;
  /** The topic with its placeholders filled in. */
  topic: string;
}

/** What happens to an event whose transform failed or whose breaker is open. */
export type OnError = "passthrough" | "dead_letter" | "skip" | "stop";

/** The `transforms` section. */
export interface TransformsConfig {
  /** Time budget per event; 0 for no limit. Default 200 ms. */
  timeoutMs: number;
  /** Default `"dead_letter"`. */
  onError: OnError;
  breaker: { failures: number; windowMs: number };
  /** `null` (default): not set, the runner names it. */
  deadLetterTopic: string | null;
}

/** One sink; `type` is the key that named it in the file. */
export type SinkConfig = StdoutSinkConfig | FileSinkConfig | KafkaSinkConfig;

/** `- stdout: { format }` */
export interface StdoutSinkConfig {
  type: "stdout";
  /** Default `"auto"`: pretty when stdout is a terminal, JSON lines otherwise. */
  format: "json" | "pretty" | "auto";
}

/** `- file: { path, rotate_bytes, fsync }`: JSON lines. */
export interface FileSinkConfig {
  type: "file";
  /** Absolute path. */
  path: string;
  /** Start a new file after this many bytes; `null` (default) never rotates. */
  rotateBytes: number | null;
  /** Default true: a batch is durable once fsync returned. */
  fsync: boolean;
}

/** `- kafka: { brokers, ... }` */
export interface KafkaSinkConfig {
  type: "kafka";
  /** `host:port` of the bootstrap brokers; at least one. */
  brokers: string[];
  /** Default `"debezium-json"`. */
  format: "debezium-json" | "debezium-avro" | "json";
  /** Default false. */
  exactlyOnce: boolean;
  /** `null` (default): derived from the pipeline name. */
  transactionalId: string | null;
  /** Required for `debezium-avro`. */
  schemaRegistry: { url: string; username: string | null; password: string | null } | null;
  /** Default `"all"`. */
  acks: "all" | 0 | 1;
  /** Default `"none"`. */
  compression: "none" | "gzip" | "snappy" | "lz4" | "zstd";
  /** Default `"spillway"`. */
  clientId: string;
  /** Overrides `defaults.topic_prefix` for this sink; `null` (default) keeps it. */
  topicPrefix: string | null;
  /** `null` (default): plain TCP. `ca` is an absolute path, or `null` for the system's. */
  tls: { ca: string | null } | null;
  /** `null` (default): no SASL. */
  sasl: {
    mechanism: "plain" | "scram-sha-256" | "scram-sha-512";
    username: string;
    password: string;
  } | null;
}

/** The `queue` section. */
export interface QueueConfig {
  /** Events held between the source and the sinks. Default 10000. */
  capacity: number;
  /** Reading pauses above this fraction of `capacity`. Default 0.8. */
  highWatermark: number;
}

/** The `spill` section. */
export interface SpillConfig {
  /** Bytes of a streamed transaction held in memory before spilling. Default 64MB. */
  memoryLimitBytes: number;
  /** Absolute directory for spill files; `null` (default) for the OS temp directory. */
  dir: string | null;
}

/** The `http` section. */
export interface HttpConfig {
  /** As written, e.g. `127.0.0.1:9464`. */
  listen: string;
  hostname: string;
  port: number;
}

/** The `log` section. */
export interface LogConfig {
  level: "debug" | "info" | "warn" | "error";
  format: "text" | "json";
}

/** One problem found in a pipeline file. */
export interface ConfigProblem {
  line: number;
  column: number;
  /** The text after `file:line:col: `. */
  message: string;
}

/**
 * Every problem found in a pipeline file, one line each in `message`, sorted by position.
 * A {@linkcode ConfigError}, so it is never retried.
 */
export class PipelineConfigError extends ConfigError {
  readonly file: string;
  readonly problems: readonly ConfigProblem[];

  constructor(file: string, problems: readonly ConfigProblem[]) {
    super(problems.map((p) => `${file}:${p.line}:${p.column}: ${p.message}`).join("\n"));
    this.file = file;
    this.problems = problems;
  }
}

/** Options of {@linkcode parsePipelineConfig}. */
export interface ParseOptions {
  /** The file name used in messages and for the default pipeline name. */
  file: string;
  /** Variables for `${NAME}`; default the process environment. */
  env?: Record<string, string | undefined>;
  /** Directory that relative paths resolve against; default the directory of `file`. */
  baseDir?: string;
}

// ---------------------------------------------------------------------------------------
// Public functions

/**
 * Parses and validates a pipeline file's text.
 *
 * Throws a {@linkcode PipelineConfigError} (a `ConfigError`) listing every problem.
 * The YAML library reads the `LOG_TOKENS` and `LOG_STREAM` environment variables, so
 * without `--allow-env` Deno asks for them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePipelineConfig } from "./config.ts";
 * const config = parsePipelineConfig(
 *   [
 *     "source:",
 *     "  url: postgres://replicator:${PGPASSWORD}@localhost:5432/app",
 *     "  slot: orders_cdc",
 *     "  publication: orders_pub",
 *     "tables:",
 *     '  "public.*": {}',
 *     "sinks:",
 *     "  - stdout: { format: json }",
 *   ].join("\n"),
 *   { file: "/etc/spillway/orders.yaml", env: { PGPASSWORD: "secret" } },
 * );
 * assert.equal(config.name, "orders");
 * assert.equal(config.source.url, "postgres://replicator:secret@localhost:5432/app");
 * assert.equal(config.source.heartbeatMs, 10_000);
 * assert.deepEqual(config.sinks, [{ type: "stdout", format: "json" }]);
 *
 * assert.throws(
 *   () => parsePipelineConfig("source: {}\ntables: {}\nsinks: []\nqueu: {}\n", { file: "p.yaml" }),
 *   (error: Error) =>
 *     error.message.split("\n").includes('p.yaml:4:1: unknown key "queu" at the top level; did you mean "queue"?'),
 * );
 * ```
 */
export function parsePipelineConfig(text: string, options: ParseOptions): PipelineConfig {
  const baseDir = resolve(options.baseDir ?? dirname(resolve(options.file)));
  const checker = new Checker(text, { lines: new LineCounter(), baseDir, env: options.env });
  let unexpected = false;
  for (const error of [...checker.doc.errors, ...checker.doc.warnings]) {
    // After one unexpected token the parser reports most of what follows; one is enough.
    if (error.code === "UNEXPECTED_TOKEN" && unexpected) continue;
    unexpected ||= error.code === "UNEXPECTED_TOKEN";
    checker.report(error.pos[0], `invalid YAML: ${syntaxMessage(error.code, error.message)}`);
  }
  // Schema checks on a tree the YAML parser could not read would only add noise.
  const config = checker.failed ? undefined : readPipeline(checker, options.file);
  if (config === undefined || checker.failed) {
    throw new PipelineConfigError(options.file, checker.problems());
  }
  return config;
}

/**
 * Reads and parses a pipeline file. Relative paths in it resolve against its directory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigError } from "../errors.ts";
 * import { loadPipelineConfig } from "./config.ts";
 * await assert.rejects(loadPipelineConfig("no/such/pipeline.yaml"), ConfigError);
 * ```
 */
export async function loadPipelineConfig(
  path: string,
  options: { env?: Record<string, string | undefined> } = {},
): Promise<PipelineConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new ConfigError(
        `Cannot load pipeline "${path}": file not found (looked in "${resolve(path)}")`,
        { cause: error },
      );
    }
    const detail = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`Cannot load pipeline "${path}": ${detail}`, { cause: error });
  }
  return parsePipelineConfig(text, {
    file: path,
    env: options.env,
    baseDir: dirname(resolve(path)),
  });
}

/** True when an entry matches every schema and table (`"*"`): the publication is then FOR ALL TABLES. */
export function publishesAllTables(config: PipelineConfig): boolean {
  return config.tables.some((entry) =>
    entry.schema.glob && entry.schema.name === "*" && entry.table.glob && entry.table.name === "*"
  );
}

/**
 * Finds the entry of `tables` that applies to a table and fills in its topic.
 *
 * An exact name wins over globs; among globs the one with the longest literal prefix
 * wins (`public.order_*` over `public.*` over `*.orders` and `*`), then the one with more
 * literal characters, then the one written first. Names are compared case-sensitively,
 * as PostgreSQL stores them. Returns `null` when no entry matches.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matchTable, parsePipelineConfig } from "./config.ts";
 * const config = parsePipelineConfig(
 *   [
 *     "source: { url: 'postgres://localhost/app', slot: s, publication: p }",
 *     "tables:",
 *     "  public.orders: { key: [id] }",
 *     "  '\"Sales\".*': { topic: 'sales.{table}' }",
 *     "  '*': {}",
 *     "sinks: [stdout: {}]",
 *   ].join("\n"),
 *   { file: "shop.yaml", env: {} },
 * );
 * assert.deepEqual(matchTable(config, "public", "orders")?.key, ["id"]);
 * assert.equal(matchTable(config, "Sales", "Order Items")?.topic, "sales.Order Items");
 * assert.equal(matchTable(config, "audit", "log")?.topic, "shop.audit.log");
 * ```
 */
export function matchTable(
  config: PipelineConfig,
  schema: string,
  table: string,
): ResolvedTable | null {
  let best: { entry: TableEntry; prefix: number; literal: number } | null = null;
  for (const entry of config.tables) {
    if (!entry.schema.glob && !entry.table.glob) {
      if (entry.schema.name === schema && entry.table.name === table) {
        return resolveTable(config, entry, { schema, table });
      }
      continue;
    }
    if (!matchesPart(entry.schema, schema) || !matchesPart(entry.table, table)) continue;
    const prefix = literalPrefix(entry);
    const literal = literalCount(entry);
    if (
      best === null || prefix > best.prefix || (prefix === best.prefix && literal > best.literal)
    ) {
      best = { entry, prefix, literal };
    }
  }
  return best === null ? null : resolveTable(config, best.entry, { schema, table });
}

// ---------------------------------------------------------------------------------------
// Walking the YAML tree

/** A value in the tree with its key path, e.g. `sinks[0].file.path`. */
interface Field {
  node: unknown;
  path: string;
  offset: number;
}

/** Reads a field; `undefined` means a problem was reported. */
type Read<T> = (checker: Checker, field: Field) => T | undefined;

type ScalarValue = string | number | boolean | null;

/**
 * A scalar's value. When environment variables were substituted, `text` is the result,
 * which string fields take as it is, and `value` is that text typed the way an unquoted
 * YAML value is, which number, boolean and null fields take.
 */
interface ScalarRead {
  value: ScalarValue;
  text: string | null;
}

/** Holds the document and collects problems while the sections are read. */
class Checker {
  readonly text: string;
  readonly doc: ReturnType<typeof parseDocument>;
  readonly lines: LineCounter;
  readonly baseDir: string;
  readonly env: (name: string) => string | undefined;
  readonly #problems: { offset: number; message: string }[] = [];
  readonly #substituted = new Map<unknown, string | undefined>();

  constructor(text: string, options: { lines: LineCounter; baseDir: string; env?: Env }) {
    this.text = text;
    this.lines = options.lines;
    this.baseDir = options.baseDir;
    const env = options.env;
    this.env = env === undefined ? (name) => Deno.env.get(name) : (name) => env[name];
    this.doc = parseDocument(text, {
      lineCounter: this.lines,
      prettyErrors: false,
      uniqueKeys: false, // reported by Section, with the key's path
      version: "1.2",
    });
  }

  get failed(): boolean {
    return this.#problems.length > 0;
  }

  report(offset: number, message: string): void {
    this.#problems.push({ offset, message });
  }

  /** Reports `"path": expected ..., found ...`; returns `undefined` for the reader. */
  fail(field: Field, expected: string, found?: string): undefined {
    const shown = found ?? describe(field.node);
    this.report(field.offset, `${quotePath(field.path)}: expected ${expected}, found ${shown}`);
    return undefined;
  }

  line(offset: number): number {
    return this.lines.linePos(offset).line;
  }

  /** Problems sorted by position (then by the order found), duplicates dropped. */
  problems(): ConfigProblem[] {
    const seen = new Set<string>();
    const problems: ConfigProblem[] = [];
    const ordered = this.#problems
      .map((problem, index) => ({ ...problem, index }))
      .sort((a, b) => a.offset - b.offset || a.index - b.index);
    for (const { offset, message } of ordered) {
      const { line, col } = this.lines.linePos(offset);
      const key = `${line}:${col}: ${message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      problems.push({ line, column: col, message });
    }
    return problems;
  }

  /** Follows an alias to its anchor; `undefined` (reported) when the anchor is missing. */
  deref(node: unknown, path: string): unknown {
    if (!isAlias(node)) return node;
    const target = (node as Alias).resolve(this.doc);
    if (target === undefined) {
      const name = (node as Alias).source;
      this.report(
        startOf(node) ?? 0,
        `${
          quotePath(path)
        }: expected an alias of an anchor defined above it (&${name}), found *${name}`,
      );
    }
    return target;
  }

  /**
   * The value of a scalar with environment variables substituted, or `undefined`
   * (reported) for a map, a list or a bad substitution.
   */
  scalar(field: Field, expected: string): ScalarRead | undefined {
    const node = field.node;
    if (!isScalar(node)) return this.fail(field, expected);
    const value = node.value as ScalarValue;
    if (typeof value !== "string" || !value.includes("${")) return { value, text: null };
    // Substituted once per node, so a value read twice is reported once.
    if (!this.#substituted.has(node)) this.#substituted.set(node, this.#interpolate(field, value));
    const text = this.#substituted.get(node);
    return text === undefined ? undefined : { value: typePlain(text), text };
  }

  #interpolate(field: Field, text: string): string | undefined {
    let out = "";
    let index = 0;
    let ok = true;
    while (index < text.length) {
      const dollar = text.indexOf("$", index);
      if (dollar === -1) break;
      out += text.slice(index, dollar);
      if (text.startsWith("$${", dollar)) {
        out += "${";
        index = dollar + 3;
        continue;
      }
      if (!text.startsWith("${", dollar)) {
        out += "$";
        index = dollar + 1;
        continue;
      }
      const close = text.indexOf("}", dollar + 2);
      const reference = close === -1 ? text.slice(dollar) : text.slice(dollar, close + 1);
      index = close === -1 ? text.length : close + 1;
      const at = this.#offsetInSource(field, reference);
      const match = close === -1 ? null : VARIABLE.exec(text.slice(dollar + 2, close));
      if (match === null) {
        this.report(
          at,
          `${
            quotePath(field.path)
          }: expected a variable like \${NAME} or \${NAME:-default}, found ${
            quote(reference)
          } (write $\${ for a literal \${)`,
        );
        ok = false;
        continue;
      }
      const name = match[1]!;
      const fallback = match[2];
      const value = this.env(name);
      if (value !== undefined && (value !== "" || fallback === undefined)) {
        out += value;
      } else if (fallback !== undefined) {
        out += fallback;
      } else {
        this.report(
          at,
          `${quotePath(field.path)}: expected environment variable ${
            quote(name)
          } to be set, found it unset (or give a default: \${${name}:-value})`,
        );
        ok = false;
      }
    }
    out += text.slice(index);
    return ok ? out : undefined;
  }

  /** Where `fragment` sits in the file within the field's scalar, or the scalar's start. */
  #offsetInSource(field: Field, fragment: string): number {
    const range = (field.node as { range?: readonly number[] | null }).range;
    if (!range) return field.offset;
    const start = range[0]!;
    const at = this.text.slice(start, range[1]).indexOf(fragment);
    return at === -1 ? field.offset : start + at;
  }
}

type Env = Record<string, string | undefined>;

const VARIABLE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

function startOf(node: unknown): number | undefined {
  const range = (node as { range?: readonly number[] | null } | null)?.range;
  return range?.[0];
}

/** `sinks[0].file.path`; a key that is not a plain word goes in brackets: `tables[public.*]`. */
function childPath(path: string, key: string | number): string {
  if (typeof key === "number" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return `${path}[${key}]`;
  return path === "" ? key : `${path}.${key}`;
}

/** A value in a message: double-quoted, with JSON escapes. */
function quote(value: string): string {
  return JSON.stringify(value);
}

/**
 * A key path in a message: double-quoted as written, since table names can hold quotes
 * (`"tables["Sales"."Order Items"].topic"` reads better with them unescaped).
 */
function quotePath(path: string): string {
  return `"${path}"`;
}

/** A table name or glob in a message; single-quoted when it holds double quotes. */
function quoteName(name: string): string {
  return name.includes('"') && !name.includes("'") ? `'${name}'` : quote(name);
}

/** How a value appears after "found" in a message. */
function describe(node: unknown, value?: ScalarValue): string {
  if (isMap(node)) return "a map";
  if (isSeq(node)) return "a list";
  if (!isScalar(node)) return "nothing";
  const shown = value === undefined ? node.value as ScalarValue : value;
  if (shown === null) return node.source === "" ? "nothing" : "null";
  if (typeof shown === "string") return quote(shown);
  return String(shown);
}

/** Types an unquoted value the way the YAML 1.2 core schema would have. */
function typePlain(text: string): ScalarValue {
  if (/^(?:~|null|Null|NULL)?$/.test(text)) return null;
  if (/^(?:true|True|TRUE)$/.test(text)) return true;
  if (/^(?:false|False|FALSE)$/.test(text)) return false;
  if (/^[-+]?[0-9]+$/.test(text)) return Number(text);
  if (/^0o[0-7]+$/.test(text)) return parseInt(text.slice(2), 8);
  if (/^0x[0-9a-fA-F]+$/.test(text)) return parseInt(text.slice(2), 16);
  if (/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/.test(text)) {
    return Number(text);
  }
  if (/^[-+]?\.(?:inf|Inf|INF)$/.test(text)) return text.startsWith("-") ? -Infinity : Infinity;
  if (/^\.(?:nan|NaN|NAN)$/.test(text)) return NaN;
  return text;
}

function isNull(node: unknown): boolean {
  return node === null || (isScalar(node) && node.value === null);
}

/** The keys of one map, checked against the keys allowed there. */
class Section {
  readonly field: Field;
  /** False when the map is absent or not a map; missing required keys are then not reported. */
  readonly present: boolean;
  readonly #checker: Checker;
  readonly #values = new Map<string, unknown>();
  readonly #keyOffsets = new Map<string, number>();

  constructor(
    checker: Checker,
    field: Field,
    shape: { keys: readonly string[]; expected: string },
  ) {
    this.#checker = checker;
    this.field = field;
    const node = field.node;
    if (node === undefined || isNull(node)) {
      this.present = node !== undefined; // `queue:` with nothing is an empty map
      return;
    }
    if (!isMap(node)) {
      checker.fail(field, shape.expected);
      this.present = false;
      return;
    }
    this.present = true;
    const where = field.path === "" ? "at the top level" : `in ${quotePath(field.path)}`;
    for (const pair of (node as YAMLMap).items) {
      const key = keyName(checker, pair.key, field);
      if (key === undefined) continue;
      const keyOffset = startOf(pair.key) ?? field.offset;
      const first = this.#keyOffsets.get(key);
      if (first !== undefined) {
        checker.report(
          keyOffset,
          `${
            quotePath(childPath(field.path, key))
          }: expected the key once, found it again (first at line ${checker.line(first)})`,
        );
        continue;
      }
      this.#keyOffsets.set(key, keyOffset);
      if (!shape.keys.includes(key)) {
        checker.report(
          keyOffset,
          `unknown key ${quote(key)} ${where}${suggestion(key, shape.keys)}`,
        );
        continue;
      }
      this.#values.set(key, pair.value);
    }
  }

  has(key: string): boolean {
    return this.#values.has(key);
  }

  /** The field under `key`; `undefined` when the key is absent or its alias is broken. */
  get(key: string): Field | undefined {
    if (!this.#values.has(key)) return undefined;
    const path = childPath(this.field.path, key);
    const raw = this.#values.get(key) ?? null;
    const node = raw === null ? null : this.#checker.deref(raw, path);
    if (node === undefined) return undefined;
    return { node, path, offset: startOf(node) ?? this.keyOffset(key) };
  }

  read<T>(key: string, read: Read<T>, fallback: T): T {
    const field = this.get(key);
    if (field === undefined) return fallback;
    const value = read(this.#checker, field);
    return value === undefined ? fallback : value;
  }

  required<T>(key: string, read: Read<T>, expected: string): T | undefined {
    if (!this.has(key)) {
      if (this.present) {
        const path = childPath(this.field.path, key);
        this.#checker.report(
          this.field.offset,
          `${quotePath(path)}: expected ${expected}, found no ${quote(key)} key`,
        );
      }
      return undefined;
    }
    const field = this.get(key);
    return field === undefined ? undefined : read(this.#checker, field);
  }

  /** The map under `key` (absent when the key is). */
  section(key: string, shape: { keys: readonly string[]; expected: string }): Section {
    const path = childPath(this.field.path, key);
    const field = this.get(key) ?? { node: undefined, path, offset: this.keyOffset(key) };
    return new Section(this.#checker, field, shape);
  }

  keyOffset(key: string): number {
    return this.#keyOffsets.get(key) ?? this.field.offset;
  }
}

function keyName(checker: Checker, key: unknown, parent: Field): string | undefined {
  if (isScalar(key)) return key.value === null ? "" : String(key.value);
  checker.report(
    startOf(key) ?? parent.offset,
    `${quotePath(parent.path || "(top level)")}: expected a key name, found ${
      describe(key)
    } as a key`,
  );
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Did you mean

/** `; did you mean "x"?` for the closest allowed word, or the list of allowed words. */
function suggestion(word: string, allowed: readonly string[]): string {
  const best = closest(word, allowed);
  if (best !== undefined) return `; did you mean ${quote(best)}?`;
  return `; expected one of ${allowed.map(quote).join(", ")}`;
}

/** The candidate within edit distance 2 (ignoring case), or else one sharing a prefix. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  const typed = word.toLowerCase();
  let best: { candidate: string; score: number } | undefined;
  for (const candidate of candidates) {
    const target = candidate.toLowerCase();
    let score = levenshtein(typed, target);
    if (score > 2) {
      const prefix = typed.length >= 2 && (target.startsWith(typed) || typed.startsWith(target));
      if (!prefix) continue;
      score = 3;
    }
    if (best === undefined || score < best.score) best = { candidate, score };
  }
  return best?.candidate;
}

function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

// ---------------------------------------------------------------------------------------
// Readers of one value

/** ` (a string; write 5 without quotes)` when a quoted value would fit unquoted. */
function unquotedHint(value: ScalarValue, fits: (typed: ScalarValue) => boolean): string {
  if (typeof value !== "string") return "";
  const typed = typePlain(value);
  return typed !== value && fits(typed) ? ` (a string; write ${value} without quotes)` : "";
}

function readString(expected = "a string", check?: (value: string) => boolean): Read<string> {
  return (checker, field) => {
    const scalar = checker.scalar(field, expected);
    if (scalar === undefined) return undefined;
    const value = scalar.text ?? scalar.value;
    if (typeof value !== "string" || value === "" || (check !== undefined && !check(value))) {
      return checker.fail(field, expected, describe(field.node, value));
    }
    return value;
  };
}

/** Any string, the empty one included. */
const readAnyString: Read<string> = (checker, field) => {
  const scalar = checker.scalar(field, "a string");
  if (scalar === undefined) return undefined;
  const value = scalar.text ?? scalar.value;
  if (typeof value === "string") return value;
  return checker.fail(field, "a string", describe(field.node, value));
};

/** A secret: a problem names the value's type but never prints it. */
function readSecret(expected: string): Read<string> {
  return (checker, field) => {
    const scalar = checker.scalar(field, expected);
    if (scalar === undefined) return undefined;
    const value = scalar.text ?? scalar.value;
    if (typeof value === "string" && value !== "") return value;
    const found = typeof value === "string" || value === null
      ? describe(field.node, value)
      : `a ${typeof value}`;
    return checker.fail(field, expected, found);
  };
}

function readInteger(min: number): Read<number> {
  const expected = `an integer of at least ${min}`;
  const fits = (v: ScalarValue) => typeof v === "number" && Number.isSafeInteger(v) && v >= min;
  return (checker, field) => {
    const scalar = checker.scalar(field, expected);
    if (scalar === undefined) return undefined;
    const value = scalar.value;
    if (typeof value === "number" && fits(value)) return value;
    return checker.fail(field, expected, describe(field.node, value) + unquotedHint(value, fits));
  };
}

function readNumber(expected: string, check: (value: number) => boolean): Read<number> {
  const fits = (v: ScalarValue) => typeof v === "number" && Number.isFinite(v) && check(v);
  return (checker, field) => {
    const scalar = checker.scalar(field, expected);
    if (scalar === undefined) return undefined;
    const value = scalar.value;
    if (typeof value === "number" && fits(value)) return value;
    return checker.fail(field, expected, describe(field.node, value) + unquotedHint(value, fits));
  };
}

const readBoolean: Read<boolean> = (checker, field) => {
  const expected = "true or false";
  const scalar = checker.scalar(field, expected);
  if (scalar === undefined) return undefined;
  const value = scalar.value;
  if (typeof value === "boolean") return value;
  // YAML 1.1 booleans are plain strings in YAML 1.2.
  const yaml11 = typeof value === "string" && /^(?:y|yes|n|no|on|off)$/i.test(value)
    ? " (a string in YAML 1.2; write true or false)"
    : "";
  const found = describe(field.node, value) + yaml11 +
    unquotedHint(value, (typed) => typeof typed === "boolean");
  return checker.fail(field, expected, found);
};

/** One of a fixed set of values; `booleans` maps `false` and `true` onto two of them. */
function readChoice<T extends string | number>(
  choices: readonly T[],
  booleans?: { false: T; true: T },
): Read<T> {
  const shown = choices.map((choice) => typeof choice === "string" ? quote(choice) : choice);
  const expected = `one of ${shown.join(", ")}`;
  return (checker, field) => {
    const scalar = checker.scalar(field, expected);
    if (scalar === undefined) return undefined;
    const value = scalar.value;
    if (booleans !== undefined && typeof value === "boolean") {
      return value ? booleans.true : booleans.false;
    }
    const found = choices.find((choice) => choice === value);
    if (found !== undefined) return found;
    const words = choices.filter((choice): choice is T & string => typeof choice === "string");
    const hint = typeof value === "string" ? closest(value, words) : undefined;
    const didYouMean = hint === undefined ? "" : `; did you mean ${quote(hint)}?`;
    const unquoted = unquotedHint(value, (typed) => choices.some((choice) => choice === typed));
    return checker.fail(field, expected, describe(field.node, value) + unquoted + didYouMean);
  };
}

/** A duration in ms; with `off`, also `0`, `off` or `false` for 0. */
function readDuration(options: { off?: boolean } = {}): Read<number> {
  const expected = options.off
    ? "a duration like 10s or 200ms, or 0 or off"
    : "a duration like 10s or 200ms";
  return (checker, field) => {
    const scalar = checker.scalar(field, expected);
    if (scalar === undefined) return undefined;
    const value = scalar.value;
    if (options.off && (value === "off" || value === false)) return 0;
    const ms = typeof value === "string" || typeof value === "number"
      ? parseDuration(value)
      : undefined;
    if (ms === undefined || (ms === 0 && !options.off)) {
      return checker.fail(field, expected, describe(field.node, value));
    }
    return ms;
  };
}

/** A size in bytes above 0; with `off`, also `0`, `off`, `false` or `null` for `null`. */
function readSize(options: { off: true }): Read<number | null>;
function readSize(options?: { off?: false }): Read<number>;
function readSize(options: { off?: boolean } = {}): Read<number | null> {
  const expected = options.off ? "a size like 100MB, or 0 or off" : "a size like 100MB";
  return (checker, field) => {
    const scalar = checker.scalar(field, expected);
    if (scalar === undefined) return undefined;
    const value = scalar.value;
    if (options.off && (value === "off" || value === false || value === null || value === 0)) {
      return null;
    }
    const bytes = typeof value === "string" || typeof value === "number"
      ? parseSize(value)
      : undefined;
    if (bytes === undefined || bytes === 0) {
      return checker.fail(field, expected, describe(field.node, value));
    }
    return bytes;
  };
}

/** `null` for `null` or nothing, otherwise what `read` reads. */
function orNull<T>(read: Read<T>): Read<T | null> {
  return (checker, field) => {
    if (isNull(field.node)) return null;
    if (isScalar(field.node)) {
      const scalar = checker.scalar(field, "a value"); // `${VAR:-}` can give null too
      if (scalar === undefined) return undefined;
      if (scalar.value === null) return null;
    }
    return read(checker, field);
  };
}

/** A path, resolved against the pipeline file's directory. */
function readPath(expected: string): Read<string> {
  const read = readString(expected);
  return (checker, field) => {
    const value = read(checker, field);
    return value === undefined ? undefined : resolve(checker.baseDir, value);
  };
}

function readList<T>(item: Read<T>, expected: string): Read<T[]> {
  return (checker, field) => {
    const node = field.node;
    if (!isSeq(node)) return checker.fail(field, expected);
    const items = (node as YAMLSeq).items;
    if (items.length === 0) return checker.fail(field, expected, "an empty list");
    const values: T[] = [];
    let ok = true;
    items.forEach((raw, index) => {
      const path = childPath(field.path, index);
      const resolved = checker.deref(raw, path);
      const value = resolved === undefined ? undefined : item(checker, {
        node: resolved,
        path,
        offset: startOf(resolved) ?? field.offset,
      });
      if (value === undefined) ok = false;
      else values.push(value);
    });
    return ok ? values : undefined;
  };
}

// ---------------------------------------------------------------------------------------
// The pipeline and its sections

const TOP_KEYS = [
  "name",
  "source",
  "tables",
  "defaults",
  "transforms",
  "sinks",
  "queue",
  "spill",
  "http",
  "log",
];

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const NAME_EXPECTED = 'a pipeline name of letters, digits, ".", "_" or "-"';
const PIPELINE_EXPECTED = "a pipeline (a map with source, tables and sinks)";

function readPipeline(checker: Checker, file: string): PipelineConfig | undefined {
  const root = checker.doc.contents;
  if (isNull(root)) {
    checker.report(0, `expected ${PIPELINE_EXPECTED}, found an empty file`);
    return undefined;
  }
  const rootField: Field = { node: root, path: "", offset: startOf(root) ?? 0 };
  if (!isMap(root)) {
    checker.report(rootField.offset, `expected ${PIPELINE_EXPECTED}, found ${describe(root)}`);
    return undefined;
  }
  const top = new Section(checker, rootField, { keys: TOP_KEYS, expected: PIPELINE_EXPECTED });

  const fromFile = basename(file, extname(file));
  const name = top.read("name", readString(NAME_EXPECTED, (v) => NAME.test(v)), fromFile);
  if (!top.has("name") && !NAME.test(fromFile)) {
    checker.report(
      0,
      `"name": expected ${NAME_EXPECTED}, found ${quote(fromFile)} (from the file name; set name)`,
    );
  }

  const source = readSource(checker, top);
  const defaults = readDefaults(top, name);
  const tables = readTables(checker, top, defaults);
  const transforms = readTransforms(top);
  const sinks = readSinks(checker, top);
  const queue = readQueue(top);
  const spill = readSpill(top);
  const http = readHttp(checker, top);
  const log = readLog(top);
  if (source === undefined || tables === undefined || sinks === undefined) return undefined;
  return {
    name,
    file,
    baseDir: checker.baseDir,
    source,
    tables,
    defaults,
    transforms,
    sinks,
    queue,
    spill,
    http,
    log,
  };
}

/** Reports a required top-level key that is missing; true when it is there. */
function requireTop(checker: Checker, top: Section, key: string, expected: string): boolean {
  if (top.has(key)) return true;
  checker.report(
    top.field.offset,
    `${quote(key)}: expected ${expected}, found no ${quote(key)} key`,
  );
  return false;
}

// Source

const SOURCE_SHAPE = {
  keys: [
    "url",
    "slot",
    "publication",
    "create_slot",
    "create_publication",
    "failover",
    "two_phase",
    "proto_version",
    "streaming",
    "binary",
    "heartbeat",
    "status_interval",
    "start_lsn",
    "reconnect",
    "sslmode",
    "sslrootcert",
  ],
  expected: "a map with url, slot and publication",
};

const RECONNECT_SHAPE = {
  keys: ["max_attempts", "initial_delay", "max_delay"],
  expected: "a map with max_attempts, initial_delay and max_delay",
};

const SLOT = /^[a-z0-9_]{1,63}$/;
const SSL_MODES: readonly SslMode[] = ["disable", "prefer", "require", "verify-ca", "verify-full"];
const URL_EXPECTED = "a connection URL like postgres://user:password@host:5432/database";
const encoder = new TextEncoder();

const readUrl: Read<string> = (checker, field) => {
  const scalar = checker.scalar(field, URL_EXPECTED);
  if (scalar === undefined) return undefined;
  const value = scalar.text ?? scalar.value;
  if (typeof value !== "string") {
    return checker.fail(field, URL_EXPECTED, describe(field.node, value));
  }
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== "postgres:" && url.protocol !== "postgresql:")) {
    return checker.fail(field, URL_EXPECTED, quote(redact(value)));
  }
  const sslmode = url.searchParams.get("sslmode");
  if (sslmode !== null && !(SSL_MODES as readonly string[]).includes(sslmode)) {
    const modes = SSL_MODES.map(quote).join(", ");
    return checker.fail(field, `the URL's sslmode to be one of ${modes}`, quote(sslmode));
  }
  return value;
};

const readLsn: Read<Lsn> = (checker, field) => {
  const expected = "an LSN like 16/B374D848";
  const scalar = checker.scalar(field, expected);
  if (scalar === undefined) return undefined;
  const value = scalar.text ?? scalar.value;
  if (typeof value === "string") {
    try {
      return parseLsn(value);
    } catch {
      // Reported below.
    }
  }
  return checker.fail(field, expected, describe(field.node, value));
};

function readSource(checker: Checker, top: Section): SourceConfig | undefined {
  requireTop(checker, top, "source", SOURCE_SHAPE.expected);
  const section = top.section("source", SOURCE_SHAPE);
  const url = section.required("url", readUrl, URL_EXPECTED);
  const slot = section.required(
    "slot",
    readString(
      "a slot name of 1 to 63 lower-case letters, digits or underscores",
      (v) => SLOT.test(v),
    ),
    "a slot name like orders_cdc",
  );
  const publication = section.required(
    "publication",
    readString("a publication name of 1 to 63 bytes", (v) => encoder.encode(v).length <= 63),
    "a publication name like orders_pub",
  );
  const protoVersion = section.read<"auto" | ProtoVersion>(
    "proto_version",
    readChoice<"auto" | ProtoVersion>(["auto", 1, 2, 3, 4]),
    "auto",
  );
  const streaming = section.read<SourceConfig["streaming"]>(
    "streaming",
    readChoice(["off", "on", "parallel"] as const, { false: "off", true: "on" }),
    DEFAULT_STREAMING,
  );
  const twoPhase = section.read("two_phase", readBoolean, false);
  checkProtoVersion(checker, section, { protoVersion, streaming, twoPhase });
  const reconnect = readReconnect(checker, section);
  const sslrootcert = orNull(readPath("a path to a CA certificate file"));
  const rest = {
    createSlot: section.read("create_slot", readBoolean, true),
    createPublication: section.read("create_publication", readBoolean, true),
    failover: section.read("failover", readBoolean, false),
    twoPhase,
    protoVersion,
    streaming,
    binary: section.read("binary", readBoolean, false),
    heartbeatMs: section.read("heartbeat", readDuration({ off: true }), 10_000),
    statusIntervalMs: section.read("status_interval", readDuration(), 10_000),
    startLsn: section.read("start_lsn", orNull(readLsn), null),
    reconnect,
    sslmode: section.read("sslmode", orNull(readChoice(SSL_MODES)), null),
    sslrootcert: section.read("sslrootcert", sslrootcert, null),
  };
  if (url === undefined || slot === undefined || publication === undefined) return undefined;
  return { url, slot, publication, ...rest };
}

/** A fixed `proto_version` must support the streaming mode and two-phase setting asked for. */
function checkProtoVersion(
  checker: Checker,
  section: Section,
  options: Pick<SourceConfig, "protoVersion" | "streaming" | "twoPhase">,
): void {
  const { protoVersion, streaming, twoPhase } = options;
  if (protoVersion === "auto") return;
  const needed = streaming === "parallel" ? 4 : streaming === "on" ? 2 : 1;
  const streamingField = section.get("streaming");
  const versionField = section.get("proto_version");
  if (protoVersion < needed && streamingField !== undefined) {
    checker.fail(
      streamingField,
      `"off" with proto_version ${protoVersion} (streaming ${
        quote(streaming)
      } needs ${needed} or later)`,
    );
  } else if (protoVersion < needed && versionField !== undefined) {
    checker.fail(
      versionField,
      `${needed} or later for the default streaming ${quote(streaming)} (or set streaming: off)`,
    );
  }
  const twoPhaseField = section.get("two_phase");
  if (twoPhase && protoVersion < 3 && twoPhaseField !== undefined) {
    checker.fail(
      twoPhaseField,
      `false with proto_version ${protoVersion} (two_phase needs 3 or later)`,
    );
  }
}

const readMaxAttempts: Read<number> = (checker, field) => {
  const expected = "an integer of at least 1, or unlimited";
  const scalar = checker.scalar(field, expected);
  if (scalar === undefined) return undefined;
  const value = scalar.value;
  if (value === "unlimited") return Infinity;
  const fits = (v: ScalarValue) => typeof v === "number" && Number.isSafeInteger(v) && v >= 1;
  if (typeof value === "number" && fits(value)) return value;
  return checker.fail(field, expected, describe(field.node, value) + unquotedHint(value, fits));
};

function readReconnect(checker: Checker, source: Section): ReconnectConfig {
  const section = source.section("reconnect", RECONNECT_SHAPE);
  const initialDelayMs = section.read("initial_delay", readDuration(), 250);
  const maxDelayMs = section.read("max_delay", readDuration(), 15_000);
  const field = section.get("max_delay") ?? section.get("initial_delay");
  if (maxDelayMs < initialDelayMs && field !== undefined) {
    checker.fail(
      field,
      `max_delay to be at least initial_delay (${formatDuration(initialDelayMs)})`,
      formatDuration(maxDelayMs),
    );
  }
  return {
    maxAttempts: section.read("max_attempts", readMaxAttempts, 10),
    initialDelayMs,
    maxDelayMs,
  };
}

// Tables and defaults

const TABLE_KEYS = [
  "topic",
  "key",
  "transform",
  "toast",
  "toast_placeholder",
  "toast_cache_size",
];
const TABLE_SHAPE = { keys: TABLE_KEYS, expected: "a map of table options, or {}" };
const DEFAULTS_SHAPE = {
  keys: [...TABLE_KEYS, "topic_prefix"],
  expected: "a map of table options",
};
const TABLES_EXPECTED =
  'a map of tables or globs to options, like public.orders: {} or "public.*": {}';
const TABLE_NAME_EXPECTED = "a table like schema.table or a glob like public.*";
const TOAST_MODES: readonly ToastMode[] = ["unchanged", "omit", "placeholder", "last_value"];
const PLACEHOLDERS = ["prefix", "schema", "table"];
const TRANSFORM_EXTENSIONS = [".ts", ".mts", ".js", ".mjs"];

const readTopic: Read<string> = (checker, field) => {
  const value = readString("a topic like app.{schema}.{table}")(checker, field);
  if (value === undefined) return undefined;
  for (const match of value.matchAll(/\{([^{}]*)\}/g)) {
    if (PLACEHOLDERS.includes(match[1]!)) continue;
    const hint = closest(match[1]!, PLACEHOLDERS);
    const didYouMean = hint === undefined ? "" : `; did you mean "{${hint}}"?`;
    return checker.fail(
      field,
      "placeholders {prefix}, {schema} or {table}",
      quote(match[0]) + didYouMean,
    );
  }
  if (/[{}]/.test(value.replace(/\{(?:prefix|schema|table)\}/g, ""))) {
    return checker.fail(field, "a topic with balanced braces around placeholders", quote(value));
  }
  return value;
};

const readTransformPath: Read<string> = (checker, field) => {
  const path = readPath("a path to a transform module like transforms/orders.ts")(checker, field);
  if (path === undefined) return undefined;
  if (TRANSFORM_EXTENSIONS.includes(extname(path))) return path;
  return checker.fail(field, `a transform module ending in ${TRANSFORM_EXTENSIONS.join(", ")}`);
};

const readKeyColumns: Read<string[]> = (checker, field) => {
  const columns = readList(readString("a column name"), "a list of column names like [id]")(
    checker,
    field,
  );
  if (columns === undefined) return undefined;
  const twice = columns.find((column, index) => columns.indexOf(column) !== index);
  if (twice === undefined) return columns;
  return checker.fail(field, "each column once", `${quote(twice)} twice`);
};

/** Reads the table options of one map; what it does not set comes from `base`. */
function readTableOptions(section: Section, base: TableOptions): TableOptions {
  return {
    topic: section.read("topic", readTopic, base.topic),
    key: section.read("key", orNull(readKeyColumns), base.key),
    transform: section.read("transform", orNull(readTransformPath), base.transform),
    toast: section.read("toast", readChoice(TOAST_MODES), base.toast),
    toastPlaceholder: section.read("toast_placeholder", readAnyString, base.toastPlaceholder),
    toastCacheSize: section.read("toast_cache_size", readInteger(1), base.toastCacheSize),
  };
}

function readDefaults(top: Section, name: string): TableDefaults {
  const section = top.section("defaults", DEFAULTS_SHAPE);
  const options = readTableOptions(section, {
    topic: "{prefix}.{schema}.{table}",
    key: null,
    transform: null,
    toast: "unchanged",
    toastPlaceholder: "__debezium_unavailable_value",
    toastCacheSize: 10_000,
  });
  const prefix = readString("a topic prefix");
  return { ...options, topicPrefix: section.read("topic_prefix", prefix, name) };
}

function readTables(
  checker: Checker,
  top: Section,
  defaults: TableDefaults,
): TableEntry[] | undefined {
  if (!requireTop(checker, top, "tables", TABLES_EXPECTED)) return undefined;
  const field = top.get("tables");
  if (field === undefined) return undefined;
  if (!isMap(field.node)) return checker.fail(field, TABLES_EXPECTED);
  const pairs = (field.node as YAMLMap).items;
  if (pairs.length === 0) return checker.fail(field, TABLES_EXPECTED, "an empty map");
  const entries: TableEntry[] = [];
  const seen = new Map<string, number>();
  let ok = true;
  for (const pair of pairs) {
    const entry = readTableEntry(checker, { key: pair.key, value: pair.value }, { defaults, seen });
    if (entry === undefined) ok = false;
    else entries.push(entry);
  }
  return ok ? entries : undefined;
}

function readTableEntry(
  checker: Checker,
  pair: { key: unknown; value: unknown },
  options: { defaults: TableDefaults; seen: Map<string, number> },
): TableEntry | undefined {
  const tables: Field = { node: pair.key, path: "tables", offset: startOf(pair.key) ?? 0 };
  const pattern = keyName(checker, pair.key, tables);
  if (pattern === undefined) return undefined;
  const parsed = parseTableName(pattern);
  if (typeof parsed === "string") {
    return checker.fail(tables, TABLE_NAME_EXPECTED, quoteName(pattern) + parsed);
  }
  const canonical = `${formatPart(parsed.schema)}.${formatPart(parsed.table)}`;
  const first = options.seen.get(canonical);
  if (first !== undefined) {
    const again = `${quoteName(pattern)}, the same as line ${checker.line(first)}`;
    return checker.fail(tables, "each table or glob once", again);
  }
  options.seen.set(canonical, tables.offset);
  const path = childPath("tables", pattern);
  const value = pair.value === null ? null : checker.deref(pair.value, path);
  if (value === undefined) return undefined;
  const field: Field = { node: value, path, offset: startOf(value) ?? tables.offset };
  const tableOptions = readTableOptions(new Section(checker, field, TABLE_SHAPE), options.defaults);
  const { line, col } = checker.lines.linePos(tables.offset);
  return { pattern, ...parsed, line, column: col, ...tableOptions };
}

const UNQUOTED = /^[a-z_*?][a-z0-9_$*?]*$/;

/**
 * Parses `schema.table`. Each part is an unquoted lower-case name (PostgreSQL folds
 * unquoted names to lower case), a glob (`*` and `?` in an unquoted part), or a
 * double-quoted name kept as written (`""` for a quote). Returns the parts, or the end of
 * a "found ..." message saying what is wrong.
 */
function parseTableName(text: string): { schema: NamePattern; table: NamePattern } | string {
  const parts: (NamePattern & { raw: string })[] = [];
  let index = 0;
  for (;;) {
    const part = text[index] === '"' ? quotedPart(text, index) : unquotedPart(text, index);
    if (typeof part === "string") return part;
    parts.push(part);
    index += part.raw.length;
    if (index >= text.length) break;
    if (text[index] !== ".") return "; expected a dot after a quoted name";
    index++;
    if (index >= text.length) return "; the table name is empty";
  }
  if (parts.some((part) => encoder.encode(part.name).length > 63)) {
    return "; PostgreSQL names are at most 63 bytes";
  }
  const [schema, table] = parts as [NamePattern & { raw: string }, NamePattern | undefined];
  if (table === undefined) {
    if (schema.name === "*") {
      return { schema: { name: "*", glob: true }, table: { name: "*", glob: true } };
    }
    return `; did you mean ${quote(`public.${schema.raw}`)}?`;
  }
  if (parts.length > 2) return '; quote names with dots, as in "my.schema".orders';
  return {
    schema: { name: schema.name, glob: schema.glob },
    table: { name: table.name, glob: table.glob },
  };
}

function quotedPart(text: string, start: number): (NamePattern & { raw: string }) | string {
  let name = "";
  let index = start + 1;
  for (;;) {
    const close = text.indexOf('"', index);
    if (close === -1) return "; a quoted name is missing its closing quote";
    name += text.slice(index, close);
    index = close + 1;
    if (text[index] !== '"') break;
    name += '"';
    index++;
  }
  if (name === "") return "; a quoted name is empty";
  return { name, glob: false, raw: text.slice(start, index) };
}

function unquotedPart(text: string, start: number): (NamePattern & { raw: string }) | string {
  const dot = text.indexOf(".", start);
  const raw = text.slice(start, dot === -1 ? text.length : dot);
  if (raw === "") return "; a name is empty";
  if (UNQUOTED.test(raw)) return { name: raw, glob: /[*?]/.test(raw), raw };
  if (/^[A-Za-z_*?][A-Za-z0-9_$*?]*$/.test(raw)) {
    const quoted = text.split(".").map((p) => /[A-Z]/.test(p) ? `"${p}"` : p).join(".");
    return `; unquoted names are lower case in PostgreSQL, so quote mixed-case ones: '${quoted}'`;
  }
  return '; quote names with spaces, dots or upper case, as in "Sales"."Order Items"';
}

function formatPart(part: NamePattern): string {
  if (part.glob || /^[a-z_][a-z0-9_$]*$/.test(part.name)) return part.name;
  return `"${part.name.replaceAll('"', '""')}"`;
}

// Transforms

const TRANSFORMS_SHAPE = {
  keys: ["timeout", "on_error", "breaker", "dead_letter_topic"],
  expected: "a map with timeout, on_error, breaker and dead_letter_topic",
};
const BREAKER_SHAPE = { keys: ["failures", "window"], expected: "a map with failures and window" };
const ON_ERROR: readonly OnError[] = ["passthrough", "dead_letter", "skip", "stop"];

function readTransforms(top: Section): TransformsConfig {
  const section = top.section("transforms", TRANSFORMS_SHAPE);
  const breaker = section.section("breaker", BREAKER_SHAPE);
  return {
    timeoutMs: section.read("timeout", readDuration({ off: true }), 200),
    onError: section.read("on_error", readChoice(ON_ERROR), "dead_letter"),
    breaker: {
      failures: breaker.read("failures", readInteger(1), 5),
      windowMs: breaker.read("window", readDuration(), 30_000),
    },
    deadLetterTopic: section.read("dead_letter_topic", orNull(readString("a topic name")), null),
  };
}

// Sinks

const SINK_TYPES = ["stdout", "file", "kafka"] as const;
type SinkType = typeof SINK_TYPES[number];
const SINKS_EXPECTED = "a list of sinks like - stdout: { format: json }";

function readSinks(checker: Checker, top: Section): SinkConfig[] | undefined {
  if (!requireTop(checker, top, "sinks", SINKS_EXPECTED)) return undefined;
  const field = top.get("sinks");
  if (field === undefined) return undefined;
  if (!isSeq(field.node)) return checker.fail(field, SINKS_EXPECTED);
  const items = (field.node as YAMLSeq).items;
  if (items.length === 0) return checker.fail(field, SINKS_EXPECTED, "an empty list");
  const sinks: SinkConfig[] = [];
  const files = new Map<string, string>();
  let ok = true;
  items.forEach((raw, index) => {
    const path = childPath("sinks", index);
    const node = checker.deref(raw, path);
    const sink = node === undefined
      ? undefined
      : readSink(checker, { node, path, offset: startOf(node) ?? field.offset }, files);
    if (sink === undefined) ok = false;
    else sinks.push(sink);
  });
  return ok ? sinks : undefined;
}

function readSink(
  checker: Checker,
  field: Field,
  files: Map<string, string>,
): SinkConfig | undefined {
  const node = field.node;
  const types = SINK_TYPES.join(", ");
  if (!isMap(node)) {
    const named = isScalar(node) && (SINK_TYPES as readonly unknown[]).includes(node.value);
    const hint = named ? `; write "${node.value}: {}"` : "";
    return checker.fail(
      field,
      `a map with one key naming the sink type (${types})`,
      describe(node) + hint,
    );
  }
  const pairs = (node as YAMLMap).items;
  if (pairs.length !== 1) {
    const names = pairs.map((pair) =>
      isScalar(pair.key) ? quote(String(pair.key.value)) : describe(pair.key)
    );
    const found = pairs.length === 0
      ? "an empty map"
      : `${pairs.length} keys: ${names.join(", ")}; start each sink with its own "-"`;
    return checker.fail(field, `one sink type per list item (${types})`, found);
  }
  const pair = pairs[0]!;
  const type = keyName(checker, pair.key, field);
  if (type === undefined) return undefined;
  const keyOffset = startOf(pair.key) ?? field.offset;
  if (!(SINK_TYPES as readonly string[]).includes(type)) {
    const hint = suggestion(type, SINK_TYPES);
    checker.report(
      keyOffset,
      `unknown sink type ${quote(type)} in ${quotePath(field.path)}${hint}`,
    );
    return undefined;
  }
  const path = childPath(field.path, type);
  const value = pair.value === null ? null : checker.deref(pair.value, path);
  if (value === undefined) return undefined;
  const valueField: Field = { node: value, path, offset: startOf(value) ?? keyOffset };
  const sinkType = type as SinkType;
  switch (sinkType) {
    case "stdout":
      return readStdoutSink(checker, valueField);
    case "file":
      return readFileSink(checker, valueField, files);
    case "kafka":
      return readKafkaSink(checker, valueField);
    default: {
      const unreachable: never = sinkType;
      throw new Error(`Cannot read sink type "${unreachable}"`);
    }
  }
}

function readStdoutSink(checker: Checker, field: Field): StdoutSinkConfig {
  const section = new Section(checker, field, { keys: ["format"], expected: "a map with format" });
  const format = readChoice(["json", "pretty", "auto"] as const);
  return { type: "stdout", format: section.read("format", format, "auto") };
}

const FILE_SHAPE = {
  keys: ["path", "rotate_bytes", "fsync"],
  expected: "a map with path, rotate_bytes and fsync",
};
const FILE_PATH_EXPECTED = "a file path like out/changes.jsonl";

function readFileSink(
  checker: Checker,
  field: Field,
  files: Map<string, string>,
): FileSinkConfig | undefined {
  const section = new Section(checker, field, FILE_SHAPE);
  const path = section.required("path", readPath(FILE_PATH_EXPECTED), FILE_PATH_EXPECTED);
  const rotateBytes = section.read("rotate_bytes", readSize({ off: true }), null);
  const fsync = section.read("fsync", readBoolean, true);
  if (path === undefined) return undefined;
  const other = files.get(path);
  if (other !== undefined) {
    const found = `${quote(path)}, also written by ${quotePath(other)}`;
    return checker.fail(section.get("path")!, "a file no other file sink writes", found);
  }
  files.set(path, field.path);
  return { type: "file", path, rotateBytes, fsync };
}

const KAFKA_SHAPE = {
  keys: [
    "brokers",
    "format",
    "exactly_once",
    "transactional_id",
    "schema_registry",
    "acks",
    "compression",
    "client_id",
    "topic_prefix",
    "tls",
    "sasl",
  ],
  expected: "a map with brokers and other Kafka options",
};
const BROKERS_EXPECTED = "a list of brokers like [localhost:9092]";
const BROKER = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/;
const REGISTRY_EXPECTED = "a schema registry URL like http://localhost:8081";
const HTTP_URL = /^https?:\/\/\S+$/;

function readKafkaSink(checker: Checker, field: Field): KafkaSinkConfig | undefined {
  const section = new Section(checker, field, KAFKA_SHAPE);
  const broker = readString("a broker like localhost:9092", (v) => BROKER.test(v));
  const brokers = section.required("brokers", readList(broker, BROKERS_EXPECTED), BROKERS_EXPECTED);
  const format = section.read(
    "format",
    readChoice(["debezium-json", "debezium-avro", "json"] as const),
    "debezium-json",
  );
  const exactlyOnce = section.read("exactly_once", readBoolean, false);
  const acks = section.read("acks", readAcks, "all");
  const acksField = section.get("acks");
  if (exactlyOnce && acks !== "all" && acksField !== undefined) {
    checker.fail(acksField, '"all" when exactly_once is true');
  }
  const schemaRegistry = section.read("schema_registry", orNull(readSchemaRegistry), null);
  const registryField = section.get("schema_registry");
  if (format === "debezium-avro" && registryField === undefined && section.present) {
    const path = quotePath(childPath(field.path, "schema_registry"));
    checker.report(
      field.offset,
      `${path}: expected ${REGISTRY_EXPECTED} for format "debezium-avro", found no "schema_registry" key`,
    );
  } else if (format === "debezium-avro" && registryField && isNull(registryField.node)) {
    checker.fail(registryField, `${REGISTRY_EXPECTED} for format "debezium-avro"`);
  }
  const compression = readChoice(["none", "gzip", "snappy", "lz4", "zstd"] as const);
  const config: Omit<KafkaSinkConfig, "brokers"> = {
    type: "kafka",
    format,
    exactlyOnce,
    transactionalId: section.read("transactional_id", orNull(readString("an id")), null),
    schemaRegistry,
    acks,
    compression: section.read("compression", compression, "none"),
    clientId: section.read("client_id", readString("a client id"), "spillway"),
    topicPrefix: section.read("topic_prefix", orNull(readString("a topic prefix")), null),
    tls: section.read("tls", readTls, null),
    sasl: section.read("sasl", orNull(readSasl), null),
  };
  return brokers === undefined ? undefined : { ...config, brokers };
}

const readAcks: Read<"all" | 0 | 1> = (checker, field) => {
  const value = readChoice<"all" | -1 | 0 | 1>(["all", -1, 0, 1])(checker, field);
  return value === -1 ? "all" : value;
};

const readSchemaRegistry: Read<NonNullable<KafkaSinkConfig["schemaRegistry"]>> = (
  checker,
  field,
) => {
  const readUrl = readString(REGISTRY_EXPECTED, (v) => HTTP_URL.test(v));
  if (!isMap(field.node)) {
    const url = readUrl(checker, field);
    return url === undefined ? undefined : { url, username: null, password: null };
  }
  const section = new Section(checker, field, {
    keys: ["url", "username", "password"],
    expected: `${REGISTRY_EXPECTED}, or a map with url, username and password`,
  });
  const url = section.required("url", readUrl, REGISTRY_EXPECTED);
  const username = section.read("username", orNull(readString("a user name")), null);
  const password = section.read("password", orNull(readSecret("a password")), null);
  return url === undefined ? undefined : { url, username, password };
};

const readTls: Read<KafkaSinkConfig["tls"]> = (checker, field) => {
  const expected = "true, false, or a map with ca";
  if (isMap(field.node)) {
    const section = new Section(checker, field, { keys: ["ca"], expected });
    return { ca: section.read("ca", orNull(readPath("a path to a CA certificate file")), null) };
  }
  const scalar = checker.scalar(field, expected);
  if (scalar === undefined) return undefined;
  if (scalar.value === null || scalar.value === false) return null;
  if (scalar.value === true) return { ca: null };
  return checker.fail(field, expected, describe(field.node, scalar.value));
};

const SASL_SHAPE = {
  keys: ["mechanism", "username", "password"],
  expected: "a map with mechanism, username and password",
};
const SASL_MECHANISMS = ["plain", "scram-sha-256", "scram-sha-512"] as const;

const readSasl: Read<NonNullable<KafkaSinkConfig["sasl"]>> = (checker, field) => {
  const section = new Section(checker, field, SASL_SHAPE);
  const mechanism = section.required(
    "mechanism",
    readChoice(SASL_MECHANISMS),
    `one of ${SASL_MECHANISMS.map(quote).join(", ")}`,
  );
  const username = section.required("username", readString("a user name"), "a user name");
  const password = section.required(
    "password",
    readSecret("a password"),
    "a password like ${KAFKA_PASSWORD}",
  );
  if (mechanism === undefined || username === undefined || password === undefined) {
    return undefined;
  }
  return { mechanism, username, password };
};

// Queue, spill, http, log

const QUEUE_SHAPE = {
  keys: ["capacity", "high_watermark"],
  expected: "a map with capacity and high_watermark",
};
const SPILL_SHAPE = { keys: ["memory_limit", "dir"], expected: "a map with memory_limit and dir" };
const HTTP_EXPECTED = "a map with listen, or off";
const LISTEN_EXPECTED = "an address like 127.0.0.1:9464, a port, or off";
const LOG_SHAPE = { keys: ["level", "format"], expected: "a map with level and format" };

function readQueue(top: Section): QueueConfig {
  const section = top.section("queue", QUEUE_SHAPE);
  const fraction = readNumber("a number above 0 and at most 1", (v) => v > 0 && v <= 1);
  return {
    capacity: section.read("capacity", readInteger(1), 10_000),
    highWatermark: section.read("high_watermark", fraction, 0.8),
  };
}

function readSpill(top: Section): SpillConfig {
  const section = top.section("spill", SPILL_SHAPE);
  return {
    memoryLimitBytes: section.read("memory_limit", readSize(), 64_000_000),
    dir: section.read("dir", orNull(readPath("a directory path")), null),
  };
}

function defaultHttp(): HttpConfig {
  return { listen: "127.0.0.1:9464", hostname: "127.0.0.1", port: 9464 };
}

function readHttp(checker: Checker, top: Section): HttpConfig | null {
  if (!top.has("http")) return defaultHttp();
  const field = top.get("http");
  if (field === undefined) return null;
  if (!isMap(field.node)) {
    const scalar = checker.scalar(field, HTTP_EXPECTED);
    if (scalar === undefined) return null;
    if (scalar.value === null || scalar.value === false || scalar.value === "off") return null;
    checker.fail(field, HTTP_EXPECTED, describe(field.node, scalar.value));
    return null;
  }
  const section = new Section(checker, field, { keys: ["listen"], expected: HTTP_EXPECTED });
  return section.has("listen") ? section.read("listen", readListen, null) : defaultHttp();
}

const readListen: Read<HttpConfig | null> = (checker, field) => {
  const scalar = checker.scalar(field, LISTEN_EXPECTED);
  if (scalar === undefined) return undefined;
  const value = scalar.value;
  if (value === null || value === false || value === "off") return null;
  if (typeof value === "number") {
    if (Number.isInteger(value) && value >= 0 && value <= 65_535) {
      return { listen: String(value), hostname: "127.0.0.1", port: value };
    }
    return checker.fail(field, LISTEN_EXPECTED, String(value));
  }
  const match = typeof value === "string"
    ? /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]*):(\d{1,5})$/.exec(value)
    : null;
  const port = Number(match?.[2]);
  if (typeof value !== "string" || match === null || port > 65_535) {
    return checker.fail(field, LISTEN_EXPECTED, describe(field.node, value));
  }
  const host = match[1]!.replace(/^\[(.*)\]$/, "$1");
  return { listen: value, hostname: host === "" ? "127.0.0.1" : host, port };
};

function readLog(top: Section): LogConfig {
  const section = top.section("log", LOG_SHAPE);
  return {
    level: section.read("level", readChoice(["debug", "info", "warn", "error"] as const), "info"),
    format: section.read("format", readChoice(["text", "json"] as const), "text"),
  };
}

// ---------------------------------------------------------------------------------------
// Syntax errors and table matching

/** The YAML library's message in our grammar: lower case first, no trailing period. */
function syntaxMessage(code: string, message: string): string {
  switch (code) {
    case "TAB_AS_INDENT":
      return "expected spaces for indentation, found a tab";
    case "MULTIPLE_DOCS":
      return 'expected one document, found a second "---"';
    case "TAG_RESOLVE_FAILED":
      return `expected no tags, found ${quote(message.replace(/^Unresolved tag: /, ""))}`;
    case "UNEXPECTED_TOKEN": {
      const match = /^Unexpected ([\w-]+)(?: token)? (?:at node end|in YAML stream: "(.*)")$/
        .exec(message);
      const token = match === null ? undefined : TOKENS[match[1]!] ?? match[2];
      if (token === undefined) break;
      const hint = "{}[],".includes(token) ? " (quote a value that contains { } [ ] or ,)" : "";
      return `found an unexpected ${quote(token)}${hint}`;
    }
  }
  const text = message.replace(/;? *please use .*$/i, "").replace(/\.$/, "");
  return text.charAt(0).toLowerCase() + text.slice(1);
}

const TOKENS: Record<string, string> = {
  "flow-map-start": "{",
  "flow-map-end": "}",
  "flow-seq-start": "[",
  "flow-seq-end": "]",
  "comma": ",",
  "map-value-ind": ":",
  "seq-item-ind": "-",
};

const globs = new WeakMap<NamePattern, RegExp>();

function matchesPart(part: NamePattern, name: string): boolean {
  if (!part.glob) return part.name === name;
  let regex = globs.get(part);
  if (regex === undefined) {
    const source = [...part.name]
      .map((char) => char === "*" ? ".*" : char === "?" ? "." : char === "$" ? "\\$" : char)
      .join("");
    regex = new RegExp(`^${source}$`, "su");
    globs.set(part, regex);
  }
  return regex.test(name);
}

/** Characters before the first wildcard in `schema.table`. */
function literalPrefix(entry: TableEntry): number {
  const { schema, table } = entry;
  if (schema.glob) return schema.name.search(/[*?]/);
  return schema.name.length + 1 + (table.glob ? table.name.search(/[*?]/) : table.name.length);
}

function literalCount(entry: TableEntry): number {
  return (entry.schema.name + entry.table.name).replace(/[*?]/g, "").length;
}

function resolveTable(
  config: PipelineConfig,
  entry: TableEntry,
  name: { schema: string; table: string },
): ResolvedTable {
  const values: Record<string, string> = { prefix: config.defaults.topicPrefix, ...name };
  const topic = entry.topic.replace(/\{(prefix|schema|table)\}/g, (_, key: string) => values[key]!);
  return {
    schema: name.schema,
    table: name.table,
    pattern: entry.pattern,
    topic,
    key: entry.key,
    transform: entry.transform,
    toast: entry.toast,
    toastPlaceholder: entry.toastPlaceholder,
    toastCacheSize: entry.toastCacheSize,
  };
}
