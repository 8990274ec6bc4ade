/**
 * Integration tests against a real server: `loadTypeInfos` reads catalog types (enum, domains,
 * composites, arrays, a custom range and its multirange), and rows streamed by pgoutput in
 * text mode and in binary mode decode to the same values with a registry built from it.
 */

import assert from "node:assert/strict";
import { PgConnection } from "../../postgres/connection.ts";
import { parseConnectionUrl } from "../../postgres/connection_string.ts";
import { type PgServer, startPostgres, testVersions } from "../../testing/embedded_postgres.ts";
import { ofTypes, openSession } from "../../tests/_replication.ts";
import type { InsertMessage, RelationMessage } from "../pgoutput.ts";
import { loadTypeInfos } from "./catalog.ts";
import { Oid } from "./oids.ts";
import { type TypeInfo, TypeRegistry } from "./registry.ts";
import type { PgValue } from "./values.ts";

const SETUP = `
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
ALTER TYPE app.mood ADD VALUE 'meh' BEFORE 'ok';
CREATE DOMAIN app.posint AS int4 CHECK (VALUE > 0);
CREATE DOMAIN app.intarr AS int4[];
CREATE DOMAIN app.price AS numeric(10,2);
CREATE TYPE app.tagged AS (id int4, tags text[], m app.mood, dropped int4, p app.price);
ALTER TYPE app.tagged DROP ATTRIBUTE dropped;
CREATE TYPE app.floatrange AS RANGE (subtype = float8);
CREATE TABLE app.everything (
  id int8 PRIMARY KEY, m app.mood, moods app.mood[], n app.posint, arr app.intarr, p app.price,
  t app.tagged, ts app.tagged[], r app.floatrange, mr app.floatmultirange,
  num numeric, num2 numeric(12,3), f4 real, f8 float8, d date, tz timestamptz, tm time(3),
  ttz timetz, iv interval, b bytea, bits varbit, j jsonb, txt text, ch char(4), ip inet,
  cidr4 cidr, mac macaddr, u uuid, pt point, bx box[], ir int4range, dmr datemultirange,
  tsv tsvector, tsq tsquery, lsn pg_lsn, money money, xml xml, arr2 int4[], oids oidvector
);
CREATE PUBLICATION everything_pub FOR TABLE app.everything;
`;

/** Two rows of edge values; interval infinity needs PostgreSQL 17. */
const rows = (version: number) => `
INSERT INTO app.everything VALUES
 (1, 'meh', '{sad,happy,NULL}', 5, '{1,NULL,3}', 12.5,
  '(1,"{a,\\"b c\\"}",happy,9.99)', ARRAY['(2,{},sad,)'::app.tagged, NULL],
  '[1.5,Infinity)', '{[1,2),(3,4]}', 'NaN', 1.5, 1.1, '-0', '0044-03-15 BC',
  '2024-02-29 13:45:00.123456+05:30', '13:45:00.1235', '13:45:00+02', '1 year -2 days 03:04:05.5',
  '\\x00ff', B'10110', '{"b": [1, 2.50], "a": null}', 'ünïcödé "q" \\ ,', 'ab', '::ffff:1.2.3.4/120',
  '10.1.0.0/16', '08:00:2b:01:02:03', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '(1.5,-2)',
  '{(1,1),(0,0);(3,3),(2,2)}', '(,5]', '{[2024-01-01,2024-02-01)}', 'a:1A fat:2,3', 'fat & !(cat | rat:*)',
  '16/B374D848', -1234.56, '<a>x</a>', '[0:1]={7,8}', '1 2 3'),
 (2, NULL, '{}', NULL, '{}', NULL, '(,,,)', '{}', 'empty', '{}', '-Infinity', NULL, 'Infinity',
  'NaN', 'infinity', '-infinity', '24:00:00', '00:00:00-15:59',
  ${version >= 17 ? "'infinity'" : "'-1 mon'"}, '\\x', B'', 'null', '', NULL, NULL,
  NULL, NULL, NULL, NULL, '{}', 'empty', '{}', '', '', '0/0', 0, NULL, '{{1,2},{3,4}}', '');
`;

async function withServer(version: number, fn: (pg: PgServer) => Promise<void>): Promise<void> {
  await using pg = await startPostgres({ version: version as 17 });
  await pg.psql(SETUP);
  await fn(pg);
}

async function connect(pg: PgServer): Promise<PgConnection> {
  return await PgConnection.connect({ ...parseConnectionUrl(pg.url()), sslmode: "disable" });
}

async function oidOf(connection: PgConnection, type: string): Promise<number> {
  const [row] = await connection.queryObjects(`SELECT '${type}'::regtype::oid AS oid`);
  return Number(row!.oid);
}

/** Loads what the registry is missing until nothing is, as an integration would. */
async function fill(
  registry: TypeRegistry,
  connection: PgConnection,
  oids: number[],
): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const missing = registry.missing(oids);
    if (missing.length === 0) return;
    for (
      const info of await loadTypeInfos(connection, missing, { isKnown: (o) => registry.has(o) })
    ) {
      registry.register(info);
    }
  }
  assert.fail(`still missing ${registry.missing(oids)}`);
}

for (const version of testVersions("full")) {
  Deno.test(`catalog: loadTypeInfos reads catalog types (PostgreSQL ${version})`, async () => {
    await withServer(version, async (pg) => {
      const connection = await connect(pg);
      try {
        const tagged = await oidOf(connection, "app.tagged");
        const taggedArray = await oidOf(connection, "app.tagged[]");
        const infos = await loadTypeInfos(connection, [taggedArray]);
        const byName = new Map(infos.map((i) => [i.name, i]));
        // The array pulls in the composite, which pulls in the enum and the domain.
        assert.deepEqual([...byName.keys()].sort(), ["_tagged", "mood", "price", "tagged"]);
        assert.deepEqual(byName.get("_tagged"), {
          oid: taggedArray,
          namespace: "app",
          name: "_tagged",
          kind: "array",
          elementOid: tagged,
          delimiter: ",",
        });
        const mood = byName.get("mood")!;
        assert.equal(mood.kind, "enum");
        assert.deepEqual(mood.enumLabels, ["sad", "meh", "ok", "happy"]);
        const price = byName.get("price")!;
        assert.equal(price.kind, "domain");
        assert.equal(price.baseOid, Oid.numeric);
        assert.equal(price.baseTypeModifier, ((10 << 16) | 2) + 4);
        assert.deepEqual(byName.get("tagged")!.fields, [
          { name: "id", typeOid: Oid.int4, typeModifier: -1 },
          { name: "tags", typeOid: 1009, typeModifier: -1 },
          { name: "m", typeOid: mood.oid, typeModifier: -1 },
          { name: "p", typeOid: price.oid, typeModifier: -1 },
        ]);

        const multirange = await oidOf(connection, "app.floatmultirange");
        const ranges = await loadTypeInfos(connection, [multirange]);
        const range = ranges.find((i) => i.kind === "range")!;
        assert.deepEqual(ranges.map((i) => i.kind).sort(), ["multirange", "range"]);
        assert.equal(range.subtypeOid, Oid.float8);
        assert.equal(ranges.find((i) => i.kind === "multirange")!.rangeOid, range.oid);

        const intarr = await oidOf(connection, "app.intarr");
        const [domain] = await loadTypeInfos(connection, [intarr]);
        assert.deepEqual(
          { kind: domain!.kind, baseOid: domain!.baseOid },
          { kind: "domain", baseOid: 1007 },
        );
        // Built-ins and OIDs that do not exist are left out.
        assert.deepEqual(await loadTypeInfos(connection, [Oid.int4, 1007, 4_000_000_000]), []);

        // Text and binary of values fetched with SQL decode alike.
        const registry = new TypeRegistry();
        for (const info of [...infos, ...ranges, domain!]) registry.register(info as TypeInfo);
        const [row] = await connection.queryObjects(
          `SELECT v::text AS text, encode(record_send(v), 'hex') AS hex
             FROM (SELECT '(1,"{a,NULL}",meh,2.5)'::app.tagged AS v) s`,
        );
        const fromText = registry.decodeText(tagged, row!.text!);
        assert.deepStrictEqual(fromText, { id: 1, tags: ["a", null], m: "meh", p: "2.50" });
        assert.deepStrictEqual(
          registry.decodeBinary(tagged, Uint8Array.fromHex(row!.hex!)),
          fromText,
        );
      } finally {
        await connection.close();
      }
    });
  });

  Deno.test(`catalog: pgoutput rows decode the same in text and binary mode (PostgreSQL ${version})`, async () => {
    await withServer(version, async (pg) => {
      await using text = await openSession(pg, {
        slot: "types_text",
        publication: "everything_pub",
      });
      await using binary = await openSession(pg, {
        slot: "types_binary",
        publication: "everything_pub",
        binary: true,
      });
      await pg.psql(rows(version));
      const decodeRows = async (session: typeof text) => {
        const received = await session.collectTransactions(1);
        const relation = ofTypes(received, "Relation")[0]!.message as RelationMessage;
        const connection = await connect(pg);
        const registry = new TypeRegistry();
        try {
          await fill(registry, connection, relation.columns.map((c) => c.typeOid));
        } finally {
          await connection.close();
        }
        const decoders = relation.columns.map((c) =>
          registry.columnDecoder(c.typeOid, c.typeModifier)
        );
        return ofTypes(received, "Insert").map((r) => {
          const insert = r.message as InsertMessage;
          const row: Record<string, PgValue> = {};
          insert.newTuple.forEach((value, i) => {
            assert.ok(typeof value !== "symbol");
            row[relation.columns[i]!.name] = value === null ? null : decoders[i]!(value);
          });
          return { row, formats: insert.newTuple.map((v) => v instanceof Uint8Array ? "b" : "t") };
        });
      };
      const fromText = await decodeRows(text);
      const fromBinary = await decodeRows(binary);
      assert.equal(fromText.length, 2);
      assert.ok(fromText[0]!.formats.every((f) => f === "t"));
      assert.ok(fromBinary[0]!.formats.includes("b"));
      for (let i = 0; i < fromText.length; i++) {
        assert.deepStrictEqual(fromBinary[i]!.row, fromText[i]!.row, `row ${i + 1}`);
      }
      const first = fromText[0]!.row;
      assert.equal(first.id, 1n);
      assert.deepStrictEqual(first.t, { id: 1, tags: ["a", "b c"], m: "happy", p: "9.99" });
      assert.deepStrictEqual(first.ts, [{ id: 2, tags: [], m: "sad", p: null }, null]);
      assert.equal(first.tz, "2024-02-29 08:15:00.123456+00");
      assert.equal(first.tm, "13:45:00.124");
      assert.equal(first.f4, 1.1);
      assert.ok(Object.is(first.f8, -0));
      assert.equal(first.money, "-1234.56");
      assert.deepStrictEqual(first.arr2, { lowerBounds: [0], values: [7, 8] });
      assert.deepStrictEqual(first.iv, { months: 12, days: -2, microseconds: 11_045_500_000n });
    });
  });
}
