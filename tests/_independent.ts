/**
 * An independent reference for decoder tests, used by `independent_decode_test.ts`:
 *
 * - a parser of the text that PostgreSQL's own `test_decoding` output plugin writes for each
 *   change (`table public.t: UPDATE: old-key: id[integer]:1 new-tuple: …`), which gives every
 *   column's value as the type's output function printed it on the server;
 * - a renderer that turns a typed value as Spillway hands it on (decoder/types/README.md) back
 *   into the text PostgreSQL's output function prints for it (`array_out`, `record_out`,
 *   `range_out`, `interval_out` in the `postgres` style, `float8out` with
 *   `extra_float_digits > 0`, …).
 *
 * Neither uses any of Spillway's decoder code: both are written from PostgreSQL's documented
 * output formats, so a value that Spillway's decoder mangles renders to a text the server did
 * not print.
 *
 * @module
 */

// ---------------------------------------------------------------------------------------------
// test_decoding's output

/** A column whose TOASTed value did not change and was not logged. */
export const UNCHANGED = Object.freeze({ unchanged: true as const });
export type Unchanged = typeof UNCHANGED;

/** A column's value as the server's output function prints it, NULL, or unchanged TOAST. */
export type CellText = string | null | Unchanged;

/** One column printed by test_decoding: name, `format_type` of its type, value. */
export interface TdColumn {
  name: string;
  type: string;
  value: CellText;
}

/** One row of `pg_logical_slot_peek_changes` from a `test_decoding` slot, parsed. */
export type TdRecord =
  | { kind: "begin"; xid: number }
  | { kind: "commit"; xid: number; at: string }
  | { kind: "message"; transactional: boolean; prefix: string; size: number; content: string }
  | {
    kind: "change";
    /** `schema.table`, unquoted; several for a TRUNCATE. */
    tables: string[];
    action: "INSERT" | "UPDATE" | "DELETE" | "TRUNCATE";
    /** The old key (or whole old row under REPLICA IDENTITY FULL); NULL columns omitted. */
    old: TdColumn[] | null;
    /** The new row, every column. */
    new: TdColumn[] | null;
    /** TRUNCATE only: `restart_seqs`, `cascade`. */
    flags: string[];
  };

class Cursor {
  pos = 0;
  constructor(readonly text: string) {}
  get done(): boolean {
    return this.pos >= this.text.length;
  }
  startsWith(s: string): boolean {
    return this.text.startsWith(s, this.pos);
  }
  expect(s: string): void {
    if (!this.startsWith(s)) this.fail(`expected ${JSON.stringify(s)}`);
    this.pos += s.length;
  }
  fail(what: string): never {
    const near = this.text.slice(this.pos, this.pos + 60);
    throw new Error(`test_decoding output: ${what} at ${this.pos}, near ${JSON.stringify(near)}`);
  }
}

/** An identifier as `quote_identifier` prints it: bare, or in double quotes with `""`. */
function identifier(c: Cursor): string {
  if (c.startsWith('"')) {
    let out = "";
    c.pos++;
    for (;;) {
      const end = c.text.indexOf('"', c.pos);
      if (end < 0) c.fail("unterminated quoted identifier");
      out += c.text.slice(c.pos, end);
      c.pos = end + 1;
      if (c.startsWith('"')) {
        out += '"';
        c.pos++;
      } else {
        return out;
      }
    }
  }
  const start = c.pos;
  while (!c.done && !".[:, ".includes(c.text[c.pos]!)) c.pos++;
  if (c.pos === start) c.fail("expected an identifier");
  return c.text.slice(start, c.pos);
}

/** `print_literal`'s output, turned back into the output function's text. */
function literal(c: Cursor): CellText {
  if (c.startsWith("'")) {
    let out = "";
    c.pos++;
    for (;;) {
      const end = c.text.indexOf("'", c.pos);
      if (end < 0) c.fail("unterminated literal");
      out += c.text.slice(c.pos, end);
      c.pos = end + 1;
      if (c.startsWith("'")) {
        out += "'";
        c.pos++;
      } else {
        return out;
      }
    }
  }
  if (c.startsWith("B'")) {
    const end = c.text.indexOf("'", c.pos + 2);
    if (end < 0) c.fail("unterminated bit string");
    const bits = c.text.slice(c.pos + 2, end);
    c.pos = end + 1;
    return bits;
  }
  let end = c.text.indexOf(" ", c.pos);
  if (end < 0) end = c.text.length;
  const word = c.text.slice(c.pos, end);
  c.pos = end;
  switch (word) {
    case "null":
      return null;
    case "unchanged-toast-datum":
      return UNCHANGED;
    case "true":
      return "t";
    case "false":
      return "f";
  }
  // int2/4/8, oid, float4/8 and numeric are printed bare.
  if (!/^(-?[0-9.e+-]+|NaN|-?Infinity)$/.test(word)) c.fail(`unexpected bare value ${word}`);
  return word;
}

/** `tuple_to_stringinfo`: ` name[type]:value` until the end or ` new-tuple:`. */
function tuple(c: Cursor): TdColumn[] {
  const out: TdColumn[] = [];
  while (!c.done && !c.startsWith(" new-tuple:")) {
    c.expect(" ");
    const name = identifier(c);
    c.expect("[");
    const end = c.text.indexOf("]:", c.pos);
    if (end < 0) c.fail("unterminated type name");
    const type = c.text.slice(c.pos, end);
    c.pos = end + 2;
    out.push({ name, type, value: literal(c) });
  }
  return out;
}

function qualifiedName(c: Cursor): string {
  const schema = identifier(c);
  c.expect(".");
  return `${schema}.${identifier(c)}`;
}

/**
 * Parses one `data` value of a test_decoding slot created with `include-xids` and
 * `include-timestamp` on.
 */
export function parseTestDecoding(data: string): TdRecord {
  let m = /^BEGIN (\d+)$/.exec(data);
  if (m) return { kind: "begin", xid: Number(m[1]) };
  m = /^COMMIT (\d+) \(at (.+)\)$/.exec(data);
  if (m) return { kind: "commit", xid: Number(m[1]), at: m[2]! };
  m = /^message: transactional: ([01]) prefix: (.*?), sz: (\d+) content:/s.exec(data);
  if (m) {
    return {
      kind: "message",
      transactional: m[1] === "1",
      prefix: m[2]!,
      size: Number(m[3]),
      content: data.slice(m[0].length),
    };
  }
  const c: Cursor = new Cursor(data);
  c.expect("table ");
  const tables = [qualifiedName(c)];
  while (c.startsWith(", ")) {
    c.pos += 2;
    tables.push(qualifiedName(c));
  }
  c.expect(": ");
  const action = /^(INSERT|UPDATE|DELETE|TRUNCATE):/.exec(c.text.slice(c.pos))?.[1];
  if (action === undefined) c.fail("expected an action");
  c.pos += action.length + 1;
  const change = {
    kind: "change" as const,
    tables,
    action: action as "INSERT" | "UPDATE" | "DELETE" | "TRUNCATE",
    old: null as TdColumn[] | null,
    new: null as TdColumn[] | null,
    flags: [] as string[],
  };
  const noData = () => {
    if (!c.startsWith(" (no-tuple-data)")) return false;
    c.pos += " (no-tuple-data)".length;
    return true;
  };
  switch (action) {
    case "INSERT":
      if (!noData()) change.new = tuple(c);
      break;
    case "UPDATE":
      if (c.startsWith(" old-key:")) {
        c.pos += " old-key:".length;
        change.old = tuple(c);
        c.expect(" new-tuple:");
      }
      if (!noData()) change.new = tuple(c);
      break;
    case "DELETE":
      if (!noData()) change.old = tuple(c);
      break;
    case "TRUNCATE":
      if (c.startsWith(" (no-flags)")) {
        c.pos += " (no-flags)".length;
      } else {
        while (c.startsWith(" ")) {
          c.pos++;
          const flag = /^(restart_seqs|cascade)/.exec(c.text.slice(c.pos))?.[1];
          if (flag === undefined) c.fail("unknown TRUNCATE flag");
          change.flags.push(flag);
          c.pos += flag.length;
        }
      }
      break;
  }
  if (!c.done) c.fail("trailing text");
  return change;
}

// ---------------------------------------------------------------------------------------------
// Typed values back to PostgreSQL's text

/**
 * The shape of a column type, for rendering: scalars by how their value looks in Spillway's
 * mapping (`string` for every type whose value is PostgreSQL's own text), containers with
 * their element, subtype or fields.
 */
export type Kind =
  | "int2"
  | "int4"
  | "int8"
  | "float4"
  | "float8"
  | "bool"
  | "bytea"
  | "interval"
  | "point"
  | "string"
  | { array: Kind }
  | { range: Kind }
  | { multirange: Kind }
  | { composite: [name: string, kind: Kind][] };

/** A value whose shape does not fit its kind. */
export class ShapeError extends Error {}

function shape(what: string, value: unknown): never {
  const shown = typeof value === "bigint" ? `${value}n` : (() => {
    try {
      return JSON.stringify(value, (_k, v) => typeof v === "bigint" ? `${v}n` : v);
    } catch {
      return String(value);
    }
  })();
  throw new ShapeError(`expected ${what}, got ${typeof value} ${shown}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

function hasExactKeys(value: Record<string, unknown>, keys: string[]): boolean {
  const own = Object.keys(value);
  return own.length === keys.length && own.every((k, i) => k === keys[i]);
}

/** The exact value of a finite positive float (float4: one that `Math.fround` keeps), as m·2^e. */
function binaryParts(x: number, kind: "float4" | "float8"): { m: bigint; e: number; low: boolean } {
  const view = new DataView(new ArrayBuffer(8));
  let fraction: bigint, field: number, bits: number, bias: number;
  if (kind === "float8") {
    view.setFloat64(0, x);
    const raw = view.getBigUint64(0);
    fraction = raw & ((1n << 52n) - 1n);
    field = Number((raw >> 52n) & 0x7ffn);
    bits = 52;
    bias = 1023;
  } else {
    view.setFloat32(0, x);
    const raw = view.getUint32(0);
    fraction = BigInt(raw & 0x7fffff);
    field = (raw >>> 23) & 0xff;
    bits = 23;
    bias = 127;
  }
  if (field === 0) return { m: fraction, e: 1 - bias - bits, low: false };
  // low: a power of two above the smallest exponent, whose lower neighbour is half as far.
  return {
    m: fraction | (1n << BigInt(bits)),
    e: field - bias - bits,
    low: fraction === 0n && field > 1,
  };
}

/** x·2^f as a fraction. */
function fraction(x: bigint, f: number): [bigint, bigint] {
  return f >= 0 ? [x << BigInt(f), 1n] : [x, 1n << BigInt(-f)];
}

/** Compares a/b with c/d (positive denominators). */
function compare([a, b]: [bigint, bigint], [c, d]: [bigint, bigint]): number {
  const l = a * d;
  const r = c * b;
  return l < r ? -1 : l > r ? 1 : 0;
}

/**
 * The shortest decimal strictly inside the rounding interval of the finite positive float x,
 * nearest x, ties to an even last digit (as PostgreSQL's Ryu, built without
 * `STRICTLY_SHORTEST`, prints it): its digits and the decimal exponent of the first one.
 */
function shortestDecimal(x: number, kind: "float4" | "float8"): { digits: string; exp: number } {
  const { m, e, low } = binaryParts(x, kind);
  const value = fraction(m, e);
  const upper = fraction(2n * m + 1n, e - 1);
  const lower = low ? fraction(4n * m - 1n, e - 2) : fraction(2n * m - 1n, e - 1);
  const power = (k: number): [bigint, bigint] =>
    k >= 0 ? [10n ** BigInt(k), 1n] : [1n, 10n ** BigInt(-k)];
  let exp10 = Math.floor(Math.log10(x));
  while (compare(power(exp10), value) > 0) exp10--;
  while (compare(power(exp10 + 1), value) <= 0) exp10++;
  for (let precision = 1; precision <= 17; precision++) {
    let k = exp10 - precision + 1;
    // value / 10^k, rounded half to even.
    const [pn, pd] = power(k);
    const num = value[0] * pd;
    const den = value[1] * pn;
    let q = num / den;
    const twice = 2n * (num - q * den);
    if (twice > den || (twice === den && q % 2n === 1n)) q++;
    if (q === 10n ** BigInt(precision)) {
      q /= 10n;
      k++;
    }
    const [cn, cd] = power(k);
    const candidate: [bigint, bigint] = [q * cn, cd];
    if (compare(lower, candidate) < 0 && compare(candidate, upper) < 0) {
      return { digits: String(q).replace(/(?<=.)0+$/, ""), exp: k + String(q).length - 1 };
    }
  }
  throw new Error(`no decimal found for ${x}`);
}

/**
 * `float8out`/`float4out` with `extra_float_digits > 0` (PostgreSQL's Ryu): the shortest
 * digits that read back as the same float, a decimal exactly halfway to a neighbour not
 * counting (PostgreSQL builds Ryu without `STRICTLY_SHORTEST`: `4.929999999999999e+21`, not
 * `4.93e+21`), the nearest of those, ties to even (`643333333333333.2` for …333.25); exponent form when the decimal exponent is below -4 or at least 15 (float8) or
 * 6 (float4), the exponent with a sign and at least two digits. A float4 value is the double
 * nearest its decimal, as Spillway holds it; `Math.fround` gives back the float.
 */
export function pgFloat(value: number, kind: "float4" | "float8"): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "Infinity";
  if (value === -Infinity) return "-Infinity";
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  const { digits, exp } = shortestDecimal(
    Math.abs(kind === "float4" ? Math.fround(value) : value),
    kind,
  );
  const sign = value < 0 ? "-" : "";
  if (exp < -4 || exp >= (kind === "float8" ? 15 : 6)) {
    const fraction = digits.length > 1 ? `.${digits.slice(1)}` : "";
    const e = `${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
    return `${sign}${digits[0]}${fraction}e${e}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) return `${sign}${digits}${"0".repeat(exp + 1 - digits.length)}`;
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

/** `interval_out` with `IntervalStyle = postgres`. */
export function pgInterval(value: unknown): string {
  if (
    !isPlainObject(value) || !hasExactKeys(value, ["months", "days", "microseconds"]) ||
    !Number.isInteger(value.months) || !Number.isInteger(value.days) ||
    typeof value.microseconds !== "bigint"
  ) {
    shape("{ months, days, microseconds: bigint }", value);
  }
  const months = value.months as number;
  const days = value.days as number;
  const time = value.microseconds as bigint;
  let out = "";
  let isZero = true;
  let isBefore = false;
  const part = (n: number, unit: string) => {
    if (n === 0) return;
    out += `${isZero ? "" : " "}${isBefore && n > 0 ? "+" : ""}${n} ${unit}${n !== 1 ? "s" : ""}`;
    isBefore = n < 0;
    isZero = false;
  };
  part(Math.trunc(months / 12), "year");
  part(months % 12, "mon");
  part(days, "day");
  if (isZero || time !== 0n) {
    const abs = time < 0n ? -time : time;
    const hours = abs / 3_600_000_000n;
    const minutes = (abs / 60_000_000n) % 60n;
    const seconds = (abs / 1_000_000n) % 60n;
    const micros = abs % 1_000_000n;
    const two = (n: bigint) => String(n).padStart(2, "0");
    const fraction = micros === 0n ? "" : `.${String(micros).padStart(6, "0").replace(/0+$/, "")}`;
    out += `${isZero ? "" : " "}${time < 0n ? "-" : isBefore ? "+" : ""}${two(hours)}:${
      two(minutes)
    }:${two(seconds)}${fraction}`;
  }
  return out;
}

const ARRAY_SPACE = /[ \t\n\r\v\f]/;

/** `array_out`'s element quoting. */
function arrayElement(text: string): string {
  const quote = text === "" || text.toUpperCase() === "NULL" || /[{}",\\]/.test(text) ||
    ARRAY_SPACE.test(text);
  return quote ? `"${text.replace(/["\\]/g, (ch) => `\\${ch}`)}"` : text;
}

/** `record_out`'s field quoting. */
function recordField(text: string): string {
  const quote = text === "" || /[()",\\]/.test(text) || ARRAY_SPACE.test(text);
  return quote ? `"${text.replace(/["\\]/g, (ch) => ch + ch)}"` : text;
}

/** `range_out`'s bound quoting. */
function rangeBound(text: string): string {
  const quote = text === "" || /[()[\]",\\]/.test(text) || ARRAY_SPACE.test(text);
  return quote ? `"${text.replace(/["\\]/g, (ch) => ch + ch)}"` : text;
}

function renderArray(element: Kind, value: unknown): string {
  let values: unknown = value;
  let prefix = "";
  if (!Array.isArray(value)) {
    if (!isPlainObject(value) || !hasExactKeys(value, ["lowerBounds", "values"])) {
      shape("an array or { lowerBounds, values }", value);
    }
    const lower = value.lowerBounds;
    values = value.values;
    if (!Array.isArray(lower) || !Array.isArray(values)) shape("{ lowerBounds, values }", value);
    let level: unknown = values;
    for (const bound of lower) {
      if (!Array.isArray(level) || !Number.isInteger(bound)) shape("nested arrays", value);
      prefix += `[${bound}:${bound + level.length - 1}]`;
      level = level[0];
    }
    prefix += "=";
  }
  const nested = (v: unknown): string =>
    Array.isArray(v)
      ? `{${v.map(nested).join(",")}}`
      : v === null
      ? "NULL"
      : arrayElement(render(element, v));
  return prefix + nested(values);
}

function renderRange(subtype: Kind, value: unknown): string {
  const keys = ["empty", "lower", "upper", "lowerInclusive", "upperInclusive"];
  if (!isPlainObject(value) || !hasExactKeys(value, keys)) shape("a range", value);
  if (value.empty === true) return "empty";
  const bound = (v: unknown) => v === null ? "" : rangeBound(render(subtype, v));
  return `${value.lowerInclusive ? "[" : "("}${bound(value.lower)},${bound(value.upper)}${
    value.upperInclusive ? "]" : ")"
  }`;
}

/**
 * The text PostgreSQL's output function prints for `value`, a value of a column of `kind` as
 * Spillway delivers it. Throws {@linkcode ShapeError} when the value does not have the shape
 * the type maps to (a number for `int8`, text for an array, …).
 */
export function render(kind: Kind, value: unknown): string {
  if (typeof kind === "object") {
    if ("array" in kind) return renderArray(kind.array, value);
    if ("range" in kind) return renderRange(kind.range, value);
    if ("multirange" in kind) {
      if (!Array.isArray(value)) shape("an array of ranges", value);
      return `{${value.map((r) => renderRange(kind.multirange, r)).join(",")}}`;
    }
    const fields = kind.composite;
    if (!isPlainObject(value) || !hasExactKeys(value, fields.map(([name]) => name))) {
      shape(`a composite with fields ${fields.map(([name]) => name).join(", ")}`, value);
    }
    const text = fields.map(([name, k]) =>
      value[name] === null ? "" : recordField(render(k, value[name]))
    );
    return `(${text.join(",")})`;
  }
  switch (kind) {
    case "int2":
    case "int4": {
      const limit = kind === "int2" ? 2 ** 15 : 2 ** 31;
      if (!Number.isInteger(value) || (value as number) < -limit || (value as number) >= limit) {
        shape(`an ${kind} number`, value);
      }
      return String(value);
    }
    case "int8":
      if (typeof value !== "bigint") shape("a bigint", value);
      return String(value);
    case "float4":
    case "float8": {
      if (typeof value !== "number") shape("a number", value);
      const text = pgFloat(value, kind);
      // A float4 must be the double nearest its decimal (1.1, not 1.100000023841858).
      if (!Object.is(Number(text), value)) shape(`the double of ${text}`, value);
      return text;
    }
    case "bool":
      if (typeof value !== "boolean") shape("a boolean", value);
      return value ? "t" : "f";
    case "bytea":
      if (!(value instanceof Uint8Array)) shape("a Uint8Array", value);
      return `\\x${Array.from(value, (b) => b.toString(16).padStart(2, "0")).join("")}`;
    case "interval":
      return pgInterval(value);
    case "point":
      if (
        !isPlainObject(value) || !hasExactKeys(value, ["x", "y"]) ||
        typeof value.x !== "number" || typeof value.y !== "number"
      ) {
        shape("{ x, y }", value);
      }
      return `(${pgFloat(value.x as number, "float8")},${pgFloat(value.y as number, "float8")})`;
    case "string":
      if (typeof value !== "string") shape("a string", value);
      return value;
  }
}

// ---------------------------------------------------------------------------------------------
// LSNs and timestamps, written here rather than taken from decoder/lsn.ts

/** `pg_lsn` text (`16/B374D848`) to its 64-bit value. */
export function lsnFromText(text: string): bigint {
  const m = /^([0-9A-F]+)\/([0-9A-F]+)$/i.exec(text);
  if (!m) throw new Error(`not an LSN: ${text}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** A 64-bit LSN as `pg_lsn` prints it (upper-case hex, no padding). */
export function lsnText(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${
    (lsn & 0xffff_ffffn).toString(16).toUpperCase()
  }`;
}

/**
 * µs since the Unix epoch as `timestamptz_to_str` prints it with `TimeZone = UTC` (ISO:
 * `2024-02-29 13:45:00.5+00`, fraction without trailing zeros); for times after 1970.
 */
export function utcTimestampText(unixMicros: bigint): string {
  const seconds = unixMicros / 1_000_000n;
  const micros = unixMicros % 1_000_000n;
  const iso = new Date(Number(seconds) * 1000).toISOString();
  const fraction = micros === 0n ? "" : `.${String(micros).padStart(6, "0").replace(/0+$/, "")}`;
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction}+00`;
}
