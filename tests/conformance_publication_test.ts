/**
 * Conformance against real PostgreSQL servers: what a publication selects. Partitioned tables
 * published through their leaves or their root (`publish_via_partition_root`), row filters and
 * column lists (PG15+).
 *
 * One server per version of `testVersions("full")`; each step has its own tables, publications
 * and slots. Numbers in step names refer to ../shared/reference/pgoutput.md §4.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { PgConnection } from "../decoder/connection.ts";
import { PostgresError } from "../decoder/errors.ts";
import { type Lsn, LSN_ZERO } from "../decoder/lsn.ts";
import type {
  BeginMessage,
  CommitMessage,
  PgoutputMessage,
  RelationColumn,
  RelationMessage,
} from "../decoder/pgoutput.ts";
import { type PgServer, type PgVersion, startPostgres, testVersions } from "./harness/postgres.ts";
import {
  expectType,
  openSession,
  type Received,
  type Session,
  type SessionOptions,
  sqlConnection,
} from "./_replication.ts";

// ---------------------------------------------------------------------------------------------
// Helpers (kept in this file: each conformance file is self-contained)

/** Built-in type OIDs (pg_type.dat). */
const INT4 = 23;
const TEXT = 25;
const VARCHAR = 1043;

interface Ctx {
  pg: PgServer;
  sql: PgConnection;
  version: PgVersion;
}

/** A Relation column as the decoder returns it. */
function col(name: string, typeOid: number, key = false, typeModifier = -1): RelationColumn {
  return { flags: key ? 1 : 0, isKey: key, name, typeOid, typeModifier };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `statements` in one explicit transaction and returns its (top-level) xid. */
async function runTx(sql: PgConnection, statements: string): Promise<number> {
  const results = await sql.query(
    `BEGIN; ${statements}; SELECT pg_current_xact_id()::text AS spillway_xid; COMMIT`,
  );
  const xid = results.find((r) => r.fields[0]?.name === "spillway_xid")?.rows[0]?.[0];
  assert.ok(xid, `no xid returned for: ${statements}`);
  return Number(xid);
}

/** First column of the first row of the last statement. */
async function scalar(sql: PgConnection, text: string): Promise<string | null> {
  const results = await sql.query(text);
  return results[results.length - 1]?.rows[0]?.[0] ?? null;
}

async function relid(sql: PgConnection, table: string): Promise<number> {
  return Number(await scalar(sql, `SELECT '${table}'::regclass::oid::text`));
}

/** Drops a slot, waiting for a walsender that is still letting go of it (55006). */
async function dropSlot(sql: PgConnection, slot: string): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      await sql.query(
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}'`,
      );
      return;
    } catch (error) {
      if (!(error instanceof PostgresError && error.code === "55006") || attempt >= 100) {
        throw error;
      }
      await delay(100);
    }
  }
}

/** A session whose disposal also drops its slot. */
async function session(ctx: Ctx, options: SessionOptions): Promise<Session> {
  const s = await openSession(ctx.pg, options);
  return {
    ...s,
    async [Symbol.asyncDispose]() {
      await s.close();
      await dropSlot(ctx.sql, options.slot);
    },
  };
}

/** Begin … Commit with the XLogData positions they came with. */
interface Tx {
  begin: BeginMessage;
  beginAt: Lsn;
  body: Received[];
  commit: CommitMessage;
  commitAt: Lsn;
}

/** Splits messages into transactions; anything outside Begin … Commit fails the test. */
function transactions(received: Received[]): Tx[] {
  const out: Tx[] = [];
  let i = 0;
  while (i < received.length) {
    const beginAt = received[i]!.walStart;
    const begin = expectType(received[i], "Begin");
    i++;
    const body: Received[] = [];
    while (i < received.length && received[i]!.message.type !== "Commit") {
      body.push(received[i]!);
      i++;
    }
    const commitAt = received[i]?.walStart ?? LSN_ZERO;
    const commit = expectType(received[i], "Commit");
    i++;
    out.push({ begin, beginAt, body, commit, commitAt });
  }
  return out;
}

/** The messages between Begin and Commit. */
function bodyOf(tx: Tx | undefined): PgoutputMessage[] {
  assert.ok(tx, "missing transaction");
  return tx.body.map((r) => r.message);
}

/** µs since the Unix epoch lies within the last 10 minutes (same host clock). */
function assertRecent(unixMicros: bigint, what: string): void {
  const now = BigInt(Date.now()) * 1000n;
  assert.ok(
    unixMicros > now - 600_000_000n && unixMicros <= now + 5_000_000n,
    `${what} ${unixMicros} is not close to now ${now}`,
  );
}

/**
 * §4.11 for every transaction: Begin.finalLsn = Commit.commitLsn; the Commit's XLogData
 * dataStart = Commit.endLsn > commitLsn; same commit time in Begin and Commit; every message in
 * between lies at or after the Begin's position and before the commit record; transactions
 * come in commit order.
 */
function checkTransactions(txs: Tx[], xids?: number[]): void {
  if (xids !== undefined) assert.deepEqual(txs.map((tx) => tx.begin.xid), xids, "xids");
  let previousEnd = LSN_ZERO;
  for (const tx of txs) {
    assert.equal(tx.begin.finalLsn, tx.commit.commitLsn, "Begin.finalLsn = Commit.commitLsn");
    assert.equal(tx.commitAt, tx.commit.endLsn, "XLogData dataStart of Commit = Commit.endLsn");
    assert.ok(tx.commit.commitLsn < tx.commit.endLsn, "commitLsn < endLsn");
    assert.equal(tx.commit.flags, 0, "Commit.flags");
    assert.equal(tx.begin.commitTime, tx.commit.commitTime, "commit time in Begin and Commit");
    assertRecent(tx.commit.commitTime, "commit time");
    assert.ok(tx.beginAt <= tx.commit.commitLsn, "Begin position <= commit record");
    for (const r of tx.body) {
      if (r.message.type === "Relation" || r.message.type === "Type") {
        // Written with last_write = false: the walsender sends dataStart 0 for those.
        assert.equal(r.walStart, LSN_ZERO, `${r.message.type} dataStart`);
        continue;
      }
      // A change is sent at the start of its record; a logical message at the end of its
      // record, which may be where the commit record starts.
      const last = r.message.type === "Message" ? tx.commit.commitLsn : tx.commit.commitLsn - 1n;
      assert.ok(
        r.walStart >= tx.beginAt && r.walStart <= last,
        `${r.message.type} at ${r.walStart} lies outside its transaction`,
      );
    }
    assert.ok(tx.commit.commitLsn >= previousEnd, "transactions in commit order");
    previousEnd = tx.commit.endLsn;
  }
}

function isEmptyPair(received: Received[], i: number): boolean {
  return received[i]?.message.type === "Begin" && received[i + 1]?.message.type === "Commit";
}

/**
 * Collects until `count` non-empty transactions ended; drops empty Begin/Commit pairs, which
 * PostgreSQL 14 sends for transactions without a published change (DDL, other tables).
 */
async function collectTx(s: Session, count: number): Promise<Received[]> {
  let seen = 0;
  const received = await s.collect((r) => {
    const n = r.length;
    if (r[n - 1]!.message.type === "Commit" && !isEmptyPair(r, n - 2)) seen++;
    return seen >= count;
  });
  const out: Received[] = [];
  for (let i = 0; i < received.length; i++) {
    if (isEmptyPair(received, i)) {
      i++;
      continue;
    }
    out.push(received[i]!);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Scenarios

function relationMessage(
  relationId: number,
  relationName: string,
  columns: RelationColumn[],
): RelationMessage {
  return {
    type: "Relation",
    relationId,
    namespace: "public",
    relationName,
    replicaIdentity: "d",
    columns,
  };
}

/**
 * §4.31: a partitioned table whose partitions differ in column order. Through the leaves,
 * changes name the partition, in its own column order; through the root
 * (`publish_via_partition_root`), they name the root, converted to its column order, and the
 * root's Relation goes out before each partition's own. A cross-partition UPDATE arrives as
 * Delete from the old partition + Insert into the new one.
 */
async function partitions(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  await sql.query(
    `CREATE TABLE pt (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
     CREATE TABLE pt_eu PARTITION OF pt FOR VALUES IN ('eu');
     CREATE TABLE pt_us (v text, region text NOT NULL, id int NOT NULL);
     ALTER TABLE pt ATTACH PARTITION pt_us FOR VALUES IN ('us');
     CREATE PUBLICATION pt_leaf FOR TABLE pt;
     CREATE PUBLICATION pt_root FOR TABLE pt WITH (publish_via_partition_root = true)`,
  );
  const [root, eu, us] = [
    await relid(sql, "pt"),
    await relid(sql, "pt_eu"),
    await relid(sql, "pt_us"),
  ];
  await using leafSession = await session(ctx, { slot: "pt_leaf", publication: "pt_leaf" });
  await using rootSession = await session(ctx, { slot: "pt_root", publication: "pt_root" });
  const xids = [
    await runTx(sql, "INSERT INTO pt VALUES (1, 'eu', 'a'), (2, 'us', 'b')"),
    await runTx(sql, "UPDATE pt SET v = 'c' WHERE id = 2"),
    await runTx(sql, "UPDATE pt SET region = 'us' WHERE id = 1"),
    await runTx(sql, "DELETE FROM pt WHERE id = 2"),
  ];
  const rootColumns = [col("id", INT4, true), col("region", TEXT, true), col("v", TEXT)];
  const usColumns = [col("v", TEXT), col("region", TEXT, true), col("id", INT4, true)];

  const leaf = transactions(await collectTx(leafSession, 4));
  checkTransactions(leaf, xids);
  assert.deepEqual(bodyOf(leaf[0]), [
    relationMessage(eu, "pt_eu", rootColumns),
    { type: "Insert", relationId: eu, newTuple: ["1", "eu", "a"] },
    relationMessage(us, "pt_us", usColumns),
    { type: "Insert", relationId: us, newTuple: ["b", "us", "2"] },
  ]);
  assert.deepEqual(bodyOf(leaf[1]), [
    {
      type: "Update",
      relationId: us,
      oldTupleKind: null,
      oldTuple: null,
      newTuple: ["c", "us", "2"],
    },
  ]);
  assert.deepEqual(bodyOf(leaf[2]), [
    { type: "Delete", relationId: eu, oldTupleKind: "key", oldTuple: ["1", "eu", null] },
    { type: "Insert", relationId: us, newTuple: ["a", "us", "1"] },
  ]);
  assert.deepEqual(bodyOf(leaf[3]), [
    { type: "Delete", relationId: us, oldTupleKind: "key", oldTuple: [null, "us", "2"] },
  ]);

  const viaRoot = transactions(await collectTx(rootSession, 4));
  checkTransactions(viaRoot, xids);
  assert.deepEqual(bodyOf(viaRoot[0]), [
    relationMessage(root, "pt", rootColumns),
    relationMessage(eu, "pt_eu", rootColumns),
    { type: "Insert", relationId: root, newTuple: ["1", "eu", "a"] },
    relationMessage(root, "pt", rootColumns),
    relationMessage(us, "pt_us", usColumns),
    { type: "Insert", relationId: root, newTuple: ["2", "us", "b"] },
  ]);
  assert.deepEqual(bodyOf(viaRoot[1]), [
    {
      type: "Update",
      relationId: root,
      oldTupleKind: null,
      oldTuple: null,
      newTuple: ["2", "us", "c"],
    },
  ]);
  assert.deepEqual(bodyOf(viaRoot[2]), [
    { type: "Delete", relationId: root, oldTupleKind: "key", oldTuple: ["1", "eu", null] },
    { type: "Insert", relationId: root, newTuple: ["1", "us", "a"] },
  ]);
  assert.deepEqual(bodyOf(viaRoot[3]), [
    { type: "Delete", relationId: root, oldTupleKind: "key", oldTuple: ["2", "us", null] },
  ]);
}

/**
 * §4.30 (PG15+): row filter `WHERE (id > 10)`: an UPDATE into the filter is an Insert, out of
 * it a Delete with the old key, and one that stays outside sends nothing.
 */
async function rowFilter(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  await sql.query(
    `CREATE TABLE rf_t (id int PRIMARY KEY, v text);
     CREATE PUBLICATION rf FOR TABLE rf_t WHERE (id > 10)`,
  );
  const oid = await relid(sql, "rf_t");
  await using s = await session(ctx, { slot: "rf", publication: "rf" });
  await runTx(sql, "INSERT INTO rf_t VALUES (1, 'a'), (5, 'b')"); // both filtered out
  const xids = [
    await runTx(sql, "UPDATE rf_t SET id = 20 WHERE id = 5"), // 5→20: enters
    await runTx(sql, "UPDATE rf_t SET v = 'c' WHERE id = 20"), // stays inside
    await runTx(sql, "UPDATE rf_t SET id = 5 WHERE id = 20"), // 20→5: leaves
  ];
  await runTx(sql, "UPDATE rf_t SET id = 2 WHERE id = 1"); // 1→2: stays outside
  await runTx(sql, "DELETE FROM rf_t WHERE id = 2"); // outside
  xids.push(await runTx(sql, "INSERT INTO rf_t VALUES (30, 'z')"));
  xids.push(await runTx(sql, "DELETE FROM rf_t WHERE id = 30"));

  const txs = transactions(await collectTx(s, 5));
  checkTransactions(txs, xids);
  assert.deepEqual(bodyOf(txs[0]), [
    relationMessage(oid, "rf_t", [col("id", INT4, true), col("v", TEXT)]),
    { type: "Insert", relationId: oid, newTuple: ["20", "b"] },
  ]);
  assert.deepEqual(bodyOf(txs[1]), [
    {
      type: "Update",
      relationId: oid,
      oldTupleKind: null,
      oldTuple: null,
      newTuple: ["20", "c"],
    },
  ]);
  assert.deepEqual(bodyOf(txs[2]), [
    { type: "Delete", relationId: oid, oldTupleKind: "key", oldTuple: ["20", null] },
  ]);
  assert.deepEqual(bodyOf(txs[3]), [{ type: "Insert", relationId: oid, newTuple: ["30", "z"] }]);
  assert.deepEqual(bodyOf(txs[4]), [
    { type: "Delete", relationId: oid, oldTupleKind: "key", oldTuple: ["30", null] },
  ]);
}

/**
 * §4.29 (PG15+): a column list: the Relation and every tuple (new, key) carry only the listed
 * columns; an UPDATE of an unlisted column still sends an Update.
 */
async function columnList(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  await sql.query(
    `CREATE TABLE cl_t (id int PRIMARY KEY, a text, b text, c varchar(5));
     CREATE PUBLICATION cl FOR TABLE cl_t (id, a, c)`,
  );
  const oid = await relid(sql, "cl_t");
  await using s = await session(ctx, { slot: "cl", publication: "cl" });
  const xids = [
    await runTx(sql, "INSERT INTO cl_t VALUES (1, 'a1', 'b1', 'c1')"),
    await runTx(sql, "UPDATE cl_t SET b = 'b2' WHERE id = 1"),
    await runTx(sql, "UPDATE cl_t SET id = 2, a = 'a2' WHERE id = 1"),
    await runTx(sql, "DELETE FROM cl_t WHERE id = 2"),
  ];
  const txs = transactions(await collectTx(s, 4));
  checkTransactions(txs, xids);
  assert.deepEqual(bodyOf(txs[0]), [
    relationMessage(oid, "cl_t", [
      col("id", INT4, true),
      col("a", TEXT),
      col("c", VARCHAR, false, 9),
    ]),
    { type: "Insert", relationId: oid, newTuple: ["1", "a1", "c1"] },
  ]);
  assert.deepEqual(bodyOf(txs[1]), [
    {
      type: "Update",
      relationId: oid,
      oldTupleKind: null,
      oldTuple: null,
      newTuple: ["1", "a1", "c1"],
    },
  ]);
  assert.deepEqual(bodyOf(txs[2]), [
    {
      type: "Update",
      relationId: oid,
      oldTupleKind: "key",
      oldTuple: ["1", null, null],
      newTuple: ["2", "a2", "c1"],
    },
  ]);
  assert.deepEqual(bodyOf(txs[3]), [
    { type: "Delete", relationId: oid, oldTupleKind: "key", oldTuple: ["2", null, null] },
  ]);
}

interface Scenario {
  name: string;
  minVersion: PgVersion;
  fn: (ctx: Ctx) => Promise<void>;
}

const SCENARIOS: Scenario[] = [
  { name: "partitioned table via leaves and via root", minVersion: 14, fn: partitions },
  { name: "row filter", minVersion: 15, fn: rowFilter },
  { name: "column list", minVersion: 15, fn: columnList },
];

for (const version of testVersions("full")) {
  Deno.test(`conformance publications: PostgreSQL ${version}`, async (t) => {
    await using pg = await startPostgres({ version, settings: { autovacuum: "off" } });
    const sql = await sqlConnection(pg);
    try {
      for (const scenario of SCENARIOS) {
        if (version < scenario.minVersion) continue;
        await t.step(scenario.name, () => scenario.fn({ pg, sql, version }));
      }
    } finally {
      await sql.close();
    }
  });
}
