/**
 * A growable byte buffer that JSON text is written into directly as UTF-8: the sinks' hot
 * path. Building lines as JavaScript strings and encoding them afterwards costs about twice
 * as much (string ropes, then flattening and encoding them), see bench/RESULTS.md.
 *
 * @module
 */

import { ByteWriter, TAKE_CHUNK_BYTES } from "./byte_writer.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export { TAKE_CHUNK_BYTES };
/** Writes JSON text as UTF-8 bytes into one reusable buffer ({@linkcode ByteWriter}). */
export class JsonWriter extends ByteWriter {
  /** The written text as a string. */
  text(): string {
    return decoder.decode(this.bytes());
  }

  /** Text that is already JSON (or part of it), written as it is. */
  raw(text: string): void {
    const count = text.length;
    this.reserve(count);
    const buffer = this.buffer;
    let at = this.end;
    for (let i = 0; i < count; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) {
        this.end = at;
        this.#utf8(i === 0 ? text : text.slice(i));
        return;
      }
      buffer[at++] = code;
    }
    this.end = at;
  }

  #utf8(text: string): void {
    this.reserve(text.length * 3);
    this.end += encoder.encodeInto(text, this.buffer.subarray(this.end)).written;
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
    // Below 2^32: unsigned shifts count and cut the digits (no division, no power).
    let digits = 1;
    for (let rest = value >>> 4; rest > 0; rest >>>= 4) digits++;
    this.reserve(digits);
    const buffer = this.buffer;
    let at = this.end + digits;
    this.end = at;
    let rest = value >>> 0;
    do {
      const digit = rest & 15;
      buffer[--at] = digit < 10 ? 0x30 + digit : 0x37 + digit;
      rest >>>= 4;
    } while (rest > 0);
  }

  /** A safe integer's decimal digits, as `String(value)` writes them, without making a string. */
  integer(value: number): void {
    if (!Number.isSafeInteger(value)) {
      this.raw(String(value));
      return;
    }
    this.reserve(17);
    if (value < 0) {
      this.buffer[this.end++] = 0x2d;
      value = -value;
    }
    if (value < 100_000_000) {
      this.#digits(value, 0);
      return;
    }
    // Two parts below 10^8, so each is written with 32-bit integer arithmetic.
    const high = Math.floor(value / 100_000_000);
    this.#digits(high, 0);
    this.#digits(value - high * 100_000_000, 8);
  }

  /** The digits of an integer in [0, 10^8), padded with zeros to `width`. */
  #digits(value: number, width: number): void {
    let count = 1;
    for (let rest = value; rest >= 10; rest = (rest / 10) | 0) count++;
    if (count < width) count = width;
    const buffer = this.buffer;
    let at = this.end + count;
    this.end = at;
    for (let i = 0; i < count; i++) {
      const next = (value / 10) | 0;
      buffer[--at] = 0x30 + value - next * 10;
      value = next;
    }
  }

  /**
   * `timestamptz` text whose `+00` starts at `end` (checked by `utcTextEnd`: ASCII,
   * `YYYY-MM-DD HH:MM:SS[.ffffff]` before it) as a quoted ISO-8601 instant, `"…T…Z"`, written
   * from the text with no string made for it.
   */
  utcIso(text: string, end: number): void {
    this.reserve(end + 3);
    const buffer = this.buffer;
    let at = this.end;
    buffer[at++] = 0x22;
    for (let i = 0; i < end; i++) buffer[at++] = i === 10 ? 0x54 : text.charCodeAt(i);
    buffer[at++] = 0x5a;
    buffer[at++] = 0x22;
    this.end = at;
  }

  /** A bigint's decimal digits, as `String(value)` writes them. */
  bigint(value: bigint): void {
    if (value >= -MAX_SAFE && value <= MAX_SAFE) this.integer(Number(value));
    else this.raw(value.toString());
  }

  /** A JSON string literal, escaped as `JSON.stringify` escapes it. */
  string(value: string): void {
    const count = value.length;
    this.reserve(count + 2);
    const buffer = this.buffer;
    const start = this.end;
    let at = start;
    buffer[at++] = 0x22;
    for (let i = 0; i < count; i++) {
      const code = value.charCodeAt(i);
      if (code < 0x20 || code === 0x22 || code === 0x5c || code >= 0x80) {
        this.end = start;
        this.raw(JSON.stringify(value));
        return;
      }
      buffer[at++] = code;
    }
    buffer[at++] = 0x22;
    this.end = at;
  }

  /** A JSON-safe value (what `JSON.stringify` takes, including `JSON.rawJSON` values). */
  value(value: unknown): void {
    switch (typeof value) {
      case "string":
        this.string(value);
        return;
      case "number":
        if (Number.isSafeInteger(value)) this.integer(value);
        else this.raw(Number.isFinite(value) ? `${value}` : "null");
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

/** Whether a value is `JSON.rawJSON(…)` text (integers past 2^53, say). */
export function isRawJson(value: unknown): value is { readonly rawJSON: string } {
  return isRawJSON(value);
}
