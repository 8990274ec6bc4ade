/**
 * Conformance against real PostgreSQL servers: DML under every replica identity, LSN relations,
 * NULL vs empty string, unchanged TOAST, TRUNCATE, logical decoding messages, DDL mid-stream,
 * restart from the slot's confirmed position, and empty transactions.
 *
 * The smoke subset (insert/update/delete + Relation, restart, empty transactions) runs on every
 * version of `testVersions("smoke")`; the rest on `testVersions("full")`. One server per version,
 * shared by the steps; each step has its own table, publication and slot (all named alike).
 * Numbers in step names refer to ../shared/reference/pgoutput.md §4.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { PgConnection } from "../postgres/connection.ts";
import { PostgresError } from "../errors.ts";
import { type Lsn, LSN_ZERO, parseLsn } from "../decoder/lsn.ts";
import { type RelationColumn, UNCHANGED_TOAST } from "../decoder/pgoutput.ts";
import { RelationCache } from "../decoder/relations.ts";
import { testVersions } from "../testing/embedded_postgres.ts";
import { expectType, openSession } from "./_replication.ts";
import {
  bodyOf,
  checkTransactions,
  col,
  collectTx,
  conformanceTests,
  type Ctx,
  delay,
  dropSlot,
  INT4,
  publishAndReceive,
  relationMessage,
  relid,
  runTx,
  scalar,
  type Scenario,
  session,
  TEXT,
  transactions,
  type Tx,
  updateMessage,
  VARCHAR,
} from "./_conformance.ts";

// ---------------------------------------------------------------------------------------------
// Helpers (the ones the conformance files share are in _conformance.ts)

async function slotConfirmedFlush(sql: PgConnection, slot: string): Promise<Lsn | null> {
  const text = await scalar(
    sql,
    `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '${slot}'`,
  );
  return text === null ? null : parseLsn(text);
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof PostgresError, `expected PostgresError, got ${error}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/** §4.11, 12, 14, 15, 16, 21: DEFAULT identity; the smoke test of every version. */
async function replicaIdentityDefault(ctx: Ctx): Promise<void> {
  const { oid, txs } = await publishAndReceive(ctx, {
    table: "ri_default",
    setup: `
      CREATE TABLE ri_default (id int PRIMARY KEY, label varchar(10), note text);
      CREATE PUBLICATION ri_default FOR TABLE ri_default`,
    statements: [
      "INSERT INTO ri_default VALUES (1, 'a', NULL), (2, '', 'x')",
      "UPDATE ri_default SET note = 'y' WHERE id = 1",
      "UPDATE ri_default SET id = 10 WHERE id = 2",
      "DELETE FROM ri_default WHERE id = 10",
    ],
  });

  assert.deepEqual(bodyOf(txs[0]), [
    relationMessage(oid, "ri_default", [
      col("id", INT4, true),
      col("label", VARCHAR, false, 14),
      col("note", TEXT),
    ]),
    // §4.21: NULL is 'n', the empty string 't' with length 0.
    { type: "Insert", relationId: oid, newTuple: ["1", "a", null] },
    { type: "Insert", relationId: oid, newTuple: ["2", "", "x"] },
  ]);
  // The Relation goes out with the change that needed it, but with dataStart 0 (not a
  // "last write" for the walsender); changes carry their own LSNs.
  const [relation, insert1, insert2] = txs[0]!.body;
  assert.equal(relation!.walStart, LSN_ZERO);
  assert.ok(insert1!.walStart > LSN_ZERO && insert1!.walStart < insert2!.walStart);

  // §4.14: no old tuple for an update that leaves the key alone; §4.12: no second Relation.
  assert.deepEqual(bodyOf(txs[1]), [updateMessage(oid, null, null, ["1", "a", "y"])]);
  // §4.15: the key changed: 'K' with the old key and NULL ('n') in the other columns.
  assert.deepEqual(bodyOf(txs[2]), [updateMessage(oid, "key", ["2", null, null], ["10", "", "x"])]);
  // §4.16: a delete carries the key only.
  assert.deepEqual(bodyOf(txs[3]), [
    { type: "Delete", relationId: oid, oldTupleKind: "key", oldTuple: ["10", null, null] },
  ]);
}

/** §4.16: REPLICA IDENTITY FULL: 'f', every column flagged, 'O' tuples with all values. */
async function replicaIdentityFull(ctx: Ctx): Promise<void> {
  const { oid, txs } = await publishAndReceive(ctx, {
    table: "ri_full",
    setup: `
      CREATE TABLE ri_full (id int PRIMARY KEY, label text, note text);
      ALTER TABLE ri_full REPLICA IDENTITY FULL;
      CREATE PUBLICATION ri_full FOR TABLE ri_full`,
    statements: [
      "INSERT INTO ri_full VALUES (1, 'a', NULL)",
      "UPDATE ri_full SET note = 'n' WHERE id = 1",
      "UPDATE ri_full SET id = 2 WHERE id = 1",
      "DELETE FROM ri_full WHERE id = 2",
    ],
  });
  assert.deepEqual(bodyOf(txs[0]), [
    relationMessage(oid, "ri_full", [
      col("id", INT4, true),
      col("label", TEXT, true),
      col("note", TEXT, true),
    ], "f"),
    { type: "Insert", relationId: oid, newTuple: ["1", "a", null] },
  ]);
  assert.deepEqual(bodyOf(txs[1]), [updateMessage(oid, "old", ["1", "a", null], ["1", "a", "n"])]);
  assert.deepEqual(bodyOf(txs[2]), [updateMessage(oid, "old", ["1", "a", "n"], ["2", "a", "n"])]);
  assert.deepEqual(bodyOf(txs[3]), [
    { type: "Delete", relationId: oid, oldTupleKind: "old", oldTuple: ["2", "a", "n"] },
  ]);
}

/** §4.18: REPLICA IDENTITY NOTHING: UPDATE/DELETE fail on the publisher, nothing streamed. */
async function replicaIdentityNothing(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  await sql.query(
    `CREATE TABLE ri_nothing (id int PRIMARY KEY, v text);
     ALTER TABLE ri_nothing REPLICA IDENTITY NOTHING;
     CREATE PUBLICATION ri_nothing FOR TABLE ri_nothing`,
  );
  const oid = await relid(sql, "ri_nothing");
  await using s = await session(ctx, { slot: "ri_nothing", publication: "ri_nothing" });
  const xid1 = await runTx(sql, "INSERT INTO ri_nothing VALUES (1, 'a')");
  await rejectsWithCode(sql.query("UPDATE ri_nothing SET v = 'b' WHERE id = 1"), "55000");
  await rejectsWithCode(sql.query("DELETE FROM ri_nothing WHERE id = 1"), "55000");
  const xid2 = await runTx(sql, "INSERT INTO ri_nothing VALUES (2, 'c')");
  assert.equal(await scalar(sql, "SELECT string_agg(v, ',' ORDER BY id) FROM ri_nothing"), "a,c");

  const txs = transactions(await collectTx(s, 2));
  checkTransactions(txs, [xid1, xid2]);
  assert.deepEqual(bodyOf(txs[0]), [
    relationMessage(oid, "ri_nothing", [col("id", INT4), col("v", TEXT)], "n"),
    { type: "Insert", relationId: oid, newTuple: ["1", "a"] },
  ]);
  assert.deepEqual(bodyOf(txs[1]), [{ type: "Insert", relationId: oid, newTuple: ["2", "c"] }]);
}

/** §4.17: REPLICA IDENTITY USING INDEX: flags mark exactly the index columns; 'K' uses them. */
async function replicaIdentityIndex(ctx: Ctx): Promise<void> {
  const { oid, txs } = await publishAndReceive(ctx, {
    table: "ri_index",
    setup: `
      CREATE TABLE ri_index (id int PRIMARY KEY, code text NOT NULL, region int NOT NULL, v text);
      CREATE UNIQUE INDEX ri_index_key ON ri_index (region, code);
      ALTER TABLE ri_index REPLICA IDENTITY USING INDEX ri_index_key;
      CREATE PUBLICATION ri_index FOR TABLE ri_index`,
    statements: [
      "INSERT INTO ri_index VALUES (1, 'x', 7, 'a')",
      "UPDATE ri_index SET v = 'b' WHERE id = 1",
      "UPDATE ri_index SET code = 'y' WHERE id = 1",
      "UPDATE ri_index SET id = 2 WHERE id = 1",
      "DELETE FROM ri_index WHERE id = 2",
    ],
  });
  assert.deepEqual(bodyOf(txs[0]), [
    relationMessage(oid, "ri_index", [
      col("id", INT4),
      col("code", TEXT, true),
      col("region", INT4, true),
      col("v", TEXT),
    ], "i"),
    { type: "Insert", relationId: oid, newTuple: ["1", "x", "7", "a"] },
  ]);
  assert.deepEqual(bodyOf(txs[1]), [updateMessage(oid, null, null, ["1", "x", "7", "b"])]);
  assert.deepEqual(bodyOf(txs[2]), [
    updateMessage(oid, "key", [null, "x", "7", null], ["1", "y", "7", "b"]),
  ]);
  // The primary key is not the identity: changing it logs no old tuple.
  assert.deepEqual(bodyOf(txs[3]), [updateMessage(oid, null, null, ["2", "y", "7", "b"])]);
  assert.deepEqual(bodyOf(txs[4]), [
    { type: "Delete", relationId: oid, oldTupleKind: "key", oldTuple: [null, "y", "7", null] },
  ]);
}

/** §4.19, 20: a 100 kB out-of-line value left unchanged is 'u'; under FULL 'O' has it whole. */
async function unchangedToast(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  await sql.query(
    `CREATE TABLE toast_t (id int PRIMARY KEY, big text, small text);
     CREATE PUBLICATION toast_t FOR TABLE toast_t`,
  );
  const oid = await relid(sql, "toast_t");
  await using s = await session(ctx, { slot: "toast_t", publication: "toast_t" });
  // 3200 md5 digests: 102400 random hex characters, which pglz cannot shrink much.
  const xid1 = await runTx(
    sql,
    `INSERT INTO toast_t
       SELECT 1, string_agg(md5(i::text || random()::text), ''), 's1' FROM generate_series(1, 3200) i`,
  );
  const big = await scalar(sql, "SELECT big FROM toast_t WHERE id = 1");
  assert.equal(big?.length, 102_400);
  const stored = Number(await scalar(sql, "SELECT pg_column_size(big) FROM toast_t WHERE id = 1"));
  assert.ok(stored > 50_000, `the value compressed to ${stored} bytes`);

  const xid2 = await runTx(sql, "UPDATE toast_t SET small = 's2' WHERE id = 1");
  const xid3 = await runTx(sql, "UPDATE toast_t SET big = big || 'z' WHERE id = 1");
  // Everything before the DDL must be decoded first: a walsender that lags behind receives
  // the DDL's relcache invalidation early and re-sends an (identical) Relation sooner.
  const received = await collectTx(s, 3);
  await sql.query("ALTER TABLE toast_t REPLICA IDENTITY FULL");
  const xid4 = await runTx(sql, "UPDATE toast_t SET small = 's3' WHERE id = 1");
  received.push(...await collectTx(s, 1));

  const txs = transactions(received);
  checkTransactions(txs, [xid1, xid2, xid3, xid4]);
  const columns = [col("id", INT4, true), col("big", TEXT), col("small", TEXT)];
  assert.deepEqual(bodyOf(txs[0]), [
    relationMessage(oid, "toast_t", columns),
    { type: "Insert", relationId: oid, newTuple: ["1", big, "s1"] },
  ]);
  assert.deepEqual(bodyOf(txs[1]), [updateMessage(oid, null, null, ["1", UNCHANGED_TOAST, "s2"])]);
  assert.deepEqual(bodyOf(txs[2]), [updateMessage(oid, null, null, ["1", `${big}z`, "s2"])]);
  // The identity change re-sends the Relation before the next change.
  assert.deepEqual(bodyOf(txs[3]), [
    relationMessage(oid, "toast_t", columns.map((c) => ({ ...c, flags: 1, isKey: true })), "f"),
    updateMessage(oid, "old", ["1", `${big}z`, "s2"], ["1", UNCHANGED_TOAST, "s3"]),
  ]);
}

/** §4.22: one Truncate per statement with every published relid (cascaded ones too) and flags. */
async function truncate(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  await sql.query(
    `CREATE TABLE tr_a (id serial PRIMARY KEY);
     CREATE TABLE tr_b (id serial PRIMARY KEY, a_id int REFERENCES tr_a);
     CREATE TABLE tr_c (id serial PRIMARY KEY);
     CREATE TABLE tr_d (a_id int REFERENCES tr_a);
     INSERT INTO tr_a DEFAULT VALUES; INSERT INTO tr_b (a_id) VALUES (1);
     INSERT INTO tr_c DEFAULT VALUES; INSERT INTO tr_d VALUES (1);
     CREATE PUBLICATION tr FOR TABLE tr_a, tr_b, tr_c`,
  );
  const [a, b, c] = [await relid(sql, "tr_a"), await relid(sql, "tr_b"), await relid(sql, "tr_c")];
  await using s = await session(ctx, { slot: "tr", publication: "tr" });
  const xids = [
    await runTx(sql, "TRUNCATE tr_a, tr_c RESTART IDENTITY CASCADE"),
    await runTx(sql, "TRUNCATE tr_c"),
    await runTx(sql, "TRUNCATE tr_b RESTART IDENTITY"),
  ];
  await runTx(sql, "TRUNCATE tr_d"); // not published: nothing (an empty pair on 14)
  const xid4 = await runTx(sql, "INSERT INTO tr_c DEFAULT VALUES");
  assert.equal(await scalar(sql, "SELECT count(*) FROM tr_d"), "0", "CASCADE reached tr_d");

  const txs = transactions(await collectTx(s, 4));
  checkTransactions(txs, [...xids, xid4]);
  const relation = (relationId: number, relationName: string) =>
    relationMessage(
      relationId,
      relationName,
      relationName === "tr_b"
        ? [col("id", INT4, true), col("a_id", INT4)]
        : [col("id", INT4, true)],
    );
  // Named tables first, then the cascaded one; tr_d is not published, so not listed.
  assert.deepEqual(bodyOf(txs[0]), [
    relation(a, "tr_a"),
    relation(c, "tr_c"),
    relation(b, "tr_b"),
    { type: "Truncate", cascade: true, restartIdentity: true, relationIds: [a, c, b] },
  ]);
  // A TRUNCATE gives the table a new relfilenode; the relcache invalidation makes pgoutput
  // describe it again before its next change.
  assert.deepEqual(bodyOf(txs[1]), [
    relation(c, "tr_c"),
    { type: "Truncate", cascade: false, restartIdentity: false, relationIds: [c] },
  ]);
  assert.deepEqual(bodyOf(txs[2]), [
    relation(b, "tr_b"),
    { type: "Truncate", cascade: false, restartIdentity: true, relationIds: [b] },
  ]);
  // RESTART IDENTITY reset tr_c's sequence.
  assert.deepEqual(bodyOf(txs[3]), [
    relation(c, "tr_c"),
    { type: "Insert", relationId: c, newTuple: ["1"] },
  ]);
}

/** §4.23: transactional 'M' (flags 1) inside B…C, non-transactional outside; none without messages. */
async function logicalMessages(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  await sql.query(
    `CREATE TABLE msg_t (id int PRIMARY KEY); CREATE PUBLICATION msg FOR TABLE msg_t`,
  );
  const oid = await relid(sql, "msg_t");
  await using on = await session(ctx, {
    slot: "msg_on",
    publication: "msg",
    messages: true,
  });
  await using off = await session(ctx, {
    slot: "msg_off",
    publication: "msg",
    messages: false,
  });
  const results = await sql.query(
    `BEGIN; INSERT INTO msg_t VALUES (1);
     SELECT pg_logical_emit_message(true, 'spillway.tx', 'x')::text;
     SELECT pg_current_xact_id()::text; COMMIT`,
  );
  const txEnd = parseLsn(results[2]!.rows[0]![0]!);
  const xid1 = Number(results[3]!.rows[0]![0]);
  const ntEnd = parseLsn(
    (await scalar(
      sql,
      `SELECT pg_logical_emit_message(false, 'spillway.nt', '\\x00ff0a'::bytea)`,
    ))!,
  );
  const xid2 = await runTx(sql, "INSERT INTO msg_t VALUES (2)");

  let commits = 0;
  const received = await on.collect((r) => {
    if (r[r.length - 1]!.message.type === "Commit") commits++;
    return commits === 2;
  });
  assert.deepEqual(received.map((r) => r.message.type), [
    "Begin",
    "Relation",
    "Insert",
    "Message",
    "Commit",
    "Message",
    "Begin",
    "Insert",
    "Commit",
  ]);
  const txMessage = expectType(received[3], "Message");
  const ntMessage = expectType(received[5], "Message");
  // The message LSN is the end of its WAL record: what pg_logical_emit_message returned, and
  // the XLogData position.
  assert.equal(txMessage.lsn, txEnd);
  assert.equal(received[3]!.walStart, txEnd);
  assert.deepEqual(txMessage, {
    type: "Message",
    transactional: true,
    lsn: txMessage.lsn,
    prefix: "spillway.tx",
    content: new TextEncoder().encode("x"),
  });
  assert.equal(ntMessage.lsn, ntEnd);
  assert.equal(received[5]!.walStart, ntEnd);
  assert.deepEqual(ntMessage, {
    type: "Message",
    transactional: false,
    lsn: ntMessage.lsn,
    prefix: "spillway.nt",
    content: new Uint8Array([0x00, 0xff, 0x0a]),
  });
  const txs = transactions([...received.slice(0, 5), ...received.slice(6)]);
  checkTransactions(txs, [xid1, xid2]);
  // Emitted after the commit of the first transaction, before the second.
  assert.ok(ntMessage.lsn > txs[0]!.commit.endLsn && ntMessage.lsn < txs[1]!.begin.finalLsn);

  const without = transactions(await off.collectTransactions(2));
  checkTransactions(without, [xid1, xid2]);
  assert.deepEqual(bodyOf(without[0]).map((m) => m.type), ["Relation", "Insert"]);
  assert.deepEqual(bodyOf(without[1]), [{ type: "Insert", relationId: oid, newTuple: ["2"] }]);
}

/** §4.12, 13: ADD/DROP COLUMN and ALTER TYPE re-send the Relation; the cache versions it. */
async function ddlMidStream(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  await sql.query(
    `CREATE TABLE ddl_t (id int PRIMARY KEY, a int); CREATE PUBLICATION ddl FOR TABLE ddl_t`,
  );
  const oid = await relid(sql, "ddl_t");
  const cache = new RelationCache();
  const relation = (columns: RelationColumn[]) => relationMessage(oid, "ddl_t", columns);
  const v1 = relation([col("id", INT4, true), col("a", INT4)]);
  const v2 = relation([col("id", INT4, true), col("a", INT4), col("b", TEXT)]);
  const v3 = relation([col("id", INT4, true), col("b", TEXT)]);
  const v4 = relation([col("id", INT4, true), col("b", VARCHAR, false, 24)]);

  const first = await openSession(ctx.pg, { slot: "ddl", publication: "ddl" });
  let confirmed: Lsn;
  try {
    // Each transaction is received before the next DDL runs (see unchangedToast).
    const xids = [await runTx(sql, "INSERT INTO ddl_t VALUES (1, 10)")];
    const received = await collectTx(first, 1);
    await sql.query("ALTER TABLE ddl_t ADD COLUMN b text");
    xids.push(await runTx(sql, "INSERT INTO ddl_t VALUES (2, 20, 'x')"));
    received.push(...await collectTx(first, 1));
    await sql.query("ALTER TABLE ddl_t DROP COLUMN a");
    xids.push(await runTx(sql, "INSERT INTO ddl_t VALUES (3, 'y')"));
    received.push(...await collectTx(first, 1));
    await sql.query("ALTER TABLE ddl_t ALTER COLUMN b TYPE varchar(20)");
    xids.push(await runTx(sql, "INSERT INTO ddl_t VALUES (4, 'z')"));
    xids.push(await runTx(sql, "UPDATE ddl_t SET b = 'zz' WHERE id = 4"));
    received.push(...await collectTx(first, 2));

    const txs = transactions(received);
    checkTransactions(txs, xids);
    assert.deepEqual(bodyOf(txs[0]), [v1, {
      type: "Insert",
      relationId: oid,
      newTuple: ["1", "10"],
    }]);
    assert.deepEqual(bodyOf(txs[1]), [
      v2,
      { type: "Insert", relationId: oid, newTuple: ["2", "20", "x"] },
    ]);
    assert.deepEqual(bodyOf(txs[2]), [v3, {
      type: "Insert",
      relationId: oid,
      newTuple: ["3", "y"],
    }]);
    assert.deepEqual(bodyOf(txs[3]), [v4, {
      type: "Insert",
      relationId: oid,
      newTuple: ["4", "z"],
    }]);
    assert.deepEqual(bodyOf(txs[4]), [updateMessage(oid, null, null, ["4", "zz"])]);

    const changes = txs.slice(0, 4).map((tx) => cache.apply(expectType(tx.body[0], "Relation")));
    assert.deepEqual(changes, [
      { kind: "new", relation: v1 },
      { kind: "schema-change", previous: v1, relation: v2, version: 2 },
      { kind: "schema-change", previous: v2, relation: v3, version: 3 },
      { kind: "schema-change", previous: v3, relation: v4, version: 4 },
    ]);
    confirmed = txs[4]!.commit.endLsn;
    first.stream.confirm(confirmed);
  } finally {
    await first.close();
  }

  // A new session re-sends the identical Relation: the cache calls it "same".
  await using second = await session(ctx, {
    slot: "ddl",
    publication: "ddl",
    createSlot: false,
  });
  const xid6 = await runTx(sql, "INSERT INTO ddl_t VALUES (6, 'w')");
  const txs = transactions(await collectTx(second, 1));
  checkTransactions(txs, [xid6]);
  assert.ok(txs[0]!.begin.finalLsn > confirmed, "nothing before the confirmed position again");
  assert.deepEqual(bodyOf(txs[0]), [v4, { type: "Insert", relationId: oid, newTuple: ["6", "w"] }]);
  assert.deepEqual(cache.apply(expectType(txs[0]!.body[0], "Relation")), {
    kind: "same",
    relation: v4,
  });
  assert.equal(cache.version(oid), 4);
}

/**
 * A confirm reaches the slot soon after it is made (coalesced, within confirmDelayMs), not at
 * the next status interval: with the interval at 60 s, the slot moves within seconds, so a
 * crash re-delivers little more than what was in flight.
 */
async function confirmSentSoon(ctx: Ctx): Promise<void> {
  const { sql, pg } = ctx;
  await sql.query(
    `CREATE TABLE soon_t (id int PRIMARY KEY);
     CREATE PUBLICATION soon FOR TABLE soon_t`,
  );
  const s = await openSession(pg, { slot: "soon", publication: "soon", statusIntervalMs: 60_000 });
  try {
    await runTx(sql, "INSERT INTO soon_t VALUES (1)");
    const [tx] = transactions(await collectTx(s, 1));
    const end = tx!.commit.endLsn;
    const sentBefore = s.stream.stats.statusUpdatesSent;
    s.stream.confirm(end);
    s.stream.confirm(end); // the same position again asks for nothing more
    let slotLsn: Lsn | null = null;
    for (let i = 0; i < 100 && slotLsn !== end; i++) {
      slotLsn = await slotConfirmedFlush(sql, "soon");
      if (slotLsn !== end) await delay(50);
    }
    assert.equal(slotLsn, end, "the confirmed position reached the slot without sendStatusNow");
    assert.equal(s.stream.stats.statusUpdatesSent - sentBefore, 1, "one update for the confirms");
  } finally {
    await s.close();
  }
}

/**
 * §4.39, 40, 42: consume three transactions, confirm the 2nd's endLsn only; the slot's
 * confirmed_flush_lsn becomes exactly that; a new session from 0/0 re-delivers the 3rd whole
 * (Relation first, §4.12), never the first two, and loses nothing after it.
 */
async function restartFromConfirmed(ctx: Ctx): Promise<void> {
  const { sql, pg } = ctx;
  await sql.query(
    `CREATE TABLE restart_t (id int PRIMARY KEY, v text);
     CREATE PUBLICATION restart FOR TABLE restart_t`,
  );
  const oid = await relid(sql, "restart_t");
  const first = await openSession(pg, { slot: "restart", publication: "restart" });
  let before: Tx[];
  try {
    const xids = [
      await runTx(sql, "INSERT INTO restart_t VALUES (1, 'a')"),
      await runTx(sql, "INSERT INTO restart_t VALUES (2, 'b')"),
      await runTx(sql, "INSERT INTO restart_t VALUES (3, 'c')"),
    ];
    before = transactions(await collectTx(first, 3));
    checkTransactions(before, xids);
    assert.deepEqual(bodyOf(before[2]), [{
      type: "Insert",
      relationId: oid,
      newTuple: ["3", "c"],
    }]);

    const end2 = before[1]!.commit.endLsn;
    first.stream.confirm(end2);
    await first.stream.sendStatusNow();
    assert.equal(first.stream.flushedLsn, end2);
    let slotLsn: Lsn | null = null;
    for (let i = 0; i < 100 && slotLsn !== end2; i++) {
      slotLsn = await slotConfirmedFlush(sql, "restart");
      if (slotLsn !== end2) await delay(50);
    }
    assert.equal(slotLsn, end2, "pg_replication_slots.confirmed_flush_lsn = the confirmed endLsn");
  } finally {
    await first.close();
  }
  assert.equal(await slotConfirmedFlush(sql, "restart"), before[1]!.commit.endLsn);

  const xid4 = await runTx(sql, "INSERT INTO restart_t VALUES (4, 'd')");
  const second = await openSession(pg, {
    slot: "restart",
    publication: "restart",
    createSlot: false,
    startLsn: LSN_ZERO,
  });
  try {
    const after = transactions(await collectTx(second, 2));
    checkTransactions(after, [before[2]!.begin.xid, xid4]);
    const [again, fourth] = after;
    assert.deepEqual(again!.begin, before[2]!.begin, "the 3rd transaction again, same Begin");
    assert.deepEqual(again!.commit, before[2]!.commit, "the 3rd transaction again, same Commit");
    assert.equal(again!.commitAt, before[2]!.commitAt);
    assert.deepEqual(bodyOf(again), [
      relationMessage(oid, "restart_t", [col("id", INT4, true), col("v", TEXT)]),
      { type: "Insert", relationId: oid, newTuple: ["3", "c"] },
    ]);
    assert.equal(again!.body[1]!.walStart, before[2]!.body[0]!.walStart, "same change LSN");
    assert.deepEqual(bodyOf(fourth), [{ type: "Insert", relationId: oid, newTuple: ["4", "d"] }]);
  } finally {
    await second.close();
    await dropSlot(sql, "restart");
  }
}

/** §4.28: a transaction on an unpublished table: an empty Begin/Commit on 14, nothing on 15+. */
async function unpublishedTransaction(ctx: Ctx): Promise<void> {
  const { sql, version } = ctx;
  await sql.query(
    `CREATE TABLE empty_pub (id int PRIMARY KEY); CREATE TABLE empty_unpub (id int PRIMARY KEY);
     CREATE PUBLICATION empty FOR TABLE empty_pub`,
  );
  const oid = await relid(sql, "empty_pub");
  await using s = await session(ctx, { slot: "empty", publication: "empty" });
  const xid1 = await runTx(sql, "INSERT INTO empty_unpub VALUES (1)");
  const xid2 = await runTx(sql, "INSERT INTO empty_pub VALUES (1)");
  const published = [
    relationMessage(oid, "empty_pub", [col("id", INT4, true)]),
    { type: "Insert", relationId: oid, newTuple: ["1"] },
  ];
  if (version === 14) {
    const txs = transactions(await s.collectTransactions(2));
    checkTransactions(txs, [xid1, xid2]);
    assert.deepEqual(bodyOf(txs[0]), []);
    assert.deepEqual(bodyOf(txs[1]), published);
  } else {
    const txs = transactions(await s.collectTransactions(1));
    checkTransactions(txs, [xid2]);
    assert.deepEqual(bodyOf(txs[0]), published);
  }
}

interface TieredScenario extends Scenario {
  /** "smoke" runs on every smoke version, "full" on the full ones only. */
  tier: "smoke" | "full";
}

const SCENARIOS: TieredScenario[] = [
  {
    name: "insert/update/delete, REPLICA IDENTITY DEFAULT",
    tier: "smoke",
    fn: replicaIdentityDefault,
  },
  { name: "restart from the confirmed position", tier: "smoke", fn: restartFromConfirmed },
  {
    name: "a confirm is sent soon, not at the status interval",
    tier: "smoke",
    fn: confirmSentSoon,
  },
  { name: "transaction on an unpublished table", tier: "smoke", fn: unpublishedTransaction },
  { name: "REPLICA IDENTITY FULL", tier: "full", fn: replicaIdentityFull },
  { name: "REPLICA IDENTITY NOTHING", tier: "full", fn: replicaIdentityNothing },
  { name: "REPLICA IDENTITY USING INDEX", tier: "full", fn: replicaIdentityIndex },
  { name: "unchanged TOAST", tier: "full", fn: unchangedToast },
  { name: "TRUNCATE with CASCADE and RESTART IDENTITY", tier: "full", fn: truncate },
  { name: "logical decoding messages", tier: "full", fn: logicalMessages },
  { name: "DDL mid-stream and the relation cache", tier: "full", fn: ddlMidStream },
];

const smokeVersions = testVersions("smoke");
const fullVersions = testVersions("full");
const versions = [...new Set([...smokeVersions, ...fullVersions])].sort();

conformanceTests(
  "conformance",
  versions,
  SCENARIOS,
  (scenario, version) =>
    scenario.tier === "smoke"
      ? smokeVersions.includes(version) || fullVersions.includes(version)
      : fullVersions.includes(version),
);
