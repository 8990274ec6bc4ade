/**
 * The runner's side connection, an ordinary SQL session beside the replication one:
 * heartbeats that keep the slot moving on an idle database, the slot watch (wal_status,
 * safe_wal_size, lag, decoding statistics), the gauges, and the health checks. It reads
 * the runner only through its state snapshot ({@linkcode RunnerState}).
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import { formatLsn, type Lsn } from "../decoder/lsn.ts";
import { connectOptions, type PipelineConfig } from "../config/mod.ts";
import type { HealthRegistry } from "../ops/health.ts";
import type { Logger } from "../ops/log.ts";
import type { SpillwayMetrics } from "../ops/metrics.ts";
import type { Counter, CounterChild } from "../ops/prometheus.ts";
import { querySlots, querySlotStats } from "../postgres/catalog.ts";
import { PgConnection } from "../postgres/connection.ts";
import type { ConnectOptions } from "../postgres/connection_string.ts";
import { quoteLiteral } from "../postgres/sql.ts";
import { sleep } from "../retry.ts";
import type { Sink } from "../sinks/types.ts";
import type { ChangeEvent, SinkRecord } from "../events.ts";

/** Prefix of the transactional heartbeat messages the runner writes and then swallows. */
export const HEARTBEAT_PREFIX = "spillway.heartbeat";

/** Below this many bytes of safe_wal_size, the slot is reported at risk. */
const SAFE_WAL_SIZE_WARNING = 256 * 1024 * 1024;

/** A snapshot of the runner for /health and /metrics. */
export interface RunnerState {
  running: boolean;
  queueDepth: number;
  queueCapacity: number;
  /** Bytes of change data queued or being written; the bound, `null` for none. */
  queueBytes: number;
  queueMaxBytes: number | null;
  /** True while reading is paused because the queue is above its high watermark. */
  paused: boolean;
  confirmedLsn: Lsn;
  serverWalEnd: Lsn;
  eventsWritten: number;
  transactionsWritten: number;
  lastError: string | null;
  /** True while the source has a replication stream open. */
  streaming: boolean;
  /** Bytes the source received so far, over every connection. */
  bytesReceived: number;
  /** Times the source reconnected. */
  reconnects: number;
  /** When a position was last confirmed (or the runner was made), in ms since the epoch. */
  lastConfirmAt: number;
  /** Commit time of the newest transaction written, in ms since the epoch. */
  lastCommitTimeMs: number | null;
  /** Heartbeat messages that came back through the stream (they reach no sink). */
  heartbeatsSeen: number;
  /** Set while a transform's `on_error: stop` holds the writer: which transform, and why. */
  heldBy: string | null;
}

/** What the slot monitor last read from the server. */
export interface SlotState {
  walStatus: string | null;
  /** PostgreSQL 17+: why the slot was invalidated (e.g. `wal_removed`); otherwise `null`. */
  invalidationReason: string | null;
  safeWalSize: number | null;
  confirmedFlushLsn: string | null;
  readAt: string;
}

/** Options of {@linkcode Monitor}. */
export interface MonitorOptions {
  config: PipelineConfig;
  log: Logger;
  /** The runner's state, read at every tick and health check. */
  state: () => RunnerState;
  metrics?: SpillwayMetrics;
  /** How often the slot's state is read from the server. Default 10 s. */
  intervalMs?: number;
}

/** Heartbeats, the slot watch, gauges and health checks of one runner. */
export class Monitor {
  readonly #config: PipelineConfig;
  readonly #log: Logger;
  readonly #state: () => RunnerState;
  readonly #metrics?: SpillwayMetrics;
  readonly #intervalMs: number;
  readonly #side: SideConnection;
  #slotState: SlotState | null = null;
  /** relid → op → the bound counter (no string key built per event). */
  #eventCounters = new Map<number, Partial<Record<ChangeEvent["op"], CounterChild>>>();

  constructor(options: MonitorOptions) {
    this.#config = options.config;
    this.#log = options.log;
    this.#state = options.state;
    this.#metrics = options.metrics;
    this.#intervalMs = options.intervalMs ?? 10_000;
    this.#side = new SideConnection(() => ({
      ...connectOptions(this.#config),
      applicationName: `spillway-monitor-${this.#config.name}`,
    }));
  }

  /** The slot as the monitor last read it. */
  get slotState(): SlotState | null {
    return this.#slotState;
  }

  /** Heartbeats (when configured) and the slot watch, until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const heartbeat = this.#config.source.heartbeatMs > 0 ? this.#heartbeat(signal) : null;
    const watch = this.#watch(signal);
    await heartbeat;
    await watch;
  }

  /** Closes the side connection (after {@linkcode Monitor.run} ended). */
  close(): Promise<void> {
    return this.#side.close();
  }

  /**
   * Counts a batch every sink took (events by table and op, transactions) and sets the
   * confirmed position and queue depth after it.
   */
  written(
    records: readonly SinkRecord[],
    transactions: number,
    after: { confirmedLsn: Lsn; queueDepth: number; queueBytes: number },
  ): void {
    const metrics = this.#metrics;
    if (!metrics) return;
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
    metrics.confirmedLsn.set(Number(after.confirmedLsn));
    metrics.queueDepth.set(after.queueDepth);
    metrics.queueBytes.set(after.queueBytes);
  }

  /** Forgets a relation's counters: after a schema change its table may have a new name. */
  forget(relid: number): void {
    this.#eventCounters.delete(relid);
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
      await sleep(this.#config.source.heartbeatMs, signal);
      if (signal.aborted) break;
      try {
        await this.#side.query(
          `SELECT pg_logical_emit_message(true, ${quoteLiteral(HEARTBEAT_PREFIX)}, ${
            quoteLiteral(new Date().toISOString())
          })`,
        );
      } catch (error) {
        this.#log("warn", "Heartbeat failed", {
          error: errorMessage(error),
        });
      }
    }
  }

  /**
   * Reads the slot's state (wal_status, safe_wal_size) and the server's decoding
   * counters into metrics, and warns when the slot is at risk of invalidation.
   */
  async #watch(signal: AbortSignal): Promise<void> {
    let warned: string | null = null;
    let lastEvents = this.#state().eventsWritten;
    let lastAt = performance.now();
    while (!signal.aborted) {
      const state = this.#state();
      const events = state.eventsWritten;
      if (events !== lastEvents) {
        const seconds = (performance.now() - lastAt) / 1000;
        this.#log("info", "Progress", {
          events,
          transactions: state.transactionsWritten,
          eventsPerSecond: Math.round((events - lastEvents) / Math.max(seconds, 0.001)),
          confirmed: formatLsn(state.confirmedLsn),
          queueDepth: state.queueDepth,
        });
      }
      lastEvents = events;
      lastAt = performance.now();
      try {
        await this.#readSlot();
        const slot = this.#slotState;
        const risk = slot === null ? null : slotRisk(slot, this.#config.source.slot);
        if (risk !== null && risk !== warned) {
          this.#log("warn", risk, { slot: this.#config.source.slot });
        }
        warned = risk;
      } catch (error) {
        this.#log("warn", "Reading the slot's state failed", {
          error: errorMessage(error),
        });
      }
      this.#updateGauges();
      await sleep(this.#intervalMs, signal);
    }
  }

  async #readSlot(): Promise<void> {
    const slot = this.#config.source.slot;
    const [row] = await this.#side.use((connection) => querySlots(connection, { slot }));
    this.#slotState = {
      walStatus: row?.walStatus ?? null,
      invalidationReason: row?.invalidationReason ?? null,
      safeWalSize: row?.safeWalSize ?? null,
      confirmedFlushLsn: row?.confirmedFlushLsn ?? null,
      readAt: new Date().toISOString(),
    };
    const metrics = this.#metrics;
    if (!metrics) return;
    const status = row?.walStatus;
    metrics.setSlotWalStatus(
      status === "reserved" || status === "extended" || status === "unreserved" || status === "lost"
        ? status
        : null,
    );
    metrics.slotSafeWalSizeBytes.set(this.#slotState.safeWalSize ?? Number.NaN);
    if (row?.lagBytes != null) metrics.replicationLagBytes.set(row.lagBytes);
    const stats = await this.#side.use((connection) => querySlotStats(connection, slot));
    if (stats) {
      metrics.slotSpillTxns.set(stats.spillTxns);
      metrics.slotSpillBytes.set(stats.spillBytes);
      metrics.slotStreamTxns.set(stats.streamTxns);
      metrics.slotStreamBytes.set(stats.streamBytes);
    }
  }

  #updateGauges(): void {
    const metrics = this.#metrics;
    if (!metrics) return;
    const state = this.#state();
    metrics.queueDepth.set(state.queueDepth);
    metrics.queueBytes.set(state.queueBytes);
    metrics.sourcePaused.set(state.paused ? 1 : 0);
    metrics.confirmedLsn.set(Number(state.confirmedLsn));
    const counted = metrics.bytesReceivedTotal.get();
    if (state.bytesReceived > counted) {
      metrics.bytesReceivedTotal.inc(state.bytesReceived - counted);
    }
    const reconnects = metrics.reconnectsTotal.get();
    if (state.reconnects > reconnects) metrics.reconnectsTotal.inc(state.reconnects - reconnects);
    if (state.lastCommitTimeMs !== null) {
      const ageMs = Date.now() - state.lastCommitTimeMs;
      metrics.replicationLagSeconds.set(state.queueDepth === 0 ? 0 : Math.max(0, ageMs / 1000));
    }
  }

  /** Registers the checks: source, queue, slot, and one per sink. */
  registerHealth(health: HealthRegistry, sinks: readonly Sink[]): void {
    health.register("source", () => {
      const state = this.#state();
      if (state.lastError !== null) return { status: "failing", detail: state.lastError };
      if (!state.streaming) {
        return { status: state.running ? "degraded" : "failing", detail: "not streaming" };
      }
      return {
        status: "ok",
        data: {
          slot: this.#config.source.slot,
          confirmedLsn: formatLsn(state.confirmedLsn),
          serverWalEnd: formatLsn(state.serverWalEnd),
          lagBytes: Number(state.serverWalEnd - state.confirmedLsn),
          reconnects: state.reconnects,
          lastConfirmAgoMs: Date.now() - state.lastConfirmAt,
        },
      };
    });
    health.register("queue", () => {
      const state = this.#state();
      return {
        status: state.paused ? "degraded" : "ok",
        detail: state.heldBy !== null
          ? `nothing is written: ${state.heldBy}`
          : state.paused
          ? "reading paused: the sinks are behind"
          : undefined,
        data: {
          depth: state.queueDepth,
          capacity: state.queueCapacity,
          bytes: state.queueBytes,
          maxBytes: state.queueMaxBytes,
        },
      };
    });
    health.register("slot", () => {
      const state = this.#slotState;
      if (state === null) return { status: "ok", detail: "not read yet" };
      const risk = slotRisk(state, this.#config.source.slot);
      return {
        status: state.walStatus === "lost" ? "failing" : risk === null ? "ok" : "degraded",
        ...(risk === null ? {} : { detail: risk }),
        data: { ...state },
      };
    });
    for (const sink of sinks) {
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

/** A warning when the slot may lose WAL it needs (or has lost it), or `null`. */
function slotRisk(state: SlotState, slot: string): string | null {
  if (state.walStatus === "lost") {
    const reason = state.invalidationReason;
    // Only WAL removal is max_slot_wal_keep_size's doing (PostgreSQL 14–16 name no reason).
    const prevent = reason === null || reason === "wal_removed"
      ? "; raise max_slot_wal_keep_size to avoid a repeat"
      : "";
    return `The replication slot "${slot}" was invalidated (wal_status lost${
      reason === null ? "" : `, reason ${reason}`
    }): changes were lost; drop the slot, create it again and re-snapshot (spillway run --reset-slot does the first two)${prevent}`;
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
    return this.use((connection) => connection.query(sql));
  }

  /** Runs `work` on the connection once the calls before it settled. */
  use<T>(work: (connection: PgConnection) => Promise<T>): Promise<T> {
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
