/**
 * Test-only: the shape of `vectors.json` and a lossless JSON encoding of decoded values
 * (`bigint`, `Uint8Array`, `NaN`, `±Infinity` and `-0` are tagged).
 *
 * @module
 */

import type { PgValue, TypeInfo } from "../registry.ts";

/** One value as the server printed it (text) and sent it (binary, hex). */
export interface Vector {
  /** What the case covers, for failure messages. */
  label: string;
  /** `format_type` of the value's type, e.g. `"integer[]"`. */
  type: string;
  oid: number;
  /** Type modifier of the cast (e.g. 655366 for numeric(10,2)); -1 when none. */
  typmod: number;
  /** The SQL literal the server was given. */
  input: string;
  /** Output under Spillway's session settings. */
  text: string;
  /** The type's `send` output, hex. */
  hex: string;
  /** Output under other settings, keyed by `GUC=value` (interval styles, bytea escape). */
  variants?: Record<string, string>;
  /** The value both modes must decode to (tagged, see {@linkcode encodeExpected}); absent when
   * only text/binary agreement is checked. */
  expected?: unknown;
  /** Where text and binary are known to differ (`reg*`): what binary decodes to. */
  binaryExpected?: unknown;
  /** `float4` cases: compare `Math.fround(decoded)` with the expected float32 instead. */
  float4?: boolean;
}

/** The whole `vectors.json`. */
export interface VectorFile {
  /** `server_version` of the server that produced the file. */
  serverVersion: string;
  /** Catalog types the vectors use, as `loadTypeInfos` read them. */
  types: TypeInfo[];
  vectors: Vector[];
}

/** Encodes a decoded value as plain JSON. */
export function encodeExpected(value: PgValue): unknown {
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") {
    if (Number.isNaN(value) || !Number.isFinite(value) || Object.is(value, -0)) {
      return { $number: Object.is(value, -0) ? "-0" : String(value) };
    }
    return value;
  }
  if (typeof value === "bigint") return { $bigint: value.toString() };
  if (value instanceof Uint8Array) return { $bytes: value.toHex() };
  if (Array.isArray(value)) return value.map(encodeExpected);
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) out[key] = encodeExpected(field as PgValue);
  return out;
}

/** Inverse of {@linkcode encodeExpected}. */
export function decodeExpected(json: unknown): PgValue {
  if (json === null || typeof json !== "object") return json as PgValue;
  if (Array.isArray(json)) return json.map(decodeExpected);
  const record = json as Record<string, unknown>;
  if (typeof record.$number === "string") return Number(record.$number);
  if (typeof record.$bigint === "string") return BigInt(record.$bigint);
  if (typeof record.$bytes === "string") return Uint8Array.fromHex(record.$bytes);
  const out: Record<string, PgValue> = {};
  for (const [key, field] of Object.entries(record)) out[key] = decodeExpected(field);
  return out;
}
