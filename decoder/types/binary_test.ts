/**
 * Unit tests of the binary decoders on hand-built bytes: corner cases and malformed input the
 * server never sends (the recorded vectors cover what it does send).
 */

import assert from "node:assert/strict";
import { DecodeError } from "../../errors.ts";
import {
  BINARY_DECODERS,
  decodeArrayBinary,
  decodeCompositeBinary,
  decodeMultirangeBinary,
  decodeRangeBinary,
  shortestFloat4,
} from "./binary.ts";
import { Oid } from "./oids.ts";
import type { BinaryValueDecoder } from "./values.ts";

function decoder(oid: number): BinaryValueDecoder {
  const d = BINARY_DECODERS.get(oid);
  assert.ok(d, `no binary decoder for ${oid}`);
  return d;
}

/** Bytes from a hex string with optional spaces. */
function hex(text: string): Uint8Array {
  return Uint8Array.fromHex(text.replaceAll(" ", ""));
}

const int4 = decoder(Oid.int4);

Deno.test("binary: numeric layout and special values", () => {
  const numeric = decoder(Oid.numeric);
  // ndigits 2, weight 0, positive, dscale 4: 1 . 2345 → "1.2345"
  assert.equal(numeric(hex("0002 0000 0000 0004 0001 0929")), "1.2345");
  // weight -2: 0.00001234, dscale 8
  assert.equal(numeric(hex("0001 fffe 0000 0008 04d2")), "0.00001234");
  // weight 1 with one digit: 10000, scale 0
  assert.equal(numeric(hex("0001 0001 4000 0000 0001")), "-10000");
  // zero with a scale
  assert.equal(numeric(hex("0000 0000 0000 0002")), "0.00");
  // digits beyond the display scale are cut, as get_str_from_var does
  assert.equal(numeric(hex("0002 0000 0000 0001 0001 1388")), "1.5");
  assert.equal(numeric(hex("0000 0000 c000 0000")), "NaN");
  assert.equal(numeric(hex("0000 0000 d000 0000")), "Infinity");
  assert.equal(numeric(hex("0000 0000 f000 0000")), "-Infinity");
  for (
    const bad of [
      "",
      "0000",
      "0001 0000 0000 0000",
      "0000 0000 8000 0000",
      "0001 0000 0000 0000 2710",
      "0000 0000 0000 4000",
    ]
  ) {
    assert.throws(() => numeric(hex(bad)), DecodeError, bad);
  }
});

Deno.test("binary: fixed-width types reject the wrong length", () => {
  const widths: [number, number][] = [
    [Oid.bool, 1],
    [Oid.int2, 2],
    [Oid.int4, 4],
    [Oid.int8, 8],
    [Oid.float4, 4],
    [Oid.float8, 8],
    [Oid.oid, 4],
    [Oid.date, 4],
    [Oid.time, 8],
    [Oid.timetz, 12],
    [Oid.timestamp, 8],
    [Oid.timestamptz, 8],
    [Oid.interval, 16],
    [Oid.uuid, 16],
    [Oid.money, 8],
    [Oid.macaddr, 6],
    [Oid.macaddr8, 8],
    [Oid.pg_lsn, 8],
    [Oid.tid, 6],
    [Oid.point, 16],
    [Oid.circle, 24],
    [Oid.char, 1],
  ];
  for (const [oid, width] of widths) {
    assert.doesNotThrow(() => decoder(oid)(new Uint8Array(width)), `${oid}`);
    assert.throws(() => decoder(oid)(new Uint8Array(width - 1)), DecodeError, `${oid}`);
    assert.throws(() => decoder(oid)(new Uint8Array(width + 1)), DecodeError, `${oid}`);
  }
});

Deno.test("binary: dates and times outside PostgreSQL's range throw", () => {
  assert.equal(decoder(Oid.date)(hex("7fffffff")), "infinity");
  assert.equal(decoder(Oid.date)(hex("80000000")), "-infinity");
  assert.throws(() => decoder(Oid.date)(hex("7ffffffe")), DecodeError);
  assert.throws(() => decoder(Oid.date)(hex("ffda0000")), DecodeError); // before 4714-11-24 BC
  assert.equal(decoder(Oid.timestamp)(hex("7fffffffffffffff")), "infinity");
  assert.equal(decoder(Oid.timestamptz)(hex("8000000000000000")), "-infinity");
  assert.throws(() => decoder(Oid.timestamp)(hex("7ffffffffffffffe")), DecodeError);
  assert.throws(() => decoder(Oid.time)(hex("000000141dd76001")), DecodeError); // 24:00:00 + 1µs
  assert.throws(() => decoder(Oid.time)(hex("ffffffffffffffff")), DecodeError);
  assert.throws(() => decoder(Oid.timetz)(hex("0000000000000000 0000e101")), DecodeError);
  assert.equal(decoder(Oid.time)(hex("000000141dd76000")), "24:00:00");
});

Deno.test("binary: versioned text, network and bit strings", () => {
  const jsonb = decoder(Oid.jsonb);
  assert.equal(jsonb(hex("01 7b7d")), "{}");
  assert.throws(
    () => jsonb(hex("02 7b7d")),
    (e: unknown) => e instanceof DecodeError && /version 2/.test(e.message),
  );
  assert.throws(() => jsonb(new Uint8Array()), DecodeError);
  const inet = decoder(Oid.inet);
  assert.equal(inet(hex("02 20 00 04 0a000001")), "10.0.0.1");
  assert.equal(decoder(Oid.cidr)(hex("02 08 01 04 0a000000")), "10.0.0.0/8");
  assert.equal(inet(hex("03 80 00 10 00000000000000000000ffff01020304")), "::ffff:1.2.3.4");
  for (
    const bad of [
      "01 20 00 04 0a000001",
      "02 21 00 04 0a000001",
      "02 20 00 10 0a000001",
      "02 20 00 04 0a0000",
    ]
  ) {
    assert.throws(() => inet(hex(bad)), DecodeError, bad);
  }
  const bits = decoder(Oid.varbit);
  assert.equal(bits(hex("00000003 a0")), "101");
  assert.equal(bits(hex("00000000")), "");
  assert.throws(() => bits(hex("00000009 ff")), DecodeError);
  assert.throws(() => bits(hex("ffffffff")), DecodeError);
  assert.equal(decoder(Oid.char)(hex("00")), "");
  assert.equal(decoder(Oid.char)(hex("e9")), "\\351");
});

Deno.test("binary: text search values", () => {
  const tsvector = decoder(Oid.tsvector);
  assert.equal(tsvector(hex("00000002 6100 0002 c001 0002 6200 0000")), "'a':1A,2 'b'");
  assert.equal(tsvector(hex("00000000")), "");
  assert.throws(() => tsvector(hex("00000001 6100")), DecodeError);
  assert.throws(() => tsvector(hex("7fffffff")), DecodeError);
  const tsquery = decoder(Oid.tsquery);
  assert.equal(
    tsquery(hex("00000006 0203 02040002 010c016300 0100006200 0201 0100006100")),
    "!'a' | 'b' <2> 'c':*AB",
  );
  assert.equal(tsquery(hex("00000000")), "");
  for (
    const bad of [
      "00000001 0202", // an operator with no operands
      "00000002 010000610001000062 00", // two operands, no operator, trailing byte
      "00000002 0100006100 0100006200", // extra node
      "00000001 0300", // unknown item type
      "00000001 01000061", // an operand without its NUL
      "0000ffff",
    ]
  ) {
    assert.throws(() => tsquery(hex(bad)), DecodeError, bad);
  }
  // Deep nesting is refused before it exhausts the stack.
  const deep = [0, 0, 0x0f, 0xa1];
  for (let i = 0; i < 4000; i++) deep.push(2, 1); // NOT
  deep.push(1, 0, 0, 0x61, 0);
  assert.throws(() => tsquery(Uint8Array.from(deep)), DecodeError);
});

Deno.test("binary: arrays", () => {
  const array = (text: string) => decodeArrayBinary(hex(text), int4, "int4[] value");
  assert.deepStrictEqual(array("00000000 00000000 00000017"), []);
  assert.deepStrictEqual(
    array(
      "00000001 00000001 00000017 00000003 00000001 00000004 00000001 ffffffff 00000004 00000003",
    ),
    [1, null, 3],
  );
  assert.deepStrictEqual(
    array("00000001 00000000 00000017 00000001 00000000 00000004 00000007"),
    { lowerBounds: [0], values: [7] },
  );
  assert.deepStrictEqual(
    array(
      "00000002 00000000 00000017 00000001 00000001 00000002 00000001 00000004 00000001 00000004 00000002",
    ),
    [[1, 2]],
  );
  for (
    const bad of [
      "",
      "00000007 00000000 00000017",
      "ffffffff 00000000 00000017",
      "00000001 00000002 00000017 00000001 00000001",
      "00000001 00000000 00000017 ffffffff 00000001",
      "00000001 00000000 00000017 7fffffff 00000001 00000004 00000001",
      "00000002 00000000 00000017 00010000 00000001 00010000 00000001",
      "00000001 00000000 00000017 00000001 00000001 00000004 00000001 00",
      "00000001 00000000 00000017 00000001 00000001 00000005 00000001",
      "00000001 00000000 00000017 00000001 00000001 fffffffe",
    ]
  ) {
    assert.throws(() => array(bad), DecodeError, bad);
  }
});

Deno.test("binary: ranges, multiranges and composites", () => {
  const range = (text: string) => decodeRangeBinary(hex(text), int4, "int4range value");
  assert.deepStrictEqual(range("01"), {
    empty: true,
    lower: null,
    upper: null,
    lowerInclusive: false,
    upperInclusive: false,
  });
  assert.deepStrictEqual(range("12 00000004 00000001"), {
    empty: false,
    lower: 1,
    upper: null,
    lowerInclusive: true,
    upperInclusive: false,
  });
  assert.deepStrictEqual(range("18"), {
    empty: false,
    lower: null,
    upper: null,
    lowerInclusive: false,
    upperInclusive: false,
  });
  for (const bad of ["", "02", "02 00000004 00000001", "01 00", "18 00"]) {
    assert.throws(() => range(bad), DecodeError, bad);
  }
  const multirange = (text: string) =>
    decodeMultirangeBinary(hex(text), int4, "int4multirange value");
  assert.deepStrictEqual(multirange("00000000"), []);
  assert.equal(multirange("00000001 00000001 01").length, 1);
  for (const bad of ["", "00000001", "00000001 00000002 01", "7fffffff 00000001 01"]) {
    assert.throws(() => multirange(bad), DecodeError, bad);
  }
  const composite = (text: string) =>
    decodeCompositeBinary(hex(text), ["a", "b"], [int4, int4], "t value");
  assert.deepStrictEqual(
    composite("00000002 00000017 00000004 00000001 00000017 ffffffff"),
    { a: 1, b: null },
  );
  for (
    const bad of ["", "00000001 00000017 00000004 00000001", "00000002 00000017 00000004 00000001"]
  ) {
    assert.throws(() => composite(bad), DecodeError, bad);
  }
});

Deno.test("binary: float4 prints as PostgreSQL's shortest text", () => {
  const cases: [number, number][] = [
    [Math.fround(1.1), 1.1],
    [Math.fround(0.1), 0.1],
    [Math.fround(3.4028235e38), 3.4028235e38],
    [2 ** -149, 1e-45],
    [2 ** -12, 0.00024414062], // a tie between two 8-digit decimals: Ryu rounds to even
    [Math.fround(-59937848), -59937848], // -59937850 would be a rounding boundary
    [Math.fround(16777216), 16777216],
  ];
  for (const [value, expected] of cases) assert.equal(shortestFloat4(value), expected, `${value}`);
  assert.ok(Object.is(shortestFloat4(-0), -0));
  assert.ok(Number.isNaN(shortestFloat4(NaN)));
});
