/**
 * The CopyBoth sub-protocol of streaming replication: XLogData and primary
 * keepalives from the server, standby status updates from the client. Pure.
 *
 * @module
 */

import { BufferReader } from "./_reader.ts";
import { BufferWriter } from "./_writer.ts";
import { FrontendCode, ReplicationCode } from "./codes.ts";
import { DecodeError } from "../errors.ts";
import type { Lsn } from "./lsn.ts";

/** XLogData: `Byte1 'w', Int64 dataStart, Int64 walEnd, Int64 sendTime, Byte[n] data`. */
export interface XLogData {
  type: "XLogData";
  /** For logical decoding, the LSN of this change (for a Commit, its end LSN). */
  walStart: Lsn;
  walEnd: Lsn;
  /** Server clock, µs since 2000-01-01. */
  sendTime: bigint;
  /** Exactly one pgoutput message. */
  data: Uint8Array;
}

/** Primary keepalive: `Byte1 'k', Int64 walEnd, Int64 sendTime, Byte1 replyRequested`. */
export interface PrimaryKeepalive {
  type: "PrimaryKeepalive";
  walEnd: Lsn;
  sendTime: bigint;
  replyRequested: boolean;
}

const reader = new BufferReader();

/** Parses one CopyData payload sent by a walsender. */
export function parseCopyData(payload: Uint8Array): XLogData | PrimaryKeepalive {
  if (payload.byteLength === 0) throw new DecodeError("CopyData", 0, "the payload is empty");
  const tag = payload[0]!;
  if (tag === ReplicationCode.XLogData) return parseXLogData(payload, 0, payload.byteLength);
  if (tag === ReplicationCode.PrimaryKeepalive) {
    reader.reset(payload, "PrimaryKeepalive");
    reader.offset = 1;
    const walEnd = reader.lsn("walEnd");
    const sendTime = reader.int64("sendTime");
    const replyRequested = reader.uint8("replyRequested") === 1;
    reader.expectEnd();
    return { type: "PrimaryKeepalive", walEnd, sendTime, replyRequested };
  }
  throw new DecodeError("CopyData", 0, `unknown replication message tag 0x${tag.toString(16)}`);
}

/** The bytes before an XLogData's pgoutput message: 'w', dataStart, walEnd, sendTime. */
const XLOGDATA_HEADER = 25;
/**
 * The XLogData whose CopyData payload is `bytes` from `start` to `end` (its tag 'w' at
 * `start`), read in place: `data` is a view into `bytes`, and no view is made of the payload
 * (the replication stream's hot path, one per change).
 */
export function parseXLogData(bytes: Uint8Array, start: number, end: number): XLogData {
  if (end - start < XLOGDATA_HEADER) {
    throw new DecodeError(
      "XLogData",
      end - start,
      `needs ${XLOGDATA_HEADER} bytes for its header but only ${end - start} arrived`,
    );
  }
  // The module's reader keeps one view per buffer: a reused socket buffer is viewed once.
  reader.reset(bytes, "XLogData");
  reader.offset = start + 1;
  const walStart = reader.lsn("dataStart");
  // A logical walsender sends the change's LSN as walEnd too: one bigint serves both then.
  let walEnd = walStart;
  if (sameUint64(bytes, start + 1, start + 9)) reader.offset = start + 17;
  else walEnd = reader.lsn("walEnd");
  const sendTime = reader.int64("sendTime");
  return {
    type: "XLogData",
    walStart,
    walEnd,
    sendTime,
    data: bytes.subarray(start + XLOGDATA_HEADER, end),
  };
}

/** Whether the 8 bytes at `a` equal those at `b` (`bytes` holds both). */
function sameUint64(bytes: Uint8Array, a: number, b: number): boolean {
  for (let i = 0; i < 8; i++) {
    if (bytes[a + i] !== bytes[b + i]) return false;
  }
  return true;
}

/** What the client has received, flushed and applied. */
export interface StandbyStatus {
  written: Lsn;
  /** Drives the slot's `confirmed_flush_lsn`. */
  flushed: Lsn;
  applied: Lsn;
  /** Client clock, µs since 2000-01-01. */
  clientTime: bigint;
  replyRequested?: boolean;
}

/**
 * Standby status update, wrapped in CopyData:
 * `Byte1 'r', Int64 write, Int64 flush, Int64 apply, Int64 clientTime, Byte1 replyRequested`.
 */
export function encodeStandbyStatus(status: StandbyStatus): Uint8Array {
  return new BufferWriter(48)
    .uint8(ReplicationCode.StandbyStatusUpdate)
    .lsn(status.written)
    .lsn(status.flushed)
    .lsn(status.applied)
    .int64(status.clientTime)
    .uint8(status.replyRequested ? 1 : 0)
    .flush(FrontendCode.CopyData);
}
