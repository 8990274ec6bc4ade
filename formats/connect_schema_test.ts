/**
 * The Connect schemas against what Debezium 3.6 builds (paths in the debezium/debezium repository
 * at `v3.6.1.Final`; `core` is `debezium-connector-common/src/main/java/io/debezium`, `pg` is
 * `debezium-connector-postgres/src/main/java/io/debezium/connector/postgresql`), written in the
 * key order of Kafka's `JsonConverter.asJsonSchema` (apache/kafka
 * `connect/json/src/main/java/org/apache/kafka/connect/json/JsonConverter.java`).
 */

import assert from "node:assert/strict";
import { DEBEZIUM_DEFAULTS, type JsonOptions } from "../decoder/types/json.ts";
import { Oid } from "../decoder/types/oids.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import {
  columnSchema,
  type ConnectColumn,
  envelopeSchema,
  keySchema,
  sourceSchema,
  transactionKeySchema,
  transactionValueSchema,
} from "./connect_schema.ts";

const numericTypmod = (precision: number, scale: number) => ((precision << 16) | scale) + 4;

function col(name: string, typeOid: number, typeModifier = -1, optional = true): ConnectColumn {
  return { name, typeOid, typeModifier, optional };
}

function schemaJson(
  column: ConnectColumn,
  options: Required<JsonOptions> = DEBEZIUM_DEFAULTS,
  registry?: TypeRegistry,
): string {
  return JSON.stringify(columnSchema(column, options, registry));
}

Deno.test("columnSchema: integers, floats, strings (JdbcValueConverters.schemaBuilder)", () => {
  // core/jdbc/JdbcValueConverters.java: SMALLINT → int16, INTEGER → int32, BIGINT → int64,
  // REAL (pgjdbc's float4) → float32, DOUBLE (float8) → float64, BIT (pgjdbc's bool, length 1)
  // → bool; Kafka's JsonSchema names FLOAT32/FLOAT64 "float"/"double".
  assert.equal(schemaJson(col("a", Oid.int2)), '{"type":"int16","optional":true,"field":"a"}');
  assert.equal(schemaJson(col("a", Oid.int4)), '{"type":"int32","optional":true,"field":"a"}');
  assert.equal(
    schemaJson(col("a", Oid.int8, -1, false)),
    '{"type":"int64","optional":false,"field":"a"}',
  );
  assert.equal(schemaJson(col("a", Oid.float4)), '{"type":"float","optional":true,"field":"a"}');
  assert.equal(schemaJson(col("a", Oid.float8)), '{"type":"double","optional":true,"field":"a"}');
  assert.equal(schemaJson(col("a", Oid.bool)), '{"type":"boolean","optional":true,"field":"a"}');
  // pg/PostgresValueConverter.java: OID → int64; BPCHAR, INET … → string.
  assert.equal(schemaJson(col("a", Oid.oid)), '{"type":"int64","optional":true,"field":"a"}');
  assert.equal(schemaJson(col("a", Oid.bpchar)), '{"type":"string","optional":true,"field":"a"}');
  assert.equal(schemaJson(col("a", Oid.text)), '{"type":"string","optional":true,"field":"a"}');
});

Deno.test("columnSchema: decimals (SpecialValueDecimal, VariableScaleDecimal, money)", () => {
  // core/data/SpecialValueDecimal.java builder(PRECISE): Decimal.builder(scale) then
  // parameter "connect.decimal.precision"; Kafka's Decimal.builder puts "scale" first.
  assert.equal(
    schemaJson(col("price", Oid.numeric, numericTypmod(10, 2), false)),
    '{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal",' +
      '"version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"price"}',
  );
  // core/schema/SchemaFactory.java datatypeVariableScaleDecimalSchema: version 1, doc,
  // fields scale (INT32) and value (BYTES), both required.
  assert.equal(
    schemaJson(col("n", Oid.numeric)),
    '{"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},' +
      '{"type":"bytes","optional":false,"field":"value"}],"optional":true,' +
      '"name":"io.debezium.data.VariableScaleDecimal","version":1,' +
      '"doc":"Variable scaled decimal","field":"n"}',
  );
  // pg/PostgresValueConverter.java moneySchema: Decimal.builder(moneyFractionDigits = 2), no
  // precision parameter.
  assert.equal(
    schemaJson(col("m", Oid.money)),
    '{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal",' +
      '"version":1,"parameters":{"scale":"2"},"field":"m"}',
  );
  // SpecialValueDecimal.builder(DOUBLE) → float64; (STRING) → string.
  const double = { ...DEBEZIUM_DEFAULTS, decimalHandling: "double" } as const;
  assert.equal(
    schemaJson(col("n", Oid.numeric, numericTypmod(10, 2)), double),
    '{"type":"double","optional":true,"field":"n"}',
  );
});

Deno.test("columnSchema: date and time (TemporalPrecisionMode, time/*.java)", () => {
  // core/time/Date.java: int32 "io.debezium.time.Date" version 1.
  assert.equal(
    schemaJson(col("d", Oid.date)),
    '{"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"d"}',
  );
  // core/jdbc/TemporalPrecisionMode.java ADAPTIVE: precision ≤ 3 → Timestamp, ≤ 6 →
  // MicroTimestamp; pg/PostgresValueConverter.getTimePrecision is the column's scale, which
  // pgjdbc's TypeInfoCache.getScale gives as 6 without a typmod.
  assert.equal(
    schemaJson(col("t", Oid.timestamp, 3)),
    '{"type":"int64","optional":true,"name":"io.debezium.time.Timestamp","version":1,' +
      '"field":"t"}',
  );
  assert.equal(
    schemaJson(col("t", Oid.timestamp)),
    '{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,' +
      '"field":"t"}',
  );
  assert.equal(
    schemaJson(col("t", Oid.time, 0)),
    '{"type":"int32","optional":true,"name":"io.debezium.time.Time","version":1,"field":"t"}',
  );
  assert.equal(
    schemaJson(col("t", Oid.time)),
    '{"type":"int64","optional":true,"name":"io.debezium.time.MicroTime","version":1,' +
      '"field":"t"}',
  );
  // pg/PostgresValueConverter.java: TIMESTAMPTZ → ZonedTimestamp, TIMETZ → ZonedTime (strings).
  assert.equal(
    schemaJson(col("t", Oid.timestamptz)),
    '{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,' +
      '"field":"t"}',
  );
  assert.equal(
    schemaJson(col("t", Oid.timetz)),
    '{"type":"string","optional":true,"name":"io.debezium.time.ZonedTime","version":1,' +
      '"field":"t"}',
  );
  // INTERVAL: MicroDuration (int64) by default, Interval (string) with interval.handling.mode
  // string.
  assert.equal(
    schemaJson(col("i", Oid.interval)),
    '{"type":"int64","optional":true,"name":"io.debezium.time.MicroDuration","version":1,' +
      '"field":"i"}',
  );
  const stringInterval = { ...DEBEZIUM_DEFAULTS, intervalHandling: "string" } as const;
  assert.equal(
    schemaJson(col("i", Oid.interval), stringInterval),
    '{"type":"string","optional":true,"name":"io.debezium.time.Interval","version":1,' +
      '"field":"i"}',
  );
  // TemporalPrecisionMode CONNECT: Kafka's Date/Time/Timestamp logical types.
  const connect = { ...DEBEZIUM_DEFAULTS, timePrecision: "connect" } as const;
  assert.equal(
    schemaJson(col("t", Oid.timestamp), connect),
    '{"type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp",' +
      '"version":1,"field":"t"}',
  );
});

Deno.test("columnSchema: named strings, bits, point (SchemaFactory, geometry/Point)", () => {
  // core/schema/SchemaFactory.java datatypeUuidSchema / datatypeJsonSchema: version 1.
  assert.equal(
    schemaJson(col("u", Oid.uuid)),
    '{"type":"string","optional":true,"name":"io.debezium.data.Uuid","version":1,"field":"u"}',
  );
  assert.equal(
    schemaJson(col("j", Oid.jsonb)),
    '{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"j"}',
  );
  // core/data/TsVector.java: "io.debezium.data.Tsvector" (lower-case v).
  assert.equal(
    schemaJson(col("v", Oid.tsvector)),
    '{"type":"string","optional":true,"name":"io.debezium.data.Tsvector","version":1,' +
      '"field":"v"}',
  );
  // pg/PostgresValueConverter.java BIT/VARBIT: length > 1 → Bits.builder(length) (parameter
  // "length"), else bool; an unbounded varbit has pgjdbc's unknownLength, Integer.MAX_VALUE
  // (debezium-connector-postgres AbstractRecordsProducerTest "bvunlimited1").
  assert.equal(schemaJson(col("b", Oid.bit, 1)), '{"type":"boolean","optional":true,"field":"b"}');
  assert.equal(
    schemaJson(col("b", Oid.bit, 3)),
    '{"type":"bytes","optional":true,"name":"io.debezium.data.Bits","version":1,' +
      '"parameters":{"length":"3"},"field":"b"}',
  );
  assert.equal(
    schemaJson(col("b", Oid.varbit)),
    '{"type":"bytes","optional":true,"name":"io.debezium.data.Bits","version":1,' +
      '"parameters":{"length":"2147483647"},"field":"b"}',
  );
  // core/data/geometry/Point.java: struct, version 1, doc "Geometry (POINT)", x, y FLOAT64,
  // wkb OPTIONAL_BYTES, srid OPTIONAL_INT32.
  assert.equal(
    schemaJson(col("p", Oid.point)),
    '{"type":"struct","fields":[{"type":"double","optional":false,"field":"x"},' +
      '{"type":"double","optional":false,"field":"y"},' +
      '{"type":"bytes","optional":true,"field":"wkb"},' +
      '{"type":"int32","optional":true,"field":"srid"}],"optional":true,' +
      '"name":"io.debezium.data.geometry.Point","version":1,"doc":"Geometry (POINT)",' +
      '"field":"p"}',
  );
});

Deno.test("columnSchema: enums, arrays, domains, defaults", () => {
  const registry = new TypeRegistry();
  registry.register({
    oid: 16400,
    namespace: "public",
    name: "mood",
    kind: "enum",
    enumLabels: ["sad", "ok", "happy"],
  });
  registry.register({
    oid: 16401,
    namespace: "public",
    name: "_mood",
    kind: "array",
    elementOid: 16400,
  });
  registry.register({
    oid: 16402,
    namespace: "public",
    name: "price",
    kind: "domain",
    baseOid: Oid.numeric,
    baseTypeModifier: numericTypmod(8, 3),
  });
  // SchemaFactory.datatypeEnumSchema: string, name, version 1, parameter "allowed" = the
  // labels joined by "," (pg/PostgresValueConverter.java: Strings.join(",", getEnumValues())).
  assert.equal(
    schemaJson(col("m", 16400), DEBEZIUM_DEFAULTS, registry),
    '{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,' +
      '"parameters":{"allowed":"sad,ok,happy"},"field":"m"}',
  );
  // pg/PostgresValueConverter.java: an enum array is SchemaBuilder.array(Enum.builder(…)),
  // the element not optional.
  assert.equal(
    schemaJson(col("ms", 16401), DEBEZIUM_DEFAULTS, registry),
    '{"type":"array","items":{"type":"string","optional":false,"name":"io.debezium.data.Enum",' +
      '"version":1,"parameters":{"allowed":"sad,ok,happy"}},"optional":true,"field":"ms"}',
  );
  // INT4_ARRAY → SchemaBuilder.array(OPTIONAL_INT32_SCHEMA).
  assert.equal(
    schemaJson(col("xs", 1007)),
    '{"type":"array","items":{"type":"int32","optional":true},"optional":true,"field":"xs"}',
  );
  // pg/connection/pgoutput/PgOutputMessageDecoder.java: a domain column takes its root type's
  // OID; ColumnMetaData takes length/scale from the domain (PostgresType.getDefaultLength).
  assert.equal(
    schemaJson(col("p", 16402), DEBEZIUM_DEFAULTS, registry),
    '{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal",' +
      '"version":1,"parameters":{"scale":"3","connect.decimal.precision":"8"},"field":"p"}',
  );
  // core/relational/TableSchemaBuilder.java addField: defaultValue on the field's schema, which
  // JsonConverter writes after parameters and before "field".
  assert.equal(
    schemaJson({ ...col("s", Oid.text, -1, false), default: "new" }),
    '{"type":"string","optional":false,"default":"new","field":"s"}',
  );
});

Deno.test("keySchema: <name>.Key, required, no version (TableSchemaBuilder.create)", () => {
  assert.equal(
    JSON.stringify(
      keySchema("app.public.orders", [col("id", Oid.int8, -1, false)], DEBEZIUM_DEFAULTS),
    ),
    '{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],' +
      '"optional":false,"name":"app.public.orders.Key"}',
  );
});

/**
 * pg/PostgresSourceInfoStructMaker.java, after
 * core/schema/SchemaFactory.sourceInfoSchemaBuilder.
 */
const SOURCE = '{"type":"struct","fields":[' +
  '{"type":"string","optional":false,"field":"version"},' +
  '{"type":"string","optional":false,"field":"connector"},' +
  '{"type":"string","optional":false,"field":"name"},' +
  '{"type":"int64","optional":false,"field":"ts_ms"},' +
  // SchemaFactory.snapshotRecordSchema: Enum of core/connector/SnapshotRecord.java's values in
  // lower case, version 1, default "false", optional.
  '{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,' +
  '"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,' +
  'last,false,incremental"},"default":"false","field":"snapshot"},' +
  '{"type":"string","optional":false,"field":"db"},' +
  '{"type":"string","optional":true,"field":"sequence"},' +
  '{"type":"int64","optional":true,"field":"ts_us"},' +
  '{"type":"int64","optional":true,"field":"ts_ns"},' +
  '{"type":"string","optional":false,"field":"schema"},' +
  '{"type":"string","optional":false,"field":"table"},' +
  '{"type":"int64","optional":true,"field":"txId"},' +
  '{"type":"int64","optional":true,"field":"lsn"},' +
  '{"type":"int64","optional":true,"field":"xmin"},' +
  '{"type":"string","optional":true,"field":"origin"},' +
  '{"type":"int64","optional":true,"field":"origin_lsn"}],' +
  '"optional":false,"name":"io.debezium.connector.postgresql.Source","version":1,' +
  '"field":"source"}';

Deno.test("sourceSchema: io.debezium.connector.postgresql.Source, fields in order", () => {
  assert.equal(JSON.stringify(sourceSchema()), SOURCE);
});

Deno.test("envelopeSchema: before, after, source, transaction, op, ts_* (Envelope v2)", () => {
  const columns = [col("id", Oid.int4, -1, false), col("note", Oid.text)];
  const value = '{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},' +
    '{"type":"string","optional":true,"field":"note"}],"optional":true,' +
    '"name":"app.public.orders.Value"';
  // core/relational/TableSchemaBuilder.create: withRecord (before, after), withSource,
  // withTransaction; core/schema/SchemaFactory.datatypeEnvelopeSchema build() then adds op
  // (STRING, Envelope.OPERATION_REQUIRED), ts_ms, ts_us, ts_ns (OPTIONAL_INT64); version is
  // core/data/Envelope.SCHEMA_VERSION = 2. The transaction block is
  // SchemaFactory.transactionBlockSchema: "event.block", version 1, optional.
  const expected = '{"type":"struct","fields":[' +
    value + ',"field":"before"},' +
    value + ',"field":"after"},' +
    SOURCE + "," +
    '{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},' +
    '{"type":"int64","optional":false,"field":"total_order"},' +
    '{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,' +
    '"name":"event.block","version":1,"field":"transaction"},' +
    '{"type":"string","optional":false,"field":"op"},' +
    '{"type":"int64","optional":true,"field":"ts_ms"},' +
    '{"type":"int64","optional":true,"field":"ts_us"},' +
    '{"type":"int64","optional":true,"field":"ts_ns"}],' +
    '"optional":false,"name":"app.public.orders.Envelope","version":2}';
  const schema = envelopeSchema("app.public.orders", columns, DEBEZIUM_DEFAULTS);
  assert.equal(JSON.stringify(schema), expected);
  assert.deepEqual(
    schema.fields!.map((f) => f.field),
    ["before", "after", "source", "transaction", "op", "ts_ms", "ts_us", "ts_ns"],
  );
});

Deno.test("transaction metadata schemas (SchemaFactory.transactionKey/ValueSchema)", () => {
  // core/schema/SchemaFactory.java; field names from core/pipeline/txmetadata/
  // TransactionStructMaker.java.
  assert.equal(
    JSON.stringify(transactionKeySchema()),
    '{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],' +
      '"optional":false,"name":"io.debezium.connector.common.TransactionMetadataKey",' +
      '"version":1}',
  );
  assert.equal(
    JSON.stringify(transactionValueSchema()),
    '{"type":"struct","fields":[{"type":"string","optional":false,"field":"status"},' +
      '{"type":"string","optional":false,"field":"id"},' +
      '{"type":"int64","optional":true,"field":"event_count"},' +
      '{"type":"array","items":{"type":"struct","fields":[' +
      '{"type":"string","optional":false,"field":"data_collection"},' +
      '{"type":"int64","optional":false,"field":"event_count"}],"optional":true,' +
      '"name":"event.collection","version":1},"optional":true,"field":"data_collections"},' +
      '{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,' +
      '"name":"io.debezium.connector.common.TransactionMetadataValue","version":1}',
  );
});

Deno.test("columnSchema: deliberate differences are schemas of the values we write", () => {
  // Debezium drops these columns; Spillway's value of an unknown type is { type, text }.
  assert.equal(
    schemaJson(col("x", 99999)),
    '{"type":"struct","fields":[{"type":"string","optional":false,"field":"type"},' +
      '{"type":"string","optional":true,"field":"text"},' +
      '{"type":"bytes","optional":true,"field":"binary"}],"optional":true,"field":"x"}',
  );
  assert.equal(schemaJson(col("l", Oid.pg_lsn)), '{"type":"string","optional":true,"field":"l"}');
  assert.equal(
    schemaJson(col("r", Oid.int4multirange)),
    '{"type":"string","optional":true,"field":"r"}',
  );
});
