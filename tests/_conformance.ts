/**
 * Test helpers shared by the conformance tests (`conformance_test.ts`,
 * `conformance_publication_test.ts`, `conformance_streaming_test.ts`): one server per version
 * shared by a file's scenarios, transactions and lookups by SQL, slots and sessions, and the
 * splitting and checking of received transactions.
 *
 * Numbers in comments refer to ../shared/reference/pgoutput.md §4.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { PgConnection } from "../postgres/connection.ts";
import { PostgresError } from "../errors.ts";
import { type Lsn, LSN_ZERO } from "../decoder/lsn.ts";
import type {
  BeginMessage,
  CommitMessage,
  OldTupleKind,
  PgoutputMessage,
  RelationColumn,
  RelationMessage,
  TupleData,
  UpdateMessage,
} from "../decoder/pgoutput.ts";
import { type PgServer, type PgVersion, startPostgres } from "../testing/embedded_postgres.ts";
import {
  expectType,
  openSession,
  type Received,
  type Session,
  type SessionOptions,
  sqlConnection,
} from "./_replication.ts";

// ---------------------------------------------------------------------------------------------
// One server per version

/** Built-in type OIDs (pg_type.dat). */
export const INT4 = 23;
export const TEXT = 25;
export const VARCHAR = 1043;

/** What a scenario runs against: the version's server and a SQL connection to it. */
export interface Ctx {
  pg: PgServer;
  sql: PgConnection;
  version: PgVersion;
}

/** A step of a conformance test. */
export interface Scenario {
  name: string;
  fn: (ctx: Ctx) => Promise<void>;
  /** The oldest version the scenario runs on (by default: every version). */
  minVersion?: PgVersion;
}

/**
 * One test per version, named `${title}: PostgreSQL ${version}`: it starts a server (autovacuum
 * off) and runs, as steps sharing it and one SQL connection, the scenarios `runsOn` accepts for
 * that version (by default those whose `minVersion` it reaches).
 */
export function conformanceTests<S extends Scenario>(
  title: string,
  versions: readonly PgVersion[],
  scenarios: readonly S[],
  runsOn: (scenario: S, version: PgVersion) => boolean = (scenario, version) =>
    version >= (scenario.minVersion ?? version),
): void {
  for (const version of versions) {
    Deno.test(`${title}: PostgreSQL ${version}`, async (t) => {
      await using pg = await startPostgres({ version, settings: { autovacuum: "off" } });
      const sql = await sqlConnection(pg);
      try {
        for (const scenario of scenarios) {
          if (!runsOn(scenario, version)) continue;
          await t.step(scenario.name, () => scenario.fn({ pg, sql, version }));
        }
      } finally {
        await sql.close();
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// SQL, slots and sessions

/** A Relation column as the decoder returns it. */
export function col(
  name: string,
  typeOid: number,
  key = false,
  typeModifier = -1,
): RelationColumn {
  return { flags: key ? 1 : 0, isKey: key, name, typeOid, typeModifier };
}

/** A Relation of a table in `public` (outside any streamed transaction). */
export function relationMessage(
  relationId: number,
  relationName: string,
  columns: RelationColumn[],
  replicaIdentity: RelationMessage["replicaIdentity"] = "d",
): RelationMessage {
  return {
    type: "Relation",
    relationId,
    namespace: "public",
    relationName,
    replicaIdentity,
    columns,
  };
}

/** An Update (outside any streamed transaction), its fields in wire order. */
export function updateMessage(
  relationId: number,
  oldTupleKind: OldTupleKind | null,
  oldTuple: TupleData | null,
  newTuple: TupleData,
): UpdateMessage {
  return { type: "Update", relationId, oldTupleKind, oldTuple, newTuple };
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs `statements` after BEGIN, then `end` (COMMIT, ROLLBACK, PREPARE …); returns the
 * (top-level) xid.
 */
export async function runTx(
  sql: PgConnection,
  statements: string,
  end = "COMMIT",
): Promise<number> {
  const results = await sql.query(
    `BEGIN; ${statements}; SELECT pg_current_xact_id()::text AS spillway_xid; ${end}`,
  );
  const xid = results.find((r) => r.fields[0]?.name === "spillway_xid")?.rows[0]?.[0];
  assert.ok(xid, `no xid returned for: ${statements}`);
  return Number(xid);
}

/** First column of the first row of the last statement. */
export async function scalar(sql: PgConnection, text: string): Promise<string | null> {
  const results = await sql.query(text);
  return results[results.length - 1]?.rows[0]?.[0] ?? null;
}

/** The OID of `table`. */
export async function relid(sql: PgConnection, table: string): Promise<number> {
  return Number(await scalar(sql, `SELECT '${table}'::regclass::oid::text`));
}

/** Drops a slot, waiting for a walsender that is still letting go of it (55006). */
export async function dropSlot(sql: PgConnection, slot: string): Promise<void> {
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
export async function session(ctx: Ctx, options: SessionOptions): Promise<Session> {
  const s = await openSession(ctx.pg, options);
  return {
    ...s,
    async [Symbol.asyncDispose]() {
      await s.close();
      await dropSlot(ctx.sql, options.slot);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Received transactions

/** µs since the Unix epoch lies within the last 10 minutes (same host clock). */
export function assertRecent(unixMicros: bigint | undefined, what: string): void {
  assert.ok(unixMicros !== undefined, `${what} is missing`);
  const now = BigInt(Date.now()) * 1000n;
  assert.ok(
    unixMicros > now - 600_000_000n && unixMicros <= now + 5_000_000n,
    `${what} ${unixMicros} is not close to now ${now}`,
  );
}

/** Begin … Commit with the XLogData positions they came with. */
export interface Tx {
  begin: BeginMessage;
  beginAt: Lsn;
  body: Received[];
  commit: CommitMessage;
  commitAt: Lsn;
}

/** Splits messages into transactions; anything outside Begin … Commit fails the test. */
export function transactions(received: Received[]): Tx[] {
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
export function bodyOf(tx: Tx | undefined): PgoutputMessage[] {
  assert.ok(tx, "missing transaction");
  return tx.body.map((r) => r.message);
}

/**
 * §4.11 for every transaction: Begin.finalLsn = Commit.commitLsn; the Commit's XLogData
 * dataStart = Commit.endLsn > commitLsn; same commit time in Begin and Commit; every message in
 * between lies at or after the Begin's position and before the commit record; transactions
 * come in commit order.
 */
export function checkTransactions(txs: Tx[], xids?: number[]): void {
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
export async function collectTx(s: Session, count: number): Promise<Received[]> {
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

/** What {@linkcode publishAndReceive} sets up and runs. */
export interface PublishedWorkload {
  /** SQL that creates `table` and `publication` for it. */
  setup: string;
  table: string;
  /** The publication, also the name of the slot (default: `table`). */
  publication?: string;
  /** Run one after the other, each as its own transaction. */
  statements: string[];
}

/**
 * Runs the workload's setup, opens a session on a new slot for its publication and runs its
 * statements. Returns the table's OID and the transactions received, checked by
 * {@linkcode checkTransactions} against the statements' xids. The session is closed and its
 * slot dropped before it returns.
 */
export async function publishAndReceive(
  ctx: Ctx,
  workload: PublishedWorkload,
): Promise<{ oid: number; txs: Tx[] }> {
  const { sql } = ctx;
  const publication = workload.publication ?? workload.table;
  await sql.query(workload.setup);
  const oid = await relid(sql, workload.table);
  await using s = await session(ctx, { slot: publication, publication });
  const xids: number[] = [];
  for (const statement of workload.statements) xids.push(await runTx(sql, statement));
  const txs = transactions(await collectTx(s, workload.statements.length));
  checkTransactions(txs, xids);
  return { oid, txs };
}
