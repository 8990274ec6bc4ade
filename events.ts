/**
 * The typed events Spillway hands to transforms and sinks.
 *
 * @module
 */

import type { Lsn } from "./decoder/lsn.ts";
import type { RelationMessage } from "./decoder/pgoutput.ts";

/**
 * The relation (columns, their types) a change event was decoded with: a symbol
 * key, so it stays out of JSON and out of the way of transforms.
 */
export const EVENT_RELATION: unique symbol = Symbol.for("spillway.event-relation");

/** A row: column name → typed value (see decoder/types/README.md for the mapping). */
export type Row = Record<string, unknown>;

/** Where a change came from. */
export interface EventSource {
  schema: string;
  table: string;
  relid: number;
  /** LSN of this change in the WAL. */
  lsn: Lsn;
  /** Start LSN of the transaction's commit record: orders transactions, and lets consumers dedupe. */
  commitLsn: Lsn;
  xid: number;
  /** µs since the Unix epoch. */
  commitTime: bigint;
  /** Replication origin, when the transaction was replayed from elsewhere. */
  origin?: string;
}

/**
 * One change to one row, in Debezium's vocabulary: `c` insert, `u` update,
 * `d` delete, `t` truncate, `r` snapshot read, `m` logical decoding message.
 */
export interface ChangeEvent {
  op: "c" | "u" | "d" | "t" | "r";
  source: EventSource;
  /** Old row: whole under REPLICA IDENTITY FULL, key columns only otherwise; null when not sent. */
  before: Row | null;
  after: Row | null;
  /** Columns whose TOASTed value did not change and was not sent: never a fake value. */
  unchanged: string[];
  /** For `t`: the TRUNCATE's options. */
  truncate?: { cascade: boolean; restartIdentity: boolean };
  /** The relation as it was when this change was decoded. */
  [EVENT_RELATION]?: RelationMessage;
}

/** A `pg_logical_emit_message` message. */
export interface MessageEvent {
  op: "m";
  transactional: boolean;
  prefix: string;
  content: Uint8Array;
  lsn: Lsn;
  /** Set for transactional messages. */
  xid?: number;
  commitLsn?: Lsn;
  commitTime?: bigint;
}

/** A transaction's identity, known at its Begin (or Stream Commit for streamed ones). */
export interface TransactionInfo {
  xid: number;
  /** Start of the commit (or prepare) record. */
  commitLsn: Lsn;
  /** µs since the Unix epoch. */
  commitTime: bigint;
  origin?: string;
  /** True when the server streamed it before commit (protocol 2+). */
  streamed: boolean;
  /** Two-phase transactions: the global transaction id. */
  gid?: string;
  /**
   * Where the transaction's first WAL record starts (the position the server gives its Begin
   * message); Debezium names transactions with it. Unset for streamed transactions.
   */
  firstLsn?: Lsn;
}

/** What the assembler hands on, in commit order. */
export type StreamItem =
  | { kind: "begin"; tx: TransactionInfo }
  /**
   * `size`: bytes of the pgoutput message it was decoded from, what the queue's
   * `max_bytes` counts.
   */
  | { kind: "change"; event: ChangeEvent; size: number }
  | { kind: "message"; event: MessageEvent; size: number }
  /**
   * `endLsn` is the position to confirm once every sink has the transaction; `eventCount`
   * counts what the server sent in it.
   */
  | { kind: "commit"; tx: TransactionInfo; endLsn: Lsn; eventCount: number }
  | { kind: "prepare"; tx: TransactionInfo; endLsn: Lsn; eventCount: number }
  | {
    kind: "commit-prepared";
    xid: number;
    gid: string;
    commitLsn: Lsn;
    endLsn: Lsn;
    commitTime: bigint;
  }
  | { kind: "rollback-prepared"; xid: number; gid: string; endLsn: Lsn; rollbackTime: bigint }
  | {
    kind: "schema-change";
    relid: number;
    schema: string;
    table: string;
    version: number;
    previousColumns: string[];
    columns: string[];
  };

/** A source item with a `restart` marker for a transaction cut off by a reconnect. */
export type SourceItem = StreamItem | { kind: "restart"; reason: string };

/** One record handed to sinks, in commit order. */
export type SinkRecord =
  | { kind: "begin"; tx: TransactionInfo }
  | {
    kind: "change";
    event: ChangeEvent;
    /** Routing: the topic (or stream) name for this table. */
    topic: string;
    /** Routing: the key columns' values; `null` when the table has no key. */
    key: Row | null;
    /** Headers a transform set (Kafka record headers). */
    headers?: Record<string, string>;
  }
  | { kind: "message"; event: MessageEvent }
  /** `eventCount`: the change and message records of the transaction the sinks got. */
  | { kind: "commit"; tx: TransactionInfo; endLsn: Lsn; eventCount: number }
  | {
    kind: "schema-change";
    schema: string;
    table: string;
    relid: number;
    version: number;
    previousColumns: string[];
    columns: string[];
  }
  /** An event a transform failed on, for the dead-letter sink only. */
  | {
    kind: "dead-letter";
    event: ChangeEvent | MessageEvent;
    failure: TransformFailureInfo | SchemaRefusalInfo;
  };

/**
 * On a relation made for a transform's output (`transforms/shape.ts`): the table's own
 * relation it was made from. The key of a change keeps the table's columns and types.
 */
export const SHAPED_FROM: unique symbol = Symbol.for("spillway.shapedFrom");

/**
 * Why a change went to a Kafka sink's dead-letter topic instead of its own: the schema registry
 * refused its table's new schema, and the sink's `on_incompatible` is `dead_letter`.
 */
export interface SchemaRefusalInfo {
  reason: "schema-refused";
  /** The subject whose new schema was refused. */
  subject: string;
  /** The topic and key the change would have been written with. */
  topic: string;
  key: Row | null;
  /** What the registry said, with the subject's compatibility level and what changed. */
  error: { name: string; message: string };
}

/** Why an event went to the dead-letter sink: which transform, which version, what error. */
export interface TransformFailureInfo {
  /** The transform's file. */
  transform: string;
  /** sha-256 of the transform's files (its version). */
  version: string;
  /** The topic and key the event had when it reached the transform. */
  topic: string | null;
  key: Row | null;
  /** `failed` (threw, ran past its time budget, returned something invalid) or `breaker-open`. */
  reason: "failed" | "breaker-open";
  error: { name: string; message: string; where: string | null; stack: string | null };
  /** Times the transform ran on the event. */
  attempts: number;
}

/** The LSN to confirm after an item is written, if it ends a transaction or is standalone. */
export function confirmableLsn(item: SourceItem): Lsn | null {
  switch (item.kind) {
    case "commit":
    case "prepare":
    case "commit-prepared":
    case "rollback-prepared":
      return item.endLsn;
    case "message":
      return item.event.transactional ? null : item.event.lsn;
    default:
      return null;
  }
}
