/**
 * A growable byte buffer that JSON text is written into directly as UTF-8: the sinks' hot
 * path. Building lines as JavaScript strings and encoding them afterwards costs about twice
 * as much (string ropes, then flattening and encoding them), see bench/RESULTS.md.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** The buffer {@linkcode JsonWriter.take} moves on to when the current one is nearly full. */
export const TAKE_CHUNK_BYTES = 256 * 1024;
/** Room under which take() moves on to a new buffer. */
const TAKE_MIN_ROOM = 16 * 1024;

/** Writes JSON text as UTF-8 bytes into one reusable buffer. */
export class JsonWriter {
  #buffer: Uint8Array;
  #length = 0;
  /** Where the text being written starts: after what {@linkcode take} handed out. */
  #start = 0;

  /** A writer whose buffer starts at `initialBytes` and doubles as needed. */
  constructor(initialBytes = 64 * 1024) {
    this.#buffer = new Uint8Array(Math.max(16, initialBytes));
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#length - this.#start;
  }

  /** A view of what was written; valid until the next write or {@linkcode reset}. */
  bytes(): Uint8Array {
    return this.#buffer.subarray(this.#start, this.#length);
  }

  /**
   * What was written, handed out for keeps: the writer starts over after it, in the same
   * buffer, and never writes over it again (a full buffer is replaced, not reused). So
   * records written one after another share a buffer of {@linkcode TAKE_CHUNK_BYTES} and cost
   * no copy and no allocation each; a buffer lives as long as any record in it, so hold
   * taken records for about as long as their neighbours (a batch).
   */
  take(): Uint8Array {
    const taken = this.#buffer.subarray(this.#start, this.#length);
    if (this.#buffer.byteLength - this.#length < TAKE_MIN_ROOM) {
      this.#buffer = new Uint8Array(TAKE_CHUNK_BYTES);
      this.#start = this.#length = 0;
    } else {
      this.#start = this.#length;
    }
    return taken;
  }

  /** The written text as a string. */
  text(): string {
    return decoder.decode(this.bytes());
  }

  /** Starts over, keeping the buffer (it shrinks back when it grew past 16 MiB). */
  reset(): void {
    this.#length = this.#start;
    if (this.#start === 0 && this.#buffer.byteLength > 16 << 20) {
      this.#buffer = new Uint8Array(64 * 1024);
    }
  }

  #reserve(bytes: number): void {
    const needed = this.#length + bytes;
    if (needed <= this.#buffer.byteLength) return;
    // What take() handed out stays where it is: only the text being written moves.
    const pending = this.#length - this.#start;
    let size = Math.max(this.#buffer.byteLength * 2, TAKE_CHUNK_BYTES);
    while (size < pending + bytes) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.#buffer.subarray(this.#start, this.#length));
    this.#buffer = grown;
    this.#start = 0;
    this.#length = pending;
  }

  /** One byte (an ASCII character code). */
  byte(code: number): void {
    this.#reserve(1);
    this.#buffer[this.#length++] = code;
  }

  /** Bytes that are already UTF-8 JSON (or part of it): a prefix encoded once, say. */
  append(bytes: Uint8Array): void {
    this.#reserve(bytes.byteLength);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.byteLength;
  }

  /** Text that is already JSON (or part of it), written as it is. */
  raw(text: string): void {
    const count = text.length;
    this.#reserve(count);
    const buffer = this.#buffer;
    let at = this.#length;
    for (let i = 0; i < count; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) {
        this.#length = at;
        this.#utf8(i === 0 ? text : text.slice(i));
        return;
      }
      buffer[at++] = code;
    }
    this.#length = at;
  }

  #utf8(text: string): void {
    this.#reserve(text.length * 3);
    this.#length += encoder.encodeInto(text, this.#buffer.subarray(this.#length)).written;
  }

  /** An LSN as PostgreSQL prints it (`16/B374D848`), without the quotes. */
  lsn(value: bigint): void {
    if (value > MAX_SAFE) {
      this.raw(
        `${(value >> 32n).toString(16)}/${(value & 0xffff_ffffn).toString(16)}`.toUpperCase(),
      );
      return;
    }
    const number = Number(value);
    const high = Math.floor(number / 0x1_0000_0000);
    this.#hex(high);
    this.byte(0x2f);
    this.#hex(number - high * 0x1_0000_0000);
  }

  /** Upper-case hex digits of a non-negative integer below 2^32. */
  #hex(value: number): void {
    let digits = 1;
    while (digits < 8 && value >= 16 ** digits) digits++;
    this.#reserve(digits);
    const buffer = this.#buffer;
    let at = this.#length + digits;
    this.#length = at;
    do {
      const digit = value % 16;
      buffer[--at] = digit < 10 ? 0x30 + digit : 0x37 + digit;
      value = Math.floor(value / 16);
    } while (value > 0);
  }

  /** A JSON string literal, escaped as `JSON.stringify` escapes it. */
  string(value: string): void {
    const count = value.length;
    this.#reserve(count + 2);
    const buffer = this.#buffer;
    const start = this.#length;
    let at = start;
    buffer[at++] = 0x22;
    for (let i = 0; i < count; i++) {
      const code = value.charCodeAt(i);
      if (code < 0x20 || code === 0x22 || code === 0x5c || code >= 0x80) {
        this.#length = start;
        this.raw(JSON.stringify(value));
        return;
      }
      buffer[at++] = code;
    }
    buffer[at++] = 0x22;
    this.#length = at;
  }

  /** A JSON-safe value (what `JSON.stringify` takes, including `JSON.rawJSON` values). */
  value(value: unknown): void {
    switch (typeof value) {
      case "string":
        this.string(value);
        return;
      case "number":
        this.raw(Number.isFinite(value) ? `${value}` : "null");
        return;
      case "boolean":
        this.raw(value ? "true" : "false");
        return;
      case "object":
        if (value === null) this.raw("null");
        else if (isRawJson(value)) this.raw(value.rawJSON);
        else this.raw(JSON.stringify(value));
        return;
      default:
        this.raw(JSON.stringify(value) ?? "null");
    }
  }
}

const isRawJSON = (JSON as unknown as { isRawJSON(value: unknown): boolean }).isRawJSON;

function isRawJson(value: object): value is { rawJSON: string } {
  return isRawJSON(value);
}
