/**
 * Unit tests of the text-format parsers on hand-written inputs: what the vectors in
 * `testdata/vectors.json` do not reach (other IntervalStyles' corner cases, array and record
 * syntax the server accepts but never prints, malformed text).
 */

import assert from "node:assert/strict";
import { DecodeError } from "../../errors.ts";
import { Oid } from "./oids.ts";
import {
  parseArrayText,
  parseCompositeText,
  parseIntervalText,
  parseMultirangeText,
  parseRangeText,
  TEXT_DECODERS,
} from "./text.ts";
import type { PgInterval, TextValueDecoder } from "./values.ts";

function decoder(oid: number): TextValueDecoder {
  const d = TEXT_DECODERS.get(oid);
  assert.ok(d, `no text decoder for ${oid}`);
  return d;
}

const identity: TextValueDecoder = (text) => text;
const int4 = decoder(Oid.int4);

function interval(months: number, days: number, microseconds: bigint): PgInterval {
  return { months, days, microseconds };
}

Deno.test("text: interval in all four IntervalStyles", () => {
  const cases: [string[], PgInterval][] = [
    [[
      "1 year 2 mons 3 days 04:05:06.5",
      "@ 1 year 2 mons 3 days 4 hours 5 mins 6.5 secs",
      "+1-2 +3 +4:05:06.5",
      "P1Y2M3DT4H5M6.5S",
    ], interval(14, 3, 14_706_500_000n)],
    [[
      "-1 days +02:03:00",
      "@ 1 day -2 hours -3 mins ago",
      "+0-0 -1 +2:03:00",
      "P-1DT2H3M",
    ], interval(0, -1, 7_380_000_000n)],
    [["00:00:00", "@ 0", "0", "PT0S"], interval(0, 0, 0n)],
    [[
      "-1 years -2 mons +3 days -04:05:06",
      "@ 1 year 2 mons -3 days 4 hours 5 mins 6 secs ago",
      "-1-2 +3 -4:05:06",
      "P-1Y-2M3DT-4H-5M-6S",
    ], interval(-14, 3, -14_706_000_000n)],
    [["-00:00:00.5", "@ 0.5 secs ago", "-0:00:00.5", "PT-0.5S"], interval(0, 0, -500_000n)],
    [
      ["1 mon -00:00:01", "@ 1 mon -1 sec", "+0-1 +0 -0:00:01", "P1MT-1S"],
      interval(1, 0, -1_000_000n),
    ],
    [["-1 days", "@ 1 day ago", "-1 0:00:00", "P-1D"], interval(0, -1, 0n)],
    [["-1 years", "@ 1 year ago", "-1-0", "P-1Y"], interval(-12, 0, 0n)],
    [["25:00:00", "@ 25 hours", "25:00:00", "PT25H"], interval(0, 0, 90_000_000_000n)],
    [
      ["-00:00:00.000001", "@ 0.000001 secs ago", "-0:00:00.000001", "PT-0.000001S"],
      interval(0, 0, -1n),
    ],
    [["1 year -1 days", "@ 1 year -1 days", "+1-0 -1 +0:00:00", "P1Y-1D"], interval(12, -1, 0n)],
    [["1 day", "@ 1 day", "1 0:00:00", "P1D"], interval(0, 1, 0n)],
    [[
      "-1 days -00:00:01",
      "@ 1 day 1 sec ago",
      "-1 0:00:01",
      "P-1DT-1S",
    ], interval(0, -1, -1_000_000n)],
  ];
  for (const [texts, expected] of cases) {
    for (const text of texts) assert.deepStrictEqual(parseIntervalText(text), expected, text);
  }
  assert.deepStrictEqual(
    parseIntervalText("infinity"),
    interval(2147483647, 2147483647, 9223372036854775807n),
  );
  assert.deepStrictEqual(
    parseIntervalText("-infinity"),
    interval(-2147483648, -2147483648, -9223372036854775808n),
  );
  // ISO 8601 weeks and fractional hours are valid input, though PostgreSQL never prints them.
  assert.deepStrictEqual(parseIntervalText("P2W"), interval(0, 14, 0n));
  assert.deepStrictEqual(parseIntervalText("PT1.5H"), interval(0, 0, 5_400_000_000n));
});

Deno.test("text: malformed intervals throw DecodeError", () => {
  for (
    const text of [
      "",
      "P1X",
      "1 fortnight",
      "1 year 2",
      "@ 1",
      "1:2:3:4",
      "P1",
      "PT",
      "--1 day",
      "P1Y2Mx",
    ]
  ) {
    assert.throws(() => parseIntervalText(text), DecodeError, JSON.stringify(text));
  }
});

Deno.test("text: arrays: quoting, escapes, NULL, whitespace, delimiters", () => {
  assert.deepStrictEqual(
    parseArrayText('{"a b","c\\"d",NULL,"NULL",null,"",x}', identity, ",", "text[] value"),
    ["a b", 'c"d', null, "NULL", null, "", "x"],
  );
  // The server accepts (and never prints) spaces around elements and escapes outside quotes.
  assert.deepStrictEqual(
    parseArrayText("{ a , b\\ , \\N\\ULL ,{}}".replace(",{}", ""), identity, ",", "text[] value"),
    ["a", "b ", "NULL"],
  );
  assert.deepStrictEqual(parseArrayText("{  }", identity, ",", "x"), []);
  assert.deepStrictEqual(
    parseArrayText("{(1,1),(0,0);(3,3),(2,2)}", identity, ";", "box[] value"),
    ["(1,1),(0,0)", "(3,3),(2,2)"],
  );
  assert.deepStrictEqual(parseArrayText("{{1,2},{3,4}}", int4, ",", "int4[] value"), [[1, 2], [
    3,
    4,
  ]]);
  assert.deepStrictEqual(
    parseArrayText("[0:1]={1,2}", int4, ",", "int4[] value"),
    { lowerBounds: [0], values: [1, 2] },
  );
  assert.deepStrictEqual(parseArrayText("[1:2]={1,2}", int4, ",", "int4[] value"), [1, 2]);
  assert.deepStrictEqual(
    parseArrayText("[-1:-1][2:3]={{7,8}}", int4, ",", "int4[] value"),
    { lowerBounds: [-1, 2], values: [[7, 8]] },
  );
});

Deno.test("text: malformed arrays throw DecodeError", () => {
  const bad = [
    "",
    "{",
    "{1,2",
    "{1,,2}",
    "1,2}",
    '{"a}',
    "{a}x",
    "[0:1]{1,2}",
    "[0:2]={1,2}",
    "[1:0x]={}",
    "{{{{{{{1}}}}}}}",
    '{a"b}',
    "{a\\",
  ];
  for (const text of bad) {
    assert.throws(() => parseArrayText(text, int4, ",", "int4[] value"), DecodeError, text);
  }
  // A broken element is the element decoder's DecodeError.
  assert.throws(() => parseArrayText("{1,x}", int4, ",", "int4[] value"), DecodeError);
});

Deno.test("text: ranges and multiranges", () => {
  assert.deepStrictEqual(parseRangeText("empty", int4, "int4range value"), {
    empty: true,
    lower: null,
    upper: null,
    lowerInclusive: false,
    upperInclusive: false,
  });
  assert.deepStrictEqual(parseRangeText("(,5]", int4, "int4range value"), {
    empty: false,
    lower: null,
    upper: 5,
    lowerInclusive: false,
    upperInclusive: true,
  });
  // Both quoting styles the server reads: doubled quotes and backslashes.
  assert.deepStrictEqual(parseRangeText('["a""b","c\\\\d\\"e")', identity, "textrange value"), {
    empty: false,
    lower: 'a"b',
    upper: 'c\\d"e',
    lowerInclusive: true,
    upperInclusive: false,
  });
  assert.deepStrictEqual(parseRangeText('("",)', identity, "textrange value").lower, "");
  assert.deepStrictEqual(parseMultirangeText("{}", int4, "int4multirange value"), []);
  assert.equal(parseMultirangeText("{[1,3), [5,7)}", int4, "int4multirange value").length, 2);
  for (const text of ["", "[1,5", "[1;5)", "{1,5}", "[1,5)x", "emptyx", '["a,5)']) {
    assert.throws(() => parseRangeText(text, int4, "int4range value"), DecodeError, text);
  }
  for (const text of ["", "{", "{[1,3)", "{[1,3);[4,5)}", "[1,3)"]) {
    assert.throws(() => parseMultirangeText(text, int4, "int4multirange value"), DecodeError, text);
  }
});

Deno.test("text: composites", () => {
  const names = ["a", "b", "c"];
  const fields = [int4, identity, identity];
  assert.deepStrictEqual(
    parseCompositeText('(1,"a b",)', names, fields, "t value"),
    { a: 1, b: "a b", c: null },
  );
  assert.deepStrictEqual(
    parseCompositeText('(,"",x)', names, fields, "t value"),
    { a: null, b: "", c: "x" },
  );
  assert.deepStrictEqual(
    parseCompositeText('(2,"x\\\\y ""z""",a"b,c"d)', names, fields, "t value"),
    { a: 2, b: 'x\\y "z"', c: "ab,cd" },
  );
  assert.deepStrictEqual(
    parseCompositeText("(1,x)", null, null, "record value"),
    { f1: "1", f2: "x" },
  );
  for (const text of ["", "(1,2)", "(1,2,3,4)", "(1,2,3", "1,2,3)", "(1,2,3)x", '(1,"a,3)']) {
    assert.throws(() => parseCompositeText(text, names, fields, "t value"), DecodeError, text);
  }
});

Deno.test("text: scalars", () => {
  assert.equal(decoder(Oid.bool)("t"), true);
  assert.equal(decoder(Oid.int2)("-32768"), -32768);
  assert.equal(decoder(Oid.int8)("-9223372036854775808"), -9223372036854775808n);
  assert.equal(decoder(Oid.int8)("5"), 5n);
  assert.equal(decoder(Oid.oid)("4294967295"), 4294967295);
  assert.ok(Object.is(decoder(Oid.float8)("-0"), -0));
  assert.ok(Number.isNaN(decoder(Oid.float4)("NaN") as number));
  assert.equal(decoder(Oid.float8)("1e+100"), 1e100);
  assert.equal(decoder(Oid.money)("-$1,234.56"), "-1234.56");
  assert.equal(decoder(Oid.money)("$0.00"), "0.00");
  assert.equal(decoder(Oid.money)("($5.00)"), "-5.00");
  assert.deepStrictEqual(decoder(Oid.bytea)("\\x00FFab"), Uint8Array.from([0, 255, 171]));
  assert.deepStrictEqual(
    decoder(Oid.bytea)("a\\\\b\\001é"),
    Uint8Array.from([97, 92, 98, 1, 0xc3, 0xa9]),
  );
  assert.deepStrictEqual(decoder(Oid.point)("(1.5,-2)"), { x: 1.5, y: -2 });
  assert.deepStrictEqual(decoder(Oid.path)("[(0,0),(1e+20,-Infinity)]"), {
    closed: false,
    points: [{ x: 0, y: 0 }, { x: 1e20, y: -Infinity }],
  });
  assert.deepStrictEqual(decoder(Oid.oidvector)(""), []);
  assert.equal(decoder(Oid.regclass)("pg_class"), "pg_class");
  assert.equal(decoder(Oid.regclass)("16384"), 16384);
  assert.equal(decoder(Oid.numeric)("123.4500"), "123.4500");
});

Deno.test("text: malformed scalars throw DecodeError", () => {
  const bad: [number, string][] = [
    [Oid.bool, "true"],
    [Oid.bool, ""],
    [Oid.int2, "32768"],
    [Oid.int2, "1.0"],
    [Oid.int4, ""],
    [Oid.int4, "-"],
    [Oid.int4, "2147483648"],
    [Oid.int4, " 1"],
    [Oid.int8, "9223372036854775808"],
    [Oid.int8, "0x10"],
    [Oid.int8, ""],
    [Oid.oid, "-1"],
    [Oid.float8, "abc"],
    [Oid.float8, ""],
    [Oid.float8, " 1"],
    [Oid.float4, "1 "],
    [Oid.money, "abc"],
    [Oid.money, "$"],
    [Oid.bytea, "\\x0"],
    [Oid.bytea, "\\xzz"],
    [Oid.bytea, "\\9"],
    [Oid.point, "(1)"],
    [Oid.point, "(1,x)"],
    [Oid.circle, "<(1,2)>"],
    [Oid.path, "(1,2"],
    [Oid.path, "x"],
    [Oid.interval, "x"],
    [Oid.xid8, "-1"],
  ];
  for (const [oid, text] of bad) {
    assert.throws(() => decoder(oid)(text), DecodeError, `${oid} ${JSON.stringify(text)}`);
  }
});
