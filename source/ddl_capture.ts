/**
 * DDL text in the replication stream (`source.capture_ddl`). pgoutput sends row changes and
 * the columns of a table as they are when a change is decoded, never the DDL that changed
 * them. With DDL capture, an event trigger in the source database sends each DDL command's
 * tag, objects and statement text as a transactional logical decoding message with prefix
 * {@linkcode DDL_MESSAGE_PREFIX}: it arrives inside the DDL's own transaction, in order with
 * that transaction's changes, as a `message` item.
 *
 * {@linkcode installDdlCapture} installs the trigger when the source opens (the SQL is
 * `ddlCaptureInstallSql()` of `postgres/catalog.ts`, which only a superuser may run);
 * {@linkcode parseDdlMessage} reads such a message.
 *
 * @module
 */

import { ConfigError, PostgresError } from "../errors.ts";
import type { MessageEvent } from "../events.ts";
import { formatLsn } from "../decoder/lsn.ts";
import {
  DDL_CAPTURE,
  DDL_MESSAGE_PREFIX,
  ddlCaptureInstallSql,
  readDdlCapture,
} from "../postgres/catalog.ts";
import type { PgConnection } from "../postgres/connection.ts";
import { type Logger, silentLogger } from "../ops/log.ts";

export { DDL_MESSAGE_PREFIX };

/** An object a DDL command created, altered or dropped. */
export interface DdlObject {
  /** As PostgreSQL names the kind: `table`, `index`, `table column`, `schema`… */
  type: string;
  /** `null` for objects outside a schema (a schema, an extension…). */
  schema: string | null;
  /** The qualified name, quoted where needed, e.g. `public.orders` or `public.orders.note`. */
  identity: string;
}

/** The content of a {@linkcode DDL_MESSAGE_PREFIX} message. */
export interface DdlMessage {
  /** The command tag, e.g. `ALTER TABLE`. */
  tag: string;
  /** What the command created or altered (`pg_event_trigger_ddl_commands()`). */
  objects: DdlObject[];
  /** What it dropped (`pg_event_trigger_dropped_objects()`), dependents dropped by CASCADE too. */
  dropped: DdlObject[];
  /**
   * The statement text as the client sent it (`current_query()`): the whole query string when
   * several statements came in one; `null` when the server does not know it.
   */
  query: string | null;
}

/**
 * The DDL a message carries, or `null` when it is not a {@linkcode DDL_MESSAGE_PREFIX}
 * message. Throws a SyntaxError when such a message does not hold the expected JSON.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DDL_MESSAGE_PREFIX, parseDdlMessage } from "./ddl_capture.ts";
 * import { parseLsn } from "../decoder/lsn.ts";
 * const content = new TextEncoder().encode(JSON.stringify({
 *   tag: "ALTER TABLE",
 *   objects: [{ type: "table", schema: "public", identity: "public.t" }],
 *   dropped: [],
 *   query: "ALTER TABLE t ADD COLUMN c int",
 * }));
 * const ddl = parseDdlMessage({
 *   op: "m",
 *   transactional: true,
 *   prefix: DDL_MESSAGE_PREFIX,
 *   content,
 *   lsn: parseLsn("0/16B3748"),
 * });
 * assert.equal(ddl?.tag, "ALTER TABLE");
 * assert.equal(ddl?.objects[0]?.identity, "public.t");
 * ```
 */
export function parseDdlMessage(event: MessageEvent): DdlMessage | null {
  if (event.prefix !== DDL_MESSAGE_PREFIX) return null;
  const value: unknown = JSON.parse(new TextDecoder().decode(event.content));
  const record = typeof value === "object" && value !== null
    ? value as Record<string, unknown>
    : {};
  if (typeof record.tag !== "string") {
    throw new SyntaxError(
      `Cannot read the ${DDL_MESSAGE_PREFIX} message at ${formatLsn(event.lsn)}: it has no "tag"`,
    );
  }
  return {
    tag: record.tag,
    objects: objectsOf(record.objects),
    dropped: objectsOf(record.dropped),
    query: typeof record.query === "string" ? record.query : null,
  };
}

function objectsOf(value: unknown): DdlObject[] {
  if (!Array.isArray(value)) return [];
  return value.map((item: unknown) => {
    const object: Record<string, unknown> = typeof item === "object" && item !== null
      ? { ...item }
      : {};
    return {
      type: String(object.type ?? ""),
      schema: typeof object.schema === "string" ? object.schema : null,
      identity: String(object.identity ?? ""),
    };
  });
}

/**
 * Makes sure DDL capture is installed in the connected database: does nothing when this
 * version is installed, else installs it (replacing another version). Returns whether it
 * installed. A role that may not create event triggers gets a ConfigError naming the
 * privilege and the fix.
 */
export async function installDdlCapture(
  connection: PgConnection,
  log: Logger = silentLogger,
): Promise<boolean> {
  const state = await readDdlCapture(connection);
  if (state.status === "installed") {
    log("debug", "DDL capture is installed", { eventTrigger: DDL_CAPTURE.trigger });
    return false;
  }
  try {
    await connection.query(ddlCaptureInstallSql());
  } catch (error) {
    // The install is one transaction: end it, so the connection can go on.
    if (!connection.closed) await connection.query("ROLLBACK").catch(() => {});
    if (error instanceof PostgresError && error.code === "42501") {
      throw new ConfigError(
        `Cannot capture DDL in database "${state.database}": role "${state.role}" may not create the event triggers it needs (${error.notice.message}); PostgreSQL lets only superusers create event triggers, so have a superuser run the install SQL once (spillway check shows it under capture_ddl), connect as a superuser, or set capture_ddl: false`,
        { cause: error },
      );
    }
    throw error;
  }
  log("info", "DDL capture installed", {
    database: state.database,
    replaced: state.status === "outdated",
    function: DDL_CAPTURE.function,
    eventTriggers: [DDL_CAPTURE.trigger, DDL_CAPTURE.dropTrigger],
  });
  return true;
}
