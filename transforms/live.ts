/**
 * A transform that follows its file: when the file (or a local file it imports) changes, the
 * new version is loaded in a fresh Worker and its `setup` run beside the running one; it takes
 * over only at {@linkcode LiveTransform.boundary}, which the caller calls between transactions.
 * So no event meets a half-loaded module, none is run twice, and a version that fails to load
 * leaves the running one in place, with the error (file:line:col) in `lastError`.
 *
 * @module
 */

import { dirname } from "node:path";
import { errorMessage } from "../errors.ts";
import type { TransformRow } from "./api.ts";
import { loadTransform, TransformLoadError } from "./loader.ts";
import {
  type TransformPermissions,
  TransformWorker,
  type WorkItem,
  type WorkResult,
} from "./worker.ts";

/** Options of {@linkcode LiveTransform.start}. */
export interface LiveTransformOptions {
  /** Budget per item of a batch; 0 for none. */
  timeoutMs: number;
  allow?: TransformPermissions;
  /** Receives the transform's `ctx.log` lines and the reloads. */
  log?: (level: string, message: string, fields?: TransformRow) => void;
  /** Follow the files (default true). */
  watch?: boolean;
  /** Wait this long after a change before reloading, so one save is one reload (default 50 ms). */
  debounceMs?: number;
}

/** One transform file, its running version, and the next one once it is ready. */
export class LiveTransform {
  readonly path: string;
  #options: LiveTransformOptions;
  #current: TransformWorker;
  #next: TransformWorker | null = null;
  #loading: Promise<void> | null = null;
  #again = false;
  #watcher: Deno.FsWatcher | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #readyWaiters = new Set<(ready: boolean) => void>();
  /** The files of the last attempt that failed to load (followed until a version loads). */
  #failedFiles = new Set<string>();
  /** Why the last reload failed; `null` once a version loads. */
  lastError: string | null = null;
  /** Versions that took over since the start. */
  reloads = 0;

  private constructor(path: string, worker: TransformWorker, options: LiveTransformOptions) {
    this.path = path;
    this.#current = worker;
    this.#options = options;
  }

  /** Loads the file and starts its first version; fails as the file does. */
  static async start(path: string, options: LiveTransformOptions): Promise<LiveTransform> {
    const worker = await TransformWorker.start(await loadTransform(path), options);
    const live = new LiveTransform(worker.transform.path, worker, options);
    if (options.watch ?? true) live.#watch();
    return live;
  }

  /** The running version (sha-256 of its files). */
  get version(): string {
    return this.#current.transform.version;
  }

  /** The hooks the running version defines. */
  get hooks(): ReadonlySet<string> {
    return this.#current.hooks;
  }

  /** The field types the running version's `output` declares. */
  get output(): ReadonlyMap<string, number> {
    return this.#current.output;
  }

  /** The version that takes over at the next boundary, if one is ready. */
  get readyVersion(): string | null {
    return this.#next?.transform.version ?? null;
  }

  /**
   * Runs a batch on the running version. After a timeout or a crash its Worker is gone: a fresh
   * one of the same version starts (its `setup` runs again) before the error is passed on.
   */
  async run(items: WorkItem[]): Promise<WorkResult[]> {
    try {
      return await this.#current.run(items);
    } catch (error) {
      // Timed out (terminated) or crashed: the same version starts again in a fresh Worker.
      if (this.#current.terminated && !this.#closed) {
        this.#current = await TransformWorker.start(this.#current.transform, this.#options);
      }
      throw error;
    }
  }

  /**
   * Resolves true once a new version is ready to take over (at once when one is); false when
   * `signal` aborts first or the transform closes.
   */
  nextVersion(signal: AbortSignal): Promise<boolean> {
    if (this.#next !== null) return Promise.resolve(true);
    if (signal.aborted || this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ready: boolean) => {
        signal.removeEventListener("abort", onAbort);
        this.#readyWaiters.delete(onReady);
        resolve(ready);
      };
      const onAbort = () => done(false);
      const onReady = (ready: boolean) => done(ready);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#readyWaiters.add(onReady);
    });
  }

  /** Between transactions: a ready new version takes over (true when one did). */
  async boundary(): Promise<boolean> {
    const next = this.#next;
    if (next === null) return false;
    this.#next = null;
    const previous = this.#current;
    this.#current = next;
    this.reloads++;
    const state = await previous.stop();
    // A transform that asks for it keeps its state across versions.
    if (next.keepState) await next.adoptState(state);
    this.#options.log?.("info", "Transform version took over", {
      path: this.path,
      version: next.transform.version.slice(0, 12),
      previous: previous.transform.version.slice(0, 12),
    });
    return true;
  }

  /**
   * Loads the file again now (the watcher calls it after a change): on success the new version
   * waits for the next boundary; on failure `lastError` says why and the running one stays.
   */
  reload(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#loading !== null) {
      this.#again = true;
      return this.#loading;
    }
    this.#loading = this.#reload().finally(() => {
      this.#loading = null;
      if (this.#again && !this.#closed) {
        this.#again = false;
        void this.reload();
      }
    });
    return this.#loading;
  }

  async #reload(): Promise<void> {
    let failedFiles: Iterable<string> | null = null;
    try {
      const loaded = await loadTransform(this.path);
      failedFiles = loaded.files.values();
      const ready = this.#next?.transform.version ?? this.#current.transform.version;
      if (loaded.version === ready) {
        this.lastError = null; // back to the text that runs (or is ready): nothing is wrong
        return;
      }
      const worker = await TransformWorker.start(loaded, this.#options);
      if (this.#closed) {
        worker.terminate();
        return;
      }
      this.#next?.terminate();
      this.#next = worker;
      this.lastError = null;
      this.#failedFiles = new Set();
      for (const waiter of [...this.#readyWaiters]) waiter(true);
      if (this.#watcher !== null) this.#watch(); // the new version may import other files
    } catch (error) {
      this.lastError = errorMessage(error);
      // The files of the failed attempt are followed too, so fixing one of them is seen.
      const attempted = error instanceof TransformLoadError
        ? error.files
        : [...(failedFiles ?? [])];
      if (attempted.some((file) => !this.#failedFiles.has(file))) {
        this.#failedFiles = new Set(attempted);
        if (this.#watcher !== null) this.#watch();
      }
      this.#options.log?.("error", "Transform did not load; the running version stays", {
        path: this.path,
        error: this.lastError,
      });
    }
  }

  /**
   * Watches the folders of the transform's files (not the files: an editor that saves by
   * renaming a new file over the old one would leave a file watch on the old one), and reloads
   * after a change to one of the files.
   */
  #watch(): void {
    this.#watcher?.close();
    const files = new Set([
      ...this.#current.transform.files.values(),
      ...this.#next?.transform.files.values() ?? [],
      ...this.#failedFiles,
    ]);
    const watcher = Deno.watchFs([...new Set([...files].map((file) => dirname(file)))], {
      recursive: false,
    });
    this.#watcher = watcher;
    (async () => {
      for await (const event of watcher) {
        if (event.kind === "access" || !event.paths.some((path) => files.has(path))) continue;
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => void this.reload(), this.#options.debounceMs ?? 50);
      }
    })().catch(() => {});
  }

  /** Ends every Worker at once, without `teardown`, and stops watching: nothing runs any more. */
  terminate(): void {
    this.#closed = true;
    for (const waiter of [...this.#readyWaiters]) waiter(false);
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = null;
    this.#next?.terminate();
    this.#current.terminate();
  }

  /** Stops watching, runs `teardown` of the running version and ends every Worker. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const waiter of [...this.#readyWaiters]) waiter(false);
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = null;
    await this.#loading?.catch(() => {});
    this.#next?.terminate();
    await this.#current.stop();
  }
}
