/**
 * The producer's ordering of produce requests against a scripted stand-in for the client's
 * metadata and the produce connections (the real broker is in tests/kafka_*_test.ts, where this only shows
 * by chance): a partition's first batch under a producer goes alone, even through an in-place
 * retry, and the sends after it wait; a broker that is away is waited out with the same
 * producer id and sequence numbers (no duplicates), while refusals of the sequence numbers
 * give up after a few attempts.
 */

import assert from "node:assert/strict";
import { silentLogger } from "../../ops/log.ts";
import type { KafkaSinkConfig } from "../../config/mod.ts";
import { clientRetryDelay, IN_PLACE_RETRIES, KafkaProducer, type OutMessage } from "./producer.ts";
import { kGetApi, MultipleErrors, ProtocolError } from "npm:@platformatic/kafka@2.12.1";

/** A produce request the stand-in connection took: what it carries, and how to answer it. */
interface Request {
  /** The values of its records found in the request's bytes, of `VALUES`. */
  values: string[];
  answer(error?: Error): void;
}

const VALUES = ["first-of-p0", "second-of-p0", "first-of-p1"];

function standIn() {
  const requests: Request[] = [];
  /** Each request's bytes as sent. */
  const bodies: number[][] = [];
  const broker = { nodeId: 1, host: "fake", port: 9092 };
  const topic = {
    partitionsCount: 2,
    partitions: [{ leader: 1 }, { leader: 1 }],
  };
  const connection = {
    broken: false,
    headerRoom: 0,
    produce(
      _version: number,
      body: Uint8Array,
      _parser: unknown,
      _noResponse: boolean,
      written: () => void,
    ): Promise<void> {
      bodies.push([...body]);
      written();
      const bytes = new TextDecoder("latin1").decode(body);
      return new Promise((resolve, reject) => {
        requests.push({
          values: VALUES.filter((value) => bytes.includes(value)),
          answer: (error) => error ? reject(error) : resolve(),
        });
      });
    },
    close() {},
  };
  const client = {
    producerId: 7n,
    producerEpoch: 0,
    metadata: () =>
      Promise.resolve({
        brokers: new Map([[1, broker]]),
        topics: new Map([["t", topic]]),
      }),
    [kGetApi]: (_name: string, callback: (error: null, api: { version: number }) => void) =>
      callback(null, { version: 11 }),
    close: () => Promise.resolve(),
  };
  const config = { brokers: ["fake:9092"], acks: "all", compression: "none" } as KafkaSinkConfig;
  // The constructor is private: connect() makes the real client, which this stands in for.
  const Made = KafkaProducer as unknown as new (...args: unknown[]) => KafkaProducer;
  const producer = new Made(
    client,
    config,
    null,
    30_000,
    silentLogger,
    () => Promise.resolve(connection),
  );
  return { producer, requests, bodies };
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

/** A connection failure as the client reports it (a broker away). */
const closed = () => Object.assign(new Error("Connection closed"), { code: "PLT_KFK_NETWORK" });

/** Waits until the stand-in holds `n` requests. */
async function requestsReach(requests: Request[], n: number): Promise<void> {
  for (let i = 0; i < 500 && requests.length < n; i++) await settle(10);
  assert.equal(requests.length, n, `the producer sent ${requests.length} requests, not ${n}`);
}

Deno.test("producer: a broker away for longer than the bounded retries is waited out with the same sequence numbers, and retryError says why meanwhile", async () => {
  const { producer, requests, bodies } = standIn();
  const sent = producer.send([message("first-of-p0", 0)]);
  let outcome = "pending";
  sent.then(() => outcome = "acknowledged", (error) => outcome = `failed: ${error.message}`);
  await requestsReach(requests, 1);
  assert.equal(producer.retryError, null);
  // More failures than IN_PLACE_RETRIES: each attempt finds the broker gone.
  const failures = IN_PLACE_RETRIES + 3;
  for (let i = 1; i <= failures; i++) {
    requests[i - 1]!.answer(closed());
    await requestsReach(requests, i + 1);
    assert.equal(outcome, "pending", `the send gave up after ${i} failures`);
    // /health says failing once the retries outlast what a leader moving takes.
    if (i <= IN_PLACE_RETRIES) assert.equal(producer.retryError, null);
    else assert.match(producer.retryError ?? "", /Connection closed/);
  }
  requests[failures]!.answer();
  await sent;
  assert.equal(producer.retryError, null, "retryError is cleared once the send went through");
  // Every attempt carried the same batch from its producer id on (epoch, sequence numbers,
  // records; the timestamp before it is the attempt's), so a broker that wrote it before going
  // away writes it once.
  const fromProducerId = bodies.map((body) => {
    const at = body.join(",").indexOf("0,0,0,0,0,0,0,7,0,0,0,0,0,0");
    assert.ok(at > 0, "the batch carries producer id 7, epoch 0, base sequence 0");
    return body.join(",").slice(at);
  });
  assert.equal(fromProducerId.length, failures + 1);
  assert.equal(new Set(fromProducerId).size, 1);
});

Deno.test("producer: the broker refusing the sequence numbers ends the in-place retries (the sink goes on with a new producer)", async () => {
  const { producer, requests } = standIn();
  const sent = producer.send([message("first-of-p0", 0)]);
  sent.catch(() => {}); // awaited below
  for (let i = 0; i <= IN_PLACE_RETRIES; i++) {
    await requestsReach(requests, i + 1);
    requests[i]!.answer(
      Object.assign(new Error("The broker received an out of order sequence number."), {
        apiId: "OUT_OF_ORDER_SEQUENCE_NUMBER",
      }),
    );
  }
  await assert.rejects(sent, /out of order sequence number/);
  assert.equal(requests.length, IN_PLACE_RETRIES + 1);
  assert.equal(producer.retryError, null);
  // The sends after it fail at once: the producer's sequence numbers have a gap.
  await assert.rejects(producer.send([message("second-of-p0", 0)]), /new producer/);
});

Deno.test("producer: the client asks a coordinator still ending a transaction again after 10 and 20 ms, then backs off as for any other error", () => {
  const delays = (error: Error) =>
    [1, 2, 3, 4, 5].map((attempt) =>
      clientRetryDelay(null, "addPartitionsToTxn", attempt, 5, error)
    );
  const concurrent = new ProtocolError("CONCURRENT_TRANSACTIONS");
  assert.deepEqual(delays(concurrent), [10, 20, 400, 800, 1_600]);
  // As the client reports it: the protocol error inside the request's errors.
  assert.deepEqual(delays(new MultipleErrors("failed", [concurrent])), [10, 20, 400, 800, 1_600]);
  assert.deepEqual(delays(new ProtocolError("COORDINATOR_LOAD_IN_PROGRESS")), [
    100,
    200,
    400,
    800,
    1_600,
  ]);
});
