/**
 * Conformance against real PostgreSQL servers: streamed transactions (protocol 2+: commit,
 * abort, rolled-back savepoint, a small transaction between stream blocks, `parallel` with
 * protocol 4), the same through ReplicationSource and its TransactionAssembler, and two-phase
 * commit (protocol 3+, plain and streamed).
 *
 * Streaming is forced with `logical_decoding_work_mem = 64kB`, set for the walsender only (a
 * startup parameter of the replication connection). One server per version of
 * `testVersions("full")`; each step has its own table, publication and slot.
 * Numbers in step names refer to ../shared/reference/pgoutput.md §4.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { PgConnection } from "../postgres/connection.ts";
import {
  type InsertMessage,
  PgoutputDecoder,
  type PgoutputMessage,
  type RelationMessage,
  type StreamAbortMessage,
  type StreamStartMessage,
} from "../decoder/pgoutput.ts";
import { EVENT_RELATION } from "../events.ts";
import { ReplicationSource } from "../source/replication_source.ts";
import { type SourceItem } from "../events.ts";
import { type PgServer, testVersions } from "../testing/embedded_postgres.ts";
import {
  connectOptions,
  expectType,
  type Received,
  type Session,
  sqlConnection,
} from "./_replication.ts";
import {
  assertRecent,
  col,
  conformanceTests,
  type Ctx,
  dropSlot,
  INT4,
  relationMessage,
  relid,
  runTx,
  type Scenario,
  session,
  TEXT,
} from "./_conformance.ts";
import { range } from "./_runner_util.ts";

// ---------------------------------------------------------------------------------------------
// Helpers (the ones the conformance files share are in _conformance.ts)

/** Makes the walsender stream any transaction bigger than 64 kB. */
const WORK_MEM = { logical_decoding_work_mem: "64kB" };

/** Creates table `name` (id, payload) and a publication `name` for it; returns the table's OID. */
async function payloadTable(sql: PgConnection, name: string): Promise<number> {
  await sql.query(
    `CREATE TABLE ${name} (id int PRIMARY KEY, payload text);
     CREATE PUBLICATION ${name} FOR TABLE ${name}`,
  );
  return await relid(sql, name);
}

/** A protocol 2 session on a new slot `name` for publication `name`, streaming over 64 kB. */
function streamingSession(ctx: Ctx, name: string): Promise<Session> {
  return session(ctx, {
    slot: name,
    publication: name,
    protoVersion: 2,
    streaming: true,
    parameters: WORK_MEM,
  });
}

/** The Relation of a {@linkcode payloadTable}, sent inside a stream block of `xid`. */
function payloadRelation(relationId: number, relationName: string, xid: number): RelationMessage {
  return {
    ...relationMessage(relationId, relationName, [col("id", INT4, true), col("payload", TEXT)]),
    xid,
  };
}

/** The payload `bigInsert` writes for row `id`: ~100 bytes, so 2000 rows are far over 64 kB. */
function payload(id: number): string {
  return `${"x".repeat(100)}${id}`;
}

function bigInsert(table: string, from: number, to: number): string {
  return `INSERT INTO ${table} SELECT i, repeat('x', 100) || i FROM generate_series(${from}, ${to}) i`;
}

/** Collects until a message of `type` arrives. */
function collectUntil(s: Session, type: PgoutputMessage["type"]): Promise<Received[]> {
  return s.collect((r) => r[r.length - 1]!.message.type === type, 30_000);
}

/** A Stream Start … Stream Stop block, or one message outside any block. */
type Segment =
  | { kind: "block"; start: StreamStartMessage; body: Received[] }
  | { kind: "message"; received: Received };

function segments(received: Received[]): Segment[] {
  const out: Segment[] = [];
  let i = 0;
  while (i < received.length) {
    const r = received[i]!;
    i++;
    if (r.message.type !== "StreamStart") {
      assert.notEqual(r.message.type, "StreamStop", "Stream Stop without Stream Start");
      out.push({ kind: "message", received: r });
      continue;
    }
    const body: Received[] = [];
    while (i < received.length && received[i]!.message.type !== "StreamStop") {
      body.push(received[i]!);
      i++;
    }
    assert.ok(i < received.length, "a stream block was not closed");
    i++;
    out.push({ kind: "block", start: r.message, body });
  }
  return out;
}

function blocks(segs: Segment[]): Extract<Segment, { kind: "block" }>[] {
  return segs.filter((s) => s.kind === "block");
}

function inserts(received: Received[]): InsertMessage[] {
  return received.flatMap((r) => r.message.type === "Insert" ? [r.message] : []);
}

/** The messages of `segs` (which must hold no stream block). */
function outsideBlocks(segs: Segment[]): Received[] {
  return segs.map((seg) => {
    if (seg.kind !== "message") assert.fail("unexpected stream block");
    return seg.received;
  });
}

/** Narrows a source item to one kind, failing the test otherwise. */
function expectItem<K extends SourceItem["kind"]>(
  item: SourceItem | undefined,
  kind: K,
): Extract<SourceItem, { kind: K }> {
  if (item?.kind !== kind) assert.fail(`expected a ${kind} item, got ${item?.kind ?? "nothing"}`);
  return item as Extract<SourceItem, { kind: K }>;
}

/** The Insert each row id of `ids` gives, inside a stream block of `xid`. */
function expectedInserts(relationId: number, xid: number, ids: number[]): InsertMessage[] {
  return ids.map((id) => ({
    type: "Insert",
    xid,
    relationId,
    newTuple: [String(id), payload(id)],
  }));
}

/**
 * §4.33 for one streamed transaction: the first block says first segment, later ones do not;
 * every block is for `xid`; every message inside carries an xid; a Relation precedes the first
 * change. Returns the messages inside the blocks.
 */
function checkBlocks(segs: Segment[], xid: number): Received[] {
  const own = blocks(segs).filter((b) => b.start.xid === xid);
  assert.ok(own.length > 0, `no stream block for xid ${xid}`);
  own.forEach((b, i) => {
    assert.deepEqual(b.start, { type: "StreamStart", xid, firstSegment: i === 0 });
  });
  const body = own.flatMap((b) => b.body);
  for (const r of body) {
    assert.ok("xid" in r.message && typeof r.message.xid === "number", `${r.message.type} xid`);
  }
  assert.equal(body[0]?.message.type, "Relation", "the Relation comes before the first change");
  return body;
}

/** Collects until a Stream Stop closes a block that carried an Insert accepted by `want`. */
function collectBlockWith(s: Session, want: (m: InsertMessage) => boolean): Promise<Received[]> {
  let seen = false;
  return s.collect((r) => {
    const m = r[r.length - 1]!.message;
    if (m.type === "Insert" && want(m)) seen = true;
    return seen && m.type === "StreamStop";
  }, 30_000);
}

/** A row id of an Insert. */
function idOf(m: InsertMessage): number {
  return Number(m.newTuple[0]);
}

async function rollbackPrepared(sql: PgConnection): Promise<void> {
  const [prepared] = await sql.query("SELECT gid FROM pg_prepared_xacts");
  for (const [gid] of prepared?.rows ?? []) await sql.query(`ROLLBACK PREPARED '${gid}'`);
}

/**
 * On a connection of its own, begins a transaction that inserts rows 1–`to` into `table`, then
 * runs `rest`, which must end it. Returns the transaction's (top-level) xid.
 */
async function bigTransaction(
  pg: PgServer,
  table: string,
  to: number,
  rest: (tx: PgConnection) => Promise<void>,
): Promise<number> {
  await using tx = await sqlConnection(pg);
  const [, , result] = await tx.query(
    `BEGIN; ${bigInsert(table, 1, to)}; SELECT pg_current_xact_id()::text`,
  );
  await rest(tx);
  return Number(result?.rows[0]?.[0]);
}

/**
 * A big transaction that rolls back only after `streamed` saw part of it streamed: a walsender
 * that decodes an already aborted transaction stops at its first catalog access and streams an
 * empty block, so the abort must come while the transaction is alive. Returns the xid.
 */
function abortAfterStreaming(
  pg: PgServer,
  table: string,
  streamed: () => Promise<void>,
): Promise<number> {
  return bigTransaction(pg, table, 2000, async (tx) => {
    await streamed();
    await tx.query("ROLLBACK");
  });
}

/**
 * Rows 1–1000 and 2001–2100 survive; 1001–2000 are rolled back with their savepoint, after
 * `streamed` saw some of them streamed (see abortAfterStreaming). Returns the top-level xid.
 */
function savepointAfterStreaming(
  pg: PgServer,
  table: string,
  streamed: () => Promise<void>,
): Promise<number> {
  return bigTransaction(pg, table, 1000, async (tx) => {
    await tx.query(`SAVEPOINT a; ${bigInsert(table, 1001, 2000)}`);
    await streamed();
    await tx.query(
      `ROLLBACK TO SAVEPOINT a; RELEASE SAVEPOINT a; ${bigInsert(table, 2001, 2100)}; COMMIT`,
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/** §4.33: a big committed transaction: blocks, xids on every change, then Stream Commit. */
async function streamedCommit(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  const oid = await payloadTable(sql, "st_commit");
  await using s = await streamingSession(ctx, "st_commit");
  const xid = await runTx(sql, bigInsert("st_commit", 1, 2000));
  const received = await s.collectTransactions(1, 30_000);
  const segs = segments(received);
  const own = blocks(segs);
  assert.ok(own.length >= 2, `expected several stream blocks, got ${own.length}`);
  assert.equal(segs.length, own.length + 1, "only blocks, then the Stream Commit");
  const body = checkBlocks(segs, xid);
  assert.deepEqual(body[0]!.message, payloadRelation(oid, "st_commit", xid));
  // The schema goes out once per streamed transaction.
  assert.equal(body.filter((r) => r.message.type === "Relation").length, 1);
  assert.deepEqual(inserts(body), expectedInserts(oid, xid, range(1, 2000)));

  const last = received[received.length - 1]!;
  const commit = expectType(last, "StreamCommit");
  assert.deepEqual(commit, {
    type: "StreamCommit",
    xid,
    flags: 0,
    commitLsn: commit.commitLsn,
    endLsn: commit.endLsn,
    commitTime: commit.commitTime,
  });
  assert.equal(last.walStart, commit.endLsn, "XLogData dataStart of Stream Commit = endLsn");
  assert.ok(commit.commitLsn < commit.endLsn);
  assertRecent(commit.commitTime, "commit time");
  const changes = body.filter((r) => r.message.type === "Insert");
  assert.ok(changes.every((r) => r.walStart > 0n && r.walStart < commit.commitLsn));
  assert.ok(changes.every((r, i) => i === 0 || r.walStart > changes[i - 1]!.walStart));
  assert.equal(s.decoder.inStreamBlock, false);
}

/** §4.35: a big transaction that aborts: blocks, then Stream Abort with subXid = xid. */
async function streamedAbort(ctx: Ctx): Promise<void> {
  const { sql, pg } = ctx;
  const oid = await payloadTable(sql, "st_abort");
  await using s = await streamingSession(ctx, "st_abort");
  const received: Received[] = [];
  const xid = await abortAfterStreaming(pg, "st_abort", async () => {
    received.push(...await collectBlockWith(s, () => true));
  });
  const marker = await runTx(sql, "INSERT INTO st_abort VALUES (0, 'marker')");
  received.push(...await collectUntil(s, "Commit"));
  const segs = segments(received);
  const body = checkBlocks(segs, xid);
  const streamed = inserts(body);
  assert.ok(streamed.length > 0);
  assert.deepEqual(streamed, expectedInserts(oid, xid, range(1, streamed.length)));

  const rest = outsideBlocks(segs.slice(blocks(segs).length));
  // Protocol 2 ('on'): no abort LSN and time.
  assert.deepEqual(expectType(rest[0], "StreamAbort"), { type: "StreamAbort", xid, subXid: xid });
  assert.deepEqual(rest.slice(1).map((r) => r.message.type), [
    "Begin",
    "Relation",
    "Insert",
    "Commit",
  ]);
  assert.equal(expectType(rest[1], "Begin").xid, marker);
  // Schemas sent inside a streamed transaction do not count for the others: sent again.
  assert.equal(expectType(rest[2], "Relation").xid, undefined);
  assert.deepEqual(rest[3]!.message, {
    type: "Insert",
    relationId: oid,
    newTuple: ["0", "marker"],
  });
}

/**
 * §4.34: SAVEPOINT … ROLLBACK TO in a streamed transaction: the rolled-back subtransaction's
 * changes carry its own xid, and Stream Abort names it (subXid ≠ xid).
 */
async function streamedSavepoint(ctx: Ctx): Promise<void> {
  const { sql, pg } = ctx;
  const oid = await payloadTable(sql, "st_savepoint");
  await using s = await streamingSession(ctx, "st_savepoint");
  const received: Received[] = [];
  const xid = await savepointAfterStreaming(pg, "st_savepoint", async () => {
    received.push(...await collectBlockWith(s, (m) => idOf(m) > 1000));
  });
  received.push(...await s.collectTransactions(1, 30_000));
  const abort = checkSavepointStream(segments(received), oid, xid);
  assert.deepEqual(abort, { type: "StreamAbort", xid, subXid: abort.subXid });
  const commit = expectType(received[received.length - 1], "StreamCommit");
  assert.equal(commit.xid, xid);
}

/** Checks the stream of `savepointAfterStreaming`; returns the subtransaction's Stream Abort. */
function checkSavepointStream(segs: Segment[], oid: number, xid: number): StreamAbortMessage {
  const body = checkBlocks(segs, xid);
  const all = inserts(body);
  const subXid = all.find((m) => idOf(m) > 1000)?.xid;
  assert.ok(subXid !== undefined && subXid !== xid, `subtransaction xid ${subXid}`);
  assert.ok(subXid > xid, "the subtransaction's xid is assigned after the top-level one");
  // Only part of the subtransaction may have been streamed before ROLLBACK TO was decoded.
  const streamedSub = all.filter((m) => m.xid === subXid);
  assert.deepEqual(
    streamedSub,
    expectedInserts(oid, subXid, range(1001, 1000 + streamedSub.length)),
  );
  assert.deepEqual(
    all.filter((m) => m.xid === xid),
    expectedInserts(oid, xid, [...range(1, 1000), ...range(2001, 2100)]),
  );
  assert.equal(all.length, 1100 + streamedSub.length, "no change with another xid");

  // Stream Abort sits between blocks: after the last rolled-back change, before row 2001.
  const aborts = segs.flatMap((seg, i) =>
    seg.kind === "message" && seg.received.message.type === "StreamAbort" ? [i] : []
  );
  assert.equal(aborts.length, 1);
  const at = aborts[0]!;
  const abort = expectType(outsideBlocks([segs[at]!])[0], "StreamAbort");
  assert.equal(abort.xid, xid);
  assert.equal(abort.subXid, subXid);
  const before = blocks(segs.slice(0, at)).flatMap((b) => b.body);
  const after = blocks(segs.slice(at)).flatMap((b) => b.body);
  assert.ok(inserts(before).some((m) => m.xid === subXid));
  assert.ok(inserts(after).every((m) => m.xid === xid) && inserts(after).length > 0);
  // pgoutput forgets which schemas a streamed transaction has seen when any part of it
  // aborts, so the Relation comes once before and once after the Stream Abort.
  assert.deepEqual(before.filter((r) => r.message.type === "Relation").length, 1);
  assert.deepEqual(after.filter((r) => r.message.type === "Relation").length, 1);
  assert.equal(after[0]?.message.type, "Relation");
  return abort;
}

/** §4.36: a small transaction that commits while a big one streams arrives between blocks. */
async function interleaved(ctx: Ctx): Promise<void> {
  const { sql, pg } = ctx;
  const oid = await payloadTable(sql, "st_mixed");
  await using s = await streamingSession(ctx, "st_mixed");
  await using big = await sqlConnection(pg);
  const [, , xidResult] = await big.query(
    `BEGIN; ${bigInsert("st_mixed", 1, 2000)}; SELECT pg_current_xact_id()::text`,
  );
  const bigXid = Number(xidResult?.rows[0]?.[0]);
  const smallXid = await runTx(sql, "INSERT INTO st_mixed VALUES (0, 'small')");
  await big.query(`${bigInsert("st_mixed", 2001, 4000)}; COMMIT`);

  const received = await s.collectTransactions(2, 30_000);
  const segs = segments(received);
  const body = checkBlocks(segs, bigXid);
  assert.deepEqual(inserts(body), expectedInserts(oid, bigXid, range(1, 4000)));
  const begin = segs.findIndex((seg) =>
    seg.kind === "message" && seg.received.message.type === "Begin"
  );
  assert.ok(begin > 0 && blocks(segs.slice(0, begin)).length > 0, "a block before the small one");
  assert.ok(blocks(segs.slice(begin)).length > 0, "a block after the small one");
  const small = outsideBlocks(segs.slice(begin, begin + 4));
  assert.deepEqual(small.map((r) => r.message.type), ["Begin", "Relation", "Insert", "Commit"]);
  assert.equal(expectType(small[0], "Begin").xid, smallXid);
  assert.deepEqual(small[2]!.message, {
    type: "Insert",
    relationId: oid,
    newTuple: ["0", "small"],
  });
  const end = expectType(received[received.length - 1], "StreamCommit");
  assert.equal(end.xid, bigXid);
}

/**
 * The same workloads through ReplicationSource: the aborted transaction yields nothing, the
 * savepoint one exactly its surviving rows, as one transaction at its commit.
 */
async function sourceAssemblesStreams(ctx: Ctx): Promise<void> {
  const { sql, pg } = ctx;
  const oid = await payloadTable(sql, "st_source");
  await withStreamingSource(ctx, "st_source", async (source, pump, seen) => {
    await abortAfterStreaming(pg, "st_source", () => pump.until(blockWith(seen, () => true)));
    const xid = await savepointAfterStreaming(
      pg,
      "st_source",
      () => pump.until(blockWith(seen, (m) => idOf(m) > 1000)),
    );
    const marker = await runTx(sql, "INSERT INTO st_source VALUES (0, 'marker')");
    await pump.until(() => pump.items.filter((i) => i.kind === "commit").length === 2);
    const items = pump.items;
    assert.ok(seen.filter((m) => m.type === "StreamAbort").length === 2, "both aborts streamed");

    assert.deepEqual(items.map((i) => i.kind), [
      "begin",
      ...Array(1100).fill("change"),
      "commit",
      "begin",
      "change",
      "commit",
    ]);
    const begin = expectItem(items[0], "begin");
    const commit = expectItem(items[1101], "commit");
    const tx = begin.tx;
    assert.deepEqual(tx, {
      xid,
      commitLsn: tx.commitLsn,
      commitTime: tx.commitTime,
      streamed: true,
    });
    assertRecent(tx.commitTime, "commit time");
    assert.deepEqual(commit, { kind: "commit", tx, endLsn: commit.endLsn, eventCount: 1100 });
    assert.ok(commit.endLsn > tx.commitLsn);
    const ids = [...range(1, 1000), ...range(2001, 2100)];
    // The Relation sent inside the stream block (so it carries the xid), which the rows decode with.
    const relation = payloadRelation(oid, "st_source", xid);
    items.slice(1, 1101).forEach((item, i) => {
      const event = expectItem(item, "change").event;
      const id = ids[i]!;
      assert.deepEqual(event, {
        op: "c",
        source: {
          schema: "public",
          table: "st_source",
          relid: oid,
          lsn: event.source.lsn,
          commitLsn: tx.commitLsn,
          xid,
          commitTime: tx.commitTime,
        },
        before: null,
        after: { id, payload: payload(id) },
        unchanged: [],
        [EVENT_RELATION]: relation,
      });
      assert.ok(event.source.lsn > 0n && event.source.lsn < tx.commitLsn);
    });
    const markerBegin = expectItem(items[1102], "begin");
    assert.equal(markerBegin.tx.xid, marker);
    assert.equal(markerBegin.tx.streamed, false);
    const markerChange = expectItem(items[1103], "change");
    assert.deepEqual(markerChange.event.after, { id: 0, payload: "marker" });
    assert.equal(source.assembler.openStreamedTransactions, 0);
    assert.equal(source.assembler.inTransaction, false);
  });
}

/**
 * Opens a ReplicationSource on a new slot `name` for publication `name` (protocol 2, streaming
 * over 64 kB) and runs `body` with it, a pump pulling from it and the messages it feeds its
 * assembler; then closes the source and drops the slot.
 */
async function withStreamingSource(
  ctx: Ctx,
  name: string,
  body: (source: ReplicationSource, pump: SourcePump, seen: PgoutputMessage[]) => Promise<void>,
  spill?: { memoryLimitBytes: number; dir: string },
): Promise<void> {
  const source = await ReplicationSource.open({
    connection: { ...connectOptions(ctx.pg), parameters: WORK_MEM },
    slot: name,
    createSlot: true,
    publication: name,
    protoVersion: 2,
    streaming: true,
    statusIntervalMs: 1000,
    ...(spill ? { spill } : {}),
  });
  const pump = new SourcePump(source);
  try {
    await body(source, pump, spyOn(source));
  } finally {
    await source.close();
    await pump.finish();
    await dropSlot(ctx.sql, name);
  }
}

/** Test spy: records every message the source feeds its assembler. */
function spyOn(source: ReplicationSource): PgoutputMessage[] {
  const seen: PgoutputMessage[] = [];
  const decoder = new PgoutputDecoder({ protoVersion: source.protoVersion });
  const push = source.assembler.push.bind(source.assembler);
  source.assembler.push = (walStart, bytes) => {
    seen.push(decoder.decode(bytes));
    return push(walStart, bytes);
  };
  return seen;
}

/** Whether `seen` holds an Insert accepted by `want` and, after it, a Stream Stop. */
function blockWith(seen: PgoutputMessage[], want: (m: InsertMessage) => boolean): () => boolean {
  return () => {
    const first = seen.findIndex((m) => m.type === "Insert" && want(m));
    return first >= 0 && seen.slice(first).some((m) => m.type === "StreamStop");
  };
}

function commitCount(items: SourceItem[]): number {
  return items.filter((item) => item.kind === "commit").length;
}

/**
 * Streamed transactions past `spill.memory_limit` (256 kB here; 30,000 rows are ~4 MB of
 * pgoutput): the source spills them to a file in `spill.dir`, an aborted one is discarded with
 * its file, and a committed one comes out whole and in order, its file removed after the replay.
 */
async function sourceSpillsStreams(ctx: Ctx): Promise<void> {
  const { sql, pg } = ctx;
  const rows = 30_000;
  const oid = await payloadTable(sql, "st_spill");
  const dir = await Deno.makeTempDir({ prefix: "spillway-spill-" });
  const spillFiles = () => [...Deno.readDirSync(dir)].map((entry) => entry.name);
  try {
    await withStreamingSource(ctx, "st_spill", async (source, pump, seen) => {
      const spill = source.assembler.spill;
      await bigTransaction(pg, "st_spill", rows, async (tx) => {
        await pump.until(() => spill.spilledBytes > 0);
        assert.equal(spillFiles().length, 1, "the aborted transaction spilled to one file");
        await tx.query("ROLLBACK");
      });
      await pump.until(() => seen.some((m) => m.type === "StreamAbort"));
      assert.deepEqual(spillFiles(), [], "the aborted transaction's spill file is gone");
      const spilledBeforeCommit = spill.spilledBytes;

      const xid = await runTx(sql, bigInsert("st_spill", 1, rows));
      await pump.until(() => commitCount(pump.items) === 1, 60_000);
      assert.ok(spill.spilledBytes > spilledBeforeCommit, "the committed transaction spilled too");
      assert.deepEqual(spillFiles(), [], "its spill file is removed after the replay");
      const items = pump.items;
      assert.equal(items.length, rows + 2);
      const begin = expectItem(items[0], "begin");
      assert.equal(begin.tx.xid, xid);
      assert.equal(begin.tx.streamed, true);
      for (let i = 1; i <= rows; i++) {
        const event = expectItem(items[i], "change").event;
        if (event.after?.id !== i || event.after?.payload !== payload(i)) {
          assert.fail(`row ${i}: ${JSON.stringify(event.after)}`);
        }
        assert.equal(event.source.relid, oid);
        assert.equal(event.source.commitLsn, begin.tx.commitLsn);
      }
      const commit = expectItem(items[rows + 1], "commit");
      assert.equal(commit.eventCount, rows);
      assert.equal(source.assembler.openStreamedTransactions, 0);
    }, { memoryLimitBytes: 256 << 10, dir });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * DDL inside a streamed transaction that aborts after streaming: its Relation (with the new
 * column) arrives in a stream block, but that schema never existed for anyone. The source must
 * yield nothing for the transaction, no schema change either, and keep the relation at
 * version 1 (pgoutput.md §6: pending schemas of a streamed transaction are discarded on Stream
 * Abort).
 */
async function abortedStreamedDdl(ctx: Ctx): Promise<void> {
  const { sql, pg } = ctx;
  const oid = await payloadTable(sql, "st_ddl");
  await withStreamingSource(ctx, "st_ddl", async (source, pump, seen) => {
    const before = await runTx(sql, "INSERT INTO st_ddl VALUES (-1, 'before')");
    await pump.until(() => commitCount(pump.items) === 1);
    {
      await using tx = await sqlConnection(pg);
      await tx.query(
        `BEGIN; ALTER TABLE st_ddl ADD COLUMN extra int DEFAULT 7; ${bigInsert("st_ddl", 1, 2000)}`,
      );
      await pump.until(blockWith(seen, () => true));
      await tx.query("ROLLBACK");
    }
    const streamedRelation = seen.find((m) => m.type === "Relation" && m.xid !== undefined);
    assert.ok(streamedRelation?.type === "Relation", "the streamed block carried a Relation");
    assert.deepEqual(streamedRelation.columns.map((c) => c.name), ["id", "payload", "extra"]);
    const after = await runTx(sql, "INSERT INTO st_ddl VALUES (0, 'after')");
    await pump.until(() => commitCount(pump.items) === 2);

    assert.deepEqual(pump.items.map((item) => item.kind), [
      "begin",
      "change",
      "commit",
      "begin",
      "change",
      "commit",
    ]);
    assert.equal(expectItem(pump.items[0], "begin").tx.xid, before);
    assert.equal(expectItem(pump.items[3], "begin").tx.xid, after);
    assert.deepEqual(expectItem(pump.items[4], "change").event.after, {
      id: 0,
      payload: "after",
    });
    assert.equal(source.assembler.relations.version(oid), 1);
    assert.equal(source.assembler.relations.get(oid)?.columns.length, 2);
  });
}

/** Pulls batches from a source on demand, keeping every item, without losing a pending one. */
class SourcePump {
  readonly items: SourceItem[] = [];
  #iterator: AsyncGenerator<SourceItem[]>;
  #pending: Promise<IteratorResult<SourceItem[]>> | null = null;

  constructor(source: ReplicationSource) {
    this.#iterator = source.batches();
  }

  /**
   * Pulls until `done()` holds. The source yields nothing while a streamed transaction is
   * open, so `done()` is checked again every 20 ms while a pull is pending.
   */
  async until(done: () => boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) {
        throw new Error(`Timed out; items so far: ${this.items.map((i) => i.kind).join(", ")}`);
      }
      this.#pending ??= this.#iterator.next();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const next = await Promise.race([
        this.#pending,
        new Promise<"poll">((resolve) => timer = setTimeout(() => resolve("poll"), 20)),
      ]);
      clearTimeout(timer);
      if (next === "poll") continue;
      this.#pending = null;
      assert.ok(!next.done, "the source ended");
      this.items.push(...next.value);
    }
  }

  /** Waits for a pull still in flight (call after closing the source). */
  async finish(): Promise<void> {
    await this.#pending?.catch(() => {});
    await this.#iterator.return(undefined);
  }
}

/**
 * §4.35 with `streaming 'parallel'` (protocol 4, PG16+): Stream Abort carries the abort LSN and
 * time, for a whole transaction and for a subtransaction; with 'on' it does not.
 */
async function parallelAbort(ctx: Ctx): Promise<void> {
  const { sql, pg } = ctx;
  const oid = await payloadTable(sql, "st_parallel");
  const options = { publication: "st_parallel", protoVersion: 4, parameters: WORK_MEM } as const;
  await using parallel = await session(ctx, {
    ...options,
    slot: "st_parallel",
    streaming: "parallel",
  });
  await using on = await session(ctx, { ...options, slot: "st_parallel_on", streaming: true });
  const withInfo: Received[] = [];
  const without: Received[] = [];
  const aborted = await abortAfterStreaming(pg, "st_parallel", async () => {
    withInfo.push(...await collectBlockWith(parallel, () => true));
    without.push(...await collectBlockWith(on, () => true));
  });
  const xid = await savepointAfterStreaming(pg, "st_parallel", async () => {
    withInfo.push(...await collectBlockWith(parallel, (m) => idOf(m) > 1000));
    without.push(...await collectBlockWith(on, (m) => idOf(m) > 1000));
  });
  withInfo.push(...await parallel.collectTransactions(1, 30_000));
  without.push(...await on.collectTransactions(1, 30_000));

  const abortAt = withInfo.findIndex((r) => r.message.type === "StreamAbort");
  const first = expectType(withInfo[abortAt], "StreamAbort");
  const lastAborted = withInfo.slice(0, abortAt).filter((r) => r.message.type === "Insert").at(-1);
  assert.ok(first.abortLsn !== undefined && lastAborted !== undefined);
  assert.deepEqual(first, {
    type: "StreamAbort",
    xid: aborted,
    subXid: aborted,
    abortLsn: first.abortLsn,
    abortTime: first.abortTime,
  });
  assert.ok(first.abortLsn > lastAborted.walStart, "the abort record follows the changes");
  assertRecent(first.abortTime, "abort time");

  const rest = withInfo.slice(abortAt + 1);
  const sub = checkSavepointStream(segments(rest), oid, xid);
  assert.ok(sub.abortLsn !== undefined, "subtransaction abort LSN");
  assert.ok(sub.abortLsn > first.abortLsn);
  const subChanges = rest.filter((r) =>
    r.message.type === "Insert" && r.message.xid === sub.subXid
  );
  assert.ok(sub.abortLsn > subChanges.at(-1)!.walStart);
  assertRecent(sub.abortTime, "subtransaction abort time");
  assert.ok(sub.abortTime! >= first.abortTime!);
  const commit = expectType(rest[rest.length - 1], "StreamCommit");
  assert.ok(sub.abortLsn < commit.commitLsn);

  const abortsOn = without.filter((r) => r.message.type === "StreamAbort").map((r) => r.message);
  assert.deepEqual(abortsOn, [
    { type: "StreamAbort", xid: aborted, subXid: aborted },
    { type: "StreamAbort", xid, subXid: sub.subXid },
  ]);
}

/** §4.37: PREPARE → Begin Prepare … Prepare; COMMIT PREPARED; ROLLBACK PREPARED. */
async function twoPhase(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  await sql.query(
    `CREATE TABLE tp_t (id int PRIMARY KEY, v text); CREATE PUBLICATION tp FOR TABLE tp_t`,
  );
  const oid = await relid(sql, "tp_t");
  await using s = await session(ctx, { slot: "tp", publication: "tp", twoPhase: true });
  try {
    const xid1 = await runTx(
      sql,
      "INSERT INTO tp_t VALUES (1, 'a')",
      "PREPARE TRANSACTION 'spillway_g1'",
    );
    assert.equal((await sql.query("SELECT count(*) FROM tp_t"))[0]?.rows[0]?.[0], "0");
    await sql.query("COMMIT PREPARED 'spillway_g1'");
    const xid2 = await runTx(
      sql,
      "INSERT INTO tp_t VALUES (2, 'b')",
      "PREPARE TRANSACTION 'spillway_g2'",
    );
    await sql.query("ROLLBACK PREPARED 'spillway_g2'");
    const xid3 = await runTx(sql, "INSERT INTO tp_t VALUES (3, 'c')");

    const received = await s.collectTransactions(5);
    assert.deepEqual(received.map((r) => r.message.type), [
      "BeginPrepare",
      "Relation",
      "Insert",
      "Prepare",
      "CommitPrepared",
      "BeginPrepare",
      "Insert",
      "Prepare",
      "RollbackPrepared",
      "Begin",
      "Insert",
      "Commit",
    ]);
    const [bp1, , i1, p1, cp, bp2, i2, p2, rp, b3, i3] = received;

    const beginPrepare1 = expectType(bp1, "BeginPrepare");
    const { prepareLsn, endLsn, prepareTime } = beginPrepare1;
    assert.deepEqual(beginPrepare1, {
      type: "BeginPrepare",
      prepareLsn,
      endLsn,
      prepareTime,
      xid: xid1,
      gid: "spillway_g1",
    });
    assert.ok(prepareLsn < endLsn && i1!.walStart < prepareLsn);
    assertRecent(prepareTime, "prepare time");
    assert.deepEqual(i1!.message, { type: "Insert", relationId: oid, newTuple: ["1", "a"] });
    assert.deepEqual(p1!.message, {
      type: "Prepare",
      flags: 0,
      prepareLsn,
      endLsn,
      prepareTime,
      xid: xid1,
      gid: "spillway_g1",
    });
    assert.equal(p1!.walStart, endLsn, "XLogData dataStart of Prepare = endLsn");

    const commitPrepared = expectType(cp, "CommitPrepared");
    assert.deepEqual(commitPrepared, {
      type: "CommitPrepared",
      flags: 0,
      commitLsn: commitPrepared.commitLsn,
      endLsn: commitPrepared.endLsn,
      commitTime: commitPrepared.commitTime,
      xid: xid1,
      gid: "spillway_g1",
    });
    assert.ok(commitPrepared.commitLsn >= endLsn);
    assert.ok(commitPrepared.commitLsn < commitPrepared.endLsn);
    assert.equal(cp!.walStart, commitPrepared.endLsn);
    assert.ok(commitPrepared.commitTime >= prepareTime);

    const beginPrepare2 = expectType(bp2, "BeginPrepare");
    assert.equal(beginPrepare2.xid, xid2);
    assert.equal(beginPrepare2.gid, "spillway_g2");
    assert.ok(beginPrepare2.prepareLsn > commitPrepared.endLsn);
    assert.deepEqual(i2!.message, { type: "Insert", relationId: oid, newTuple: ["2", "b"] });
    assert.deepEqual(p2!.message, {
      type: "Prepare",
      flags: 0,
      prepareLsn: beginPrepare2.prepareLsn,
      endLsn: beginPrepare2.endLsn,
      prepareTime: beginPrepare2.prepareTime,
      xid: xid2,
      gid: "spillway_g2",
    });
    const rollback = expectType(rp, "RollbackPrepared");
    assert.deepEqual(rollback, {
      type: "RollbackPrepared",
      flags: 0,
      prepareEndLsn: beginPrepare2.endLsn,
      rollbackEndLsn: rollback.rollbackEndLsn,
      prepareTime: beginPrepare2.prepareTime,
      rollbackTime: rollback.rollbackTime,
      xid: xid2,
      gid: "spillway_g2",
    });
    assert.ok(rollback.rollbackEndLsn > beginPrepare2.endLsn);
    assert.equal(rp!.walStart, rollback.rollbackEndLsn);
    assert.ok(rollback.rollbackTime >= beginPrepare2.prepareTime);
    assertRecent(rollback.rollbackTime, "rollback time");

    assert.equal(expectType(b3, "Begin").xid, xid3);
    assert.deepEqual(i3!.message, { type: "Insert", relationId: oid, newTuple: ["3", "c"] });
  } finally {
    await rollbackPrepared(sql);
  }
}

/** Two-phase and streaming together: blocks, then Stream Prepare; COMMIT PREPARED after. */
async function streamedTwoPhase(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  const oid = await payloadTable(sql, "tp_stream");
  await using s = await session(ctx, {
    slot: "tp_stream",
    publication: "tp_stream",
    protoVersion: 3,
    streaming: true,
    twoPhase: true,
    parameters: WORK_MEM,
  });
  try {
    const xid = await runTx(
      sql,
      bigInsert("tp_stream", 1, 2000),
      "PREPARE TRANSACTION 'spillway_big'",
    );
    await sql.query("COMMIT PREPARED 'spillway_big'");
    const received = await s.collectTransactions(2, 30_000);
    const segs = segments(received);
    const body = checkBlocks(segs, xid);
    assert.deepEqual(inserts(body), expectedInserts(oid, xid, range(1, 2000)));
    const tail = received.slice(-2);
    const prepare = tail[0]!.message;
    assert.equal(prepare.type, "StreamPrepare");
    assert.ok(prepare.type === "StreamPrepare");
    assert.deepEqual(prepare, {
      type: "StreamPrepare",
      flags: 0,
      prepareLsn: prepare.prepareLsn,
      endLsn: prepare.endLsn,
      prepareTime: prepare.prepareTime,
      xid,
      gid: "spillway_big",
    });
    assert.equal(tail[0]!.walStart, prepare.endLsn);
    assert.ok(prepare.prepareLsn < prepare.endLsn);
    assertRecent(prepare.prepareTime, "prepare time");
    const commit = expectType(tail[1], "CommitPrepared");
    assert.equal(commit.xid, xid);
    assert.equal(commit.gid, "spillway_big");
    assert.ok(commit.commitLsn >= prepare.endLsn);
    assert.equal(tail[1]!.walStart, commit.endLsn);
  } finally {
    await rollbackPrepared(sql);
  }
}

const SCENARIOS: Scenario[] = [
  { name: "streamed commit", minVersion: 14, fn: streamedCommit },
  { name: "streamed abort", minVersion: 14, fn: streamedAbort },
  { name: "streamed savepoint rolled back", minVersion: 14, fn: streamedSavepoint },
  { name: "small transaction between stream blocks", minVersion: 14, fn: interleaved },
  {
    name: "ReplicationSource assembles streamed transactions",
    minVersion: 14,
    fn: sourceAssemblesStreams,
  },
  {
    name: "ReplicationSource spills streamed transactions past spill.memory_limit",
    minVersion: 14,
    fn: sourceSpillsStreams,
  },
  {
    name: "ReplicationSource discards the schema of an aborted streamed transaction",
    minVersion: 14,
    fn: abortedStreamedDdl,
  },
  { name: "streaming parallel: abort LSN and time", minVersion: 16, fn: parallelAbort },
  { name: "two-phase commit and rollback", minVersion: 15, fn: twoPhase },
  { name: "streamed two-phase transaction", minVersion: 15, fn: streamedTwoPhase },
];

conformanceTests("conformance streaming", testVersions("full"), SCENARIOS);
