/**
 * Spillway: PostgreSQL change data capture with its own implementation of the
 * streaming replication protocol and the pgoutput format.
 *
 * This module re-exports the main pieces of each folder's `mod.ts`. A program that needs
 * one layer imports it alone: `@spillway/spillway/decoder` (bytes ⇄ typed messages and
 * values), `/config` (pipeline files), `/formats` (events → bytes) and `/sinks` (the sink
 * interface and the built-in sinks).
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

export {
  ConfigError,
  ConnectionError,
  DecodeError,
  isRetriable,
  PostgresError,
  type PostgresNotice,
} from "./errors.ts";
export type {
  ChangeEvent,
  EventSource,
  MessageEvent,
  Row,
  SinkRecord,
  SourceItem,
  StreamItem,
  TransactionInfo,
} from "./events.ts";
export { retry, type RetryOptions } from "./retry.ts";
export {
  DEBEZIUM_DEFAULTS,
  formatLsn,
  jsonEncoder,
  type JsonOptions,
  loadTypeInfos,
  type Lsn,
  lsn,
  LSN_ZERO,
  maxLsn,
  parseLsn,
  type PgComposite,
  type PgInterval,
  PgoutputDecoder,
  type PgoutputMessage,
  type PgRange,
  type PgValue,
  type Point,
  type ProtoVersion,
  RelationCache,
  type RelationChange,
  type RelationColumn,
  type RelationMessage,
  SPILLWAY_DEFAULTS,
  toJsonValue,
  type TupleData,
  type TupleValue,
  type TypeInfo,
  TypeRegistry,
  UNCHANGED_TOAST,
} from "./decoder/mod.ts";
export {
  type ConnectOptions,
  type CopyBothHost,
  type CreatedSlot,
  type CreateSlotOptions,
  maxProtoVersion,
  parseConnectionUrl,
  PgConnection,
  type PgoutputOptions,
  type QueryResult,
  ReplicationStream,
  type ReplicationStreamOptions,
  type SslMode,
  type StartReplicationOptions,
  type SystemIdentity,
} from "./postgres/mod.ts";
export { ReplicationSource, type SourceOptions, TransactionAssembler } from "./source/mod.ts";
export {
  changeEventToJson,
  itemToJsonLine,
  JsonRenderer,
  JsonWriter,
  writeJsonLine,
} from "./formats/mod.ts";
export {
  loadPipelineConfig,
  matchTable,
  parsePipelineConfig,
  type PipelineConfig,
  PipelineConfigError,
  pipelineJsonSchema,
} from "./config/mod.ts";
export {
  createSink,
  FileSink,
  NullSink,
  type Sink,
  type SinkStatus,
  StdoutSink,
  type WriteOptions,
} from "./sinks/mod.ts";
export { type CheckOptions, checkPipeline, type Finding } from "./check/mod.ts";
export {
  createSinks,
  PipelineRunner,
  type RunnerOptions,
  type RunnerState,
  runPipeline,
} from "./pipelines/mod.ts";
export {
  type ChangeResult,
  defineTransform,
  type TestInput,
  testTransform,
  type TestTransformResult,
  type Transform,
  type TransformContext,
  type TransformEvent,
  type TransformHooks,
  type TransformMessage,
  type TransformRelation,
  type TransformRow,
  type TransformSource,
  type TransformTransaction,
  type TransformTruncate,
} from "./transforms/mod.ts";
