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
 *   TOASTed one) is **dropped**, for good (see {@linkcode OutputShapes.relationOf});
 * - a column whose value is of another kind than its type's (a numeric's string returned as a
 *   number, say) is **retyped** when `output` declares its new type, and refused otherwise.
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
import { type ChangeEvent, SHAPED_FROM } from "../events.ts";

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

const KINDS = new Map<number, Kind>([
  ...NUMBER_TYPES.map((oid) => [oid, "number"] as const),
  ...STRING_TYPES.map((oid) => [oid, "string"] as const),
  ...[...ARRAY_TYPES].map((oid) => [oid, "array"] as const),
  [Oid.int8, "bigint"],
  [Oid.bool, "boolean"],
  [Oid.bytea, "bytes"],
]);

/** The kind of a type's values; `null` when not one kind, or not known here (no check). */
function kindOf(oid: number): Kind | null {
  return KINDS.get(oid) ?? null;
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
      // Elements of one of the scalar kinds above; their array type as pg_type has it.
      return arrayOid(type) ?? { refused: "an array of values that have no array type" };
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
        typeof name === "string" ? JSON.stringify(name) : String(name)
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

/** What is known of one table's output shape on one topic from one transform version. */
interface ShapeState {
  /** Fields not in the table, with their types, in the order first seen. */
  added: Map<string, number>;
  /** Columns of the table with another type (declared). */
  retyped: Map<string, number>;
  dropped: Set<string>;
  /** The relation the output follows now. */
  relation: RelationMessage;
}

/**
 * The output shapes of one transform version, per input relation and topic.
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

  #state(relation: RelationMessage, topic: string): ShapeState {
    let byTopic = this.#states.get(relation);
    if (byTopic === undefined) this.#states.set(relation, byTopic = new Map());
    let state = byTopic.get(topic);
    if (state === undefined) {
      state = { added: new Map(), retyped: new Map(), dropped: new Set(), relation };
      // A declared type for a column of the table retypes it from the first event on.
      for (const column of relation.columns) {
        const declared = this.#declared.get(column.name);
        if (declared !== undefined && declared !== column.typeOid) {
          state.retyped.set(column.name, declared);
        }
      }
      if (state.retyped.size > 0) state.relation = shapedRelation(relation, state);
      byTopic.set(topic, state);
    }
    return state;
  }

  /**
   * The relation an output event of a change follows on `topic` (the input's `relation` while
   * its shape is the table's), or why it cannot be written. What an output teaches (a field
   * added, a column dropped) is kept only when the whole event is valid.
   *
   * - `after` (or a delete's `before`) teaches: a field that is not a column is added; a column
   *   the input's row had and the output's lacks (not an unchanged TOASTed one) is dropped, for
   *   good: an output that has it again is refused (a column returned sometimes would have its
   *   values left out, or the schema change back and forth).
   * - An update's `before` is written in that shape: its values are checked, but the columns
   *   the shape dropped are left out of it (a transform may pass the old row through).
   * - A column's value of another kind than its type's is refused unless `output` declares the
   *   new type: inferred from values, a column's type would depend on which event came first.
   */
  relationOf(
    input: ChangeEvent,
    output: ChangeEvent,
    relation: RelationMessage,
    topic = "",
  ): RelationMessage | string {
    const state = this.#state(relation, topic);
    // The event as it came, and a shape that is the table's: nothing to learn or check.
    if (output === input && state.relation === relation) return relation;
    const columns = columnsByName(relation);
    let added: Map<string, number> | null = null;
    let dropped: Set<string> | null = null;
    for (const row of [output.after, output.before]) {
      if (row === null) continue;
      const isAfter = row === output.after;
      const inputRow = isAfter ? input.after : input.before;
      const where = isAfter ? "after" : "before";
      for (const field in row) {
        const value = row[field];
        const column = columns.get(field);
        if (column !== undefined) {
          if (state.dropped.has(field)) {
            if (!isAfter) continue; // left out of an old row passed through
            return reappeared(relation, field);
          }
          if (value === null || value === undefined) continue;
          const retyped = state.retyped.get(field);
          // Passed through as it came, in a column of the table's type: nothing to check.
          if (retyped === undefined && inputRow !== null && inputRow[field] === value) continue;
          const type = retyped ?? column.typeOid;
          if (!fits(type, value)) {
            return mismatch(relation, where, field, type, value, this.#declared);
          }
          continue;
        }
        const known = state.added.get(field) ?? added?.get(field);
        if (known !== undefined) {
          if (value === null || value === undefined || fits(known, value)) continue;
          return mismatch(relation, where, field, known, value, this.#declared);
        }
        const declared = this.#declared.get(field);
        if (declared !== undefined) {
          if (value !== null && value !== undefined && !fits(declared, value)) {
            return mismatch(relation, where, field, declared, value, this.#declared);
          }
          (added ??= new Map()).set(field, declared);
          continue;
        }
        if (value === null || value === undefined) continue; // typed once it has a value
        const type = inferType(value);
        if (type === null) continue;
        if (typeof type !== "number") return refused(relation, field, type.refused);
        (added ??= new Map()).set(field, type);
      }
      // Only a new row says which columns the transform leaves out.
      if (isAfter && inputRow !== null) {
        for (const field in inputRow) {
          if (field in row || state.dropped.has(field) || !columns.has(field)) continue;
          if (input.unchanged.includes(field) || output.unchanged.includes(field)) continue;
          (dropped ??= new Set()).add(field);
        }
      }
    }
    if (added === null && dropped === null) return state.relation;
    for (const [field, type] of added ?? []) state.added.set(field, type);
    for (const field of dropped ?? []) state.dropped.add(field);
    state.relation = shapedRelation(relation, state);
    return state.relation;
  }
}

const byName = new WeakMap<RelationMessage, Map<string, RelationColumn>>();

function columnsByName(relation: RelationMessage): ReadonlyMap<string, RelationColumn> {
  let map = byName.get(relation);
  if (map === undefined) {
    byName.set(relation, map = new Map(relation.columns.map((c) => [c.name, c])));
  }
  return map;
}

/**
 * The relation of an output shape: the table's columns (less dropped, retyped), then added; it
 * names the table's relation as {@linkcode SHAPED_FROM} (the key keeps the table's columns).
 */
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
  return { ...relation, columns, [SHAPED_FROM]: relation } as RelationMessage;
}

function reappeared(relation: RelationMessage, field: string): string {
  return `field ${field} of ${relation.namespace}.${relation.relationName}, which earlier outputs left out (so its schema has no such field now); return the column always or never`;
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
  where: "before" | "after",
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
  return `field ${field} of ${relation.namespace}.${relation.relationName} (in ${where}) as ${
    describe(value)
  }, but its type is ${
    typeName(oid)
  } (${how}); return values of one kind per field, in before as in after, or declare its type: output: { ${field}: "<type>" }`;
}

function refused(relation: RelationMessage, field: string, what: string): string {
  return `field ${field} of ${relation.namespace}.${relation.relationName} as ${what}, which has no type to be written as; return a string, number, bigint, boolean, Uint8Array or an array of them (an object as JSON text, declared: output: { ${field}: "jsonb" }; a Date as PostgreSQL prints a timestamptz, declared: output: { ${field}: "timestamptz" })`;
}
