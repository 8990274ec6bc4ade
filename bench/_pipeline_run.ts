/**
 * One full pipeline run, as its own process (so that `bench/pipeline.ts` can sample its RSS):
 * a {@linkcode PipelineRunner} built from a pipeline YAML text by `parsePipelineConfig`, with
 * the metrics and health registries `spillway run` gives it, draining an existing slot through
 * the whole path (source → assembler → routing/TOAST → queue → sink → confirm) into a null
 * sink or the file sink the config names.
 *
 * The sink is wrapped by {@linkcode BenchSink}, which watches for the end of the run (the commit
 * of transaction `--xid`, or of the transaction carrying a logical message with prefix
 * `--stop-prefix`) and, with `--latency`, records for every change event the time from its
 * commit (`source.commitTime`, the server's clock) to the moment the sink's write resolved.
 * Once the runner has confirmed that commit, its position is sent to the server at once (the
 * measured end of the run) and the run is aborted: the runner drains and closes. (The time
 * `run()` takes to return after the abort is reported apart: the runner's slot monitor can hold
 * it for up to 10 s, see bench/RESULTS.md.) With `--transform FILE`, every table has that
 * transform (`transforms.on_error: skip`, so a failing event shows as a missing row; and
 * `transforms.timeout` from `--transform-timeout`, when given), bound by a pipeline file
 * `bench.yaml` in the file's folder; run it with `--unstable-worker-options`.
 *
 * Usage: `deno run -A bench/_pipeline_run.ts --url URL --slot NAME --publication NAME
 * --sink null|file [--file PATH] [--streaming on|off] (--xid XID | --stop-prefix P)
 * [--latency] [--transform FILE [--transform-timeout DURATION]]`
 *
 * Prints `{"event":"ready"}` once streaming, then one JSON line ({@linkcode PipelineRunResult}).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { basename, dirname, join } from "node:path";
import { formatLsn, type Lsn } from "../decoder/lsn.ts";
import { parsePipelineConfig } from "../config/mod.ts";
import { HealthRegistry } from "../ops/health.ts";
import { JsonRenderer } from "../formats/json.ts";
import { createLogger } from "../ops/log.ts";
import { MetricsRegistry } from "../ops/prometheus.ts";
import { standardMetrics } from "../ops/metrics.ts";
import { PipelineRunner } from "../pipelines/runner.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import { createSink } from "../sinks/mod.ts";
import { transformMetrics } from "../transforms/metrics.ts";
import { NullSink } from "../sinks/null.ts";
import type { Sink, SinkStatus, WriteOptions } from "../sinks/types.ts";
import type { SinkRecord } from "../events.ts";
import { extraYamlLines, printResult, quantile, readVmHwmKib } from "./_drain_common.ts";
import { heapSnapshotFromEnv, memorySampler, snapshotSecondsFromEnv } from "./_memory.ts";
import { heapProfiler } from "./_heap_profile.ts";
import { OUT_DIR } from "./_common.ts";

/** How long `run()` may take to return after the abort before the process exits anyway. */
export const SHUTDOWN_WAIT_MS = 2000;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Latency percentiles in milliseconds. */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** What one run measured; printed as the last JSON line. */
export interface PipelineRunResult {
  event: "result";
  /** Change records the sink was given. */
  rows: number;
  transactions: number;
  /** Process start → `runner.run()` called (module loading), in seconds. */
  startupSeconds: number;
  /**
   * `run()` called → the first write reached the sink. For a load of one streamed transaction,
   * that is when its Stream Commit arrived and the replay began.
   */
  firstWriteSeconds: number;
  /** `run()` called → the runner confirmed the stop transaction's commit (sinks durable). */
  confirmSeconds: number;
  /**
   * `run()` called → that position sent to the server in a status update: the measured time.
   * pg_recvlogical likewise sends its position before it exits.
   */
  seconds: number;
  /**
   * `run()` called → `run()` resolved after the abort (copy ended, sinks closed), or gave up
   * waiting {@linkcode SHUTDOWN_WAIT_MS} for it.
   */
  runSeconds: number;
  /** `run()` had not returned {@linkcode SHUTDOWN_WAIT_MS} after the abort. */
  shutdownStalled: boolean;
  /** Times the runner's source reconnected during the run. */
  reconnects: number;
  /** Status updates sent to get the confirmed position to the server (1 unless reconnected). */
  statusAttempts: number;
  /** The stop transaction was streamed by the server (protocol 2+). */
  streamed: boolean;
  commitEndLsn: string;
  /** The pgoutput protocol version the source negotiated. */
  protoVersion: number;
  /** pgoutput payload bytes received. */
  bytesReceived: number;
  /** Bytes of streamed transactions the assembler spilled to disk. */
  spilledBytes: number;
  /** Peak RSS of this process (VmHWM), KiB. */
  vmHwmKib: number;
  /** User + system CPU seconds of this process. */
  cpuSeconds: number;
  /** With `--latency`: commit time → sink write resolved, over events after the warm-up. */
  commitToSink?: LatencySummary;
  /** With `--latency`: the row's `sent_us` (clock_timestamp() at INSERT) → sink. */
  insertToSink?: LatencySummary;
  /** With `--latency`: commit → sink over every event, warm-up included. */
  commitToSinkAll?: LatencySummary;
  /** Events left out as warm-up (committed in the first `--warmup-ms`). */
  warmupEvents?: number;
}

interface RunOptions {
  url: string;
  slot: string;
  publication: string;
  sink: "null" | "file";
  file?: string;
  streaming: "on" | "off";
  xid?: number;
  stopPrefix?: string;
  latency: boolean;
  warmupMs: number;
  /** A transform module for every table, absolute. */
  transform?: string;
  /** `transforms.timeout`, e.g. `200ms`; the pipeline's default when absent. */
  transformTimeout?: string;
}

function parseRunArgs(args: string[]): RunOptions {
  const { values } = parseArgs({
    args,
    options: {
      url: { type: "string" },
      slot: { type: "string" },
      publication: { type: "string" },
      sink: { type: "string", default: "null" },
      file: { type: "string" },
      streaming: { type: "string", default: "on" },
      xid: { type: "string" },
      "stop-prefix": { type: "string" },
      latency: { type: "boolean", default: false },
      "warmup-ms": { type: "string", default: "2000" },
      transform: { type: "string" },
      "transform-timeout": { type: "string" },
    },
    strict: true,
  });
  for (const name of ["url", "slot", "publication"] as const) {
    if (values[name] === undefined) throw new Error(`Cannot run: option "--${name}" is required`);
  }
  if (values.sink !== "null" && values.sink !== "file") {
    throw new Error(`Cannot run: "--sink" must be null or file, not "${values.sink}"`);
  }
  if (values.sink === "file" && values.file === undefined) {
    throw new Error(`Cannot run: "--sink file" needs "--file PATH"`);
  }
  if (values.streaming !== "on" && values.streaming !== "off") {
    throw new Error(`Cannot run: "--streaming" must be on or off, not "${values.streaming}"`);
  }
  if ((values.xid === undefined) === (values["stop-prefix"] === undefined)) {
    throw new Error(`Cannot run: give exactly one of "--xid" and "--stop-prefix"`);
  }
  return {
    url: values.url!,
    slot: values.slot!,
    publication: values.publication!,
    sink: values.sink,
    file: values.file,
    streaming: values.streaming,
    xid: values.xid === undefined ? undefined : Number(values.xid),
    stopPrefix: values["stop-prefix"],
    latency: values.latency,
    warmupMs: Number(values["warmup-ms"]),
    transform: values.transform,
    transformTimeout: values["transform-timeout"],
  };
}

/** The pipeline file of a run: the slot and publication exist already; no HTTP endpoint. */
function pipelineYaml(options: RunOptions): string {
  const sink = options.sink === "file"
    ? `  - file: { path: ${JSON.stringify(options.file)}, fsync: true }`
    // Replaced by the runner's `sinks` option; the file must still name one.
    : "  - stdout: { format: json }";
  return [
    "name: bench",
    "source:",
    `  url: ${JSON.stringify(options.url)}`,
    `  slot: ${options.slot}`,
    `  publication: ${options.publication}`,
    "  create_slot: false",
    "  create_publication: false",
    `  streaming: ${options.streaming}`,
    "tables:",
    options.transform === undefined
      ? '  "public.*": {}'
      : `  "public.*": { transform: ${JSON.stringify(basename(options.transform))} }`,
    ...(options.transform === undefined ? [] : [
      "transforms:",
      "  on_error: skip",
      ...(options.transformTimeout === undefined ? [] : [`  timeout: ${options.transformTimeout}`]),
    ]),
    "sinks:",
    sink,
    "http: off",
    "log: { level: warn }",
    ...extraYamlLines(),
  ].join("\n");
}

/** A growable array of float64 values. */
class Samples {
  values = new Float64Array(1 << 14);
  length = 0;

  push(value: number): void {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = value;
  }
}

/** Microseconds since the Unix epoch, with sub-millisecond resolution. */
function nowMicros(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

/** Wraps the sink under test: finds the stop transaction and records latencies. */
class BenchSink implements Sink {
  readonly name: string;
  inner: Sink;
  rows = 0;
  transactions = 0;
  /** Set once the stop transaction's commit went through the sink. */
  stop: { endLsn: Lsn; streamed: boolean } | null = null;
  /** `performance.now()` of the first write. */
  firstWriteAt = 0;
  /** Called once, when {@linkcode stop} is set. */
  onStop: () => void = () => {};
  /** Called once, before the first write. */
  onFirstWrite: () => void = () => {};
  readonly commitToSink = new Samples();
  readonly insertToSink = new Samples();
  readonly commitMicros = new Samples();
  #options: RunOptions;
  #stopPending = false;

  constructor(inner: Sink, options: RunOptions) {
    this.inner = inner;
    this.name = inner.name;
    this.#options = options;
  }

  open(): Promise<void> {
    return this.inner.open();
  }

  async write(records: readonly SinkRecord[], options?: WriteOptions): Promise<void> {
    if (this.firstWriteAt === 0) {
      this.firstWriteAt = performance.now();
      this.onFirstWrite();
    }
    await this.inner.write(records, options);
    const now = this.#options.latency ? nowMicros() : 0;
    for (const record of records) {
      switch (record.kind) {
        case "change": {
          this.rows++;
          if (!this.#options.latency) break;
          const commit = Number(record.event.source.commitTime);
          this.commitMicros.push(commit);
          this.commitToSink.push(now - commit);
          const sent = record.event.after?.sent_us;
          if (typeof sent === "bigint") this.insertToSink.push(now - Number(sent));
          break;
        }
        case "message":
          if (record.event.prefix === this.#options.stopPrefix) this.#stopPending = true;
          break;
        case "commit":
          this.transactions++;
          if (this.stop === null && (this.#stopPending || record.tx.xid === this.#options.xid)) {
            this.stop = { endLsn: record.endLsn, streamed: record.tx.streamed };
            this.onStop();
          }
          break;
      }
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  status(): SinkStatus {
    return this.inner.status();
  }
}

function summarize(samples: Samples, from = 0): LatencySummary {
  return latencyOf(samples.values.slice(from, samples.length));
}

/** Percentiles, max and mean of latencies given in µs, in ms. */
export function latencyOf(micros: ArrayLike<number>): LatencySummary {
  const values = Float64Array.from(micros).sort();
  const pick = (q: number) => quantile(values, q) / 1000;
  let sum = 0;
  for (const value of values) sum += value;
  return {
    count: values.length,
    p50: pick(0.5),
    p90: pick(0.9),
    p99: pick(0.99),
    p999: pick(0.999),
    max: values.length === 0 ? Number.NaN : values[values.length - 1]! / 1000,
    mean: values.length === 0 ? Number.NaN : sum / values.length / 1000,
  };
}

/** VmHWM and CPU seconds of this process. */
function selfUsage(): { vmHwmKib: number; cpuSeconds: number } {
  const vmHwmKib = readVmHwmKib();
  let cpuSeconds = 0;
  try {
    // Fields after the parenthesized command name; utime and stime are the 12th and 13th.
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    cpuSeconds = (Number(fields[11]) + Number(fields[12])) / 100; // CLK_TCK is 100 on Linux
  } catch {
    // Not Linux: leave zeros.
  }
  return { vmHwmKib, cpuSeconds };
}

/** Runs the pipeline until the stop transaction is confirmed; returns what it measured. */
export async function runPipeline(options: RunOptions): Promise<PipelineRunResult> {
  // A transform's path is relative to the pipeline file: put that beside it.
  const file = options.transform === undefined
    ? "bench.yaml"
    : join(dirname(options.transform), "bench.yaml");
  const config = parsePipelineConfig(pipelineYaml(options), { file, env: {} });
  const controller = new AbortController();
  const registry = new MetricsRegistry();
  const sink = new BenchSink(new NullSink(), options);
  const types = new TypeRegistry();
  if (options.sink === "file") {
    sink.inner = await createSink(config.sinks[0]!, { renderer: new JsonRenderer(types) });
  }
  const runner = new PipelineRunner({
    config,
    log: createLogger({ level: "warn" }),
    sinks: [sink],
    types,
    signal: controller.signal,
    metrics: standardMetrics(registry),
    health: new HealthRegistry(),
    // on_error has no dead_letter.
    deadLetter: null,
    transformMetrics: transformMetrics(registry),
  });

  let ready = false;
  const readyWatch = setInterval(() => {
    if (runner.source?.stream) {
      ready = true;
      clearInterval(readyWatch);
      console.log(JSON.stringify({ event: "ready" }));
    }
  }, 10);
  let confirmedAt = 0;
  let sentAt = 0;
  let bytesReceived = 0;
  let statusAttempts = 0;
  // The runner confirms right after the sink's write resolved; look once that has settled,
  // then send the position at once (the runner would send it with its next status update, or
  // at close) and stop the pipeline.
  const checkConfirmed = () => {
    if (runner.state().confirmedLsn < sink.stop!.endLsn) {
      setTimeout(checkConfirmed, 0);
      return;
    }
    confirmedAt = performance.now();
    bytesReceived = runner.source?.bytesReceived ?? 0;
    sendConfirmed().finally(() => controller.abort());
  };
  /**
   * Sends the confirmed position; if the connection turns out to be gone (the walsender can
   * time the runner out while it replays a huge streamed transaction without yielding to the
   * event loop), waits for the runner to reconnect and sends it again on the new stream.
   */
  const sendConfirmed = async () => {
    const deadline = performance.now() + 120_000;
    while (performance.now() < deadline) {
      const source = runner.source;
      if (source === null || source.stream === null) {
        await delay(50);
        continue;
      }
      const reconnects = source.reconnects;
      statusAttempts++;
      // A stream made by a reconnect starts with nothing confirmed, so its status updates would
      // not carry the runner's position: hand the position to it again (a no-op otherwise).
      source.confirm(runner.state().confirmedLsn);
      const sentNow = await source.flushStatus().then(() => performance.now(), () => 0);
      // A write to a connection the server closed may still succeed; give the stream time
      // to see the end of the socket.
      await delay(200);
      if (sentNow > 0 && source.stream !== null && source.reconnects === reconnects) {
        sentAt = sentNow;
        return;
      }
    }
  };
  sink.onStop = () => setTimeout(checkConfirmed, 0);
  const started = performance.now();
  // SPILLWAY_BENCH_MEMORY=1: the peak of each part of the process's memory, on stderr.
  const memory = Deno.env.get("SPILLWAY_BENCH_MEMORY") === "1" ? memorySampler() : null;
  // SPILLWAY_BENCH_HEAP_PROFILE=all|survivors: what was allocated (or promoted), by function,
  // into bench/out/heap-<slot>-<mode>.txt.
  const heapMode = Deno.env.get("SPILLWAY_BENCH_HEAP_PROFILE");
  if (heapMode !== undefined && heapMode !== "all" && heapMode !== "survivors") {
    throw new Error(
      `SPILLWAY_BENCH_HEAP_PROFILE is "${heapMode}": set it to "all" or "survivors", or unset it`,
    );
  }
  // SPILLWAY_BENCH_PROBE_FROM=first-write: the heap profile and the snapshot's clock start with
  // the first sink write (a big transaction's replay, without its receiving).
  const probeFrom = Deno.env.get("SPILLWAY_BENCH_PROBE_FROM");
  if (probeFrom !== undefined && probeFrom !== "first-write") {
    throw new Error(
      `SPILLWAY_BENCH_PROBE_FROM is "${probeFrom}": set it to "first-write", or unset it`,
    );
  }
  snapshotSecondsFromEnv(); // checked now, not at the first write
  const heap: { profiler: ReturnType<typeof heapProfiler> | null } = { profiler: null };
  const startProbes = async () => {
    if (heapMode !== undefined) heap.profiler = heapProfiler(heapMode === "survivors");
    await heapSnapshotFromEnv(() => join(OUT_DIR, `snap-${options.slot}.heapsnapshot`));
  };
  if (probeFrom === undefined) await startProbes();
  else sink.onFirstWrite = () => void startProbes();
  // After the abort, run() drains and closes. Its slot monitor may sleep up to 10 s before it
  // notices (see bench/RESULTS.md); that is not waited for.
  let shutdownStalled = false;
  try {
    const stopped = runner.run().then(() => true);
    const run = await Promise.race([
      stopped,
      new Promise<false>((resolve) => {
        controller.signal.addEventListener("abort", () => {
          const timer = setTimeout(() => resolve(false), SHUTDOWN_WAIT_MS);
          stopped.finally(() => clearTimeout(timer)).catch(() => {});
        }, { once: true });
      }),
    ]);
    shutdownStalled = !run;
  } finally {
    clearInterval(readyWatch);
    if (memory !== null) console.error(JSON.stringify(memory.stop()));
    if (heap.profiler !== null) {
      const path = join(OUT_DIR, `heap-${options.slot}-${heapMode}.txt`);
      await Deno.writeTextFile(path, await heap.profiler.stop(40));
      console.error(`heap profile: ${path}`);
    }
  }
  if (!ready) throw new Error("The pipeline never started streaming");
  const finished = performance.now();
  if (sink.stop === null) throw new Error("The pipeline stopped before the stop transaction");
  if (confirmedAt === 0) {
    throw new Error("The pipeline stopped before it confirmed the stop transaction");
  }
  if (sentAt === 0) {
    throw new Error(
      `The confirmed position could not be sent to the server (${statusAttempts} attempts)`,
    );
  }
  let commitToSink: LatencySummary | undefined;
  let insertToSink: LatencySummary | undefined;
  let commitToSinkAll: LatencySummary | undefined;
  let warmupEvents: number | undefined;
  if (options.latency) {
    const first = sink.commitMicros.values[0] ?? 0;
    warmupEvents = 0;
    while (
      warmupEvents < sink.commitMicros.length &&
      sink.commitMicros.values[warmupEvents]! - first < options.warmupMs * 1000
    ) warmupEvents++;
    commitToSink = summarize(sink.commitToSink, warmupEvents);
    insertToSink = summarize(sink.insertToSink, warmupEvents);
    commitToSinkAll = summarize(sink.commitToSink);
  }
  const source = runner.source;
  return {
    event: "result",
    rows: sink.rows,
    transactions: sink.transactions,
    startupSeconds: started / 1000,
    firstWriteSeconds: (sink.firstWriteAt - started) / 1000,
    confirmSeconds: (confirmedAt - started) / 1000,
    seconds: (sentAt - started) / 1000,
    runSeconds: (finished - started) / 1000,
    shutdownStalled,
    reconnects: runner.source?.reconnects ?? 0,
    statusAttempts,
    streamed: sink.stop.streamed,
    commitEndLsn: formatLsn(sink.stop.endLsn),
    protoVersion: source?.protoVersion ?? 0,
    bytesReceived,
    spilledBytes: source?.assembler.spill.spilledBytes ?? 0,
    ...selfUsage(),
    ...(options.latency ? { commitToSink, insertToSink, commitToSinkAll, warmupEvents } : {}),
  };
}

if (import.meta.main) {
  const options = parseRunArgs(Deno.args);
  await printResult(
    () => runPipeline(options),
    900_000,
    `The pipeline run on slot "${options.slot}" timed out after 15 minutes`,
  );
  // A stalled shutdown leaves the runner's timers behind; the result is out, so leave.
  Deno.exit();
}
