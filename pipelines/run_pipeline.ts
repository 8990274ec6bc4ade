/**
 * Runs a pipeline with its operations surface: metrics, health checks and the
 * HTTP endpoint the configuration asks for.
 *
 * @module
 */

import type { PipelineConfig } from "../config/mod.ts";
import { HealthRegistry } from "../ops/health.ts";
import { startHttpServer } from "../ops/http.ts";
import type { Logger } from "../ops/log.ts";
import { MetricsRegistry, standardMetrics } from "../ops/metrics.ts";
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
  const registry = new MetricsRegistry();
  const metrics = standardMetrics(registry);
  const health = new HealthRegistry();
  const runner = new PipelineRunner({ config, log, signal, metrics, health });
  const http = config.http === null
    ? null
    : await startHttpServer({ listen: config.http.listen, metrics: registry, health, log });
  try {
    await runner.run();
  } finally {
    await http?.close();
  }
}
