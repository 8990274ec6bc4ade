/**
 * Reads type descriptions from the PostgreSQL catalog for {@linkcode TypeRegistry.register}.
 * The one module in `decoder/types` that does I/O, and only through the connection passed in.
 *
 * @module
 */

import { BUILTIN_TYPES } from "./oids.ts";
import type { TypeField, TypeInfo, TypeKind } from "./registry.ts";

/** What {@linkcode loadTypeInfos} needs from a connection: a simple query returning text rows. */
export interface CatalogConnection {
  queryObjects(sql: string): Promise<Record<string, string | null>[]>;
}

/** Options for {@linkcode loadTypeInfos}. */
export interface LoadTypeInfosOptions {
  /**
   * Types not to load even when another type depends on them. Default: PostgreSQL's built-in
   * types and their arrays (the registry preloads them). Pass `registry.has.bind(registry)` to
   * skip everything a registry already knows.
   */
  isKnown?: (oid: number) => boolean;
}

const BUILTIN_OIDS: ReadonlySet<number> = new Set(
  BUILTIN_TYPES.flatMap((t) => [t.oid, t.arrayOid]).filter((oid) => oid !== 0),
);

function isBuiltin(oid: number): boolean {
  return BUILTIN_OIDS.has(oid);
}

function oidList(oids: Iterable<number>): string {
  const list = [...oids];
  for (const oid of list) {
    if (!Number.isInteger(oid) || oid < 0 || oid > 4294967295) {
      throw new TypeError(`Cannot load type ${oid}: not an OID`);
    }
  }
  return list.join(",");
}

function text(row: Record<string, string | null>, column: string): string {
  const value = row[column];
  if (value === null || value === undefined) {
    throw new TypeError(`Catalog query returned no "${column}"`);
  }
  return value;
}

function int(row: Record<string, string | null>, column: string): number {
  return Number(text(row, column));
}

function groupBy<T>(
  rows: Record<string, string | null>[],
  key: string,
  map: (row: Record<string, string | null>) => T,
): Map<number, T[]> {
  const out = new Map<number, T[]>();
  for (const row of rows) {
    const oid = int(row, key);
    let list = out.get(oid);
    if (list === undefined) out.set(oid, list = []);
    list.push(map(row));
  }
  return out;
}

/**
 * Loads `oids` from `pg_type` (with `pg_enum` labels in sort order, `pg_attribute` fields of
 * composites, and `pg_range` subtypes), then every type those depend on, until all are
 * loaded or known. OIDs that no longer exist are left out.
 *
 * ```ts ignore
 * const oids = registry.missing(relation.columns.map((c) => c.typeOid));
 * for (const info of await loadTypeInfos(connection, oids)) registry.register(info);
 * ```
 */
export async function loadTypeInfos(
  connection: CatalogConnection,
  oids: number[],
  options: LoadTypeInfosOptions = {},
): Promise<TypeInfo[]> {
  const isKnown = options.isKnown ?? isBuiltin;
  const loaded = new Map<number, TypeInfo>();
  const gone = new Set<number>();
  let pending = new Set(oids.filter((oid) => !isKnown(oid)));
  while (pending.size > 0) {
    const batch = oidList(pending);
    const types = await connection.queryObjects(
      `SELECT t.oid, t.typname, n.nspname, t.typtype, t.typelem, t.typbasetype, t.typtypmod,
              t.typrelid, t.typdelim,
              t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc AS is_array
         FROM pg_catalog.pg_type t
         JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
        WHERE t.oid IN (${batch})`,
    );
    const enums: number[] = [];
    const composites = new Map<number, number>(); // typrelid → type OID
    const ranges: number[] = [];
    const multiranges: number[] = [];
    for (const row of types) {
      const oid = int(row, "oid");
      const typtype = text(row, "typtype");
      let kind: TypeKind;
      if (row.is_array === "t" && int(row, "typelem") !== 0) kind = "array";
      else if (typtype === "e") kind = "enum";
      else if (typtype === "d") kind = "domain";
      else if (typtype === "c") kind = "composite";
      else if (typtype === "r") kind = "range";
      else if (typtype === "m") kind = "multirange";
      else kind = "base";
      const info: TypeInfo = {
        oid,
        namespace: text(row, "nspname"),
        name: text(row, "typname"),
        kind,
        delimiter: text(row, "typdelim"),
      };
      switch (kind) {
        case "array":
          info.elementOid = int(row, "typelem");
          break;
        case "domain":
          info.baseOid = int(row, "typbasetype");
          info.baseTypeModifier = int(row, "typtypmod");
          break;
        case "enum":
          enums.push(oid);
          break;
        case "composite":
          composites.set(int(row, "typrelid"), oid);
          break;
        case "range":
          ranges.push(oid);
          break;
        case "multirange":
          multiranges.push(oid);
          break;
        case "base":
          break;
      }
      loaded.set(oid, info);
    }

    if (enums.length > 0) {
      const rows = await connection.queryObjects(
        `SELECT enumtypid, enumlabel FROM pg_catalog.pg_enum
          WHERE enumtypid IN (${oidList(enums)}) ORDER BY enumtypid, enumsortorder`,
      );
      const labels = groupBy(rows, "enumtypid", (row) => text(row, "enumlabel"));
      for (const oid of enums) loaded.get(oid)!.enumLabels = labels.get(oid) ?? [];
    }
    if (composites.size > 0) {
      const rows = await connection.queryObjects(
        `SELECT attrelid, attname, atttypid, atttypmod FROM pg_catalog.pg_attribute
          WHERE attrelid IN (${oidList(composites.keys())}) AND attnum > 0 AND NOT attisdropped
          ORDER BY attrelid, attnum`,
      );
      const fields = groupBy(rows, "attrelid", (row): TypeField => ({
        name: text(row, "attname"),
        typeOid: int(row, "atttypid"),
        typeModifier: int(row, "atttypmod"),
      }));
      for (const [relid, oid] of composites) loaded.get(oid)!.fields = fields.get(relid) ?? [];
    }
    if (ranges.length > 0 || multiranges.length > 0) {
      const wanted = oidList([...ranges, ...multiranges]);
      const rows = await connection.queryObjects(
        `SELECT rngtypid, rngsubtype, rngmultitypid FROM pg_catalog.pg_range
          WHERE rngtypid IN (${wanted}) OR rngmultitypid IN (${wanted})`,
      );
      for (const row of rows) {
        const range = loaded.get(int(row, "rngtypid"));
        if (range?.kind === "range") range.subtypeOid = int(row, "rngsubtype");
        const multirange = loaded.get(int(row, "rngmultitypid"));
        if (multirange?.kind === "multirange") multirange.rangeOid = int(row, "rngtypid");
      }
    }

    // Every type named in this batch is settled (loaded or gone); queue their dependencies.
    const next = new Set<number>();
    const want = (oid: number | undefined) => {
      if (oid === undefined || oid === 0 || loaded.has(oid) || gone.has(oid)) return;
      if (!isKnown(oid)) next.add(oid);
    };
    for (const row of types) {
      const info = loaded.get(int(row, "oid"))!;
      want(info.elementOid);
      want(info.baseOid);
      want(info.subtypeOid);
      want(info.rangeOid);
      for (const field of info.fields ?? []) want(field.typeOid);
    }
    for (const oid of pending) {
      if (!loaded.has(oid)) gone.add(oid);
    }
    pending = next;
  }
  return [...loaded.values()].filter(isComplete);
}

/** A type whose catalog rows were incomplete (dropped mid-query) is left out. */
function isComplete(info: TypeInfo): boolean {
  switch (info.kind) {
    case "composite":
      return info.fields !== undefined;
    case "range":
      return info.subtypeOid !== undefined;
    case "multirange":
      return info.rangeOid !== undefined;
    default:
      return true;
  }
}
