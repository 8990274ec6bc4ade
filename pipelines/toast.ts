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
  /** key → last full row; Map order is recency order. */
  readonly #cache = new Map<string, Row>();

  constructor(options: ToastPolicyOptions) {
    this.mode = options.mode;
    this.#placeholder = options.placeholder ?? DEBEZIUM_UNAVAILABLE_VALUE;
    this.#cacheSize = options.cacheSize ?? 10_000;
  }

  /** Rows remembered now. */
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

  #lastValue(event: ChangeEvent, key: string | null): void {
    if (key === null) return;
    if (event.op === "d" || event.op === "t") {
      if (event.op === "d") this.#cache.delete(key);
      else this.#cache.clear();
      return;
    }
    const after = event.after;
    if (after === null) return;
    if (event.unchanged.length > 0) {
      const previous = this.#cache.get(key);
      if (previous !== undefined) {
        const still: string[] = [];
        for (const column of event.unchanged) {
          if (Object.hasOwn(previous, column)) setField<unknown>(after, column, previous[column]);
          else still.push(column);
        }
        event.unchanged = still;
      }
    }
    this.#remember(key, after);
  }

  #remember(key: string, row: Row): void {
    this.#cache.delete(key);
    this.#cache.set(key, { ...row });
    if (this.#cache.size > this.#cacheSize) {
      const oldest = this.#cache.keys().next();
      if (!oldest.done) this.#cache.delete(oldest.value);
    }
  }
}
