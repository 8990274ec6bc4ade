/**
 * Unchanged TOAST values: PostgreSQL does not send a TOASTed column that an
 * UPDATE left unchanged ('u'). Per table, Spillway either lists it as unchanged
 * (default), omits it, writes a placeholder, or fills it from the last value it
 * saw for the same key. It never invents a value silently.
 *
 * @module
 */

import { setField } from "../decoder/types/values.ts";
import { DEBEZIUM_UNAVAILABLE_VALUE, type ToastMode } from "../config/mod.ts";
import type { ChangeEvent, Row } from "../events.ts";

export { DEBEZIUM_UNAVAILABLE_VALUE };

/** Options of {@linkcode ToastPolicy}. */
export interface ToastPolicyOptions {
  mode: ToastMode;
  placeholder?: string;
  /** Rows remembered for `last_value` (least recently used ones are forgotten). */
  cacheSize?: number;
}

/**
 * Applies one table's TOAST policy to its events, in stream order.
 *
 * - `unchanged`: the column is absent from `after` and listed in `unchanged`.
 * - `omit`: the column is absent from `after` and not listed.
 * - `placeholder`: `after[column]` is the placeholder; still listed in `unchanged`.
 * - `last_value`: filled from the newest value seen for the same key, and then no
 *   longer listed; when none is remembered, it stays listed as unchanged.
 *
 * What `last_value` learns from a transaction (rows, deletes, a truncate) stays pending, seen
 * by that transaction's later changes, until {@linkcode commit}; {@linkcode discard} forgets
 * it, for a transaction that was dropped (cut by a reconnect, or by a stop) and will be
 * sent again.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ToastPolicy } from "./toast.ts";
 * import type { ChangeEvent } from "../events.ts";
 * const policy = new ToastPolicy({ mode: "last_value" });
 * const source = {} as never;
 * policy.apply({ op: "c", source, before: null, after: { id: 1, doc: "big" }, unchanged: [] }, "1");
 * const update: ChangeEvent = { op: "u", source, before: null, after: { id: 1 }, unchanged: ["doc"] };
 * policy.apply(update, "1");
 * assert.equal(update.after?.doc, "big");
 * assert.deepEqual(update.unchanged, []);
 * ```
 */
export class ToastPolicy {
  readonly mode: ToastMode;
  readonly #placeholder: string;
  readonly #cacheSize: number;
  /** key → last full row of committed transactions; Map order is recency order. */
  readonly #cache = new Map<string, Row>();
  /** The open transaction's rows by key, in recency order; at most `cacheSize`. */
  readonly #pendingRows = new Map<string, Row>();
  /** Keys of committed rows the open transaction deleted (or forgot: see `#learn`). */
  readonly #pendingDeletes = new Set<string>();
  /** The open transaction truncated the table: committed rows no longer count. */
  #pendingTruncate = false;

  constructor(options: ToastPolicyOptions) {
    this.mode = options.mode;
    this.#placeholder = options.placeholder ?? DEBEZIUM_UNAVAILABLE_VALUE;
    this.#cacheSize = options.cacheSize ?? 10_000;
  }

  /** Rows remembered from committed transactions. */
  get cached(): number {
    return this.#cache.size;
  }

  /** Applies the policy in place. `key` identifies the row (null when the table has no key). */
  apply(event: ChangeEvent, key: string | null): void {
    switch (this.mode) {
      case "unchanged":
        return;
      case "omit":
        event.unchanged = [];
        return;
      case "placeholder":
        if (event.after !== null) {
          for (const column of event.unchanged) {
            setField<unknown>(event.after, column, this.#placeholder);
          }
        }
        return;
      case "last_value":
        this.#lastValue(event, key);
        return;
    }
  }

  /** Makes what the open transaction taught part of what is remembered. */
  commit(): void {
    if (this.#pendingTruncate) this.#cache.clear();
    for (const key of this.#pendingDeletes) this.#cache.delete(key);
    for (const [key, row] of this.#pendingRows) this.#remember(key, row);
    this.discard();
  }

  /** Forgets what the open transaction taught. */
  discard(): void {
    this.#pendingRows.clear();
    this.#pendingDeletes.clear();
    this.#pendingTruncate = false;
  }

  /** The newest row known for `key`: the open transaction's, else a committed one. */
  #lookup(key: string): Row | undefined {
    const pending = this.#pendingRows.get(key);
    if (pending !== undefined || this.#pendingTruncate || this.#pendingDeletes.has(key)) {
      return pending;
    }
    return this.#cache.get(key);
  }

  /** Records in the open transaction the row of `key`, or (`null`) that it was deleted. */
  #learn(key: string, row: Row | null): void {
    this.#pendingRows.delete(key);
    this.#pendingDeletes.delete(key);
    if (row !== null) this.#pendingRows.set(key, row);
    else this.#hide(key);
    if (this.#pendingRows.size > this.#cacheSize) {
      // The oldest would not survive the commit either; its committed row must not come back.
      const oldest = this.#pendingRows.keys().next().value!;
      this.#pendingRows.delete(oldest);
      this.#hide(oldest);
    }
  }

  /** Hides the committed row of `key` from the open transaction (and deletes it at commit). */
  #hide(key: string): void {
    if (!this.#pendingTruncate && this.#cache.has(key)) this.#pendingDeletes.add(key);
  }

  #lastValue(event: ChangeEvent, key: string | null): void {
    if (event.op === "t") { // a truncate has no key
      this.discard();
      this.#pendingTruncate = true;
      return;
    }
    if (key === null) return;
    if (event.op === "d") {
      this.#learn(key, null);
      return;
    }
    const after = event.after;
    if (after === null) return;
    if (event.unchanged.length > 0) {
      const previous = this.#lookup(key);
      if (previous !== undefined) {
        const still: string[] = [];
        for (const column of event.unchanged) {
          if (Object.hasOwn(previous, column)) setField<unknown>(after, column, previous[column]);
          else still.push(column);
        }
        event.unchanged = still;
      }
    }
    this.#learn(key, { ...after });
  }

  #remember(key: string, row: Row): void {
    this.#cache.delete(key);
    this.#cache.set(key, row);
    if (this.#cache.size > this.#cacheSize) {
      const oldest = this.#cache.keys().next();
      if (!oldest.done) this.#cache.delete(oldest.value);
    }
  }
}
