/**
 * The interface every sink implements. A sink takes records in order and says
 * when they are durable; the runner confirms a transaction to PostgreSQL only
 * after every sink has made its commit record durable.
 *
 * @module
 */

import type { SinkRecord } from "../events.ts";

/** What a sink reports for /health. */
export interface SinkStatus {
  state: "ok" | "degraded" | "failing";
  /** Records made durable so far. */
  written: number;
  lastError?: string;
}

/** Options of {@linkcode Sink.write}. */
export interface WriteOptions {
  /** Resolve only once these records (and all before) are durable; default true. */
  durable?: boolean;
}

/** A destination for change records. */
export interface Sink {
  /** A name for logs, metrics and health, e.g. `file:/var/spillway/orders.jsonl`. */
  readonly name: string;
  /** Opens files or connections. Called once before the first write. */
  open(): Promise<void>;
  /**
   * Writes records in order and resolves once they are durable (fsync'ed,
   * acknowledged by the broker, written to the terminal). Never called again
   * before the previous call settled. A rejection with `retriable: true` may be
   * retried with the same records.
   *
   * With `options.durable` false, the batch confirms nothing (it ends inside a
   * transaction), so the sink may resolve once the records are handed on, without
   * waiting for them to be durable; the next durable write makes them durable too,
   * in order. Like Kafka Connect's `put()` between two `flush()` calls.
   */
  write(records: readonly SinkRecord[], options?: WriteOptions): Promise<void>;
  /** Flushes and releases everything. */
  close(): Promise<void>;
  status(): SinkStatus;
}
