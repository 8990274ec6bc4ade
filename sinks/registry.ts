/**
 * The sink registry: {@linkcode createSink} turns one `sinks:` entry of a pipeline into its
 * sink.
 *
 * Each sink's module is imported when a pipeline first asks for that type, never before,
 * so a client library (a Kafka client, say) loads only in the pipelines that use it.
 * Nothing here imports a sink's module statically.
 *
 * @module
 */

import type { SinkConfig } from "../config/mod.ts";
import { ConfigError } from "../errors.ts";
import type { JsonRenderer } from "../formats/json.ts";
import type { Logger } from "../ops/log.ts";
import type { Sink } from "./types.ts";

/** Options of {@linkcode createSink}. */
export interface CreateSinkOptions {
  /** Where a sink says what it repaired or skipped; default silent. */
  log?: Logger;
  /** Renders values by their types; share the source's registry. Default: built-in types. */
  renderer?: JsonRenderer;
}

/**
 * The sink a `sinks:` entry describes, not yet opened.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createSink } from "./registry.ts";
 * const sink = await createSink({ type: "stdout", format: "json" });
 * assert.equal(sink.name, "stdout");
 * ```
 */
export async function createSink(
  config: SinkConfig,
  options: CreateSinkOptions = {},
): Promise<Sink> {
  switch (config.type) {
    case "stdout": {
      const { StdoutSink } = await import("./stdout.ts");
      return new StdoutSink({ format: config.format, renderer: options.renderer });
    }
    case "file": {
      const { FileSink } = await import("./file.ts");
      return new FileSink({
        path: config.path,
        rotateBytes: config.rotateBytes,
        fsync: config.fsync,
        renderer: options.renderer,
        log: options.log,
      });
    }
    case "kafka":
      throw new ConfigError(
        "Cannot create the kafka sink: it is not available in this version; use the stdout or file sink",
      );
  }
}
