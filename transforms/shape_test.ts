import assert from "node:assert/strict";
import type { RelationMessage } from "../decoder/pgoutput.ts";
import { Oid } from "../decoder/types/oids.ts";
import type { ChangeEvent, Row } from "../events.ts";
import { declaredOutput, OutputShapes } from "./shape.ts";

const RELATION: RelationMessage = {
  type: "Relation",
  relationId: 7,
  namespace: "public",
  relationName: "orders",
  replicaIdentity: "d",
  columns: [
    { flags: 1, isKey: true, name: "id", typeOid: Oid.int4, typeModifier: -1 },
    { flags: 0, isKey: false, name: "price", typeOid: Oid.numeric, typeModifier: 655366 },
    { flags: 0, isKey: false, name: "note", typeOid: Oid.text, typeModifier: -1 },
    { flags: 0, isKey: false, name: "doc", typeOid: Oid.text, typeModifier: -1 },
  ],
};

const SOURCE = {
  schema: "public",
  table: "orders",
  relid: 7,
  lsn: 1n,
  commitLsn: 2n,
  xid: 9,
  commitTime: 0n,
} as unknown as ChangeEvent["source"];

function insert(after: Row, unchanged: string[] = []): ChangeEvent {
  return { op: "c", source: SOURCE, before: null, after, unchanged };
}

function update(before: Row | null, after: Row, unchanged: string[] = []): ChangeEvent {
  return { op: "u", source: SOURCE, before, after, unchanged };
}

const ROW = { id: 1, price: "1.50", note: "n", doc: "d" };

function columns(relation: RelationMessage | string): [string, number][] {
  assert.ok(typeof relation !== "string", relation as string);
  return relation.columns.map((c) => [c.name, c.typeOid]);
}

Deno.test("shape: output with the table's columns follows the table's relation itself", () => {
  const shapes = new OutputShapes(new Map());
  assert.equal(shapes.relationOf(insert(ROW), insert(ROW), RELATION), RELATION);
  // A changed value of the column's kind, and a null, change nothing.
  assert.equal(
    shapes.relationOf(insert(ROW), insert({ ...ROW, note: "other", price: null }), RELATION),
    RELATION,
  );
});

Deno.test("shape: added fields are typed from their first non-null value, in the order seen; nulls and empty arrays wait", () => {
  const shapes = new OutputShapes(new Map());
  const out = shapes.relationOf(
    insert(ROW),
    insert({
      ...ROW,
      s: "x",
      n: 1,
      b: true,
      big: 5n,
      bytes: new Uint8Array([1]),
      tags: [null, "a"],
      nums: [[1.5]],
      later: null,
      empty: [],
    }),
    RELATION,
  );
  assert.deepEqual(columns(out), [
    ["id", Oid.int4],
    ["price", Oid.numeric],
    ["note", Oid.text],
    ["doc", Oid.text],
    ["s", Oid.text],
    ["n", Oid.float8],
    ["b", Oid.bool],
    ["big", Oid.int8],
    ["bytes", Oid.bytea],
    ["tags", 1009],
    ["nums", 1022],
  ]);
  // The same shape: the same relation object; `later` typed once it has a value.
  const again = shapes.relationOf(insert(ROW), insert({ ...ROW, s: "y", n: 2 }), RELATION);
  assert.equal(again, out);
  const grown = shapes.relationOf(insert(ROW), insert({ ...ROW, later: "now" }), RELATION);
  assert.notEqual(grown, out);
  assert.deepEqual(columns(grown).at(-1), ["later", Oid.text]);
  assert.equal((grown as RelationMessage).columns.at(-1)!.isKey, false);
});

Deno.test("shape: a column the output lacks is dropped, unless unchanged TOAST or absent from the input too; it may not come back", () => {
  const shapes = new OutputShapes(new Map());
  // An unchanged TOASTed doc is absent from both rows: not dropped.
  assert.equal(
    shapes.relationOf(
      update(null, { id: 1, price: "1", note: "n" }, ["doc"]),
      update(null, { id: 1, price: "1", note: "n" }, ["doc"]),
      RELATION,
    ),
    RELATION,
  );
  // A delete's key-only old row says nothing of the other columns.
  const del: ChangeEvent = {
    op: "d",
    source: SOURCE,
    before: { id: 1 },
    after: null,
    unchanged: [],
  };
  assert.equal(shapes.relationOf(del, { ...del }, RELATION), RELATION);
  const { note: _note, ...withoutNote } = ROW;
  const dropped = shapes.relationOf(insert(ROW), insert(withoutNote), RELATION);
  assert.deepEqual(columns(dropped).map(([name]) => name), ["id", "price", "doc"]);
  // An old row passed through (REPLICA IDENTITY FULL) is written without it, as is a delete's.
  const full = update(ROW, ROW);
  assert.equal(shapes.relationOf(full, { ...full, after: withoutNote }, RELATION), dropped);
  const fullDelete: ChangeEvent = {
    op: "d",
    source: SOURCE,
    before: ROW,
    after: null,
    unchanged: [],
  };
  assert.equal(shapes.relationOf(fullDelete, fullDelete, RELATION), dropped);
  // Back in a new row: refused, the shape kept.
  assert.match(
    shapes.relationOf(insert(ROW), insert(ROW), RELATION) as string,
    /field note of public\.orders, which earlier outputs left out .*return the column always or never/,
  );
  assert.equal(shapes.relationOf(insert(ROW), insert(withoutNote), RELATION), dropped);
});

Deno.test("shape: a column returned as another kind is refused unless its new type is declared; then its old rows must be converted too", () => {
  const shapes = new OutputShapes(new Map());
  assert.match(
    shapes.relationOf(insert(ROW), insert({ ...ROW, price: 1.5 }), RELATION) as string,
    /field price of public\.orders \(in after\) as a number, but its type is numeric \(the column's type\).*output: \{ price: "<type>" \}/,
  );
  const declared = declaredOutput({ price: "float8" });
  assert.ok(typeof declared !== "string");
  const retyping = new OutputShapes(declared);
  const out = retyping.relationOf(insert(ROW), insert({ ...ROW, price: 1.5 }), RELATION);
  assert.deepEqual(columns(out)[1], ["price", Oid.float8]);
  assert.equal((out as RelationMessage).columns[1]!.typeModifier, -1);
  // The table's value passed through in a row (here the old one) does not fit the new type.
  const full = update(ROW, ROW);
  assert.match(
    retyping.relationOf(full, { ...full, after: { ...ROW, price: 2 } }, RELATION) as string,
    /field price of public\.orders \(in before\) as a string, but its type is float8 \(declared\).*in before as in after/,
  );
  assert.equal(
    retyping.relationOf(
      full,
      { ...full, before: { ...ROW, price: 1.5 }, after: { ...ROW, price: 2 } },
      RELATION,
    ),
    out,
  );
});

Deno.test("shape: what a refused event would have taught is not kept", () => {
  const shapes = new OutputShapes(new Map());
  const refused = shapes.relationOf(
    insert(ROW),
    insert({ ...ROW, total: 1.5, a: "x", b: { o: 1 } }),
    RELATION,
  );
  assert.match(refused as string, /field b of public\.orders as an object/);
  // total and a were not learnt from it: the next event adds them, as a new shape.
  const next = shapes.relationOf(insert(ROW), insert({ ...ROW, total: 2.5, a: "y" }), RELATION);
  assert.deepEqual(columns(next).slice(4), [["total", Oid.float8], ["a", Oid.text]]);
});

Deno.test("shape: an added field of another kind than its first value, or of no type, is refused with the fix", () => {
  const shapes = new OutputShapes(new Map());
  shapes.relationOf(insert(ROW), insert({ ...ROW, total: 1 }), RELATION);
  assert.match(
    shapes.relationOf(insert(ROW), insert({ ...ROW, total: "1" }), RELATION) as string,
    /field total of public\.orders \(in after\) as a string, but its type is float8 \(inferred from its first value\)/,
  );
  for (
    const [value, what] of [
      [{ a: 1 }, "an object"],
      [new Date(0), "a Date"],
      [[{ a: 1 }], "an object"],
    ] as const
  ) {
    const message = new OutputShapes(new Map()).relationOf(
      insert(ROW),
      insert({ ...ROW, extra: value as never }),
      RELATION,
    );
    assert.match(message as string, new RegExp(`field extra of public\\.orders as ${what}`));
    assert.match(message as string, /output: \{ extra: "jsonb" \}/);
  }
});

Deno.test("shape: declared types win over inference, and are checked", () => {
  const declared = declaredOutput({ total: "numeric", price: "float8", ids: "int8[]" });
  assert.ok(typeof declared !== "string");
  const shapes = new OutputShapes(declared);
  // A declared field is in the shape once an output has it, even as null.
  const out = shapes.relationOf(
    insert(ROW),
    insert({ ...ROW, price: 1.5, total: null, ids: [2n] }),
    RELATION,
  );
  assert.deepEqual(columns(out), [
    ["id", Oid.int4],
    ["price", Oid.float8],
    ["note", Oid.text],
    ["doc", Oid.text],
    ["total", Oid.numeric],
    ["ids", 1016],
  ]);
  assert.equal(
    shapes.relationOf(
      insert(ROW),
      insert({ ...ROW, price: 2, total: "3.25", ids: [1n] }),
      RELATION,
    ),
    out,
  );
  assert.match(
    shapes.relationOf(insert(ROW), insert({ ...ROW, price: 2, total: 3.25 }), RELATION) as string,
    /field total of public\.orders \(in after\) as a number, but its type is numeric \(declared\)/,
  );
});

Deno.test("shape: each topic has its own shape (a fan-out's audit event does not drop the table's columns)", () => {
  const shapes = new OutputShapes(new Map());
  const audit = shapes.relationOf(
    insert(ROW),
    insert({ id: 1, action: "created" }),
    RELATION,
    "audit",
  );
  assert.deepEqual(columns(audit), [["id", Oid.int4], ["action", Oid.text]]);
  assert.equal(shapes.relationOf(insert(ROW), insert(ROW), RELATION, "orders"), RELATION);
  assert.equal(
    shapes.relationOf(insert(ROW), insert({ id: 2, action: "x" }), RELATION, "audit"),
    audit,
  );
});

Deno.test("shape: declaredOutput refuses what is not a map of known type names", () => {
  assert.deepEqual(declaredOutput(undefined), new Map());
  assert.match(declaredOutput(["text"]) as string, /output is an array; expected a map/);
  assert.match(declaredOutput({ a: 5 }) as string, /output\.a: 5 is not a type/);
  assert.match(declaredOutput({ a: "point" }) as string, /expected one of text, varchar/);
  assert.deepEqual(
    declaredOutput({ a: " Double Precision ", b: "boolean[]" }),
    new Map([["a", Oid.float8], ["b", 1000]]),
  );
});
