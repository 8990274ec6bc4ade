/**
 * Turns pgoutput messages into transactions of typed events, in commit order.
 * Pure: no I/O. Streamed transactions (protocol 2+) are held until their Stream
 * Commit; aborted ones, and rolled-back subtransactions, are discarded.
 *
 * @module
 */

import { DecodeError } from "../decoder/errors.ts";
import type { Lsn } from "../decoder/lsn.ts";
import {
  type PgoutputMessage,
  type RelationMessage,
  type TupleData,
  UNCHANGED_TOAST,
} from "../decoder/pgoutput.ts";
import { RelationCache } from "../decoder/relations.ts";
import type { ChangeEvent, EventSource, Row, StreamItem, TransactionInfo } from "./events.ts";

/** An item, or a Relation to apply at commit, with the (sub)transaction xid that made it. */
type StreamedEntry =
  | { subXid: number; item: StreamItem; relation?: undefined }
  | { subXid: number; relation: RelationMessage; item?: undefined };

interface StreamedTransaction {
  xid: number;
  origin?: string;
  entries: StreamedEntry[];
  /**
   * Relations described inside this transaction's stream blocks: used to decode its
   * changes, merged into the cache only at its commit, dropped if it aborts.
   */
  relations: Map<number, RelationMessage>;
}

const PLACEHOLDER_LSN = 0n as Lsn;

/**
 * Consumes `(walStart, message)` pairs and returns the items they complete.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TransactionAssembler } from "./assembler.ts";
 * import type { Lsn } from "../decoder/lsn.ts";
 * const assembler = new TransactionAssembler();
 * const items = assembler.push(100n as Lsn, {
 *   type: "Begin", finalLsn: 200n as Lsn, commitTime: 0n, xid: 9,
 * });
 * assert(items[0]?.kind === "begin");
 * ```
 */
export class TransactionAssembler {
  readonly relations: RelationCache;
  #current: TransactionInfo | null = null;
  #currentCount = 0;
  #streamXid: number | null = null;
  #streamed = new Map<number, StreamedTransaction>();

  constructor(relations = new RelationCache()) {
    this.relations = relations;
  }

  /** Number of streamed transactions waiting for their commit. */
  get openStreamedTransactions(): number {
    return this.#streamed.size;
  }

  /** True between a Begin and its Commit (or Prepare). */
  get inTransaction(): boolean {
    return this.#current !== null;
  }

  /**
   * Forgets open transactions (after a reconnect the server re-sends them whole).
   * Relations are kept, so a re-sent identical Relation is not a schema change.
   */
  reset(): void {
    this.#current = null;
    this.#currentCount = 0;
    this.#streamXid = null;
    this.#streamed.clear();
  }

  push(walStart: Lsn, message: PgoutputMessage): StreamItem[] {
    switch (message.type) {
      case "Begin":
        this.#current = {
          xid: message.xid,
          commitLsn: message.finalLsn,
          commitTime: message.commitTime,
          streamed: false,
        };
        this.#currentCount = 0;
        return [{ kind: "begin", tx: this.#current }];
      case "BeginPrepare":
        this.#current = {
          xid: message.xid,
          commitLsn: message.prepareLsn,
          commitTime: message.prepareTime,
          streamed: false,
          gid: message.gid,
        };
        this.#currentCount = 0;
        return [{ kind: "begin", tx: this.#current }];
      case "Origin":
        if (this.#streamXid !== null) {
          const streamed = this.#streamed.get(this.#streamXid);
          if (streamed) streamed.origin = message.originName;
        } else if (this.#current !== null) {
          this.#current.origin = message.originName;
        }
        return [];
      case "Commit": {
        const tx = this.#requireCurrent("Commit");
        this.#current = null;
        return [{ kind: "commit", tx, endLsn: message.endLsn, eventCount: this.#currentCount }];
      }
      case "Prepare": {
        const tx = this.#requireCurrent("Prepare");
        this.#current = null;
        return [{ kind: "prepare", tx, endLsn: message.endLsn, eventCount: this.#currentCount }];
      }
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
        return this.#route(message.xid, this.#changes(walStart, message));
      case "Message": {
        const event = {
          op: "m" as const,
          transactional: message.transactional,
          prefix: message.prefix,
          content: message.content,
          lsn: message.lsn,
        };
        if (!message.transactional) return [{ kind: "message", event }];
        return this.#route(message.xid, [{ kind: "message", event }]);
      }
      case "StreamStart": {
        this.#streamXid = message.xid;
        if (!this.#streamed.has(message.xid)) {
          this.#streamed.set(message.xid, { xid: message.xid, entries: [], relations: new Map() });
        }
        return [];
      }
      case "StreamStop":
        this.#streamXid = null;
        return [];
      case "StreamAbort": {
        if (message.subXid === message.xid) {
          this.#streamed.delete(message.xid);
        } else {
          const streamed = this.#streamed.get(message.xid);
          if (streamed) {
            streamed.entries = streamed.entries.filter((entry) => entry.subXid !== message.subXid);
          }
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
        const out: StreamItem[] = [{ kind: "begin", tx }];
        let count = 0;
        for (const entry of streamed?.entries ?? []) {
          if (entry.relation !== undefined) {
            out.push(...this.#relation(entry.relation)); // the schema as of this point of the transaction
            continue;
          }
          const item = entry.item;
          if (item.kind === "change") {
            item.event.source.commitLsn = tx.commitLsn;
            item.event.source.commitTime = tx.commitTime;
            if (tx.origin) item.event.source.origin = tx.origin;
            count++;
          } else if (item.kind === "message") {
            item.event.xid = tx.xid;
            item.event.commitLsn = tx.commitLsn;
            item.event.commitTime = tx.commitTime;
            count++;
          }
          out.push(item);
        }
        out.push({
          kind: isCommit ? "commit" : "prepare",
          tx,
          endLsn: message.endLsn,
          eventCount: count,
        });
        return out;
      }
      default:
        return assertNever(message);
    }
  }

  #requireCurrent(what: string): TransactionInfo {
    if (this.#current === null) throw new DecodeError(what, 0, `${what} without a Begin`);
    return this.#current;
  }

  /** Sends items to the open transaction, or buffers them in the streamed one. */
  #route(xid: number | undefined, items: StreamItem[]): StreamItem[] {
    if (this.#streamXid !== null) {
      const streamed = this.#streamed.get(this.#streamXid)!;
      for (const item of items) streamed.entries.push({ subXid: xid ?? this.#streamXid, item });
      return [];
    }
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
    if (this.#streamXid !== null) {
      const streamed = this.#streamed.get(this.#streamXid)!;
      streamed.relations.set(message.relationId, message);
      streamed.entries.push({ subXid: message.xid ?? this.#streamXid, relation: message });
      return [];
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
    const tx = this.#streamXid === null ? this.#current : null;
    const source: EventSource = {
      schema: relation.namespace,
      table: relation.relationName,
      relid: relation.relationId,
      lsn: walStart,
      commitLsn: tx?.commitLsn ?? PLACEHOLDER_LSN,
      xid: tx?.xid ?? this.#streamXid ?? xid ?? 0,
      commitTime: tx?.commitTime ?? 0n,
    };
    if (tx?.origin) source.origin = tx.origin;
    return source;
  }

  #changes(
    walStart: Lsn,
    message: Extract<PgoutputMessage, { type: "Insert" | "Update" | "Delete" | "Truncate" }>,
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
          },
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
          after: toRow(relation, message.newTuple, false, unchanged),
          unchanged,
        };
        break;
      case "Update":
        event = {
          op: "u",
          source: this.#source(walStart, relation, message.xid),
          before: message.oldTuple === null
            ? null
            : toRow(relation, message.oldTuple, message.oldTupleKind === "key", []),
          after: toRow(relation, message.newTuple, false, unchanged),
          unchanged,
        };
        break;
      case "Delete":
        event = {
          op: "d",
          source: this.#source(walStart, relation, message.xid),
          before: toRow(relation, message.oldTuple, message.oldTupleKind === "key", []),
          after: null,
          unchanged,
        };
        break;
    }
    return [{ kind: "change", event }];
  }

  #relationFor(relid: number, what: string): RelationMessage {
    const overlay = this.#streamXid === null
      ? undefined
      : this.#streamed.get(this.#streamXid)?.relations.get(relid);
    const relation = overlay ?? this.relations.get(relid);
    if (relation === undefined) {
      throw new DecodeError(what, 1, `relation ${relid} was never described by a Relation message`);
    }
    return relation;
  }
}

/** Builds a row; key tuples keep key columns only; 'u' columns go to `unchanged`. */
function toRow(
  relation: RelationMessage,
  tuple: TupleData,
  keyOnly: boolean,
  unchanged: string[],
): Row {
  const columns = relation.columns;
  if (tuple.length !== columns.length) {
    throw new DecodeError(
      "tuple",
      0,
      `relation "${relation.namespace}.${relation.relationName}" has ${columns.length} columns but the tuple has ${tuple.length}`,
    );
  }
  const row: Row = {};
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    if (keyOnly && !column.isKey) continue;
    const value = tuple[i];
    if (value === UNCHANGED_TOAST) {
      unchanged.push(column.name);
      continue;
    }
    row[column.name] = value;
  }
  return row;
}

function assertNever(value: never): never {
  throw new Error(`Unhandled message: ${JSON.stringify(value)}`);
}
