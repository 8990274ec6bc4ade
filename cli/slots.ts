/**
 * `spillway slots`: list the logical replication slots of a database, and drop one.
 *
 * `list` shows each slot's plugin, reader, positions, lag (bytes of WAL the slot
 * holds back from its consumer), `wal_status` and `safe_wal_size`. `drop` asks before
 * it drops (unless `--yes`) and uses `DROP_REPLICATION_SLOT` over a replication
 * connection, so `--wait` can wait for an active reader to let go.
 *
 * The slot query is shared with `spillway check` ({@linkcode querySlots}) and works on
 * PostgreSQL 14 to 18: columns that only newer servers have (`conflicting` 16+,
 * `failover`, `synced`, `invalidation_reason` 17+) are `null` before that.
 *
 * @module
 */

import { PgConnection } from "../postgres/connection.ts";
import { redact } from "../postgres/connection_string.ts";
import { ConfigError, PostgresError } from "../errors.ts";
import {
  type CommandOptions,
  connectOptionsFromUrl,
  errorLines,
  parseCommandArgs,
  promptYesNo,
} from "./_common.ts";
import { querySlots, type SlotRow } from "../postgres/catalog.ts";
import { checkSlotName } from "../postgres/sql.ts";
import { formatBytes } from "../config/units.ts";

// ---------------------------------------------------------------------------------------
// The command

/** Usage of `spillway slots`. */
export const SLOTS_USAGE = `spillway slots list <postgres-url> [--json]
spillway slots drop <postgres-url> <slot> [--wait] [--yes]

list   the logical replication slots of the URL's database: plugin, reader (active
       PID), confirmed_flush_lsn, restart_lsn, lag (WAL bytes from confirmed_flush_lsn
       to now, which the server keeps on disk for the slot), wal_status, safe_wal_size,
       temporary, two_phase and failover (PostgreSQL 17+)
drop   drop a slot with DROP_REPLICATION_SLOT over a replication connection (the role
       needs REPLICATION); its consumer loses its place and must start over

Options:
  --json       list: print a JSON array instead of a table
  --wait       drop: wait until the slot's active reader lets go, then drop it
  --yes, -y    drop: do not ask; required when stdin is not a terminal
  -h, --help   this help

Exit codes: 0 success, 1 runtime failure (or drop not confirmed), 2 bad usage.`;

/**
 * Runs `spillway slots <list|drop> …` and returns the exit code: 0 success, 1 runtime
 * failure or a drop not confirmed, 2 bad usage or configuration.
 */
export async function slotsCommand(args: string[], options: CommandOptions = {}): Promise<number> {
  const out = options.stdout ?? ((line: string) => console.log(line));
  const err = options.stderr ?? ((line: string) => console.error(line));
  const parsed = parseCommandArgs(SLOTS_USAGE, args, {
    json: { type: "boolean" },
    wait: { type: "boolean" },
    yes: { type: "boolean", short: "y" },
  }, { ...options, usageHint: usageLines() });
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  const [subcommand, ...rest] = positionals;
  if (subcommand === "help") {
    out(SLOTS_USAGE);
    return 0;
  }
  try {
    if (subcommand === "list" && rest.length === 1 && !values.wait && !values.yes) {
      return await listCommand(rest[0]!, { json: values.json ?? false }, options);
    }
    if (subcommand === "drop" && rest.length === 2 && !values.json) {
      return await dropCommand(rest[0]!, rest[1]!, {
        wait: values.wait ?? false,
        yes: values.yes ?? false,
      }, options);
    }
  } catch (error) {
    err(`spillway slots ${subcommand}: ${errorLines(error)}`);
    return error instanceof ConfigError ? 2 : 1;
  }
  err(
    subcommand === undefined || subcommand === "list" || subcommand === "drop"
      ? "spillway slots: wrong arguments"
      : `spillway slots: unknown subcommand "${subcommand}"; expected list or drop`,
  );
  err(usageLines());
  return 2;
}

function usageLines(): string {
  return `Usage:\n  ${SLOTS_USAGE.split("\n").slice(0, 2).join("\n  ")}`;
}

async function listCommand(
  url: string,
  flags: { json: boolean },
  options: CommandOptions,
): Promise<number> {
  const out = options.stdout ?? ((line: string) => console.log(line));
  const connect = options.connect ?? PgConnection.connect;
  const connection = await connect(connectOptionsFromUrl(url, "spillway-slots"));
  let slots: SlotRow[];
  let database: string;
  try {
    slots = await querySlots(connection, { currentDatabase: true });
    database = connection.options.database;
  } finally {
    await connection.close();
  }
  if (flags.json) {
    out(JSON.stringify(slots.map(jsonSlot), null, 2));
    return 0;
  }
  if (slots.length === 0) {
    out(`No logical replication slots in database "${database}"`);
    return 0;
  }
  out(slotTable(slots, connection.serverMajorVersion >= 17));
  return 0;
}

function jsonSlot(slot: SlotRow): Record<string, unknown> {
  return {
    slot: slot.slotName,
    plugin: slot.plugin,
    database: slot.database,
    active: slot.active,
    activePid: slot.activePid,
    confirmedFlushLsn: slot.confirmedFlushLsn,
    restartLsn: slot.restartLsn,
    lagBytes: slot.lagBytes,
    walStatus: slot.walStatus,
    safeWalSize: slot.safeWalSize,
    temporary: slot.temporary,
    twoPhase: slot.twoPhase,
    failover: slot.failover,
    invalidationReason: slot.invalidationReason,
  };
}

function slotTable(slots: SlotRow[], withFailover: boolean): string {
  const yesNo = (value: boolean) => value ? "yes" : "no";
  const header = [
    "SLOT",
    "PLUGIN",
    "ACTIVE",
    "CONFIRMED_FLUSH",
    "RESTART",
    "LAG",
    "WAL_STATUS",
    "SAFE_WAL_SIZE",
    "TEMPORARY",
    "TWO_PHASE",
  ];
  if (withFailover) header.push("FAILOVER");
  const rows = slots.map((slot) => {
    const walStatus = slot.invalidationReason === null
      ? slot.walStatus ?? "-"
      : `${slot.walStatus ?? "-"} (${slot.invalidationReason})`;
    const row = [
      slot.slotName,
      slot.plugin ?? "-",
      slot.active ? `pid ${slot.activePid ?? "?"}` : "no",
      slot.confirmedFlushLsn ?? "-",
      slot.restartLsn ?? "-",
      slot.lagBytes === null ? "-" : formatBytes(slot.lagBytes),
      walStatus,
      slot.safeWalSize === null ? "unlimited" : formatBytes(slot.safeWalSize),
      yesNo(slot.temporary),
      yesNo(slot.twoPhase),
    ];
    if (withFailover) row.push(yesNo(slot.failover ?? false));
    return row;
  });
  const widths = header.map((title, i) =>
    Math.max(title.length, ...rows.map((row) => row[i]!.length))
  );
  return [header, ...rows]
    .map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd())
    .join("\n");
}

async function dropCommand(
  url: string,
  slot: string,
  flags: { wait: boolean; yes: boolean },
  options: CommandOptions,
): Promise<number> {
  const out = options.stdout ?? ((line: string) => console.log(line));
  const err = options.stderr ?? ((line: string) => console.error(line));
  checkSlotName(slot);
  const interactive = options.interactive ?? Deno.stdin.isTerminal();
  if (!flags.yes && !interactive) {
    err(
      `spillway slots drop: refusing to drop replication slot "${slot}" without --yes: stdin is not a terminal, so nobody can confirm; run again with --yes`,
    );
    return 2;
  }
  const connect = options.connect ?? PgConnection.connect;
  const target = connectOptionsFromUrl(url, "spillway-slots");
  // In replication=database mode plain SELECTs work too, so one connection does all.
  const connection = await connect({ ...target, replication: "database" });
  try {
    const [found] = await querySlots(connection, { slot });
    if (found !== undefined && !flags.yes) {
      const confirm = options.confirm ?? promptYesNo;
      const question =
        `Drop replication slot "${slot}" (${
          describeSlot(found)
        }) on ${target.host}:${target.port}? ` +
        "Its consumer loses its place and must start over.";
      if (!await confirm(question)) {
        err(`Replication slot "${slot}" not dropped`);
        return 1;
      }
    }
    if (found?.active && flags.wait) {
      err(`Waiting for PID ${found.activePid ?? "?"} to release replication slot "${slot}"...`);
    }
    try {
      await connection.dropReplicationSlot(slot, { wait: flags.wait });
    } catch (error) {
      if (!(error instanceof PostgresError)) throw error;
      const explanation = await explainDropError(connection, slot, url, error);
      if (explanation === null) throw error;
      err(`spillway slots drop: ${explanation}`);
      return 1;
    }
    out(`Dropped replication slot "${slot}"`);
    return 0;
  } finally {
    await connection.close();
  }
}

function describeSlot(slot: SlotRow): string {
  const parts = [`${slot.slotType}${slot.plugin === null ? "" : ` ${slot.plugin}`}`];
  if (slot.database !== null) parts.push(`database "${slot.database}"`);
  if (slot.lagBytes !== null) parts.push(`${formatBytes(slot.lagBytes)} behind`);
  parts.push(slot.active ? `in use by PID ${slot.activePid ?? "?"}` : "not in use");
  return parts.join(", ");
}

/** The message for the drop failures users meet, with their fixes; `null` for others. */
async function explainDropError(
  connection: PgConnection,
  slot: string,
  url: string,
  error: PostgresError,
): Promise<string | null> {
  switch (error.code) {
    case "55006": {
      // The PID is in the server's message, but messages can be translated: ask again.
      const [row] = await querySlots(connection, { slot }).catch(() => []);
      const pid = row?.activePid ?? null;
      const who = pid === null ? "another process" : `PID ${pid}`;
      const stop = pid === null
        ? "stop that reader"
        : `stop that reader (SELECT pg_terminate_backend(${pid}) ends it)`;
      return `Cannot drop replication slot "${slot}": it is in use by ${who} (SQLSTATE 55006); ${stop}, or run again with --wait to drop it as soon as the reader lets go`;
    }
    case "42704":
      return `Cannot drop replication slot "${slot}": it does not exist (SQLSTATE 42704); check the name with "spillway slots list ${
        redact(url)
      }"`;
    default:
      return null;
  }
}
