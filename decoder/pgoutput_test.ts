import assert from "node:assert/strict";
import { PgoutputDecoder, type ProtoVersion, UNCHANGED_TOAST } from "./pgoutput.ts";
import { decodeError } from "../tests/testdata/_assert.ts";
import * as f from "../tests/testdata/_frames.ts";

/** µs between 1970-01-01 and 2000-01-01. */
const EPOCH_2000 = 946_684_800_000_000n;
/** 2024-02-29T13:45:00.123456Z as PostgreSQL µs since 2000. */
const PG_TIME = 762_529_500_123_456n;

function decoder(protoVersion: ProtoVersion = 1): PgoutputDecoder {
  return new PgoutputDecoder({ protoVersion });
}

/** A decoder already inside a Stream Start … Stream Stop block for `xid`. */
function streaming(xid: number, protoVersion: ProtoVersion = 2): PgoutputDecoder {
  const d = decoder(protoVersion);
  d.decode(f.streamStart(xid, true));
  return d;
}

const bytes = (...values: number[]) => new Uint8Array(values);

// ---------------------------------------------------------------------------
// The builder itself, against bytes written out by hand from the docs.

Deno.test("test builder: Begin bytes match the documented layout", () => {
  // deno-fmt-ignore
  const expected = bytes(
    0x42, // 'B'
    0, 0, 0, 0x16, 0xb3, 0x74, 0xd8, 0x48, // final_lsn 16/B374D848
    0, 0, 0, 0, 0, 0, 0, 5, // commit time
    0, 0, 0x02, 0x9a, // xid 666
  );
  assert.deepEqual(f.begin({ finalLsn: 0x16_b374_d848n, commitTime: 5n, xid: 666 }), expected);
});

Deno.test("test builder: Insert bytes match the documented layout", () => {
  // deno-fmt-ignore
  const expected = bytes(
    0x49, // 'I'
    0, 0, 0x40, 0x00, // relid 16384
    0x4e, // 'N'
    0, 3, // 3 columns
    0x6e, // 'n'
    0x75, // 'u'
    0x74, 0, 0, 0, 2, 0x68, 0x69, // 't' "hi"
  );
  assert.deepEqual(f.insert(16384, [null, "u", { t: "hi" }]), expected);
});

// ---------------------------------------------------------------------------
// Transaction framing

Deno.test("pgoutput Begin: finalLsn, commitTime (converted to Unix µs) and xid", () => {
  const message = decoder().decode(
    f.begin({ finalLsn: 0x16_b374_d848n, commitTime: PG_TIME, xid: 0xfffffffe }),
  );
  assert.deepEqual(message, {
    type: "Begin",
    finalLsn: 0x16_b374_d848n,
    commitTime: PG_TIME + EPOCH_2000,
    xid: 0xfffffffe,
  });
  assert.ok(message.type === "Begin");
  assert.equal(
    new Date(Number(message.commitTime / 1000n)).toISOString(),
    "2024-02-29T13:45:00.123Z",
  );
});

Deno.test("pgoutput Begin: LSN above 2^63 stays unsigned", () => {
  const message = decoder().decode(
    f.begin({ finalLsn: 0xffff_ffff_ffff_fff0n, commitTime: 0n, xid: 1 }),
  );
  assert.equal(message.type === "Begin" && message.finalLsn, 0xffff_ffff_ffff_fff0n);
});

Deno.test("pgoutput Begin: negative (pre-2000) commit timestamp", () => {
  const message = decoder().decode(f.begin({ finalLsn: 1n, commitTime: -1n, xid: 1 }));
  assert.equal(message.type === "Begin" && message.commitTime, EPOCH_2000 - 1n);
});

Deno.test("pgoutput Commit: flags, commitLsn, endLsn, commitTime", () => {
  const message = decoder().decode(
    f.commit({ flags: 0, commitLsn: 0x100n, endLsn: 0x130n, commitTime: PG_TIME }),
  );
  assert.deepEqual(message, {
    type: "Commit",
    flags: 0,
    commitLsn: 0x100n,
    endLsn: 0x130n,
    commitTime: PG_TIME + EPOCH_2000,
  });
});

Deno.test("pgoutput Origin: origin LSN and name", () => {
  const message = decoder().decode(f.origin({ lsn: 0xabcdn, name: "pg_16390" }));
  assert.deepEqual(message, { type: "Origin", originLsn: 0xabcdn, originName: "pg_16390" });
});

Deno.test("pgoutput Origin: empty name", () => {
  const message = decoder().decode(f.origin({ lsn: 0n, name: "" }));
  assert.deepEqual(message, { type: "Origin", originLsn: 0n, originName: "" });
});

// ---------------------------------------------------------------------------
// Relation and Type

const ORDERS_COLUMNS: f.ColumnSpec[] = [
  { flags: 1, name: "id", typeOid: 20, typmod: -1 },
  { flags: 0, name: "note", typeOid: 1043, typmod: 104 },
  { flags: 0, name: "prix_€", typeOid: 1700, typmod: 655366 },
];

Deno.test("pgoutput Relation: every field and column", () => {
  const message = decoder().decode(
    f.relation({
      relid: 16384,
      namespace: "public",
      name: "orders",
      replident: "d",
      columns: ORDERS_COLUMNS,
    }),
  );
  assert.deepEqual(message, {
    type: "Relation",
    relationId: 16384,
    namespace: "public",
    relationName: "orders",
    replicaIdentity: "d",
    columns: [
      { flags: 1, isKey: true, name: "id", typeOid: 20, typeModifier: -1 },
      { flags: 0, isKey: false, name: "note", typeOid: 1043, typeModifier: 104 },
      { flags: 0, isKey: false, name: "prix_€", typeOid: 1700, typeModifier: 655366 },
    ],
  });
  assert.ok(!("xid" in message));
});

Deno.test("pgoutput Relation: empty namespace means pg_catalog", () => {
  const message = decoder().decode(
    f.relation({ relid: 1, namespace: "", name: "t", replident: "f", columns: [] }),
  );
  assert.equal(message.type === "Relation" && message.namespace, "pg_catalog");
});

Deno.test("pgoutput Relation: each replica identity and zero columns", () => {
  for (const replident of ["d", "n", "f", "i"] as const) {
    const message = decoder().decode(
      f.relation({ relid: 7, namespace: "s", name: "t", replident, columns: [] }),
    );
    assert.equal(message.type === "Relation" && message.replicaIdentity, replident);
    assert.deepEqual(message.type === "Relation" && message.columns, []);
  }
});

Deno.test("pgoutput Relation: unknown replica identity is a DecodeError at its offset", () => {
  const frame = f.relation({ relid: 7, namespace: "s", name: "t", replident: "x", columns: [] });
  const error = decodeError(() => decoder().decode(frame), /Relation.*replica identity/);
  assert.equal(error.offset, 1 + 4 + 2 + 2); // tag, oid, "s\0", "t\0"
});

Deno.test("pgoutput Relation: large OIDs are unsigned, typmod is signed", () => {
  const message = decoder().decode(
    f.relation({
      relid: 0xfffffff0,
      namespace: "s",
      name: "t",
      replident: "f",
      columns: [{ flags: 1, name: "c", typeOid: 0x80000001, typmod: -2 }],
    }),
  );
  assert.equal(message.type === "Relation" && message.relationId, 0xfffffff0);
  assert.equal(message.type === "Relation" && message.columns[0]?.typeOid, 0x80000001);
  assert.equal(message.type === "Relation" && message.columns[0]?.typeModifier, -2);
});

Deno.test("pgoutput Type: oid, namespace and name; empty namespace means pg_catalog", () => {
  assert.deepEqual(
    decoder().decode(f.typeMsg({ typeOid: 16500, namespace: "app", name: "mood" })),
    {
      type: "Type",
      typeOid: 16500,
      namespace: "app",
      typeName: "mood",
    },
  );
  assert.deepEqual(decoder().decode(f.typeMsg({ typeOid: 16600, namespace: "", name: "int4" })), {
    type: "Type",
    typeOid: 16600,
    namespace: "pg_catalog",
    typeName: "int4",
  });
});

// ---------------------------------------------------------------------------
// DML and tuples

Deno.test("pgoutput Insert: n, u, t and b columns, empty text and multibyte UTF-8", () => {
  const binary = bytes(0, 0xff, 0x80, 0x7f);
  const message = decoder().decode(
    f.insert(16384, [
      null,
      "u",
      { t: "" },
      { t: "héllo wörld — 日本語 🐘" },
      { b: binary },
      { b: new Uint8Array(0) },
      { t: "x".repeat(100) },
    ]),
  );
  assert.deepEqual(message, {
    type: "Insert",
    relationId: 16384,
    newTuple: [
      null,
      UNCHANGED_TOAST,
      "",
      "héllo wörld — 日本語 🐘",
      binary,
      new Uint8Array(0),
      "x".repeat(100),
    ],
  });
});

Deno.test("pgoutput Insert: binary values are copies, not views into the payload", () => {
  const frame = f.insert(1, [{ b: bytes(1, 2, 3) }]);
  const message = decoder().decode(frame);
  frame.fill(0);
  assert.deepEqual(message.type === "Insert" && message.newTuple[0], bytes(1, 2, 3));
});

Deno.test("pgoutput Insert: zero columns", () => {
  assert.deepEqual(decoder().decode(f.insert(5, [])), {
    type: "Insert",
    relationId: 5,
    newTuple: [],
  });
});

Deno.test("pgoutput Insert: a marker other than 'N' is a DecodeError", () => {
  const frame = f.insert(5, [null]);
  frame[5] = 0x4b; // 'K'
  const error = decodeError(() => decoder().decode(frame), /Insert.*'N'/);
  assert.equal(error.offset, 5);
});

Deno.test("pgoutput tuple: unknown column kind is a DecodeError naming the column", () => {
  const frame = f.insert(5, [null, null]);
  frame[frame.length - 1] = 0x78; // 'x'
  const error = decodeError(() => decoder().decode(frame), /Insert.*'x'.*column 1/);
  assert.equal(error.offset, frame.length - 1);
});

Deno.test("pgoutput tuple: negative text length is a DecodeError", () => {
  const frame = new f.Bytes().byte("I").uint32(5).byte("N").int16(1).byte("t").int32(-1).done();
  decodeError(() => decoder().decode(frame), /Insert.*negative length/);
});

Deno.test("pgoutput Update: with neither K nor O", () => {
  assert.deepEqual(decoder().decode(f.update(9, { new: [{ t: "1" }, "u"] })), {
    type: "Update",
    relationId: 9,
    oldTupleKind: null,
    oldTuple: null,
    newTuple: ["1", UNCHANGED_TOAST],
  });
});

Deno.test("pgoutput Update: with a K (key) old tuple", () => {
  const message = decoder().decode(
    f.update(9, { old: { kind: "K", tuple: [{ t: "1" }, null] }, new: [{ t: "2" }, { t: "b" }] }),
  );
  assert.deepEqual(message, {
    type: "Update",
    relationId: 9,
    oldTupleKind: "key",
    oldTuple: ["1", null],
    newTuple: ["2", "b"],
  });
});

Deno.test("pgoutput Update: with an O (old row) tuple", () => {
  const message = decoder().decode(
    f.update(9, { old: { kind: "O", tuple: [{ t: "1" }, { t: "a" }] }, new: [{ t: "1" }, null] }),
  );
  assert.deepEqual(message, {
    type: "Update",
    relationId: 9,
    oldTupleKind: "old",
    oldTuple: ["1", "a"],
    newTuple: ["1", null],
  });
});

Deno.test("pgoutput Update: missing 'N' after the old tuple is a DecodeError", () => {
  const frame = f.update(9, { old: { kind: "K", tuple: [null] }, new: [null] });
  const nAt = 1 + 4 + 1 + 2 + 1;
  assert.equal(frame[nAt], 0x4e);
  frame[nAt] = 0x4f; // 'O'
  const error = decodeError(() => decoder().decode(frame), /Update.*'N'/);
  assert.equal(error.offset, nAt);
});

Deno.test("pgoutput Delete: K and O old tuples", () => {
  assert.deepEqual(decoder().decode(f.deleteMsg(9, { kind: "K", tuple: [{ t: "1" }, null] })), {
    type: "Delete",
    relationId: 9,
    oldTupleKind: "key",
    oldTuple: ["1", null],
  });
  assert.deepEqual(
    decoder().decode(f.deleteMsg(9, { kind: "O", tuple: [{ t: "1" }, { t: "z" }] })),
    { type: "Delete", relationId: 9, oldTupleKind: "old", oldTuple: ["1", "z"] },
  );
});

Deno.test("pgoutput Delete: an 'N' marker is a DecodeError", () => {
  const frame = f.deleteMsg(9, { kind: "K", tuple: [] });
  frame[5] = 0x4e;
  const error = decodeError(() => decoder().decode(frame), /Delete.*'K' or 'O'/);
  assert.equal(error.offset, 5);
});

Deno.test("pgoutput Truncate: option flags 0, 1, 2 and 3 with several relations", () => {
  const cases = [
    [0, false, false],
    [1, true, false],
    [2, false, true],
    [3, true, true],
  ] as const;
  for (const [flags, cascade, restartIdentity] of cases) {
    assert.deepEqual(decoder().decode(f.truncate([16384, 16390, 0xfffffff1], flags)), {
      type: "Truncate",
      cascade,
      restartIdentity,
      relationIds: [16384, 16390, 0xfffffff1],
    });
  }
});

Deno.test("pgoutput Truncate: relation count that disagrees with the length is a DecodeError", () => {
  const frame = f.truncate([1, 2], 0);
  frame[4] = 3; // claims 3 relations
  decodeError(() => decoder().decode(frame), /Truncate.*3 relations need 12 bytes but 8 remain/);
  const negative = f.truncate([], 0);
  negative[1] = 0xff;
  decodeError(() => decoder().decode(negative), /Truncate.*negative relation count/);
});

Deno.test("pgoutput Message: transactional with binary content", () => {
  const content = bytes(0, 1, 0xfe, 0xff, 0xc3); // not valid UTF-8: must come back raw
  assert.deepEqual(
    decoder().decode(f.message({ transactional: true, lsn: 0x1234n, prefix: "app/ü", content })),
    { type: "Message", transactional: true, lsn: 0x1234n, prefix: "app/ü", content },
  );
});

Deno.test("pgoutput Message: non-transactional with empty content", () => {
  assert.deepEqual(
    decoder().decode(
      f.message({ transactional: false, lsn: 1n, prefix: "", content: new Uint8Array(0) }),
    ),
    { type: "Message", transactional: false, lsn: 1n, prefix: "", content: new Uint8Array(0) },
  );
});

Deno.test("pgoutput Message: content length past the end is a DecodeError", () => {
  const frame = f.message({ transactional: false, lsn: 1n, prefix: "p", content: bytes(1, 2) });
  frame[frame.length - 3] = 3;
  decodeError(
    () => decoder().decode(frame),
    /Message.*needs 3 bytes for content but only 2 remain/,
  );
});

// ---------------------------------------------------------------------------
// Streaming (v2)

Deno.test("pgoutput Stream Start/Stop: xid on messages inside the block, none outside", () => {
  const d = decoder(2);
  assert.deepEqual(d.decode(f.streamStart(700, true)), {
    type: "StreamStart",
    xid: 700,
    firstSegment: true,
  });
  assert.equal(d.inStreamBlock, true);
  const inside: [Uint8Array, unknown][] = [
    [
      f.relation({ relid: 1, namespace: "s", name: "t", replident: "d", columns: [] }, {
        xid: 700,
      }),
      {
        type: "Relation",
        xid: 700,
        relationId: 1,
        namespace: "s",
        relationName: "t",
        replicaIdentity: "d",
        columns: [],
      },
    ],
    [
      f.typeMsg({ typeOid: 16500, namespace: "s", name: "e" }, { xid: 700 }),
      { type: "Type", xid: 700, typeOid: 16500, namespace: "s", typeName: "e" },
    ],
    [
      f.insert(1, [{ t: "a" }], { xid: 701 }),
      { type: "Insert", xid: 701, relationId: 1, newTuple: ["a"] },
    ],
    [
      f.update(1, { old: { kind: "K", tuple: [{ t: "a" }] }, new: [{ t: "b" }] }, { xid: 701 }),
      {
        type: "Update",
        xid: 701,
        relationId: 1,
        oldTupleKind: "key",
        oldTuple: ["a"],
        newTuple: ["b"],
      },
    ],
    [
      f.deleteMsg(1, { kind: "O", tuple: [{ t: "b" }] }, { xid: 700 }),
      { type: "Delete", xid: 700, relationId: 1, oldTupleKind: "old", oldTuple: ["b"] },
    ],
    [
      f.truncate([1, 2], 1, { xid: 700 }),
      { type: "Truncate", xid: 700, cascade: true, restartIdentity: false, relationIds: [1, 2] },
    ],
    [
      f.message({ transactional: true, lsn: 5n, prefix: "p", content: bytes(9) }, { xid: 702 }),
      { type: "Message", xid: 702, transactional: true, lsn: 5n, prefix: "p", content: bytes(9) },
    ],
  ];
  for (const [frame, expected] of inside) assert.deepEqual(d.decode(frame), expected);
  assert.deepEqual(d.decode(f.streamStop()), { type: "StreamStop" });
  assert.equal(d.inStreamBlock, false);

  // The same messages outside the block carry no xid.
  assert.deepEqual(d.decode(f.insert(1, [{ t: "a" }])), {
    type: "Insert",
    relationId: 1,
    newTuple: ["a"],
  });
  // ... and a streamed-form message outside the block has 4 trailing bytes.
  decodeError(() => d.decode(f.insert(1, [], { xid: 701 })), /Insert/);

  assert.deepEqual(d.decode(f.streamStart(700, false)), {
    type: "StreamStart",
    xid: 700,
    firstSegment: false,
  });
});

Deno.test("pgoutput Stream Commit: every field", () => {
  assert.deepEqual(
    decoder(2).decode(
      f.streamCommit({ xid: 700, flags: 0, commitLsn: 0x500n, endLsn: 0x540n, commitTime: 10n }),
    ),
    {
      type: "StreamCommit",
      xid: 700,
      flags: 0,
      commitLsn: 0x500n,
      endLsn: 0x540n,
      commitTime: 10n + EPOCH_2000,
    },
  );
});

Deno.test("pgoutput Stream Abort: without the parallel fields (v2, v3 and v4)", () => {
  for (const version of [2, 3, 4] as const) {
    assert.deepEqual(decoder(version).decode(f.streamAbort(700, 705)), {
      type: "StreamAbort",
      xid: 700,
      subXid: 705,
    });
  }
});

Deno.test("pgoutput Stream Abort: with the v4 parallel abort LSN and time", () => {
  const frame = f.streamAbort(700, 700, { parallel: { abortLsn: 0x900n, abortTime: PG_TIME } });
  assert.deepEqual(decoder(4).decode(frame), {
    type: "StreamAbort",
    xid: 700,
    subXid: 700,
    abortLsn: 0x900n,
    abortTime: PG_TIME + EPOCH_2000,
  });
  // Before v4 the extra 16 bytes cannot be there.
  decodeError(() => decoder(3).decode(frame), /StreamAbort.*16 unexpected trailing bytes/);
});

Deno.test("pgoutput streaming: messages that belong outside a block are rejected inside it", () => {
  const outside = [
    f.begin({ finalLsn: 1n, commitTime: 0n, xid: 1 }),
    f.commit({ commitLsn: 1n, endLsn: 2n, commitTime: 0n }),
    f.streamStart(701, true),
    f.streamCommit({ xid: 700, commitLsn: 1n, endLsn: 2n, commitTime: 0n }),
    f.streamAbort(700, 700),
  ];
  for (const frame of outside) {
    decodeError(() => streaming(700).decode(frame), /inside a Stream Start … Stream Stop block/);
  }
});

Deno.test("pgoutput streaming: Begin inside a stream block names Begin", () => {
  const error = decodeError(
    () => streaming(700).decode(f.begin({ finalLsn: 1n, commitTime: 0n, xid: 1 })),
    /^Cannot decode Begin message at offset 0: .*not allowed inside/,
  );
  assert.equal(error.messageType, "Begin");
});

Deno.test("pgoutput streaming: Stream Stop without Stream Start is a DecodeError", () => {
  decodeError(() => decoder(2).decode(f.streamStop()), /StreamStop.*without a Stream Start/);
});

// ---------------------------------------------------------------------------
// Two-phase (v3)

const GID = "pg_gid_16390_742";

Deno.test("pgoutput Begin Prepare: every field", () => {
  assert.deepEqual(
    decoder(3).decode(
      f.beginPrepare({ prepareLsn: 0x10n, endLsn: 0x20n, prepareTime: 3n, xid: 742, gid: GID }),
    ),
    {
      type: "BeginPrepare",
      prepareLsn: 0x10n,
      endLsn: 0x20n,
      prepareTime: 3n + EPOCH_2000,
      xid: 742,
      gid: GID,
    },
  );
});

Deno.test("pgoutput Prepare and Stream Prepare: every field", () => {
  const fields = {
    flags: 0,
    prepareLsn: 0x10n,
    endLsn: 0x20n,
    prepareTime: 3n,
    xid: 742,
    gid: GID,
  };
  const expected = {
    flags: 0,
    prepareLsn: 0x10n,
    endLsn: 0x20n,
    prepareTime: 3n + EPOCH_2000,
    xid: 742,
    gid: GID,
  };
  assert.deepEqual(decoder(3).decode(f.prepare(fields)), { type: "Prepare", ...expected });
  assert.deepEqual(decoder(3).decode(f.streamPrepare(fields)), {
    type: "StreamPrepare",
    ...expected,
  });
});

Deno.test("pgoutput Commit Prepared: every field", () => {
  assert.deepEqual(
    decoder(3).decode(
      f.commitPrepared({
        flags: 0,
        commitLsn: 0x30n,
        endLsn: 0x40n,
        commitTime: 4n,
        xid: 742,
        gid: GID,
      }),
    ),
    {
      type: "CommitPrepared",
      flags: 0,
      commitLsn: 0x30n,
      endLsn: 0x40n,
      commitTime: 4n + EPOCH_2000,
      xid: 742,
      gid: GID,
    },
  );
});

Deno.test("pgoutput Rollback Prepared: every field", () => {
  assert.deepEqual(
    decoder(4).decode(
      f.rollbackPrepared({
        flags: 0,
        prepareEndLsn: 0x50n,
        rollbackEndLsn: 0x60n,
        prepareTime: 5n,
        rollbackTime: 6n,
        xid: 742,
        gid: GID,
      }),
    ),
    {
      type: "RollbackPrepared",
      flags: 0,
      prepareEndLsn: 0x50n,
      rollbackEndLsn: 0x60n,
      prepareTime: 5n + EPOCH_2000,
      rollbackTime: 6n + EPOCH_2000,
      xid: 742,
      gid: GID,
    },
  );
});

// ---------------------------------------------------------------------------
// Version gating

Deno.test("pgoutput version gating: Stream Start with protocol 1 names the message and version", () => {
  const error = decodeError(
    () => decoder(1).decode(f.streamStart(700, true)),
    /StreamStart needs pgoutput protocol version 2 but version 1 was negotiated/,
  );
  assert.equal(error.messageType, "StreamStart");
  assert.equal(error.offset, 0);
});

Deno.test("pgoutput version gating: Begin Prepare with protocol 2 names the message and version", () => {
  const frame = f.beginPrepare({ prepareLsn: 1n, endLsn: 2n, prepareTime: 0n, xid: 1, gid: "g" });
  const error = decodeError(
    () => decoder(2).decode(frame),
    /BeginPrepare needs pgoutput protocol version 3 but version 2 was negotiated/,
  );
  assert.equal(error.messageType, "BeginPrepare");
});

Deno.test("pgoutput version gating: every v2 and v3 message below its version", () => {
  const prep = { prepareLsn: 1n, endLsn: 2n, prepareTime: 0n, xid: 1, gid: "g" };
  const cases: [Uint8Array, string, 2 | 3][] = [
    [f.streamStart(1, true), "StreamStart", 2],
    [f.streamStop(), "StreamStop", 2],
    [f.streamCommit({ xid: 1, commitLsn: 1n, endLsn: 2n, commitTime: 0n }), "StreamCommit", 2],
    [f.streamAbort(1, 1), "StreamAbort", 2],
    [f.beginPrepare(prep), "BeginPrepare", 3],
    [f.prepare(prep), "Prepare", 3],
    [f.streamPrepare(prep), "StreamPrepare", 3],
    [
      f.commitPrepared({ commitLsn: 1n, endLsn: 2n, commitTime: 0n, xid: 1, gid: "g" }),
      "CommitPrepared",
      3,
    ],
    [
      f.rollbackPrepared({
        prepareEndLsn: 1n,
        rollbackEndLsn: 2n,
        prepareTime: 0n,
        rollbackTime: 0n,
        xid: 1,
        gid: "g",
      }),
      "RollbackPrepared",
      3,
    ],
  ];
  for (const [frame, name, min] of cases) {
    for (let version = 1; version < min; version++) {
      decodeError(
        () => decoder(version as ProtoVersion).decode(frame),
        new RegExp(`${name} needs pgoutput protocol version ${min} but version ${version}`),
      );
    }
    const version = min === 2 ? 4 : min;
    const d = name === "StreamStop" ? streaming(1, version) : decoder(version);
    assert.equal(d.decode(frame).type, name);
  }
});

// ---------------------------------------------------------------------------
// Malformed input

Deno.test("pgoutput: empty payload and unknown type are DecodeErrors", () => {
  decodeError(() => decoder().decode(new Uint8Array(0)), /empty/);
  decodeError(() => decoder().decode(bytes(0x5a)), /unknown message type 0x5a \("Z"\)/);
});

/** A valid message of every type, with the decoder state it needs. */
function corpus(): { name: string; frame: Uint8Array; make: () => PgoutputDecoder }[] {
  const plain = () => decoder(4);
  const inBlock = () => streaming(700, 4);
  const prep = { prepareLsn: 1n, endLsn: 2n, prepareTime: 3n, xid: 4, gid: "gid-1" };
  const columns: f.ColumnSpec[] = [
    { flags: 1, name: "id", typeOid: 23, typmod: -1 },
    { flags: 0, name: "body", typeOid: 25, typmod: -1 },
  ];
  return [
    { name: "Begin", frame: f.begin({ finalLsn: 1n, commitTime: 2n, xid: 3 }), make: plain },
    {
      name: "Commit",
      frame: f.commit({ commitLsn: 1n, endLsn: 2n, commitTime: 3n }),
      make: plain,
    },
    { name: "Origin", frame: f.origin({ lsn: 1n, name: "o" }), make: plain },
    {
      name: "Relation",
      frame: f.relation({ relid: 1, namespace: "s", name: "t", replident: "d", columns }),
      make: plain,
    },
    {
      name: "Relation",
      frame: f.relation({ relid: 1, namespace: "", name: "t", replident: "f", columns }, {
        xid: 700,
      }),
      make: inBlock,
    },
    { name: "Type", frame: f.typeMsg({ typeOid: 1, namespace: "s", name: "e" }), make: plain },
    { name: "Insert", frame: f.insert(1, [{ t: "1" }, { b: bytes(1, 2) }]), make: plain },
    { name: "Insert", frame: f.insert(1, [{ t: "1" }, null], { xid: 701 }), make: inBlock },
    {
      name: "Update",
      frame: f.update(1, { old: { kind: "O", tuple: [{ t: "1" }, "u"] }, new: [{ t: "é" }, null] }),
      make: plain,
    },
    { name: "Update", frame: f.update(1, { new: [{ t: "1" }, "u"] }), make: plain },
    {
      name: "Delete",
      frame: f.deleteMsg(1, { kind: "K", tuple: [{ t: "1" }, null] }),
      make: plain,
    },
    { name: "Truncate", frame: f.truncate([1, 2, 3], 3), make: plain },
    { name: "Truncate", frame: f.truncate([1], 0, { xid: 700 }), make: inBlock },
    {
      name: "Message",
      frame: f.message({ transactional: true, lsn: 1n, prefix: "p", content: bytes(1, 2, 3) }),
      make: plain,
    },
    { name: "StreamStart", frame: f.streamStart(700, true), make: plain },
    {
      name: "StreamCommit",
      frame: f.streamCommit({ xid: 1, commitLsn: 1n, endLsn: 2n, commitTime: 3n }),
      make: plain,
    },
    { name: "StreamAbort", frame: f.streamAbort(1, 2), make: plain },
    { name: "BeginPrepare", frame: f.beginPrepare(prep), make: plain },
    { name: "Prepare", frame: f.prepare(prep), make: plain },
    { name: "StreamPrepare", frame: f.streamPrepare(prep), make: plain },
    {
      name: "CommitPrepared",
      frame: f.commitPrepared({ commitLsn: 1n, endLsn: 2n, commitTime: 3n, xid: 4, gid: "g" }),
      make: plain,
    },
    {
      name: "RollbackPrepared",
      frame: f.rollbackPrepared({
        prepareEndLsn: 1n,
        rollbackEndLsn: 2n,
        prepareTime: 3n,
        rollbackTime: 4n,
        xid: 5,
        gid: "g",
      }),
      make: plain,
    },
  ];
}

Deno.test("pgoutput: every valid corpus frame decodes", () => {
  for (const { name, frame, make } of corpus()) {
    assert.equal(make().decode(frame).type, name);
  }
});

Deno.test("pgoutput: a message cut at every length is a DecodeError naming type and offset", () => {
  for (const { name, frame, make } of corpus()) {
    for (let cut = 1; cut < frame.length; cut++) {
      const error = decodeError(() => make().decode(frame.slice(0, cut)));
      assert.equal(error.messageType, name, `cut ${cut} of ${name}`);
      assert.match(error.message, new RegExp(`^Cannot decode ${name} message at offset \\d+: `));
      assert.ok(error.offset >= 0 && error.offset <= cut, `offset ${error.offset} of cut ${cut}`);
    }
  }
});

Deno.test("pgoutput: parallel Stream Abort cut at every length except the v2 form is a DecodeError", () => {
  const frame = f.streamAbort(1, 2, { parallel: { abortLsn: 3n, abortTime: 4n } });
  for (let cut = 1; cut < frame.length; cut++) {
    if (cut === 9) {
      // Exactly the non-parallel layout: valid without the optional fields.
      assert.deepEqual(decoder(4).decode(frame.slice(0, cut)), {
        type: "StreamAbort",
        xid: 1,
        subXid: 2,
      });
      continue;
    }
    const error = decodeError(() => decoder(4).decode(frame.slice(0, cut)));
    assert.equal(error.messageType, "StreamAbort");
  }
});

Deno.test("pgoutput: trailing bytes after any message are a DecodeError", () => {
  for (const { name, frame, make } of corpus()) {
    for (const extra of [bytes(0), bytes(1, 2, 3, 4)]) {
      const padded = f.concat(frame, extra);
      if (name === "Truncate") {
        // Truncate checks its relation count against the remaining length up front.
        decodeError(() => make().decode(padded), /^Cannot decode Truncate .*relations need/);
        continue;
      }
      if (name === "StreamAbort") {
        // Protocol 4 reads any bytes after the subxid as the parallel abort fields.
        decodeError(() => make().decode(padded), /^Cannot decode StreamAbort .*abort_lsn/);
        continue;
      }
      const error = decodeError(
        () => make().decode(padded),
        new RegExp(`^Cannot decode ${name} .*${extra.length} unexpected trailing bytes`),
      );
      assert.equal(error.offset, frame.length, name);
    }
  }
  const stop = f.concat(f.streamStop(), bytes(0));
  decodeError(() => streaming(1).decode(stop), /StreamStop.*1 unexpected trailing bytes/);
});

Deno.test("pgoutput: a failed decode does not change the stream-block state", () => {
  const d = decoder(2);
  decodeError(() => d.decode(f.concat(f.streamStart(1, true), bytes(0))));
  assert.equal(d.inStreamBlock, false);
  const e = streaming(1);
  decodeError(() => e.decode(f.concat(f.streamStop(), bytes(0))));
  assert.equal(e.inStreamBlock, true);
});

Deno.test("pgoutput: string without NUL terminator is a DecodeError", () => {
  const frame = f.origin({ lsn: 1n, name: "abc" });
  decodeError(
    () => decoder().decode(frame.slice(0, frame.length - 1)),
    /Origin message at offset 9: origin name has no NUL terminator/,
  );
});

Deno.test("pgoutput: negative tuple and column counts are DecodeErrors", () => {
  const tuple = new f.Bytes().byte("I").uint32(1).byte("N").int16(-1).done();
  decodeError(() => decoder().decode(tuple), /Insert.*negative tuple column count -1/);
  const relation = new f.Bytes().byte("R").uint32(1).cstring("s").cstring("t").byte("d")
    .int16(-2).done();
  decodeError(() => decoder().decode(relation), /Relation.*negative column count -2/);
});
