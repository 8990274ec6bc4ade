/**
 * What a transform module sees: its hooks, the events they take and return, and their
 * context. A transform file default-exports `defineTransform<Row>({...})`; the hooks mirror a
 * logical decoding output plugin's callbacks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineTransform, type TransformEvent } from "./api.ts";
 *
 * interface Orders { id: bigint; status: string; note: string | null }
 *
 * const transform = defineTransform<Orders>({
 *   change(event) {
 *     if (event.after?.status === "test") return null; // dropped
 *     if (event.after === null) return event;
 *     // A changed event: one field renamed, one dropped.
 *     const { note: _note, status, ...rest } = event.after;
 *     return { ...event, after: { ...rest, state: status } };
 *   },
 * });
 * const event: TransformEvent<Orders> = {
 *   op: "c",
 *   source: { schema: "public", table: "orders", relid: 1, lsn: "0/1", commitLsn: "0/2", xid: 7, commitTime: "2026-12-05T12:00:00.000000Z" },
 *   before: null,
 *   after: { id: 1n, status: "paid", note: null },
 *   unchanged: [],
 * };
 * assert.deepEqual((transform.change!(event, {} as never) as TransformEvent).after, { id: 1n, state: "paid" });
 * ```
 *
 * @module
 */

/** A row as a transform sees it: column name → typed value. */
export type TransformRow = Record<string, unknown>;

/** Where a change came from. LSNs are text (`16/B374D848`), the commit time ISO 8601 UTC. */
export interface TransformSource {
  schema: string;
  table: string;
  relid: number;
  lsn: string;
  commitLsn: string;
  xid: number;
  commitTime: string;
  origin?: string;
}

/**
 * One change, as a transform gets and returns it. `topic`, `key` and `headers` are the routing
 * of the event; a transform may set them on what it returns (a returned event without them
 * keeps the input's).
 */
export interface TransformEvent<R = TransformRow> {
  /** `c` insert, `u` update, `d` delete, `r` snapshot read. */
  op: "c" | "u" | "d" | "r";
  source: TransformSource;
  before: R | null;
  after: R | null;
  /** Columns whose unchanged TOASTed value the server did not send (absent from `after`). */
  unchanged: string[];
  topic?: string;
  key?: TransformRow | null;
  headers?: Record<string, string>;
}

/** A TRUNCATE of one table. */
export interface TransformTruncate {
  op: "t";
  source: TransformSource;
  cascade: boolean;
  restartIdentity: boolean;
}

/** A `pg_logical_emit_message` message (hooks see them only when asked for). */
export interface TransformMessage {
  op: "m";
  transactional: boolean;
  prefix: string;
  content: Uint8Array;
  lsn: string;
}

/** A transaction, at its begin and its commit. */
export interface TransformTransaction {
  xid: number;
  commitLsn: string;
  commitTime: string;
}

/** A column of the table, as the server described it in its latest Relation message. */
export interface TransformColumn {
  name: string;
  /** The type's OID. */
  typeOid: number;
  /** The type's name, e.g. `int8`, `text`, `_int4` for an array. */
  type: string;
  /** Part of the replica identity (the key). */
  key: boolean;
  /** An enum's labels, in sort order. */
  values?: string[];
}

/** The table a hook runs for. */
export interface TransformRelation {
  schema: string;
  table: string;
  relid: number;
  columns: TransformColumn[];
}

/** What every hook gets besides its event. */
export interface TransformContext {
  /** Logs a line tagged with the transform's file (and, where `relation` is set, the table). */
  log(level: "debug" | "info" | "warn" | "error", message: string, fields?: TransformRow): void;
  /** The table's columns now (in `change`, `truncate` and `schemaChange`). */
  relation?: TransformRelation;
  /** The transaction (in `begin`, `commit`, `change` and `truncate`; in `message` when transactional). */
  transaction?: TransformTransaction;
  /**
   * State of this transform: kept across the events of one worker, and across a reload to a
   * new version when the transform's `keepState` is true.
   */
  state: TransformRow;
}

/**
 * What `change` returns: the event, a changed one of any row shape, several (fan-out), or none
 * (`null` or `[]`).
 */
export type ChangeResult = TransformEvent<object> | TransformEvent<object>[] | null;

/** The hooks of a transform; each is optional, and each may be async. */
export interface TransformHooks<R = TransformRow> {
  /** Once per worker, before its first event. */
  setup?(ctx: TransformContext): void | Promise<void>;
  /** Once when the worker stops (the pipeline stops, or a new version takes over). */
  teardown?(ctx: TransformContext): void | Promise<void>;
  begin?(transaction: TransformTransaction, ctx: TransformContext): void | Promise<void>;
  /** Each insert, update and delete of the table. */
  change?(
    event: TransformEvent<R>,
    ctx: TransformContext,
  ): ChangeResult | Promise<ChangeResult>;
  /** A TRUNCATE: return it to keep it, `null` to drop it. */
  truncate?(
    event: TransformTruncate,
    ctx: TransformContext,
  ): TransformTruncate | null | Promise<TransformTruncate | null>;
  /** Messages (`pg_logical_emit_message`): return it to keep it, `null` to drop it. */
  message?(
    event: TransformMessage,
    ctx: TransformContext,
  ): TransformMessage | null | Promise<TransformMessage | null>;
  commit?(transaction: TransformTransaction, ctx: TransformContext): void | Promise<void>;
  /** The table's columns changed (DDL): called before the first event with the new shape. */
  schemaChange?(
    previous: TransformRelation,
    next: TransformRelation,
    ctx: TransformContext,
  ): void | Promise<void>;
  /** Keep `ctx.state` when a new version of the file takes over (default false). */
  keepState?: boolean;
  /**
   * The types of fields the transform adds or retypes, by field name, for the sinks' schemas
   * (Debezium's Connect schema, Avro). A field not declared is typed from its first non-null
   * value: a string `text`, a number `float8`, a bigint `int8`, a boolean `bool`, a Uint8Array
   * `bytea`, an array of them that type's array.
   */
  output?: Record<string, OutputType>;
}

/** A type a transform's `output` may give a field; each also as an array (`"text[]"`). */
export type OutputType =
  | OutputScalar
  | `${OutputScalar}[]`;

type OutputScalar =
  | "text"
  | "varchar"
  | "bool"
  | "boolean"
  | "int2"
  | "smallint"
  | "int4"
  | "integer"
  | "int"
  | "int8"
  | "bigint"
  | "float4"
  | "real"
  | "float8"
  | "double precision"
  | "numeric"
  | "bytea"
  | "uuid"
  | "json"
  | "jsonb"
  | "date"
  | "time"
  | "timestamp"
  | "timestamptz";

/** A transform, as a module's default export. */
export type Transform<R = TransformRow> = TransformHooks<R> & { readonly [TRANSFORM]: true };

/** Marks what {@linkcode defineTransform} made, so a loader can tell a transform from other exports. */
export const TRANSFORM: unique symbol = Symbol.for("spillway.transform");

/**
 * Declares a transform; `R` is the table's row type (see `spillway types`). Returns the hooks,
 * marked.
 */
export function defineTransform<R = TransformRow>(hooks: TransformHooks<R>): Transform<R> {
  return Object.assign(Object.create(null), hooks, { [TRANSFORM]: true as const });
}
