/**
 * Debezium's change events in Avro, as its PostgreSQL connector writes them through Kafka
 * Connect's Avro converter: the same key and value as `../debezium.ts` (which this wraps, so
 * every Debezium rule lives in one place), encoded with the Avro schemas of `schema.ts` in
 * Confluent's wire format (`encode.ts`). The caller registers each schema
 * ({@linkcode DebeziumAvroFormat.schemasOf}) and passes the registry's ids.
 *
 * Subjects follow Confluent's strategies: TopicNameStrategy (`<topic>-key`, `<topic>-value`:
 * the default), RecordNameStrategy (the record's full name) or TopicRecordNameStrategy
 * (`<topic>-<record full name>`).
 *
 * How a record is made: the wrapped format gives a change's key and value as the values its
 * JSON holds (`DebeziumFormat.changeValues`: the same rules and state as its JSON), and the
 * encoder compiled for the table's schema writes them. Transaction metadata and messages (a
 * few per transaction) are rendered as JSON and read back.
 *
 * @module
 */

import type { JsonValue } from "../../decoder/types/json.ts";
import type { MessageEvent, SinkRecord, TransactionInfo } from "../../events.ts";
import {
  type ConnectSchema,
  messageKeySchema,
  messageValueSchema,
  transactionKeySchema,
  transactionValueSchema,
} from "../connect_schema.ts";
import {
  DebeziumFormat,
  type DebeziumFormatOptions,
  type EncodedRecord,
  readJson,
} from "../debezium.ts";
import { type AvroEncoder, avroEncoder, AvroWriter, writeWireHeader } from "./encode.ts";
import { type AvroSchema, avroSchema } from "./schema.ts";

/** A schema a record needs registered, under its subject. */
export interface SubjectSchema {
  subject: string;
  schema: AvroSchema;
}

/** How subjects are named (Confluent's subject name strategies). */
export type SubjectNaming = "topic" | "record" | "topic_record";

/** The registry's id of a subject's schema (the caller registered it before). */
export type SchemaIds = (subject: string, schema: AvroSchema) => number;

interface Compiled {
  avro: AvroSchema;
  encode: AvroEncoder;
}

const decoder = new TextDecoder();

/** Debezium's envelope in Avro (see the module doc). */
export class DebeziumAvroFormat {
  readonly json: DebeziumFormat;
  readonly #compiled = new WeakMap<ConnectSchema, Compiled>();
  readonly #out = new AvroWriter();
  #fixed: {
    txKey: ConnectSchema;
    txValue: ConnectSchema;
    messageKey: ConnectSchema;
    messageValue: ConnectSchema;
  } | null = null;

  readonly #naming: SubjectNaming;

  constructor(options: Omit<DebeziumFormatOptions, "schemas"> & { subjectNaming?: SubjectNaming }) {
    this.json = new DebeziumFormat({ ...options, schemas: false });
    this.#naming = options.subjectNaming ?? "topic";
  }

  /** The subject of a topic's key or value schema under the naming strategy. */
  subject(topic: string, part: "key" | "value", schema: AvroSchema): string {
    if (this.#naming === "topic") return `${topic}-${part}`;
    const named = schema as { name?: string; namespace?: string };
    const record = named.namespace === undefined
      ? String(named.name)
      : `${named.namespace}.${named.name}`;
    return this.#naming === "record" ? record : `${topic}-${record}`;
  }

  get transactionTopic(): string {
    return this.json.transactionTopic;
  }

  get messageTopic(): string {
    return this.json.messageTopic;
  }

  #compile(schema: ConnectSchema): Compiled {
    let compiled = this.#compiled.get(schema);
    if (compiled === undefined) {
      compiled = { avro: avroSchema(schema), encode: avroEncoder(schema) };
      this.#compiled.set(schema, compiled);
    }
    return compiled;
  }

  #fixedSchemas() {
    return this.#fixed ??= {
      txKey: transactionKeySchema(),
      txValue: transactionValueSchema(),
      messageKey: messageKeySchema(),
      messageValue: messageValueSchema(this.json.jsonOptions),
    };
  }

  /** The subjects and schemas a change record's key and value are written with. */
  schemasOf(record: Extract<SinkRecord, { kind: "change" }>): SubjectSchema[] {
    const { key, value } = this.json.connectSchemas(record);
    const out: SubjectSchema[] = [];
    for (const [part, schema] of [["key", key], ["value", value]] as const) {
      if (schema === null) continue;
      const avro = this.#compile(schema).avro;
      out.push({ subject: this.subject(record.topic, part, avro), schema: avro });
    }
    return out;
  }

  /** The subjects of the transaction topic's records and of logical decoding messages. */
  fixedSchemas(): { transaction: SubjectSchema[]; message: SubjectSchema[] } {
    const fixed = this.#fixedSchemas();
    const tx = this.transactionTopic;
    const message = this.messageTopic;
    const of = (topic: string, part: "key" | "value", schema: ConnectSchema) => {
      const avro = this.#compile(schema).avro;
      return { subject: this.subject(topic, part, avro), schema: avro };
    };
    return {
      transaction: [of(tx, "key", fixed.txKey), of(tx, "value", fixed.txValue)],
      message: [of(message, "key", fixed.messageKey), of(message, "value", fixed.messageValue)],
    };
  }

  #encode(
    topic: string,
    part: "key" | "value",
    schema: ConnectSchema,
    value: JsonValue,
    ids: SchemaIds,
  ): Uint8Array {
    const compiled = this.#compile(schema);
    const out = this.#out;
    out.reset();
    writeWireHeader(out, ids(this.subject(topic, part, compiled.avro), compiled.avro));
    compiled.encode(out, value);
    return out.take();
  }

  /** A record the JSON form rendered (transaction metadata, messages), read back. */
  #encodeJson(
    topic: string,
    part: "key" | "value",
    schema: ConnectSchema,
    json: Uint8Array,
    ids: SchemaIds,
  ): Uint8Array {
    return this.#encode(topic, part, schema, readJson(decoder.decode(json)), ids);
  }

  /** A change's records (a delete's tombstone too), as {@linkcode DebeziumFormat.change}. */
  change(
    record: Extract<SinkRecord, { kind: "change" }>,
    tombstones: boolean,
    ids: SchemaIds,
  ): EncodedRecord[] {
    const { key, value } = this.json.connectSchemas(record);
    return this.json.changeValues(record, tombstones).map((values) => ({
      topic: values.topic,
      key: values.key === null || key === null
        ? null
        : this.#encode(record.topic, "key", key, values.key, ids),
      value: values.value === null
        ? null
        : this.#encode(record.topic, "value", value, values.value, ids),
    }));
  }

  begin(tx: TransactionInfo, ids: SchemaIds): EncodedRecord {
    return this.#transactionRecord(this.json.begin(tx), ids);
  }

  end(tx: TransactionInfo, endLsn: bigint, ids: SchemaIds): EncodedRecord {
    return this.#transactionRecord(this.json.end(tx, endLsn), ids);
  }

  #transactionRecord(encoded: EncodedRecord, ids: SchemaIds): EncodedRecord {
    const fixed = this.#fixedSchemas();
    const topic = encoded.topic;
    return {
      topic,
      key: this.#encodeJson(topic, "key", fixed.txKey, encoded.key!, ids),
      value: this.#encodeJson(topic, "value", fixed.txValue, encoded.value!, ids),
    };
  }

  message(event: MessageEvent, ids: SchemaIds): EncodedRecord {
    const fixed = this.#fixedSchemas();
    const encoded = this.json.message(event);
    const topic = encoded.topic;
    return {
      topic,
      key: this.#encodeJson(topic, "key", fixed.messageKey, encoded.key!, ids),
      value: this.#encodeJson(topic, "value", fixed.messageValue, encoded.value!, ids),
    };
  }

  beginSilently(tx: TransactionInfo): void {
    this.json.beginSilently(tx);
  }

  committed(endLsn: bigint): void {
    this.json.committed(endLsn);
  }
}
