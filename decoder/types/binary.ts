/**
 * Decoders for values in PostgreSQL's binary format (pgoutput `'b'` columns: each type's
 * `send` output), per built-in type, plus the array, range, multirange and composite
 * decoders the registry combines with element decoders.
 *
 * Every decoder returns the same value as its text twin in `text.ts` for the same datum, so
 * a column decodes identically in both modes. Where PostgreSQL's text output is the value
 * (dates, numerics, network addresses, text search), the bytes are formatted exactly as the
 * server's output function would, under the settings Spillway pins (`DateStyle=ISO, MDY`,
 * `TimeZone=UTC`, `lc_monetary=C`).
 *
 * Pure: no I/O. Malformed bytes throw {@linkcode DecodeError}; every count and length is
 * checked against the bytes that remain, so no input allocates without bound or loops forever.
 *
 * @module
 */

import { DecodeError } from "../../errors.ts";
import { BufferReader, decodeUtf8 } from "../_reader.ts";
import {
  DATE_END,
  DATE_MIN,
  DATE_NOBEGIN,
  DATE_NOEND,
  formatDate,
  formatTimeOfDay,
  formatTimestampMicros,
  formatZone,
  TIMESTAMP_END,
  TIMESTAMP_MIN,
  TIMESTAMP_NOBEGIN,
  TIMESTAMP_NOEND,
  USECS_PER_DAY,
} from "./_datetime.ts";
import { Oid } from "./oids.ts";
import { setField } from "./values.ts";
import type {
  BinaryValueDecoder,
  Box,
  Circle,
  Line,
  LineSegment,
  Path,
  PgArrayWithBounds,
  PgComposite,
  PgInterval,
  PgRange,
  PgValue,
  Point,
} from "./values.ts";

function fail(what: string, offset: number, detail: string): never {
  throw new DecodeError(what, offset, detail);
}

function expectLength(bytes: Uint8Array, length: number, what: string): void {
  if (bytes.byteLength !== length) {
    fail(what, 0, `expected ${length} bytes, got ${bytes.byteLength}`);
  }
}

function reader(bytes: Uint8Array, what: string): BufferReader {
  const r = new BufferReader(bytes);
  r.messageType = what;
  return r;
}

// ---------------------------------------------------------------------------------------------
// Fixed-width reads straight from the bytes (no DataView per value).

function int16At(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16)) >> 16;
}

function uint16At(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function int32At(b: Uint8Array, o: number): number {
  return (b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!;
}

function uint32At(b: Uint8Array, o: number): number {
  return int32At(b, o) >>> 0;
}

function int64At(b: Uint8Array, o: number): bigint {
  const high = int32At(b, o);
  const low = uint32At(b, o + 4);
  // Below 2^52 in magnitude the double is exact: one BigInt allocation instead of three.
  if (high >= -0x100000 && high < 0x100000) return BigInt(high * 4294967296 + low);
  return BigInt(high) * 4294967296n + BigInt(low);
}

function uint64At(b: Uint8Array, o: number): bigint {
  const high = uint32At(b, o);
  const low = uint32At(b, o + 4);
  if (high < 0x100000) return BigInt(high * 4294967296 + low);
  return BigInt(high) * 4294967296n + BigInt(low);
}

const float64 = new Float64Array(1);
const float64Bytes = new Uint8Array(float64.buffer);
const float32 = new Float32Array(1);
const float32Bytes = new Uint8Array(float32.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function float64At(b: Uint8Array, o: number): number {
  for (let k = 0; k < 8; k++) float64Bytes[LITTLE_ENDIAN ? 7 - k : k] = b[o + k]!;
  return float64[0]!;
}

function float32At(b: Uint8Array, o: number): number {
  for (let k = 0; k < 4; k++) float32Bytes[LITTLE_ENDIAN ? 3 - k : k] = b[o + k]!;
  return float32[0]!;
}

const float32Bits = new Uint32Array(float32.buffer);

/** The float32 next to `value` (finite, non-zero) away from zero (`step` 1) or towards it (-1). */
function adjacentFloat32(value: number, step: 1 | -1): number {
  float32[0] = value;
  float32Bits[0] = float32Bits[0]! + step;
  const adjacent = float32[0]!;
  // Past the largest float32 the rounding boundary still sits where 2^128 would be.
  return Number.isFinite(adjacent) ? adjacent : Math.sign(value) * 2 ** 128;
}

/**
 * The double nearest the shortest decimal that reads back as this `float4`: what `float4out`
 * prints when `extra_float_digits` > 0, so `1.1f` gives `1.1`, as the text decoder does.
 * PostgreSQL's Ryu is built without STRICTLY_SHORTEST, so a decimal exactly halfway to the
 * next float does not count as reading back, even where round-half-even would allow it.
 */
export function shortestFloat4(value: number): number {
  if (!Number.isFinite(value) || value === 0) return value;
  const away = (value + adjacentFloat32(value, 1)) / 2;
  const toward = (value + adjacentFloat32(value, -1)) / 2;
  const low = Math.min(away, toward);
  const high = Math.max(away, toward);
  // Only at a power of two is the interval lopsided (narrower towards zero).
  float32[0] = value;
  const lopsided = (float32Bits[0]! & 0x7fffff) === 0;
  for (let precision = 1; precision <= 9; precision++) {
    // The nearest decimal with `precision` significant digits.
    const text = value.toExponential(precision - 1);
    const nearest = Number(text);
    const inside = nearest > low && nearest < high;
    if (!inside && !lopsided) continue;
    const e = text.indexOf("e");
    const mantissa = Math.abs(Number(text.slice(0, e).replace(".", "")));
    const exponent = Number(text.slice(e + 1)) - (precision - 1);
    const sign = value < 0 ? "-" : "";
    if (inside) {
      // toExponential rounds an exact tie away from zero; Ryu rounds it to the even digit.
      if (mantissa % 2 === 1) {
        const other = Number(`${sign}${mantissa - 1}e${exponent}`);
        if (other > low && other < high && isDecimalTie(value, precision)) return other;
      }
      return nearest;
    }
    // The nearest decimal missed the narrow side; its neighbour on the wide side may not.
    const step = Math.abs(nearest) < Math.abs(value) ? 1 : -1;
    const neighbour = Number(`${sign}${mantissa + step}e${exponent}`);
    if (neighbour > low && neighbour < high) return neighbour;
  }
  return value;
}

/** True when `value` lies exactly halfway between two decimals of `precision` digits. */
function isDecimalTie(value: number, precision: number): boolean {
  const digits = value.toExponential(20).replace(/^-/, "").replace(".", "");
  if (digits[precision] !== "5") return false;
  for (let i = precision + 1; i < digits.length && digits[i] !== "e"; i++) {
    if (digits[i] !== "0") return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Scalars

function decodeBool(b: Uint8Array): boolean {
  expectLength(b, 1, "bool value");
  return b[0] !== 0;
}

function decodeInt2(b: Uint8Array): number {
  expectLength(b, 2, "int2 value");
  return int16At(b, 0);
}

function decodeInt4(b: Uint8Array): number {
  expectLength(b, 4, "int4 value");
  return int32At(b, 0);
}

function decodeUint32(b: Uint8Array): number {
  expectLength(b, 4, "oid value");
  return uint32At(b, 0);
}

function decodeInt8(b: Uint8Array): bigint {
  expectLength(b, 8, "int8 value");
  return int64At(b, 0);
}

function decodeXid8(b: Uint8Array): bigint {
  expectLength(b, 8, "xid8 value");
  return uint64At(b, 0);
}

function decodeFloat4(b: Uint8Array): number {
  expectLength(b, 4, "float4 value");
  return shortestFloat4(float32At(b, 0));
}

function decodeFloat8(b: Uint8Array): number {
  expectLength(b, 8, "float8 value");
  return float64At(b, 0);
}

function decodeText(b: Uint8Array): string {
  return decodeUtf8(b, 0, b.byteLength);
}

function decodeBytea(b: Uint8Array): Uint8Array {
  return b;
}

/** `"char"`: one byte; `\0` prints as "", bytes ≥ 0x80 as `\ooo` (PostgreSQL 15+ `charout`). */
function decodeChar(b: Uint8Array): string {
  expectLength(b, 1, "char value");
  const c = b[0]!;
  if (c === 0) return "";
  if (c < 0x80) return String.fromCharCode(c);
  return "\\" + (c >> 6) + ((c >> 3) & 7) + (c & 7);
}

/** `jsonb` and `jsonpath`: a version byte (1) then the text. */
function versionedText(what: string): BinaryValueDecoder {
  return (b) => {
    if (b.byteLength < 1) fail(what, 0, "missing version byte");
    if (b[0] !== 1) fail(what, 0, `unsupported version ${b[0]}`);
    return decodeUtf8(b, 1, b.byteLength);
  };
}

const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;

function pad4(n: number): string {
  if (n >= 1000) return "" + n;
  if (n >= 100) return "0" + n;
  if (n >= 10) return "00" + n;
  return "000" + n;
}

/**
 * `numeric`: Int16 ndigits, Int16 weight, UInt16 sign, UInt16 dscale, then ndigits base-10000
 * Int16 digits. Printed like `get_str_from_var`: the scale is kept (`123.4500`).
 */
function decodeNumeric(b: Uint8Array): string {
  const what = "numeric value";
  if (b.byteLength < 8) fail(what, 0, `needs 8 header bytes, got ${b.byteLength}`);
  const ndigits = uint16At(b, 0);
  const weight = int16At(b, 2);
  const sign = uint16At(b, 4);
  const dscale = uint16At(b, 6);
  if (b.byteLength !== 8 + ndigits * 2) {
    fail(what, 0, `${ndigits} digits need ${8 + ndigits * 2} bytes, got ${b.byteLength}`);
  }
  if (sign === NUMERIC_NAN) return "NaN";
  if (sign === NUMERIC_PINF) return "Infinity";
  if (sign === NUMERIC_NINF) return "-Infinity";
  if (sign !== NUMERIC_POS && sign !== NUMERIC_NEG) {
    fail(what, 4, `invalid sign 0x${sign.toString(16)}`);
  }
  if (dscale > 0x3fff) fail(what, 6, `invalid scale ${dscale}`);
  for (let d = 0; d < ndigits; d++) {
    if (uint16At(b, 8 + d * 2) > 9999) fail(what, 8 + d * 2, "invalid digit");
  }
  let out = sign === NUMERIC_NEG ? "-" : "";
  if (weight < 0) {
    out += "0";
  } else {
    for (let d = 0; d <= weight; d++) {
      const digit = d < ndigits ? uint16At(b, 8 + d * 2) : 0;
      out += d === 0 ? "" + digit : pad4(digit);
    }
  }
  if (dscale > 0) {
    let fraction = "";
    for (let d = weight + 1; fraction.length < dscale; d++) {
      fraction += d >= 0 && d < ndigits ? pad4(uint16At(b, 8 + d * 2)) : "0000";
    }
    out += "." + (fraction.length === dscale ? fraction : fraction.slice(0, dscale));
  }
  return out;
}

/** `money`: Int64 in cents (2 fraction digits, `lc_monetary=C`) → `"-1234.56"`. */
function decodeMoney(b: Uint8Array): string {
  expectLength(b, 8, "money value");
  const cents = int64At(b, 0);
  const negative = cents < 0n;
  const digits = (negative ? -cents : cents).toString().padStart(3, "0");
  return (negative ? "-" : "") + digits.slice(0, -2) + "." + digits.slice(-2);
}

function decodeDate(b: Uint8Array): string {
  expectLength(b, 4, "date value");
  const days = int32At(b, 0);
  if (days !== DATE_NOBEGIN && days !== DATE_NOEND && (days < DATE_MIN || days >= DATE_END)) {
    fail("date value", 0, `${days} days is out of range`);
  }
  return formatDate(days);
}

function timestampDecoder(zone: boolean): BinaryValueDecoder {
  const what = zone ? "timestamptz value" : "timestamp value";
  return (b) => {
    expectLength(b, 8, what);
    const high = int32At(b, 0);
    if (high >= -0x100000 && high < 0x100000) {
      // |µs| < 2^52 (within 142 years of 2000): exact as a double, always in range.
      return formatTimestampMicros(high * 4294967296 + uint32At(b, 4), zone);
    }
    const micros = int64At(b, 0);
    if (micros === TIMESTAMP_NOEND) return "infinity";
    if (micros === TIMESTAMP_NOBEGIN) return "-infinity";
    if (micros < TIMESTAMP_MIN || micros >= TIMESTAMP_END) fail(what, 0, "timestamp out of range");
    return formatTimestampMicros(micros, zone);
  };
}

function readTimeOfDay(b: Uint8Array, what: string): number {
  const high = int32At(b, 0);
  const micros = high * 4294967296 + uint32At(b, 4);
  if (high < 0 || micros > USECS_PER_DAY) fail(what, 0, "time out of range");
  return micros;
}

function decodeTime(b: Uint8Array): string {
  expectLength(b, 8, "time value");
  return formatTimeOfDay(readTimeOfDay(b, "time value"));
}

/** `timetz`: Int64 µs, then Int32 zone offset in seconds west of UTC. */
function decodeTimetz(b: Uint8Array): string {
  expectLength(b, 12, "timetz value");
  const micros = readTimeOfDay(b, "timetz value");
  const zone = int32At(b, 8);
  if (zone < -57600 || zone > 57600) fail("timetz value", 8, "time zone displacement out of range");
  return formatTimeOfDay(micros) + formatZone(zone);
}

/** `interval`: Int64 µs, Int32 days, Int32 months. */
function decodeInterval(b: Uint8Array): PgInterval {
  expectLength(b, 16, "interval value");
  return { months: int32At(b, 12), days: int32At(b, 8), microseconds: int64At(b, 0) };
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function decodeUuid(b: Uint8Array): string {
  expectLength(b, 16, "uuid value");
  const hex = b.toHex();
  return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" +
    hex.slice(16, 20) + "-" + hex.slice(20);
}

function macDecoder(length: number, what: string): BinaryValueDecoder {
  return (b) => {
    expectLength(b, length, what);
    let out = HEX[b[0]!]!;
    for (let i = 1; i < length; i++) out += ":" + HEX[b[i]!];
    return out;
  };
}

/** IPv6 text as `pg_inet_net_ntop` writes it: longest zero run (≥ 2 words) as `::`. */
function formatIpv6(b: Uint8Array, offset: number): string {
  const words: number[] = new Array(8);
  for (let i = 0; i < 8; i++) words[i] = uint16At(b, offset + i * 2);
  let bestBase = -1;
  let bestLength = 0;
  let base = -1;
  for (let i = 0; i <= 8; i++) {
    if (i < 8 && words[i] === 0) {
      if (base < 0) base = i;
    } else if (base >= 0) {
      if (i - base > bestLength) {
        bestBase = base;
        bestLength = i - base;
      }
      base = -1;
    }
  }
  if (bestLength < 2) bestBase = -1;
  let out = "";
  for (let i = 0; i < 8; i++) {
    if (bestBase >= 0 && i >= bestBase && i < bestBase + bestLength) {
      if (i === bestBase) out += ":";
      continue;
    }
    if (i !== 0) out += ":";
    // An IPv4-compatible or IPv4-mapped address ends in dotted decimal.
    if (
      i === 6 && bestBase === 0 &&
      (bestLength === 6 || (bestLength === 5 && words[5] === 0xffff))
    ) {
      out += `${b[offset + 12]}.${b[offset + 13]}.${b[offset + 14]}.${b[offset + 15]}`;
      break;
    }
    out += words[i]!.toString(16);
  }
  if (bestBase >= 0 && bestBase + bestLength === 8) out += ":";
  return out;
}

/** `inet`/`cidr`: UInt8 family (2 IPv4, 3 IPv6), UInt8 bits, UInt8 is_cidr, UInt8 nb, bytes. */
function networkDecoder(cidr: boolean): BinaryValueDecoder {
  const what = cidr ? "cidr value" : "inet value";
  return (b) => {
    if (b.byteLength < 4) fail(what, 0, "needs 4 header bytes");
    const family = b[0]!;
    const bits = b[1]!;
    const size = b[3]!;
    const expected = family === 2
      ? 4
      : family === 3
      ? 16
      : fail(what, 0, `invalid family ${family}`);
    if (size !== expected || b.byteLength !== 4 + size) {
      fail(what, 3, `invalid address length ${size}`);
    }
    if (bits > size * 8) fail(what, 1, `invalid prefix length ${bits}`);
    let text: string;
    if (family === 2) {
      text = `${b[4]}.${b[5]}.${b[6]}.${b[7]}`;
      if (bits !== 32) text += "/" + bits;
    } else {
      text = formatIpv6(b, 4);
      if (bits !== 128) text += "/" + bits;
    }
    if (cidr && !text.includes("/")) text += "/" + bits;
    return text;
  };
}

/** `bit`, `varbit`: Int32 bit count, then the bits, most significant first. */
function decodeBits(b: Uint8Array): string {
  const what = "bit value";
  if (b.byteLength < 4) fail(what, 0, "needs 4 header bytes");
  const length = int32At(b, 0);
  if (length < 0 || b.byteLength !== 4 + Math.ceil(length / 8)) {
    fail(what, 0, `${length} bits do not fit ${b.byteLength - 4} bytes`);
  }
  let out = "";
  for (let i = 0; i < length; i++) {
    out += (b[4 + (i >> 3)]! >> (7 - (i & 7))) & 1 ? "1" : "0";
  }
  return out;
}

/** `pg_lsn`: UInt64 → `16/B374D848`. */
function decodeLsn(b: Uint8Array): string {
  expectLength(b, 8, "pg_lsn value");
  return uint32At(b, 0).toString(16).toUpperCase() + "/" +
    uint32At(b, 4).toString(16).toUpperCase();
}

/** `tid`: UInt32 block, UInt16 offset → `(0,1)`. */
function decodeTid(b: Uint8Array): string {
  expectLength(b, 6, "tid value");
  return `(${uint32At(b, 0)},${uint16At(b, 4)})`;
}

/** `pg_snapshot`, `txid_snapshot`: Int32 nxip, UInt64 xmin, xmax, nxip × UInt64 → `10:20:12,15`. */
function decodeSnapshot(b: Uint8Array): string {
  const what = "pg_snapshot value";
  if (b.byteLength < 20) fail(what, 0, "needs 20 header bytes");
  const count = int32At(b, 0);
  if (count < 0 || b.byteLength !== 20 + count * 8) fail(what, 0, `invalid xip count ${count}`);
  let out = `${uint64At(b, 4)}:${uint64At(b, 12)}:`;
  for (let i = 0; i < count; i++) out += (i > 0 ? "," : "") + uint64At(b, 20 + i * 8);
  return out;
}

function decodeRegType(b: Uint8Array): number {
  expectLength(b, 4, "oid value");
  return uint32At(b, 0);
}

// Geometry: IEEE float8, big-endian.

function decodePoint(b: Uint8Array): Point {
  expectLength(b, 16, "point value");
  return { x: float64At(b, 0), y: float64At(b, 8) };
}

function decodeLine(b: Uint8Array): Line {
  expectLength(b, 24, "line value");
  return { a: float64At(b, 0), b: float64At(b, 8), c: float64At(b, 16) };
}

function decodeLseg(b: Uint8Array): LineSegment {
  expectLength(b, 32, "lseg value");
  return [{ x: float64At(b, 0), y: float64At(b, 8) }, { x: float64At(b, 16), y: float64At(b, 24) }];
}

function decodeBox(b: Uint8Array): Box {
  expectLength(b, 32, "box value");
  return [{ x: float64At(b, 0), y: float64At(b, 8) }, { x: float64At(b, 16), y: float64At(b, 24) }];
}

function readPoints(b: Uint8Array, offset: number, what: string): Point[] {
  const count = int32At(b, offset);
  if (count < 0 || b.byteLength !== offset + 4 + count * 16) {
    fail(what, offset, `invalid point count ${count}`);
  }
  const points: Point[] = new Array(count);
  for (let i = 0, o = offset + 4; i < count; i++, o += 16) {
    points[i] = { x: float64At(b, o), y: float64At(b, o + 8) };
  }
  return points;
}

/** `path`: UInt8 closed, Int32 npts, points. */
function decodePath(b: Uint8Array): Path {
  if (b.byteLength < 5) fail("path value", 0, "needs 5 header bytes");
  return { closed: b[0] !== 0, points: readPoints(b, 1, "path value") };
}

/** `polygon`: Int32 npts, points. */
function decodePolygon(b: Uint8Array): Point[] {
  if (b.byteLength < 4) fail("polygon value", 0, "needs 4 header bytes");
  return readPoints(b, 0, "polygon value");
}

function decodeCircle(b: Uint8Array): Circle {
  expectLength(b, 24, "circle value");
  return { center: { x: float64At(b, 0), y: float64At(b, 8) }, radius: float64At(b, 16) };
}

// Text search.

function quoteLexeme(lexeme: string): string {
  let out = "'";
  for (const c of lexeme) out += c === "'" ? "''" : c === "\\" ? "\\\\" : c;
  return out + "'";
}

const WEIGHT_LETTERS = ["", "C", "B", "A"];

/**
 * `tsvector`: Int32 count, then per lexeme a NUL-terminated string, UInt16 npos and npos ×
 * UInt16 (weight in the top 2 bits, position in the low 14) → `tsvectorout` text.
 */
function decodeTsvector(b: Uint8Array): string {
  const r = reader(b, "tsvector value");
  const count = r.int32("lexeme count");
  if (count < 0 || count > r.remaining / 3) r.fail(`invalid lexeme count ${count}`);
  let out = "";
  for (let i = 0; i < count; i++) {
    if (i > 0) out += " ";
    out += quoteLexeme(r.cstring("lexeme"));
    const positions = r.int16("position count") & 0xffff;
    if (positions > 0) out += ":";
    for (let p = 0; p < positions; p++) {
      const entry = r.int16("position") & 0xffff;
      out += (p > 0 ? "," : "") + (entry & 0x3fff) + WEIGHT_LETTERS[entry >> 14];
    }
  }
  r.expectEnd();
  return out;
}

const QI_VAL = 1;
const QI_OPR = 2;
const OP_NOT = 1;
const OP_AND = 2;
const OP_OR = 3;
const OP_PHRASE = 4;
const OPERATOR_PRIORITY = [0, 4, 2, 1, 3]; // by operator code: NOT, AND, OR, PHRASE

type QueryItem =
  | { type: typeof QI_VAL; weight: number; prefix: boolean; operand: string }
  | { type: typeof QI_OPR; operator: number; distance: number };

/**
 * `tsquery`: UInt32 item count, then items in prefix order — an operand is UInt8 1, UInt8
 * weight bits, UInt8 prefix flag, NUL-terminated text; an operator is UInt8 2, UInt8 code
 * (1 NOT, 2 AND, 3 OR, 4 PHRASE) and for PHRASE an Int16 distance. Printed in infix like
 * `tsqueryout`: `!'a' | 'b' <2> 'c':*AB`, `( 'a' | 'b' ) & 'c'`.
 */
function decodeTsquery(b: Uint8Array): string {
  const what = "tsquery value";
  const r = reader(b, what);
  const size = r.int32("item count");
  if (size < 0 || size > r.remaining / 2) r.fail(`invalid item count ${size}`);
  const items: QueryItem[] = new Array(size);
  for (let i = 0; i < size; i++) {
    const type = r.uint8("item type");
    if (type === QI_VAL) {
      const weight = r.uint8("weight");
      if (weight > 0xf) r.fail(`invalid weight bits ${weight}`);
      const prefix = r.uint8("prefix") !== 0;
      items[i] = { type, weight, prefix, operand: r.cstring("operand") };
    } else if (type === QI_OPR) {
      const operator = r.uint8("operator");
      if (operator < OP_NOT || operator > OP_PHRASE) r.fail(`invalid operator ${operator}`);
      const distance = operator === OP_PHRASE ? r.int16("distance") : 0;
      items[i] = { type, operator, distance };
    } else {
      r.fail(`invalid item type ${type}`);
    }
  }
  r.expectEnd();
  if (size === 0) return "";
  let position = 0;
  const infix = (parentPriority: number, rightOfPhrase: boolean, depth: number): string => {
    const item = items[position];
    if (item === undefined) fail(what, 0, "malformed tsquery: operand not found");
    if (depth > 1000) fail(what, 0, "tsquery nested too deeply");
    position++;
    if (item.type === QI_VAL) {
      let text = quoteLexeme(item.operand);
      if (item.weight !== 0 || item.prefix) {
        text += ":" + (item.prefix ? "*" : "") + (item.weight & 8 ? "A" : "") +
          (item.weight & 4 ? "B" : "") + (item.weight & 2 ? "C" : "") +
          (item.weight & 1 ? "D" : "");
      }
      return text;
    }
    const priority = OPERATOR_PRIORITY[item.operator]!;
    if (item.operator === OP_NOT) {
      const text = "!" + infix(priority, false, depth + 1);
      return priority < parentPriority ? "( " + text + " )" : text;
    }
    const parenthesize = priority < parentPriority ||
      (item.operator === OP_PHRASE && rightOfPhrase);
    const right = infix(priority, item.operator === OP_PHRASE, depth + 1);
    const left = infix(priority, false, depth + 1);
    const operator = item.operator === OP_OR
      ? " | "
      : item.operator === OP_AND
      ? " & "
      : item.distance === 1
      ? " <-> "
      : ` <${item.distance}> `;
    const text = left + operator + right;
    return parenthesize ? "( " + text + " )" : text;
  };
  const text = infix(-1, false, 0);
  if (position !== size) fail(what, 0, "malformed tsquery: extra nodes");
  return text;
}

// ---------------------------------------------------------------------------------------------
// Containers

/**
 * Reads one element straight from the array's bytes (no subarray per element): the fast path
 * for arrays of common scalars. Throws DecodeError like the element's own decoder.
 */
export type ElementReader = (bytes: Uint8Array, start: number, length: number) => PgValue;

function fixedReader(
  size: number,
  what: string,
  read: (b: Uint8Array, o: number) => PgValue,
): ElementReader {
  return (b, start, length) => {
    if (length !== size) fail(what, start, `expected ${size} bytes, got ${length}`);
    return read(b, start);
  };
}

const readText: ElementReader = (b, start, length) => decodeUtf8(b, start, start + length);

/** Element readers of the built-in types whose arrays are common, keyed by element OID. */
export const ELEMENT_READERS: ReadonlyMap<number, ElementReader> = new Map<number, ElementReader>([
  [Oid.bool, fixedReader(1, "bool value", (b, o) => b[o] !== 0)],
  [Oid.int2, fixedReader(2, "int2 value", int16At)],
  [Oid.int4, fixedReader(4, "int4 value", int32At)],
  [Oid.int8, fixedReader(8, "int8 value", int64At)],
  [Oid.oid, fixedReader(4, "oid value", uint32At)],
  [Oid.float8, fixedReader(8, "float8 value", float64At)],
  [Oid.text, readText],
  [Oid.varchar, readText],
  [Oid.bpchar, readText],
  [Oid.name, readText],
]);

/**
 * Array: Int32 ndim, Int32 has-nulls flag, UInt32 element OID, ndim × (Int32 size, Int32 lower
 * bound), then each element as Int32 length (-1 for NULL) and bytes. Elements decode with
 * `element` whatever OID the header names (the registry already resolved the element type), or
 * with `reader` when given (same values, fewer allocations).
 */
export function decodeArrayBinary(
  bytes: Uint8Array,
  element: BinaryValueDecoder,
  what: string,
  reader?: ElementReader,
): PgValue[] | PgArrayWithBounds {
  const end = bytes.byteLength;
  if (end < 12) fail(what, 0, `needs 12 header bytes, got ${end}`);
  const ndim = int32At(bytes, 0);
  if (ndim < 0 || ndim > 6) fail(what, 0, `invalid number of dimensions ${ndim}`);
  const hasNulls = int32At(bytes, 4);
  if (hasNulls !== 0 && hasNulls !== 1) fail(what, 4, `invalid has-nulls flag ${hasNulls}`);
  let offset = 12 + ndim * 8;
  if (offset > end) fail(what, 12, `${ndim} dimensions need ${offset} header bytes, got ${end}`);
  if (ndim === 0) {
    if (end !== 12) fail(what, 12, `${end - 12} unexpected trailing bytes`);
    return [];
  }
  const sizes: number[] = new Array(ndim);
  const lowerBounds: number[] = new Array(ndim);
  let total = 1;
  let plainBounds = true;
  for (let d = 0; d < ndim; d++) {
    const size = int32At(bytes, 12 + d * 8);
    const lower = int32At(bytes, 16 + d * 8);
    if (size < 0) fail(what, 12 + d * 8, `negative dimension size ${size}`);
    sizes[d] = size;
    lowerBounds[d] = lower;
    if (lower !== 1) plainBounds = false;
    total *= size;
  }
  // Each element takes at least its 4-byte length.
  if (total > (end - offset) / 4) {
    fail(what, offset, `${total} elements cannot fit in ${end - offset} bytes`);
  }
  if (total === 0) {
    if (offset !== end) fail(what, offset, `${end - offset} unexpected trailing bytes`);
    return [];
  }
  const readElement = (): PgValue => {
    if (offset + 4 > end) fail(what, offset, "needs 4 bytes for an element length");
    const length = int32At(bytes, offset);
    offset += 4;
    if (length === -1) return null;
    if (length < 0 || length > end - offset) {
      fail(what, offset - 4, `element length ${length} exceeds the ${end - offset} bytes left`);
    }
    const start = offset;
    offset += length;
    return reader ? reader(bytes, start, length) : element(bytes.subarray(start, start + length));
  };
  const level = (d: number): PgValue[] => {
    const size = sizes[d]!;
    const out: PgValue[] = new Array(size);
    if (d + 1 < ndim) {
      for (let k = 0; k < size; k++) out[k] = level(d + 1);
    } else {
      for (let k = 0; k < size; k++) out[k] = readElement();
    }
    return out;
  };
  const values = level(0);
  if (offset !== end) fail(what, offset, `${end - offset} unexpected trailing bytes`);
  return plainBounds ? values : { lowerBounds, values };
}

const RANGE_EMPTY = 0x01;
const RANGE_LB_INC = 0x02;
const RANGE_UB_INC = 0x04;
const RANGE_LB_INF = 0x08;
const RANGE_UB_INF = 0x10;
const RANGE_LB_NULL = 0x20;
const RANGE_UB_NULL = 0x40;

function readRange(r: BufferReader, subtype: BinaryValueDecoder): PgRange {
  const flags = r.uint8("range flags");
  if (flags & RANGE_EMPTY) {
    return { empty: true, lower: null, upper: null, lowerInclusive: false, upperInclusive: false };
  }
  const hasLower = (flags & (RANGE_LB_INF | RANGE_LB_NULL)) === 0;
  const hasUpper = (flags & (RANGE_UB_INF | RANGE_UB_NULL)) === 0;
  const lower = hasLower ? subtype(r.bytes(r.int32("bound length"), "lower bound")) : null;
  const upper = hasUpper ? subtype(r.bytes(r.int32("bound length"), "upper bound")) : null;
  return {
    empty: false,
    lower,
    upper,
    lowerInclusive: hasLower && (flags & RANGE_LB_INC) !== 0,
    upperInclusive: hasUpper && (flags & RANGE_UB_INC) !== 0,
  };
}

/**
 * Range: UInt8 flags (0x01 empty, 0x02 lower inclusive, 0x04 upper inclusive, 0x08/0x20 no
 * lower bound, 0x10/0x40 no upper bound), then Int32 length and bytes of each present bound.
 */
export function decodeRangeBinary(
  bytes: Uint8Array,
  subtype: BinaryValueDecoder,
  what: string,
): PgRange {
  const r = reader(bytes, what);
  const range = readRange(r, subtype);
  r.expectEnd();
  return range;
}

/** Multirange: Int32 count, then each range as Int32 length and range bytes. */
export function decodeMultirangeBinary(
  bytes: Uint8Array,
  subtype: BinaryValueDecoder,
  what: string,
): PgRange[] {
  const r = reader(bytes, what);
  const count = r.int32("range count");
  if (count < 0 || count > r.remaining / 5) r.fail(`invalid range count ${count}`);
  const ranges: PgRange[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const length = r.int32("range length");
    const inner = reader(r.bytes(length, "range"), what);
    ranges[i] = readRange(inner, subtype);
    inner.expectEnd();
  }
  r.expectEnd();
  return ranges;
}

/**
 * Composite: Int32 column count, then per column UInt32 type OID, Int32 length (-1 NULL) and
 * bytes. `names[k]`/`fields[k]` describe the k-th (non-dropped) field; when `oids` is given, a
 * column whose type OID differs (the type was altered since it was registered) is an error
 * rather than a value decoded with the wrong decoder.
 */
export function decodeCompositeBinary(
  bytes: Uint8Array,
  names: readonly string[],
  fields: readonly BinaryValueDecoder[],
  what: string,
  oids?: readonly number[],
): PgComposite {
  const r = reader(bytes, what);
  const count = r.int32("column count");
  if (count !== fields.length) {
    r.fail(`${count} columns, expected ${fields.length}; reload the type from the catalog`, 0);
  }
  const out: PgComposite = {};
  for (let k = 0; k < count; k++) {
    const oid = r.uint32("column type OID");
    if (oids !== undefined && oid !== oids[k]) {
      r.fail(
        `field "${names[k]}" has type OID ${oid}, expected ${
          oids[k]
        }; reload the type from the catalog`,
        r.offset - 4,
      );
    }
    const length = r.int32("column length");
    setField(out, names[k]!, length === -1 ? null : fields[k]!(r.bytes(length, "column")));
  }
  r.expectEnd();
  return out;
}

/**
 * An anonymous `record`: like a composite, but field types come from the OIDs on the wire and
 * fields are named `f1`, `f2`, … as PostgreSQL names them.
 */
export function decodeRecordBinary(
  bytes: Uint8Array,
  decoderFor: (oid: number) => BinaryValueDecoder,
  what: string,
): PgComposite {
  const r = reader(bytes, what);
  const count = r.int32("column count");
  if (count < 0 || count > r.remaining / 8) r.fail(`invalid column count ${count}`, 0);
  const out: PgComposite = {};
  for (let k = 0; k < count; k++) {
    const oid = r.uint32("column type OID");
    const length = r.int32("column length");
    out[`f${k + 1}`] = length === -1 ? null : decoderFor(oid)(r.bytes(length, "column"));
  }
  r.expectEnd();
  return out;
}

/** `int2vector` and `oidvector` are one-dimensional arrays on the wire. */
function vectorDecoder(element: BinaryValueDecoder, what: string): BinaryValueDecoder {
  return (b) => {
    const value = decodeArrayBinary(b, element, what);
    return Array.isArray(value) ? value : value.values;
  };
}

// ---------------------------------------------------------------------------------------------
// The table

/** Binary decoders of the built-in scalar types, keyed by OID. */
export const BINARY_DECODERS: ReadonlyMap<number, BinaryValueDecoder> = new Map<
  number,
  BinaryValueDecoder
>([
  [Oid.bool, decodeBool],
  [Oid.bytea, decodeBytea],
  [Oid.char, decodeChar],
  [Oid.name, decodeText],
  [Oid.int8, decodeInt8],
  [Oid.int2, decodeInt2],
  [Oid.int2vector, vectorDecoder(decodeInt2, "int2vector value")],
  [Oid.int4, decodeInt4],
  [Oid.text, decodeText],
  [Oid.oid, decodeUint32],
  [Oid.tid, decodeTid],
  [Oid.xid, decodeUint32],
  [Oid.cid, decodeUint32],
  [Oid.oidvector, vectorDecoder(decodeUint32, "oidvector value")],
  [Oid.json, decodeText],
  [Oid.xml, decodeText],
  [Oid.point, decodePoint],
  [Oid.lseg, decodeLseg],
  [Oid.path, decodePath],
  [Oid.box, decodeBox],
  [Oid.polygon, decodePolygon],
  [Oid.line, decodeLine],
  [Oid.cidr, networkDecoder(true)],
  [Oid.float4, decodeFloat4],
  [Oid.float8, decodeFloat8],
  [Oid.unknown, decodeText],
  [Oid.circle, decodeCircle],
  [Oid.macaddr8, macDecoder(8, "macaddr8 value")],
  [Oid.money, decodeMoney],
  [Oid.macaddr, macDecoder(6, "macaddr value")],
  [Oid.inet, networkDecoder(false)],
  [Oid.bpchar, decodeText],
  [Oid.varchar, decodeText],
  [Oid.date, decodeDate],
  [Oid.time, decodeTime],
  [Oid.timestamp, timestampDecoder(false)],
  [Oid.timestamptz, timestampDecoder(true)],
  [Oid.interval, decodeInterval],
  [Oid.timetz, decodeTimetz],
  [Oid.bit, decodeBits],
  [Oid.varbit, decodeBits],
  [Oid.numeric, decodeNumeric],
  [Oid.refcursor, decodeText],
  [Oid.regproc, decodeRegType],
  [Oid.regprocedure, decodeRegType],
  [Oid.regoper, decodeRegType],
  [Oid.regoperator, decodeRegType],
  [Oid.regclass, decodeRegType],
  [Oid.regtype, decodeRegType],
  [Oid.regconfig, decodeRegType],
  [Oid.regdictionary, decodeRegType],
  [Oid.regnamespace, decodeRegType],
  [Oid.regrole, decodeRegType],
  [Oid.regcollation, decodeRegType],
  [Oid.uuid, decodeUuid],
  [Oid.txid_snapshot, decodeSnapshot],
  [Oid.pg_snapshot, decodeSnapshot],
  [Oid.pg_lsn, decodeLsn],
  [Oid.tsvector, decodeTsvector],
  [Oid.tsquery, decodeTsquery],
  [Oid.jsonb, versionedText("jsonb value")],
  [Oid.jsonpath, versionedText("jsonpath value")],
  [Oid.xid8, decodeXid8],
]);
