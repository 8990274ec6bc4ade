/**
 * Server errors as {@linkcode PostgresError}s whose message names the fix for the
 * failures users meet most.
 *
 * @module
 */

import { PostgresError, type PostgresNotice } from "../errors.ts";
import type { ConnectOptions } from "./connection_string.ts";

/**
 * Turns a server error into a {@linkcode PostgresError} whose message names the
 * fix for the failures users meet most; `sql` (shortened) becomes its context.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { explain } from "./explain.ts";
 * const error = explain(
 *   { severity: "FATAL", code: "3D000", message: 'database "shop" does not exist' },
 *   undefined,
 *   { user: "app", database: "shop", host: "db.local" },
 * );
 * assert.equal(error.fix, 'create database "shop" or fix the database name in the URL');
 * ```
 */
export function explain(
  notice: PostgresNotice,
  sql: string | undefined,
  options: Pick<ConnectOptions, "user" | "database" | "host">,
): PostgresError {
  const message = notice.message;
  let fix: string | undefined;
  switch (notice.code) {
    case "55000":
      if (message.includes("wal_level")) {
        fix =
          "set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart the server";
      } else if (
        message.includes("can no longer get changes") ||
        message.includes("can no longer access replication slot") || // PostgreSQL 18
        message.includes("cannot read from logical replication slot")
      ) {
        fix =
          "the slot was invalidated (WAL it needed was removed); drop it, create it again and re-snapshot the tables; raise max_slot_wal_keep_size to avoid a repeat";
      } else if (message.includes("was not created in this database")) {
        fix =
          `connect to the database the slot belongs to, or create a new slot in "${options.database}"`;
      }
      break;
    case "42704":
      if (message.includes("publication")) {
        fix =
          "create the publication before the slot (CREATE PUBLICATION name FOR ALL TABLES or FOR TABLE …); if the slot was created first, drop and recreate the slot after the publication";
      } else if (message.includes("replication slot")) {
        fix =
          "the slot was dropped, or never made: a pipeline makes its slot at start, and refuses to replace one it streamed from (the changes since are gone) unless run with --reset-slot; create one by hand with pg_create_logical_replication_slot(name, 'pgoutput')";
      }
      break;
    case "55006":
      fix =
        "another process is reading this slot; stop it, or wait: a reader that vanished is released after wal_sender_timeout";
      break;
    case "42501":
      if (/WAL sender|walsender|replication role/i.test(message)) {
        fix = `grant replication to the role: ALTER ROLE "${options.user}" WITH REPLICATION`;
      } else if (/FOR ALL TABLES/i.test(sql ?? "")) {
        fix =
          "creating a publication FOR ALL TABLES needs a superuser; have one create it, or list the tables (CREATE PUBLICATION … FOR TABLE …) as their owner";
      }
      break;
    case "28P01":
      fix = `check the password for "${options.user}"`;
      break;
    case "28000":
      fix =
        `add a pg_hba.conf line for user "${options.user}", database "${options.database}" from this host, and reload the server`;
      break;
    case "53400":
      fix = "raise max_replication_slots or drop unused slots (spillway slots list / drop)";
      break;
    case "53300":
      fix = "raise max_wal_senders, or stop other replication clients";
      break;
    case "3D000":
      fix = `create database "${options.database}" or fix the database name in the URL`;
      break;
    case "0A000":
      if (message.includes("proto_version")) {
        fix = message.includes("or higher")
          ? "use a higher proto_version for this server"
          : "use a lower proto_version for this server";
      }
      break;
  }
  const context = sql === undefined
    ? undefined
    : `"${sql.length > 120 ? `${sql.slice(0, 117)}...` : sql}" failed`;
  return new PostgresError(notice, context, fix);
}
