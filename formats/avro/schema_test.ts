/**
 * Avro schemas from Debezium's Connect schemas: the shapes Kafka Connect's Avro converter gives,
 * and valid Avro (parsed by avsc, an independent implementation).
 */

import assert from "node:assert/strict";
import avro from "npm:avsc@5.7.9";
import { envelopeSchema, keySchema, messageValueSchema } from "../connect_schema.ts";
import { DEBEZIUM_DEFAULTS } from "../../decoder/types/json.ts";
import { avroName, avroSchema } from "./schema.ts";

const columns = [
  { name: "id", typeOid: 23, typeModifier: -1, optional: false },
  { name: "amount", typeOid: 1700, typeModifier: (10 << 16 | 2) + 4, optional: true },
  { name: "status", typeOid: 25, typeModifier: -1, optional: false, default: "new" },
  { name: "created", typeOid: 1114, typeModifier: -1, optional: true },
  { name: "small", typeOid: 21, typeModifier: -1, optional: true },
  { name: "tags", typeOid: 1009, typeModifier: -1, optional: true },
];

Deno.test("avroSchema: a change event's envelope as the Avro converter writes it", () => {
  const schema = avroSchema(
    envelopeSchema("shop.public.orders", columns, DEBEZIUM_DEFAULTS),
  ) as Record<string, unknown>;
  assert.equal(schema.type, "record");
  assert.equal(schema.name, "Envelope");
  assert.equal(schema.namespace, "shop.public.orders");
  assert.equal(schema["connect.name"], "shop.public.orders.Envelope");
  assert.equal(schema["connect.version"], 2);
  const fields = schema.fields as { name: string; type: unknown; default?: unknown }[];
  assert.deepEqual(fields.map((f) => f.name), [
    "before",
    "after",
    "source",
    "transaction",
    "op",
    "ts_ms",
    "ts_us",
    "ts_ns",
  ]);
  const [before, after] = fields;
  // The Value record is defined once, in `before`, and referred to by name in `after`.
  const value = (before!.type as unknown[])[1] as Record<string, unknown>;
  assert.deepEqual((before!.type as unknown[])[0], "null");
  assert.equal(before!.default, null);
  assert.deepEqual(after!.type, ["null", "shop.public.orders.Value"]);
  const byName = Object.fromEntries(
    (value.fields as { name: string; type: unknown; default?: unknown }[]).map((f) => [f.name, f]),
  );
  assert.deepEqual(byName.id, { name: "id", type: "int" });
  assert.deepEqual(byName.amount, {
    name: "amount",
    type: ["null", {
      type: "bytes",
      scale: 2,
      precision: 10,
      "connect.version": 1,
      "connect.parameters": { scale: "2", "connect.decimal.precision": "10" },
      "connect.name": "org.apache.kafka.connect.data.Decimal",
      logicalType: "decimal",
    }],
    default: null,
  });
  // A default: the union's first branch is the type, and the field's default is the value.
  assert.deepEqual(byName.status, {
    name: "status",
    type: { type: "string", "connect.default": "new" },
    default: "new",
  });
  assert.deepEqual(byName.created, {
    name: "created",
    type: ["null", {
      type: "long",
      "connect.version": 1,
      "connect.name": "io.debezium.time.MicroTimestamp",
    }],
    default: null,
  });
  assert.deepEqual(byName.small, {
    name: "small",
    type: ["null", { type: "int", "connect.type": "int16" }],
    default: null,
  });
  assert.deepEqual(byName.tags, {
    name: "tags",
    type: ["null", { type: "array", items: ["null", "string"] }],
    default: null,
  });
  // The source block's snapshot: an optional enum-like string with a default.
  const source = fields[2]!.type as Record<string, unknown>;
  assert.equal(source.name, "Source");
  assert.equal(source.namespace, "io.debezium.connector.postgresql");
  const snapshot = (source.fields as { name: string; type: unknown; default?: unknown }[])
    .find((f) => f.name === "snapshot")!;
  assert.deepEqual(snapshot.default, "false");
  assert.equal((snapshot.type as unknown[])[1], "null");
});

Deno.test("avroSchema: the key, the message value and the envelope are valid Avro (avsc parses them and round-trips a record)", () => {
  const envelope = avroSchema(envelopeSchema("shop.public.orders", columns, DEBEZIUM_DEFAULTS));
  const type = avro.Type.forSchema(envelope as never);
  const event = {
    before: null,
    // avsc takes a union of null and one type unwrapped.
    after: { id: 1, amount: null, status: "new", created: null, small: 3, tags: ["a", null] },
    source: {
      version: "0.1.0",
      connector: "postgresql",
      name: "shop",
      ts_ms: 1,
      snapshot: "false",
      db: "postgres",
      sequence: null,
      ts_us: null,
      ts_ns: null,
      schema: "public",
      table: "orders",
      txId: 7,
      lsn: 100,
      xmin: null,
      origin: null,
      origin_lsn: null,
    },
    transaction: null,
    op: "c",
    ts_ms: 2,
    ts_us: null,
    ts_ns: null,
  };
  const decoded = type.fromBuffer(type.toBuffer(event as never)) as typeof event;
  assert.deepEqual({ ...decoded.after }, event.after);
  assert.equal(decoded.source.lsn, 100);
  avro.Type.forSchema(
    avroSchema(keySchema("shop.public.orders", [columns[0]!], DEBEZIUM_DEFAULTS)) as never,
  );
  avro.Type.forSchema(avroSchema(messageValueSchema(DEBEZIUM_DEFAULTS)) as never);
});

Deno.test("avroName: Debezium's avro adjustment of names", () => {
  assert.equal(avroName("my-shop.public.orders.Value"), "my_shop.public.orders.Value");
  assert.equal(avroName("2024.public.t"), "_2024.public.t");
  assert.equal(
    avroName("io.debezium.connector.postgresql.Source"),
    "io.debezium.connector.postgresql.Source",
  );
});
