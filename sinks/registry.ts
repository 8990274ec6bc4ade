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
import type { TableFactsRegistry } from "../decoder/table_facts.ts";
import type { JsonRenderer } from "../formats/json.ts";
import type { Logger } from "../ops/log.ts";
import type { Sink } from "./types.ts";

/** Options of {@linkcode createSink}. */
export interface CreateSinkOptions {
  /** Where a sink says what it repaired or skipped; default silent. */
  log?: Logger;
  /** Renders values by their types; share the source's registry. Default: built-in types. */
  renderer?: JsonRenderer;
  /** The catalog facts the source reads (the Kafka sink's schemas and keys need them). */
  tables?: TableFactsRegistry;
  /** The pipeline's name, topic prefix and source database (the Kafka sink needs them). */
  pipeline?: { name: string; topicPrefix: string; database: string };
  /** The sink takes only dead letters, to this topic (a Kafka dead-letter sink). */
  deadLetterTopic?: string;
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
    case "kafka": {
      const { KafkaSink } = await import("./kafka/mod.ts");
      const pipeline = options.pipeline ??
        { name: "spillway", topicPrefix: "spillway", database: "" };
      return new KafkaSink({
        config,
        pipeline: pipeline.name,
        topicPrefix: pipeline.topicPrefix,
        database: pipeline.database,
        types: options.renderer?.types,
        tables: options.tables,
        log: options.log,
        deadLetterTopic: options.deadLetterTopic,
      });
    }
  }
}
