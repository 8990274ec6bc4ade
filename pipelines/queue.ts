/**
 * The bounded queue between the runner's reader and its writer.
 *
 * The reader pushes records (and positions to confirm); the writer takes them in
 * batches of at most half the capacity and half of `maxBytes`. The queue counts the bytes of
 * change data it holds (the pgoutput messages the records were decoded from) until the
 * writer {@linkcode BoundedQueue.release}s them once the sinks have them, so what the writer
 * holds counts too. At `highWatermark × capacity` entries or `highWatermark × maxBytes`
 * bytes the queue is {@linkcode BoundedQueue.full}: the reader stops taking batches from the
 * replication stream and waits on {@linkcode BoundedQueue.drained} (the stream goes on
 * answering keepalives from its own timer). An entry's position is confirmed only after the writer
 * handed every record before it to every sink, so the order of entries is the order of
 * confirmation.
 *
 * @module
 */

import type { Lsn } from "../decoder/lsn.ts";
import type { SinkRecord } from "../events.ts";

/** What one {@linkcode BoundedQueue.take} hands the writer. */
export interface QueueBatch {
  /** The records of the entries taken, in order (entries without a record left out). */
  records: SinkRecord[];
  /** The last position among the entries taken that the stream may confirm, or `null`. */
  confirm: Lsn | null;
  /** Entries taken. */
  count: number;
  /** Bytes of change data the entries hold: they count until {@linkcode BoundedQueue.release}. */
  bytes: number;
}

/** Options of {@linkcode BoundedQueue}. */
export interface BoundedQueueOptions {
  /** Entries the queue is sized for. */
  capacity: number;
  /**
   * Bytes of change data the queue and its writer are sized for: reading pauses at
   * `highWatermark` of it (what is pushed before the reader checks may pass that). `null` or 0
   * for no bound.
   */
  maxBytes?: number | null;
  /** 0..1: the share of `capacity` (and of `maxBytes`) at which reading pauses. */
  highWatermark: number;
}

/** Most slots a queue starts with (its capacity and one, below that); it doubles them as needed. */
const INITIAL_SLOTS = 4096;

/**
 * A FIFO of entries (a record for the sinks or none, a position to confirm or none, and the bytes
 * of change data it holds) with one reader and one writer, a high watermark, and the start of the
 * open transaction, so what is still queued of it can be dropped.
 *
 * The entries live in a ring of slots, one array per field (no object per entry), and a slot is
 * emptied as its entry is taken: the ring outlives many young-generation collections, so V8 moves
 * it to the old generation, and a record a slot still pointed at would be kept alive through every
 * young collection until the next full one. The ring grows (doubling) when the reader pushes past
 * it, and empties the slots it leaves; it does not shrink (at the default capacity of 1,024 it
 * usually grows once, to 2,050 slots: the reader checks the watermark after each chunk of
 * changes). A take hands the writer the batch's records, the position to confirm and its bytes:
 * one new array per batch, no entry objects and no slice of them.
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
 * const taken = await queue.take();
 * assert.equal(taken?.count, 2);
 * assert.equal(taken?.confirm, 2n);
 * queue.release(taken!); // the sinks have them
 * queue.close();
 * assert.equal(await queue.take(), null);
 * ```
 */
export class BoundedQueue {
  readonly capacity: number;
  /** At this depth the queue is full (at least 1). */
  readonly highWater: number;
  /** Bytes the queue is sized for (`Infinity` for no bound). */
  readonly maxBytes: number;
  /** At this many bytes held the queue is full. */
  readonly highWaterBytes: number;
  /** Most entries one {@linkcode BoundedQueue.take} returns: half the capacity. */
  readonly #batch: number;
  /** Most bytes one {@linkcode BoundedQueue.take} returns (but at least one entry). */
  readonly #batchBytes: number;
  /** Bytes of the entries queued and of those taken but not yet released. */
  #bytes = 0;
  #records: (SinkRecord | null)[];
  #confirms: (Lsn | null)[];
  #sizes: Float64Array;
  /** Slot of the oldest entry. */
  #at = 0;
  #depth = 0;
  /** Entries taken so far: the number of the oldest entry queued. */
  #taken = 0;
  #writerWaiter: (() => void) | null = null;
  #readerWaiter: (() => void) | null = null;
  #closed = false;
  /** Number of the open transaction's begin entry (counted as {@linkcode #taken}). */
  #transactionStart = 0;

  constructor(options: BoundedQueueOptions) {
    this.capacity = options.capacity;
    this.highWater = Math.max(1, Math.floor(options.capacity * options.highWatermark));
    this.#batch = Math.max(1, Math.floor(options.capacity / 2));
    this.maxBytes = options.maxBytes || Infinity; // null or 0: no bound
    this.highWaterBytes = this.maxBytes * options.highWatermark;
    this.#batchBytes = this.maxBytes / 2;
    const slots = Math.min(INITIAL_SLOTS, options.capacity + 1);
    this.#records = new Array(slots).fill(null);
    this.#confirms = new Array(slots).fill(null);
    this.#sizes = new Float64Array(slots);
  }

  /** Bytes of change data held: queued, or taken by the writer and not yet released. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Entries waiting for the writer. */
  get depth(): number {
    return this.#depth;
  }

  /** True at or above the high watermark: the reader should wait. */
  get full(): boolean {
    return this.#depth >= this.highWater || this.#bytes >= this.highWaterBytes;
  }

  push(record: SinkRecord | null, confirm: Lsn | null, size = 0): void {
    if (this.#depth === this.#sizes.length) this.#grow();
    let slot = this.#at + this.#depth;
    if (slot >= this.#sizes.length) slot -= this.#sizes.length;
    this.#records[slot] = record;
    this.#confirms[slot] = confirm;
    this.#sizes[slot] = size;
    this.#depth++;
    this.#bytes += size;
  }

  /** Twice the slots, the entries moved to the front; the old slots are emptied as they go. */
  #grow(): void {
    const slots = this.#sizes.length;
    const records = new Array<SinkRecord | null>(slots * 2).fill(null);
    const confirms = new Array<Lsn | null>(slots * 2).fill(null);
    const sizes = new Float64Array(slots * 2);
    for (let i = 0, slot = this.#at; i < this.#depth; i++) {
      records[i] = this.#records[slot] as SinkRecord | null;
      confirms[i] = this.#confirms[slot] as Lsn | null;
      sizes[i] = this.#sizes[slot]!;
      this.#records[slot] = null;
      this.#confirms[slot] = null;
      if (++slot === slots) slot = 0;
    }
    this.#records = records;
    this.#confirms = confirms;
    this.#sizes = sizes;
    this.#at = 0;
  }

  /** Marks the next entry pushed as the begin record of the open transaction. */
  markTransactionStart(): void {
    this.#transactionStart = this.#taken + this.#depth;
  }

  /**
   * Drops what is still queued of the open transaction (from its begin record on). What
   * the writer already took stays taken.
   */
  trimTransaction(): void {
    const keep = Math.max(0, this.#transactionStart - this.#taken);
    const slots = this.#sizes.length;
    for (let i = keep; i < this.#depth; i++) {
      let slot = this.#at + i;
      if (slot >= slots) slot -= slots;
      this.#bytes -= this.#sizes[slot]!;
      this.#records[slot] = null;
      this.#confirms[slot] = null;
    }
    this.#depth = Math.min(this.#depth, keep);
  }

  /**
   * The writer is done with a batch it took (the sinks have it, or it is dropped): its bytes no
   * longer count, and a reader waiting for room is woken.
   */
  release(batch: QueueBatch): void {
    if (batch.bytes === 0) return;
    this.#bytes -= batch.bytes;
    this.releaseReader();
  }

  /** Wakes the writer if it waits for entries. */
  wakeWriter(): void {
    const waiter = this.#writerWaiter;
    this.#writerWaiter = null;
    waiter?.();
  }

  /**
   * Resolves when the writer next takes or releases entries, or on
   * {@linkcode BoundedQueue.releaseReader}; the reader then checks {@linkcode BoundedQueue.full}
   * again.
   */
  drained(): Promise<void> {
    return new Promise<void>((resolve) => this.#readerWaiter = resolve);
  }

  /** Wakes a reader waiting in {@linkcode BoundedQueue.drained} (room was made, or the writer failed). */
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
   * Takes everything queued (up to half the capacity and half of `maxBytes`, at least one
   * entry), waiting for at least one entry; `null` once the queue is closed and empty. The
   * entries' bytes count until {@linkcode BoundedQueue.release}.
   */
  async take(): Promise<QueueBatch | null> {
    for (;;) {
      if (this.#depth > 0) {
        const most = Math.min(this.#depth, this.#batch);
        const records: SinkRecord[] = [];
        const slots = this.#sizes.length;
        let confirm: Lsn | null = null;
        let bytes = 0;
        let count = 0;
        let slot = this.#at;
        for (; count < most; count++) {
          const size = this.#sizes[slot]!;
          if (count > 0 && bytes + size > this.#batchBytes) break;
          bytes += size;
          const record = this.#records[slot] as SinkRecord | null;
          if (record !== null) records.push(record);
          const position = this.#confirms[slot] as Lsn | null;
          if (position !== null) confirm = position;
          // Emptied: see the class's note.
          this.#records[slot] = null;
          this.#confirms[slot] = null;
          if (++slot === slots) slot = 0;
        }
        this.#at = slot;
        this.#depth -= count;
        this.#taken += count;
        this.releaseReader();
        return { records, confirm, count, bytes };
      }
      if (this.#closed) return null;
      await new Promise<void>((resolve) => this.#writerWaiter = resolve);
    }
  }
}
