/**
 * Kafka Connect schemas as Debezium 3.6's PostgreSQL connector builds them, written the way
 * Kafka Connect's `JsonConverter` writes a schema (`schemas.enable=true`): every object's keys
 * in the converter's order `type`, `fields`/`items`, `optional`, `name`, `version`, `doc`,
 * `parameters`, `default`, `field`. Each column's schema agrees with the value
 * `decoder/types/json.ts` writes for it under the same {@linkcode JsonOptions}.
 *
 * Sources (Debezium `v3.6.1.Final`, Kafka `JsonConverter`, pgjdbc `TypeInfoCache`):
 * `PostgresValueConverter.schemaBuilder`, `JdbcValueConverters.schemaBuilder`,
 * `TemporalPrecisionMode`, `SpecialValueDecimal.builder`, `SchemaFactory` (Bits, Enum, Json,
 * Uuid, Xml, VariableScaleDecimal, source, transaction schemas), `geometry/Point`,
 * `time/*.java`, `Envelope`, `TableSchemaBuilder`, `PostgresSourceInfoStructMaker`.
 *
 * Column type → schema with Debezium's defaults (`DEBEZIUM_DEFAULTS`). `type` is JsonConverter's
 * name (`float`/`double` are Connect's FLOAT32/FLOAT64); every `name` below has `version` 1.
 *
 * | PostgreSQL                                | type      | name, parameters                   |
 * | ----------------------------------------- | --------- | ---------------------------------- |
 * | `bool`                                    | `boolean` |                                    |
 * | `int2` / `int4`                           | `int16`   | / `int32`                          |
 * | `int8`, `oid`                             | `int64`   |                                    |
 * | `float4` / `float8`                       | `float`   | / `double`                         |
 * | `numeric(p,s)`                            | `bytes`   | `…kafka.connect.data.Decimal` ¹    |
 * | `numeric` (no typmod)                     | `struct`  | `…data.VariableScaleDecimal` ²     |
 * | `money`                                   | `bytes`   | `…connect.data.Decimal` {scale: 2} |
 * | `text`, `varchar`, `bpchar`, `name`, `"char"` | `string` |                                |
 * | `inet`, `cidr`, `macaddr`, `macaddr8`     | `string`  |                                    |
 * | the six built-in ranges                   | `string`  |                                    |
 * | `bytea`                                   | `bytes`   | (`base64`/`hex` handling: `string`) |
 * | `uuid`                                    | `string`  | `io.debezium.data.Uuid`            |
 * | `json`, `jsonb`                           | `string`  | `io.debezium.data.Json`            |
 * | `xml`                                     | `string`  | `io.debezium.data.Xml`             |
 * | `tsvector`                                | `string`  | `io.debezium.data.Tsvector`        |
 * | `date`                                    | `int32`   | `io.debezium.time.Date`            |
 * | `time(p≤3)`                               | `int32`   | `io.debezium.time.Time`            |
 * | `time(p>3)`, `time`                       | `int64`   | `io.debezium.time.MicroTime`       |
 * | `timestamp(p≤3)`                          | `int64`   | `io.debezium.time.Timestamp`       |
 * | `timestamp(p>3)`, `timestamp`             | `int64`   | `io.debezium.time.MicroTimestamp`  |
 * | `timestamptz`                             | `string`  | `io.debezium.time.ZonedTimestamp`  |
 * | `timetz`                                  | `string`  | `io.debezium.time.ZonedTime`       |
 * | `interval`                                | `int64`   | `io.debezium.time.MicroDuration`   |
 * | `bit(1)`, `varbit(1)`                     | `boolean` |                                    |
 * | `bit(n)`, `varbit(n)`; `varbit`           | `bytes`   | `io.debezium.data.Bits` ³          |
 * | `point`                                   | `struct`  | `io.debezium.data.geometry.Point` ⁴ |
 * | enums                                     | `string`  | `io.debezium.data.Enum` ⁵          |
 * | domains                                   | the base type's schema (its typmod applies)    |
 * | arrays                                    | `array`   | items: the element's schema, optional |
 * | arrays of enums, `tsvector[]`, `int2vector`, `oidvector` | `array` | items required    |
 *
 * ¹ `org.apache.kafka.connect.data.Decimal`, parameters {scale: "s",
 * connect.decimal.precision: "p"}; ² `io.debezium.data.VariableScaleDecimal`, doc "Variable
 * scaled decimal", fields scale int32, value bytes; ³ parameters {length: "n"}, `varbit`:
 * "2147483647"; ⁴ doc "Geometry (POINT)", fields x, y (`double`), wkb (optional `bytes`), srid
 * (optional `int32`); ⁵ parameters {allowed: the labels joined by ","}.
 *
 * Other modes: `decimalHandling` `double` → `double`, `string` → `string`; `timePrecision`
 * `adaptive_time_microseconds` → every `time` is MicroTime, `connect` →
 * `org.apache.kafka.connect.data.Date`/`Time` (`int32`) and `…Timestamp` (`int64`);
 * `intervalHandling` `string` → `string` `io.debezium.time.Interval`; `binaryHandling`
 * `base64`/`hex` → `string`.
 *
 * Deliberate differences: Debezium 3.6 drops a column it has no mapping for (unless
 * `include.unknown.datatypes`); Spillway keeps it, with the schema of the value it writes:
 *
 * - `xid`, `cid`, `xid8` → `int64`; `tsquery`, `jsonpath`, `pg_lsn`, `tid`, `txid_snapshot`,
 *   `pg_snapshot`, `aclitem`, `refcursor`, `unknown`, `reg*` → `string` (a `reg*` value is a
 *   number in binary mode).
 * - `line` → struct {a, b, c}; `lseg`, `box`, `polygon` → array of struct {x, y}; `path` →
 *   struct {closed, points}; `circle` → struct {center {x, y}, radius}: unnamed, all
 *   `double`/`boolean`, required.
 * - user-defined ranges → `string` (`rangeHandling: "string"`); multiranges → `string`.
 * - composites → an unnamed struct of their fields, each optional.
 * - arrays Debezium leaves out (`money[]`, `name[]`, `interval[]`, `varbit[]`, `xml[]`,
 *   `point[]`, `refcursor[]`, arrays of domains, composites, ranges other than the built-in
 *   six) → array of the element's schema, elements optional; `bit[]`, which Debezium types as
 *   `Bits`/`boolean` (not an array), → array of the `bit` schema.
 * - types the registry does not know (extensions, including those Debezium maps: `citext`,
 *   `hstore`, `ltree`, `isbn`, PostGIS, pgvector) → unnamed struct {type string, text optional
 *   string, binary optional bytes}, the value `decoder/types/json.ts` writes for them.
 * - `numeric(p,s)` with a negative scale (PostgreSQL 15+): `scale` is the real, negative scale.
 *
 * Spillway-only options give plain, unnamed schemas: `timePrecision: "isostring"` → `string`
 * for all five date/time types, `bitHandling: "string"` → `string`, `geometryHandling:
 * "object"` → struct {x, y}, `rangeHandling: "object"` → struct {empty, lower, upper,
 * lowerInclusive, upperInclusive} (multiranges: an array of those).
 *
 * @module
 */

import type { JsonOptions, JsonValue } from "../decoder/types/json.ts";
import { Oid } from "../decoder/types/oids.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";

/**
 * A Connect schema as JsonConverter writes it (schemas.enable=true). Field order matters for
 * byte-equal output: every object here is built in JsonConverter's key order.
 */
export interface ConnectSchema {
  type:
    | "int8"
    | "int16"
    | "int32"
    | "int64"
    | "float"
    | "double"
    | "boolean"
    | "string"
    | "bytes"
    | "array"
    | "map"
    | "struct";
  fields?: ConnectSchema[];
  items?: ConnectSchema;
  /** `map` only. */
  keys?: ConnectSchema;
  /** `map` only. */
  values?: ConnectSchema;
  optional: boolean;
  name?: string;
  version?: number;
  doc?: string;
  parameters?: Record<string, string>;
  default?: JsonValue;
  field?: string;
}

/** What the schema of one column needs: its name, type, typmod, NOT NULL. */
export interface ConnectColumn {
  name: string;
  typeOid: number;
  typeModifier: number;
  optional: boolean;
  /** The column's default as Debezium would put it in the schema, already converted;
   * undefined = none. */
  default?: JsonValue;
}

/** A schema before `optional`, `default` and `field` are known. */
interface Spec {
  type: ConnectSchema["type"];
  fields?: ConnectSchema[];
  items?: ConnectSchema;
  keys?: ConnectSchema;
  values?: ConnectSchema;
  name?: string;
  version?: number;
  doc?: string;
  parameters?: Record<string, string>;
}

/** Writes `spec` in JsonConverter's order (`asJsonSchema`, then `field` added by the struct). */
function finish(
  spec: Spec,
  optional: boolean,
  extra: { default?: JsonValue; field?: string } = {},
): ConnectSchema {
  const out = { type: spec.type } as ConnectSchema;
  if (spec.fields !== undefined) out.fields = spec.fields;
  if (spec.items !== undefined) out.items = spec.items;
  if (spec.keys !== undefined) out.keys = spec.keys;
  if (spec.values !== undefined) out.values = spec.values;
  out.optional = optional;
  if (spec.name !== undefined) out.name = spec.name;
  if (spec.version !== undefined) out.version = spec.version;
  if (spec.doc !== undefined) out.doc = spec.doc;
  if (spec.parameters !== undefined) out.parameters = { ...spec.parameters };
  if (extra.default !== undefined) out.default = extra.default;
  if (extra.field !== undefined) out.field = extra.field;
  return out;
}

/** A struct field: `schema` of `spec` with its name. */
function field(name: string, spec: Spec, optional: boolean, fallback?: JsonValue): ConnectSchema {
  return finish(spec, optional, { default: fallback, field: name });
}

const named = (type: Spec["type"], name: string, version = 1): Spec => ({ type, name, version });

const STRING: Spec = { type: "string" };
const INT32: Spec = { type: "int32" };
const INT64: Spec = { type: "int64" };
const DOUBLE: Spec = { type: "double" };
const BOOLEAN: Spec = { type: "boolean" };
const BYTES: Spec = { type: "bytes" };

/** `Point`'s doc and fields (debezium `data/geometry/Point.java`). */
function debeziumPoint(): Spec {
  return {
    type: "struct",
    fields: [
      field("x", DOUBLE, false),
      field("y", DOUBLE, false),
      field("wkb", BYTES, true),
      field("srid", INT32, true),
    ],
    name: "io.debezium.data.geometry.Point",
    version: 1,
    doc: "Geometry (POINT)",
  };
}

/** Spillway's `{ x, y }`. */
function plainPoint(): Spec {
  return { type: "struct", fields: [field("x", DOUBLE, false), field("y", DOUBLE, false)] };
}

/** `SchemaFactory.datatypeVariableScaleDecimalSchema`. */
function variableScaleDecimal(): Spec {
  return {
    type: "struct",
    fields: [field("scale", INT32, false), field("value", BYTES, false)],
    name: "io.debezium.data.VariableScaleDecimal",
    version: 1,
    doc: "Variable scaled decimal",
  };
}

/** Kafka's `Decimal.builder(scale)` (parameter `scale`), plus Debezium's precision if any. */
function decimal(scale: number, precision?: number): Spec {
  const parameters: Record<string, string> = { scale: String(scale) };
  if (precision !== undefined) parameters["connect.decimal.precision"] = String(precision);
  return { type: "bytes", name: "org.apache.kafka.connect.data.Decimal", version: 1, parameters };
}

/** What Spillway writes for a value of a type it cannot decode: `{ type, text | binary }`. */
function unknownSpec(options: Required<JsonOptions>): Spec {
  return {
    type: "struct",
    fields: [
      field("type", STRING, false),
      field("text", STRING, true),
      field("binary", options.binaryHandling === "bytes" ? BYTES : STRING, true),
    ],
  };
}

/**
 * Array types that reach Debezium's generic array branch (`arrayElementSchema`), whose element
 * schema is not made optional: arrays of enums, and these built-ins (category `A`).
 */
const REQUIRED_ELEMENT_ARRAYS: ReadonlySet<number> = new Set([
  3643, // tsvector[]
  Oid.int2vector,
  Oid.oidvector,
]);

class SchemaBuilder {
  readonly #options: Required<JsonOptions>;
  readonly #registry: TypeRegistry;

  constructor(options: Required<JsonOptions>, registry: TypeRegistry) {
    this.#options = options;
    this.#registry = registry;
  }

  /** The schema of `oid` with `typmod`; a column, a domain's base or an array's element. */
  spec(oid: number, typmod: number, depth = 0): Spec {
    const o = this.#options;
    if (depth > 32) return unknownSpec(o);
    const builtin = this.#builtin(oid, typmod);
    if (builtin !== undefined) return builtin;
    const info = this.#registry.get(oid);
    if (info === undefined) return unknownSpec(o);
    switch (info.kind) {
      case "domain":
        return this.spec(
          info.baseOid!,
          typmod >= 0 ? typmod : info.baseTypeModifier ?? -1,
          depth + 1,
        );
      case "enum":
        return this.#enum(info.enumLabels);
      case "array": {
        // Debezium's `*_ARRAY` cases make elements optional; its generic branch does not.
        const element = this.#registry.get(info.elementOid!);
        const elementOptional = element?.kind !== "enum" && !REQUIRED_ELEMENT_ARRAYS.has(oid);
        return this.#array(this.spec(info.elementOid!, typmod, depth + 1), elementOptional);
      }
      case "range":
        return this.#range(info.subtypeOid!, depth);
      case "multirange": {
        if (o.rangeHandling === "string") return STRING;
        const range = this.#registry.get(info.rangeOid!);
        if (range?.kind !== "range") return unknownSpec(o);
        return this.#array(this.#range(range.subtypeOid!, depth + 1), false);
      }
      case "composite":
        return {
          type: "struct",
          fields: info.fields!.map((f) =>
            field(f.name, this.spec(f.typeOid, f.typeModifier, depth + 1), true)
          ),
        };
      case "base":
        return unknownSpec(o);
      default: {
        const never: never = info.kind;
        return never;
      }
    }
  }

  #array(element: Spec, elementOptional: boolean): Spec {
    return { type: "array", items: finish(element, elementOptional) };
  }

  #enum(labels: readonly string[] | undefined): Spec {
    return {
      ...named("string", "io.debezium.data.Enum"),
      parameters: { allowed: (labels ?? []).join(",") },
    };
  }

  #range(subtypeOid: number, depth: number): Spec {
    if (this.#options.rangeHandling === "string") return STRING;
    const bound = this.spec(subtypeOid, -1, depth + 1);
    return {
      type: "struct",
      fields: [
        field("empty", BOOLEAN, false),
        field("lower", bound, true),
        field("upper", bound, true),
        field("lowerInclusive", BOOLEAN, false),
        field("upperInclusive", BOOLEAN, false),
      ],
    };
  }

  /** Built-in scalars and built-in arrays; undefined for catalog types. */
  #builtin(oid: number, typmod: number): Spec | undefined {
    const o = this.#options;
    const isoTime = o.timePrecision === "isostring";
    switch (oid) {
      case Oid.bool:
        return BOOLEAN;
      case Oid.int2:
        return { type: "int16" };
      case Oid.int4:
        return INT32;
      case Oid.int8:
      case Oid.oid:
      case Oid.xid:
      case Oid.cid:
      case Oid.xid8:
        return INT64;
      case Oid.float4:
        return { type: "float" };
      case Oid.float8:
        return DOUBLE;
      case Oid.numeric: {
        if (o.decimalHandling === "double") return DOUBLE;
        if (o.decimalHandling === "string") return STRING;
        if (typmod < 4) return variableScaleDecimal();
        const raw = (typmod - 4) & 0x7ff;
        return decimal(raw >= 1024 ? raw - 2048 : raw, ((typmod - 4) >> 16) & 0xffff);
      }
      case Oid.money:
        if (o.decimalHandling === "double") return DOUBLE;
        if (o.decimalHandling === "string") return STRING;
        return decimal(2);
      case Oid.bytea:
        return o.binaryHandling === "bytes" ? BYTES : STRING;
      case Oid.uuid:
        return named("string", "io.debezium.data.Uuid");
      case Oid.json:
      case Oid.jsonb:
        return named("string", "io.debezium.data.Json");
      case Oid.xml:
        return named("string", "io.debezium.data.Xml");
      case Oid.tsvector:
        return named("string", "io.debezium.data.Tsvector");
      case Oid.date:
        if (isoTime) return STRING;
        return o.timePrecision === "connect"
          ? named("int32", "org.apache.kafka.connect.data.Date")
          : named("int32", "io.debezium.time.Date");
      case Oid.time: {
        if (isoTime) return STRING;
        if (o.timePrecision === "connect") {
          return named("int32", "org.apache.kafka.connect.data.Time");
        }
        const precision = typmod >= 0 ? typmod : 6;
        return o.timePrecision === "adaptive" && precision <= 3
          ? named("int32", "io.debezium.time.Time")
          : named("int64", "io.debezium.time.MicroTime");
      }
      case Oid.timestamp: {
        if (isoTime) return STRING;
        if (o.timePrecision === "connect") {
          return named("int64", "org.apache.kafka.connect.data.Timestamp");
        }
        const precision = typmod >= 0 ? typmod : 6;
        return precision <= 3
          ? named("int64", "io.debezium.time.Timestamp")
          : named("int64", "io.debezium.time.MicroTimestamp");
      }
      case Oid.timestamptz:
        return isoTime ? STRING : named("string", "io.debezium.time.ZonedTimestamp");
      case Oid.timetz:
        return isoTime ? STRING : named("string", "io.debezium.time.ZonedTime");
      case Oid.interval:
        return o.intervalHandling === "numeric"
          ? named("int64", "io.debezium.time.MicroDuration")
          : named("string", "io.debezium.time.Interval");
      case Oid.bit:
      case Oid.varbit: {
        if (o.bitHandling === "string") return STRING;
        // decoder/types/json.ts writes a boolean exactly when the typmod is 1.
        if (typmod === 1) return BOOLEAN;
        return {
          ...named("bytes", "io.debezium.data.Bits"),
          parameters: { length: String(typmod >= 0 ? typmod : 2147483647) },
        };
      }
      case Oid.point:
        return o.geometryHandling === "debezium" ? debeziumPoint() : plainPoint();
      case Oid.line:
        return {
          type: "struct",
          fields: [field("a", DOUBLE, false), field("b", DOUBLE, false), field("c", DOUBLE, false)],
        };
      case Oid.lseg:
      case Oid.box:
      case Oid.polygon:
        return this.#array(plainPoint(), false);
      case Oid.path:
        return {
          type: "struct",
          fields: [
            field("closed", BOOLEAN, false),
            field("points", this.#array(plainPoint(), false), false),
          ],
        };
      case Oid.circle:
        return {
          type: "struct",
          fields: [field("center", plainPoint(), false), field("radius", DOUBLE, false)],
        };
      case Oid.int2vector:
        return this.#array({ type: "int16" }, false);
      case Oid.oidvector:
        return this.#array(INT64, false);
      case Oid.char:
      case Oid.name:
      case Oid.text:
      case Oid.varchar:
      case Oid.bpchar:
      case Oid.unknown:
      case Oid.inet:
      case Oid.cidr:
      case Oid.macaddr:
      case Oid.macaddr8:
      case Oid.tsquery:
      case Oid.jsonpath:
      case Oid.pg_lsn:
      case Oid.tid:
      case Oid.txid_snapshot:
      case Oid.pg_snapshot:
      case Oid.aclitem:
      case Oid.refcursor:
      case Oid.regproc:
      case Oid.regprocedure:
      case Oid.regoper:
      case Oid.regoperator:
      case Oid.regclass:
      case Oid.regtype:
      case Oid.regconfig:
      case Oid.regdictionary:
      case Oid.regnamespace:
      case Oid.regrole:
      case Oid.regcollation:
        return STRING;
      case Oid.int4range:
      case Oid.numrange:
      case Oid.tsrange:
      case Oid.tstzrange:
      case Oid.daterange:
      case Oid.int8range:
      case Oid.int4multirange:
      case Oid.nummultirange:
      case Oid.tsmultirange:
      case Oid.tstzmultirange:
      case Oid.datemultirange:
      case Oid.int8multirange:
        return undefined; // the registry describes them (range/multirange)
      default:
        return undefined; // arrays and catalog types: the registry describes them
    }
  }
}

/** The registry used when none is given: built-in types only. */
const builtins = new TypeRegistry();

function typeSpec(
  oid: number,
  typmod: number,
  options: Required<JsonOptions>,
  registry: TypeRegistry | undefined,
): Spec {
  return new SchemaBuilder(options, registry ?? builtins).spec(oid, typmod);
}

/**
 * The schema of one column, with `field` = the column's name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEBEZIUM_DEFAULTS } from "../decoder/types/json.ts";
 * import { columnSchema } from "./connect_schema.ts";
 * const column = { name: "id", typeOid: 20, typeModifier: -1, optional: false };
 * assert.equal(
 *   JSON.stringify(columnSchema(column, DEBEZIUM_DEFAULTS)),
 *   '{"type":"int64","optional":false,"field":"id"}',
 * );
 * ```
 */
export function columnSchema(
  column: ConnectColumn,
  options: Required<JsonOptions>,
  registry?: TypeRegistry,
): ConnectSchema {
  const spec = typeSpec(column.typeOid, column.typeModifier, options, registry);
  return finish(spec, column.optional, { default: column.default, field: column.name });
}

/**
 * The key schema: struct `<name>.Key` (e.g. `app.public.orders.Key`), required, no version,
 * one field per key column (`TableSchemaBuilder.create`). Debezium has no key schema for a
 * table without a key; this returns a struct without fields then.
 */
export function keySchema(
  name: string,
  columns: readonly ConnectColumn[],
  options: Required<JsonOptions>,
  registry?: TypeRegistry,
): ConnectSchema {
  return finish(
    {
      type: "struct",
      fields: columns.map((c) => columnSchema(c, options, registry)),
      name: `${name}.Key`,
    },
    false,
  );
}

/** The row schema `<name>.Value`: optional, no version (`TableSchemaBuilder.create`). */
function valueSpec(
  name: string,
  columns: readonly ConnectColumn[],
  options: Required<JsonOptions>,
  registry?: TypeRegistry,
): Spec {
  return {
    type: "struct",
    fields: columns.map((c) => columnSchema(c, options, registry)),
    name: `${name}.Value`,
  };
}

/** Debezium's `SnapshotRecord` values, lower case, in declaration order. */
const SNAPSHOT_VALUES = "true,first,first_in_data_collection,last_in_data_collection,last,false," +
  "incremental";

/**
 * The `source` block (`SchemaFactory.sourceInfoSchemaBuilder` then
 * `PostgresSourceInfoStructMaker.init`), with `field` = `"source"`.
 */
export function sourceSchema(): ConnectSchema {
  const snapshot: Spec = {
    ...named("string", "io.debezium.data.Enum"),
    parameters: { allowed: SNAPSHOT_VALUES },
  };
  return finish(
    {
      type: "struct",
      fields: [
        field("version", STRING, false),
        field("connector", STRING, false),
        field("name", STRING, false),
        field("ts_ms", INT64, false),
        field("snapshot", snapshot, true, "false"),
        field("db", STRING, false),
        field("sequence", STRING, true),
        field("ts_us", INT64, true),
        field("ts_ns", INT64, true),
        field("schema", STRING, false),
        field("table", STRING, false),
        field("txId", INT64, true),
        field("lsn", INT64, true),
        field("xmin", INT64, true),
        field("origin", STRING, true),
        field("origin_lsn", INT64, true),
      ],
      name: "io.debezium.connector.postgresql.Source",
      version: 1,
    },
    false,
    { field: "source" },
  );
}

/** The `transaction` block (`SchemaFactory.transactionBlockSchema`), optional. */
function transactionBlockSchema(): ConnectSchema {
  return finish(
    {
      type: "struct",
      fields: [
        field("id", STRING, false),
        field("total_order", INT64, false),
        field("data_collection_order", INT64, false),
      ],
      name: "event.block",
      version: 1,
    },
    true,
    { field: "transaction" },
  );
}

/**
 * The value schema of a change event: struct `<name>.Envelope`, version 2, fields `before`,
 * `after` (`<name>.Value`, optional), `source`, `transaction`, `op`, `ts_ms`, `ts_us`, `ts_ns`
 * (`TableSchemaBuilder.create`: `withRecord`, `withSource`, `withTransaction`; then
 * `Envelope.Builder.build` adds `op` and the timestamps).
 */
export function envelopeSchema(
  name: string,
  columns: readonly ConnectColumn[],
  options: Required<JsonOptions>,
  registry?: TypeRegistry,
): ConnectSchema {
  const value = valueSpec(name, columns, options, registry);
  return finish(
    {
      type: "struct",
      fields: [
        finish(value, true, { field: "before" }),
        finish(value, true, { field: "after" }),
        sourceSchema(),
        transactionBlockSchema(),
        field("op", STRING, false),
        field("ts_ms", INT64, true),
        field("ts_us", INT64, true),
        field("ts_ns", INT64, true),
      ],
      name: `${name}.Envelope`,
      version: 2,
    },
    false,
  );
}

/** Key of the transaction metadata topic (`SchemaFactory.transactionKeySchema`). */
export function transactionKeySchema(): ConnectSchema {
  return finish(
    {
      type: "struct",
      fields: [field("id", STRING, false)],
      name: "io.debezium.connector.common.TransactionMetadataKey",
      version: 1,
    },
    false,
  );
}

/**
 * Value of a BEGIN/END record of the transaction metadata topic
 * (`SchemaFactory.transactionValueSchema`, `transactionEventCountPerDataCollectionSchema`).
 */
export function transactionValueSchema(): ConnectSchema {
  const collection: Spec = {
    type: "struct",
    fields: [field("data_collection", STRING, false), field("event_count", INT64, false)],
    name: "event.collection",
    version: 1,
  };
  return finish(
    {
      type: "struct",
      fields: [
        field("status", STRING, false),
        field("id", STRING, false),
        field("event_count", INT64, true),
        field("data_collections", { type: "array", items: finish(collection, true) }, true),
        field("ts_ms", INT64, false),
      ],
      name: "io.debezium.connector.common.TransactionMetadataValue",
      version: 1,
    },
    false,
  );
}

/** Key of a logical decoding message (`LogicalDecodingMessageMonitor`): its prefix. */
export function messageKeySchema(): ConnectSchema {
  return finish(
    {
      type: "struct",
      fields: [field("prefix", STRING, true)],
      name: "io.debezium.connector.postgresql.MessageKey",
      version: 1,
    },
    false,
  );
}

/**
 * Value of a logical decoding message: `op` (`m`), `ts_ms`, `source`, `transaction` and the
 * `message` block (prefix, and content as `binary.handling.mode` gives bytea).
 */
export function messageValueSchema(options: Required<JsonOptions>): ConnectSchema {
  const block: Spec = {
    type: "struct",
    fields: [
      field("prefix", STRING, true),
      field("content", options.binaryHandling === "bytes" ? BYTES : STRING, true),
    ],
    name: "io.debezium.connector.postgresql.Message",
    version: 1,
  };
  return finish(
    {
      type: "struct",
      fields: [
        field("op", STRING, false),
        field("ts_ms", INT64, true),
        sourceSchema(),
        transactionBlockSchema(),
        finish(block, false, { field: "message" }),
      ],
      name: "io.debezium.connector.postgresql.MessageValue",
      version: 1,
    },
    false,
  );
}
