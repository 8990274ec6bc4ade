/**
 * The pgoutput logical decoding format, protocol versions 1–4. Pure: bytes in,
 * typed messages out; no I/O and no clocks.
 *
 * Layouts follow the PostgreSQL "Logical Replication Message Formats" page and
 * `src/backend/replication/logical/proto.c`. Every integer is big-endian;
 * timestamps are converted to µs since the Unix epoch.
 *
 * @module
 */

import { BufferReader } from "./_reader.ts";
import { PgoutputCode, TupleCode } from "./codes.ts";
import { DecodeError } from "../errors.ts";
import { type Lsn, pgMicrosToUnixMicros } from "./lsn.ts";

/** Marks a TOASTed column whose value the server did not send because it did not change ('u'). */
export const UNCHANGED_TOAST: unique symbol = Symbol.for("spillway.unchanged-toast");

/** One column of a tuple: NULL ('n'), unchanged TOAST ('u'), text ('t') or binary ('b'). */
export type TupleValue = null | typeof UNCHANGED_TOAST | string | Uint8Array;

/** The columns of one row, in the order of the relation's columns. */
export type TupleData = TupleValue[];

/** Versions of the pgoutput protocol. */
export type ProtoVersion = 1 | 2 | 3 | 4;

/** Begin: `Int64 final_lsn, Int64 commit timestamp, Int32 xid`. */
export interface BeginMessage {
  type: "Begin";
  /** Start of the commit record, equal to the Commit's `commitLsn`. */
  finalLsn: Lsn;
  /** µs since the Unix epoch. */
  commitTime: bigint;
  xid: number;
}

/** Commit: `Int8 flags, Int64 commit_lsn, Int64 end_lsn, Int64 commit timestamp`. */
export interface CommitMessage {
  type: "Commit";
  flags: number;
  commitLsn: Lsn;
  /** End of the commit record: the position to confirm once the transaction is durable. */
  endLsn: Lsn;
  commitTime: bigint;
}

/** Origin: `Int64 origin commit LSN, String origin name`. */
export interface OriginMessage {
  type: "Origin";
  originLsn: Lsn;
  originName: string;
}

/** One column in a Relation message. */
export interface RelationColumn {
  /** Bit 0 set: the column is part of the replica identity key. */
  flags: number;
  isKey: boolean;
  name: string;
  typeOid: number;
  /** Type modifier (`atttypmod`); -1 when none. */
  typeModifier: number;
}

/** Replica identity: default, nothing, full, index. */
export type ReplicaIdentity = "d" | "n" | "f" | "i";

/**
 * Relation: `[Int32 xid] Int32 oid, String namespace, String name, Int8 replica identity,
 * Int16 ncols, ncols × (Int8 flags, String name, Int32 type oid, Int32 typmod)`.
 */
export interface RelationMessage {
  type: "Relation";
  xid?: number;
  relationId: number;
  /** The schema; the wire's empty string (pg_catalog) is returned as `"pg_catalog"`. */
  namespace: string;
  relationName: string;
  replicaIdentity: ReplicaIdentity;
  columns: RelationColumn[];
}

/** Type: `[Int32 xid] Int32 type oid, String namespace, String name`. */
export interface TypeMessage {
  type: "Type";
  xid?: number;
  typeOid: number;
  namespace: string;
  typeName: string;
}

/** Insert: `[Int32 xid] Int32 relation oid, Byte1 'N', TupleData`. */
export interface InsertMessage {
  type: "Insert";
  xid?: number;
  relationId: number;
  newTuple: TupleData;
}

/** Which old row an Update or Delete carries: key columns ('K') or the whole row ('O'). */
export type OldTupleKind = "key" | "old";

/** Update: `[Int32 xid] Int32 relation oid, ['K'|'O' TupleData], 'N' TupleData`. */
export interface UpdateMessage {
  type: "Update";
  xid?: number;
  relationId: number;
  oldTupleKind: OldTupleKind | null;
  oldTuple: TupleData | null;
  newTuple: TupleData;
}

/** Delete: `[Int32 xid] Int32 relation oid, 'K'|'O' TupleData`. */
export interface DeleteMessage {
  type: "Delete";
  xid?: number;
  relationId: number;
  oldTupleKind: OldTupleKind;
  oldTuple: TupleData;
}

/** Truncate: `[Int32 xid] Int32 nrelations, Int8 options, nrelations × Int32 oid`. */
export interface TruncateMessage {
  type: "Truncate";
  xid?: number;
  cascade: boolean;
  restartIdentity: boolean;
  relationIds: number[];
}

/** Logical decoding message: `[Int32 xid] Int8 flags, Int64 lsn, String prefix, Int32 n, Byte[n]`. */
export interface LogicalMessage {
  type: "Message";
  xid?: number;
  transactional: boolean;
  lsn: Lsn;
  prefix: string;
  /** Raw bytes, never converted between encodings. */
  content: Uint8Array;
}

/** Stream Start: `Int32 xid, Int8 first segment`. */
export interface StreamStartMessage {
  type: "StreamStart";
  xid: number;
  firstSegment: boolean;
}

/** Stream Stop: no fields. */
export interface StreamStopMessage {
  type: "StreamStop";
}

/** Stream Commit: `Int32 xid, Int8 flags, Int64 commit_lsn, Int64 end_lsn, Int64 commit timestamp`. */
export interface StreamCommitMessage {
  type: "StreamCommit";
  xid: number;
  flags: number;
  commitLsn: Lsn;
  endLsn: Lsn;
  commitTime: bigint;
}

/**
 * Stream Abort: `Int32 xid, Int32 subxid`, then with `streaming=parallel` (v4)
 * `Int64 abort_lsn, Int64 abort timestamp`.
 */
export interface StreamAbortMessage {
  type: "StreamAbort";
  xid: number;
  subXid: number;
  abortLsn?: Lsn;
  abortTime?: bigint;
}

/** Begin Prepare: `Int64 prepare_lsn, Int64 end_lsn, Int64 prepare timestamp, Int32 xid, String gid`. */
export interface BeginPrepareMessage {
  type: "BeginPrepare";
  prepareLsn: Lsn;
  endLsn: Lsn;
  prepareTime: bigint;
  xid: number;
  gid: string;
}

/** Prepare / Stream Prepare: `Int8 flags, Int64 prepare_lsn, Int64 end_lsn, Int64 time, Int32 xid, String gid`. */
export interface PrepareMessage {
  type: "Prepare" | "StreamPrepare";
  flags: number;
  prepareLsn: Lsn;
  endLsn: Lsn;
  prepareTime: bigint;
  xid: number;
  gid: string;
}

/** Commit Prepared: `Int8 flags, Int64 commit_lsn, Int64 end_lsn, Int64 time, Int32 xid, String gid`. */
export interface CommitPreparedMessage {
  type: "CommitPrepared";
  flags: number;
  commitLsn: Lsn;
  endLsn: Lsn;
  commitTime: bigint;
  xid: number;
  gid: string;
}

/**
 * Rollback Prepared: `Int8 flags, Int64 prepare end_lsn, Int64 rollback end_lsn,
 * Int64 prepare time, Int64 rollback time, Int32 xid, String gid`.
 */
export interface RollbackPreparedMessage {
  type: "RollbackPrepared";
  flags: number;
  prepareEndLsn: Lsn;
  rollbackEndLsn: Lsn;
  prepareTime: bigint;
  rollbackTime: bigint;
  xid: number;
  gid: string;
}

/** Every pgoutput message. */
export type PgoutputMessage =
  | BeginMessage
  | CommitMessage
  | OriginMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalMessage
  | StreamStartMessage
  | StreamStopMessage
  | StreamCommitMessage
  | StreamAbortMessage
  | BeginPrepareMessage
  | PrepareMessage
  | CommitPreparedMessage
  | RollbackPreparedMessage;

const MESSAGE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(PgoutputCode).map(([name, code]) => [code, name]),
);

/** The lowest protocol version in which each message may appear. */
const MIN_VERSION: Record<number, ProtoVersion> = {
  [PgoutputCode.StreamStart]: 2,
  [PgoutputCode.StreamStop]: 2,
  [PgoutputCode.StreamCommit]: 2,
  [PgoutputCode.StreamAbort]: 2,
  [PgoutputCode.BeginPrepare]: 3,
  [PgoutputCode.Prepare]: 3,
  [PgoutputCode.CommitPrepared]: 3,
  [PgoutputCode.RollbackPrepared]: 3,
  [PgoutputCode.StreamPrepare]: 3,
};

/** Options of {@linkcode PgoutputDecoder}. */
export interface PgoutputDecoderOptions {
  /** The negotiated `proto_version`; messages of later versions are rejected. */
  protoVersion: ProtoVersion;
}

/**
 * Decodes pgoutput messages, one XLogData payload at a time. It keeps one bit of
 * state: whether it is inside a Stream Start … Stream Stop block, which decides
 * whether messages carry an xid.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PgoutputDecoder } from "./pgoutput.ts";
 * const decoder = new PgoutputDecoder({ protoVersion: 1 });
 * const begin = new Uint8Array(21);
 * begin[0] = 0x42; // 'B'
 * begin[20] = 7; // xid
 * const message = decoder.decode(begin);
 * assert(message.type === "Begin" && message.xid === 7);
 * ```
 */
export class PgoutputDecoder {
  readonly protoVersion: ProtoVersion;
  #inStreamBlock = false;
  #reader = new BufferReader();

  constructor(options: PgoutputDecoderOptions) {
    this.protoVersion = options.protoVersion;
  }

  /** True between Stream Start and Stream Stop. */
  get inStreamBlock(): boolean {
    return this.#inStreamBlock;
  }

  /**
   * Puts the decoder inside a stream block, for decoding messages that were kept
   * from one (they carry an xid) after the block itself has ended.
   */
  enterStreamBlock(): void {
    this.#inStreamBlock = true;
  }

  /** Back to the state of a new session (outside any stream block). */
  reset(): void {
    this.#inStreamBlock = false;
  }

  /** Decodes one message; throws {@linkcode DecodeError} on malformed bytes. */
  decode(bytes: Uint8Array): PgoutputMessage {
    const reader = this.#reader;
    if (bytes.byteLength === 0) {
      throw new DecodeError("pgoutput", 0, "the XLogData payload is empty");
    }
    const code = bytes[0]!;
    const name = MESSAGE_NAMES[code];
    if (name === undefined) {
      throw new DecodeError(
        "pgoutput",
        0,
        `unknown message type 0x${code.toString(16).padStart(2, "0")} ("${
          String.fromCharCode(code)
        }")`,
      );
    }
    reader.reset(bytes, name);
    reader.offset = 1;
    const minVersion = MIN_VERSION[code] ?? 1;
    if (minVersion > this.protoVersion) {
      reader.fail(
        `${name} needs pgoutput protocol version ${minVersion} but version ${this.protoVersion} was negotiated`,
        0,
      );
    }
    const message = this.#decodeBody(code, reader);
    reader.expectEnd();
    return message;
  }

  #xid(reader: BufferReader): number | undefined {
    return this.#inStreamBlock ? reader.uint32("xid") : undefined;
  }

  #outsideBlock(reader: BufferReader): void {
    if (this.#inStreamBlock) {
      reader.fail(
        `${reader.messageType} is not allowed inside a Stream Start … Stream Stop block`,
        0,
      );
    }
  }

  #decodeBody(code: number, reader: BufferReader): PgoutputMessage {
    switch (code) {
      case PgoutputCode.Begin:
        this.#outsideBlock(reader);
        return {
          type: "Begin",
          finalLsn: reader.lsn("final_lsn"),
          commitTime: pgMicrosToUnixMicros(reader.int64("commit timestamp")),
          xid: reader.uint32("xid"),
        };
      case PgoutputCode.Commit:
        this.#outsideBlock(reader);
        return {
          type: "Commit",
          flags: zeroFlags(reader),
          commitLsn: reader.lsn("commit_lsn"),
          endLsn: reader.lsn("end_lsn"),
          commitTime: pgMicrosToUnixMicros(reader.int64("commit timestamp")),
        };
      case PgoutputCode.Origin:
        return {
          type: "Origin",
          originLsn: reader.lsn("origin lsn"),
          originName: reader.cstring("origin name"),
        };
      case PgoutputCode.Relation:
        return this.#relation(reader);
      case PgoutputCode.Type: {
        const xid = this.#xid(reader);
        const typeOid = reader.uint32("type oid");
        const namespace = reader.cstring("namespace");
        return {
          type: "Type",
          ...(xid === undefined ? {} : { xid }),
          typeOid,
          namespace: namespace === "" ? "pg_catalog" : namespace,
          typeName: reader.cstring("type name"),
        };
      }
      case PgoutputCode.Insert: {
        const xid = this.#xid(reader);
        const relationId = reader.uint32("relation oid");
        const marker = reader.uint8("tuple marker");
        if (marker !== TupleCode.New) {
          reader.fail(
            `expected 'N' before the new tuple, found ${describeByte(marker)}`,
            reader.offset - 1,
          );
        }
        const message: InsertMessage = {
          type: "Insert",
          relationId,
          newTuple: readTuple(reader),
        };
        if (xid !== undefined) message.xid = xid;
        return message;
      }
      case PgoutputCode.Update:
        return this.#update(reader);
      case PgoutputCode.Delete: {
        const xid = this.#xid(reader);
        const relationId = reader.uint32("relation oid");
        const marker = reader.uint8("tuple marker");
        const oldTupleKind = oldKind(marker);
        if (oldTupleKind === null) {
          reader.fail(
            `expected 'K' or 'O' before the old tuple, found ${describeByte(marker)}`,
            reader.offset - 1,
          );
        }
        const message: DeleteMessage = {
          type: "Delete",
          relationId,
          oldTupleKind,
          oldTuple: readTuple(reader),
        };
        if (xid !== undefined) message.xid = xid;
        return message;
      }
      case PgoutputCode.Truncate: {
        const xid = this.#xid(reader);
        const count = reader.int32("number of relations");
        if (count < 0) reader.fail(`negative relation count ${count}`, reader.offset - 4);
        const options = reader.uint8("options");
        if (count * 4 !== reader.remaining) {
          reader.fail(`${count} relations need ${count * 4} bytes but ${reader.remaining} remain`);
        }
        const relationIds: number[] = [];
        for (let i = 0; i < count; i++) relationIds.push(reader.uint32("relation oid"));
        return {
          type: "Truncate",
          ...(xid === undefined ? {} : { xid }),
          cascade: (options & 1) !== 0,
          restartIdentity: (options & 2) !== 0,
          relationIds,
        };
      }
      case PgoutputCode.Message: {
        const xid = this.#xid(reader);
        const flags = reader.uint8("flags");
        const lsn = reader.lsn("message lsn");
        const prefix = reader.cstring("prefix");
        const length = reader.int32("content length");
        return {
          type: "Message",
          ...(xid === undefined ? {} : { xid }),
          transactional: (flags & 1) !== 0,
          lsn,
          prefix,
          content: reader.bytes(length, "content").slice(),
        };
      }
      case PgoutputCode.StreamStart: {
        this.#outsideBlock(reader);
        const xid = reader.uint32("xid");
        const first = reader.uint8("first segment");
        reader.expectEnd(); // a malformed Stream Start must not change the state
        this.#inStreamBlock = true;
        return { type: "StreamStart", xid, firstSegment: first === 1 };
      }
      case PgoutputCode.StreamStop:
        if (!this.#inStreamBlock) reader.fail("Stream Stop without a Stream Start", 0);
        reader.expectEnd();
        this.#inStreamBlock = false;
        return { type: "StreamStop" };
      case PgoutputCode.StreamCommit:
        this.#outsideBlock(reader);
        return {
          type: "StreamCommit",
          xid: reader.uint32("xid"),
          flags: zeroFlags(reader),
          commitLsn: reader.lsn("commit_lsn"),
          endLsn: reader.lsn("end_lsn"),
          commitTime: pgMicrosToUnixMicros(reader.int64("commit timestamp")),
        };
      case PgoutputCode.StreamAbort: {
        this.#outsideBlock(reader);
        const xid = reader.uint32("xid");
        const subXid = reader.uint32("subxact xid");
        // Only `streaming = parallel` (protocol 4) adds the abort LSN and time.
        if (this.protoVersion >= 4 && reader.remaining > 0) {
          return {
            type: "StreamAbort",
            xid,
            subXid,
            abortLsn: reader.lsn("abort_lsn"),
            abortTime: pgMicrosToUnixMicros(reader.int64("abort timestamp")),
          };
        }
        return { type: "StreamAbort", xid, subXid };
      }
      case PgoutputCode.BeginPrepare:
        this.#outsideBlock(reader);
        return {
          type: "BeginPrepare",
          prepareLsn: reader.lsn("prepare_lsn"),
          endLsn: reader.lsn("end_lsn"),
          prepareTime: pgMicrosToUnixMicros(reader.int64("prepare timestamp")),
          xid: reader.uint32("xid"),
          gid: reader.cstring("gid"),
        };
      case PgoutputCode.Prepare:
      case PgoutputCode.StreamPrepare:
        this.#outsideBlock(reader);
        return {
          type: code === PgoutputCode.Prepare ? "Prepare" : "StreamPrepare",
          flags: zeroFlags(reader),
          prepareLsn: reader.lsn("prepare_lsn"),
          endLsn: reader.lsn("end_lsn"),
          prepareTime: pgMicrosToUnixMicros(reader.int64("prepare timestamp")),
          xid: reader.uint32("xid"),
          gid: reader.cstring("gid"),
        };
      case PgoutputCode.CommitPrepared:
        this.#outsideBlock(reader);
        return {
          type: "CommitPrepared",
          flags: zeroFlags(reader),
          commitLsn: reader.lsn("commit_lsn"),
          endLsn: reader.lsn("end_lsn"),
          commitTime: pgMicrosToUnixMicros(reader.int64("commit timestamp")),
          xid: reader.uint32("xid"),
          gid: reader.cstring("gid"),
        };
      case PgoutputCode.RollbackPrepared:
        this.#outsideBlock(reader);
        return {
          type: "RollbackPrepared",
          flags: zeroFlags(reader),
          prepareEndLsn: reader.lsn("prepare end_lsn"),
          rollbackEndLsn: reader.lsn("rollback end_lsn"),
          prepareTime: pgMicrosToUnixMicros(reader.int64("prepare timestamp")),
          rollbackTime: pgMicrosToUnixMicros(reader.int64("rollback timestamp")),
          xid: reader.uint32("xid"),
          gid: reader.cstring("gid"),
        };
      default:
        return reader.fail(`no decoder for message type ${describeByte(code)}`, 0);
    }
  }

  #relation(reader: BufferReader): RelationMessage {
    const xid = this.#xid(reader);
    const relationId = reader.uint32("relation oid");
    const namespace = reader.cstring("namespace");
    const relationName = reader.cstring("relation name");
    const identityByte = reader.uint8("replica identity");
    const replicaIdentity = String.fromCharCode(identityByte);
    if (!isReplicaIdentity(replicaIdentity)) {
      reader.fail(`unknown replica identity ${describeByte(identityByte)}`, reader.offset - 1);
    }
    const count = reader.int16("column count");
    if (count < 0) reader.fail(`negative column count ${count}`, reader.offset - 2);
    const columns: RelationColumn[] = [];
    for (let i = 0; i < count; i++) {
      const flags = reader.uint8("column flags");
      columns.push({
        flags,
        isKey: (flags & 1) !== 0,
        name: reader.cstring("column name"),
        typeOid: reader.uint32("column type oid"),
        typeModifier: reader.int32("column typmod"),
      });
    }
    return {
      type: "Relation",
      ...(xid === undefined ? {} : { xid }),
      relationId,
      namespace: namespace === "" ? "pg_catalog" : namespace,
      relationName,
      replicaIdentity,
      columns,
    };
  }

  #update(reader: BufferReader): UpdateMessage {
    const xid = this.#xid(reader);
    const relationId = reader.uint32("relation oid");
    let marker = reader.uint8("tuple marker");
    const oldTupleKind = oldKind(marker);
    let oldTuple: TupleData | null = null;
    if (oldTupleKind !== null) {
      oldTuple = readTuple(reader);
      marker = reader.uint8("tuple marker");
    }
    if (marker !== TupleCode.New) {
      reader.fail(
        `expected 'N' before the new tuple, found ${describeByte(marker)}`,
        reader.offset - 1,
      );
    }
    const message: UpdateMessage = {
      type: "Update",
      relationId,
      oldTupleKind,
      oldTuple,
      newTuple: readTuple(reader),
    };
    if (xid !== undefined) message.xid = xid;
    return message;
  }
}

/**
 * TupleData: `Int16 ncols`, then per column `'n'` | `'u'` | `'t' Int32 len Byte[len]` |
 * `'b' Int32 len Byte[len]`.
 */
function readTuple(reader: BufferReader): TupleData {
  const count = reader.int16("tuple column count");
  if (count < 0) reader.fail(`negative tuple column count ${count}`, reader.offset - 2);
  const values: TupleData = new Array(count);
  // Binary values become views into ONE copy of the tuple (a copy per value costs
  // far more); they never keep a socket chunk alive. Triples: column, offset, length.
  let binary: number[] | null = null;
  const start = reader.offset;
  for (let i = 0; i < count; i++) {
    const kind = reader.uint8("column kind");
    switch (kind) {
      case TupleCode.Null:
        values[i] = null;
        break;
      case TupleCode.UnchangedToast:
        values[i] = UNCHANGED_TOAST;
        break;
      case TupleCode.Text:
        values[i] = reader.utf8(reader.int32("text length"), "text value");
        break;
      case TupleCode.Binary: {
        const length = reader.int32("binary length");
        const at = reader.offset;
        reader.bytes(length, "binary value");
        (binary ??= []).push(i, at, length);
        values[i] = null;
        break;
      }
      default:
        reader.fail(
          `unknown tuple column kind ${describeByte(kind)} in column ${i}`,
          reader.offset - 1,
        );
    }
  }
  if (binary !== null) {
    const copy = reader.copy(start, reader.offset);
    for (let k = 0; k < binary.length; k += 3) {
      const at = binary[k + 1]! - start;
      values[binary[k]!] = copy.subarray(at, at + binary[k + 2]!);
    }
  }
  return values;
}

/** The flags byte of Commit and the two-phase messages: always 0, as PostgreSQL's reader insists. */
function zeroFlags(reader: BufferReader): number {
  const flags = reader.uint8("flags");
  if (flags !== 0) reader.fail(`unrecognized flags ${flags} (expected 0)`, reader.offset - 1);
  return flags;
}

function oldKind(marker: number): OldTupleKind | null {
  if (marker === TupleCode.Key) return "key";
  if (marker === TupleCode.Old) return "old";
  return null;
}

function isReplicaIdentity(value: string): value is ReplicaIdentity {
  return value === "d" || value === "n" || value === "f" || value === "i";
}

function describeByte(byte: number): string {
  const hex = `0x${byte.toString(16).padStart(2, "0")}`;
  return byte >= 0x20 && byte < 0x7f ? `'${String.fromCharCode(byte)}' (${hex})` : hex;
}
