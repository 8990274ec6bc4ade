/**
 * The pipeline runner: source → routing and TOAST policy → bounded queue →
 * sinks → checkpoint.
 *
 * Guarantees:
 * - The position confirmed to PostgreSQL only moves past a transaction once
 *   every sink has durably written its commit (the writer confirms after all
 *   sinks' writes resolved).
 * - Backpressure: above `queue.high_watermark × capacity` events waiting, the
 *   reader stops taking batches from the replication stream; the stream then
 *   stops reading the socket and the walsender blocks. Status updates go on
 *   from the stream's timer, so wal_sender_timeout never fires.
 * - Shutdown: on abort, reading stops, the queue drains into the sinks, the
 *   final position is confirmed, and everything is closed.
 *
 * @module
 */

import { setField } from "../decoder/types/values.ts";
import { type ConnectOptions, PgConnection } from "../postgres/connection.ts";
import { ConfigError, isRetriable } from "../errors.ts";
import { formatLsn, type Lsn, LSN_ZERO, maxLsn } from "../decoder/lsn.ts";
import { FileSink } from "../sinks/file.ts";
import { StdoutSink } from "../sinks/stdout.ts";
import type { Sink } from "../sinks/types.ts";
import type { SinkRecord } from "../events.ts";
import { matchTable, type PipelineConfig, publishesAllTables } from "../config/mod.ts";
import { connectOptions } from "../config/mod.ts";
import { type ChangeEvent, EVENT_RELATION, type Row, type TransactionInfo } from "../events.ts";
import type { Logger } from "../ops/log.ts";
import { retry, sleep } from "../retry.ts";
import { ReplicationSource } from "../source/replication_source.ts";
import { quoteLiteral } from "../postgres/sql.ts";
import { quoteIdent } from "../postgres/sql.ts";
import { type SourceItem } from "../events.ts";
import { ToastPolicy } from "./toast.ts";
import { JsonRenderer } from "../formats/json.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import type { HealthRegistry } from "../ops/health.ts";
import type { Counter, CounterChild, SpillwayMetrics } from "../ops/metrics.ts";

/** Prefix of the transactional heartbeat messages the runner writes and then swallows. */
export const HEARTBEAT_PREFIX = "spillway.heartbeat";

/** Options of {@linkcode PipelineRunner}. */
export interface RunnerOptions {
  config: PipelineConfig;
  log: Logger;
  /** Sinks to use instead of those the config names (tests, benchmarks). */
  sinks?: Sink[];
  /** Aborting stops the pipeline gracefully. */
  signal?: AbortSignal;
  /** Updated as the pipeline runs (see ops/metrics.ts). */
  metrics?: SpillwayMetrics;
  /** The runner registers its checks here: source, queue, slot, and one per sink. */
  health?: HealthRegistry;
  /** How often the slot's state is read from the server. Default 10 s. */
  monitorIntervalMs?: number;
}

/** What the slot monitor last read from the server. */
export interface SlotState {
  walStatus: string | null;
  safeWalSize: number | null;
  confirmedFlushLsn: string | null;
  readAt: string;
}

/** How long a graceful stop waits for the transaction in flight to commit. */
const SHUTDOWN_GRACE_MS = 10_000;

/** Below this many bytes of safe_wal_size, the slot is reported at risk. */
const SAFE_WAL_SIZE_WARNING = 256 * 1024 * 1024;

/** A snapshot of the runner for /health and /metrics. */
export interface RunnerState {
  running: boolean;
  queueDepth: number;
  queueCapacity: number;
  /** True while reading is paused because the queue is above its high watermark. */
  paused: boolean;
  confirmedLsn: Lsn;
  serverWalEnd: Lsn;
  eventsWritten: number;
  transactionsWritten: number;
  lastError: string | null;
}

interface QueueEntry {
  record: SinkRecord | null;
  /** Set on entries after which the stream may confirm this position. */
  confirm: Lsn | null;
}

/** Per-relation routing, cached until the relation's schema changes. */
interface Route {
  topic: string;
  keyColumns: string[];
  toast: ToastPolicy;
}

/** Runs one pipeline until aborted or failed. */
export class PipelineRunner {
  readonly config: PipelineConfig;
  readonly sinks: Sink[];
  /** Type codecs of the source database, shared by decoding and rendering. */
  readonly types: TypeRegistry;
  #log: Logger;
  #signal?: AbortSignal;
  #source: ReplicationSource | null = null;
  #queue: QueueEntry[] = [];
  #queueHead = 0;
  #queueWaiter: (() => void) | null = null;
  #drainWaiter: (() => void) | null = null;
  #readerDone = false;
  #paused = false;
  #routes = new Map<number, Route | null>();
  #toastPolicies = new Map<string, ToastPolicy>();
  #openTx: { info: TransactionInfo; begun: boolean } | null = null;
  /** Set by a graceful stop that waits for the transaction in flight. */
  #stopAtCommit = false;
  #stopReading: () => void = () => {};
  /** Queue index of the open transaction's begin record. */
  #openTxStart = 0;
  #confirmed: Lsn = LSN_ZERO;
  #eventsWritten = 0;
  #transactionsWritten = 0;
  #lastError: string | null = null;
  #running = false;
  #metrics?: SpillwayMetrics;
  /** relid → op → the bound counter (no string key built per event). */
  #eventCounters = new Map<number, Partial<Record<ChangeEvent["op"], CounterChild>>>();
  #slotState: SlotState | null = null;
  #lastCommitTime: bigint | null = null;
  #lastConfirmAt = Date.now();
  #side: SideConnection;
  #monitorIntervalMs: number;

  constructor(options: RunnerOptions) {
    this.config = options.config;
    this.#log = options.log;
    this.#signal = options.signal;
    // A transform that would redact or drop data must not be skipped silently.
    const transformed = options.config.tables.find((entry) => entry.transform !== null);
    if (transformed !== undefined) {
      throw new ConfigError(
        `Cannot run pipeline "${options.config.name}": table "${transformed.pattern}" sets transform ${transformed.transform}, but transforms are not available in this version; remove the transform key to run without it`,
      );
    }
    if (options.config.source.twoPhase) {
      throw new ConfigError(
        `Cannot run pipeline "${options.config.name}" with source.two_phase: true: sinks would get a prepared transaction as committed before its COMMIT PREPARED (or ROLLBACK PREPARED); set two_phase: false, and the transaction arrives once it commits`,
      );
    }
    this.types = new TypeRegistry();
    const renderer = new JsonRenderer(this.types);
    this.sinks = options.sinks ?? options.config.sinks.map((sink) => createSink(sink, renderer));
    this.#metrics = options.metrics;
    this.#side = new SideConnection(() => ({
      ...connectOptions(this.config),
      applicationName: `spillway-monitor-${this.config.name}`,
    }));
    this.#monitorIntervalMs = options.monitorIntervalMs ?? 10_000;
    if (options.health) this.#registerHealth(options.health);
    if (this.#metrics) {
      const metrics = this.#metrics;
      metrics.queueCapacity.set(this.config.queue.capacity);
    }
  }

  /** The slot as the monitor last read it. */
  get slotState(): SlotState | null {
    return this.#slotState;
  }

  /** The replication source, once started. */
  get source(): ReplicationSource | null {
    return this.#source;
  }

  state(): RunnerState {
    return {
      running: this.#running,
      queueDepth: this.#queue.length - this.#queueHead,
      queueCapacity: this.config.queue.capacity,
      paused: this.#paused,
      confirmedLsn: this.#confirmed,
      serverWalEnd: this.#source?.stream?.serverWalEnd ?? LSN_ZERO,
      eventsWritten: this.#eventsWritten,
      transactionsWritten: this.#transactionsWritten,
      lastError: this.#lastError,
    };
  }

  /** Runs until the signal aborts (resolves) or something fails that retries cannot mend (rejects). */
  async run(): Promise<void> {
    this.#running = true;
    const config = this.config;
    const log = this.#log;
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    this.#signal?.addEventListener("abort", onAbort, { once: true });
    if (this.#signal?.aborted) stop.abort();
    let heartbeat: Promise<void> | null = null;
    let monitor: Promise<void> | null = null;
    try {
      for (const sink of this.sinks) await sink.open();
      const source = await ReplicationSource.open({
        connection: connectOptions(config),
        slot: config.source.slot,
        createSlot: config.source.createSlot,
        publication: config.source.publication,
        createPublication: config.source.createPublication,
        publicationTarget: (connection) => publicationTarget(config, connection),
        startLsn: config.source.startLsn ?? undefined,
        protoVersion: config.source.protoVersion === "auto"
          ? undefined
          : config.source.protoVersion,
        streaming: config.source.streaming === "parallel"
          ? "parallel"
          : config.source.streaming === "on",
        binary: config.source.binary,
        twoPhase: config.source.twoPhase || undefined,
        failover: config.source.failover || undefined,
        messages: true,
        statusIntervalMs: config.source.statusIntervalMs,
        spill: { memoryLimitBytes: config.spill.memoryLimitBytes, dir: config.spill.dir },
        types: this.types,
        reconnect: {
          maxAttempts: config.source.reconnect.maxAttempts,
          initialDelayMs: config.source.reconnect.initialDelayMs,
          maxDelayMs: config.source.reconnect.maxDelayMs,
        },
        signal: stop.signal,
        log,
      }).catch((error) => {
        // Stopped while waiting for a slot another reader still held: a clean stop.
        if (stop.signal.aborted) return null;
        throw error;
      });
      if (source === null) {
        log("info", "Pipeline stopped before replication started");
        return;
      }
      this.#source = source;
      this.#confirmed = source.slotInfo?.confirmedFlushLsn ?? LSN_ZERO;
      if (config.source.heartbeatMs > 0) heartbeat = this.#heartbeat(stop.signal);
      monitor = this.#monitor(stop.signal);
      const writer = this.#writeLoop(stop);
      try {
        await this.#readLoop(this.#readingSignal(stop.signal));
      } finally {
        this.#dropOpenTransaction();
        this.#readerDone = true;
        this.#wakeWriter();
        // Even when reading failed, no sink is closed while a write is still in flight.
        await writer.catch(() => {});
      }
      await writer;
      log("info", "Pipeline stopped", {
        confirmed: formatLsn(this.#confirmed),
        events: this.#eventsWritten,
        transactions: this.#transactionsWritten,
      });
    } catch (error) {
      this.#lastError = error instanceof Error ? error.message : String(error);
      throw error;
    } finally {
      stop.abort();
      this.#signal?.removeEventListener("abort", onAbort);
      await heartbeat;
      await monitor;
      await this.#side.close();
      await this.#source?.close(); // sends the last confirmed position
      for (const sink of this.sinks) {
        await sink.close().catch((error) =>
          log("warn", "Closing a sink failed", { sink: sink.name, error: String(error) })
        );
      }
      this.#running = false;
    }
  }

  /**
   * When reading stops: at once on a failure, or when the stop arrives between
   * transactions; otherwise once the transaction in flight has committed (so a
   * graceful stop leaves whole transactions in the sinks), at most
   * {@linkcode SHUTDOWN_GRACE_MS} later.
   */
  #readingSignal(stop: AbortSignal): AbortSignal {
    const reading = new AbortController();
    this.#stopReading = () => reading.abort();
    stop.addEventListener("abort", () => {
      if (this.#openTx === null || this.#lastError !== null) {
        reading.abort();
        return;
      }
      this.#stopAtCommit = true;
      const timer = setTimeout(() => reading.abort(), SHUTDOWN_GRACE_MS);
      reading.signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
    }, { once: true });
    return reading.signal;
  }

  async #readLoop(signal: AbortSignal): Promise<void> {
    const source = this.#source!;
    const highWater = Math.max(
      1,
      Math.floor(this.config.queue.capacity * this.config.queue.highWatermark),
    );
    for await (const batch of source.batches(signal)) {
      for (const item of batch) {
        if (signal.aborted) return; // the rest is left unconfirmed for the next run
        this.#accept(item);
      }
      this.#wakeWriter();
      if (this.#depth() >= highWater) {
        this.#paused = true;
        this.#metrics?.sourcePaused.set(1);
        this.#log("debug", "Queue above its high watermark; reading paused", {
          depth: this.#depth(),
        });
        while (this.#depth() >= highWater && !signal.aborted && this.#lastError === null) {
          await new Promise<void>((resolve) => this.#drainWaiter = resolve);
        }
        this.#paused = false;
        this.#metrics?.sourcePaused.set(0);
      }
      if (this.#lastError !== null) return;
    }
  }

  #depth(): number {
    return this.#queue.length - this.#queueHead;
  }

  #push(record: SinkRecord | null, confirm: Lsn | null): void {
    this.#queue.push({ record, confirm });
  }

  /** Turns one source item into queue entries: routing, filtering, TOAST policy. */
  #accept(item: SourceItem): void {
    switch (item.kind) {
      case "begin":
        // Written lazily, with the first change that is kept: filtered-out and
        // heartbeat transactions leave no records, only a position to confirm.
        this.#openTx = { info: item.tx, begun: false };
        return;
      case "change": {
        const record = this.#route(item.event);
        if (record === null) return;
        this.#beginIfNeeded();
        this.#push(record, null);
        return;
      }
      case "message":
        if (item.event.prefix === HEARTBEAT_PREFIX) return;
        if (!item.event.transactional) {
          this.#push({ kind: "message", event: item.event }, item.event.lsn);
          return;
        }
        this.#beginIfNeeded();
        this.#push({ kind: "message", event: item.event }, null);
        return;
      case "commit":
      case "prepare": {
        const open = this.#openTx;
        this.#openTx = null;
        const record: SinkRecord | null = open?.begun
          ? { kind: "commit", tx: item.tx, endLsn: item.endLsn, eventCount: item.eventCount }
          : null;
        this.#push(record, item.endLsn);
        if (this.#stopAtCommit) this.#stopReading();
        return;
      }
      case "commit-prepared":
      case "rollback-prepared":
        this.#push(null, item.endLsn);
        return;
      case "schema-change":
        this.#routes.delete(item.relid);
        this.#eventCounters.delete(item.relid); // the table may have a new name
        this.#push(item, null);
        return;
      case "restart":
        // The transaction in progress will be sent again from its Begin.
        this.#dropOpenTransaction();
        return;
    }
  }

  /**
   * Drops the queued part of a transaction that will not be finished by this
   * session (a reconnect re-sends it whole; a shutdown leaves it to the next
   * run). What the writer already took stays written: at-least-once.
   */
  #dropOpenTransaction(): void {
    // When the writer already took its first records, the rest still queued goes.
    if (this.#openTx?.begun) this.#queue.length = Math.max(this.#openTxStart, this.#queueHead);
    this.#openTx = null;
  }

  #beginIfNeeded(): void {
    const open = this.#openTx;
    if (open === null || open.begun) return;
    open.begun = true;
    this.#openTxStart = this.#queue.length;
    this.#push({ kind: "begin", tx: open.info }, null);
  }

  #route(event: ChangeEvent): SinkRecord | null {
    const relid = event.source.relid;
    let route = this.#routes.get(relid);
    if (route === undefined) {
      route = this.#makeRoute(event);
      this.#routes.set(relid, route);
    }
    if (route === null) return null;
    const key = keyOf(event, route.keyColumns);
    if (event.unchanged.length > 0 || route.toast.mode === "last_value") {
      route.toast.apply(event, key === null ? null : JSON.stringify(key, bigintSafe));
    }
    return { kind: "change", event, topic: route.topic, key };
  }

  #makeRoute(event: ChangeEvent): Route | null {
    const { schema, table, relid } = event.source;
    const resolved = matchTable(this.config, schema, table);
    if (resolved === null) return null;
    // The relation the event was decoded with: the assembler may already know a newer one.
    const relation = event[EVENT_RELATION] ?? this.#source?.assembler.relations.get(relid);
    const keyColumns = resolved.key ??
      relation?.columns.filter((column) => column.isKey).map((column) => column.name) ?? [];
    const policyKey = `${schema}.${table}`;
    let toast = this.#toastPolicies.get(policyKey);
    if (toast === undefined) {
      toast = new ToastPolicy({
        mode: resolved.toast,
        placeholder: resolved.toastPlaceholder,
        cacheSize: resolved.toastCacheSize,
      });
      this.#toastPolicies.set(policyKey, toast);
    }
    return { topic: resolved.topic, keyColumns, toast };
  }

  #wakeWriter(): void {
    const waiter = this.#queueWaiter;
    this.#queueWaiter = null;
    waiter?.();
  }

  /** Takes everything queued (up to half the capacity), waiting for at least one entry. */
  async #take(): Promise<QueueEntry[] | null> {
    for (;;) {
      const depth = this.#depth();
      if (depth > 0) {
        const count = Math.min(depth, Math.max(1, Math.floor(this.config.queue.capacity / 2)));
        const entries = this.#queue.slice(this.#queueHead, this.#queueHead + count);
        this.#queueHead += count;
        if (this.#queueHead > 4096 && this.#queueHead * 2 > this.#queue.length) {
          this.#queue = this.#queue.slice(this.#queueHead);
          this.#openTxStart -= this.#queueHead;
          this.#queueHead = 0;
        }
        const drain = this.#drainWaiter;
        this.#drainWaiter = null;
        drain?.();
        return entries;
      }
      if (this.#readerDone) return null;
      await new Promise<void>((resolve) => this.#queueWaiter = resolve);
    }
  }

  async #writeLoop(stop: AbortController): Promise<void> {
    try {
      for (;;) {
        const entries = await this.#take();
        if (entries === null) return;
        const records: SinkRecord[] = [];
        let confirm: Lsn | null = null;
        let transactions = 0;
        let events = 0;
        let lastCommitTime: bigint | null = null;
        for (const entry of entries) {
          const record = entry.record;
          if (record !== null) {
            records.push(record);
            if (record.kind === "change") events++;
            if (record.kind === "commit") {
              transactions++;
              lastCommitTime = record.tx.commitTime;
            }
          }
          if (entry.confirm !== null) confirm = entry.confirm;
        }
        if (records.length > 0) {
          // A batch that confirms nothing need not be durable yet: the next one that does covers it.
          const durable = confirm !== null;
          await Promise.all(
            this.sinks.map((sink) => this.#writeSink(sink, records, durable, stop.signal)),
          );
        }
        this.#eventsWritten += events;
        this.#transactionsWritten += transactions;
        if (lastCommitTime !== null) this.#lastCommitTime = lastCommitTime;
        if (confirm !== null) {
          // Every sink holds everything up to here durably.
          this.#confirmed = maxLsn(this.#confirmed, confirm);
          this.#source?.confirm(this.#confirmed);
          this.#lastConfirmAt = Date.now();
        }
        if (this.#metrics) this.#count(records, transactions);
      }
    } catch (error) {
      this.#lastError = error instanceof Error ? error.message : String(error);
      stop.abort();
      const drain = this.#drainWaiter;
      this.#drainWaiter = null;
      drain?.();
      throw error;
    }
  }

  #count(records: SinkRecord[], transactions: number): void {
    const metrics = this.#metrics!;
    for (const record of records) {
      if (record.kind !== "change") continue;
      const { schema, table, relid } = record.event.source;
      const op = record.event.op;
      let byOp = this.#eventCounters.get(relid);
      if (byOp === undefined) {
        byOp = {};
        this.#eventCounters.set(relid, byOp);
      }
      let counter = byOp[op];
      if (counter === undefined) {
        counter = (metrics.eventsTotal as Counter<"table" | "op">).labels({
          table: `${schema}.${table}`,
          op,
        });
        byOp[op] = counter;
      }
      counter.inc();
    }
    if (transactions > 0) metrics.transactionsTotal.inc(transactions);
    metrics.confirmedLsn.set(Number(this.#confirmed));
    metrics.queueDepth.set(this.#depth());
  }

  async #writeSink(
    sink: Sink,
    records: SinkRecord[],
    durable: boolean,
    signal: AbortSignal,
  ): Promise<void> {
    const started = performance.now();
    try {
      await this.#writeSinkWithRetry(sink, records, durable, signal);
    } catch (error) {
      this.#metrics?.sinkErrorsTotal.inc({ sink: sink.name });
      throw error;
    }
    this.#metrics?.sinkWriteSeconds.observe(
      { sink: sink.name },
      (performance.now() - started) / 1000,
    );
  }

  async #writeSinkWithRetry(
    sink: Sink,
    records: SinkRecord[],
    durable: boolean,
    signal: AbortSignal,
  ): Promise<void> {
    await retry(() => sink.write(records, { durable }), {
      maxAttempts: 8,
      initialDelayMs: 200,
      maxDelayMs: 10_000,
      shouldRetry: (error) => isRetriable(error) && !signal.aborted,
      onRetry: (error, attempt, delayMs) => {
        this.#metrics?.sinkErrorsTotal.inc({ sink: sink.name });
        this.#log("warn", "Sink write failed; retrying", {
          sink: sink.name,
          attempt,
          delayMs,
          error: error instanceof Error ? error.message : String(error),
        });
      },
    });
  }

  /**
   * Writes a transactional logical message every heartbeat period. It makes a
   * (tiny) transaction in this database, so the slot's position moves even when
   * the published tables are idle while other databases fill the WAL. A
   * non-transactional message would not: the server only advances a slot past
   * transactions it decodes.
   */
  async #heartbeat(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(this.config.source.heartbeatMs, signal);
      if (signal.aborted) break;
      try {
        await this.#side.query(
          `SELECT pg_logical_emit_message(true, ${quoteLiteral(HEARTBEAT_PREFIX)}, ${
            quoteLiteral(new Date().toISOString())
          })`,
        );
      } catch (error) {
        this.#log("warn", "Heartbeat failed", {
          error: error instanceof Error ? error.message : String(error),
        });
      }
    }
  }

  /**
   * Reads the slot's state (wal_status, safe_wal_size) and the server's decoding
   * counters into metrics, and warns when the slot is at risk of invalidation.
   */
  async #monitor(signal: AbortSignal): Promise<void> {
    let warned: string | null = null;
    let lastEvents = this.#eventsWritten;
    let lastAt = performance.now();
    while (!signal.aborted) {
      const events = this.#eventsWritten;
      if (events !== lastEvents) {
        const seconds = (performance.now() - lastAt) / 1000;
        this.#log("info", "Progress", {
          events,
          transactions: this.#transactionsWritten,
          eventsPerSecond: Math.round((events - lastEvents) / Math.max(seconds, 0.001)),
          confirmed: formatLsn(this.#confirmed),
          queueDepth: this.#depth(),
        });
      }
      lastEvents = events;
      lastAt = performance.now();
      try {
        await this.#readSlot();
        const state = this.#slotState;
        const risk = state === null ? null : slotRisk(state);
        if (risk !== null && risk !== warned) {
          this.#log("warn", risk, { slot: this.config.source.slot });
        }
        warned = risk;
      } catch (error) {
        this.#log("warn", "Reading the slot's state failed", {
          error: error instanceof Error ? error.message : String(error),
        });
      }
      this.#updateGauges();
      await sleep(this.#monitorIntervalMs, signal);
    }
  }

  async #readSlot(): Promise<void> {
    const slot = quoteLiteral(this.config.source.slot);
    const [row] = await this.#side.queryObjects(
      `SELECT wal_status, safe_wal_size, confirmed_flush_lsn::text AS confirmed_flush_lsn,
              pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn) AS lag
         FROM pg_catalog.pg_replication_slots WHERE slot_name = ${slot}`,
    );
    this.#slotState = {
      walStatus: row?.wal_status ?? null,
      safeWalSize: row?.safe_wal_size == null ? null : Number(row.safe_wal_size),
      confirmedFlushLsn: row?.confirmed_flush_lsn ?? null,
      readAt: new Date().toISOString(),
    };
    const metrics = this.#metrics;
    if (!metrics) return;
    const status = row?.wal_status;
    metrics.setSlotWalStatus(
      status === "reserved" || status === "extended" || status === "unreserved" || status === "lost"
        ? status
        : null,
    );
    metrics.slotSafeWalSizeBytes.set(this.#slotState.safeWalSize ?? Number.NaN);
    if (row?.lag != null) metrics.replicationLagBytes.set(Number(row.lag));
    const [stats] = await this.#side.queryObjects(
      `SELECT spill_txns, spill_bytes, stream_txns, stream_bytes
         FROM pg_catalog.pg_stat_replication_slots WHERE slot_name = ${slot}`,
    );
    if (stats) {
      metrics.slotSpillTxns.set(Number(stats.spill_txns ?? 0));
      metrics.slotSpillBytes.set(Number(stats.spill_bytes ?? 0));
      metrics.slotStreamTxns.set(Number(stats.stream_txns ?? 0));
      metrics.slotStreamBytes.set(Number(stats.stream_bytes ?? 0));
    }
  }

  #updateGauges(): void {
    const metrics = this.#metrics;
    if (!metrics) return;
    metrics.queueDepth.set(this.#depth());
    metrics.sourcePaused.set(this.#paused ? 1 : 0);
    metrics.confirmedLsn.set(Number(this.#confirmed));
    const source = this.#source;
    if (source) {
      const received = source.bytesReceived;
      const counted = metrics.bytesReceivedTotal.get();
      if (received > counted) metrics.bytesReceivedTotal.inc(received - counted);
      const reconnects = metrics.reconnectsTotal.get();
      if (source.reconnects > reconnects) {
        metrics.reconnectsTotal.inc(source.reconnects - reconnects);
      }
    }
    if (this.#lastCommitTime !== null) {
      const ageMs = Date.now() - Number(this.#lastCommitTime / 1000n);
      metrics.replicationLagSeconds.set(this.#depth() === 0 ? 0 : Math.max(0, ageMs / 1000));
    }
  }

  #registerHealth(health: HealthRegistry): void {
    health.register("source", () => {
      const source = this.#source;
      if (this.#lastError !== null) return { status: "failing", detail: this.#lastError };
      if (source === null || source.stream === null) {
        return { status: this.#running ? "degraded" : "failing", detail: "not streaming" };
      }
      return {
        status: "ok",
        data: {
          slot: this.config.source.slot,
          confirmedLsn: formatLsn(this.#confirmed),
          serverWalEnd: formatLsn(source.stream.serverWalEnd),
          lagBytes: Number(source.stream.serverWalEnd - this.#confirmed),
          reconnects: source.reconnects,
          lastConfirmAgoMs: Date.now() - this.#lastConfirmAt,
        },
      };
    });
    health.register("queue", () => {
      const depth = this.#depth();
      return {
        status: this.#paused ? "degraded" : "ok",
        detail: this.#paused ? "reading paused: the sinks are behind" : undefined,
        data: { depth, capacity: this.config.queue.capacity },
      };
    });
    health.register("slot", () => {
      const state = this.#slotState;
      if (state === null) return { status: "ok", detail: "not read yet" };
      const risk = slotRisk(state);
      return {
        status: state.walStatus === "lost" ? "failing" : risk === null ? "ok" : "degraded",
        ...(risk === null ? {} : { detail: risk }),
        data: { ...state },
      };
    });
    for (const sink of this.sinks) {
      health.register(`sink:${sink.name}`, () => {
        const status = sink.status();
        return {
          status: status.state,
          ...(status.lastError ? { detail: status.lastError } : {}),
          data: { written: status.written },
        };
      });
    }
  }
}

/** A warning when the slot may lose WAL it needs, or `null`. */
function slotRisk(state: SlotState): string | null {
  if (state.walStatus === "lost") {
    return "The replication slot was invalidated (wal_status lost): changes were lost; drop the slot, create it again and re-snapshot";
  }
  if (state.walStatus === "unreserved") {
    return "The replication slot is about to be invalidated (wal_status unreserved): the WAL it needs is past max_slot_wal_keep_size; the pipeline must catch up now";
  }
  if (state.safeWalSize !== null && state.safeWalSize < SAFE_WAL_SIZE_WARNING) {
    return `The replication slot is within ${
      Math.round(state.safeWalSize / 1048576)
    } MB of max_slot_wal_keep_size (safe_wal_size); it will be invalidated if it falls further behind`;
  }
  return null;
}

/**
 * A normal SQL connection for heartbeats and monitoring, opened on first use,
 * reopened after a failure, and used by one caller at a time.
 */
class SideConnection {
  #connect: () => ConnectOptions;
  #connection: PgConnection | null = null;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(connect: () => ConnectOptions) {
    this.#connect = connect;
  }

  query(sql: string): Promise<unknown> {
    return this.#serial((connection) => connection.query(sql));
  }

  queryObjects(sql: string): Promise<Record<string, string | null>[]> {
    return this.#serial((connection) => connection.queryObjects(sql));
  }

  #serial<T>(work: (connection: PgConnection) => Promise<T>): Promise<T> {
    const run = this.#tail.then(async () => {
      try {
        this.#connection ??= await PgConnection.connect(this.#connect());
        return await work(this.#connection);
      } catch (error) {
        this.#connection?.destroy();
        this.#connection = null;
        throw error;
      }
    });
    this.#tail = run.catch(() => {});
    return run;
  }

  async close(): Promise<void> {
    await this.#tail;
    await this.#connection?.close();
    this.#connection = null;
  }
}

/** Builds a sink from its configuration. */
export function createSink(
  config: PipelineConfig["sinks"][number],
  renderer: JsonRenderer = new JsonRenderer(),
): Sink {
  switch (config.type) {
    case "stdout":
      return new StdoutSink({ format: config.format, renderer });
    case "file":
      return new FileSink({
        path: config.path,
        rotateBytes: config.rotateBytes,
        fsync: config.fsync,
        renderer,
      });
    case "kafka":
      throw new ConfigError(
        "Cannot create the kafka sink: it is not available in this version; use the stdout or file sink",
      );
  }
}

/**
 * The FOR clause of a publication created for this pipeline: `FOR ALL TABLES`
 * when an entry matches every schema and table, otherwise the tables the entries
 * match now.
 */
export async function publicationTarget(
  config: PipelineConfig,
  connection: PgConnection,
): Promise<string> {
  if (publishesAllTables(config)) return "FOR ALL TABLES";
  const rows = await connection.queryObjects(
    `SELECT schemaname, tablename FROM pg_catalog.pg_tables
      WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
      ORDER BY 1, 2`,
  );
  const tables = rows
    .filter((row) => matchTable(config, row.schemaname ?? "", row.tablename ?? "") !== null)
    .map((row) => `${quoteIdent(row.schemaname ?? "")}.${quoteIdent(row.tablename ?? "")}`);
  if (tables.length === 0) {
    throw new Error(
      `Cannot create publication "${config.source.publication}": no existing table matches the pipeline's tables (${
        config.tables.map((entry) => entry.pattern).join(", ")
      }); create the tables first or fix the names`,
    );
  }
  return `FOR TABLE ${tables.join(", ")}`;
}

function keyOf(event: ChangeEvent, columns: string[]): Row | null {
  if (columns.length === 0) return null;
  const row = event.after ?? event.before;
  if (row === null) return null;
  const key: Row = {};
  for (const column of columns) {
    setField<unknown>(key, column, row[column] ?? event.before?.[column] ?? null);
  }
  return key;
}

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}
