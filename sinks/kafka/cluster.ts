/**
 * The sink's view of a Kafka cluster: connections to its brokers (`connection.ts`), the
 * versions they speak, topic metadata, coordinators, and the requests besides Produce
 * (`apis.ts`) with the retries that ride out short blips: a coordinator loading or moving, a
 * leader being elected, a transaction's markers still being written, a broker restarting.
 * What still fails after {@linkcode CLUSTER_RETRIES} retries goes to the caller, whose own
 * retries (the sink's) take over.
 *
 * @module
 */

import {
  ADD_OFFSETS_TO_TXN,
  ADD_PARTITIONS_TO_TXN,
  type Api,
  type BrokerAddress,
  COORDINATOR_GROUP,
  COORDINATOR_TRANSACTION,
  CREATE_TOPICS,
  END_TXN,
  FIND_COORDINATOR,
  INIT_PRODUCER_ID,
  METADATA,
  type MetadataResult,
  OFFSET_FETCH,
  type PartitionErrors,
  type ProducerIdentity,
  type TransactionIdentity,
  TXN_OFFSET_COMMIT,
} from "./apis.ts";
import {
  BrokerConnection,
  BrokerConnectionError,
  type BrokerConnectionOptions,
  ConnectionPool,
} from "./connection.ts";
import { CERTIFICATE_CODES, errorTypes } from "./errors.ts";
import { checkError, KafkaProtocolError } from "./wire.ts";

/** Retries of a request that failed for a passing reason, before the error goes on. */
export const CLUSTER_RETRIES = 5;

/** The codes after which a coordinator is looked up again. */
const COORDINATOR_MOVED = new Set([14, 15, 16]); // loading, not available, not coordinator
/** CONCURRENT_TRANSACTIONS: the coordinator still completes the last transaction. */
const CONCURRENT_TRANSACTIONS = 51;
/** How long a coordinator answering CONCURRENT_TRANSACTIONS is asked again. */
const CONCURRENT_WAIT_MS = 30_000;

/**
 * The wait before the `attempt`th retry (from 1): 100 ms, doubling up to 2 s. A transaction
 * coordinator still writing the last transaction's markers (CONCURRENT_TRANSACTIONS, met by
 * the next transaction's first request just after a commit) is asked again after 10 and 20 ms
 * first, as the Java producer does after 20 ms: waiting 100 ms there made each Kafka
 * transaction of exactly-once 100 ms longer.
 */
export function retryDelay(attempt: number, error: unknown): number {
  if (
    attempt <= 2 && error instanceof KafkaProtocolError && error.code === CONCURRENT_TRANSACTIONS
  ) {
    return 10 * attempt;
  }
  return Math.min(50 * 2 ** attempt, 2_000);
}

/**
 * A failure that may pass: a broker's passing code, or a connection that failed (but not on
 * a certificate Spillway does not trust: the next attempt meets the same one).
 */
function passing(error: unknown): boolean {
  if (error instanceof KafkaProtocolError) return error.passing;
  if (error instanceof BrokerConnectionError) {
    return error.code === "NETWORK" &&
      !errorTypes(error).some((type) => CERTIFICATE_CODES.has(type));
  }
  return false;
}

/** Metadata of the topics asked about so far, and the brokers. */
export interface ClusterMetadata {
  brokers: Map<number, BrokerAddress>;
  topics: Map<string, { partitions: { leader: number }[] }>;
}

/** Connections to one cluster's brokers, and its requests besides Produce. */
export class KafkaCluster {
  readonly #bootstrap: readonly string[];
  /** How connections are opened: each asks its broker's versions (`clientVersion`). */
  readonly #options: BrokerConnectionOptions;
  /** Connections by `host:port`. */
  readonly #connections = new ConnectionPool<BrokerConnection>("The Kafka sink's client");
  /** Known brokers, by node id (from metadata). */
  readonly #brokers = new Map<number, BrokerAddress>();
  #controllerId = -1;
  /** The topics' metadata read so far, by name. */
  readonly #topics = new Map<string, { partitions: { leader: number }[] }>();
  /** Coordinators found, by `keyType/key`. */
  readonly #coordinators = new Map<string, BrokerAddress>();
  #closed = false;

  /** For `bootstrap` (`host:port` each), connecting with `options`, as Spillway `version`. */
  constructor(bootstrap: readonly string[], options: BrokerConnectionOptions, version: string) {
    this.#bootstrap = bootstrap;
    this.#options = { ...options, clientVersion: version };
  }

  /** Where the cluster was reached, for messages. */
  get brokers(): readonly string[] {
    return this.#bootstrap;
  }

  /**
   * The newest version of API `key` in `[min, max]` that a broker of the cluster speaks (the
   * one reached; every connection asks its broker when it opens); throws when none is (a
   * Kafka older than the sink needs).
   */
  async version(name: string, key: number, min: number, max: number): Promise<number> {
    const connection = await this.#withRetries(() => this.#anyConnection());
    return connection.newestVersion(name, key, min, max);
  }

  /** A connection to `address` (`host:port`): the open one, or a new one. */
  connection(address: string): Promise<BrokerConnection> {
    return this.#connections.get(address, () => {
      const colon = address.lastIndexOf(":");
      const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
      return BrokerConnection.open(host, Number(address.slice(colon + 1)), this.#options);
    });
  }

  /** A connection to any broker: one open already, else the bootstrap brokers in turn. */
  async #anyConnection(): Promise<BrokerConnection> {
    for (const opening of this.#connections.values()) {
      const connection = await opening.catch(() => null);
      if (connection !== null && !connection.broken) return connection;
    }
    const addresses = [
      ...this.#bootstrap,
      ...[...this.#brokers.values()].map(({ host, port }) => `${host}:${port}`),
    ];
    let failure: unknown = null;
    for (const address of new Set(addresses)) {
      try {
        return await this.connection(address);
      } catch (error) {
        failure = error;
        // Settings no retry mends (TLS, SASL) fail at once, not after every broker.
        if (!passing(error)) throw error;
      }
    }
    throw failure;
  }

  /** Sends `api` to any broker. */
  async #anyRequest<Args, Result>(api: Api<Args, Result>, args: Args): Promise<Result> {
    await this.version(api.name, api.key, api.version, api.version);
    return (await this.#anyConnection()).request(api, args);
  }

  /**
   * Runs `attempt`, and again after a failure that may pass, up to {@linkcode CLUSTER_RETRIES}
   * times; then throws the last error. A coordinator still completing the last transaction
   * (CONCURRENT_TRANSACTIONS) is waited for longer, up to {@linkcode CONCURRENT_WAIT_MS}, as
   * Java's producer does: giving up would cost a new producer and a replayed transaction.
   */
  async #withRetries<T>(attempt: () => Promise<T>): Promise<T> {
    const since = Date.now();
    for (let retry = 0;; retry++) {
      try {
        return await attempt();
      } catch (error) {
        const more = retry < CLUSTER_RETRIES ||
          (error instanceof KafkaProtocolError && error.code === CONCURRENT_TRANSACTIONS &&
            Date.now() - since < CONCURRENT_WAIT_MS);
        if (!passing(error) || !more || this.#closed) throw error;
        await new Promise((resolve) => setTimeout(resolve, retryDelay(retry + 1, error)));
      }
    }
  }

  /**
   * The metadata of `topics`, asked of a broker (a topic that does not exist yet is created
   * when `allowAutoCreation` and the broker allows it). Topics without a leader yet, or just
   * created, are asked about again.
   */
  async metadata(topics: readonly string[], allowAutoCreation: boolean): Promise<ClusterMetadata> {
    return await this.#withRetries(async () => {
      const answer = await this.#askMetadata(topics, allowAutoCreation);
      for (const topic of topics) {
        const found = answer.topics.get(topic);
        if (found === undefined) {
          throw new KafkaProtocolError(3, `reading the metadata of ${topic}`, "not in the answer");
        }
        checkError(found.errorCode, `reading the metadata of ${topic}`);
        // A partition without a leader (one being elected) has leader -1: the producer sends
        // to it again once it has one.
        const partitions = found.partitions.map(({ leader }) => ({ leader }));
        if (partitions.length === 0) {
          throw new KafkaProtocolError(5, `reading the metadata of ${topic}`, "no partitions");
        }
        this.#topics.set(topic, { partitions });
      }
      return { brokers: this.#brokers, topics: this.#topics };
    });
  }

  /** The names of every topic the cluster has. */
  async listTopics(): Promise<Set<string>> {
    return await this.#withRetries(async () => {
      const answer = await this.#askMetadata(null, false);
      return new Set(answer.topics.keys());
    });
  }

  /**
   * Creates `topics`; one that exists already is no error. Sent to the controller where the
   * cluster names one (a KRaft broker forwards it there itself).
   */
  async createTopics(
    topics: readonly string[],
    settings: { partitions: number; replicationFactor: number; config: Record<string, string> },
  ): Promise<void> {
    await this.#withRetries(async () => {
      await this.version(CREATE_TOPICS.name, CREATE_TOPICS.key, 5, 5);
      const controller = this.#brokers.get(this.#controllerId);
      const connection = controller === undefined
        ? await this.#anyConnection()
        : await this.connection(`${controller.host}:${controller.port}`);
      const results = await connection.request(CREATE_TOPICS, {
        topics,
        ...settings,
        // Less than the request's own timeout, so the broker's answer comes before it.
        timeoutMs: Math.max(1_000, this.#options.requestTimeoutMs - 5_000),
      });
      for (const { topic, errorCode, errorMessage } of results) {
        if (errorCode === 36) continue; // TOPIC_ALREADY_EXISTS
        if (errorCode === 41) this.#controllerId = -1; // NOT_CONTROLLER: any broker next
        checkError(errorCode, `creating topic ${topic}`, errorMessage);
      }
    });
  }

  /** A new producer id (idempotent), or the transactional id's (which fences its earlier one). */
  async initProducerId(
    transactionalId: string | null,
    transactionTimeoutMs: number,
  ): Promise<ProducerIdentity> {
    const args = { transactionalId, transactionTimeoutMs, producerId: -1n, producerEpoch: -1 };
    const doing = "asking Kafka for a producer id";
    if (transactionalId !== null) {
      const answer = await this.#askCoordinator(
        COORDINATOR_TRANSACTION,
        transactionalId,
        INIT_PRODUCER_ID,
        args,
        `registering transactional id ${transactionalId}`,
        ({ errorCode }) => errorCode,
      );
      return { producerId: answer.producerId, producerEpoch: answer.producerEpoch };
    }
    return await this.#withRetries(async () => {
      const answer = await this.#anyRequest(INIT_PRODUCER_ID, args);
      checkError(answer.errorCode, doing);
      return { producerId: answer.producerId, producerEpoch: answer.producerEpoch };
    });
  }

  /** Adds partitions (`topic` → indexes) to the open transaction. */
  async addPartitionsToTxn(
    transaction: TransactionIdentity,
    topics: Map<string, number[]>,
  ): Promise<void> {
    await this.#askCoordinator(
      COORDINATOR_TRANSACTION,
      transaction.transactionalId,
      ADD_PARTITIONS_TO_TXN,
      { ...transaction, topics },
      "adding partitions to the Kafka transaction",
      partitionError,
    );
  }

  /**
   * Commits `offset` on partition `partition` of `topic` for `group` within the open
   * transaction: the group joins it (AddOffsetsToTxn), then its coordinator takes the offset
   * (TxnOffsetCommit).
   */
  async commitOffsetInTxn(
    transaction: TransactionIdentity,
    commit: { group: string; topic: string; partition: number; offset: bigint },
  ): Promise<void> {
    await this.#askCoordinator(
      COORDINATOR_TRANSACTION,
      transaction.transactionalId,
      ADD_OFFSETS_TO_TXN,
      { ...transaction, group: commit.group },
      `adding group ${commit.group} to the Kafka transaction`,
      (errorCode) => errorCode,
    );
    await this.#askCoordinator(
      COORDINATOR_GROUP,
      commit.group,
      TXN_OFFSET_COMMIT,
      { ...transaction, ...commit },
      `committing the checkpoint of group ${commit.group} in the Kafka transaction`,
      partitionError,
    );
  }

  /** Commits or aborts the open transaction. */
  async endTxn(transaction: TransactionIdentity, commit: boolean): Promise<void> {
    await this.#askCoordinator(
      COORDINATOR_TRANSACTION,
      transaction.transactionalId,
      END_TXN,
      { ...transaction, commit },
      `${commit ? "committing" : "aborting"} the Kafka transaction`,
      (errorCode) => errorCode,
    );
  }

  /**
   * The offset `group` committed on partition `partition` of `topic` (-1: none), waiting for
   * offsets of transactions still being completed (`require_stable`).
   */
  async fetchOffset(group: string, topic: string, partition: number): Promise<bigint> {
    const answer = await this.#askCoordinator(
      COORDINATOR_GROUP,
      group,
      OFFSET_FETCH,
      { group, topic, partition },
      `reading the committed offset of group ${group}`,
      ({ errorCode, partitionErrorCode }) => errorCode || partitionErrorCode,
    );
    return answer.offset;
  }

  /**
   * Sends `api` to the coordinator of `key`, again after a failure that may pass; throws the
   * error its answer carries (`codeOf`). A coordinator that moved or is loading is looked up
   * again.
   */
  async #askCoordinator<Args, Result>(
    keyType: number,
    key: string,
    api: Api<Args, Result>,
    args: Args,
    doing: string,
    codeOf: (result: Result) => number,
  ): Promise<Result> {
    return await this.#withRetries(async () => {
      const result = await this.#coordinated(keyType, key, api, args);
      const code = codeOf(result);
      if (COORDINATOR_MOVED.has(code)) this.#coordinators.delete(`${keyType}/${key}`);
      checkError(code, doing);
      return result;
    });
  }

  /** Sends `api` to the coordinator of `key` (a group or a transactional id). */
  async #coordinated<Args, Result>(
    keyType: number,
    key: string,
    api: Api<Args, Result>,
    args: Args,
  ): Promise<Result> {
    await this.version(api.name, api.key, api.version, api.version);
    const id = `${keyType}/${key}`;
    let coordinator = this.#coordinators.get(id);
    if (coordinator === undefined) {
      const found = await this.#anyRequest(FIND_COORDINATOR, { key, keyType });
      checkError(
        found.errorCode,
        `finding the ${
          keyType === COORDINATOR_GROUP ? "group" : "transaction"
        } coordinator of ${key}`,
        found.errorMessage,
      );
      coordinator = { nodeId: found.nodeId, host: found.host, port: found.port };
      this.#coordinators.set(id, coordinator);
    }
    try {
      return await (await this.connection(`${coordinator.host}:${coordinator.port}`))
        .request(api, args);
    } catch (error) {
      // A coordinator that cannot be reached is looked up again on the retry.
      this.#coordinators.delete(id);
      throw error;
    }
  }

  /**
   * A Metadata request (`topics` null: all), whose brokers and controller are kept. The
   * brokers go into the same map: a snapshot a send holds then finds the leaders its topics
   * name.
   */
  async #askMetadata(
    topics: readonly string[] | null,
    allowAutoCreation: boolean,
  ): Promise<MetadataResult> {
    const answer = await this.#anyRequest(METADATA, { topics, allowAutoCreation });
    this.#brokers.clear();
    for (const [id, broker] of answer.brokers) this.#brokers.set(id, broker);
    this.#controllerId = answer.controllerId;
    return answer;
  }

  /** Closes every connection. */
  close(): void {
    this.#closed = true;
    this.#connections.close();
  }
}

/**
 * The error of a per-partition answer: the first partition's that failed. (The broker marks the
 * partitions it did not get to with OPERATION_NOT_ATTEMPTED; the error that stopped it is on
 * another.)
 */
function partitionError(errors: PartitionErrors): number {
  const failed = errors.find(({ errorCode }) => errorCode !== 0 && errorCode !== 55) ??
    errors.find(({ errorCode }) => errorCode !== 0);
  return failed?.errorCode ?? 0;
}
