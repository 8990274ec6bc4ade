/**
 * What operators see: logs, health checks, Prometheus metrics and the HTTP server
 * that serves `/health` and `/metrics`. The engine reports into these; they import
 * nothing of the engine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsRegistry, standardMetrics } from "./mod.ts";
 * const registry = new MetricsRegistry();
 * standardMetrics(registry).transactionsTotal.inc();
 * assert(registry.render().includes("spillway_transactions_total 1\n"));
 * ```
 *
 * @module
 */

export * from "./log.ts";
export * from "./health.ts";
export * from "./http.ts";
export * from "./prometheus.ts";
export * from "./metrics.ts";
