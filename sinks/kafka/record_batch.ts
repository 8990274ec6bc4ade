/**
 * Kafka's RecordBatch (magic 2) written straight into one growable buffer, for the sink's own
 * produce path (`produce.ts`). The client library the sink used before (`@platformatic/kafka`)
 * built each record from about 25 small buffers and copied a request three times over; this
 * writes a whole batch of records, headers and all, in place (into the produce request itself
 * when the batch is not compressed: its size is known beforehand, {@linkcode batchSize}), and
 * computes its CRC-32C there.
 *
 * Layout (all integers big-endian, varints zigzag): baseOffset int64 (0), batchLength int32,
 * partitionLeaderEpoch int32, magic int8 (2), crc uint32 (CRC-32C of what follows),
 * attributes int16 (bits 0-2: compression; bit 4: transactional), lastOffsetDelta int32,
 * baseTimestamp int64, maxTimestamp int64, producerId int64, producerEpoch int16,
 * baseSequence int32, record count int32, then per record: length varint, attributes int8,
 * timestampDelta varlong, offsetDelta varint, key (varint length, -1 for null), value
 * (likewise), header count varint, and per header its key and value the same way. A
 * compressed batch holds the records compressed, after the same header.
 *
 * `record_batch_test.ts` holds it byte for byte equal to that library's encoder.
 *
 * @module
 */

import { ByteWriter, PrefixedBytes, type RecordBytes } from "../../formats/byte_writer.ts";

/**
 * A record's headers: names and values as bytes, or the record's header section already
 * encoded (the count and each entry, as {@linkcode headerField} writes a name or a value), which
 * is written as it is.
 */
export type RecordHeaders = ReadonlyMap<Uint8Array, Uint8Array> | Uint8Array;

/** One record of a batch. */
export interface BatchRecord {
  key: Uint8Array | null;
  /** `null`: a tombstone. In two parts when its head is shared ({@linkcode PrefixedBytes}). */
  value: RecordBytes | null;
  headers?: RecordHeaders;
  /** Milliseconds since the epoch; default the batch's `timestamp`. */
  timestamp?: number;
}

/** What a batch's header says of its producer. */
export interface BatchOptions {
  /** Default -1 (no idempotence). */
  producerId?: bigint;
  /** Default 0. */
  producerEpoch?: number;
  /** The sequence number of the first record; default 0. */
  baseSequence?: number;
  /** Sets the transactional attribute (the request must carry the transactional id). */
  transactional?: boolean;
  /** Milliseconds since the epoch, for records without their own; default now. */
  timestamp?: number;
  /** Default 0. */
  partitionLeaderEpoch?: number;
  /** Compresses the records; default none. */
  compression?: BatchCompression;
}

/** A compression codec of record batches. */
export interface BatchCompression {
  /** Its id in the batch's attributes (bits 0-2): gzip 1, snappy 2, lz4 3, zstd 4. */
  attribute: number;
  /** The records' bytes, compressed. */
  compress(bytes: Uint8Array): Uint8Array;
}

/** Bytes of a batch's header, before its first record. */
const HEADER_BYTES = 61;

/** Where the CRC-32C starts: the attributes, after baseOffset, length, epoch, magic and crc. */
const CRC_FROM = 21;
const TRANSACTIONAL = 1 << 4;

/**
 * Writes RecordBatches into one buffer it keeps (as large as the largest batch); each
 * {@linkcode RecordBatchWriter.batch} hands out a copy of its batch, for keeps.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RecordBatchWriter } from "./record_batch.ts";
 * const writer = new RecordBatchWriter();
 * const batch = writer.batch([{ key: null, value: new TextEncoder().encode("v") }], { timestamp: 0 });
 * assert.equal(batch[16], 2); // magic
 * assert.equal(new DataView(batch.buffer, batch.byteOffset).getInt32(8), batch.byteLength - 12);
 * ```
 */
export class RecordBatchWriter extends ByteWriter {
  readonly #view = new DataView(new ArrayBuffer(8));
  readonly #scratch = new Uint8Array(this.#view.buffer);

  /** One batch of `records` (at least one), for keeps. */
  batch(records: readonly BatchRecord[], options: BatchOptions = {}): Uint8Array {
    this.writeBatch(records, options);
    // One copy out of the buffer the writer keeps: cheaper than growing a fresh one per batch.
    const out = this.bytes().slice();
    this.reset();
    return out;
  }

  /**
   * Appends one batch of `records` (at least one) to what was written. Uncompressed it takes
   * exactly {@linkcode batchSize} bytes.
   */
  writeBatch(records: readonly BatchRecord[], options: BatchOptions = {}): void {
    if (records.length === 0) throw new RangeError("A RecordBatch needs at least one record");
    const now = options.timestamp ?? Date.now();
    const first = records[0]!.timestamp ?? now;
    let max = first;
    // Positions are kept from `start`: a buffer that grows moves the record to its beginning.
    const begin = this.end - this.start;
    const compression = options.compression;
    this.int64(0n); // baseOffset
    this.int32(0); // batchLength, set below
    this.int32(options.partitionLeaderEpoch ?? 0);
    this.byte(2); // magic
    this.int32(0); // crc, set below
    this.int16((options.transactional ? TRANSACTIONAL : 0) | (compression?.attribute ?? 0));
    this.int32(records.length - 1); // lastOffsetDelta
    this.int64(BigInt(first));
    const maxAt = this.end - this.start;
    this.int64(0n); // maxTimestamp, set below
    this.int64(options.producerId ?? -1n);
    this.int16(options.producerEpoch ?? 0);
    this.int32(options.baseSequence ?? 0);
    this.int32(records.length);
    const recordsAt = this.end - this.start;
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      const timestamp = record.timestamp ?? now;
      if (timestamp > max) max = timestamp;
      this.#record(record, timestamp - first, i);
    }
    if (compression !== undefined) {
      const compressed = compression.compress(
        this.buffer.subarray(this.start + recordsAt, this.end),
      );
      this.end = this.start + recordsAt;
      this.append(compressed);
    }
    const buffer = this.buffer;
    const from = this.start + begin;
    const view = new DataView(buffer.buffer, buffer.byteOffset + from, this.end - from);
    view.setInt32(8, this.end - from - 12);
    view.setBigInt64(maxAt - begin, BigInt(max));
    view.setUint32(17, batchCrc(buffer, from + CRC_FROM, this.end));
  }

  #record(record: BatchRecord, timestampDelta: number, offsetDelta: number): void {
    // The body's length is known before it is written: its varint goes first, and one reserve
    // covers the whole record.
    const { key, value, headers } = record;
    const tsZigzag = timestampDelta >= 0 ? timestampDelta * 2 : -timestampDelta * 2 - 1;
    const body = recordBodySize(record, tsZigzag, offsetDelta);
    this.reserve(5 + body);
    this.unsignedVarint(zigzag(body));
    this.buffer[this.end++] = 0; // attributes
    this.unsignedVarint(tsZigzag);
    this.unsignedVarint(zigzag(offsetDelta));
    this.#field(key);
    this.#field(value);
    if (headers === undefined) {
      this.buffer[this.end++] = 0;
    } else if (headers instanceof Uint8Array) {
      this.buffer.set(headers, this.end);
      this.end += headers.byteLength;
    } else {
      this.unsignedVarint(zigzag(headers.size));
      headers.forEach((headerValue, name) => {
        this.#field(name);
        this.#field(headerValue);
      });
    }
  }

  /** A length (-1 for null) and the bytes, in room already reserved. */
  #field(bytes: RecordBytes | null): void {
    if (bytes === null) {
      this.buffer[this.end++] = 1; // zigzag(-1)
      return;
    }
    this.unsignedVarint(zigzag(bytes.byteLength));
    if (bytes instanceof PrefixedBytes) {
      this.buffer.set(bytes.head, this.end);
      this.buffer.set(bytes.body, this.end + bytes.head.byteLength);
    } else {
      this.buffer.set(bytes, this.end);
    }
    this.end += bytes.byteLength;
  }

  /** A big-endian int16. */
  protected int16(value: number): void {
    this.reserve(2);
    this.buffer[this.end++] = (value >> 8) & 0xff;
    this.buffer[this.end++] = value & 0xff;
  }

  /** A big-endian int32. */
  protected int32(value: number): void {
    this.#view.setInt32(0, value);
    this.reserve(4);
    this.buffer.set(this.#scratch.subarray(0, 4), this.end);
    this.end += 4;
  }

  /** A big-endian int64. */
  protected int64(value: bigint): void {
    this.#view.setBigInt64(0, value);
    this.reserve(8);
    this.buffer.set(this.#scratch, this.end);
    this.end += 8;
  }
}

/** Bytes of a record after its length varint. */
function recordBodySize(record: BatchRecord, tsZigzag: number, offsetDelta: number): number {
  const { key, value, headers } = record;
  let body = 1 + varintSize(tsZigzag) + varintSize(zigzag(offsetDelta)) + fieldSize(key) +
    fieldSize(value);
  if (headers === undefined) {
    body += 1;
  } else if (headers instanceof Uint8Array) {
    body += headers.byteLength;
  } else {
    body += varintSize(zigzag(headers.size));
    headers.forEach((headerValue, name) => {
      body += fieldSize(name) + fieldSize(headerValue);
    });
  }
  return body;
}

/**
 * Bytes of the uncompressed batch {@linkcode RecordBatchWriter.writeBatch} writes for
 * `records` with this `timestamp` (as in its options: the time of records without their own).
 */
export function batchSize(records: readonly BatchRecord[], timestamp: number): number {
  const first = records[0]?.timestamp ?? timestamp;
  let size = HEADER_BYTES;
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    const delta = (record.timestamp ?? timestamp) - first;
    const body = recordBodySize(record, delta >= 0 ? delta * 2 : -delta * 2 - 1, i);
    size += varintSize(zigzag(body)) + body;
  }
  return size;
}

/**
 * A header's name or value as a record holds it: its length (a zigzag varint) and its bytes.
 * Entries (name, then value) written one after another, after the count
 * ({@linkcode headerCount}), make a header section that {@linkcode RecordHeaders} takes as it is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { headerField } from "./record_batch.ts";
 * assert.deepEqual([...headerField(new TextEncoder().encode("ab"))], [4, 97, 98]);
 * ```
 */
export function headerField(bytes: Uint8Array): Uint8Array {
  return new HeaderWriter().field(bytes).bytes().slice();
}

/** Header entries (each name, then its value, as {@linkcode headerField}s), one after another. */
export function headerEntries(
  entries: readonly (readonly [name: Uint8Array, value: Uint8Array])[],
): Uint8Array {
  const out = new HeaderWriter();
  for (const [name, value] of entries) out.field(name).field(value);
  return out.bytes().slice();
}

/** The count that starts a header section (a zigzag varint). */
export function headerCount(count: number): Uint8Array {
  return new HeaderWriter().count(count).bytes().slice();
}

/** Parts of header sections, through {@linkcode ByteWriter}'s varint. */
class HeaderWriter extends ByteWriter {
  constructor() {
    super(256);
  }

  field(bytes: Uint8Array): this {
    this.count(bytes.byteLength);
    this.append(bytes);
    return this;
  }

  count(value: number): this {
    this.reserve(5);
    this.unsignedVarint(zigzag(value));
    return this;
  }
}

/** Zigzag of a 32-bit integer, as an unsigned number. */
function zigzag(value: number): number {
  return ((value << 1) ^ (value >> 31)) >>> 0;
}

/** Bytes a field takes: its length's varint and its bytes (-1, one byte, for null). */
function fieldSize(bytes: RecordBytes | null): number {
  return bytes === null ? 1 : varintSize(zigzag(bytes.byteLength)) + bytes.byteLength;
}

/** Bytes an unsigned varint of `value` takes. */
function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), a table of 8 × 256 entries. */
const CRC_TABLES = (() => {
  const tables = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    tables[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = tables[n]!;
    for (let t = 1; t < 8; t++) {
      c = (tables[c & 0xff]! ^ (c >>> 8)) >>> 0;
      tables[t * 256 + n] = c;
    }
  }
  return tables;
})();

/**
 * The CPU's CRC-32C instruction through `@node-rs/crc32` (a Node-API addon): about 14 times
 * {@linkcode crc32c} here, where the JavaScript one took a fifth of the sink's main thread on
 * wide records. Imported by a name the module graph does not
 * see: a bundle or a compiled binary (which cannot carry an addon; `deno bundle` fails on its
 * loader) goes on with {@linkcode crc32c}, as does a run where the addon cannot load.
 */
const CRC_ADDON = "npm:@node-rs/crc32@1.10.8";
const nativeCrc32c: ((bytes: Uint8Array) => number) | null = await import(CRC_ADDON).then(
  (module: { crc32c(bytes: Uint8Array): number }) => module.crc32c,
  () => null,
);

/** Whether {@linkcode batchCrc} uses the CPU's instruction (the addon loaded). */
export const NATIVE_CRC = nativeCrc32c !== null;

/** CRC-32C of `bytes[start..end)`: the addon's where it loads, else {@linkcode crc32c}. */
export function batchCrc(bytes: Uint8Array, start: number, end: number): number {
  return nativeCrc32c === null
    ? crc32c(bytes, start, end)
    : nativeCrc32c(bytes.subarray(start, end)) >>> 0;
}

/**
 * CRC-32C of `bytes[start..end)` (slicing by 8), in JavaScript.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crc32c } from "./record_batch.ts";
 * const text = new TextEncoder().encode("123456789");
 * assert.equal(crc32c(text, 0, text.length), 0xe3069283);
 * ```
 */
export function crc32c(bytes: Uint8Array, start: number, end: number): number {
  const t = CRC_TABLES;
  let crc = 0xffffffff;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const a = (crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) |
      (bytes[i + 3]! << 24))) >>> 0;
    crc = t[7 * 256 + (a & 0xff)]! ^ t[6 * 256 + ((a >>> 8) & 0xff)]! ^
      t[5 * 256 + ((a >>> 16) & 0xff)]! ^ t[4 * 256 + (a >>> 24)]! ^
      t[3 * 256 + bytes[i + 4]!]! ^ t[2 * 256 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^ t[bytes[i + 7]!]!;
  }
  for (; i < end; i++) crc = t[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
