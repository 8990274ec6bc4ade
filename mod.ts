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
} from "./decoder/errors.ts";
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
} from "./decoder/connection.ts";
export { ReplicationStream, type ReplicationStreamOptions } from "./decoder/stream.ts";
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
} from "./pipelines/events.ts";
export { TransactionAssembler } from "./pipelines/assembler.ts";
export { ReplicationSource, type SourceItem, type SourceOptions } from "./pipelines/source.ts";
export { changeEventToJson, itemToJsonLine } from "./pipelines/json.ts";
export { retry, type RetryOptions } from "./pipelines/retry.ts";
