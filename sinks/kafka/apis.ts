/**
 * The Kafka requests the sink sends besides Produce (`produce.ts`), each at one version that
 * Kafka 2.8 and every later release (4.x included) take: their bodies written and their
 * answers read. The broker's error codes stay in the results, for the caller to judge
 * (`cluster.ts`, `connection.ts`); only a malformed answer throws here.
 *
 * Versions (all flexible but SaslHandshake): ApiVersions 3, Metadata 9, FindCoordinator 3,
 * InitProducerId 3, AddPartitionsToTxn 3, AddOffsetsToTxn 3, TxnOffsetCommit 3, EndTxn 3,
 * OffsetFetch 7 (the first with `require_stable`), CreateTopics 5, SaslHandshake 1,
 * SaslAuthenticate 2; and Produce's answer for versions 9–11. The fields are those of Kafka's
 * message definitions (`clients/src/main/resources/common/message/*.json`).
 *
 * @module
 */

import { MalformedResponseError, type RequestWriter, type ResponseReader } from "./wire.ts";

/** One request type at one version: how to write it and read its answer. */
export interface Api<Args, Result> {
  /** For messages: e.g. `Metadata`. */
  name: string;
  key: number;
  version: number;
  /** Request header v2 (with a tagged-field section) rather than v1. */
  taggedRequest: boolean;
  /** Response header v1 (with a tagged-field section) rather than v0. */
  taggedResponse: boolean;
  write(writer: RequestWriter, args: Args): void;
  read(reader: ResponseReader): Result;
}

/** An API whose request and response headers are both flexible (v2 / v1). */
function flexible<Args, Result>(
  name: string,
  key: number,
  version: number,
  write: (writer: RequestWriter, args: Args) => void,
  read: (reader: ResponseReader) => Result,
): Api<Args, Result> {
  return { name, key, version, taggedRequest: true, taggedResponse: true, write, read };
}

// ApiVersions

/** A broker's supported versions, by API key. */
export type ApiRanges = Map<number, { min: number; max: number }>;

/**
 * ApiVersions v3, naming the client (`spillway` and its version). Its answer's header has no
 * tagged fields, whatever the version, so that a broker that does not know the version can
 * still answer (with UNSUPPORTED_VERSION).
 */
export const API_VERSIONS: Api<string, { errorCode: number; apis: ApiRanges }> = {
  name: "ApiVersions",
  key: 18,
  version: 3,
  taggedRequest: true,
  taggedResponse: false,
  write(writer, version) {
    writer.compactString("spillway").compactString(version).tags();
  },
  read(reader) {
    const errorCode = reader.int16();
    const apis: ApiRanges = new Map();
    if (errorCode !== 0) return { errorCode, apis };
    reader.compactArray(() => {
      const key = reader.int16();
      const min = reader.int16();
      const max = reader.int16();
      reader.tags();
      apis.set(key, { min, max });
    });
    reader.int32(); // throttle_time_ms
    reader.tags();
    return { errorCode, apis };
  },
};

// Metadata

export interface BrokerAddress {
  nodeId: number;
  host: string;
  port: number;
}

export interface TopicMetadata {
  errorCode: number;
  name: string;
  /** Partitions by index: their error and leader (-1: none). */
  partitions: { errorCode: number; leader: number }[];
}

export interface MetadataResult {
  brokers: Map<number, BrokerAddress>;
  controllerId: number;
  topics: Map<string, TopicMetadata>;
}

/** Metadata v9: `topics` null asks for every topic. */
export const METADATA: Api<
  { topics: readonly string[] | null; allowAutoCreation: boolean },
  MetadataResult
> = flexible("Metadata", 3, 9, (writer, { topics, allowAutoCreation }) => {
  writer.compactArray(topics, (name) => writer.compactString(name).tags());
  writer.bool(allowAutoCreation);
  writer.bool(false); // include_cluster_authorized_operations
  writer.bool(false); // include_topic_authorized_operations
  writer.tags();
}, (reader) => {
  reader.int32(); // throttle_time_ms
  const brokers = new Map<number, BrokerAddress>();
  reader.compactArray(() => {
    const nodeId = reader.int32();
    const host = reader.compactString() ?? "";
    const port = reader.int32();
    reader.compactString(); // rack
    reader.tags();
    brokers.set(nodeId, { nodeId, host, port });
  });
  reader.compactString(); // cluster_id
  const controllerId = reader.int32();
  const topics = new Map<string, TopicMetadata>();
  reader.compactArray(() => {
    const errorCode = reader.int16();
    const name = reader.compactString() ?? "";
    reader.bool(); // is_internal
    const partitions: TopicMetadata["partitions"] = [];
    const count = reader.compactArray(() => {
      const partitionError = reader.int16();
      const index = reader.int32();
      const leader = reader.int32();
      reader.int32(); // leader_epoch
      reader.compactArray(() => reader.int32()); // replica_nodes
      reader.compactArray(() => reader.int32()); // isr_nodes
      reader.compactArray(() => reader.int32()); // offline_replicas
      reader.tags();
      partitions[index] = { errorCode: partitionError, leader };
      return index;
    }).length;
    // Each index once, from 0 to the count: anything else would move keys between partitions.
    if (partitions.length !== count || Object.keys(partitions).length !== count) {
      throw new MalformedResponseError(
        `Kafka's metadata of topic ${name} lists ${count} partitions that are not 0 to ${
          count - 1
        }`,
      );
    }
    reader.int32(); // topic_authorized_operations
    reader.tags();
    topics.set(name, { errorCode, name, partitions });
  });
  reader.int32(); // cluster_authorized_operations
  reader.tags();
  return { brokers, controllerId, topics };
});

// FindCoordinator

/** FindCoordinator's key types. */
export const COORDINATOR_GROUP = 0;
export const COORDINATOR_TRANSACTION = 1;

export interface CoordinatorResult {
  errorCode: number;
  errorMessage: string | null;
  nodeId: number;
  host: string;
  port: number;
}

/** FindCoordinator v3. */
export const FIND_COORDINATOR: Api<{ key: string; keyType: number }, CoordinatorResult> = flexible(
  "FindCoordinator",
  10,
  3,
  (writer, { key, keyType }) => {
    writer.compactString(key).int8(keyType).tags();
  },
  (reader) => {
    reader.int32(); // throttle_time_ms
    const errorCode = reader.int16();
    const errorMessage = reader.compactString();
    const nodeId = reader.int32();
    const host = reader.compactString() ?? "";
    const port = reader.int32();
    reader.tags();
    return { errorCode, errorMessage, nodeId, host, port };
  },
);

// Producer ids and transactions

/** A producer's id and epoch. */
export interface ProducerIdentity {
  producerId: bigint;
  producerEpoch: number;
}

/**
 * InitProducerId v3: a new producer id (`producerId` -1), or, for a transactional id, the
 * same id with its epoch bumped (which fences the id's earlier producer).
 */
export const INIT_PRODUCER_ID: Api<
  { transactionalId: string | null; transactionTimeoutMs: number } & ProducerIdentity,
  { errorCode: number } & ProducerIdentity
> = flexible("InitProducerId", 22, 3, (writer, args) => {
  writer.compactString(args.transactionalId).int32(args.transactionTimeoutMs);
  writer.int64(args.producerId).int16(args.producerEpoch).tags();
}, (reader) => {
  reader.int32(); // throttle_time_ms
  const errorCode = reader.int16();
  const producerId = reader.int64();
  const producerEpoch = reader.int16();
  reader.tags();
  return { errorCode, producerId, producerEpoch };
});

/** What every transaction request names: the transactional id and its producer. */
export interface TransactionIdentity extends ProducerIdentity {
  transactionalId: string;
}

function writeTransaction(writer: RequestWriter, args: TransactionIdentity): void {
  writer.compactString(args.transactionalId).int64(args.producerId).int16(args.producerEpoch);
}

/** Per topic, per partition: an error code. */
export type PartitionErrors = { topic: string; partition: number; errorCode: number }[];

/** AddPartitionsToTxn v3: partitions join the open transaction. */
export const ADD_PARTITIONS_TO_TXN: Api<
  TransactionIdentity & { topics: Map<string, number[]> },
  PartitionErrors
> = flexible("AddPartitionsToTxn", 24, 3, (writer, args) => {
  writeTransaction(writer, args);
  writer.compactArray([...args.topics], ([topic, partitions]) => {
    writer.compactString(topic);
    writer.compactArray(partitions, (partition) => writer.int32(partition));
    writer.tags();
  });
  writer.tags();
}, readPartitionErrors);

/** An answer of a throttle time and per topic, per partition, an error code. */
function readPartitionErrors(reader: ResponseReader): PartitionErrors {
  reader.int32(); // throttle_time_ms
  const errors: PartitionErrors = [];
  reader.compactArray(() => {
    const topic = reader.compactString() ?? "";
    reader.compactArray(() => {
      const partition = reader.int32();
      const errorCode = reader.int16();
      reader.tags();
      errors.push({ topic, partition, errorCode });
    });
    reader.tags();
  });
  reader.tags();
  return errors;
}

/** A response of only a throttle time and an error code. */
function readErrorCode(reader: ResponseReader): number {
  reader.int32(); // throttle_time_ms
  const errorCode = reader.int16();
  reader.tags();
  return errorCode;
}

/** AddOffsetsToTxn v3: the group's offsets join the open transaction. */
export const ADD_OFFSETS_TO_TXN: Api<TransactionIdentity & { group: string }, number> = flexible(
  "AddOffsetsToTxn",
  25,
  3,
  (writer, args) => {
    writeTransaction(writer, args);
    writer.compactString(args.group).tags();
  },
  readErrorCode,
);

/**
 * TxnOffsetCommit v3, to the group's coordinator: offsets committed with the transaction (by
 * a group without members: generation -1, no member id).
 */
export const TXN_OFFSET_COMMIT: Api<
  TransactionIdentity & { group: string; topic: string; partition: number; offset: bigint },
  PartitionErrors
> = flexible("TxnOffsetCommit", 28, 3, (writer, args) => {
  writer.compactString(args.transactionalId).compactString(args.group);
  writer.int64(args.producerId).int16(args.producerEpoch);
  writer.int32(-1).compactString("").compactString(null); // generation, member, instance
  writer.compactArray([args.topic], (topic) => {
    writer.compactString(topic);
    writer.compactArray([args.partition], (partition) => {
      writer.int32(partition).int64(args.offset).int32(-1).compactString(null).tags();
    });
    writer.tags();
  });
  writer.tags();
}, readPartitionErrors);

/** EndTxn v3: commits or aborts the open transaction. */
export const END_TXN: Api<TransactionIdentity & { commit: boolean }, number> = flexible(
  "EndTxn",
  26,
  3,
  (writer, args) => {
    writeTransaction(writer, args);
    writer.bool(args.commit).tags();
  },
  readErrorCode,
);

// Offsets and topics

/** OffsetFetch v7: one partition's committed offset (-1: none), waiting for stable offsets. */
export const OFFSET_FETCH: Api<
  { group: string; topic: string; partition: number },
  { errorCode: number; partitionErrorCode: number; offset: bigint }
> = flexible("OffsetFetch", 9, 7, (writer, { group, topic, partition }) => {
  writer.compactString(group);
  writer.compactArray([topic], (name) => {
    writer.compactString(name).compactArray([partition], (index) => writer.int32(index)).tags();
  });
  writer.bool(true); // require_stable
  writer.tags();
}, (reader) => {
  reader.int32(); // throttle_time_ms
  let offset = -1n;
  let partitionErrorCode = 0;
  reader.compactArray(() => {
    reader.compactString(); // name
    reader.compactArray(() => {
      reader.int32(); // partition_index
      offset = reader.int64();
      reader.int32(); // committed_leader_epoch
      reader.compactString(); // metadata
      partitionErrorCode = reader.int16();
      reader.tags();
    });
    reader.tags();
  });
  const errorCode = reader.int16();
  reader.tags();
  return { errorCode, partitionErrorCode, offset };
});

/** CreateTopics v5. Each topic's answer: its error code and message. */
export const CREATE_TOPICS: Api<
  {
    topics: readonly string[];
    partitions: number;
    replicationFactor: number;
    config: Record<string, string>;
    timeoutMs: number;
  },
  { topic: string; errorCode: number; errorMessage: string | null }[]
> = flexible("CreateTopics", 19, 5, (writer, args) => {
  writer.compactArray(args.topics, (topic) => {
    writer.compactString(topic).int32(args.partitions).int16(args.replicationFactor);
    writer.compactArray([], () => {}); // assignments
    writer.compactArray(Object.entries(args.config), ([name, value]) => {
      writer.compactString(name).compactString(value).tags();
    });
    writer.tags();
  });
  writer.int32(args.timeoutMs).bool(false).tags(); // validate_only
}, (reader) => {
  reader.int32(); // throttle_time_ms
  const results = reader.compactArray(() => {
    const topic = reader.compactString() ?? "";
    const errorCode = reader.int16();
    const errorMessage = reader.compactString();
    reader.int32(); // num_partitions
    reader.int16(); // replication_factor
    reader.compactArray(() => { // configs
      reader.compactString();
      reader.compactString();
      reader.bool();
      reader.int8();
      reader.bool();
      reader.tags();
    });
    reader.tags();
    return { topic, errorCode, errorMessage };
  });
  reader.tags();
  return results;
});

// SASL

/** SaslHandshake v1 (not flexible): the mechanism, answered with those the broker has. */
export const SASL_HANDSHAKE: Api<string, { errorCode: number; mechanisms: string[] }> = {
  name: "SaslHandshake",
  key: 17,
  version: 1,
  taggedRequest: false,
  taggedResponse: false,
  write(writer, mechanism) {
    writer.string(mechanism);
  },
  read(reader) {
    const errorCode = reader.int16();
    const mechanisms = reader.array(() => reader.string() ?? "");
    return { errorCode, mechanisms };
  },
};

/** SaslAuthenticate v2: one step of the mechanism's exchange. */
export const SASL_AUTHENTICATE: Api<
  Uint8Array,
  {
    errorCode: number;
    errorMessage: string | null;
    authBytes: Uint8Array;
    sessionLifetimeMs: bigint;
  }
> = flexible("SaslAuthenticate", 36, 2, (writer, bytes) => {
  writer.compactBytes(bytes).tags();
}, (reader) => {
  const errorCode = reader.int16();
  const errorMessage = reader.compactString();
  const authBytes = reader.compactBytes() ?? new Uint8Array(0);
  const sessionLifetimeMs = reader.int64();
  reader.tags();
  return { errorCode, errorMessage, authBytes, sessionLifetimeMs };
});

// Produce

/** A partition the broker refused in a Produce answer. */
export interface ProduceRefusal {
  topic: string;
  partition: number;
  errorCode: number;
  errorMessage: string | null;
}

/** Produce's answer (versions 9–11, alike up to tagged fields): the partitions refused. */
export function readProduceResponse(reader: ResponseReader): ProduceRefusal[] {
  const refused: ProduceRefusal[] = [];
  reader.compactArray(() => {
    const topic = reader.compactString() ?? "";
    reader.compactArray(() => {
      const partition = reader.int32();
      const errorCode = reader.int16();
      reader.int64(); // base_offset
      reader.int64(); // log_append_time_ms
      reader.int64(); // log_start_offset
      const recordErrors = reader.compactArray(() => {
        reader.int32(); // batch_index
        const message = reader.compactString();
        reader.tags();
        return message;
      });
      const errorMessage = reader.compactString();
      reader.tags(); // v10: current_leader
      if (errorCode !== 0) {
        const detail = [errorMessage, ...recordErrors].filter((m) => m).join("; ");
        refused.push({ topic, partition, errorCode, errorMessage: detail || null });
      }
    });
    reader.tags();
  });
  reader.int32(); // throttle_time_ms
  reader.tags(); // v10: node_endpoints
  return refused;
}
