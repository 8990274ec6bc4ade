/**
 * JSON renderings of events and transaction markers, one line each.
 *
 * @module
 */

import { formatLsn, formatUnixMicros, type Lsn } from "../decoder/lsn.ts";
import {
  type ChangeEvent,
  EVENT_RELATION,
  type EventSource,
  type MessageEvent,
  type Row,
  type SinkRecord,
  type SourceItem,
} from "../events.ts";
import type { RelationMessage } from "../decoder/pgoutput.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import {
  type JsonEncoder,
  jsonEncoder,
  type JsonOptions,
  jsonSafe,
  SPILLWAY_DEFAULTS,
  utcTextEnd,
} from "../decoder/types/json.ts";
import { Oid } from "../decoder/types/oids.ts";
import { type PgValue, setField } from "../decoder/types/values.ts";
import { JsonWriter } from "./json_writer.ts";

/**
 * Renders events as JSON with the per-type mapping of `decoder/types/json.ts`:
 * each column's encoder is chosen by its type OID (from the relation the event
 * was decoded with) and cached per relation.
 */
export class JsonRenderer {
  readonly types: TypeRegistry;
  readonly options: JsonOptions;
  #writers = new WeakMap<
    RelationMessage,
    { generation: number; byName: Map<string, ColumnWriter> }
  >();

  constructor(types: TypeRegistry = new TypeRegistry(), options: JsonOptions = SPILLWAY_DEFAULTS) {
    this.types = types;
    this.options = options;
  }

  /** A row's columns rendered by their types; values of unknown columns by their JS shape. */
  row(row: Row | null, relation: RelationMessage | undefined): Record<string, unknown> | null {
    if (row === null) return null;
    const writers = relation === undefined ? undefined : this.#writersFor(relation);
    const out: Record<string, unknown> = {};
    for (const key in row) {
      const value = row[key];
      const writer = writers?.get(key);
      setField<unknown>(
        out,
        key,
        value === null ? null : writer ? writer.encode(value as PgValue) : jsonSafe(value),
      );
    }
    return out;
  }

  /**
   * Writes the JSON of {@linkcode row} without building the object: the bytes are
   * `JSON.stringify(row(r, rel))`.
   */
  writeRow(out: JsonWriter, row: Row | null, relation: RelationMessage | undefined): void {
    if (row === null) {
      out.raw("null");
      return;
    }
    const writers = relation === undefined ? undefined : this.#writersFor(relation);
    let first = true;
    out.byte(0x7b);
    for (const key in row) {
      const value = row[key];
      const writer = writers?.get(key);
      if (writer === undefined) {
        if (!first) out.byte(0x2c);
        out.raw(`${JSON.stringify(key)}:`);
        out.value(value === null ? null : jsonSafe(value));
      } else {
        out.raw(first ? writer.key : writer.nextKey);
        const end = writer.utcIso && typeof value === "string" ? utcTextEnd(value) : -1;
        if (end >= 0) out.utcIso(value as string, end);
        else out.value(value === null ? null : writer.encode(value as PgValue));
      }
      first = false;
    }
    out.byte(0x7d);
  }

  #writersFor(relation: RelationMessage): Map<string, ColumnWriter> {
    const cached = this.#writers.get(relation);
    if (cached !== undefined && cached.generation === this.types.generation) return cached.byName;
    const byName = new Map<string, ColumnWriter>();
    for (const column of relation.columns) {
      const key = `${JSON.stringify(column.name)}:`;
      byName.set(column.name, {
        key,
        nextKey: `,${key}`,
        encode: jsonEncoder(column.typeOid, column.typeModifier, this.options, this.types),
        utcIso: column.typeOid === Oid.timestamptz &&
          (this.options.timePrecision ?? SPILLWAY_DEFAULTS.timePrecision) === "isostring",
      });
    }
    this.#writers.set(relation, { generation: this.types.generation, byName });
    return byName;
  }

  // Every event of a transaction shares its commit LSN and time: format them once.
  #lastCommitLsn: Lsn | null = null;
  #lastCommitLsnText = "";
  #lastCommitTime: bigint | null = null;
  #lastCommitTimeText = "";

  #commitLsnText(value: Lsn): string {
    if (value !== this.#lastCommitLsn) {
      this.#lastCommitLsn = value;
      this.#lastCommitLsnText = formatLsn(value);
    }
    return this.#lastCommitLsnText;
  }

  #commitTimeText(value: bigint): string {
    if (value !== this.#lastCommitTime) {
      this.#lastCommitTime = value;
      this.#lastCommitTimeText = formatUnixMicros(value);
    }
    return this.#lastCommitTimeText;
  }

  /** The JSON shape of a change event: LSNs as `X/X` text, times as ISO-8601 with µs. */
  changeEvent(event: ChangeEvent): Record<string, unknown> {
    const source = event.source;
    const relation = event[EVENT_RELATION];
    const out: Record<string, unknown> = {
      op: event.op,
      source: {
        schema: source.schema,
        table: source.table,
        relid: source.relid,
        lsn: formatLsn(source.lsn),
        commitLsn: this.#commitLsnText(source.commitLsn),
        xid: source.xid,
        commitTime: this.#commitTimeText(source.commitTime),
        ...(source.origin ? { origin: source.origin } : {}),
      },
      before: this.row(event.before, relation),
      after: this.row(event.after, relation),
      unchanged: event.unchanged,
    };
    if (event.truncate) out.truncate = event.truncate;
    return out;
  }

  /**
   * Writes the JSON of {@linkcode changeEvent} (the sinks' hot path): the bytes are
   * `JSON.stringify(changeEvent(e))`, or with `routing`, `JSON.stringify({ topic, key,
   * headers, ...changeEvent(e) })` (`headers` only when a transform set some).
   */
  writeChangeEvent(
    out: JsonWriter,
    event: ChangeEvent,
    routing?: { topic: string; key: Row | null; headers?: Record<string, string> },
  ): void {
    const source = event.source;
    const relation = event[EVENT_RELATION];
    if (routing !== undefined) {
      out.raw(this.#topicHead(routing.topic));
      this.writeRow(out, routing.key, relation);
      out.byte(0x2c);
      if (routing.headers !== undefined) out.raw(`"headers":${JSON.stringify(routing.headers)},`);
    } else {
      out.byte(0x7b);
    }
    out.raw(this.#sourcePrefix(source, event.op));
    out.lsn(source.lsn);
    out.raw(this.#transactionPart(source));
    this.writeRow(out, event.before, relation);
    out.raw(',"after":');
    this.writeRow(out, event.after, relation);
    out.raw(',"unchanged":');
    out.raw(event.unchanged.length === 0 ? "[]" : JSON.stringify(event.unchanged));
    if (event.truncate) {
      out.raw(',"truncate":');
      out.raw(JSON.stringify(event.truncate));
    }
    out.byte(0x7d);
  }

  #scratch = new JsonWriter();

  /** {@linkcode writeChangeEvent} as a string. */
  changeEventText(event: ChangeEvent): string {
    const out = this.#scratch;
    out.reset();
    this.writeChangeEvent(out, event);
    return out.text();
  }

  // The constant parts of a change's JSON, built once per topic, per table and op, and per
  // transaction.
  #lastTopic = "";
  #lastTopicHead = '{"topic":"","key":';
  #sourcePrefixes = new Map<
    number,
    { schema: string; table: string; byOp: Partial<Record<string, string>> }
  >();
  #lastTransaction: EventSource | null = null;
  #lastTransactionPart = "";

  /** `{"topic":"…","key":` */
  #topicHead(topic: string): string {
    if (topic !== this.#lastTopic) {
      this.#lastTopic = topic;
      this.#lastTopicHead = `{"topic":${JSON.stringify(topic)},"key":`;
    }
    return this.#lastTopicHead;
  }

  /** `"op":"c","source":{"schema":…,"table":…,"relid":…,"lsn":"` */
  #sourcePrefix(source: EventSource, op: string): string {
    let cached = this.#sourcePrefixes.get(source.relid);
    if (cached === undefined || cached.schema !== source.schema || cached.table !== source.table) {
      cached = { schema: source.schema, table: source.table, byOp: {} };
      this.#sourcePrefixes.set(source.relid, cached);
    }
    return cached.byOp[op] ??= `"op":${JSON.stringify(op)},"source":{"schema":${
      JSON.stringify(source.schema)
    },"table":${JSON.stringify(source.table)},"relid":${source.relid},"lsn":"`;
  }

  /** `","commitLsn":"…","xid":…,"commitTime":"…"[,"origin":…]},"before":` */
  #transactionPart(source: EventSource): string {
    const last = this.#lastTransaction;
    if (
      last === null || last.commitLsn !== source.commitLsn || last.xid !== source.xid ||
      last.commitTime !== source.commitTime || last.origin !== source.origin
    ) {
      this.#lastTransaction = source;
      this.#lastTransactionPart = `","commitLsn":"${
        this.#commitLsnText(source.commitLsn)
      }","xid":${source.xid},"commitTime":"${this.#commitTimeText(source.commitTime)}"${
        source.origin ? `,"origin":${JSON.stringify(source.origin)}` : ""
      }},"before":`;
    }
    return this.#lastTransactionPart;
  }
}

/** One column's cached JSON key and value converter. */
interface ColumnWriter {
  /** `"name":` */
  key: string;
  /** `,"name":` */
  nextKey: string;
  encode: JsonEncoder;
  /**
   * A `timestamptz` in the `isostring` precision: its common text (UTC, see `utcTextEnd`) is
   * written as the encoder would make it, without the string.
   */
  utcIso: boolean;
}

const defaultRenderer = new JsonRenderer();

/** The JSON shape of a change event, with the built-in types' mapping. */
export function changeEventToJson(
  event: ChangeEvent,
  renderer: JsonRenderer = defaultRenderer,
): Record<string, unknown> {
  return renderer.changeEvent(event);
}

function messageToJson(event: MessageEvent): Record<string, unknown> {
  return {
    op: "m",
    transactional: event.transactional,
    prefix: event.prefix,
    content: event.content.toBase64(),
    lsn: formatLsn(event.lsn),
    ...(event.xid === undefined ? {} : { xid: event.xid }),
    ...(event.commitLsn === undefined ? {} : { commitLsn: formatLsn(event.commitLsn) }),
  };
}

/**
 * One JSON line for a source item, or `null` for items not shown (transaction
 * markers when `transactions` is false).
 */
export function itemToJsonLine(
  item: SourceItem | Extract<SinkRecord, { kind: "message" }>,
  transactions: boolean,
  renderer: JsonRenderer = defaultRenderer,
): string | null {
  switch (item.kind) {
    case "change":
      return renderer.changeEventText(item.event);
    case "message":
      return JSON.stringify(messageToJson(item.event));
    case "begin":
      return transactions
        ? JSON.stringify({
          type: "begin",
          xid: item.tx.xid,
          commitLsn: formatLsn(item.tx.commitLsn),
          commitTime: formatUnixMicros(item.tx.commitTime),
          ...(item.tx.gid ? { gid: item.tx.gid } : {}),
          ...(item.tx.origin ? { origin: item.tx.origin } : {}),
          streamed: item.tx.streamed,
        })
        : null;
    case "commit":
    case "prepare":
      return transactions
        ? JSON.stringify({
          type: item.kind,
          xid: item.tx.xid,
          commitLsn: formatLsn(item.tx.commitLsn),
          endLsn: formatLsn(item.endLsn),
          events: item.eventCount,
          ...(item.tx.gid ? { gid: item.tx.gid } : {}),
        })
        : null;
    case "commit-prepared":
      return transactions
        ? JSON.stringify({
          type: "commit-prepared",
          xid: item.xid,
          gid: item.gid,
          commitLsn: formatLsn(item.commitLsn),
          endLsn: formatLsn(item.endLsn),
          commitTime: formatUnixMicros(item.commitTime),
        })
        : null;
    case "rollback-prepared":
      return transactions
        ? JSON.stringify({
          type: "rollback-prepared",
          xid: item.xid,
          gid: item.gid,
          endLsn: formatLsn(item.endLsn),
        })
        : null;
    case "schema-change":
      return JSON.stringify({
        type: "schema-change",
        schema: item.schema,
        table: item.table,
        relid: item.relid,
        version: item.version,
        previousColumns: item.previousColumns,
        columns: item.columns,
      });
    case "restart":
      return transactions ? JSON.stringify({ type: "restart", reason: item.reason }) : null;
  }
}

/**
 * A dead-letter line: `{"type":"dead-letter","transform":…,"version":…,"reason":…,"error":{…},
 * "attempts":…,"topic":…,"key":…,"event":{…}}`, the event as the sinks would have written it
 * before the transform; for a change whose table's schema the registry refused,
 * `{"type":"dead-letter","reason":"schema-refused","subject":…,"error":{…},"topic":…,"key":…,
 * "event":{…}}`.
 */
function writeDeadLetter(
  out: JsonWriter,
  record: Extract<SinkRecord, { kind: "dead-letter" }>,
  renderer: JsonRenderer,
): void {
  const { failure, event } = record;
  if (failure.reason === "schema-refused") {
    out.raw(
      `{"type":"dead-letter","reason":"schema-refused","subject":${
        JSON.stringify(failure.subject)
      },"error":${JSON.stringify(failure.error)},"topic":${JSON.stringify(failure.topic)},"key":`,
    );
  } else {
    out.raw(
      `{"type":"dead-letter","transform":${JSON.stringify(failure.transform)},"version":${
        JSON.stringify(failure.version)
      },"reason":${JSON.stringify(failure.reason)},"error":${
        JSON.stringify(failure.error)
      },"attempts":${failure.attempts},"topic":${JSON.stringify(failure.topic)},"key":`,
    );
  }
  if (event.op === "m") {
    out.raw(`null,"event":${JSON.stringify(messageToJson(event))}}`);
    return;
  }
  renderer.writeRow(out, failure.key, event[EVENT_RELATION]);
  out.raw(`,"event":`);
  renderer.writeChangeEvent(out, event);
  out.byte(0x7d);
}

/**
 * Writes the JSON line of a source item or sink record, with its newline; nothing for items
 * not shown (see {@linkcode itemToJsonLine}). Sink records' changes carry their topic and key.
 */
export function writeJsonLine(
  out: JsonWriter,
  item: SourceItem | SinkRecord,
  transactions: boolean,
  renderer: JsonRenderer = defaultRenderer,
): void {
  if (item.kind === "change") {
    renderer.writeChangeEvent(out, item.event, "topic" in item ? item : undefined);
  } else if (item.kind === "dead-letter") {
    writeDeadLetter(out, item, renderer);
  } else {
    const line = itemToJsonLine(item, transactions, renderer);
    if (line === null) return;
    out.raw(line);
  }
  out.byte(0x0a);
}
