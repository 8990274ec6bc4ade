import assert from "node:assert/strict";
import { setField } from "../decoder/types/values.ts";
import type { ChangeEvent, Row } from "../events.ts";
import { parse, SOURCE, yaml } from "../config/_test_utils.ts";
import { Router } from "./route.ts";
import { DEBEZIUM_UNAVAILABLE_VALUE, ToastPolicy } from "./toast.ts";

const source = {} as ChangeEvent["source"];

function row(entries: [string, unknown][]): Row {
  const out: Row = {};
  for (const [name, value] of entries) setField<unknown>(out, name, value);
  return out;
}

Deno.test("toast last_value: columns named like Object.prototype members are filled only from the row seen", () => {
  const policy = new ToastPolicy({ mode: "last_value" });
  policy.apply({
    op: "c",
    source,
    before: null,
    after: row([["id", 1], ["__proto__", "old doc"]]),
    unchanged: [],
  }, "1");
  const update: ChangeEvent = {
    op: "u",
    source,
    before: null,
    after: row([["id", 1]]),
    unchanged: ["__proto__", "toString"],
  };
  policy.apply(update, "1");
  assert.equal(Object.getPrototypeOf(update.after), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(update.after, "__proto__")?.value, "old doc");
  // Never seen for this key: still unchanged, not Object.prototype.toString.
  assert.equal(Object.hasOwn(update.after!, "toString"), false);
  assert.deepEqual(update.unchanged, ["toString"]);
});

Deno.test("toast placeholder: a column named __proto__ gets the placeholder as its own field", () => {
  const policy = new ToastPolicy({ mode: "placeholder" });
  const update: ChangeEvent = {
    op: "u",
    source,
    before: null,
    after: row([["id", 1]]),
    unchanged: ["__proto__"],
  };
  policy.apply(update, "1");
  assert.equal(Object.getPrototypeOf(update.after), Object.prototype);
  assert.equal(
    Object.getOwnPropertyDescriptor(update.after, "__proto__")?.value,
    DEBEZIUM_UNAVAILABLE_VALUE,
  );
  assert.deepEqual(update.unchanged, ["__proto__"]);
});

/** An update of row `id` that left `doc` unchanged (TOASTed, not sent). */
function docUnchanged(id: number): ChangeEvent {
  return { op: "u", source, before: null, after: row([["id", id]]), unchanged: ["doc"] };
}

function inserted(id: number, doc: string): ChangeEvent {
  return { op: "c", source, before: null, after: row([["id", id], ["doc", doc]]), unchanged: [] };
}

/** What `last_value` fills into an update of `id` now (`undefined`: nothing remembered). */
function filled(policy: ToastPolicy, id: number): unknown {
  const update = docUnchanged(id);
  policy.apply(update, String(id));
  return update.after?.doc;
}

Deno.test("toast last_value: a discarded transaction's rows are forgotten, a committed one's kept", () => {
  const policy = new ToastPolicy({ mode: "last_value" });
  policy.apply(inserted(1, "v1"), "1");
  policy.commit();
  assert.equal(policy.cached, 1);

  // A transaction learns "v2" for row 1 and a new row 2; its later changes see them.
  policy.apply(inserted(1, "v2"), "1");
  policy.apply(inserted(2, "w1"), "2");
  assert.equal(filled(policy, 1), "v2");
  assert.equal(filled(policy, 2), "w1");
  // It is dropped (the connection was lost before its commit): none of that is kept.
  policy.discard();
  assert.equal(filled(policy, 1), "v1");
  assert.equal(filled(policy, 2), undefined);
  policy.discard();

  // Sent again and committed this time.
  policy.apply(inserted(1, "v2"), "1");
  policy.commit();
  assert.equal(filled(policy, 1), "v2");
  assert.equal(policy.cached, 1);
});

Deno.test("toast last_value: a delete or a truncate in a discarded transaction forgets nothing", () => {
  const policy = new ToastPolicy({ mode: "last_value" });
  policy.apply(inserted(1, "v1"), "1");
  policy.apply(inserted(2, "w1"), "2");
  policy.commit();

  policy.apply({ op: "d", source, before: row([["id", 1]]), after: null, unchanged: [] }, "1");
  assert.equal(filled(policy, 1), undefined, "the transaction itself no longer sees row 1");
  policy.discard();
  assert.equal(filled(policy, 1), "v1");
  policy.discard();

  const truncate: ChangeEvent = { op: "t", source, before: null, after: null, unchanged: [] };
  policy.apply(truncate, null);
  assert.equal(filled(policy, 2), undefined);
  policy.discard();
  assert.equal(filled(policy, 2), "w1");
  policy.discard();

  // Committed, they do forget.
  policy.apply({ op: "d", source, before: row([["id", 1]]), after: null, unchanged: [] }, "1");
  policy.commit();
  assert.equal(filled(policy, 1), undefined);
  assert.equal(filled(policy, 2), "w1");
  policy.discard();
  policy.apply(truncate, null);
  policy.commit();
  assert.equal(policy.cached, 0);
});

Deno.test("toast last_value: a transaction with more rows than the cache holds keeps the newest, never an older one", () => {
  const policy = new ToastPolicy({ mode: "last_value", cacheSize: 2 });
  policy.apply(inserted(1, "old"), "1");
  policy.commit();
  // Row 1 changes, then two more rows push it out of the transaction's rows.
  const transaction = () => {
    policy.apply(inserted(1, "new"), "1");
    policy.apply(inserted(2, "b"), "2");
    policy.apply(inserted(3, "c"), "3");
  };
  transaction();
  assert.equal(filled(policy, 1), undefined, "not the committed value it replaced");
  policy.discard();
  assert.equal(filled(policy, 1), "old");
  policy.discard();

  transaction();
  policy.commit();
  assert.equal(policy.cached, 2);
  assert.equal(filled(policy, 1), undefined);
  assert.equal(filled(policy, 2), "b");
  assert.equal(filled(policy, 3), "c");
});

Deno.test("router: commit() and discard() reach each table's last_value policy", () => {
  const tables =
    "{ public.docs: { key: [id], toast: last_value }, public.notes: { key: [id], toast: last_value } }";
  const config = parse(yaml(...SOURCE, `tables: ${tables}`, "sinks: [{ stdout: {} }]"));
  const router = new Router(config, () => undefined);
  const at = (table: string, relid: number) =>
    ({ schema: "public", table, relid }) as ChangeEvent["source"];
  const docFilled = (table: string, relid: number) => {
    const update = { ...docUnchanged(1), source: at(table, relid) };
    router.route(update);
    return update.after?.doc;
  };
  router.route({ ...inserted(1, "d1"), source: at("docs", 1) });
  router.route({ ...inserted(1, "n1"), source: at("notes", 2) });
  router.commit();
  router.route({ ...inserted(1, "d2"), source: at("docs", 1) });
  router.route({ ...inserted(1, "n2"), source: at("notes", 2) });
  router.discard();
  assert.equal(docFilled("docs", 1), "d1");
  assert.equal(docFilled("notes", 2), "n1");
  router.discard();
  router.route({ ...inserted(1, "d3"), source: at("docs", 1) });
  router.commit();
  router.discard();
  assert.equal(docFilled("docs", 1), "d3");
});
