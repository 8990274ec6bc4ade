/**
 * Turns pgoutput messages into transactions of typed events, in commit order.
 * Streamed transactions (protocol 2+) are held as raw bytes (see
 * `spill.ts`, which may spill them to disk) until their Stream Commit,
 * then decoded and handed on lazily; aborted ones, and rolled-back
 * subtransactions, are discarded. Apart from spilling, no I/O.
 *
 * @module
 */

import { DecodeError, errorMessage } from "../errors.ts";
import type { Lsn } from "../decoder/lsn.ts";
import {
  PgoutputDecoder,
  type PgoutputMessage,
  type ProtoVersion,
  type RelationColumn,
  type RelationMessage,
  type TupleData,
  UNCHANGED_TOAST,
} from "../decoder/pgoutput.ts";
import { RelationCache, type RelationEntry } from "../decoder/relations.ts";
import { PgoutputCode } from "../decoder/codes.ts";
import { DEFAULT_SPILL_BYTES, SpillBudget, StreamedBuffer } from "./spill.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import { type ColumnDecoder, setField } from "../decoder/types/values.ts";
import {
  type ChangeEvent,
  EVENT_RELATION,
  type EventSource,
  type Row,
  type StreamItem,
  type TransactionInfo,
} from "../events.ts";

interface StreamedTransaction {
  xid: number;
  origin?: string;
  /** Its messages, undecoded, until Stream Commit. */
  buffer: StreamedBuffer;
}

/** Options of {@linkcode TransactionAssembler}. */
export interface AssemblerOptions {
  /** The negotiated pgoutput version. Default 4. */
  protoVersion?: ProtoVersion;
  relations?: RelationCache;
  /** Type codecs; default the built-in types only (others decode to `{ type, text }`). */
  types?: TypeRegistry;
  /** Memory budget of streamed transactions; beyond it they spill to disk. Default 16 MB. */
  spill?: SpillBudget;
}

/** What a message that yields nothing returns, shared (a streamed change buffered, say). */
const NO_ITEMS: readonly StreamItem[] = Object.freeze([]);

/** pgoutput tags held raw inside a stream block: they belong to the streamed transaction. */
const BUFFERED_TAGS = new Set<number>([
  PgoutputCode.Insert,
  PgoutputCode.Update,
  PgoutputCode.Delete,
  PgoutputCode.Truncate,
  PgoutputCode.Message,
  PgoutputCode.Relation,
  PgoutputCode.Type,
]);

const PLACEHOLDER_LSN = 0n as Lsn;

/**
 * Consumes `(walStart, pgoutput bytes)` pairs and returns the items they complete.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TransactionAssembler } from "./assembler.ts";
 * import type { Lsn } from "../decoder/lsn.ts";
 * const assembler = new TransactionAssembler({ protoVersion: 1 });
 * const begin = new Uint8Array(21);
 * begin[0] = 0x42; // 'B'
 * begin[20] = 9; // xid
 * const [item] = assembler.push(100n as Lsn, begin);
 * assert(item?.kind === "begin" && item.tx.xid === 9);
 * ```
 */
export class TransactionAssembler {
  readonly relations: RelationCache;
  /** Decodes column values by type OID; the source registers catalog types in it. */
  readonly types: TypeRegistry;
  #decoders = new WeakMap<RelationMessage, { generation: number; decoders: ColumnDecoder[] }>();
  #decoder: PgoutputDecoder;
  readonly #spill: SpillBudget;
  #current: TransactionInfo | null = null;
  #currentCount = 0;
  #streamXid: number | null = null;
  #streamed = new Map<number, StreamedTransaction>();
  /**
   * The relation cache's entries as they were before the open transaction's Relation messages
   * changed them (`undefined`: the relation was new), put back when the transaction is dropped.
   */
  #relationsBefore = new Map<number, RelationEntry | undefined>();
  /** The open transaction's changes and messages are read past; see {@linkcode skipRows}. */
  #skipRows = false;

  constructor(options: AssemblerOptions = {}) {
    this.relations = options.relations ?? new RelationCache();
    this.types = options.types ?? new TypeRegistry();
    this.#decoder = new PgoutputDecoder({ protoVersion: options.protoVersion ?? 4 });
    this.#spill = options.spill ?? new SpillBudget({ limitBytes: DEFAULT_SPILL_BYTES });
  }

  /** The memory budget of streamed transactions, for metrics. */
  get spill(): SpillBudget {
    return this.#spill;
  }

  /** Number of streamed transactions waiting for their commit. */
  get openStreamedTransactions(): number {
    return this.#streamed.size;
  }

  /** True between a Stream Start and its Stream Stop: changes then carry their xid. */
  get inStreamBlock(): boolean {
    return this.#streamXid !== null;
  }

  /** Changes and messages of the open transaction so far (0 outside one). */
  get openTransactionChanges(): number {
    return this.#current === null ? 0 : this.#currentCount;
  }

  /** True between a Begin and its Commit (or Prepare). */
  get inTransaction(): boolean {
    return this.#current !== null;
  }

  /** The decoder of the current session. */
  get decoder(): PgoutputDecoder {
    return this.#decoder;
  }

  /**
   * Starts over for a new replication session (after a reconnect the server
   * re-sends open transactions whole): forgets open transactions and decoder
   * state. Relations are kept, so a re-sent identical Relation is not a schema change;
   * see {@linkcode reset} for those the dropped transaction changed.
   */
  startSession(protoVersion: ProtoVersion): void {
    this.reset();
    this.#decoder = new PgoutputDecoder({ protoVersion });
  }

  /**
   * Forgets open transactions and decoder state. Relations that the open transaction's
   * Relation messages changed go back to what they were before it: the server sends the
   * transaction again from its Begin, and its schema changes are announced again (once).
   */
  reset(): void {
    for (const [relid, entry] of this.#relationsBefore) this.relations.restore(relid, entry);
    this.#relationsBefore.clear();
    this.#current = null;
    this.#currentCount = 0;
    this.#skipRows = false;
    this.#streamXid = null;
    for (const streamed of this.#streamed.values()) streamed.buffer.dispose();
    this.#streamed.clear();
    this.#decoder.reset();
  }

  /**
   * Reads past the rest of the open transaction (the one whose begin item came last): its
   * changes and transactional messages give no items and their values are not decoded; its
   * Relation and Type messages still apply. For a transaction delivered before a reconnect
   * and sent again: its rows may not fit types that changed since.
   */
  skipRows(): void {
    this.#skipRows = true;
  }

  /**
   * Takes one XLogData payload. Returns the items it completes; at a Stream
   * Commit that is a lazy iterable over the whole transaction, decoded as it is
   * consumed — consume it before the next push.
   */
  push(walStart: Lsn, bytes: Uint8Array): Iterable<StreamItem> {
    const streamXid = this.#streamXid;
    if (streamXid !== null && bytes.byteLength > 0 && BUFFERED_TAGS.has(bytes[0]!)) {
      if (bytes.byteLength < 5) {
        throw new DecodeError(
          "pgoutput",
          1,
          "a message in a stream block is too short to carry its xid",
        );
      }
      // Read by hand: a DataView per streamed change cost more than the rest of this.
      const subXid = ((bytes[1]! << 24) | (bytes[2]! << 16) | (bytes[3]! << 8) | bytes[4]!) >>> 0;
      this.#streamed.get(streamXid)!.buffer.push(walStart, subXid, bytes);
      return NO_ITEMS;
    }
    return this.#handle(walStart, this.#decoder.decode(bytes), bytes.byteLength);
  }

  /** `size`: the message's bytes, carried by the changes and messages it becomes. */
  #handle(walStart: Lsn, message: PgoutputMessage, size: number): Iterable<StreamItem> {
    switch (message.type) {
      case "Begin":
        return [this.#begin({
          xid: message.xid,
          commitLsn: message.finalLsn,
          commitTime: message.commitTime,
          streamed: false,
          firstLsn: walStart,
        })];
      case "BeginPrepare":
        return [this.#begin({
          xid: message.xid,
          commitLsn: message.prepareLsn,
          commitTime: message.prepareTime,
          streamed: false,
          gid: message.gid,
        })];
      case "Origin":
        if (this.#streamXid !== null) {
          const streamed = this.#streamed.get(this.#streamXid);
          if (streamed) streamed.origin = message.originName;
        } else if (this.#current !== null) {
          this.#current.origin = message.originName;
        }
        return [];
      case "Commit":
        return [this.#end("commit", message.endLsn)];
      case "Prepare":
        return [this.#end("prepare", message.endLsn)];
      case "CommitPrepared":
        return [{
          kind: "commit-prepared",
          xid: message.xid,
          gid: message.gid,
          commitLsn: message.commitLsn,
          endLsn: message.endLsn,
          commitTime: message.commitTime,
        }];
      case "RollbackPrepared":
        return [{
          kind: "rollback-prepared",
          xid: message.xid,
          gid: message.gid,
          endLsn: message.rollbackEndLsn,
          rollbackTime: message.rollbackTime,
        }];
      case "Relation":
        return this.#relation(message);
      case "Type":
        this.relations.applyType(message);
        return [];
      case "Insert":
      case "Update":
      case "Delete":
      case "Truncate":
        if (this.#skipRows) return [];
        return this.#route(this.#changes(walStart, message, size));
      case "Message": {
        if (message.transactional && this.#skipRows) return [];
        const event = {
          op: "m" as const,
          transactional: message.transactional,
          prefix: message.prefix,
          content: message.content,
          lsn: message.lsn,
        };
        if (!message.transactional) return [{ kind: "message", event, size }];
        return this.#route([{ kind: "message", event, size }]);
      }
      case "StreamStart": {
        this.#streamXid = message.xid;
        if (!this.#streamed.has(message.xid)) {
          this.#streamed.set(message.xid, {
            xid: message.xid,
            buffer: new StreamedBuffer(this.#spill),
          });
        }
        return [];
      }
      case "StreamStop":
        this.#streamXid = null;
        return [];
      case "StreamAbort": {
        const streamed = this.#streamed.get(message.xid);
        if (message.subXid === message.xid) {
          streamed?.buffer.dispose();
          this.#streamed.delete(message.xid);
        } else {
          streamed?.buffer.abortSubtransaction(message.subXid);
        }
        return [];
      }
      case "StreamCommit":
      case "StreamPrepare": {
        const streamed = this.#streamed.get(message.xid);
        this.#streamed.delete(message.xid);
        const isCommit = message.type === "StreamCommit";
        const tx: TransactionInfo = {
          xid: message.xid,
          commitLsn: isCommit ? message.commitLsn : message.prepareLsn,
          commitTime: isCommit ? message.commitTime : message.prepareTime,
          streamed: true,
          ...(streamed?.origin ? { origin: streamed.origin } : {}),
          ...(isCommit ? {} : { gid: message.gid }),
        };
        return this.#replay(streamed, tx, isCommit ? "commit" : "prepare", message.endLsn);
      }
      default:
        return assertNever(message);
    }
  }

  /**
   * Decodes a committed streamed transaction from its buffer, as if it had been
   * sent whole: its Relations apply to the cache in order, its changes carry the
   * commit's LSN and time. Lazy, so a huge transaction is never held decoded.
   */
  *#replay(
    streamed: StreamedTransaction | undefined,
    tx: TransactionInfo,
    kind: "commit" | "prepare",
    endLsn: Lsn,
  ): Generator<StreamItem> {
    yield this.#begin(tx);
    try {
      if (streamed !== undefined) {
        const decoder = new PgoutputDecoder({ protoVersion: this.#decoder.protoVersion });
        decoder.enterStreamBlock(); // buffered messages carry their xid
        for (const buffered of streamed.buffer.messages()) {
          const items = this.#handle(
            buffered.walStart,
            decoder.decode(buffered.bytes),
            buffered.bytes.byteLength,
          );
          // An array (any buffered message) is indexed: `yield*` would make an iterator each.
          if (Array.isArray(items)) { for (let i = 0; i < items.length; i++) yield items[i]!; }
          else yield* items;
        }
      }
    } finally {
      streamed?.buffer.dispose();
    }
    yield this.#end(kind, endLsn);
  }

  /** Opens `tx`; returns its begin item. */
  #begin(tx: TransactionInfo): StreamItem {
    this.#current = tx;
    this.#currentCount = 0;
    this.#skipRows = false;
    return { kind: "begin", tx };
  }

  /** Ends the open transaction; returns its commit or prepare item. */
  #end(kind: "commit" | "prepare", endLsn: Lsn): StreamItem {
    const tx = this.#requireCurrent(kind === "commit" ? "Commit" : "Prepare");
    const eventCount = this.#currentCount;
    this.#current = null;
    this.#relationsBefore.clear();
    this.#skipRows = false;
    return { kind, tx, endLsn, eventCount };
  }

  #requireCurrent(what: string): TransactionInfo {
    if (this.#current === null) throw new DecodeError(what, 0, `${what} without a Begin`);
    return this.#current;
  }

  /** Counts items into the open transaction and stamps messages with it. */
  #route(items: StreamItem[]): StreamItem[] {
    const tx = this.#requireCurrent("change");
    for (const item of items) {
      if (item.kind === "change") {
        this.#currentCount++;
      } else if (item.kind === "message") {
        item.event.xid = tx.xid;
        item.event.commitLsn = tx.commitLsn;
        item.event.commitTime = tx.commitTime;
        this.#currentCount++;
      }
    }
    return items;
  }

  #relation(message: RelationMessage): StreamItem[] {
    const relid = message.relationId;
    if (this.#current !== null && !this.#relationsBefore.has(relid)) {
      this.#relationsBefore.set(relid, this.relations.entry(relid));
    }
    const change = this.relations.apply(message);
    if (change.kind !== "schema-change") return [];
    const item: StreamItem = {
      kind: "schema-change",
      relid: message.relationId,
      schema: message.namespace,
      table: message.relationName,
      version: change.version,
      previousColumns: change.previous.columns.map((column) => column.name),
      columns: message.columns.map((column) => column.name),
    };
    return [item];
  }

  #source(walStart: Lsn, relation: RelationMessage, xid: number | undefined): EventSource {
    const tx = this.#current;
    const source: EventSource = {
      schema: relation.namespace,
      table: relation.relationName,
      relid: relation.relationId,
      lsn: walStart,
      commitLsn: tx?.commitLsn ?? PLACEHOLDER_LSN,
      xid: tx?.xid ?? xid ?? 0,
      commitTime: tx?.commitTime ?? 0n,
    };
    if (tx?.origin) source.origin = tx.origin;
    return source;
  }

  #changes(
    walStart: Lsn,
    message: Extract<PgoutputMessage, { type: "Insert" | "Update" | "Delete" | "Truncate" }>,
    size: number,
  ): StreamItem[] {
    if (message.type === "Truncate") {
      return message.relationIds.map((relid) => {
        const relation = this.#relationFor(relid, "Truncate");
        return {
          kind: "change",
          event: {
            op: "t",
            source: this.#source(walStart, relation, message.xid),
            before: null,
            after: null,
            unchanged: [],
            truncate: { cascade: message.cascade, restartIdentity: message.restartIdentity },
            [EVENT_RELATION]: relation,
          },
          size: Math.ceil(size / message.relationIds.length),
        };
      });
    }
    const relation = this.#relationFor(message.relationId, message.type);
    const unchanged: string[] = [];
    let event: ChangeEvent;
    switch (message.type) {
      case "Insert":
        event = {
          op: "c",
          source: this.#source(walStart, relation, message.xid),
          before: null,
          after: this.#toRow(relation, message.newTuple, false, unchanged),
          unchanged,
        };
        break;
      case "Update":
        event = {
          op: "u",
          source: this.#source(walStart, relation, message.xid),
          before: message.oldTuple === null
            ? null
            : this.#toRow(relation, message.oldTuple, message.oldTupleKind === "key", []),
          after: this.#toRow(relation, message.newTuple, false, unchanged),
          unchanged,
        };
        break;
      case "Delete":
        event = {
          op: "d",
          source: this.#source(walStart, relation, message.xid),
          before: this.#toRow(relation, message.oldTuple, message.oldTupleKind === "key", []),
          after: null,
          unchanged,
        };
        break;
    }
    event[EVENT_RELATION] = relation;
    return [{ kind: "change", event, size }];
  }

  /** The column decoders of a relation, rebuilt when the type registry learns new types. */
  #decodersFor(relation: RelationMessage): ColumnDecoder[] {
    const cached = this.#decoders.get(relation);
    if (cached !== undefined && cached.generation === this.types.generation) return cached.decoders;
    const decoders = relation.columns.map((column) =>
      this.types.columnDecoder(column.typeOid, column.typeModifier)
    );
    this.#decoders.set(relation, { generation: this.types.generation, decoders });
    return decoders;
  }

  /**
   * Builds a row of typed values; key tuples keep key columns only; unchanged
   * TOAST columns go to `unchanged` and stay out of the row.
   */
  #toRow(relation: RelationMessage, tuple: TupleData, keyOnly: boolean, unchanged: string[]): Row {
    const columns = relation.columns;
    if (tuple.length !== columns.length) {
      throw new DecodeError(
        "tuple",
        0,
        `relation "${relation.namespace}.${relation.relationName}" has ${columns.length} columns but the tuple has ${tuple.length}`,
      );
    }
    const decoders = this.#decodersFor(relation);
    const row: Row = {};
    let i = 0;
    try {
      for (; i < columns.length; i++) {
        const column = columns[i]!;
        if (keyOnly && !column.isKey) continue;
        const value = tuple[i];
        if (value === UNCHANGED_TOAST) {
          unchanged.push(column.name);
          continue;
        }
        // setField: a column may be named `__proto__`.
        setField<unknown>(
          row,
          column.name,
          value === null || value === undefined ? null : decoders[i]!(value),
        );
      }
    } catch (error) {
      throw columnError(relation, columns[i]!, error);
    }
    return row;
  }

  /**
   * The column type OIDs of a Relation message, read without changing any state,
   * so the caller can load unknown types from the catalog before pushing it.
   */
  relationTypeOids(bytes: Uint8Array): number[] {
    const scratch = new PgoutputDecoder({ protoVersion: this.#decoder.protoVersion });
    if (this.#streamXid !== null) scratch.enterStreamBlock();
    const message = scratch.decode(bytes);
    return message.type === "Relation" ? message.columns.map((column) => column.typeOid) : [];
  }

  #relationFor(relid: number, what: string): RelationMessage {
    const relation = this.relations.get(relid);
    if (relation === undefined) {
      throw new DecodeError(what, 1, `relation ${relid} was never described by a Relation message`);
    }
    return relation;
  }
}

function assertNever(value: never): never {
  throw new Error(`Unhandled message: ${JSON.stringify(value)}`);
}

/** A value that failed to decode, named by its column, type and table. */
function columnError(relation: RelationMessage, column: RelationColumn, error: unknown): Error {
  const reason = errorMessage(error);
  const wrapped = new DecodeError(
    `column "${column.name}"`,
    error instanceof DecodeError ? error.offset : 0,
    reason,
  );
  wrapped.message =
    `Cannot decode column "${column.name}" (type OID ${column.typeOid}) of "${relation.namespace}.${relation.relationName}": ${reason}; nothing past this change is confirmed: if the type was changed (ALTER TYPE), restart so it is read again from the catalog, otherwise report this with the column's type`;
  wrapped.cause = error;
  return wrapped;
}
