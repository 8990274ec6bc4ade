/**
 * {@linkcode checkPipeline}: the order of the checks, the two connections (a normal one
 * for the catalog queries, then a replication one) and the transform files.
 *
 * @module
 */

import { connectOptions, matchTable, type PipelineConfig, type TableEntry } from "../config/mod.ts";
import { errorMessage, PostgresError } from "../errors.ts";
import { readDdlCapture, readPublications, readServer, readTables } from "../postgres/catalog.ts";
import { PgConnection, type SystemIdentity } from "../postgres/connection.ts";
import type { ConnectOptions } from "../postgres/connection_string.ts";
import { type Finding, plural } from "./finding.ts";
import { checkOtherPublications, checkPublication } from "./publication.ts";
import { checkRole, checkSettings } from "./server.ts";
import { checkFailover, checkSlot } from "./slot.ts";
import { checkDdlCapture } from "./ddl.ts";
import { checkTables } from "./tables.ts";
import { checkAvroSchemas } from "./avro.ts";

/** Options of {@linkcode checkPipeline}. */
export interface CheckOptions {
  /** Connects; default {@linkcode PgConnection.connect}. Called once normally, once as a walsender. */
  connect?: (options: ConnectOptions) => Promise<PgConnection>;
  /** What the pipeline's state file records (`spillway run` refuses to replace that slot). */
  recorded?: RecordedSlot | null;
}

/** The slot a state file records, as `pipelines/state.ts` reads it. */
export interface RecordedSlot {
  /** The state file. */
  path: string;
  systemId: string;
  database: string;
  slot: string;
  /** The last confirmed position, as text. */
  confirmedLsn: string;
  updatedAt: string;
}

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
  let slotMissing = false;
  try {
    const server = await readServer(connection);
    slotMissing = !server.slots.some((slot) => slot.slotName === config.source.slot);
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
    const publications = await readPublications(connection);
    const publication = publications.find((p) => p.name === config.source.publication) ?? null;
    const followed = tables.filter((t) => matchTable(config, t.schema, t.table) !== null);
    findings.push(...checkPublication(config, server, publication, followed, tables));
    findings.push(...checkOtherPublications(config, publications, tables));
    findings.push(...checkTables(config, server, tables, followed, publication));
    findings.push(...checkSlot(config, server, publication));
    if (config.source.failover) findings.push(...checkFailover(server));
    if (config.source.captureDdl) {
      findings.push(...checkDdlCapture(config, await readDdlCapture(connection)));
    }
    findings.push(...await checkAvroSchemas(config, connection, followed));
  } catch (error) {
    findings.push(failure("queries", error));
  } finally {
    await connection.close();
  }
  const replication = await checkReplicationConnection(connect, target);
  findings.splice(afterConnection, 0, replication.finding);
  const recorded = options.recorded;
  if (
    slotMissing && recorded && replication.identity !== null &&
    recorded.slot === config.source.slot && recorded.systemId === replication.identity.systemId &&
    recorded.database === (replication.identity.dbName ?? "")
  ) {
    // Not "it will be created": the run refuses, since the changes since are gone.
    const at = findings.findIndex((f) => f.subject === `slot "${config.source.slot}"`);
    const gone: Finding = {
      level: "error",
      subject: `slot "${config.source.slot}"`,
      message:
        `does not exist, though this pipeline streamed from it (last confirmed ${recorded.confirmedLsn} at ${recorded.updatedAt}, recorded in ${recorded.path}): spillway run refuses to make a new one, which would skip every change since`,
      fix:
        `bring the slot back if it can be (a failover slot on the new primary, say); or accept the gap: spillway run ${config.file} --reset-slot`,
    };
    if (at === -1) findings.push(gone);
    else findings.splice(at, 1, gone);
  }
  return findings;
}

/** The source's connection options, as `spillway-check`, with a 10 s connect timeout. */
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
  const message = errorMessage(error);
  return { level: "error", subject, message, fix: fallbackFix };
}

/** Checks that every transform file of the `tables` entries exists and is a file. */
async function checkTransforms(config: PipelineConfig): Promise<Finding[]> {
  const uses = new Map<string, TableEntry>();
  for (const entry of config.tables) {
    for (const path of entry.transform ?? []) if (!uses.has(path)) uses.set(path, entry);
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
        problem = `cannot be read (${errorMessage(error)})`;
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

/** Opens a replication connection and runs IDENTIFY_SYSTEM on it. */
async function checkReplicationConnection(
  connect: (options: ConnectOptions) => Promise<PgConnection>,
  target: ConnectOptions,
): Promise<{ finding: Finding; identity: SystemIdentity | null }> {
  const subject = "replication connection";
  let connection: PgConnection | null = null;
  try {
    connection = await connect({ ...target, replication: "database" });
    const identity = await connection.identifySystem();
    return {
      identity,
      finding: {
        level: "ok",
        subject,
        message: `accepted (system ${identity.systemId}, timeline ${identity.timeline}, database "${
          identity.dbName ?? target.database
        }")`,
      },
    };
  } catch (error) {
    return { finding: failure(subject, error), identity: null };
  } finally {
    await connection?.close();
  }
}
