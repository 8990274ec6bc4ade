import { DecodeError } from "../errors.ts";
import type { Lsn } from "./lsn.ts";

const utf8 = new TextDecoder("utf-8");

/**
 * A cursor over one message's bytes. Every read checks bounds and throws a
 * {@linkcode DecodeError} naming `messageType` and the offset.
 */
export class BufferReader {
  #bytes: Uint8Array;
  /** A view over the whole underlying buffer, kept while messages share it (one socket chunk). */
  #view: DataView;
  #base: number;
  offset = 0;
  /** Name of the message being read, for error messages. */
  messageType = "message";

  constructor(bytes: Uint8Array = new Uint8Array(0)) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer);
    this.#base = bytes.byteOffset;
  }

  /** Points the reader at new bytes, offset 0. */
  reset(bytes: Uint8Array, messageType: string): void {
    this.#bytes = bytes;
    if (bytes.buffer !== this.#view.buffer) this.#view = new DataView(bytes.buffer);
    this.#base = bytes.byteOffset;
    this.offset = 0;
    this.messageType = messageType;
  }

  get remaining(): number {
    return this.#bytes.byteLength - this.offset;
  }

  fail(detail: string, at = this.offset): never {
    throw new DecodeError(this.messageType, at, detail);
  }

  #need(n: number, what: string): number {
    const at = this.offset;
    if (at + n > this.#bytes.byteLength) {
      this.fail(`needs ${n} bytes for ${what} but only ${this.#bytes.byteLength - at} remain`);
    }
    this.offset = at + n;
    return at;
  }

  uint8(what = "Int8"): number {
    return this.#bytes[this.#need(1, what)]!;
  }

  int16(what = "Int16"): number {
    return this.#view.getInt16(this.#base + this.#need(2, what));
  }

  int32(what = "Int32"): number {
    return this.#view.getInt32(this.#base + this.#need(4, what));
  }

  uint32(what = "UInt32"): number {
    return this.#view.getUint32(this.#base + this.#need(4, what));
  }

  int64(what = "Int64"): bigint {
    return this.#view.getBigInt64(this.#base + this.#need(8, what));
  }

  lsn(what = "LSN"): Lsn {
    return this.#view.getBigUint64(this.#base + this.#need(8, what)) as Lsn;
  }

  /** A NUL-terminated UTF-8 string. */
  cstring(what = "String"): string {
    const start = this.offset;
    const end = this.#bytes.indexOf(0, start);
    if (end < 0) this.fail(`${what} has no NUL terminator`);
    this.offset = end + 1;
    return decodeUtf8(this.#bytes, start, end);
  }

  /** `n` bytes as a view (not a copy) into the message. */
  bytes(n: number, what = "bytes"): Uint8Array {
    if (n < 0) this.fail(`negative length ${n} for ${what}`, this.offset - 4);
    const at = this.#need(n, what);
    return this.#bytes.subarray(at, at + n);
  }

  /** A copy of the bytes from `start` to `end` of this message. */
  copy(start: number, end: number): Uint8Array {
    return this.#bytes.slice(start, end);
  }

  /** `n` bytes decoded as UTF-8. */
  utf8(n: number, what = "text"): string {
    if (n < 0) this.fail(`negative length ${n} for ${what}`, this.offset - 4);
    const at = this.#need(n, what);
    try {
      return decodeUtf8(this.#bytes, at, at + n);
    } catch (error) {
      if (error instanceof StringTooLongError) this.fail(`${what}: ${error.message}`, at);
      throw error;
    }
  }

  /** Fails unless every byte has been read. */
  expectEnd(): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} unexpected trailing bytes`);
  }
}

/**
 * The longest string V8 makes (2^29 - 24 characters): a text value longer than that cannot
 * be delivered as a string.
 */
export const MAX_STRING_LENGTH = 2 ** 29 - 24;

/** A text value that decodes to more characters than a string holds. */
export class StringTooLongError extends RangeError {
  override name = "StringTooLongError";
}

/** Decodes UTF-8 longer than a string may be in bytes: fine if multi-byte characters fit. */
function decodeLong(bytes: Uint8Array, start: number, end: number): string {
  try {
    return utf8.decode(bytes.subarray(start, end));
  } catch {
    throw new StringTooLongError(
      `${
        end - start
      } bytes of UTF-8 make a string longer than the ${MAX_STRING_LENGTH} characters a JavaScript string holds, so it cannot be delivered`,
    );
  }
}

/**
 * Up to this length, ASCII is built by one `String.fromCharCode` call with the bytes as its
 * arguments: one flat string, no intermediate ones, at about a quarter of a TextDecoder call's
 * cost. (Appending character by character, as before, made a new string per character: about
 * 400 bytes of garbage per row of the bench table, most of the decoder's allocation.)
 */
const SHORT_ASCII_LIMIT = 12;
/**
 * Up to this length, ASCII is built in one `String.fromCharCode` call over a reused array: a flat
 * string at a third to a half of the cost of a TextDecoder call, which costs about the same
 * whatever the length; beyond it TextDecoder catches up (bench/RESULTS.md, 2026-12-06 21:10).
 */
const MEDIUM_ASCII_LIMIT = 64;
const charCodes: number[] = [];
const char = String.fromCharCode;

/**
 * Decodes UTF-8. ASCII up to {@linkcode MEDIUM_ASCII_LIMIT} bytes is built in JavaScript,
 * which costs less than a TextDecoder call, and always as one flat string (a concatenation
 * would leave a chain of cons strings that holds several times the memory). Anything else
 * goes to TextDecoder.
 */
export function decodeUtf8(bytes: Uint8Array, start: number, end: number): string {
  const length = end - start;
  if (length > MAX_STRING_LENGTH) {
    // UTF-8 never has fewer bytes than the string has characters: check before decoding,
    // and let a decoder error on a shorter input name the limit too.
    return decodeLong(bytes, start, end);
  }
  if (length <= SHORT_ASCII_LIMIT) {
    let high = 0;
    for (let i = start; i < end; i++) high |= bytes[i]!;
    if (high > 0x7f) return utf8.decode(bytes.subarray(start, end));
    return shortAscii(bytes, start, length);
  }
  if (length <= MEDIUM_ASCII_LIMIT) {
    charCodes.length = length;
    for (let i = 0; i < length; i++) {
      const byte = bytes[start + i]!;
      if (byte > 0x7f) return utf8.decode(bytes.subarray(start, end));
      charCodes[i] = byte;
    }
    return String.fromCharCode.apply(null, charCodes);
  }
  return utf8.decode(bytes.subarray(start, end));
}

/** `length` (at most {@linkcode SHORT_ASCII_LIMIT}) ASCII bytes from `s`, as one string. */
function shortAscii(b: Uint8Array, s: number, length: number): string {
  switch (length) {
    case 0:
      return "";
    case 1:
      return char(b[s]!);
    case 2:
      return char(b[s]!, b[s + 1]!);
    case 3:
      return char(b[s]!, b[s + 1]!, b[s + 2]!);
    case 4:
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!);
    case 5:
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!);
    case 6:
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!);
    case 7:
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!);
    case 8:
      // deno-fmt-ignore
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!);
    case 9:
      // deno-fmt-ignore
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!,
        b[s + 8]!);
    case 10:
      // deno-fmt-ignore
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!,
        b[s + 8]!, b[s + 9]!);
    case 11:
      // deno-fmt-ignore
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!,
        b[s + 8]!, b[s + 9]!, b[s + 10]!);
    default: // 12
      // deno-fmt-ignore
      return char(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!, b[s + 7]!,
        b[s + 8]!, b[s + 9]!, b[s + 10]!, b[s + 11]!);
  }
}
