/**
 * The Kafka protocol's building blocks, as the sink's requests (`apis.ts`) write and read
 * them: big-endian integers, strings, byte arrays and arrays in their classic (INT16/INT32
 * length) and compact (unsigned varint of length + 1, 0 for null) forms, and the tagged-field
 * sections of flexible versions. Also the broker's error codes, by name, with whether Java's
 * client treats each as passing ({@linkcode KafkaProtocolError}).
 *
 * See https://kafka.apache.org/protocol for the primitive types.
 *
 * @module
 */

import { ByteWriter } from "../../formats/byte_writer.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Writes a request's body (what follows the request header). */
export class RequestWriter extends ByteWriter {
  readonly #view = new DataView(new ArrayBuffer(8));
  readonly #scratch = new Uint8Array(this.#view.buffer);

  /**
   * A writer whose body starts after `headerRoom` bytes left for the connection's request
   * header.
   */
  constructor(headerRoom = 0) {
    super(256);
    this.reserve(headerRoom);
    this.end += headerRoom;
  }

  /** Grows by about what is needed: requests are small, and each has a writer of its own. */
  protected override reserve(bytes: number): void {
    this.reserveAbout(bytes);
  }

  int8(value: number): this {
    this.byte(value & 0xff);
    return this;
  }

  bool(value: boolean): this {
    return this.int8(value ? 1 : 0);
  }

  int16(value: number): this {
    this.#view.setInt16(0, value);
    this.append(this.#scratch.subarray(0, 2));
    return this;
  }

  int32(value: number): this {
    this.#view.setInt32(0, value);
    this.append(this.#scratch.subarray(0, 4));
    return this;
  }

  int64(value: bigint): this {
    this.#view.setBigInt64(0, value);
    this.append(this.#scratch);
    return this;
  }

  /** An UNSIGNED_VARINT. */
  uvarint(value: number): this {
    this.reserve(8);
    this.unsignedVarint(value);
    return this;
  }

  /** A STRING or NULLABLE_STRING (INT16 length, -1 for null). */
  string(text: string | null): this {
    if (text === null) return this.int16(-1);
    const bytes = encoder.encode(text);
    this.int16(bytes.byteLength);
    this.append(bytes);
    return this;
  }

  /** A COMPACT_STRING or COMPACT_NULLABLE_STRING. */
  compactString(text: string | null): this {
    return this.compactBytes(text === null ? null : encoder.encode(text));
  }

  /** COMPACT_BYTES or COMPACT_NULLABLE_BYTES. */
  compactBytes(bytes: Uint8Array | null): this {
    if (bytes === null) return this.uvarint(0);
    this.uvarint(bytes.byteLength + 1);
    this.append(bytes);
    return this;
  }

  /** A COMPACT_ARRAY of `items`, each written by `write`; `null`: a null array. */
  compactArray<T>(items: readonly T[] | null, write: (item: T) => void): this {
    if (items === null) return this.uvarint(0);
    this.uvarint(items.length + 1);
    for (const item of items) write(item);
    return this;
  }

  /** An empty tagged-field section. */
  tags(): this {
    return this.int8(0);
  }
}

/** A failure to read a response: it is shorter than its fields, or not what was asked. */
export class MalformedResponseError extends Error {
  override name = "MalformedResponseError";
}

/** Reads a response's body. */
export class ResponseReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.#bytes.byteLength - this.#at;
  }

  #take(count: number): number {
    const at = this.#at;
    if (at + count > this.#bytes.byteLength) {
      throw new MalformedResponseError(
        `Kafka's answer ended after ${this.#bytes.byteLength} bytes, in the middle of a field`,
      );
    }
    this.#at += count;
    return at;
  }

  int8(): number {
    return this.#view.getInt8(this.#take(1));
  }

  bool(): boolean {
    return this.int8() !== 0;
  }

  int16(): number {
    return this.#view.getInt16(this.#take(2));
  }

  int32(): number {
    return this.#view.getInt32(this.#take(4));
  }

  int64(): bigint {
    return this.#view.getBigInt64(this.#take(8));
  }

  /** An UNSIGNED_VARINT (up to 2^35, as Kafka writes them). */
  uvarint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 5; i++) {
      const byte = this.#bytes[this.#take(1)]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
    }
    throw new MalformedResponseError("Kafka's answer holds a varint longer than 5 bytes");
  }

  /** A STRING or NULLABLE_STRING. */
  string(): string | null {
    const length = this.int16();
    return length < 0 ? null : this.#text(length);
  }

  /** A COMPACT_STRING or COMPACT_NULLABLE_STRING. */
  compactString(): string | null {
    const length = this.uvarint() - 1;
    return length < 0 ? null : this.#text(length);
  }

  /** COMPACT_BYTES or COMPACT_NULLABLE_BYTES (a view, not a copy). */
  compactBytes(): Uint8Array | null {
    const length = this.uvarint() - 1;
    if (length < 0) return null;
    const at = this.#take(length);
    return this.#bytes.subarray(at, at + length);
  }

  /** An ARRAY (INT32 length, -1 for null), each item read by `read`. */
  array<T>(read: () => T): T[] {
    const length = this.int32();
    return this.#items(length, read);
  }

  /** A COMPACT_ARRAY, each item read by `read`; a null array reads as empty. */
  compactArray<T>(read: () => T): T[] {
    return this.#items(this.uvarint() - 1, read);
  }

  #items<T>(length: number, read: () => T): T[] {
    if (length > this.remaining) {
      throw new MalformedResponseError(
        `Kafka's answer announces an array of ${length} items in ${this.remaining} bytes`,
      );
    }
    const items: T[] = [];
    for (let i = 0; i < length; i++) items.push(read());
    return items;
  }

  /** A tagged-field section, skipped (the sink reads none of them). */
  tags(): void {
    const count = this.uvarint();
    for (let i = 0; i < count; i++) {
      this.uvarint(); // the tag
      this.#take(this.uvarint());
    }
  }

  #text(length: number): string {
    const at = this.#take(length);
    try {
      return decoder.decode(this.#bytes.subarray(at, at + length));
    } catch {
      throw new MalformedResponseError("Kafka's answer holds a string that is not UTF-8");
    }
  }
}

/**
 * The broker's error codes the sink meets or may meet, by name, as the Java client names them
 * (`org.apache.kafka.common.protocol.Errors`; those of consumers, shares, KRaft and delegation
 * tokens are left out). A code not here is named by its number.
 */
const ERROR_NAMES: Readonly<Record<number, string>> = {
  [-1]: "UNKNOWN_SERVER_ERROR",
  1: "OFFSET_OUT_OF_RANGE",
  2: "CORRUPT_MESSAGE",
  3: "UNKNOWN_TOPIC_OR_PARTITION",
  5: "LEADER_NOT_AVAILABLE",
  6: "NOT_LEADER_OR_FOLLOWER",
  7: "REQUEST_TIMED_OUT",
  8: "BROKER_NOT_AVAILABLE",
  9: "REPLICA_NOT_AVAILABLE",
  10: "MESSAGE_TOO_LARGE",
  13: "NETWORK_EXCEPTION",
  14: "COORDINATOR_LOAD_IN_PROGRESS",
  15: "COORDINATOR_NOT_AVAILABLE",
  16: "NOT_COORDINATOR",
  17: "INVALID_TOPIC_EXCEPTION",
  18: "RECORD_LIST_TOO_LARGE",
  19: "NOT_ENOUGH_REPLICAS",
  20: "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
  21: "INVALID_REQUIRED_ACKS",
  22: "ILLEGAL_GENERATION",
  24: "INVALID_GROUP_ID",
  25: "UNKNOWN_MEMBER_ID",
  27: "REBALANCE_IN_PROGRESS",
  28: "INVALID_COMMIT_OFFSET_SIZE",
  29: "TOPIC_AUTHORIZATION_FAILED",
  30: "GROUP_AUTHORIZATION_FAILED",
  31: "CLUSTER_AUTHORIZATION_FAILED",
  32: "INVALID_TIMESTAMP",
  33: "UNSUPPORTED_SASL_MECHANISM",
  34: "ILLEGAL_SASL_STATE",
  35: "UNSUPPORTED_VERSION",
  36: "TOPIC_ALREADY_EXISTS",
  37: "INVALID_PARTITIONS",
  38: "INVALID_REPLICATION_FACTOR",
  39: "INVALID_REPLICA_ASSIGNMENT",
  40: "INVALID_CONFIG",
  41: "NOT_CONTROLLER",
  42: "INVALID_REQUEST",
  43: "UNSUPPORTED_FOR_MESSAGE_FORMAT",
  44: "POLICY_VIOLATION",
  45: "OUT_OF_ORDER_SEQUENCE_NUMBER",
  46: "DUPLICATE_SEQUENCE_NUMBER",
  47: "INVALID_PRODUCER_EPOCH",
  48: "INVALID_TXN_STATE",
  49: "INVALID_PRODUCER_ID_MAPPING",
  50: "INVALID_TRANSACTION_TIMEOUT",
  51: "CONCURRENT_TRANSACTIONS",
  52: "TRANSACTION_COORDINATOR_FENCED",
  53: "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
  54: "SECURITY_DISABLED",
  55: "OPERATION_NOT_ATTEMPTED",
  56: "KAFKA_STORAGE_ERROR",
  58: "SASL_AUTHENTICATION_FAILED",
  59: "UNKNOWN_PRODUCER_ID",
  60: "REASSIGNMENT_IN_PROGRESS",
  69: "GROUP_ID_NOT_FOUND",
  72: "LISTENER_NOT_FOUND",
  74: "FENCED_LEADER_EPOCH",
  75: "UNKNOWN_LEADER_EPOCH",
  76: "UNSUPPORTED_COMPRESSION_TYPE",
  78: "OFFSET_NOT_AVAILABLE",
  81: "GROUP_MAX_SIZE_REACHED",
  83: "ELIGIBLE_LEADERS_NOT_AVAILABLE",
  87: "INVALID_RECORD",
  88: "UNSTABLE_OFFSET_COMMIT",
  89: "THROTTLING_QUOTA_EXCEEDED",
  90: "PRODUCER_FENCED",
  100: "UNKNOWN_TOPIC_ID",
  103: "INCONSISTENT_TOPIC_ID",
  105: "TRANSACTIONAL_ID_NOT_FOUND",
  120: "TRANSACTION_ABORTABLE",
};

/**
 * Codes Java's client treats as passing (their exceptions are retriable: the same request may
 * succeed later), plus the coordinator's, which pass once the coordinator is found again.
 */
const PASSING = new Set([
  2,
  3,
  5,
  6,
  7,
  9,
  13,
  14,
  15,
  16,
  19,
  20,
  41,
  51,
  56,
  72,
  74,
  75,
  78,
  83,
  88,
  89,
  100,
  103,
]);

/** The name of a broker error code, e.g. `MESSAGE_TOO_LARGE`. */
export function errorName(code: number): string {
  return ERROR_NAMES[code] ?? `KAFKA_ERROR_${code}`;
}

/** An error code in a broker's answer. */
export class KafkaProtocolError extends Error {
  override name = "KafkaProtocolError";
  /** The code's name, e.g. `NOT_COORDINATOR`. */
  readonly type: string;
  readonly code: number;
  /** The same request may succeed later (see {@linkcode PASSING}). */
  readonly passing: boolean;

  /** `code`'s error, with the broker's own message when it sent one. */
  constructor(code: number, doing: string, brokerMessage?: string | null) {
    const type = errorName(code);
    super(`${type} ${doing}${brokerMessage ? `: ${brokerMessage}` : ""}`);
    this.type = type;
    this.code = code;
    this.passing = PASSING.has(code);
  }
}

/** Throws {@linkcode KafkaProtocolError} for a non-zero `code`. */
export function checkError(code: number, doing: string, brokerMessage?: string | null): void {
  if (code !== 0) throw new KafkaProtocolError(code, doing, brokerMessage);
}
