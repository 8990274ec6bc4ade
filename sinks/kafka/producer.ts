/**
 * The Kafka client behind the sink: `@platformatic/kafka` (npm, pure TypeScript), wrapped so
 * that the rest of the sink sees a few calls (send in order, transactions, topics, the
 * checkpoint) and errors that say whether a retry can help. This is the only file that
 * imports the client.
 *
 * Why this client: measured against `kafkajs` 2.2.4 with the same guarantees (idempotent,
 * acks=all; `bench/_kafka_clients.ts`), it sends 2–2.5× the records per second at the same or
 * less memory, compresses with gzip, snappy, lz4 and zstd without native code, supports
 * OffsetFetch's `require_stable` (the checkpoint read), and is maintained; kafkajs is not.
 *
 * Producer settings: idempotent (with acks all; the broker then keeps each partition's
 * records in the order of their sequence numbers), acks as configured (all by default), and
 * Java's murmur2 partitioning of keyed records (`murmur2.ts`; the client's default differs),
 * so a key lands on the partition Debezium's Java producer would choose.
 *
 * @module
 */

import {
  Admin,
  FindCoordinatorKeyTypes,
  Producer,
  type SASLOptions,
} from "npm:@platformatic/kafka@2.12.1";
import { Buffer } from "node:buffer";
import { type Lsn, lsn } from "../../decoder/lsn.ts";
import type { KafkaSinkConfig } from "../../config/mod.ts";
import type { Logger } from "../../ops/log.ts";
import { keyHash } from "./murmur2.ts";
import { readCertificate } from "./schema_registry.ts";

/**
 * A record's headers: names and values as UTF-8 bytes ({@linkcode headerBytes}), handed to the
 * client as they are. Names and values that repeat (the header names, a transaction's xid) are
 * best encoded once and shared.
 */
export type Headers = Map<Uint8Array, Uint8Array>;

/** A header name or value as the client takes it. */
export function headerBytes(text: string): Uint8Array {
  return Buffer.from(text);
}

/** One record to send. */
export interface OutMessage {
  topic: string;
  key: Uint8Array | null;
  /** `null`: a tombstone. */
  value: Uint8Array | null;
  headers?: Headers;
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
/** Node's TLS verification failures: a retry meets the same certificate. */
const CERTIFICATE_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

const FENCED_TYPES = new Set([
  "PRODUCER_FENCED",
  "INVALID_PRODUCER_EPOCH",
  "TRANSACTIONAL_ID_NOT_FOUND",
]);

interface ClientError {
  name?: string;
  code?: string;
  /** The broker's error name, e.g. `MESSAGE_TOO_LARGE`. */
  apiId?: string;
  message?: string;
  cause?: unknown;
  errors?: unknown[];
}

/** The broker's error names (e.g. `MESSAGE_TOO_LARGE`) and the client's codes in an error. */
function errorTypes(error: unknown): string[] {
  const types: string[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown) => {
    if (e === null || typeof e !== "object" || seen.has(e)) return;
    seen.add(e);
    const like = e as ClientError;
    if (typeof like.apiId === "string") types.push(like.apiId);
    if (typeof like.code === "string") types.push(like.code);
    if (typeof like.name === "string") types.push(like.name);
    visit(like.cause);
    if (Array.isArray(like.errors)) like.errors.forEach(visit);
  };
  visit(error);
  return types;
}

/** The innermost messages of an error, joined: the client nests the broker's answers. */
function describeError(error: unknown): string {
  const messages: string[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown) => {
    if (e === null || typeof e !== "object" || seen.has(e)) return;
    seen.add(e);
    const like = e as ClientError;
    const nested = [...(like.errors ?? []), ...(like.cause ? [like.cause] : [])];
    if (nested.length === 0 && like.message) messages.push(like.message);
    nested.forEach(visit);
  };
  visit(error);
  if (messages.length === 0) return error instanceof Error ? error.message : String(error);
  return [...new Set(messages)].join("; ");
}

/**
 * Wraps a client error: fatal ones (authorization, authentication, a record the broker will
 * never take, a fenced producer) are not retriable; everything else (the broker down or
 * restarting, leadership moving, timeouts) is.
 */
export function classifyError(error: unknown, doing: string, brokers: string[]): KafkaSinkError {
  if (error instanceof KafkaSinkError) return error;
  const types = errorTypes(error);
  const message = describeError(error);
  const where = brokers.join(",");
  if (types.some((type) => FENCED_TYPES.has(type))) {
    return new KafkaSinkError(
      `Kafka fenced this producer while it was ${doing}: another Spillway runner with the same transactional id took over (${message}); stop one of them`,
      { retriable: false, fenced: true, cause: error },
    );
  }
  if (
    types.includes("SASL_AUTHENTICATION_FAILED") || types.includes("PLT_KFK_AUTHENTICATION") ||
    types.includes("ILLEGAL_SASL_STATE") || types.includes("UNSUPPORTED_SASL_MECHANISM")
  ) {
    return new KafkaSinkError(
      `Kafka at ${where} refused the SASL credentials while ${doing} (${message}); check sasl.username, sasl.password and sasl.mechanism, and that brokers names the broker's SASL listener`,
      { retriable: false, cause: error },
    );
  }
  const certificate = types.find((type) => CERTIFICATE_CODES.has(type));
  if (certificate !== undefined) {
    return new KafkaSinkError(
      `Kafka at ${where} presented a certificate Spillway does not trust while ${doing} (${certificate}: ${message}); set tls.ca to the CA that signed the broker's certificate, which must name the host in brokers`,
      { retriable: false, cause: error },
    );
  }
  if (types.includes("PLT_KFK_USER")) {
    // The client's own verdict on the settings (a broker that wants TLS, a handshake refused).
    return new KafkaSinkError(
      `Kafka at ${where} cannot be used as configured while ${doing}: ${message}; check tls and sasl against the broker's listener`,
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

const COMPRESSION = {
  none: "none",
  gzip: "gzip",
  snappy: "snappy",
  lz4: "lz4",
  zstd: "zstd",
} as const;

async function connectionOptions(config: KafkaSinkConfig) {
  let tls: { ca?: string } | undefined = undefined;
  if (config.tls !== null) {
    tls = config.tls.ca === null
      ? {}
      : { ca: await readCertificate(config.tls.ca, "the Kafka CA certificate", "tls.ca") };
  }
  let sasl: SASLOptions | undefined = undefined;
  if (config.sasl !== null) {
    sasl = {
      mechanism: config.sasl.mechanism.toUpperCase() as SASLOptions["mechanism"],
      username: config.sasl.username,
      password: config.sasl.password,
    };
  }
  return {
    clientId: config.clientId,
    bootstrapBrokers: config.brokers,
    tls,
    sasl,
    connectTimeout: 10_000,
    timeout: 30_000,
    // The sink retries with its own backoff, forever for what can mend; the client's own
    // retries only ride out short blips (leadership moving, a coordinator loading).
    retries: 5,
    retryDelay: (_client: unknown, _operation: string, attempt: number) =>
      Math.min(50 * 2 ** attempt, 2_000),
  };
}

/** How long a Kafka transaction may stay open (the broker caps it: 15 min by default). */
const TRANSACTION_TIMEOUT_MS = 600_000;

const identity = (data?: Buffer) => data;
const serializers = { key: identity, value: identity, headerKey: identity, headerValue: identity };

type SinkProducer = Producer<Buffer, Buffer, Buffer, Buffer>;

/**
 * Java's partitioning of keyed records (murmur2, made positive; the client takes it modulo the
 * partitions): the client's own default differs, and its `compatibilityPartitioner` computes
 * the same in BigInt at several µs a record (and puts every keyless record on partition 0).
 * Keyless records without a fixed partition go round robin, per topic.
 */
function javaPartitioner(): (message: { topic: string }, key?: Buffer) => number {
  const next = new Map<string, number>();
  return (message, key) => {
    if (key !== undefined) return keyHash(key);
    const turn = next.get(message.topic) ?? 0;
    next.set(message.topic, (turn + 1) & 0x7fffffff);
    return turn;
  };
}

/** The Kafka client of one sink: one producer and, when needed, an admin client. */
export class KafkaProducer {
  readonly brokers: string[];
  readonly #config: KafkaSinkConfig;
  readonly #producer: SinkProducer;
  #admin: Admin | null = null;
  /** Something was sent in the open transaction. */
  #transactionUsed = false;
  #transaction: Awaited<ReturnType<SinkProducer["beginTransaction"]>> | null = null;

  private constructor(producer: SinkProducer, config: KafkaSinkConfig) {
    this.brokers = config.brokers;
    this.#config = config;
    this.#producer = producer;
  }

  /**
   * Connects the producer. For exactly-once it also registers the transactional id, which
   * fences any earlier producer with it: that one's open transaction is aborted, or completed
   * if its commit was under way, so the checkpoint read next is the last one committed.
   */
  static async connect(options: ProducerOptions): Promise<KafkaProducer> {
    const { config } = options;
    const acks = config.acks === "all" ? -1 : config.acks;
    const connection = await connectionOptions(config);
    const producer: SinkProducer = new Producer({
      ...connection,
      // The client sends InitProducerId with these (default 0 and 0, which the broker takes for
      // an old epoch of producer 0 and answers PRODUCER_FENCED): -1 and -1 ask for a new one.
      producerId: -1n,
      producerEpoch: -1,
      // The client makes its request timeout the transaction timeout too: a transaction of
      // millions of rows stays open for minutes.
      ...(options.transactionalId === null ? {} : { timeout: TRANSACTION_TIMEOUT_MS }),
      idempotent: acks === -1,
      acks,
      compression: COMPRESSION[config.compression],
      partitioner: javaPartitioner(),
      autocreateTopics: !config.createTopics,
      transactionalId: options.transactionalId ?? undefined,
      serializers,
    });
    try {
      await producer.metadata({ topics: [] });
      if (options.transactionalId !== null) {
        // Beginning a transaction registers the id (InitProducerId); one with nothing in it is
        // dropped without a word to the broker.
        const transaction = await producer.beginTransaction();
        await transaction.cancel();
      }
    } catch (error) {
      await producer.close(true).catch(() => {});
      throw classifyError(error, "connecting", config.brokers);
    }
    return new KafkaProducer(producer, config);
  }

  /**
   * Sends `messages` and resolves once the broker acknowledged all of them (per `acks`). Order
   * is kept per topic and partition. Inside a transaction, they join it.
   */
  async send(messages: readonly OutMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const out = new Array(messages.length);
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i]!;
      out[i] = {
        topic: message.topic,
        key: message.key === null ? undefined : toBuffer(message.key),
        value: message.value === null ? null : toBuffer(message.value),
        headers: message.headers,
        partition: message.partition,
      };
    }
    try {
      if (this.#transaction !== null) {
        this.#transactionUsed = true;
        await this.#transaction.send({ messages: out });
      } else await this.#producer.send({ messages: out });
    } catch (error) {
      throw classifyError(error, `sending ${messages.length} records`, this.brokers);
    }
  }

  /**
   * Makes sure the client holds fresh metadata of these records' topics before they are sent:
   * a send whose metadata is at hand assigns its sequence numbers at once, so sends started
   * one after another keep their order on a partition even with several in flight (one that
   * had to wait for metadata could fall behind a later one).
   */
  async prepare(messages: readonly OutMessage[]): Promise<void> {
    const topics = [...new Set(messages.map((message) => message.topic))];
    if (topics.length === 0) return;
    try {
      await this.#producer.metadata({ topics });
    } catch (error) {
      throw classifyError(error, `reading the metadata of ${topics.join(", ")}`, this.brokers);
    }
  }

  /** Starts a Kafka transaction (exactly-once); {@linkcode send} joins it. */
  async begin(): Promise<void> {
    try {
      this.#transactionUsed = false;
      this.#transaction = await this.#producer.beginTransaction();
    } catch (error) {
      throw classifyError(error, "beginning a transaction", this.brokers);
    }
  }

  /**
   * Commits the open transaction, with the checkpoint committed in it as the offset of `group`
   * on partition 0 of `topic` (the position Spillway reads back at start).
   */
  async commit(checkpoint: { group: string; topic: string; offset: bigint }): Promise<void> {
    const transaction = this.#transaction;
    if (transaction === null) return;
    try {
      const coordinator = await this.#groupCoordinator(checkpoint.group);
      await transaction.addConsumer({ groupId: checkpoint.group } as never);
      // The client commits a consumed message's offset + 1; a group without members takes
      // generation -1 and no member id.
      await transaction.addOffset({
        topic: checkpoint.topic,
        partition: 0,
        offset: checkpoint.offset - 1n,
        metadata: {
          consumer: {
            groupId: checkpoint.group,
            generationId: -1,
            memberId: "",
            coordinatorId: coordinator,
          },
        },
      } as never);
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
      // The broker refuses to end a transaction it never heard of.
      if (this.#transactionUsed) await transaction.abort();
      else await transaction.cancel();
    } catch (error) {
      throw classifyError(error, "aborting a transaction", this.brokers);
    }
  }

  async #adminClient(): Promise<Admin> {
    this.#admin ??= new Admin(await connectionOptions(this.#config));
    return this.#admin;
  }

  #coordinators = new Map<string, number>();

  async #groupCoordinator(group: string): Promise<number> {
    let node = this.#coordinators.get(group);
    if (node === undefined) {
      const admin = await this.#adminClient();
      const [found] = await admin.findCoordinator({
        keyType: FindCoordinatorKeyTypes.GROUP,
        keys: [group],
      });
      node = found!.nodeId;
      this.#coordinators.set(group, node);
    }
    return node;
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
        topics: missing,
        partitions: settings.partitions,
        replicas: settings.replicationFactor,
        configs: Object.entries(settings.config ?? {}).map(([name, value]) => ({ name, value })),
      });
    } catch (error) {
      if (errorTypes(error).includes("TOPIC_ALREADY_EXISTS")) return;
      throw classifyError(error, `creating topics ${topics.join(", ")}`, this.brokers);
    }
  }

  /**
   * The checkpoint committed for `group` on partition 0 of `topic`; `null`: none. Read with
   * `require_stable`, so a commit still being completed is waited for, never missed.
   */
  async readCheckpoint(group: string, topic: string): Promise<Lsn | null> {
    const admin = await this.#adminClient();
    try {
      const [entry] = await admin.listConsumerGroupOffsets({
        groups: [{ groupId: group, topics: [{ name: topic, partitionIndexes: [0] }] }] as never,
        requireStable: true,
      });
      const partition = entry?.topics.find((t) => t.name === topic)?.partitions.find((p) =>
        p.partitionIndex === 0
      );
      if (partition === undefined || partition.committedOffset < 0n) return null;
      return lsn(partition.committedOffset);
    } catch (error) {
      throw classifyError(error, `reading the checkpoint of ${group}`, this.brokers);
    }
  }

  /** Disconnects; an open transaction is aborted first (best effort). */
  async close(): Promise<void> {
    await this.abort().catch(() => {});
    await this.#admin?.close().catch(() => {});
    this.#admin = null;
    await this.#producer.close(true).catch(() => {});
  }
}

function toBuffer(bytes: Uint8Array): Buffer {
  // A Buffer over the same memory costs no copy.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
