/**
 * The replication source: a slot and publication on a server, read with reconnects and
 * backoff, turned into transactions in commit order (`replication_source.ts`), by the
 * assembler (`assembler.ts`); streamed transactions wait in memory, then on disk
 * (`spill.ts`); DDL text arrives as messages when asked (`ddl_capture.ts`). The source takes
 * plain options, never a pipeline configuration.
 *
 * @example
 * ```ts ignore
 * import { ReplicationSource } from "./mod.ts";
 * import { parseConnectionUrl } from "../postgres/mod.ts";
 * const source = await ReplicationSource.open({
 *   connection: parseConnectionUrl("postgres://replicator:secret@localhost/app"),
 *   slot: "orders_cdc",
 *   publication: "orders_pub",
 * });
 * for await (const batch of source.batches()) {
 *   for (const item of batch) if (item.kind === "commit") source.confirm(item.endLsn);
 * }
 * ```
 *
 * @module
 */

export * from "./assembler.ts";
export * from "./replication_source.ts";
export * from "./spill.ts";
export * from "./publications.ts";
export * from "./ddl_capture.ts";
