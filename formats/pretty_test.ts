import assert from "node:assert/strict";
import { recordToPrettyLine } from "./pretty.ts";
import { JsonRenderer } from "./json.ts";
import type { ChangeEvent, Row, SinkRecord } from "../events.ts";
import { lsn } from "../decoder/lsn.ts";

const SOURCE = {
  schema: "public",
  table: "orders",
  relid: 16_384,
  lsn: lsn(0x16B374D848n),
  commitLsn: lsn(0x16B374D900n),
  xid: 771,
  commitTime: 1_764_936_000_000_000n,
};

function change(
  op: ChangeEvent["op"],
  before: Row | null,
  after: Row | null,
  unchanged: string[] = [],
): SinkRecord {
  return {
    kind: "change",
    topic: "shop.public.orders",
    key: { id: 1n },
    event: { op, source: SOURCE, before, after, unchanged },
  };
}

function line(record: SinkRecord, color = false): string {
  const text = recordToPrettyLine(record, color, new JsonRenderer());
  assert.ok(text !== null);
  return text;
}

const OLD = { id: 1n, status: "paid", amount: "12.50", note: null, doc: { tags: ["a"] } };

Deno.test("pretty: an UPDATE with the whole old row marks each changed column old → new", () => {
  const after = { ...OLD, status: "packed", note: "fragile", doc: { tags: ["a"] } };
  assert.equal(
    line(change("u", OLD, after)),
    'UPDATE   public.orders  {"id":1,"status":"paid" → "packed","amount":"12.50",' +
      '"note":null → "fragile","doc":{"tags":["a"]}}',
  );
});

Deno.test("pretty: with colour, only the changed columns are highlighted", () => {
  const text = line(change("u", OLD, { ...OLD, status: "packed" }), true);
  assert.equal(
    text,
    '\x1b[33mUPDATE  \x1b[0m public.orders  {"id":1,' +
      '\x1b[1;33m"status":"paid" → "packed"\x1b[0m,"amount":"12.50","note":null,' +
      '"doc":{"tags":["a"]}}',
  );
});

Deno.test("pretty: an UPDATE that changed nothing shown marks nothing", () => {
  assert.equal(
    line(change("u", OLD, { ...OLD })),
    'UPDATE   public.orders  {"id":1,"status":"paid","amount":"12.50","note":null,' +
      '"doc":{"tags":["a"]}}',
  );
});

Deno.test("pretty: an UPDATE whose before is the key alone or null marks nothing", () => {
  const after = { id: 2n, status: "packed" };
  // The key changed (REPLICA IDENTITY DEFAULT): the old key, then the row, no arrow.
  assert.equal(
    line(change("u", { id: 1n }, after)),
    'UPDATE   public.orders  before {"id":1}  {"id":2,"status":"packed"}',
  );
  assert.equal(
    line(change("u", null, after)),
    'UPDATE   public.orders  {"id":2,"status":"packed"}',
  );
  assert.doesNotMatch(line(change("u", { id: 1n }, after), true), /1;33m|→/);
});

Deno.test("pretty: a column only the new row has (added by a transform) means no marks", () => {
  const after = { ...OLD, status: "packed", amount_cents: 1250 };
  const text = line(change("u", OLD, after));
  assert.doesNotMatch(text, /→/);
  assert.match(text, /^UPDATE {3}public\.orders {2}before \{"id":1,"status":"paid",/);
  assert.match(text, /\{"id":1,"status":"packed",.*"amount_cents":1250\}$/);
});

Deno.test("pretty: TOASTed columns the server did not send stay out of the comparison", () => {
  const before = { id: 1n, status: "paid", body: "long text" };
  assert.equal(
    line(change("u", before, { id: 1n, status: "packed" }, ["body"])),
    'UPDATE   public.orders  {"id":1,"status":"paid" → "packed"}  unchanged: body',
  );
});

Deno.test("pretty: inserts and deletes print their row", () => {
  assert.equal(
    line(change("c", null, { id: 1n, status: "new" })),
    'INSERT   public.orders  {"id":1,"status":"new"}',
  );
  assert.equal(
    line(change("d", OLD, null)),
    'DELETE   public.orders  {"id":1,"status":"paid","amount":"12.50","note":null,' +
      '"doc":{"tags":["a"]}}',
  );
});
