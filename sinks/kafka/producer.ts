/**
 * The Kafka client behind the sink, written for it: the rest of the sink sees a few calls (send
 * in order, transactions, topics, the checkpoint) and errors that say whether a retry can help
 * (`errors.ts`).
 *
 * Records go in the sink's own Produce requests (`produce.ts`), written in place and sent on
 * connections of its own (`connection.ts`), up to five in flight, each partition's records
 * numbered here. The rest (versions, metadata, the producer id, transactions, topics, the
 * checkpoint) goes through `cluster.ts`.
 *
 * Why no client library: the sink measured two. `kafkajs` 2.2.4 sent 2–2.5× fewer records per
 * second than `@platformatic/kafka` 2.12.1 with the same guarantees (`bench/_kafka_clients.ts`)
 * and is not maintained. The latter keeps one produce request in flight per connection when
 * idempotent, builds each record from many small buffers and copies each request, so the sink
 * wrote its own produce path; what was left of it (the requests above) cost 41 MB of memory on
 * load (its index loads every client and schema registry support), a fifth of the sink's peak
 * on a 5M-row transaction (bench/RESULTS.md). The requests the sink sends are few and small;
 * they are in `apis.ts`.
 *
 * Producer settings: idempotent (with acks all; the broker then keeps each partition's
 * records in the order of their sequence numbers), acks as configured (all by default), and
 * Java's murmur2 partitioning of keyed records (`murmur2.ts`), so a key lands on the partition
 * Debezium's Java producer would choose; keyless records go round robin per topic.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { type Lsn, lsn } from "../../decoder/lsn.ts";
import type { KafkaSinkConfig } from "../../config/mod.ts";
import { type Logger, silentLogger } from "../../ops/log.ts";
import type { BrokerAddress, ProducerIdentity } from "./apis.ts";
import { type ClusterMetadata, KafkaCluster } from "./cluster.ts";
import { batchCompression } from "./compression.ts";
import { BrokerConnection, type BrokerConnectionOptions, ConnectionPool } from "./connection.ts";
import { classifyError, describeError, errorTypes, KafkaSinkError } from "./errors.ts";
import { keyHash } from "./murmur2.ts";
import {
  nextSequence,
  PRODUCE_API_KEY,
  PRODUCE_VERSIONS,
  ProduceRequestWriter,
  type TopicRecords,
} from "./produce.ts";
import type { BatchCompression, RecordHeaders } from "./record_batch.ts";
import type { RecordBytes } from "../../formats/byte_writer.ts";
import { readCertificate } from "./schema_registry.ts";

/**
 * A record's headers: names and values as UTF-8 bytes ({@linkcode headerBytes}), written into
 * the record as they are. Names and values that repeat (the header names, a transaction's xid)
 * are best encoded once and shared.
 */
export type Headers = Map<Uint8Array, Uint8Array>;

/** A header name or value as a record holds it: UTF-8 bytes. */
export function headerBytes(text: string): Uint8Array {
  return Buffer.from(text);
}

/** One record to send. */
export interface OutMessage {
  topic: string;
  key: Uint8Array | null;
  /** `null`: a tombstone. In two parts when its head is shared (`PrefixedBytes`). */
  value: RecordBytes | null;
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
  /** Spillway's version, told to the broker (which shows it in its client metrics). */
  version: string;
  log?: Logger;
}

async function connectionOptions(config: KafkaSinkConfig): Promise<BrokerConnectionOptions> {
  let tls: { ca?: string } | undefined = undefined;
  if (config.tls !== null) {
    tls = config.tls.ca === null
      ? {}
      : { ca: await readCertificate(config.tls.ca, "the Kafka CA certificate", "tls.ca") };
  }
  let sasl: BrokerConnectionOptions["sasl"] = undefined;
  if (config.sasl !== null) {
    sasl = {
      mechanism: config.sasl.mechanism.toUpperCase() as NonNullable<
        BrokerConnectionOptions["sasl"]
      >["mechanism"],
      username: config.sasl.username,
      password: config.sasl.password,
    };
  }
  return {
    clientId: config.clientId,
    tls,
    sasl,
    connectTimeoutMs: 10_000,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
  };
}

/**
 * How long a request may wait for its answer (Java's `request.timeout.ms`), and the time a
 * produce request gives the broker to replicate (`timeout_ms`).
 */
const REQUEST_TIMEOUT_MS = 30_000;

/** How long a Kafka transaction may stay open (the broker caps it: 15 min by default). */
const TRANSACTION_TIMEOUT_MS = 600_000;

/**
 * Produce requests in flight at most: the Batcher's limit (`MAX_IN_FLIGHT`). As many request
 * writers are kept for use again.
 */
const PRODUCE_IN_FLIGHT = 5;

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
  /** The Produce version its broker takes (see {@linkcode BrokerConnection.produceVersion}). */
  readonly produceVersion: number;
  produce(
    apiVersion: number,
    request: Uint8Array,
    noResponse: boolean,
    written: () => void,
  ): Promise<void>;
  close(): void;
}

/** Opens a produce connection to a broker. */
export type OpenConnection = (broker: BrokerAddress) => Promise<ProduceConnection>;

/** What the producer asks of the cluster ({@linkcode KafkaCluster}). */
export type Cluster = Pick<
  KafkaCluster,
  | "brokers"
  | "version"
  | "metadata"
  | "listTopics"
  | "createTopics"
  | "initProducerId"
  | "addPartitionsToTxn"
  | "commitOffsetInTxn"
  | "endTxn"
  | "fetchOffset"
  | "close"
>;

/** Where a request goes: its batches, the connection to their leader, the Produce version. */
interface Target {
  batches: PartitionBatch[];
  connection: ProduceConnection;
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
 * A send retried in place for this long makes {@linkcode KafkaProducer.retryError} say why
 * (/health: failing), whatever its attempt count: an attempt can itself wait out the request
 * timeout (30 s) on a broker that takes connections and does not answer, as one shutting down
 * may. Past the ~2.5 s that {@linkcode IN_PLACE_RETRIES} attempts take when they fail fast.
 */
export const FAILING_AFTER_MS = 5_000;

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
 * The Kafka client of one sink: one producer (its id, transactions, metadata, through the
 * cluster) and its own produce path (`produce.ts`: requests written in place, up to five in
 * flight, on connections of its own, `connection.ts`).
 */
export class KafkaProducer {
  readonly brokers: readonly string[];
  readonly #cluster: Cluster;
  /** The producer id and epoch; -1 and -1 when not idempotent. */
  readonly #identity: ProducerIdentity;
  readonly #transactionalId: string | null;
  readonly #timeoutMs: number;
  readonly #acks: number;
  readonly #allowAutoCreation: boolean;
  readonly #compression: BatchCompression | undefined;
  readonly #log: Logger;
  /** Something was sent in the open transaction (the broker knows of it). */
  #transactionUsed = false;
  /** The open transaction: the partitions added to it so far, as `topic\0partition`. */
  #transaction: { partitions: Set<string> } | null = null;
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
  /** Request writers whose buffers are free (written out: see {@linkcode #sendAll}). */
  #requestWriters: ProduceRequestWriter[] = [];
  /** The produce path's connections, by broker address. */
  readonly #connections = new ConnectionPool<ProduceConnection>("The Kafka producer");
  readonly #open: OpenConnection;
  /** {@linkcode close} ran: no connection is opened any more. */
  #closed = false;
  /** Sends being sent again in place, and the latest error of one (see {@linkcode retryError}). */
  #retrying = 0;
  #retryError: string | null = null;
  /** When the first of the sends now retried in place failed. */
  #retryingSince = 0;
  /** One of them has passed {@linkcode IN_PLACE_RETRIES} attempts. */
  #retriedLong = false;

  private constructor(
    cluster: Cluster,
    identity: ProducerIdentity,
    config: KafkaSinkConfig,
    compression: BatchCompression | undefined,
    transactionalId: string | null,
    log: Logger,
    open: OpenConnection,
  ) {
    this.#open = open;
    this.#cluster = cluster;
    this.#identity = identity;
    this.brokers = cluster.brokers;
    this.#log = log;
    this.#transactionalId = transactionalId;
    this.#timeoutMs = REQUEST_TIMEOUT_MS;
    this.#acks = config.acks === "all" ? -1 : config.acks;
    this.#allowAutoCreation = !config.createTopics;
    this.#compression = compression;
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
    const cluster = new KafkaCluster(config.brokers, connection, options.version);
    let identity: ProducerIdentity = { producerId: -1n, producerEpoch: -1 };
    let compression: BatchCompression | undefined;
    try {
      compression = await batchCompression(config.compression);
      await cluster.version("Produce", PRODUCE_API_KEY, PRODUCE_VERSIONS.min, PRODUCE_VERSIONS.max);
      if (options.transactionalId !== null || acks === -1) {
        identity = await cluster.initProducerId(
          options.transactionalId,
          options.transactionTimeoutMs ?? TRANSACTION_TIMEOUT_MS,
        );
      }
    } catch (error) {
      cluster.close();
      throw classifyError(error, "connecting", config.brokers);
    }
    return new KafkaProducer(
      cluster,
      identity,
      config,
      compression,
      options.transactionalId,
      options.log ?? silentLogger,
      (broker) =>
        BrokerConnection.open(broker.host, broker.port, {
          ...connection,
          clientVersion: options.version,
        }),
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
      metadata = await this.#readMetadata(topics);
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
    const producer = idempotent ? this.#identity : { producerId: -1n, producerEpoch: -1 };
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
    const destinations = new Map<number, { broker: BrokerAddress; batches: PartitionBatch[] }>();
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
    const transaction = this.#transaction;
    if (transaction !== null) {
      // Partitions join the transaction before its first records reach them.
      const added = new Map<string, number[]>();
      const keys: string[] = [];
      for (const { topic, partition } of batches) {
        const key = `${topic}\0${partition}`;
        if (transaction.partitions.has(key) || keys.includes(key)) continue;
        keys.push(key);
        added.set(topic, [...added.get(topic) ?? [], partition]);
      }
      if (keys.length > 0) {
        this.#transactionUsed = true;
        await this.#cluster.addPartitionsToTxn(this.#transactionIdentity(), added);
        for (const key of keys) transaction.partitions.add(key);
      }
    }
    const found = [...destinations.values()];
    const connections = await Promise.all(found.map(({ broker }) => this.#connection(broker)));
    return found.map(({ batches }, i) => ({ batches, connection: connections[i]! }));
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
      return targets.map(({ batches, connection }) => {
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
          connection.produceVersion,
          request,
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
        // moving mends within them), or once they have lasted FAILING_AFTER_MS (see retryError).
        if (!retrying) {
          if (this.#retrying++ === 0) this.#retryingSince = since;
          retrying = true;
        }
        this.#retryError = error.message;
        if (attempt > IN_PLACE_RETRIES) this.#retriedLong = true;
        this.#sendAgain(attempt, error, batches);
        // Later requests of a partition whose earlier one failed are refused too (their
        // sequence numbers are out of order): each send retries only after the one before it.
        await previous;
        await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** attempt, 1_000)));
        try {
          this.#throwIfBroken();
          const topics = [...new Set(batches.map((batch) => batch.topic))];
          const targets = await this.#route(batches, await this.#readMetadata(topics));
          pending = this.#sendAll(targets, producer);
        } catch (caught) {
          // No leader or no connection yet: an attempt too.
          lastError = caught;
          pending = [];
        }
      }
    } finally {
      if (retrying && --this.#retrying === 0) {
        this.#retryError = null;
        this.#retriedLong = false;
      }
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
   * While sends are being sent again in place, past {@linkcode IN_PLACE_RETRIES} attempts or for
   * {@linkcode FAILING_AFTER_MS}, why (the latest error): the sink reports failing meanwhile.
   * `null`: none is (or not for long yet: a leader moving mends within that).
   */
  get retryError(): string | null {
    if (this.#retryError === null) return null;
    const long = this.#retriedLong || Date.now() - this.#retryingSince >= FAILING_AFTER_MS;
    return long ? this.#retryError : null;
  }

  /** Fails a send (retriably: the sink goes on with a new producer) once the producer broke. */
  #throwIfBroken(): void {
    if (this.#broken === null) return;
    throw new KafkaSinkError(
      `Cannot use this Kafka producer any more: an earlier request failed (${
        describeError(this.#broken)
      }), leaving a gap in its sequence numbers or a transaction it could not abort; the sink goes on with a new producer (nothing to do unless the earlier error repeats)`,
      { retriable: true, cause: this.#broken },
    );
  }

  /** The partition of a record: fixed, by its key (murmur2, as Java's), or round robin. */
  #partition(message: OutMessage, metadata: ClusterMetadata): number {
    const { topic } = message;
    const count = metadata.topics.get(topic)!.partitions.length;
    if (message.partition !== undefined) return message.partition % count;
    if (message.key !== null) return keyHash(message.key) % count;
    const turn = this.#turns.get(topic) ?? 0;
    this.#turns.set(topic, (turn + 1) & 0x7fffffff);
    return turn % count;
  }

  /** The metadata of `topics`, asked of the broker. */
  async #readMetadata(topics: string[]): Promise<ClusterMetadata> {
    try {
      this.#metadata = await this.#cluster.metadata(topics, this.#allowAutoCreation);
      return this.#metadata;
    } catch (error) {
      throw classifyError(error, `reading the metadata of ${topics.join(", ")}`, this.brokers);
    }
  }

  /** The open transaction's id and producer, as its requests name them. */
  #transactionIdentity() {
    return { transactionalId: this.#transactionalId!, ...this.#identity };
  }

  /**
   * The produce connection to `broker`: the open one, or a new one once it broke (the requests
   * on it failed, and are sent again on the new one).
   */
  async #connection(broker: BrokerAddress): Promise<ProduceConnection> {
    const address = `${broker.host}:${broker.port}`;
    try {
      return await this.#connections.get(address, () => this.#open(broker));
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
    await this.#readMetadata([...new Set([...known?.topics.keys() ?? [], ...topics])]);
  }

  /**
   * Starts a Kafka transaction (exactly-once); {@linkcode send} joins it. Refused (retriably)
   * once the producer broke: an abort that failed may have left a transaction open at the
   * coordinator, which the next commit would take in; a new producer aborts it.
   */
  begin(): Promise<void> {
    try {
      this.#throwIfBroken();
    } catch (error) {
      return Promise.reject(error);
    }
    this.#transactionUsed = false;
    this.#transaction = { partitions: new Set() };
    return Promise.resolve();
  }

  /**
   * Commits the open transaction, with the checkpoint committed in it as the offset of `group`
   * on partition 0 of `topic` (the position Spillway reads back at start).
   */
  async commit(checkpoint: { group: string; topic: string; offset: bigint }): Promise<void> {
    if (this.#transaction === null) return;
    this.#throwIfBroken();
    try {
      this.#transactionUsed = true;
      const transaction = this.#transactionIdentity();
      await this.#cluster.commitOffsetInTxn(transaction, { ...checkpoint, partition: 0 });
      await this.#cluster.endTxn(transaction, true);
      this.#transaction = null;
    } catch (error) {
      throw classifyError(error, "committing a transaction", this.brokers);
    }
  }

  /**
   * Aborts the open transaction, if any; what it held is never visible to read_committed. An
   * abort that fails breaks the producer (see {@linkcode begin}).
   */
  async abort(): Promise<void> {
    const transaction = this.#transaction;
    this.#transaction = null;
    // The broker refuses to end a transaction it never heard of.
    if (transaction === null || !this.#transactionUsed) return;
    try {
      await this.#cluster.endTxn(this.#transactionIdentity(), false);
    } catch (error) {
      // The coordinator holds no open transaction of this producer (the partitions were never
      // added, or the last one was completed): nothing to abort.
      if (errorTypes(error).includes("INVALID_TXN_STATE")) return;
      this.#broken ??= error;
      throw classifyError(error, "aborting a transaction", this.brokers);
    }
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
    try {
      const existing = await this.#cluster.listTopics();
      const missing = topics.filter((topic) => !existing.has(topic));
      if (missing.length === 0) return;
      await this.#cluster.createTopics(missing, { ...settings, config: settings.config ?? {} });
    } catch (error) {
      throw classifyError(error, `creating topics ${topics.join(", ")}`, this.brokers);
    }
  }

  /**
   * The checkpoint committed for `group` on partition 0 of `topic`; `null`: none. Read with
   * `require_stable`, so a commit still being completed is waited for, never missed.
   */
  async readCheckpoint(group: string, topic: string): Promise<Lsn | null> {
    try {
      const offset = await this.#cluster.fetchOffset(group, topic, 0);
      return offset < 0n ? null : lsn(offset);
    } catch (error) {
      throw classifyError(error, `reading the checkpoint of ${group}`, this.brokers);
    }
  }

  /** Disconnects; an open transaction is aborted first (best effort). */
  async close(): Promise<void> {
    await this.abort().catch(() => {});
    this.#closed = true;
    this.#connections.close();
    this.#cluster.close();
  }
}
