/**
 * The Kafka sink: each change as a Debezium change event (or Spillway's JSON) on its table's
 * topic, keyed by the primary key, with at-least-once or exactly-once delivery.
 *
 * - At-least-once (default): a durable write resolves once the broker acknowledged every record
 *   handed to it so far; the runner confirms the transaction to PostgreSQL only then.
 * - Exactly-once (`exactly_once: true`): records go out in Kafka transactions that end at
 *   PostgreSQL commits (the transactions of one write share one), each committing the end
 *   LSN of its last PostgreSQL transaction as the checkpoint (see `checkpoint.ts`). At start
 *   the checkpoint is read back and transactions at or before it are skipped, so a crash
 *   between Kafka's commit and PostgreSQL's confirm writes nothing twice.
 *
 * Batching adapts to load (`batching.ts`): an idle pipeline's commit is sent at once; while a
 * request is in flight the next records gather, up to `batch_bytes` per request.
 *
 * A broker that is down or restarting is waited out: the sink retries with backoff for as long
 * as it takes, reports `failing` meanwhile, and holds its writes, so the runner's queue fills and
 * reading pauses (keepalives go on). Errors no retry mends (authorization, a fenced producer, a
 * record the broker refuses) fail the write for good.
 *
 * @module
 */

import { formatLsn, formatUnixMicros, type Lsn, lsn } from "../../decoder/lsn.ts";
import type { TableFactsRegistry } from "../../decoder/table_facts.ts";
import type { TypeRegistry } from "../../decoder/types/registry.ts";
import type { KafkaSinkConfig } from "../../config/mod.ts";
import { EVENT_RELATION, type SinkRecord } from "../../events.ts";
import { DebeziumFormat, type EncodedRecord, type SharedRecord } from "../../formats/debezium.ts";
import { DebeziumAvroFormat, type SubjectSchema } from "../../formats/avro/debezium_avro.ts";
import { RegistryError, SchemaRegistryClient } from "../../formats/avro/registry.ts";
import type { AvroSchema } from "../../formats/avro/schema.ts";
import type { MessageEvent, TransactionInfo } from "../../events.ts";
import { JsonRenderer } from "../../formats/json.ts";
import { JsonWriter } from "../../formats/json_writer.ts";
import { writeJsonLine } from "../../formats/json.ts";
import { ConfigError } from "../../errors.ts";
import { type Logger, silentLogger } from "../../ops/log.ts";
import type { Sink, SinkStatus, WriteOptions } from "../types.ts";
import { Batcher, type Marker, recordBytes } from "./batching.ts";
import { checkpointGroup } from "./checkpoint.ts";
import { headerCount, headerEntries, headerField, type RecordHeaders } from "./record_batch.ts";
import { KafkaSinkError } from "./errors.ts";
import { headerBytes, type Headers, KafkaProducer, type OutMessage } from "./producer.ts";
import { schemaRegistryClient } from "./schema_registry.ts";

/** Options of {@linkcode KafkaSink}. */
export interface KafkaSinkOptions {
  config: KafkaSinkConfig;
  /** The pipeline's name: the default transactional id is `spillway-<name>`. */
  pipeline: string;
  /** `defaults.topic_prefix`: Debezium's `topic.prefix` (`source.name`, schema names). */
  topicPrefix: string;
  /** The source database's name (`source.db`). */
  database: string;
  types?: TypeRegistry;
  tables?: TableFactsRegistry;
  log?: Logger;
  /** Spillway's version, as `source.version`. */
  version?: string;
  /**
   * Dead letters go to this topic (the sink is the pipeline's dead-letter sink); other
   * records are refused.
   */
  deadLetterTopic?: string;
}

/** What the sink needs of an envelope format: Debezium's, in JSON or in Avro. */
interface Envelope {
  begin(tx: TransactionInfo): EncodedRecord;
  beginSilently(tx: TransactionInfo): void;
  committed(endLsn: Lsn): void;
  end(tx: TransactionInfo, endLsn: Lsn): EncodedRecord;
  change(record: Extract<SinkRecord, { kind: "change" }>, tombstones: boolean): SharedRecord[];
  message(event: MessageEvent): EncodedRecord;
}

/** Spillway's version in `source.version`. */
export const SPILLWAY_VERSION = "0.1.0";

/** Writes change records to Kafka. */
export class KafkaSink implements Sink {
  readonly name: string;
  readonly config: KafkaSinkConfig;
  readonly #options: KafkaSinkOptions;
  readonly #log: Logger;
  readonly #format: Envelope | null;
  /** `debezium-avro`: the format, its registry, and the ids of the schemas registered. */
  readonly #avro: DebeziumAvroFormat | null = null;
  /** Made at {@linkcode open} (reading its CA certificate). */
  #registry: SchemaRegistryClient | null = null;
  /** Ids of the schemas registered, by subject. */
  readonly #schemaIds = new Map<string, Map<AvroSchema, number>>();
  /** Relations (and their topics) whose schemas a write already asked for. */
  readonly #schemasOfRelation = new WeakMap<object, Set<string>>();
  /** The value schema last registered per subject, to say what a refused change changed. */
  readonly #lastSchemas = new Map<string, AvroSchema>();
  /**
   * `on_incompatible: dead_letter`: the relations (and topics) whose new schema the registry
   * refused, with why; their changes go to the dead-letter topic until the relation changes.
   */
  readonly #refused = new WeakMap<object, Map<string, { subject: string; message: string }>>();
  /** Tables (and topics) dead-lettered now, with why, for status(). */
  readonly #refusals = new Map<string, string>();
  /** `on_incompatible: dead_letter`: the topic; `null` when refusals stop the sink. */
  readonly #schemaDeadLetterTopic: string | null;
  readonly #json: JsonRenderer | null;
  readonly #jsonOut = new JsonWriter();
  readonly #deadLetterJson: JsonRenderer;
  readonly #transactionalId: string | null;
  readonly #prefixFrom: string | null;
  #producer: KafkaProducer | null = null;
  #batcher: Batcher | null = null;
  /** Exactly-once: the end LSN committed in Kafka; transactions before it are skipped. */
  #checkpoint: Lsn | null = null;
  #skipping = false;
  /** The end of the last commit queued (exactly-once: at least the checkpoint). */
  #highWater: Lsn = lsn(0n);
  /** A PostgreSQL transaction was begun in this sink and not yet committed. */
  #open = false;
  #schemaVersions = new Map<number, number>();
  /** The headers' names and the values shared by many records, as bytes (see #headers). */
  readonly #headerNames = {
    lsn: headerBytes("spillway.lsn"),
    xid: headerBytes("spillway.xid"),
    commitTime: headerBytes("spillway.commit_time"),
    schemaVersion: headerBytes("spillway.schema_version"),
  };
  /** How every record's header section starts: the count (4) and the LSN's name. */
  readonly #headerHead = new Uint8Array([
    ...headerCount(4),
    ...headerField(this.#headerNames.lsn),
  ]);
  /** The `spillway.xid` and `spillway.commit_time` entries of the transaction at hand. */
  #headerTx: { xid: number; commitTime: bigint; entries: Uint8Array } | null = null;
  /** The `spillway.schema_version` entry of each table (by relation id). */
  #schemaVersionBytes = new Map<number, Uint8Array>();
  /** Records' header sections are written here (and taken, in place). */
  readonly #headerOut = new JsonWriter();
  #topics = new Set<string>();
  #written = 0;
  #fatal: Error | null = null;
  #closed = false;
  /** Why open() is still waiting for the broker; `null` once it is not. */
  #opening: string | null = null;

  constructor(options: KafkaSinkOptions) {
    const { config } = options;
    this.#options = options;
    this.config = config;
    this.#log = options.log ?? silentLogger;
    this.name = options.deadLetterTopic === undefined
      ? `kafka:${config.brokers.join(",")}`
      : `kafka:${config.brokers.join(",")}/${options.deadLetterTopic}`;
    const prefix = config.topicPrefix ?? options.topicPrefix;
    this.#prefixFrom = config.topicPrefix === null ? null : `${options.topicPrefix}.`;
    this.#deadLetterJson = new JsonRenderer(options.types);
    const registryConfig = config.schemaRegistry;
    this.#schemaDeadLetterTopic = registryConfig?.onIncompatible === "dead_letter"
      ? this.#topic(registryConfig.deadLetterTopic ?? `${options.topicPrefix}.dead-letter`)
      : null;
    this.#transactionalId = config.exactlyOnce
      ? config.transactionalId ?? `spillway-${options.pipeline}`
      : null;
    const envelope = {
      serverName: prefix,
      database: options.database,
      transactionMetadata: config.transactionMetadata,
      version: options.version ?? SPILLWAY_VERSION,
      types: options.types,
      tables: options.tables,
    };
    if (config.format === "json") {
      this.#format = null;
      this.#json = new JsonRenderer(options.types);
    } else if (config.format === "debezium-avro") {
      const registry = config.schemaRegistry;
      if (registry === null) {
        throw new ConfigError(
          "Cannot create the kafka sink: format debezium-avro needs schema_registry: { url }",
        );
      }
      this.#json = null;
      const avro = new DebeziumAvroFormat({ ...envelope, subjectNaming: registry.subjectNaming });
      this.#avro = avro;
      const ids = (subject: string, schema: AvroSchema) => {
        const id = this.#schemaIds.get(subject)?.get(schema);
        if (id === undefined) {
          throw new Error(`BUG: a schema of subject ${subject} was used before it was registered`);
        }
        return id;
      };
      this.#format = {
        begin: (tx) => avro.begin(tx, ids),
        beginSilently: (tx) => avro.beginSilently(tx),
        committed: (endLsn) => avro.committed(endLsn),
        end: (tx, endLsn) => avro.end(tx, endLsn, ids),
        change: (record, tombstones) => avro.change(record, tombstones, ids),
        message: (event) => avro.message(event, ids),
      };
    } else {
      this.#json = null;
      const json = new DebeziumFormat({ ...envelope, schemas: config.schemas });
      this.#format = {
        begin: (tx) => json.begin(tx),
        beginSilently: (tx) => json.beginSilently(tx),
        committed: (endLsn) => json.committed(endLsn),
        end: (tx, endLsn) => json.end(tx, endLsn),
        // Each value is copied into a record batch: its embedded schema is copied from the table's.
        change: (record, tombstones) => json.changeShared(record, tombstones),
        message: (event) => json.message(event),
      };
    }
  }

  async open(): Promise<void> {
    if (this.#avro !== null) {
      this.#registry = await schemaRegistryClient(this.config.schemaRegistry!);
    }
    const producer = await this.#untilReachable("connecting", () =>
      KafkaProducer.connect({
        config: this.config,
        transactionalId: this.#transactionalId,
        version: SPILLWAY_VERSION,
        log: this.#log,
      }));
    this.#producer = producer;
    if (this.#transactionalId !== null) {
      const group = checkpointGroup(this.#transactionalId);
      await this.#ensureTopics([this.config.checkpointTopic], { "cleanup.policy": "compact" });
      this.#checkpoint = await this.#untilReachable(
        "reading the checkpoint",
        () => producer.readCheckpoint(group, this.config.checkpointTopic),
      );
      if (this.#checkpoint !== null) this.#highWater = this.#checkpoint;
      this.#log("info", "Kafka exactly-once checkpoint read", {
        sink: this.name,
        transactionalId: this.#transactionalId,
        checkpoint: this.#checkpoint === null ? "none" : formatLsn(this.#checkpoint),
      });
    }
    this.#batcher = new Batcher({
      producer,
      reconnect: () =>
        KafkaProducer.connect({
          config: this.config,
          transactionalId: this.#transactionalId,
          version: SPILLWAY_VERSION,
          log: this.#log,
        }),
      exactlyOnce: this.#transactionalId === null ? null : {
        group: checkpointGroup(this.#transactionalId),
        topic: this.config.checkpointTopic,
        transactionalId: this.#transactionalId,
      },
      batchBytes: this.config.batchBytes,
      lingerMs: this.config.lingerMs,
      // Several requests in flight keep order only with an idempotent producer (sequence
      // numbers; see producer.ts); exactly-once is idempotent too.
      maxInFlight: this.config.acks === "all" ? undefined : 1,
      log: this.#log,
      name: this.name,
    });
  }

  /**
   * Runs `step` until it succeeds or fails for good: a broker that is down or still starting
   * (its coordinators loading) is waited for, with backoff, while status() says failing.
   */
  async #untilReachable<T>(doing: string, step: () => Promise<T>): Promise<T> {
    let delay = 200;
    for (let attempt = 1;; attempt++) {
      try {
        const value = await step();
        this.#opening = null;
        return value;
      } catch (error) {
        if (!(error instanceof KafkaSinkError) || !error.retriable || this.#closed) throw error;
        this.#opening = error.message;
        this.#log(attempt < 3 ? "debug" : "warn", `Kafka not ready while ${doing}; retrying`, {
          sink: this.name,
          attempt,
          error: error.message,
        });
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  /** Exactly-once: the position Kafka holds; `null` before {@linkcode open} or when none. */
  get checkpoint(): Lsn | null {
    return this.#checkpoint;
  }

  async write(records: readonly SinkRecord[], options: WriteOptions = {}): Promise<void> {
    if (this.#fatal !== null) throw this.#fatal;
    const batcher = this.#batcher;
    if (batcher === null) throw new Error(`${this.name} is not open`);
    if (this.#avro !== null) await this.#registerSchemas(records);
    let messages: (OutMessage | Marker)[] = [];
    let bytes = 0;
    // Once a part is with the batcher, a failure fails the sink for good: a write tried again
    // would queue that part twice (a restart resumes from the slot instead).
    let handed = false;
    try {
      for (const record of records) {
        try {
          if (record.kind === "begin" && this.#open && !this.#skipsBegin(record.tx)) {
            // The transaction is sent again from its Begin (the source reconnected): what this
            // sink has of its first part is dropped, or (exactly-once) aborted with its Kafka
            // transaction.
            await batcher.restartTransaction(messages);
            bytes = messages.reduce((sum, message) => sum + recordBytes(message), 0);
            this.#open = false;
          }
          const from = messages.length;
          this.#encode(record, messages);
          for (let i = from; i < messages.length; i++) bytes += recordBytes(messages[i]!);
        } catch (error) {
          if (error instanceof KafkaSinkError && !error.retriable) this.#fatal = error;
          throw error;
        }
        if (bytes >= this.config.batchBytes) {
          // A request's worth is handed on at once, and the event loop gets a turn: answers are
          // read and requests sent while the rest of a large write is encoded (a write of
          // thousands of wide records kept the broker waiting for tens of milliseconds).
          await this.#add(batcher, messages, false, true);
          handed = true;
          messages = [];
          bytes = 0;
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
      }
      await this.#add(batcher, messages, options.durable ?? true);
    } catch (error) {
      if (handed) this.#fatal ??= error instanceof Error ? error : new Error(String(error));
      throw error;
    }
  }

  /** Hands `messages` to the batcher, creating their topics first where needed. */
  async #add(
    batcher: Batcher,
    messages: (OutMessage | Marker)[],
    durable: boolean,
    more = false,
  ): Promise<void> {
    const topics = new Set<string>();
    for (const message of messages) {
      if ("topic" in message && !this.#topics.has(message.topic)) topics.add(message.topic);
    }
    if (topics.size > 0) await this.#ensureTopics([...topics]);
    try {
      await batcher.add(messages, durable, more);
    } catch (error) {
      if (error instanceof KafkaSinkError && !error.retriable) this.#fatal = error;
      throw error;
    }
    for (const message of messages) if ("topic" in message) this.#written++;
  }

  /**
   * `debezium-avro`: registers the schemas these records are written with that are not
   * registered yet. The registry tests each against its subject's compatibility level; one it
   * refuses stops the sink, naming the table, the subject, the level and what changed, before
   * anything of the write is sent (so the slot stays before the change). A registry that is
   * down or failing is waited for, as a broker is.
   */
  async #registerSchemas(records: readonly SinkRecord[]): Promise<void> {
    const avro = this.#avro!;
    const needed: {
      schema: SubjectSchema;
      table: string | null;
      relation?: object;
      topic?: string;
    }[] = [];
    const seen = new Map<object, Set<string>>();
    const fixed = avro.fixedSchemas();
    for (const record of records) {
      if (record.kind === "change") {
        // Once per relation and topic: the schemas of a table change only with its relation.
        const relation = record.event[EVENT_RELATION];
        const topic = this.#topic(record.topic);
        if (relation !== undefined) {
          if (this.#schemasOfRelation.get(relation)?.has(topic)) continue;
          if (seen.get(relation)?.has(topic)) continue;
          let topics = seen.get(relation);
          if (topics === undefined) seen.set(relation, topics = new Set());
          topics.add(topic);
        }
        const table = `${record.event.source.schema}.${record.event.source.table}`;
        for (const schema of avro.schemasOf(this.#onSinkTopic(record))) {
          needed.push({ schema, table, relation, topic });
        }
      } else if (record.kind === "message") {
        for (const schema of fixed.message) needed.push({ schema, table: null });
      } else if (record.kind === "begin" && this.config.transactionMetadata) {
        for (const schema of fixed.transaction) needed.push({ schema, table: null });
      }
    }
    const registry = this.#registry!;
    const refusedNow = new Set<string>();
    for (const { schema: { subject, schema }, table, relation, topic } of needed) {
      if (this.#schemaIds.get(subject)?.has(schema)) continue;
      if (relation !== undefined && this.#refused.get(relation)?.has(topic!)) continue;
      try {
        const id = await this.#untilReachable(
          `registering the schema of subject ${subject}`,
          async () => {
            try {
              return await registry.register(subject, schema);
            } catch (error) {
              throw error instanceof RegistryError
                ? new KafkaSinkError(error.message, { retriable: error.retriable, cause: error })
                : error;
            }
          },
        );
        let bySchema = this.#schemaIds.get(subject);
        if (bySchema === undefined) this.#schemaIds.set(subject, bySchema = new Map());
        bySchema.set(schema, id);
        this.#lastSchemas.set(subject, schema);
      } catch (error) {
        const refused = error instanceof KafkaSinkError &&
          (error.cause as RegistryError | undefined)?.status === 409;
        if (!refused) throw this.#fatal = error as Error;
        const level = await registry.level(subject).catch(() => "unknown (it could not be read)");
        const before = this.#lastSchemas.get(subject) ??
          await registry.latest(subject).catch(() => undefined) ?? undefined;
        const change = before === undefined ? "" : ` (${describeChange(before, schema)})`;
        const refusal =
          `the schema registry refused its new schema under subject ${subject}, whose compatibility level is ${level}${change}: ${
            (error as Error).message
          }`;
        const deadLetterTopic = this.#schemaDeadLetterTopic;
        if (deadLetterTopic !== null && relation !== undefined) {
          // on_incompatible: dead_letter: the table's changes go to the dead-letter topic.
          let topics = this.#refused.get(relation);
          if (topics === undefined) this.#refused.set(relation, topics = new Map());
          const message = `${table}'s changes to ${topic} go to ${deadLetterTopic}: ${refusal}`;
          topics.set(topic!, { subject, message });
          this.#refusals.set(`${table} ${topic}`, message);
          refusedNow.add(`${table} ${topic}`);
          this.#log("warn", "Kafka sink dead-letters a table whose new schema was refused", {
            sink: this.name,
            table,
            subject,
            deadLetterTopic,
            error: refusal,
            fix:
              "make the change compatible or change the subject's compatibility level, then restart (or change the table again)",
          });
          continue;
        }
        throw this.#fatal = new KafkaSinkError(
          `Cannot write the changes of ${
            table ?? subject
          } as Avro: ${refusal}. Make the change compatible (a new column nullable or with a default), or change the subject's compatibility level, then restart: the slot was not moved past the change`,
          { retriable: false, cause: error },
        );
      }
    }
    // A table whose schemas are registered now is no longer dead-lettered (its schema changed
    // again, compatibly).
    for (const { table, relation, topic } of needed) {
      if (relation !== undefined && !refusedNow.has(`${table} ${topic}`)) {
        this.#refusals.delete(`${table} ${topic}`);
      }
    }
    // Marked only once registered (or refused into the dead-letter topic): a write that failed
    // registers them again.
    for (const [relation, topics] of seen) {
      const known = this.#schemasOfRelation.get(relation);
      if (known === undefined) this.#schemasOfRelation.set(relation, topics);
      else for (const topic of topics) known.add(topic);
    }
  }

  /** Exactly-once: whether a transaction is at or before the checkpoint Kafka holds. */
  #skipsBegin(tx: { commitLsn: Lsn }): boolean {
    return this.#checkpoint !== null && tx.commitLsn < this.#checkpoint;
  }

  #encode(record: SinkRecord, out: (OutMessage | Marker)[]): void {
    switch (record.kind) {
      case "begin": {
        this.#skipping = this.#skipsBegin(record.tx);
        if (this.#skipping) return;
        this.#open = true;
        if (this.#format !== null) {
          if (this.config.transactionMetadata) {
            out.push(this.#message(this.#format.begin(record.tx), undefined));
          } else this.#format.beginSilently(record.tx);
        }
        return;
      }
      case "commit": {
        this.#format?.committed(record.endLsn);
        if (this.#skipping) {
          this.#skipping = false;
          return;
        }
        this.#open = false;
        if (this.#format !== null && this.config.transactionMetadata) {
          out.push(this.#message(this.#format.end(record.tx, record.endLsn), undefined));
        }
        out.push({ marker: "commit", lsn: record.endLsn });
        if (record.endLsn > this.#highWater) this.#highWater = record.endLsn;
        return;
      }
      case "change": {
        if (this.#skipping) return;
        if (this.#options.deadLetterTopic !== undefined) return;
        const event = record.event;
        if (event.op === "t" && !this.config.truncate) return;
        const topic = this.#topic(record.topic);
        // Only while some table is dead-lettered: spares the lookup per change otherwise.
        const relation = this.#refusals.size > 0 ? event[EVENT_RELATION] : undefined;
        const refused = relation === undefined
          ? undefined
          : this.#refused.get(relation)?.get(topic);
        if (refused !== undefined) {
          out.push(this.#deadLetter({
            kind: "dead-letter",
            event,
            failure: {
              reason: "schema-refused",
              subject: refused.subject,
              topic,
              key: record.key,
              error: { name: "SchemaRefused", message: refused.message },
            },
          }, this.#schemaDeadLetterTopic!));
          return;
        }
        const keyless = record.key === null && event.op !== "t";
        if (keyless && this.config.keyless === "error") {
          throw new KafkaSinkError(
            `Cannot write the change on ${event.source.schema}.${event.source.table} to Kafka: the table has no primary key and the kafka sink's keyless is error; add a primary key, set key columns in tables, or set keyless: null_key`,
            { retriable: false },
          );
        }
        const headers = this.#headers(record);
        const partition = keyless && this.config.keyless === "single_partition" ? 0 : undefined;
        if (this.#format !== null) {
          const encodedRecords = this.#format.change(
            this.#onSinkTopic(record),
            this.config.tombstones,
          );
          for (const encoded of encodedRecords) {
            out.push({ ...encoded, topic, headers, partition });
          }
        } else {
          const json = this.#json!;
          const w = this.#jsonOut;
          w.reset();
          json.writeRow(w, record.key, undefined);
          const key = record.key === null ? null : w.take();
          w.reset();
          json.writeChangeEvent(w, event);
          out.push({ topic, key, value: w.take(), headers, partition });
        }
        return;
      }
      case "schema-change":
        this.#schemaVersions.set(record.relid, record.version);
        this.#schemaVersionBytes.delete(record.relid);
        return;
      case "dead-letter": {
        const topic = this.#options.deadLetterTopic;
        if (topic === undefined) return;
        out.push(this.#deadLetter(record, topic));
        return;
      }
      case "message": {
        // Logical decoding messages go to <prefix>.message, as Debezium's do.
        if (this.#skipping || this.#options.deadLetterTopic !== undefined) return;
        const event = record.event;
        // A non-transactional message before the last commit written (or, exactly-once, the
        // checkpoint: one past its own position) is one sent again after a reconnect or a
        // restart: the stream comes in commit order, so a new one is never before it.
        if (!event.transactional && event.lsn < this.#highWater) return;
        const headers = this.config.headers
          ? textHeaders({
            "spillway.lsn": formatLsn(event.lsn),
            ...(event.xid === undefined ? {} : { "spillway.xid": String(event.xid) }),
            ...(event.commitTime === undefined
              ? {}
              : { "spillway.commit_time": formatUnixMicros(event.commitTime) }),
          })
          : undefined;
        if (this.#format !== null) {
          out.push(this.#message(this.#format.message(event), headers));
        } else {
          const w = this.#jsonOut;
          w.reset();
          w.raw(`{"prefix":${JSON.stringify(event.prefix)}}`);
          const key = w.take();
          w.reset();
          writeJsonLine(w, record, false, this.#json!);
          const value = w.bytes().subarray(0, w.length - 1).slice(); // without the newline
          out.push({
            topic: this.#topic(`${this.#options.topicPrefix}.message`),
            key,
            value,
            headers,
          });
        }
        // Outside a transaction: its own commit, so a durable write waits for it (and,
        // exactly-once, a Kafka transaction ends with it).
        if (!event.transactional) {
          out.push({ marker: "commit", lsn: lsn(event.lsn + 1n) });
          this.#highWater = lsn(event.lsn + 1n);
        }
        return;
      }
    }
  }

  /**
   * A dead letter as its JSON line (without the newline), keyed by the event's key, with
   * `spillway.dead_letter.*` headers, as Kafka Connect's dead-letter queue headers say why.
   */
  #deadLetter(record: Extract<SinkRecord, { kind: "dead-letter" }>, topic: string): OutMessage {
    const { failure } = record;
    const w = this.#jsonOut;
    w.reset();
    writeJsonLine(w, record, false, this.#deadLetterJson);
    const value = w.bytes().subarray(0, w.length - 1).slice(); // without the newline
    w.reset();
    if (failure.key !== null) this.#deadLetterJson.writeRow(w, failure.key, undefined);
    const why: Record<string, string> = failure.reason === "schema-refused"
      ? { "spillway.dead_letter.subject": failure.subject }
      : {
        "spillway.dead_letter.transform": failure.transform,
        "spillway.dead_letter.version": failure.version,
      };
    return {
      topic,
      key: failure.key === null ? null : w.bytes().slice(),
      value,
      headers: textHeaders({
        ...why,
        "spillway.dead_letter.reason": failure.reason,
        "spillway.dead_letter.error": `${failure.error.name}: ${failure.error.message}`,
        ...(failure.topic === null ? {} : { "spillway.dead_letter.topic": failure.topic }),
      }),
    };
  }

  #message(
    encoded: { topic: string; key: Uint8Array | null; value: Uint8Array | null },
    headers: Headers | undefined,
  ): OutMessage {
    return { ...encoded, topic: this.#topic(encoded.topic), headers };
  }

  /** The record as this sink writes it: on its topic (`topic_prefix`), which names schemas. */
  #onSinkTopic(
    record: Extract<SinkRecord, { kind: "change" }>,
  ): Extract<SinkRecord, { kind: "change" }> {
    const topic = this.#topic(record.topic);
    return topic === record.topic ? record : { ...record, topic };
  }

  #topic(topic: string): string {
    const from = this.#prefixFrom;
    if (from !== null && topic.startsWith(from)) {
      return `${this.config.topicPrefix}.${topic.slice(from.length)}`;
    }
    return topic;
  }

  /**
   * A change's headers: Spillway's (`headers: true`), then those a transform set (which win).
   * Spillway's alone: the record's header section, encoded here (`record_batch.ts` writes it
   * as it is), the entries a transaction's or a table's records share encoded once.
   */
  #headers(record: Extract<SinkRecord, { kind: "change" }>): RecordHeaders | undefined {
    if (!this.config.headers) {
      return record.headers === undefined ? undefined : textHeaders(record.headers);
    }
    const source = record.event.source;
    if (record.headers !== undefined) {
      return textHeaders({
        "spillway.lsn": formatLsn(source.lsn),
        "spillway.xid": String(source.xid),
        "spillway.commit_time": formatUnixMicros(source.commitTime),
        "spillway.schema_version": String(this.#schemaVersions.get(source.relid) ?? 1),
        ...record.headers,
      });
    }
    // The record's header section, encoded here: the count and the LSN's name, the LSN, then
    // the entries its transaction and its table share (encoded once each).
    let tx = this.#headerTx;
    if (tx === null || tx.xid !== source.xid || tx.commitTime !== source.commitTime) {
      const names = this.#headerNames;
      tx = this.#headerTx = {
        xid: source.xid,
        commitTime: source.commitTime,
        entries: headerEntries([
          [names.xid, headerBytes(String(source.xid))],
          [names.commitTime, headerBytes(formatUnixMicros(source.commitTime))],
        ]),
      };
    }
    let version = this.#schemaVersionBytes.get(source.relid);
    if (version === undefined) {
      version = headerEntries([[
        this.#headerNames.schemaVersion,
        headerBytes(String(this.#schemaVersions.get(source.relid) ?? 1)),
      ]]);
      this.#schemaVersionBytes.set(source.relid, version);
    }
    const out = this.#headerOut;
    out.reset();
    out.append(this.#headerHead);
    // The LSN's text is at most 17 characters: its length is one byte (zigzag: twice it).
    const at = out.length;
    out.byte(0);
    out.lsn(source.lsn);
    out.patch(at, (out.length - at - 1) * 2);
    out.append(tx.entries);
    out.append(version);
    return out.take();
  }

  async #ensureTopics(topics: string[], config?: Record<string, string>): Promise<void> {
    if (!this.config.createTopics && config === undefined) {
      for (const topic of topics) this.#topics.add(topic);
      return;
    }
    await this.#untilReachable(
      `creating topics ${topics.join(", ")}`,
      () =>
        (this.#batcher?.producer ?? this.#producer!).createTopics(topics, {
          partitions: config === undefined ? this.config.partitions : 1,
          replicationFactor: this.config.replicationFactor,
          config,
        }),
    );
    for (const topic of topics) this.#topics.add(topic);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#registry?.close();
    if (this.#batcher !== null) await this.#batcher.close();
    else await this.#producer?.close();
    this.#producer = null;
  }

  status(): SinkStatus {
    const batcher = this.#batcher?.status();
    if (this.#fatal !== null) {
      return { state: "failing", written: this.#written, lastError: this.#fatal.message };
    }
    if (this.#opening !== null) {
      return { state: "failing", written: this.#written, lastError: this.#opening };
    }
    if (batcher?.failing) {
      return { state: "failing", written: this.#written, lastError: batcher.lastError };
    }
    if (this.#refusals.size > 0) {
      const [first] = this.#refusals.values();
      const more = this.#refusals.size > 1 ? ` (and ${this.#refusals.size - 1} more)` : "";
      return { state: "degraded", written: this.#written, lastError: `${first}${more}` };
    }
    return { state: "ok", written: this.#written };
  }
}

/** Headers given as text, encoded. */
function textHeaders(headers: Record<string, string>): Headers {
  const out: Headers = new Map();
  for (const name in headers) out.set(headerBytes(name), headerBytes(headers[name]!));
  return out;
}

/**
 * What a table's new value schema changes, column by column, against the one registered before
 * (the fields of the envelope's `before`/`after` record).
 */
function describeChange(before: AvroSchema, after: AvroSchema): string {
  const columns = (schema: AvroSchema) => {
    const fields = (schema as { fields?: { name: string; type: unknown }[] }).fields ?? [];
    const row = fields.find((field) => field.name === "before")?.type;
    const record = Array.isArray(row) ? row.find((branch) => typeof branch === "object") : row;
    return new Map(
      ((record as { fields?: { name: string; type: unknown; default?: unknown }[] })?.fields ?? [])
        .map((field) => [field.name, field]),
    );
  };
  const old = columns(before);
  const now = columns(after);
  const parts: string[] = [];
  for (const [name, field] of now) {
    if (!old.has(name)) {
      parts.push(
        `column ${name} added${
          "default" in field ? "" : " without a default, so older records have no value for it"
        }`,
      );
    } else if (JSON.stringify(old.get(name)!.type) !== JSON.stringify(field.type)) {
      parts.push(`column ${name} changed type`);
    }
  }
  for (const name of old.keys()) if (!now.has(name)) parts.push(`column ${name} dropped`);
  return parts.length === 0 ? "no column change found" : parts.join("; ");
}
