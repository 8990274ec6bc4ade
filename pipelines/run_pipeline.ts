/**
 * The composition root of `spillway run`: the source database's type registry, the sinks
 * the configuration names (made by `sinks/registry.ts`, rendering with that registry), the
 * runner, and its operations surface: metrics, health checks and the HTTP endpoint the
 * configuration asks for.
 *
 * @module
 */

import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { connectOptions, type FileSinkConfig, type PipelineConfig } from "../config/mod.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import { TableFactsRegistry } from "../decoder/table_facts.ts";
import { JsonRenderer } from "../formats/json.ts";
import { HealthRegistry } from "../ops/health.ts";
import { startHttpServer } from "../ops/http.ts";
import type { Logger } from "../ops/log.ts";
import { MetricsRegistry } from "../ops/prometheus.ts";
import { standardMetrics } from "../ops/metrics.ts";
import { createSink } from "../sinks/registry.ts";
import type { Sink } from "../sinks/types.ts";
import { TransformHost } from "../transforms/host.ts";
import { transformMetrics } from "../transforms/metrics.ts";
import { PipelineRunner } from "./runner.ts";

/** Options of {@linkcode runPipeline}. */
export interface RunPipelineOptions {
  config: PipelineConfig;
  log: Logger;
  /** Aborting drains the pipeline and stops it. */
  signal?: AbortSignal;
}

/** Runs until the signal aborts (resolves) or the pipeline fails (rejects). */
export async function runPipeline(options: RunPipelineOptions): Promise<void> {
  const { config, log, signal } = options;
  log("info", "Starting pipeline", { name: config.name, file: config.file });
  // Files the connection needs are read now, once: a missing one is a configuration error,
  // found before the HTTP endpoint or anything else starts.
  const connection = connectOptions(config);
  const registry = new MetricsRegistry();
  const metrics = standardMetrics(registry);
  const health = new HealthRegistry();
  const types = new TypeRegistry();
  const tables = new TableFactsRegistry();
  const sinks = await createSinks(config, types, log, { tables, database: connection.database });
  const deadLetter = await createDeadLetterSink(config, types, log, {
    tables,
    database: connection.database,
  });
  const runner = new PipelineRunner({
    config,
    log,
    sinks,
    types,
    tables,
    connection,
    signal,
    metrics,
    health,
    deadLetter,
    transformMetrics: transformMetrics(registry),
  });
  const http = config.http === null
    ? null
    : await startHttpServer({ listen: config.http.listen, metrics: registry, health, log });
  try {
    await runner.run();
  } finally {
    await http?.close();
  }
}

/**
 * The dead-letter sink of a pipeline whose transforms' `on_error` has `dead_letter`:
 * `transforms.dead_letter`, or a file beside the pipeline file, `<name>.dead-letter.jsonl`;
 * `null` when nothing can be dead-lettered.
 */
export function createDeadLetterSink(
  config: PipelineConfig,
  types: TypeRegistry,
  log?: Logger,
  source: { tables?: TableFactsRegistry; database?: string } = {},
): Promise<Sink> | null {
  if (!TransformHost.deadLetters(config)) return null;
  const configured = config.transforms.deadLetter;
  if (configured?.type === "kafka") {
    // Dead letters go to their topic at-least-once: each batch of them is made durable alone.
    const { topic, ...kafka } = configured;
    return createSink({ ...kafka, exactlyOnce: false }, {
      renderer: new JsonRenderer(types),
      log,
      tables: source.tables,
      pipeline: pipelineInfo(config, source.database),
      deadLetterTopic: topic ?? `${config.defaults.topicPrefix}.dead-letter`,
    });
  }
  const sink: FileSinkConfig = configured ?? {
    type: "file",
    path: join(config.baseDir, `${config.name}.dead-letter.jsonl`),
    rotateBytes: null,
    fsync: true,
  };
  const shared = config.sinks.find((other) => other.type === "file" && other.path === sink.path);
  if (shared !== undefined) {
    throw new ConfigError(
      `Cannot write dead letters to ${sink.path}: a file sink of ${config.file} writes there too; give transforms.dead_letter another path`,
    );
  }
  return createSink(sink, { renderer: new JsonRenderer(types), log });
}

function pipelineInfo(config: PipelineConfig, database = "") {
  return { name: config.name, topicPrefix: config.defaults.topicPrefix, database };
}

/**
 * The sinks `config.sinks` names, in order, not yet opened; they render values with
 * `types`, the registry the runner decodes with, and read `source.tables`, the catalog facts
 * the runner fills (pass the same registry to the runner).
 */
export function createSinks(
  config: PipelineConfig,
  types: TypeRegistry,
  log?: Logger,
  source: { tables?: TableFactsRegistry; database?: string } = {},
): Promise<Sink[]> {
  const renderer = new JsonRenderer(types);
  const { tables } = source;
  const pipeline = pipelineInfo(config, source.database);
  return Promise.all(
    config.sinks.map((sink) => createSink(sink, { renderer, log, tables, pipeline })),
  );
}
