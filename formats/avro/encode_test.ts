/**
 * The Avro encoder against avsc's decoder (an independent implementation) on the schemas
 * `schema.ts` gives: every Connect type, unions both ways round, and a whole Debezium envelope
 * encoded from the same values `debezium-json` writes.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import avro from "npm:avsc@5.7.9";
import type { ConnectSchema } from "../connect_schema.ts";
import { envelopeSchema } from "../connect_schema.ts";
import { DEBEZIUM_DEFAULTS, type JsonValue } from "../../decoder/types/json.ts";
import { DebeziumFormat } from "../debezium.ts";
import { orderRecords, ORDERS_RELATION } from "../../bench/_orders_records.ts";
import { avroEncoder, AvroWriter, writeWireHeader } from "./encode.ts";
import { avroSchema } from "./schema.ts";
import { asNumbers, avscType } from "./testdata/avsc.ts";

const f = (field: string, schema: Omit<ConnectSchema, "field">): ConnectSchema => ({
  ...schema,
  field,
});

const STRUCT: ConnectSchema = {
  type: "struct",
  name: "t.Value",
  optional: false,
  fields: [
    f("i16", { type: "int16", optional: false }),
    f("i32", { type: "int32", optional: true }),
    f("i64", { type: "int64", optional: false }),
    f("neg", { type: "int64", optional: false }),
    f("f4", { type: "float", optional: false }),
    f("f8", { type: "double", optional: true }),
    f("b", { type: "boolean", optional: false }),
    f("s", { type: "string", optional: true }),
    f("by", { type: "bytes", optional: true }),
    f("dec", {
      type: "bytes",
      optional: true,
      name: "org.apache.kafka.connect.data.Decimal",
      version: 1,
      parameters: { scale: "2", "connect.decimal.precision": "10" },
    }),
    f("arr", { type: "array", optional: true, items: { type: "string", optional: true } }),
    f("m", {
      type: "map",
      optional: false,
      keys: { type: "string", optional: false },
      values: { type: "int32", optional: false },
    }),
    f("def", { type: "string", optional: true, default: "none" }),
    f("nested", {
      type: "struct",
      name: "t.Point",
      optional: true,
      fields: [
        f("x", { type: "double", optional: false }),
        f("y", { type: "double", optional: false }),
      ],
    }),
  ],
};

function encode(schema: ConnectSchema, value: JsonValue): Uint8Array {
  const out = new AvroWriter(16);
  avroEncoder(schema)(out, value);
  return out.bytes();
}

Deno.test("avroEncoder: every Connect type, written as avsc reads it", () => {
  const type = avro.Type.forSchema(avroSchema(STRUCT) as never);
  const value: Record<string, JsonValue> = {
    i16: -3,
    i32: null,
    i64: 4_503_599_627_370_495, // 2^52 - 1
    neg: -1,
    f4: 1.5,
    f8: -2.25e-10,
    b: true,
    s: "text ✓",
    by: "AP8Q",
    dec: "AJY=",
    arr: ["a", null, "c"],
    m: { one: 1, two: 2 },
    def: "given",
    nested: { x: 1.5, y: -2 },
  };
  const decoded = type.fromBuffer(Buffer.from(encode(STRUCT, value)) as never) as Record<
    string,
    unknown
  >;
  assert.deepEqual({ ...decoded, by: null, dec: null, m: null, nested: null }, {
    ...value,
    by: null,
    dec: null,
    m: null,
    nested: null,
  });
  assert.equal((decoded.by as Uint8Array).toBase64(), "AP8Q");
  assert.equal((decoded.dec as Uint8Array).toBase64(), "AJY=");
  assert.deepEqual({ ...(decoded.m as object) }, { one: 1, two: 2 });
  assert.deepEqual({ ...(decoded.nested as object) }, { x: 1.5, y: -2 });
  // Nulls, and the default-first union of `def`.
  const empty = { ...value, s: null, by: null, dec: null, arr: [], def: null, nested: null };
  const again = type.fromBuffer(Buffer.from(encode(STRUCT, empty)) as never) as Record<
    string,
    unknown
  >;
  assert.deepEqual([again.s, again.def, again.nested, again.arr], [null, null, null, []]);
});

Deno.test("avroEncoder: an int64 past 2^53 (JSON.rawJSON digits) is exact", () => {
  const schema: ConnectSchema = { type: "int64", optional: false };
  const raw = (JSON as unknown as { rawJSON(t: string): JsonValue }).rawJSON("9007199254740993");
  // zigzag(9007199254740993) = 18014398509481986: varint bytes, low 7 bits first.
  let n = 18014398509481986n;
  const expected: number[] = [];
  while (n >= 0x80n) {
    expected.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  expected.push(Number(n));
  assert.deepEqual([...encode(schema, raw)], expected);
  assert.deepEqual([...encode(schema, -1)], [1]);
  assert.deepEqual([...encode(schema, 64)], [0x80, 0x01]);
});

Deno.test("avroEncoder: a non-optional null is refused, naming the field", () => {
  assert.throws(() => encode(STRUCT, { i16: null } as never), /i16 is not optional/);
});

Deno.test("avroEncoder: a Debezium envelope from the values debezium-json writes; Confluent's wire header", () => {
  const format = new DebeziumFormat({
    serverName: "shop",
    database: "postgres",
    schemas: false,
    version: "0",
  });
  const connect = envelopeSchema(
    "shop.public.orders",
    ORDERS_RELATION.columns.map((c) => ({
      name: c.name,
      typeOid: c.typeOid,
      typeModifier: c.typeModifier,
      optional: !c.isKey,
    })),
    DEBEZIUM_DEFAULTS,
  );
  const type = avscType(avroSchema(connect));
  const encodeEnvelope = avroEncoder(connect);
  for (const record of orderRecords(3)) {
    if (record.kind !== "change") continue;
    const [encoded] = format.change(record);
    const payload = JSON.parse(new TextDecoder().decode(encoded!.value!));
    const out = new AvroWriter();
    writeWireHeader(out, 258);
    encodeEnvelope(out, payload);
    const bytes = out.bytes();
    assert.deepEqual([...bytes.subarray(0, 5)], [0, 0, 0, 1, 2]);
    const decoded = type.decode(bytes.subarray(5)) as Record<
      string,
      Record<string, unknown>
    >;
    assert.equal(decoded.op as unknown, payload.op);
    assert.deepEqual(
      asNumbers({ ...decoded.after, amount: (decoded.after!.amount as Uint8Array).toBase64() }),
      payload.after,
    );
    assert.deepEqual(asNumbers({ ...decoded.source }), payload.source);
    assert.deepEqual(asNumbers([decoded.ts_ms, decoded.ts_ns]), [payload.ts_ms, payload.ts_ns]);
  }
});

Deno.test("avroEncoder: values outside their Connect type are refused, naming the field", () => {
  const decimal: ConnectSchema = {
    type: "bytes",
    optional: false,
    field: "price",
    name: "org.apache.kafka.connect.data.Decimal",
  };
  // A numeric NaN or Infinity (written by name in the JSON mapping) is not a Decimal.
  for (const value of ["NaN", "Infinity", "-Infinity"]) {
    assert.throws(() => encode(decimal, value), /price.*not base64/);
  }
  const int32: ConnectSchema = { type: "int32", optional: false, field: "qty" };
  assert.throws(() => encode(int32, 2 ** 31), /qty is a Connect int32/);
  assert.throws(() => encode(int32, 1.5), /qty is a Connect int32/);
  assert.deepEqual([...encode(int32, -(2 ** 31))], [0xff, 0xff, 0xff, 0xff, 0x0f]);
  const int16: ConnectSchema = { type: "int16", optional: false, field: "s" };
  assert.throws(() => encode(int16, 40000), /s is a Connect int16/);
});
