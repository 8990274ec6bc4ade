/**
 * Debezium's change events in Avro, as its PostgreSQL connector writes them through Kafka
 * Connect's Avro converter: the same key and value as `../debezium.ts` (which this wraps, so
 * every Debezium rule lives in one place), encoded with the Avro schemas of `schema.ts` in
 * Confluent's wire format (`encode.ts`). The caller registers each schema
 * ({@linkcode DebeziumAvroFormat.schemasOf}) and passes the registry's ids.
 *
 * Subjects follow Confluent's TopicNameStrategy: `<topic>-key` and `<topic>-value`.
 *
 * How a record is made: the JSON form is rendered (`schemas: false`), read back (integers past
 * 2^53 exactly, through the source text), and written as Avro by the encoder compiled for the
 * table's schema. The read-back costs about a microsecond per record; writing Avro straight
 * from the events is the next step for speed.
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
import { DebeziumFormat, type DebeziumFormatOptions, type EncodedRecord } from "../debezium.ts";
import { type AvroEncoder, avroEncoder, AvroWriter, writeWireHeader } from "./encode.ts";
import { type AvroSchema, avroSchema } from "./schema.ts";

/** A schema a record needs registered, under its subject. */
export interface SubjectSchema {
  subject: string;
  schema: AvroSchema;
}

/** The registry's id of a subject's schema (the caller registered it before). */
export type SchemaIds = (subject: string, schema: AvroSchema) => number;

interface Compiled {
  avro: AvroSchema;
  encode: AvroEncoder;
}

const decoder = new TextDecoder();

/** JSON text read back with integers past 2^53 kept exact (as `JSON.rawJSON`). */
function readBack(bytes: Uint8Array): JsonValue {
  return JSON.parse(
    decoder.decode(bytes),
    (_key: string, value: unknown, context?: { source?: string }) =>
      typeof value === "number" && !Number.isSafeInteger(value) && context?.source !== undefined &&
        /^-?\d+$/.test(context.source)
        ? (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON(context.source)
        : value,
  );
}

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

  constructor(options: Omit<DebeziumFormatOptions, "schemas">) {
    this.json = new DebeziumFormat({ ...options, schemas: false });
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
    if (key !== null) out.push({ subject: `${record.topic}-key`, schema: this.#compile(key).avro });
    out.push({ subject: `${record.topic}-value`, schema: this.#compile(value).avro });
    return out;
  }

  /** The subjects of the transaction topic's records and of logical decoding messages. */
  fixedSchemas(): { transaction: SubjectSchema[]; message: SubjectSchema[] } {
    const fixed = this.#fixedSchemas();
    const tx = this.transactionTopic;
    const message = this.messageTopic;
    return {
      transaction: [
        { subject: `${tx}-key`, schema: this.#compile(fixed.txKey).avro },
        { subject: `${tx}-value`, schema: this.#compile(fixed.txValue).avro },
      ],
      message: [
        { subject: `${message}-key`, schema: this.#compile(fixed.messageKey).avro },
        { subject: `${message}-value`, schema: this.#compile(fixed.messageValue).avro },
      ],
    };
  }

  #encode(subject: string, schema: ConnectSchema, json: Uint8Array, ids: SchemaIds): Uint8Array {
    const compiled = this.#compile(schema);
    const out = this.#out;
    out.reset();
    writeWireHeader(out, ids(subject, compiled.avro));
    compiled.encode(out, readBack(json));
    return out.bytes();
  }

  /** A change's records (a delete's tombstone too), as {@linkcode DebeziumFormat.change}. */
  change(
    record: Extract<SinkRecord, { kind: "change" }>,
    tombstones: boolean,
    ids: SchemaIds,
  ): EncodedRecord[] {
    const { key, value } = this.json.connectSchemas(record);
    return this.json.change(record, tombstones).map((encoded) => ({
      topic: encoded.topic,
      key: encoded.key === null || key === null
        ? null
        : this.#encode(`${record.topic}-key`, key, encoded.key, ids),
      value: encoded.value === null
        ? null
        : this.#encode(`${record.topic}-value`, value, encoded.value, ids),
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
      key: this.#encode(`${topic}-key`, fixed.txKey, encoded.key!, ids),
      value: this.#encode(`${topic}-value`, fixed.txValue, encoded.value!, ids),
    };
  }

  message(event: MessageEvent, ids: SchemaIds): EncodedRecord {
    const fixed = this.#fixedSchemas();
    const encoded = this.json.message(event);
    const topic = encoded.topic;
    return {
      topic,
      key: this.#encode(`${topic}-key`, fixed.messageKey, encoded.key!, ids),
      value: this.#encode(`${topic}-value`, fixed.messageValue, encoded.value!, ids),
    };
  }

  beginSilently(tx: TransactionInfo): void {
    this.json.beginSilently(tx);
  }

  committed(endLsn: bigint): void {
    this.json.committed(endLsn);
  }
}
