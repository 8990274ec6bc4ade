/** Unit tests of the type registry: built-ins, catalog types, unknown OIDs, dependencies. */

import assert from "node:assert/strict";
import { DecodeError } from "../../errors.ts";
import { BUILTIN_TYPES, Oid } from "./oids.ts";
import { type TypeInfo, TypeRegistry } from "./registry.ts";

const MOOD: TypeInfo = {
  oid: 16400,
  namespace: "public",
  name: "mood",
  kind: "enum",
  enumLabels: ["sad", "happy"],
};
const MOOD_ARRAY: TypeInfo = {
  oid: 16399,
  namespace: "public",
  name: "_mood",
  kind: "array",
  elementOid: 16400,
};
const POSINT: TypeInfo = {
  oid: 16410,
  namespace: "public",
  name: "posint",
  kind: "domain",
  baseOid: Oid.int4,
};
const INTARR: TypeInfo = {
  oid: 16411,
  namespace: "public",
  name: "intarr",
  kind: "domain",
  baseOid: 1007,
};
const PAIR: TypeInfo = {
  oid: 16420,
  namespace: "public",
  name: "pair",
  kind: "composite",
  fields: [
    { name: "m", typeOid: 16400, typeModifier: -1 },
    { name: "n", typeOid: 16410, typeModifier: -1 },
    { name: "tags", typeOid: 1009, typeModifier: -1 },
  ],
};
const FLOATRANGE: TypeInfo = {
  oid: 16430,
  namespace: "public",
  name: "floatrange",
  kind: "range",
  subtypeOid: Oid.float8,
};
const FLOATMULTI: TypeInfo = {
  oid: 16431,
  namespace: "public",
  name: "floatmultirange",
  kind: "multirange",
  rangeOid: 16430,
};

function hex(text: string): Uint8Array {
  return Uint8Array.fromHex(text.replaceAll(" ", ""));
}

Deno.test("registry: every built-in type and its array decode in both formats", () => {
  const registry = new TypeRegistry();
  for (const type of BUILTIN_TYPES) {
    for (const oid of [type.oid, type.arrayOid]) {
      if (oid === 0) continue;
      assert.ok(registry.has(oid), `${type.name} ${oid}`);
      assert.deepEqual(registry.missing([oid]), [], `${type.name} ${oid}`);
    }
  }
  assert.deepStrictEqual(registry.decodeText(1016, "{1,NULL}"), [1n, null]);
  assert.deepStrictEqual(registry.decodeText(Oid.int4multirange, "{[1,3)}"), [
    { empty: false, lower: 1, upper: 3, lowerInclusive: true, upperInclusive: false },
  ]);
});

Deno.test("registry: unknown OIDs decode to their text or bytes, never throw", () => {
  const registry = new TypeRegistry();
  assert.deepStrictEqual(registry.decodeText(99999, "a=>b"), { type: "oid:99999", text: "a=>b" });
  assert.deepStrictEqual(registry.decodeBinary(99999, hex("0102")), {
    type: "oid:99999",
    binary: hex("0102"),
  });
  registry.register({ oid: 99999, namespace: "public", name: "hstore", kind: "base" });
  assert.deepStrictEqual(registry.decodeText(99999, "a=>b"), { type: "hstore", text: "a=>b" });
  // An array of an unknown type still parses as an array.
  registry.register({
    oid: 99998,
    namespace: "public",
    name: "_hstore",
    kind: "array",
    elementOid: 99999,
  });
  assert.deepStrictEqual(registry.decodeText(99998, '{"a=>b",NULL}'), [
    { type: "hstore", text: "a=>b" },
    null,
  ]);
  assert.deepStrictEqual(registry.decodeText(88888, "{1}"), { type: "oid:88888", text: "{1}" });
});

Deno.test("registry: missing() follows dependencies until everything is known", () => {
  const registry = new TypeRegistry();
  assert.deepEqual(registry.missing([Oid.int4, 1007, PAIR.oid]), [PAIR.oid]);
  registry.register(PAIR);
  assert.deepEqual(registry.missing([PAIR.oid]), [MOOD.oid, POSINT.oid]);
  registry.register(MOOD);
  registry.register(POSINT);
  assert.deepEqual(registry.missing([PAIR.oid]), []);
  assert.deepEqual(registry.missing([FLOATMULTI.oid]), [FLOATMULTI.oid]);
  registry.register(FLOATMULTI);
  assert.deepEqual(registry.missing([FLOATMULTI.oid]), [FLOATRANGE.oid]);
  registry.register(FLOATRANGE);
  assert.deepEqual(registry.missing([FLOATMULTI.oid, MOOD_ARRAY.oid]), [MOOD_ARRAY.oid]);
});

Deno.test("registry: enums, domains, composites, ranges decode in both formats", () => {
  const registry = new TypeRegistry();
  for (const info of [MOOD, MOOD_ARRAY, POSINT, INTARR, PAIR, FLOATRANGE, FLOATMULTI]) {
    registry.register(info);
  }
  const both = (oid: number, text: string, binary: string) => {
    const fromText = registry.decoder(oid, -1, "text")(text);
    assert.deepStrictEqual(registry.decoder(oid, -1, "binary")(hex(binary)), fromText);
    return fromText;
  };
  assert.equal(both(MOOD.oid, "happy", "6861707079"), "happy");
  assert.equal(both(POSINT.oid, "5", "00000005"), 5);
  assert.deepStrictEqual(
    both(
      INTARR.oid,
      "{1,2}",
      "00000001 00000000 00000017 00000002 00000001 00000004 00000001 00000004 00000002",
    ),
    [1, 2],
  );
  assert.deepStrictEqual(
    both(
      PAIR.oid,
      '(sad,7,"{a,NULL}")',
      "00000003 00004010 00000003 736164 0000401a 00000004 00000007 000003f1 0000001d " +
        "00000001 00000001 00000019 00000002 00000001 00000001 61 ffffffff",
    ),
    { m: "sad", n: 7, tags: ["a", null] },
  );
  assert.deepStrictEqual(both(FLOATRANGE.oid, "[1.5,)", "12 00000008 3ff8000000000000"), {
    empty: false,
    lower: 1.5,
    upper: null,
    lowerInclusive: true,
    upperInclusive: false,
  });
  assert.deepStrictEqual(both(FLOATMULTI.oid, "{}", "00000000"), []);
  assert.throws(() => registry.decodeText(PAIR.oid, "(sad,7)"), DecodeError);
  assert.throws(() => registry.decodeText(POSINT.oid, "x"), DecodeError);
});

Deno.test("registry: columnDecoder takes text or bytes", () => {
  const registry = new TypeRegistry();
  const decode = registry.columnDecoder(Oid.int8, -1);
  assert.equal(decode("42"), 42n);
  assert.equal(decode(hex("000000000000002a")), 42n);
  assert.equal(registry.columnDecoder(Oid.int8), decode, "cached per OID");
});

Deno.test("registry: decoders made before register() keep their behaviour", () => {
  const registry = new TypeRegistry();
  const before = registry.decoder(MOOD.oid, -1, "text");
  assert.deepStrictEqual(before("sad"), { type: "oid:16400", text: "sad" });
  const generation = registry.generation;
  registry.register(MOOD);
  assert.equal(registry.generation, generation + 1);
  assert.deepStrictEqual(before("sad"), { type: "oid:16400", text: "sad" });
  assert.equal(registry.decoder(MOOD.oid, -1, "text")("sad"), "sad");
});

Deno.test("registry: register() of the same description changes nothing; a changed one does", () => {
  const registry = new TypeRegistry();
  assert.equal(registry.register(PAIR), true);
  const generation = registry.generation;
  const decoder = registry.columnDecoder(PAIR.oid);
  assert.equal(registry.register(structuredClone(PAIR)), false);
  assert.equal(registry.generation, generation, "no new generation: renderers keep their caches");
  assert.equal(registry.columnDecoder(PAIR.oid), decoder, "decoders stay cached");
  const wider = {
    ...PAIR,
    fields: [...PAIR.fields!, { name: "x", typeOid: 23, typeModifier: -1 }],
  };
  assert.equal(registry.register(wider), true);
  assert.equal(registry.generation, generation + 1);
  assert.equal(registry.register({ ...MOOD, enumLabels: ["sad"] }), true);
  assert.equal(registry.register({ ...MOOD, enumLabels: ["sad", "happy"] }), true);
});

Deno.test("registry: a composite value that does not fit and an unlisted enum label are suspects", () => {
  const registry = new TypeRegistry();
  for (const info of [MOOD, POSINT, PAIR]) registry.register(info);
  assert.deepStrictEqual(registry.decodeText(PAIR.oid, "(sad,1,{a})"), {
    m: "sad",
    n: 1,
    tags: ["a"],
  });
  assert.equal(registry.hasSuspects, false);
  // ALTER TYPE pair ADD ATTRIBUTE …: one field more than the description has.
  assert.throws(() => registry.decodeText(PAIR.oid, "(sad,1,{a},7)"), DecodeError);
  const fourFields = hex("00000004" + "00004010 00000003 736164".repeat(4));
  assert.throws(() => registry.decodeBinary(PAIR.oid, fourFields), DecodeError);
  assert.deepEqual(registry.takeSuspects(), [PAIR.oid]);
  // ALTER TYPE mood ADD VALUE 'calm': the label decodes as it is, and is reported once.
  assert.equal(registry.decodeText(MOOD.oid, "calm"), "calm");
  assert.equal(registry.decodeText(MOOD.oid, "calm"), "calm");
  assert.equal(registry.decodeBinary(MOOD.oid, hex("63616c6d")), "calm");
  assert.deepEqual(registry.takeSuspects(), [MOOD.oid]);
  assert.equal(registry.decodeText(MOOD.oid, "calm"), "calm");
  assert.deepEqual(registry.takeSuspects(), []);
  // Once registered with the label, it is no longer a suspect.
  registry.register({ ...MOOD, enumLabels: [...MOOD.enumLabels!, "calm"] });
  assert.equal(registry.decodeText(MOOD.oid, "calm"), "calm");
  assert.equal(registry.hasSuspects, false);
});

Deno.test("registry: register() rejects incomplete descriptions", () => {
  const registry = new TypeRegistry();
  const base = { oid: 1, namespace: "public", name: "x" };
  assert.throws(() => registry.register({ ...base, kind: "array" }), TypeError);
  assert.throws(() => registry.register({ ...base, kind: "domain" }), TypeError);
  assert.throws(() => registry.register({ ...base, kind: "composite" }), TypeError);
  assert.throws(() => registry.register({ ...base, kind: "range" }), TypeError);
  assert.throws(() => registry.register({ ...base, kind: "multirange" }), TypeError);
});

Deno.test("registry: a self-referencing description cannot recurse forever", () => {
  const registry = new TypeRegistry();
  registry.register({ oid: 20000, namespace: "x", name: "loop", kind: "domain", baseOid: 20001 });
  registry.register({
    oid: 20001,
    namespace: "x",
    name: "_loop",
    kind: "array",
    elementOid: 20000,
  });
  assert.deepEqual(registry.missing([20000]), []);
  assert.deepStrictEqual(registry.decodeText(20000, "{}"), []);
  assert.deepStrictEqual(registry.decodeText(20000, "{{}}"), [[]]);
  assert.throws(() => registry.decodeText(20000, "{{1}}"), DecodeError);
});

Deno.test("registry: anonymous records use the wire OIDs in binary, text in text", () => {
  const registry = new TypeRegistry();
  assert.deepStrictEqual(
    registry.decodeBinary(
      Oid.record,
      hex("00000002 00000017 00000004 00000001 00000019 00000001 61"),
    ),
    { f1: 1, f2: "a" },
  );
  assert.deepStrictEqual(registry.decodeText(Oid.record, "(1,a)"), { f1: "1", f2: "a" });
});

Deno.test("registry: reg* types print names in text but send OIDs in binary", () => {
  // The one built-in mismatch between the formats: regclass_out prints the (possibly
  // schema-qualified) name, regclasssend the OID. Resolving names needs the catalog.
  const registry = new TypeRegistry();
  assert.equal(registry.decodeText(Oid.regclass, "pg_class"), "pg_class");
  assert.equal(registry.decodeBinary(Oid.regclass, hex("000004eb")), 1259);
  assert.equal(registry.decodeText(Oid.regclass, "1259"), 1259);
});

Deno.test("registry: a field named __proto__ is an ordinary field", () => {
  const registry = new TypeRegistry();
  registry.register({
    oid: 30000,
    namespace: "x",
    name: "odd",
    kind: "composite",
    fields: [{ name: "__proto__", typeOid: Oid.text, typeModifier: -1 }],
  });
  for (
    const value of [
      registry.decodeText(30000, "(x)"),
      registry.decodeBinary(30000, hex("00000001 00000019 00000001 78")),
    ]
  ) {
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
    assert.deepEqual(Object.keys(value as object), ["__proto__"]);
    assert.equal(Object.getOwnPropertyDescriptor(value, "__proto__")?.value, "x");
  }
});

Deno.test("registry: a composite altered since it was registered fails loudly", () => {
  const registry = new TypeRegistry();
  registry.register({
    oid: 30001,
    namespace: "x",
    name: "pair",
    kind: "composite",
    fields: [{ name: "a", typeOid: Oid.int4, typeModifier: -1 }],
  });
  // The server now says the field is int8 (ALTER TYPE … ALTER ATTRIBUTE … TYPE int8).
  assert.throws(
    () => registry.decodeBinary(30001, hex("00000001 00000014 00000008 0000000000000001")),
    (e: unknown) => e instanceof DecodeError && /reload the type/.test(e.message),
  );
  assert.throws(() => registry.decodeText(30001, "(1,2)"), DecodeError);
});
