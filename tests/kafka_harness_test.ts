/**
 * The Kafka harness against a real broker: it starts, serves keyed, idempotent and
 * transactional produce with `kafkajs`, and stops without leaving its process behind.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Consumer, Kafka, logLevel } from "npm:kafkajs@2.2.4";
import { startKafka } from "../testing/kafka.ts";

const TOPIC = "harness.orders";
const KEYED = [
  { key: "1", value: "first" },
  { key: "2", value: "second" },
  { key: "1", value: "third" },
];

/** Read `count` messages of `topic` from the beginning, in a fresh group. */
async function consume(
  consumer: Consumer,
  count: number,
): Promise<{ key: string; value: string }[]> {
  const seen: { key: string; value: string }[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer.run({
        eachMessage: ({ message }) => {
          seen.push({ key: String(message.key), value: String(message.value) });
          if (seen.length >= count) resolve();
          return Promise.resolve();
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return seen;
}

Deno.test("kafka harness: a real broker serves keyed, idempotent and transactional produce", async () => {
  const broker = await startKafka();
  const pid = broker.pid;
  try {
    const kafka = new Kafka({
      clientId: "spillway-harness-test",
      brokers: broker.brokers,
      logLevel: logLevel.NOTHING,
    });
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({
        topics: [{ topic: TOPIC, numPartitions: 1 }],
        waitForLeaders: true,
      });
    } finally {
      await admin.disconnect();
    }

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    try {
      await producer.send({ topic: TOPIC, acks: -1, messages: KEYED });
    } finally {
      await producer.disconnect();
    }

    const transactional = kafka.producer({
      transactionalId: "spillway-harness-test",
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await transactional.connect();
    try {
      const aborted = await transactional.transaction();
      await aborted.send({ topic: TOPIC, messages: [{ key: "3", value: "aborted" }] });
      await aborted.abort();
      const committed = await transactional.transaction();
      await committed.send({ topic: TOPIC, messages: [{ key: "3", value: "committed" }] });
      await committed.commit();
    } finally {
      await transactional.disconnect();
    }

    const [plain, readCommitted] = await Promise.all([
      consume(kafka.consumer({ groupId: "harness-plain" }), KEYED.length),
      consume(
        kafka.consumer({ groupId: "harness-read-committed", readUncommitted: false }),
        KEYED.length + 1,
      ),
    ]);
    assert.deepEqual(plain, KEYED, await broker.tailLog());
    assert.deepEqual(readCommitted, [...KEYED, { key: "3", value: "committed" }]);
  } finally {
    await broker.stop();
  }
  const gone = await Deno.stat(`/proc/${pid}`).then(() => false, () => true);
  assert.ok(gone, `the broker's process ${pid} is still running after stop()`);
});
