/**
 * Avro's binary encoding of the values Debezium's mapping gives (`decoder/types/json.ts`: the
 * same values `debezium-json` writes), following a Connect schema from
 * `../connect_schema.ts`: one mapping, two encodings. {@linkcode avroEncoder} compiles a
 * schema once into a function (per table and schema version, cached by the caller), so an
 * event costs one pass over its values and no per-event schema work.
 *
 * Why not a generic library (avsc): it encodes JavaScript objects shaped like the Avro schema,
 * so every event would first be rebuilt as such an object (unions wrapped, bytes decoded);
 * this writes the bytes straight from the values. The tests check it against avsc's decoder,
 * and `tests/` against Apache Avro's Java reader.
 *
 * Values by Connect type: integers as zigzag varints (an `int64` beyond 2^53 arrives as a
 * bigint, or as `JSON.rawJSON(digits)`), `float`/`double` little-endian IEEE 754, `boolean` one byte,
 * `string` length and UTF-8, `bytes` (base64 in the JSON mapping) length and bytes, `array`
 * one block and the end marker, `map` the same with keys, `struct` its fields in order,
 * optional values a union index first (`["null", T]`, or `[T, "null"]` with a default: see
 * `schema.ts`).
 *
 * @module
 */

import type { JsonValue } from "../../decoder/types/json.ts";
import type { ConnectSchema } from "../connect_schema.ts";
import { ByteWriter } from "../byte_writer.ts";
import { isRawJson } from "../json_writer.ts";

const encoder = new TextEncoder();

/** Writes Avro values into one reusable buffer ({@linkcode ByteWriter}). */
export class AvroWriter extends ByteWriter {
  /** Floats are written through this, little-endian as Avro wants them. */
  readonly #scratch = new DataView(new ArrayBuffer(8));
  readonly #scratchBytes = new Uint8Array(this.#scratch.buffer);
  readonly #scratchFloat = this.#scratchBytes.subarray(0, 4);

  /** A `long` (or `int`): zigzag, then base-128 varint. */
  long(value: number | bigint): void {
    if (typeof value === "number" && Number.isInteger(value) && Math.abs(value) < 2 ** 52) {
      this.reserve(10);
      // Zigzag in floating point: exact below 2^52.
      this.unsignedVarint(value >= 0 ? value * 2 : -value * 2 - 1);
      return;
    }
    let n = BigInt.asUintN(64, (BigInt(value) << 1n) ^ (BigInt(value) >> 63n));
    this.reserve(10);
    while (n >= 0x80n) {
      this.buffer[this.end++] = Number(n & 0x7fn) | 0x80;
      n >>= 7n;
    }
    this.buffer[this.end++] = Number(n);
  }

  float(value: number): void {
    this.#scratch.setFloat32(0, value, true);
    this.append(this.#scratchFloat);
  }

  double(value: number): void {
    this.#scratch.setFloat64(0, value, true);
    this.append(this.#scratchBytes);
  }

  /** `bytes`: length, then the bytes. */
  bytesValue(bytes: Uint8Array): void {
    this.long(bytes.byteLength);
    this.append(bytes);
  }

  string(text: string): void {
    // ASCII (the common case) is copied straight; anything else is encoded once.
    let ascii = true;
    for (let i = 0; i < text.length; i++) {
      if (text.charCodeAt(i) >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (!ascii) {
      this.bytesValue(encoder.encode(text));
      return;
    }
    this.long(text.length);
    this.reserve(text.length);
    const buffer = this.buffer;
    let at = this.end;
    for (let i = 0; i < text.length; i++) buffer[at++] = text.charCodeAt(i);
    this.end = at;
  }
}

/** Writes one value of a schema. `undefined` stands for an absent value (as `null`). */
export type AvroEncoder = (out: AvroWriter, value: JsonValue | undefined) => void;

/** A number from a JSON value that may be `JSON.rawJSON` digits. */
function numberOf(value: JsonValue, what: string): number | bigint {
  if (typeof value === "number") return value;
  // Values read back from JSON hold integers past 2^53 as bigints.
  if (typeof value === "bigint") return value;
  if (isRawJson(value)) {
    const text = value.rawJSON;
    return /^-?\d+$/.test(text) ? BigInt(text) : Number(text);
  }
  if (typeof value === "string") {
    // Floats that JSON cannot hold (NaN, ±Infinity) arrive as their names.
    const n = Number(value);
    if (!Number.isNaN(n) || value === "NaN") return n;
  }
  throw new TypeError(`Cannot write ${JSON.stringify(value)} as Avro ${what}`);
}

const INT_LIMITS = { int8: 2 ** 7, int16: 2 ** 15, int32: 2 ** 31 } as const;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A schema's field name for messages. */
function fieldName(schema: ConnectSchema): string {
  return schema.field ?? schema.name ?? schema.type;
}

/** Compiles the encoder of a Connect schema (see the module doc for the rules). */
export function avroEncoder(schema: ConnectSchema): AvroEncoder {
  const base = baseEncoder(schema);
  if (!schema.optional) {
    return (out, value) => {
      if (value === null || value === undefined) {
        throw new TypeError(
          `Cannot write null as Avro: ${
            schema.field ?? schema.name ?? schema.type
          } is not optional`,
        );
      }
      base(out, value);
    };
  }
  // The union's branches: null first, unless the schema has a default (then it comes first).
  const nullFirst = schema.default === undefined || schema.default === null;
  const nullIndex = nullFirst ? 0 : 1;
  const valueIndex = nullFirst ? 1 : 0;
  return (out, value) => {
    if (value === null || value === undefined) {
      out.long(nullIndex);
      return;
    }
    out.long(valueIndex);
    base(out, value);
  };
}

function baseEncoder(schema: ConnectSchema): (out: AvroWriter, value: JsonValue) => void {
  switch (schema.type) {
    case "int8":
    case "int16":
    case "int32": {
      const limit = INT_LIMITS[schema.type];
      return (out, value) => {
        const n = numberOf(value, schema.type);
        if (typeof n !== "number" || !Number.isInteger(n) || n < -limit || n >= limit) {
          throw new TypeError(
            `Cannot write ${String(n)} as Avro: ${fieldName(schema)} is a Connect ${schema.type}`,
          );
        }
        out.long(n);
      };
    }
    case "int64":
      return (out, value) => {
        const n = numberOf(value, schema.type);
        if (typeof n === "number" ? !Number.isInteger(n) : BigInt.asIntN(64, n) !== n) {
          throw new TypeError(
            `Cannot write ${String(n)} as Avro: ${fieldName(schema)} is a Connect int64`,
          );
        }
        out.long(n);
      };
    case "float":
      return (out, value) => out.float(Number(numberOf(value, "float")));
    case "double":
      return (out, value) => out.double(Number(numberOf(value, "double")));
    case "boolean":
      return (out, value) => out.byte(value === true ? 1 : 0);
    case "string":
      return (out, value) => {
        if (typeof value === "string") out.string(value);
        else if (isRawJson(value)) out.string(value.rawJSON);
        else out.string(JSON.stringify(value));
      };
    case "bytes": {
      // The JSON mapping writes bytes as base64 (binary.handling.mode=bytes).
      const decimal = schema.name === "org.apache.kafka.connect.data.Decimal";
      return (out, value) => {
        // Strict: a numeric's NaN or Infinity (written as its name in the JSON mapping) is
        // not base64, and must not pass for bytes.
        if (
          typeof value !== "string" || !BASE64.test(value) ||
          (decimal && (value === "Infinity" || value === "NaN"))
        ) {
          throw new TypeError(
            `Cannot write ${JSON.stringify(value)} as Avro bytes (${fieldName(schema)}${
              schema.name === undefined ? "" : `, ${schema.name}`
            }): not base64 bytes; a numeric NaN or Infinity has no Decimal form`,
          );
        }
        out.bytesValue(Uint8Array.fromBase64(value));
      };
    }
    case "array": {
      const item = avroEncoder(schema.items!);
      return (out, value) => {
        if (!Array.isArray(value)) {
          throw new TypeError(`Cannot write ${JSON.stringify(value)} as an Avro array`);
        }
        if (value.length > 0) {
          out.long(value.length);
          for (const element of value) item(out, element);
        }
        out.long(0);
      };
    }
    case "map": {
      const keys = schema.keys!;
      const stringKeys = keys.type === "string" && !keys.optional;
      const key = avroEncoder(keys);
      const entry = avroEncoder(schema.values!);
      return (out, value) => {
        const entries = Object.entries(value as Record<string, JsonValue>);
        if (entries.length > 0) {
          out.long(entries.length);
          for (const [k, v] of entries) {
            if (stringKeys) out.string(k);
            else key(out, k);
            entry(out, v);
          }
        }
        out.long(0);
      };
    }
    case "struct": {
      const fields = (schema.fields ?? []).map((field) => ({
        name: field.field!,
        encode: avroEncoder(field),
      }));
      return (out, value) => {
        const record = value as Record<string, JsonValue>;
        for (const field of fields) field.encode(out, record[field.name]);
      };
    }
  }
}

/** Confluent's wire format: magic byte 0, the schema id (4 bytes, big-endian), the body. */
export function writeWireHeader(out: AvroWriter, schemaId: number): void {
  out.byte(0);
  out.byte((schemaId >>> 24) & 0xff);
  out.byte((schemaId >>> 16) & 0xff);
  out.byte((schemaId >>> 8) & 0xff);
  out.byte(schemaId & 0xff);
}
