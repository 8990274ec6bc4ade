/**
 * A sink that keeps nothing: for benchmarks and dry runs.
 *
 * @module
 */

import type { Sink, SinkStatus } from "./types.ts";
import type { SinkRecord } from "../events.ts";

/** Counts records and drops them; every write is immediately "durable". */
export class NullSink implements Sink {
  readonly name = "null";
  changes = 0;
  #written = 0;

  open(): Promise<void> {
    return Promise.resolve();
  }

  write(records: readonly SinkRecord[]): Promise<void> {
    for (const record of records) if (record.kind === "change") this.changes++;
    this.#written += records.length;
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  status(): SinkStatus {
    return { state: "ok", written: this.#written };
  }
}
