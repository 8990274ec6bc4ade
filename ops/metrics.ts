/**
 * The Spillway metric set: every `spillway_*` metric, registered on a
 * {@linkcode MetricsRegistry} and returned typed ({@linkcode standardMetrics}).
 *
 * @module
 */

import type { Counter, Gauge, Histogram, MetricsRegistry } from "./prometheus.ts";

/** `pg_replication_slots.wal_status` values (PostgreSQL 13 and later). */
export type WalStatus = "reserved" | "extended" | "unreserved" | "lost";

/** Every {@linkcode WalStatus}, in the order they are rendered. */
export const WAL_STATUSES: readonly WalStatus[] = ["reserved", "extended", "unreserved", "lost"];

/** Upper bounds of `spillway_sink_write_seconds`, 0.5 ms to 10 s. */
export const SINK_WRITE_BUCKETS: readonly number[] = [
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
  2.5,
  5,
  10,
];

/** The memory figures {@linkcode standardMetrics} reads, as from `Deno.memoryUsage()`. */
export interface MemoryUsage {
  rss: number;
  heapUsed: number;
}

/** Options of {@linkcode standardMetrics}. */
export interface StandardMetricsOptions {
  /** Read at render time. Default `Deno.memoryUsage`. */
  memoryUsage?: () => MemoryUsage;
}

/** The Spillway metric set; field names are the metric names without `spillway_`, in camelCase. */
export interface SpillwayMetrics {
  /** `spillway_events_total{table,op}`: change events, `table` as `schema.name`, `op` c/u/d/r/t. */
  eventsTotal: Counter<"table" | "op">;
  /** `spillway_transactions_total`: transactions committed by the source. */
  transactionsTotal: Counter;
  /** `spillway_bytes_received_total`: bytes of replication stream received. */
  bytesReceivedTotal: Counter;
  /** `spillway_replication_lag_bytes`: server WAL position minus the confirmed flush LSN. */
  replicationLagBytes: Gauge;
  /** `spillway_replication_lag_seconds`: how far the delivered changes are behind the server. */
  replicationLagSeconds: Gauge;
  /** `spillway_slot_wal_status{status}`: 1 for the slot's current status, 0 for the others. */
  slotWalStatus: Gauge<"status">;
  /** `spillway_slot_safe_wal_size_bytes`: set NaN when the server reports null (no limit). */
  slotSafeWalSizeBytes: Gauge;
  /** `spillway_slot_spill_txns`: mirrors `pg_stat_replication_slots.spill_txns`. */
  slotSpillTxns: Gauge;
  /** `spillway_slot_spill_bytes`: mirrors `pg_stat_replication_slots.spill_bytes`. */
  slotSpillBytes: Gauge;
  /** `spillway_slot_stream_txns`: mirrors `pg_stat_replication_slots.stream_txns`. */
  slotStreamTxns: Gauge;
  /** `spillway_slot_stream_bytes`: mirrors `pg_stat_replication_slots.stream_bytes`. */
  slotStreamBytes: Gauge;
  /** `spillway_queue_depth`: events waiting in the runner's queue. */
  queueDepth: Gauge;
  /** `spillway_queue_capacity`: the queue's configured capacity. */
  queueCapacity: Gauge;
  /** `spillway_queue_bytes`: bytes of change data queued or being written to the sinks. */
  queueBytes: Gauge;
  /** `spillway_queue_max_bytes`: the queue's `max_bytes` (absent without a bound). */
  queueMaxBytes: Gauge;
  /** `spillway_sink_write_seconds{sink}`: time per sink batch write, {@linkcode SINK_WRITE_BUCKETS}. */
  sinkWriteSeconds: Histogram<"sink">;
  /** `spillway_sink_errors_total{sink}`: failed sink writes. */
  sinkErrorsTotal: Counter<"sink">;
  /** `spillway_confirmed_lsn`: the flush LSN last confirmed to the server, as `Number(lsn)`. */
  confirmedLsn: Gauge;
  /** `spillway_process_resident_memory_bytes`: RSS, read at render time. */
  processResidentMemoryBytes: Gauge;
  /** `spillway_process_heap_bytes`: V8 heap in use, read at render time. */
  processHeapBytes: Gauge;
  /** `spillway_reconnects_total`: reconnections to the server. */
  reconnectsTotal: Counter;
  /** `spillway_source_paused`: 1 while reading is paused by backpressure, else 0. */
  sourcePaused: Gauge;
  /** Sets `slotWalStatus`: 1 for `status`, 0 for the others; `null` sets all to 0. */
  setSlotWalStatus(status: WalStatus | null): void;
}

/**
 * Registers the Spillway metric set on `registry` and returns it typed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsRegistry } from "./prometheus.ts";
 * import { standardMetrics } from "./metrics.ts";
 * const registry = new MetricsRegistry();
 * const metrics = standardMetrics(registry);
 * const orderInserts = metrics.eventsTotal.labels({ table: "public.orders", op: "c" });
 * orderInserts.inc();
 * metrics.setSlotWalStatus("reserved");
 * const text = registry.render();
 * assert(text.includes('spillway_events_total{table="public.orders",op="c"} 1\n'));
 * assert(text.includes('spillway_slot_wal_status{status="lost"} 0\n'));
 * ```
 */
export function standardMetrics(
  registry: MetricsRegistry,
  options: StandardMetricsOptions = {},
): SpillwayMetrics {
  const memoryUsage = options.memoryUsage ?? (() => Deno.memoryUsage());
  const metrics: Omit<SpillwayMetrics, "setSlotWalStatus"> = {
    eventsTotal: registry.counter(
      "spillway_events_total",
      "Change events decoded, by table and operation (c, u, d, r, t)",
      ["table", "op"],
    ),
    transactionsTotal: registry.counter(
      "spillway_transactions_total",
      "Transactions committed by the source",
    ),
    bytesReceivedTotal: registry.counter(
      "spillway_bytes_received_total",
      "Bytes of replication stream received from the server",
    ),
    replicationLagBytes: registry.gauge(
      "spillway_replication_lag_bytes",
      "Bytes of WAL between the server's current position and the confirmed flush LSN",
    ),
    replicationLagSeconds: registry.gauge(
      "spillway_replication_lag_seconds",
      "Seconds the delivered changes are behind the server",
    ),
    slotWalStatus: registry.gauge(
      "spillway_slot_wal_status",
      "1 for the replication slot's wal_status in pg_replication_slots, 0 for the others",
      ["status"],
    ),
    slotSafeWalSizeBytes: registry.gauge(
      "spillway_slot_safe_wal_size_bytes",
      "Bytes of WAL that can still be written before the slot risks being lost (NaN: no limit)",
    ),
    slotSpillTxns: registry.gauge(
      "spillway_slot_spill_txns",
      "Transactions the walsender spilled to disk for this slot (pg_stat_replication_slots)",
    ),
    slotSpillBytes: registry.gauge(
      "spillway_slot_spill_bytes",
      "Bytes the walsender spilled to disk for this slot (pg_stat_replication_slots)",
    ),
    slotStreamTxns: registry.gauge(
      "spillway_slot_stream_txns",
      "In-progress transactions streamed for this slot (pg_stat_replication_slots)",
    ),
    slotStreamBytes: registry.gauge(
      "spillway_slot_stream_bytes",
      "Bytes of in-progress transactions streamed for this slot (pg_stat_replication_slots)",
    ),
    queueDepth: registry.gauge("spillway_queue_depth", "Events waiting in the runner's queue"),
    queueCapacity: registry.gauge("spillway_queue_capacity", "Capacity of the runner's queue"),
    queueBytes: registry.gauge(
      "spillway_queue_bytes",
      "Bytes of change data (as the server sent them) queued or being written to the sinks",
    ),
    queueMaxBytes: registry.gauge("spillway_queue_max_bytes", "The queue's max_bytes"),
    sinkWriteSeconds: registry.histogram(
      "spillway_sink_write_seconds",
      "Seconds per batch write, by sink",
      SINK_WRITE_BUCKETS,
      ["sink"],
    ),
    sinkErrorsTotal: registry.counter(
      "spillway_sink_errors_total",
      "Failed batch writes, by sink",
      ["sink"],
    ),
    confirmedLsn: registry.gauge(
      "spillway_confirmed_lsn",
      "Flush LSN last confirmed to the server, as a byte position",
    ),
    processResidentMemoryBytes: registry.gauge(
      "spillway_process_resident_memory_bytes",
      "Resident set size of the process in bytes",
      [],
      { collect: (gauge) => gauge.set(memoryUsage().rss) },
    ),
    processHeapBytes: registry.gauge(
      "spillway_process_heap_bytes",
      "V8 heap in use in bytes",
      [],
      { collect: (gauge) => gauge.set(memoryUsage().heapUsed) },
    ),
    reconnectsTotal: registry.counter(
      "spillway_reconnects_total",
      "Reconnections to the server",
    ),
    sourcePaused: registry.gauge(
      "spillway_source_paused",
      "1 while reading from the server is paused by backpressure, else 0",
    ),
  };
  const { slotWalStatus } = metrics;
  function setSlotWalStatus(status: WalStatus | null): void {
    for (const known of WAL_STATUSES) {
      slotWalStatus.set({ status: known }, known === status ? 1 : 0);
    }
  }
  setSlotWalStatus(null);
  return { ...metrics, setSlotWalStatus };
}
