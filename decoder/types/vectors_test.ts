/**
 * Every value recorded from a real server in `testdata/vectors.json` must decode to the same
 * value from its text output and from its binary (`send`) bytes, and to the expected value
 * where the case states one. Run `testdata/make_vectors.ts` to record the file again.
 */

import assert from "node:assert/strict";
import { TypeRegistry } from "./registry.ts";
import type { PgValue } from "./values.ts";
import { decodeExpected, type VectorFile } from "./testdata/_expected.ts";

const file = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/vectors.json", import.meta.url)),
) as VectorFile;

function registry(): TypeRegistry {
  const registry = new TypeRegistry();
  for (const info of file.types) registry.register(info);
  return registry;
}

function decodeBoth(
  registry: TypeRegistry,
  oid: number,
  typmod: number,
  text: string,
  hex: string,
) {
  const fromText = registry.decoder(oid, typmod, "text")(text);
  const fromBinary = registry.decoder(oid, typmod, "binary")(Uint8Array.fromHex(hex));
  return { fromText, fromBinary };
}

function fround(value: PgValue): PgValue {
  return typeof value === "number" ? Math.fround(value) : value;
}

Deno.test("vectors: the file covers every catalog type it declares", () => {
  const reg = registry();
  assert.deepEqual(reg.missing(file.vectors.map((v) => v.oid)), []);
  assert.ok(file.vectors.length > 1000, `only ${file.vectors.length} vectors`);
});

const byType = new Map<string, VectorFile["vectors"]>();
for (const vector of file.vectors) {
  const group = vector.label.startsWith("random ") ? `${vector.type} (random)` : vector.type;
  let list = byType.get(group);
  if (list === undefined) byType.set(group, list = []);
  list.push(vector);
}

for (const [type, vectors] of byType) {
  Deno.test(`vectors: ${type}: text and binary decode to the same value`, () => {
    const reg = registry();
    for (const v of vectors) {
      const { fromText, fromBinary } = decodeBoth(reg, v.oid, v.typmod, v.text, v.hex);
      const context = `${v.label}: text ${JSON.stringify(v.text.slice(0, 200))}, hex ${
        v.hex.slice(0, 200)
      }`;
      if (v.binaryExpected !== undefined) {
        // A known difference between the formats (reg* types): each side has its own value.
        assert.deepStrictEqual(fromBinary, decodeExpected(v.binaryExpected), context);
      } else {
        assert.deepStrictEqual(fromBinary, fromText, context);
      }
      if (v.expected !== undefined) {
        const expected = decodeExpected(v.expected);
        if (v.float4) {
          assert.equal(fround(fromText), expected, context);
        } else {
          assert.deepStrictEqual(fromText, expected, context);
        }
      }
      for (const [setting, text] of Object.entries(v.variants ?? {})) {
        assert.deepStrictEqual(
          reg.decoder(v.oid, v.typmod, "text")(text),
          fromText,
          `${context}: with ${setting}, text ${JSON.stringify(text)}`,
        );
      }
    }
  });
}
