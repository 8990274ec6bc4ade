/**
 * The crossing between the pipeline's records and what a transform sees: change records become
 * {@linkcode TransformEvent}s (LSNs and times as text, so they cross to a Worker as plain data),
 * relations become {@linkcode TransformRelation}s, and what a transform returns becomes change
 * records again, checked on the way back.
 *
 * @module
 */

import { formatLsn, formatUnixMicros, type Lsn } from "../decoder/lsn.ts";
import type { RelationMessage } from "../decoder/pgoutput.ts";
import type { TypeRegistry } from "../decoder/types/registry.ts";
import {
  type ChangeEvent,
  EVENT_RELATION,
  type EventSource,
  type MessageEvent,
  type Row,
  type SinkRecord,
} from "../events.ts";
import type {
  TransformColumn,
  TransformEvent,
  TransformMessage,
  TransformRelation,
  TransformSource,
  TransformTransaction,
  TransformTruncate,
} from "./api.ts";

/** A change record of the pipeline. */
export type ChangeRecord = Extract<SinkRecord, { kind: "change" }>;

/** Turns the pipeline's records into a transform's inputs, caching what repeats. */
export class TransformInputs {
  readonly #types: TypeRegistry;
  #relations = new WeakMap<RelationMessage, { generation: number; relation: TransformRelation }>();
  /** The transaction last asked for: its changes and its commit share one object. */
  #lastTx: { xid: number; commitLsn: Lsn; commitTime: bigint; text: TransformTransaction } | null =
    null;

  constructor(types: TypeRegistry) {
    this.#types = types;
  }

  /** The relation as a transform sees it: columns with type names (and an enum's labels). */
  relation(message: RelationMessage): TransformRelation {
    const cached = this.#relations.get(message);
    if (cached !== undefined && cached.generation === this.#types.generation) {
      return cached.relation;
    }
    const columns = message.columns.map((column): TransformColumn => {
      const info = this.#types.get(column.typeOid);
      return {
        name: column.name,
        typeOid: column.typeOid,
        type: info?.name ?? `oid:${column.typeOid}`,
        key: column.isKey,
        ...(info?.enumLabels === undefined ? {} : { values: [...info.enumLabels] }),
      };
    });
    const relation: TransformRelation = {
      schema: message.namespace,
      table: message.relationName,
      relid: message.relationId,
      columns,
    };
    this.#relations.set(message, { generation: this.#types.generation, relation });
    return relation;
  }

  /**
   * A transaction as a transform sees it (LSN and time as text), one object for all of its
   * changes and its commit: it crosses to a Worker once per batch.
   */
  transaction(xid: number, commitLsn: Lsn, commitTime: bigint): TransformTransaction {
    const last = this.#lastTx;
    if (
      last !== null && last.xid === xid && last.commitLsn === commitLsn &&
      last.commitTime === commitTime
    ) {
      return last.text;
    }
    const text = {
      xid,
      commitLsn: formatLsn(commitLsn),
      commitTime: formatUnixMicros(commitTime),
    };
    this.#lastTx = { xid, commitLsn, commitTime, text };
    return text;
  }

  /** Where a change came from, as text. */
  source(source: EventSource): TransformSource {
    const transaction = this.transaction(source.xid, source.commitLsn, source.commitTime);
    return {
      schema: source.schema,
      table: source.table,
      relid: source.relid,
      lsn: formatLsn(source.lsn),
      commitLsn: transaction.commitLsn,
      xid: source.xid,
      commitTime: transaction.commitTime,
      ...(source.origin === undefined ? {} : { origin: source.origin }),
    };
  }

  /** A change record as a transform's event (a truncate for `op: "t"`). */
  event(record: ChangeRecord): TransformEvent | TransformTruncate {
    const event = record.event;
    const source = this.source(event.source);
    if (event.op === "t") {
      return {
        op: "t",
        source,
        cascade: event.truncate?.cascade ?? false,
        restartIdentity: event.truncate?.restartIdentity ?? false,
      };
    }
    return {
      op: event.op,
      source,
      before: event.before,
      after: event.after,
      unchanged: event.unchanged,
      topic: record.topic,
      key: record.key,
      ...(record.headers === undefined ? {} : { headers: record.headers }),
    };
  }
}

/** A message as a transform sees it. */
export function transformMessage(event: MessageEvent): TransformMessage {
  return {
    op: "m",
    transactional: event.transactional,
    prefix: event.prefix,
    content: event.content,
    lsn: formatLsn(event.lsn),
  };
}

/** Two relations with the same columns (names, types, keys, enum labels). */
export function sameShape(a: TransformRelation, b: TransformRelation): boolean {
  if (a.schema !== b.schema || a.table !== b.table || a.columns.length !== b.columns.length) {
    return false;
  }
  return a.columns.every((column, i) => {
    const other = b.columns[i]!;
    return column.name === other.name && column.typeOid === other.typeOid &&
      column.key === other.key &&
      (column.values ?? []).join("\u0000") === (other.values ?? []).join("\u0000");
  });
}

/**
 * The change record a transform's output stands for, or why it cannot be one. The source
 * (table, LSNs, transaction) always stays the input's: a transform changes what is written, not
 * where it came from. Topic, key and headers are the output's when it sets them.
 */
export function outputRecord(
  input: ChangeRecord,
  output: unknown,
): ChangeRecord | string {
  const out = output as Partial<TransformEvent> & Partial<TransformTruncate>;
  const event = input.event;
  if (out.op === "t") {
    if (event.op !== "t") return "a truncate returned for a change";
    return input;
  }
  if (out.op !== "c" && out.op !== "u" && out.op !== "d" && out.op !== "r") {
    return `an event with op ${JSON.stringify(out.op)}; expected "c", "u", "d" or "r"`;
  }
  if (!isRowOrNull(out.before) || !isRowOrNull(out.after)) {
    return "an event whose before or after is not an object or null";
  }
  if ((out.after ?? null) === null && (out.before ?? null) === null) {
    return "an event with neither before nor after";
  }
  if (out.topic !== undefined && (typeof out.topic !== "string" || out.topic === "")) {
    return `an event whose topic is ${JSON.stringify(out.topic)}; expected a non-empty string`;
  }
  if (out.key !== undefined && !isRowOrNull(out.key)) {
    return "an event whose key is not an object or null";
  }
  if (out.headers !== undefined && !isHeaders(out.headers)) {
    return "an event whose headers are not an object of strings";
  }
  const unchanged = Array.isArray(out.unchanged)
    ? out.unchanged.filter((column): column is string => typeof column === "string")
    : [];
  const changed: ChangeEvent = {
    op: out.op,
    source: event.source,
    before: (out.before ?? null) as Row | null,
    after: (out.after ?? null) as Row | null,
    unchanged,
  };
  const relation = event[EVENT_RELATION];
  if (relation !== undefined) changed[EVENT_RELATION] = relation;
  const headers = out.headers ?? input.headers;
  return {
    kind: "change",
    event: changed,
    topic: out.topic ?? input.topic,
    key: out.key === undefined ? input.key : (out.key as Row | null),
    ...(headers === undefined ? {} : { headers }),
  };
}

/** The message a transform's output stands for, or why it cannot be one. */
export function outputMessage(input: MessageEvent, output: unknown): MessageEvent | string {
  const out = output as Partial<TransformMessage>;
  if (out?.op !== "m") return "something that is not a message";
  if (typeof out.prefix !== "string") return "a message without a prefix";
  if (!(out.content instanceof Uint8Array)) return "a message whose content is not a Uint8Array";
  return { ...input, prefix: out.prefix, content: out.content };
}

function isRowOrNull(value: unknown): boolean {
  return value === undefined || value === null ||
    (typeof value === "object" && !Array.isArray(value));
}

function isHeaders(value: unknown): value is Record<string, string> {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === "string");
}
