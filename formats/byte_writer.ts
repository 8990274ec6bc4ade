/**
 * A growable byte buffer that encoders write records into (`json_writer.ts`, `avro/encode.ts`),
 * and that can hand a finished record out in place ({@linkcode ByteWriter.take}) instead of
 * copying it.
 *
 * @module
 */

/**
 * A record's bytes as two parts that stand one after the other: a head that many records share
 * (a table's embedded Connect schema, kilobytes, encoded once) and the record's own bytes. A
 * writer that copies each record once anyway (Kafka's record batches) copies the head from
 * where it is, instead of every record carrying a copy of it from the encoder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PrefixedBytes } from "./byte_writer.ts";
 * const bytes = new PrefixedBytes(new Uint8Array([1, 2]), new Uint8Array([3]));
 * assert.equal(bytes.byteLength, 3);
 * assert.deepEqual(bytes.join(), new Uint8Array([1, 2, 3]));
 * ```
 */
export class PrefixedBytes {
  /** Bytes of both parts. */
  readonly byteLength: number;

  constructor(readonly head: Uint8Array, readonly body: Uint8Array) {
    this.byteLength = head.byteLength + body.byteLength;
  }

  /** Both parts in one new array. */
  join(): Uint8Array {
    const joined = new Uint8Array(this.byteLength);
    joined.set(this.head);
    joined.set(this.body, this.head.byteLength);
    return joined;
  }
}

/** A record's bytes: in one piece, or as a shared head and its own part. */
export type RecordBytes = Uint8Array | PrefixedBytes;

/** A record's bytes in one piece (a copy when they are in two). */
export function joinedBytes(bytes: RecordBytes): Uint8Array {
  return bytes instanceof PrefixedBytes ? bytes.join() : bytes;
}

/** The buffer {@linkcode ByteWriter.take} moves on to when the current one is nearly full. */
export const TAKE_CHUNK_BYTES = 256 * 1024;
/** Room under which take() moves on to a new buffer. */
const TAKE_MIN_ROOM = 16 * 1024;

/** Bytes written into one buffer, from which finished records are taken. */
export class ByteWriter {
  /** The buffer; subclasses write at {@linkcode end} after {@linkcode reserve}. */
  protected buffer: Uint8Array;
  /** Where the next byte goes. */
  protected end = 0;
  /** Where the record being written starts: after what {@linkcode take} handed out. */
  protected start = 0;

  /** A writer whose buffer starts at `initialBytes` and doubles as needed. */
  constructor(initialBytes = 64 * 1024) {
    this.buffer = new Uint8Array(Math.max(16, initialBytes));
  }

  /** Bytes written so far (of the record being written). */
  get length(): number {
    return this.end - this.start;
  }

  /** A view of what was written; valid until the next write or {@linkcode reset}. */
  bytes(): Uint8Array {
    return this.buffer.subarray(this.start, this.end);
  }

  /**
   * What was written, handed out for keeps: the writer starts over after it, in the same
   * buffer, and never writes over it again (a full buffer is replaced, not reused). So
   * records written one after another share a buffer of {@linkcode TAKE_CHUNK_BYTES} and cost
   * no copy and no allocation each; a buffer lives as long as any record in it, so hold
   * taken records for about as long as their neighbours (a batch).
   */
  take(): Uint8Array {
    const taken = this.buffer.subarray(this.start, this.end);
    if (this.buffer.byteLength - this.end < TAKE_MIN_ROOM) {
      this.buffer = new Uint8Array(TAKE_CHUNK_BYTES);
      this.start = this.end = 0;
    } else {
      this.start = this.end;
    }
    return taken;
  }

  /** Starts the record over, keeping the buffer (it shrinks back when it grew past 16 MiB). */
  reset(): void {
    this.end = this.start;
    if (this.start === 0 && this.buffer.byteLength > 16 << 20) {
      this.buffer = new Uint8Array(64 * 1024);
    }
  }

  /** Makes room for `bytes` more at {@linkcode end}. */
  protected reserve(bytes: number): void {
    const needed = this.end + bytes;
    if (needed <= this.buffer.byteLength) return;
    let size = Math.max(this.buffer.byteLength * 2, TAKE_CHUNK_BYTES);
    while (size < this.end - this.start + bytes) size *= 2;
    this.#moveTo(size);
  }

  /**
   * Makes room for `bytes` more at {@linkcode end}, growing the buffer to about that (rounded
   * up to 64 KiB, and at least a quarter more than it was) rather than doubling it: for a
   * writer that knows its record's size up front, or most of it, and is used again (a produce
   * request of up to `batch_bytes`), so that its buffer does not end up twice what it needs.
   */
  protected reserveAbout(bytes: number): void {
    if (this.end + bytes <= this.buffer.byteLength) return;
    const needed = Math.max(this.end - this.start + bytes, this.buffer.byteLength * 1.25);
    this.#moveTo(Math.ceil(needed / 65536) * 65536);
  }

  /**
   * The record being written, moved to the start of a new buffer of `size` bytes. What take()
   * handed out stays where it is.
   */
  #moveTo(size: number): void {
    const pending = this.end - this.start;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(this.start, this.end));
    this.buffer = grown;
    this.start = 0;
    this.end = pending;
  }

  /** Sets a byte already written, `offset` bytes into the record being written. */
  patch(offset: number, value: number): void {
    if (offset < 0 || offset >= this.end - this.start) {
      throw new RangeError(`Cannot patch byte ${offset} of a record of ${this.end - this.start}`);
    }
    this.buffer[this.start + offset] = value;
  }

  /** One byte. */
  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.end++] = value;
  }

  /** Bytes as they are. */
  append(bytes: Uint8Array): void {
    this.reserve(bytes.byteLength);
    this.buffer.set(bytes, this.end);
    this.end += bytes.byteLength;
  }

  /**
   * An unsigned base-128 varint (Avro's and Kafka's, after their zigzag) of a non-negative
   * integer below 2^53, into room the caller reserved: at most 8 bytes.
   */
  protected unsignedVarint(value: number): void {
    const buffer = this.buffer;
    let at = this.end;
    while (value >= 0x80) {
      buffer[at++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    buffer[at++] = value;
    this.end = at;
  }
}
