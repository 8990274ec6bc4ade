/**
 * The sink's Produce requests against the Kafka client's own encoder (`produceV11.createRequest`
 * of `@platformatic/kafka`, whose requests real brokers take in the Kafka tests): byte for byte
 * equal, for several topics and partitions, sequence numbers, transactions, acks and every
 * compression codec.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { compressionsAlgorithms, produceV11 } from "npm:@platformatic/kafka@2.12.1";
import {
  nextSequence,
  produceRequest,
  ProduceRequestWriter,
  type TopicRecords,
} from "./produce.ts";
import type { BatchCompression } from "./record_batch.ts";
import { headerBytes } from "./producer.ts";
import { joinedBytes } from "../../formats/byte_writer.ts";

const text = (value: string) => new TextEncoder().encode(value);
const TIMESTAMP = 1_700_000_000_000;

type Codec = "gzip" | "snappy" | "lz4" | "zstd";

/** The client's request body for the same records. */
async function clientRequest(
  topics: readonly TopicRecords[],
  options: {
    transactionalId: string | null;
    acks: number;
    producerId: bigint;
    producerEpoch: number;
    codec?: Codec;
  },
): Promise<Uint8Array> {
  const messages = topics.flatMap(({ topic, partitions }) =>
    partitions.flatMap(({ partition, records }) =>
      records.map((record) => ({
        topic,
        partition,
        key: record.key === null ? undefined : Buffer.from(record.key),
        value: record.value === null ? undefined : Buffer.from(joinedBytes(record.value)),
        headers: record.headers === undefined ? new Map() : new Map(
          [...record.headers as ReadonlyMap<Uint8Array, Uint8Array>].map((
            [name, value],
          ) => [Buffer.from(name), Buffer.from(value)]),
        ),
        timestamp: BigInt(TIMESTAMP),
      }))
    )
  );
  const sequences = new Map<string, number>(
    topics.flatMap(({ topic, partitions }) =>
      partitions.map((p) => [`${topic}:${p.partition}`, p.baseSequence] as const)
    ),
  );
  const writer = await produceV11.createRequestAsync(
    options.acks as never,
    30_000,
    messages as never,
    {
      producerId: options.producerId,
      producerEpoch: options.producerEpoch,
      transactionalId: options.transactionalId ?? undefined,
      compression: options.codec ?? "none",
      sequences: { getWithDefault: (key: string) => sequences.get(key) } as never,
    } as never,
  );
  return new Uint8Array(writer.buffer);
}

function codec(name: Codec): BatchCompression {
  const algorithm = compressionsAlgorithms[name];
  return {
    attribute: algorithm.bitmask,
    compress: (bytes) => algorithm.compressSync(Buffer.from(bytes)),
  };
}

const headers = new Map([
  [headerBytes("spillway.lsn"), headerBytes("16/B374D848")],
  [headerBytes("spillway.xid"), headerBytes("741")],
]);

const TOPICS: TopicRecords[] = [
  {
    topic: "cdc.public.orders",
    // Partitions in ascending order: the client writes them so (in any order the broker takes
    // them alike).
    partitions: [
      { partition: 0, baseSequence: 2_147_483_600, records: [{ key: null, value: text("v") }] },
      {
        partition: 2,
        baseSequence: 41,
        records: Array.from({ length: 200 }, (_, i) => ({
          key: text(`{"id":${i}}`),
          value: i % 50 === 7 ? null : text(`{"after":{"id":${i},"note":"${"x".repeat(i * 3)}"}}`),
          headers,
        })),
      },
    ],
  },
  {
    topic: "cdc.public.ünïcode",
    partitions: [{ partition: 1, baseSequence: 0, records: [{ key: text("k"), value: text("") }] }],
  },
];

Deno.test("produce request: byte for byte the Kafka client's, idempotent, across topics and partitions", async () => {
  const options = { transactionalId: null, acks: -1, producerId: 4242n, producerEpoch: 3 };
  const ours = produceRequest(TOPICS, { ...options, timeoutMs: 30_000, timestamp: TIMESTAMP });
  assert.deepEqual(ours, await clientRequest(TOPICS, options));
});

Deno.test("produce request: room left for the connection's header, before the same body, and the writer's buffer used again", () => {
  const writer = new ProduceRequestWriter(16);
  const options = {
    transactionalId: null,
    acks: -1,
    producerId: 4242n,
    producerEpoch: 3,
    timeoutMs: 30_000,
    timestamp: TIMESTAMP,
  };
  const body = produceRequest(TOPICS, options);
  const first = writer.request(TOPICS, options, 23);
  assert.equal(first.byteLength, 23 + body.byteLength);
  assert.deepEqual(first.subarray(23), body);
  const again = writer.request(TOPICS, options, 23);
  assert.equal(again.buffer, first.buffer, "the second request is written in the same buffer");
  assert.deepEqual(again.subarray(23), body);
});

/** A request writer that counts how often its buffer had to grow past its up-front estimate. */
class WatchedWriter extends ProduceRequestWriter {
  grownPastEstimate = 0;
  protected override reserve(bytes: number): void {
    const before = this.buffer;
    super.reserve(bytes);
    if (this.buffer !== before) this.grownPastEstimate++;
  }
  get capacity(): number {
    return this.buffer.byteLength;
  }
}

Deno.test("produce request: a writer's buffer is made the request's size up front, not doubled past it", () => {
  const options = {
    transactionalId: "spillway-ünïcode",
    acks: -1,
    producerId: 1n,
    producerEpoch: 0,
    timeoutMs: 30_000,
    timestamp: TIMESTAMP,
  };
  // 1,100 records of 1,000 bytes: just past 1 MiB, where doubling would make 2 MiB.
  const big = Array.from({ length: 1_100 }, (_, i) => ({
    key: text(`{"id":${i}}`),
    value: new Uint8Array(1_000).fill(0x61),
    headers,
  }));
  const shapes: TopicRecords[][] = [
    TOPICS,
    [{ topic: "cdc.public.orders", partitions: [{ partition: 0, baseSequence: 0, records: big }] }],
    [
      { topic: "a", partitions: [{ partition: 5, baseSequence: 9, records: big.slice(0, 3) }] },
      {
        topic: "ü".repeat(100),
        partitions: [
          { partition: 0, baseSequence: 0, records: [{ key: null, value: null }] },
          { partition: 1, baseSequence: 1, records: big.slice(0, 700) },
        ],
      },
    ],
  ];
  // Compressed batches are sized as they come: stored as they are here, so as big as plain ones.
  const stored: BatchCompression = { attribute: 1, compress: (bytes) => bytes.slice() };
  for (const [headerRoom, compression] of [[0], [23], [63], [23, stored]] as const) {
    for (const topics of shapes) {
      // Two new writers (64 KiB and 16 bytes at first), each used for the biggest request
      // before this one: grown from their first size, and used again.
      for (const writer of [new WatchedWriter(), new WatchedWriter(16)]) {
        const withCompression = { ...options, compression };
        writer.request(shapes[1]!, withCompression, headerRoom);
        const request = writer.request(topics, withCompression, headerRoom);
        assert.deepEqual(request.subarray(headerRoom), produceRequest(topics, withCompression));
        assert.equal(writer.grownPastEstimate, 0, "the estimate covered every request");
        assert.ok(
          writer.capacity <= 1_200_000,
          `buffer ${writer.capacity} for requests of at most 1.15 MB`,
        );
      }
    }
  }
});

Deno.test("produce request: byte for byte the client's in a transaction, and with acks 1", async () => {
  const transactional = {
    transactionalId: "spillway-orders",
    acks: -1,
    producerId: 7n,
    producerEpoch: 0,
  };
  assert.deepEqual(
    produceRequest(TOPICS, { ...transactional, timeoutMs: 30_000, timestamp: TIMESTAMP }),
    await clientRequest(TOPICS, transactional),
  );
  const plain = { transactionalId: null, acks: 1, producerId: -1n, producerEpoch: -1 };
  assert.deepEqual(
    produceRequest(TOPICS, { ...plain, timeoutMs: 30_000, timestamp: TIMESTAMP }),
    await clientRequest(TOPICS, plain),
  );
});

Deno.test("produce request: byte for byte the client's with each compression codec", async () => {
  for (const name of ["gzip", "snappy", "lz4", "zstd"] as const) {
    const options = { transactionalId: null, acks: -1, producerId: 9n, producerEpoch: 1 };
    const ours = produceRequest(TOPICS, {
      ...options,
      timeoutMs: 30_000,
      timestamp: TIMESTAMP,
      compression: codec(name),
    });
    assert.deepEqual(ours, await clientRequest(TOPICS, { ...options, codec: name }), name);
  }
});

Deno.test("produce request: sequence numbers wrap to 0 after 2^31 - 1, as the broker's", () => {
  assert.equal(nextSequence(0, 5), 5);
  assert.equal(nextSequence(2_147_483_645, 2), 2_147_483_647);
  assert.equal(nextSequence(2_147_483_645, 3), 0);
  assert.equal(nextSequence(2_147_483_647, 10), 9);
});
