/**
 * The Kafka client behind the sink: `@platformatic/kafka` (npm, pure TypeScript), wrapped so
 * that the rest of the sink sees a few calls (send in order, transactions, topics, the
 * checkpoint) and errors that say whether a retry can help. Only this file and
 * `connection.ts` (the produce path's connections) import the client.
 *
 * Why this client: measured against `kafkajs` 2.2.4 with the same guarantees (idempotent,
 * acks=all; `bench/_kafka_clients.ts`), it sends 2–2.5× the records per second at the same or
 * less memory, compresses with gzip, snappy, lz4 and zstd without native code, supports
 * OffsetFetch's `require_stable` (the checkpoint read), and is maintained; kafkajs is not.
 *
 * Records do not go through the client's `send`: it keeps one produce request in flight per
 * connection when idempotent, and builds each record from many small buffers. The sink writes
 * its own Produce requests (`produce.ts`) and sends them on connections of its own
 * (`connection.ts`: the client's connections copy each request), up to five in flight, numbering each
 * partition's records itself; the client does the rest (the producer id, transactions,
 * metadata, and the SASL exchanges).
 *
 * Producer settings: idempotent (with acks all; the broker then keeps each partition's
 * records in the order of their sequence numbers), acks as configured (all by default), and
 * Java's murmur2 partitioning of keyed records (`murmur2.ts`), so a key lands on the partition
 * Debezium's Java producer would choose; keyless records go round robin per topic.
 *
 * @module
 */

import {
  Admin,
  type Broker,
  type ClusterMetadata,
  compressionsAlgorithms,
  FindCoordinatorKeyTypes,
  findErrorBy,
  kGetApi,
  Producer,
  produceV10,
  produceV11,
  produceV9,
  type SASLOptions,
} from "npm:@platformatic/kafka@2.12.1";
import { Buffer } from "node:buffer";
import { type Lsn, lsn } from "../../decoder/lsn.ts";
import type { KafkaSinkConfig } from "../../config/mod.ts";
import { type Logger, silentLogger } from "../../ops/log.ts";
import { keyHash } from "./murmur2.ts";
import {
  nextSequence,
  PRODUCE_VERSIONS,
  ProduceRequestWriter,
  type TopicRecords,
} from "./produce.ts";
import type { BatchCompression, RecordHeaders } from "./record_batch.ts";
import { readCertificate } from "./schema_registry.ts";
import { BrokerConnection, type BrokerConnectionOptions } from "./connection.ts";

/**
 * A record's headers: names and values as UTF-8 bytes ({@linkcode headerBytes}), written into
 * the record as they are. Names and values that repeat (the header names, a transaction's xid)
 * are best encoded once and shared.
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
  /** Names and values, or the record's header section already encoded (`record_batch.ts`). */
  headers?: RecordHeaders;
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

/** The client's codec for `compression` (none: `undefined`). */
function batchCompression(
  compression: KafkaSinkConfig["compression"],
): BatchCompression | undefined {
  if (compression === "none") return undefined;
  const codec = compressionsAlgorithms[compression];
  return {
    attribute: codec.bitmask,
    compress: (bytes) => codec.compressSync(toBuffer(bytes)),
  };
}

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
    retryDelay: clientRetryDelay,
  };
}

/**
 * The client's wait before its `attempt`th retry (from 1): 100 ms, doubling up to 2 s. A
 * transaction coordinator still writing the last transaction's markers (CONCURRENT_TRANSACTIONS,
 * met by the next transaction's first request just after a commit) is asked again after 10 and
 * 20 ms first, as the Java producer does after 20 ms: waiting 100 ms there made each Kafka
 * transaction of exactly-once 100 ms longer.
 */
export function clientRetryDelay(
  _client: unknown,
  _operation: string,
  attempt: number,
  _retries: number,
  error: unknown,
): number {
  if (
    attempt <= 2 && error instanceof Error &&
    findErrorBy(error, "apiId", "CONCURRENT_TRANSACTIONS") !== null
  ) {
    return 10 * attempt;
  }
  return Math.min(50 * 2 ** attempt, 2_000);
}

/** How long a Kafka transaction may stay open (the broker caps it: 15 min by default). */
const TRANSACTION_TIMEOUT_MS = 600_000;

type SinkProducer = Producer<Buffer, Buffer, Buffer, Buffer>;

/**
 * Produce requests in flight at most: the Batcher's limit (`MAX_IN_FLIGHT`). As many request
 * writers are kept for use again.
 */
const PRODUCE_IN_FLIGHT = 5;

/** The response parsers of the Produce versions {@linkcode ProduceRequestWriter} writes. */
const PRODUCE_PARSERS = new Map<number, typeof produceV11.parseResponse>([
  [9, produceV9.parseResponse],
  [10, produceV10.parseResponse],
  [11, produceV11.parseResponse],
]);

/** One partition's records of a send, numbered from `baseSequence`. */
interface PartitionBatch {
  topic: string;
  partition: number;
  baseSequence: number;
  records: OutMessage[];
}

/** What the produce path needs of a connection to a broker ({@linkcode BrokerConnection}). */
export interface ProduceConnection {
  readonly broken: boolean;
  /** Bytes to leave free at the start of a request for {@linkcode produce}. */
  readonly headerRoom: number;
  produce(
    apiVersion: number,
    request: Uint8Array,
    parser: typeof produceV11.parseResponse,
    noResponse: boolean,
    written: () => void,
  ): Promise<void>;
  close(): void;
}

/** Opens a produce connection to a broker. */
export type OpenConnection = (broker: Broker) => Promise<ProduceConnection>;

/** Where a request goes: its batches, the connection to their leader, the Produce version. */
interface Target {
  batches: PartitionBatch[];
  connection: ProduceConnection;
  version: number;
}

/** A request sent: the batches it holds, for whom, and how it ended. */
interface Sent {
  batches: PartitionBatch[];
  producer: { producerId: bigint; producerEpoch: number };
  /** `null` once acknowledged, or the error (never rejects). */
  done: Promise<unknown>;
}

/**
 * Times a refused request is sent again (after the first attempt) before the error goes to the
 * sink, which then goes on with a new producer, for as long as it takes: a leader that moves or
 * a topic just created mends within them. It bounds the retries of a transactional or
 * non-idempotent producer, and an idempotent one's refusals of its sequence numbers; a broker
 * that is away is waited for longer ({@linkcode DELIVERY_TIMEOUT_MS}).
 */
export const IN_PLACE_RETRIES = 5;

/**
 * How long an idempotent producer (at-least-once, acks all) sends a request again in place,
 * with the same producer id and sequence numbers, while the broker cannot be reached or has no
 * leader: the broker writes each batch once however often it arrives, so a request written
 * before the broker went away and sent again after it came back is not duplicated. Java's
 * producer gives up after its `delivery.timeout.ms` (2 minutes) and Kafka Connect then fails
 * the task; here the sink goes on with a new producer, which may write again what was written
 * but not acknowledged.
 */
export const DELIVERY_TIMEOUT_MS = 300_000;

/**
 * Errors that say the broker does not take this producer's sequence numbers: sending the same
 * request again does not mend them for long.
 */
const SEQUENCE_TYPES = new Set([
  "OUT_OF_ORDER_SEQUENCE_NUMBER",
  "UNKNOWN_PRODUCER_ID",
  "INVALID_PRODUCER_ID_MAPPING",
]);

/**
 * The Kafka client of one sink: one producer (the producer id, transactions, metadata), its own
 * produce path (`produce.ts`: requests written in place, up to five in flight, on connections of
 * its own, `connection.ts`), and, when needed, an admin client.
 */
export class KafkaProducer {
  readonly brokers: string[];
  readonly #config: KafkaSinkConfig;
  readonly #producer: SinkProducer;
  readonly #transactionalId: string | null;
  readonly #timeoutMs: number;
  readonly #acks: number;
  readonly #compression: BatchCompression | undefined;
  readonly #log: Logger;
  #admin: Admin | null = null;
  /** Something was sent in the open transaction. */
  #transactionUsed = false;
  #transaction: Awaited<ReturnType<SinkProducer["beginTransaction"]>> | null = null;
  /**
   * Partitions whose first batch under this producer is not acknowledged yet, and the send that
   * carries it (settled when it has): see {@linkcode #start}.
   */
  #unconfirmed = new Map<string, Promise<void>>();
  /** The next sequence number per `topic\0partition`, for {@linkcode #sequenceOwner}. */
  #sequences = new Map<string, number>();
  /** The producer id and epoch the sequence numbers belong to. */
  #sequenceOwner = "";
  /** The next partition of keyless records, per topic (round robin). */
  #turns = new Map<string, number>();
  /** Metadata read by {@linkcode prepare}: a send that finds its topics here starts at once. */
  #metadata: ClusterMetadata | null = null;
  /**
   * Sends get their sequence numbers and enter their connections in the order they began. (A
   * send's retries go out later, once the sends before it settled: see {@linkcode #finish}.)
   */
  #ordered: Promise<unknown> = Promise.resolve();
  /** The newest send, settled (acknowledged or failed for good): the next one retries after it. */
  #settled: Promise<unknown> = Promise.resolve();
  /**
   * Why a send failed for good, or failed part-way: the sends after it would meet a gap in
   * the sequence numbers, so they fail at once and the sink goes on with a new producer.
   */
  #broken: unknown = null;
  #produceVersion: number | null = null;
  /** Request writers whose buffers are free (written out: see {@linkcode #sendAll}). */
  #requestWriters: ProduceRequestWriter[] = [];
  /** The produce path's connections, by broker address. */
  readonly #connections = new Map<string, Promise<ProduceConnection>>();
  readonly #open: OpenConnection;
  /** {@linkcode close} ran: no connection is opened any more. */
  #closed = false;
  /** Sends being sent again in place, and the latest error of one (see {@linkcode retryError}). */
  #retrying = 0;
  #retryError: string | null = null;

  private constructor(
    producer: SinkProducer,
    config: KafkaSinkConfig,
    transactionalId: string | null,
    timeoutMs: number,
    log: Logger,
    open: OpenConnection,
  ) {
    this.#open = open;
    this.brokers = config.brokers;
    this.#log = log;
    this.#config = config;
    this.#producer = producer;
    this.#transactionalId = transactionalId;
    this.#timeoutMs = timeoutMs;
    this.#acks = config.acks === "all" ? -1 : config.acks;
    this.#compression = batchCompression(config.compression);
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
    // The client makes its request timeout the transaction timeout too: a transaction of
    // millions of rows stays open for minutes.
    const timeoutMs = options.transactionalId === null
      ? connection.timeout
      : TRANSACTION_TIMEOUT_MS;
    const producer: SinkProducer = new Producer({
      ...connection,
      // The client sends InitProducerId with these (default 0 and 0, which the broker takes for
      // an old epoch of producer 0 and answers PRODUCER_FENCED): -1 and -1 ask for a new one.
      producerId: -1n,
      producerEpoch: -1,
      timeout: timeoutMs,
      idempotent: acks === -1,
      acks,
      autocreateTopics: !config.createTopics,
      transactionalId: options.transactionalId ?? undefined,
    });
    try {
      await producer.metadata({ topics: [] });
      if (options.transactionalId !== null) {
        // Beginning a transaction registers the id (InitProducerId); one with nothing in it is
        // dropped without a word to the broker.
        const transaction = await producer.beginTransaction();
        await transaction.cancel();
      } else if (acks === -1) {
        await producer.initIdempotentProducer({});
      }
    } catch (error) {
      await producer.close(true).catch(() => {});
      throw classifyError(error, "connecting", config.brokers);
    }
    const brokerOptions: BrokerConnectionOptions = {
      clientId: connection.clientId,
      tls: connection.tls,
      sasl: connection.sasl as BrokerConnectionOptions["sasl"],
      connectTimeoutMs: connection.connectTimeout,
      requestTimeoutMs: timeoutMs,
    };
    return new KafkaProducer(
      producer,
      config,
      options.transactionalId,
      timeoutMs,
      options.log ?? silentLogger,
      (broker) => BrokerConnection.open(broker.host, broker.port, brokerOptions),
    );
  }

  /**
   * Sends `messages` and resolves once the broker acknowledged all of them (per `acks`). Order
   * is kept per topic and partition, also between sends started one after another without
   * waiting (up to five in flight). Inside a transaction, they join it.
   *
   * A request the broker refuses for a reason that may pass (a leader moving, a topic just
   * created) is sent again, after the sends before it ended, to the partitions' leaders as
   * they are then, with the same sequence numbers: the broker writes each batch once, however
   * often it arrives (an idempotent producer for up to {@linkcode DELIVERY_TIMEOUT_MS}, others
   * {@linkcode IN_PLACE_RETRIES} times); then the error is thrown, and the sink's own retries
   * take over (on a new producer).
   */
  async send(messages: readonly OutMessage[]): Promise<void> {
    if (messages.length === 0) return;
    // Up to the requests entering their connections, sends go one at a time, in call order: the
    // sequence numbers of a partition must reach the broker in the order they were given.
    let markSettled: () => void = () => {};
    const ended = new Promise<void>((resolve) => markSettled = resolve);
    const started = this.#ordered.then(() => this.#start(messages, ended));
    this.#ordered = started.catch(() => {});
    const previous = this.#settled;
    const settled = started.then((requests) => this.#finish(requests, previous));
    this.#settled = settled.catch(() => {});
    this.#settled.then(markSettled);
    try {
      await settled;
    } catch (error) {
      throw classifyError(error, `sending ${messages.length} records`, this.brokers);
    }
  }

  /**
   * Routes, numbers and sends the records of one send; `ended` settles when it has (been
   * acknowledged or failed for good).
   */
  async #start(messages: readonly OutMessage[], ended: Promise<void>): Promise<Sent[]> {
    this.#throwIfBroken();
    const topics = [...new Set(messages.map((message) => message.topic))];
    let metadata = this.#metadata;
    if (metadata === null || topics.some((topic) => !metadata!.topics.has(topic))) {
      metadata = await this.#readMetadata(topics, false);
    }
    const batches: PartitionBatch[] = [];
    const byPartition = new Map<string, PartitionBatch>();
    for (const message of messages) {
      const partition = this.#partition(message, metadata);
      const key = `${message.topic}\0${partition}`;
      let batch = byPartition.get(key);
      if (batch === undefined) {
        batch = { topic: message.topic, partition, baseSequence: -1, records: [] };
        byPartition.set(key, batch);
        batches.push(batch);
      }
      batch.records.push(message);
    }
    // Everything that waits or may fail comes before the numbering: a send that took sequence
    // numbers and sent nothing would leave a gap no later send gets past.
    const targets = await this.#route(batches, metadata);
    // A partition's first batch under this producer goes alone: while the broker knows no
    // sequence of the producer there it takes any, so a later batch that reached it first (the
    // first refused, a leader not ready yet on a topic just created) would be written ahead of
    // it, and the first could then never follow.
    const firsts = [...byPartition.keys()].flatMap((key) => this.#unconfirmed.get(key) ?? []);
    if (firsts.length > 0) await Promise.all(firsts);
    this.#throwIfBroken();
    const idempotent = this.#acks === -1;
    const producer = {
      producerId: idempotent ? this.#producer.producerId ?? -1n : -1n,
      producerEpoch: idempotent ? this.#producer.producerEpoch ?? -1 : -1,
    };
    const owner = `${producer.producerId}/${producer.producerEpoch}`;
    if (owner !== this.#sequenceOwner) {
      this.#sequences.clear();
      this.#unconfirmed.clear();
      this.#sequenceOwner = owner;
    }
    if (idempotent) {
      for (const [key, batch] of byPartition) {
        const next = this.#sequences.get(key);
        if (next === undefined) {
          // The partition's first batch: the sends after it wait until it settled.
          this.#unconfirmed.set(key, ended);
          ended.then(() => {
            if (this.#unconfirmed.get(key) === ended) this.#unconfirmed.delete(key);
          });
        }
        batch.baseSequence = next ?? 0;
        this.#sequences.set(key, nextSequence(batch.baseSequence, batch.records.length));
      }
    }
    return this.#sendAll(targets, producer);
  }

  /**
   * Where `batches` go: their partitions' leaders (one request per broker), with a connection to
   * each, the partitions added to the open transaction first.
   */
  async #route(batches: readonly PartitionBatch[], metadata: ClusterMetadata): Promise<Target[]> {
    const destinations = new Map<number, { broker: Broker; batches: PartitionBatch[] }>();
    for (const batch of batches) {
      const leader = metadata.topics.get(batch.topic)?.partitions[batch.partition]?.leader ?? -1;
      let destination = destinations.get(leader);
      if (destination === undefined) {
        const broker = metadata.brokers.get(leader);
        if (broker === undefined) {
          throw new KafkaSinkError(
            `Kafka has no leader for partition ${batch.partition} of ${batch.topic} at the moment (a topic just created or a broker restarting); Spillway sends again, and if it lasts, check that the topic's replicas' brokers are up`,
            { retriable: true },
          );
        }
        destination = { broker, batches: [] };
        destinations.set(leader, destination);
      }
      destination.batches.push(batch);
    }
    if (this.#transaction !== null) {
      this.#transactionUsed = true;
      await this.#transaction.addPartitions(
        metadata,
        batches.map(({ topic, partition }) => ({ topic, partition })) as never,
      );
    }
    const version = this.#produceVersion ?? await this.#negotiateProduce();
    const found = [...destinations.values()];
    const connections = await Promise.all(found.map(({ broker }) => this.#connection(broker)));
    return found.map(({ batches }, i) => ({ batches, connection: connections[i]!, version }));
  }

  /**
   * Writes each target's request and hands it to its connection, without waiting: the requests
   * enter their connections' queues in turn. A failure here, after some went out, breaks the
   * producer (its sequence numbers have a gap).
   */
  #sendAll(
    targets: readonly Target[],
    producer: { producerId: bigint; producerEpoch: number },
  ): Sent[] {
    const timestamp = Date.now();
    try {
      return targets.map(({ batches, connection, version }) => {
        const topics = new Map<string, TopicRecords>();
        for (const { topic, partition, baseSequence, records } of batches) {
          let entry = topics.get(topic);
          if (entry === undefined) {
            entry = { topic, partitions: [] };
            topics.set(topic, entry);
          }
          entry.partitions.push({ partition, baseSequence, records });
        }
        // The writer's buffer is used again once the connection wrote the request out.
        const writer = this.#requestWriters.pop() ?? new ProduceRequestWriter();
        const request = writer.request([...topics.values()], {
          transactionalId: this.#transactionalId,
          acks: this.#acks,
          timeoutMs: this.#timeoutMs,
          ...producer,
          timestamp,
          compression: this.#compression,
        }, connection.headerRoom);
        const written = () => {
          if (this.#requestWriters.length < PRODUCE_IN_FLIGHT) this.#requestWriters.push(writer);
        };
        const done = connection.produce(
          version,
          request,
          PRODUCE_PARSERS.get(version)!,
          this.#acks === 0,
          written,
        ).then(
          () => null,
          (error: unknown) => error,
        );
        return { batches, producer, done };
      });
    } catch (error) {
      this.#broken ??= error;
      throw error;
    }
  }

  /**
   * Waits for a send's requests; sends again, after the sends before it ended, what failed for
   * a reason that may pass (finding the partitions' leaders anew). A send that fails for good
   * breaks the producer: the sends after it could never get past its sequence numbers.
   */
  async #finish(requests: Sent[], previous: Promise<unknown>): Promise<void> {
    const producer = requests[0]!.producer;
    let pending = requests;
    let batches: PartitionBatch[] = [];
    let lastError: unknown = null;
    // Only an idempotent producer outside transactions waits a broker out in place (see
    // DELIVERY_TIMEOUT_MS); a transactional one's sink replays the aborted transaction instead.
    const patient = this.#acks === -1 && this.#transactionalId === null;
    let since = 0;
    let sequenceRefusals = 0;
    let retrying = false;
    try {
      for (let attempt = 1;; attempt++) {
        if (pending.length > 0) {
          const errors = await Promise.all(pending.map((request) => request.done));
          const failed = pending.filter((_, i) => errors[i] !== null);
          if (failed.length === 0) {
            if (attempt > 2) {
              this.#log("info", "Kafka took the produce request sent again", { attempts: attempt });
            }
            return;
          }
          batches = failed.flatMap((request) => request.batches);
          lastError = errors.find((e) => e !== null);
        }
        const error = classifyError(lastError, "sending records", this.brokers);
        if (errorTypes(lastError).some((type) => SEQUENCE_TYPES.has(type))) sequenceRefusals++;
        since ||= Date.now();
        const exhausted = patient
          ? sequenceRefusals > IN_PLACE_RETRIES || Date.now() - since > DELIVERY_TIMEOUT_MS
          : attempt > IN_PLACE_RETRIES;
        if (!error.retriable || exhausted || this.#broken !== null || this.#closed) {
          this.#broken ??= error;
          throw error;
        }
        // Failing on /health once the retries would have gone to the sink's before (a leader
        // moving mends within them).
        if (attempt > IN_PLACE_RETRIES) {
          if (!retrying) this.#retrying++;
          retrying = true;
          this.#retryError = error.message;
        }
        this.#sendAgain(attempt, error, batches);
        // Later requests of a partition whose earlier one failed are refused too (their
        // sequence numbers are out of order): each send retries only after the one before it.
        await previous;
        await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** attempt, 1_000)));
        try {
          this.#throwIfBroken();
          const topics = [...new Set(batches.map((batch) => batch.topic))];
          const targets = await this.#route(batches, await this.#readMetadata(topics, true));
          pending = this.#sendAll(targets, producer);
        } catch (caught) {
          // No leader or no connection yet: an attempt too.
          lastError = caught;
          pending = [];
        }
      }
    } finally {
      if (retrying && --this.#retrying === 0) this.#retryError = null;
    }
  }

  /** Logs a request sent again: at its first retry and every tenth after, as a warning. */
  #sendAgain(attempt: number, error: KafkaSinkError, batches: PartitionBatch[]): void {
    this.#log(
      attempt % 10 === 1 ? "warn" : "debug",
      "Kafka refused a produce request; sending it again",
      {
        attempt,
        error: error.message,
        batches: batches.slice(0, 6).map((b) =>
          `${b.topic}[${b.partition}] seq ${b.baseSequence}+${b.records.length}`
        ).join(", "),
      },
    );
  }

  /**
   * While sends are being sent again in place, why (the latest error): the sink reports
   * failing meanwhile. `null`: none is.
   */
  get retryError(): string | null {
    return this.#retryError;
  }

  /** Fails a send (retriably: the sink goes on with a new producer) once the producer broke. */
  #throwIfBroken(): void {
    if (this.#broken === null) return;
    throw new KafkaSinkError(
      `Cannot send on this Kafka producer: an earlier send failed (${
        describeError(this.#broken)
      }), so its sequence numbers have a gap; the sink sends these records again on a new producer (nothing to do unless the earlier error repeats)`,
      { retriable: true, cause: this.#broken },
    );
  }

  /** The partition of a record: fixed, by its key (murmur2, as Java's), or round robin. */
  #partition(message: OutMessage, metadata: ClusterMetadata): number {
    const { topic } = message;
    const count = metadata.topics.get(topic)!.partitionsCount;
    if (message.partition !== undefined) return message.partition % count;
    if (message.key !== null) return keyHash(message.key) % count;
    const turn = this.#turns.get(topic) ?? 0;
    this.#turns.set(topic, (turn + 1) & 0x7fffffff);
    return turn % count;
  }

  /** The metadata of `topics` (`fresh`: asked of the broker, not from the client's cache). */
  async #readMetadata(topics: string[], fresh: boolean): Promise<ClusterMetadata> {
    try {
      this.#metadata = await this.#producer.metadata({ topics, forceUpdate: fresh });
      return this.#metadata;
    } catch (error) {
      throw classifyError(error, `reading the metadata of ${topics.join(", ")}`, this.brokers);
    }
  }

  /** The newest Produce version both the broker and {@linkcode ProduceRequestWriter} speak. */
  async #negotiateProduce(): Promise<number> {
    const api = await new Promise<{ version: number }>((resolve, reject) =>
      this.#producer[kGetApi]("Produce", (error, api) => error ? reject(error) : resolve(api!))
    ).catch((error) => {
      throw classifyError(error, "asking the broker which Produce versions it takes", this.brokers);
    });
    if (api.version < PRODUCE_VERSIONS.min) {
      throw new KafkaSinkError(
        `Kafka at ${
          this.brokers.join(",")
        } speaks Produce up to version ${api.version}; Spillway needs ${PRODUCE_VERSIONS.min} or later (Kafka 2.8 or later)`,
        { retriable: false },
      );
    }
    this.#produceVersion = Math.min(api.version, PRODUCE_VERSIONS.max);
    return this.#produceVersion;
  }

  /**
   * The produce connection to `broker`: the open one, or a new one once it broke (the requests
   * on it failed, and are sent again on the new one).
   */
  async #connection(broker: Broker): Promise<ProduceConnection> {
    const address = `${broker.host}:${broker.port}`;
    if (this.#closed) {
      throw new KafkaSinkError(`The Kafka producer was closed; not connecting to ${address}`, {
        retriable: true,
      });
    }
    const known = this.#connections.get(address);
    if (known !== undefined) {
      const connection = await known.catch(() => null);
      if (connection !== null && !connection.broken) return connection;
      if (this.#connections.get(address) !== known) return this.#connection(broker);
    }
    const opening = this.#open(broker);
    this.#connections.set(address, opening);
    try {
      return await opening;
    } catch (error) {
      throw classifyError(error, `connecting to ${address}`, this.brokers);
    }
  }

  /**
   * Makes sure the metadata of these records' topics is at hand before they are sent, so a
   * send started right after takes its sequence numbers without waiting.
   */
  async prepare(messages: readonly OutMessage[]): Promise<void> {
    const topics = [...new Set(messages.map((message) => message.topic))];
    if (topics.length === 0) return;
    const known = this.#metadata;
    if (known !== null && topics.every((topic) => known.topics.has(topic))) return;
    await this.#readMetadata([...new Set([...known?.topics.keys() ?? [], ...topics])], false);
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
    this.#closed = true;
    for (const opening of this.#connections.values()) {
      opening.then((connection) => connection.close(), () => {});
    }
    this.#connections.clear();
    await this.#producer.close(true).catch(() => {});
  }
}

function toBuffer(bytes: Uint8Array): Buffer {
  // A Buffer over the same memory costs no copy.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
