/**
 * Decoders for values in PostgreSQL's text output format (pgoutput `'t'` columns), per
 * built-in type, plus the parsers for arrays, ranges, multiranges and composites that the
 * registry combines with element decoders.
 *
 * Pure: no I/O. The text is assumed to come from a session with the settings Spillway pins
 * (`DateStyle=ISO, MDY`, `TimeZone=UTC`, `extra_float_digits=3`, `bytea_output=hex`,
 * `lc_monetary=C`); date and time values are returned exactly as the server printed them.
 * Malformed text throws {@linkcode DecodeError}.
 *
 * @module
 */

import { DecodeError } from "../../errors.ts";
import { Oid } from "./oids.ts";
import { setField } from "./values.ts";
import type {
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
  TextValueDecoder,
} from "./values.ts";

function fail(what: string, offset: number, detail: string): never {
  throw new DecodeError(what, offset, detail);
}

function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? text.slice(0, 60) + "…" : text);
}

// ---------------------------------------------------------------------------------------------
// Scalars

/** Parses a decimal integer between `min` and `max` (at most 10 digits). */
function parseInteger(text: string, what: string, min: number, max: number): number {
  const length = text.length;
  let i = 0;
  let negative = false;
  if (length > 0 && text.charCodeAt(0) === 45) { // '-'
    negative = true;
    i = 1;
  }
  if (i === length || length - i > 10) fail(what, 0, `${quote(text)} is not an integer`);
  let n = 0;
  for (; i < length; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) fail(what, i, `${quote(text)} is not an integer`);
    n = n * 10 + digit;
  }
  if (negative) n = 0 - n;
  if (n < min || n > max) fail(what, 0, `${quote(text)} is out of range`);
  return n === 0 ? 0 : n;
}

function decodeBool(text: string): boolean {
  if (text === "t") return true;
  if (text === "f") return false;
  return fail("bool value", 0, `expected "t" or "f", got ${quote(text)}`);
}

function decodeInt2(text: string): number {
  return parseInteger(text, "int2 value", -32768, 32767);
}

function decodeInt4(text: string): number {
  return parseInteger(text, "int4 value", -2147483648, 2147483647);
}

function decodeUint32(text: string): number {
  return parseInteger(text, "oid value", 0, 4294967295);
}

const INT8_MIN = -9223372036854775808n;
const INT8_MAX = 9223372036854775807n;

function parseBigint(text: string, what: string, min: bigint, max: bigint): bigint {
  const length = text.length;
  const start = length > 0 && text.charCodeAt(0) === 45 ? 1 : 0;
  if (start === length || length - start > 20) fail(what, 0, `${quote(text)} is not an integer`);
  let value = 0;
  for (let i = start; i < length; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) fail(what, i, `${quote(text)} is not an integer`);
    value = value * 10 + digit;
  }
  // Up to 15 digits the double is exact, and BigInt(number) is cheaper than parsing again.
  const n = length - start <= 15 ? BigInt(start === 1 ? -value : value) : BigInt(text);
  if (n < min || n > max) fail(what, 0, `${quote(text)} is out of range`);
  return n;
}

function decodeInt8(text: string): bigint {
  return parseBigint(text, "int8 value", INT8_MIN, INT8_MAX);
}

function decodeXid8(text: string): bigint {
  return parseBigint(text, "xid8 value", 0n, 18446744073709551615n);
}

/**
 * Parses `float4`/`float8` output (`1.5`, `1e+100`, `-0`, `NaN`, `Infinity`, `-Infinity`).
 * With `extra_float_digits` > 0 PostgreSQL prints the shortest text that reads back as the
 * same value, so a `float4` decodes to the double nearest that text (`1.1`, not
 * `1.100000023841858`), as the binary decoder does too.
 */
function parseFloat(text: string, what: string): number {
  const n = Number(text);
  const last = text.length - 1;
  if (
    last < 0 || (Number.isNaN(n) && text !== "NaN") || text.charCodeAt(0) <= 32 ||
    text.charCodeAt(last) <= 32
  ) {
    fail(what, 0, `${quote(text)} is not a number`);
  }
  return n;
}

function decodeFloat4(text: string): number {
  return parseFloat(text, "float4 value");
}

function decodeFloat8(text: string): number {
  return parseFloat(text, "float8 value");
}

function identity(text: string): string {
  return text;
}

/** `money` with `lc_monetary=C`: `$1,234.56`, `-$1,234.56` → `"1234.56"`, `"-1234.56"`. */
function decodeMoney(text: string): string {
  let out = "";
  let negative = false;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      out += text[i];
      digits++;
    } else if (c === 46) out += "."; // '.'
    else if (c === 45 || c === 40) negative = true; // '-' or '(' (accounting style)
    else if (c !== 36 && c !== 44 && c !== 41 && c !== 32) { // '$' ',' ')' ' '
      fail("money value", i, `unexpected character in ${quote(text)}`);
    }
  }
  if (digits === 0) fail("money value", 0, `${quote(text)} has no digits`);
  return negative ? "-" + out : out;
}

const HEX_VALUES = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < 10; i++) table[48 + i] = i;
  for (let i = 0; i < 6; i++) {
    table[65 + i] = 10 + i;
    table[97 + i] = 10 + i;
  }
  return table;
})();

/** `bytea` in hex (`\x48656c6c6f`) or escape (`Hello\\000`) output format. */
function decodeBytea(text: string): Uint8Array {
  if (text.charCodeAt(0) === 92 && text.charCodeAt(1) === 120) { // "\x"
    const length = text.length - 2;
    if (length % 2 !== 0) fail("bytea value", 0, "odd number of hex digits");
    const out = new Uint8Array(length / 2);
    for (let i = 0, j = 2; i < out.length; i++, j += 2) {
      const high = HEX_VALUES[text.charCodeAt(j)] ?? -1;
      const low = HEX_VALUES[text.charCodeAt(j + 1)] ?? -1;
      if (high < 0 || low < 0) fail("bytea value", j, "invalid hex digit");
      out[i] = (high << 4) | low;
    }
    return out;
  }
  // Escape format: printable ASCII as itself, "\\" for a backslash, "\ooo" octal for the rest.
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) {
      for (const byte of new TextEncoder().encode(text[i])) bytes.push(byte);
    } else if (c !== 92) {
      bytes.push(c);
    } else if (text.charCodeAt(i + 1) === 92) {
      bytes.push(92);
      i++;
    } else {
      const a = text.charCodeAt(i + 1) - 48;
      const b = text.charCodeAt(i + 2) - 48;
      const d = text.charCodeAt(i + 3) - 48;
      if (!(a >= 0 && a <= 3 && b >= 0 && b <= 7 && d >= 0 && d <= 7)) {
        fail("bytea value", i, "invalid escape sequence");
      }
      bytes.push(a * 64 + b * 8 + d);
      i += 3;
    }
  }
  return Uint8Array.from(bytes);
}

/** `oid`-like `reg*` types print a name (`pg_class`); only unresolvable OIDs print digits. */
function decodeRegType(text: string): number | string {
  if (text.length > 0 && text.length <= 10) {
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const digit = text.charCodeAt(i) - 48;
      if (digit < 0 || digit > 9) return text;
      n = n * 10 + digit;
    }
    if (n <= 4294967295) return n;
  }
  return text;
}

/** `int2vector`, `oidvector`: space-separated numbers. */
function decodeInt2Vector(text: string): number[] {
  if (text === "") return [];
  return text.split(" ").map(decodeInt2);
}

function decodeOidVector(text: string): number[] {
  if (text === "") return [];
  return text.split(" ").map(decodeUint32);
}

// ---------------------------------------------------------------------------------------------
// Geometry: numbers as float8out prints them, inside ( ) [ ] { } < > and commas.

function parseFloats(text: string, what: string): number[] {
  const out: number[] = [];
  let start = -1;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 44;
    const separator = c === 40 || c === 41 || c === 91 || c === 93 || c === 123 || c === 125 ||
      c === 60 || c === 62 || c === 44 || c === 32; // ( ) [ ] { } < > , space
    if (separator) {
      if (start >= 0) {
        out.push(parseFloat(text.slice(start, i), what));
        start = -1;
      }
    } else if (start < 0) {
      start = i;
    }
  }
  return out;
}

function expectFloats(text: string, what: string, count: number): number[] {
  const numbers = parseFloats(text, what);
  if (numbers.length !== count) {
    fail(what, 0, `expected ${count} numbers in ${quote(text)}, found ${numbers.length}`);
  }
  return numbers;
}

function pointsOf(numbers: number[], what: string): Point[] {
  if (numbers.length % 2 !== 0) fail(what, 0, "odd number of coordinates");
  const points: Point[] = new Array(numbers.length / 2);
  for (let i = 0; i < points.length; i++) {
    points[i] = { x: numbers[2 * i]!, y: numbers[2 * i + 1]! };
  }
  return points;
}

function decodePoint(text: string): Point {
  const [x, y] = expectFloats(text, "point value", 2);
  return { x: x!, y: y! };
}

function decodeLine(text: string): Line {
  const [a, b, c] = expectFloats(text, "line value", 3);
  return { a: a!, b: b!, c: c! };
}

function decodeLseg(text: string): LineSegment {
  const n = expectFloats(text, "lseg value", 4);
  return [{ x: n[0]!, y: n[1]! }, { x: n[2]!, y: n[3]! }];
}

function decodeBox(text: string): Box {
  const n = expectFloats(text, "box value", 4);
  return [{ x: n[0]!, y: n[1]! }, { x: n[2]!, y: n[3]! }];
}

function decodePath(text: string): Path {
  const first = text.charCodeAt(0);
  const last = text.charCodeAt(text.length - 1);
  if ((first !== 91 || last !== 93) && (first !== 40 || last !== 41)) {
    fail("path value", 0, `expected "[…]" or "(…)", got ${quote(text)}`);
  }
  return { closed: first === 40, points: pointsOf(parseFloats(text, "path value"), "path value") };
}

function decodePolygon(text: string): Point[] {
  return pointsOf(parseFloats(text, "polygon value"), "polygon value");
}

function decodeCircle(text: string): Circle {
  const [x, y, radius] = expectFloats(text, "circle value", 3);
  return { center: { x: x!, y: y! }, radius: radius! };
}

// ---------------------------------------------------------------------------------------------
// Interval: the four IntervalStyle output formats.

const INTERVAL_INFINITY: Readonly<PgInterval> = {
  months: 2147483647,
  days: 2147483647,
  microseconds: 9223372036854775807n,
};
const INTERVAL_NEG_INFINITY: Readonly<PgInterval> = {
  months: -2147483648,
  days: -2147483648,
  microseconds: -9223372036854775808n,
};

/** Exact µs of a decimal number of `unitMicros` (e.g. seconds "6.5" → 6500000n). */
function decimalToMicros(text: string, unitMicros: bigint, what: string): bigint {
  let i = 0;
  let negative = false;
  const first = text.charCodeAt(0);
  if (first === 45 || first === 43) {
    negative = first === 45;
    i = 1;
  }
  let whole = 0n;
  let wholeDigits = "";
  for (; i < text.length && text.charCodeAt(i) !== 46; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) fail(what, i, `${quote(text)} is not a number`);
    wholeDigits += text[i];
  }
  if (wholeDigits !== "") whole = BigInt(wholeDigits);
  let micros = whole * unitMicros;
  if (i < text.length) {
    // Fraction: scale by unitMicros (a power of ten times a factor ≤ 3600) exactly.
    const digits = text.slice(i + 1);
    if (digits === "" && wholeDigits === "") fail(what, i, `${quote(text)} is not a number`);
    for (let k = 0; k < digits.length; k++) {
      const d = digits.charCodeAt(k) - 48;
      if (d < 0 || d > 9) fail(what, i + 1 + k, `${quote(text)} is not a number`);
    }
    if (digits !== "") {
      const scale = 10n ** BigInt(digits.length);
      const numerator = BigInt(digits) * unitMicros;
      // PostgreSQL rounds sub-microsecond fractions to the nearest µs.
      micros += (numerator * 2n + scale) / (scale * 2n);
    }
  } else if (wholeDigits === "") {
    fail(what, 0, `${quote(text)} is not a number`);
  }
  return negative ? -micros : micros;
}

/** `[-+]H:MM:SS[.f]` (hours may exceed 24) → µs. */
function timeFieldToMicros(field: string, what: string): bigint {
  let sign = 1;
  let i = 0;
  const first = field.charCodeAt(0);
  if (first === 45 || first === 43) {
    if (first === 45) sign = -1;
    i = 1;
  }
  // Fast path: PostgreSQL's own output with hours that keep the total below 2^53 µs.
  let hours = 0;
  const hoursStart = i;
  for (; i < field.length && i - hoursStart < 6; i++) {
    const digit = field.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) break;
    hours = hours * 10 + digit;
  }
  if (i > hoursStart && field.charCodeAt(i) === 58 && field.length - i >= 6) {
    const minutes = (field.charCodeAt(i + 1) - 48) * 10 + field.charCodeAt(i + 2) - 48;
    const seconds = (field.charCodeAt(i + 4) - 48) * 10 + field.charCodeAt(i + 5) - 48;
    let micros = 0;
    let end = i + 6;
    let ok = field.charCodeAt(i + 3) === 58 && minutes >= 0 && minutes < 60 && seconds >= 0 &&
      seconds < 60 && isDigit(field, i + 1) && isDigit(field, i + 2) && isDigit(field, i + 4) &&
      isDigit(field, i + 5);
    if (ok && end < field.length) {
      ok = field.charCodeAt(end) === 46 && field.length - end <= 7 && field.length - end > 1;
      let scale = 100_000;
      for (end++; ok && end < field.length; end++, scale /= 10) {
        ok = isDigit(field, end);
        micros += (field.charCodeAt(end) - 48) * scale;
      }
    }
    if (ok) return BigInt(sign * (((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros));
  }
  return timeFieldToMicrosSlow(field, what);
}

function isDigit(text: string, at: number): boolean {
  const c = text.charCodeAt(at);
  return c >= 48 && c <= 57;
}

function timeFieldToMicrosSlow(field: string, what: string): bigint {
  let sign = 1n;
  let start = 0;
  const first = field.charCodeAt(0);
  if (first === 45 || first === 43) {
    if (first === 45) sign = -1n;
    start = 1;
  }
  const parts = field.slice(start).split(":");
  if (parts.length < 2 || parts.length > 3) fail(what, 0, `${quote(field)} is not a time`);
  const hours = parseBigint(parts[0]!, what, 0n, INT8_MAX);
  const minutes = parseBigint(parts[1]!, what, 0n, 59n);
  const seconds = parts.length === 3 ? decimalToMicros(parts[2]!, 1_000_000n, what) : 0n;
  if (seconds < 0n) fail(what, 0, `${quote(field)} is not a time`);
  return sign * (hours * 3_600_000_000n + minutes * 60_000_000n + seconds);
}

function stripPlus(text: string): string {
  return text.charCodeAt(0) === 43 ? text.slice(1) : text;
}

interface IntervalParts {
  months: number;
  days: number;
  micros: bigint;
}

function addUnit(parts: IntervalParts, unit: string, amount: string, what: string): void {
  switch (unit) {
    case "year":
    case "years":
      parts.months += parseInteger(stripPlus(amount), what, -2147483648, 2147483647) * 12;
      return;
    case "mon":
    case "mons":
      parts.months += parseInteger(stripPlus(amount), what, -2147483648, 2147483647);
      return;
    case "day":
    case "days":
      parts.days += parseInteger(stripPlus(amount), what, -2147483648, 2147483647);
      return;
    case "hour":
    case "hours":
      parts.micros += decimalToMicros(amount, 3_600_000_000n, what);
      return;
    case "min":
    case "mins":
      parts.micros += decimalToMicros(amount, 60_000_000n, what);
      return;
    case "sec":
    case "secs":
      parts.micros += decimalToMicros(amount, 1_000_000n, what);
      return;
    default:
      fail(what, 0, `unknown unit ${quote(unit)}`);
  }
}

/** ISO 8601 `P1Y2M3DT4H5M6.5S` with PostgreSQL's negative parts (`P-1Y-2M3DT-4H`). */
function parseIso8601Interval(text: string, what: string): IntervalParts {
  const parts: IntervalParts = { months: 0, days: 0, micros: 0n };
  if (text.length < 3 || text.endsWith("T")) fail(what, 0, `${quote(text)} has no fields`);
  let inTime = false;
  let start = 1;
  for (let i = 1; i < text.length; i++) {
    const c = text[i]!;
    if (c === "T") {
      if (i !== start) fail(what, i, `number without a unit in ${quote(text)}`);
      inTime = true;
      start = i + 1;
      continue;
    }
    if ((c >= "0" && c <= "9") || c === "-" || c === "+" || c === ".") continue;
    const amount = text.slice(start, i);
    if (amount === "") fail(what, i, `unit without a number in ${quote(text)}`);
    let unit: string;
    if (inTime) unit = c === "H" ? "hours" : c === "M" ? "mins" : c === "S" ? "secs" : "";
    else {unit = c === "Y"
        ? "years"
        : c === "M"
        ? "mons"
        : c === "W"
        ? "weeks"
        : c === "D"
        ? "days"
        : "";}
    if (unit === "weeks") {
      parts.days += parseInteger(amount, what, -2147483648, 2147483647) * 7;
    } else if (unit === "") {
      fail(what, i, `unknown designator ${quote(c)} in ${quote(text)}`);
    } else {
      addUnit(parts, unit, amount, what);
    }
    start = i + 1;
  }
  if (start !== text.length) fail(what, start, `number without a unit in ${quote(text)}`);
  return parts;
}

/** `@ 1 year 2 mons -3 days 4 hours 5 mins 6.5 secs ago` (postgres_verbose). */
function parseVerboseInterval(tokens: string[], what: string): IntervalParts {
  const parts: IntervalParts = { months: 0, days: 0, micros: 0n };
  let end = tokens.length;
  const ago = tokens[end - 1] === "ago";
  if (ago) end--;
  let i = 1;
  if (end === 2 && tokens[1] === "0") i = 2;
  for (; i < end; i += 2) {
    const amount = tokens[i];
    const unit = tokens[i + 1];
    if (amount === undefined || unit === undefined) fail(what, 0, "number without a unit");
    addUnit(parts, unit, amount, what);
  }
  if (ago) {
    parts.months = 0 - parts.months;
    parts.days = 0 - parts.days;
    parts.micros = -parts.micros;
  }
  return parts;
}

/** `1 year 2 mons -3 days +04:05:06.5` (postgres) or `+1-2 -3 +4:05:06.5` (sql_standard). */
function parseFieldInterval(tokens: string[], what: string): IntervalParts {
  const parts: IntervalParts = { months: 0, days: 0, micros: 0n };
  const hasUnits = tokens.some((t) => t.charCodeAt(0) >= 97); // a lower-case unit word
  if (hasUnits) {
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]!;
      if (token.includes(":")) {
        parts.micros += timeFieldToMicros(token, what);
      } else {
        const unit = tokens[++i];
        if (unit === undefined) fail(what, 0, `number ${quote(token)} without a unit`);
        addUnit(parts, unit, token, what);
      }
    }
    return parts;
  }
  // SQL standard: a leading "-" applies to every field unless another field has its own sign.
  const negateAll = tokens[0]!.startsWith("-") &&
    tokens.slice(1).every((t) => !t.startsWith("-") && !t.startsWith("+"));
  for (const raw of tokens) {
    const token = negateAll && !raw.startsWith("-") ? "-" + raw : raw;
    if (token.includes(":")) {
      parts.micros += timeFieldToMicros(token, what);
    } else if (token.indexOf("-", 1) > 0) { // year-month "Y-M"
      const negative = token.startsWith("-");
      const body = negative || token.startsWith("+") ? token.slice(1) : token;
      const [years, months] = body.split("-");
      const total = parseInteger(years!, what, 0, 2147483647) * 12 +
        parseInteger(months!, what, 0, 11);
      parts.months += negative ? -total : total;
    } else if (token === "0" || token === "-0") {
      continue;
    } else {
      parts.days += parseInteger(stripPlus(token), what, -2147483648, 2147483647);
    }
  }
  return parts;
}

/**
 * Parses `interval` text in any IntervalStyle (postgres, postgres_verbose, sql_standard,
 * iso_8601) and PostgreSQL 17's `infinity`/`-infinity`.
 */
export function parseIntervalText(text: string): PgInterval {
  const what = "interval value";
  if (text === "infinity") return { ...INTERVAL_INFINITY };
  if (text === "-infinity") return { ...INTERVAL_NEG_INFINITY };
  let parts: IntervalParts;
  if (text.startsWith("P")) {
    parts = parseIso8601Interval(text, what);
  } else {
    const tokens = text.split(" ").filter((t) => t !== "");
    if (tokens.length === 0) fail(what, 0, "empty interval");
    parts = tokens[0] === "@"
      ? parseVerboseInterval(tokens, what)
      : parseFieldInterval(tokens, what);
  }
  if (
    parts.months < -2147483648 || parts.months > 2147483647 || parts.days < -2147483648 ||
    parts.days > 2147483647 || parts.micros < INT8_MIN || parts.micros > INT8_MAX
  ) {
    fail(what, 0, `${quote(text)} is out of range`);
  }
  return {
    months: parts.months === 0 ? 0 : parts.months,
    days: parts.days === 0 ? 0 : parts.days,
    microseconds: parts.micros,
  };
}

// ---------------------------------------------------------------------------------------------
// Containers

function isArraySpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13); // space \t \n \v \f \r
}

/**
 * Parses array text (`{1,2,NULL}`, `{{"a b","c\"d"}}`, `[0:1]={1,2}`) with `element` for each
 * non-NULL element. `delimiter` is the element type's `typdelim` (`;` for `box`).
 */
export function parseArrayText(
  text: string,
  element: TextValueDecoder,
  delimiter: string,
  what: string,
): PgValue[] | PgArrayWithBounds {
  const delim = delimiter.charCodeAt(0);
  let i = 0;
  let lowerBounds: number[] | null = null;
  let dimensions: number[] | null = null;
  if (text.charCodeAt(0) === 91) { // '[': explicit dimensions
    lowerBounds = [];
    dimensions = [];
    while (text.charCodeAt(i) === 91) {
      const colon = text.indexOf(":", i);
      const close = text.indexOf("]", i);
      if (colon < 0 || close < colon) fail(what, i, "malformed dimension decoration");
      const lower = parseInteger(text.slice(i + 1, colon), what, -2147483648, 2147483647);
      const upper = parseInteger(text.slice(colon + 1, close), what, -2147483648, 2147483647);
      if (upper < lower - 1) fail(what, i, "upper bound below lower bound");
      lowerBounds.push(lower);
      dimensions.push(upper - lower + 1);
      i = close + 1;
    }
    if (text.charCodeAt(i) !== 61) fail(what, i, `expected "=" after the dimensions`); // '='
    i++;
  }
  if (text.charCodeAt(i) !== 123) fail(what, i, `expected "{" in ${quote(text)}`);

  const parseLevel = (depth: number): PgValue[] => {
    if (depth > 6) fail(what, i, "more than 6 dimensions");
    i++; // '{'
    const items: PgValue[] = [];
    while (i < text.length && isArraySpace(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) === 125) { // '}'
      i++;
      return items;
    }
    for (;;) {
      while (i < text.length && isArraySpace(text.charCodeAt(i))) i++;
      const c = text.charCodeAt(i);
      if (c === 123) {
        items.push(parseLevel(depth + 1));
      } else if (c === 34) { // '"'
        items.push(element(readQuoted()));
      } else {
        items.push(readUnquoted());
      }
      while (i < text.length && isArraySpace(text.charCodeAt(i))) i++;
      const next = text.charCodeAt(i);
      i++;
      if (next === delim) continue;
      if (next === 125) return items;
      fail(what, i - 1, Number.isNaN(next) ? "unexpected end of array" : "expected a delimiter");
    }
  };

  const readQuoted = (): string => {
    i++; // opening quote
    let out = "";
    let start = i;
    for (;;) {
      const c = text.charCodeAt(i);
      if (Number.isNaN(c)) fail(what, i, "unterminated quoted element");
      if (c === 92) { // backslash: the next character is literal
        out += text.slice(start, i);
        if (i + 1 >= text.length) fail(what, i, "unterminated quoted element");
        out += text[i + 1];
        i += 2;
        start = i;
      } else if (c === 34) {
        out += text.slice(start, i);
        i++;
        return out;
      } else {
        i++;
      }
    }
  };

  const readUnquoted = (): PgValue => {
    const start = i;
    let out = "";
    let segment = i;
    let kept = 0; // characters up to the last escaped one are never trimmed
    let escaped = false;
    for (;;) {
      const c = text.charCodeAt(i);
      if (Number.isNaN(c)) fail(what, i, "unexpected end of array");
      if (c === delim || c === 125) break;
      if (c === 123 || c === 34) fail(what, i, "unexpected character in unquoted element");
      if (c === 92) { // backslash: the next character is literal
        if (i + 1 >= text.length) fail(what, i, "unexpected end of array");
        out += text.slice(segment, i) + text[i + 1];
        escaped = true;
        i += 2;
        segment = i;
        kept = out.length;
        continue;
      }
      i++;
    }
    out += text.slice(segment, i);
    let end = out.length;
    while (end > kept && isArraySpace(out.charCodeAt(end - 1))) end--;
    const value = end === out.length ? out : out.slice(0, end);
    if (!escaped && value.length === 4 && value.toUpperCase() === "NULL") return null;
    if (value === "") fail(what, start, "empty unquoted element");
    return element(value);
  };

  const values = parseLevel(1);
  while (i < text.length && isArraySpace(text.charCodeAt(i))) i++;
  if (i !== text.length) fail(what, i, "trailing characters after the array");
  if (lowerBounds && dimensions) {
    let level: PgValue[] = values;
    for (let d = 0; d < dimensions.length; d++) {
      if (level.length !== dimensions[d]) fail(what, 0, "dimensions do not match the elements");
      const first: PgValue | undefined = level[0];
      level = Array.isArray(first) ? first : [];
    }
    if (lowerBounds.some((b) => b !== 1)) return { lowerBounds, values };
  }
  return values;
}

/** Index after the last range parsed by {@linkcode parseRangeAt}. */
let rangeEnd = 0;

/** Reads one range bound (range_parse_bound); `null` when empty (unbounded). */
function readRangeBound(text: string, start: number, what: string): string | null {
  let i = start;
  let c = text.charCodeAt(i);
  if (c === 44 || c === 41 || c === 93) { // ',' ')' ']'
    rangeEnd = i;
    return null;
  }
  let out = "";
  let inQuote = false;
  for (;;) {
    c = text.charCodeAt(i);
    if (Number.isNaN(c)) fail(what, i, "unexpected end of range");
    if (!inQuote && (c === 44 || c === 41 || c === 93)) break;
    if (c === 92) {
      if (i + 1 >= text.length) fail(what, i, "unexpected end of range");
      out += text[i + 1];
      i += 2;
    } else if (c === 34) {
      if (!inQuote) inQuote = true;
      else if (text.charCodeAt(i + 1) === 34) {
        out += '"';
        i++;
      } else inQuote = false;
      i++;
    } else {
      out += text[i];
      i++;
    }
  }
  rangeEnd = i;
  return out;
}

function emptyRange(): PgRange {
  return { empty: true, lower: null, upper: null, lowerInclusive: false, upperInclusive: false };
}

/** Parses one range starting at `start`; sets `rangeEnd`. */
function parseRangeAt(
  text: string,
  start: number,
  subtype: TextValueDecoder,
  what: string,
): PgRange {
  if (text.startsWith("empty", start)) {
    rangeEnd = start + 5;
    return emptyRange();
  }
  const open = text.charCodeAt(start);
  if (open !== 91 && open !== 40) fail(what, start, `expected "[", "(" or "empty"`);
  const lowerText = readRangeBound(text, start + 1, what);
  if (text.charCodeAt(rangeEnd) !== 44) fail(what, rangeEnd, `expected ","`);
  const upperText = readRangeBound(text, rangeEnd + 1, what);
  const close = text.charCodeAt(rangeEnd);
  if (close !== 93 && close !== 41) fail(what, rangeEnd, `expected "]" or ")"`);
  const end = rangeEnd + 1;
  const range: PgRange = {
    empty: false,
    lower: lowerText === null ? null : subtype(lowerText),
    upper: upperText === null ? null : subtype(upperText),
    lowerInclusive: lowerText !== null && open === 91,
    upperInclusive: upperText !== null && close === 93,
  };
  rangeEnd = end;
  return range;
}

/** Parses range text: `[1,5)`, `empty`, `(,5]`, `["2024-01-01 00:00:00+00",infinity)`. */
export function parseRangeText(text: string, subtype: TextValueDecoder, what: string): PgRange {
  const range = parseRangeAt(text, 0, subtype, what);
  if (rangeEnd !== text.length) fail(what, rangeEnd, "trailing characters after the range");
  return range;
}

/** Parses multirange text: `{}`, `{[1,3),[5,7)}`. */
export function parseMultirangeText(
  text: string,
  subtype: TextValueDecoder,
  what: string,
): PgRange[] {
  if (text.charCodeAt(0) !== 123) fail(what, 0, `expected "{"`);
  const ranges: PgRange[] = [];
  if (text === "{}") return ranges;
  let i = 1;
  for (;;) {
    while (text.charCodeAt(i) === 32) i++;
    ranges.push(parseRangeAt(text, i, subtype, what));
    i = rangeEnd;
    while (text.charCodeAt(i) === 32) i++;
    const c = text.charCodeAt(i);
    if (c === 44) {
      i++;
      continue;
    }
    if (c === 125 && i === text.length - 1) return ranges;
    fail(what, i, `expected "," or "}"`);
  }
}

/**
 * Parses composite text `(1,"a b",)`: an empty unquoted field is NULL, `""` the empty string.
 * `names[k]` and `fields[k]` describe the k-th field.
 */
export function parseCompositeText(
  text: string,
  names: readonly string[] | null,
  fields: readonly TextValueDecoder[] | null,
  what: string,
): PgComposite {
  // Without field descriptions (an anonymous `record`), fields are text named f1, f2, ….
  if (text.charCodeAt(0) !== 40) fail(what, 0, `expected "(" in ${quote(text)}`);
  const out: PgComposite = {};
  let i = 1;
  for (let k = 0;; k++) {
    if (fields !== null && k >= fields.length) fail(what, i, `more than ${fields.length} fields`);
    let value: string | null = null;
    let c = text.charCodeAt(i);
    if (c !== 44 && c !== 41) {
      let inQuote = false;
      value = "";
      for (;;) {
        c = text.charCodeAt(i);
        if (Number.isNaN(c)) fail(what, i, "unexpected end of record");
        if (!inQuote && (c === 44 || c === 41)) break;
        if (c === 92) {
          if (i + 1 >= text.length) fail(what, i, "unexpected end of record");
          value += text[i + 1];
          i += 2;
        } else if (c === 34) {
          if (!inQuote) inQuote = true;
          else if (text.charCodeAt(i + 1) === 34) {
            value += '"';
            i++;
          } else inQuote = false;
          i++;
        } else {
          value += text[i];
          i++;
        }
      }
    }
    const name = names === null ? `f${k + 1}` : names[k]!;
    setField(out, name, value === null || fields === null ? value : fields[k]!(value));
    i++;
    if (c === 41) {
      if (fields !== null && k + 1 !== fields.length) {
        fail(what, i, `${k + 1} fields, expected ${fields.length}`);
      }
      if (i !== text.length) fail(what, i, "trailing characters after the record");
      return out;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The table

/** Text decoders of the built-in scalar types, keyed by OID. */
export const TEXT_DECODERS: ReadonlyMap<number, TextValueDecoder> = new Map<
  number,
  TextValueDecoder
>([
  [Oid.bool, decodeBool],
  [Oid.bytea, decodeBytea],
  [Oid.char, identity],
  [Oid.name, identity],
  [Oid.int8, decodeInt8],
  [Oid.int2, decodeInt2],
  [Oid.int2vector, decodeInt2Vector],
  [Oid.int4, decodeInt4],
  [Oid.text, identity],
  [Oid.oid, decodeUint32],
  [Oid.tid, identity],
  [Oid.xid, decodeUint32],
  [Oid.cid, decodeUint32],
  [Oid.oidvector, decodeOidVector],
  [Oid.json, identity],
  [Oid.xml, identity],
  [Oid.point, decodePoint],
  [Oid.lseg, decodeLseg],
  [Oid.path, decodePath],
  [Oid.box, decodeBox],
  [Oid.polygon, decodePolygon],
  [Oid.line, decodeLine],
  [Oid.cidr, identity],
  [Oid.float4, decodeFloat4],
  [Oid.float8, decodeFloat8],
  [Oid.unknown, identity],
  [Oid.circle, decodeCircle],
  [Oid.macaddr8, identity],
  [Oid.money, decodeMoney],
  [Oid.macaddr, identity],
  [Oid.inet, identity],
  [Oid.aclitem, identity],
  [Oid.bpchar, identity],
  [Oid.varchar, identity],
  [Oid.date, identity],
  [Oid.time, identity],
  [Oid.timestamp, identity],
  [Oid.timestamptz, identity],
  [Oid.interval, parseIntervalText],
  [Oid.timetz, identity],
  [Oid.bit, identity],
  [Oid.varbit, identity],
  [Oid.numeric, identity],
  [Oid.refcursor, identity],
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
  [Oid.uuid, identity],
  [Oid.txid_snapshot, identity],
  [Oid.pg_snapshot, identity],
  [Oid.pg_lsn, identity],
  [Oid.tsvector, identity],
  [Oid.tsquery, identity],
  [Oid.jsonb, identity],
  [Oid.jsonpath, identity],
  [Oid.xid8, decodeXid8],
]);
