/**
 * The producer's ordering of produce requests against a scripted stand-in for the client's
 * metadata and connections (the real broker is in tests/kafka_*_test.ts, where this only shows
 * by chance): a partition's first batch under a producer goes alone, even through an in-place
 * retry, and the sends after it wait.
 */

import assert from "node:assert/strict";
import { silentLogger } from "../../ops/log.ts";
import type { KafkaSinkConfig } from "../../config/mod.ts";
import { KafkaProducer, type OutMessage } from "./producer.ts";
import { kGetApi, kGetConnection } from "npm:@platformatic/kafka@2.12.1";

/** A produce request the stand-in connection took: what it carries, and how to answer it. */
interface Request {
  /** The values of its records found in the request's bytes, of `VALUES`. */
  values: string[];
  answer(error?: Error): void;
}

const VALUES = ["first-of-p0", "second-of-p0", "first-of-p1"];

function standIn() {
  const requests: Request[] = [];
  const broker = { nodeId: 1, host: "fake", port: 9092 };
  const topic = {
    partitionsCount: 2,
    partitions: [{ leader: 1 }, { leader: 1 }],
  };
  const connection = {
    send(
      _apiKey: number,
      _version: number,
      createPayload: () => { buffer: Uint8Array },
      _parser: unknown,
      _requestTagged: boolean,
      _responseTagged: boolean,
      callback: (error: Error | null, response?: unknown) => void,
    ) {
      const bytes = new TextDecoder("latin1").decode(createPayload().buffer);
      requests.push({
        values: VALUES.filter((value) => bytes.includes(value)),
        answer: (error) => callback(error ?? null, {}),
      });
    },
  };
  const data = {
    metadata: () =>
      Promise.resolve({
        brokers: new Map([[1, broker]]),
        topics: new Map([["t", topic]]),
      }),
    [kGetApi]: (_name: string, callback: (error: null, api: { version: number }) => void) =>
      callback(null, { version: 11 }),
    [kGetConnection]: (_broker: unknown, callback: (error: null, c: unknown) => void) =>
      callback(null, connection),
    close: () => Promise.resolve(),
  };
  const client = { producerId: 7n, producerEpoch: 0, close: () => Promise.resolve() };
  const config = { brokers: ["fake:9092"], acks: "all", compression: "none" } as KafkaSinkConfig;
  // The constructor is private: connect() makes the real client, which this stands in for.
  const Made = KafkaProducer as unknown as new (...args: unknown[]) => KafkaProducer;
  const producer = new Made(client, data, config, null, 30_000, silentLogger);
  return { producer, requests };
}

const message = (value: string, partition: number): OutMessage => ({
  topic: "t",
  key: null,
  value: new TextEncoder().encode(value),
  partition,
});

/** Lets the producer's promise chains and timers run. */
const settle = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("producer: a partition's first batch goes alone; a later send to that partition waits until it is acknowledged", async () => {
  const { producer, requests } = standIn();
  const first = producer.send([message("first-of-p0", 0)]);
  const other = producer.send([message("first-of-p1", 1)]);
  await settle();
  // Different partitions: both first batches go out at once.
  assert.deepEqual(requests.map((r) => r.values), [["first-of-p0"], ["first-of-p1"]]);
  const second = producer.send([message("second-of-p0", 0)]);
  await settle(20);
  assert.equal(requests.length, 2, "the partition's second batch waits for its first");
  requests[0]!.answer();
  await first;
  await settle();
  assert.deepEqual(requests.map((r) => r.values), [
    ["first-of-p0"],
    ["first-of-p1"],
    ["second-of-p0"],
  ]);
  requests[1]!.answer();
  requests[2]!.answer();
  await Promise.all([other, second]);
});

Deno.test("producer: a first batch refused for a passing reason is sent again before anything after it on its partition", async () => {
  const { producer, requests } = standIn();
  const first = producer.send([message("first-of-p0", 0)]);
  await settle();
  const second = producer.send([message("second-of-p0", 0)]);
  await settle();
  assert.equal(requests.length, 1);
  // The leader was not ready (a topic just created): refused, then sent again in place.
  requests[0]!.answer(new Error("NOT_LEADER_OR_FOLLOWER: this server is not the leader"));
  for (let i = 0; i < 100 && requests.length < 2; i++) await settle(10);
  assert.deepEqual(requests.map((r) => r.values), [["first-of-p0"], ["first-of-p0"]]);
  await settle(20);
  assert.equal(requests.length, 2, "the second batch still waits for the first");
  requests[1]!.answer();
  await first;
  await settle();
  assert.deepEqual(requests[2]?.values, ["second-of-p0"]);
  requests[2]!.answer();
  await second;
});
