import type { Lsn } from "./lsn.ts";

const utf8 = new TextEncoder();

/**
 * Builds one frontend message. `flush(code)` prefixes the type byte and the
 * Int32 length (which counts itself) and returns the bytes.
 */
export class BufferWriter {
  #bytes: Uint8Array;
  #view: DataView;
  #offset = 5; // room for the type byte and the length

  constructor(size = 256) {
    this.#bytes = new Uint8Array(size);
    this.#view = new DataView(this.#bytes.buffer);
  }

  #ensure(n: number): number {
    const at = this.#offset;
    if (at + n > this.#bytes.byteLength) {
      const grown = new Uint8Array(Math.max(this.#bytes.byteLength * 2, at + n));
      grown.set(this.#bytes);
      this.#bytes = grown;
      this.#view = new DataView(grown.buffer);
    }
    this.#offset = at + n;
    return at;
  }

  uint8(value: number): this {
    const at = this.#ensure(1); // may swap in a larger buffer: take it after
    this.#bytes[at] = value;
    return this;
  }

  int16(value: number): this {
    const at = this.#ensure(2);
    this.#view.setInt16(at, value);
    return this;
  }

  int32(value: number): this {
    const at = this.#ensure(4);
    this.#view.setInt32(at, value);
    return this;
  }

  int64(value: bigint): this {
    const at = this.#ensure(8);
    this.#view.setBigInt64(at, value);
    return this;
  }

  lsn(value: Lsn): this {
    const at = this.#ensure(8);
    this.#view.setBigUint64(at, value);
    return this;
  }

  /** A NUL-terminated UTF-8 string. */
  cstring(value: string): this {
    this.bytes(utf8.encode(value));
    return this.uint8(0);
  }

  bytes(value: Uint8Array): this {
    const at = this.#ensure(value.byteLength); // may swap in a larger buffer: take it after
    this.#bytes.set(value, at);
    return this;
  }

  /**
   * Finishes the message. With a type byte, the result starts with it; with `null`
   * (StartupMessage, SSLRequest) the result starts with the length.
   */
  flush(code: number | null): Uint8Array {
    const end = this.#offset;
    let start = 0;
    if (code === null) {
      start = 1;
    } else {
      this.#bytes[0] = code;
    }
    this.#view.setInt32(1, end - 1);
    const out = this.#bytes.slice(start, end);
    this.#offset = 5;
    return out;
  }
}
