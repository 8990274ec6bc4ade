/**
 * The sink's Produce requests (API key 0), written in one buffer: the request's fields and
 * each partition's RecordBatch (`record_batch.ts`) in place, after room for the request header
 * that `connection.ts` fills. `producer.ts` sends them on the sink's own connections, up to
 * five in flight, as Java's idempotent producer does (`@platformatic/kafka`'s `send`, which the
 * sink used before, kept one produce request in flight per connection when idempotent, which left
 * the sink waiting on each acknowledgement).
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
 * single 0). `produce_test.ts` holds the bytes equal to `@platformatic/kafka`'s encoder's.
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

/**
 * Writes Produce requests into one buffer it keeps (as large as the largest request), so a
 * sink that hands each request on before writing the next allocates none.
 */
export class ProduceRequestWriter extends RecordBatchWriter {
  /**
   * The body of a Produce request (what follows the request header) for `topics`: each
   * partition's records in one RecordBatch, numbered from its `baseSequence`, after
   * `headerRoom` bytes left unwritten. A view of this writer's buffer, valid until its next
   * request.
   */
  request(topics: readonly TopicRecords[], options: ProduceOptions, headerRoom = 0): Uint8Array {
    this.reset();
    const { compression, timestamp } = options;
    // Uncompressed batches go straight into the request: their size is known up front.
    const sizes: number[] = [];
    // The request's size, about (more than it takes; compressed batches are sized as they come):
    // the buffer is made that big at once, not doubled past it (a 1 MB request in a 2 MiB
    // buffer; five are kept for the requests in flight).
    let about = headerRoom + 64 + (options.transactionalId?.length ?? 0) * 3;
    for (const { topic, partitions } of topics) {
      about += 16 + topic.length * 3;
      for (const { records } of partitions) {
        const size = compression === undefined ? batchSize(records, timestamp) : 0;
        sizes.push(size);
        about += 32 + size;
      }
    }
    this.reserveAbout(about);
    // Room for what goes before the body on the wire (the connection's request header), so
    // the whole request leaves in one write from this buffer.
    this.end += headerRoom;
    this.#compactString(options.transactionalId);
    this.int16(options.acks);
    this.int32(options.timeoutMs);
    this.#varint(topics.length + 1);
    let n = 0;
    for (const { topic, partitions } of topics) {
      this.#compactString(topic);
      this.#varint(partitions.length + 1);
      for (const { partition, baseSequence, records } of partitions) {
        this.int32(partition);
        const batch = {
          producerId: options.producerId,
          producerEpoch: options.producerEpoch,
          baseSequence,
          transactional: options.transactionalId !== null,
          timestamp,
          compression,
        };
        if (compression === undefined) {
          this.#varint(sizes[n]! + 1);
          this.reserve(sizes[n]!);
          this.writeBatch(records, batch);
        } else {
          compressedScratch.reset(); // also after a compression that threw
          compressedScratch.writeBatch(records, batch);
          const bytes = compressedScratch.bytes();
          this.reserveAbout(bytes.byteLength + 64);
          this.#varint(bytes.byteLength + 1);
          this.append(bytes);
          compressedScratch.reset();
        }
        n++;
        this.byte(0); // the partition's tagged fields
      }
      this.byte(0); // the topic's tagged fields
    }
    this.byte(0); // the request's tagged fields
    return this.bytes();
  }

  /** A COMPACT_NULLABLE_STRING. */
  #compactString(text: string | null): void {
    if (text === null) {
      this.#varint(0);
      return;
    }
    const bytes = encoder.encode(text);
    this.#varint(bytes.byteLength + 1);
    this.append(bytes);
  }

  /** An unsigned varint. */
  #varint(value: number): void {
    this.reserve(5);
    this.unsignedVarint(value);
  }
}

/** Compressed batches are written here first: their size is only known afterwards. */
const compressedScratch = new RecordBatchWriter();

/**
 * The body of a Produce request for `topics`, in a buffer of its own (see
 * {@linkcode ProduceRequestWriter.request}).
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
  return new ProduceRequestWriter(1024).request(topics, options);
}

/**
 * The next sequence number after `count` records from `sequence`: sequence numbers wrap to 0
 * after 2^31 - 1, as the broker expects.
 */
export function nextSequence(sequence: number, count: number): number {
  return (sequence + count) % 0x80000000;
}
