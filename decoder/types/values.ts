/**
 * The TypeScript shapes that decoded PostgreSQL values take. See `README.md` in this folder
 * for the full mapping from each PostgreSQL type.
 *
 * @module
 */

/** A `point`, and the vertices of the other geometric types. */
export interface Point {
  x: number;
  y: number;
}

/** A `line`: the infinite line `a·x + b·y + c = 0`. */
export interface Line {
  a: number;
  b: number;
  c: number;
}

/** An `lseg`: its two end points, in stored order. */
export type LineSegment = [Point, Point];

/** A `box`: upper-right corner first, then lower-left, as PostgreSQL stores and prints it. */
export type Box = [Point, Point];

/** A `path`: open (`[…]`) or closed (`(…)`). */
export interface Path {
  closed: boolean;
  points: Point[];
}

/** A `polygon`: its vertices. */
export type Polygon = Point[];

/** A `circle`. */
export interface Circle {
  center: Point;
  radius: number;
}

/**
 * An `interval`, exactly as PostgreSQL stores it. `microseconds` is a `bigint` because the
 * time part can exceed 2^53 µs. PostgreSQL 17's `infinity` is `{ months: 2147483647,
 * days: 2147483647, microseconds: 9223372036854775807n }`, `-infinity` the three minimums.
 */
export interface PgInterval {
  months: number;
  days: number;
  microseconds: bigint;
}

/**
 * A range value. A `null` bound is unbounded (and then never inclusive). An empty range has
 * `empty: true`, both bounds `null` and both flags `false`.
 */
export interface PgRange<V = PgValue> {
  empty: boolean;
  lower: V | null;
  upper: V | null;
  lowerInclusive: boolean;
  upperInclusive: boolean;
}

/**
 * An array whose lower bounds are not all 1 (text form `[0:1]={1,2}`): one lower bound per
 * dimension, and the elements as nested arrays.
 */
export interface PgArrayWithBounds {
  lowerBounds: number[];
  values: PgValue[];
}

/** A value of a type the registry does not know, from a text column. */
export interface UnknownTextValue {
  /** The type's name when known (from the catalog), else `"oid:NNN"`. */
  type: string;
  text: string;
}

/** A value of a type the registry does not know, from a binary column. */
export interface UnknownBinaryValue {
  /** The type's name when known (from the catalog), else `"oid:NNN"`. */
  type: string;
  binary: Uint8Array;
}

/** A composite (row type) value: field name → value, in the type's field order. */
export interface PgComposite {
  [field: string]: PgValue;
}

/** Any decoded PostgreSQL value. SQL NULL is `null`. */
export type PgValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PgInterval
  | Point
  | Line
  | Path
  | Circle
  | PgRange
  | PgArrayWithBounds
  | UnknownTextValue
  | UnknownBinaryValue
  | PgValue[]
  | PgComposite;

/** Decodes one column value in text format (`'t'`). */
export type TextValueDecoder = (text: string) => PgValue;

/** Decodes one column value in binary format (`'b'`, the type's `send` output). */
export type BinaryValueDecoder = (bytes: Uint8Array) => PgValue;

/** Decodes a text or a binary column value; pgoutput sends either, per column. */
export type ColumnDecoder = (raw: string | Uint8Array) => PgValue;

/**
 * Sets a field on a plain object; a field named `__proto__` (a valid PostgreSQL attribute name)
 * becomes an own property instead of replacing the prototype.
 */
export function setField<T>(target: Record<string, T>, name: string, value: T): void {
  if (name === "__proto__") {
    Object.defineProperty(target, name, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    target[name] = value;
  }
}
