/**
 * The relation cache: what each relation id means, as the server last described it.
 *
 * @module
 */

import type { RelationColumn, RelationMessage, TypeMessage } from "./pgoutput.ts";

/** What a Relation message did to the cache. */
export type RelationChange =
  | { kind: "new"; relation: RelationMessage }
  | { kind: "same"; relation: RelationMessage }
  | {
    kind: "schema-change";
    previous: RelationMessage;
    relation: RelationMessage;
    version: number;
  };

/** What the cache holds for one relation: its newest Relation and its schema version. */
export interface RelationEntry {
  relation: RelationMessage;
  version: number;
}

/**
 * Keeps the newest Relation per relation id. The server re-sends an identical
 * Relation at any time (new session, cache invalidation); only a change of name,
 * replica identity or columns counts as a schema change and bumps the version.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RelationCache } from "./relations.ts";
 * const cache = new RelationCache();
 * const orders = {
 *   type: "Relation" as const, relationId: 1, namespace: "public", relationName: "orders",
 *   replicaIdentity: "d" as const,
 *   columns: [{ flags: 1, isKey: true, name: "id", typeOid: 20, typeModifier: -1 }],
 * };
 * assert(cache.apply(orders).kind === "new");
 * assert(cache.apply(orders).kind === "same");
 * ```
 */
export class RelationCache {
  #relations = new Map<number, RelationMessage>();
  #versions = new Map<number, number>();
  #types = new Map<number, TypeMessage>();

  /** Records a Relation message and reports whether it changed the relation. */
  apply(relation: RelationMessage): RelationChange {
    const previous = this.#relations.get(relation.relationId);
    this.#relations.set(relation.relationId, relation);
    if (previous === undefined) {
      this.#versions.set(relation.relationId, 1);
      return { kind: "new", relation };
    }
    if (sameShape(previous, relation)) return { kind: "same", relation };
    const version = (this.#versions.get(relation.relationId) ?? 1) + 1;
    this.#versions.set(relation.relationId, version);
    return { kind: "schema-change", previous, relation, version };
  }

  /** Records a Type message (user-defined types: enums, domains, composites, extensions). */
  applyType(type: TypeMessage): void {
    this.#types.set(type.typeOid, type);
  }

  get(relationId: number): RelationMessage | undefined {
    return this.#relations.get(relationId);
  }

  /** The schema version of a relation: 1 when first seen, +1 on each schema change. */
  version(relationId: number): number {
    return this.#versions.get(relationId) ?? 0;
  }

  /** What the cache holds for a relation now (`undefined`: nothing), for {@linkcode restore}. */
  entry(relationId: number): RelationEntry | undefined {
    const relation = this.#relations.get(relationId);
    if (relation === undefined) return undefined;
    return { relation, version: this.#versions.get(relationId) ?? 1 };
  }

  /**
   * Puts back what {@linkcode entry} returned (`undefined` forgets the relation), as when the
   * transaction that changed the relation was dropped and will be sent again.
   */
  restore(relationId: number, entry: RelationEntry | undefined): void {
    if (entry === undefined) {
      this.#relations.delete(relationId);
      this.#versions.delete(relationId);
    } else {
      this.#relations.set(relationId, entry.relation);
      this.#versions.set(relationId, entry.version);
    }
  }

  type(typeOid: number): TypeMessage | undefined {
    return this.#types.get(typeOid);
  }
}

function sameShape(a: RelationMessage, b: RelationMessage): boolean {
  if (
    a.namespace !== b.namespace || a.relationName !== b.relationName ||
    a.replicaIdentity !== b.replicaIdentity || a.columns.length !== b.columns.length
  ) {
    return false;
  }
  return a.columns.every((column, i) => sameColumn(column, b.columns[i]!));
}

function sameColumn(a: RelationColumn, b: RelationColumn): boolean {
  return a.name === b.name && a.typeOid === b.typeOid && a.typeModifier === b.typeModifier &&
    a.flags === b.flags;
}
