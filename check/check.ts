/**
 * `spillway check pipeline.yaml`: validates a pipeline file against its database before
 * anything runs, and says how to fix each problem.
 *
 * It checks the server (`wal_level`, free slots and WAL senders, `max_slot_wal_keep_size`,
 * `wal_sender_timeout`), the role (REPLICATION, a replication connection, the right to
 * create the publication), the publication, every configured table (it exists, its
 * replica identity carries a key for UPDATE and DELETE, the configured key columns
 * exist), the slot (plugin, database, `wal_status`, reader) and failover settings, and
 * that configured transform files exist. Each result is a {@linkcode Finding}.
 *
 * The queries work on PostgreSQL 14 to 18. Nothing is created or changed.
 *
 * @module
 */

import { type ConnectOptions, PgConnection, redact } from "../postgres/connection.ts";
import { PostgresError } from "../errors.ts";
import { formatDuration } from "../config/units.ts";
import {
  connectOptions,
  matchTable,
  type PipelineConfig,
  publishesAllTables,
  type TableEntry,
} from "../config/mod.ts";
import { type SlotRow } from "../postgres/catalog.ts";
import { querySlots } from "../postgres/catalog.ts";
import { formatBytes } from "../config/units.ts";
import { quoteLiteral } from "../postgres/sql.ts";
import { quoteIdent } from "../postgres/sql.ts";

/** How bad a finding is: `error` means the pipeline cannot run as configured. */
export type FindingLevel = "ok" | "warn" | "error";

/** One result of {@linkcode checkPipeline}. */
export interface Finding {
  level: FindingLevel;
  /** What was checked, e.g. `wal_level`, `slot "orders_cdc"`, `table public.orders`. */
  subject: string;
  message: string;
  /** What to do about a warning or an error. */
  fix?: string;
}

/** Options of {@linkcode checkPipeline}. */
export interface CheckOptions {
  /** Connects; default {@linkcode PgConnection.connect}. Called once normally, once as a walsender. */
  connect?: (options: ConnectOptions) => Promise<PgConnection>;
}

const LABELS: Record<FindingLevel, { text: string; color: string }> = {
  ok: { text: "ok", color: "\x1b[32m" },
  warn: { text: "warn", color: "\x1b[33m" },
  error: { text: "error", color: "\x1b[1;31m" },
};

/**
 * Renders findings one per line, the fix on the line below, and a count at the end.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatFindings } from "./check.ts";
 * const text = formatFindings([
 *   { level: "ok", subject: "wal_level", message: "logical" },
 *   { level: "error", subject: "role", message: '"app" lacks REPLICATION', fix: "ALTER ROLE" },
 * ], { color: false });
 * assert.equal(
 *   text,
 *   'ok     wal_level: logical\nerror  role: "app" lacks REPLICATION\n       fix: ALTER ROLE\n\n1 error, 0 warnings, 1 ok',
 * );
 * ```
 */
export function formatFindings(findings: readonly Finding[], options: { color: boolean }): string {
  const lines: string[] = [];
  for (const finding of findings) {
    const label = LABELS[finding.level];
    const padded = label.text.padEnd(6);
    const shown = options.color
      ? `${label.color}${label.text}\x1b[0m${padded.slice(label.text.length)}`
      : padded;
    lines.push(`${shown} ${finding.subject}: ${finding.message}`);
    if (finding.fix !== undefined) lines.push(`       fix: ${finding.fix}`);
  }
  const count = (level: FindingLevel) => findings.filter((f) => f.level === level).length;
  const errors = count("error");
  const warnings = count("warn");
  lines.push(
    "",
    `${errors} ${errors === 1 ? "error" : "errors"}, ${warnings} ${
      warnings === 1 ? "warning" : "warnings"
    }, ${count("ok")} ok`,
  );
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------
// The checks

/** What the first queries learn about the server and the role. */
interface Server {
  user: string;
  database: string;
  version: string;
  major: number;
  superuser: boolean;
  replication: boolean;
  inRecovery: boolean;
  canCreateInDatabase: boolean;
  settings: Map<string, Setting>;
  slots: SlotRow[];
  walSenders: number;
}

interface Setting {
  value: string;
  unit: string | null;
  pendingRestart: boolean;
}

/** A table or partitioned table of the database, with its columns and identity. */
interface DbTable {
  schema: string;
  table: string;
  /** `schema.table` quoted where needed, for SQL in fixes. */
  qualified: string;
  kind: string;
  /** `d` default, `n` nothing, `f` full, `i` index. */
  identity: string;
  owned: boolean;
  columns: string[];
  primaryKey: string[] | null;
  identityIndex: string[] | null;
}

interface Publication {
  allTables: boolean;
  operations: string[];
  /** `tableKey` of each table. */
  tables: Set<string>;
  /** Each table as `schema.table`, quoted where needed. */
  names: string[];
}

const SETTINGS = [
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
 * Checks a pipeline against its files and its database; never throws for what it
 * finds (an unreachable server is an `error` finding). Runs read-only queries on a
 * normal connection, then opens and closes a replication connection.
 */
export async function checkPipeline(
  config: PipelineConfig,
  options: CheckOptions = {},
): Promise<Finding[]> {
  const findings: Finding[] = [{
    level: "ok",
    subject: "pipeline",
    message: `"${config.file}" is valid: pipeline "${config.name}", ${
      plural(config.tables.length, "table entry", "table entries")
    }, ${plural(config.sinks.length, "sink")}`,
  }];
  findings.push(...await checkTransforms(config));
  const connect = options.connect ?? PgConnection.connect;
  let target: ConnectOptions;
  try {
    target = checkConnectOptions(config);
  } catch (error) {
    findings.push(failure("connection", error, "fix source.url and source.sslrootcert"));
    return findings;
  }
  let connection: PgConnection;
  try {
    connection = await connect(target);
  } catch (error) {
    const reach =
      `check that PostgreSQL runs and accepts TCP connections on ${target.host}:${target.port} (listen_addresses, port, firewall), and that source.url names it`;
    findings.push(failure("connection", error, reach));
    return findings;
  }
  let afterConnection = findings.length;
  try {
    const server = await readServer(connection);
    findings.push({
      level: "ok",
      subject: "connection",
      message:
        `connected to ${target.host}:${target.port}, database "${server.database}", as "${server.user}" (PostgreSQL ${server.version}${
          server.inRecovery ? ", a standby in recovery" : ""
        })`,
    });
    afterConnection = findings.length;
    if (server.inRecovery && server.major < 16) {
      findings.push({
        level: "error",
        subject: "server",
        message:
          `is a standby, and logical decoding on a standby needs PostgreSQL 16+ (this is ${server.major})`,
        fix: "point source.url at the primary",
      });
    }
    findings.push(...checkSettings(config, server));
    findings.push(checkRole(server));
    const tables = await readTables(connection);
    const publication = await readPublication(connection, config.source.publication);
    const followed = tables.filter((t) => matchTable(config, t.schema, t.table) !== null);
    findings.push(...checkPublication(config, server, publication, followed));
    findings.push(...checkTables(config, server, tables, followed, publication));
    findings.push(...checkSlot(config, server, publication));
    if (config.source.failover) findings.push(...checkFailover(server));
  } catch (error) {
    findings.push(failure("queries", error));
  } finally {
    await connection.close();
  }
  findings.splice(afterConnection, 0, await checkReplicationConnection(connect, target));
  return findings;
}

function checkConnectOptions(config: PipelineConfig): ConnectOptions {
  const options = connectOptions(config, "spillway-check");
  options.connectTimeoutMs ??= 10_000;
  return options;
}

/** An error as a finding: the server's message without the fix, and the fix apart. */
function failure(subject: string, error: unknown, fallbackFix?: string): Finding {
  if (error instanceof PostgresError) {
    const message = error.fix === undefined
      ? error.message
      : error.message.replace(`; fix: ${error.fix}`, "");
    return { level: "error", subject, message, fix: error.fix ?? fallbackFix };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { level: "error", subject, message, fix: fallbackFix };
}

async function checkTransforms(config: PipelineConfig): Promise<Finding[]> {
  const uses = new Map<string, TableEntry>();
  for (const entry of config.tables) {
    if (entry.transform !== null && !uses.has(entry.transform)) uses.set(entry.transform, entry);
  }
  if (uses.size === 0) return [];
  const findings: Finding[] = [];
  let found = 0;
  for (const [path, entry] of uses) {
    const where = `tables."${entry.pattern}" at ${config.file}:${entry.line}`;
    let info: Deno.FileInfo | null = null;
    let problem = "does not exist";
    try {
      info = await Deno.stat(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        problem = `cannot be read (${error instanceof Error ? error.message : String(error)})`;
      }
    }
    if (info?.isFile) {
      found++;
      continue;
    }
    findings.push({
      level: "error",
      subject: "transform",
      message: `"${path}" (${where}) ${info === null ? problem : "is not a file"}`,
      fix: `create the module, or fix "transform" of ${where}`,
    });
  }
  if (found > 0) {
    findings.unshift({
      level: "ok",
      subject: "transform",
      message: `${plural(found, "transform file")} found`,
    });
  }
  return findings;
}

async function readServer(connection: PgConnection): Promise<Server> {
  const [who] = await connection.queryObjects(
    `SELECT current_user AS user_name, pg_catalog.current_database() AS database,
            pg_catalog.current_setting('server_version') AS version,
            pg_catalog.current_setting('server_version_num') AS version_num,
            r.rolsuper, r.rolreplication, pg_catalog.pg_is_in_recovery() AS in_recovery,
            pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE') AS can_create
       FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`,
  );
  if (who === undefined) throw new Error("Cannot read the current role from pg_roles");
  const rows = await connection.queryObjects(
    `SELECT name, setting, unit, pending_restart FROM pg_catalog.pg_settings
      WHERE name IN (${SETTINGS.map(quoteLiteral).join(", ")})`,
  );
  const settings = new Map<string, Setting>();
  for (const row of rows) {
    settings.set(row.name ?? "", {
      value: row.setting ?? "",
      unit: row.unit ?? null,
      pendingRestart: row.pending_restart === "t",
    });
  }
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

async function readTables(connection: PgConnection): Promise<DbTable[]> {
  const indexColumns = (condition: string) =>
    `(SELECT pg_catalog.json_agg(a.attname ORDER BY k.ord)
        FROM pg_catalog.pg_index i
        CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
       WHERE i.indrelid = c.oid AND ${condition})`;
  const rows = await connection.queryObjects(
    `SELECT n.nspname AS schema_name, c.relname AS table_name,
            pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS qualified,
            c.relkind AS kind, c.relreplident AS identity,
            pg_catalog.pg_has_role(c.relowner, 'USAGE') AS owned,
            (SELECT pg_catalog.json_agg(a.attname ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            ${indexColumns("i.indisprimary")} AS primary_key,
            ${indexColumns("i.indisreplident")} AS identity_index
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname !~ '^pg_(toast|temp_)'
      ORDER BY 1, 2`,
  );
  return rows.map((row) => ({
    schema: row.schema_name ?? "",
    table: row.table_name ?? "",
    qualified: row.qualified ?? "",
    kind: row.kind ?? "r",
    identity: row.identity ?? "d",
    owned: row.owned === "t",
    columns: jsonNames(row.columns) ?? [],
    primaryKey: jsonNames(row.primary_key),
    identityIndex: jsonNames(row.identity_index),
  }));
}

async function readPublication(
  connection: PgConnection,
  name: string,
): Promise<Publication | null> {
  const [row] = await connection.queryObjects(
    `SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate
       FROM pg_catalog.pg_publication WHERE pubname = ${quoteLiteral(name)}`,
  );
  if (row === undefined) return null;
  const tables = await connection.queryObjects(
    `SELECT schemaname, tablename,
            pg_catalog.quote_ident(schemaname) || '.' || pg_catalog.quote_ident(tablename) AS qualified
       FROM pg_catalog.pg_publication_tables WHERE pubname = ${quoteLiteral(name)} ORDER BY 1, 2`,
  );
  const operations = ["insert", "update", "delete", "truncate"].filter((op) =>
    row[`pub${op}`] === "t"
  );
  return {
    allTables: row.puballtables === "t",
    operations,
    tables: new Set(tables.map((t) => tableKey(t.schemaname ?? "", t.tablename ?? ""))),
    names: tables.map((t) => t.qualified ?? ""),
  };
}

function checkSettings(config: PipelineConfig, server: Server): Finding[] {
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
    findings.push({
      level: "warn",
      subject: "max_replication_slots",
      message:
        `all ${maxSlots} slots are in use, so slot "${config.source.slot}" cannot be created`,
      fix:
        "drop a slot nobody reads (spillway slots list / spillway slots drop), or raise max_replication_slots and restart PostgreSQL",
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
  if (timeout !== undefined) {
    const timeoutMs = Number(timeout.value) * (timeout.unit === "s" ? 1000 : 1);
    const intervalMs = config.source.statusIntervalMs;
    if (timeoutMs === 0) {
      findings.push({
        level: "warn",
        subject: "wal_sender_timeout",
        message:
          "is 0 (disabled): a reader that vanished keeps the slot busy until TCP notices, which can take hours",
        fix: "ALTER SYSTEM SET wal_sender_timeout = '60s'; SELECT pg_reload_conf()",
      });
    } else if (timeoutMs < intervalMs * 2) {
      findings.push({
        level: "warn",
        subject: "wal_sender_timeout",
        message: `${formatDuration(timeoutMs)} is less than twice source.status_interval (${
          formatDuration(intervalMs)
        }): the server may end the connection between two status updates`,
        fix: `set source.status_interval to at most ${
          formatDuration(Math.max(1, Math.floor(timeoutMs / 3)))
        } in ${config.file}, or raise wal_sender_timeout`,
      });
    } else {
      findings.push({
        level: "ok",
        subject: "wal_sender_timeout",
        message: `${formatDuration(timeoutMs)} (status updates every ${
          formatDuration(intervalMs)
        })`,
      });
    }
  }
  return findings;
}

function checkRole(server: Server): Finding {
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

function checkPublication(
  config: PipelineConfig,
  server: Server,
  publication: Publication | null,
  followed: DbTable[],
): Finding[] {
  const name = config.source.publication;
  const subject = `publication "${name}"`;
  const sqlName = quoteIdent(name);
  const allTables = publishesAllTables(config);
  const target = allTables
    ? "FOR ALL TABLES"
    : `FOR TABLE ${followed.map((t) => t.qualified).join(", ") || "…"}`;
  if (publication !== null) {
    const covers = publication.allTables
      ? "FOR ALL TABLES"
      : `covers ${plural(publication.tables.size, "table")}${
        publication.names.length > 0 ? ` (${listSome(publication.names)})` : ""
      }`;
    const findings: Finding[] = [{
      level: "ok",
      subject,
      message: `exists, ${covers}, publishes ${publication.operations.join(", ") || "nothing"}`,
    }];
    // Partitioned tables appear in pg_publication_tables through their partitions.
    const missing = publication.allTables
      ? []
      : followed.filter((t) =>
        t.kind !== "p" && !publication.tables.has(tableKey(t.schema, t.table))
      );
    if (missing.length > 0) {
      findings.push({
        level: "warn",
        subject,
        message: `does not cover ${plural(missing.length, "configured table")} (${
          listSome(missing.map((t) => t.qualified))
        }), so their changes are not streamed`,
        fix: `ALTER PUBLICATION ${sqlName} ADD TABLE ${missing.map((t) => t.qualified).join(", ")}`,
      });
    }
    return findings;
  }
  if (!config.source.createPublication) {
    return [{
      level: "error",
      subject,
      message: "does not exist, and source.create_publication is false",
      fix:
        `CREATE PUBLICATION ${sqlName} ${target}; or set create_publication: true in ${config.file}`,
    }];
  }
  if (server.inRecovery) {
    return [{
      level: "error",
      subject,
      message: "does not exist, and a standby cannot create it",
      fix: `create it on the primary: CREATE PUBLICATION ${sqlName} ${target}`,
    }];
  }
  if (allTables && !server.superuser) {
    return [{
      level: "error",
      subject,
      message:
        `does not exist; it would be created FOR ALL TABLES (tables has a "*" entry), which needs a superuser, and "${server.user}" is not one`,
      fix:
        `have a superuser run CREATE PUBLICATION ${sqlName} FOR ALL TABLES, or list the tables (or schema globs) instead of "*" in ${config.file}`,
    }];
  }
  if (!allTables && followed.length === 0) {
    return [{
      level: "error",
      subject,
      message:
        "does not exist, and cannot be created: no existing table matches the tables of the pipeline",
      fix: `create the tables first, or fix the table names in ${config.file}`,
    }];
  }
  if (!server.superuser && !server.canCreateInDatabase) {
    return [{
      level: "error",
      subject,
      message:
        `does not exist; creating it needs the CREATE privilege on database "${server.database}", which "${server.user}" lacks`,
      fix: `GRANT CREATE ON DATABASE ${quoteIdent(server.database)} TO ${
        quoteIdent(server.user)
      }; or have a superuser run CREATE PUBLICATION ${sqlName} ${target}`,
    }];
  }
  const notOwned = allTables ? [] : followed.filter((t) => !t.owned);
  if (notOwned.length > 0) {
    return [{
      level: "error",
      subject,
      message:
        `does not exist; creating it FOR TABLE needs ownership of each table, and "${server.user}" does not own ${
          listSome(notOwned.map((t) => t.qualified))
        }`,
      fix: `have a superuser or the owner run CREATE PUBLICATION ${sqlName} ${target}`,
    }];
  }
  return [{
    level: "ok",
    subject,
    message: `does not exist; it will be created ${
      allTables ? "FOR ALL TABLES" : `FOR TABLE ${listSome(followed.map((t) => t.qualified))}`
    }`,
  }];
}

function checkTables(
  config: PipelineConfig,
  server: Server,
  tables: DbTable[],
  followed: DbTable[],
  publication: Publication | null,
): Finding[] {
  const findings: Finding[] = [];
  const byName = new Map(tables.map((t) => [tableKey(t.schema, t.table), t]));
  for (const entry of config.tables) {
    const where = `${config.file}:${entry.line}`;
    if (!entry.schema.glob && !entry.table.glob) {
      if (byName.has(tableKey(entry.schema.name, entry.table.name))) continue;
      const lower = `${entry.schema.name}.${entry.table.name}`.toLowerCase();
      const similar = tables.find((t) => `${t.schema}.${t.table}`.toLowerCase() === lower);
      findings.push({
        level: "error",
        subject: `table ${entry.pattern}`,
        message: `does not exist in database "${server.database}"${
          similar === undefined ? "" : ` (names are case-sensitive; ${similar.qualified} exists)`
        }`,
        fix: `create it, or fix or remove the tables entry ${entry.pattern} at ${where}`,
      });
      continue;
    }
    const only = { ...config, tables: [entry] };
    const matches = tables.filter((t) => matchTable(only, t.schema, t.table) !== null);
    findings.push(
      matches.length === 0
        ? {
          level: "warn",
          subject: `tables "${entry.pattern}"`,
          message: `match no table in database "${server.database}"`,
          fix: `create the tables, or fix the pattern at ${where}`,
        }
        : {
          level: "ok",
          subject: `tables "${entry.pattern}"`,
          message: `match ${plural(matches.length, "table")} (${
            listSome(matches.map((t) => t.qualified))
          })`,
        },
    );
  }

  // Without UPDATE and DELETE published, a table needs no replica identity.
  const needsIdentity = publication === null ||
    publication.operations.includes("update") || publication.operations.includes("delete");
  const usable: string[] = [];
  for (const table of followed) {
    const resolved = matchTable(config, table.schema, table.table)!;
    const identity = replicaIdentity(table);
    const problems: Finding[] = [];
    const subject = `table ${table.qualified}`;
    if (identity.columns === null) {
      problems.push({
        level: needsIdentity ? "error" : "warn",
        subject,
        message:
          `${identity.description}, so it has no replica identity: UPDATE and DELETE on it fail while a publication publishes them (SQLSTATE 55000)`,
        fix:
          `ALTER TABLE ${table.qualified} ADD PRIMARY KEY (…); or ALTER TABLE ${table.qualified} REPLICA IDENTITY FULL`,
      });
    }
    const key = resolved.key;
    if (key !== null) {
      const absent = key.filter((column) => !table.columns.includes(column));
      if (absent.length > 0) {
        problems.push({
          level: "error",
          subject,
          message: `has no ${absent.length === 1 ? "column" : "columns"} ${
            absent.map((c) => `"${c}"`).join(", ")
          } for its key (columns: ${listSome(table.columns, 20)})`,
          fix: `fix "key" of the entry "${resolved.pattern}" in ${config.file}`,
        });
      } else if (identity.columns !== null && table.identity !== "f") {
        const outside = key.filter((column) => !identity.columns!.includes(column));
        if (outside.length > 0) {
          problems.push({
            level: "warn",
            subject,
            message: `key (${
              key.join(", ")
            }) differs from the replica identity, ${identity.description}: a delete's "before" carries only ${
              identity.columns.join(", ")
            }, so its key lacks ${outside.join(", ")}`,
            fix: `use key: [${
              identity.columns.join(", ")
            }], or ALTER TABLE ${table.qualified} REPLICA IDENTITY FULL (or USING INDEX a unique index on the key)`,
          });
        }
      }
    }
    if (problems.length === 0) usable.push(`${table.qualified} (${identity.description})`);
    findings.push(...problems);
  }
  if (usable.length > 0) {
    findings.push({
      level: "ok",
      subject: "replica identity",
      message: `${plural(usable.length, "table")} ${
        usable.length === 1 ? "carries" : "carry"
      } a key for UPDATE and DELETE: ${listSome(usable)}`,
    });
  }
  return findings;
}

/** The columns a table's UPDATE and DELETE carry in their old tuple; `null` for none. */
function replicaIdentity(table: DbTable): { columns: string[] | null; description: string } {
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

function checkSlot(
  config: PipelineConfig,
  server: Server,
  publication: Publication | null,
): Finding[] {
  const name = config.source.slot;
  const subject = `slot "${name}"`;
  const slot = server.slots.find((s) => s.slotName === name);
  const url = redact(config.source.url);
  const recreate = `spillway slots drop ${url} ${name} --yes`;
  if (slot === undefined) {
    if (!config.source.createSlot) {
      return [{
        level: "error",
        subject,
        message: "does not exist, and source.create_slot is false",
        fix: `SELECT pg_create_logical_replication_slot(${
          quoteLiteral(name)
        }, 'pgoutput'); or set create_slot: true in ${config.file}`,
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
  const otherName = "choose another source.slot, or drop the slot if nobody uses it: " + recreate;
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
        `drop it (${recreate}), let spillway create it again and re-snapshot the tables; raise max_slot_wal_keep_size to avoid a repeat`,
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
    findings.push({
      level: "warn",
      subject,
      message: "was created without failover, so standbys do not synchronise it",
      fix:
        `ALTER_REPLICATION_SLOT ${name} (FAILOVER true) on a replication connection (psql "dbname=${server.database} replication=database"), or drop and recreate it`,
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
        `create the publication first, then drop the slot (${recreate}) so that it is created after the publication`,
    });
  }
  return findings;
}

function checkFailover(server: Server): Finding[] {
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

async function checkReplicationConnection(
  connect: (options: ConnectOptions) => Promise<PgConnection>,
  target: ConnectOptions,
): Promise<Finding> {
  const subject = "replication connection";
  let connection: PgConnection | null = null;
  try {
    connection = await connect({ ...target, replication: "database" });
    const identity = await connection.identifySystem();
    return {
      level: "ok",
      subject,
      message: `accepted (system ${identity.systemId}, timeline ${identity.timeline}, database "${
        identity.dbName ?? target.database
      }")`,
    };
  } catch (error) {
    return failure(subject, error);
  } finally {
    await connection?.close();
  }
}

// ---------------------------------------------------------------------------------------
// Small helpers

function tableKey(schema: string, table: string): string {
  return `${schema}\u0000${table}`;
}

function jsonNames(text: string | null | undefined): string[] | null {
  if (text === null || text === undefined) return null;
  const value: unknown = JSON.parse(text);
  return Array.isArray(value) ? value.map(String) : null;
}

function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : pluralForm}`;
}

/** The first `limit` items joined with commas, then how many more. */
function listSome(items: readonly string[], limit = 10): string {
  if (items.length <= limit) return items.join(", ");
  return `${items.slice(0, limit).join(", ")} and ${items.length - limit} more`;
}
