/**
 * Backend message framing and parsing. Pure: chunks of bytes in, frames and
 * typed messages out.
 *
 * A frame is `Byte1 code, Int32 length (counting itself), Byte[length-4] body`;
 * frames may be split across chunks or several may share one chunk.
 *
 * @module
 */

import { BufferReader } from "./_reader.ts";
import { AuthCode, BackendCode } from "./codes.ts";
import { DecodeError, errorMessage, type PostgresNotice } from "../errors.ts";

/** One backend message: its type byte and body (a view; the framer never reuses memory). */
export interface Frame {
  code: number;
  body: Uint8Array;
}

/**
 * Receives one whole frame from {@linkcode FrameParser.each}: its type byte, and its body as
 * `bytes` from `start` to `end` (`bytes` is the chunk, or the frame assembled across chunks).
 */
export type FrameHandler = (code: number, bytes: Uint8Array, start: number, end: number) => void;

/**
 * The default limit of a frame's size. PostgreSQL builds a message in one buffer of at most
 * 1 GiB - 1 byte, so a bigger frame is corruption; a smaller limit bounds what a peer can
 * make Spillway hold.
 */
export const MAX_FRAME_BYTES = 2 ** 30 + 64;

/** The bytes of a too-large frame's start kept for its error (enough for an XLogData header). */
const HEAD_BYTES = 64;

/**
 * A frame announced larger than the parser's limit. `head` holds the frame's first bytes
 * that had arrived (up to 64), so a caller can tell what it was.
 */
export class FrameTooLargeError extends DecodeError {
  override name = "FrameTooLargeError";
  /** The frame's whole size, from its length field. */
  readonly size: number;
  readonly limit: number;
  readonly head: Uint8Array;

  constructor(size: number, limit: number, head: Uint8Array) {
    super("backend frame", 0, `a frame of ${size} bytes is larger than the limit of ${limit}`);
    this.size = size;
    this.limit = limit;
    this.head = head.slice(0, HEAD_BYTES);
  }
}

/**
 * Splits a byte stream into frames.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameParser } from "./backend.ts";
 * const parser = new FrameParser();
 * const frames = parser.push(new Uint8Array([0x5a, 0, 0, 0, 5, 0x49]));
 * assert(frames.length === 1 && frames[0]!.code === 0x5a);
 * ```
 */
export class FrameParser {
  /** The largest frame accepted (code byte and length field included). */
  readonly maxFrameBytes: number;

  constructor(options: { maxFrameBytes?: number } = {}) {
    this.maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
  }

  /**
   * The frame being assembled across chunks (its first bytes, then more as they come), or
   * `null`. It grows by doubling as bytes arrive, never to more than the frame's size: each
   * byte is copied a bounded number of times, and a peer that announces a huge frame gets
   * memory only for what it has sent.
   */
  #partial: Uint8Array | null = null;
  /** Bytes of `#partial` received so far. */
  #filled = 0;
  /** What the parser failed with; every later push throws it. */
  #failure: DecodeError | null = null;

  /** Bytes received but not yet part of a whole frame. */
  get pendingBytes(): number {
    return this.#filled;
  }

  /** Memory held for the frame being assembled: at most twice {@linkcode FrameParser.pendingBytes}, plus 64 KiB. */
  get reservedBytes(): number {
    return this.#partial?.byteLength ?? 0;
  }

  /**
   * The error the parser failed with, or `null`: a frame over the limit (a
   * {@linkcode FrameTooLargeError}) or an invalid length. Once failed, every push throws
   * it, since what follows the bad frame's header cannot be told apart from frames. Set
   * after a push that returned frames when the bad frame came after them in the chunk: the
   * caller, having handled those, should fail with it then rather than wait for more bytes.
   */
  get failure(): DecodeError | null {
    return this.#failure;
  }

  /**
   * Adds a chunk and returns every frame it completes. A frame over the limit throws a
   * {@linkcode FrameTooLargeError}; when whole frames came before it in the chunk, they are
   * returned first and the error is {@linkcode FrameParser.failure} (and thrown by the next
   * call), so a caller sees everything before it (the Relation message of the change that is
   * too large, say). After either, the parser is failed: every later call throws the error.
   */
  push(chunk: Uint8Array): Frame[] {
    if (this.#failure !== null) throw this.#failure;
    const frames: Frame[] = [];
    try {
      this.#parse(chunk, (code, bytes, start, end) => {
        frames.push({ code, body: bytes.subarray(start, end) });
      });
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      this.#failed(error);
      if (frames.length === 0 || !(error instanceof FrameTooLargeError)) throw error;
    }
    return frames;
  }

  /**
   * Adds a chunk and hands each frame it completes to `onFrame`, with no object or view made
   * per frame (the replication stream's path). A frame over the limit, or a bad length, throws
   * once the frames before it were handed on; the parser is failed from then on, as with
   * {@linkcode FrameParser.push}. A handler that throws ends the chunk there: its error passes
   * through, and as the rest of the chunk is lost the parser is failed too (with that error when
   * it is a DecodeError, else with one of its own that says so), since it no longer knows where
   * the next frame starts.
   */
  each(chunk: Uint8Array, onFrame: FrameHandler): void {
    if (this.#failure !== null) throw this.#failure;
    try {
      this.#parse(chunk, onFrame);
    } catch (error) {
      this.#failed(
        error instanceof DecodeError ? error : new DecodeError(
          "backend frame",
          0,
          `a frame's handler failed (${
            errorMessage(error)
          }), so the rest of its chunk was not read`,
        ),
      );
      throw error;
    }
  }

  #failed(error: DecodeError): void {
    this.#failure = error;
    this.#partial = null;
    this.#filled = 0;
  }

  /** Hands `onFrame` the frames `chunk` completes; keeps the rest as a partial frame. */
  #parse(chunk: Uint8Array, onFrame: FrameHandler): void {
    let offset = 0;
    if (this.#partial !== null) {
      offset = this.#fill(chunk);
      const frame = this.#complete();
      if (frame === null) return; // the chunk went into the frame, which needs more
      onFrame(frame[0]!, frame, 5, frame.byteLength);
    }
    // Whole frames in the chunk are handed on in place: no copy.
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (chunk.byteLength - offset >= 5) {
      const size = frameSize(view.getInt32(offset + 1), offset);
      // The head is cut only for the error: a view per frame costs the hot path.
      if (size > this.maxFrameBytes) this.#limit(size, chunk.subarray(offset, offset + HEAD_BYTES));
      const end = offset + size;
      if (end > chunk.byteLength) break;
      onFrame(chunk[offset]!, chunk, offset + 5, end);
      offset = end;
    }
    if (offset < chunk.byteLength) this.#start(chunk.subarray(offset));
  }

  /** Starts assembling a frame from its first bytes (the tail of a chunk). */
  #start(head: Uint8Array): void {
    const size = head.byteLength >= 5 ? this.#sizeOf(head) : 5;
    if (head.byteLength >= 5) this.#limit(size, head);
    this.#partial = new Uint8Array(Math.min(size, Math.max(head.byteLength * 2, 64 * 1024)));
    this.#partial.set(head);
    this.#filled = head.byteLength;
  }

  /** Copies the start of `chunk` into the frame being assembled, up to its end; returns the bytes taken. */
  #fill(chunk: Uint8Array): number {
    let taken = 0;
    if (this.#filled < 5) {
      // The length is not known yet: complete the header first.
      taken = Math.min(5 - this.#filled, chunk.byteLength);
      this.#copy(chunk.subarray(0, taken), 5);
      if (this.#filled < 5) return taken;
    }
    const size = this.#sizeOf(this.#partial!);
    if (taken > 0) {
      // The header was just completed: check the size before anything is reserved for it.
      const head = new Uint8Array(Math.min(HEAD_BYTES, 5 + chunk.byteLength - taken));
      head.set(this.#partial!.subarray(0, 5));
      head.set(chunk.subarray(taken, taken + head.byteLength - 5), 5);
      this.#limit(size, head);
    }
    const more = Math.min(size - this.#filled, chunk.byteLength - taken);
    this.#copy(chunk.subarray(taken, taken + more), size);
    return taken + more;
  }

  /**
   * The frame being assembled (code and length included) once it is whole (the parser then
   * lets go of it), else `null`.
   */
  #complete(): Uint8Array | null {
    const partial = this.#partial!;
    if (this.#filled < 5 || this.#filled < this.#sizeOf(partial)) return null;
    const frame = partial.subarray(0, this.#filled);
    this.#partial = null; // a handed-on frame's memory is never written again
    this.#filled = 0;
    return frame;
  }

  /** Appends `bytes` to the partial frame, growing it by doubling up to `size`. */
  #copy(bytes: Uint8Array, size: number): void {
    let partial = this.#partial!;
    const needed = this.#filled + bytes.byteLength;
    if (needed > partial.byteLength) {
      const grown = new Uint8Array(Math.min(size, Math.max(needed, partial.byteLength * 2)));
      grown.set(partial.subarray(0, this.#filled));
      partial = this.#partial = grown;
    }
    partial.set(bytes, this.#filled);
    this.#filled = needed;
  }

  /** Throws a FrameTooLargeError when `size` is over the limit (`push` then fails the parser). */
  #limit(size: number, head: Uint8Array): void {
    if (size > this.maxFrameBytes) throw new FrameTooLargeError(size, this.maxFrameBytes, head);
  }

  /** A frame's whole size from the length field of its first five bytes in `bytes`. */
  #sizeOf(bytes: Uint8Array): number {
    return frameSize(new DataView(bytes.buffer, bytes.byteOffset).getInt32(1), 0);
  }
}

/** The whole size of a frame (code byte included) from its length field, or a DecodeError. */
function frameSize(length: number, offset: number): number {
  if (length < 4) {
    throw new DecodeError("backend frame", offset, `invalid length ${length}`);
  }
  return 1 + length;
}

const reader = new BufferReader();

/** An Authentication ('R') request. */
export type AuthRequest =
  | { kind: "ok" }
  | { kind: "cleartext" }
  | { kind: "md5"; salt: Uint8Array }
  | { kind: "sasl"; mechanisms: string[] }
  | { kind: "sasl-continue"; data: string }
  | { kind: "sasl-final"; data: string }
  | { kind: "unsupported"; code: number };

/** Authentication: `Int32 code`, then a salt, mechanism list or SASL data. */
export function parseAuthentication(body: Uint8Array): AuthRequest {
  reader.reset(body, "Authentication");
  const code = reader.int32("auth code");
  switch (code) {
    case AuthCode.Ok:
      return { kind: "ok" };
    case AuthCode.CleartextPassword:
      return { kind: "cleartext" };
    case AuthCode.MD5Password:
      return { kind: "md5", salt: reader.bytes(4, "salt").slice() };
    case AuthCode.SASL: {
      const mechanisms: string[] = [];
      for (;;) {
        const mechanism = reader.cstring("SASL mechanism");
        if (mechanism === "") break;
        mechanisms.push(mechanism);
      }
      return { kind: "sasl", mechanisms };
    }
    case AuthCode.SASLContinue:
      return { kind: "sasl-continue", data: reader.utf8(reader.remaining, "SASL data") };
    case AuthCode.SASLFinal:
      return { kind: "sasl-final", data: reader.utf8(reader.remaining, "SASL data") };
    default:
      return { kind: "unsupported", code };
  }
}

/** ParameterStatus: `String name, String value`. */
export function parseParameterStatus(body: Uint8Array): [string, string] {
  reader.reset(body, "ParameterStatus");
  return [reader.cstring("name"), reader.cstring("value")];
}

/** BackendKeyData: `Int32 pid, Int32 secret` (protocol 3.0). */
export function parseBackendKeyData(body: Uint8Array): { pid: number; secret: number } {
  reader.reset(body, "BackendKeyData");
  return { pid: reader.int32("pid"), secret: reader.int32("secret") };
}

const NOTICE_FIELDS: Record<string, keyof PostgresNotice> = {
  V: "severity",
  C: "code",
  M: "message",
  D: "detail",
  H: "hint",
  P: "position",
  W: "where",
  s: "schema",
  t: "table",
  c: "column",
  n: "constraint",
};

/** ErrorResponse / NoticeResponse: `(Byte1 field, String value)*`, then a zero byte. */
export function parseNotice(body: Uint8Array): PostgresNotice {
  reader.reset(body, "ErrorResponse");
  const notice: PostgresNotice = { severity: "", code: "XX000", message: "" };
  let localizedSeverity = "ERROR";
  for (;;) {
    const field = reader.uint8("field type");
    if (field === 0) break;
    const value = reader.cstring("field value");
    const letter = String.fromCharCode(field);
    if (letter === "S") localizedSeverity = value;
    const key = NOTICE_FIELDS[letter];
    if (key !== undefined) notice[key] = value;
  }
  // 'V' (never translated, 9.6+) wins over 'S' (translated).
  if (notice.severity === "") notice.severity = localizedSeverity;
  return notice;
}

/** A column of a RowDescription. */
export interface FieldDescription {
  name: string;
  tableOid: number;
  columnNumber: number;
  typeOid: number;
  typeSize: number;
  typeModifier: number;
  format: number;
}

/** RowDescription: `Int16 n`, n × (String name, Int32 table, Int16 attnum, Int32 type, Int16 size, Int32 typmod, Int16 format). */
export function parseRowDescription(body: Uint8Array): FieldDescription[] {
  reader.reset(body, "RowDescription");
  const count = reader.int16("field count");
  const fields: FieldDescription[] = [];
  for (let i = 0; i < count; i++) {
    fields.push({
      name: reader.cstring("field name"),
      tableOid: reader.uint32("table oid"),
      columnNumber: reader.int16("column number"),
      typeOid: reader.uint32("type oid"),
      typeSize: reader.int16("type size"),
      typeModifier: reader.int32("type modifier"),
      format: reader.int16("format"),
    });
  }
  return fields;
}

/** DataRow: `Int16 n`, n × (Int32 len (-1 = NULL), Byte[len]); values as text. */
export function parseDataRow(body: Uint8Array): (string | null)[] {
  reader.reset(body, "DataRow");
  const count = reader.int16("column count");
  const values: (string | null)[] = [];
  for (let i = 0; i < count; i++) {
    const length = reader.int32("value length");
    values.push(length === -1 ? null : reader.utf8(length, "value"));
  }
  return values;
}

/** CommandComplete: `String tag`. */
export function parseCommandComplete(body: Uint8Array): string {
  reader.reset(body, "CommandComplete");
  return reader.cstring("command tag");
}

/** ReadyForQuery: `Byte1 status` ('I' idle, 'T' in transaction, 'E' failed transaction). */
export function parseReadyForQuery(body: Uint8Array): string {
  reader.reset(body, "ReadyForQuery");
  return String.fromCharCode(reader.uint8("transaction status"));
}

/** A readable name for a backend message code, for errors. */
export function backendMessageName(code: number): string {
  for (const [name, value] of Object.entries(BackendCode)) {
    if (value === code) return name;
  }
  return `0x${code.toString(16).padStart(2, "0")}`;
}
