/**
 * The typed pipeline configuration: {@linkcode PipelineConfig} and the type of each of its
 * sections, with every default filled in, and the error that lists a file's problems.
 *
 * @module
 */

import type { SslMode } from "../postgres/connection_string.ts";
import { ConfigError } from "../errors.ts";
import type { Lsn } from "../decoder/lsn.ts";
import type { ProtoVersion } from "../decoder/pgoutput.ts";

/** A parsed pipeline file with every default filled in. */
export interface PipelineConfig {
  /** `name`, or the file name without its extension. */
  name: string;
  /** The file as it was named to the parser, for messages. */
  file: string;
  /** Absolute directory that relative paths in the file were resolved against. */
  baseDir: string;
  source: SourceConfig;
  /** Table entries in file order; see `matchTable` (tables.ts). */
  tables: TableEntry[];
  /** What a table entry gets for each option it does not set. */
  defaults: TableDefaults;
  transforms: TransformsConfig;
  /** Topics and keys from a table in the database; `null` (default): none. */
  routing: RoutingConfig | null;
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
  /**
   * Install the event triggers that send each DDL command's text into the stream as a
   * transactional message with prefix `spillway.ddl` (needs a superuser). Default false.
   */
  captureDdl: boolean;
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
  /**
   * The state file (see `pipelines/state.ts`): an absolute path, `false` for none, or `null`
   * (default) for `<pipeline file name>.state.json` beside the pipeline file under
   * `spillway run`, none for a runner built in code.
   */
  stateFile: string | false | null;
  /** The largest replication message accepted, in bytes. Default 1 GiB. */
  maxMessageBytes: number;
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
  /**
   * Absolute paths of the transform modules, applied in order (a chain); `null` (default) for
   * none.
   */
  transform: string[] | null;
  /** What the table's transforms may read, reach and see; `null` (default): `transforms.allow`. */
  allow: TransformPermissions | null;
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

/** A table's options after `matchTable` (tables.ts) picked its entry. */
export interface ResolvedTable extends TableOptions {
  schema: string;
  table: string;
  /** The entry that matched, as written in the file. */
  pattern: string;
  /** The topic with its placeholders filled in. */
  topic: string;
}

/** Permissions a transform is granted; every list empty (nothing) by default. */
export interface TransformPermissions {
  /** Absolute paths (files or folders) it may read. */
  read: string[];
  /** Hosts (`host` or `host:port`) it may connect to. */
  net: string[];
  /** Environment variables it may read. */
  env: string[];
}

/** One step of `transforms.on_error`, tried in order for an event whose transform failed. */
export type OnErrorStep =
  /** Runs the transform on the event again, up to `times` times. */
  | { action: "retry"; times: number }
  /** The decoded event goes on unchanged, marked untransformed in a header. */
  | { action: "passthrough" }
  /** The event, the error and where it came from go to the dead-letter sink. */
  | { action: "dead_letter" }
  /** The event is dropped, counted and logged. */
  | { action: "skip" }
  /** Reading pauses, the slot's position is held, until a new version of the file loads. */
  | { action: "stop" };

/** The `transforms` section. */
export interface TransformsConfig {
  /** Time budget per event; 0 for no limit. Default 200 ms. */
  timeoutMs: number;
  /** Default `[dead_letter]`. */
  onError: OnErrorStep[];
  /** Default 5 failures in 30 s open it; half-open after a 30 s cooldown. */
  breaker: { failures: number; windowMs: number; cooldownMs: number };
  /** Permissions of every table's transforms, unless the table sets its own. */
  allow: TransformPermissions;
  /**
   * Where dead-lettered events go; `null` (default): a file beside the pipeline file,
   * `<name>.dead-letter.jsonl`.
   */
  deadLetter: FileSinkConfig | KafkaDeadLetterConfig | null;
  /** Where a running pipeline writes row types when a table's columns change; `null`: nowhere. */
  typesDir: string | null;
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
  schemaRegistry: {
    url: string;
    username: string | null;
    password: string | null;
    /** CA certificate file (resolved) for an https registry; `null`: the system's. */
    ca: string | null;
    /** `topic`: TopicNameStrategy; `record`: RecordNameStrategy; `topic_record`: both. */
    subjectNaming: "topic" | "record" | "topic_record";
    /**
     * A new schema the registry refuses: `stop` (default) the pipeline before the change, or
     * `dead_letter`: write the table's changes to {@linkcode deadLetterTopic} as JSON.
     */
    onIncompatible: "stop" | "dead_letter";
    /** `null` (default): `<topic_prefix>.dead-letter`. */
    deadLetterTopic: string | null;
  } | null;
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
  /** Embed the Connect schema in keys and values (JsonConverter's `schemas.enable`). Default true. */
  schemas: boolean;
  /** A tombstone (null value) after each delete, as Debezium's `tombstones.on.delete`. Default true. */
  tombstones: boolean;
  /** Write truncates (op `t`); Debezium skips them by default. Default false. */
  truncate: boolean;
  /** BEGIN/END records on `<prefix>.transaction` and a block in each event. Default false. */
  transactionMetadata: boolean;
  /** Add `spillway.lsn`, `spillway.xid`, `spillway.commit_time`, `spillway.schema_version`. Default true. */
  headers: boolean;
  /** Changes of a table without a key: `null_key` (default), `single_partition`, or `error`. */
  keyless: "null_key" | "single_partition" | "error";
  /** Create missing topics with `partitions` and `replication_factor`. Default true. */
  createTopics: boolean;
  /** Partitions of created topics; -1 (default): the broker's default. */
  partitions: number;
  /** Replication factor of created topics; -1 (default): the broker's default. */
  replicationFactor: number;
  /** Longest a record waits for more to join its request while the pipeline is busy. Default 5 ms. */
  lingerMs: number;
  /** Largest produce request, in bytes of records. Default 1 MB. */
  batchBytes: number;
  /** The compacted topic exactly-once writes its checkpoint to. Default `spillway.checkpoints`. */
  checkpointTopic: string;
}

/**
 * `transforms.dead_letter: { kafka: { brokers, topic, ... } }`: a Kafka sink that takes only
 * dead letters, at-least-once.
 */
export interface KafkaDeadLetterConfig extends KafkaSinkConfig {
  /** `null` (default): `<topic_prefix>.dead-letter`. */
  topic: string | null;
}

/**
 * `routing: { table: spillway.routes }`: rows (`pattern text`, `topic text`, `key text[]`) that
 * override the topic and key of the tables they match, read at start and followed through the
 * slot as they change.
 */
export interface RoutingConfig {
  schema: string;
  table: string;
}

/** The `queue` section. */
export interface QueueConfig {
  /** Events held between the source and the sinks. Default 1024. */
  capacity: number;
  /**
   * Bytes of change data (the pgoutput messages) held between the source and the sinks,
   * batches being written included; `null` for no bound but `capacity`. Default 8MB.
   */
  maxBytes: number | null;
  /** Reading pauses above this fraction of `capacity` or `maxBytes`. Default 0.8. */
  highWatermark: number;
}

/** The `spill` section. */
export interface SpillConfig {
  /** Bytes of streamed transactions (all open ones) held in memory before spilling. Default 16MB. */
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

/** Options of `parsePipelineConfig` (load.ts). */
export interface ParseOptions {
  /** The file name used in messages and for the default pipeline name. */
  file: string;
  /** Variables for `${NAME}`; default the process environment. */
  env?: Record<string, string | undefined>;
  /** Directory that relative paths resolve against; default the directory of `file`. */
  baseDir?: string;
}
