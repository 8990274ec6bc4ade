/**
 * The checks of the server and the role: `wal_level`, free replication slots and WAL
 * senders, `max_slot_wal_keep_size`, `wal_sender_timeout` and the role's REPLICATION.
 *
 * @module
 */

import type { PipelineConfig } from "../config/mod.ts";
import { formatBytes, formatDuration } from "../config/units.ts";
import { maxStatusIntervalMs, type Server, settingMs } from "../postgres/catalog.ts";
import { quoteIdent } from "../postgres/sql.ts";
import type { Finding } from "./finding.ts";
import { dropSlotCommand, listSlotsCommand, passwordNote } from "./slot.ts";

/** Checks the server settings logical replication needs, one finding per setting. */
export function checkSettings(config: PipelineConfig, server: Server): Finding[] {
  const findings: Finding[] = [];
  const setting = (name: string) => server.settings.get(name);

  const walLevel = setting("wal_level");
  if (walLevel?.value === "logical") {
    findings.push({ level: "ok", subject: "wal_level", message: "logical" });
  } else if (walLevel?.pendingRestart) {
    findings.push({
      level: "error",
      subject: "wal_level",
      message: `is "${walLevel.value}"; a new value is set but waits for a restart`,
      fix: "restart PostgreSQL (wal_level only changes at a restart)",
    });
  } else {
    findings.push({
      level: "error",
      subject: "wal_level",
      message: `is "${walLevel?.value ?? "unknown"}"; logical decoding needs "logical"`,
      fix: "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (a reload is not enough)",
    });
  }

  const ours = server.slots.find((slot) => slot.slotName === config.source.slot);
  const maxSlots = Number(setting("max_replication_slots")?.value ?? 0);
  const used = server.slots.length;
  if (maxSlots === 0) {
    findings.push({
      level: "error",
      subject: "max_replication_slots",
      message: "is 0, so no replication slot can exist",
      fix: "ALTER SYSTEM SET max_replication_slots = 10; then restart PostgreSQL",
    });
  } else if (ours === undefined && used >= maxSlots) {
    const url = config.source.url;
    findings.push({
      level: "warn",
      subject: "max_replication_slots",
      message:
        `all ${maxSlots} slots are in use, so slot "${config.source.slot}" cannot be created`,
      fix: `drop a slot nobody reads (${listSlotsCommand(url)} lists this database's, ${
        dropSlotCommand(url, "<slot>")
      } drops one), or raise max_replication_slots and restart PostgreSQL${passwordNote(url)}`,
    });
  } else {
    findings.push({
      level: "ok",
      subject: "max_replication_slots",
      message: `${used} of ${maxSlots} in use${
        ours === undefined ? `; slot "${config.source.slot}" needs one more` : ""
      }`,
    });
  }

  const maxSenders = Number(setting("max_wal_senders")?.value ?? 0);
  if (maxSenders === 0) {
    findings.push({
      level: "error",
      subject: "max_wal_senders",
      message: "is 0, so no replication connection is possible",
      fix: "ALTER SYSTEM SET max_wal_senders = 10; then restart PostgreSQL",
    });
  } else if (server.walSenders >= maxSenders) {
    findings.push({
      level: "warn",
      subject: "max_wal_senders",
      message:
        `all ${maxSenders} WAL senders are in use, so a new replication connection is refused (SQLSTATE 53300)`,
      fix:
        "stop a replication client that is not needed, or raise max_wal_senders and restart PostgreSQL",
    });
  } else {
    findings.push({
      level: "ok",
      subject: "max_wal_senders",
      message: `${server.walSenders} of ${maxSenders} in use`,
    });
  }

  const keep = setting("max_slot_wal_keep_size");
  if (keep !== undefined) {
    const megabytes = Number(keep.value);
    if (megabytes < 0) {
      findings.push({
        level: "warn",
        subject: "max_slot_wal_keep_size",
        message:
          "is unlimited (-1): a slot whose reader stops keeps every WAL file from its restart_lsn on, until the disk is full",
        fix:
          "ALTER SYSTEM SET max_slot_wal_keep_size = '50GB' (enough WAL for the longest outage to survive, and less than the free disk); SELECT pg_reload_conf()",
      });
    } else {
      findings.push({
        level: "ok",
        subject: "max_slot_wal_keep_size",
        message: `${
          formatBytes(megabytes * 1024 * 1024)
        }: a slot further behind is invalidated and must then be recreated (with a new snapshot)`,
      });
    }
  }

  const timeout = setting("wal_sender_timeout");
  if (timeout !== undefined) findings.push(checkWalSenderTimeout(config, settingMs(timeout)));
  return findings;
}

/**
 * `wal_sender_timeout` against the status interval. The source keeps its status updates
 * within a third of the timeout whatever `source.status_interval` says, so a short
 * timeout only shortens the interval; a disabled one (0) leaves a vanished reader's slot
 * busy.
 */
function checkWalSenderTimeout(config: PipelineConfig, timeoutMs: number): Finding {
  const subject = "wal_sender_timeout";
  if (timeoutMs === 0) {
    return {
      level: "warn",
      subject,
      message:
        "is 0 (disabled): a reader that vanished keeps the slot busy until TCP notices, which can take hours",
      fix: "ALTER SYSTEM SET wal_sender_timeout = '60s'; SELECT pg_reload_conf()",
    };
  }
  const configuredMs = config.source.statusIntervalMs;
  const intervalMs = Math.min(configuredMs, maxStatusIntervalMs(timeoutMs));
  return {
    level: "ok",
    subject,
    message: intervalMs === configuredMs
      ? `${formatDuration(timeoutMs)} (status updates every ${formatDuration(intervalMs)})`
      : `${formatDuration(timeoutMs)}; status updates every ${
        formatDuration(intervalMs)
      }: source.status_interval (${
        formatDuration(configuredMs)
      }) is clamped to a third of the timeout, 10s at most`,
  };
}

/** Checks that the role may read a replication slot: REPLICATION or superuser. */
export function checkRole(server: Server): Finding {
  if (server.superuser) {
    return { level: "ok", subject: "role", message: `"${server.user}" is a superuser` };
  }
  if (server.replication) {
    return { level: "ok", subject: "role", message: `"${server.user}" has REPLICATION` };
  }
  return {
    level: "error",
    subject: "role",
    message:
      `"${server.user}" has neither REPLICATION nor superuser, so it cannot read a replication slot`,
    fix: `as a superuser: ALTER ROLE ${quoteIdent(server.user)} WITH REPLICATION`,
  };
}
