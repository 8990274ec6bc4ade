/**
 * Spillway: PostgreSQL change data capture with its own implementation of the
 * streaming replication protocol and the pgoutput format.
 *
 * @example
 * ```ts ignore
 * import { ReplicationSource, parseConnectionUrl } from "./mod.ts";
 * const source = await ReplicationSource.open({
 *   connection: parseConnectionUrl("postgres://replicator:secret@localhost/app"),
 *   slot: "orders_cdc", createSlot: true,
 *   publication: "orders_pub", createPublication: true,
 * });
 * for await (const batch of source.batches()) {
 *   for (const item of batch) {
 *     if (item.kind === "change") console.log(item.event.op, item.event.after);
 *     if (item.kind === "commit") source.confirm(item.endLsn); // once durably handled
 *   }
 * }
 * ```
 *
 * @module
 */

export { formatLsn, type Lsn, lsn, LSN_ZERO, maxLsn, parseLsn } from "./decoder/lsn.ts";
export {
  ConfigError,
  ConnectionError,
  DecodeError,
  isRetriable,
  PostgresError,
  type PostgresNotice,
} from "./errors.ts";
export {
  type ConnectOptions,
  type CreatedSlot,
  type CreateSlotOptions,
  maxProtoVersion,
  parseConnectionUrl,
  PgConnection,
  type PgoutputOptions,
  type QueryResult,
  type SslMode,
  type StartReplicationOptions,
  type SystemIdentity,
} from "./postgres/connection.ts";
export { ReplicationStream, type ReplicationStreamOptions } from "./postgres/stream.ts";
export {
  PgoutputDecoder,
  type PgoutputMessage,
  type ProtoVersion,
  type RelationColumn,
  type RelationMessage,
  type TupleData,
  type TupleValue,
  UNCHANGED_TOAST,
} from "./decoder/pgoutput.ts";
export { RelationCache, type RelationChange } from "./decoder/relations.ts";
export type {
  ChangeEvent,
  EventSource,
  MessageEvent,
  Row,
  StreamItem,
  TransactionInfo,
} from "./events.ts";
export { TransactionAssembler } from "./source/assembler.ts";
export { ReplicationSource, type SourceOptions } from "./source/replication_source.ts";
export { type SourceItem } from "./events.ts";
export { changeEventToJson, itemToJsonLine, writeJsonLine } from "./formats/json.ts";
export { JsonWriter } from "./formats/json_writer.ts";
export { retry, type RetryOptions } from "./retry.ts";
export { type TypeInfo, TypeRegistry } from "./decoder/types/registry.ts";
export { loadTypeInfos } from "./decoder/types/catalog.ts";
export {
  DEBEZIUM_DEFAULTS,
  jsonEncoder,
  type JsonOptions,
  SPILLWAY_DEFAULTS,
  toJsonValue,
} from "./decoder/types/json.ts";
export type { PgComposite, PgInterval, PgRange, PgValue, Point } from "./decoder/types/values.ts";
export { JsonRenderer } from "./formats/json.ts";
export {
  loadPipelineConfig,
  matchTable,
  parsePipelineConfig,
  type PipelineConfig,
  PipelineConfigError,
} from "./config/mod.ts";
export { PipelineRunner, type RunnerOptions, type RunnerState } from "./pipelines/runner.ts";
export { runPipeline } from "./pipelines/run_pipeline.ts";
export type { Sink, SinkStatus, WriteOptions } from "./sinks/types.ts";
export type { SinkRecord } from "./events.ts";
export { FileSink } from "./sinks/file.ts";
export { StdoutSink } from "./sinks/stdout.ts";
export { NullSink } from "./sinks/null.ts";
