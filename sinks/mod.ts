/**
 * Sinks: the {@linkcode Sink} interface every destination implements, the registry that
 * turns a pipeline's `sinks:` entries into sinks, and the sinks that need no client library.
 * A sink written outside the tree imports the interface and the records it takes from here:
 *
 * @example
 * ```ts
 * import type { Sink, SinkRecord, SinkStatus } from "./mod.ts";
 *
 * class CountingSink implements Sink {
 *   readonly name = "counting";
 *   #written = 0;
 *   open(): Promise<void> {
 *     return Promise.resolve();
 *   }
 *   write(records: readonly SinkRecord[]): Promise<void> {
 *     this.#written += records.length;
 *     return Promise.resolve();
 *   }
 *   close(): Promise<void> {
 *     return Promise.resolve();
 *   }
 *   status(): SinkStatus {
 *     return { state: "ok", written: this.#written };
 *   }
 * }
 * new CountingSink();
 * ```
 *
 * @module
 */

export type { Sink, SinkStatus, WriteOptions } from "./types.ts";
export type { SinkRecord } from "../events.ts";
export { createSink, type CreateSinkOptions } from "./registry.ts";
export { FileSink, type FileSinkOptions } from "./file.ts";
export { StdoutSink, type StdoutSinkOptions } from "./stdout.ts";
export { writeAll } from "./_io.ts";
export { NullSink } from "./null.ts";
