/**
 * `spillway check pipeline.yaml`: validates a pipeline file against its database before
 * anything runs, and says how to fix each problem.
 *
 * It checks the server (`wal_level`, free slots and WAL senders, `max_slot_wal_keep_size`,
 * `wal_sender_timeout`), the role (REPLICATION, a replication connection, the right to
 * create the publication), the publication, every configured table (it exists, its
 * replica identity carries a key for UPDATE and DELETE, the configured key columns
 * exist), the slot (plugin, database, `wal_status`, reader), failover settings, the event
 * triggers of `capture_ddl` (with the SQL that installs and removes them), that configured
 * transform files exist, and, for Kafka sinks writing Avro, whether each table's schemas are
 * registered or would be accepted by the schema registry (`avro.ts`). Each result is a {@linkcode Finding}; a fix
 * that drops a slot names `spillway slots drop <url> <slot>`, the password hidden.
 *
 * The queries (`postgres/catalog.ts`) work on PostgreSQL 14 to 18. Nothing is created or
 * changed. Each rule is a pure function of the pipeline and what the queries read, so the
 * runner can run them at start too.
 *
 * @example
 * ```ts ignore
 * import { checkPipeline, formatFindings } from "./mod.ts";
 * import { loadPipelineConfig } from "../config/mod.ts";
 * const findings = await checkPipeline(await loadPipelineConfig("pipeline.yaml"));
 * console.log(formatFindings(findings, { color: false }));
 * ```
 *
 * @module
 */

export { type CheckOptions, checkPipeline, type RecordedSlot } from "./check_pipeline.ts";
export { type Finding, type FindingLevel, formatFindings } from "./finding.ts";
export { checkRole, checkSettings } from "./server.ts";
export { checkOtherPublications, checkPublication } from "./publication.ts";
export { checkTables } from "./tables.ts";
export { checkFailover, checkSlot, dropSlotCommand } from "./slot.ts";
export { checkDdlCapture } from "./ddl.ts";
export { checkAvroSchemas } from "./avro.ts";
