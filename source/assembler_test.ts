import assert from "node:assert/strict";
import { DecodeError } from "../errors.ts";
import type { Lsn } from "../decoder/lsn.ts";
import { PgoutputDecoder, type ProtoVersion } from "../decoder/pgoutput.ts";
import * as f from "../tests/testdata/_frames.ts";
import { TransactionAssembler } from "./assembler.ts";
import { type ChangeEvent, EVENT_RELATION, type StreamItem } from "../events.ts";

const EPOCH_2000 = 946_684_800_000_000n;
const RELID = 16384;
const OTHER_RELID = 16390;

const COLUMNS: f.ColumnSpec[] = [
  { flags: 1, name: "id", typeOid: 23, typmod: -1 },
  { flags: 0, name: "status", typeOid: 25, typmod: -1 },
  { flags: 0, name: "body", typeOid: 25, typmod: -1 },
];

/** `orders` with a text key, for tests that label rows by name ("s1", "p1"). */
const TEXT_KEY_COLUMNS: f.ColumnSpec[] = [
  { flags: 1, name: "id", typeOid: 25, typmod: -1 },
  ...COLUMNS.slice(1),
];

function ordersRelation(options?: f.XidOption, columns = COLUMNS): Uint8Array {
  return f.relation(
    { relid: RELID, namespace: "public", name: "orders", replident: "d", columns },
    options,
  );
}

function linesRelation(options?: f.XidOption): Uint8Array {
  return f.relation(
    {
      relid: OTHER_RELID,
      namespace: "",
      name: "lines",
      replident: "f",
      columns: [{ flags: 1, name: "n", typeOid: 20, typmod: -1 }],
    },
    options,
  );
}

/** Feeds `[walStart, bytes]` pairs to one assembler. */
class Harness {
  readonly assembler: TransactionAssembler;

  constructor(protoVersion: ProtoVersion = 4) {
    this.assembler = new TransactionAssembler({ protoVersion });
  }

  get decoder(): PgoutputDecoder {
    return this.assembler.decoder;
  }

  /** Every item produced, in order. */
  feed(...frames: [number, Uint8Array][]): StreamItem[] {
    const items: StreamItem[] = [];
    for (const [walStart, bytes] of frames) {
      items.push(...this.assembler.push(BigInt(walStart) as Lsn, bytes));
    }
    return items;
  }
}

function changes(items: StreamItem[]): ChangeEvent[] {
  return items.flatMap((item) => item.kind === "change" ? [item.event] : []);
}

function kinds(items: StreamItem[]): string[] {
  return items.map((item) => item.kind === "change" ? `change:${item.event.op}` : item.kind);
}

function beginFrame(xid: number, finalLsn = 0x900): Uint8Array {
  return f.begin({ finalLsn: BigInt(finalLsn), commitTime: 1000n, xid });
}

function commitFrame(commitLsn = 0x900, endLsn = 0x930): Uint8Array {
  return f.commit({ commitLsn: BigInt(commitLsn), endLsn: BigInt(endLsn), commitTime: 1000n });
}

// ---------------------------------------------------------------------------
// Plain transactions

Deno.test("assembler: insert is a 'c' event with after, source and commit", () => {
  const h = new Harness();
  const items = h.feed(
    [0x100, beginFrame(42)],
    [0x100, ordersRelation()],
    [0x110, f.insert(RELID, [{ t: "1" }, { t: "new" }, null])],
    [0x930, commitFrame()],
  );
  assert.deepEqual(kinds(items), ["begin", "change:c", "commit"]);
  // firstLsn: the Begin's position, where the transaction's first record starts.
  const tx = {
    xid: 42,
    commitLsn: 0x900n,
    commitTime: 1000n + EPOCH_2000,
    streamed: false,
    firstLsn: 0x100n,
  };
  assert.deepEqual(items[0], { kind: "begin", tx });
  assert.deepEqual(changes(items)[0], {
    op: "c",
    source: {
      schema: "public",
      table: "orders",
      relid: RELID,
      lsn: 0x110n,
      commitLsn: 0x900n,
      xid: 42,
      commitTime: 1000n + EPOCH_2000,
    },
    before: null,
    after: { id: 1, status: "new", body: null },
    unchanged: [],
    // The relation the row was decoded with (a symbol key, so not in JSON).
    [EVENT_RELATION]: h.assembler.relations.get(RELID),
  });
  assert.deepEqual(
    changes(items)[0]?.[EVENT_RELATION]?.columns.map((column) => [column.name, column.typeOid]),
    [["id", 23], ["status", 25], ["body", 25]],
  );
  assert.deepEqual(items[2], { kind: "commit", tx, endLsn: 0x930n, eventCount: 1 });
  assert.equal(h.assembler.inTransaction, false);
});

Deno.test("assembler: update with a K tuple keeps only key columns in before", () => {
  const h = new Harness();
  const items = h.feed(
    [0x100, beginFrame(42)],
    [0x100, ordersRelation()],
    [
      0x110,
      f.update(RELID, {
        old: { kind: "K", tuple: [{ t: "1" }, null, null] },
        new: [{ t: "2" }, { t: "paid" }, "u"],
      }),
    ],
    [0x930, commitFrame()],
  );
  const [event] = changes(items);
  assert.equal(event?.op, "u");
  assert.deepEqual(event?.before, { id: 1 });
  assert.deepEqual(event?.after, { id: 2, status: "paid" });
  assert.ok(!("body" in event!.after!));
  assert.deepEqual(event?.unchanged, ["body"]);
});

Deno.test("assembler: update without an old tuple has before null", () => {
  const h = new Harness();
  const items = h.feed(
    [0x100, beginFrame(42)],
    [0x100, ordersRelation()],
    [0x110, f.update(RELID, { new: [{ t: "1" }, "u", "u"] })],
    [0x930, commitFrame()],
  );
  const [event] = changes(items);
  assert.equal(event?.before, null);
  assert.deepEqual(event?.after, { id: 1 });
  assert.deepEqual(event?.unchanged, ["status", "body"]);
});

Deno.test("assembler: update with an O tuple keeps the whole old row", () => {
  const h = new Harness();
  const items = h.feed(
    [0x100, beginFrame(42)],
    [0x100, ordersRelation()],
    [
      0x110,
      f.update(RELID, {
        old: { kind: "O", tuple: [{ t: "1" }, { t: "new" }, { t: "big" }] },
        new: [{ t: "1" }, { t: "paid" }, { t: "big" }],
      }),
    ],
    [0x930, commitFrame()],
  );
  const [event] = changes(items);
  assert.deepEqual(event?.before, { id: 1, status: "new", body: "big" });
  assert.deepEqual(event?.after, { id: 1, status: "paid", body: "big" });
  assert.deepEqual(event?.unchanged, []);
});

Deno.test("assembler: delete with K and with O", () => {
  const h = new Harness();
  const items = h.feed(
    [0x100, beginFrame(42)],
    [0x100, ordersRelation()],
    [0x110, f.deleteMsg(RELID, { kind: "K", tuple: [{ t: "1" }, null, null] })],
    [0x120, f.deleteMsg(RELID, { kind: "O", tuple: [{ t: "2" }, { t: "x" }, null] })],
    [0x930, commitFrame()],
  );
  const [key, old] = changes(items);
  assert.equal(key?.op, "d");
  assert.deepEqual(key?.before, { id: 1 });
  assert.equal(key?.after, null);
  assert.deepEqual(key?.unchanged, []);
  assert.deepEqual(old?.before, { id: 2, status: "x", body: null });
  assert.equal(old?.source.lsn, 0x120n);
  const commit = items.at(-1);
  assert.equal(commit?.kind === "commit" && commit.eventCount, 2);
});

Deno.test("assembler: truncate of two relations gives two 't' events", () => {
  const h = new Harness();
  const items = h.feed(
    [0x100, beginFrame(42)],
    [0x100, ordersRelation()],
    [0x100, linesRelation()],
    [0x110, f.truncate([RELID, OTHER_RELID], 3)],
    [0x930, commitFrame()],
  );
  assert.deepEqual(kinds(items), ["begin", "change:t", "change:t", "commit"]);
  const [a, b] = changes(items);
  assert.deepEqual([a?.source.table, b?.source.table], ["orders", "lines"]);
  assert.deepEqual(b?.source.schema, "pg_catalog");
  for (const event of [a, b]) {
    assert.equal(event?.before, null);
    assert.equal(event?.after, null);
    assert.deepEqual(event?.truncate, { cascade: true, restartIdentity: true });
  }
  const commit = items.at(-1);
  assert.equal(commit?.kind === "commit" && commit.eventCount, 2);
});

Deno.test("assembler: origin is copied to the transaction and its events", () => {
  const h = new Harness();
  const items = h.feed(
    [0x100, beginFrame(42)],
    [0x100, f.origin({ lsn: 0x50n, name: "upstream" })],
    [0x100, ordersRelation()],
    [0x110, f.insert(RELID, [{ t: "1" }, null, null])],
    [0x930, commitFrame()],
  );
  assert.equal(changes(items)[0]?.source.origin, "upstream");
  const commit = items.at(-1);
  assert.equal(commit?.kind === "commit" && commit.tx.origin, "upstream");
});

Deno.test("assembler: transactional and non-transactional messages", () => {
  const h = new Harness();
  const content = new Uint8Array([0, 0xff]);
  const loose = h.feed([
    0x50,
    f.message({ transactional: false, lsn: 0x50n, prefix: "p", content }),
  ]);
  // size: the message's bytes (tag, flags, LSN, "p\0", length, content).
  assert.deepEqual(loose, [{
    kind: "message",
    event: { op: "m", transactional: false, prefix: "p", content, lsn: 0x50n },
    size: 1 + 1 + 8 + 2 + 4 + 2,
  }]);
  const items = h.feed(
    [0x100, beginFrame(42)],
    [0x110, f.message({ transactional: true, lsn: 0x110n, prefix: "q", content })],
    [0x930, commitFrame()],
  );
  assert.deepEqual(items[1], {
    kind: "message",
    event: {
      op: "m",
      transactional: true,
      prefix: "q",
      content,
      lsn: 0x110n,
      xid: 42,
      commitLsn: 0x900n,
      commitTime: 1000n + EPOCH_2000,
    },
    size: 18,
  });
  const commit = items.at(-1);
  assert.equal(commit?.kind === "commit" && commit.eventCount, 1);
});

// ---------------------------------------------------------------------------
// Streamed transactions

Deno.test("assembler: streamed transaction is buffered until Stream Commit", () => {
  const h = new Harness();
  const buffered = h.feed(
    [0x100, f.streamStart(700, true)],
    [0x100, ordersRelation({ xid: 700 })],
    [0x110, f.insert(RELID, [{ t: "1" }, null, null], { xid: 700 })],
    [0x120, f.insert(RELID, [{ t: "2" }, null, null], { xid: 701 })],
    [0x130, f.streamStop()],
    [0x200, f.streamStart(700, false)],
    [0x210, f.update(RELID, { new: [{ t: "2" }, { t: "s" }, "u"] }, { xid: 700 })],
    [0x220, f.streamStop()],
  );
  assert.deepEqual(buffered, []);
  assert.equal(h.assembler.openStreamedTransactions, 1);

  const items = h.feed([
    0x540,
    f.streamCommit({ xid: 700, commitLsn: 0x500n, endLsn: 0x540n, commitTime: 77n }),
  ]);
  assert.deepEqual(kinds(items), ["begin", "change:c", "change:c", "change:u", "commit"]);
  const tx = { xid: 700, commitLsn: 0x500n, commitTime: 77n + EPOCH_2000, streamed: true };
  assert.deepEqual(items[0], { kind: "begin", tx });
  for (const event of changes(items)) {
    assert.equal(event.source.commitLsn, 0x500n);
    assert.equal(event.source.commitTime, 77n + EPOCH_2000);
    assert.equal(event.source.xid, 700);
  }
  assert.deepEqual(changes(items).map((event) => event.source.lsn), [0x110n, 0x120n, 0x210n]);
  assert.deepEqual(changes(items)[2]?.unchanged, ["body"]);
  assert.deepEqual(items.at(-1), { kind: "commit", tx, endLsn: 0x540n, eventCount: 3 });
  assert.equal(h.assembler.openStreamedTransactions, 0);
});

Deno.test("assembler: subtransaction abort drops only that subtransaction's changes", () => {
  const h = new Harness();
  h.feed(
    [0x100, f.streamStart(700, true)],
    [0x100, ordersRelation({ xid: 700 })],
    [0x110, f.insert(RELID, [{ t: "1" }, null, null], { xid: 700 })],
    [0x120, f.insert(RELID, [{ t: "2" }, null, null], { xid: 701 })],
    [0x130, f.insert(RELID, [{ t: "3" }, null, null], { xid: 702 })],
    [0x140, f.insert(RELID, [{ t: "4" }, null, null], { xid: 701 })],
    [0x150, f.streamStop()],
  );
  assert.deepEqual(h.feed([0x160, f.streamAbort(700, 701)]), []);
  assert.equal(h.assembler.openStreamedTransactions, 1);
  const items = h.feed([
    0x540,
    f.streamCommit({ xid: 700, commitLsn: 0x500n, endLsn: 0x540n, commitTime: 0n }),
  ]);
  assert.deepEqual(changes(items).map((event) => event.after?.id), [1, 3]);
  const commit = items.at(-1);
  assert.equal(commit?.kind === "commit" && commit.eventCount, 2);
});

Deno.test("assembler: parallel-mode subtransaction abort (v4 fields) behaves the same", () => {
  const h = new Harness(4);
  h.feed(
    [0x100, f.streamStart(700, true)],
    [0x100, ordersRelation({ xid: 700 })],
    [0x110, f.insert(RELID, [{ t: "1" }, null, null], { xid: 700 })],
    [0x120, f.insert(RELID, [{ t: "2" }, null, null], { xid: 701 })],
    [0x150, f.streamStop()],
    [0x160, f.streamAbort(700, 701, { parallel: { abortLsn: 0x160n, abortTime: 5n } })],
  );
  const items = h.feed([
    0x540,
    f.streamCommit({ xid: 700, commitLsn: 0x500n, endLsn: 0x540n, commitTime: 0n }),
  ]);
  assert.deepEqual(changes(items).map((event) => event.after?.id), [1]);
});

Deno.test("assembler: full abort discards the whole streamed transaction", () => {
  const h = new Harness();
  const items = h.feed(
    [0x100, f.streamStart(700, true)],
    [0x100, ordersRelation({ xid: 700 })],
    [0x110, f.insert(RELID, [{ t: "1" }, null, null], { xid: 700 })],
    [0x120, f.insert(RELID, [{ t: "2" }, null, null], { xid: 701 })],
    [0x150, f.streamStop()],
    [0x160, f.streamAbort(700, 700)],
  );
  assert.deepEqual(items, []);
  assert.equal(h.assembler.openStreamedTransactions, 0);
});

Deno.test("assembler: a plain transaction between stream blocks is emitted at once", () => {
  const h = new Harness();
  const first = h.feed(
    [0x100, f.streamStart(700, true)],
    [0x100, ordersRelation({ xid: 700 }, TEXT_KEY_COLUMNS)],
    [0x110, f.insert(RELID, [{ t: "s1" }, null, null], { xid: 700 })],
    [0x120, f.streamStop()],
  );
  assert.deepEqual(first, []);

  // A Relation sent inside a stream block belongs to that transaction; pgoutput tracks
  // what it sent per streamed transaction and describes the relation again for this one.
  const plain = h.feed(
    [0x200, beginFrame(800, 0x260)],
    [0, ordersRelation(undefined, TEXT_KEY_COLUMNS)],
    [0x210, f.insert(RELID, [{ t: "p1" }, null, null])],
    [0x290, commitFrame(0x260, 0x290)],
  );
  assert.deepEqual(kinds(plain), ["begin", "change:c", "commit"]);
  assert.equal(changes(plain)[0]?.after?.id, "p1");
  assert.equal(changes(plain)[0]?.source.xid, 800);
  assert.equal(changes(plain)[0]?.source.commitLsn, 0x260n);

  const second = h.feed(
    [0x300, f.streamStart(700, false)],
    [0x310, f.insert(RELID, [{ t: "s2" }, null, null], { xid: 700 })],
    [0x320, f.streamStop()],
    [0x540, f.streamCommit({ xid: 700, commitLsn: 0x500n, endLsn: 0x540n, commitTime: 0n })],
  );
  assert.deepEqual(kinds(second), ["begin", "change:c", "change:c", "commit"]);
  assert.deepEqual(changes(second).map((event) => event.after?.id), ["s1", "s2"]);
});

Deno.test("assembler: two streamed transactions interleave and commit separately", () => {
  const h = new Harness();
  h.feed(
    [0x100, f.streamStart(700, true)],
    [0x100, ordersRelation({ xid: 700 }, TEXT_KEY_COLUMNS)],
    [0x110, f.insert(RELID, [{ t: "a" }, null, null], { xid: 700 })],
    [0x120, f.streamStop()],
    [0x130, f.streamStart(710, true)],
    [0x130, ordersRelation({ xid: 710 }, TEXT_KEY_COLUMNS)],
    [0x140, f.insert(RELID, [{ t: "b" }, null, null], { xid: 710 })],
    [0x150, f.streamStop()],
  );
  assert.equal(h.assembler.openStreamedTransactions, 2);
  const b = h.feed([
    0x640,
    f.streamCommit({ xid: 710, commitLsn: 0x600n, endLsn: 0x640n, commitTime: 0n }),
  ]);
  assert.deepEqual(changes(b).map((event) => event.after?.id), ["b"]);
  const a = h.feed([
    0x740,
    f.streamCommit({ xid: 700, commitLsn: 0x700n, endLsn: 0x740n, commitTime: 0n }),
  ]);
  assert.deepEqual(changes(a).map((event) => [event.after?.id, event.source.xid]), [["a", 700]]);
});

Deno.test("assembler: streamed transactional message gets its commit position", () => {
  const h = new Harness();
  const content = new Uint8Array([1]);
  h.feed(
    [0x100, f.streamStart(700, true)],
    [0x110, f.message({ transactional: true, lsn: 0x110n, prefix: "p", content }, { xid: 700 })],
    [0x120, f.streamStop()],
  );
  const items = h.feed([
    0x540,
    f.streamCommit({ xid: 700, commitLsn: 0x500n, endLsn: 0x540n, commitTime: 0n }),
  ]);
  assert.deepEqual(kinds(items), ["begin", "message", "commit"]);
  const item = items[1];
  assert.ok(item?.kind === "message");
  assert.equal(item.event.commitLsn, 0x500n);
  assert.equal(item.event.commitTime, EPOCH_2000);
});

Deno.test("assembler: streamed transactional message carries the xid", () => {
  const h = new Harness();
  h.feed(
    [0x100, f.streamStart(700, true)],
    [
      0x110,
      f.message({ transactional: true, lsn: 1n, prefix: "p", content: new Uint8Array(0) }, {
        xid: 700,
      }),
    ],
    [0x120, f.streamStop()],
  );
  const items = h.feed([
    0x540,
    f.streamCommit({ xid: 700, commitLsn: 0x500n, endLsn: 0x540n, commitTime: 0n }),
  ]);
  const item = items[1];
  assert.ok(item?.kind === "message");
  assert.equal(item.event.xid, 700);
});

// ---------------------------------------------------------------------------
// Two-phase

Deno.test("assembler: prepared transaction, then Commit Prepared", () => {
  const h = new Harness();
  const items = h.feed(
    [
      0x100,
      f.beginPrepare({ prepareLsn: 0x300n, endLsn: 0x330n, prepareTime: 1n, xid: 9, gid: "g1" }),
    ],
    [0x100, ordersRelation()],
    [0x110, f.insert(RELID, [{ t: "1" }, null, null])],
    [0x330, f.prepare({ prepareLsn: 0x300n, endLsn: 0x330n, prepareTime: 1n, xid: 9, gid: "g1" })],
  );
  assert.deepEqual(kinds(items), ["begin", "change:c", "prepare"]);
  const tx = {
    xid: 9,
    commitLsn: 0x300n,
    commitTime: 1n + EPOCH_2000,
    streamed: false,
    gid: "g1",
  };
  assert.deepEqual(items[0], { kind: "begin", tx });
  assert.deepEqual(items[2], { kind: "prepare", tx, endLsn: 0x330n, eventCount: 1 });
  assert.deepEqual(
    h.feed([
      0x430,
      f.commitPrepared({ commitLsn: 0x400n, endLsn: 0x430n, commitTime: 2n, xid: 9, gid: "g1" }),
    ]),
    [{
      kind: "commit-prepared",
      xid: 9,
      gid: "g1",
      commitLsn: 0x400n,
      endLsn: 0x430n,
      commitTime: 2n + EPOCH_2000,
    }],
  );
  assert.deepEqual(
    h.feed([
      0x530,
      f.rollbackPrepared({
        prepareEndLsn: 0x330n,
        rollbackEndLsn: 0x530n,
        prepareTime: 1n,
        rollbackTime: 3n,
        xid: 10,
        gid: "g2",
      }),
    ]),
    [{
      kind: "rollback-prepared",
      xid: 10,
      gid: "g2",
      endLsn: 0x530n,
      rollbackTime: 3n + EPOCH_2000,
    }],
  );
});

// ---------------------------------------------------------------------------
// Schema changes and errors

const WIDER: f.ColumnSpec[] = [...COLUMNS, { flags: 0, name: "total", typeOid: 1700, typmod: -1 }];

/** The schema change from `COLUMNS` to `WIDER`, as the assembler announces it. */
const WIDENED = {
  kind: "schema-change",
  relid: RELID,
  schema: "public",
  table: "orders",
  version: 2,
  previousColumns: ["id", "status", "body"],
  columns: ["id", "status", "body", "total"],
};

Deno.test("assembler: identical Relation resent gives no item; changed columns give one", () => {
  const h = new Harness();
  assert.deepEqual(h.feed([0x100, ordersRelation()]), []);
  assert.deepEqual(h.feed([0x110, ordersRelation()]), []);
  assert.equal(h.assembler.relations.version(RELID), 1);

  assert.deepEqual(h.feed([0x120, ordersRelation(undefined, WIDER)]), [WIDENED]);
  assert.deepEqual(h.feed([0x130, ordersRelation(undefined, WIDER)]), []);

  // A type change of one column is also a schema change.
  const retyped = WIDER.map((column) =>
    column.name === "total" ? { ...column, typeOid: 701 } : column
  );
  const items = h.feed([0x140, ordersRelation(undefined, retyped)]);
  assert.equal(items.length, 1);
  assert.equal(items[0]?.kind === "schema-change" && items[0].version, 3);

  // Changes decode against the newest columns.
  const rows = h.feed(
    [0x200, beginFrame(1)],
    [0x210, f.insert(RELID, [{ t: "1" }, null, null, { t: "9.5" }])],
    [0x230, commitFrame()],
  );
  // total is float8 (701) now; before the retype it was numeric (1700), a string.
  assert.deepEqual(changes(rows)[0]?.after, { id: 1, status: null, body: null, total: 9.5 });
});

/** A committed transaction that introduces `orders` with `COLUMNS`. */
function ordersIntroduced(h: Harness): void {
  h.feed(
    [0x100, beginFrame(1, 0x140)],
    [0x100, ordersRelation()],
    [0x110, f.insert(RELID, [{ t: "1" }, null, null])],
    [0x150, commitFrame(0x140, 0x150)],
  );
}

Deno.test("assembler: a schema change in a transaction dropped by reset() is announced again when it is re-sent", () => {
  const h = new Harness();
  ordersIntroduced(h);
  const widen: [number, Uint8Array][] = [
    [0x200, beginFrame(2)],
    [0x200, ordersRelation(undefined, WIDER)],
    [0x210, f.insert(RELID, [{ t: "2" }, null, null, { t: "9.50" }])],
  ];
  const cut = h.feed(...widen);
  assert.deepEqual(kinds(cut), ["begin", "schema-change", "change:c"]);
  assert.deepEqual(cut[1], WIDENED);

  // The connection is lost before the Commit; the new session re-sends the transaction whole.
  h.assembler.startSession(4);
  assert.equal(h.assembler.relations.version(RELID), 1);
  assert.deepEqual(h.assembler.relations.get(RELID)?.columns.length, 3);
  const resent = h.feed(...widen, [0x930, commitFrame()]);
  assert.deepEqual(kinds(resent), ["begin", "schema-change", "change:c", "commit"]);
  assert.deepEqual(resent[1], WIDENED, "the same change, with the same version");
  assert.deepEqual(changes(resent)[0]?.after, { id: 2, status: null, body: null, total: "9.50" });

  // Committed now: a reconnect keeps it, and a re-sent identical Relation announces nothing.
  h.assembler.startSession(4);
  assert.deepEqual(
    kinds(h.feed([0x300, beginFrame(3, 0x340)], [0x300, ordersRelation(undefined, WIDER)])),
    ["begin"],
  );
  assert.equal(h.assembler.relations.version(RELID), 2);
});

Deno.test("assembler: reset() forgets a relation first described by the dropped transaction", () => {
  const h = new Harness();
  h.feed([0x100, beginFrame(1)], [0x100, linesRelation()]);
  assert.ok(h.assembler.relations.get(OTHER_RELID) !== undefined);
  h.assembler.reset();
  assert.equal(h.assembler.relations.get(OTHER_RELID), undefined);
  assert.equal(h.assembler.relations.version(OTHER_RELID), 0);
});

Deno.test("assembler: a streamed transaction's schema change comes again after a reset() mid-replay", () => {
  const h = new Harness();
  ordersIntroduced(h);
  const streamed: [number, Uint8Array][] = [
    [0x200, f.streamStart(700, true)],
    [0x200, ordersRelation({ xid: 700 }, WIDER)],
    [0x210, f.insert(RELID, [{ t: "2" }, null, null, { t: "1" }], { xid: 700 })],
    [0x220, f.insert(RELID, [{ t: "3" }, null, null, { t: "2" }], { xid: 700 })],
    [0x230, f.streamStop()],
  ];
  const commit = f.streamCommit({ xid: 700, commitLsn: 0x500n, endLsn: 0x540n, commitTime: 7n });
  h.feed(...streamed);
  // The replay is consumed up to the first change; then the connection is lost.
  const replay = h.assembler.push(0x540n as Lsn, commit)[Symbol.iterator]();
  const partial = [replay.next().value, replay.next().value, replay.next().value] as StreamItem[];
  assert.deepEqual(kinds(partial), ["begin", "schema-change", "change:c"]);
  h.assembler.startSession(4);

  h.feed(...streamed);
  const items = h.feed([0x540, commit]);
  assert.deepEqual(kinds(items), ["begin", "schema-change", "change:c", "change:c", "commit"]);
  assert.deepEqual(items[1], WIDENED);
});

Deno.test("assembler: skipRows() reads past the open transaction's rows, undecoded, until its end", () => {
  const h = new Harness();
  const [begin] = h.feed([0x100, beginFrame(1)]);
  assert.equal(begin?.kind, "begin");
  h.assembler.skipRows();
  const skipped = h.feed(
    [0x100, ordersRelation(undefined, WIDER)],
    [0x110, f.insert(RELID, [{ t: "not a number" }, null, null, null])],
    [0x120, f.message({ transactional: true, lsn: 0x120n, prefix: "p", content: f.utf8("c") })],
    [0x930, commitFrame()],
  );
  assert.deepEqual(kinds(skipped), ["commit"]);
  assert.equal(h.assembler.relations.get(RELID)?.columns.length, 4, "the Relation applies");

  // The next transaction is decoded again; so is a streamed one, skipped after its begin.
  const next = h.feed(
    [0xa00, beginFrame(2, 0xa40)],
    [0xa10, f.insert(RELID, [{ t: "2" }, null, null, null])],
    [0xa50, commitFrame(0xa40, 0xa50)],
  );
  assert.deepEqual(kinds(next), ["begin", "change:c", "commit"]);
  h.feed(
    [0xb00, f.streamStart(700, true)],
    [0xb10, f.insert(RELID, [{ t: "x" }, null, null, null], { xid: 700 })],
    [0xb20, f.streamStop()],
  );
  const commit = f.streamCommit({ xid: 700, commitLsn: 0xc00n, endLsn: 0xc40n, commitTime: 7n });
  const replay = h.assembler.push(0xc40n as Lsn, commit)[Symbol.iterator]();
  assert.equal(replay.next().value?.kind, "begin");
  h.assembler.skipRows();
  assert.deepEqual(kinds([...{ [Symbol.iterator]: () => replay }]), ["commit"]);
});

Deno.test("assembler: column values are decoded by the Relation's type OIDs, text and binary", () => {
  const h = new Harness();
  const typed = f.relation({
    relid: RELID,
    namespace: "public",
    name: "typed",
    replident: "d",
    columns: [
      { flags: 1, name: "id", typeOid: 20, typmod: -1 }, // int8
      { flags: 0, name: "ok", typeOid: 16, typmod: -1 }, // bool
      { flags: 0, name: "data", typeOid: 17, typmod: -1 }, // bytea
      { flags: 0, name: "amount", typeOid: 1700, typmod: -1 }, // numeric
      { flags: 0, name: "at", typeOid: 1184, typmod: -1 }, // timestamptz
    ],
  });
  const int8 = new Uint8Array(8);
  new DataView(int8.buffer).setBigInt64(0, 9007199254740993n);
  const items = h.feed(
    [0x100, beginFrame(42)],
    [0x100, typed],
    [
      0x110,
      f.insert(RELID, [
        { t: "9007199254740993" },
        { t: "t" },
        { t: "\\x00ff" },
        { t: "123.4500" },
        { t: "2024-02-29 13:45:00.123456+00" },
      ]),
    ],
    [
      0x120,
      f.insert(RELID, [
        { b: int8 },
        { b: new Uint8Array([0]) },
        { b: new Uint8Array([1]) },
        null,
        null,
      ]),
    ],
    [0x930, commitFrame()],
  );
  assert.deepEqual(changes(items).map((event) => event.after), [
    {
      id: 9007199254740993n,
      ok: true,
      data: new Uint8Array([0x00, 0xff]),
      amount: "123.4500",
      at: "2024-02-29 13:45:00.123456+00",
    },
    { id: 9007199254740993n, ok: false, data: new Uint8Array([1]), amount: null, at: null },
  ]);
});

Deno.test("assembler: Type messages go to the relation cache", () => {
  const h = new Harness();
  assert.deepEqual(
    h.feed([0x100, f.typeMsg({ typeOid: 16500, namespace: "app", name: "mood" })]),
    [],
  );
  assert.equal(h.assembler.relations.type(16500)?.typeName, "mood");
});

Deno.test("assembler: a change without Begin, an unknown relation and a short tuple are DecodeErrors", () => {
  const h = new Harness();
  h.feed([0x100, ordersRelation()]);
  assert.throws(() => h.feed([0x110, f.insert(RELID, [{ t: "1" }, null, null])]), DecodeError);
  assert.throws(() => h.feed([0x110, commitFrame()]), /Commit without a Begin/);
  h.feed([0x120, beginFrame(5)]);
  assert.throws(
    () => h.feed([0x130, f.insert(99, [])]),
    (error: unknown) =>
      error instanceof DecodeError && /relation 99 was never described/.test(error.message),
  );
  assert.throws(
    () => h.feed([0x140, f.insert(RELID, [{ t: "1" }])]),
    (error: unknown) =>
      error instanceof DecodeError && /has 3 columns but the tuple has 1/.test(error.message),
  );
});

Deno.test("assembler: columns named __proto__, toString and constructor are plain own fields", () => {
  const h = new Harness();
  const columns: f.ColumnSpec[] = [
    { flags: 1, name: "__proto__", typeOid: 23, typmod: -1 },
    { flags: 0, name: "toString", typeOid: 25, typmod: -1 },
    { flags: 0, name: "constructor", typeOid: 25, typmod: -1 },
  ];
  const items = h.feed(
    [0x100, beginFrame(42)],
    [0x100, ordersRelation(undefined, columns)],
    [0x110, f.insert(RELID, [{ t: "7" }, { t: "s" }, null])],
    [0x930, commitFrame()],
  );
  const after = changes(items)[0]!.after!;
  assert.equal(Object.getPrototypeOf(after), Object.prototype, "the prototype is untouched");
  assert.deepEqual(Object.keys(after), ["__proto__", "toString", "constructor"]);
  assert.equal(Object.getOwnPropertyDescriptor(after, "__proto__")?.value, 7);
  assert.equal(after.toString, "s");
  assert.equal(after.constructor, null);
});

Deno.test("assembler: a value that cannot be decoded names its column, type and table", () => {
  const h = new Harness();
  h.feed([0x100, beginFrame(42)], [0x100, ordersRelation()]);
  assert.throws(
    () => h.feed([0x110, f.insert(RELID, [{ t: "abc" }, { t: "new" }, null])]),
    (error: unknown) =>
      error instanceof DecodeError && !error.retriable &&
      error.message.startsWith(
        'Cannot decode column "id" (type OID 23) of "public.orders": ',
      ) && error.message.includes("restart so it is read again"),
  );
});
