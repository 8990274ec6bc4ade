/**
 * Reading what the Kafka sink wrote, as a consumer sees it: a `read_committed` consumer in a
 * fresh group, from the beginning of each topic.
 *
 * @module
 */

import { Kafka, logLevel } from "npm:kafkajs@2.2.4";

/** One record as consumed. */
export interface Consumed {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

/**
 * The records of `topics` from the beginning, read_committed, until `count` arrived (then a
 * short quiet time, `settleMs`, to catch any extra) or `timeoutMs` passed.
 */
export async function consume(
  brokers: string[],
  topics: string[],
  count: number,
  options: { timeoutMs?: number; settleMs?: number } = {},
): Promise<Consumed[]> {
  const kafka = new Kafka({
    clientId: "spillway-test-reader",
    brokers,
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({
    groupId: `spillway-test-${crypto.randomUUID()}`,
    readUncommitted: false,
    maxWaitTimeInMs: 100,
  });
  const seen: Consumed[] = [];
  // The sink creates its topics with its first records: wait for them to exist.
  const admin = kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    for (;;) {
      const existing = new Set(await admin.listTopics());
      if (topics.every((topic) => existing.has(topic))) break;
      if (Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await admin.disconnect();
  }
  await consumer.connect();
  try {
    await consumer.subscribe({ topics, fromBeginning: true });
    let reached: () => void = () => {};
    const enough = new Promise<void>((resolve) => reached = resolve);
    await consumer.run({
      eachMessage: ({ topic, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(message.headers ?? {})) {
          headers[name] = String(value);
        }
        seen.push({
          topic,
          partition,
          offset: Number(message.offset),
          key: message.key === null ? null : message.key.toString(),
          value: message.value === null ? null : message.value.toString(),
          headers,
        });
        if (seen.length >= count) reached();
        return Promise.resolve();
      },
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, options.timeoutMs ?? 60_000);
    });
    await Promise.race([enough, timeout]);
    clearTimeout(timer);
    await new Promise((resolve) => setTimeout(resolve, options.settleMs ?? 300));
  } finally {
    await consumer.disconnect();
  }
  return seen;
}

/** The records of one topic, in offset order per partition (partitions in order). */
export function ordered(records: Consumed[], topic: string): Consumed[] {
  return records.filter((r) => r.topic === topic).sort((a, b) =>
    a.partition - b.partition || a.offset - b.offset
  );
}
