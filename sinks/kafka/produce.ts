/**
 * The sink's Produce requests (API key 0), written in one buffer: the request's fields and
 * each partition's RecordBatch (`record_batch.ts`) in place. `producer.ts` sends them on the
 * client's connections, up to five in flight, as Java's idempotent producer does (the client's
 * own `send` keeps one produce request in flight per connection when idempotent, which left the
 * sink waiting on each acknowledgement).
 *
 * Versions 9 to 11, the flexible ones (Kafka 2.8 and later), whose requests are alike:
 *
 *     transactional_id COMPACT_NULLABLE_STRING, acks INT16, timeout_ms INT32,
 *     topic_data COMPACT_ARRAY of (name COMPACT_STRING,
 *       partition_data COMPACT_ARRAY of (index INT32, records COMPACT_RECORDS, TAG_BUFFER),
 *       TAG_BUFFER),
 *     TAG_BUFFER
 *
 * (a compact length is an unsigned varint of length + 1, 0 for null; an empty TAG_BUFFER is a
 * single 0). `produce_test.ts` holds the bytes equal to the client's own encoder's.
 *
 * @module
 */

import {
  type BatchCompression,
  type BatchRecord,
  batchSize,
  RecordBatchWriter,
} from "./record_batch.ts";

/** The Produce API's key. */
export const PRODUCE_API_KEY = 0;
/** The versions {@linkcode produceRequest} writes: the flexible ones, alike in their request. */
export const PRODUCE_VERSIONS = { min: 9, max: 11 } as const;

/** One partition's records in a request, and the sequence number of the first. */
export interface PartitionRecords {
  partition: number;
  /** -1 for a producer that is not idempotent. */
  baseSequence: number;
  records: BatchRecord[];
}

/** One topic's partitions in a request. */
export interface TopicRecords {
  topic: string;
  partitions: PartitionRecords[];
}

/** What a request says besides its records. */
export interface ProduceOptions {
  /** Set when the producer is transactional: the batches are then transactional too. */
  transactionalId: string | null;
  /** -1 (all), 0 or 1. */
  acks: number;
  timeoutMs: number;
  /** -1 for a producer that is not idempotent. */
  producerId: bigint;
  /** -1 for a producer that is not idempotent. */
  producerEpoch: number;
  /** Milliseconds since the epoch: the records' timestamp. */
  timestamp: number;
  compression?: BatchCompression;
}

const encoder = new TextEncoder();

/** A request's bytes, written front to back into a buffer sized for it. */
class ProduceRequestWriter extends RecordBatchWriter {
  /** A COMPACT_NULLABLE_STRING. */
  compactString(text: string | null): void {
    if (text === null) {
      this.varint(0);
      return;
    }
    const bytes = encoder.encode(text);
    this.varint(bytes.byteLength + 1);
    this.append(bytes);
  }

  /** An unsigned varint. */
  varint(value: number): void {
    this.reserve(5);
    this.unsignedVarint(value);
  }

  writeInt16(value: number): void {
    this.int16(value);
  }

  writeInt32(value: number): void {
    this.int32(value);
  }
}

/** Compressed batches are written here first: their size is only known afterwards. */
const compressedScratch = new RecordBatchWriter();

/**
 * The body of a Produce request (what follows the request header) for `topics`: each
 * partition's records in one RecordBatch, numbered from its `baseSequence`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { produceRequest } from "./produce.ts";
 * const body = produceRequest(
 *   [{ topic: "t", partitions: [{ partition: 0, baseSequence: 0, records: [{ key: null, value: null }] }] }],
 *   { transactionalId: null, acks: -1, timeoutMs: 30_000, producerId: 7n, producerEpoch: 0, timestamp: 0 },
 * );
 * assert.deepEqual([...body.subarray(0, 7)], [0, 0xff, 0xff, 0, 0, 0x75, 0x30]);
 * ```
 */
export function produceRequest(
  topics: readonly TopicRecords[],
  options: ProduceOptions,
): Uint8Array {
  const { compression, timestamp } = options;
  // Uncompressed batches go straight into the request, whose size is then known up front.
  let estimate = 32 + (options.transactionalId?.length ?? 0) * 3;
  const sizes: number[] = [];
  for (const { topic, partitions } of topics) {
    estimate += 16 + topic.length * 3;
    for (const { records } of partitions) {
      const size = compression === undefined ? batchSize(records, timestamp) : 0;
      sizes.push(size);
      estimate += 16 + size;
    }
  }
  const writer = new ProduceRequestWriter(estimate);
  writer.compactString(options.transactionalId);
  writer.writeInt16(options.acks);
  writer.writeInt32(options.timeoutMs);
  writer.varint(topics.length + 1);
  let n = 0;
  for (const { topic, partitions } of topics) {
    writer.compactString(topic);
    writer.varint(partitions.length + 1);
    for (const { partition, baseSequence, records } of partitions) {
      writer.writeInt32(partition);
      const batch = {
        producerId: options.producerId,
        producerEpoch: options.producerEpoch,
        baseSequence,
        transactional: options.transactionalId !== null,
        timestamp,
        compression,
      };
      if (compression === undefined) {
        writer.varint(sizes[n]! + 1);
        writer.writeBatch(records, batch);
      } else {
        compressedScratch.writeBatch(records, batch);
        const bytes = compressedScratch.bytes();
        writer.varint(bytes.byteLength + 1);
        writer.append(bytes);
        compressedScratch.reset();
      }
      n++;
      writer.byte(0); // the partition's tagged fields
    }
    writer.byte(0); // the topic's tagged fields
  }
  writer.byte(0); // the request's tagged fields
  return writer.bytes();
}

/**
 * The next sequence number after `count` records from `sequence`: sequence numbers wrap to 0
 * after 2^31 - 1, as the broker expects.
 */
export function nextSequence(sequence: number, count: number): number {
  return (sequence + count) % 0x80000000;
}
