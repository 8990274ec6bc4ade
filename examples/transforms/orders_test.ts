/**
 * Unit tests of the example transform `orders.ts`: its hooks on hand-made events, in this
 * process, with `testTransform` (no server, no Worker). Run them with `deno test
 * examples/transforms/`; `deno task test` runs them too.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type TestInput, testTransform, type TransformRelation } from "@spillway/spillway";
import transform, { BIG_ORDER_CENTS, BIG_ORDERS_TOPIC } from "./orders.ts";
import type { Orders } from "./types/public.ts";

const source = {
  schema: "public",
  table: "orders",
  relid: 16_400,
  lsn: "0/1A2B3C8",
  commitLsn: "0/1A2B400",
  xid: 750,
  commitTime: "2026-12-05T12:00:00.000000Z",
};

/** An order as the pipeline hands it over: int8 as bigint, numeric and timestamps as text. */
function order(id: number, fields: Partial<Orders> = {}): Orders {
  return {
    id: BigInt(id),
    customer_id: 3n,
    amount: "25.00",
    status: "new",
    note: null,
    created_at: "2026-12-05T11:59:59.123456Z",
    ...fields,
  };
}

/**
 * The insert of `row`, routed as the pipeline routes it (topic and key from the YAML). The row
 * is spread into a plain object: `testTransform` takes rows as `Record<string, unknown>`, which
 * an interface such as `Orders` is not assignable to.
 */
function inserted(row: Orders, xid = source.xid): TestInput {
  return {
    op: "c",
    source: { ...source, xid },
    before: null,
    after: { ...row },
    unchanged: [],
    topic: "shop.orders",
    key: { id: row.id },
  };
}

Deno.test("orders: test orders are dropped, note becomes comment, amount_cents is added", async () => {
  const { events, logs } = await testTransform(transform, [
    inserted(order(1, { amount: "12.34", note: "gift wrap" })),
    inserted(order(2, { status: "test" })),
  ]);
  assert.equal(events.length, 1);
  assert.deepEqual(events[0]!.after, {
    id: 1n,
    customer_id: 3n,
    amount: "12.34",
    status: "new",
    comment: "gift wrap",
    created_at: "2026-12-05T11:59:59.123456Z",
    amount_cents: 1234,
  });
  assert.equal(events[0]!.topic, "shop.orders", "the topic the pipeline gave it");
  assert.deepEqual(logs.map((line) => line.message), [
    "Orders transform ready",
    "Test order dropped",
  ]);
  assert.deepEqual(logs[1]!.fields, { id: "2", op: "c" });
});

Deno.test("orders: a big order also goes to shop.orders.big, with a header", async () => {
  const big = (BIG_ORDER_CENTS / 100).toFixed(2);
  const { events } = await testTransform(transform, [inserted(order(7, { amount: big }))]);
  assert.deepEqual(events.map((event) => [event.topic, event.headers]), [
    ["shop.orders", undefined],
    [BIG_ORDERS_TOPIC, { priority: "high" }],
  ]);
  assert.deepEqual(events[0]!.after, events[1]!.after);
  assert.deepEqual(events[1]!.key, { id: 7n }, "the copy keeps the key");
});

Deno.test("orders: an unchanged TOASTed note stays out, named as comment; a key-only delete passes", async () => {
  const { note: _note, ...withoutNote } = order(8, { status: "paid" });
  const updated = {
    op: "u" as const,
    source,
    before: null,
    after: withoutNote,
    unchanged: ["note"],
  };
  // Under REPLICA IDENTITY DEFAULT a delete's `before` is the key alone.
  const deleted = { op: "d" as const, source, before: { id: 8n }, after: null, unchanged: [] };
  const { events } = await testTransform(transform, [updated, deleted]);
  assert.equal(events.length, 2);
  assert.ok(!("comment" in events[0]!.after!), "no value is made up for it");
  assert.deepEqual(events[0]!.unchanged, ["comment"]);
  assert.deepEqual(events[1], deleted);
});

Deno.test("orders: under REPLICA IDENTITY FULL, before is cleaned too, and a deleted test order is dropped", async () => {
  const paid = {
    op: "u" as const,
    source,
    before: { ...order(5, { note: "call first" }) },
    after: { ...order(5, { note: "call first", status: "paid" }) },
    unchanged: [],
  };
  const deleted = {
    op: "d" as const,
    source,
    before: { ...order(6, { status: "test" }) },
    after: null,
    unchanged: [],
  };
  const { events, logs } = await testTransform(transform, [paid, deleted]);
  assert.equal(events.length, 1);
  assert.deepEqual(
    [events[0]!.before?.comment, events[0]!.before?.amount_cents, events[0]!.before?.status],
    ["call first", 2500, "new"],
  );
  assert.deepEqual([events[0]!.after?.comment, events[0]!.after?.status], ["call first", "paid"]);
  assert.deepEqual(logs.at(-1)?.fields, { id: "6", op: "d" });
});

Deno.test("orders: an amount that is not a number fails the event, naming the order", async () => {
  await assert.rejects(
    testTransform(transform, [inserted(order(9, { amount: "NaN" }))]),
    RangeError,
    'Order 9: amount "NaN" is not a number of cents',
  );
});

Deno.test("orders: a change of the table's columns is logged with what was added and dropped", () => {
  const relation = (...names: string[]): TransformRelation => ({
    schema: "public",
    table: "orders",
    relid: source.relid,
    columns: names.map((name) => ({ name, typeOid: 25, type: "text", key: name === "id" })),
  });
  const logs: string[] = [];
  // testTransform takes events, not DDL: the hook is called directly.
  transform.schemaChange!(relation("id", "amount", "note"), relation("id", "amount", "coupon"), {
    log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields)}`),
    state: {},
  });
  assert.deepEqual(logs, [
    'warn Columns of public.orders changed: run spillway types, then deno check {"added":"coupon","dropped":"note"}',
  ]);
});
