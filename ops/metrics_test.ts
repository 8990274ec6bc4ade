import assert from "node:assert/strict";
import { MetricsRegistry } from "./prometheus.ts";
import { SINK_WRITE_BUCKETS, standardMetrics, WAL_STATUSES } from "./metrics.ts";

Deno.test("standardMetrics: the Spillway set, named and typed", () => {
  const registry = new MetricsRegistry();
  const metrics = standardMetrics(registry, { memoryUsage: () => ({ rss: 1234, heapUsed: 567 }) });
  const text = registry.render();
  const types = new Map(
    [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => [match[1], match[2]]),
  );
  assert.deepEqual(Object.fromEntries(types), {
    spillway_events_total: "counter",
    spillway_transactions_total: "counter",
    spillway_bytes_received_total: "counter",
    spillway_replication_lag_bytes: "gauge",
    spillway_replication_lag_seconds: "gauge",
    spillway_slot_wal_status: "gauge",
    spillway_slot_safe_wal_size_bytes: "gauge",
    spillway_slot_spill_txns: "gauge",
    spillway_slot_spill_bytes: "gauge",
    spillway_slot_stream_txns: "gauge",
    spillway_slot_stream_bytes: "gauge",
    spillway_queue_depth: "gauge",
    spillway_queue_capacity: "gauge",
    spillway_queue_bytes: "gauge",
    spillway_queue_max_bytes: "gauge",
    spillway_sink_write_seconds: "histogram",
    spillway_sink_errors_total: "counter",
    spillway_confirmed_lsn: "gauge",
    spillway_process_resident_memory_bytes: "gauge",
    spillway_process_heap_bytes: "gauge",
    spillway_reconnects_total: "counter",
    spillway_source_paused: "gauge",
  });
  assert.match(text, /^spillway_process_resident_memory_bytes 1234$/m);
  assert.match(text, /^spillway_process_heap_bytes 567$/m);
  for (const status of WAL_STATUSES) {
    assert.match(text, new RegExp(`^spillway_slot_wal_status\\{status="${status}"\\} 0$`, "m"));
  }

  metrics.eventsTotal.labels({ table: "public.orders", op: "c" }).inc();
  metrics.sinkWriteSeconds.observe({ sink: "kafka" }, 0.0004);
  metrics.sinkErrorsTotal.inc({ sink: "kafka" });
  metrics.confirmedLsn.set(Number(0x16B3748n));
  metrics.setSlotWalStatus("unreserved");
  const after = registry.render();
  assert.match(after, /^spillway_events_total\{table="public\.orders",op="c"\} 1$/m);
  assert.match(after, /^spillway_sink_write_seconds_bucket\{sink="kafka",le="0\.0005"\} 1$/m);
  assert.match(after, /^spillway_sink_write_seconds_bucket\{sink="kafka",le="10"\} 1$/m);
  assert.match(after, /^spillway_sink_errors_total\{sink="kafka"\} 1$/m);
  assert.match(after, /^spillway_confirmed_lsn 23803720$/m);
  assert.deepEqual(
    WAL_STATUSES.map((status) => metrics.slotWalStatus.get({ status })),
    [0, 0, 1, 0],
  );
  metrics.setSlotWalStatus(null);
  assert.deepEqual(WAL_STATUSES.map((status) => metrics.slotWalStatus.get({ status })), [
    0,
    0,
    0,
    0,
  ]);
  assert.equal(SINK_WRITE_BUCKETS[0], 0.0005);
  assert.equal(SINK_WRITE_BUCKETS.at(-1), 10);
  assert.throws(() => standardMetrics(registry), /already registered/);
});

Deno.test("standardMetrics: memory is read from Deno.memoryUsage by default", () => {
  const registry = new MetricsRegistry();
  standardMetrics(registry);
  const rss = Number(
    /^spillway_process_resident_memory_bytes (\d+)$/m.exec(registry.render())?.[1],
  );
  assert(rss > 1_000_000, `RSS ${rss} should be at least 1 MB`);
});
