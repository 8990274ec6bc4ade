/**
 * Runs one work item through a transform's hooks: the one implementation used inside each
 * Worker (its source text is embedded in the Worker's code, so it must stay self-contained: no
 * imports, no outside names) and by {@linkcode testTransform} in plain tests.
 *
 * @module
 */

import type {
  TransformContext,
  TransformEvent,
  TransformHooks,
  TransformMessage,
  TransformRelation,
  TransformSource,
  TransformTransaction,
  TransformTruncate,
} from "./api.ts";

/** One thing for a transform to do, in the order the transaction has them. */
export type WorkItem =
  | { kind: "begin"; transaction: TransformTransaction }
  | {
    kind: "change";
    event: TransformEvent;
    relation: TransformRelation;
    transaction: TransformTransaction;
  }
  | {
    kind: "truncate";
    event: TransformTruncate;
    relation: TransformRelation;
    transaction: TransformTransaction;
  }
  | { kind: "message"; event: TransformMessage; transaction?: TransformTransaction }
  | {
    kind: "schema";
    previous: TransformRelation;
    next: TransformRelation;
    /** The table as it is now (`next`): `ctx.relation` of the hook. */
    relation: TransformRelation;
  }
  | { kind: "commit"; transaction: TransformTransaction };

/** Runs one work item through a transform's hooks (see {@linkcode makeRunItem}). */
export type RunItem = (
  hooks: TransformHooks<never>,
  item: WorkItem,
  ctx: TransformContext,
) => unknown[] | Promise<unknown[]>;

/**
 * Makes the function that calls the hook `item` is for and returns what goes on: the events the
 * hook returned (none when it dropped the item; the item's own event when the transform has no
 * such hook). It throws (or rejects with) what the hook throws, and a TypeError for a return
 * value that is not an event. A hook that returns at once is answered at once, without a
 * promise: a Worker runs thousands of items a batch. Self-contained, so that its source text can
 * be embedded in the Worker's code.
 */
export function makeRunItem(): RunItem {
  const isEvent = (value: unknown): boolean =>
    value !== null && typeof value === "object" &&
    typeof (value as { op?: unknown }).op === "string" &&
    typeof (value as { source?: unknown }).source === "object" &&
    (value as { source?: unknown }).source !== null;
  const describe = (value: unknown): string => {
    if (value === undefined) return "undefined";
    try {
      return (JSON.stringify(value, (_k, v) => typeof v === "bigint" ? `${v}n` : v) ??
        String(value))
        .slice(0, 200);
    } catch {
      return String(value).slice(0, 200);
    }
  };
  // Events are read-only: a transform returns a changed copy. (So an event returned as it came
  // is the event as it came, and the host may send on its own copy of it.)
  const freeze = (value: unknown): void => {
    if (value === null || typeof value !== "object" || Object.isFrozen(value)) return;
    if (ArrayBuffer.isView(value)) return; // a typed array with elements cannot be frozen
    Object.freeze(value);
    for (const key in value) freeze((value as Record<string, unknown>)[key]);
  };
  const then = <T>(value: unknown, next: (settled: unknown) => T): T | Promise<T> =>
    value instanceof Promise ? value.then(next) : next(value);
  const none = (): unknown[] => [];
  const changed = (out: unknown): unknown[] => {
    const list: unknown[] = out === null || out === undefined
      ? []
      : Array.isArray(out)
      ? out
      : [out];
    for (const value of list) {
      const op = (value as { op?: unknown })?.op;
      if (!isEvent(value) || (op !== "c" && op !== "u" && op !== "d" && op !== "r")) {
        throw new TypeError(
          `change() returned ${
            describe(value)
          }: expected an event (with op and source), a list of them, or null`,
        );
      }
    }
    return list;
  };
  return (hooks, item, ctx) => {
    if ("event" in item) freeze(item.event);
    // deno-lint-ignore no-explicit-any
    const h = hooks as any;
    switch (item.kind) {
      case "begin":
        return then(h.begin?.(item.transaction, ctx), none);
      case "commit":
        return then(h.commit?.(item.transaction, ctx), none);
      case "schema":
        return then(h.schemaChange?.(item.previous, item.next, ctx), none);
      case "change":
        return h.change ? then(h.change(item.event, ctx), changed) : [item.event];
      case "truncate":
      case "message": {
        const hook = item.kind === "truncate" ? h.truncate : h.message;
        if (!hook) return [item.event];
        return then(hook(item.event, ctx), (out) => {
          if (out === null || out === undefined) return [];
          if (!isEvent(out) && item.kind === "truncate") {
            throw new TypeError(`truncate() returned ${describe(out)}: return the event or null`);
          }
          return [out];
        });
      }
    }
    throw new TypeError(`unknown work item ${(item as { kind?: unknown }).kind}`);
  };
}

/** {@linkcode makeRunItem}'s function, for this process (e.g. `testTransform`). */
export const runItem: RunItem = makeRunItem();

/** The transaction an event's source names. */
export function transactionOf(source: TransformSource): TransformTransaction {
  return { xid: source.xid, commitLsn: source.commitLsn, commitTime: source.commitTime };
}

/**
 * The relation of an event that came without one (from JSON lines, or a unit test): its
 * table, and the row's keys as columns of unknown type.
 */
export function relationOf(input: TransformEvent | TransformTruncate): TransformRelation {
  const row = "after" in input ? input.after ?? input.before ?? {} : {};
  return {
    schema: input.source.schema,
    table: input.source.table,
    relid: input.source.relid,
    columns: Object.keys(row).map((name) => ({ name, typeOid: 0, type: "unknown", key: false })),
  };
}
