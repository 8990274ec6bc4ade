/**
 * The transform stage of a pipeline: each table's chain of transforms (`transform: [a.ts,
 * b.ts]`), each a {@linkcode LiveTransform} in its own Worker, applied to the writer's batches
 * of records before the sinks get them.
 *
 * - Events cross in batches: one `run` per transform per batch, the transforms of a batch in
 *   parallel (each Worker on its own thread); order within a table is kept, and every output
 *   takes its input's place in the batch.
 * - A new version of a file takes over only between transactions: before a batch, for each
 *   transform without a transaction in progress.
 * - `schemaChange(previous, next)` runs before the first event whose relation has a new shape
 *   (columns, types, keys, an enum's labels).
 * - A failing event (throw, time budget, invalid return) takes `transforms.on_error`, and so
 *   does every event while the transform's {@linkcode Breaker} is open.
 *
 * @module
 */

import { relative } from "node:path";
import { errorMessage } from "../errors.ts";
import { formatLsn, LSN_ZERO } from "../decoder/lsn.ts";
import type { TypeRegistry } from "../decoder/types/registry.ts";
import { matchTable, type PipelineConfig, type TransformPermissions } from "../config/mod.ts";
import {
  type ChangeEvent,
  EVENT_RELATION,
  type MessageEvent,
  type SinkRecord,
  type TransformFailureInfo,
} from "../events.ts";
import type { Logger } from "../ops/log.ts";
import type { TransformRelation } from "./api.ts";
import { Breaker, type BreakerState } from "./breaker.ts";
import {
  type ChangeRecord,
  outputMessage,
  outputRecord,
  sameShape,
  TransformInputs,
  transformMessage,
} from "./convert.ts";
import type { WorkItem } from "./hooks.ts";
import { LiveTransform } from "./live.ts";
import { OutputShapes } from "./shape.ts";
import type { TransformMetrics } from "./metrics.ts";
import {
  describeFailure,
  type TransformFailure,
  TransformTimeoutError,
  type WorkResult,
} from "./worker.ts";

/** Options of {@linkcode TransformHost.start}. */
export interface TransformHostOptions {
  config: PipelineConfig;
  /** The source's type registry: type names and enum labels of the columns. */
  types: TypeRegistry;
  log: Logger;
  metrics?: TransformMetrics;
  /** Follow the files for hot reload (default true). */
  watch?: boolean;
  /**
   * Called with a table's relation when a transform first sees it and when its shape changed
   * (e.g. to write its row types again).
   */
  onSchemaChange?: (relation: TransformRelation) => void;
}

/** What {@linkcode TransformHost.apply} made of a batch. */
export interface ApplyResult {
  /** The records for the sinks, in order. */
  records: SinkRecord[];
  /** The records for the dead-letter sink, in order. */
  deadLetters: SinkRecord[];
  /** Set when an event's `on_error` reached `stop`: nothing of the batch may be written. */
  stop: { transform: string; error: string } | null;
  /** True when {@linkcode TransformHost.abort} cut the batch short: nothing may be written. */
  aborted: boolean;
}

/** A dead letter and the index of its record in the batch. */
interface DeadLetter {
  index: number;
  record: SinkRecord;
}

/** A transform's state, for /health. */
export interface TransformStatus {
  /** The file, relative to the pipeline file. */
  transform: string;
  version: string;
  reloads: number;
  breaker: BreakerState;
  /** Set while `on_error: stop` holds the pipeline on this transform. */
  stopped: string | null;
  /** The last failure of an event. */
  lastError: string | null;
  /** Why the file's newest text did not load (the running version stays); null once one does. */
  reloadError: string | null;
  events: number;
  failures: number;
}

/** One transform file at one position of the chains (with its permissions). */
interface Bound {
  live: LiveTransform;
  /** The file relative to the pipeline file. */
  file: string;
  /** The file relative to the pipeline file, for logs and metrics. */
  label: string;
  breaker: Breaker;
  /** The transaction whose `begin` it got and whose `commit` it did not yet get. */
  open: number | null;
  /** The relation last shown to it, per relid. */
  relations: Map<number, TransformRelation>;
  stopped: string | null;
  lastError: string | null;
  events: number;
  failures: number;
  lastVersion: string;
  /** The shapes of its outputs, for the version running (see `shape.ts`). */
  shapes: { version: string; shapes: OutputShapes } | null;
}

/** What one work item stands for in the batch. */
interface Ref {
  /** Index of the record in the batch; -1 for begin, commit and schema items. */
  index: number;
  /** The input of a change, truncate or message item. */
  input: ChangeRecord | MessageEvent | null;
}

/** The items one transform runs for a batch, and what each stands for. */
interface Job {
  bound: Bound;
  items: WorkItem[];
  refs: Ref[];
}

/** Outputs of one record so far: `null` while no transform touched it. */
type Outputs = (SinkRecord[] | null)[];

const FAILURE_REASON = { error: "error", timeout: "timeout", invalid: "invalid" } as const;

/** The transforms of a pipeline, bound to its tables. */
export class TransformHost {
  readonly #config: PipelineConfig;
  readonly #log: Logger;
  readonly #metrics?: TransformMetrics;
  readonly #inputs: TransformInputs;
  readonly #onSchemaChange?: (relation: TransformRelation) => void;
  /** Every transform, in the order of the tables entries and then of their chains. */
  readonly #bounds: Bound[] = [];
  /** A tables entry's pattern → its chain. */
  readonly #chains = new Map<string, Bound[]>();
  /** `schema.table` → its chain (null: none). */
  readonly #tableChains = new Map<string, Bound[] | null>();
  /** Change and message records added (fan-out) or removed (drops) in the open transaction. */
  #countDelta = 0;
  /** The transforms at each place of the chains (`#levels[0]`: the first of each chain). */
  #levels: Set<Bound>[] = [];
  /** Failures {@linkcode TransformHost.#failed} already counted (a timeout, as it happened). */
  #counted = new WeakSet<TransformFailure>();
  /** Set by {@linkcode TransformHost.abort}: the Workers are gone, nothing more runs. */
  #aborted = false;
  readonly #watch: boolean;
  /** Whether outputs follow their shape (`#shaped`). */
  readonly #shapes: boolean;

  private constructor(options: TransformHostOptions) {
    this.#config = options.config;
    this.#log = options.log;
    this.#metrics = options.metrics;
    this.#inputs = new TransformInputs(options.types);
    this.#onSchemaChange = options.onSchemaChange;
    this.#watch = options.watch ?? true;
    // Sinks that write a change's columns by its relation, with a schema (Debezium's envelope,
    // Avro) need the shape of what transforms return; the others write rows as they are.
    this.#shapes = options.config.sinks.some((sink) =>
      sink.type === "kafka" && sink.format !== "json"
    );
  }

  /** True when some table of the pipeline has a transform. */
  static needed(config: PipelineConfig): boolean {
    return config.tables.some((entry) => entry.transform !== null);
  }

  /** True when the pipeline's transforms may send events to a dead-letter sink. */
  static deadLetters(config: PipelineConfig): boolean {
    return TransformHost.needed(config) &&
      config.transforms.onError.some((step) => step.action === "dead_letter");
  }

  /**
   * Loads every transform the tables name and runs their `setup`; fails (after stopping what
   * started) with the first that cannot start, naming its file and line.
   */
  static async start(options: TransformHostOptions): Promise<TransformHost> {
    const host = new TransformHost(options);
    try {
      const shared = new Map<string, Bound>();
      for (const entry of options.config.tables) {
        if (entry.transform === null) continue;
        const chain: Bound[] = [];
        for (const [level, path] of entry.transform.entries()) {
          const allow = entry.allow ?? options.config.transforms.allow;
          const key = JSON.stringify([level, path, allow]);
          let bound = shared.get(key);
          if (bound === undefined) {
            bound = await host.#bind(path, allow);
            shared.set(key, bound);
          }
          chain.push(bound);
        }
        host.#chains.set(entry.pattern, chain);
      }
      const chains = [...host.#chains.values()];
      const depth = Math.max(0, ...chains.map((chain) => chain.length));
      host.#levels = Array.from(
        { length: depth },
        (_, level) => new Set(chains.flatMap((chain) => chain[level] ? [chain[level]] : [])),
      );
    } catch (error) {
      await host.close();
      throw error;
    }
    return host;
  }

  async #bind(path: string, allow: TransformPermissions): Promise<Bound> {
    const config = this.#config;
    // One name per bound: the same file at two places of the chains (or with two `allow`s)
    // runs twice, and its health check and metrics must say which.
    const file = relative(config.baseDir, path) || path;
    const twins = this.#bounds.filter((bound) => bound.file === file).length;
    const label = twins === 0 ? file : `${file}#${twins + 1}`;
    const live = await LiveTransform.start(path, {
      timeoutMs: config.transforms.timeoutMs,
      allow,
      watch: this.#watch,
      log: (level, message, fields) =>
        this.#log(logLevel(level), message, { transform: label, ...fields }),
    });
    const bound: Bound = {
      live,
      file,
      label,
      breaker: new Breaker(config.transforms.breaker),
      open: null,
      relations: new Map(),
      stopped: null,
      lastError: null,
      events: 0,
      failures: 0,
      lastVersion: live.version,
      shapes: null,
    };
    this.#bounds.push(bound);
    this.#metrics?.versionInfo.set({ transform: label, version: live.version.slice(0, 12) }, 1);
    this.#log("info", "Transform loaded", { transform: label, version: live.version.slice(0, 12) });
    return bound;
  }

  /** Each transform's state. */
  status(): TransformStatus[] {
    return this.#bounds.map((bound) => ({
      transform: bound.label,
      version: bound.live.version.slice(0, 12),
      reloads: bound.live.reloads,
      breaker: bound.breaker.state,
      stopped: bound.stopped,
      lastError: bound.lastError,
      reloadError: bound.live.lastError,
      events: bound.events,
      failures: bound.failures,
    }));
  }

  /** The chain of a table; `null` when it has none. */
  #chainOf(schema: string, table: string): Bound[] | null {
    const name = `${schema}.${table}`;
    let chain = this.#tableChains.get(name);
    if (chain === undefined) {
      const resolved = matchTable(this.#config, schema, table);
      chain = resolved === null ? null : this.#chains.get(resolved.pattern) ?? null;
      this.#tableChains.set(name, chain);
    }
    return chain;
  }

  /**
   * Runs a batch of records (in commit order, as the queue hands them on) through the tables'
   * transforms. Records of tables without transforms pass as they are.
   */
  async apply(records: readonly SinkRecord[]): Promise<ApplyResult> {
    await this.#boundaries();
    const outputs: Outputs = new Array(records.length).fill(null);
    const deadLetters: DeadLetter[] = [];
    const aborted = { records: [], deadLetters: [], stop: null, aborted: true };
    for (let level = 0; level < this.#levels.length; level++) {
      const jobs = this.#jobs(records, outputs, level);
      const ran = await Promise.all([...jobs.values()].map((job) => this.#runJob(job)));
      if (this.#aborted) return aborted;
      for (const [j, job] of [...jobs.values()].entries()) {
        const stop = await this.#collect(job, ran[j]!, records, outputs, deadLetters);
        if (this.#aborted) return aborted;
        if (stop !== null) return { records: [], deadLetters: [], stop, aborted: false };
      }
    }
    return {
      records: this.#assemble(records, outputs),
      // In stream order, whichever transform and chain level failed on them.
      deadLetters: deadLetters.sort((a, b) => a.index - b.index).map((entry) => entry.record),
      stop: null,
      aborted: false,
    };
  }

  /** New versions take over where no transaction is in progress. */
  async #boundaries(): Promise<void> {
    for (const bound of this.#bounds) {
      if (bound.open !== null) continue;
      if (await bound.live.boundary()) this.#tookOver(bound);
    }
  }

  #tookOver(bound: Bound): void {
    const version = bound.live.version;
    this.#metrics?.reloadsTotal.inc({ transform: bound.label });
    this.#metrics?.versionInfo.set(
      { transform: bound.label, version: bound.lastVersion.slice(0, 12) },
      0,
    );
    this.#metrics?.versionInfo.set({ transform: bound.label, version: version.slice(0, 12) }, 1);
    bound.lastVersion = version;
    bound.stopped = null;
    // A new version starts with a closed breaker: a fixed file need not wait out the cooldown.
    bound.breaker = new Breaker(this.#config.transforms.breaker);
    bound.lastError = null;
    this.#metrics?.breakerState.set({ transform: bound.label }, 0);
  }

  /** The work items of one chain level, per transform, in stream order. */
  #jobs(records: readonly SinkRecord[], outputs: Outputs, level: number): Map<Bound, Job> {
    const jobs = new Map<Bound, Job>();
    const jobOf = (bound: Bound): Job => {
      let job = jobs.get(bound);
      if (job === undefined) {
        job = { bound, items: [], refs: [] };
        jobs.set(bound, job);
      }
      return job;
    };
    const levelBounds = this.#levels[level]!;
    for (const [index, record] of records.entries()) {
      switch (record.kind) {
        case "begin":
          // A transform still in the previous transaction lost its end to a reconnect: the
          // transaction is sent again from its begin.
          for (const bound of levelBounds) bound.open = null;
          break;
        case "commit":
          for (const bound of levelBounds) {
            if (bound.open === null) continue;
            bound.open = null;
            if (!bound.breaker.allows() || !bound.live.hooks.has("commit")) continue;
            jobOf(bound).items.push({
              kind: "commit",
              transaction: this.#inputs.transaction(
                record.tx.xid,
                record.tx.commitLsn,
                record.tx.commitTime,
              ),
            });
            jobOf(bound).refs.push({ index: -1, input: null });
          }
          break;
        case "change": {
          const source = record.event.source;
          const bound = this.#chainOf(source.schema, source.table)?.[level];
          if (bound === undefined) break;
          const inputs = level === 0 ? [record] : outputs[index] ?? [];
          for (const input of inputs) {
            if (input.kind !== "change") continue;
            this.#addChange(jobOf(bound), index, input);
          }
          break;
        }
        case "message":
          if (level !== 0) break;
          for (const bound of levelBounds) {
            if (!bound.live.hooks.has("message")) continue;
            const job = jobOf(bound);
            // A transactional message holds the version until its commit, as a change does.
            if (record.event.xid !== undefined) bound.open ??= record.event.xid;
            job.items.push({
              kind: "message",
              event: transformMessage(record.event),
              ...(record.event.xid === undefined ? {} : {
                transaction: this.#inputs.transaction(
                  record.event.xid,
                  record.event.commitLsn ?? LSN_ZERO,
                  record.event.commitTime ?? 0n,
                ),
              }),
            });
            job.refs.push({ index, input: record.event });
          }
          break;
      }
    }
    return jobs;
  }

  /** Queues a change (with the begin and schema change it needs first) for one transform. */
  #addChange(job: Job, index: number, input: ChangeRecord): void {
    const bound = job.bound;
    const event = this.#inputs.event(input);
    const { xid, commitLsn, commitTime } = input.event.source;
    const transaction = this.#inputs.transaction(xid, commitLsn, commitTime);
    if (bound.open !== event.source.xid && bound.breaker.allows()) {
      // Sent only to a transform with the hook; the host follows the transaction all the same.
      if (bound.live.hooks.has("begin")) {
        job.items.push({ kind: "begin", transaction });
        job.refs.push({ index: -1, input: null });
      }
      bound.open = event.source.xid;
    }
    const message = input.event[EVENT_RELATION];
    const relation = message === undefined ? null : this.#inputs.relation(message);
    if (relation !== null) {
      const previous = bound.relations.get(relation.relid);
      bound.relations.set(relation.relid, relation);
      const changed = previous !== undefined && previous !== relation &&
        !sameShape(previous, relation);
      if (previous === undefined || changed) this.#onSchemaChange?.(relation);
      if (changed) {
        job.items.push({ kind: "schema", previous, next: relation, relation });
        job.refs.push({ index: -1, input: null });
      }
    }
    const table = relation ?? {
      schema: event.source.schema,
      table: event.source.table,
      relid: event.source.relid,
      columns: [],
    };
    if (event.op === "t") {
      job.items.push({ kind: "truncate", event, relation: table, transaction });
    } else {
      job.items.push({ kind: "change", event, relation: table, transaction });
    }
    job.refs.push({ index, input });
  }

  /** Runs a job's items in one batch, unless the breaker is open. */
  async #runJob(job: Job): Promise<WorkResult[]> {
    const bound = job.bound;
    if (!bound.breaker.allows()) return job.items.map(() => BREAKER_OPEN);
    const started = performance.now();
    const results = await this.#runItems(bound, job.items);
    this.#metrics?.batchSeconds.observe(
      { transform: bound.label },
      (performance.now() - started) / 1000,
    );
    return results;
  }

  /**
   * Runs items on a transform. When one runs past its budget, the Worker (started again) gets
   * the items before it and after it again, and that one fails; when the Worker crashed, each
   * item runs alone, so the one that crashes it is found.
   */
  async #runItems(bound: Bound, items: WorkItem[]): Promise<WorkResult[]> {
    if (items.length === 0) return [];
    if (this.#aborted || !bound.breaker.allows()) return items.map(() => BREAKER_OPEN);
    try {
      return await bound.live.run(items);
    } catch (error) {
      if (this.#aborted) return items.map(() => BREAKER_OPEN);
      // Counted now, so that an open breaker spares the rest of the batch more restarts.
      const failure = thrown(error);
      this.#counted.add(failure);
      const timedOut = error instanceof TransformTimeoutError && error.item !== null;
      const at = timedOut ? Math.min((error as TransformTimeoutError).item!, items.length - 1) : 0;
      this.#failed(bound, failure, timedOut ? "timeout" : "error", items[at]!);
      if (timedOut) {
        return [
          ...await this.#runItems(bound, items.slice(0, at)),
          { ok: false, error: failure },
          ...await this.#runItems(bound, items.slice(at + 1)),
        ];
      }
      const results: WorkResult[] = [];
      for (const item of items) {
        results.push(
          this.#aborted || !bound.breaker.allows() ? BREAKER_OPEN : await this.#runOne(bound, item),
        );
      }
      return results;
    }
  }

  async #runOne(bound: Bound, item: WorkItem): Promise<WorkResult> {
    try {
      const [result] = await bound.live.run([item]);
      return result!;
    } catch (error) {
      return { ok: false, error: thrown(error) };
    }
  }

  /**
   * Turns a job's results into the next outputs of its records; failures take `on_error`.
   * Returns the stop when an event's `on_error` reached it.
   */
  async #collect(
    job: Job,
    results: WorkResult[],
    records: readonly SinkRecord[],
    outputs: Outputs,
    deadLetters: DeadLetter[],
  ): Promise<{ transform: string; error: string } | null> {
    const bound = job.bound;
    const next = new Map<number, SinkRecord[]>();
    let failed = false;
    for (const [k, item] of job.items.entries()) {
      const ref = job.refs[k]!;
      const result: Produced = this.#produced(bound, ref, results[k]!, item);
      if (result.ok) {
        bound.events += ref.input === null ? 0 : 1;
      } else if (result.failure !== BREAKER_OPEN.error && !this.#counted.has(result.failure)) {
        failed = true;
        this.#failed(bound, result.failure, result.reason, item);
      }
      if (ref.input === null) continue;
      let produced: SinkRecord[];
      if (result.ok) {
        produced = result.records;
      } else {
        const fallback = await this.#fallback(bound, item, ref, result, records, deadLetters);
        if ("stop" in fallback) {
          bound.stopped = fallback.stop;
          return { transform: bound.label, error: fallback.stop };
        }
        produced = fallback.records;
      }
      const list = next.get(ref.index) ?? [];
      list.push(...produced);
      next.set(ref.index, list);
    }
    this.#metrics?.eventsTotal.inc(
      { transform: bound.label },
      job.refs.filter((r) => r.input).length,
    );
    if (!failed && bound.breaker.allows()) bound.breaker.success();
    this.#metrics?.breakerState.set(
      { transform: bound.label },
      BREAKER_GAUGE[bound.breaker.state],
    );
    for (const [index, list] of next) {
      const record = records[index]!;
      if (record.kind === "message") {
        // Every transform with a message hook sees it: dropped when one drops it.
        const before = outputs[index];
        outputs[index] = before !== null && before?.length === 0 ? [] : list;
      } else {
        outputs[index] = list;
      }
    }
    return null;
  }

  /** What an item's result stands for: records, or a failure. */
  #produced(bound: Bound, ref: Ref, result: WorkResult, item: WorkItem): Produced {
    if (!result.ok) {
      const reason = result.error === BREAKER_OPEN.error
        ? "breaker-open"
        : result.error.name === "TransformTimeoutError"
        ? "timeout"
        : result.error.name === "TypeError" && INVALID_RESULT.test(result.error.message)
        ? "invalid"
        : "error";
      return { ok: false, failure: result.error, reason };
    }
    const input = ref.input;
    if (input === null) return { ok: true, records: [] };
    const produced: SinkRecord[] = [];
    const sent = item.kind === "change" ? item.event : null;
    const invalid = (made: string): Produced => ({
      ok: false,
      reason: "invalid",
      failure: {
        name: "TypeError",
        message: `the transform returned ${made}`,
        where: null,
        stack: null,
      },
    });
    for (const out of result.out) {
      // The event the transform got, returned as it was: the input record goes on.
      let made = out === sent && "kind" in input
        ? input
        : "kind" in input
        ? outputRecord(input, out)
        : outputMessage(input, out);
      if (typeof made === "string") return invalid(made);
      if ("kind" in made && "kind" in input) {
        // The relation its rows follow: the table's, or the shape the transform gave them.
        made = this.#shaped(bound, input, made);
        if (typeof made === "string") return invalid(made);
      }
      produced.push("kind" in made ? made : { kind: "message", event: made });
    }
    return { ok: true, records: produced };
  }

  /**
   * A change as its transform returned it, following the relation of its shape (`shape.ts`):
   * the table's while the transform keeps its columns and their types. Only for sinks that
   * write by the relation (Debezium's envelope, Avro).
   */
  #shaped(bound: Bound, input: ChangeRecord, made: ChangeRecord): ChangeRecord | string {
    const event = made.event;
    const relation = event[EVENT_RELATION];
    if (!this.#shapes || event.op === "t" || relation === undefined) return made;
    const version = bound.live.version;
    if (bound.shapes?.version !== version) {
      bound.shapes = { version, shapes: new OutputShapes(bound.live.output) };
    }
    const shaped = bound.shapes.shapes.relationOf(input.event, event, relation, made.topic);
    if (typeof shaped === "string") return shaped;
    if (shaped === relation) return made;
    const copy: ChangeEvent = { ...event, [EVENT_RELATION]: shaped };
    return { ...made, event: copy };
  }

  #failed(bound: Bound, failure: TransformFailure, reason: FailureReason, item: WorkItem): void {
    bound.failures++;
    bound.lastError = describeFailure(failure);
    this.#metrics?.failuresTotal.inc({
      transform: bound.label,
      reason: FAILURE_REASON[reason as keyof typeof FAILURE_REASON] ?? "error",
    });
    this.#log("warn", "Transform failed", {
      transform: bound.label,
      hook: item.kind === "schema" ? "schemaChange" : item.kind,
      error: bound.lastError,
    });
    if (bound.breaker.failure()) {
      this.#log("error", "Transform breaker opened: its events take on_error until it recovers", {
        transform: bound.label,
        cooldownMs: this.#config.transforms.breaker.cooldownMs,
      });
    }
  }

  /** `on_error` for one failed event: its records, or a stop. */
  async #fallback(
    bound: Bound,
    item: WorkItem,
    ref: Ref,
    failed: Extract<Produced, { ok: false }>,
    records: readonly SinkRecord[],
    deadLetters: DeadLetter[],
  ): Promise<{ ok: true; records: SinkRecord[] } | { stop: string }> {
    const input = ref.input!;
    let failure = failed;
    let attempts = failure.reason === "breaker-open" ? 0 : 1;
    const count = (action: string) =>
      this.#metrics?.fallbacksTotal.inc({ transform: bound.label, action });
    for (const step of this.#config.transforms.onError) {
      switch (step.action) {
        case "retry":
          if (failure.reason === "breaker-open") break;
          for (let time = 0; time < step.times && bound.breaker.allows(); time++) {
            count("retry");
            attempts++;
            const again = this.#produced(bound, ref, await this.#runOne(bound, item), item);
            if (again.ok) return again;
            failure = again;
            this.#failed(bound, again.failure, again.reason, item);
          }
          break;
        case "passthrough": {
          count("passthrough");
          const note = `${bound.label}: ${
            failure.reason === "breaker-open" ? "breaker open" : firstLine(failure.failure.message)
          }`;
          if ("kind" in input) {
            return {
              ok: true,
              records: [{ ...input, headers: { ...input.headers, [UNTRANSFORMED_HEADER]: note } }],
            };
          }
          return { ok: true, records: [{ kind: "message", event: input }] };
        }
        case "dead_letter": {
          count("dead_letter");
          const original = records[ref.index]!;
          const info: TransformFailureInfo = {
            transform: bound.label,
            version: bound.live.version,
            topic: "kind" in input ? input.topic : null,
            key: "kind" in input ? input.key : null,
            reason: failure.reason === "breaker-open" ? "breaker-open" : "failed",
            error: failure.failure,
            attempts,
          };
          const event = original.kind === "change" || original.kind === "message"
            ? original.event
            : ("kind" in input ? input.event : input);
          deadLetters.push({
            index: ref.index,
            record: { kind: "dead-letter", event, failure: info },
          });
          return { ok: true, records: [] };
        }
        case "skip":
          count("skip");
          this.#log("warn", "Event skipped: its transform failed (on_error: skip)", {
            transform: bound.label,
            lsn: formatLsn("kind" in input ? input.event.source.lsn : input.lsn),
          });
          return { ok: true, records: [] };
        case "stop":
          count("stop");
          return {
            stop: failure.reason === "breaker-open"
              ? `breaker open after ${bound.lastError ?? "failures"}`
              : describeFailure(failure.failure),
          };
      }
    }
    // The last step was dead_letter followed by nothing, or retry (refused by the config).
    return { stop: describeFailure(failure.failure) };
  }

  /** The batch's records with each one's outputs in its place, commits counting what is left. */
  #assemble(records: readonly SinkRecord[], outputs: Outputs): SinkRecord[] {
    const out: SinkRecord[] = [];
    for (const [index, record] of records.entries()) {
      const produced = outputs[index] ?? null;
      if (record.kind === "begin") this.#countDelta = 0;
      if (record.kind === "commit" && this.#countDelta !== 0) {
        out.push({ ...record, eventCount: record.eventCount + this.#countDelta });
        this.#countDelta = 0;
        continue;
      }
      if (produced === null) {
        out.push(record);
        continue;
      }
      // Transactional messages count too; a standalone message is not in a transaction.
      if (record.kind === "change" || (record.kind === "message" && record.event.transactional)) {
        this.#countDelta += produced.length - 1;
      }
      out.push(...produced);
    }
    return out;
  }

  /**
   * Waits until the transform that stopped the pipeline has a new version ready (its file was
   * fixed), and lets it take over at once; false when `signal` aborted first.
   */
  async resume(transform: string, signal: AbortSignal): Promise<boolean> {
    const bound = this.#bounds.find((candidate) => candidate.label === transform);
    if (bound === undefined) return false;
    const ready = await bound.live.nextVersion(signal);
    if (!ready) return false;
    bound.open = null;
    if (await bound.live.boundary()) this.#tookOver(bound);
    this.#log("info", "Transform fixed: the pipeline resumes", {
      transform: bound.label,
      version: bound.live.version.slice(0, 12),
    });
    return true;
  }

  /**
   * Ends every Worker at once, without `teardown` (a stop whose grace period is over, while a
   * transform still runs): the batch in progress ends with `aborted`, nothing of it written.
   */
  abort(): void {
    this.#aborted = true;
    for (const bound of this.#bounds) bound.live.terminate();
  }

  /** Runs every transform's `teardown` and ends the Workers. */
  async close(): Promise<void> {
    await Promise.all(this.#bounds.map((bound) => bound.live.close().catch(() => {})));
  }
}

/** The header (and field) that marks an event `passthrough` let go by untransformed. */
export const UNTRANSFORMED_HEADER = "spillway.untransformed";

type FailureReason = "error" | "timeout" | "invalid" | "breaker-open";

type Produced =
  | { ok: true; records: SinkRecord[] }
  | { ok: false; failure: TransformFailure; reason: FailureReason };

const BREAKER_OPEN: Extract<WorkResult, { ok: false }> = {
  ok: false,
  error: { name: "BreakerOpen", message: "the breaker is open", where: null, stack: null },
};

/** The message of runItem's TypeError for a hook's return value that is not an event. */
const INVALID_RESULT = /^(?:change|truncate)\(\) returned /;

const BREAKER_GAUGE: Record<BreakerState, number> = { closed: 0, "half-open": 1, open: 2 };

function thrown(error: unknown): TransformFailure {
  return {
    name: error instanceof TransformTimeoutError ? "TransformTimeoutError" : "Error",
    message: errorMessage(error),
    where: null,
    stack: error instanceof Error ? error.stack ?? null : null,
  };
}

function firstLine(text: string): string {
  const line = text.split("\n", 1)[0]!;
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

function logLevel(level: string): "debug" | "info" | "warn" | "error" {
  return level === "debug" || level === "warn" || level === "error" ? level : "info";
}
