import { DecodeError } from "./errors.ts";
import type { Lsn } from "./lsn.ts";

const utf8 = new TextDecoder("utf-8");

/**
 * A cursor over one message's bytes. Every read checks bounds and throws a
 * {@linkcode DecodeError} naming `messageType` and the offset.
 */
export class BufferReader {
  #bytes: Uint8Array;
  #view: DataView;
  offset = 0;
  /** Name of the message being read, for error messages. */
  messageType = "message";

  constructor(bytes: Uint8Array = new Uint8Array(0)) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Points the reader at new bytes, offset 0. */
  reset(bytes: Uint8Array, messageType: string): void {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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
    return this.#view.getInt16(this.#need(2, what));
  }

  int32(what = "Int32"): number {
    return this.#view.getInt32(this.#need(4, what));
  }

  uint32(what = "UInt32"): number {
    return this.#view.getUint32(this.#need(4, what));
  }

  int64(what = "Int64"): bigint {
    return this.#view.getBigInt64(this.#need(8, what));
  }

  lsn(what = "LSN"): Lsn {
    return this.#view.getBigUint64(this.#need(8, what)) as Lsn;
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

  /** `n` bytes decoded as UTF-8. */
  utf8(n: number, what = "text"): string {
    if (n < 0) this.fail(`negative length ${n} for ${what}`, this.offset - 4);
    const at = this.#need(n, what);
    return decodeUtf8(this.#bytes, at, at + n);
  }

  /** Fails unless every byte has been read. */
  expectEnd(): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} unexpected trailing bytes`);
  }
}

/** Decodes UTF-8; short ASCII runs skip TextDecoder, which costs more than the loop. */
export function decodeUtf8(bytes: Uint8Array, start: number, end: number): string {
  const length = end - start;
  if (length < 48) {
    let out = "";
    for (let i = start; i < end; i++) {
      const byte = bytes[i]!;
      if (byte > 0x7f) return utf8.decode(bytes.subarray(start, end));
      out += String.fromCharCode(byte);
    }
    return out;
  }
  return utf8.decode(bytes.subarray(start, end));
}
