/**
 * The stdout sink: JSON lines, or a readable format when stdout is a terminal.
 *
 * @module
 */

import { recordToPrettyLine } from "../formats/pretty.ts";
import { writeAll } from "./_io.ts";
import type { Sink, SinkStatus } from "./types.ts";
import type { SinkRecord } from "../events.ts";
import { JsonRenderer, writeJsonLine } from "../formats/json.ts";
import { JsonWriter } from "../formats/json_writer.ts";

/** Options of {@linkcode StdoutSink}. */
export interface StdoutSinkOptions {
  /** `auto` (default): pretty on a terminal, JSON lines otherwise. */
  format?: "json" | "pretty" | "auto";
  /** Also write begin/commit lines in JSON format. */
  transactions?: boolean;
  /** Renders values by their types; default the built-in types. */
  renderer?: JsonRenderer;
  /** Where bytes go; default Deno.stdout. */
  writer?: { write(bytes: Uint8Array): Promise<number>; isTerminal?(): boolean };
}

/** Writes records to stdout. A write is durable once the bytes were handed to the fd. */
export class StdoutSink implements Sink {
  readonly name = "stdout";
  #pretty: boolean;
  #color: boolean;
  #transactions: boolean;
  #writer: NonNullable<StdoutSinkOptions["writer"]>;
  #written = 0;
  #renderer: JsonRenderer;
  #out = new JsonWriter();

  constructor(options: StdoutSinkOptions = {}) {
    this.#renderer = options.renderer ?? new JsonRenderer();
    this.#writer = options.writer ?? Deno.stdout;
    const terminal = this.#writer.isTerminal?.() ?? false;
    const format = options.format ?? "auto";
    this.#pretty = format === "pretty" || (format === "auto" && terminal);
    this.#color = this.#pretty && terminal && !Deno.noColor;
    this.#transactions = options.transactions ?? false;
  }

  open(): Promise<void> {
    return Promise.resolve();
  }

  async write(records: readonly SinkRecord[]): Promise<void> {
    const out = this.#out;
    out.reset();
    for (const record of records) {
      if (!this.#pretty) {
        writeJsonLine(out, record, this.#transactions, this.#renderer);
        continue;
      }
      const line = recordToPrettyLine(record, this.#color, this.#renderer);
      if (line !== null) {
        out.raw(line);
        out.byte(0x0a);
      }
    }
    if (out.length > 0) await writeAll(this.#writer, out.bytes());
    this.#written += records.length;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  status(): SinkStatus {
    return { state: "ok", written: this.#written };
  }
}
