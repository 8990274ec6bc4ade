/**
 * The worked example of the README's "Transforms" section: the transform that
 * `examples/transforms.yaml` (and `examples/orders.yaml`) bind to `public.orders`.
 *
 * - test orders (`status = 'test'`) are dropped;
 * - `note` is renamed `comment`;
 * - `amount_cents` is added: the numeric amount as a whole number of cents;
 * - a big order is sent twice: as usual, and to the topic `shop.orders.big` with the header
 *   `priority: high` (fan-out);
 * - a change of the table's columns is logged, since the row type below may be out of date.
 *
 * The row type comes from `spillway types`, so `deno check` fails here when a column this file
 * uses is gone. Unit tests: `orders_test.ts` beside it.
 *
 * @module
 */

import { defineTransform } from "@spillway/spillway";
// Written by `deno task types examples/transforms.yaml --out examples/transforms/types`.
import type { Orders } from "./types/public.ts";

/** Orders of at least this many cents are big: also sent to {@linkcode BIG_ORDERS_TOPIC}. */
export const BIG_ORDER_CENTS = 40_000;

/** Where the copies of big orders go. */
export const BIG_ORDERS_TOPIC = "shop.orders.big";

/** An order as the sinks get it. */
export interface CleanOrder extends Omit<Orders, "note"> {
  /** `note`, renamed; absent when an UPDATE left a long (TOASTed) note unchanged. */
  comment?: string | null;
  amount_cents: number;
}

export default defineTransform<Orders>({
  setup(ctx) {
    ctx.log("info", "Orders transform ready", { bigOrderCents: BIG_ORDER_CENTS });
  },

  change(event, ctx) {
    // A delete has no `after`; its `before` is the key alone unless the table has REPLICA
    // IDENTITY FULL, so a deleted test order is known (and dropped) only then.
    const order = event.after ?? event.before!;
    if (order.status === "test") {
      ctx.log("info", "Test order dropped", { id: String(order.id), op: event.op });
      return null;
    }
    const clean = {
      ...event,
      before: event.before && whole(event.before) ? cleanOrder(event.before, []) : event.before,
      after: event.after && cleanOrder(event.after, event.unchanged),
      unchanged: event.unchanged.map((column) => column === "note" ? "comment" : column),
    };
    if (clean.after === null || clean.after.amount_cents < BIG_ORDER_CENTS) return clean;
    return [clean, { ...clean, topic: BIG_ORDERS_TOPIC, headers: { priority: "high" } }];
  },

  schemaChange(previous, next, ctx) {
    const before = previous.columns.map((column) => column.name);
    const after = next.columns.map((column) => column.name);
    ctx.log("warn", "Columns of public.orders changed: run spillway types, then deno check", {
      added: after.filter((name) => !before.includes(name)).join(","),
      dropped: before.filter((name) => !after.includes(name)).join(","),
    });
  },
});

/** A whole row, not the key alone (a `before` under REPLICA IDENTITY DEFAULT). */
function whole(row: Orders): boolean {
  return "amount" in row;
}

/** The order with `note` renamed `comment`, and `amount_cents` added. */
function cleanOrder(order: Orders, unchanged: string[]): CleanOrder {
  const { note, ...rest } = order;
  return {
    ...rest,
    ...(unchanged.includes("note") ? {} : { comment: note }),
    amount_cents: cents(order),
  };
}

/** `"123.45"` (a numeric(12,2), which the decoder gives as text) as 12345. */
function cents(order: Orders): number {
  const value = Math.round(Number(order.amount) * 100);
  if (!Number.isFinite(value)) {
    throw new RangeError(`Order ${order.id}: amount "${order.amount}" is not a number of cents`);
  }
  return value;
}
