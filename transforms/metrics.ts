/**
 * The transforms' own metrics (`spillway_transform_*`), per transform file.
 *
 * @module
 */

import type { Counter, Gauge, Histogram, MetricsRegistry } from "../ops/prometheus.ts";

/** Upper bounds of `spillway_transform_batch_seconds`, 50 µs to 5 s. */
export const TRANSFORM_BATCH_BUCKETS: readonly number[] = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  5,
];

/** The `spillway_transform_*` metrics. */
export interface TransformMetrics {
  /** `spillway_transform_events_total{transform}`: events run through the transform. */
  eventsTotal: Counter<"transform">;
  /** `spillway_transform_failures_total{transform,reason}`: `error`, `timeout`, `invalid`. */
  failuresTotal: Counter<"transform" | "reason">;
  /** `spillway_transform_batch_seconds{transform}`: time per batch crossing to the Worker. */
  batchSeconds: Histogram<"transform">;
  /** `spillway_transform_breaker_state{transform}`: 0 closed, 1 half-open, 2 open. */
  breakerState: Gauge<"transform">;
  /** `spillway_transform_reloads_total{transform}`: new versions that took over. */
  reloadsTotal: Counter<"transform">;
  /** `spillway_transform_version_info{transform,version}`: 1 for the running version. */
  versionInfo: Gauge<"transform" | "version">;
  /** `spillway_transform_fallbacks_total{transform,action}`: events that took an on_error step. */
  fallbacksTotal: Counter<"transform" | "action">;
}

/**
 * Registers the transform metrics on `registry`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsRegistry } from "../ops/prometheus.ts";
 * import { transformMetrics } from "./metrics.ts";
 * const registry = new MetricsRegistry();
 * transformMetrics(registry).eventsTotal.inc({ transform: "orders.ts" }, 3);
 * assert(registry.render().includes('spillway_transform_events_total{transform="orders.ts"} 3'));
 * ```
 */
export function transformMetrics(registry: MetricsRegistry): TransformMetrics {
  return {
    eventsTotal: registry.counter(
      "spillway_transform_events_total",
      "Events run through each transform",
      ["transform"],
    ),
    failuresTotal: registry.counter(
      "spillway_transform_failures_total",
      "Transform failures: error (threw), timeout (ran past its budget), invalid (returned a non-event)",
      ["transform", "reason"],
    ),
    batchSeconds: registry.histogram(
      "spillway_transform_batch_seconds",
      "Seconds per batch of events run in a transform's Worker",
      TRANSFORM_BATCH_BUCKETS,
      ["transform"],
    ),
    breakerState: registry.gauge(
      "spillway_transform_breaker_state",
      "State of each transform's circuit breaker: 0 closed, 1 half-open, 2 open",
      ["transform"],
    ),
    reloadsTotal: registry.counter(
      "spillway_transform_reloads_total",
      "New versions of each transform that took over",
      ["transform"],
    ),
    versionInfo: registry.gauge(
      "spillway_transform_version_info",
      "1 for the running version (sha-256 prefix of its files) of each transform",
      ["transform", "version"],
    ),
    fallbacksTotal: registry.counter(
      "spillway_transform_fallbacks_total",
      "Events that took an on_error step (retry, passthrough, dead_letter, skip, stop)",
      ["transform", "action"],
    ),
  };
}
