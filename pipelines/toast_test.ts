import assert from "node:assert/strict";
import { setField } from "../decoder/types/values.ts";
import type { ChangeEvent, Row } from "../events.ts";
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
