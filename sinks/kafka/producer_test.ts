/**
 * The producer's ordering of produce requests against a scripted stand-in for the cluster's
 * metadata and the produce connections (the real broker is in tests/kafka_*_test.ts, where this only shows
 * by chance): a partition's first batch under a producer goes alone, even through an in-place
 * retry, and the sends after it wait; a broker that is away is waited out with the same
 * producer id and sequence numbers (no duplicates), while refusals of the sequence numbers
 * give up after a few attempts.
 */

import assert from "node:assert/strict";
import { silentLogger } from "../../ops/log.ts";
import type { KafkaSinkConfig } from "../../config/mod.ts";
import { retryDelay } from "./cluster.ts";
import {
  type Cluster,
  FAILING_AFTER_MS,
  IN_PLACE_RETRIES,
  KafkaProducer,
  type OutMessage,
} from "./producer.ts";
import { KafkaProtocolError } from "./wire.ts";

/** A produce request the stand-in connection took: what it carries, and how to answer it. */
interface Request {
  /** The values of its records found in the request's bytes, of `VALUES`. */
  values: string[];
  answer(error?: Error): void;
}

const VALUES = ["first-of-p0", "second-of-p0", "first-of-p1"];

/** The stand-in cluster's metadata: broker 1 leads both partitions of topic "t". */
const standInMetadata = (() =>
  Promise.resolve({
    brokers: new Map([[1, { nodeId: 1, host: "fake", port: 9092 }]]),
    topics: new Map([["t", { partitions: [{ leader: 1 }, { leader: 1 }] }]]),
  })) as Cluster["metadata"];

/**
 * A producer over stand-ins; `transactional`: with a transactional id, and `cluster` replaces
 * the stand-in cluster's calls.
 */
function standIn(transactional = false, overrides: Partial<Cluster> = {}) {
  const requests: Request[] = [];
  /** Each request's bytes as sent. */
  const bodies: number[][] = [];
  const connection = {
    broken: false,
    headerRoom: 0,
    produceVersion: 11,
    produce(
      _version: number,
      body: Uint8Array,
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
  const cluster = {
    brokers: ["fake:9092"],
    metadata: standInMetadata,
    close: () => {},
    ...overrides,
  } as Partial<Cluster>;
  const config = { brokers: ["fake:9092"], acks: "all", compression: "none" } as KafkaSinkConfig;
  // The constructor is private: connect() makes the real cluster, which this stands in for.
  const Made = KafkaProducer as unknown as new (...args: unknown[]) => KafkaProducer;
  const producer = new Made(
    cluster,
    { producerId: 7n, producerEpoch: 0 },
    config,
    undefined,
    transactional ? "spillway-t" : null,
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

/** A connection failure as the connection reports it (a broker away). */
const closed = () => Object.assign(new Error("Connection closed"), { code: "NETWORK" });

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

Deno.test("producer: a retry whose attempt hangs (a broker that takes connections and does not answer) says why after FAILING_AFTER_MS, within its first attempts", async () => {
  let metadataCalls = 0;
  let release: () => void = () => {};
  const { producer, requests } = standIn(false, {
    metadata: () => {
      metadataCalls++;
      if (metadataCalls === 1) return standInMetadata([], false);
      // The retry's metadata read waits (as for a request timeout); released at the end.
      return new Promise((_resolve, reject) => release = () => reject(closed()));
    },
  });
  const sent = producer.send([message("first-of-p0", 0)]);
  sent.catch(() => {});
  await requestsReach(requests, 1);
  requests[0]!.answer(closed());
  await settle(FAILING_AFTER_MS / 2);
  assert.equal(metadataCalls, 2, "the retry's metadata read is under way");
  assert.equal(producer.retryError, null, "not failing yet: a leader moving mends within this");
  await settle(FAILING_AFTER_MS / 2 + 200);
  assert.equal(metadataCalls, 2, "still the first retry's read");
  assert.match(producer.retryError ?? "", /Connection closed/);
  release();
  await producer.close();
});

Deno.test("producer: the broker refusing the sequence numbers ends the in-place retries (the sink goes on with a new producer)", async () => {
  const { producer, requests } = standIn();
  const sent = producer.send([message("first-of-p0", 0)]);
  sent.catch(() => {}); // awaited below
  for (let i = 0; i <= IN_PLACE_RETRIES; i++) {
    await requestsReach(requests, i + 1);
    requests[i]!.answer(
      new KafkaProtocolError(45, "producing to t[0]", "out of order sequence number"),
    );
  }
  await assert.rejects(sent, /OUT_OF_ORDER_SEQUENCE_NUMBER producing to t\[0\]/);
  assert.equal(requests.length, IN_PLACE_RETRIES + 1);
  assert.equal(producer.retryError, null);
  // The sends after it fail at once: the producer's sequence numbers have a gap.
  await assert.rejects(producer.send([message("second-of-p0", 0)]), /new producer/);
});

Deno.test("producer: the cluster asks a coordinator still ending a transaction again after 10 and 20 ms, then backs off as for any other error", () => {
  const delays = (error: Error) => [1, 2, 3, 4, 5].map((attempt) => retryDelay(attempt, error));
  const concurrent = new KafkaProtocolError(51, "adding partitions to the Kafka transaction");
  assert.equal(concurrent.type, "CONCURRENT_TRANSACTIONS");
  assert.deepEqual(delays(concurrent), [10, 20, 400, 800, 1_600]);
  assert.deepEqual(delays(new KafkaProtocolError(14, "finding the coordinator")), [
    100,
    200,
    400,
    800,
    1_600,
  ]);
});

Deno.test("producer: an abort that fails breaks the producer, so no later transaction commits what it held; one the coordinator never opened is no failure", async () => {
  let endTxn: () => Promise<void> = () => Promise.reject(new Error("unused"));
  const calls: string[] = [];
  const { producer, requests } = standIn(true, {
    addPartitionsToTxn: () => (calls.push("addPartitions"), Promise.resolve()),
    endTxn: (_transaction, commit) => (calls.push(commit ? "commit" : "abort"), endTxn()),
  });
  const sendOne = async () => {
    await producer.begin();
    const sent = producer.send([message("first-of-p0", 0)]);
    await requestsReach(requests, requests.length + 1);
    requests.at(-1)!.answer();
    await sent;
  };
  // The coordinator has no open transaction (e.g. completed already): nothing to abort.
  endTxn = () => Promise.reject(new KafkaProtocolError(48, "aborting the Kafka transaction"));
  await sendOne();
  await producer.abort();
  // The coordinator cannot be reached: the transaction may still be open there.
  endTxn = () => Promise.reject(Object.assign(new Error("Connection closed"), { code: "NETWORK" }));
  await producer.begin();
  const sent = producer.send([message("second-of-p0", 0)]);
  await requestsReach(requests, 2);
  requests[1]!.answer();
  await sent;
  await assert.rejects(producer.abort(), /aborting a transaction/);
  await assert.rejects(producer.begin(), /could not abort; the sink goes on with a new producer/);
  assert.deepEqual(calls, ["addPartitions", "abort", "addPartitions", "abort"]);
});
