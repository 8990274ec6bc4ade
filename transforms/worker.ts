/**
 * One version of one transform, running in its own Worker: no permissions but those granted,
 * events in batches (a round trip costs tens of µs; a batch of a thousand costs about 3 µs an
 * event), a time budget per event after which the Worker is terminated, and errors named by
 * the transform's file and line.
 *
 * The Worker's code is a string (made into a `blob:` URL), and the transform comes as `data:`
 * URLs from {@linkcode loadTransform}: nothing is imported by file URL, so this works the same
 * from a bundle or a compiled binary.
 *
 * @module
 */

import { ConfigError } from "../errors.ts";
import type { LoadedTransform } from "./loader.ts";
import { makeRunItem, type WorkItem } from "./hooks.ts";
import { encodeItems, expandItems } from "./wire.ts";
import { declaredOutput } from "./shape.ts";

export type { WorkItem } from "./hooks.ts";
import type { TransformEvent, TransformMessage, TransformRow, TransformTruncate } from "./api.ts";

/**
 * What became of one item: `out` is what the hook returned, as a list (empty when dropped; the
 * input itself for hooks that return nothing, or when the transform has no such hook).
 */
export type WorkResult =
  | { ok: true; out: (TransformEvent | TransformTruncate | TransformMessage)[] }
  | { ok: false; error: TransformFailure };

/** A hook that threw or returned something invalid, as the host reports it. */
export interface TransformFailure {
  name: string;
  message: string;
  /** `file:line:col` in the transform's files, when the error says where. */
  where: string | null;
  stack: string | null;
}

/**
 * `TypeError: x is not a function (at orders.ts:12:7)`: the error's name (unless the message
 * names an error already, as a syntax error's does) and where, unless the message says it.
 */
export function describeFailure(failure: TransformFailure): string {
  const head = /^[A-Z][A-Za-z]*(?:Error|Capable)\b/.test(failure.message)
    ? failure.message
    : `${failure.name}: ${failure.message}`;
  return failure.where === null || head.includes(failure.where)
    ? head
    : `${head} (at ${failure.where})`;
}

/** A transform that could not start: a syntax error, a failed import, a throw in `setup`. */
export class TransformStartError extends ConfigError {
  override name = "TransformStartError";
  readonly where: string | null;
  constructor(message: string, where: string | null) {
    super(message);
    this.where = where;
  }
}

/** An item that ran past its time budget: the Worker was terminated. */
export class TransformTimeoutError extends Error {
  override name = "TransformTimeoutError";
  /** Index in the batch of the item that ran too long; `null` for loading and setup. */
  readonly item: number | null;
  constructor(message: string, item: number | null = null) {
    super(message);
    this.item = item;
  }
}

/** Permissions a transform may be granted; none by default. */
export interface TransformPermissions {
  read?: string[];
  net?: string[];
  env?: string[];
}

/** Options of {@linkcode TransformWorker.start}. */
export interface TransformWorkerOptions {
  /** Budget of each item of a batch, in ms; 0 for none. */
  timeoutMs: number;
  allow?: TransformPermissions;
  /** Receives the transform's `ctx.log` lines. */
  log?: (level: string, message: string, fields?: TransformRow) => void;
  /** State a previous version kept (with `keepState`). */
  state?: TransformRow;
  /** Budget of loading and `setup` (default 10 s). */
  startTimeoutMs?: number;
}

/** The Worker's side: loads the transform, runs hooks on batches, reports errors. */
const WORKER_SOURCE = `
const TRANSFORM = Symbol.for("spillway.transform");
let hooks = null;
let state = {};
const log = (level, message, fields) => self.postMessage({ type: "log", level: String(level), message: String(message), fields: fields ?? null });
const READ_ONLY = /read[- ]only property|object is not extensible|Cannot (?:assign|add|delete|define)/;
const failure = (error) => ({
  name: error?.name ?? "Error",
  message: (error?.message ?? String(error)) + (error instanceof TypeError && READ_ONLY.test(error.message)
    ? " (events are read-only: return a changed copy, e.g. { ...event, after: { ...event.after, total } })"
    : ""),
  stack: typeof error?.stack === "string" ? error.stack : null,
});
// ctx.log of a table's hooks tags its lines with the table (one function per relation).
const tableLogs = new WeakMap();
const logOf = (relation) => {
  if (!relation) return log;
  let tagged = tableLogs.get(relation);
  if (tagged === undefined) {
    const table = relation.schema + "." + relation.table;
    tagged = (level, message, fields) => log(level, message, { table, ...(fields ?? {}) });
    tableLogs.set(relation, tagged);
  }
  return tagged;
};
const context = (item) => ({ log: logOf(item?.relation), state, relation: item?.relation, transaction: item?.transaction });
const runItem = (${makeRunItem.toString()})();
const expandItems = ${expandItems.toString()};
const hasBytes = (event) => {
  if (!event) return false;
  if (ArrayBuffer.isView(event.content)) return true;
  for (const row of [event.before, event.after]) {
    if (row) for (const key in row) if (ArrayBuffer.isView(row[key])) return true;
  }
  return false;
};
self.onmessage = async (message) => {
  const data = message.data;
  if (data.type === "load") {
    try {
      state = data.state ?? {};
      const module = await import(data.url);
      const candidate = module.default;
      if (candidate === null || typeof candidate !== "object" || candidate[TRANSFORM] !== true) {
        throw new TypeError("the module's default export is not a transform: export default defineTransform({ ... })");
      }
      hooks = candidate;
      if (hooks.setup) await hooks.setup(context(null));
      const defined = Object.keys(hooks).filter((name) => typeof hooks[name] === "function");
      self.postMessage({
        type: "loaded",
        keepState: hooks.keepState === true,
        hooks: defined,
        output: hooks.output === undefined ? null : structuredClone(hooks.output),
      });
    } catch (error) {
      self.postMessage({ type: "failed", error: failure(error) });
    }
  } else if (data.type === "run") {
    const progress = data.progress ? new Int32Array(data.progress) : null;
    const items = expandItems(data.batch);
    // Per item: 1 its own event went on as it came (the host has it), 2 the next list of
    // outputs, 0 the next error.
    const codes = new Uint8Array(items.length);
    const outputs = [];
    const errors = [];
    for (const [index, item] of items.entries()) {
      // The host's watchdog sees which item runs, and since when; 0 while none does.
      if (progress !== null) Atomics.store(progress, 0, index + 1);
      try {
        let out = runItem(hooks, item, context(item));
        if (out instanceof Promise) out = await out;
        // The event returned as it came goes back as a mark, unless it holds bytes: a typed array
        // cannot be frozen, so the transform may have changed them in place.
        const same = !hasBytes(item.event);
        if (same && out.length === 1 && out[0] === item.event) {
          codes[index] = 1;
          continue;
        }
        // Elsewhere in a list the input itself goes back as 0 too.
        if (same) for (let i = 0; i < out.length; i++) if (out[i] === item.event) out[i] = 0;
        codes[index] = 2;
        outputs.push(out);
      } catch (error) {
        errors.push(failure(error));
      }
    }
    if (progress !== null) Atomics.store(progress, 0, 0);
    try {
      self.postMessage({ type: "done", id: data.id, codes, outputs, errors });
    } catch (error) {
      if (error?.name !== "DataCloneError") throw error;
      // An output that cannot be copied to the host fails its own item, saying what to return.
      const sendable = [];
      const failures = [];
      let nextOutput = 0;
      let nextError = 0;
      for (let k = 0; k < codes.length; k++) {
        if (codes[k] === 0) failures.push(errors[nextError++]);
        if (codes[k] !== 2) continue;
        const out = outputs[nextOutput++];
        try {
          structuredClone(out);
          sendable.push(out);
        } catch (cloneError) {
          codes[k] = 0;
          failures.push({
            name: "TypeError",
            message: "change() returned something that cannot be sent on (" +
              (cloneError?.message ?? String(cloneError)) +
              "); return plain data: objects, arrays, strings, numbers, bigints, booleans, null, Dates and Uint8Arrays",
            stack: null,
          });
        }
      }
      self.postMessage({ type: "done", id: data.id, codes, outputs: sendable, errors: failures });
    }
  } else if (data.type === "state") {
    state = data.state ?? {};
    self.postMessage({ type: "adopted" });
  } else if (data.type === "stop") {
    try {
      if (hooks?.teardown) await hooks.teardown(context(null));
    } catch (error) {
      log("warn", "teardown threw: " + (error?.message ?? String(error)));
    }
    self.postMessage({ type: "stopped", state });
  }
};
`;

/**
 * The watchdog's judgement, tick by tick: given what the Worker's progress cell says (`n`: item
 * `n - 1` runs; 0: none does, the batch is on its way there or back) and the time, the index of
 * an item that has run longer than `limitMs`, else `null`. Only an item's own time counts.
 */
export function itemWatch(limitMs: number): (progress: number, now: number) => number | null {
  let seen = 0;
  let since = 0;
  return (progress, now) => {
    if (progress !== seen || progress === 0) {
      seen = progress;
      since = now;
      return null;
    }
    return now - since > limitMs ? progress - 1 : null;
  };
}

let workerUrl: string | null = null;

const ELIDED_DATA_URL =
  /data:application\/(?:typescript|javascript);base64,([A-Za-z0-9+/=]+)\.{6}([A-Za-z0-9+/=]+)/g;

/** A running transform version. */
export class TransformWorker {
  readonly transform: LoadedTransform;
  #worker: Worker;
  #options: TransformWorkerOptions;
  #pending = new Map<number, (message: Record<string, unknown>) => void>();
  #waiters: ((message: Record<string, unknown>) => void)[] = [];
  #nextId = 1;
  #terminated = false;
  /** The transform asked to keep its state across versions. */
  keepState = false;
  /** The hooks the transform defines (`change`, `message`, ...). */
  hooks: ReadonlySet<string> = new Set();
  /** The types its `output` declares, by field (see `shape.ts`). */
  output: ReadonlyMap<string, number> = new Map();

  private constructor(transform: LoadedTransform, options: TransformWorkerOptions) {
    this.transform = transform;
    this.#options = options;
    workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    const allow = options.allow ?? {};
    this.#worker = new Worker(workerUrl, {
      type: "module",
      name: `transform ${transform.path}`,
      deno: {
        permissions: {
          read: allow.read?.length ? allow.read : false,
          net: allow.net?.length ? allow.net : false,
          env: allow.env?.length ? allow.env : false,
          write: false,
          run: false,
          ffi: false,
          sys: false,
          import: false,
        },
      },
    } as WorkerOptions);
    this.#worker.onmessage = (event) => this.#receive(event.data);
    this.#worker.onerror = (event) => {
      // An error no hook caught (a rejection the transform left behind, say) ends the Worker:
      // every request in flight fails, and so does every later one, at once.
      event.preventDefault();
      this.#receive({ type: "crashed", message: event.message });
      this.terminate();
    };
  }

  /** Starts a Worker, loads the transform and runs its `setup`. */
  static async start(
    transform: LoadedTransform,
    options: TransformWorkerOptions,
  ): Promise<TransformWorker> {
    const worker = new TransformWorker(transform, options);
    const reply = await worker.#await(
      () => worker.#worker.postMessage({ type: "load", url: transform.url, state: options.state }),
      options.startTimeoutMs ?? 10_000,
      "loading it and running setup",
    ).catch((error) => {
      worker.terminate();
      throw error instanceof TransformTimeoutError
        ? new TransformStartError(error.message, null)
        : error;
    });
    if (reply.type !== "loaded") {
      worker.terminate();
      const failure = worker.#failure(reply.error);
      throw new TransformStartError(
        `Cannot start transform ${transform.path}: ${describeFailure(failure)}`,
        failure.where,
      );
    }
    worker.keepState = reply.keepState === true;
    worker.hooks = new Set(reply.hooks as string[]);
    const output = declaredOutput(reply.output);
    if (typeof output === "string") {
      worker.terminate();
      throw new TransformStartError(`Cannot start transform ${transform.path}: ${output}`, null);
    }
    worker.output = output;
    return worker;
  }

  /**
   * Runs `items` in order; one result per item. An item that runs longer than `timeoutMs` (an
   * endless loop, or a promise that does not settle) terminates the Worker: the call rejects
   * with a TransformTimeoutError naming the item, whatever the size of the batch.
   */
  async run(items: WorkItem[]): Promise<WorkResult[]> {
    const id = this.#nextId++;
    const progress = this.#options.timeoutMs > 0
      ? new Int32Array(new SharedArrayBuffer(4))
      : undefined;
    const batch = encodeItems(items);
    const reply = await this.#await(
      () => this.#worker.postMessage({ type: "run", id, batch, progress: progress?.buffer }),
      0,
      `${items.length} item(s)`,
      id,
      progress,
    );
    const codes = reply.codes as Uint8Array;
    const outputs = reply.outputs as unknown[][];
    const errors = reply.errors as TransformFailure[];
    const results: WorkResult[] = new Array(items.length);
    let nextOutput = 0;
    let nextError = 0;
    for (let k = 0; k < items.length; k++) {
      const event = (items[k] as { event?: TransformEvent }).event;
      if (codes[k] === 1) {
        results[k] = { ok: true, out: [event!] };
      } else if (codes[k] === 2) {
        const out = outputs[nextOutput++]!;
        for (let i = 0; i < out.length; i++) if (out[i] === 0) out[i] = event;
        results[k] = { ok: true, out: out as Extract<WorkResult, { ok: true }>["out"] };
      } else {
        results[k] = { ok: false, error: this.#failure(errors[nextError++]) };
      }
    }
    return results;
  }

  /** Replaces the transform's `ctx.state` (a previous version's, for `keepState`). */
  async adoptState(state: TransformRow): Promise<void> {
    await this.#await(
      () => this.#worker.postMessage({ type: "state", state }),
      this.#options.startTimeoutMs ?? 10_000,
      "taking over the state",
    );
  }

  /** Runs `teardown` (for at most `timeoutMs`), then ends the Worker; returns its state. */
  async stop(timeoutMs = 1_000): Promise<TransformRow> {
    if (this.#terminated) return {};
    try {
      const reply = await this.#await(
        () => this.#worker.postMessage({ type: "stop" }),
        timeoutMs,
        "teardown",
      );
      return (reply.state as TransformRow) ?? {};
    } catch {
      return {};
    } finally {
      this.terminate();
    }
  }

  /** Ends the Worker at once (also while a hook spins). */
  terminate(): void {
    if (this.#terminated) return;
    this.#terminated = true;
    this.#worker.terminate();
    const crashed = { type: "crashed", message: "the worker was terminated" };
    for (const resolve of this.#pending.values()) resolve(crashed);
    this.#pending.clear();
    for (const resolve of this.#waiters.splice(0)) resolve(crashed);
  }

  get terminated(): boolean {
    return this.#terminated;
  }

  /**
   * Sends a request and waits for its reply: at most `budgetMs` (0: no limit) in all, and with
   * `progress`, at most `timeoutMs` on any one item of a batch (the Worker stores the item it
   * runs there).
   */
  #await(
    send: () => void,
    budgetMs: number,
    what: string,
    id?: number,
    progress?: Int32Array,
  ): Promise<Record<string, unknown>> {
    if (this.#terminated) {
      return Promise.reject(new Error(`Transform ${this.transform.path} was stopped`));
    }
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let watchdog: ReturnType<typeof setInterval> | undefined;
      const settle = (message: Record<string, unknown>) => {
        clearTimeout(timer);
        clearInterval(watchdog);
        if (message.type === "crashed") {
          reject(
            new Error(`Transform ${this.transform.path} stopped: ${String(message.message)}`),
          );
        } else resolve(message);
      };
      if (id === undefined) this.#waiters.push(settle);
      else this.#pending.set(id, settle);
      if (budgetMs > 0) {
        timer = setTimeout(() => {
          reject(
            new TransformTimeoutError(
              `Transform ${this.transform.path} took more than ${budgetMs} ms for ${what}; its worker was terminated`,
            ),
          );
          this.terminate();
        }, budgetMs);
      }
      if (progress !== undefined) {
        const limit = this.#options.timeoutMs;
        const watch = itemWatch(limit);
        watchdog = setInterval(() => {
          const item = watch(Atomics.load(progress, 0), performance.now());
          if (item === null) return;
          clearInterval(watchdog);
          if (id !== undefined) this.#pending.delete(id);
          reject(
            new TransformTimeoutError(
              `Transform ${this.transform.path} ran past its time budget of ${limit} ms on one event (transforms.timeout); its worker was terminated and starts again`,
              item,
            ),
          );
          this.terminate();
        }, Math.max(5, Math.min(limit / 4, 50)));
      }
      send();
    });
  }

  #receive(message: Record<string, unknown>): void {
    if (message.type === "log") {
      this.#options.log?.(
        String(message.level),
        String(message.message),
        (message.fields as TransformRow | null) ?? undefined,
      );
      return;
    }
    if (message.type === "done") {
      const settle = this.#pending.get(message.id as number);
      this.#pending.delete(message.id as number);
      settle?.(message);
      return;
    }
    if (message.type === "crashed") {
      for (const settle of this.#pending.values()) settle(message);
      this.#pending.clear();
    }
    this.#waiters.shift()?.(message);
  }

  /** A failure from the Worker with `data:` URLs replaced by the files they hold. */
  #failure(raw: unknown): TransformFailure {
    const error = raw as { name?: string; message?: string; stack?: string | null };
    const name = this.#paths(error.name ?? "Error");
    // Deno's advice is for a command line; a transform's permissions come from the pipeline.
    const message = this.#paths(error.message ?? "").replace(
      /, run again with the --allow-([a-z]+) flag/,
      (_whole, kind: string) =>
        ["read", "net", "env"].includes(kind)
          ? `; grant it with transforms.allow.${kind} (or the table's allow.${kind}) in the pipeline file`
          : `; a transform is never granted ${kind} access`,
    );
    const stack = error.stack ? this.#paths(error.stack) : null;
    return { name, message, where: this.#where(`${message}\n${stack ?? ""}`), stack };
  }

  /** The first `file:line:col` of the transform's own files in `text`. */
  #where(text: string): string | null {
    let best: { at: number; where: string } | null = null;
    for (const path of this.transform.files.values()) {
      const match = new RegExp(`${RegExp.escape(path)}:\\d+:\\d+`).exec(text);
      if (match !== null && (best === null || match.index < best.at)) {
        best = { at: match.index, where: match[0] };
      }
    }
    return best?.where ?? null;
  }

  #paths(text: string): string {
    let out = text;
    for (const [url, path] of this.transform.files) out = out.replaceAll(url, path);
    // Stack traces shorten long data: URLs to their start and end around "......".
    return out.replace(ELIDED_DATA_URL, (whole, start: string, end: string) => {
      for (const [url, path] of this.transform.files) {
        const data = url.slice(url.indexOf(",") + 1);
        if (data.startsWith(start) && data.endsWith(end)) return path;
      }
      return whole;
    });
  }
}
