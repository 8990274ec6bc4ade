/**
 * The shape of what a transform returns: the columns its rows have, as a relation the formats
 * follow (the Debezium envelope's Connect schema, Avro schemas, JSON encoders), so that a field
 * a transform adds is written with a type, and one it drops leaves the schema.
 *
 * A transform's output rows start with the input table's columns. From what it returns, per
 * table, topic (a fan-out's events to another topic have their own shape) and transform
 * version:
 * - a field that is not a column of the table is **added**, typed by the transform's `output`
 *   declaration (`output: { total: "numeric" }`), or else from its first non-null value: a
 *   string `text`, a boolean `bool`, a bigint `int8`, a number `float8`, a Uint8Array `bytea`,
 *   an array of one of these that type's array; an added field is nullable;
 * - a column that the input row had and the output row lacks (and that is not an unchanged
 *   TOASTed one) is **dropped**; it is back when an output has it again;
 * - a column whose value is of another kind than its type's (a numeric's string returned as a
 *   number, say) is **retyped** as an added field is typed.
 *
 * While nothing of that happens the output follows the input's relation itself; otherwise a
 * relation made for the output, the same object for as long as the shape stays, a new one
 * (a new schema version) when it grows. A value that fits no type (an object, a Date), or that
 * does not fit the type its field has, is refused with a message naming the field and the fix:
 * the event then takes `on_error`.
 *
 * @module
 */

import type { RelationColumn, RelationMessage } from "../decoder/pgoutput.ts";
import { BUILTIN_TYPES, Oid } from "../decoder/types/oids.ts";
import type { ChangeEvent, Row } from "../events.ts";

/** The JavaScript kind of a built-in type's values, where it has one kind. */
type Kind = "string" | "number" | "bigint" | "boolean" | "bytes" | "array";

const NUMBER_TYPES: readonly number[] = [Oid.int2, Oid.int4, Oid.oid, Oid.float4, Oid.float8];
const STRING_TYPES: readonly number[] = [
  Oid.text,
  Oid.varchar,
  Oid.bpchar,
  Oid.name,
  Oid.uuid,
  Oid.json,
  Oid.jsonb,
  Oid.xml,
  Oid.numeric,
  Oid.money,
  Oid.date,
  Oid.time,
  Oid.timetz,
  Oid.timestamp,
  Oid.timestamptz,
  Oid.inet,
  Oid.cidr,
  Oid.macaddr,
  Oid.macaddr8,
  Oid.bit,
  Oid.varbit,
];

/** Built-in array type OIDs. */
const ARRAY_TYPES = new Set(BUILTIN_TYPES.map((type) => type.arrayOid));

/** The kind of a type's values; `null` when not one kind, or not known here (no check). */
function kindOf(oid: number): Kind | null {
  if (NUMBER_TYPES.includes(oid)) return "number";
  if (oid === Oid.int8) return "bigint";
  if (oid === Oid.bool) return "boolean";
  if (oid === Oid.bytea) return "bytes";
  if (STRING_TYPES.includes(oid)) return "string";
  if (ARRAY_TYPES.has(oid)) return "array";
  return null;
}

/** Whether a (non-null) value is of the kind a type's values have. */
function fits(oid: number, value: unknown): boolean {
  switch (kindOf(oid)) {
    case null:
      return true;
    case "number":
      return typeof value === "number";
    case "bigint":
      return typeof value === "bigint" || Number.isSafeInteger(value);
    case "boolean":
      return typeof value === "boolean";
    case "bytes":
      return value instanceof Uint8Array;
    case "string":
      return typeof value === "string";
    case "array":
      return Array.isArray(value) ||
        (typeof value === "object" && value !== null && "lowerBounds" in value);
  }
}

const ARRAY_OF: Record<string, number> = {
  [Oid.text]: 1009,
  [Oid.bool]: 1000,
  [Oid.int8]: 1016,
  [Oid.float8]: 1022,
  [Oid.bytea]: 1001,
};

/**
 * The type a value is written as when nothing declares one: its OID, `null` when it cannot be
 * told yet (an empty array, or only nulls), or why it cannot be typed.
 */
function inferType(value: unknown): number | null | { refused: string } {
  switch (typeof value) {
    case "string":
      return Oid.text;
    case "boolean":
      return Oid.bool;
    case "bigint":
      return Oid.int8;
    case "number":
      return Oid.float8;
  }
  if (value instanceof Uint8Array) return Oid.bytea;
  if (Array.isArray(value)) {
    for (const element of value.flat(Infinity)) {
      if (element === null || element === undefined) continue;
      const type = inferType(element);
      if (typeof type !== "number") return type;
      const array = ARRAY_OF[type];
      return array ?? { refused: "an array whose elements are not strings, numbers or booleans" };
    }
    return null;
  }
  const what = value instanceof Date
    ? "a Date"
    : typeof value === "object" && value !== null
    ? "an object"
    : `a ${typeof value}`;
  return { refused: what };
}

/** Type names a transform's `output` may declare, and their OIDs. */
const DECLARABLE: Record<string, number> = {
  text: Oid.text,
  varchar: Oid.varchar,
  bool: Oid.bool,
  boolean: Oid.bool,
  int2: Oid.int2,
  smallint: Oid.int2,
  int4: Oid.int4,
  integer: Oid.int4,
  int: Oid.int4,
  int8: Oid.int8,
  bigint: Oid.int8,
  float4: Oid.float4,
  real: Oid.float4,
  float8: Oid.float8,
  "double precision": Oid.float8,
  numeric: Oid.numeric,
  bytea: Oid.bytea,
  uuid: Oid.uuid,
  json: Oid.json,
  jsonb: Oid.jsonb,
  date: Oid.date,
  time: Oid.time,
  timestamp: Oid.timestamp,
  timestamptz: Oid.timestamptz,
};

/** The type names a transform's `output` may give a field (each also with `[]`). */
export const DECLARABLE_TYPES: readonly string[] = Object.keys(DECLARABLE);

/**
 * A transform's `output` declaration (field → type name) as OIDs, or why it is not one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { declaredOutput } from "./shape.ts";
 * assert.deepEqual(declaredOutput({ total: "numeric", tags: "text[]" }), new Map([["total", 1700], ["tags", 1009]]));
 * assert.match(declaredOutput({ total: "money2" }) as string, /output\.total: "money2" is not a type/);
 * ```
 */
export function declaredOutput(output: unknown): Map<string, number> | string {
  const out = new Map<string, number>();
  if (output === undefined || output === null) return out;
  if (typeof output !== "object" || Array.isArray(output)) {
    return `output is ${
      Array.isArray(output) ? "an array" : `a ${typeof output}`
    }; expected a map of field names to type names, e.g. output: { total: "numeric" }`;
  }
  for (const [field, name] of Object.entries(output)) {
    const text = typeof name === "string" ? name.trim().toLowerCase() : "";
    const array = text.endsWith("[]");
    const base = DECLARABLE[array ? text.slice(0, -2).trim() : text];
    const oid = base === undefined ? undefined : array ? arrayOid(base) : base;
    if (oid === undefined) {
      return `output.${field}: ${
        JSON.stringify(name)
      } is not a type it can declare; expected one of ${
        DECLARABLE_TYPES.join(", ")
      }, each also with []`;
    }
    out.set(field, oid);
  }
  return out;
}

function arrayOid(oid: number): number | undefined {
  return BUILTIN_TYPES.find((type) => type.oid === oid)?.arrayOid;
}

/** What is known of one table's output shape from one transform version. */
interface ShapeState {
  /** Fields not in the table, with their types, in the order first seen. */
  added: Map<string, number>;
  /** Columns of the table with another type. */
  retyped: Map<string, number>;
  dropped: Set<string>;
  /** The relation the output follows now. */
  relation: RelationMessage;
}

/**
 * The output shapes of one transform version, per input relation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OutputShapes } from "./shape.ts";
 * const relation = {
 *   type: "Relation" as const, relationId: 1, namespace: "public", relationName: "orders", replicaIdentity: "d" as const,
 *   columns: [{ flags: 1, isKey: true, name: "id", typeOid: 20, typeModifier: -1 }, { flags: 0, isKey: false, name: "note", typeOid: 25, typeModifier: -1 }],
 * };
 * const source = { schema: "public", table: "orders", relid: 1, lsn: 1n, commitLsn: 2n, xid: 7, commitTime: 0n } as never;
 * const input = { op: "c" as const, source, before: null, after: { id: 1n, note: "n" }, unchanged: [] };
 * const shapes = new OutputShapes(new Map());
 * // The input returned as it came: the table's relation.
 * assert.equal(shapes.relationOf(input, input, relation), relation);
 * // note dropped, total added (a number: float8).
 * const shaped = shapes.relationOf(input, { ...input, after: { id: 1n, total: 2.5 } }, relation);
 * assert.deepEqual((shaped as typeof relation).columns.map((c) => [c.name, c.typeOid]), [["id", 20], ["total", 701]]);
 * // The same shape again: the same relation (one schema version).
 * assert.equal(shapes.relationOf(input, { ...input, after: { id: 2n, total: 1 } }, relation), shaped);
 * ```
 */
export class OutputShapes {
  readonly #declared: ReadonlyMap<string, number>;
  readonly #states = new WeakMap<RelationMessage, Map<string, ShapeState>>();

  /** `declared`: the transform's `output` declaration (see {@linkcode declaredOutput}). */
  constructor(declared: ReadonlyMap<string, number>) {
    this.#declared = declared;
  }

  /**
   * The relation an output event of a change follows on `topic` (the input's `relation` while
   * its shape is the table's), or why one of its values cannot be written.
   */
  relationOf(
    input: ChangeEvent,
    output: ChangeEvent,
    relation: RelationMessage,
    topic = "",
  ): RelationMessage | string {
    let byTopic = this.#states.get(relation);
    if (byTopic === undefined) this.#states.set(relation, byTopic = new Map());
    let state = byTopic.get(topic);
    let changed = false;
    if (state === undefined) {
      state = { added: new Map(), retyped: new Map(), dropped: new Set(), relation };
      for (const [field, oid] of this.#declared) {
        const column = relation.columns.find((c) => c.name === field);
        if (column === undefined) state.added.set(field, oid);
        else if (column.typeOid !== oid) state.retyped.set(field, oid);
      }
      changed = state.added.size + state.retyped.size > 0;
      byTopic.set(topic, state);
    }
    const columns = columnsByName(relation);
    const pairs: [Row | null, Row | null][] = [
      [output.before, input.before],
      [output.after, input.after],
    ];
    for (const [row, inputRow] of pairs) {
      if (row === null) continue;
      for (const field in row) {
        const value = row[field];
        if (value === null || value === undefined) continue;
        const column = columns.get(field);
        if (column !== undefined) {
          if (state.dropped.delete(field)) changed = true;
          // Passed through as it came: nothing to check.
          if (inputRow !== null && inputRow[field] === value) continue;
          const retyped = state.retyped.get(field);
          if (fits(retyped ?? column.typeOid, value)) continue;
          if (retyped !== undefined || this.#declared.has(field)) {
            return mismatch(relation, field, retyped ?? column.typeOid, value, this.#declared);
          }
          const type = inferType(value);
          if (type === null) continue;
          if (typeof type !== "number") return refused(relation, field, type.refused);
          state.retyped.set(field, type);
          changed = true;
          continue;
        }
        const added = state.added.get(field);
        if (added !== undefined) {
          if (!fits(added, value)) return mismatch(relation, field, added, value, this.#declared);
          continue;
        }
        const type = inferType(value);
        if (type === null) continue;
        if (typeof type !== "number") return refused(relation, field, type.refused);
        state.added.set(field, type);
        changed = true;
      }
      if (inputRow !== null && dropsColumns(row, inputRow, input, output, columns, state)) {
        changed = true;
      }
    }
    if (changed) state.relation = shapedRelation(relation, state);
    return state.relation;
  }
}

/** Notes the table's columns the input row had and the output row lacks; true if new. */
function dropsColumns(
  row: Row,
  inputRow: Row,
  input: ChangeEvent,
  output: ChangeEvent,
  columns: ReadonlyMap<string, RelationColumn>,
  state: ShapeState,
): boolean {
  let changed = false;
  for (const field in inputRow) {
    if (field in row || state.dropped.has(field) || !columns.has(field)) continue;
    if (input.unchanged.includes(field) || output.unchanged.includes(field)) continue;
    state.dropped.add(field);
    changed = true;
  }
  return changed;
}

const byName = new WeakMap<RelationMessage, Map<string, RelationColumn>>();

function columnsByName(relation: RelationMessage): ReadonlyMap<string, RelationColumn> {
  let map = byName.get(relation);
  if (map === undefined) {
    byName.set(relation, map = new Map(relation.columns.map((c) => [c.name, c])));
  }
  return map;
}

/** The relation of an output shape: the table's columns (less dropped, retyped), then added. */
function shapedRelation(relation: RelationMessage, state: ShapeState): RelationMessage {
  if (state.added.size + state.retyped.size + state.dropped.size === 0) return relation;
  const columns: RelationColumn[] = [];
  for (const column of relation.columns) {
    if (state.dropped.has(column.name)) continue;
    const retyped = state.retyped.get(column.name);
    columns.push(
      retyped === undefined ? column : { ...column, typeOid: retyped, typeModifier: -1 },
    );
  }
  for (const [name, typeOid] of state.added) {
    columns.push({ flags: 0, isKey: false, name, typeOid, typeModifier: -1 });
  }
  return { ...relation, columns };
}

function describe(value: unknown): string {
  if (value instanceof Uint8Array) return "a Uint8Array";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function typeName(oid: number): string {
  for (const type of BUILTIN_TYPES) {
    if (type.oid === oid) return type.name;
    if (type.arrayOid === oid) return `${type.name}[]`;
  }
  return `oid ${oid}`;
}

function mismatch(
  relation: RelationMessage,
  field: string,
  oid: number,
  value: unknown,
  declared: ReadonlyMap<string, number>,
): string {
  const how = declared.has(field)
    ? "declared"
    : relation.columns.some((c) => c.name === field && c.typeOid === oid)
    ? "the column's type"
    : "inferred from its first value";
  return `field ${field} of ${relation.namespace}.${relation.relationName} as ${
    describe(value)
  }, but its type is ${
    typeName(oid)
  } (${how}); return values of one kind per field, or declare its type: output: { ${field}: "<type>" }`;
}

function refused(relation: RelationMessage, field: string, what: string): string {
  return `field ${field} of ${relation.namespace}.${relation.relationName} as ${what}, which has no type to be written as; return a string, number, bigint, boolean, Uint8Array or an array of them (an object as JSON text, declared: output: { ${field}: "jsonb" })`;
}
