/**
 * Fixtures for the unit tests of the rules: a pipeline and what the catalog queries read,
 * without a server.
 *
 * @module
 */

import { parsePipelineConfig, type PipelineConfig } from "../config/mod.ts";
import type { Server, Setting, SlotRow } from "../postgres/catalog.ts";

/** The source URL of {@linkcode pipeline}, with a password. */
export const SOURCE_URL = "postgres://app:s3cret@db.example:5432/shop";

/** A pipeline on {@linkcode SOURCE_URL} with `source` lines added. */
export function pipeline(source: string[] = []): PipelineConfig {
  const yaml = [
    "source:",
    `  url: "${SOURCE_URL}"`,
    "  slot: orders_cdc",
    "  publication: orders_pub",
    ...source.map((line) => `  ${line}`),
    "tables:",
    "  public.orders: {}",
    "sinks: [stdout: {}]",
  ].join("\n");
  return parsePipelineConfig(yaml, { file: "test.yaml", env: {} });
}

/** A setting as `pg_settings` gives it. */
export function setting(value: string, unit: string | null = null): Setting {
  return { value, unit, pendingRestart: false };
}

/** An inactive pgoutput slot of database "shop", with `changes` applied. */
export function slot(name: string, changes: Partial<SlotRow> = {}): SlotRow {
  return {
    slotName: name,
    plugin: "pgoutput",
    slotType: "logical",
    database: "shop",
    temporary: false,
    active: false,
    activePid: null,
    restartLsn: "0/1000000",
    confirmedFlushLsn: "0/1000000",
    lagBytes: 0,
    walStatus: "reserved",
    safeWalSize: null,
    twoPhase: false,
    failover: false,
    synced: false,
    invalidationReason: null,
    conflicting: false,
    ...changes,
  };
}

/** A PostgreSQL 17 server with good settings, `settings` overriding them. */
export function server(settings: Record<string, Setting>, slots: SlotRow[] = []): Server {
  return {
    user: "app",
    database: "shop",
    version: "17.2",
    major: 17,
    superuser: false,
    replication: true,
    inRecovery: false,
    canCreateInDatabase: true,
    settings: new Map(Object.entries({
      wal_level: setting("logical"),
      max_replication_slots: setting("10"),
      max_wal_senders: setting("10"),
      max_slot_wal_keep_size: setting("1024", "MB"),
      wal_sender_timeout: setting("60000", "ms"),
      ...settings,
    })),
    slots,
    walSenders: 0,
  };
}
