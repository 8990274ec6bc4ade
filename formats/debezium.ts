/**
 * Debezium's change event envelope, as its PostgreSQL connector writes it through Kafka
 * Connect's `JsonConverter`: a key (the primary key's columns) and a value
 * (`before`, `after`, `source`, `transaction`, `op`, `ts_ms`, `ts_us`, `ts_ns`), each with the
 * Connect schema embedded (`{"schema": …, "payload": …}`, `schemas.enable=true`) or bare; the
 * tombstone after a delete; and the BEGIN/END records of the transaction metadata topic
 * (`provide.transaction.metadata`).
 *
 * The envelope is a format, not a transport: the Kafka sink sends these bytes, and a file or
 * HTTP sink could too. Values are mapped per column type by `decoder/types/json.ts` with
 * Debezium's options (`DEBEZIUM_DEFAULTS` unless set otherwise); the schemas come from
 * `connect_schema.ts`, built once per relation and cached, so an event costs one pass over its
 * columns.
 *
 * Fields that differ from Debezium by nature: `source.version` (Spillway's), the envelope's
 * `ts_ms`/`ts_us`/`ts_ns` (when the event was written, as in Debezium, so never equal).
 *
 * @module
 */

import type { RelationColumn, RelationMessage } from "../decoder/pgoutput.ts";
import type { TableFacts, TableFactsRegistry } from "../decoder/table_facts.ts";
import {
  DEBEZIUM_DEFAULTS,
  type JsonEncoder,
  jsonEncoder,
  type JsonOptions,
  type JsonValue,
} from "../decoder/types/json.ts";
import { Oid } from "../decoder/types/oids.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import type { PgValue } from "../decoder/types/values.ts";
import {
  type ChangeEvent,
  EVENT_RELATION,
  type MessageEvent,
  type Row,
  SHAPED_FROM,
  type SinkRecord,
  type TransactionInfo,
} from "../events.ts";
import {
  columnSchema,
  type ConnectColumn,
  type ConnectSchema,
  envelopeSchema,
  keySchema,
  messageKeySchema,
  messageValueSchema,
  transactionKeySchema,
  transactionValueSchema,
} from "./connect_schema.ts";
import { JsonRenderer } from "./json.ts";
import { isRawJson, JsonWriter } from "./json_writer.ts";
import { PrefixedBytes, type RecordBytes } from "./byte_writer.ts";

/**
 * The data collection a transaction's logical decoding messages count under, in its END
 * record. (Debezium writes the `toString()` of an internal Java object there, with an
 * identity hash that differs from run to run: no consumer can match it, so Spillway names it
 * after the messages' topic suffix.)
 */
export const MESSAGE_COLLECTION = "message";

/** The placeholder Debezium writes for an unchanged TOASTed value (`unavailable.value.placeholder`). */
export const UNAVAILABLE_VALUE = "__debezium_unavailable_value";

/** Options of {@linkcode DebeziumFormat}. */
export interface DebeziumFormatOptions {
  /** Debezium's `topic.prefix`: `source.name`, the transaction topic's prefix. */
  serverName: string;
  /** The database's name: `source.db`. */
  database: string;
  /** Embed the Connect schema in key and value (`schemas.enable=true`). Default true. */
  schemas?: boolean;
  /** Write the `transaction` block in every change (`provide.transaction.metadata`). */
  transactionMetadata?: boolean;
  /** `source.version`. */
  version: string;
  /** Value mapping; default {@linkcode DEBEZIUM_DEFAULTS}. */
  json?: Required<JsonOptions>;
  /** The source's type registry (catalog types: enums, domains, composites). */
  types?: TypeRegistry;
  /** The catalog facts the source read (NOT NULL, defaults, primary key). */
  tables?: TableFactsRegistry;
  /** The clock of the envelope's `ts_*` fields, in ms (fractions give µs). */
  now?: () => number;
}

/** One Kafka record: key and value as bytes (`null` value: a tombstone). */
export interface EncodedRecord {
  topic: string;
  key: Uint8Array | null;
  value: Uint8Array | null;
}

/**
 * One Kafka record as {@linkcode DebeziumFormat.changeShared} gives it: with the embedded
 * schema, the value's `{"schema":…,"payload":` is the table's, shared ({@linkcode PrefixedBytes}).
 */
export interface SharedRecord {
  topic: string;
  key: Uint8Array | null;
  value: RecordBytes | null;
}

/** What is cached per relation (per version: a schema change brings a new RelationMessage). */
interface TableShape {
  columns: readonly RelationColumn[];
  /** `"id":`, `,"name":` … per column, in column order. */
  heads: string[];
  /** Each column's value converter. */
  encoders: JsonEncoder[];
  /** `{"schema":…,"payload":` or empty, as UTF-8 (encoded once: with schemas, kilobytes). */
  keyPrefix: Uint8Array;
  valuePrefix: Uint8Array;
  /** JSON of each column's schema default, or `null`: written for a null value. */
  defaults: string[];
  /** Placeholder JSON for an unchanged TOASTed value, per column. */
  unavailable: string[];
  /** The same defaults and placeholders as values (for {@linkcode DebeziumFormat.changeValues}). */
  defaultValues: JsonValue[];
  unavailableValues: JsonValue[];
  /** Column index by name. */
  indexOf: Map<string, number>;
  schemaName: string;
  tableName: string;
  /** `"schema":"public","table":"orders","txId":` */
  sourceTail: string;
  dataCollection: string;
  keyColumns: string[];
  /**
   * The relation the key is written by: the table's, also when a transform reshaped the rows
   * (`SHAPED_FROM`): the key keeps the table's columns and types.
   */
  keyRelation: RelationMessage;
  /** The key columns' value converters, by name. */
  keyEncoders: Map<string, JsonEncoder>;
  /** The Connect schemas of key (`null`: no primary key) and value, made on first use. */
  connect: () => { key: ConnectSchema | null; value: ConnectSchema };
}

const encoder = new TextEncoder();

/**
 * Renders sink records in Debezium's envelope.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DebeziumFormat } from "./debezium.ts";
 * import { EVENT_RELATION } from "../events.ts";
 * import { lsn } from "../decoder/lsn.ts";
 * const relation = {
 *   type: "Relation" as const, relationId: 16384, namespace: "public", relationName: "t",
 *   replicaIdentity: "d" as const,
 *   columns: [{ flags: 1, isKey: true, name: "id", typeOid: 23, typeModifier: -1 }],
 * };
 * const format = new DebeziumFormat({
 *   serverName: "app", database: "shop", version: "0.1.0", schemas: false, now: () => 1000,
 * });
 * const source = {
 *   schema: "public", table: "t", relid: 16384, lsn: lsn(100n), commitLsn: lsn(200n), xid: 7,
 *   commitTime: 1_700_000_000_000_000n,
 * };
 * const [record] = format.change({
 *   kind: "change", topic: "app.public.t", key: { id: 1 },
 *   event: { op: "c", source, before: null, after: { id: 1 }, unchanged: [], [EVENT_RELATION]: relation },
 * });
 * const value = JSON.parse(new TextDecoder().decode(record!.value!));
 * assert.deepEqual(value.after, { id: 1 });
 * assert.equal(value.source.lsn, 100);
 * assert.equal(new TextDecoder().decode(record!.key!), '{"id":1}');
 * ```
 */
export class DebeziumFormat {
  readonly options: DebeziumFormatOptions;
  readonly schemas: boolean;
  readonly #renderer: JsonRenderer;
  readonly #types: TypeRegistry;
  readonly #json: Required<JsonOptions>;
  readonly #now: () => number;
  /** By relation, then topic (which names the schemas). */
  readonly #shapes = new WeakMap<
    RelationMessage,
    Map<string, { generation: number; shape: TableShape }>
  >();
  readonly #out = new JsonWriter();
  /** `{"version":"…","connector":"postgresql","name":"…","ts_ms":` */
  readonly #sourceHead: string;
  readonly #db: string;
  // The open transaction, for the transaction block and the END record's counts.
  #txId = "";
  #txTotal = 0;
  #txCounts = new Map<string, number>();
  // Per transaction, formatted once.
  #lastCommitTime: bigint | null = null;
  /** The commit time of the last change written, either form (a message without one uses it). */
  #lastChangeTime: bigint | null = null;
  #commitTimePart = "";
  /**
   * The end of the last commit seen, as Debezium's `sequence` starts: `null` until one was;
   * else the LSN's digits, quoted.
   */
  #lastCommit = "null";
  /** The same as it stands in `sequence`'s value: `"123"`, or `null`. */
  #lastCommitPlain = "null";

  constructor(options: DebeziumFormatOptions) {
    this.options = options;
    this.schemas = options.schemas ?? true;
    this.#types = options.types ?? new TypeRegistry();
    this.#json = options.json ?? DEBEZIUM_DEFAULTS;
    this.#renderer = new JsonRenderer(this.#types, this.#json);
    this.#now = options.now ?? (() => performance.timeOrigin + performance.now());
    this.#sourceHead = `{"version":${JSON.stringify(options.version)},"connector":"postgresql",` +
      `"name":${JSON.stringify(options.serverName)},"ts_ms":`;
    this.#db = JSON.stringify(options.database);
  }

  /** How column values are mapped (Debezium's options). */
  get jsonOptions(): Required<JsonOptions> {
    return this.#json;
  }

  /** The topic of the transaction metadata records: `<serverName>.transaction`. */
  get transactionTopic(): string {
    return `${this.options.serverName}.transaction`;
  }

  /**
   * The records of one change: its own, and for a delete the tombstone that follows it
   * (when `tombstones`). A truncate has a `null` key.
   */
  change(
    record: Extract<SinkRecord, { kind: "change" }>,
    tombstones = true,
  ): EncodedRecord[] {
    return this.#records(record, tombstones, this.#keyBytes, this.#valueBytes);
  }

  /**
   * The records of one change as {@linkcode change} gives them, except that with the embedded
   * schema a value's head (`{"schema":…,"payload":`) is not copied into it: it is the table's,
   * shared by all its values ({@linkcode PrefixedBytes}). For a writer that copies every value
   * once anyway (Kafka's record batches): kilobytes less to copy and allocate per change.
   */
  changeShared(
    record: Extract<SinkRecord, { kind: "change" }>,
    tombstones = true,
  ): SharedRecord[] {
    return this.#records(record, tombstones, this.#keyBytes, this.#sharedValueBytes);
  }

  // The forms' key and value makers, made once (not per change).
  readonly #keyBytes = (shape: TableShape, key: Row | null, relation: RelationMessage) =>
    this.#key(shape, key, relation);
  readonly #valueBytes = (shape: TableShape, event: ChangeEvent, op: string) =>
    this.#value(shape, event, op, false) as Uint8Array;
  readonly #sharedValueBytes = (shape: TableShape, event: ChangeEvent, op: string) =>
    this.#value(shape, event, op, true);
  readonly #keyValues = (shape: TableShape, key: Row | null) => this.#keyValue(shape, key);
  readonly #payloadValues = (shape: TableShape, event: ChangeEvent, op: string) =>
    this.#payload(shape, event, op);

  /**
   * The records of one change as {@linkcode change} gives them, with key and value as the
   * values their JSON holds rather than bytes (integers past 2^53 and `ts_ns` as bigints): for
   * another encoding of the same records (Avro). The same state moves (transaction numbering).
   */
  changeValues(
    record: Extract<SinkRecord, { kind: "change" }>,
    tombstones = true,
  ): { topic: string; key: JsonValue | null; value: JsonValue | null }[] {
    return this.#records(record, tombstones, this.#keyValues, this.#payloadValues);
  }

  #records<K, V>(
    record: Extract<SinkRecord, { kind: "change" }>,
    tombstones: boolean,
    keyOf: (shape: TableShape, key: Row | null, relation: RelationMessage) => K | null,
    valueOf: (shape: TableShape, event: ChangeEvent, op: string) => V,
  ): { topic: string; key: K | null; value: V | null }[] {
    const { event, topic } = record;
    const relation = this.#relationOf(record);
    const shape = this.#shape(relation, topic);
    if (event.op === "t") return [{ topic, key: null, value: valueOf(shape, event, "t") }];
    const key = keyOf(shape, record.key, shape.keyRelation);
    if (event.op === "u" && event.before !== null && this.#keyChanged(shape, event)) {
      // A primary key changed: Debezium writes a delete of the old key (and its tombstone),
      // then a create of the new one.
      const oldKey = keyOf(shape, pick(event.before, shape.keyColumns), shape.keyRelation);
      const out: { topic: string; key: K | null; value: V | null }[] = [{
        topic,
        key: oldKey,
        value: valueOf(shape, { ...event, after: null, unchanged: [] }, "d"),
      }];
      if (tombstones) out.push({ topic, key: oldKey, value: null });
      out.push({ topic, key, value: valueOf(shape, { ...event, before: null }, "c") });
      return out;
    }
    const out: { topic: string; key: K | null; value: V | null }[] = [{
      topic,
      key,
      value: valueOf(shape, event, event.op),
    }];
    if (event.op === "d" && tombstones) out.push({ topic, key, value: null });
    return out;
  }

  /**
   * The Connect schemas of a change record's key (`null`: the table has no primary key) and
   * value, as `schemas: true` embeds them: what an Avro encoding registers and follows. The
   * same objects for every record of a table until its relation changes.
   */
  connectSchemas(
    record: Extract<SinkRecord, { kind: "change" }>,
  ): { key: ConnectSchema | null; value: ConnectSchema } {
    return this.#shape(this.#relationOf(record), record.topic).connect();
  }

  #relationOf(record: Extract<SinkRecord, { kind: "change" }>): RelationMessage {
    const relation = record.event[EVENT_RELATION];
    if (relation === undefined) {
      throw new TypeError(
        `The change on ${record.event.source.schema}.${record.event.source.table} carries no relation`,
      );
    }
    return relation;
  }

  /** The topic of logical decoding messages: `<serverName>.message`, as Debezium's. */
  get messageTopic(): string {
    return `${this.options.serverName}.message`;
  }

  /**
   * A logical decoding message (`pg_logical_emit_message`) as Debezium writes it on
   * {@linkcode messageTopic}: keyed by its prefix, `op` `m`, the content as a `bytea` column's
   * value. A transactional one is numbered in its transaction (the `transaction` block, and
   * the END record's counts under {@linkcode MESSAGE_COLLECTION}); a non-transactional one has
   * no `txId`, and, as in Debezium, the next `sequence` starts from its position.
   */
  message(event: MessageEvent): EncodedRecord {
    const out = this.#out;
    const prefix = JSON.stringify(event.prefix);
    out.reset();
    if (this.schemas) out.raw(`{"schema":${this.#messageSchemas().key},"payload":`);
    out.raw(`{"prefix":${prefix}}`);
    if (this.schemas) out.byte(0x7d);
    const key = out.take();

    if (!event.transactional) {
      this.#lastCommit = `\\"${event.lsn}\\"`;
      this.#lastCommitPlain = `"${event.lsn}"`;
    }
    const now = this.#now();
    // A message before any commit was seen carries the time it was written.
    const us = event.commitTime ?? this.#lastChangeTime ?? BigInt(Math.floor(now * 1000));
    out.reset();
    if (this.schemas) out.raw(`{"schema":${this.#messageSchemas().value},"payload":`);
    out.raw(`{"op":"m","ts_ms":${Math.floor(now)},"source":`);
    out.raw(this.#sourceHead);
    out.raw(
      `${us / 1000n},"snapshot":"false","db":${this.#db},` +
        `"sequence":"[${this.#lastCommit},\\"${event.lsn}\\"]","ts_us":${us},"ts_ns":${
          us * 1000n
        },` +
        `"schema":"","table":"","txId":${event.xid ?? "null"},"lsn":${event.lsn},` +
        `"xmin":null,"origin":null,"origin_lsn":null},"transaction":`,
    );
    if (event.transactional && this.options.transactionMetadata && this.#txId !== "") {
      this.#txTotal++;
      const order = (this.#txCounts.get(MESSAGE_COLLECTION) ?? 0) + 1;
      this.#txCounts.set(MESSAGE_COLLECTION, order);
      out.raw(
        `{"id":"${event.xid}:${event.lsn}","total_order":${this.#txTotal},` +
          `"data_collection_order":${order}}`,
      );
    } else {
      out.raw("null");
    }
    const content = this.#json.binaryHandling === "hex"
      ? event.content.toHex()
      : event.content.toBase64();
    out.raw(`,"message":{"prefix":${prefix},"content":"${content}"}}`);
    if (this.schemas) out.byte(0x7d);
    return { topic: this.messageTopic, key, value: out.take() };
  }

  #messageSchemaText: { key: string; value: string } | null = null;

  #messageSchemas(): { key: string; value: string } {
    return this.#messageSchemaText ??= {
      key: JSON.stringify(messageKeySchema()),
      value: JSON.stringify(messageValueSchema(this.#json)),
    };
  }

  /** Whether an update's old row has other primary key values than its new one. */
  #keyChanged(shape: TableShape, event: ChangeEvent): boolean {
    const before = event.before!;
    const after = event.after;
    if (after === null) return false;
    for (const column of shape.keyColumns) {
      if (!(column in before)) continue;
      if (!sameValue(before[column], after[column])) return true;
    }
    return false;
  }

  /** The transaction topic's BEGIN record; starts counting the transaction's events. */
  begin(tx: TransactionInfo): EncodedRecord {
    this.#startTransaction(tx);
    return this.#transactionRecord("BEGIN", this.#txId, null, tx);
  }

  /**
   * The transaction topic's END record, with the events per table since {@linkcode begin}
   * (in the order Debezium's HashMap gives them). Its id ends with the commit's end, as
   * Debezium's does.
   */
  end(tx: TransactionInfo, endLsn: bigint): EncodedRecord {
    const counts = javaHashMapOrder([...this.#txCounts.keys()]).map((name) =>
      `{"data_collection":${JSON.stringify(name)},"event_count":${this.#txCounts.get(name)}}`
    );
    return this.#transactionRecord(
      "END",
      `${tx.xid}:${endLsn}`,
      `${this.#txTotal},"data_collections":[${counts}]`,
      tx,
    );
  }

  /**
   * A transaction's commit ended at `endLsn`: the next changes' `sequence` starts with it, as
   * Debezium's does with the position of the last Commit message.
   */
  committed(endLsn: bigint): void {
    this.#lastCommit = `\\"${endLsn}\\"`;
    this.#lastCommitPlain = `"${endLsn}"`;
  }

  /** Starts a transaction's block numbering without writing a BEGIN record. */
  #startTransaction(tx: TransactionInfo): void {
    // Debezium's id: the xid and the position of the Begin message (the first record's).
    this.#txId = `${tx.xid}:${tx.firstLsn ?? tx.commitLsn}`;
    this.#txTotal = 0;
    this.#txCounts.clear();
  }

  /** Notes a transaction's begin (for the transaction block) when no BEGIN record is written. */
  beginSilently(tx: TransactionInfo): void {
    this.#startTransaction(tx);
  }

  #transactionRecord(
    status: string,
    txId: string,
    rest: string | null,
    tx: TransactionInfo,
  ): EncodedRecord {
    const id = JSON.stringify(txId);
    const keyPayload = `{"id":${id}}`;
    const valuePayload = `{"status":"${status}","id":${id},"event_count":${
      rest ?? 'null,"data_collections":null'
    },"ts_ms":${tx.commitTime / 1000n}}`;
    const key = this.schemas
      ? `{"schema":${JSON.stringify(transactionKeySchema())},"payload":${keyPayload}}`
      : keyPayload;
    const value = this.schemas
      ? `{"schema":${JSON.stringify(transactionValueSchema())},"payload":${valuePayload}}`
      : valuePayload;
    return { topic: this.transactionTopic, key: encoder.encode(key), value: encoder.encode(value) };
  }

  #key(shape: TableShape, key: Row | null, relation: RelationMessage): Uint8Array | null {
    if (key === null || shape.keyColumns.length === 0) return null;
    const out = this.#out;
    out.reset();
    out.append(shape.keyPrefix);
    this.#renderer.writeRow(out, key, relation);
    if (this.schemas) out.byte(0x7d);
    return out.take();
  }

  /** The value's bytes; with `shared`, without the shape's head when there is one. */
  #value(shape: TableShape, event: ChangeEvent, op: string, shared: boolean): RecordBytes {
    const out = this.#out;
    out.reset();
    const head = shape.valuePrefix;
    if (!shared) out.append(head);
    out.raw('{"before":');
    this.#row(out, shape, event.before, null);
    out.raw(',"after":');
    this.#row(out, shape, event.after, event.unchanged.length > 0 ? event.unchanged : null);
    out.raw(',"source":');
    this.#source(out, shape, event);
    out.raw(',"transaction":');
    if (this.options.transactionMetadata && this.#txId !== "") {
      this.#txTotal++;
      const collectionOrder = (this.#txCounts.get(shape.dataCollection) ?? 0) + 1;
      this.#txCounts.set(shape.dataCollection, collectionOrder);
      // Debezium's id here is the xid and the position of this change (its source's lsn).
      out.raw(
        `{"id":"${event.source.xid}:${event.source.lsn}","total_order":${this.#txTotal},` +
          `"data_collection_order":${collectionOrder}}`,
      );
    } else {
      out.raw("null");
    }
    const now = this.#now();
    const us = Math.floor(now * 1000);
    // Numbers written as digits, not through strings: this is once per change.
    out.raw(',"op":"');
    out.raw(op);
    out.raw('","ts_ms":');
    out.integer(Math.floor(now));
    out.raw(',"ts_us":');
    out.integer(us);
    out.raw(',"ts_ns":');
    out.integer(us);
    out.raw("000}");
    if (this.schemas) out.byte(0x7d);
    return shared && head.byteLength > 0 ? new PrefixedBytes(head, out.take()) : out.take();
  }

  /** The key's values, as {@linkcode #key} writes them. */
  #keyValue(shape: TableShape, key: Row | null): JsonValue | null {
    if (key === null || shape.keyColumns.length === 0) return null;
    const out: Record<string, JsonValue> = {};
    for (const name in key) {
      const value = key[name];
      const encode = shape.keyEncoders.get(name);
      out[name] = value === null || value === undefined || encode === undefined
        ? null
        : encode(value as PgValue);
    }
    return out;
  }

  /** The envelope's values, as {@linkcode #value} writes them. */
  #payload(shape: TableShape, event: ChangeEvent, op: string): JsonValue {
    const source = event.source;
    const commitUs = source.commitTime;
    this.#lastChangeTime = commitUs;
    let transaction: JsonValue = null;
    if (this.options.transactionMetadata && this.#txId !== "") {
      this.#txTotal++;
      const collectionOrder = (this.#txCounts.get(shape.dataCollection) ?? 0) + 1;
      this.#txCounts.set(shape.dataCollection, collectionOrder);
      transaction = {
        id: `${source.xid}:${source.lsn}`,
        total_order: this.#txTotal,
        data_collection_order: collectionOrder,
      };
    }
    const now = this.#now();
    const us = Math.floor(now * 1000);
    const values = {
      before: this.#rowValue(shape, event.before, null),
      after: this.#rowValue(
        shape,
        event.after,
        event.unchanged.length > 0 ? event.unchanged : null,
      ),
      source: {
        version: this.options.version,
        connector: "postgresql",
        name: this.options.serverName,
        ts_ms: Number(commitUs / 1000n),
        snapshot: "false",
        db: this.options.database,
        sequence: `[${this.#lastCommitPlain},"${source.lsn}"]`,
        ts_us: commitUs,
        ts_ns: commitUs * 1000n,
        schema: shape.schemaName,
        table: shape.tableName,
        txId: source.xid,
        lsn: source.lsn,
        xmin: null,
        origin: source.origin ?? null,
        origin_lsn: null,
      },
      transaction,
      op,
      ts_ms: Math.floor(now),
      ts_us: us,
      ts_ns: BigInt(us) * 1000n,
    };
    return values as unknown as JsonValue;
  }

  /** A row's values, as {@linkcode #row} writes them. */
  #rowValue(shape: TableShape, row: Row | null, unchanged: string[] | null): JsonValue {
    if (row === null) return null;
    const out: Record<string, JsonValue> = {};
    const columns = shape.columns;
    for (let i = 0; i < columns.length; i++) {
      const name = columns[i]!.name;
      const value = row[name];
      if (unchanged !== null && unchanged.includes(name)) out[name] = shape.unavailableValues[i]!;
      else if (value === undefined || value === null) out[name] = shape.defaultValues[i]!;
      else out[name] = shape.encoders[i]!(value as PgValue);
    }
    return out;
  }

  /** A row with every column of the relation in order (absent ones null). */
  #row(out: JsonWriter, shape: TableShape, row: Row | null, unchanged: string[] | null): void {
    if (row === null) {
      out.raw("null");
      return;
    }
    const relation = shape.columns;
    out.byte(0x7b);
    for (let i = 0; i < relation.length; i++) {
      const column = relation[i]!;
      out.raw(shape.heads[i]!);
      const value = row[column.name];
      if (unchanged !== null && unchanged.includes(column.name)) {
        out.raw(shape.unavailable[i]!);
      } else if (value === undefined || value === null) {
        // JsonConverter writes a field's default for a null (replace.null.with.default).
        out.raw(shape.defaults[i]!);
      } else {
        out.value(shape.encoders[i]!(value as PgValue));
      }
    }
    out.byte(0x7d);
  }

  #source(out: JsonWriter, shape: TableShape, event: ChangeEvent): void {
    const source = event.source;
    this.#lastChangeTime = source.commitTime;
    if (source.commitTime !== this.#lastCommitTime) {
      this.#lastCommitTime = source.commitTime;
      const us = source.commitTime;
      this.#commitTimePart = `${us / 1000n},"snapshot":"false","db":${this.#db},"sequence":`;
      this.#commitTimeRest = `,"ts_us":${us},"ts_ns":${us * 1000n},`;
    }
    out.raw(this.#sourceHead);
    out.raw(this.#commitTimePart);
    out.raw('"[');
    out.raw(this.#lastCommit);
    out.raw(',\\"');
    out.bigint(source.lsn);
    out.raw('\\"]"');
    out.raw(this.#commitTimeRest);
    out.raw(shape.sourceTail);
    out.integer(source.xid);
    out.raw(',"lsn":');
    out.bigint(source.lsn);
    out.raw(',"xmin":null,"origin":');
    out.raw(source.origin === undefined ? "null" : JSON.stringify(source.origin));
    out.raw(',"origin_lsn":null}');
  }

  #commitTimeRest = "";

  #shape(relation: RelationMessage, topic: string): TableShape {
    let byTopic = this.#shapes.get(relation);
    const cached = byTopic?.get(topic);
    if (cached !== undefined && cached.generation === this.#types.generation) return cached.shape;
    const facts = this.options.tables?.get(relation.relationId);
    const shape = this.#buildShape(relation, topic, facts);
    if (byTopic === undefined) this.#shapes.set(relation, byTopic = new Map());
    byTopic.set(topic, { generation: this.#types.generation, shape });
    return shape;
  }

  #buildShape(relation: RelationMessage, topic: string, facts: TableFacts | undefined): TableShape {
    const columns = relation.columns;
    // A transform's output shape (`transforms/shape.ts`): the key stays the table's.
    const table = (relation as { [SHAPED_FROM]?: RelationMessage })[SHAPED_FROM] ?? relation;
    // Debezium's key is the primary key, under any replica identity; none: no key. Without
    // the catalog's facts, the replica identity's columns stand in.
    const keyColumns = facts !== undefined
      ? facts.primaryKey ?? []
      : table.columns.filter((column) => column.isKey).map((column) => column.name);
    // The catalog's NOT NULL and default are of the table's column: not of a retyped one.
    const factsOf = (column: RelationColumn) =>
      table === relation ||
        table.columns.some((c) => c.name === column.name && c.typeOid === column.typeOid)
        ? facts
        : undefined;
    const connect = columns.map((column) =>
      this.#connectColumn(column, factsOf(column), keyColumns.includes(column.name))
    );
    const keyColumnsOfTable = keyColumns.flatMap((name) =>
      table.columns.find((column) => column.name === name) ?? []
    );
    let schemas: { key: ConnectSchema | null; value: ConnectSchema } | null = null;
    const connectSchemas = () => {
      if (schemas !== null) return schemas;
      const keyConnect = keyColumnsOfTable.map((column) =>
        this.#connectColumn(column, facts, true)
      );
      return schemas = {
        key: keyColumns.length === 0 ? null : keySchema(topic, keyConnect, this.#json, this.#types),
        value: envelopeSchema(topic, connect, this.#json, this.#types),
      };
    };
    const defaults = connect.map((column) =>
      column.default === undefined ? "null" : JSON.stringify(column.default)
    );
    const unavailable = columns.map((column) => this.#unavailable(column));
    let keyPrefix = "";
    let valuePrefix = "";
    if (this.schemas) {
      const { key, value } = connectSchemas();
      if (key !== null) keyPrefix = `{"schema":${JSON.stringify(key)},"payload":`;
      valuePrefix = `{"schema":${JSON.stringify(value)},"payload":`;
    }
    return {
      columns,
      heads: columns.map((column, i) => `${i === 0 ? "" : ","}${JSON.stringify(column.name)}:`),
      encoders: columns.map((column) =>
        jsonEncoder(column.typeOid, column.typeModifier, this.#json, this.#types)
      ),
      keyPrefix: encoder.encode(keyPrefix),
      valuePrefix: encoder.encode(valuePrefix),
      defaults,
      unavailable,
      defaultValues: defaults.map(readJson),
      unavailableValues: unavailable.map(readJson),
      indexOf: new Map(columns.map((column, i) => [column.name, i])),
      schemaName: relation.namespace,
      tableName: relation.relationName,
      sourceTail: `"schema":${JSON.stringify(relation.namespace)},"table":${
        JSON.stringify(relation.relationName)
      },"txId":`,
      dataCollection: `${relation.namespace}.${relation.relationName}`,
      keyColumns,
      keyRelation: table,
      keyEncoders: new Map(
        keyColumnsOfTable.map((column) => [
          column.name,
          jsonEncoder(column.typeOid, column.typeModifier, this.#json, this.#types),
        ]),
      ),
      connect: connectSchemas,
    };
  }

  #connectColumn(
    column: RelationColumn,
    facts: TableFacts | undefined,
    inKey: boolean,
  ): ConnectColumn {
    const columnFacts = facts?.columns.get(column.name);
    const out: ConnectColumn = {
      name: column.name,
      typeOid: column.typeOid,
      typeModifier: column.typeModifier,
      optional: !(inKey || columnFacts?.notNull === true),
    };
    const value = columnFacts?.default == null
      ? undefined
      : this.#defaultValue(column, columnFacts.default);
    if (value !== undefined) out.default = value;
    return out;
  }

  /**
   * A column default as Debezium puts it in the schema: constants only (a literal, maybe cast),
   * converted like the column's values; expressions (`now()`, `nextval(…)`) give none.
   */
  #defaultValue(column: RelationColumn, expression: string): JsonValue | undefined {
    // Only the types Debezium's PostgresDefaultValueConverter has a mapper for (enums too).
    if (!DEFAULT_TYPES.has(column.typeOid) && this.#types.get(column.typeOid)?.kind !== "enum") {
      return undefined;
    }
    let text = constantText(expression);
    if (text === null) return undefined;
    // Debezium reads a boolean's default as Java's Boolean.parseBoolean does.
    if (column.typeOid === Oid.bool) text = text.toLowerCase() === "true" ? "t" : "f";
    try {
      const value = this.#types.decoder(column.typeOid, column.typeModifier, "text")(text);
      const json = jsonEncoder(column.typeOid, column.typeModifier, this.#json, this.#types)(value);
      // Debezium gives none for a default that converts to a struct (numeric without a scale):
      // Kafka Connect cannot hold one (KAFKA-12694).
      const struct = typeof json === "object" && json !== null && !Array.isArray(json) &&
        !isRawJson(json);
      return struct ? undefined : json;
    } catch {
      return undefined;
    }
  }

  /** The JSON Debezium writes for an unchanged TOASTed value of a column's type. */
  #unavailable(column: RelationColumn): string {
    const schema: ConnectSchema = columnSchema(
      {
        name: column.name,
        typeOid: column.typeOid,
        typeModifier: column.typeModifier,
        optional: true,
      },
      this.#json,
      this.#types,
    );
    const placeholder = (type: ConnectSchema): string => {
      switch (type.type) {
        case "string":
          return JSON.stringify(UNAVAILABLE_VALUE);
        case "bytes":
          return JSON.stringify(encoder.encode(UNAVAILABLE_VALUE).toBase64());
        case "array":
          return `[${type.items ? placeholder(type.items) : "null"}]`;
        default:
          return "null";
      }
    };
    return placeholder(schema);
  }
}

/**
 * The text of a constant default (`42`, `-1.5`, `'new'::text`, `true`), or `null` for an
 * expression.
 */
export function constantText(expression: string): string | null {
  let text = expression.trim();
  // Drop trailing casts: 'x'::character varying, '{}'::integer[], (-1)::bigint, B'1'::"bit"
  for (;;) {
    const cast = text.match(/^(.*)::[A-Za-z_"][\w ."]*(?:\([\d, ]+\))?(?:\[\])*$/s);
    if (cast === null) break;
    text = cast[1]!.trim();
  }
  if (text.startsWith("(") && text.endsWith(")")) text = text.slice(1, -1).trim();
  if (/^'(?:[^']|'')*'$/s.test(text)) return text.slice(1, -1).replaceAll("''", "'");
  // A bit string: B'1010'.
  if (/^[Bb]'[01]*'$/.test(text)) return text.slice(2, -1);
  if (/^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$/.test(text)) return text;
  if (text === "true" || text === "false") return text;
  return null;
}

/** Types whose constant defaults Debezium puts in schemas (its default value mappers). */
const DEFAULT_TYPES: ReadonlySet<number> = new Set([
  Oid.bit,
  Oid.varbit,
  Oid.bool,
  Oid.bpchar,
  Oid.varchar,
  Oid.text,
  Oid.numeric,
  Oid.float4,
  Oid.float8,
  Oid.int2,
  Oid.int4,
  Oid.int8,
  Oid.json,
  Oid.jsonb,
  Oid.xml,
  Oid.uuid,
  Oid.date,
  Oid.time,
  Oid.timestamp,
  Oid.timestamptz,
  Oid.interval,
]);

function pick(row: Row, columns: readonly string[]): Row {
  const out: Row = {};
  for (const column of columns) if (column in row) out[column] = row[column];
  return out;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    return a.length === b.length && a.every((byte, i) => byte === b[i]);
  }
  if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
    return JSON.stringify(a, bigints) === JSON.stringify(b, bigints);
  }
  return false;
}

function bigints(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

/** Java's `String.hashCode`. */
function javaHash(text: string): number {
  let hash = 0;
  for (let i = 0; i < text.length; i++) hash = (Math.imul(hash, 31) + text.charCodeAt(i)) | 0;
  return hash;
}

/**
 * `keys` in the order a `java.util.HashMap` they were put into, in this order, iterates them:
 * by bucket (the spread hash masked by the table size, 16 doubling past 3/4 full), then by
 * insertion within a bucket. Debezium lists a transaction's tables in that order.
 */
export function javaHashMapOrder(keys: readonly string[]): string[] {
  let capacity = 16;
  while (keys.length > capacity * 0.75) capacity *= 2;
  const bucket = (key: string) => {
    const h = javaHash(key);
    return (h ^ (h >>> 16)) & (capacity - 1);
  };
  return keys.map((key, order) => ({ key, order, bucket: bucket(key) }))
    .sort((a, b) => a.bucket - b.bucket || a.order - b.order)
    .map((entry) => entry.key);
}

/** JSON text read back as values, integers past 2^53 as bigints. */
export function readJson(text: string): JsonValue {
  return JSON.parse(
    text,
    (_key: string, value: unknown, context?: { source?: string }) =>
      typeof value === "number" && !Number.isSafeInteger(value) && context?.source !== undefined &&
        /^-?\d+$/.test(context.source)
        ? BigInt(context.source)
        : value,
  );
}
