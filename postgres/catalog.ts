/**
 * The administrative SQL Spillway sends, written once for PostgreSQL 14 to 18, as typed
 * rows: replication slots with their lag and WAL status, the server, the role and its
 * settings, the tables of a database with their replica identity, a publication, and the
 * event triggers of DDL capture.
 * `spillway check`, `spillway slots`, the monitor and the source share them.
 *
 * Columns that only newer servers have (`conflicting` 16+, `failover`, `synced`,
 * `invalidation_reason` 17+) are `null` before that.
 *
 * @module
 */

import type { ColumnFacts, TableFacts } from "../decoder/table_facts.ts";
import type { PgConnection } from "./connection.ts";
import { quoteLiteral } from "./sql.ts";

/** One row of `pg_replication_slots`, typed; `null` where the server has no such column. */
export interface SlotRow {
  slotName: string;
  /** `null` for a physical slot. */
  plugin: string | null;
  slotType: "logical" | "physical";
  /** `null` for a physical slot. */
  database: string | null;
  temporary: boolean;
  active: boolean;
  activePid: number | null;
  restartLsn: string | null;
  confirmedFlushLsn: string | null;
  /** Bytes from `confirmed_flush_lsn` to the current WAL position; `null` without one. */
  lagBytes: number | null;
  /** `reserved`, `extended`, `unreserved` or `lost`; `null` when the slot reserves no WAL. */
  walStatus: string | null;
  /** Bytes that can still be written before the slot is lost; `null` when unlimited. */
  safeWalSize: number | null;
  twoPhase: boolean;
  /** PostgreSQL 17+. */
  failover: boolean | null;
  /** PostgreSQL 17+: a slot synchronised from the primary (on a standby). */
  synced: boolean | null;
  /** PostgreSQL 17+: why the slot was invalidated, e.g. `wal_removed`. */
  invalidationReason: string | null;
  /** PostgreSQL 16+: invalidated by a recovery conflict (on a standby). */
  conflicting: boolean | null;
}

/** Options of {@linkcode querySlots}. */
export interface QuerySlotsOptions {
  /** Only this slot. */
  slot?: string;
  /** Only logical slots of the connection's database. */
  currentDatabase?: boolean;
}

/**
 * Reads `pg_replication_slots` with the columns the server has, plus the lag of each
 * slot behind the current WAL position (the replay position on a standby).
 */
export async function querySlots(
  connection: PgConnection,
  options: QuerySlotsOptions = {},
): Promise<SlotRow[]> {
  const major = connection.serverMajorVersion;
  const columns = [
    "slot_name",
    "plugin",
    "slot_type",
    "database",
    "temporary",
    "active",
    "active_pid",
    "restart_lsn",
    "confirmed_flush_lsn",
    "wal_status",
    "safe_wal_size",
    "two_phase",
  ];
  if (major >= 16) columns.push("conflicting");
  if (major >= 17) columns.push("failover", "synced", "invalidation_reason");
  const position = "CASE WHEN pg_catalog.pg_is_in_recovery() " +
    "THEN pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() END";
  const where: string[] = [];
  if (options.slot !== undefined) where.push(`slot_name = ${quoteLiteral(options.slot)}`);
  if (options.currentDatabase) {
    where.push("slot_type = 'logical'", "database = pg_catalog.current_database()");
  }
  const rows = await connection.queryObjects(
    `SELECT ${columns.join(", ")},
            pg_catalog.pg_wal_lsn_diff(${position}, confirmed_flush_lsn) AS lag_bytes
       FROM pg_catalog.pg_replication_slots
      ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY slot_name`,
  );
  return rows.map((row) => ({
    slotName: row.slot_name ?? "",
    plugin: row.plugin ?? null,
    slotType: row.slot_type === "physical" ? "physical" : "logical",
    database: row.database ?? null,
    temporary: row.temporary === "t",
    active: row.active === "t",
    activePid: numberOrNull(row.active_pid),
    restartLsn: row.restart_lsn ?? null,
    confirmedFlushLsn: row.confirmed_flush_lsn ?? null,
    lagBytes: numberOrNull(row.lag_bytes),
    walStatus: row.wal_status ?? null,
    safeWalSize: numberOrNull(row.safe_wal_size),
    twoPhase: row.two_phase === "t",
    failover: booleanOrNull(row.failover),
    synced: booleanOrNull(row.synced),
    invalidationReason: row.invalidation_reason ?? null,
    conflicting: booleanOrNull(row.conflicting),
  }));
}

/** A slot's logical decoding statistics, from `pg_stat_replication_slots`. */
export interface SlotStats {
  /** Transactions the walsender spilled to disk (over `logical_decoding_work_mem`). */
  spillTxns: number;
  spillBytes: number;
  /** In-progress transactions streamed to the client. */
  streamTxns: number;
  streamBytes: number;
}

/** Reads one slot's decoding statistics; `null` when the server has none for it (yet). */
export async function querySlotStats(
  connection: PgConnection,
  slot: string,
): Promise<SlotStats | null> {
  const [row] = await connection.queryObjects(
    `SELECT spill_txns, spill_bytes, stream_txns, stream_bytes
       FROM pg_catalog.pg_stat_replication_slots WHERE slot_name = ${quoteLiteral(slot)}`,
  );
  if (row === undefined) return null;
  return {
    spillTxns: Number(row.spill_txns ?? 0),
    spillBytes: Number(row.spill_bytes ?? 0),
    streamTxns: Number(row.stream_txns ?? 0),
    streamBytes: Number(row.stream_bytes ?? 0),
  };
}

// ---------------------------------------------------------------------------------------
// Server and settings

/** One row of `pg_settings`: the value as text, in the setting's own unit. */
export interface Setting {
  value: string;
  /** `ms`, `s`, `min`, `kB`, `MB`, `8kB`…; `null` for a setting without a unit. */
  unit: string | null;
  /** A new value is set but applies only after a restart. */
  pendingRestart: boolean;
}

/** The settings {@linkcode readServer} reads: replication, WAL retention, timeouts, failover. */
export const SETTINGS: readonly string[] = [
  "wal_level",
  "max_replication_slots",
  "max_wal_senders",
  "max_slot_wal_keep_size",
  "wal_sender_timeout",
  "sync_replication_slots",
  "synchronized_standby_slots",
  "standby_slot_names",
  "hot_standby_feedback",
];

/**
 * Reads settings from `pg_settings` by name. A name the server does not know (a setting
 * of a newer version) is absent from the map.
 */
export async function readSettings(
  connection: PgConnection,
  names: readonly string[] = SETTINGS,
): Promise<Map<string, Setting>> {
  const settings = new Map<string, Setting>();
  if (names.length === 0) return settings;
  const rows = await connection.queryObjects(
    `SELECT name, setting, unit, pending_restart FROM pg_catalog.pg_settings
      WHERE name IN (${names.map(quoteLiteral).join(", ")})`,
  );
  for (const row of rows) {
    settings.set(row.name ?? "", {
      value: row.setting ?? "",
      unit: row.unit ?? null,
      pendingRestart: row.pending_restart === "t",
    });
  }
  return settings;
}

/**
 * A time setting in milliseconds: its value times its unit (`ms`, `s`, `min`; none is
 * taken as `ms`). `-1` or `0`, which mean "off" for many settings, stay negative or zero.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { settingMs } from "./catalog.ts";
 * assert.equal(settingMs({ value: "60000", unit: "ms", pendingRestart: false }), 60_000);
 * assert.equal(settingMs({ value: "5", unit: "min", pendingRestart: false }), 300_000);
 * ```
 */
export function settingMs(setting: Setting): number {
  const factors: Record<string, number> = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 };
  return Number(setting.value) * (factors[setting.unit ?? "ms"] ?? 1);
}

/**
 * The longest standby status interval a replication client can use under a server's
 * `wal_sender_timeout`: a third of the timeout, kept between 100 ms and 10 s; 10 s when
 * the timeout is off (0). The replication source never sends status updates further
 * apart than this, whatever `source.status_interval` says.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxStatusIntervalMs } from "./catalog.ts";
 * assert.equal(maxStatusIntervalMs(60_000), 10_000);
 * assert.equal(maxStatusIntervalMs(6_000), 2_000);
 * assert.equal(maxStatusIntervalMs(0), 10_000);
 * ```
 */
export function maxStatusIntervalMs(walSenderTimeoutMs: number): number {
  if (walSenderTimeoutMs <= 0) return 10_000;
  return Math.max(100, Math.min(10_000, Math.floor(walSenderTimeoutMs / 3)));
}

/** What {@linkcode readServer} learns about the server and the connected role. */
export interface Server {
  user: string;
  database: string;
  /** `server_version` up to the first space, e.g. `17.2`. */
  version: string;
  major: number;
  superuser: boolean;
  replication: boolean;
  inRecovery: boolean;
  /** The role may create schemas and publications in the database. */
  canCreateInDatabase: boolean;
  /** The {@linkcode SETTINGS}. */
  settings: Map<string, Setting>;
  /** Every slot of the server, of every database and type. */
  slots: SlotRow[];
  /** Rows of `pg_stat_replication`: WAL senders in use. */
  walSenders: number;
}

/** Reads the server, the current role and its rights, the settings and the slots. */
export async function readServer(connection: PgConnection): Promise<Server> {
  const [who] = await connection.queryObjects(
    `SELECT current_user AS user_name, pg_catalog.current_database() AS database,
            pg_catalog.current_setting('server_version') AS version,
            pg_catalog.current_setting('server_version_num') AS version_num,
            r.rolsuper, r.rolreplication, pg_catalog.pg_is_in_recovery() AS in_recovery,
            pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE') AS can_create
       FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`,
  );
  if (who === undefined) throw new Error("Cannot read the current role from pg_roles");
  const settings = await readSettings(connection);
  const [senders] = await connection.queryObjects(
    "SELECT count(*) AS n FROM pg_catalog.pg_stat_replication",
  );
  return {
    user: who.user_name ?? "",
    database: who.database ?? "",
    version: (who.version ?? "").split(" ")[0] ?? "",
    major: Math.floor(Number(who.version_num) / 10_000),
    superuser: who.rolsuper === "t",
    replication: who.rolreplication === "t",
    inRecovery: who.in_recovery === "t",
    canCreateInDatabase: who.can_create === "t",
    settings,
    slots: await querySlots(connection),
    walSenders: Number(senders?.n ?? 0),
  };
}

// ---------------------------------------------------------------------------------------
// Tables and publications

/** A table or partitioned table of the database, with its columns and identity. */
export interface DbTable {
  oid: number;
  schema: string;
  table: string;
  /** `schema.table` quoted where needed, for SQL in fixes. */
  qualified: string;
  /** `r` table, `p` partitioned table. */
  kind: string;
  /** `d` default, `n` nothing, `f` full, `i` index. */
  identity: string;
  /** `p` permanent, `u` unlogged (never published). */
  persistence: string;
  /** The partitioned tables above a partition, nearest first; empty for others. */
  ancestors: number[];
  /** The current role owns the table (directly or through a role it has). */
  owned: boolean;
  /** Empty when read with `{ lean: true }`. */
  columns: string[];
  /** The primary key, if PostgreSQL can use it as the replica identity. */
  primaryKey: string[] | null;
  /** The columns of the REPLICA IDENTITY USING INDEX index, if PostgreSQL can use it. */
  identityIndex: string[] | null;
}

/**
 * Reads every table and partitioned table outside the system schemas, by name. `lean` leaves
 * out the columns and ownership (for a frequent look at identities only).
 *
 * An index counts as a replica identity only as PostgreSQL uses one: valid, unique, not
 * deferrable and not partial (a DEFERRABLE primary key leaves a table without identity).
 */
export async function readTables(
  connection: PgConnection,
  options: { lean?: boolean } = {},
): Promise<DbTable[]> {
  const indexColumns = (condition: string) =>
    `(SELECT pg_catalog.json_agg(a.attname ORDER BY k.ord)
        FROM pg_catalog.pg_index i
        CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
       WHERE i.indrelid = c.oid AND ${condition} AND i.indisvalid AND i.indisunique
         AND i.indimmediate AND i.indpred IS NULL)`;
  const details = options.lean ? "" : `,
            pg_catalog.pg_has_role(c.relowner, 'USAGE') AS owned,
            (SELECT pg_catalog.json_agg(a.attname ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns`;
  const rows = await connection.queryObjects(
    `SELECT c.oid, n.nspname AS schema_name, c.relname AS table_name,
            pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS qualified,
            c.relkind AS kind, c.relreplident AS identity, c.relpersistence AS persistence,
            CASE WHEN c.relispartition THEN (SELECT pg_catalog.json_agg(p.relid::oid)
              FROM pg_catalog.pg_partition_ancestors(c.oid) p WHERE p.relid <> c.oid) END
              AS ancestors,
            ${indexColumns("i.indisprimary")} AS primary_key,
            ${indexColumns("i.indisreplident")} AS identity_index${details}
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname !~ '^pg_(toast|temp_)'
      ORDER BY 2, 3`,
  );
  return rows.map((row) => ({
    oid: Number(row.oid),
    schema: row.schema_name ?? "",
    table: row.table_name ?? "",
    qualified: row.qualified ?? "",
    kind: row.kind ?? "r",
    identity: row.identity ?? "d",
    persistence: row.persistence ?? "p",
    ancestors: row.ancestors ? (JSON.parse(row.ancestors) as unknown[]).map(Number) : [],
    owned: row.owned === "t",
    columns: jsonNames(row.columns) ?? [],
    primaryKey: jsonNames(row.primary_key),
    identityIndex: jsonNames(row.identity_index),
  }));
}

/** A column with its type, as `spillway types` and `spillway check` need it. */
export interface ColumnType {
  name: string;
  typeOid: number;
  /** `atttypmod`: `numeric(10,2)`'s precision and scale, say; -1 for none. */
  typeModifier: number;
  notNull: boolean;
}

/** The columns of the tables `relids`, in order, by table OID. */
export async function readColumnTypes(
  connection: PgConnection,
  relids: readonly number[],
): Promise<Map<number, ColumnType[]>> {
  const out = new Map<number, ColumnType[]>(relids.map((oid) => [oid, []]));
  if (relids.length === 0) return out;
  const rows = await connection.queryObjects(
    `SELECT a.attrelid, a.attname, a.atttypid, a.atttypmod, a.attnotnull
       FROM pg_catalog.pg_attribute a
      WHERE a.attrelid IN (${relids.map(Number).join(", ")}) AND a.attnum > 0
        AND NOT a.attisdropped
      ORDER BY a.attrelid, a.attnum`,
  );
  for (const row of rows) {
    out.get(Number(row.attrelid))?.push({
      name: row.attname ?? "",
      typeOid: Number(row.atttypid),
      typeModifier: Number(row.atttypmod ?? -1),
      notNull: row.attnotnull === "t",
    });
  }
  return out;
}

/**
 * The catalog facts of the tables `relids` that pgoutput does not send (NOT NULL, defaults,
 * the primary key); tables that no longer exist are left out.
 */
export async function readTableFacts(
  connection: PgConnection,
  relids: readonly number[],
): Promise<TableFacts[]> {
  if (relids.length === 0) return [];
  const rows = await connection.queryObjects(
    `SELECT c.oid,
            (SELECT pg_catalog.json_agg(a.attname ORDER BY k.ord)
               FROM pg_catalog.pg_index i
               CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indrelid = c.oid AND i.indisprimary) AS primary_key,
            (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(a.attname, a.attnotnull,
                      pg_catalog.pg_get_expr(d.adbin, d.adrelid)) ORDER BY a.attnum)
               FROM pg_catalog.pg_attribute a
               LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 AND a.attgenerated = ''
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns
       FROM pg_catalog.pg_class c
      WHERE c.oid IN (${relids.map(Number).join(", ")})`,
  );
  return rows.map((row) => {
    const columns = new Map<string, ColumnFacts>();
    const list = row.columns ? JSON.parse(row.columns) as [string, boolean, string | null][] : [];
    for (const [name, notNull, expression] of list) {
      columns.set(name, { notNull, default: expression });
    }
    return { relid: Number(row.oid), primaryKey: jsonNames(row.primary_key), columns };
  });
}

/** The columns a table's UPDATE and DELETE carry in their old tuple; `null` for none. */
export function replicaIdentity(table: DbTable): { columns: string[] | null; description: string } {
  switch (table.identity) {
    case "f":
      return { columns: table.columns, description: "REPLICA IDENTITY FULL" };
    case "i":
      return table.identityIndex === null
        ? { columns: null, description: "its REPLICA IDENTITY USING INDEX index is gone" }
        : {
          columns: table.identityIndex,
          description: `index (${table.identityIndex.join(", ")})`,
        };
    case "n":
      return { columns: null, description: "REPLICA IDENTITY NOTHING" };
    default:
      return table.primaryKey === null
        ? { columns: null, description: "no primary key and REPLICA IDENTITY DEFAULT" }
        : {
          columns: table.primaryKey,
          description: `primary key (${table.primaryKey.join(", ")})`,
        };
  }
}

/**
 * The tables among `tables` whose UPDATE and DELETE fail (SQLSTATE 55000) while a publication
 * that publishes them covers the table: permanent tables (not partitioned parents, whose
 * partitions carry the rows) without a replica identity.
 */
export function tablesBlockedByPublishing(tables: readonly DbTable[]): DbTable[] {
  return tables.filter((t) =>
    t.kind === "r" && t.persistence === "p" && replicaIdentity(t).columns === null
  );
}

/**
 * The tables of `all` whose rows a publication of `listed` carries: those listed, and the
 * partitions of listed partitioned tables (also when the publication lists only the root,
 * as with `publish_via_partition_root`). Inheritance children count only when listed.
 */
export function coveredTables(listed: readonly DbTable[], all: readonly DbTable[]): DbTable[] {
  const oids = new Set(listed.map((t) => t.oid));
  return all.filter((t) => oids.has(t.oid) || t.ancestors.some((oid) => oids.has(oid)));
}

/** A publication as {@linkcode readPublications} reads it. */
export interface Publication {
  name: string;
  allTables: boolean;
  /** Of `insert`, `update`, `delete`, `truncate`: those it publishes. */
  operations: string[];
  /** {@linkcode tableKey} of each table (partitions, or their root with `publish_via_partition_root`). */
  tables: Set<string>;
  /** Each table as `schema.table`, quoted where needed. */
  names: string[];
}

/** Reads the publications of the database (only `name` when given), with their tables. */
export async function readPublications(
  connection: PgConnection,
  name?: string,
): Promise<Publication[]> {
  const only = name === undefined ? "" : `WHERE p.pubname = ${quoteLiteral(name)}`;
  const rows = await connection.queryObjects(
    `SELECT p.pubname, p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate,
            (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(t.schemaname, t.tablename,
                      pg_catalog.quote_ident(t.schemaname) || '.' || pg_catalog.quote_ident(t.tablename))
                      ORDER BY t.schemaname, t.tablename)
               FROM pg_catalog.pg_publication_tables t WHERE t.pubname = p.pubname) AS tables
       FROM pg_catalog.pg_publication p ${only} ORDER BY 1`,
  );
  return rows.map((row) => {
    const tables = row.tables ? (JSON.parse(row.tables) as [string, string, string][]) : [];
    return {
      name: row.pubname ?? "",
      allTables: row.puballtables === "t",
      operations: ["insert", "update", "delete", "truncate"].filter((op) =>
        row[`pub${op}`] === "t"
      ),
      tables: new Set(tables.map(([schema, table]) => tableKey(schema, table))),
      names: tables.map(([, , qualified]) => qualified),
    };
  });
}

/** The names of the database's publications (without their tables, so it cannot race a drop). */
export async function publicationNames(connection: PgConnection): Promise<string[]> {
  const rows = await connection.queryObjects(
    "SELECT pubname FROM pg_catalog.pg_publication ORDER BY 1",
  );
  return rows.map((row) => row.pubname ?? "");
}

/** Reads one publication and its tables; `null` when it does not exist. */
export async function readPublication(
  connection: PgConnection,
  name: string,
): Promise<Publication | null> {
  return (await readPublications(connection, name))[0] ?? null;
}

/**
 * The tables among `tables` (as {@linkcode readTables} gives them) that `publication` makes
 * the application's UPDATE and DELETE fail on; none when it publishes neither.
 */
export function tablesBlockedBy(publication: Publication, tables: readonly DbTable[]): DbTable[] {
  if (!publication.operations.some((op) => op === "update" || op === "delete")) return [];
  const covered = publication.allTables ? tables : coveredTables(
    tables.filter((t) => publication.tables.has(tableKey(t.schema, t.table))),
    tables,
  );
  return tablesBlockedByPublishing(covered);
}

/**
 * One key for a table's schema and name, unquoted, for sets and maps of tables.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tableKey } from "./catalog.ts";
 * assert.notEqual(tableKey("a.b", "c"), tableKey("a", "b.c"));
 * ```
 */
export function tableKey(schema: string, table: string): string {
  return `${schema}\u0000${table}`;
}

// ---------------------------------------------------------------------------------------
// DDL capture (source.capture_ddl)

/**
 * The prefix of the logical decoding messages that carry the text of DDL commands, sent by
 * the event trigger {@linkcode ddlCaptureInstallSql} installs.
 */
export const DDL_MESSAGE_PREFIX = "spillway.ddl";

/** The objects DDL capture installs in a database, named so that they are clearly Spillway's. */
export const DDL_CAPTURE = {
  schema: "spillway",
  /** The function's name in `schema`, without arguments. */
  functionName: "spillway_capture_ddl",
  function: "spillway.spillway_capture_ddl()",
  /** ON ddl_command_end: sends one message per DDL command. */
  trigger: "spillway_capture_ddl",
  /** ON sql_drop: keeps what the command dropped for the message of its ddl_command_end. */
  dropTrigger: "spillway_capture_ddl_drop",
} as const;

/**
 * The event trigger function. At `sql_drop` it keeps the dropped objects in a transaction-local
 * setting; at `ddl_command_end` it sends one transactional message: the command tag, the
 * objects the command created or altered, those it dropped, and the client's statement text
 * (`current_query()`: the whole query string when several statements came in one). A command
 * that touched temporary objects only sends nothing (no replica could apply it). As
 * `pg_catalog.pg_proc.prosrc` holds it, to tell an installed copy of this version.
 */
const DDL_CAPTURE_BODY = `
DECLARE
  objects json;
  seen bigint;
  dropped text;
BEGIN
  IF TG_EVENT = 'sql_drop' THEN
    -- Kept for the command's ddl_command_end, which sends one message for both.
    PERFORM set_config('spillway.ddl_dropped', coalesce((
      SELECT json_agg(json_build_object('type', d.object_type, 'schema', d.schema_name,
               'identity', d.object_identity))
        FROM pg_event_trigger_dropped_objects() d
       WHERE (d.original OR d.normal) AND NOT d.is_temporary), '[]')::text, true);
    RETURN;
  END IF;
  SELECT json_agg(json_build_object('type', c.object_type, 'schema', c.schema_name,
           'identity', c.object_identity)) FILTER (WHERE c.schema_name IS DISTINCT FROM 'pg_temp'),
         count(*)
    INTO objects, seen
    FROM pg_event_trigger_ddl_commands() c;
  dropped := nullif(current_setting('spillway.ddl_dropped', true), '');
  PERFORM set_config('spillway.ddl_dropped', '', true);
  -- Temporary objects only: nothing a replica could apply.
  IF objects IS NULL AND coalesce(dropped, '[]') = '[]' AND (seen > 0 OR dropped = '[]') THEN
    RETURN;
  END IF;
  PERFORM pg_logical_emit_message(true, ${quoteLiteral(DDL_MESSAGE_PREFIX)}, json_build_object(
    'tag', TG_TAG,
    'objects', coalesce(objects, '[]'),
    'dropped', coalesce(dropped, '[]')::json,
    'query', current_query())::text);
END
`;

/**
 * The SQL that installs DDL capture in the connected database, as one transaction that a
 * superuser may also run by hand (`psql -f`): the schema `spillway`, the function
 * `spillway.spillway_capture_ddl()`, and the event triggers `spillway_capture_ddl` (ON
 * ddl_command_end) and `spillway_capture_ddl_drop` (ON sql_drop). Running it again replaces
 * them (an advisory lock keeps two installs apart). PostgreSQL 14 to 18 let only superusers
 * create event triggers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ddlCaptureInstallSql } from "./catalog.ts";
 * const sql = ddlCaptureInstallSql();
 * assert.match(sql, /^BEGIN;/);
 * assert.match(sql, /CREATE EVENT TRIGGER spillway_capture_ddl ON ddl_command_end/);
 * assert.match(sql, /COMMIT;$/);
 * ```
 */
export function ddlCaptureInstallSql(): string {
  const { schema, function: fn, trigger, dropTrigger } = DDL_CAPTURE;
  return [
    "BEGIN;",
    "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('spillway_capture_ddl'));",
    `DROP EVENT TRIGGER IF EXISTS ${trigger};`,
    `DROP EVENT TRIGGER IF EXISTS ${dropTrigger};`,
    `CREATE SCHEMA IF NOT EXISTS ${schema};`,
    `CREATE OR REPLACE FUNCTION ${fn} RETURNS event_trigger`,
    `  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $spillway$${DDL_CAPTURE_BODY}$spillway$;`,
    `COMMENT ON FUNCTION ${fn} IS ${
      quoteLiteral(
        `Spillway (source.capture_ddl): sends each DDL command's text into logical replication as a message with prefix ${DDL_MESSAGE_PREFIX}`,
      )
    };`,
    `CREATE EVENT TRIGGER ${trigger} ON ddl_command_end EXECUTE FUNCTION ${fn};`,
    `CREATE EVENT TRIGGER ${dropTrigger} ON sql_drop EXECUTE FUNCTION ${fn};`,
    "COMMIT;",
  ].join("\n");
}

/**
 * The SQL that removes DDL capture from the connected database (as a superuser): the event
 * triggers first, then the function, then the schema `spillway`, which PostgreSQL drops only
 * while nothing else is in it. Other pipelines of the database that capture DDL install it
 * again at their next start.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ddlCaptureRemovalSql } from "./catalog.ts";
 * assert.match(ddlCaptureRemovalSql(), /^DROP EVENT TRIGGER IF EXISTS spillway_capture_ddl;/);
 * ```
 */
export function ddlCaptureRemovalSql(): string {
  const { schema, function: fn, trigger, dropTrigger } = DDL_CAPTURE;
  return [
    `DROP EVENT TRIGGER IF EXISTS ${trigger};`,
    `DROP EVENT TRIGGER IF EXISTS ${dropTrigger};`,
    `DROP FUNCTION IF EXISTS ${fn};`,
    `DROP SCHEMA IF EXISTS ${schema};`,
  ].join("\n");
}

/** What {@linkcode readDdlCapture} finds of DDL capture in a database. */
export interface DdlCaptureState {
  /**
   * `installed`: both event triggers are enabled and call the function of this version;
   * `outdated`: some of it exists, but not so (another version, a disabled trigger), and
   * installing replaces it; `absent`: none of it exists.
   */
  status: "installed" | "outdated" | "absent";
  /** The connected role. */
  role: string;
  /** The role is a superuser (the only kind that may create event triggers). */
  superuser: boolean;
  database: string;
}

/** Reads whether DDL capture is installed in the connected database, and who is connected. */
export async function readDdlCapture(connection: PgConnection): Promise<DdlCaptureState> {
  const { schema, functionName, trigger, dropTrigger } = DDL_CAPTURE;
  // By name in the catalog: to_regprocedure() would need USAGE on the schema.
  const ours = `(SELECT p.oid FROM pg_catalog.pg_proc p
                  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = ${quoteLiteral(schema)}
                   AND p.proname = ${quoteLiteral(functionName)} AND p.pronargs = 0)`;
  const [row] = await connection.queryObjects(
    `SELECT current_user AS role_name, pg_catalog.current_database() AS database_name,
            (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
              AS superuser,
            (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(e.evtname, e.evtevent,
                      e.evtenabled <> 'D' AND e.evtfoid = ${ours}))
               FROM pg_catalog.pg_event_trigger e
              WHERE e.evtname IN (${quoteLiteral(trigger)}, ${quoteLiteral(dropTrigger)}))
              AS triggers,
            (SELECT p.prosrc FROM pg_catalog.pg_proc p WHERE p.oid = ${ours}) AS body`,
  );
  if (row === undefined) throw new Error("Cannot read the DDL capture's event triggers");
  const triggers = row.triggers ? (JSON.parse(row.triggers) as [string, string, boolean][]) : [];
  const fine = (name: string, event: string) =>
    triggers.some(([n, e, good]) => n === name && e === event && good);
  const body = row.body ?? null;
  const installed = body === DDL_CAPTURE_BODY && fine(trigger, "ddl_command_end") &&
    fine(dropTrigger, "sql_drop");
  return {
    status: installed ? "installed" : triggers.length > 0 || body !== null ? "outdated" : "absent",
    role: row.role_name ?? "",
    superuser: row.superuser === "t",
    database: row.database_name ?? "",
  };
}

/** A `json_agg` of names as a list; `null` for SQL NULL (no such index). */
function jsonNames(text: string | null | undefined): string[] | null {
  if (text === null || text === undefined) return null;
  const value: unknown = JSON.parse(text);
  return Array.isArray(value) ? value.map(String) : null;
}

function numberOrNull(text: string | null | undefined): number | null {
  return text === null || text === undefined ? null : Number(text);
}

function booleanOrNull(text: string | null | undefined): boolean | null {
  return text === null || text === undefined ? null : text === "t";
}
