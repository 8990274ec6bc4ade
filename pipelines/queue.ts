/**
 * The bounded queue between the runner's reader and its writer.
 *
 * The reader pushes records (and positions to confirm); the writer takes them in
 * batches of at most half the capacity. At `highWatermark × capacity` entries the queue
 * is {@linkcode BoundedQueue.full}: the reader stops taking batches from the replication
 * stream and waits on {@linkcode BoundedQueue.drained} (the stream goes on answering
 * keepalives from its own timer). An entry's position is confirmed only after the writer
 * handed every record before it to every sink, so the order of entries is the order of
 * confirmation.
 *
 * @module
 */

import type { Lsn } from "../decoder/lsn.ts";
import type { SinkRecord } from "../events.ts";

/** One entry: a record for the sinks (or none), and the position it lets the slot confirm. */
export interface QueueEntry {
  record: SinkRecord | null;
  /** Set on entries after which the stream may confirm this position. */
  confirm: Lsn | null;
}

/** Options of {@linkcode BoundedQueue}. */
export interface BoundedQueueOptions {
  /** Entries the queue is sized for. */
  capacity: number;
  /** 0..1: the share of `capacity` at which reading pauses. */
  highWatermark: number;
}

/**
 * A FIFO of {@linkcode QueueEntry} with one reader and one writer, a high watermark, and
 * the start of the open transaction, so what is still queued of it can be dropped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lsn } from "../decoder/lsn.ts";
 * import { BoundedQueue } from "./queue.ts";
 * const queue = new BoundedQueue({ capacity: 4, highWatermark: 0.5 });
 * queue.push(null, lsn(1n));
 * queue.push(null, lsn(2n));
 * assert.equal(queue.full, true);
 * assert.deepEqual((await queue.take())?.map((entry) => entry.confirm), [1n, 2n]);
 * queue.close();
 * assert.equal(await queue.take(), null);
 * ```
 */
export class BoundedQueue {
  readonly capacity: number;
  /** At this depth the queue is full (at least 1). */
  readonly highWater: number;
  /** Most entries one {@linkcode BoundedQueue.take} returns: half the capacity. */
  readonly #batch: number;
  #entries: QueueEntry[] = [];
  #head = 0;
  #writerWaiter: (() => void) | null = null;
  #readerWaiter: (() => void) | null = null;
  #closed = false;
  /** Index of the open transaction's begin record. */
  #transactionStart = 0;

  constructor(options: BoundedQueueOptions) {
    this.capacity = options.capacity;
    this.highWater = Math.max(1, Math.floor(options.capacity * options.highWatermark));
    this.#batch = Math.max(1, Math.floor(options.capacity / 2));
  }

  /** Entries waiting for the writer. */
  get depth(): number {
    return this.#entries.length - this.#head;
  }

  /** True at or above the high watermark: the reader should wait. */
  get full(): boolean {
    return this.depth >= this.highWater;
  }

  push(record: SinkRecord | null, confirm: Lsn | null): void {
    this.#entries.push({ record, confirm });
  }

  /** Marks the next entry pushed as the begin record of the open transaction. */
  markTransactionStart(): void {
    this.#transactionStart = this.#entries.length;
  }

  /**
   * Drops what is still queued of the open transaction (from its begin record on). What
   * the writer already took stays taken.
   */
  trimTransaction(): void {
    this.#entries.length = Math.max(this.#transactionStart, this.#head);
  }

  /** Wakes the writer if it waits for entries. */
  wakeWriter(): void {
    const waiter = this.#writerWaiter;
    this.#writerWaiter = null;
    waiter?.();
  }

  /** Resolves when the writer next takes entries, or {@linkcode BoundedQueue.releaseReader}. */
  drained(): Promise<void> {
    return new Promise<void>((resolve) => this.#readerWaiter = resolve);
  }

  /** Wakes a reader waiting in {@linkcode BoundedQueue.drained} (the writer failed). */
  releaseReader(): void {
    const waiter = this.#readerWaiter;
    this.#readerWaiter = null;
    waiter?.();
  }

  /** No more entries will come: once empty, {@linkcode BoundedQueue.take} returns `null`. */
  close(): void {
    this.#closed = true;
    this.wakeWriter();
  }

  /**
   * Takes everything queued (up to half the capacity), waiting for at least one entry;
   * `null` once the queue is closed and empty.
   */
  async take(): Promise<QueueEntry[] | null> {
    for (;;) {
      const depth = this.depth;
      if (depth > 0) {
        const count = Math.min(depth, this.#batch);
        const entries = this.#entries.slice(this.#head, this.#head + count);
        this.#head += count;
        if (this.#head > 4096 && this.#head * 2 > this.#entries.length) {
          this.#entries = this.#entries.slice(this.#head);
          this.#transactionStart -= this.#head;
          this.#head = 0;
        }
        this.releaseReader();
        return entries;
      }
      if (this.#closed) return null;
      await new Promise<void>((resolve) => this.#writerWaiter = resolve);
    }
  }
}
