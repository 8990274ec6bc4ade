/**
 * Avro schemas from Connect schemas, as Kafka Connect's Avro converters (Confluent's
 * `AvroData.fromConnectSchema`, and Apicurio's, which follows it) turn Debezium's Connect
 * schemas into the Avro schemas its consumers see. The Connect schema of each column comes
 * from `../connect_schema.ts`, the one mapping that `debezium-json` with `schemas: true` also
 * writes: one mapping, two encodings.
 *
 * The rules:
 *
 * - `int8`/`int16` → `int` with `connect.type`; `int32` → `int`, `int64` → `long`, `float`,
 *   `double`, `boolean`, `string`, `bytes` as themselves.
 * - Connect's logical types become Avro's: `Decimal` → `bytes` with `logicalType: decimal`,
 *   `precision` (`connect.decimal.precision`, else 64) and `scale`; `Date` → `int` `date`;
 *   `Time` → `int` `time-millis`; `Timestamp` → `long` `timestamp-millis`. Debezium's own
 *   semantic types (`io.debezium.time.MicroTimestamp`, `io.debezium.data.Json`, …) are not
 *   Avro logical types: they keep their primitive with `connect.name`.
 * - Every named, versioned, documented or parameterised schema carries `connect.doc`,
 *   `connect.version`, `connect.parameters` (unless empty), `connect.default`, `connect.name`
 *   and `connect.type`, in that order: AvroData's, so the text a registry keeps is the same as
 *   for Debezium through Connect's Avro converter (`tests/kafka_avro_debezium_test.ts`).
 * - `struct` → `record` named after the schema's name (namespace: all but the last part), each
 *   field with its default; a record met again is referred to by its full name, as Avro
 *   requires (the Envelope's `after` refers to the `Value` of its `before`).
 * - `array` → `array`; `map` with string keys → `map`, other keys → an array of
 *   `MapEntry` records (`key`, `value`).
 * - Optional → a union with `null`: `["null", T]` with default `null`, or `[T, "null"]` with
 *   the default first when the schema has one (a union's default must match its first branch).
 * - Names are made valid Avro names: every character outside `[A-Za-z0-9_]` (per dot-separated
 *   part of a full name; field names are one part) becomes `_`, and a part that starts with a
 *   digit gets a leading `_`. (Debezium's `schema.name.adjustment.mode=avro` replaces the same
 *   characters, but only checks the first character of the whole name.)
 *
 * @module
 */

import type { JsonValue } from "../../decoder/types/json.ts";
import type { ConnectSchema } from "../connect_schema.ts";

/** An Avro schema in its JSON form. */
export type AvroSchema =
  | string
  | AvroSchema[]
  | { type: string; [property: string]: unknown };

/** The Avro namespace of records that have no name of their own (Confluent's). */
export const DEFAULT_NAMESPACE = "io.confluent.connect.avro";

const PRIMITIVES: Readonly<Record<string, string>> = {
  int8: "int",
  int16: "int",
  int32: "int",
  int64: "long",
  float: "float",
  double: "double",
  boolean: "boolean",
  string: "string",
  bytes: "bytes",
};

const DECIMAL = "org.apache.kafka.connect.data.Decimal";
const DATE = "org.apache.kafka.connect.data.Date";
const TIME = "org.apache.kafka.connect.data.Time";
const TIMESTAMP = "org.apache.kafka.connect.data.Timestamp";

/** A Connect name made a valid Avro full name (Debezium's `avro` adjustment, per part). */
export function avroName(name: string): string {
  return name.split(".").map((part) => {
    const fixed = part.replace(/[^A-Za-z0-9_]/g, "_");
    return /^[0-9]/.test(fixed) || fixed === "" ? `_${fixed}` : fixed;
  }).join(".");
}

/** A Connect field name made a valid Avro field name (one part: a dot becomes `_` too). */
export function avroFieldName(name: string): string {
  const fixed = name.replace(/[^A-Za-z0-9_]/g, "_");
  return /^[0-9]/.test(fixed) || fixed === "" ? `_${fixed}` : fixed;
}

/**
 * The Avro schema of a Connect schema (a key, or a whole change event value). Each call
 * starts a new set of defined names: pass the whole schema of one record value at once.
 */
export function avroSchema(connect: ConnectSchema): AvroSchema {
  return new Converter().schema(connect, false);
}

class Converter {
  /** Full names of the records already defined in this schema. */
  readonly #defined = new Set<string>();
  #anonymous = 0;

  schema(connect: ConnectSchema, inUnion: boolean): AvroSchema {
    const base = this.#base(connect);
    if (!connect.optional || inUnion) return base;
    return connect.default === undefined || connect.default === null
      ? ["null", base]
      : [base, "null"];
  }

  /** The schema without the optional's union. */
  #base(connect: ConnectSchema): AvroSchema {
    switch (connect.type) {
      case "struct":
        return this.#record(connect);
      case "array":
        return this.#withConnectProps(
          { type: "array", items: this.schema(connect.items!, false) },
          connect,
        );
      case "map":
        return this.#map(connect);
      default:
        return this.#primitive(connect);
    }
  }

  #primitive(connect: ConnectSchema): AvroSchema {
    const type = PRIMITIVES[connect.type];
    if (type === undefined) throw new TypeError(`No Avro type for Connect type ${connect.type}`);
    const out: { type: string; [property: string]: unknown } = { type };
    switch (connect.name) {
      case DECIMAL: {
        const scale = Number(connect.parameters?.scale ?? 0);
        const precision = Number(connect.parameters?.["connect.decimal.precision"] ?? 64);
        out.scale = scale;
        out.precision = precision;
        break;
      }
    }
    this.#withConnectProps(out, connect);
    // Last of the connect.* properties, as AvroData adds it.
    if (connect.type === "int8" || connect.type === "int16") out["connect.type"] = connect.type;
    switch (connect.name) {
      case DECIMAL:
        out.logicalType = "decimal";
        break;
      case DATE:
        out.logicalType = "date";
        break;
      case TIME:
        out.logicalType = "time-millis";
        break;
      case TIMESTAMP:
        out.logicalType = "timestamp-millis";
        break;
    }
    // A plain primitive is written as its name alone.
    return Object.keys(out).length === 1 ? type : out;
  }

  #record(connect: ConnectSchema): AvroSchema {
    // AvroData's names for unnamed records: ConnectDefault, ConnectDefault2, …
    const anonymous = connect.name === undefined ? ++this.#anonymous : 0;
    const fullName = avroName(
      connect.name ??
        `${DEFAULT_NAMESPACE}.ConnectDefault${anonymous > 1 ? anonymous : ""}`,
    );
    if (this.#defined.has(fullName)) return fullName;
    this.#defined.add(fullName);
    const dot = fullName.lastIndexOf(".");
    const out: { type: string; [property: string]: unknown } = { type: "record" };
    out.name = dot < 0 ? fullName : fullName.slice(dot + 1);
    if (dot >= 0) out.namespace = fullName.slice(0, dot);
    out.fields = (connect.fields ?? []).map((field) => {
      const type = this.schema(field, false);
      const entry: Record<string, unknown> = { name: avroFieldName(field.field!), type };
      if (field.optional && (field.default === undefined || field.default === null)) {
        entry.default = null;
      } else if (field.default !== undefined) {
        entry.default = avroDefault(field, field.default);
      }
      return entry;
    });
    return this.#withConnectProps(out, connect);
  }

  #map(connect: ConnectSchema): AvroSchema {
    const keys = connect.keys!;
    if (keys.type === "string" && !keys.optional) {
      return this.#withConnectProps(
        { type: "map", values: this.schema(connect.values!, false) },
        connect,
      );
    }
    const entry = {
      type: "record",
      name: "MapEntry",
      namespace: DEFAULT_NAMESPACE,
      fields: [
        { name: "key", type: this.schema(keys, false) },
        { name: "value", type: this.schema(connect.values!, false) },
      ],
    };
    const fullName = `${DEFAULT_NAMESPACE}.MapEntry`;
    const items = this.#defined.has(fullName) ? fullName : entry;
    this.#defined.add(fullName);
    return this.#withConnectProps({ type: "array", items }, connect);
  }

  /** Adds the `connect.*` properties a named or annotated Connect schema carries. */
  #withConnectProps<T extends { type: string; [property: string]: unknown }>(
    out: T,
    connect: ConnectSchema,
  ): T {
    // In AvroData's order (the text a registry keeps and compares).
    const props = out as Record<string, unknown>;
    if (connect.doc !== undefined) props["connect.doc"] = connect.doc;
    if (connect.version !== undefined) props["connect.version"] = connect.version;
    if (connect.parameters !== undefined && Object.keys(connect.parameters).length > 0) {
      props["connect.parameters"] = { ...connect.parameters };
    }
    if (connect.default !== undefined && connect.default !== null) {
      props["connect.default"] = avroDefault(connect, connect.default);
    }
    if (connect.name !== undefined) props["connect.name"] = connect.name;
    return out;
  }
}

/**
 * A default in Avro's JSON form: bytes (base64 in Connect's JSON) as a string of one character
 * per byte, also inside structs, arrays and maps; other values as they are.
 */
function avroDefault(schema: ConnectSchema, value: JsonValue): JsonValue {
  if (value === null) return value;
  switch (schema.type) {
    case "bytes":
      return typeof value === "string"
        ? String.fromCharCode(...Uint8Array.fromBase64(value))
        : value;
    case "struct": {
      if (typeof value !== "object" || Array.isArray(value)) return value;
      const out: Record<string, JsonValue> = {};
      for (const field of schema.fields ?? []) {
        const item = (value as Record<string, JsonValue>)[field.field!];
        if (item !== undefined) out[avroFieldName(field.field!)] = avroDefault(field, item);
      }
      return out;
    }
    case "array":
      return Array.isArray(value) ? value.map((item) => avroDefault(schema.items!, item)) : value;
    case "map":
      if (typeof value !== "object" || Array.isArray(value)) return value;
      return Object.fromEntries(
        Object.entries(value).map(([key, item]) => [key, avroDefault(schema.values!, item)]),
      );
    default:
      return value;
  }
}
