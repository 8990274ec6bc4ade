/**
 * Exactly-once checkpoints. Each Kafka transaction of a transactional sink ends with the end
 * LSN of its last PostgreSQL transaction, committed atomically with the records:
 *
 * - as a record on the compacted checkpoint topic (`checkpoint_topic`, key: the transactional
 *   id), for operators and tools to read: `{"lsn":"0/1A2B3C4","end_lsn":27439044,…}`;
 * - as the committed offset of the consumer group `spillway-checkpoint.<transactional id>` on
 *   that topic's partition 0 (Kafka's `sendOffsets` in a transaction), which the sink reads
 *   back at start with one admin call, without joining a group or scanning the topic.
 *
 * Both are written in the transaction, so a `read_committed` consumer sees a checkpoint exactly
 * when it sees the records before it.
 *
 * @module
 */

import { formatLsn, type Lsn } from "../../decoder/lsn.ts";
import type { OutMessage } from "./producer.ts";

/** The consumer group whose committed offset holds a transactional sink's checkpoint. */
export function checkpointGroup(transactionalId: string): string {
  return `spillway-checkpoint.${transactionalId}`;
}

const encoder = new TextEncoder();

/** The checkpoint record of a Kafka transaction that ends at `lsn`. */
export function checkpointRecord(topic: string, transactionalId: string, lsn: Lsn): OutMessage {
  return {
    topic,
    partition: 0,
    key: encoder.encode(transactionalId),
    value: encoder.encode(
      JSON.stringify({
        transactional_id: transactionalId,
        lsn: formatLsn(lsn),
        end_lsn: Number(lsn),
        ts_ms: Date.now(),
      }),
    ),
  };
}
