/**
 * The Kafka client behind the sink: `kafkajs` (npm), wrapped so that the rest of the sink
 * sees a few calls (send in order, transactions, topics, the checkpoint) and errors that say
 * whether a retry can help. This is the only file that imports the client.
 *
 * Producer settings: idempotent, one request in flight (what keeps per-partition order with
 * kafkajs's idempotence), acks as configured (all by default), Java-compatible murmur2
 * partitioning of keyed records (kafkajs's default partitioner since 2.0), so a key lands on
 * the partition Debezium's Java producer would choose.
 *
 * @module
 */

import {
  type Admin,
  CompressionCodecs,
  CompressionTypes,
  type IHeaders,
  Kafka,
  type KafkaConfig,
  logLevel,
  type Message,
  type Producer,
  type SASLOptions,
} from "npm:kafkajs@2.2.4";
import { Buffer } from "node:buffer";
import { type Lsn, lsn } from "../../decoder/lsn.ts";
import type { KafkaSinkConfig } from "../../config/mod.ts";
import { ConfigError } from "../../errors.ts";
import type { Logger } from "../../ops/log.ts";

/** One record to send. */
export interface OutMessage {
  topic: string;
  key: Uint8Array | null;
  /** `null`: a tombstone. */
  value: Uint8Array | null;
  headers?: Record<string, string>;
  /** A fixed partition; default: by the key (murmur2, as Java's producer), spread when null. */
  partition?: number;
}

/** Options of {@linkcode KafkaProducer.connect}. */
export interface ProducerOptions {
  config: KafkaSinkConfig;
  /** Set for exactly-once: the producer is transactional. */
  transactionalId: string | null;
  /** Longest a Kafka transaction may stay open (the broker caps it, 15 min by default). */
  transactionTimeoutMs?: number;
  log?: Logger;
}

/** A failure of the client, with whether another attempt can succeed. */
export class KafkaSinkError extends Error {
  override name = "KafkaSinkError";
  readonly retriable: boolean;
  /** The producer was fenced by another with the same transactional id. */
  readonly fenced: boolean;

  constructor(message: string, options: { retriable: boolean; fenced?: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.retriable = options.retriable;
    this.fenced = options.fenced ?? false;
  }
}

const COMPRESSION = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
} as const;

/** Error types of the broker and the client that no retry mends. */
const FATAL_TYPES = new Set([
  "TOPIC_AUTHORIZATION_FAILED",
  "CLUSTER_AUTHORIZATION_FAILED",
  "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
  "GROUP_AUTHORIZATION_FAILED",
  "SASL_AUTHENTICATION_FAILED",
  "UNSUPPORTED_SASL_MECHANISM",
  "MESSAGE_TOO_LARGE",
  "RECORD_LIST_TOO_LARGE",
  "INVALID_TOPIC_EXCEPTION",
  "INVALID_REQUIRED_ACKS",
  "INVALID_RECORD",
  "UNSUPPORTED_VERSION",
  "UNSUPPORTED_FOR_MESSAGE_FORMAT",
  "INVALID_TRANSACTION_TIMEOUT",
  "UNSUPPORTED_COMPRESSION_TYPE",
]);
const FENCED_TYPES = new Set([
  "PRODUCER_FENCED",
  "INVALID_PRODUCER_EPOCH",
  "TRANSACTIONAL_ID_NOT_FOUND",
]);

interface KafkaJsLikeError {
  name?: string;
  type?: string;
  message?: string;
  cause?: unknown;
  originalError?: unknown;
  retriable?: boolean;
}

/** The broker's error type (e.g. `MESSAGE_TOO_LARGE`) of a client error or its causes. */
function errorTypes(error: unknown): string[] {
  const types: string[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown) => {
    if (e === null || typeof e !== "object" || seen.has(e)) return;
    seen.add(e);
    const like = e as KafkaJsLikeError & { errors?: unknown[] };
    if (typeof like.type === "string") types.push(like.type);
    if (typeof like.name === "string") types.push(like.name);
    visit(like.cause);
    visit(like.originalError);
    if (Array.isArray(like.errors)) like.errors.forEach(visit);
  };
  visit(error);
  return types;
}

/**
 * Wraps a client error: fatal ones (authorization, authentication, a record the broker will
 * never take, a fenced producer) are not retriable; everything else (the broker down or
 * restarting, leadership moving, timeouts) is.
 */
export function classifyError(error: unknown, doing: string, brokers: string[]): KafkaSinkError {
  if (error instanceof KafkaSinkError) return error;
  const types = errorTypes(error);
  const message = error instanceof Error ? error.message : String(error);
  const where = brokers.join(",");
  if (types.some((type) => FENCED_TYPES.has(type))) {
    return new KafkaSinkError(
      `Kafka fenced this producer while it was ${doing}: another Spillway runner with the same transactional id took over (${message}); stop one of them`,
      { retriable: false, fenced: true, cause: error },
    );
  }
  if (
    types.includes("KafkaJSSASLAuthenticationError") || types.includes("SASL_AUTHENTICATION_FAILED")
  ) {
    return new KafkaSinkError(
      `Kafka at ${where} refused the SASL credentials while ${doing} (${message}); check sasl.username, sasl.password and sasl.mechanism`,
      { retriable: false, cause: error },
    );
  }
  const fatal = types.find((type) => FATAL_TYPES.has(type));
  if (fatal !== undefined) {
    const fix = fatal.endsWith("AUTHORIZATION_FAILED")
      ? "grant the Kafka user the ACLs it needs (Write and Create on the topics, and for exactly_once Write on the transactional id)"
      : fatal === "MESSAGE_TOO_LARGE" || fatal === "RECORD_LIST_TOO_LARGE"
      ? "raise the topic's max.message.bytes (and the broker's message.max.bytes), or lower batch_bytes"
      : "check the sink's settings against the broker";
    return new KafkaSinkError(`Kafka at ${where} refused ${doing}: ${fatal} (${message}); ${fix}`, {
      retriable: false,
      cause: error,
    });
  }
  return new KafkaSinkError(`Kafka at ${where} failed while ${doing}: ${message}`, {
    retriable: true,
    cause: error,
  });
}

/** kafkajs logs through this: its lines become Spillway's, at debug (errors at warn). */
function logCreator(log: Logger | undefined) {
  return () => ({ level, log: entry }: { level: number; log: { message: string } }) => {
    if (log === undefined) return;
    const { message, ...rest } = entry as { message: string } & Record<string, unknown>;
    delete rest.timestamp;
    delete rest.logger;
    log(level <= logLevel.ERROR ? "warn" : "debug", `kafka: ${message}`, rest as never);
  };
}

let snappyReady: Promise<void> | null = null;

async function registerCodec(compression: KafkaSinkConfig["compression"]): Promise<void> {
  if (compression === "snappy") {
    snappyReady ??= import("npm:kafkajs-snappy@1.1.0").then((module) => {
      const codec = (module.default ?? module) as () => unknown;
      (CompressionCodecs as Record<number, unknown>)[CompressionTypes.Snappy] = codec;
    });
    await snappyReady;
  } else if (compression === "lz4" || compression === "zstd") {
    throw new ConfigError(
      `Cannot use compression ${compression} in the kafka sink: it needs a native codec; use gzip or snappy`,
    );
  }
}

async function clientConfig(options: ProducerOptions): Promise<KafkaConfig> {
  const { config } = options;
  let ssl: KafkaConfig["ssl"] = undefined;
  if (config.tls !== null) {
    ssl = config.tls.ca === null ? true : {
      ca: [
        await Deno.readTextFile(config.tls.ca).catch((error) => {
          throw new ConfigError(
            `Cannot read the Kafka CA certificate ${config.tls?.ca}: ${
              (error as Error).message
            }; fix tls.ca`,
          );
        }),
      ],
    };
  }
  let sasl: SASLOptions | undefined = undefined;
  if (config.sasl !== null) {
    sasl = {
      mechanism: config.sasl.mechanism,
      username: config.sasl.username,
      password: config.sasl.password,
    } as SASLOptions;
  }
  return {
    clientId: config.clientId,
    brokers: config.brokers,
    ssl,
    sasl,
    connectionTimeout: 10_000,
    requestTimeout: 30_000,
    // The sink retries with its own backoff, forever for what can mend; the client's own
    // retries only ride out short blips.
    retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 5_000 },
    logLevel: options.log ? logLevel.WARN : logLevel.NOTHING,
    logCreator: logCreator(options.log),
  };
}

/** The Kafka client of one sink: one producer and, when needed, an admin client. */
export class KafkaProducer {
  readonly brokers: string[];
  readonly #kafka: Kafka;
  readonly #producer: Producer;
  readonly #acks: number;
  readonly #compression: CompressionTypes;
  #admin: Admin | null = null;
  #transaction: Awaited<ReturnType<Producer["transaction"]>> | null = null;

  private constructor(kafka: Kafka, producer: Producer, options: ProducerOptions) {
    this.brokers = options.config.brokers;
    this.#kafka = kafka;
    this.#producer = producer;
    const acks = options.config.acks;
    this.#acks = acks === "all" ? -1 : acks;
    this.#compression = COMPRESSION[options.config.compression];
  }

  /**
   * Connects the producer. For exactly-once it also registers the transactional id, which
   * fences any earlier producer with it: that one's open transaction is aborted, or completed
   * if its commit was under way, so the checkpoint read next is the last one committed.
   */
  static async connect(options: ProducerOptions): Promise<KafkaProducer> {
    await registerCodec(options.config.compression);
    // kafkajs warns once about its default partitioner of 2.0; it is the one we want.
    try {
      Deno.env.set("KAFKAJS_NO_PARTITIONER_WARNING", "1");
    } catch { /* no env permission: the warning stays */ }
    const kafka = new Kafka(await clientConfig(options));
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: true,
      transactionalId: options.transactionalId ?? undefined,
      transactionTimeout: options.transactionTimeoutMs ?? 900_000,
      retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 5_000 },
    });
    try {
      await producer.connect();
      if (options.transactionalId !== null) {
        // kafkajs registers the transactional id only at the first transaction: do it now, so
        // that an earlier producer with this id is fenced, and its open transaction aborted (or,
        // when its commit was under way, completed) before the checkpoint is read.
        const transaction = await producer.transaction();
        await transaction.abort();
      }
    } catch (error) {
      await producer.disconnect().catch(() => {});
      throw classifyError(error, "connecting", options.config.brokers);
    }
    return new KafkaProducer(kafka, producer, options);
  }

  /**
   * Sends `messages` and resolves once the broker acknowledged all of them (per `acks`). Order
   * is kept per topic and partition. Inside a transaction, they join it.
   */
  async send(messages: readonly OutMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const byTopic = new Map<string, Message[]>();
    for (const message of messages) {
      let list = byTopic.get(message.topic);
      if (list === undefined) byTopic.set(message.topic, list = []);
      list.push({
        key: message.key === null ? null : toBuffer(message.key),
        value: message.value === null ? null : toBuffer(message.value),
        headers: message.headers as IHeaders | undefined,
        partition: message.partition,
      });
    }
    const topicMessages = [...byTopic].map(([topic, list]) => ({ topic, messages: list }));
    const target = this.#transaction ?? this.#producer;
    try {
      await target.sendBatch({ topicMessages, acks: this.#acks, compression: this.#compression });
    } catch (error) {
      throw classifyError(error, `sending ${messages.length} records`, this.brokers);
    }
  }

  /** Starts a Kafka transaction (exactly-once); {@linkcode send} joins it. */
  async begin(): Promise<void> {
    try {
      this.#transaction = await this.#producer.transaction();
    } catch (error) {
      throw classifyError(error, "beginning a transaction", this.brokers);
    }
  }

  /** Whether a transaction is open. */
  get inTransaction(): boolean {
    return this.#transaction !== null;
  }

  /**
   * Commits the open transaction, with the checkpoint offset committed in it for `group`
   * (the position Spillway reads back at start).
   */
  async commit(checkpoint: { group: string; topic: string; offset: bigint }): Promise<void> {
    const transaction = this.#transaction;
    if (transaction === null) return;
    try {
      await transaction.sendOffsets({
        consumerGroupId: checkpoint.group,
        topics: [{
          topic: checkpoint.topic,
          partitions: [{ partition: 0, offset: checkpoint.offset.toString() }],
        }],
      });
      await transaction.commit();
      this.#transaction = null;
    } catch (error) {
      throw classifyError(error, "committing a transaction", this.brokers);
    }
  }

  /** Aborts the open transaction, if any; what it held is never visible to read_committed. */
  async abort(): Promise<void> {
    const transaction = this.#transaction;
    this.#transaction = null;
    if (transaction === null) return;
    try {
      await transaction.abort();
    } catch (error) {
      throw classifyError(error, "aborting a transaction", this.brokers);
    }
  }

  async #adminClient(): Promise<Admin> {
    if (this.#admin === null) {
      const admin = this.#kafka.admin();
      try {
        await admin.connect();
      } catch (error) {
        throw classifyError(error, "connecting the admin client", this.brokers);
      }
      this.#admin = admin;
    }
    return this.#admin;
  }

  /**
   * Creates the topics that do not exist (`partitions`/`replicationFactor` -1: the broker's
   * defaults). Existing topics are left as they are.
   */
  async createTopics(
    topics: readonly string[],
    settings: { partitions: number; replicationFactor: number; config?: Record<string, string> },
  ): Promise<void> {
    if (topics.length === 0) return;
    const admin = await this.#adminClient();
    try {
      const existing = new Set(await admin.listTopics());
      const missing = topics.filter((topic) => !existing.has(topic));
      if (missing.length === 0) return;
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({
          topic,
          numPartitions: settings.partitions,
          replicationFactor: settings.replicationFactor,
          configEntries: Object.entries(settings.config ?? {}).map(([name, value]) => ({
            name,
            value,
          })),
        })),
      });
    } catch (error) {
      if (errorTypes(error).includes("TOPIC_ALREADY_EXISTS")) return;
      throw classifyError(error, `creating topics ${topics.join(", ")}`, this.brokers);
    }
  }

  /** The checkpoint offset committed for `group` on partition 0 of `topic`; `null`: none. */
  async readCheckpoint(group: string, topic: string): Promise<Lsn | null> {
    const admin = await this.#adminClient();
    try {
      const [entry] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      const partition = entry?.partitions.find((p) => p.partition === 0);
      if (partition === undefined || partition.offset === "-1" || partition.offset === "") {
        return null;
      }
      return lsn(BigInt(partition.offset));
    } catch (error) {
      throw classifyError(error, `reading the checkpoint of ${group}`, this.brokers);
    }
  }

  /** Disconnects; an open transaction is aborted first (best effort). */
  async close(): Promise<void> {
    await this.abort().catch(() => {});
    await this.#admin?.disconnect().catch(() => {});
    this.#admin = null;
    await this.#producer.disconnect().catch(() => {});
  }
}

function toBuffer(bytes: Uint8Array): Buffer {
  // kafkajs wants Node Buffers; a Buffer over the same memory costs no copy.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
