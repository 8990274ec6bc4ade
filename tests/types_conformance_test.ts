/**
 * Issue 4, type conformance against real servers, through a full {@linkcode ReplicationSource}
 * (catalog types loaded by the source itself), in text mode and in binary mode:
 *
 * 1. Text decoding does not depend on the server's session defaults: a server whose
 *    postgresql.conf sets `DateStyle`, `TimeZone`, `IntervalStyle`, `extra_float_digits`,
 *    `bytea_output` and `lc_monetary` (a de_DE monetary locale compiled with `localedef`, or
 *    a non-C libc locale of the machine; skipped when neither exists) to other values than the
 *    ones `SESSION_PARAMETERS` pins streams the same typed rows as a server with the harness
 *    defaults.
 * 2. Streamed values agree with the server's own renderings of the same values: `col::text`
 *    decoded with the source's registry, and `to_jsonb(col)::text` per the relations documented
 *    on `checkJson` (tests/_types.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { SESSION_PARAMETERS } from "../postgres/connection_string.ts";
import { type PgServer, startPostgres, testVersions } from "../testing/embedded_postgres.ts";
import { sqlConnection } from "./_replication.ts";
import {
  checkCastText,
  checkJson,
  columnOid,
  compileMonetaryLocale,
  isJsonNative,
  parseJsonWithSource,
  type Streamed,
  streamTextAndBinary,
  without,
} from "./_types.ts";

// ---------------------------------------------------------------------------------------------
// 1. Session settings

/** Server defaults that differ from every pinned session parameter. */
const ODD_DEFAULTS: Record<string, string> = {
  DateStyle: "SQL, DMY",
  TimeZone: "America/New_York",
  IntervalStyle: "iso_8601",
  extra_float_digits: "0",
  bytea_output: "escape",
};

const SETTINGS_SETUP = `
CREATE TYPE stamp AS (d date, at timestamptz, ts timestamp, iv interval, f8 float8, f4 float4,
  b bytea, m money, t timetz);
CREATE DOMAIN moment AS timestamptz;
CREATE TABLE settings_probe (
  id int4 PRIMARY KEY, probe regtype,
  d date, ts timestamp, ts3 timestamp(3), tz timestamptz, tm time, ttz timetz, iv interval,
  f4 float4, f4third float4, f8 float8, f8third float8, b bytea, money money, num numeric,
  tzs timestamptz[], ds date[], ivs interval[], f8s float8[], bs bytea[],
  tzr tstzrange, tsr tsrange, dr daterange, tzmr tstzmultirange,
  c stamp, cs stamp[], dom moment
);
CREATE PUBLICATION settings_pub FOR TABLE settings_probe;
`;

/**
 * Inserted through a Spillway SQL connection (pinned settings), so the stored values are the
 * same on both servers whatever their defaults; the literals are unambiguous anyway (ISO dates,
 * explicit offsets). Row 2 crosses a New York DST change and holds the extremes, row 3 NULLs.
 */
const SETTINGS_ROWS = `
INSERT INTO settings_probe VALUES
 (1, 'int4', '2024-02-29', '2024-02-29 13:45:00.5', '2024-02-29 13:45:00.1235',
  '2024-02-29 13:45:00.123456+05:30', '13:45:00.123456', '13:45:00+02',
  '1 year 2 mons -3 days 04:05:06.789', 0.1, 1::float4 / 3, 0.1, 1::float8 / 3,
  '\\x00ff5c27200a7f80', -1234.56, 123.4500,
  '{"2024-02-29 13:45:00+05:30","1999-12-31 23:59:59.999999-08",infinity}',
  '{2024-02-29,"0044-03-15 BC"}', '{"-1 day +02:00","1 mon -00:00:01","P1Y2M3DT4H5M6S"}',
  '{0.1,0.3333333333333333,1e-300}', '{"\\\\x00","\\\\x5c27"}',
  '["2024-03-10 06:59:59+00","2024-03-10 07:00:00+00")', '[2024-01-01 00:00,2024-01-02 00:00)',
  '[2024-01-01,2024-02-01)', '{["2024-11-03 05:30:00+00","2024-11-03 06:30:00+00"]}',
  ROW('2024-02-29', '2024-02-29 13:45:00+05:30', '2024-02-29 13:45:00', '-1 year +3 days',
      0.1, 0.1, '\\x00ff', 12.5, '13:45:00-03:30')::stamp,
  ARRAY[ROW('0044-03-15 BC', '0001-01-01 00:00:00+00 BC', 'infinity', '1 mon', 1e300, 3e38,
      '\\x', 0, '24:00:00+00')::stamp, NULL],
  '2024-07-04 12:00:00-04'),
 (2, 'text', 'infinity', '-infinity', '294276-12-31 23:59:59.999', '2024-03-10 07:30:00+00',
  '24:00:00', '00:00:00-15:59', '-178000000 years', 'NaN', 1e-45, '-0', 'Infinity',
  '\\x', '92233720368547758.07', 'NaN', '{}', '{infinity,-infinity}', '{"00:00:00"}',
  '{NaN,-Infinity,-0}', '{NULL}', 'empty', '(,)', '(,2024-01-01]', '{}',
  ROW(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::stamp, '{}',
  '2024-11-03 06:30:00+00'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
`;

/**
 * Sets the server's default lc_monetary (postgresql.auto.conf) to the first locale it accepts:
 * `compiled` (see `compileMonetaryLocale`), else a libc locale other than C/POSIX/C.* from
 * pg_collation. Null when there is none.
 */
async function setOddMonetaryLocale(
  pg: PgServer,
  compiled: string | undefined,
): Promise<string | null> {
  const candidates = (await pg.psql(
    `SELECT collcollate FROM pg_collation WHERE collprovider = 'c'
        AND collcollate NOT IN ('C', 'POSIX') AND collcollate NOT ILIKE 'C.%' ORDER BY 1`,
  )).split("\n").filter((name) => name !== "");
  if (compiled !== undefined) candidates.unshift(compiled);
  for (const locale of candidates) {
    try {
      // Validated with setlocale(); a locale missing on the machine is refused here.
      await pg.psql(`ALTER SYSTEM SET lc_monetary = '${locale.replaceAll("'", "''")}'`);
      await pg.psql("SELECT pg_reload_conf()");
      return locale;
    } catch {
      // try the next one
    }
  }
  return null;
}

/** Each pinned setting as a plain psql session sees it, i.e. the server's defaults. */
async function serverDefaults(pg: PgServer): Promise<Record<string, string>> {
  const names = [
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "extra_float_digits",
    "bytea_output",
    "lc_monetary",
  ];
  const values = (await pg.psql(
    `SELECT ${names.map((n) => `current_setting('${n}')`).join(", ")}`,
  )).split("|");
  return Object.fromEntries(names.map((n, i) => [n, values[i]!]));
}

/** The three rows from a server, text and binary, with the format probe checked and removed. */
async function streamSettingsRows(
  pg: PgServer,
): Promise<{ text: Streamed; binary: Streamed }> {
  const streamed = await streamTextAndBinary(pg, {
    slotPrefix: "settings",
    publication: "settings_pub",
    table: "settings_probe",
    count: 3,
    insert: async () => {
      const connection = await sqlConnection(pg);
      try {
        await connection.query(SETTINGS_ROWS);
      } finally {
        await connection.close();
      }
    },
  });
  // reg* columns are the one documented text/binary difference: proof of each mode.
  assert.deepStrictEqual(streamed.text.rows.map((r) => r.probe), ["integer", "text", null]);
  assert.deepStrictEqual(streamed.binary.rows.map((r) => r.probe), [23, 25, null]);
  for (const mode of [streamed.text, streamed.binary]) {
    mode.rows = mode.rows.map((row) => without(row, "probe"));
  }
  return streamed;
}

for (const version of testVersions("full")) {
  Deno.test(`types conformance: decoded rows do not depend on the server's session defaults (PostgreSQL ${version})`, async () => {
    // A non-C lc_monetary needs a locale the machine may not have: compile one and let the
    // servers find it through LOCPATH (it adds a locale; no server setting changes with it).
    await using locale = await compileMonetaryLocale();
    const env = locale === null ? undefined : { LOCPATH: locale.dir };
    const servers = await Promise.all([
      startPostgres({ version, env }),
      startPostgres({ version, settings: ODD_DEFAULTS, env }),
    ]);
    await using plain = servers[0]!;
    await using odd = servers[1]!;
    const monetary = await setOddMonetaryLocale(odd, locale?.name);
    if (locale !== null) {
      // The server found the compiled locale through the LOCPATH startPostgres handed it.
      assert.equal(monetary, locale.name, "the compiled lc_monetary locale was refused");
    }
    if (monetary === null) {
      console.log("  (no locale other than C/POSIX/C.* for lc_monetary: left at C on both)");
    } else {
      assert.equal(await odd.psql("SELECT (-1234.56)::numeric::money"), "-1.234,56 €");
    }

    // The odd server really has other defaults, for every setting that SHOW reports.
    const plainDefaults = await serverDefaults(plain);
    const oddDefaults = await serverDefaults(odd);
    assert.deepStrictEqual(oddDefaults, {
      DateStyle: "SQL, DMY",
      TimeZone: "America/New_York",
      IntervalStyle: "iso_8601",
      extra_float_digits: "0",
      bytea_output: "escape",
      lc_monetary: monetary ?? "C",
    });
    for (const [name, value] of Object.entries(oddDefaults)) {
      if (name === "lc_monetary" && monetary === null) continue;
      assert.notEqual(value, plainDefaults[name], `${name} differs between the servers`);
      assert.notEqual(value, SESSION_PARAMETERS[name], `${name} differs from the pinned value`);
    }
    // And a plain session there renders values differently from the pinned one …
    assert.equal(
      await odd.psql(
        `SELECT '2024-02-29 13:45:00+05:30'::timestamptz || ' ' || (1::float8 / 3) || ' ' ||
           '\\x5c27'::bytea || ' ' || '1 day 2 hours'::interval`,
      ),
      "29/02/2024 03:15:00 EST 0.333333333333333 \\\\' P1DT2H",
    );
    // … while Spillway's sessions (normal and replication) get the pinned values.
    for (const replication of [undefined, "database" as const]) {
      const connection = await sqlConnection(odd, { replication });
      try {
        for (const name of Object.keys(ODD_DEFAULTS)) {
          const [row] = await connection.queryObjects(`SHOW ${name}`);
          assert.equal(
            Object.values(row!)[0],
            SESSION_PARAMETERS[name],
            `${name} (${replication})`,
          );
        }
      } finally {
        await connection.close();
      }
    }

    for (const pg of [plain, odd]) await pg.psql(SETTINGS_SETUP);
    const [fromPlain, fromOdd] = await Promise.all([
      streamSettingsRows(plain),
      streamSettingsRows(odd),
    ]);
    assert.deepStrictEqual(
      fromPlain.binary.rows,
      fromPlain.text.rows,
      "plain server: binary = text",
    );
    assert.deepStrictEqual(fromOdd.text.rows, fromPlain.text.rows, "text: odd server = plain");
    assert.deepStrictEqual(
      fromOdd.binary.rows,
      fromPlain.binary.rows,
      "binary: odd server = plain",
    );

    // Spot checks: the values are the pinned renderings, not the odd server's.
    const [first, second] = fromOdd.text.rows;
    assert.equal(first!.d, "2024-02-29");
    assert.equal(first!.tz, "2024-02-29 08:15:00.123456+00");
    assert.equal(first!.ttz, "13:45:00+02");
    assert.deepStrictEqual(first!.iv, { months: 14, days: -3, microseconds: 14_706_789_000n });
    assert.equal(first!.f8, 0.1);
    assert.equal(first!.f8third, 1 / 3);
    assert.equal(first!.f4third, 0.33333334);
    assert.deepStrictEqual(first!.b, Uint8Array.fromHex("00ff5c27200a7f80"));
    assert.equal(first!.money, "-1234.56");
    assert.equal(first!.num, "123.4500");
    assert.deepStrictEqual(first!.tzs, [
      "2024-02-29 08:15:00+00",
      "2000-01-01 07:59:59.999999+00",
      "infinity",
    ]);
    assert.deepStrictEqual(first!.ds, ["2024-02-29", "0044-03-15 BC"]);
    assert.deepStrictEqual((first!.tzr as { lower: string }).lower, "2024-03-10 06:59:59+00");
    assert.deepStrictEqual(first!.c, {
      d: "2024-02-29",
      at: "2024-02-29 08:15:00+00",
      ts: "2024-02-29 13:45:00",
      iv: { months: -12, days: 3, microseconds: 0n },
      f8: 0.1,
      f4: 0.1,
      b: Uint8Array.fromHex("00ff"),
      m: "12.50",
      t: "13:45:00-03:30",
    });
    assert.equal(first!.dom, "2024-07-04 16:00:00+00");
    assert.equal(second!.tz, "2024-03-10 07:30:00+00");
    assert.equal(second!.f4third, 1e-45);
    assert.ok(Object.is(second!.f8, -0));
    assert.equal(second!.money, "92233720368547758.07");
  });
}

// ---------------------------------------------------------------------------------------------
// 2. The server's own renderings

const RICH_SETUP = `
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
ALTER TYPE app.mood ADD VALUE 'meh' BEFORE 'ok';
CREATE DOMAIN app.posint AS int4 CHECK (VALUE > 0);
CREATE DOMAIN app.price AS numeric(10,2);
CREATE DOMAIN app.flag AS bool;
CREATE DOMAIN app.code AS char(4);
CREATE TYPE app.simple AS (b bool, i int4, s int2, f float8, r real, t text, v varchar,
  tags text[], m app.mood, dropped int4);
ALTER TYPE app.simple DROP ATTRIBUTE dropped;
CREATE TYPE app.wrapper AS (id int4, nested app.simple, list app.simple[], flag app.flag);
CREATE TYPE app.tagged AS (id int8, tags text[], m app.mood, p app.price, at timestamptz,
  d date, b bytea, iv interval, r int4range, ip inet, ch char(3), j jsonb, n numeric);
CREATE TYPE app.floatrange AS RANGE (subtype = float8);
CREATE TABLE app.rich (id int8 PRIMARY KEY, probe regtype,
  COLUMNS_HERE);
CREATE PUBLICATION rich_pub FOR TABLE app.rich;
`;

/**
 * Column name, type, and the values of rows 1 and 2 (row 3 is all NULL). Every type the
 * README maps, except: `reg*` other than the `probe` column (text is a name, binary an OID by
 * design, so they cannot agree across modes), anonymous `record` and `unknown` (cannot be column
 * types), and unknown OIDs (extension types: none is installed in the harness). `aclitem` has
 * no send function, so binary mode streams it as text.
 */
const RICH: [name: string, type: string, row1: string, row2: string][] = [
  ["b", "bool", "true", "false"],
  ["i2", "int2", "-32768", "32767"],
  ["i4", "int4", "2147483647", "-1"],
  ["i8", "int8", "9007199254740993", "-9223372036854775808"],
  ["f4", "real", "1.1", "'-Infinity'"],
  ["f4b", "real", "'3.4028235e38'", "'1e-45'"],
  ["f8", "float8", "0.1", "'NaN'"],
  ["f8b", "float8", "'-0'", "'5e-324'"],
  ["num", "numeric", "123.4500", "'NaN'"],
  ["num2", "numeric(12,3)", "1.5", "-0.001"],
  ["num3", "numeric", "'-Infinity'", "1e-20"],
  ["money", "money", "'-1234.56'", "'92233720368547758.07'"],
  ["txt", "text", `E'ünïcödé "q" \\\\ ,\\t{}'`, "''"],
  ["vc", "varchar(10)", "'abc'", "''"],
  ["ch", "char(4)", "'ab'", "'abcd'"],
  ["nm", "name", "'some_name'", "''"],
  ["c1", '"char"', "'x'", "''"],
  ["by", "bytea", "'\\x00ff5c'", "'\\x'"],
  ["u", "uuid", "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "'00000000-0000-0000-0000-000000000000'"],
  ["js", "json", `'{"b": [1, 2.50], "a": null, "a": 2}'`, "'[]'"],
  ["jb", "jsonb", `'{"b": [1, 2.50, 1e400], "a": null, "c": "\\u00e9"}'`, "'null'"],
  ["jp", "jsonpath", "'$.a[*] ? (@ > 1)'", "'$'"],
  ["x", "xml", "'<a>x</a>'", "'text only'"],
  ["d", "date", "'0044-03-15 BC'", "'infinity'"],
  ["t", "time(3)", "'13:45:00.1235'", "'24:00:00'"],
  ["ttz", "timetz", "'13:45:00+02'", "'00:00:00-15:59'"],
  ["ts", "timestamp", "'2024-02-29 13:45:00.5'", "'-infinity'"],
  ["tsbc", "timestamp", "'0044-03-15 12:00:00 BC'", "'294276-12-31 23:59:59.999999'"],
  ["tz", "timestamptz", "'2024-02-29 13:45:00.123456+05:30'", "'infinity'"],
  ["tzbc", "timestamptz", "'0001-01-01 00:00:00+00 BC'", "'1999-12-31 23:59:59.5-08'"],
  ["iv", "interval", "'1 year -2 days 03:04:05.5'", "'-178000000 years'"],
  ["ip", "inet", "'::ffff:1.2.3.4/120'", "'192.168.0.1'"],
  ["ip6", "inet", "'2001:db8::1'", "'10.0.0.0/8'"],
  ["cidr", "cidr", "'10.1.0.0/16'", "'::/0'"],
  ["mac", "macaddr", "'08:00:2B:01:02:03'", "'00:00:00:00:00:00'"],
  ["mac8", "macaddr8", "'08:00:2b:01:02:03:04:05'", "'08:00:2b:01:02:03'"],
  ["bt", "bit(5)", "B'10110'", "B'00000'"],
  ["vb", "varbit", "B'1'", "B''"],
  ["pt", "point", "'(1.5,-2)'", "'(0,0)'"],
  ["ln", "line", "'{1,-1,0}'", "'{0,1,2.5}'"],
  ["ls", "lseg", "'[(0,0),(1,1)]'", "'[(-1,-1),(0.5,2)]'"],
  ["bx", "box", "'(1,1),(0,0)'", "'(0,0),(3,4)'"],
  ["pth", "path", "'[(0,0),(1,1),(2,0)]'", "'((0,0),(1,1))'"],
  ["pg", "polygon", "'((0,0),(1,1),(1,0))'", "'((0.5,0.5))'"],
  ["ci", "circle", "'<(1,2),3>'", "'<(0,0),0>'"],
  ["tsv", "tsvector", "'a:1A fat:2,3'", "''"],
  ["tsq", "tsquery", "'fat & !(cat | rat:*)'", "'a <-> b'"],
  ["lsn", "pg_lsn", "'16/B374D848'", "'0/0'"],
  ["o", "oid", "4294967295", "0"],
  ["x8", "xid8", "'18446744073709551615'", "'0'"],
  ["tid", "tid", "'(1,2)'", "'(4294967295,65535)'"],
  ["snap", "pg_snapshot", "'10:20:10,14,15'", "'1:1:'"],
  ["ov", "oidvector", "'1 2 4294967295'", "''"],
  ["i2v", "int2vector", "'1 -2 3'", "''"],
  ["ttz2", "timetz", "'13:45:00.5+05:30:15'", "'23:59:59.999999-15:59:59'"],
  ["tsmin", "timestamp", "'4713-01-01 00:00:00 BC'", "'2000-01-01 00:00:00.000001'"],
  ["dmax", "date", "'5874897-12-31'", "'4713-01-01 BC'"],
  ["iv2", "interval", "'-1 days +00:00:00.000001'", "'1 mon -0.5 sec'"],
  [
    "num4",
    "numeric",
    "0.000000000000000000000000000001",
    "-1234567890123456789012345678901234567890.0987654321",
  ],
  ["money2", "money", "'-0.01'", "'-92233720368547758.08'"],
  ["txt2", "text", "E'emoji \\U0001F600 cr\\r lf\\n'", "'NULL'"],
  ["js2", "json", `'"\\u00e9\\ud83d\\ude00"'`, "'  {\"a\" : 1e400 }  '"],
  ["x2", "xml", `'<?xml version="1.0"?><a/>'`, `'<?xml version="1.0" encoding="UTF-8"?><b/>'`],
  ["tsv2", "tsvector", "$$'a b':1 'it''s':2B,3C$$", "'x:1,2,3D'"],
  ["tsq2", "tsquery", "'a:*AB & !b <2> c'", "'!a'"],
  ["vb2", "varbit", `B'${"10".repeat(35)}1'`, "B'0000000011111111'"],
  ["pt2", "point", "'(NaN,-Infinity)'", "'(0.3333333333333333,1e-300)'"],
  ["ci2", "circle", "'<(1.5,-2.25),0.1>'", "'<(NaN,0),Infinity>'"],
  ["ia3", "int4[]", "'[2:3][0:0]={{1},{2}}'", "'{{{1,2}},{{3,NULL}}}'"],
  ["xid", "xid", "'4294967295'", "'3'"],
  ["cid", "cid", "'7'", "'0'"],
  ["cur", "refcursor", "'cursor 1'", "''"],
  ["tsnap", "txid_snapshot", "'10:20:10,14,15'", "'1:1:'"],
  ["acl", "aclitem", "'postgres=r*w/postgres'", "'=r/postgres'"],
  ["ir", "int4range", "'(,5]'", "'empty'"],
  ["i8r", "int8range", "'[1,9007199254740993)'", "'(,)'"],
  ["nr", "numrange", "'[1.5,2.50]'", "'(,0)'"],
  ["dr", "daterange", "'[2024-01-01,infinity)'", "'(,2024-01-01]'"],
  ["tsr", "tsrange", `'["2024-01-01 00:00","2024-01-02 00:00:00.5")'`, "'empty'"],
  ["tzr", "tstzrange", `'["2024-01-01 00:00+05",)'`, "'(,)'"],
  ["imr", "int4multirange", "'{[1,3),[5,7)}'", "'{}'"],
  ["dmr", "datemultirange", "'{[2024-01-01,2024-02-01)}'", "'{(,)}'"],
  ["ia", "int4[]", "'{1,NULL,3}'", "'[0:1]={7,8}'"],
  ["ia2", "int4[]", "'{{1,2},{3,4}}'", "'{}'"],
  ["ba", "bool[]", "'{t,f,NULL}'", "'{}'"],
  ["ta", "text[]", `'{a,"b c","",NULL,"NULL","x\\\\\\"y"}'`, "'{{a},{b}}'"],
  ["va", "varchar[]", "'{x,y}'", "'{\"\"}'"],
  ["i2a", "int2[]", "'{-1,0}'", "'{NULL}'"],
  ["f4a", "real[]", "'{1.1,0.1}'", "'{-0}'"],
  ["fa", "float8[]", "'{0.1,1e308}'", "'{NaN,Infinity,-0}'"],
  ["i8a", "int8[]", "'{9007199254740993,-1}'", "'{}'"],
  ["na", "numeric[]", "'{1.50,NaN}'", "'{-Infinity,0.000}'"],
  ["tza", "timestamptz[]", `'{"2024-02-29 13:45:00+05:30",infinity}'`, "'{NULL}'"],
  ["da", "date[]", `'{2024-02-29,"0044-03-15 BC"}'`, "'{}'"],
  ["bya", "bytea[]", `'{"\\\\x00ff",NULL}'`, "'{}'"],
  ["ca", "char(2)[]", "'{a,bc}'", "'{}'"],
  ["ipa", "inet[]", "'{1.2.3.4,::1/64}'", "'{}'"],
  ["bxa", "box[]", "'{(1,1),(0,0);(3,3),(2,2)}'", "'{}'"],
  ["pga", "polygon[]", `'{"((0,0),(1,1),(1,0))"}'`, "'{}'"],
  ["ua", "uuid[]", "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'", "'{}'"],
  ["jba", "jsonb[]", `'{"{\\"a\\": [1, 2.5]}",null}'`, "'{}'"],
  ["ira", "int4range[]", `'{"[1,2)",empty}'`, "'{}'"],
  ["iva", "interval[]", `'{"1 day","-00:00:01"}'`, "'{}'"],
  ["m", "app.mood", "'meh'", "'happy'"],
  ["ma", "app.mood[]", "'{sad,happy,NULL}'", "'{}'"],
  ["n", "app.posint", "5", "2147483647"],
  ["p", "app.price", "12.5", "-0.01"],
  ["fl", "app.flag", "true", "false"],
  ["cd", "app.code", "'ab'", "'abcd'"],
  [
    "s",
    "app.simple",
    `'(t,1,2,0.5,1.1,"x y",v,"{a,\\"b c\\"}",ok)'`,
    "'(,,,,,,,,)'",
  ],
  [
    "sa",
    "app.simple[]",
    `ARRAY['(f,-1,0,1e300,3.5,"",z,{},sad)'::app.simple, NULL]`,
    `ARRAY['(t,0,0,NaN,-0,a,b,{NULL},meh)'::app.simple]`,
  ],
  [
    "ou",
    "app.wrapper",
    `ROW(1, '(t,1,2,0.5,1.1,t,v,{},ok)'::app.simple,
      ARRAY['(f,2,3,0.25,2,"",w,{x},happy)'::app.simple], true)::app.wrapper`,
    "ROW(NULL, NULL, NULL, NULL)::app.wrapper",
  ],
  [
    "tg",
    "app.tagged",
    `ROW(9007199254740993, '{a,"b c"}', 'happy', 9.99, '2024-02-29 13:45:00+05:30',
      '0044-03-15 BC', '\\x00ff', '1 mon 2 days 00:00:03', '[1,5)', '1.2.3.4', 'ab',
      '{"k": [1.50]}', 'NaN')::app.tagged`,
    `ROW(-1, '{}', NULL, -0.5, 'infinity', 'infinity', '\\x', '0', 'empty', '::1', '', 'null',
      1e-20)::app.tagged`,
  ],
  [
    "tga",
    "app.tagged[]",
    `ARRAY[ROW(1, NULL, 'sad', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
      NULL)::app.tagged]`,
    "'{}'",
  ],
  ["fr", "app.floatrange", "'[1.5,Infinity)'", "'(-0.5,0.25]'"],
  ["fmr", "app.floatmultirange", "'{[1,2),(3,4]}'", "'{}'"],
];

const RICH_SQL = RICH_SETUP.replace(
  "COLUMNS_HERE",
  RICH.map(([name, type]) => `${name} ${type}`).join(",\n  "),
);

const RICH_ROWS = `INSERT INTO app.rich VALUES
  (1, 'int4', ${RICH.map((c) => c[2]).join(", ")}),
  (2, 'text', ${RICH.map((c) => c[3]).join(", ")}),
  (3, NULL, ${RICH.map(() => "NULL").join(", ")});`;

for (const version of testVersions("full")) {
  Deno.test(`types conformance: streamed values match the server's col::text and to_jsonb (PostgreSQL ${version})`, async () => {
    await using pg = await startPostgres({ version });
    await pg.psql(RICH_SQL);
    const streamed = await streamTextAndBinary(pg, {
      slotPrefix: "rich",
      publication: "rich_pub",
      table: "rich",
      count: 3,
      insert: async () => void await pg.psql(RICH_ROWS),
    });
    assert.deepStrictEqual(streamed.text.rows.map((r) => r.probe), ["integer", "text", null]);
    assert.deepStrictEqual(streamed.binary.rows.map((r) => r.probe), [23, 25, null]);
    const text = streamed.text.rows.map((r) => without(r, "probe"));
    const binary = streamed.binary.rows.map((r) => without(r, "probe"));
    assert.deepStrictEqual(binary, text, "binary mode = text mode");

    const names = RICH.map(([name]) => name);
    const select = names.map((n) =>
      `${n} AS "${n}:out", ${n}::text AS "${n}:text", to_jsonb(${n})::text AS "${n}:json"`
    ).join(", ");
    const connection = await sqlConnection(pg);
    let rendered: Record<string, string | null>[];
    try {
      rendered = await connection.queryObjects(`SELECT id, ${select} FROM app.rich ORDER BY id`);
    } finally {
      await connection.close();
    }
    assert.equal(rendered.length, 3);

    const failures: string[] = [];
    let sameAsJson = 0;
    for (const [mode, { registry, relation }] of Object.entries(streamed)) {
      const rows = mode === "text" ? text : binary;
      for (let r = 0; r < rows.length; r++) {
        const row = rows[r]!;
        assert.equal(row.id, BigInt(rendered[r]!.id!));
        for (const name of names) {
          const oid = columnOid(relation, name);
          const value = row[name] as Parameters<typeof checkJson>[2];
          const outText = rendered[r]![`${name}:out`]!;
          const castText = rendered[r]![`${name}:text`]!;
          const jsonText = rendered[r]![`${name}:json`]!;
          const what = `${mode} row ${r + 1} ${name} (${registry.typeName(oid)})`;
          try {
            if (value === null) {
              assert.equal(outText, null, what);
              assert.equal(castText, null, what);
              assert.equal(jsonText, null, what);
              continue;
            }
            // (a) The server's text, decoded with the source's registry: the output function's
            // text (what a plain SELECT returns, and pgoutput sends), and `col::text`.
            assert.deepStrictEqual(registry.decodeText(oid, outText), value, `${what} output`);
            checkCastText(registry, oid, value, castText, `${what} col::text`);
            // (b) JSON: the value itself where the mapping says "same", else the relation.
            if (isJsonNative(registry, oid, value)) {
              assert.deepStrictEqual(JSON.parse(jsonText), value, `${what} to_jsonb`);
              sameAsJson++;
            }
            checkJson(registry, oid, value, parseJsonWithSource(jsonText), `${what} to_jsonb`);
          } catch (error) {
            failures.push(error instanceof Error ? error.message : String(error));
          }
        }
      }
    }
    assert.deepStrictEqual(failures, []);
    assert.ok(sameAsJson > 40, `${sameAsJson} values compared as plain JSON`);
  });
}
