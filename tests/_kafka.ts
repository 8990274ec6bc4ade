/**
 * Reading what the Kafka sink wrote, as a consumer sees it: a `read_committed` consumer in a
 * fresh group, from the beginning of each topic (`tailTopics` of the harness).
 *
 * @module
 */

import { type ConsumedRecord, tailTopics } from "../testing/kafka.ts";

/** One record as consumed. */
export type Consumed = ConsumedRecord;

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
  const seen: Consumed[] = [];
  const done = new AbortController();
  const timeout = setTimeout(() => done.abort(), options.timeoutMs ?? 60_000);
  let settling = false;
  try {
    await tailTopics(brokers, topics, (record) => {
      seen.push(record);
      if (seen.length >= count && !settling) {
        settling = true;
        setTimeout(() => done.abort(), options.settleMs ?? 300);
      }
    }, done.signal);
  } finally {
    clearTimeout(timeout);
  }
  return seen;
}

/** The records of one topic, in offset order per partition (partitions in order). */
export function ordered(records: Consumed[], topic: string): Consumed[] {
  return records.filter((r) => r.topic === topic).sort((a, b) =>
    a.partition - b.partition || a.offset - b.offset
  );
}
