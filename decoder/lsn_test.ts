import assert from "node:assert/strict";
import {
  formatLsn,
  formatUnixMicros,
  lsn,
  LSN_ZERO,
  maxLsn,
  parseLsn,
  PG_EPOCH_OFFSET_MICROS,
  pgMicrosToUnixMicros,
  unixMicrosToPgMicros,
} from "./lsn.ts";

Deno.test("parseLsn/formatLsn: round trip of typical, edge and maximum values", () => {
  const cases: [string, bigint][] = [
    ["0/0", 0n],
    ["0/1", 1n],
    ["0/16B3748", 0x16b3748n],
    ["16/B374D848", 0x16_b374_d848n],
    ["1/0", 0x1_0000_0000n],
    ["0/FFFFFFFF", 0xffff_ffffn],
    // Either side of 2^53, where formatting switches from doubles to bigints.
    ["1FFFFF/FFFFFFFF", 0x1f_ffff_ffff_ffffn],
    ["200000/0", 0x20_0000_0000_0000n],
    ["200000/1", 0x20_0000_0000_0001n],
    ["FFFFFFFF/0", 0xffff_ffff_0000_0000n],
    ["FFFFFFFF/FFFFFFFF", 0xffff_ffff_ffff_ffffn],
  ];
  for (const [text, value] of cases) {
    assert.equal(parseLsn(text), value, text);
    assert.equal(formatLsn(parseLsn(text)), text);
    assert.equal(formatLsn(lsn(value)), text);
  }
});

Deno.test("parseLsn: zero-padded forms (PG19 prints %X/%08X)", () => {
  assert.equal(parseLsn("0/0000AB12"), 0xab12n);
  assert.equal(parseLsn("00000000/00000000"), 0n);
  assert.equal(parseLsn("00000016/B374D848"), 0x16_b374_d848n);
  assert.equal(formatLsn(parseLsn("0/0000AB12")), "0/AB12");
});

Deno.test("parseLsn: upper, lower and mixed case", () => {
  assert.equal(parseLsn("16/B374D848"), 0x16_b374_d848n);
  assert.equal(parseLsn("16/b374d848"), 0x16_b374_d848n);
  assert.equal(parseLsn("aB/cD"), 0xab_0000_00cdn);
  assert.equal(formatLsn(parseLsn("ff/abcdef")), "FF/ABCDEF");
});

Deno.test("parseLsn: invalid strings are rejected with a SyntaxError naming the input", () => {
  const invalid = [
    "",
    "/",
    "0",
    "0/",
    "/0",
    "16B374D848",
    "0/0/0",
    "G/0",
    "0/1G",
    "-1/0",
    "0/-1",
    "0x16/B374D848",
    "123456789/0", // 9 hex digits
    "0/123456789",
    "1 /2",
    "1/ 2",
    "1.5/2",
    "+1/2",
  ];
  for (const text of invalid) {
    assert.throws(
      () => parseLsn(text),
      (error: unknown) =>
        error instanceof SyntaxError && error.message.startsWith(`Cannot parse LSN "${text}"`),
      JSON.stringify(text),
    );
  }
});

Deno.test("lsn(): rejects values outside 64 unsigned bits", () => {
  assert.throws(() => lsn(-1n), RangeError);
  assert.throws(() => lsn(0x1_0000_0000_0000_0000n), RangeError);
  assert.equal(lsn(0n), LSN_ZERO);
});

Deno.test("maxLsn: compares as unsigned 64-bit", () => {
  const high = lsn(0x8000_0000_0000_0000n);
  const low = lsn(0x7fff_ffff_ffff_ffffn);
  assert.equal(maxLsn(high, low), high);
  assert.equal(maxLsn(low, high), high);
  assert.equal(maxLsn(LSN_ZERO, LSN_ZERO), LSN_ZERO);
});

Deno.test("pg timestamps: 2000 epoch offset both ways", () => {
  assert.equal(PG_EPOCH_OFFSET_MICROS, BigInt(Date.UTC(2000, 0, 1)) * 1000n);
  assert.equal(pgMicrosToUnixMicros(0n), 946_684_800_000_000n);
  assert.equal(unixMicrosToPgMicros(0n), -946_684_800_000_000n);
  for (const value of [0n, 1n, -1n, 762_529_500_123_456n, -946_684_800_000_001n]) {
    assert.equal(unixMicrosToPgMicros(pgMicrosToUnixMicros(value)), value);
  }
  // 2024-02-29T13:45:00.123456Z
  const unix = BigInt(Date.UTC(2024, 1, 29, 13, 45, 0, 123)) * 1000n + 456n;
  assert.equal(pgMicrosToUnixMicros(762_529_500_123_456n), unix);
});

Deno.test("formatUnixMicros: microsecond precision after 1970", () => {
  assert.equal(formatUnixMicros(0n), "1970-01-01T00:00:00.000000Z");
  assert.equal(formatUnixMicros(1n), "1970-01-01T00:00:00.000001Z");
  assert.equal(formatUnixMicros(1_000_001n), "1970-01-01T00:00:01.000001Z");
  assert.equal(
    formatUnixMicros(pgMicrosToUnixMicros(762_529_500_123_456n)),
    "2024-02-29T13:45:00.123456Z",
  );
  assert.equal(formatUnixMicros(PG_EPOCH_OFFSET_MICROS), "2000-01-01T00:00:00.000000Z");
});

Deno.test("formatUnixMicros: negative (pre-1970) values", () => {
  assert.equal(formatUnixMicros(-1n), "1969-12-31T23:59:59.999999Z");
  assert.equal(formatUnixMicros(-999n), "1969-12-31T23:59:59.999001Z");
  assert.equal(formatUnixMicros(-1000n), "1969-12-31T23:59:59.999000Z");
  assert.equal(formatUnixMicros(-1001n), "1969-12-31T23:59:59.998999Z");
  assert.equal(formatUnixMicros(-1_500n), "1969-12-31T23:59:59.998500Z");
  assert.equal(formatUnixMicros(-1_000_000n), "1969-12-31T23:59:59.000000Z");
  // 1900-01-01T00:00:00.000001Z
  const unix = BigInt(Date.UTC(1900, 0, 1)) * 1000n + 1n;
  assert.equal(formatUnixMicros(unix), "1900-01-01T00:00:00.000001Z");
});
