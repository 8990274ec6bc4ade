/**
 * Cross-check against a peer nobody here wrote: `pg_recvlogical` (the PostgreSQL 15 client)
 * reads a second slot created at the same point as Spillway's, with the same pgoutput options
 * (`proto_version=1`, `publication_names`). For a workload of a few hundred inserts, updates and
 * deletes over three tables (NULLs, empty strings, unicode in values and names, a key change,
 * REPLICA IDENTITY FULL, a TRUNCATE, multi-row transactions), the transactions and changes that
 * Spillway's ReplicationSource delivers must equal what pg_recvlogical received, decoded here
 * with a fresh PgoutputDecoder and normalised by code independent of the pipeline: the peer's
 * text values are turned into typed values by a fresh `TypeRegistry` (`decodeText` of each
 * column's type OID from the peer's own Relation messages), Spillway's arrive typed. Replaying
 * the peer's text changes must also give exactly the tables' final contents.
 *
 * What this proves: Spillway's own replication client (startup, START_REPLICATION, CopyBoth
 * framing, XLogData, status updates) receives pgoutput data that decodes to the same messages
 * as what libpq's client receives, and the source and assembler turn it into the same transactions as a plain decode of
 * those bytes (nothing dropped, duplicated or reordered between the wire and the events). The
 * replay against `SELECT *` also ties the peer's raw column texts to the right columns.
 *
 * What it does not prove: both sides go through Spillway's own `PgoutputDecoder` and
 * `TypeRegistry`, so a bug in pgoutput message parsing or in a type's decoder gives the same
 * wrong value on both sides and cancels out (only the few hard-coded values below would notice);
 * and it covers protocol 1 in text mode only, without streaming. `independent_decode_test.ts`
 * covers that: it compares Spillway's events, for protocols 1 to 4, text and binary, streamed
 * and aborted transactions, with the server's own `test_decoding` rendering of the same WAL,
 * through code that shares nothing with the decoder.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SESSION_PARAMETERS } from "../postgres/connection_string.ts";
import { DecodeError } from "../errors.ts";
import { formatLsn, type Lsn, parseLsn } from "../decoder/lsn.ts";
import {
  PgoutputDecoder,
  type PgoutputMessage,
  type RelationMessage,
  type TupleData,
  UNCHANGED_TOAST,
} from "../decoder/pgoutput.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import { ReplicationSource } from "../source/replication_source.ts";
import {
  type PgServer,
  type PgVersion,
  PRIMARY_VERSION,
  startPostgres,
} from "../testing/embedded_postgres.ts";
import { connectOptions, nextBatch, sqlConnection } from "./_replication.ts";

const PG_RECVLOGICAL = "/usr/bin/pg_recvlogical";
const PUBLICATION = "everything";
const TABLES = ["public.customers", "public.orders", "public.événements"];

/** A row: column name → value (text, or typed) or NULL. */
type Row = Record<string, unknown>;

/** Turns one column's text into the value a change event carries; the identity keeps text. */
type ValueDecoder = (typeOid: number, text: string) => unknown;

const asText: ValueDecoder = (_typeOid, text) => text;

/** One change, normalised the same way for both sides. */
interface Change {
  table: string;
  op: "c" | "u" | "d" | "t";
  /** Key columns only for a key tuple, every column for REPLICA IDENTITY FULL. */
  before: Row | null;
  after: Row | null;
  unchanged: string[];
  truncate?: { cascade: boolean; restartIdentity: boolean };
}

interface Transaction {
  xid: number;
  commitLsn: Lsn;
  endLsn: Lsn;
  changes: Change[];
}

// ---------------------------------------------------------------------------------------------
// Workload

const SCHEMA = `
  CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, note text);
  CREATE TABLE orders (
    id bigserial PRIMARY KEY, customer_id int, amount numeric(10,2), tags text[],
    created timestamptz, paid boolean);
  CREATE TABLE "événements" (id int, payload jsonb, "libellé" text);
  ALTER TABLE "événements" REPLICA IDENTITY FULL;
  CREATE PUBLICATION ${PUBLICATION} FOR ALL TABLES`;

/** One entry per transaction; several statements in one entry run as one transaction. */
const WORKLOAD = [
  `BEGIN;
   INSERT INTO customers
     SELECT i,
            (ARRAY['Zoë', '東京', 'Ünïcødé ✓', '🎉 party', 'O''Brien'])[1 + i % 5] || ' ' || i,
            CASE WHEN i % 4 = 0 THEN NULL ELSE 'c' || i || '@example.com' END,
            CASE WHEN i % 5 = 0 THEN '' ELSE NULL END
     FROM generate_series(1, 100) i;
   INSERT INTO orders (customer_id, amount, tags, created, paid)
     SELECT 1 + i % 100, (i * 1.25)::numeric(10,2), ARRAY['t' || i, NULL, 'a "q"'],
            timestamptz '2024-02-29 12:00:00+00' + i * interval '1 hour', i % 2 = 0
     FROM generate_series(1, 150) i;
   COMMIT`,
  `INSERT INTO "événements"
     SELECT i, jsonb_build_object('n', i, 'ünï', 'ç'),
            CASE WHEN i % 3 = 0 THEN NULL ELSE 'é' || i END
     FROM generate_series(1, 60) i`,
  `UPDATE customers SET note = 'vip ✓' WHERE id % 7 = 0`,
  `UPDATE customers SET id = id + 1000 WHERE id IN (3, 4)`,
  `UPDATE orders SET paid = NOT paid, amount = amount + 1 WHERE id % 10 = 0`,
  `UPDATE "événements" SET "libellé" = NULL, payload = payload || '{"x": [1, null]}' WHERE id % 4 = 0`,
  `DELETE FROM orders WHERE id % 5 = 0`,
  `DELETE FROM "événements" WHERE id > 50`,
  `TRUNCATE orders, "événements"`,
  `INSERT INTO orders (customer_id, amount, tags, created, paid)
     VALUES (1, NULL, '{}', NULL, NULL), (2, 'NaN', '{"x,y",""}', 'infinity', true)`,
  `DELETE FROM customers WHERE id > 90`,
  `BEGIN;
   INSERT INTO customers VALUES (200, E'line\\nbreak\\ttab', 'x@example.com', NULL);
   UPDATE customers SET email = NULL, note = '' WHERE id = 200;
   DELETE FROM customers WHERE id = 1;
   COMMIT`,
];

// ---------------------------------------------------------------------------------------------
// pg_recvlogical's side

/**
 * Runs pg_recvlogical on `slot` until `endpos`. Its session gets the same output settings
 * Spillway pins (time zone, date style, …), so text values are comparable.
 */
async function runRecvlogical(pg: PgServer, slot: string, endpos: Lsn): Promise<Uint8Array> {
  const file = await Deno.makeTempFile({ prefix: "spillway-recvlogical-" });
  try {
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(Deno.env.toObject())) {
      if (!key.startsWith("PG")) env[key] = value;
    }
    env.PGOPTIONS = Object.entries(SESSION_PARAMETERS)
      .filter(([name]) => name !== "client_encoding")
      .map(([name, value]) => `-c ${name}=${value.replaceAll(" ", "\\ ")}`)
      .join(" ");
    env.PGCLIENTENCODING = "UTF8";
    const output = await new Deno.Command(PG_RECVLOGICAL, {
      args: [
        "-h",
        pg.host,
        "-p",
        String(pg.port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-S",
        slot,
        "--start",
        "--no-loop",
        "-E",
        formatLsn(endpos),
        "-o",
        "proto_version=1",
        "-o",
        `publication_names=${PUBLICATION}`,
        "-f",
        file,
      ],
      env,
      clearEnv: true,
      stdin: "null",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, `pg_recvlogical failed: ${stderr}\n${await pg.tailLog()}`);
    return await Deno.readFile(file);
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}

/**
 * Splits pg_recvlogical's file into pgoutput messages. It writes each message followed by one
 * "\n", and a binary message may itself contain 0x0A: each following newline is tried as the
 * end, and the first candidate that decodes completely is the message, since the decoder
 * rejects truncated messages and trailing bytes. A fresh decoder per attempt keeps a failed
 * attempt from leaving state behind (protocol 1 has no stream blocks, the only state).
 */
function splitMessages(bytes: Uint8Array): PgoutputMessage[] {
  const out: PgoutputMessage[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    for (;;) {
      assert.ok(end >= 0, `no complete pgoutput message at byte ${start} of ${bytes.length}`);
      try {
        out.push(new PgoutputDecoder({ protoVersion: 1 }).decode(bytes.subarray(start, end)));
        break;
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error;
        end = bytes.indexOf(0x0a, end + 1);
      }
    }
    start = end + 1;
  }
  return out;
}

function toRow(
  relation: RelationMessage,
  tuple: TupleData,
  keyOnly: boolean,
  unchanged: string[],
  decode: ValueDecoder,
): Row {
  assert.equal(tuple.length, relation.columns.length, `tuple width of ${relation.relationName}`);
  const row: Row = {};
  relation.columns.forEach((column, i) => {
    const value = tuple[i];
    if (keyOnly && !column.isKey) {
      assert.equal(value, null, "a key tuple has NULL in non-key columns");
      return;
    }
    if (value === UNCHANGED_TOAST) {
      unchanged.push(column.name);
      return;
    }
    assert.ok(typeof value === "string" || value === null, "text format only");
    row[column.name] = value === null ? null : decode(column.typeOid, value);
  });
  return row;
}

/**
 * Transactions and changes from raw pgoutput messages, independently of the pipeline; column
 * values are PostgreSQL's text unless `decode` types them.
 */
function fromMessages(
  messages: PgoutputMessage[],
  relations: Map<number, RelationMessage>,
  decode: ValueDecoder = asText,
): Transaction[] {
  const out: Transaction[] = [];
  let current: Transaction | null = null;
  const relation = (id: number) => {
    const found = relations.get(id);
    assert.ok(found, `relation ${id} was never described`);
    return found;
  };
  const name = (r: RelationMessage) => `${r.namespace}.${r.relationName}`;
  for (const message of messages) {
    if (message.type === "Begin") {
      assert.equal(current, null, "Begin inside a transaction");
      current = { xid: message.xid, commitLsn: message.finalLsn, endLsn: 0n as Lsn, changes: [] };
      continue;
    }
    if (message.type === "Relation") {
      relations.set(message.relationId, message);
      continue;
    }
    if (message.type === "Type") continue;
    assert.ok(current, `${message.type} outside a transaction`);
    const unchanged: string[] = [];
    switch (message.type) {
      case "Commit":
        assert.equal(message.commitLsn, current.commitLsn, "Commit.commitLsn = Begin.finalLsn");
        current.endLsn = message.endLsn;
        out.push(current);
        current = null;
        break;
      case "Insert": {
        const r = relation(message.relationId);
        const after = toRow(r, message.newTuple, false, unchanged, decode);
        current.changes.push({ table: name(r), op: "c", before: null, after, unchanged });
        break;
      }
      case "Update": {
        const r = relation(message.relationId);
        const before = message.oldTuple === null
          ? null
          : toRow(r, message.oldTuple, message.oldTupleKind === "key", [], decode);
        const after = toRow(r, message.newTuple, false, unchanged, decode);
        current.changes.push({ table: name(r), op: "u", before, after, unchanged });
        break;
      }
      case "Delete": {
        const r = relation(message.relationId);
        const before = toRow(r, message.oldTuple, message.oldTupleKind === "key", [], decode);
        current.changes.push({ table: name(r), op: "d", before, after: null, unchanged });
        break;
      }
      case "Truncate":
        for (const id of message.relationIds) {
          current.changes.push({
            table: name(relation(id)),
            op: "t",
            before: null,
            after: null,
            unchanged: [],
            truncate: { cascade: message.cascade, restartIdentity: message.restartIdentity },
          });
        }
        break;
      default:
        assert.fail(`unexpected ${message.type} with proto_version 1`);
    }
  }
  assert.equal(current, null, "the last transaction is incomplete");
  return out;
}

// ---------------------------------------------------------------------------------------------
// Spillway's side

async function readSource(pg: PgServer, slot: string, count: number): Promise<Transaction[]> {
  const source = await ReplicationSource.open({
    connection: connectOptions(pg),
    slot,
    publication: PUBLICATION,
    protoVersion: 1,
    messages: false,
    statusIntervalMs: 1000,
  });
  const iterator = source.batches();
  const out: Transaction[] = [];
  let current: Transaction | null = null;
  const deadline = Date.now() + 30_000;
  try {
    while (out.length < count) {
      const batch = await nextBatch(iterator, deadline, {
        timeout: `timed out after ${out.length} transactions`,
        ended: "the source ended",
      });
      for (const item of batch) {
        switch (item.kind) {
          case "begin":
            current = {
              xid: item.tx.xid,
              commitLsn: item.tx.commitLsn,
              endLsn: 0n as Lsn,
              changes: [],
            };
            break;
          case "change": {
            assert.ok(current);
            const { event } = item;
            const change: Change = {
              table: `${event.source.schema}.${event.source.table}`,
              op: event.op as Change["op"],
              before: event.before,
              after: event.after,
              unchanged: event.unchanged,
            };
            if (event.truncate) change.truncate = event.truncate;
            current.changes.push(change);
            assert.equal(event.source.xid, current.xid);
            assert.equal(event.source.commitLsn, current.commitLsn);
            break;
          }
          case "commit":
            assert.ok(current);
            assert.equal(item.eventCount, current.changes.length);
            current.endLsn = item.endLsn;
            if (current.changes.length > 0) out.push(current);
            current = null;
            source.confirm(item.endLsn);
            break;
          default:
            assert.fail(`unexpected item ${item.kind}`);
        }
      }
    }
  } finally {
    await source.close();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Final state

function matches(row: Row, wanted: Row): boolean {
  return Object.entries(wanted).every(([column, value]) => row[column] === value);
}

/** Applies the changes to empty tables. */
function replay(transactions: Transaction[], keys: Map<string, string[]>): Map<string, Row[]> {
  const tables = new Map<string, Row[]>(TABLES.map((t) => [t, []]));
  for (const change of transactions.flatMap((tx) => tx.changes)) {
    const rows = tables.get(change.table)!;
    const find = (wanted: Row) => {
      const found = rows.filter((row) => matches(row, wanted));
      assert.equal(found.length, 1, `${change.table}: one row matching ${JSON.stringify(wanted)}`);
      return rows.indexOf(found[0]!);
    };
    const keyOf = (row: Row) =>
      Object.fromEntries((keys.get(change.table) ?? []).map((k) => [k, row[k] ?? null]));
    switch (change.op) {
      case "c":
        rows.push(change.after!);
        break;
      case "u": {
        const at = find(change.before ?? keyOf(change.after!));
        rows[at] = { ...rows[at], ...change.after };
        break;
      }
      case "d":
        rows.splice(find(change.before!), 1);
        break;
      case "t":
        rows.length = 0;
        break;
    }
  }
  return tables;
}

function canonical(rows: Row[]): string[] {
  return rows.map((row) => JSON.stringify(Object.entries(row).sort())).sort();
}

// ---------------------------------------------------------------------------------------------

async function crossCheck(version: PgVersion): Promise<void> {
  await using pg = await startPostgres({ version, settings: { autovacuum: "off" } });
  await using sql = await sqlConnection(pg);
  await pg.psql(SCHEMA);
  await sql.query(
    `SELECT pg_create_logical_replication_slot('spillway', 'pgoutput'),
            pg_create_logical_replication_slot('peer', 'pgoutput')`,
  );
  for (const statements of WORKLOAD) await pg.psql(statements);
  const [end] = await sql.query("SELECT pg_current_wal_lsn()::text");
  const endpos = parseLsn(end!.rows[0]![0]!);

  const peerBytes = await runRecvlogical(pg, "peer", endpos);
  const relations = new Map<number, RelationMessage>();
  const peerMessages = splitMessages(peerBytes);
  const peer = fromMessages(peerMessages, relations);
  assert.equal(peer.length, WORKLOAD.length, "pg_recvlogical: one transaction per entry");
  const registry = new TypeRegistry();
  const peerTyped = fromMessages(
    peerMessages,
    new Map(),
    (typeOid, text) => registry.decodeText(typeOid, text),
  );
  const ours = await readSource(pg, "spillway", WORKLOAD.length);

  assert.deepEqual(ours, peerTyped);
  // The values are typed (per decoder/types/README.md), not text on both sides.
  const firstOf = (table: string) =>
    peerTyped[0]!.changes.find((change) => change.table === table)?.after;
  assert.deepEqual(firstOf("public.customers"), {
    id: 1,
    name: "東京 1",
    email: "c1@example.com",
    note: null,
  });
  assert.deepEqual(firstOf("public.orders"), {
    id: 1n,
    customer_id: 2,
    amount: "1.25",
    tags: ["t1", null, 'a "q"'],
    created: "2024-02-29 13:00:00+00",
    paid: false,
  });
  assert.deepEqual(peerTyped[1]!.changes[0]?.after, {
    id: 1,
    payload: '{"n": 1, "ünï": "ç"}',
    "libellé": "é1",
  });
  assert.deepEqual(peerTyped[9]!.changes.map((change) => change.after), [
    { id: 151n, customer_id: 1, amount: null, tags: [], created: null, paid: null },
    { id: 152n, customer_id: 2, amount: "NaN", tags: ["x,y", ""], created: "infinity", paid: true },
  ]);
  const changes = peer.flatMap((tx) => tx.changes);
  assert.ok(changes.length > 400, `${changes.length} changes`);
  for (const op of ["c", "u", "d", "t"]) {
    assert.ok(changes.some((c) => c.op === op), `some changes are "${op}"`);
  }
  assert.ok(peer.every((tx, i) => i === 0 || tx.commitLsn > peer[i - 1]!.endLsn));

  // Replaying the changes gives the tables' contents.
  const keys = new Map<string, string[]>();
  for (const r of relations.values()) {
    keys.set(
      `${r.namespace}.${r.relationName}`,
      r.columns.filter((c) => c.isKey).map((c) => c.name),
    );
  }
  const replayed = replay(peer, keys);
  for (const table of TABLES) {
    const [, name] = table.split(".");
    const rows = await sql.queryObjects(`SELECT * FROM "${name}"`);
    assert.deepEqual(canonical(replayed.get(table)!), canonical(rows), table);
  }
}

for (const version of [...new Set<PgVersion>([PRIMARY_VERSION, 14])]) {
  Deno.test(`pg_recvlogical cross-check: PostgreSQL ${version}`, () => crossCheck(version));
}

Deno.test({
  name: "PgConnection.query sends SQL with non-ASCII text",

  async fn() {
    await using pg = await startPostgres({ version: PRIMARY_VERSION });
    await using sql = await sqlConnection(pg);
    const text = "Zoë 東京 🎉 ".repeat(10);
    const [result] = await sql.query(`SELECT '${text}' AS t`);
    assert.equal(result?.rows[0]?.[0], text);
  },
});
