import assert from "node:assert/strict";
import type { Lsn } from "./lsn.ts";
import { encodeStandbyStatus, parseCopyData, parseXLogData } from "./replication.ts";
import { decodeError } from "../tests/testdata/_assert.ts";
import * as f from "../tests/testdata/_frames.ts";

Deno.test("parseCopyData: XLogData fields and the pgoutput payload", () => {
  const payload = f.begin({ finalLsn: 0x500n, commitTime: 7n, xid: 9 });
  const parsed = parseCopyData(
    f.xlogData(0x16_b374_d848n, 0xffff_ffff_0000_0001n, -5n, payload),
  );
  assert.deepEqual(parsed, {
    type: "XLogData",
    walStart: 0x16_b374_d848n,
    walEnd: 0xffff_ffff_0000_0001n,
    sendTime: -5n,
    data: payload,
  });
});

Deno.test("parseCopyData: XLogData whose walEnd is its walStart (as logical walsenders send), whole and cut anywhere", () => {
  const payload = f.begin({ finalLsn: 0x500n, commitTime: 7n, xid: 9 });
  const bytes = f.xlogData(0x16_b374_d848n, 0x16_b374_d848n, 42n, payload);
  assert.deepEqual(parseCopyData(bytes), {
    type: "XLogData",
    walStart: 0x16_b374_d848n,
    walEnd: 0x16_b374_d848n,
    sendTime: 42n,
    data: payload,
  });
  for (let cut = 1; cut < 25; cut++) {
    const error = decodeError(() => parseCopyData(bytes.slice(0, cut)));
    assert.equal(error.messageType, "XLogData");
  }
});

Deno.test("parseXLogData: the XLogData of parseCopyData, read in place in a larger buffer", () => {
  const payload = f.begin({ finalLsn: 0x500n, commitTime: 7n, xid: 9 });
  for (const walEnd of [0x16_b374_d848n, 0x17_0000_0000n]) {
    const message = f.xlogData(0x16_b374_d848n, walEnd, -42n, payload);
    const chunk = f.concat(new Uint8Array(13), message, new Uint8Array(5));
    const parsed = parseXLogData(chunk, 13, 13 + message.byteLength);
    assert.deepEqual(parsed, parseCopyData(message));
    // The payload is a view of the chunk, not a copy.
    assert.equal(parsed.data.buffer, chunk.buffer);
    assert.equal(parsed.data.byteOffset, chunk.byteOffset + 13 + 25);
  }
  for (let cut = 1; cut < 25; cut++) {
    const error = decodeError(() => parseXLogData(f.xlogData(1n, 2n, 3n, payload), 0, cut));
    assert.equal(error.messageType, "XLogData");
  }
});

Deno.test("parseCopyData: XLogData with an empty payload", () => {
  const parsed = parseCopyData(f.xlogData(1n, 2n, 3n, new Uint8Array(0)));
  assert.equal(parsed.type, "XLogData");
  assert.equal(parsed.type === "XLogData" && parsed.data.byteLength, 0);
});

Deno.test("parseCopyData: keepalive with and without reply requested", () => {
  assert.deepEqual(parseCopyData(f.keepalive(0x1234n, 99n, true)), {
    type: "PrimaryKeepalive",
    walEnd: 0x1234n,
    sendTime: 99n,
    replyRequested: true,
  });
  assert.deepEqual(parseCopyData(f.keepalive(0n, 0n, false)), {
    type: "PrimaryKeepalive",
    walEnd: 0n,
    sendTime: 0n,
    replyRequested: false,
  });
});

Deno.test("parseCopyData: truncated XLogData header is a DecodeError at every cut", () => {
  const bytes = f.xlogData(1n, 2n, 3n, new Uint8Array(0));
  for (let cut = 1; cut < bytes.length; cut++) {
    const error = decodeError(() => parseCopyData(bytes.slice(0, cut)));
    assert.equal(error.messageType, "XLogData");
  }
});

Deno.test("parseCopyData: truncated or padded keepalive is a DecodeError", () => {
  const bytes = f.keepalive(1n, 2n, false);
  for (let cut = 1; cut < bytes.length; cut++) {
    const error = decodeError(() => parseCopyData(bytes.slice(0, cut)));
    assert.equal(error.messageType, "PrimaryKeepalive");
  }
  decodeError(
    () => parseCopyData(f.concat(bytes, new Uint8Array(1))),
    /PrimaryKeepalive.*1 unexpected trailing bytes/,
  );
});

Deno.test("parseCopyData: empty payload and unknown tag are DecodeErrors", () => {
  decodeError(() => parseCopyData(new Uint8Array(0)), /CopyData.*empty/);
  const error = decodeError(
    () => parseCopyData(new Uint8Array([0x68, 0, 0])), // 'h': hot-standby feedback
    /^Cannot decode CopyData message at offset 0: unknown replication message tag 0x68/,
  );
  assert.equal(error.messageType, "CopyData");
});

Deno.test("encodeStandbyStatus: exact bytes", () => {
  const encoded = encodeStandbyStatus({
    written: 0x0102_0304_0506_0708n as Lsn,
    flushed: 0x16_b374_d848n as Lsn,
    applied: 0xffff_ffff_ffff_ffffn as Lsn,
    clientTime: 0x0a0b_0c0d_0e0f_1011n,
    replyRequested: true,
  });
  // deno-fmt-ignore
  const expected = new Uint8Array([
    0x64, // 'd' CopyData
    0x00, 0x00, 0x00, 0x26, // length 38 = 4 + 34
    0x72, // 'r'
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // write
    0x00, 0x00, 0x00, 0x16, 0xb3, 0x74, 0xd8, 0x48, // flush
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // apply
    0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, // client time
    0x01, // reply requested
  ]);
  assert.deepEqual(encoded, expected);
});

Deno.test("encodeStandbyStatus: replyRequested defaults to 0; negative client time", () => {
  const encoded = encodeStandbyStatus({
    written: 1n as Lsn,
    flushed: 2n as Lsn,
    applied: 3n as Lsn,
    clientTime: -1n,
  });
  const expected = f.backendFrame(
    "d",
    new f.Bytes().byte("r").uint64(1n).uint64(2n).uint64(3n).int64(-1n).byte(0).done(),
  );
  assert.deepEqual(encoded, expected);
});
