/**
 * The checks of the replication slot (it exists or can be created, its plugin, database,
 * `wal_status` and reader) and of failover (PostgreSQL 17+ failover slots and what a
 * standby needs to synchronise them). Fixes that drop a slot name
 * `spillway slots drop <url> <slot>`.
 *
 * @module
 */

import type { PipelineConfig } from "../config/mod.ts";
import { formatBytes } from "../config/units.ts";
import type { Publication, Server } from "../postgres/catalog.ts";
import { redact } from "../postgres/connection_string.ts";
import { quoteLiteral } from "../postgres/sql.ts";
import type { Finding } from "./finding.ts";

/** Checks the pipeline's slot: missing and creatable, or usable, and warns about its state. */
export function checkSlot(
  config: PipelineConfig,
  server: Server,
  publication: Publication | null,
): Finding[] {
  const name = config.source.slot;
  const subject = `slot "${name}"`;
  const slot = server.slots.find((s) => s.slotName === name);
  const drop = dropSlotCommand(config.source.url, name);
  const note = passwordNote(config.source.url);
  if (slot === undefined) {
    if (!config.source.createSlot) {
      // pg_create_logical_replication_slot(name, plugin, temporary, twophase, failover)
      const failover = config.source.failover && server.major >= 17 ? ", false, false, true" : "";
      return [{
        level: "error",
        subject,
        message: "does not exist, and source.create_slot is false",
        fix: `SELECT pg_create_logical_replication_slot(${
          quoteLiteral(name)
        }, 'pgoutput'${failover}); or set create_slot: true in ${config.file}`,
      }];
    }
    return [{
      level: "ok",
      subject,
      message: `does not exist; it will be created (pgoutput${
        config.source.failover ? ", failover" : ""
      })`,
    }];
  }
  const otherName =
    `choose another source.slot, or drop the slot if nobody uses it: ${drop}${note}`;
  if (slot.slotType !== "logical") {
    return [{ level: "error", subject, message: "is a physical slot", fix: otherName }];
  }
  if (slot.plugin !== "pgoutput") {
    return [{
      level: "error",
      subject,
      message: `uses plugin "${slot.plugin}", not pgoutput`,
      fix: otherName,
    }];
  }
  if (slot.database !== server.database) {
    return [{
      level: "error",
      subject,
      message: `belongs to database "${slot.database}", not "${server.database}"`,
      fix: `use database "${slot.database}" in source.url, or choose another source.slot`,
    }];
  }
  if (slot.walStatus === "lost" || slot.conflicting === true) {
    const reason = slot.invalidationReason ?? (slot.conflicting ? "recovery conflict" : null);
    return [{
      level: "error",
      subject,
      message: `is invalidated (wal_status ${slot.walStatus ?? "-"}${
        reason === null ? "" : `, ${reason}`
      }): the WAL it needs is gone, so it can never stream again`,
      fix:
        `drop it (${drop}), let spillway create it again and re-snapshot the tables; raise max_slot_wal_keep_size to avoid a repeat${note}`,
    }];
  }
  const findings: Finding[] = [{
    level: "ok",
    subject,
    message: `exists (pgoutput, database "${slot.database}"): confirmed_flush_lsn ${
      slot.confirmedFlushLsn ?? "-"
    }, ${
      slot.lagBytes === null ? "lag unknown" : `${formatBytes(slot.lagBytes)} behind`
    }, wal_status ${slot.walStatus ?? "-"}, safe_wal_size ${
      slot.safeWalSize === null ? "unlimited" : formatBytes(slot.safeWalSize)
    }`,
  }];
  if (slot.walStatus === "unreserved") {
    findings.push({
      level: "warn",
      subject,
      message: `wal_status is unreserved: it is about to lose WAL it needs (safe_wal_size ${
        slot.safeWalSize === null ? "-" : formatBytes(slot.safeWalSize)
      }) and be invalidated at the next checkpoint`,
      fix: "start its reader now so it catches up, or raise max_slot_wal_keep_size",
    });
  }
  if (slot.temporary) {
    findings.push({
      level: "warn",
      subject,
      message: `is a temporary slot of PID ${slot.activePid ?? "?"}: it vanishes with that session`,
      fix: "choose another source.slot",
    });
  } else if (slot.active) {
    findings.push({
      level: "warn",
      subject,
      message: `is in use by PID ${
        slot.activePid ?? "?"
      }; a slot has one reader at a time, so the pipeline gets SQLSTATE 55006 until it lets go`,
      fix: `stop the other reader (SELECT pg_terminate_backend(${
        slot.activePid ?? "pid"
      })) or wait for it`,
    });
  }
  if (config.source.failover && slot.failover === false) {
    // ALTER_REPLICATION_SLOT is a replication command (PostgreSQL 17+, as is `failover`).
    const replicationUrl = `${config.source.url}${
      config.source.url.includes("?") ? "&" : "?"
    }replication=database`;
    findings.push({
      level: "warn",
      subject,
      message: "was created without failover, so standbys do not synchronise it",
      fix: `on a replication connection: ${
        shellCommand("psql", replicationUrl)
      } -c 'ALTER_REPLICATION_SLOT ${name} (FAILOVER true)'; or drop it (${drop}) so that spillway creates it again with failover${note}`,
    });
  }
  if (publication === null && config.source.createPublication) {
    findings.push({
      level: "warn",
      subject,
      message: server.major >= 18
        ? `exists, but publication "${config.source.publication}" does not: changes before the publication is created are skipped`
        : `exists, but publication "${config.source.publication}" does not: decoding a change made before the publication is created fails (SQLSTATE 42704), and retrying does not help`,
      fix:
        `create the publication first, then drop the slot (${drop}) so that it is created after the publication${note}`,
    });
  }
  return findings;
}

/** Checks what `source.failover: true` needs: PostgreSQL 17+, standby slots, a physical slot. */
export function checkFailover(server: Server): Finding[] {
  if (server.major < 17) {
    return [{
      level: "error",
      subject: "failover",
      message:
        `source.failover is true, but PostgreSQL ${server.major} has no failover slots (17+)`,
      fix: "set failover: false, or upgrade to PostgreSQL 17+",
    }];
  }
  const findings: Finding[] = [];
  const name = server.settings.has("synchronized_standby_slots")
    ? "synchronized_standby_slots"
    : "standby_slot_names";
  const standbySlots = server.settings.get(name)?.value ?? "";
  if (standbySlots === "") {
    findings.push({
      level: "warn",
      subject: "failover",
      message:
        `${name} is empty: the pipeline can receive changes a standby has not received yet, which a failover to that standby loses`,
      fix: `ALTER SYSTEM SET ${name} = '<physical slot of the standby>'; SELECT pg_reload_conf()`,
    });
  } else {
    findings.push({
      level: "ok",
      subject: "failover",
      message:
        `${name} = '${standbySlots}': changes reach the pipeline after those standbys have them`,
    });
  }
  const physical = server.slots.filter((slot) => slot.slotType === "physical");
  if (physical.length === 0) {
    findings.push({
      level: "warn",
      subject: "failover",
      message:
        "no physical replication slot exists, and a standby synchronises slots only when it streams through one",
      fix:
        "create one (SELECT pg_create_physical_replication_slot('standby1')) and set primary_slot_name = 'standby1' on the standby",
    });
  }
  const sync = server.settings.get("sync_replication_slots")?.value ?? "off";
  const feedback = server.settings.get("hot_standby_feedback")?.value ?? "off";
  findings.push({
    level: "ok",
    subject: "failover",
    message: `here sync_replication_slots = ${sync}, hot_standby_feedback = ${feedback}; ${
      server.inRecovery ? "this standby" : "a standby"
    } needs sync_replication_slots = on, hot_standby_feedback = on, primary_slot_name = <its physical slot> and dbname in primary_conninfo`,
  });
  return findings;
}

/**
 * `spillway slots drop <url> <slot>` for a fix, as `spillway slots` spells it: the URL's
 * password shown as `***` (see {@linkcode passwordNote}), the URL quoted for a POSIX
 * shell where needed. Without `--yes` the command asks before it drops.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dropSlotCommand } from "./slot.ts";
 * assert.equal(
 *   dropSlotCommand("postgres://app:s3cret@db:5432/shop?sslmode=require", "orders_cdc"),
 *   "spillway slots drop 'postgres://app:***@db:5432/shop?sslmode=require' orders_cdc",
 * );
 * assert.equal(
 *   dropSlotCommand("postgres://app@db/shop", "orders_cdc"),
 *   "spillway slots drop postgres://app@db/shop orders_cdc",
 * );
 * ```
 */
export function dropSlotCommand(url: string, slot: string): string {
  return `${shellCommand("spillway slots drop", url)} ${slot}`;
}

/** `spillway slots list <url>` for a fix, the URL as in {@linkcode dropSlotCommand}. */
export function listSlotsCommand(url: string): string {
  return shellCommand("spillway slots list", url);
}

/** The end of a fix whose commands show `url`: says that `***` is the password, if any. */
export function passwordNote(url: string): string {
  return redact(url) === url ? "" : " (*** stands for the password)";
}

/** A command followed by a URL: the password hidden, the URL quoted for a POSIX shell where needed. */
function shellCommand(command: string, url: string): string {
  const shown = redact(url);
  const word = /^[A-Za-z0-9_@%+=:,./-]+$/.test(shown)
    ? shown
    : `'${shown.replaceAll("'", `'"'"'`)}'`;
  return `${command} ${word}`;
}
