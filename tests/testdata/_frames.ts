/**
 * Test-only byte builder: writes pgoutput messages, backend frames and
 * replication CopyData payloads straight from the PostgreSQL documentation
 * ("Logical Replication Message Formats", "Message Formats", "Streaming
 * Replication Protocol"). It shares no code with `decoder/`, so a mistake in
 * the decoder's writer or code table cannot hide the same mistake here.
 *
 * Integers are big-endian; LSNs and timestamps are `bigint`; timestamps are
 * PostgreSQL µs since 2000-01-01 UTC, as on the wire.
 *
 * @module
 */

const textEncoder = new TextEncoder();

/** A growable big-endian byte buffer. */
export class Bytes {
  #buffer = new Uint8Array(64);
  #view = new DataView(this.#buffer.buffer);
  #length = 0;

  #grow(n: number): number {
    const at = this.#length;
    if (at + n > this.#buffer.byteLength) {
      const bigger = new Uint8Array(Math.max(this.#buffer.byteLength * 2, at + n));
      bigger.set(this.#buffer);
      this.#buffer = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    this.#length = at + n;
    return at;
  }

  /** One byte; a one-character string is written as its char code. */
  byte(value: number | string): this {
    const code = typeof value === "string" ? value.charCodeAt(0) : value;
    const at = this.#grow(1);
    this.#view.setUint8(at, code);
    return this;
  }

  int16(value: number): this {
    const at = this.#grow(2);
    this.#view.setInt16(at, value);
    return this;
  }

  int32(value: number): this {
    const at = this.#grow(4);
    this.#view.setInt32(at, value);
    return this;
  }

  uint32(value: number): this {
    const at = this.#grow(4);
    this.#view.setUint32(at, value);
    return this;
  }

  int64(value: bigint): this {
    const at = this.#grow(8);
    this.#view.setBigInt64(at, value);
    return this;
  }

  uint64(value: bigint): this {
    const at = this.#grow(8);
    this.#view.setBigUint64(at, value);
    return this;
  }

  /** A NUL-terminated UTF-8 string. */
  cstring(value: string): this {
    return this.raw(textEncoder.encode(value)).byte(0);
  }

  raw(value: Uint8Array): this {
    const at = this.#grow(value.byteLength);
    this.#buffer.set(value, at);
    return this;
  }

  /** A copy of the bytes written so far. */
  done(): Uint8Array {
    return this.#buffer.slice(0, this.#length);
  }
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return textEncoder.encode(text);
}

// ---------------------------------------------------------------------------
// pgoutput

/** A tuple column: NULL, unchanged TOAST ("u"), text or binary. */
export type Value = null | "u" | { t: string } | { b: Uint8Array };

/** Optional xid, present only for messages inside a Stream Start … Stream Stop block. */
export interface XidOption {
  xid?: number;
}

function withXid(tag: string, options: XidOption | undefined): Bytes {
  const out = new Bytes().byte(tag);
  if (options?.xid !== undefined) out.uint32(options.xid);
  return out;
}

/** TupleData: `Int16 n`, then per column `'n'`, `'u'`, `'t' Int32 len bytes` or `'b' Int32 len bytes`. */
export function writeTuple(out: Bytes, tuple: Value[]): Bytes {
  out.int16(tuple.length);
  for (const value of tuple) {
    if (value === null) {
      out.byte("n");
    } else if (value === "u") {
      out.byte("u");
    } else if ("t" in value) {
      const bytes = utf8(value.t);
      out.byte("t").int32(bytes.byteLength).raw(bytes);
    } else {
      out.byte("b").int32(value.b.byteLength).raw(value.b);
    }
  }
  return out;
}

/** Begin `B`: `Int64 final_lsn, Int64 commit time, Int32 xid`. */
export function begin(fields: { finalLsn: bigint; commitTime: bigint; xid: number }): Uint8Array {
  return new Bytes().byte("B").uint64(fields.finalLsn).int64(fields.commitTime).uint32(fields.xid)
    .done();
}

/** Commit `C`: `Int8 flags, Int64 commit_lsn, Int64 end_lsn, Int64 commit time`. */
export function commit(
  fields: { flags?: number; commitLsn: bigint; endLsn: bigint; commitTime: bigint },
): Uint8Array {
  return new Bytes().byte("C").byte(fields.flags ?? 0).uint64(fields.commitLsn)
    .uint64(fields.endLsn).int64(fields.commitTime).done();
}

/** Origin `O`: `Int64 origin commit LSN, String name`. */
export function origin(fields: { lsn: bigint; name: string }): Uint8Array {
  return new Bytes().byte("O").uint64(fields.lsn).cstring(fields.name).done();
}

/** A column of a Relation message. */
export interface ColumnSpec {
  flags: number;
  name: string;
  typeOid: number;
  typmod: number;
}

/** Relation `R`: `[xid] Int32 oid, String ns, String name, Int8 identity, Int16 n, n × column`. */
export function relation(
  fields: {
    relid: number;
    namespace: string;
    name: string;
    /** `"d"`, `"n"`, `"f"`, `"i"`, or any other byte to test rejection. */
    replident: string | number;
    columns: ColumnSpec[];
  },
  options?: XidOption,
): Uint8Array {
  const out = withXid("R", options).uint32(fields.relid).cstring(fields.namespace)
    .cstring(fields.name).byte(fields.replident).int16(fields.columns.length);
  for (const column of fields.columns) {
    out.byte(column.flags).cstring(column.name).uint32(column.typeOid).int32(column.typmod);
  }
  return out.done();
}

/** Type `Y`: `[xid] Int32 type oid, String namespace, String name`. */
export function typeMsg(
  fields: { typeOid: number; namespace: string; name: string },
  options?: XidOption,
): Uint8Array {
  return withXid("Y", options).uint32(fields.typeOid).cstring(fields.namespace)
    .cstring(fields.name).done();
}

/** Insert `I`: `[xid] Int32 relid, 'N', TupleData`. */
export function insert(relid: number, tuple: Value[], options?: XidOption): Uint8Array {
  return writeTuple(withXid("I", options).uint32(relid).byte("N"), tuple).done();
}

/** The old row of an Update or Delete: key columns (`K`) or the whole row (`O`). */
export interface OldTuple {
  kind: "K" | "O";
  tuple: Value[];
}

/** Update `U`: `[xid] Int32 relid, ['K'|'O' TupleData], 'N' TupleData`. */
export function update(
  relid: number,
  tuples: { old?: OldTuple; new: Value[] },
  options?: XidOption,
): Uint8Array {
  const out = withXid("U", options).uint32(relid);
  if (tuples.old !== undefined) writeTuple(out.byte(tuples.old.kind), tuples.old.tuple);
  return writeTuple(out.byte("N"), tuples.new).done();
}

/** Delete `D`: `[xid] Int32 relid, 'K'|'O', TupleData`. */
export function deleteMsg(relid: number, old: OldTuple, options?: XidOption): Uint8Array {
  return writeTuple(withXid("D", options).uint32(relid).byte(old.kind), old.tuple).done();
}

/** Truncate `T`: `[xid] Int32 n, Int8 options (1 cascade, 2 restart identity), n × Int32 oid`. */
export function truncate(relids: number[], flags: number, options?: XidOption): Uint8Array {
  const out = withXid("T", options).int32(relids.length).byte(flags);
  for (const relid of relids) out.uint32(relid);
  return out.done();
}

/** Message `M`: `[xid] Int8 flags, Int64 lsn, String prefix, Int32 n, Byte[n]`. */
export function message(
  fields: { transactional: boolean; lsn: bigint; prefix: string; content: Uint8Array },
  options?: XidOption,
): Uint8Array {
  return withXid("M", options).byte(fields.transactional ? 1 : 0).uint64(fields.lsn)
    .cstring(fields.prefix).int32(fields.content.byteLength).raw(fields.content).done();
}

/** Stream Start `S`: `Int32 xid, Int8 first segment`. */
export function streamStart(xid: number, firstSegment: boolean): Uint8Array {
  return new Bytes().byte("S").uint32(xid).byte(firstSegment ? 1 : 0).done();
}

/** Stream Stop `E`: no fields. */
export function streamStop(): Uint8Array {
  return new Bytes().byte("E").done();
}

/** Stream Commit `c`: `Int32 xid, Int8 flags, Int64 commit_lsn, Int64 end_lsn, Int64 time`. */
export function streamCommit(
  fields: { xid: number; flags?: number; commitLsn: bigint; endLsn: bigint; commitTime: bigint },
): Uint8Array {
  return new Bytes().byte("c").uint32(fields.xid).byte(fields.flags ?? 0)
    .uint64(fields.commitLsn).uint64(fields.endLsn).int64(fields.commitTime).done();
}

/** Stream Abort `A`: `Int32 xid, Int32 subxid`, plus `Int64 abort_lsn, Int64 time` when parallel. */
export function streamAbort(
  xid: number,
  subXid: number,
  options?: { parallel?: { abortLsn: bigint; abortTime: bigint } },
): Uint8Array {
  const out = new Bytes().byte("A").uint32(xid).uint32(subXid);
  if (options?.parallel !== undefined) {
    out.uint64(options.parallel.abortLsn).int64(options.parallel.abortTime);
  }
  return out.done();
}

/** Fields shared by Begin Prepare, Prepare and Stream Prepare. */
export interface PrepareFields {
  flags?: number;
  prepareLsn: bigint;
  endLsn: bigint;
  prepareTime: bigint;
  xid: number;
  gid: string;
}

/** Begin Prepare `b`: `Int64 prepare_lsn, Int64 end_lsn, Int64 time, Int32 xid, String gid`. */
export function beginPrepare(fields: PrepareFields): Uint8Array {
  return new Bytes().byte("b").uint64(fields.prepareLsn).uint64(fields.endLsn)
    .int64(fields.prepareTime).uint32(fields.xid).cstring(fields.gid).done();
}

function prepareLike(tag: string, fields: PrepareFields): Uint8Array {
  return new Bytes().byte(tag).byte(fields.flags ?? 0).uint64(fields.prepareLsn)
    .uint64(fields.endLsn).int64(fields.prepareTime).uint32(fields.xid).cstring(fields.gid)
    .done();
}

/** Prepare `P`: `Int8 flags, Int64 prepare_lsn, Int64 end_lsn, Int64 time, Int32 xid, String gid`. */
export function prepare(fields: PrepareFields): Uint8Array {
  return prepareLike("P", fields);
}

/** Stream Prepare `p`: same layout as Prepare. */
export function streamPrepare(fields: PrepareFields): Uint8Array {
  return prepareLike("p", fields);
}

/** Commit Prepared `K`: `Int8 flags, Int64 commit_lsn, Int64 end_lsn, Int64 time, Int32 xid, String gid`. */
export function commitPrepared(
  fields: {
    flags?: number;
    commitLsn: bigint;
    endLsn: bigint;
    commitTime: bigint;
    xid: number;
    gid: string;
  },
): Uint8Array {
  return new Bytes().byte("K").byte(fields.flags ?? 0).uint64(fields.commitLsn)
    .uint64(fields.endLsn).int64(fields.commitTime).uint32(fields.xid).cstring(fields.gid)
    .done();
}

/**
 * Rollback Prepared `r`: `Int8 flags, Int64 prepare end_lsn, Int64 rollback end_lsn,
 * Int64 prepare time, Int64 rollback time, Int32 xid, String gid`.
 */
export function rollbackPrepared(
  fields: {
    flags?: number;
    prepareEndLsn: bigint;
    rollbackEndLsn: bigint;
    prepareTime: bigint;
    rollbackTime: bigint;
    xid: number;
    gid: string;
  },
): Uint8Array {
  return new Bytes().byte("r").byte(fields.flags ?? 0).uint64(fields.prepareEndLsn)
    .uint64(fields.rollbackEndLsn).int64(fields.prepareTime).int64(fields.rollbackTime)
    .uint32(fields.xid).cstring(fields.gid).done();
}

// ---------------------------------------------------------------------------
// Backend frames and replication CopyData payloads

/** A backend frame: `Byte1 code, Int32 length (counting itself), body`. */
export function backendFrame(
  code: number | string,
  body: Uint8Array = new Uint8Array(0),
): Uint8Array {
  return new Bytes().byte(code).int32(body.byteLength + 4).raw(body).done();
}

/** A CopyData (`d`) frame around a replication payload. */
export function copyData(payload: Uint8Array): Uint8Array {
  return backendFrame("d", payload);
}

/** XLogData payload: `'w', Int64 walStart, Int64 walEnd, Int64 sendTime, Byte[n]`. */
export function xlogData(
  walStart: bigint,
  walEnd: bigint,
  sendTime: bigint,
  payload: Uint8Array,
): Uint8Array {
  return new Bytes().byte("w").uint64(walStart).uint64(walEnd).int64(sendTime).raw(payload)
    .done();
}

/** Primary keepalive payload: `'k', Int64 walEnd, Int64 sendTime, Byte1 replyRequested`. */
export function keepalive(walEnd: bigint, sendTime: bigint, reply: boolean): Uint8Array {
  return new Bytes().byte("k").uint64(walEnd).int64(sendTime).byte(reply ? 1 : 0).done();
}

/** ErrorResponse / NoticeResponse body: `(Byte1 field, String value)*, Byte1 0`. */
export function noticeBody(fields: [string, string][]): Uint8Array {
  const out = new Bytes();
  for (const [code, value] of fields) out.byte(code).cstring(value);
  return out.byte(0).done();
}

/** A RowDescription field. */
export interface FieldSpec {
  name: string;
  tableOid: number;
  columnNumber: number;
  typeOid: number;
  typeSize: number;
  typeModifier: number;
  format: number;
}

/** RowDescription body: `Int16 n`, n × (String, Int32, Int16, Int32, Int16, Int32, Int16). */
export function rowDescriptionBody(fields: FieldSpec[]): Uint8Array {
  const out = new Bytes().int16(fields.length);
  for (const field of fields) {
    out.cstring(field.name).uint32(field.tableOid).int16(field.columnNumber)
      .uint32(field.typeOid).int16(field.typeSize).int32(field.typeModifier).int16(field.format);
  }
  return out.done();
}

/** DataRow body: `Int16 n`, n × (Int32 len or -1 for NULL, bytes). */
export function dataRowBody(values: (string | null)[]): Uint8Array {
  const out = new Bytes().int16(values.length);
  for (const value of values) {
    if (value === null) {
      out.int32(-1);
    } else {
      const bytes = utf8(value);
      out.int32(bytes.byteLength).raw(bytes);
    }
  }
  return out.done();
}

/** Authentication body: `Int32 code`, then the code's data. */
export function authenticationBody(code: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  return new Bytes().int32(code).raw(data).done();
}
