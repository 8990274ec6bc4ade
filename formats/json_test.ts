/**
 * The byte writer and the renderer's direct route (`writeChangeEvent`) must give exactly
 * the bytes of the object route (`JSON.stringify(changeEvent(e))`, UTF-8): checked on
 * edge-case strings and on every value recorded from a real server in
 * `decoder/types/testdata/vectors.json`, in all JSON option sets.
 */

import assert from "node:assert/strict";
import { formatLsn, type Lsn } from "../decoder/lsn.ts";
import type { RelationColumn, RelationMessage } from "../decoder/pgoutput.ts";
import { DEBEZIUM_DEFAULTS, SPILLWAY_DEFAULTS } from "../decoder/types/json.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import type { VectorFile } from "../decoder/types/testdata/_expected.ts";
import { type ChangeEvent, EVENT_RELATION, type Row } from "../events.ts";
import { JsonRenderer } from "./json.ts";
import { JsonWriter } from "./json_writer.ts";
import { seededRandom } from "../testing/random.ts";

const utf8 = new TextEncoder();

const STRINGS = [
  "",
  "plain",
  'quote " and backslash \\',
  "controls \u0000\u0001\b\f\n\r\t\u001f end",
  "\u007f delete",
  "é ü ß",
  "漢字",
  "emoji 🎉 pair",
  "lone \ud800 high",
  "lone \udc00 low",
  "\u2028 line and \u2029 paragraph separators",
  "x".repeat(100_000),
  "é".repeat(70_000),
];

Deno.test("JsonWriter: strings are the bytes of JSON.stringify, escapes and UTF-8 included", () => {
  const out = new JsonWriter(16);
  for (const text of STRINGS) {
    out.reset();
    out.string(text);
    assert.deepEqual(out.bytes(), utf8.encode(JSON.stringify(text)), JSON.stringify(text));
  }
  // Many values into one buffer: it grows and keeps what it had.
  out.reset();
  let expected = "";
  for (const text of STRINGS) {
    out.string(text);
    out.byte(0x2c);
    expected += `${JSON.stringify(text)},`;
  }
  assert.equal(out.text(), expected);
});

Deno.test("JsonWriter: value() writes what JSON.stringify writes", () => {
  const raw = (text: string) => (JSON as unknown as { rawJSON(t: string): unknown }).rawJSON(text);
  const values: unknown[] = [
    null,
    true,
    false,
    0,
    -0,
    1.5,
    -1e-7,
    1e21,
    Number.MAX_VALUE,
    NaN,
    Infinity,
    raw("9007199254740993"),
    raw("-0"),
    "text ü",
    [1, "a", null, [true]],
    { a: 1, "ü": ["x"], nested: { b: null } },
  ];
  const out = new JsonWriter();
  for (const value of values) {
    out.reset();
    out.value(value);
    assert.equal(out.text(), JSON.stringify(value));
  }
  out.reset();
  out.raw('{"ü":"🎉"}');
  assert.deepEqual(out.bytes(), utf8.encode('{"ü":"🎉"}'));
});

Deno.test("JsonWriter: lsn() writes what formatLsn gives", () => {
  const values = [0n, 1n, 15n, 16n, 0xffff_ffffn, 0x1_0000_0000n, 0x16_b374_d848n];
  values.push(0x1f_ffff_ffff_ffffn, 0x20_0000_0000_0000n, 0xffff_ffff_ffff_ffffn);
  const random = seededRandom(7);
  for (let i = 0; i < 500; i++) {
    const bits = (BigInt(random.uint32()) << 32n) | BigInt(random.uint32());
    values.push(bits >> BigInt(i % 64));
  }
  const out = new JsonWriter();
  for (const value of values) {
    out.reset();
    out.lsn(value);
    assert.equal(out.text(), formatLsn(value as Lsn));
  }
});

const vectors = JSON.parse(
  await Deno.readTextFile(
    new URL("../decoder/types/testdata/vectors.json", import.meta.url),
  ),
) as VectorFile;

/**
 * One relation per vector type (its columns: one per vector of that type), and rows of the
 * values decoded from the server's text output.
 */
function vectorTables(registry: TypeRegistry): { relation: RelationMessage; row: Row }[] {
  const tables = new Map<string, { relation: RelationMessage; row: Row }>();
  for (const vector of vectors.vectors) {
    let table = tables.get(vector.type);
    if (table === undefined) {
      const relation: RelationMessage = {
        type: "Relation",
        relationId: 20000 + tables.size,
        namespace: "public",
        relationName: `t_${tables.size}`,
        replicaIdentity: "d",
        columns: [],
      };
      table = { relation, row: {} };
      tables.set(vector.type, table);
    }
    const name = `c${table.relation.columns.length} ${vector.label.slice(0, 20)}`;
    const column: RelationColumn = {
      flags: 0,
      isKey: false,
      name,
      typeOid: vector.oid,
      typeModifier: vector.typmod,
    };
    table.relation.columns.push(column);
    table.row[name] = registry.decoder(vector.oid, vector.typmod, "text")(vector.text);
  }
  return [...tables.values()];
}

function event(relation: RelationMessage | undefined, after: Row, extra: Partial<ChangeEvent>) {
  const value: ChangeEvent = {
    op: "u",
    source: {
      schema: relation?.namespace ?? "public",
      table: relation?.relationName ?? "untyped",
      relid: relation?.relationId ?? 1,
      lsn: 0x16_b374_d848n as Lsn,
      commitLsn: 0x16_b374_f000n as Lsn,
      xid: 771,
      commitTime: 1_764_000_000_123_456n,
    },
    before: null,
    after,
    unchanged: [],
    ...extra,
  };
  if (relation !== undefined) value[EVENT_RELATION] = relation;
  return value;
}

Deno.test("JsonRenderer: writeChangeEvent gives the object route's bytes for every recorded value, in both option sets", () => {
  const registry = new TypeRegistry();
  for (const info of vectors.types) registry.register(info);
  const tables = vectorTables(registry);
  assert.ok(tables.length > 40, `${tables.length} types`);
  for (const options of [SPILLWAY_DEFAULTS, DEBEZIUM_DEFAULTS]) {
    const renderer = new JsonRenderer(registry, options);
    const out = new JsonWriter();
    for (const { relation, row } of tables) {
      const firstName = relation.columns[0]!.name;
      const key: Row = { [firstName]: row[firstName] };
      const cases: ChangeEvent[] = [
        event(relation, row, {}),
        event(relation, row, { before: row, op: "u" }),
        event(relation, { ...row, "not in the relation": 12n }, { unchanged: ["x", "ü"] }),
      ];
      for (const change of cases) {
        const context =
          `${relation.relationName} (${change.source.table}), ${options.timePrecision}`;
        out.reset();
        renderer.writeChangeEvent(out, change);
        const expected = JSON.stringify(renderer.changeEvent(change));
        assert.equal(out.text(), expected, context);
        assert.equal(renderer.changeEventText(change), expected, context);
        out.reset();
        renderer.writeChangeEvent(out, change, { topic: "app.ü.topic", key });
        assert.equal(
          out.text(),
          JSON.stringify({
            topic: "app.ü.topic",
            key: renderer.row(key, relation),
            ...renderer.changeEvent(change),
          }),
          context,
        );
      }
    }
  }
});

Deno.test("JsonRenderer: deletes, truncates, origins, empty rows and events without a relation", () => {
  const renderer = new JsonRenderer();
  const relation: RelationMessage = {
    type: "Relation",
    relationId: 42,
    namespace: "sch\u00e9ma",
    relationName: 'ta"ble',
    replicaIdentity: "f",
    columns: [{ flags: 1, isKey: true, name: "id", typeOid: 20, typeModifier: -1 }],
  };
  const cases: ChangeEvent[] = [
    event(relation, {}, { op: "d", after: null, before: { id: 9007199254740993n } }),
    event(relation, {}, { op: "c", after: { id: -1n, extra: new Uint8Array([1, 2]) } }),
    event(undefined, { n: 1.5, big: 10n, raw: new Uint8Array([255]), nested: { a: [1n] } }, {}),
    event(undefined, {}, {
      op: "t",
      after: null,
      truncate: { cascade: true, restartIdentity: false },
    }),
  ];
  cases[1]!.source.origin = "node_ü";
  const out = new JsonWriter();
  for (const change of cases) {
    out.reset();
    renderer.writeChangeEvent(out, change);
    assert.equal(out.text(), JSON.stringify(renderer.changeEvent(change)));
  }
  // A column named __proto__ is a plain field in both routes.
  const proto: Row = {};
  Object.defineProperty(proto, "__proto__", { value: 5n, enumerable: true, writable: true });
  const withProto = event(relation, proto, {});
  out.reset();
  renderer.writeChangeEvent(out, withProto);
  assert.equal(out.text(), JSON.stringify(renderer.changeEvent(withProto)));
  assert.match(out.text(), /"after":\{"__proto__":5\}/);
  // A table renamed under the same relid: the cached source prefix follows the new name.
  const renamed = event({ ...relation, relationName: "renamed" }, { id: 1n }, {});
  assert.match(renderer.changeEventText(renamed), /"table":"renamed"/);
});
