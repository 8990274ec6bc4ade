/**
 * Turns decoded values into JSON-safe values, per column type, with options mirroring
 * Debezium's PostgreSQL connector (`decimal.handling.mode`, `time.precision.mode`,
 * `interval.handling.mode`, `binary.handling.mode`). See `README.md` in this folder for the
 * table of what each type becomes.
 *
 * `int8` stays exact: a number when it is a safe integer, else `JSON.rawJSON(digits)`, which
 * `JSON.stringify` writes as a plain number. Non-finite floats become the strings `"NaN"`, `"Infinity"`,
 * `"-Infinity"`; `-0` stays `-0`.
 *
 * @module
 */

import {
  epochDaysFromCivil,
  formatFraction,
  parseDateTimeText,
  type ParsedDateTime,
  parseTimeText,
  parseTimetzText,
  USECS_PER_DAY,
} from "./_datetime.ts";
import { Oid } from "./oids.ts";
import { TypeRegistry } from "./registry.ts";
import { type PgInterval, type PgRange, type PgValue, type Point, setField } from "./values.ts";

/** What `JSON.rawJSON` returns: written verbatim by `JSON.stringify`. */
export interface RawJson {
  readonly rawJSON: string;
}

/** A value `JSON.stringify` can write without loss. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | RawJson
  | JsonValue[]
  | { [key: string]: JsonValue };

/** How values are rendered; each option mirrors the Debezium setting of the same idea. */
export interface JsonOptions {
  /**
   * `numeric` and `money`. `string`: PostgreSQL's text (`"123.4500"`, `"NaN"`). `double`: a
   * JSON number (`NaN`/`±Infinity` as strings). `precise`: Kafka Connect `Decimal` as its JSON
   * converter writes it — base64 of the unscaled value (big-endian two's complement) at the
   * column's scale, or for `numeric` without a declared scale Debezium's `VariableScaleDecimal`
   * `{ scale, value }` (trailing zeros stripped). `NaN`/`±Infinity` stay strings (Debezium
   * fails the connector there).
   */
  decimalHandling?: "precise" | "string" | "double";
  /**
   * `date`, `time`, `timestamp`, `timestamptz`, `timetz`. `isostring`: ISO-8601 strings
   * (`2024-02-29`, `13:45:00.5`, `2024-02-29T13:45:00.5`, `…Z`, `13:45:00+02:00`). The others
   * are Debezium's: `date` → days since 1970-01-01; `time(p≤3)` → ms of the day, else µs
   * (`adaptive_time_microseconds`: always µs; `connect`: always ms); `timestamp(p≤3)` → ms
   * since the epoch, else µs (`connect`: always ms); `timestamptz` → `ZonedTimestamp` string
   * in UTC with exactly p fraction digits (6 when undeclared); `timetz` → `ZonedTime` string
   * in UTC.
   */
  timePrecision?: "adaptive" | "adaptive_time_microseconds" | "connect" | "isostring";
  /**
   * `interval`. `string`: Debezium's ISO-8601 form `P1Y2M3DT4H5M6.5S` (every field written).
   * `numeric`: Debezium's `MicroDuration`, µs with months of 365.25 / 12 = 30.4375 days.
   */
  intervalHandling?: "numeric" | "string";
  /** `bytea` (and unknown binary values). `bytes` is base64, as Kafka's JSON converter writes
   * Connect bytes; `base64` is the same; `hex` is lower-case hex. */
  binaryHandling?: "bytes" | "base64" | "hex";
  /** `bit`/`varbit`. `string`: `"0101"`. `bytes`: Debezium — `bit(1)` a boolean, else the
   * bits as a little-endian byte array (`io.debezium.data.Bits`), base64. */
  bitHandling?: "string" | "bytes";
  /** `point`. `object`: `{ x, y }`. `debezium`: `io.debezium.data.geometry.Point`
   * `{ x, y, wkb, srid: null }` with `wkb` the little-endian WKB point, base64. */
  geometryHandling?: "object" | "debezium";
  /** Ranges and multiranges. `object`: `{ empty, lower, upper, lowerInclusive,
   * upperInclusive }` with converted bounds. `string`: PostgreSQL's text, as Debezium emits. */
  rangeHandling?: "object" | "string";
}

/** Spillway's own JSON: lossless, readable strings for decimals, times and intervals. */
export const SPILLWAY_DEFAULTS: Readonly<Required<JsonOptions>> = Object.freeze({
  decimalHandling: "string",
  timePrecision: "isostring",
  intervalHandling: "string",
  binaryHandling: "base64",
  bitHandling: "string",
  geometryHandling: "object",
  rangeHandling: "object",
});

/** Debezium 3.x's PostgreSQL connector defaults, with its JSON converter. */
export const DEBEZIUM_DEFAULTS: Readonly<Required<JsonOptions>> = Object.freeze({
  decimalHandling: "precise",
  timePrecision: "adaptive",
  intervalHandling: "numeric",
  binaryHandling: "bytes",
  bitHandling: "bytes",
  geometryHandling: "debezium",
  rangeHandling: "string",
});

/** Converts one decoded value of a column's type. */
export type JsonEncoder = (value: PgValue) => JsonValue;

/** A column's type for {@linkcode toJsonValue}. */
export interface JsonType {
  oid: number;
  /** `atttypmod` (scale of `numeric(p,s)`, precision of `time(p)`, length of `bit(n)`). */
  typeModifier?: number;
  /** Needed for catalog types (enums, domains, composites, …); built-ins work without. */
  registry?: TypeRegistry;
}

const rawJson = (text: string): RawJson =>
  (JSON as unknown as { rawJSON(text: string): RawJson }).rawJSON(text);

const builtins = new TypeRegistry();
const caches = new WeakMap<
  TypeRegistry,
  { generation: number; encoders: Map<string, JsonEncoder> }
>();

/**
 * Converts a decoded value to a JSON-safe value for its column type. Convenience over
 * {@linkcode jsonEncoder}, with a cache per registry.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEBEZIUM_DEFAULTS, toJsonValue } from "./json.ts";
 * assert.equal(JSON.stringify(toJsonValue(9007199254740993n, 20)), "9007199254740993");
 * assert.equal(toJsonValue("2024-02-29 13:45:00.5+00", 1184), "2024-02-29T13:45:00.5Z");
 * assert.equal(toJsonValue("1970-01-02", 1082, DEBEZIUM_DEFAULTS), 1);
 * ```
 */
export function toJsonValue(
  value: PgValue,
  type: number | JsonType,
  options: JsonOptions = {},
): JsonValue {
  const ref = typeof type === "number" ? { oid: type } : type;
  const registry = ref.registry ?? builtins;
  let cache = caches.get(registry);
  if (cache === undefined || cache.generation !== registry.generation) {
    cache = { generation: registry.generation, encoders: new Map() };
    caches.set(registry, cache);
  }
  const typmod = ref.typeModifier ?? -1;
  const key = `${ref.oid}:${typmod}:${optionsKey(options)}`;
  let encoder = cache.encoders.get(key);
  if (encoder === undefined) {
    encoder = jsonEncoder(ref.oid, typmod, options, registry);
    cache.encoders.set(key, encoder);
  }
  return encoder(value);
}

function optionsKey(options: JsonOptions): string {
  const o = { ...SPILLWAY_DEFAULTS, ...options };
  return `${o.decimalHandling},${o.timePrecision},${o.intervalHandling},${o.binaryHandling},${o.bitHandling},${o.geometryHandling},${o.rangeHandling}`;
}

/**
 * Builds the converter for one column type, for the hot path: build it once per relation
 * column, call it per row.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEBEZIUM_DEFAULTS, jsonEncoder } from "./json.ts";
 * const numeric10_2 = (10 << 16 | 2) + 4;
 * const encode = jsonEncoder(1700, numeric10_2, DEBEZIUM_DEFAULTS);
 * assert.equal(encode("12.50"), "BOI="); // unscaled 1250, big-endian two's complement
 * ```
 */
export function jsonEncoder(
  oid: number,
  typeModifier: number,
  options: JsonOptions = {},
  registry: TypeRegistry = builtins,
): JsonEncoder {
  return new Builder({ ...SPILLWAY_DEFAULTS, ...options }, registry).build(oid, typeModifier, 0);
}

// ---------------------------------------------------------------------------------------------
// Scalars

function encodeFloat(value: number): JsonValue {
  if (Number.isFinite(value)) return Object.is(value, -0) ? rawJson("-0") : value;
  return Number.isNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
}

function encodeBigint(value: bigint): RawJson {
  return rawJson(value.toString());
}

/**
 * A number, or a raw JSON integer when it is beyond 2^53: the same JSON text as
 * `rawJSON(digits)`, and cheaper (`JSON.rawJSON` parses its argument).
 */
function encodeInteger(value: bigint): JsonValue {
  return value >= -9007199254740991n && value <= 9007199254740991n
    ? Number(value)
    : encodeBigint(value);
}

const SMALL = 2n ** 47n;

/**
 * Minimal big-endian two's complement, as Java's `BigInteger.toByteArray()`: the fewest bytes
 * that hold the value and its sign bit.
 */
export function twosComplement(value: bigint): Uint8Array {
  // Most decimals' unscaled values: in doubles, exactly (below 2^48), without strings.
  if (value >= -SMALL && value < SMALL) {
    return SCRATCH.slice(0, smallTwosComplement(Number(value)));
  }
  const magnitude = value < 0n ? -value - 1n : value;
  const bits = magnitude === 0n ? 0 : magnitude.toString(2).length;
  const bytes = Math.floor(bits / 8) + 1;
  return Uint8Array.fromHex(BigInt.asUintN(bytes * 8, value).toString(16).padStart(bytes * 2, "0"));
}

/** The sign bit of a two's complement of n bytes: 2^(8n - 1), for n = 0..6. */
const SIGN_BITS = [0.5, 2 ** 7, 2 ** 15, 2 ** 23, 2 ** 31, 2 ** 39, 2 ** 47];

/** Where {@linkcode smallTwosComplement} writes: reused, so a decimal allocates no buffer. */
const SCRATCH = new Uint8Array(6);

/**
 * {@linkcode twosComplement} of an integer in [-2^47, 2^47), computed in doubles, into
 * {@linkcode SCRATCH}; returns how many bytes it took.
 */
function smallTwosComplement(number: number): number {
  let bytes = 1;
  while (number < -SIGN_BITS[bytes]! || number >= SIGN_BITS[bytes]!) bytes++;
  let rest = number < 0 ? number + SIGN_BITS[bytes]! * 2 : number;
  for (let i = bytes - 1; i >= 0; i--) {
    SCRATCH[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  return bytes;
}

const BASE64_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/**
 * Base64 (with padding) of {@linkcode twosComplement} of an integer in [-2^47, 2^47): at most
 * 8 characters, made without a buffer (`Uint8Array.toBase64` needs one allocated per value).
 */
function smallTwosComplementBase64(number: number): string {
  const length = smallTwosComplement(number);
  const digits = BASE64_DIGITS;
  let out = "";
  let i = 0;
  for (; i + 3 <= length; i += 3) {
    const n = (SCRATCH[i]! << 16) | (SCRATCH[i + 1]! << 8) | SCRATCH[i + 2]!;
    out += digits[n >> 18]! + digits[(n >> 12) & 63]! + digits[(n >> 6) & 63]! + digits[n & 63]!;
  }
  if (i + 1 === length) {
    const n = SCRATCH[i]! << 16;
    out += digits[n >> 18]! + digits[(n >> 12) & 63]! + "==";
  } else if (i + 2 === length) {
    const n = (SCRATCH[i]! << 16) | (SCRATCH[i + 1]! << 8);
    out += digits[n >> 18]! + digits[(n >> 12) & 63]! + digits[(n >> 6) & 63]! + "=";
  }
  return out;
}

/**
 * The unscaled value of PostgreSQL numeric text that has exactly `scale` fraction digits and
 * at most 14 digits in all (exact in a double, below 2^47): what a `numeric(p,s)` column
 * prints; `null` for anything else (the general path handles it).
 */
function smallUnscaled(text: string, scale: number): number | null {
  const length = text.length;
  if (length > 17 || length === 0) return null;
  const dot = text.indexOf(".");
  if (dot < 0 ? scale !== 0 : length - dot - 1 !== scale) return null;
  let value = 0;
  let digits = 0;
  for (let i = text.charCodeAt(0) === 0x2d ? 1 : 0; i < length; i++) {
    if (i === dot) continue;
    const digit = text.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return null;
    value = value * 10 + digit;
    digits++;
  }
  if (digits === 0 || digits > 14) return null;
  return text.charCodeAt(0) === 0x2d ? -value : value;
}

/** Splits PostgreSQL numeric text into unscaled digits and scale; null for NaN/±Infinity. */
function parseDecimal(text: string): { unscaled: bigint; scale: number } | null {
  const c = text.charCodeAt(text.length - 1);
  if (c < 48 || c > 57) return null;
  const dot = text.indexOf(".");
  if (dot < 0) return { unscaled: BigInt(text), scale: 0 };
  return {
    unscaled: BigInt(text.slice(0, dot) + text.slice(dot + 1)),
    scale: text.length - dot - 1,
  };
}

function rescale(unscaled: bigint, from: number, to: number): bigint {
  if (to >= from) return unscaled * 10n ** BigInt(to - from);
  const divisor = 10n ** BigInt(from - to);
  // Half away from zero, as BigDecimal.setScale(…, HALF_UP).
  const half = divisor / 2n;
  return unscaled >= 0n ? (unscaled + half) / divisor : (unscaled - half) / divisor;
}

/** Scale declared by a `numeric(p,s)` type modifier (negative scales are PostgreSQL 15+). */
function numericScale(typmod: number): number | null {
  if (typmod < 4) return null;
  const raw = (typmod - 4) & 0x7ff;
  return raw >= 1024 ? raw - 2048 : raw;
}

function isoYear(year: number): string {
  if (year > 9999) return "+" + year;
  if (year < 0) return "-" + String(-year).padStart(4, "0");
  return String(year).padStart(4, "0");
}

function pad2(n: number): string {
  return n < 10 ? "0" + n : "" + n;
}

function isoTime(micros: number, fractionDigits: number | null): string {
  const seconds = Math.floor(micros / 1_000_000);
  const fraction = micros - seconds * 1_000_000;
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor(seconds / 60) % 60;
  let text = pad2(hours) + ":" + pad2(minutes) + ":" + pad2(seconds % 60);
  if (fractionDigits === null) text += formatFraction(fraction);
  else if (fractionDigits > 0) {
    text += "." + String(fraction).padStart(6, "0").padEnd(9, "0").slice(0, fractionDigits);
  }
  return text;
}

function isoOffset(offsetSeconds: number): string {
  if (offsetSeconds === 0) return "Z";
  const abs = Math.abs(offsetSeconds);
  const text = (offsetSeconds < 0 ? "-" : "+") + pad2(Math.floor(abs / 3600)) + ":" +
    pad2(Math.floor(abs / 60) % 60);
  return abs % 60 === 0 ? text : text + ":" + pad2(abs % 60);
}

/** Epoch µs (UTC) of a parsed timestamp; the zone offset is taken out. */
function epochMicros(parsed: ParsedDateTime): bigint {
  const days = epochDaysFromCivil(parsed.year, parsed.month, parsed.day);
  const micros = parsed.microsOfDay - parsed.offsetSeconds * 1_000_000;
  const total = days * USECS_PER_DAY + micros;
  return Number.isSafeInteger(total)
    ? BigInt(total)
    : BigInt(days) * BigInt(USECS_PER_DAY) + BigInt(micros);
}

function floorDiv(value: bigint, divisor: bigint): bigint {
  const q = value / divisor;
  return value % divisor < 0n ? q - 1n : q;
}

/** Debezium's values for ±infinity timestamps (pgjdbc's `PGStatement.DATE_*_INFINITY`, read as µs). */
const INFINITY_MICROS = 9223372036825200000n;
const NEG_INFINITY_MICROS = -9223372036832400000n;

function utcIso(parsed: ParsedDateTime, zone: boolean, fractionDigits: number | null): string {
  let { year, month, day } = parsed;
  let micros = parsed.microsOfDay;
  if (zone && parsed.offsetSeconds !== 0) {
    const total = epochMicros(parsed);
    const days = Number(floorDiv(total, BigInt(USECS_PER_DAY)));
    micros = Number(total - BigInt(days) * BigInt(USECS_PER_DAY));
    const date = civilFromEpochDays(days);
    year = date[0];
    month = date[1];
    day = date[2];
  }
  return `${isoYear(year)}-${pad2(month)}-${pad2(day)}T${isoTime(micros, fractionDigits)}` +
    (zone ? "Z" : "");
}

/**
 * The common case of PostgreSQL's ISO output, `YYYY-MM-DD HH:MM:SS[.ffffff]`, checked
 * character by character; its ISO-8601 form only swaps the space for `T`. `null` for anything
 * else (BC, years past 9999, other layouts), which takes the full parse.
 */
function isoFromLocalText(text: string): string | null {
  return isPlainDateTime(text, text.length) ? `${text.slice(0, 10)}T${text.slice(11)}` : null;
}

/** {@linkcode isoFromLocalText} for `timestamptz` text in UTC (`…+00`), ending in `Z`. */
function isoFromUtcText(text: string): string | null {
  const end = utcTextEnd(text);
  return end < 0 ? null : `${text.slice(0, 10)}T${text.slice(11, end)}Z`;
}

/**
 * Where the `+00` of `timestamptz` text in the common case (`YYYY-MM-DD HH:MM:SS[.ffffff]+00`,
 * as PostgreSQL prints it with TimeZone UTC) starts, or -1 for anything else. Its ISO-8601 form
 * in the `isostring` time precision is the text up to there, with `T` for the space and `Z`
 * after: what {@linkcode JsonWriter.utcIso} writes without making the string.
 */
export function utcTextEnd(text: string): number {
  const end = text.length - 3;
  if (
    end < 19 || text.charCodeAt(end) !== 0x2b || text.charCodeAt(end + 1) !== 0x30 ||
    text.charCodeAt(end + 2) !== 0x30 || !isPlainDateTime(text, end)
  ) {
    return -1;
  }
  return end;
}

/** `text.slice(0, end)` is `YYYY-MM-DD HH:MM:SS` with an optional `.` and 1–6 digits. */
function isPlainDateTime(text: string, end: number): boolean {
  if (end !== 19 && (end < 21 || end > 26 || text.charCodeAt(19) !== 0x2e)) return false;
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i);
    const expected = DATE_TIME_LAYOUT.charCodeAt(i);
    if (expected === 0x39 /* 9: a digit */) {
      if (code < 0x30 || code > 0x39) return false;
    } else if (code !== expected) {
      return false;
    }
  }
  return true;
}

const DATE_TIME_LAYOUT = "9999-99-99 99:99:99.999999";

function civilFromEpochDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) -
      Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

/** Debezium's `Interval.toIsoString`: `P1Y2M3DT4H5M6.5S`, every field written. */
function intervalIsoString(value: PgInterval): string {
  const years = Math.trunc(value.months / 12);
  const months = value.months - years * 12;
  const micros = value.microseconds;
  const hours = micros / 3_600_000_000n;
  const minutes = (micros % 3_600_000_000n) / 60_000_000n;
  const seconds = micros % 60_000_000n;
  const negative = seconds < 0n;
  const abs = negative ? -seconds : seconds;
  const whole = abs / 1_000_000n;
  const fraction = Number(abs % 1_000_000n);
  const secondsText = (negative ? "-" : "") + whole + formatFraction(fraction);
  return `P${years}Y${
    months === 0 ? 0 : months
  }M${value.days}DT${hours}H${minutes}M${secondsText}S`;
}

/** Debezium's `MicroDuration`: µs, with 30.4375-day months (double arithmetic, truncated). */
function intervalMicros(value: PgInterval): number {
  const years = Math.trunc(value.months / 12);
  const months = value.months - years * 12;
  const micros = value.microseconds;
  const hours = Number(micros / 3_600_000_000n);
  const minutes = Number((micros % 3_600_000_000n) / 60_000_000n);
  const seconds = Number(micros % 60_000_000n) / 1_000_000;
  const days = (years * 12 + months) * (365.25 / 12) + value.days;
  const totalSeconds = ((days * 24 + hours) * 60 + minutes) * 60 + seconds;
  return Math.trunc(totalSeconds * 1e6);
}

function isInfiniteInterval(value: PgInterval): -1 | 0 | 1 {
  if (value.months === 2147483647 && value.days === 2147483647) return 1;
  if (value.months === -2147483648 && value.days === -2147483648) return -1;
  return 0;
}

/** Debezium's Bits: bit i (from the right of the string) in byte i/8, little-endian. */
function bitsToBytes(bits: string): Uint8Array {
  let highest = -1;
  for (let i = 0; i < bits.length; i++) {
    if (bits.charCodeAt(bits.length - 1 - i) === 49) highest = i;
  }
  const out = new Uint8Array(Math.floor((highest + 1 + 7) / 8));
  for (let i = 0; i <= highest; i++) {
    if (bits.charCodeAt(bits.length - 1 - i) === 49) out[i >> 3]! |= 1 << (i & 7);
  }
  return out;
}

function wkbPoint(point: Point): Uint8Array {
  const view = new DataView(new ArrayBuffer(21));
  view.setUint8(0, 1); // little-endian
  view.setUint32(1, 1, true); // Point
  view.setFloat64(5, point.x, true);
  view.setFloat64(13, point.y, true);
  return new Uint8Array(view.buffer);
}

/** PostgreSQL's `float8out` text (shortest round-trip; exponent outside 1e-4 … 1e15). */
function pgFloatText(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "Infinity" : "-Infinity";
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  const exponential = value.toExponential();
  const e = exponential.indexOf("e");
  const exponent = Number(exponential.slice(e + 1));
  if (exponent >= -4 && exponent < 15) return String(value);
  const mantissa = exponential.slice(0, e);
  return `${mantissa}e${exponent < 0 ? "-" : "+"}${pad2(Math.abs(exponent))}`;
}

/** A range bound quoted as `range_out` does. */
function quoteRangeBound(text: string): string {
  if (text !== "" && !/["\\()[\],\s]/.test(text)) return text;
  return '"' + text.replaceAll("\\", "\\\\").replaceAll('"', '""') + '"';
}

function scalarText(value: PgValue): string {
  if (typeof value === "string") return value;
  if (typeof value === "number") return pgFloatText(value);
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "boolean") return value ? "t" : "f";
  return JSON.stringify(generic(value, "base64"));
}

function rangeText(range: PgRange): string {
  if (range.empty) return "empty";
  return (range.lowerInclusive ? "[" : "(") +
    (range.lower === null ? "" : quoteRangeBound(scalarText(range.lower))) + "," +
    (range.upper === null ? "" : quoteRangeBound(scalarText(range.upper))) +
    (range.upperInclusive ? "]" : ")");
}

function encodeBytes(bytes: Uint8Array, handling: JsonOptions["binaryHandling"]): string {
  return handling === "hex" ? bytes.toHex() : bytes.toBase64();
}

/** Structural conversion for values whose type gives no better rule. */
function generic(value: PgValue, binary: JsonOptions["binaryHandling"]): JsonValue {
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") return encodeFloat(value);
  if (typeof value === "bigint") return encodeInteger(value);
  if (value instanceof Uint8Array) return encodeBytes(value, binary);
  if (Array.isArray(value)) return value.map((v) => generic(v, binary));
  const out: Record<string, JsonValue> = {};
  for (const [key, field] of Object.entries(value)) {
    setField(out, key, generic(field as PgValue, binary));
  }
  return out;
}

/**
 * A value made JSON-safe by its JavaScript shape alone, for values no column type
 * describes: bigint as an exact number, bytes as base64, non-finite floats as strings.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonSafe } from "./json.ts";
 * const text = JSON.stringify(jsonSafe({ id: 2n ** 64n, raw: new Uint8Array([1, 2]), x: NaN }));
 * assert.equal(text, '{"id":18446744073709551616,"raw":"AQI=","x":"NaN"}');
 * ```
 */
export function jsonSafe(value: unknown): unknown {
  switch (typeof value) {
    case "bigint":
      return encodeBigint(value);
    case "number":
      return encodeFloat(value);
    case "object": {
      if (value === null) return null;
      if (value instanceof Uint8Array) return value.toBase64();
      if (Array.isArray(value)) return value.map(jsonSafe);
      const out: Record<string, unknown> = {};
      for (const [key, inner] of Object.entries(value)) {
        setField<unknown>(out, key, jsonSafe(inner));
      }
      return out;
    }
    default:
      return value;
  }
}

function isRecord(value: PgValue): value is Record<string, PgValue> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

// ---------------------------------------------------------------------------------------------
// Per-type encoders

class Builder {
  readonly #options: Required<JsonOptions>;
  readonly #registry: TypeRegistry;
  readonly #generic: JsonEncoder;

  constructor(options: Required<JsonOptions>, registry: TypeRegistry) {
    this.#options = options;
    this.#registry = registry;
    const binary = options.binaryHandling;
    this.#generic = (value) => generic(value, binary);
  }

  build(oid: number, typmod: number, depth: number): JsonEncoder {
    const info = this.#registry.get(oid);
    if (info === undefined || depth > 32) return this.#generic;
    switch (info.kind) {
      case "domain":
        return this.build(
          info.baseOid!,
          typmod >= 0 ? typmod : info.baseTypeModifier ?? -1,
          depth + 1,
        );
      case "enum":
        return this.#generic;
      case "array":
        return this.#array(this.build(info.elementOid!, typmod, depth + 1));
      case "range":
        return this.#range(this.build(info.subtypeOid!, -1, depth + 1));
      case "multirange": {
        const range = this.#registry.get(info.rangeOid!);
        if (range?.kind !== "range") return this.#generic;
        const encode = this.#range(this.build(range.subtypeOid!, -1, depth + 1));
        const asString = this.#options.rangeHandling === "string";
        return (value) => {
          if (!Array.isArray(value)) return this.#generic(value);
          if (asString) return "{" + value.map((r) => rangeText(r as PgRange)).join(",") + "}";
          return value.map(encode);
        };
      }
      case "composite": {
        const fields = info.fields!.map((f) => ({
          name: f.name,
          encode: this.build(f.typeOid, f.typeModifier, depth + 1),
        }));
        return (value) => {
          if (!isRecord(value)) return this.#generic(value);
          const out: Record<string, JsonValue> = {};
          for (const field of fields) {
            const v = value[field.name];
            setField(out, field.name, v === undefined || v === null ? null : field.encode(v));
          }
          return out;
        };
      }
      case "base":
        return this.#scalar(oid, typmod);
      default: {
        const never: never = info.kind;
        return never;
      }
    }
  }

  #array(element: JsonEncoder): JsonEncoder {
    const each = (value: PgValue): JsonValue => {
      if (value === null) return null;
      if (Array.isArray(value)) return value.map(each);
      return element(value);
    };
    return (value) => {
      if (Array.isArray(value)) return value.map(each);
      if (isRecord(value) && Array.isArray(value.lowerBounds) && Array.isArray(value.values)) {
        return { lowerBounds: value.lowerBounds as number[], values: value.values.map(each) };
      }
      return this.#generic(value);
    };
  }

  #range(bound: JsonEncoder): JsonEncoder {
    if (this.#options.rangeHandling === "string") {
      return (value) =>
        isRecord(value) ? rangeText(value as unknown as PgRange) : this.#generic(value);
    }
    return (value) => {
      if (!isRecord(value)) return this.#generic(value);
      const range = value as unknown as PgRange;
      return {
        empty: range.empty,
        lower: range.lower === null ? null : bound(range.lower),
        upper: range.upper === null ? null : bound(range.upper),
        lowerInclusive: range.lowerInclusive,
        upperInclusive: range.upperInclusive,
      };
    };
  }

  #scalar(oid: number, typmod: number): JsonEncoder {
    const o = this.#options;
    const fallback = this.#generic;
    switch (oid) {
      case Oid.int8:
      case Oid.xid8:
        return (v) => typeof v === "bigint" ? encodeInteger(v) : fallback(v);
      case Oid.float4:
      case Oid.float8:
        return (v) => typeof v === "number" ? encodeFloat(v) : fallback(v);
      case Oid.numeric:
        return this.#decimal(numericScale(typmod), true);
      case Oid.money:
        return this.#decimal(2, false);
      case Oid.date:
        return this.#date();
      case Oid.time:
        return this.#time(typmod >= 0 ? typmod : 6);
      case Oid.timetz:
        return this.#timetz();
      case Oid.timestamp:
        return this.#timestamp(typmod >= 0 ? typmod : 6, false);
      case Oid.timestamptz:
        return this.#timestamp(typmod >= 0 ? typmod : 6, true);
      case Oid.interval:
        return (v) => {
          if (!isRecord(v) || typeof v.microseconds !== "bigint") return fallback(v);
          const interval = v as unknown as PgInterval;
          const infinite = isInfiniteInterval(interval);
          if (infinite !== 0) return infinite > 0 ? "infinity" : "-infinity";
          return o.intervalHandling === "string"
            ? intervalIsoString(interval)
            : intervalMicros(interval);
        };
      case Oid.bit:
      case Oid.varbit:
        if (o.bitHandling === "string") return fallback;
        return (v) => {
          if (typeof v !== "string") return fallback(v);
          return typmod === 1 ? v === "1" : bitsToBytes(v).toBase64();
        };
      case Oid.point:
        if (o.geometryHandling === "object") return fallback;
        return (v) => {
          if (!isRecord(v) || typeof v.x !== "number") return fallback(v);
          const point = v as unknown as Point;
          return {
            x: encodeFloat(point.x),
            y: encodeFloat(point.y),
            wkb: wkbPoint(point).toBase64(),
            srid: null,
          };
        };
      default:
        return fallback;
    }
  }

  /** `numeric` (scale from the type modifier, or null) and `money` (scale 2). */
  #decimal(scale: number | null, variable: boolean): JsonEncoder {
    const mode = this.#options.decimalHandling;
    const fallback = this.#generic;
    return (v) => {
      if (typeof v !== "string") return fallback(v);
      if (mode === "string") return v;
      if (mode === "double") return encodeFloat(Number(v));
      if (scale !== null || !variable) {
        const small = smallUnscaled(v, scale ?? 2);
        if (small !== null) return smallTwosComplementBase64(small);
      }
      const parsed = parseDecimal(v);
      if (parsed === null) return v;
      if (scale !== null || !variable) {
        const target = scale ?? 2;
        return twosComplement(rescale(parsed.unscaled, parsed.scale, target)).toBase64();
      }
      let { unscaled, scale: s } = parsed;
      while (s > 0 && unscaled % 10n === 0n) {
        unscaled /= 10n;
        s--;
      }
      return { scale: s, value: twosComplement(unscaled).toBase64() };
    };
  }

  #date(): JsonEncoder {
    const mode = this.#options.timePrecision;
    const fallback = this.#generic;
    return (v) => {
      const parsed = typeof v === "string" ? parseDateTimeText(v) : null;
      if (parsed === null) return fallback(v);
      if (mode === "isostring") {
        if (parsed.infinity !== 0) return parsed.infinity > 0 ? "infinity" : "-infinity";
        return `${isoYear(parsed.year)}-${pad2(parsed.month)}-${pad2(parsed.day)}`;
      }
      if (parsed.infinity !== 0) return parsed.infinity > 0 ? 2147483647 : -2147483648;
      return epochDaysFromCivil(parsed.year, parsed.month, parsed.day);
    };
  }

  #time(precision: number): JsonEncoder {
    const mode = this.#options.timePrecision;
    const fallback = this.#generic;
    if (mode === "isostring") return fallback;
    const millis = mode === "connect" || (mode === "adaptive" && precision <= 3);
    return (v) => {
      const micros = typeof v === "string" ? parseTimeText(v) : -1;
      if (micros < 0) return fallback(v);
      return millis ? Math.floor(micros / 1000) : micros;
    };
  }

  #timetz(): JsonEncoder {
    const mode = this.#options.timePrecision;
    const fallback = this.#generic;
    return (v) => {
      const parsed = typeof v === "string" ? parseTimetzText(v) : null;
      if (parsed === null) return fallback(v);
      if (mode === "isostring") {
        return isoTime(parsed.micros, null) + isoOffset(parsed.offsetSeconds);
      }
      // Debezium's ZonedTime: the same instant in UTC; 24:00:00 stays the end of the day.
      let utc = parsed.micros - parsed.offsetSeconds * 1_000_000;
      if (utc !== USECS_PER_DAY) utc = ((utc % USECS_PER_DAY) + USECS_PER_DAY) % USECS_PER_DAY;
      return isoTime(utc, null) + "Z";
    };
  }

  #timestamp(precision: number, zone: boolean): JsonEncoder {
    const mode = this.#options.timePrecision;
    const fallback = this.#generic;
    if (zone && mode !== "isostring") {
      // Debezium's ZonedTimestamp: UTC, exactly `precision` fraction digits (none when 0).
      const digits = precision > 0 ? precision : null;
      return (v) => {
        const parsed = typeof v === "string" ? parseDateTimeText(v) : null;
        if (parsed === null) return fallback(v);
        if (parsed.infinity !== 0) return parsed.infinity > 0 ? "infinity" : "-infinity";
        return utcIso(parsed, true, digits);
      };
    }
    if (mode === "isostring") {
      return (v) => {
        if (typeof v === "string") {
          const fast = zone ? isoFromUtcText(v) : isoFromLocalText(v);
          if (fast !== null) return fast;
        }
        const parsed = typeof v === "string" ? parseDateTimeText(v) : null;
        if (parsed === null) return fallback(v);
        if (parsed.infinity !== 0) return parsed.infinity > 0 ? "infinity" : "-infinity";
        return utcIso(parsed, zone, null);
      };
    }
    const millis = mode === "connect" || precision <= 3;
    return (v) => {
      const parsed = typeof v === "string" ? parseDateTimeText(v) : null;
      if (parsed === null) return fallback(v);
      const micros = parsed.infinity === 0
        ? epochMicros(parsed)
        : parsed.infinity > 0
        ? INFINITY_MICROS
        : NEG_INFINITY_MICROS;
      return encodeInteger(millis ? floorDiv(micros, 1000n) : micros);
    };
  }
}
