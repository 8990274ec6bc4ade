/**
 * `testTransform`: runs a transform's hooks on events in a plain `deno test`, in this process,
 * with the same hook semantics as a pipeline's Worker (see `hooks.ts`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineTransform, testTransform } from "./mod.ts";
 *
 * const dropTests = defineTransform<{ id: number; status: string }>({
 *   change: (event) => event.after?.status === "test" ? null : event,
 * });
 * const source = { schema: "public", table: "orders", relid: 1, lsn: "0/1", commitLsn: "0/2", xid: 7, commitTime: "2026-12-05T12:00:00Z" };
 * const { events } = await testTransform(dropTests, [
 *   { op: "c", source, before: null, after: { id: 1, status: "paid" }, unchanged: [] },
 *   { op: "c", source, before: null, after: { id: 2, status: "test" }, unchanged: [] },
 * ]);
 * assert.deepEqual(events.map((e) => e.after), [{ id: 1, status: "paid" }]);
 * ```
 *
 * @module
 */

import type {
  TransformContext,
  TransformEvent,
  TransformHooks,
  TransformMessage,
  TransformRelation,
  TransformRow,
  TransformTransaction,
  TransformTruncate,
} from "./api.ts";
import { relationOf, runItem, transactionOf, type WorkItem } from "./hooks.ts";

/**
 * What {@linkcode testTransform} takes: changes (with rows of the transform's row type, e.g. a
 * generated interface), truncates and messages, in order.
 */
export type TestInput<R = TransformRow> =
  | TransformEvent<R>
  | TransformTruncate
  | TransformMessage;

/** What a transform made of the inputs. */
export interface TestTransformResult {
  /** The changes the hooks passed on, in order (truncates and messages are in `others`). */
  events: TransformEvent<TransformRow>[];
  /** Truncates and messages passed on, in order. */
  others: (TransformTruncate | TransformMessage)[];
  /** The transform's `ctx.log` lines. */
  logs: { level: string; message: string; fields?: TransformRow }[];
  /** `ctx.state` after `teardown`. */
  state: TransformRow;
}

/** Options of {@linkcode testTransform}. */
export interface TestTransformOptions {
  /** The table's columns, as hooks see them in `ctx.relation`; default: the row's keys. */
  relation?: TransformRelation;
  /** `ctx.state` to start with. */
  state?: TransformRow;
}

/**
 * Runs `setup`, then each input (with `begin` and `commit` around each transaction, by the
 * inputs' `xid`), then `teardown`. A hook that throws makes the returned promise reject with
 * its error. Unlike a pipeline, it runs in this process (no Worker, sandbox or time budget),
 * returns outputs as the hooks made them (a pipeline keeps the input's `source` and checks
 * `topic`, `key` and `headers`), and never calls `schemaChange` (call it directly). Hooks get a read-only (frozen) copy of each input, as in a pipeline: a transform
 * returns a changed copy, never changes the event it got.
 */
export async function testTransform<R = TransformRow>(
  transform: TransformHooks<R>,
  inputs: (TestInput<NoInfer<R>> | TestInput)[],
  options: TestTransformOptions = {},
): Promise<TestTransformResult> {
  const result: TestTransformResult = {
    events: [],
    others: [],
    logs: [],
    state: options.state ?? {},
  };
  const log: TransformContext["log"] = (level, message, fields) =>
    result.logs.push({ level, message, ...(fields === undefined ? {} : { fields }) });
  const ctx = (relation?: TransformRelation, transaction?: TransformTransaction) => ({
    log,
    state: result.state,
    ...(relation === undefined ? {} : { relation }),
    ...(transaction === undefined ? {} : { transaction }),
  });
  const hooks = transform as TransformHooks<TransformRow>;
  await hooks.setup?.(ctx());
  let open: TransformTransaction | null = null;
  const run = async (item: WorkItem, relation?: TransformRelation) => {
    const out = await runItem(
      transform as TransformHooks<never>,
      item,
      ctx(relation, open ?? undefined),
    );
    for (const value of out) {
      const op = (value as { op: string }).op;
      if (op === "t" || op === "m") result.others.push(value as TransformTruncate);
      else result.events.push(value as TransformEvent);
    }
  };
  // Each input is copied: the hooks get it read-only (frozen), as in a pipeline.
  for (const input of inputs.map((value) => structuredClone(value))) {
    const source = "source" in input ? input.source : null;
    const transaction: TransformTransaction | null = source === null ? open : transactionOf(source);
    if (open !== null && (transaction === null || transaction.xid !== open.xid)) {
      await run({ kind: "commit", transaction: open });
      open = null;
    }
    if (open === null && transaction !== null) {
      open = transaction;
      await run({ kind: "begin", transaction });
    }
    if (input.op === "m") {
      await run({ kind: "message", event: input, ...(open ? { transaction: open } : {}) });
      continue;
    }
    const relation = options.relation ?? relationOf(input as TransformEvent | TransformTruncate);
    if (input.op === "t") {
      await run({ kind: "truncate", event: input, relation, transaction: open! }, relation);
    } else {
      const event = input as TransformEvent;
      await run({ kind: "change", event, relation, transaction: open! }, relation);
    }
  }
  if (open !== null) await run({ kind: "commit", transaction: open });
  await hooks.teardown?.(ctx());
  return result;
}
