import assert from "node:assert/strict";
import type { RelationMessage } from "../decoder/pgoutput.ts";
import { lsn } from "../decoder/lsn.ts";
import { Oid } from "../decoder/types/oids.ts";
import { EVENT_RELATION, SHAPED_FROM } from "../events.ts";
import { joinedBytes, PrefixedBytes } from "./byte_writer.ts";
import { constantText, DebeziumFormat, javaHashMapOrder } from "./debezium.ts";

Deno.test("javaHashMapOrder: the order java.util.HashMap iterates keys put in this order (recorded with jshell, Java 17), through a resize", () => {
  const keys = [
    "public.orders",
    "public.customers",
    "public.items",
    "inventory.products",
    "public.a",
    "public.b",
    "shop.z",
    "public.order_lines",
    ...Array.from({ length: 10 }, (_, i) => `s.t${i + 1}`),
  ];
  assert.deepEqual(
    javaHashMapOrder(keys).join(","),
    "public.items,public.orders,public.customers,public.a,public.b,shop.z,s.t6,s.t5,s.t8," +
      "public.order_lines,s.t7,s.t2,s.t1,inventory.products,s.t4,s.t3,s.t10,s.t9",
  );
});

Deno.test("constantText: constant defaults as Debezium puts them in schemas; expressions give none", () => {
  assert.equal(constantText("42"), "42");
  assert.equal(constantText("'-1'::integer"), "-1");
  assert.equal(constantText("(-1.5)::numeric"), "-1.5");
  assert.equal(constantText("'none'::text"), "none");
  assert.equal(constantText("'it''s'::character varying"), "it's");
  assert.equal(constantText("'{}'::integer[]"), "{}");
  assert.equal(constantText("true"), "true");
  assert.equal(constantText(`B'10100101'::"bit"`), "10100101");
  assert.equal(constantText("B'1101'::bit varying"), "1101");
  assert.equal(constantText("now()"), null);
  assert.equal(constantText("nextval('orders_id_seq'::regclass)"), null);
  assert.equal(constantText("CURRENT_TIMESTAMP"), null);
});

/** A table `public.<name>` (id int4 primary key, v text). */
function idAndText(relationId: number, relationName: string): RelationMessage {
  return {
    type: "Relation",
    relationId,
    namespace: "public",
    relationName,
    replicaIdentity: "d",
    columns: [
      { flags: 1, isKey: true, name: "id", typeOid: Oid.int4, typeModifier: -1 },
      { flags: 0, isKey: false, name: "v", typeOid: Oid.text, typeModifier: -1 },
    ],
  };
}

Deno.test("DebeziumFormat: a transform's shape (SHAPED_FROM) changes the value's columns, not the key's", () => {
  const table = idAndText(16384, "t");
  // The transform dropped id from the rows and retyped v.
  const shaped = {
    ...table,
    columns: [{ flags: 0, isKey: false, name: "v", typeOid: Oid.float8, typeModifier: -1 }],
    [SHAPED_FROM]: table,
  } as RelationMessage;
  const format = new DebeziumFormat({
    serverName: "app",
    database: "shop",
    version: "0.1.0",
    schemas: true,
    now: () => 1000,
  });
  const source = {
    schema: "public",
    table: "t",
    relid: 16384,
    lsn: lsn(100n),
    commitLsn: lsn(200n),
    xid: 7,
    commitTime: 1_700_000_000_000_000n,
  };
  const [record] = format.change({
    kind: "change",
    topic: "app.public.t",
    key: { id: 1 },
    event: {
      op: "c",
      source,
      before: null,
      after: { v: 2.5 },
      unchanged: [],
      [EVENT_RELATION]: shaped,
    },
  });
  const key = JSON.parse(new TextDecoder().decode(record!.key!));
  assert.deepEqual(key.payload, { id: 1 });
  assert.deepEqual(
    key.schema.fields.map((f: { field: string; type: string }) => [f.field, f.type]),
    [["id", "int32"]],
  );
  const value = JSON.parse(new TextDecoder().decode(record!.value!));
  assert.deepEqual(value.payload.after, { v: 2.5 });
  const after = value.schema.fields.find((f: { field: string }) => f.field === "after");
  assert.deepEqual(
    after.fields.map((f: { field: string; type: string }) => [f.field, f.type]),
    [["v", "double"]],
  );
});

Deno.test("DebeziumFormat: changeShared gives change's bytes, the value's embedded schema shared by a table's values", () => {
  const table = idAndText(16385, "u");
  const source = (at: bigint) => ({
    schema: "public",
    table: "u",
    relid: 16385,
    lsn: lsn(at),
    commitLsn: lsn(900n),
    xid: 7,
    commitTime: 1_700_000_000_000_000n,
  });
  const changes = [
    { op: "c" as const, before: null, after: { id: 1, v: "a" } },
    { op: "u" as const, before: { id: 1 }, after: { id: 2, v: "b" } }, // key changed: 3 records
    { op: "d" as const, before: { id: 2 }, after: null }, // and its tombstone
  ];
  for (const schemas of [true, false]) {
    // Two formats in step (the same clock and transaction state), one per method.
    const formats = [0, 1].map(() =>
      new DebeziumFormat({
        serverName: "app",
        database: "shop",
        version: "0",
        schemas,
        now: () => 5,
      })
    );
    const heads = new Set<Uint8Array>();
    changes.forEach((change, i) => {
      const record = {
        kind: "change" as const,
        topic: "app.public.u",
        key: { id: change.after?.id ?? change.before!.id },
        event: {
          ...change,
          source: source(BigInt(100 + i)),
          unchanged: [],
          [EVENT_RELATION]: table,
        },
      };
      const whole = formats[0]!.change(record);
      const shared = formats[1]!.changeShared(record);
      assert.equal(shared.length, whole.length);
      shared.forEach((out, n) => {
        assert.deepEqual(out.key, whole[n]!.key);
        assert.deepEqual(out.value === null ? null : joinedBytes(out.value), whole[n]!.value);
        if (out.value instanceof PrefixedBytes) heads.add(out.value.head);
        else assert.ok(!schemas || out.value === null, "with schemas, every value is in two parts");
      });
    });
    // One head for all of the table's values, and it is the schema's.
    assert.equal(heads.size, schemas ? 1 : 0);
    for (const head of heads) {
      assert.match(new TextDecoder().decode(head), /^\{"schema":\{.*\},"payload":$/);
    }
  }
});
