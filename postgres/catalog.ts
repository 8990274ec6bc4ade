/**
 * The administrative SQL Spillway sends, written once for PostgreSQL 14 to 18: replication
 * slots with their lag and WAL status, and server settings.
 *
 * Columns that only newer servers have (`conflicting` 16+, `failover`, `synced`,
 * `invalidation_reason` 17+) are `null` before that.
 *
 * @module
 */

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

/** Parses a PostgreSQL duration setting as SHOW prints it: `60s`, `500ms`, `2min`, `0`. */
export function parseDurationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|min|h|d)?$/.exec(text.trim());
  if (match === null) return 60_000;
  const value = Number(match[1]);
  const unit = match[2] ?? "ms";
  const factor = { ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 }[unit] ?? 1;
  return value * factor;
}

function numberOrNull(text: string | null | undefined): number | null {
  return text === null || text === undefined ? null : Number(text);
}

function booleanOrNull(text: string | null | undefined): boolean | null {
  return text === null || text === undefined ? null : text === "t";
}
