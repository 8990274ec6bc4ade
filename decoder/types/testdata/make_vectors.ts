/**
 * Records `vectors.json`: for every case below, a real PostgreSQL server's text output and
 * `send` bytes of the value, plus (where the case states one) the value both must decode to.
 * The unit tests then need no server.
 *
 *     deno run -A decoder/types/testdata/make_vectors.ts [--version 17] [--seed 1] [--check]
 *
 * `--check` records into memory and compares with the committed file instead of writing
 * (useful against other server versions: only `serverVersion` may differ).
 *
 * Fixed cases cover edge values; random cases (seeded PRNG) generate a value in TypeScript,
 * render it as an SQL literal, and expect the server's output to decode back to that value.
 *
 * @module
 */

import { type PgVersion, startPostgres } from "../../../testing/embedded_postgres.ts";
import { seededRandom } from "../../../testing/random.ts";
import { PgConnection } from "../../../postgres/connection.ts";
import { parseConnectionUrl } from "../../../postgres/connection_string.ts";
import { loadTypeInfos } from "../catalog.ts";
import type { PgRange, PgValue, Point } from "../registry.ts";
import { encodeExpected, type Vector, type VectorFile } from "./_expected.ts";

interface Case {
  type: string;
  input: string;
  expected?: PgValue;
  float4?: boolean;
  /** Where text and binary are known to differ: the value binary decodes to. */
  binaryExpected?: PgValue;
  label?: string;
  /** Oldest major version that accepts (or prints the same for) this input. */
  since?: number;
}

function since(version: number, list: Case[]): Case[] {
  return list.map((c) => ({ ...c, since: version }));
}

const SESSION = `SET DateStyle = 'ISO, MDY'; SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres';
SET extra_float_digits = 3; SET bytea_output = 'hex'; SET lc_monetary = 'C';
SET client_encoding = 'UTF8'; SET client_min_messages = warning;\n`;

/** Text output recorded under other settings, per type. */
const VARIANTS: Record<string, string[]> = {
  interval: [
    "IntervalStyle=postgres_verbose",
    "IntervalStyle=sql_standard",
    "IntervalStyle=iso_8601",
  ],
  "interval[]": ["IntervalStyle=sql_standard", "IntervalStyle=iso_8601"],
  bytea: ["bytea_output=escape"],
};

const SETUP = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'very "happy"', 'a,b', 'ünï');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE DOMAIN intarr AS int4[];
CREATE DOMAIN price AS numeric(10,2);
CREATE TYPE inner_t AS (a int4, b text);
CREATE TYPE comp AS (id int4, name text, tags text[], m mood, n inner_t, d posint);
CREATE TYPE comp2 AS (x int4, dropped int4, y text);
ALTER TYPE comp2 DROP ATTRIBUTE dropped;
CREATE TYPE floatrange AS RANGE (subtype = float8);
`;

const CUSTOM_TYPES = [
  "mood",
  "mood[]",
  "posint",
  "posint[]",
  "intarr",
  "price",
  "inner_t",
  "comp",
  "comp[]",
  "comp2",
  "floatrange",
  "floatmultirange",
  "floatrange[]",
];

function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

// ---------------------------------------------------------------------------------------------
// Fixed cases

function cases(type: string, inputs: (string | [string, PgValue])[]): Case[] {
  return inputs.map((input) =>
    typeof input === "string" ? { type, input } : { type, input: input[0], expected: input[1] }
  );
}

const p = (x: number, y: number): Point => ({ x, y });

function range(
  lower: PgValue,
  upper: PgValue,
  lowerInclusive: boolean,
  upperInclusive: boolean,
): PgRange {
  return { empty: false, lower, upper, lowerInclusive, upperInclusive };
}

const EMPTY: PgRange = {
  empty: true,
  lower: null,
  upper: null,
  lowerInclusive: false,
  upperInclusive: false,
};

function fixedCases(): Case[] {
  return [
    ...cases("boolean", [["t", true], ["f", false]]),
    ...cases("smallint", [["0", 0], ["-32768", -32768], ["32767", 32767]]),
    ...cases("integer", [["0", 0], ["42", 42], ["-2147483648", -2147483648], [
      "2147483647",
      2147483647,
    ]]),
    ...cases("bigint", [
      ["0", 0n],
      ["1", 1n],
      ["-9223372036854775808", -9223372036854775808n],
      ["9223372036854775807", 9223372036854775807n],
      ["4503599627370497", 4503599627370497n],
      ["-4503599627370497", -4503599627370497n],
    ]),
    ...cases("oid", [["0", 0], ["4294967295", 4294967295]]),
    ...cases("xid", [["4294967295", 4294967295]]),
    ...cases("cid", [["7", 7]]),
    ...cases("xid8", [["18446744073709551615", 18446744073709551615n], ["0", 0n]]),
    ...cases("real", [
      ["0", 0],
      ["-0", -0],
      ["1.1", 1.1],
      ["0.1", 0.1],
      ["NaN", NaN],
      ["Infinity", Infinity],
      ["-Infinity", -Infinity],
      ["3.4028235e38", 3.4028235e38],
      ["1e-45", 1e-45],
      ["1.17549435e-38", 1.1754944e-38],
      ["16777216", 16777216],
      ["-123456.7", -123456.7],
    ]),
    // Every power of two, where float4's rounding interval is lopsided.
    ...Array.from({ length: 277 }, (_, k): Case => ({
      type: "real",
      input: String(2 ** (k - 149)),
      expected: Math.fround(2 ** (k - 149)),
      float4: true,
      label: `real 2^${k - 149}`,
    })),
    ...cases("double precision", [
      ["0", 0],
      ["-0", -0],
      ["1.5", 1.5],
      ["0.1", 0.1],
      ["NaN", NaN],
      ["Infinity", Infinity],
      ["-Infinity", -Infinity],
      ["1.7976931348623157e308", 1.7976931348623157e308],
      ["5e-324", 5e-324],
      ["1e21", 1e21],
      ["1e-7", 1e-7],
      ["123456789012345680000", 123456789012345680000],
    ]),
    ...cases("numeric", [
      ["123.4500", "123.4500"],
      ["NaN", "NaN"],
      ["Infinity", "Infinity"],
      ["-Infinity", "-Infinity"],
      ["0", "0"],
      ["0.00", "0.00"],
      ["-0.001", "-0.001"],
      ["1e-20", "0.00000000000000000001"],
      ["9999.9999", "9999.9999"],
      ["10000", "10000"],
      ["0.0001", "0.0001"],
      ["-100000000", "-100000000"],
      ["1e100", "1" + "0".repeat(100)],
      [
        "12345678901234567890123456789.123456789012345678901234567890",
        "12345678901234567890123456789.123456789012345678901234567890",
      ],
      [
        "-0.000000000000000000000000000000000000012300",
        "-0.000000000000000000000000000000000000012300",
      ],
      ["1e20000", "1" + "0".repeat(20000)],
      ["0." + "0".repeat(16382) + "1", "0." + "0".repeat(16382) + "1"],
    ]),
    ...cases("numeric(10,2)", [["12.5", "12.50"], ["-99999999.99", "-99999999.99"]]),
    ...since(15, cases("numeric(5,-2)", [["12345", "12300"]])),
    ...since(15, cases("numeric(3,5)", [["0.001234", "0.00123"]])),
    ...cases("money", [
      ["1234.56", "1234.56"],
      ["-1234.56", "-1234.56"],
      ["0", "0.00"],
      ["0.05", "0.05"],
      ["-0.05", "-0.05"],
      ["1234567.891", "1234567.89"],
      ["-92233720368547758.08", "-92233720368547758.08"],
      ["92233720368547758.07", "92233720368547758.07"],
    ]),
    ...cases("text", [
      ["", ""],
      ["hello", "hello"],
      ["ünïcödé 🎉 日本", "ünïcödé 🎉 日本"],
      ["a\"b\\c'd", "a\"b\\c'd"],
      ["NULL", "NULL"],
      ["line\nbreak\ttab", "line\nbreak\ttab"],
      ["x".repeat(100), "x".repeat(100)],
    ]),
    ...cases("character varying(5)", [["abc", "abc"]]),
    ...cases("character(5)", [["ab", "ab   "], ["", "     "]]),
    ...cases("name", [["pg_class", "pg_class"]]),
    ...cases('"char"', [["a", "a"], ["", ""]]),
    // PostgreSQL 15+ reads and prints "char" bytes as \ooo escapes.
    ...since(15, cases('"char"', [["\\351", "\\351"], ["\\177", "\x7f"]])),
    ...cases("bytea", [
      ["\\x", new Uint8Array()],
      ["\\x00ff10", Uint8Array.from([0, 255, 16])],
      ["hello\\\\\\000", Uint8Array.from([104, 101, 108, 108, 111, 92, 0])],
      ["\\x" + "ab".repeat(64), new Uint8Array(64).fill(0xab)],
    ]),
    ...cases("uuid", [[
      "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
      "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    ], ["00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"]]),
    ...cases("json", [['{"b":1, "a" : [1,2.50]}', '{"b":1, "a" : [1,2.50]}'], ["null", "null"]]),
    ...cases("jsonb", [
      [
        '{"bb":1, "a" : [1,2.50], "c": {"ü": "\\u00e9"}}',
        '{"a": [1, 2.50], "c": {"ü": "é"}, "bb": 1}',
      ],
      ["null", "null"],
      ['"x"', '"x"'],
    ]),
    ...cases("jsonpath", [["$.a[*] ? (@ > 1)", '$."a"[*]?(@ > 1)']]),
    ...cases("xml", [["<a>x</a>", "<a>x</a>"], ['<?xml version="1.0"?><b/>', "<b/>"]]),
    ...cases("date", [
      ["2024-02-29", "2024-02-29"],
      ["infinity", "infinity"],
      ["-infinity", "-infinity"],
      ["0044-03-15 BC", "0044-03-15 BC"],
      ["0001-01-01 BC", "0001-01-01 BC"],
      ["0001-12-31 BC", "0001-12-31 BC"],
      ["0001-01-01", "0001-01-01"],
      ["10000-01-01", "10000-01-01"],
      ["5874897-12-31", "5874897-12-31"],
      ["4714-11-24 BC", "4714-11-24 BC"],
      ["1999-12-31", "1999-12-31"],
      ["2000-01-01", "2000-01-01"],
      ["1970-01-01", "1970-01-01"],
      ["1900-02-28", "1900-02-28"],
    ]),
    ...cases("time without time zone", [
      ["00:00:00", "00:00:00"],
      ["13:45:00.123456", "13:45:00.123456"],
      ["13:45:00.5", "13:45:00.5"],
      ["24:00:00", "24:00:00"],
      ["23:59:59.999999", "23:59:59.999999"],
    ]),
    ...cases("time(3) without time zone", [["13:45:00.123456", "13:45:00.123"]]),
    ...cases("time with time zone", [
      ["13:45:00+02", "13:45:00+02"],
      ["13:45:00+05:30", "13:45:00+05:30"],
      ["13:45:00-08", "13:45:00-08"],
      ["00:00:00+00", "00:00:00+00"],
      ["24:00:00-15:59", "24:00:00-15:59"],
      ["13:45:00.123456+00:53:28", "13:45:00.123456+00:53:28"],
      ["13:45:00-14:00:01", "13:45:00-14:00:01"],
    ]),
    ...cases("timestamp without time zone", [
      ["2024-02-29 13:45:00.5", "2024-02-29 13:45:00.5"],
      ["2024-02-29 13:45:00", "2024-02-29 13:45:00"],
      ["infinity", "infinity"],
      ["-infinity", "-infinity"],
      ["0044-03-15 12:00:00 BC", "0044-03-15 12:00:00 BC"],
      ["4714-11-24 00:00:00 BC", "4714-11-24 00:00:00 BC"],
      ["294276-12-31 23:59:59.999999", "294276-12-31 23:59:59.999999"],
      ["10000-01-01 00:00:00", "10000-01-01 00:00:00"],
      ["1999-12-31 23:59:59.999999", "1999-12-31 23:59:59.999999"],
      ["1900-01-01 00:00:00.000001", "1900-01-01 00:00:00.000001"],
      ["0001-01-01 00:00:00", "0001-01-01 00:00:00"],
      ["0001-12-31 23:59:59.999999 BC", "0001-12-31 23:59:59.999999 BC"],
    ]),
    ...cases("timestamp(0) without time zone", [["2024-02-29 13:45:00.5", "2024-02-29 13:45:01"]]),
    ...cases("timestamp with time zone", [
      ["2024-02-29 13:45:00.5+00", "2024-02-29 13:45:00.5+00"],
      ["2024-02-29 13:45:00+05:30", "2024-02-29 08:15:00+00"],
      ["infinity", "infinity"],
      ["-infinity", "-infinity"],
      ["0044-03-15 12:00:00.5 BC", "0044-03-15 12:00:00.5+00 BC"],
      ["4714-11-24 00:00:00+00 BC", "4714-11-24 00:00:00+00 BC"],
      ["294276-12-31 23:59:59.999999+00", "294276-12-31 23:59:59.999999+00"],
      ["2000-01-01 00:00:00+00", "2000-01-01 00:00:00+00"],
      ["1969-12-31 23:59:59.999999+00", "1969-12-31 23:59:59.999999+00"],
    ]),
    ...cases("interval", [
      ["1 year 2 mons 3 days 04:05:06.5", { months: 14, days: 3, microseconds: 14706500000n }],
      ["-1 days +02:03:00", { months: 0, days: -1, microseconds: 7380000000n }],
      ["0", { months: 0, days: 0, microseconds: 0n }],
      ["-1 year -2 mons +3 days -04:05:06", { months: -14, days: 3, microseconds: -14706000000n }],
      ["1 day", { months: 0, days: 1, microseconds: 0n }],
      ["-00:00:00.5", { months: 0, days: 0, microseconds: -500000n }],
      ["1 mon -1 sec", { months: 1, days: 0, microseconds: -1000000n }],
      ["-1.5 sec", { months: 0, days: 0, microseconds: -1500000n }],
      ["-0.000001 sec", { months: 0, days: 0, microseconds: -1n }],
      ["25:00:00", { months: 0, days: 0, microseconds: 90000000000n }],
      ["1 year -1 day", { months: 12, days: -1, microseconds: 0n }],
      ["-1 years", { months: -12, days: 0, microseconds: 0n }],
      ["1-2", { months: 14, days: 0, microseconds: 0n }],
      ["3 mons", { months: 3, days: 0, microseconds: 0n }],
    ]),
    // PostgreSQL 14 cannot read these extremes back (its interval input overflows).
    ...since(
      15,
      cases("interval", [
        ["2147483647 mons 2147483646 days 2562047788:00:54.775806", {
          months: 2147483647,
          days: 2147483646,
          microseconds: 9223372036854775806n,
        }],
        ["-178956970 years -7 mons -2147483647 days -2562047788:00:54.775807", {
          months: -2147483647,
          days: -2147483647,
          microseconds: -9223372036854775807n,
        }],
      ]),
    ),
    ...since(
      17,
      cases("interval", [
        ["infinity", { months: 2147483647, days: 2147483647, microseconds: 9223372036854775807n }],
        ["-infinity", {
          months: -2147483648,
          days: -2147483648,
          microseconds: -9223372036854775808n,
        }],
      ]),
    ),
    ...cases("inet", [
      ["192.168.0.1", "192.168.0.1"],
      ["192.168.0.1/24", "192.168.0.1/24"],
      ["10.0.0.0/8", "10.0.0.0/8"],
      ["0.0.0.0/0", "0.0.0.0/0"],
      ["::1", "::1"],
      ["::", "::"],
      ["::2", "::2"],
      ["1::", "1::"],
      ["::ffff:1.2.3.4", "::ffff:1.2.3.4"],
      ["::1.2.3.4", "::1.2.3.4"],
      ["::ffff:0:102:304", "::ffff:0:102:304"],
      ["2001:DB8::1/64", "2001:db8::1/64"],
      ["1:0:0:1:0:0:0:1", "1:0:0:1::1"],
      ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
      ["1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"],
      ["1:0:0:2:0:0:3:4", "1::2:0:0:3:4"],
      ["::1/128", "::1"],
    ]),
    ...cases("cidr", [
      ["10.0.0.0/8", "10.0.0.0/8"],
      ["192.168.1.0/24", "192.168.1.0/24"],
      ["1.2.3.4/32", "1.2.3.4/32"],
      ["2001:db8::/32", "2001:db8::/32"],
      ["::/0", "::/0"],
      ["::ffff:1.2.3.4/128", "::ffff:1.2.3.4/128"],
    ]),
    ...cases("macaddr", [["08:00:2B:01:02:03", "08:00:2b:01:02:03"]]),
    ...cases("macaddr8", [["08:00:2b:01:02:03:04:05", "08:00:2b:01:02:03:04:05"]]),
    ...cases("bit(4)", [["0101", "0101"]]),
    ...cases("bit(1)", [["1", "1"]]),
    ...cases("bit varying", [["", ""], ["101010101", "101010101"], [
      "1".repeat(70),
      "1".repeat(70),
    ]]),
    ...cases("point", [
      ["(1.5,-2)", p(1.5, -2)],
      ["(-0,0)", p(-0, 0)],
      ["(NaN,Infinity)", p(NaN, Infinity)],
      ["(1e300,-1e-300)", p(1e300, -1e-300)],
    ]),
    ...cases("line", [["{1,-1,0}", { a: 1, b: -1, c: 0 }], ["{0.5,2,-3}", {
      a: 0.5,
      b: 2,
      c: -3,
    }]]),
    ...cases("lseg", [["[(0,0),(1,1.5)]", [p(0, 0), p(1, 1.5)]]]),
    ...cases("box", [["(0,0),(1,1)", [p(1, 1), p(0, 0)]], ["(3,-1),(-2,4)", [p(3, 4), p(-2, -1)]]]),
    ...cases("path", [
      ["[(0,0),(1,1)]", { closed: false, points: [p(0, 0), p(1, 1)] }],
      ["((0,0),(1,1),(2,0))", { closed: true, points: [p(0, 0), p(1, 1), p(2, 0)] }],
    ]),
    ...cases("polygon", [["((0,0),(1,1),(2,0))", [p(0, 0), p(1, 1), p(2, 0)]]]),
    ...cases("circle", [["<(1,2),3>", { center: p(1, 2), radius: 3 }]]),
    ...cases("tsvector", [
      ["a:1A,2 b'c:3B d e\\\\f:4C,5D", "'a':1A,2 'b''c':3B 'd' 'e\\\\f':4C,5"],
      ["", ""],
      ["ünï:1 fat:2,4 cat:3", "'cat':3 'fat':2,4 'ünï':1"],
      ["'a b':16383A", "'a b':16383A"],
    ]),
    ...cases("tsquery", [
      ["a & b", "'a' & 'b'"],
      ["!a | b & c", "!'a' | 'b' & 'c'"],
      ["a <-> b <2> c", "'a' <-> 'b' <2> 'c'"],
      ["(a | b) & !c:*AB", "( 'a' | 'b' ) & !'c':*AB"],
      ["a <-> (b <-> c)", "'a' <-> ( 'b' <-> 'c' )"],
      ["!(a & b)", "!( 'a' & 'b' )"],
      ["'x''y' & 'z\\\\w'", "'x''y' & 'z\\\\w'"],
      ["a:D & b:*ABCD", "'a':D & 'b':*ABCD"],
      ["(a <-> b) <0> !c", "'a' <-> 'b' <0> !'c'"],
      ["!!a", "!!'a'"],
      ["a | (b | (c | d))", "'a' | 'b' | 'c' | 'd'"],
      ["a & (b | c)", "'a' & ( 'b' | 'c' )"],
      ["(a | b) <-> c", "( 'a' | 'b' ) <-> 'c'"],
      ["ünï & 日本", "'ünï' & '日本'"],
    ]),
    ...cases("pg_lsn", [["16/B374D848", "16/B374D848"], ["0/0", "0/0"], [
      "FFFFFFFF/FFFFFFFF",
      "FFFFFFFF/FFFFFFFF",
    ]]),
    ...cases("tid", [["(0,1)", "(0,1)"], ["(4294967295,65535)", "(4294967295,65535)"]]),
    ...cases("pg_snapshot", [["10:20:10,14,15", "10:20:10,14,15"], ["1:1:", "1:1:"]]),
    ...cases("txid_snapshot", [["10:20:10,14,15", "10:20:10,14,15"]]),
    ...cases("refcursor", [["portal 1", "portal 1"]]),
    // reg* types: text is the name, binary the OID (the one built-in difference).
    ...[
      ["regclass", "pg_class", 1259],
      ["regtype", "integer", 23],
      ["regproc", "now", 1299],
      ["regnamespace", "pg_catalog", 11],
      ["regrole", "postgres", 10],
    ].map(([type, name, oid]): Case => ({
      type: type as string,
      input: name as string,
      expected: name as string,
      binaryExpected: oid as number,
    })),
    ...cases("oidvector", [["1 2 3", [1, 2, 3]], ["", []]]),
    ...cases("int2vector", [["1 -2 3", [1, -2, 3]]]),
    // Arrays
    ...cases("integer[]", [
      ["{}", []],
      ["{1,2,NULL}", [1, 2, null]],
      ["{{1,2},{3,4}}", [[1, 2], [3, 4]]],
      ["{{{1}}}", [[[1]]]],
      ["[0:1]={1,2}", { lowerBounds: [0], values: [1, 2] }],
      ["[-2:-1][3:4]={{1,2},{3,NULL}}", { lowerBounds: [-2, 3], values: [[1, 2], [3, null]] }],
      ["[1:1][1:2]={{5,6}}", [[5, 6]]],
    ]),
    ...cases("text[]", [
      ['{"a b","c\\"d",NULL,"NULL","",x,"\\\\"}', ["a b", 'c"d', null, "NULL", "", "x", "\\"]],
      ['{"{}","a,b"," lead",ünï,"x;y"}', ["{}", "a,b", " lead", "ünï", "x;y"]],
      ['{{"a",NULL},{"",null}}', [["a", null], ["", null]]],
    ]),
    ...cases("box[]", [["{(1,1),(0,0);(3,3),(2,2)}", [[p(1, 1), p(0, 0)], [p(3, 3), p(2, 2)]]]]),
    ...cases("point[]", [['{"(1,2)",NULL}', [p(1, 2), null]]]),
    ...cases("numeric[]", [["{1.50,NaN,-Infinity,NULL}", ["1.50", "NaN", "-Infinity", null]]]),
    ...cases("numeric(10,2)[]", [["{1.5,2}", ["1.50", "2.00"]]]),
    ...cases("bigint[]", [["{1,-9223372036854775808}", [1n, -9223372036854775808n]]]),
    ...cases("double precision[]", [["{NaN,-0,1.5}", [NaN, -0, 1.5]]]),
    ...cases("real[]", [["{1.1,0.1}", [1.1, 0.1]]]),
    ...cases("boolean[]", [["{t,f,NULL}", [true, false, null]]]),
    ...cases("bytea[]", [['{"\\\\x00ff",NULL}', [Uint8Array.from([0, 255]), null]]]),
    ...cases("date[]", [["{2024-02-29,infinity,0044-03-15 BC}", [
      "2024-02-29",
      "infinity",
      "0044-03-15 BC",
    ]]]),
    ...cases("timestamp with time zone[]", [[
      '{"2024-02-29 13:45:00.5+00",-infinity}',
      ["2024-02-29 13:45:00.5+00", "-infinity"],
    ]]),
    ...cases("interval[]", [['{"1 day",NULL,"-00:00:01"}', [
      { months: 0, days: 1, microseconds: 0n },
      null,
      { months: 0, days: 0, microseconds: -1000000n },
    ]]]),
    ...cases("uuid[]", [[
      "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
      ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
    ]]),
    ...cases("json[]", [['{"{\\"a\\": 1}","[1,2]"}', ['{"a": 1}', "[1,2]"]]]),
    ...cases("jsonb[]", [['{"{\\"a\\": 1}",null}', ['{"a": 1}', null]]]),
    ...cases("inet[]", [["{::1,10.0.0.1/8}", ["::1", "10.0.0.1/8"]]]),
    ...cases('"char"[]', [['{a,"\\\\",""}', ["a", "\\", ""]]]),
    ...cases("character(2)[]", [['{a,"b "}', ["a ", "b "]]]),
    ...cases("money[]", [['{"$1.00","-$2.50"}', ["1.00", "-2.50"]]]),
    ...cases("bit varying[]", [["{101,0}", ["101", "0"]]]),
    ...cases("int4range[]", [['{"[1,2)",empty}', [range(1, 2, true, false), EMPTY]]]),
    ...cases("tsvector[]", [[`{"'a':1 'b'"}`, ["'a':1 'b'"]]]),
    ...cases("oid[]", [["{1,4294967295}", [1, 4294967295]]]),
    // Ranges and multiranges
    ...cases("int4range", [
      ["empty", EMPTY],
      ["[1,5)", range(1, 5, true, false)],
      ["(,5]", range(null, 6, false, false)],
      ["[1,)", range(1, null, true, false)],
      ["(,)", range(null, null, false, false)],
      ["(1,1)", EMPTY],
    ]),
    ...cases("int8range", [[
      "[-9223372036854775808,0]",
      range(-9223372036854775808n, 1n, true, false),
    ]]),
    ...cases("numrange", [
      ["[1.5,2.50]", range("1.5", "2.50", true, true)],
      ["(,NaN)", range(null, "NaN", false, false)],
    ]),
    ...cases("daterange", [
      ["[2024-01-01,infinity)", range("2024-01-01", "infinity", true, false)],
      ["(2024-01-01,2024-01-05]", range("2024-01-02", "2024-01-06", true, false)],
    ]),
    ...cases("tsrange", [[
      '["2024-01-01 00:00:00","2024-01-02 00:00:00")',
      range("2024-01-01 00:00:00", "2024-01-02 00:00:00", true, false),
    ]]),
    ...cases("tstzrange", [
      [
        '["2024-01-01 00:00:00+00",infinity)',
        range("2024-01-01 00:00:00+00", "infinity", true, false),
      ],
      ["(-infinity,)", range("-infinity", null, false, false)],
    ]),
    ...cases("int4multirange", [
      ["{}", []],
      ["{[1,3),[5,7)}", [range(1, 3, true, false), range(5, 7, true, false)]],
      ["{[1,3),[2,4),empty,(,-5]}", [range(null, -4, false, false), range(1, 4, true, false)]],
    ]),
    ...cases("int8multirange", [["{[1,3),[9223372036854775806,)}", [
      range(1n, 3n, true, false),
      range(9223372036854775806n, null, true, false),
    ]]]),
    ...cases("tsmultirange", [[
      '{["2024-01-01 00:00:00","2024-01-02 00:00:00"),["2024-01-03 00:00:00",)}',
      [
        range("2024-01-01 00:00:00", "2024-01-02 00:00:00", true, false),
        range("2024-01-03 00:00:00", null, true, false),
      ],
    ]]),
    ...cases("nummultirange", [["{[1.5,2),(3,)}", [
      range("1.5", "2", true, false),
      range("3", null, false, false),
    ]]]),
    ...cases("datemultirange", [["{[2024-01-01,2024-02-01)}", [
      range("2024-01-01", "2024-02-01", true, false),
    ]]]),
    ...cases("tstzmultirange", [[
      '{["2024-01-01 00:00:00+00","2024-01-02 00:00:00+00")}',
      [range("2024-01-01 00:00:00+00", "2024-01-02 00:00:00+00", true, false)],
    ]]),
    // Catalog types
    ...cases("mood", [["happy", "happy"], ['very "happy"', 'very "happy"'], ["a,b", "a,b"], [
      "ünï",
      "ünï",
    ]]),
    ...cases("mood[]", [['{sad,"very \\"happy\\"","a,b",NULL}', [
      "sad",
      'very "happy"',
      "a,b",
      null,
    ]]]),
    ...cases("posint", [["5", 5]]),
    ...cases("posint[]", [["{1,2}", [1, 2]]]),
    ...cases("intarr", [["{1,NULL,3}", [1, null, 3]], ["{}", []], ["[0:0]={7}", {
      lowerBounds: [0],
      values: [7],
    }]]),
    ...cases("price", [["12.5", "12.50"]]),
    ...cases("inner_t", [['(1,"a,b")', { a: 1, b: "a,b" }], ["(,)", { a: null, b: null }], [
      '(,"")',
      { a: null, b: "" },
    ]]),
    ...cases("comp", [
      ['(1,"a b","{x,\\"y z\\"}",happy,"(2,\\"q\\")",5)', {
        id: 1,
        name: "a b",
        tags: ["x", "y z"],
        m: "happy",
        n: { a: 2, b: "q" },
        d: 5,
      }],
      ["(,,,,,)", { id: null, name: null, tags: null, m: null, n: null, d: null }],
      ['(1,"",{},sad,"(,)",1)', {
        id: 1,
        name: "",
        tags: [],
        m: "sad",
        n: { a: null, b: null },
        d: 1,
      }],
      ['(2,"x\\\\y ""z""",{NULL},"very ""happy""",,2)', {
        id: 2,
        name: 'x\\y "z"',
        tags: [null],
        m: 'very "happy"',
        n: null,
        d: 2,
      }],
    ]),
    ...cases("comp[]", [['{"(1,a,{},ok,,3)",NULL}', [
      { id: 1, name: "a", tags: [], m: "ok", n: null, d: 3 },
      null,
    ]]]),
    ...cases("comp2", [["(1,z)", { x: 1, y: "z" }]]),
    ...cases("floatrange", [
      ["[1.5,Infinity]", range(1.5, Infinity, true, true)],
      ["(-Infinity,NaN)", range(-Infinity, NaN, false, false)],
      ["empty", EMPTY],
    ]),
    ...cases("floatmultirange", [["{[1,2),[3,4]}", [
      range(1, 2, true, false),
      range(3, 4, true, true),
    ]]]),
    ...cases("floatrange[]", [['{"[0.5,1)"}', [range(0.5, 1, true, false)]]]),
  ];
}

// ---------------------------------------------------------------------------------------------
// Random cases

function randomCases(seed: number, perType: number): Case[] {
  const generator = seededRandom(seed);
  const random = () => generator.next();
  const int = (min: number, max: number) => generator.between(min, max);
  const pick = <T>(items: readonly T[]): T => generator.pick(items);
  const bits32 = () => int(0, 0xffff) * 65536 + int(0, 0xffff);
  const out: Case[] = [];
  const add = (type: string, make: () => [string, PgValue] | Case) => {
    for (let i = 0; i < perType; i++) {
      const made = make();
      const c = Array.isArray(made) ? { type, input: made[0], expected: made[1] } : made;
      out.push({ ...c, label: `random ${type} #${i}` });
    }
  };

  const float64Of = (high: number, low: number) => {
    const view = new DataView(new ArrayBuffer(8));
    view.setUint32(0, high);
    view.setUint32(4, low);
    return view.getFloat64(0);
  };
  const randomDouble = (): number => {
    switch (int(0, 3)) {
      case 0:
        return (random() - 0.5) * 10 ** int(-5, 8);
      case 1:
        return int(-1000, 1000) / 8;
      default: {
        let value: number;
        do value = float64Of(bits32(), bits32()); while (!Number.isFinite(value));
        return value;
      }
    }
  };

  add("smallint", () => {
    const n = int(-32768, 32767);
    return [String(n), n];
  });
  add("integer", () => {
    const n = int(-2147483648, 2147483647);
    return [String(n), n];
  });
  add("bigint", () => {
    const n = BigInt.asIntN(64, (BigInt(bits32()) << 32n) | BigInt(bits32())) >>
      BigInt(int(0, 62));
    return [String(n), n];
  });
  add("real", () => {
    let value: number;
    do {
      const view = new DataView(new ArrayBuffer(4));
      view.setUint32(0, bits32());
      value = view.getFloat32(0);
    } while (!Number.isFinite(value));
    return { type: "real", input: String(value), expected: value, float4: true };
  });
  add("double precision", () => {
    const value = randomDouble();
    return [String(value), value];
  });
  const digits = (n: number) => Array.from({ length: n }, () => int(0, 9)).join("");
  add("numeric", () => {
    const whole = String(BigInt(digits(int(1, pick([3, 20, 200])))));
    const fraction = digits(int(0, pick([2, 30, 100])));
    let text = fraction === "" ? whole : `${whole}.${fraction}`;
    if (random() < 0.5 && /[1-9]/.test(text)) text = "-" + text;
    return [text, text];
  });
  add("money", () => {
    const cents = BigInt(int(-99999999, 99999999)) * BigInt(int(1, 1000));
    const negative = cents < 0n;
    const abs = (negative ? -cents : cents).toString().padStart(3, "0");
    const text = (negative ? "-" : "") + abs.slice(0, -2) + "." + abs.slice(-2);
    return [text, text];
  });
  const CHARS = [..."abcXYZ019 ,;\"\\'{}()[]\t\nNUL", "é", "🎉", "日"];
  const randomText = () => {
    if (random() < 0.05) return pick(["NULL", "null", "", " "]);
    return Array.from({ length: int(0, 12) }, () => pick(CHARS)).join("");
  };
  add("text", () => {
    const text = randomText();
    return [text, text];
  });
  add("bytea", () => {
    const bytes = Uint8Array.from({ length: int(0, 40) }, () => int(0, 255));
    return ["\\x" + bytes.toHex(), bytes];
  });
  add("uuid", () => {
    const bytes = Uint8Array.from({ length: 16 }, () => int(0, 255));
    const hex = bytes.toHex();
    const text = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${
      hex.slice(16, 20)
    }-${hex.slice(20)}`;
    return [text.toUpperCase(), text];
  });

  // Dates and times: expected strings come from JavaScript's Date (an independent calendar).
  const MS_MIN = Date.UTC(-4713, 10, 24); // 4714-11-24 BC, PostgreSQL's first day
  const MS_MAX = 8_640_000_000_000_000 - 1; // JavaScript's last millisecond
  const pgDate = (ms: number) => {
    const d = new Date(ms);
    const year = d.getUTCFullYear();
    const shown = String(year > 0 ? year : 1 - year).padStart(4, "0");
    const text = `${shown}-${String(d.getUTCMonth() + 1).padStart(2, "0")}-${
      String(d.getUTCDate()).padStart(2, "0")
    }`;
    return { text, bc: year <= 0 };
  };
  const pgTime = (micros: number) => {
    const date = new Date(Math.floor(micros / 1000));
    let text = date.toISOString().slice(11, 19);
    if (micros === 86_400_000_000) text = "24:00:00";
    const fraction = micros % 1_000_000;
    if (fraction !== 0) text += "." + String(fraction).padStart(6, "0").replace(/0+$/, "");
    return text;
  };
  const randomMs = () =>
    random() < 0.7 ? int(-5e12, 5e12) : Math.floor(MS_MIN + random() * (MS_MAX - MS_MIN));
  add("date", () => {
    const ms = Math.floor(randomMs() / 86_400_000) * 86_400_000;
    const { text, bc } = pgDate(ms);
    const shown = bc ? text + " BC" : text;
    return [shown, shown];
  });
  const randomTimestamp = (zone: boolean) => {
    const ms = Math.max(MS_MIN, Math.min(MS_MAX, randomMs()));
    const dayMs = Math.floor(ms / 86_400_000) * 86_400_000;
    const micros = (ms - dayMs) * 1000 + (random() < 0.5 ? 0 : int(0, 999));
    const { text, bc } = pgDate(dayMs);
    const shown = `${text} ${pgTime(micros)}${zone ? "+00" : ""}${bc ? " BC" : ""}`;
    return [shown, shown] as [string, PgValue];
  };
  add("timestamp without time zone", () => randomTimestamp(false));
  add("timestamp with time zone", () => randomTimestamp(true));
  add("time without time zone", () => {
    const micros = random() < 0.05 ? 86_400_000_000 : int(0, 86_399_999) * 1000 + int(0, 999);
    const text = pgTime(micros);
    return [text, text];
  });
  add("time with time zone", () => {
    const micros = int(0, 86_399_999) * 1000 + int(0, 999);
    const offset = random() < 0.3 ? int(-15, 15) * 3600 : int(-57_599, 57_599);
    const abs = Math.abs(offset);
    const h = Math.floor(abs / 3600);
    const m = Math.floor(abs / 60) % 60;
    const s = abs % 60;
    let zone = (offset < 0 ? "-" : "+") + String(h).padStart(2, "0");
    if (m !== 0 || s !== 0) zone += ":" + String(m).padStart(2, "0");
    if (s !== 0) zone += ":" + String(s).padStart(2, "0");
    const text = pgTime(micros) + zone;
    return [text, text];
  });
  add("interval", () => {
    const months = random() < 0.3 ? 0 : int(-100000, 100000);
    const days = random() < 0.3 ? 0 : int(-100000, 100000);
    const micros = random() < 0.2
      ? 0n
      : BigInt(int(-(2 ** 31), 2 ** 31)) * BigInt(int(0, 2 ** 31)) + BigInt(int(-999999, 999999));
    // As H:MM:SS.ffffff: PostgreSQL 14 overflows on a large count of "microseconds".
    const abs = micros < 0n ? -micros : micros;
    const clock = `${micros < 0n ? "-" : "+"}${abs / 3_600_000_000n}:${
      String((abs / 60_000_000n) % 60n).padStart(2, "0")
    }:${String((abs / 1_000_000n) % 60n).padStart(2, "0")}.${
      String(abs % 1_000_000n).padStart(6, "0")
    }`;
    return [`${months} mons ${days} days ${clock}`, {
      months,
      days,
      microseconds: micros,
    }];
  });

  // Network addresses: expected text from a second, string-based IPv6 formatter.
  const ipv6Text = (words: number[]) => {
    let bestStart = -1;
    let bestLength = 0;
    for (let i = 0; i < 8; i++) {
      let j = i;
      while (j < 8 && words[j] === 0) j++;
      if (j - i > bestLength && j - i >= 2) {
        bestStart = i;
        bestLength = j - i;
      }
    }
    const hex = words.map((w) => w.toString(16));
    if (bestStart === 0 && (bestLength === 6 || (bestLength === 5 && words[5] === 0xffff))) {
      const v4 = [words[6]! >> 8, words[6]! & 255, words[7]! >> 8, words[7]! & 255].join(".");
      return (bestLength === 5 ? "::ffff:" : "::") + v4;
    }
    if (bestStart < 0) return hex.join(":");
    return hex.slice(0, bestStart).join(":") + "::" + hex.slice(bestStart + bestLength).join(":");
  };
  const randomWords = () =>
    Array.from({ length: 8 }, () => random() < 0.5 ? 0 : pick([1, 0xffff, int(0, 0xffff)]));
  add("inet", () => {
    if (random() < 0.4) {
      const bytes = Array.from({ length: 4 }, () => int(0, 255));
      const bits = random() < 0.5 ? 32 : int(0, 32);
      const text = bytes.join(".") + (bits === 32 ? "" : "/" + bits);
      return [text, text];
    }
    const words = randomWords();
    if (random() < 0.1) words.splice(0, 6, 0, 0, 0, 0, 0, 0xffff);
    const bits = random() < 0.5 ? 128 : int(0, 128);
    const text = ipv6Text(words) + (bits === 128 ? "" : "/" + bits);
    return [text, text];
  });
  add("cidr", () => {
    const bits = int(0, 128);
    const words = randomWords();
    for (let bit = bits; bit < 128; bit++) words[bit >> 4]! &= ~(1 << (15 - (bit & 15)));
    const text = ipv6Text(words) + "/" + bits;
    return [text, text];
  });
  add("macaddr8", () => {
    const text = Array.from({ length: 8 }, () => int(0, 255).toString(16).padStart(2, "0")).join(
      ":",
    );
    return [text.toUpperCase(), text];
  });
  add("bit varying", () => {
    const text = Array.from({ length: int(0, 80) }, () => pick(["0", "1"])).join("");
    return [text, text];
  });

  // Geometry
  const randomPoint = (): Point => ({ x: randomDouble(), y: randomDouble() });
  const pointText = (q: Point) => `(${q.x},${q.y})`;
  add("point", () => {
    const q = randomPoint();
    return [pointText(q), q];
  });
  add("box", () => {
    const a = randomPoint();
    const b = randomPoint();
    return [`${pointText(a)},${pointText(b)}`, [
      { x: Math.max(a.x, b.x), y: Math.max(a.y, b.y) },
      { x: Math.min(a.x, b.x), y: Math.min(a.y, b.y) },
    ]];
  });
  add("path", () => {
    const points = Array.from({ length: int(1, 6) }, randomPoint);
    const closed = random() < 0.5;
    const body = points.map(pointText).join(",");
    return [closed ? `(${body})` : `[${body}]`, { closed, points }];
  });
  add("polygon", () => {
    const points = Array.from({ length: int(1, 6) }, randomPoint);
    return [`(${points.map(pointText).join(",")})`, points];
  });
  add("circle", () => {
    const center = randomPoint();
    const radius = Math.abs(randomDouble());
    return [`<${pointText(center)},${radius}>`, { center, radius }];
  });

  // Text search: only agreement between the modes (the server sorts and merges).
  const WORDS = ["a", "fat", "cat", "ünï", "it's", "back\\slash", "b c", "日本"];
  add("tsvector", () => {
    const lexemes = Array.from({ length: int(0, 5) }, () => {
      const word = pick(WORDS);
      const quoted = `'${word.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
      if (random() < 0.3) return quoted;
      const positions = Array.from(
        { length: int(1, 4) },
        () => String(int(1, 16383)) + pick(["", "A", "B", "C", "D"]),
      );
      return `${quoted}:${positions.join(",")}`;
    });
    return { type: "tsvector", input: lexemes.join(" ") };
  });
  add("tsquery", () => {
    const term = (depth: number): string => {
      if (depth > 3 || random() < 0.3) {
        const word = pick(WORDS);
        const quoted = `'${word.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
        return quoted + pick(["", ":*", ":A", ":*BC", ":D"]);
      }
      switch (int(0, 4)) {
        case 0:
          return `!${term(depth + 1)}`;
        case 1:
          return `(${term(depth + 1)} & ${term(depth + 1)})`;
        case 2:
          return `(${term(depth + 1)} | ${term(depth + 1)})`;
        case 3:
          return `(${term(depth + 1)} <-> ${term(depth + 1)})`;
        default:
          return `(${term(depth + 1)} <${int(0, 5)}> ${term(depth + 1)})`;
      }
    };
    return { type: "tsquery", input: term(0) };
  });

  // Containers
  const arrayQuote = (text: string) => `"${text.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
  add("text[]", () => {
    const values = Array.from({ length: int(0, 5) }, () => random() < 0.15 ? null : randomText());
    const body = values.map((v) => v === null ? "NULL" : arrayQuote(v)).join(",");
    return [`{${body}}`, values];
  });
  add("integer[]", () => {
    const dims = Array.from({ length: int(1, 3) }, () => int(1, 3));
    const lowerBounds = dims.map(() => random() < 0.6 ? 1 : int(-5, 5));
    const build = (d: number): PgValue[] =>
      Array.from(
        { length: dims[d]! },
        () => d + 1 < dims.length ? build(d + 1) : random() < 0.1 ? null : int(-1000, 1000),
      );
    const values = build(0);
    const render = (v: PgValue): string =>
      Array.isArray(v) ? `{${v.map(render).join(",")}}` : v === null ? "NULL" : String(v);
    const decoration = lowerBounds.some((b) => b !== 1)
      ? dims.map((n, d) => `[${lowerBounds[d]}:${lowerBounds[d]! + n - 1}]`).join("") + "="
      : "";
    const expected = lowerBounds.some((b) => b !== 1) ? { lowerBounds, values } : values;
    return [decoration + render(values), expected];
  });
  const rangeText = (r: PgRange, bound: (v: PgValue) => string) =>
    r.empty ? "empty" : (r.lowerInclusive ? "[" : "(") +
      (r.lower === null ? "" : bound(r.lower)) + "," +
      (r.upper === null ? "" : bound(r.upper)) + (r.upperInclusive ? "]" : ")");
  /** A canonical (half-open) discrete range over integers a < b, or unbounded sides. */
  const discreteRange = (lo: number | null, hi: number | null): PgRange =>
    range(lo, hi, lo !== null, false);
  add("int4range", () => {
    if (random() < 0.1) return ["empty", EMPTY];
    const a = int(-1000, 1000);
    const b = a + int(1, 100);
    const lo = random() < 0.2 ? null : a;
    const hi = random() < 0.2 ? null : b;
    // Render non-canonically half the time; the server canonicalizes to [a,b).
    if (random() < 0.5 || lo === null || hi === null) {
      return [rangeText(discreteRange(lo, hi), String), discreteRange(lo, hi)];
    }
    return [`(${lo - 1},${hi - 1}]`, discreteRange(lo, hi)];
  });
  add("numrange", () => {
    const a = (random() - 0.5) * 1000;
    const b = a + random() * 100 + 0.001;
    const lo = random() < 0.2 ? null : a.toFixed(int(0, 4));
    const hi = random() < 0.2 ? null : b.toFixed(int(0, 4));
    const r = range(lo, hi, lo !== null && random() < 0.5, hi !== null && random() < 0.5);
    return [rangeText(r, (v) => String(v)), r];
  });
  add("tstzrange", () => {
    const [a] = randomTimestamp(true);
    const r = range(a as string, random() < 0.3 ? null : "infinity", true, false);
    return [rangeText(r, (v) => `"${v}"`), r];
  });
  add("int4multirange", () => {
    const ranges: PgRange[] = [];
    let at = int(-1000, 0);
    for (let i = int(0, 4); i > 0; i--) {
      const start = at + int(1, 10);
      const end = start + int(1, 10);
      ranges.push(discreteRange(start, end));
      at = end;
    }
    return [`{${ranges.map((r) => rangeText(r, String)).join(",")}}`, ranges];
  });
  const MOODS = ["sad", "ok", "happy", 'very "happy"', "a,b", "ünï"];
  add("comp", () => {
    const value = {
      id: random() < 0.2 ? null : int(-1000, 1000),
      name: random() < 0.2 ? null : randomText(),
      tags: random() < 0.2
        ? null
        : Array.from({ length: int(0, 3) }, () => random() < 0.2 ? null : randomText()),
      m: random() < 0.2 ? null : pick(MOODS),
      n: random() < 0.2
        ? null
        : { a: random() < 0.3 ? null : int(0, 9), b: random() < 0.3 ? null : randomText() },
      d: random() < 0.2 ? null : int(1, 1000),
    };
    const field = (text: string | null) =>
      text === null ? "" : `"${text.replaceAll("\\", "\\\\").replaceAll('"', '""')}"`;
    const tags = value.tags === null
      ? null
      : `{${value.tags.map((t) => t === null ? "NULL" : arrayQuote(t)).join(",")}}`;
    const inner = value.n === null
      ? null
      : `(${value.n.a === null ? "" : value.n.a},${field(value.n.b)})`;
    const text = `(${value.id ?? ""},${field(value.name)},${field(tags)},${field(value.m)},${
      field(inner)
    },${value.d ?? ""})`;
    return [text, value];
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Recording

async function recordType(
  psql: (sql: string) => Promise<string>,
  type: string,
  typeCases: Case[],
): Promise<Vector[]> {
  const meta = JSON.parse(
    await psql(
      `SELECT json_build_object('oid', t.oid::int8, 'send', t.typsend::text,
                                'output', t.typoutput::text, 'name', format_type(t.oid, NULL),
                                'sendArg', (SELECT a.oid::regtype::text FROM pg_proc p
                                  JOIN pg_type a ON a.oid = p.proargtypes[0]
                                  WHERE p.oid = t.typsend AND a.typtype <> 'p' AND a.oid NOT IN (t.oid, t.typbasetype)),
                                'outputArg', (SELECT a.oid::regtype::text FROM pg_proc p
                                  JOIN pg_type a ON a.oid = p.proargtypes[0]
                                  WHERE p.oid = t.typoutput AND a.typtype <> 'p' AND a.oid NOT IN (t.oid, t.typbasetype)))
         FROM pg_type t WHERE t.oid = ${sqlString(type)}::regtype`,
    ),
  ) as {
    oid: number;
    send: string;
    output: string;
    name: string;
    sendArg: string | null;
    outputArg: string | null;
  };
  // A type that borrows its functions (refcursor uses textout) needs a cast to their argument.
  const arg = (cast: string | null) => cast === null ? "v" : `v::${cast}`;
  // to_regtypemod() is PostgreSQL 17+; older servers record -1.
  const typmod = Number(
    await psql(
      `SELECT CASE WHEN current_setting('server_version_num')::int >= 170000
                   THEN to_regtypemod(${sqlString(type)}) ELSE -1 END`,
    ).catch(() => "-1"),
  );
  // Values are parsed under Spillway's settings into a table first, so that settings changed
  // for a variant affect only the output. Text comes from the type's output function, as
  // pgoutput produces it (a cast to text can differ: bool, bpchar, inet).
  const rows = typeCases.map((c, i) => `(${i}, ${sqlString(c.input)})`).join(",\n");
  const load = `CREATE TEMP TABLE vals AS
    SELECT ord, v::${type} AS v FROM (VALUES ${rows}) AS t(ord, v);\n`;
  const text = `${meta.output}(${arg(meta.outputArg)})::text`;
  const values = JSON.parse(
    await psql(
      SESSION + load +
        `SELECT json_agg(json_build_object('text', ${text}, 'hex', encode(${meta.send}(${
          arg(meta.sendArg)
        }), 'hex'))
                       ORDER BY ord) FROM vals`,
    ),
  ) as { text: string; hex: string }[];
  const variants: Record<string, string[]> = {};
  for (const setting of VARIANTS[type] ?? []) {
    const [name, value] = setting.split("=");
    variants[setting] = JSON.parse(
      await psql(
        SESSION + load + `SET ${name} = ${sqlString(value!)};\n` +
          `SELECT json_agg(${text} ORDER BY ord) FROM vals`,
      ),
    ) as string[];
  }
  return typeCases.map((c, i): Vector => {
    const vector: Vector = {
      label: c.label ?? `${type} ${JSON.stringify(c.input.slice(0, 40))}`,
      type: meta.name,
      oid: meta.oid,
      typmod,
      input: c.input,
      text: values[i]!.text,
      hex: values[i]!.hex,
    };
    if (Object.keys(variants).length > 0) {
      vector.variants = Object.fromEntries(
        Object.entries(variants).map(([setting, texts]) => [setting, texts[i]!]),
      );
    }
    if ("expected" in c) vector.expected = encodeExpected(c.expected!);
    if (c.float4) vector.float4 = true;
    if ("binaryExpected" in c) vector.binaryExpected = encodeExpected(c.binaryExpected!);
    return vector;
  });
}

async function main(): Promise<void> {
  const args = Deno.args;
  const option = (name: string, fallback: string) => {
    const at = args.indexOf(name);
    return at >= 0 ? args[at + 1] ?? fallback : fallback;
  };
  const version = Number(option("--version", "17")) as PgVersion;
  const seed = Number(option("--seed", "1"));
  const check = args.includes("--check");
  const file = new URL("./vectors.json", import.meta.url);

  await using pg = await startPostgres({ version });
  await pg.psql(SETUP);
  const psql = (sql: string) => pg.psql(sql);
  const serverVersion = await psql("SHOW server_version");

  const connection = await PgConnection.connect({
    ...parseConnectionUrl(pg.url()),
    sslmode: "disable",
  });
  let types;
  try {
    const oids = (await psql(
      `SELECT string_agg(t::regtype::oid::text, ',') FROM unnest(ARRAY[${
        CUSTOM_TYPES.map(sqlString).join(",")
      }]) AS t`,
    )).split(",").map(Number);
    types = await loadTypeInfos(connection, oids);
  } finally {
    await connection.close();
  }

  const major = Number.parseInt(serverVersion, 10);
  const all = [...fixedCases(), ...randomCases(seed, 25)].filter((c) => (c.since ?? 0) <= major);
  const byType = new Map<string, Case[]>();
  for (const c of all) {
    let list = byType.get(c.type);
    if (list === undefined) byType.set(c.type, list = []);
    list.push(c);
  }
  const vectors: Vector[] = [];
  for (const [type, typeCases] of byType) vectors.push(...await recordType(psql, type, typeCases));

  const output: VectorFile = { serverVersion, types, vectors };
  if (check) {
    // Compare what both recorded; OIDs of catalog types and typmods (-1 before 17) may differ.
    const committed = JSON.parse(await Deno.readTextFile(file)) as VectorFile;
    const key = (v: Vector) => `${v.label}\u0000${v.input}`;
    const comparable = (v: Vector) =>
      JSON.stringify({ ...v, oid: 0, typmod: 0, variants: v.variants ?? {} });
    const recorded = new Map(committed.vectors.map((v) => [key(v), v]));
    let differences = 0;
    for (const vector of vectors) {
      const old = recorded.get(key(vector));
      if (old === undefined) continue;
      if (comparable(old) !== comparable(vector)) {
        differences++;
        console.log(
          `differs: ${vector.label}\n  committed ${comparable(old)}\n  server    ${
            comparable(vector)
          }`,
        );
      }
    }
    console.log(`${vectors.length} vectors, ${differences} differ on PostgreSQL ${serverVersion}`);
    if (differences > 0) Deno.exitCode = 1;
    return;
  }
  await Deno.writeTextFile(file, JSON.stringify(output, null, 2) + "\n");
  // Leave the file as `deno fmt` (run over the whole repository) would.
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", file.pathname] }).output();
  console.log(
    `Wrote ${vectors.length} vectors from PostgreSQL ${serverVersion} to ${file.pathname}`,
  );
}

if (import.meta.main) await main();
