/**
 * What the catalog says of a table beyond its Relation message: which columns are NOT NULL,
 * their defaults, and the primary key. pgoutput sends none of these, yet Debezium's schemas
 * carry them (`optional`, `default`) and its keys are the primary key even under REPLICA
 * IDENTITY FULL. The source reads them when a Relation message arrives; sinks look them up
 * by relation id.
 *
 * @module
 */

/** One column's catalog facts. */
export interface ColumnFacts {
  notNull: boolean;
  /** The default expression as `pg_get_expr` prints it (`0`, `'new'::text`, `now()`); null: none. */
  default: string | null;
}

/** One table's catalog facts, read when its Relation message arrived. */
export interface TableFacts {
  relid: number;
  /** Primary key columns in key order; `null` when the table has none. */
  primaryKey: string[] | null;
  columns: ReadonlyMap<string, ColumnFacts>;
}

/**
 * The newest facts per relation id, shared by the source (which fills it) and the sinks and
 * the router (which read it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TableFactsRegistry } from "./table_facts.ts";
 * const tables = new TableFactsRegistry();
 * tables.set({ relid: 7, primaryKey: ["id"], columns: new Map() });
 * assert.deepEqual(tables.get(7)?.primaryKey, ["id"]);
 * assert.equal(tables.get(8), undefined);
 * ```
 */
export class TableFactsRegistry {
  #tables = new Map<number, TableFacts>();

  get(relid: number): TableFacts | undefined {
    return this.#tables.get(relid);
  }

  set(facts: TableFacts): void {
    this.#tables.set(facts.relid, facts);
  }
}
