/** Unit tests of the JSON conversion, with Spillway's defaults and with Debezium's. */

import assert from "node:assert/strict";
import {
  DEBEZIUM_DEFAULTS,
  jsonEncoder,
  type JsonOptions,
  toJsonValue,
  twosComplement,
} from "./json.ts";
import { Oid } from "./oids.ts";
import { TypeRegistry } from "./registry.ts";
import type { PgValue } from "./values.ts";
import { seededRandom } from "../../testing/random.ts";

/** The JSON text `JSON.stringify` writes for a value of type `oid`. */
function json(value: PgValue, oid: number, options: JsonOptions = {}, typeModifier = -1): string {
  return JSON.stringify(toJsonValue(value, { oid, typeModifier }, options));
}

const numericTypmod = (precision: number, scale: number) =>
  ((precision << 16) | (scale & 0x7ff)) + 4;

Deno.test("json: numbers stay exact and valid JSON", () => {
  assert.equal(json(5n, Oid.int8), "5");
  assert.equal(json(-9223372036854775808n, Oid.int8), "-9223372036854775808");
  assert.equal(json(18446744073709551615n, Oid.xid8), "18446744073709551615");
  assert.equal(json([1n, null, 9007199254740993n], 1016), "[1,null,9007199254740993]");
  assert.equal(json(1.5, Oid.float8), "1.5");
  assert.equal(json(-0, Oid.float8), "-0");
  assert.equal(json(NaN, Oid.float4), '"NaN"');
  assert.equal(json(Infinity, Oid.float8), '"Infinity"');
  assert.equal(json(-Infinity, Oid.float8), '"-Infinity"');
  assert.equal(json(42, Oid.int4), "42");
  assert.equal(json(true, Oid.bool), "true");
});

Deno.test("json: Spillway defaults", () => {
  assert.equal(json("123.4500", Oid.numeric), '"123.4500"');
  assert.equal(json("NaN", Oid.numeric), '"NaN"');
  assert.equal(json("-1234.56", Oid.money), '"-1234.56"');
  assert.equal(json(Uint8Array.from([0, 255]), Oid.bytea), '"AP8="');
  assert.equal(json(Uint8Array.from([0, 255]), Oid.bytea, { binaryHandling: "hex" }), '"00ff"');
  assert.equal(json("2024-02-29", Oid.date), '"2024-02-29"');
  assert.equal(json("0044-03-15 BC", Oid.date), '"-0043-03-15"');
  assert.equal(json("0001-01-01 BC", Oid.date), '"0000-01-01"');
  assert.equal(json("10000-01-01", Oid.date), '"+10000-01-01"');
  assert.equal(json("infinity", Oid.date), '"infinity"');
  assert.equal(json("13:45:00.5", Oid.time), '"13:45:00.5"');
  assert.equal(json("13:45:00+05:30", Oid.timetz), '"13:45:00+05:30"');
  assert.equal(json("13:45:00+00", Oid.timetz), '"13:45:00Z"');
  assert.equal(json("13:45:00.25-00:53:28", Oid.timetz), '"13:45:00.25-00:53:28"');
  assert.equal(json("2024-02-29 13:45:00.5", Oid.timestamp), '"2024-02-29T13:45:00.5"');
  assert.equal(json("0044-03-15 12:00:00 BC", Oid.timestamp), '"-0043-03-15T12:00:00"');
  assert.equal(json("2024-02-29 13:45:00.5+00", Oid.timestamptz), '"2024-02-29T13:45:00.5Z"');
  assert.equal(json("2024-02-29 03:45:00+05:30", Oid.timestamptz), '"2024-02-28T22:15:00Z"');
  assert.equal(json("-infinity", Oid.timestamptz), '"-infinity"');
  assert.equal(
    json({ months: 14, days: 3, microseconds: 14_706_500_000n }, Oid.interval),
    '"P1Y2M3DT4H5M6.5S"',
  );
  assert.equal(json({ months: 0, days: 0, microseconds: 0n }, Oid.interval), '"P0Y0M0DT0H0M0S"');
  assert.equal(
    json({ months: -14, days: 3, microseconds: -14_706_000_000n }, Oid.interval),
    '"P-1Y-2M3DT-4H-5M-6S"',
  );
  assert.equal(
    json(
      { months: 2147483647, days: 2147483647, microseconds: 9223372036854775807n },
      Oid.interval,
    ),
    '"infinity"',
  );
  assert.equal(json("0101", Oid.bit, {}, 4), '"0101"');
  assert.equal(json({ x: 1, y: -0 }, Oid.point), '{"x":1,"y":-0}');
  assert.equal(
    json(
      { empty: false, lower: 1n, upper: null, lowerInclusive: true, upperInclusive: false },
      Oid.int8range,
    ),
    '{"empty":false,"lower":1,"upper":null,"lowerInclusive":true,"upperInclusive":false}',
  );
  assert.equal(
    json({ lowerBounds: [0], values: [1n, null] }, 1016),
    '{"lowerBounds":[0],"values":[1,null]}',
  );
  assert.equal(
    json({ type: "hstore", binary: Uint8Array.from([1]) }, 99999),
    '{"type":"hstore","binary":"AQ=="}',
  );
  assert.equal(json({ type: "oid:99999", text: "x" }, 99999), '{"type":"oid:99999","text":"x"}');
});

Deno.test("json: Debezium defaults", () => {
  const d = DEBEZIUM_DEFAULTS;
  // Decimal with a declared scale: base64 of the unscaled two's complement.
  assert.equal(json("12.50", Oid.numeric, d, numericTypmod(10, 2)), '"BOI="');
  assert.equal(json("-1.00", Oid.numeric, d, numericTypmod(10, 2)), '"nA=="'); // -100 fits one byte
  assert.equal(json("0.00", Oid.numeric, d, numericTypmod(10, 2)), '"AA=="');
  assert.equal(json("128", Oid.numeric, d, numericTypmod(5, 0)), '"AIA="');
  assert.equal(json("12300", Oid.numeric, d, numericTypmod(5, -2)), '"ew=="');
  // Without a declared scale: VariableScaleDecimal, trailing zeros stripped.
  assert.equal(json("123.4500", Oid.numeric, d), '{"scale":2,"value":"MDk="}');
  assert.equal(json("100", Oid.numeric, d), '{"scale":0,"value":"ZA=="}');
  assert.equal(json("0.000", Oid.numeric, d), '{"scale":0,"value":"AA=="}');
  assert.equal(json("NaN", Oid.numeric, d), '"NaN"');
  assert.equal(json("-1234.56", Oid.money, d), '"/h3A"');
  assert.equal(json("-1234.56", Oid.money, { decimalHandling: "double" }), "-1234.56");
  assert.equal(json("NaN", Oid.numeric, { decimalHandling: "double" }), '"NaN"');

  assert.equal(json("1970-01-02", Oid.date, d), "1");
  assert.equal(json("0001-01-01", Oid.date, d), "-719162");
  assert.equal(json("0001-12-31 BC", Oid.date, d), "-719163");
  assert.equal(json("infinity", Oid.date, d), "2147483647");
  assert.equal(json("13:45:00.123456", Oid.time, d), "49500123456");
  assert.equal(json("13:45:00.123", Oid.time, d, 3), "49500123");
  assert.equal(json("13:45:00.123456", Oid.time, { ...d, timePrecision: "connect" }), "49500123");
  assert.equal(
    json("13:45:00.1", Oid.time, { ...d, timePrecision: "adaptive_time_microseconds" }, 1),
    "49500100000",
  );
  assert.equal(json("24:00:00", Oid.time, d), "86400000000");
  assert.equal(json("2024-02-29 13:45:00.5", Oid.timestamp, d), "1709214300500000");
  assert.equal(json("2024-02-29 13:45:00.5", Oid.timestamp, d, 3), "1709214300500");
  assert.equal(
    json("1969-12-31 23:59:59.9995", Oid.timestamp, { ...d, timePrecision: "connect" }),
    "-1",
  );
  assert.equal(json("infinity", Oid.timestamp, d), "9223372036825200000");
  assert.equal(json("-infinity", Oid.timestamp, d, 3), "-9223372036832400");
  assert.equal(json("294276-12-31 23:59:59.999999", Oid.timestamp, d), "9224318015999999999");
  assert.equal(
    json("2024-02-29 13:45:00.5+00", Oid.timestamptz, d),
    '"2024-02-29T13:45:00.500000Z"',
  );
  assert.equal(
    json("2024-02-29 13:45:00.5+00", Oid.timestamptz, d, 3),
    '"2024-02-29T13:45:00.500Z"',
  );
  assert.equal(json("2024-02-29 13:45:00+00", Oid.timestamptz, d, 0), '"2024-02-29T13:45:00Z"');
  assert.equal(json("infinity", Oid.timestamptz, d), '"infinity"');
  assert.equal(json("13:45:00+02", Oid.timetz, d), '"11:45:00Z"');
  assert.equal(json("01:00:00.5+02", Oid.timetz, d), '"23:00:00.5Z"');
  assert.equal(json("24:00:00+00", Oid.timetz, d), '"24:00:00Z"');

  assert.equal(
    json({ months: 14, days: 3, microseconds: 14_706_500_000n }, Oid.interval, d),
    "37091106500000",
  );
  assert.equal(
    json({ months: 0, days: -1, microseconds: 7_380_000_000n }, Oid.interval, d),
    "-79020000000",
  );

  assert.equal(json(Uint8Array.from([0, 255]), Oid.bytea, d), '"AP8="');
  assert.equal(json("1", Oid.bit, d, 1), "true");
  assert.equal(json("0", Oid.bit, d, 1), "false");
  assert.equal(json("0101", Oid.bit, d, 4), '"BQ=="');
  assert.equal(json("100000000", Oid.varbit, d), '"AAE="');
  assert.equal(json("000", Oid.varbit, d), '""');
  assert.equal(
    json({ x: 1, y: 2 }, Oid.point, d),
    '{"x":1,"y":2,"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAABA","srid":null}',
  );
  assert.equal(
    json(
      { empty: false, lower: 1, upper: 5, lowerInclusive: true, upperInclusive: false },
      Oid.int4range,
      d,
    ),
    '"[1,5)"',
  );
  assert.equal(
    json(
      {
        empty: false,
        lower: "2024-01-01 00:00:00+00",
        upper: "infinity",
        lowerInclusive: true,
        upperInclusive: false,
      },
      Oid.tstzrange,
      d,
    ),
    '"[\\"2024-01-01 00:00:00+00\\",infinity)"',
  );
  assert.equal(
    json(
      { empty: true, lower: null, upper: null, lowerInclusive: false, upperInclusive: false },
      Oid.daterange,
      d,
    ),
    '"empty"',
  );
  assert.equal(
    json(
      [
        { empty: false, lower: 1, upper: 3, lowerInclusive: true, upperInclusive: false },
        { empty: false, lower: 5, upper: null, lowerInclusive: true, upperInclusive: false },
      ],
      Oid.int4multirange,
      d,
    ),
    '"{[1,3),[5,)}"',
  );
});

Deno.test("json: catalog types need the registry", () => {
  const registry = new TypeRegistry();
  registry.register({
    oid: 16400,
    namespace: "public",
    name: "mood",
    kind: "enum",
    enumLabels: ["sad"],
  });
  registry.register({
    oid: 16410,
    namespace: "public",
    name: "price",
    kind: "domain",
    baseOid: Oid.numeric,
    baseTypeModifier: numericTypmod(10, 2),
  });
  registry.register({
    oid: 16420,
    namespace: "public",
    name: "item",
    kind: "composite",
    fields: [
      { name: "m", typeOid: 16400, typeModifier: -1 },
      { name: "p", typeOid: 16410, typeModifier: -1 },
      { name: "n", typeOid: Oid.int8, typeModifier: -1 },
      { name: "at", typeOid: Oid.timestamp, typeModifier: 3 },
    ],
  });
  registry.register({
    oid: 16421,
    namespace: "public",
    name: "_item",
    kind: "array",
    elementOid: 16420,
  });
  const value = [{ m: "sad", p: "12.50", n: 7n, at: "1970-01-01 00:00:01" }, null];
  assert.equal(
    JSON.stringify(toJsonValue(value, { oid: 16421, registry })),
    '[{"m":"sad","p":"12.50","n":7,"at":"1970-01-01T00:00:01"},null]',
  );
  assert.equal(
    JSON.stringify(toJsonValue(value, { oid: 16421, registry }, DEBEZIUM_DEFAULTS)),
    '[{"m":"sad","p":"BOI=","n":7,"at":1000},null]',
  );
  // After register(), cached encoders are rebuilt.
  registry.register({ oid: 16400, namespace: "public", name: "mood", kind: "base" });
  assert.equal(JSON.stringify(toJsonValue("x", { oid: 16400, registry })), '"x"');
});

Deno.test("json: jsonEncoder for the hot path", () => {
  const encode = jsonEncoder(Oid.timestamptz, -1, DEBEZIUM_DEFAULTS);
  assert.equal(encode("2000-01-01 00:00:00+00"), "2000-01-01T00:00:00.000000Z");
  assert.equal(encode(null), null);
  // A value of an unexpected shape is converted structurally, never dropped.
  assert.deepStrictEqual(jsonEncoder(Oid.date, -1, DEBEZIUM_DEFAULTS)(12), 12);
});

Deno.test("json: ISO timestamps from PostgreSQL's UTC text, fast path and full parse agree", () => {
  // Random instants over years 1000–9999 with 0–6 fraction digits, as PostgreSQL prints
  // them (trailing zeros dropped); the expected text is built from the parts.
  const random = seededRandom(20261125);
  const next = (n: number) => random.int(n);
  const pad = (n: number, width: number) => String(n).padStart(width, "0");
  const tz = jsonEncoder(Oid.timestamptz, -1);
  const local = jsonEncoder(Oid.timestamp, -1);
  for (let i = 0; i < 2000; i++) {
    const date = `${pad(1000 + next(9000), 4)}-${pad(1 + next(12), 2)}-${pad(1 + next(28), 2)}`;
    const time = `${pad(next(24), 2)}:${pad(next(60), 2)}:${pad(next(60), 2)}`;
    const micros = next(7) === 0 ? 0 : next(1_000_000);
    const fraction = micros === 0 ? "" : `.${pad(micros, 6)}`.replace(/0+$/, "");
    assert.equal(tz(`${date} ${time}${fraction}+00`), `${date}T${time}${fraction}Z`);
    assert.equal(local(`${date} ${time}${fraction}`), `${date}T${time}${fraction}`);
    // The same instant one hour east: the full parse, the same result.
    const hour = Number(time.slice(0, 2));
    if (hour < 23) {
      const east = `${pad(hour + 1, 2)}${time.slice(2)}`;
      assert.equal(tz(`${date} ${east}${fraction}+01`), `${date}T${time}${fraction}Z`);
    }
  }
  // Layouts the fast path leaves to the full parse.
  assert.equal(tz("0044-03-15 12:00:00+00 BC"), "-0043-03-15T12:00:00Z");
  assert.equal(tz("10000-01-01 00:00:00+00"), "+10000-01-01T00:00:00Z");
  assert.equal(local("2024-02-29 13:45:00.1234567"), "2024-02-29T13:45:00.123456");
});

Deno.test("twosComplement: Java's BigInteger.toByteArray() on both sides of every byte boundary and of the fast path's 2^47", () => {
  const cases: [bigint, number[]][] = [
    [0n, [0]],
    [1n, [1]],
    [-1n, [0xff]],
    [127n, [0x7f]],
    [128n, [0x00, 0x80]],
    [-128n, [0x80]],
    [-129n, [0xff, 0x7f]],
    [255n, [0x00, 0xff]],
    [32767n, [0x7f, 0xff]],
    [32768n, [0x00, 0x80, 0x00]],
    [-32769n, [0xff, 0x7f, 0xff]],
    [2n ** 23n, [0x00, 0x80, 0, 0]],
    [-(2n ** 31n) - 1n, [0xff, 0x7f, 0xff, 0xff, 0xff]],
    [2n ** 39n, [0x00, 0x80, 0, 0, 0, 0]],
    [2n ** 47n - 1n, [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff]],
    [-(2n ** 47n), [0x80, 0, 0, 0, 0, 0]],
    [2n ** 47n, [0x00, 0x80, 0, 0, 0, 0, 0]],
    [-(2n ** 47n) - 1n, [0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff]],
    [2n ** 63n, [0x00, 0x80, 0, 0, 0, 0, 0, 0, 0]],
  ];
  for (const [value, bytes] of cases) {
    assert.deepEqual([...twosComplement(value)], bytes, String(value));
  }
  // The fast path's base64 (numeric(12,2), 1 to 6 bytes: every padding) is the bytes' base64.
  const small = cases.filter(([value]) => value < 10n ** 14n && value > -(10n ** 14n));
  assert.deepEqual(new Set(small.map(([, bytes]) => bytes.length)), new Set([1, 2, 3, 4, 5, 6]));
  for (const [value, bytes] of small) {
    const abs = (value < 0n ? -value : value).toString().padStart(3, "0");
    const text = `${value < 0n ? "-" : ""}${abs.slice(0, -2)}.${abs.slice(-2)}`;
    assert.equal(
      json(text, Oid.numeric, DEBEZIUM_DEFAULTS, numericTypmod(16, 2)),
      JSON.stringify(new Uint8Array(bytes).toBase64()),
      text,
    );
  }
});

Deno.test("json: Debezium decimals of numeric(p,s) are the same on the fast path (≤ 14 digits) and past it", () => {
  const d = DEBEZIUM_DEFAULTS;
  const base64 = (unscaled: bigint) => JSON.stringify(twosComplement(unscaled).toBase64());
  for (const scale of [0, 2, 4]) {
    const values = [
      0n,
      1n,
      -1n,
      127n,
      128n,
      -129n,
      10n ** 13n,
      10n ** 14n - 1n,
      -(10n ** 14n) + 1n,
    ];
    values.push(10n ** 14n, 10n ** 17n + 3n, -(10n ** 18n)); // past the fast path
    for (let i = 0; i < 300; i++) {
      values.push(BigInt(Math.floor((Math.random() - 0.5) * 10 ** Math.floor(Math.random() * 15))));
    }
    for (const unscaled of values) {
      const digits = (unscaled < 0n ? -unscaled : unscaled).toString().padStart(scale + 1, "0");
      const text = (unscaled < 0n ? "-" : "") +
        (scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`);
      assert.equal(
        json(text, Oid.numeric, d, numericTypmod(20, scale)),
        base64(unscaled),
        `${text} at scale ${scale}`,
      );
    }
  }
  // Fewer fraction digits than the scale (rescaled by the general path).
  assert.equal(json("12.5", Oid.numeric, d, numericTypmod(10, 2)), base64(1250n));
});
