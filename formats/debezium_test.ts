import assert from "node:assert/strict";
import type { RelationMessage } from "../decoder/pgoutput.ts";
import { lsn } from "../decoder/lsn.ts";
import { Oid } from "../decoder/types/oids.ts";
import { EVENT_RELATION, SHAPED_FROM } from "../events.ts";
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

Deno.test("DebeziumFormat: a transform's shape (SHAPED_FROM) changes the value's columns, not the key's", () => {
  const table: RelationMessage = {
    type: "Relation",
    relationId: 16384,
    namespace: "public",
    relationName: "t",
    replicaIdentity: "d",
    columns: [
      { flags: 1, isKey: true, name: "id", typeOid: Oid.int4, typeModifier: -1 },
      { flags: 0, isKey: false, name: "v", typeOid: Oid.text, typeModifier: -1 },
    ],
  };
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
