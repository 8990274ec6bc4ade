/**
 * The transform `deno task demo` runs on public.orders: each status gets a label and each order
 * its amount in cents. The demo copies this file into its working directory (by default
 * `./spillway-demo/demo/orders.ts`, written afresh at each start) and prints the copy's path:
 * edit the copy while the demo runs and save, and the new version takes over at the next
 * transaction. The changes printed after that show what you changed.
 *
 * Things to try: change a label below; compute another field in `shape`; return `null` from
 * `change` for the orders of one customer to drop them. A version that does not load (a syntax
 * error, say) leaves the running one in place and the demo prints why.
 *
 * @module
 */

import { defineTransform } from "@spillway/spillway";

/** A row of public.orders, as `deno task types` writes it. */
interface Order {
  id: bigint;
  customer_id: bigint;
  /** numeric: the exact decimal text, like "12.50". */
  amount: string;
  status: string;
  note: string | null;
  created_at: string;
}

/** An order as the sinks get it. */
interface ShapedOrder extends Order {
  amount_cents: number;
}

/** How each status reads downstream. */
const STATUS_LABELS: Record<string, string> = {
  new: "NEW",
  paid: "PAID",
  packed: "PACKED",
  shipped: "SHIPPED",
  delivered: "DELIVERED",
};

/**
 * The row as the sinks get it. A row of the key alone (the `before` of a table without
 * REPLICA IDENTITY FULL) stays as it is: it has no status or amount to shape.
 */
function shape(row: Order | null): ShapedOrder | Order | null {
  if (row === null || row.status === undefined) return row;
  return {
    ...row,
    status: STATUS_LABELS[row.status] ?? row.status,
    amount_cents: Math.round(Number(row.amount) * 100),
  };
}

export default defineTransform<Order>({
  change(event) {
    // Both sides alike, so that `before` and `after` compare: the demo's orders table has
    // REPLICA IDENTITY FULL, and the terminal output marks the columns an update changed.
    return { ...event, before: shape(event.before), after: shape(event.after) };
  },
});
