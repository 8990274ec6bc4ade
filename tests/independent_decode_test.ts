/**
 * Issue finding 18: Spillway's decoded changes against a reference that shares none of its code.
 *
 * The server decodes the same WAL twice. One `test_decoding` slot, read over SQL by `psql`
 * (`pg_logical_slot_peek_changes`, not streamed, so whole transactions in commit order),
 * prints every change as text: table, action, old key / new row with each column's value as
 * the type's output function printed it, the change's LSN and xid, each commit's end LSN, xid
 * and time, and logical messages. pgoutput slots created at the same point are read, while the
 * workload runs, by Spillway's {@linkcode ReplicationSource} in four configurations:
 *
 * | name                          | proto_version | streaming            | binary |
 * | ----------------------------- | ------------- | -------------------- | ------ |
 * | `p1-text`                     | 1             | off                  | off    |
 * | `p1-binary`                   | 1             | off                  | on     |
 * | `p2-stream-spill-text`        | 2             | on                   | off    |
 * | `pN-stream[-parallel]-binary` | highest (2–4) | parallel (16+) or on | on     |
 *
 * (`p2-stream-spill-text` gives Spillway 16 kB for streamed transactions, so they go through its
 * spill files.) Each configuration's transactions, changes and messages are rendered as the
 * server would print them (typed values back to output-function text by `_independent.ts`,
 * LSNs and commit times by code written there too) and must equal the test_decoding records
 * entry by entry and in order: xids, change and commit LSNs, commit times, table, action,
 * TRUNCATE flags, old key / old row (REPLICA IDENTITY FULL), every new column's value or
 * unchanged-TOAST marker, message flags, prefixes and contents. The values must also have the
 * shape decoder/types/README.md gives their type (`bigint` for int8, the double of the printed
 * decimal for float4, …). The Relation metadata Spillway attaches to its events must match
 * `pg_attribute` (names, order, type OIDs, typmods, key flags). A dropped, extra, reordered or
 * misattributed change, a wrong LSN, xid or commit time, or a mangled value fails with the
 * entry and column that differ.
 *
 * The workload (with `logical_decoding_work_mem = 64kB`) covers ~40 column types (NULLs,
 * NaN/±Infinity, unicode, quotes, backslashes and newlines, bytea, dates and times, intervals,
 * json/jsonb, arrays with NULL elements, several dimensions and lower bounds, enums, domains,
 * composites and arrays of them, ranges, multiranges), unchanged TOAST values (also inside the
 * streamed transaction), key changes, REPLICA IDENTITY FULL with quoted unicode names, a
 * composite key, TRUNCATE with RESTART IDENTITY and CASCADE, one big transaction that is
 * streamed (a savepoint rolled back after its changes were streamed, a released one, another
 * transaction committing and a non-transactional message in its middle, a transactional
 * message) and one big transaction that is streamed and then aborted. The server's
 * `pg_stat_replication_slots` shows that both were streamed to the streaming slots, and only
 * to those.
 *
 * The test_decoding side is itself checked: replaying its changes gives the tables' final
 * contents as the server prints them.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SESSION_PARAMETERS } from "../postgres/connection_string.ts";
import type { PgConnection } from "../postgres/connection.ts";
import { ReplicationSource } from "../source/replication_source.ts";
import { EVENT_RELATION } from "../events.ts";
import type { ProtoVersion, RelationMessage } from "../decoder/pgoutput.ts";
import {
  type PgServer,
  type PgVersion,
  startPostgres,
  testVersions,
} from "../testing/embedded_postgres.ts";
import { connectOptions, nextBatch, sqlConnection } from "./_replication.ts";
import {
  type CellText,
  type Kind,
  lsnFromText,
  lsnText,
  parseTestDecoding,
  render,
  ShapeError,
  type TdColumn,
  UNCHANGED,
  utcTimestampText,
} from "./_independent.ts";

const PUBLICATION = "independent";
const REFERENCE_SLOT = "reference_td";

// ---------------------------------------------------------------------------------------------
// Schema

/** The composite type `item`'s fields. */
const ITEM: [string, Kind][] = [
  ["name", "string"],
  ["qty", "int4"],
  ["price", "string"],
  ["tags", { array: "string" }],
  ["at", "string"],
];

/** Render kind by `format_type(oid, NULL)`, which is also what test_decoding prints. */
const KINDS: Record<string, Kind> = {
  smallint: "int2",
  integer: "int4",
  bigint: "int8",
  real: "float4",
  "double precision": "float8",
  boolean: "bool",
  bytea: "bytea",
  interval: "interval",
  point: "point",
  numeric: "string",
  text: "string",
  "character varying": "string",
  character: "string",
  "timestamp without time zone": "string",
  "timestamp with time zone": "string",
  date: "string",
  "time without time zone": "string",
  "time with time zone": "string",
  json: "string",
  jsonb: "string",
  uuid: "string",
  inet: "string",
  bit: "string",
  "bit varying": "string",
  mood: "string",
  posint: "int4",
  item: { composite: ITEM },
  int4range: { range: "int4" },
  numrange: { range: "string" },
  tstzrange: { range: "string" },
  daterange: { range: "string" },
  int4multirange: { multirange: "int4" },
};

function kindOf(type: string): Kind {
  if (type.endsWith("[]")) return { array: kindOf(type.slice(0, -2)) };
  const kind = KINDS[type];
  assert.ok(kind, `no render kind for type ${type}`);
  return kind;
}

/** `kitchen`: one column per type, name → SQL type. */
const KITCHEN: [string, string][] = [
  ["id", "int4 PRIMARY KEY"],
  ["i2", "int2"],
  ["i8", "int8"],
  ["num", "numeric"],
  ["num2", "numeric(10,2)"],
  ["f4", "real"],
  ["f8", "float8"],
  ["t", "text"],
  ["vc", "varchar(20)"],
  ["ch", "char(5)"],
  ["by", "bytea"],
  ["b", "bool"],
  ["ts", "timestamp"],
  ["tz", "timestamptz"],
  ["d", "date"],
  ["tm", "time"],
  ["ttz", "timetz"],
  ["iv", "interval"],
  ["js", "json"],
  ["jb", "jsonb"],
  ["u", "uuid"],
  ["ip", "inet"],
  ["bits", "bit(4)"],
  ["vbits", "varbit"],
  ["pt", "point"],
  ["ia", "int4[]"],
  ["ia2", "int4[]"],
  ["ta", "text[]"],
  ["na", "numeric[]"],
  ["tza", "timestamptz[]"],
  ["ba", "bytea[]"],
  ["fa", "float8[]"],
  ["m", "mood"],
  ["ma", "mood[]"],
  ["dom", "posint"],
  ["c", "item"],
  ["ca", "item[]"],
  ["ir", "int4range"],
  ["nr", "numrange"],
  ["tzr", "tstzrange"],
  ["dr", "daterange"],
  ["imr", "int4multirange"],
  ["big", "text"],
];

const SCHEMA = String.raw`
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'it''s "fine"');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE TYPE item AS (name text, qty int4, price numeric, tags text[], at timestamptz);
CREATE TABLE kitchen (${KITCHEN.map(([name, type]) => `${name} ${type}`).join(", ")});
ALTER TABLE kitchen ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE "événements" (id int, payload jsonb, "libellé" text, "Quoted ""Col""" text);
ALTER TABLE "événements" REPLICA IDENTITY FULL;
CREATE TABLE pairs (a int, b text, val numeric, PRIMARY KEY (a, b));
CREATE TABLE child (id int PRIMARY KEY, a int, b text, FOREIGN KEY (a, b) REFERENCES pairs);
CREATE TABLE counters (id bigserial PRIMARY KEY, note text);
CREATE TABLE done (id int PRIMARY KEY);
CREATE PUBLICATION ${PUBLICATION} FOR ALL TABLES;
`;

// ---------------------------------------------------------------------------------------------
// Workload

/** kitchen rows 1, 2 and 4 as SQL literals per column (row 3 is all NULL). */
const KITCHEN_ROWS: Record<string, [string, string, string]> = {
  i2: ["-32768", "32767", "0"],
  i8: ["9007199254740993", "-9223372036854775808", "0"],
  num: ["123.4500", "'NaN'", "'-Infinity'"],
  num2: ["1234.5", "-0.01", "0"],
  f4: ["1.1", "'-Infinity'", "'1e-45'"],
  f8: ["0.1", "'NaN'", "'5e-324'"],
  t: [String.raw`E'Zoë 東京 🎉 it''s "q" \\ back\nnew\ttab\r'`, "''", "'NULL'"],
  vc: ["'abc'", "''", "' lead'"],
  ch: ["'ab'", "'abcde'", "''"],
  by: [String.raw`'\x00ff5c270a'`, String.raw`'\x'`, String.raw`'\x20'`],
  b: ["true", "false", "NULL"],
  ts: ["'2024-02-29 13:45:00.5'", "'-infinity'", "'0044-03-15 12:00:00 BC'"],
  tz: ["'2024-02-29 13:45:00.123456+05:30'", "'infinity'", "'1999-12-31 23:59:59.5-08'"],
  d: ["'2024-02-29'", "'0044-03-15 BC'", "'infinity'"],
  tm: ["'13:45:00.1235'", "'24:00:00'", "'00:00:00'"],
  ttz: ["'13:45:00+02'", "'00:00:00-15:59'", "'23:59:59.999999+05:30'"],
  iv: ["'1 year 2 mons -3 days 04:05:06.789'", "'-1 days +00:00:00.000001'", "'-178000000 years'"],
  js: [`'{"b": [1, 2.50], "a": null}'`, "'[]'", `'  {"a" : "\\u00e9"}  '`],
  jb: [String.raw`'{"b": [1, 2.50], "é": "x\"y"}'`, "'null'", `'{"a": [1e400]}'`],
  u: ["'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "'00000000-0000-0000-0000-000000000000'", "NULL"],
  ip: ["'192.168.0.1/24'", "'::1'", "'::ffff:1.2.3.4/120'"],
  bits: ["B'1010'", "B'0000'", "NULL"],
  vbits: ["B'1'", "B''", `B'${"10".repeat(35)}1'`],
  pt: ["'(1.5,-2)'", "'(NaN,-Infinity)'", "'(0.3333333333333333,1e-300)'"],
  ia: ["'{1,NULL,3}'", "'[0:1]={7,8}'", "'[2:3][0:0]={{1},{2}}'"],
  ia2: ["'{{1,2},{3,4}}'", "'{{{1,2}},{{3,NULL}}}'", "'{}'"],
  ta: [
    String
      .raw`ARRAY['a', 'b c', '', NULL, 'NULL', 'x\"y', '{}', 'é', E'tab\there', E'new\nline', ' lead']`,
    "'{}'",
    "'{{a},{b}}'",
  ],
  na: ["'{1.50,NaN,-Infinity}'", "'{}'", "'{0.000}'"],
  tza: [`'{"2024-02-29 13:45:00+05:30",infinity,NULL}'`, "'{}'", "'{-infinity}'"],
  ba: [String.raw`'{"\\x00ff",NULL,"\\x"}'`, "'{}'", "'{NULL}'"],
  fa: ["'{0.1,1e300,-0,NaN,Infinity,1e-7,123456789012345678}'", "'{}'", "'{1e15,1e-5,0.0001}'"],
  m: [`'it''s "fine"'`, "'sad'", "'happy'"],
  ma: [String.raw`'{sad,"it''s \"fine\"",NULL}'`, "'{}'", "'{ok}'"],
  dom: ["42", "2147483647", "1"],
  c: [
    `ROW('widget, "large"', 3, 9.99, '{x,"y z"}', '2024-02-29 13:45:00+00')::item`,
    "ROW(NULL, NULL, NULL, NULL, NULL)::item",
    String.raw`ROW(E'back\\slash (x)', -1, 'NaN', '{NULL,""}', '-infinity')::item`,
  ],
  ca: [
    `ARRAY[ROW('a', 1, NULL, '{}', NULL)::item, NULL, ROW('', NULL, 0, '{NULL}', 'infinity')::item]`,
    "'{}'",
    "ARRAY[ROW(NULL, NULL, NULL, NULL, NULL)::item]",
  ],
  ir: ["'[1,5)'", "'empty'", "'(,5]'"],
  nr: ["'(1.5,2.50]'", "'(,)'", "'[-1,)'"],
  tzr: [`'["2024-01-01 00:00+05",)'`, "'empty'", `'(,"2024-01-01 00:00+00"]'`],
  dr: ["'[2024-01-01,2024-02-01)'", "'[2024-01-01,infinity)'", "'(,2024-01-01]'"],
  imr: ["'{[1,3),[5,7)}'", "'{}'", "'{(,0),[10,)}'"],
  big: ["repeat(md5('big'), 250)", "'short'", "NULL"],
};

function kitchenInsert(): string {
  const names = Object.keys(KITCHEN_ROWS);
  const row = (id: number, i: 0 | 1 | 2) =>
    `(${id}, ${names.map((name) => KITCHEN_ROWS[name]![i]).join(", ")})`;
  return `INSERT INTO kitchen (id, ${names.join(", ")}) VALUES ${row(1, 0)}, ${row(2, 1)}, ${
    row(4, 2)
  }; INSERT INTO kitchen (id) VALUES (3)`;
}

/** 1,500 rows of most types, built from `i`; every 100th has a TOASTed `big`. */
const BULK_INSERT = String.raw`
INSERT INTO kitchen (id, i2, i8, num, num2, f4, f8, t, vc, ch, by, b, ts, tz, d, tm, ttz, iv, js,
  jb, u, ip, bits, vbits, pt, ia, ia2, ta, na, tza, ba, fa, m, ma, dom, c, ca, ir, nr, tzr, dr,
  imr, big)
SELECT 10000 + i, (i % 32767 - 100)::int2, i::int8 * 1000000007 * (1 - 2 * (i % 2)),
  i / 7.0, i * 1.25, (i / 3.0)::real, (i / 3.0)::float8 * (10 ^ (i % 40 - 20)),
  'row ' || i || E' é\n' || repeat('"', i % 3) || repeat('\', i % 2), 'v' || i, 'c' || (i % 100),
  decode(md5(i::text), 'hex'), CASE WHEN i % 3 = 0 THEN NULL ELSE i % 2 = 0 END,
  timestamp '2000-01-01' + i * interval '1 hour 1.5 sec',
  timestamptz '1999-12-31 23:00:00+00' + i * interval '17 min 0.25 sec',
  date '2024-01-01' + i, time '00:00' + i * interval '37.001 sec',
  (time '00:00' + i * interval '1 min')::timetz,
  (i % 13 - 6) * interval '1 mon' + (i % 9 - 4) * interval '1 day' + i * interval '1.5 sec'
    - interval '2 hours',
  json_build_object('i', i), jsonb_build_object('i', i, 'f', i / 7.0, 's', 'é"' || i),
  md5(i::text)::uuid, ('10.0.' || (i % 256) || '.' || (i % 7))::inet, (i % 16)::bit(4),
  (i % 5)::bit(3)::varbit, point(i / 8.0, -i), ARRAY[i, NULL, -i],
  ARRAY[[i, i + 1], [i + 2, i + 3]], ARRAY['a' || i, NULL, 'q"' || i, '', 'NULL', 'x y'],
  ARRAY[(i / 3.0)::numeric(10,4), 'NaN'], ARRAY[timestamptz '2024-01-01' + i * interval '1 sec'],
  ARRAY[decode(lpad(to_hex(i), 8, '0'), 'hex')], ARRAY[i / 3.0, -i * 1e10]::float8[],
  (enum_range(NULL::mood))[1 + i % 4], ARRAY[(enum_range(NULL::mood))[1 + i % 4], NULL], i,
  ROW('n ' || i, i, i / 4.0, ARRAY['t' || i], timestamptz '2024-01-01' + i * interval '1 sec')::item,
  ARRAY[ROW('m,' || i, -i, NULL, NULL, NULL)::item],
  int4range(i, i + i % 10), numrange(i / 2.0, NULL),
  tstzrange(timestamptz '2024-01-01' + i * interval '1 min', NULL),
  daterange(date '2024-01-01', date '2024-01-01' + i, '[]'),
  int4multirange(int4range(1, i), int4range(i + 5, i + 7)),
  CASE WHEN i % 100 = 0 THEN repeat(md5(i::text), 200) END
FROM generate_series(1, 1500) i`;

/** Values that only rolled-back or aborted statements write: none may reach any side. */
const DISCARDED = ["rolled back", "aborted"];

/**
 * Runs the workload: one SQL transaction per step unless the step opens one itself; the big
 * transaction runs on a second connection so that another transaction commits in its middle.
 */
async function runWorkload(
  main: PgConnection,
  other: PgConnection,
  beforeAbort: () => Promise<void>,
): Promise<void> {
  const steps = [
    `BEGIN; ${kitchenInsert()}; COMMIT`,
    // Unchanged TOAST (big), then a key change.
    `UPDATE kitchen SET i2 = i2 + 1, iv = '0' WHERE id = 1`,
    `UPDATE kitchen SET id = 1002, t = 'moved' WHERE id = 2`,
    String.raw`BEGIN;
     INSERT INTO "événements" VALUES (1, '{"n": 1, "ünï": "ç"}', 'é1', 'q'), (2, NULL, NULL, NULL),
       (3, '[1, null]', 'it''s', '"quoted" \ ');
     INSERT INTO pairs VALUES (1, 'a', 1.0), (1, 'b', NULL), (2, 'é ''q''', 3);
     INSERT INTO child VALUES (1, 1, 'a'), (2, 2, 'é ''q''');
     COMMIT`,
    `UPDATE "événements" SET "libellé" = NULL, payload = payload || '{"x": 1}' WHERE id = 1`,
    `UPDATE "événements" SET id = 20 WHERE id = 2`,
    `UPDATE pairs SET b = 'c' WHERE a = 1 AND b = 'b'`,
    `BEGIN;
     DELETE FROM child WHERE id = 1;
     DELETE FROM kitchen WHERE id = 3;
     DELETE FROM "événements" WHERE id = 3;
     UPDATE kitchen SET t = 'x', big = big || 'y' WHERE id = 1;
     COMMIT`,
  ];
  for (const step of steps) await main.query(step);

  // The big transaction: streamed by pgoutput, with another commit and a non-transactional
  // message in its middle.
  await other.query(`BEGIN; ${BULK_INSERT}`);
  await main.query(`INSERT INTO pairs VALUES (10, 'during', 1)`);
  await main.query(`SELECT pg_logical_emit_message(false, 'nontx', 'during big ✓')`);
  // The rolled-back savepoint writes enough to be streamed before its ROLLBACK TO, so Spillway
  // must drop changes it already holds. (When these rows went to `counters` instead,
  // PostgreSQL 17 sent the Stream Abort before streaming any of them, and a Spillway that kept
  // them still passed.)
  await other.query(`
    SAVEPOINT s1;
    INSERT INTO kitchen (id, t, ia)
      SELECT 20000 + i, 'rolled back ' || i || repeat('.', 200), ARRAY[i]
      FROM generate_series(1, 2000) i;
    UPDATE kitchen SET t = 'rolled back' WHERE id = 1;
    ROLLBACK TO SAVEPOINT s1;
    SAVEPOINT s2;
    INSERT INTO counters (note) SELECT 'kept ' || i FROM generate_series(1, 300) i;
    RELEASE SAVEPOINT s2;
    UPDATE kitchen SET num = num * 2, ta = ta || 'upd'::text, iv = -iv
      WHERE id BETWEEN 10001 AND 10300;
    DELETE FROM kitchen WHERE id BETWEEN 10301 AND 10400;
    SELECT pg_logical_emit_message(true, 'tx', 'inside big ✓');
    COMMIT`);

  // Streamed, then aborted. PostgreSQL 18 does not stream a transaction that is already known
  // to be aborted when it is decoded, so the ROLLBACK waits until it has been streamed.
  await other.query(`BEGIN;
    INSERT INTO counters (note) SELECT 'aborted ' || i FROM generate_series(1, 2000) i;
    UPDATE kitchen SET t = 'aborted' WHERE id <= 4`);
  await beforeAbort();
  await other.query(`ROLLBACK`);

  for (
    const step of [
      `BEGIN; SAVEPOINT a; INSERT INTO counters (note) VALUES ('sub'); RELEASE a;
       INSERT INTO counters (note) VALUES ('top'); COMMIT`,
      `TRUNCATE counters RESTART IDENTITY`,
      `TRUNCATE pairs CASCADE`,
      `INSERT INTO counters (note) VALUES ('after truncate')`,
      `INSERT INTO done VALUES (1)`,
    ]
  ) {
    await main.query(step);
  }
}

// ---------------------------------------------------------------------------------------------
// The server's side, through psql

/** Columns of a published table as `pg_attribute` has them. */
interface CatalogColumn {
  name: string;
  type: string;
  typeOid: number;
  typeModifier: number;
  isKey: boolean;
}

interface CatalogTable {
  identity: string;
  columns: CatalogColumn[];
}

/**
 * Runs `query` (one JSON value) in psql, with the output settings Spillway pins for its own
 * sessions, and parses the result; hex on the way keeps psql's formatting out of it.
 */
async function serverJson(pg: PgServer, query: string): Promise<unknown> {
  const settings = Object.entries(SESSION_PARAMETERS)
    .filter(([name]) => name !== "client_encoding")
    .map(([name, value]) => `SET ${name} TO '${value}';`)
    .join("\n");
  const hex = await pg.psql(
    `${settings}\nSELECT encode(convert_to(coalesce((${query})::text, 'null'), 'UTF8'), 'hex');`,
  );
  return JSON.parse(new TextDecoder().decode(Uint8Array.fromHex(hex.replaceAll("\n", ""))));
}

async function readCatalog(pg: PgServer): Promise<Map<string, CatalogTable>> {
  const rows = await serverJson(
    pg,
    `SELECT json_agg(json_build_array(n.nspname || '.' || c.relname, c.relreplident,
       (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, NULL), a.atttypid::int8,
          a.atttypmod, c.relreplident = 'f' OR EXISTS (
            SELECT FROM pg_index i
            WHERE i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY (i.indkey)))
          ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)))
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind = 'r'`,
  ) as [string, string, [string, string, number, number, boolean][]][];
  return new Map(rows.map(([table, identity, columns]) => [table, {
    identity,
    columns: columns.map(([name, type, typeOid, typeModifier, isKey]) => ({
      name,
      type,
      typeOid,
      typeModifier,
      isKey,
    })),
  }]));
}

/** One step of the decoded history, as both sides are normalised. */
type Cols = [name: string, value: CellText][];
type Entry =
  | { kind: "BEGIN"; xid: number }
  | { kind: "COMMIT"; xid: number; lsn: string; at: string }
  | { kind: "MESSAGE"; lsn: string; transactional: boolean; prefix: string; content: string }
  | {
    kind: "CHANGE";
    lsn: string;
    xid: number;
    table: string;
    action: string;
    flags: string[];
    old: Cols | null;
    new: Cols | null;
  };

/** The test_decoding slot's records, as entries. */
async function referenceEntries(
  pg: PgServer,
  catalog: Map<string, CatalogTable>,
): Promise<Entry[]> {
  const rows = await serverJson(
    pg,
    `SELECT json_agg(json_build_array(lsn::text, xid::text, data) ORDER BY n)
     FROM pg_logical_slot_peek_changes('${REFERENCE_SLOT}', NULL, NULL,
       'include-xids', '1', 'include-timestamp', '1', 'skip-empty-xacts', '1')
       WITH ORDINALITY AS c(lsn, xid, data, n)`,
  ) as [string, string | null, string][];
  const out: Entry[] = [];
  const cols = (table: string, columns: TdColumn[] | null): Cols | null => {
    if (columns === null) return null;
    const types = new Map(catalog.get(table)!.columns.map((c) => [c.name, c.type]));
    return columns.map(({ name, type, value }) => {
      assert.equal(type, types.get(name), `test_decoding's type of ${table}.${name}`);
      return [name, value];
    });
  };
  for (const [lsn, xid, data] of rows) {
    const record = parseTestDecoding(data);
    const at = lsnText(lsnFromText(lsn));
    switch (record.kind) {
      case "begin":
        out.push({ kind: "BEGIN", xid: record.xid });
        break;
      case "commit":
        out.push({ kind: "COMMIT", xid: record.xid, lsn: at, at: record.at });
        break;
      case "message":
        assert.equal(new TextEncoder().encode(record.content).length, record.size);
        out.push({
          kind: "MESSAGE",
          lsn: at,
          transactional: record.transactional,
          prefix: record.prefix,
          content: record.content,
        });
        break;
      case "change":
        for (const table of record.tables) {
          assert.ok(catalog.has(table), `unknown table ${table}`);
          out.push({
            kind: "CHANGE",
            lsn: at,
            xid: Number(xid),
            table,
            action: record.action,
            flags: record.flags,
            old: cols(table, record.old),
            new: cols(table, record.new),
          });
        }
        break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Spillway's side

interface Config {
  name: string;
  protoVersion: ProtoVersion;
  streaming?: boolean | "parallel";
  binary: boolean;
  /** Spillway's memory for streamed transactions before it spills them to disk. */
  spillBytes?: number;
}

function configs(version: PgVersion): Config[] {
  const highest: ProtoVersion = version >= 16 ? 4 : version === 15 ? 3 : 2;
  return [
    { name: "p1-text", protoVersion: 1, binary: false },
    { name: "p1-binary", protoVersion: 1, binary: true },
    // With a small budget, so the streamed transaction goes through Spillway's spill files.
    {
      name: "p2-stream-spill-text",
      protoVersion: 2,
      streaming: true,
      binary: false,
      spillBytes: 16_384,
    },
    {
      name: `p${highest}-stream${version >= 16 ? "-parallel" : ""}-binary`,
      protoVersion: highest,
      streaming: version >= 16 ? "parallel" : true,
      binary: true,
    },
  ];
}

function slotOf(config: Config): string {
  return `spillway_${config.name.replaceAll("-", "_")}`;
}

/** A column's value, rendered as the server prints it; a shape mismatch becomes a marker. */
function renderCell(type: string, value: unknown): CellText {
  if (value === null) return null;
  try {
    return render(kindOf(type), value);
  } catch (error) {
    if (error instanceof ShapeError) return `<${error.message}>`;
    throw error;
  }
}

interface SpillwayResult {
  entries: Entry[];
  streamedCommits: number;
  relations: RelationMessage[];
  spilledBytes: number;
}

/**
 * Reads the slot of `config` with a ReplicationSource until the transaction writing to `done`
 * commits, and renders what it delivered: columns in `pg_attribute` order, each as the
 * server's text (a column missing from the event, or not in the table, shows as such).
 */
async function spillwayEntries(
  pg: PgServer,
  config: Config,
  catalog: Map<string, CatalogTable>,
): Promise<SpillwayResult> {
  const source = await ReplicationSource.open({
    connection: connectOptions(pg),
    slot: slotOf(config),
    publication: PUBLICATION,
    protoVersion: config.protoVersion,
    streaming: config.streaming,
    binary: config.binary,
    messages: true,
    statusIntervalMs: 1000,
    spill: config.spillBytes === undefined ? undefined : { memoryLimitBytes: config.spillBytes },
  });
  const entries: Entry[] = [];
  const relations: RelationMessage[] = [];
  let streamedCommits = 0;
  let tx: { xid: number; commitLsn: bigint; entries: Entry[] } | null = null;
  let finished = false;
  let sawDone = false;
  const cols = (
    table: string,
    row: Record<string, unknown> | null,
    unchanged: string[],
    old: boolean,
  ) => {
    if (row === null) return null;
    const columns = catalog.get(table)!.columns;
    const out: Cols = [];
    for (const { name, type } of columns) {
      if (unchanged.includes(name)) {
        out.push([name, UNCHANGED]);
      } else if (Object.hasOwn(row, name)) {
        const cell = renderCell(type, row[name]);
        // test_decoding leaves NULL columns out of old tuples.
        if (!(old && cell === null)) out.push([name, cell]);
      } else if (!old) {
        out.push([name, "<missing from the event>"]);
      }
    }
    for (const name of Object.keys(row)) {
      if (!columns.some((c) => c.name === name)) out.push([name, "<not a column of the table>"]);
    }
    return out;
  };
  const deadline = Date.now() + 120_000;
  const iterator = source.batches();
  try {
    while (!finished) {
      const batch = await nextBatch(iterator, deadline, {
        timeout: `${config.name}: stuck after ${entries.length} entries`,
        ended: `${config.name}: the source ended`,
      });
      for (const item of batch) {
        switch (item.kind) {
          case "begin":
            assert.equal(tx, null, `${config.name}: begin inside a transaction`);
            tx = { xid: item.tx.xid, commitLsn: item.tx.commitLsn, entries: [] };
            break;
          case "change": {
            assert.ok(tx, `${config.name}: change outside a transaction`);
            const { event } = item;
            const table = `${event.source.schema}.${event.source.table}`;
            assert.ok(catalog.has(table), `${config.name}: unknown table ${table}`);
            assert.equal(event.source.commitLsn, tx.commitLsn, `${config.name}: commitLsn`);
            const relation = event[EVENT_RELATION];
            if (relation && !relations.includes(relation)) relations.push(relation);
            const action = ({ c: "INSERT", u: "UPDATE", d: "DELETE", t: "TRUNCATE" } as const)[
              event.op as "c" | "u" | "d" | "t"
            ];
            const flags: string[] = [];
            if (event.truncate?.restartIdentity) flags.push("restart_seqs");
            if (event.truncate?.cascade) flags.push("cascade");
            tx.entries.push({
              kind: "CHANGE",
              lsn: lsnText(event.source.lsn),
              xid: event.source.xid,
              table,
              action: action ?? `<op ${event.op}>`,
              flags,
              old: cols(table, event.before, [], true),
              new: cols(table, event.after, event.unchanged, false),
            });
            if (table === "public.done") sawDone = true;
            break;
          }
          case "message": {
            const { event } = item;
            const entry: Entry = {
              kind: "MESSAGE",
              lsn: lsnText(event.lsn),
              transactional: event.transactional,
              prefix: event.prefix,
              content: new TextDecoder().decode(event.content),
            };
            if (event.transactional) {
              assert.ok(tx, `${config.name}: transactional message outside a transaction`);
              assert.equal(event.xid, tx.xid, `${config.name}: message xid`);
              tx.entries.push(entry);
            } else {
              entries.push(entry);
            }
            break;
          }
          case "commit":
            assert.ok(tx, `${config.name}: commit outside a transaction`);
            assert.equal(item.tx.xid, tx.xid, `${config.name}: commit xid`);
            // Empty transactions (PostgreSQL 14 sends some) are left out, as test_decoding's
            // skip-empty-xacts does.
            if (tx.entries.length > 0) {
              entries.push({ kind: "BEGIN", xid: tx.xid }, ...tx.entries, {
                kind: "COMMIT",
                xid: item.tx.xid,
                lsn: lsnText(item.endLsn),
                at: utcTimestampText(item.tx.commitTime),
              });
              if (item.tx.streamed) streamedCommits++;
            }
            tx = null;
            source.confirm(item.endLsn);
            finished = sawDone;
            break;
          case "schema-change":
            break;
          default:
            assert.fail(`${config.name}: unexpected ${item.kind}`);
        }
      }
    }
    assert.equal(tx, null, `${config.name}: the last transaction is incomplete`);
  } finally {
    await source.close();
  }
  return { entries, streamedCommits, relations, spilledBytes: source.assembler.spill.spilledBytes };
}

// ---------------------------------------------------------------------------------------------
// Comparison

function shown(value: unknown, max = 300): string {
  const text = JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
}

function describe(entry: Entry | undefined): string {
  if (entry === undefined) return "nothing";
  if (entry.kind === "CHANGE") {
    return `${entry.action} ${entry.table} at ${entry.lsn} (xid ${entry.xid})`;
  }
  return shown(entry, 200);
}

/** Where `actual` differs from `expected`, column by column for a change. */
function differences(expected: Entry, actual: Entry): string[] {
  if (expected.kind !== "CHANGE" || actual.kind !== "CHANGE") {
    return [`expected ${shown(expected)}\n      got ${shown(actual)}`];
  }
  const out: string[] = [];
  for (const key of ["lsn", "xid", "table", "action", "flags"] as const) {
    if (JSON.stringify(expected[key]) !== JSON.stringify(actual[key])) {
      out.push(`${key}: expected ${shown(expected[key])}, got ${shown(actual[key])}`);
    }
  }
  for (const tuple of ["old", "new"] as const) {
    const e = expected[tuple];
    const a = actual[tuple];
    if (e === null || a === null) {
      if (e !== a) out.push(`${tuple}: expected ${shown(e)}, got ${shown(a)}`);
      continue;
    }
    const names = [...new Set([...e.map(([n]) => n), ...a.map(([n]) => n)])];
    for (const name of names) {
      const ev = e.find(([n]) => n === name);
      const av = a.find(([n]) => n === name);
      if (JSON.stringify(ev?.[1]) !== JSON.stringify(av?.[1])) {
        out.push(
          `${tuple} column ${name}: server printed ${ev ? shown(ev[1]) : "(absent)"}, ` +
            `Spillway's value renders as ${av ? shown(av[1]) : "(absent)"}`,
        );
      }
    }
    if (out.length === 0 && JSON.stringify(e) !== JSON.stringify(a)) {
      out.push(`${tuple}: column order: expected ${e.map(([n]) => n)}, got ${a.map(([n]) => n)}`);
    }
  }
  return out.length > 12 ? [...out.slice(0, 12), `… and ${out.length - 12} more`] : out;
}

/** Compares entry by entry; reports the first few differences with their position. */
function compareEntries(name: string, expected: Entry[], actual: Entry[]): string[] {
  const failures: string[] = [];
  let xid = 0;
  for (let i = 0; i < Math.max(expected.length, actual.length) && failures.length < 3; i++) {
    const e = expected[i];
    const a = actual[i];
    if (e?.kind === "BEGIN") xid = e.xid;
    if (JSON.stringify(e) === JSON.stringify(a)) continue;
    const where = `${name}: entry ${i} of ${expected.length} (in transaction ${xid})`;
    if (e === undefined || a === undefined) {
      failures.push(`${where}: expected ${describe(e)}, got ${describe(a)}`);
      continue;
    }
    failures.push(`${where}, ${describe(e)}:\n    ${differences(e, a).join("\n    ")}`);
  }
  if (expected.length !== actual.length) {
    failures.push(`${name}: ${actual.length} entries, test_decoding has ${expected.length}`);
  }
  return failures;
}

/** Spillway's Relation metadata against pg_attribute. */
function compareRelations(
  name: string,
  relations: RelationMessage[],
  catalog: Map<string, CatalogTable>,
): string[] {
  const failures: string[] = [];
  for (const relation of relations) {
    const table = `${relation.namespace}.${relation.relationName}`;
    const expected = catalog.get(table);
    if (expected === undefined) {
      failures.push(`${name}: relation ${table} is not a published table`);
      continue;
    }
    const got = {
      identity: relation.replicaIdentity,
      columns: relation.columns.map((c) => [c.name, c.typeOid, c.typeModifier, c.isKey]),
    };
    const want = {
      identity: expected.identity,
      columns: expected.columns.map((c) => [c.name, c.typeOid, c.typeModifier, c.isKey]),
    };
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      failures.push(`${name}: relation ${table}: expected ${shown(want)}, got ${shown(got)}`);
    }
  }
  return failures;
}

// ---------------------------------------------------------------------------------------------
// The reference's own check: replaying it gives the final contents

type TextRow = Record<string, string | null>;

function replay(entries: Entry[], catalog: Map<string, CatalogTable>): Map<string, TextRow[]> {
  const tables = new Map<string, TextRow[]>([...catalog.keys()].map((t) => [t, []]));
  for (const entry of entries) {
    if (entry.kind !== "CHANGE") continue;
    const rows = tables.get(entry.table)!;
    const { columns } = catalog.get(entry.table)!;
    const find = (cols: Cols, full: boolean) => {
      const wanted = new Map(cols);
      const matching = rows.filter((row) =>
        columns.every((c) => full || c.isKey ? row[c.name] === (wanted.get(c.name) ?? null) : true)
      );
      assert.equal(matching.length, 1, `${entry.table}: one row matching ${shown(cols)}`);
      return rows.indexOf(matching[0]!);
    };
    const full = catalog.get(entry.table)!.identity === "f";
    switch (entry.action) {
      case "INSERT":
        rows.push(Object.fromEntries(entry.new!) as TextRow);
        break;
      case "UPDATE": {
        const at = find(entry.old ?? entry.new!, entry.old !== null && full);
        const row = { ...rows[at] };
        for (const [name, value] of entry.new!) {
          if (value !== UNCHANGED) row[name] = value as string | null;
        }
        rows[at] = row;
        break;
      }
      case "DELETE":
        rows.splice(find(entry.old!, full), 1);
        break;
      case "TRUNCATE":
        rows.length = 0;
        break;
    }
  }
  return tables;
}

async function serverRows(pg: PgServer, table: string, columns: CatalogColumn[]) {
  const name = table.split(".").map((part) => `"${part.replaceAll('"', '""')}"`).join(".");
  const cells = columns.map(({ name }) => {
    const ident = `"${name.replaceAll('"', '""')}"`;
    // format('%s') prints the output function's text (col::text would trim char(n)); a
    // composite of NULLs is not NULL itself, which num_nulls respects.
    return `CASE WHEN num_nulls(${ident}) = 1 THEN NULL ELSE format('%s', ${ident}) END`;
  });
  const rows = await serverJson(
    pg,
    `SELECT coalesce(json_agg(json_build_array(${cells.join(", ")})), '[]') FROM ${name}`,
  ) as (string | null)[][];
  return rows.map((row) => Object.fromEntries(columns.map((c, i) => [c.name, row[i] ?? null])));
}

function canonical(rows: TextRow[], columns: CatalogColumn[]): string[] {
  return rows.map((row) => JSON.stringify(columns.map((c) => row[c.name] ?? null))).sort();
}

// ---------------------------------------------------------------------------------------------

async function independentCheck(version: PgVersion): Promise<void> {
  await using pg = await startPostgres({
    version,
    settings: { autovacuum: "off", logical_decoding_work_mem: "64kB" },
  });
  await pg.psql(SCHEMA);
  const all = configs(version);
  await pg.psql(
    `SELECT pg_create_logical_replication_slot('${REFERENCE_SLOT}', 'test_decoding')` +
      all.map((c) => `, pg_create_logical_replication_slot('${slotOf(c)}', 'pgoutput')`).join(""),
  );
  const catalog = await readCatalog(pg);
  // The sources read while the workload runs.
  const reading = all.map((config) => spillwayEntries(pg, config, catalog));
  const readFailures: unknown[] = [];
  for (const promise of reading) promise.catch((error) => readFailures.push(error)); // awaited below
  const streamedTxns = async () =>
    await serverJson(
      pg,
      `SELECT json_object_agg(slot_name, stream_txns) FROM pg_stat_replication_slots`,
    ) as Record<string, number>;
  const streamingSlots = all.filter((c) => c.streaming).map(slotOf);
  {
    await using main = await sqlConnection(pg);
    await using other = await sqlConnection(pg);
    await runWorkload(main, other, async () => {
      // Each streaming slot has streamed two transactions: the big one and this one.
      // (The deadline only keeps a broken run from hanging.)
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (readFailures.length > 0) throw readFailures[0];
        const stats = await streamedTxns();
        if (streamingSlots.every((slot) => (stats[slot] ?? 0) >= 2)) break;
        assert.ok(
          Date.now() < deadline,
          `the aborted transaction was not streamed: ${shown(stats)}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    });
  }
  const results = await Promise.all(reading);
  const expected = await referenceEntries(pg, catalog);

  // The reference covers the workload, and is complete: replaying it gives the tables.
  const changes = expected.filter((e) => e.kind === "CHANGE");
  for (const action of ["INSERT", "UPDATE", "DELETE", "TRUNCATE"]) {
    assert.ok(changes.some((e) => e.action === action), `test_decoding shows some ${action}`);
  }
  assert.ok(changes.length > 2000, `${changes.length} changes`);
  assert.ok(
    changes.some((e) => e.new?.some(([, v]) => v === UNCHANGED)),
    "some unchanged TOAST values",
  );
  const text = JSON.stringify(expected);
  for (const discarded of DISCARDED) assert.ok(!text.includes(discarded), discarded);
  assert.equal(expected.filter((e) => e.kind === "MESSAGE").length, 2, "two messages");
  const replayed = replay(expected, catalog);
  for (const [table, { columns }] of catalog) {
    assert.deepEqual(
      canonical(replayed.get(table)!, columns),
      canonical(await serverRows(pg, table, columns), columns),
      `replaying test_decoding's changes gives the contents of ${table}`,
    );
  }

  // Streaming happened where it was asked for, and only there (the server's own statistics).
  const stats = await streamedTxns();
  for (const config of all) {
    const count = stats[slotOf(config)] ?? 0;
    if (config.streaming) {
      assert.ok(count >= 2, `${config.name}: ${count} streamed transactions`);
    } else {
      assert.equal(count, 0, `${config.name}: streamed transactions`);
    }
  }

  const failures: string[] = [];
  all.forEach((config, i) => {
    const result = results[i]!;
    failures.push(...compareEntries(config.name, expected, result.entries));
    failures.push(...compareRelations(config.name, result.relations, catalog));
    assert.deepEqual(
      [...new Set(result.relations.map((r) => `${r.namespace}.${r.relationName}`))].sort(),
      [...catalog.keys()].sort(),
      `${config.name}: relations of the events`,
    );
    assert.equal(
      result.streamedCommits,
      config.streaming ? 1 : 0,
      `${config.name}: transactions Spillway marked as streamed`,
    );
    if (config.spillBytes !== undefined) {
      assert.ok(result.spilledBytes > 0, `${config.name}: spilled ${result.spilledBytes} bytes`);
    }
  });
  if (failures.length > 0) assert.fail(`\n${failures.join("\n")}`);
}

for (const version of testVersions("full")) {
  Deno.test(
    `independent decode check: Spillway's changes equal test_decoding's (PostgreSQL ${version})`,
    () => independentCheck(version),
  );
}

Deno.test("independent decode check: the test_decoding parser and the renderer", () => {
  assert.deepEqual(
    parseTestDecoding(
      `table public."événements": UPDATE: old-key: id[integer]:2 "Quoted ""Col"""[text]:'it''s' ` +
        `new-tuple: id[integer]:20 "Quoted ""Col"""[text]:null b[boolean]:false ` +
        `big[text]:unchanged-toast-datum bits[bit]:B'1010' f[double precision]:-Infinity`,
    ),
    {
      kind: "change",
      tables: ["public.événements"],
      action: "UPDATE",
      old: [
        { name: "id", type: "integer", value: "2" },
        { name: 'Quoted "Col"', type: "text", value: "it's" },
      ],
      new: [
        { name: "id", type: "integer", value: "20" },
        { name: 'Quoted "Col"', type: "text", value: null },
        { name: "b", type: "boolean", value: "f" },
        { name: "big", type: "text", value: UNCHANGED },
        { name: "bits", type: "bit", value: "1010" },
        { name: "f", type: "double precision", value: "-Infinity" },
      ],
      flags: [],
    },
  );
  assert.deepEqual(
    parseTestDecoding("table public.pairs, public.child: TRUNCATE: restart_seqs cascade"),
    {
      kind: "change",
      tables: ["public.pairs", "public.child"],
      action: "TRUNCATE",
      old: null,
      new: null,
      flags: ["restart_seqs", "cascade"],
    },
  );
  assert.deepEqual(parseTestDecoding("COMMIT 758 (at 2024-02-29 13:45:00.5+00)"), {
    kind: "commit",
    xid: 758,
    at: "2024-02-29 13:45:00.5+00",
  });
  // Renderings the server printed for the values of the integration test.
  const interval = (months: number, days: number, microseconds: bigint) =>
    render("interval", { months, days, microseconds });
  assert.equal(interval(14, -3, 14_706_789_000n), "1 year 2 mons -3 days +04:05:06.789");
  assert.equal(interval(0, -1, 1n), "-1 days +00:00:00.000001");
  assert.equal(interval(-2_136_000_000, 0, 0n), "-178000000 years");
  assert.equal(interval(0, 0, 0n), "00:00:00");
  assert.equal(
    render({ array: "int4" }, { lowerBounds: [2, 0], values: [[1], [2]] }),
    "[2:3][0:0]={{1},{2}}",
  );
  assert.equal(
    render({ array: "string" }, ["a", "b c", "", null, "NULL", 'x\\"y', "{}"]),
    String.raw`{a,"b c","",NULL,"NULL","x\\\"y","{}"}`,
  );
  assert.equal(
    render({ composite: [["a", "string"], ["b", { array: "string" }], ["c", "int4"]] }, {
      a: 'widget, "large"',
      b: [null, ""],
      c: null,
    }),
    String.raw`("widget, ""large""","{NULL,""""}",)`,
  );
  assert.equal(
    render({ range: "string" }, {
      empty: false,
      lower: "2024-01-01 00:00:00+00",
      upper: null,
      lowerInclusive: true,
      upperInclusive: false,
    }),
    `["2024-01-01 00:00:00+00",)`,
  );
  assert.equal(render("float8", 4.93e21), "4.929999999999999e+21");
  assert.equal(render("float8", 643333333333333.25), "643333333333333.2");
  assert.equal(render("float4", 1.1), "1.1");
  assert.equal(render("float4", 1234567), "1.234567e+06");
  assert.equal(render("bytea", new Uint8Array([0, 255])), "\\x00ff");
  assert.throws(() => render("int8", 1), ShapeError);
  assert.throws(() => render("float4", 1.100000023841858), ShapeError);
  assert.equal(lsnText(lsnFromText("16/B374D848")), "16/B374D848");
  assert.equal(utcTimestampText(1_709_214_300_500_000n), "2024-02-29 13:45:00.5+00");
});
