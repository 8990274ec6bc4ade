/**
 * The pipeline runner: source → routing and TOAST policy (`route.ts`) → bounded queue
 * (`queue.ts`) → the tables' transforms (`transforms/host.ts`) → sinks → checkpoint.
 * Heartbeats, the slot watch and the health checks run beside it (`monitor.ts`).
 *
 * Transforms run in the writer, on each batch it takes from the queue, rather than between
 * routing and the queue: the reader goes on decoding the next batches on the main thread while
 * the Workers transform this one; a transaction cut by a reconnect is still trimmed from the
 * queue as before; and `on_error: stop` holds the writer, so the queue fills and reading pauses
 * by the same backpressure that a slow sink causes, keepalives still answered.
 *
 * Guarantees:
 * - The position confirmed to PostgreSQL only moves past a transaction once
 *   every sink has durably written its commit (the writer confirms after all
 *   sinks' writes resolved).
 * - Backpressure: above `queue.high_watermark × capacity` events or
 *   `high_watermark × max_bytes` bytes held (queued, or in the batches the sinks
 *   are writing), the reader stops taking batches from the replication stream;
 *   the stream then stops reading the socket and the walsender blocks. Status
 *   updates go on from the stream's timer, so wal_sender_timeout never fires.
 * - Shutdown: on abort, reading stops, the queue drains into the sinks, the
 *   final position is confirmed, and everything is closed. A sink's transient
 *   errors are retried for the grace period of the stop.
 *
 * The runner makes no sinks: the caller passes them in, with the type registry their
 * renderers share with the source (see `run_pipeline.ts` and `sinks/registry.ts`).
 *
 * @module
 */

import { ConfigError, errorMessage, isRetriable } from "../errors.ts";
import { formatLsn, type Lsn, LSN_ZERO, maxLsn } from "../decoder/lsn.ts";
import type { TypeRegistry } from "../decoder/types/registry.ts";
import { TableFactsRegistry } from "../decoder/table_facts.ts";
import {
  type ChangeEvent,
  confirmableLsn,
  type SinkRecord,
  type SourceItem,
  type TransactionInfo,
} from "../events.ts";
import {
  connectOptions,
  type PipelineConfig,
  type RouteRule,
  type RoutingConfig,
} from "../config/mod.ts";
import type { ConnectOptions } from "../postgres/connection_string.ts";
import type { HealthRegistry } from "../ops/health.ts";
import type { Logger } from "../ops/log.ts";
import type { SpillwayMetrics } from "../ops/metrics.ts";
import { retry } from "../retry.ts";
import { TransformHost } from "../transforms/host.ts";
import type { TransformMetrics } from "../transforms/metrics.ts";
import { TypesRefresher } from "../transforms/types_files.ts";
import { PgConnection } from "../postgres/connection.ts";
import { quoteIdent } from "../postgres/sql.ts";
import type { Sink } from "../sinks/types.ts";
import { DEFAULT_READ_AHEAD_BYTES, ReplicationSource } from "../source/replication_source.ts";
import { HEARTBEAT_PREFIX, Monitor, type RunnerState, type SlotState } from "./monitor.ts";
import { BoundedQueue, type QueueBatch } from "./queue.ts";
import { publicationTarget, Router } from "./route.ts";
import {
  checkRecordedSlot,
  type PipelineState,
  probeStateFile,
  readState,
  StateGate,
  StateRecorder,
} from "./state.ts";

export type { RunnerState, SlotState } from "./monitor.ts";

/** Options of {@linkcode PipelineRunner}. */
export interface RunnerOptions {
  config: PipelineConfig;
  log: Logger;
  /** Where records go (see `sinks/registry.ts`); the runner opens and closes them. */
  sinks: Sink[];
  /** Type codecs of the source database; pass the registry the sinks render with. */
  types: TypeRegistry;
  /**
   * Filled with each table's catalog facts (NOT NULL, defaults, primary key) as its Relation
   * message arrives; pass the registry the sinks read (the Kafka sink's schemas and keys).
   * Default: a registry of the runner's own.
   */
  tables?: TableFactsRegistry;
  /** How to reach the source; default `connectOptions(config)` (its files read then). */
  connection?: ConnectOptions;
  /** Aborting stops the pipeline gracefully. */
  signal?: AbortSignal;
  /** Updated as the pipeline runs (see ops/metrics.ts). */
  metrics?: SpillwayMetrics;
  /** The runner registers its checks here: source, queue, slot, and one per sink. */
  health?: HealthRegistry;
  /** How often the slot's state is read from the server. Default 10 s. */
  monitorIntervalMs?: number;
  /**
   * Where events go whose transform failed and whose `on_error` says dead_letter; the runner
   * opens and closes it. Required when tables have transforms and on_error has dead_letter.
   */
  deadLetter?: Sink | null;
  /** The transforms' metrics (see transforms/metrics.ts). */
  transformMetrics?: TransformMetrics;
  /** Follow transform files for hot reload (default true). */
  watchTransforms?: boolean;
}

/**
 * How long a graceful stop waits for the transaction in flight to commit, and how long
 * after the stop a sink's transient errors are still retried.
 */
const SHUTDOWN_GRACE_MS = 10_000;

/** A batch ready for the sinks: its records, its dead letters, the position it confirms. */
interface Prepared {
  records: SinkRecord[];
  deadLetters: SinkRecord[];
  confirm: Lsn | null;
  /** What it was taken from the queue as, released once the sinks have it. */
  taken: QueueBatch;
}

/** The transaction being read: its begin record is queued with its first kept record. */
interface OpenTransaction {
  info: TransactionInfo;
  begun: boolean;
  /** Change and transactional message records queued for the sinks. */
  events: number;
}

/** Runs one pipeline until aborted or failed. */
export class PipelineRunner {
  readonly config: PipelineConfig;
  readonly sinks: Sink[];
  /** Type codecs of the source database, shared by decoding and rendering. */
  readonly types: TypeRegistry;
  readonly tables: TableFactsRegistry;
  #log: Logger;
  #signal?: AbortSignal;
  #source: ReplicationSource | null = null;
  #queue: BoundedQueue;
  #router: Router;
  #monitor: Monitor;
  #paused = false;
  #openTx: OpenTransaction | null = null;
  /** Set by a graceful stop that waits for the transaction in flight. */
  #stopAtCommit = false;
  #stopReading: () => void = () => {};
  #confirmed: Lsn = LSN_ZERO;
  #eventsWritten = 0;
  #transactionsWritten = 0;
  #lastError: string | null = null;
  #running = false;
  #metrics?: SpillwayMetrics;
  /** Commit time of the newest transaction written, in ms since the epoch. */
  #lastCommitTimeMs: number | null = null;
  #lastConfirmAt = Date.now();
  #heartbeatsSeen = 0;
  #state: StateRecorder | null = null;
  readonly #connection?: ConnectOptions;
  readonly #deadLetter: Sink | null;
  readonly #transformMetrics?: TransformMetrics;
  readonly #watchTransforms: boolean;
  readonly #health?: HealthRegistry;
  #transforms: TransformHost | null = null;
  /** Writes the row types again after a schema change (`transforms.types_dir`). */
  #typesRefresher: TypesRefresher | null = null;
  /** Aborted when reading failed for good: a writer held by a transform lets go. */
  readonly #release = new AbortController();
  /** Set while `on_error: stop` holds the writer: the transform and its error. */
  #held: { transform: string; error: string } | null = null;

  constructor(options: RunnerOptions) {
    this.config = options.config;
    this.#log = options.log;
    this.#signal = options.signal;
    if (options.config.source.twoPhase) {
      throw new ConfigError(
        `Cannot run pipeline "${options.config.name}" with source.two_phase: true: sinks would get a prepared transaction as committed before its COMMIT PREPARED (or ROLLBACK PREPARED); set two_phase: false, and the transaction arrives once it commits`,
      );
    }
    this.types = options.types;
    this.tables = options.tables ?? new TableFactsRegistry();
    this.#connection = options.connection;
    this.sinks = options.sinks;
    this.#metrics = options.metrics;
    this.#deadLetter = options.deadLetter ?? null;
    this.#transformMetrics = options.transformMetrics;
    this.#watchTransforms = options.watchTransforms ?? true;
    this.#health = options.health;
    if (TransformHost.deadLetters(this.config) && this.#deadLetter === null) {
      throw new ConfigError(
        `Cannot run pipeline "${this.config.name}": transforms.on_error has dead_letter but the runner was given no dead-letter sink; pass deadLetter (createDeadLetterSink in pipelines/run_pipeline.ts makes the one the configuration names) or take dead_letter out of on_error`,
      );
    }
    this.#queue = new BoundedQueue(this.config.queue);
    this.#router = new Router(
      this.config,
      (relid) => this.#source?.assembler.relations.get(relid),
      (relid) => {
        const facts = this.tables.get(relid);
        return facts === undefined ? undefined : facts.primaryKey ?? [];
      },
    );
    this.#monitor = new Monitor({
      config: this.config,
      log: this.#log,
      state: () => this.state(),
      metrics: this.#metrics,
      intervalMs: options.monitorIntervalMs,
    });
    if (options.health) {
      this.#monitor.registerHealth(
        options.health,
        this.#deadLetter === null ? this.sinks : [...this.sinks, this.#deadLetter],
      );
    }
    this.#metrics?.queueCapacity.set(this.config.queue.capacity);
    if (this.config.queue.maxBytes !== null) {
      this.#metrics?.queueMaxBytes.set(this.config.queue.maxBytes);
    }
  }

  /** The slot as the monitor last read it. */
  get slotState(): SlotState | null {
    return this.#monitor.slotState;
  }

  /** The replication source, once started. */
  get source(): ReplicationSource | null {
    return this.#source;
  }

  state(): RunnerState {
    const source = this.#source;
    return {
      running: this.#running,
      queueDepth: this.#queue.depth,
      queueCapacity: this.config.queue.capacity,
      queueBytes: this.#queue.bytes,
      queueMaxBytes: this.config.queue.maxBytes,
      paused: this.#paused,
      confirmedLsn: this.#confirmed,
      serverWalEnd: source?.stream?.serverWalEnd ?? LSN_ZERO,
      eventsWritten: this.#eventsWritten,
      transactionsWritten: this.#transactionsWritten,
      lastError: this.#lastError,
      streaming: (source?.stream ?? null) !== null,
      bytesReceived: source?.bytesReceived ?? 0,
      reconnects: source?.reconnects ?? 0,
      lastConfirmAt: this.#lastConfirmAt,
      lastCommitTimeMs: this.#lastCommitTimeMs,
      heartbeatsSeen: this.#heartbeatsSeen,
      heldBy: this.#held === null
        ? null
        : `transform ${this.#held.transform} failed and on_error says stop (${this.#held.error}); fix the file`,
    };
  }

  /** Runs until the signal aborts (resolves) or something fails that retries cannot mend (rejects). */
  async run(): Promise<void> {
    this.#running = true;
    const config = this.config;
    const log = this.#log;
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    const stopping = this.#stopping(stop.signal);
    // Once sinks are given up on, a transform still running is too: its Workers end at once.
    stopping.giveUp.signal.addEventListener("abort", () => this.#transforms?.abort(), {
      once: true,
    });
    this.#signal?.addEventListener("abort", onAbort, { once: true });
    if (this.#signal?.aborted) stop.abort();
    let monitor: Promise<void> | null = null;
    try {
      const statePath = typeof config.source.stateFile === "string"
        ? config.source.stateFile
        : null;
      const previous = statePath === null ? null : await readState(statePath);
      if (statePath !== null) await probeStateFile(statePath);
      const gate = statePath === null ? undefined : new StateGate();
      if (TransformHost.needed(config)) await this.#startTransforms();
      for (const sink of this.sinks) await sink.open();
      await this.#deadLetter?.open();
      const source = await ReplicationSource.open({
        connection: this.#connection ?? connectOptions(config),
        slot: config.source.slot,
        createSlot: config.source.createSlot,
        publication: config.source.publication,
        createPublication: config.source.createPublication,
        publicationTarget: (connection) => publicationTarget(config, connection, log),
        // Refuses a start that would skip changes the state file says were not delivered.
        checkSlot: (system, slot) => {
          if (statePath !== null) checkRecordedSlot(statePath, previous, config, system, slot);
        },
        flushGate: gate,
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
        captureDdl: config.source.captureDdl,
        messages: true,
        statusIntervalMs: config.source.statusIntervalMs,
        maxBufferedBytes: readAheadBytes(config.queue.maxBytes),
        spill: { memoryLimitBytes: config.spill.memoryLimitBytes, dir: config.spill.dir },
        types: this.types,
        tables: this.tables,
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
      if (config.routing !== null) await this.#loadRoutes(config.routing);
      if (statePath !== null) await this.#startState(statePath, previous, source, gate!);
      monitor = this.#monitor.run(stop.signal);
      const writer = this.#writeLoop(stop, stopping.giveUp);
      try {
        await this.#readLoop(stopping.reading);
      } catch (error) {
        // A writer held by a transform's on_error: stop has nothing more to wait for.
        this.#release.abort();
        throw error;
      } finally {
        this.#dropOpenTransaction();
        this.#queue.close();
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
      this.#lastError = errorMessage(error);
      throw error;
    } finally {
      stop.abort();
      stopping.dispose();
      this.#signal?.removeEventListener("abort", onAbort);
      await monitor;
      await this.#monitor.close();
      // The state file first: the last status sends only what the file holds.
      await this.#state?.close();
      await this.#source?.close(); // sends the last confirmed position
      for (
        const sink of this.#deadLetter === null ? this.sinks : [...this.sinks, this.#deadLetter]
      ) {
        await sink.close().catch((error) =>
          log("warn", "Closing a sink failed", { sink: sink.name, error: String(error) })
        );
      }
      await this.#transforms?.close();
      await this.#typesRefresher?.settled();
      this.#running = false;
    }
  }

  /**
   * What a stop ends, and when. Reading stops at once on a failure, or when the
   * stop arrives between transactions; otherwise once the transaction in flight
   * has committed (so a graceful stop leaves whole transactions in the sinks), at
   * most {@linkcode SHUTDOWN_GRACE_MS} later. Retrying a sink's transient errors
   * is given up at once when another sink failed for good (see `#writeLoop`); on a
   * graceful stop, while the queue drains, only once the same grace period is over;
   * after the source failed, what is queued drains with the usual retries.
   */
  #stopping(stop: AbortSignal): { reading: AbortSignal; giveUp: AbortController; dispose(): void } {
    const reading = new AbortController();
    const giveUp = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    this.#stopReading = () => reading.abort();
    stop.addEventListener("abort", () => {
      if (this.#lastError !== null) {
        reading.abort();
        giveUp.abort();
        return;
      }
      timer = setTimeout(() => {
        reading.abort();
        giveUp.abort();
      }, SHUTDOWN_GRACE_MS);
      if (this.#openTx === null) reading.abort();
      else this.#stopAtCommit = true;
    }, { once: true });
    return { reading: reading.signal, giveUp, dispose: () => clearTimeout(timer) };
  }

  async #readLoop(signal: AbortSignal): Promise<void> {
    const source = this.#source!;
    const queue = this.#queue;
    for await (const batch of source.batches(signal)) {
      for (const item of batch) {
        if (signal.aborted) return; // the rest is left unconfirmed for the next run
        this.#accept(item);
      }
      queue.wakeWriter();
      if (queue.full) {
        this.#paused = true;
        this.#metrics?.sourcePaused.set(1);
        this.#log("debug", "Queue above its high watermark; reading paused", {
          depth: queue.depth,
          bytes: queue.bytes,
        });
        while (queue.full && !signal.aborted && this.#lastError === null) {
          await queue.drained();
        }
        this.#paused = false;
        this.#metrics?.sourcePaused.set(0);
      }
      if (this.#lastError !== null) return;
    }
  }

  /** Turns one source item into queue entries: routing, filtering, TOAST policy. */
  #accept(item: SourceItem): void {
    const queue = this.#queue;
    switch (item.kind) {
      case "begin":
        // Written lazily, with the first change that is kept: filtered-out and
        // heartbeat transactions leave no records, only a position to confirm.
        this.#openTx = { info: item.tx, begun: false, events: 0 };
        return;
      case "change": {
        const routing = this.config.routing;
        if (
          routing !== null && item.event.source.table === routing.table &&
          item.event.source.schema === routing.schema
        ) {
          this.#routeChange(item.event);
          return;
        }
        const record = this.#router.route(item.event);
        if (record === null) return;
        this.#pushInTransaction(record, item.size);
        return;
      }
      case "message":
        if (item.event.prefix === HEARTBEAT_PREFIX) {
          this.#heartbeatsSeen++;
          return;
        }
        if (!item.event.transactional) {
          queue.push({ kind: "message", event: item.event }, confirmableLsn(item), item.size);
          return;
        }
        this.#pushInTransaction({ kind: "message", event: item.event }, item.size);
        return;
      case "commit":
      case "prepare": {
        const open = this.#openTx;
        this.#openTx = null;
        // What the transaction taught the TOAST last_value caches now stands.
        this.#router.commit();
        // The count of what the sinks got, not of what the server sent.
        const record: SinkRecord | null = open?.begun
          ? { kind: "commit", tx: item.tx, endLsn: item.endLsn, eventCount: open.events }
          : null;
        queue.push(record, confirmableLsn(item));
        if (this.#stopAtCommit) this.#stopReading();
        return;
      }
      case "commit-prepared":
      case "rollback-prepared":
        queue.push(null, confirmableLsn(item));
        return;
      case "schema-change":
        this.#router.forget(item.relid);
        this.#monitor.forget(item.relid); // the table may have a new name
        queue.push(item, null);
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
    if (this.#openTx?.begun) this.#queue.trimTransaction();
    this.#openTx = null;
    this.#router.discard();
  }

  /** Queues a record of the open transaction, after its begin record if it is the first. */
  #pushInTransaction(record: SinkRecord, size: number): void {
    const open = this.#openTx;
    if (open !== null && !open.begun) {
      open.begun = true;
      this.#queue.markTransactionStart();
      this.#queue.push({ kind: "begin", tx: open.info }, null);
    }
    this.#queue.push(record, null, size);
    if (open !== null) open.events++;
  }

  async #writeLoop(stop: AbortController, giveUp: AbortController): Promise<void> {
    // With transforms, the next batch goes through them while the sinks write this one, so the
    // Workers' time hides behind the sinks'.
    let next: Promise<Prepared | null> | null = null;
    try {
      for (;;) {
        let prepared: Prepared | null;
        if (next !== null) {
          prepared = await next;
          next = null;
        } else {
          const taken = await this.#queue.take();
          if (taken === null) return;
          prepared = await this.#prepare(taken, stop.signal);
        }
        if (prepared === null) {
          // Stopped while a transform held the pipeline: what is queued stays unconfirmed.
          this.#stopReading();
          this.#queue.releaseReader();
          return;
        }
        const writing = this.#deliver(prepared, giveUp.signal);
        if (this.#transforms !== null && this.#queue.depth > 0) {
          const taken = await this.#queue.take();
          if (taken !== null) {
            next = this.#prepare(taken, stop.signal);
            next.catch(() => {}); // awaited next turn (or on the way out), not left unhandled
          }
        }
        await writing;
      }
    } catch (error) {
      this.#lastError = errorMessage(error);
      giveUp.abort(); // another sink may still be retrying, even during a graceful stop
      stop.abort();
      this.#queue.releaseReader();
      await next?.catch(() => {}); // the transforms finish the batch they have before closing
      throw error;
    }
  }

  /**
   * One batch's records through the transforms: what goes to the sinks, what to the dead-letter
   * sink, and the position to confirm once both hold them. `null` when the pipeline stopped
   * while a transform held it (nothing of the batch to write).
   */
  async #prepare(taken: QueueBatch, stop: AbortSignal): Promise<Prepared | null> {
    const { records, confirm } = taken;
    if (this.#transforms === null || records.length === 0) {
      return { records, deadLetters: [], confirm, taken };
    }
    const applied = await this.#applyTransforms(this.#transforms, records, stop);
    return applied === null ? null : { ...applied, confirm, taken };
  }

  /**
   * Hands a prepared batch to every sink (and what failed to the dead-letter sink), then
   * confirms its last position.
   */
  async #deliver(batch: Prepared, giveUp: AbortSignal): Promise<void> {
    const { records, deadLetters, confirm } = batch;
    let transactions = 0;
    let events = 0;
    let lastCommitTime: bigint | null = null;
    for (const record of records) {
      if (record.kind === "change") events++;
      if (record.kind === "commit") {
        transactions++;
        lastCommitTime = record.tx.commitTime;
      }
    }
    // A batch that confirms nothing need not be durable yet: the next one that does covers it.
    const durable = confirm !== null;
    const writes: Promise<void>[] = [];
    if (records.length > 0) {
      for (const sink of this.sinks) writes.push(this.#writeSink(sink, records, durable, giveUp));
    }
    // Dead letters are made durable at once: few, and the position may move past them next.
    if (deadLetters.length > 0) {
      writes.push(this.#writeSink(this.#deadLetter!, deadLetters, true, giveUp));
    }
    // Every sink's write settles before a failure is thrown: run() closes the sinks next.
    const results = await Promise.allSettled(writes);
    const failed = results.find((result) => result.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    this.#eventsWritten += events;
    this.#transactionsWritten += transactions;
    if (lastCommitTime !== null) this.#lastCommitTimeMs = Number(lastCommitTime / 1000n);
    if (confirm !== null) {
      // Every sink holds everything up to here durably.
      this.#confirmed = maxLsn(this.#confirmed, confirm);
      this.#source?.confirm(this.#confirmed);
      this.#state?.record(this.#confirmed);
      this.#lastConfirmAt = Date.now();
    }
    this.#queue.release(batch.taken);
    this.#monitor.written(records, transactions, {
      confirmedLsn: this.#confirmed,
      queueDepth: this.#queue.depth,
      queueBytes: this.#queue.bytes,
    });
  }

  /**
   * The batch through the transforms. When an event's on_error reaches `stop`, nothing of the
   * batch is written: the writer holds (the queue fills, reading pauses, the slot keeps its
   * position) until a new version of that transform loads, then runs the batch again with it.
   * `null` when the pipeline stops while held.
   */
  async #applyTransforms(
    host: TransformHost,
    records: SinkRecord[],
    stop: AbortSignal,
  ): Promise<{ records: SinkRecord[]; deadLetters: SinkRecord[] } | null> {
    for (;;) {
      const applied = await host.apply(records);
      if (applied.aborted) return null;
      if (applied.stop === null) {
        this.#held = null;
        return applied;
      }
      this.#held = applied.stop;
      this.#log(
        "error",
        "A transform failed and on_error says stop: the pipeline holds (nothing written, the slot keeps its position) until the transform's file is fixed",
        { transform: applied.stop.transform, error: applied.stop.error },
      );
      // Held until the file is fixed, the pipeline stops, or reading failed for good.
      if (
        !await host.resume(applied.stop.transform, AbortSignal.any([stop, this.#release.signal]))
      ) {
        return null;
      }
    }
  }

  /** The routing table's rows by pattern, as the stream has them so far. */
  #routes = new Map<string, RouteRule>();

  /** Reads the routing table (`routing`) as it is now, for the changes read from here on. */
  async #loadRoutes(routing: RoutingConfig): Promise<void> {
    const options = this.#connection ?? connectOptions(this.config);
    const sql = await PgConnection.connect({
      ...options,
      replication: undefined,
      applicationName: `${options.applicationName ?? "spillway"}-routing`,
    });
    try {
      const rows = await sql.queryObjects(
        `SELECT pattern, topic, key FROM ${quoteIdent(routing.schema)}.${
          quoteIdent(routing.table)
        }`,
      ).catch((error) => {
        throw new ConfigError(
          `Cannot read the routing table ${routing.schema}.${routing.table} (${
            errorMessage(error)
          }); create it (pattern text PRIMARY KEY, topic text, key text[]) and add it to the publication, or remove routing from ${this.config.file}`,
        );
      });
      this.#routes = new Map(rows.map((row) => {
        const rule = routeRule({
          pattern: row.pattern ?? null,
          topic: row.topic ?? null,
          key: row.key ?? null,
        });
        return [rule.pattern, rule];
      }));
    } finally {
      await sql.close();
    }
    this.#applyRoutes();
  }

  /** A change of the routing table: its rows as they now stand apply to the changes after it. */
  #routeChange(event: ChangeEvent): void {
    if (event.op === "t") this.#routes.clear();
    const before = event.before === null ? null : routeRule(event.before);
    if (before !== null && (event.op === "d" || event.op === "u")) {
      this.#routes.delete(before.pattern);
    }
    if (event.after !== null) {
      const rule = routeRule(event.after);
      this.#routes.set(rule.pattern, rule);
    }
    this.#applyRoutes();
  }

  #applyRoutes(): void {
    const rules = [...this.#routes.values()].filter((rule) => rule.pattern !== "");
    this.#router.setRules(
      rules,
      (rule, problem) =>
        this.#log("warn", "A routing table row is left out", {
          pattern: rule.pattern,
          problem,
        }),
    );
    this.#log("info", "Routing table read", { rows: rules.length });
  }

  /** Loads the tables' transforms, and registers a health check for each. */
  async #startTransforms(): Promise<void> {
    const typesDir = this.config.transforms.typesDir;
    if (typesDir !== null) {
      const options = this.#connection ?? connectOptions(this.config);
      this.#typesRefresher = new TypesRefresher(
        this.config,
        typesDir,
        () =>
          PgConnection.connect({
            ...options,
            replication: undefined,
            applicationName: `${options.applicationName ?? "spillway"}-types`,
          }),
        this.#log,
      );
      this.#typesRefresher.changed(); // the files are there from the start
    }
    const host = await TransformHost.start({
      config: this.config,
      types: this.types,
      log: this.#log,
      metrics: this.#transformMetrics,
      watch: this.#watchTransforms,
      onSchemaChange: () => this.#typesRefresher?.changed(),
    });
    this.#transforms = host;
    const health = this.#health;
    if (health === undefined) return;
    for (const { transform } of host.status()) {
      health.register(`transform:${transform}`, () => {
        const status = host.status().find((candidate) => candidate.transform === transform)!;
        const { stopped, lastError, reloadError, breaker } = status;
        const detail = stopped !== null
          ? `on_error: stop holds the pipeline: ${stopped}; fix the file`
          : breaker !== "closed"
          ? `breaker ${breaker}: events take on_error`
          : reloadError !== null
          ? `the file's newest text does not load, the previous version runs: ${reloadError}`
          : lastError !== null
          ? `last error: ${lastError}`
          : null;
        return {
          status: stopped !== null
            ? "failing"
            : breaker !== "closed" || reloadError !== null
            ? "degraded"
            : "ok",
          ...(detail === null ? {} : { detail }),
          data: { ...status },
        };
      });
    }
  }

  /**
   * Records in the state file which slot of which cluster this pipeline streams from, and
   * from now on lets the stream send a flush position once the file holds it.
   */
  async #startState(
    path: string,
    previous: PipelineState | null,
    source: ReplicationSource,
    gate: StateGate,
  ): Promise<void> {
    const owner = {
      systemId: source.system?.systemId ?? "",
      database: source.system?.dbName ?? "",
      slot: this.config.source.slot,
    };
    if (previous !== null && previous.slot !== owner.slot) {
      this.#log(
        "warn",
        "The state file recorded another slot, which this pipeline no longer reads; drop it if nothing else does (it keeps WAL)",
        { path, slot: previous.slot },
      );
    }
    const recorder = new StateRecorder(path, owner, this.#log, (position) => {
      gate.recorded(position);
      source.flushStatus().catch(() => {}); // a lost connection is the stream's to report
    });
    await recorder.start(this.#confirmed);
    this.#state = recorder;
    gate.attach(recorder);
  }

  /**
   * Writes to one sink, retrying transient errors until `giveUp` aborts. Giving up
   * ends a wait between attempts at once, with the error that caused it.
   */
  async #writeSink(
    sink: Sink,
    records: SinkRecord[],
    durable: boolean,
    giveUp: AbortSignal,
  ): Promise<void> {
    const started = performance.now();
    const waiting = new AbortController();
    let lastError: unknown = undefined;
    const onGiveUp = () => waiting.abort(lastError);
    giveUp.addEventListener("abort", onGiveUp, { once: true });
    try {
      await retry(() => sink.write(records, { durable }), {
        maxAttempts: 8,
        initialDelayMs: 200,
        maxDelayMs: 10_000,
        signal: waiting.signal,
        shouldRetry: (error) => isRetriable(error) && !giveUp.aborted,
        onRetry: (error, attempt, delayMs) => {
          lastError = error;
          this.#metrics?.sinkErrorsTotal.inc({ sink: sink.name });
          this.#log("warn", "Sink write failed; retrying", {
            sink: sink.name,
            attempt,
            delayMs,
            error: errorMessage(error),
          });
        },
      });
    } catch (error) {
      // A wait cut short by giving up rethrows the error onRetry already counted.
      if (error !== lastError) this.#metrics?.sinkErrorsTotal.inc({ sink: sink.name });
      if (giveUp.aborted && isRetriable(error)) {
        this.#log("error", "Sink write failed; not retried further: the pipeline is stopping", {
          sink: sink.name,
          error: errorMessage(error),
        });
      }
      throw error;
    } finally {
      giveUp.removeEventListener("abort", onGiveUp);
    }
    this.#metrics?.sinkWriteSeconds.observe(
      { sink: sink.name },
      (performance.now() - started) / 1000,
    );
  }
}

/**
 * What the replication stream reads ahead of the queue (XLogData not yet decoded): a 128th of
 * `queue.max_bytes`, from {@linkcode DEFAULT_READ_AHEAD_BYTES} (64 KiB, which the default
 * `max_bytes` of 8 MB gives) to 8 MiB; 8 MiB without a bound. The source holds up to twice this
 * (the batch it decodes and the next one), which the README counts in a pipeline's memory; the
 * chunks it hands the reader hold at most half of it (a 256th of `max_bytes`, 1 MiB at most) and
 * one message more, which is what the queue can pass its high watermark by. Its messages are
 * objects that live until decoded: the more of them wait, the more of them outlive V8's young
 * generation and stay as garbage until a full collection (see `DEFAULT_READ_AHEAD_BYTES`).
 */
export function readAheadBytes(maxBytes: number | null): number {
  if (maxBytes === null) return 8 << 20;
  return Math.min(8 << 20, Math.max(DEFAULT_READ_AHEAD_BYTES, Math.floor(maxBytes / 128)));
}

/** A routing table row (text columns; `key` a text[] as decoded) as a rule. */
function routeRule(row: Record<string, unknown>): RouteRule {
  const key = row.key;
  return {
    pattern: typeof row.pattern === "string" ? row.pattern : "",
    topic: typeof row.topic === "string" && row.topic !== "" ? row.topic : null,
    key: Array.isArray(key)
      ? key.filter((column): column is string => typeof column === "string")
      : typeof key === "string"
      ? parseTextArray(key)
      : null,
  };
}

/** A `text[]` as a plain SQL query returns it (`{id,"a b"}`), without NULLs. */
function parseTextArray(text: string): string[] {
  const out: string[] = [];
  const inner = text.replace(/^\{|\}$/g, "");
  for (const match of inner.matchAll(/"((?:[^"\\]|\\.)*)"|([^,]+)/g)) {
    if (match[1] !== undefined) out.push(match[1].replace(/\\(.)/g, "$1"));
    else if (match[2] !== undefined && match[2] !== "NULL") out.push(match[2]);
  }
  return out;
}
