/**
 * Fuzzes every decoder with random and mutated input. The property: each call returns a value
 * or throws a DecodeError, never another exception, and the value it returns is no bigger than
 * its input justifies (no huge allocation, and no long loop building one, from a forged count).
 * The bound counts the value's units (characters, array slots, bytes, fields), not the time a
 * call takes, so a loaded machine cannot fail it. The PRNG is seeded; a failure names the seed
 * and input.
 */

import { units } from "../../tests/testdata/_assert.ts";
import assert from "node:assert/strict";
import { DecodeError } from "../../errors.ts";
import { BUILTIN_TYPES, Oid } from "./oids.ts";
import { TypeRegistry } from "./registry.ts";
import type { VectorFile } from "./testdata/_expected.ts";
import { type Random, seededRandom } from "../../testing/random.ts";

const SEED = 0x7e57_da7a;
/**
 * The size bound of a decoded value (see {@linkcode units}): this many units per unit of input
 * (byte, or character of text), plus a fixed allowance, plus for types that may hold a numeric
 * an allowance per 8 input bytes (a numeric's header): its weight (≤ 32,767) and dscale
 * (≤ 0x3fff) may legitimately ask for 4 × 32,768 integer and 16,383 fraction digits. The
 * smallest forged count the mutations write (0x00100000) is above the bound of every input of
 * a type without numerics, and the containers of numerics (arrays, ranges, records) decode with
 * the same code as those.
 */
const UNITS_PER_INPUT = 8;
const UNITS_FIXED = 64;
const NUMERIC_UNITS = 4 * 32_768 + 16_384;

const file = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/vectors.json", import.meta.url)),
) as VectorFile;

function registry(): TypeRegistry {
  const r = new TypeRegistry();
  for (const info of file.types) r.register(info);
  return r;
}

/** OIDs whose values may hold a numeric: numeric, and every type built on it, and records. */
function numericOids(): Set<number> {
  const found = new Set<number>([Oid.numeric, Oid.record]);
  for (let grew = true; grew;) {
    grew = false;
    const add = (oid: number, parts: (number | undefined)[]) => {
      if (found.has(oid) || !parts.some((part) => part !== undefined && found.has(part))) return;
      found.add(oid);
      grew = true;
    };
    for (const type of BUILTIN_TYPES) {
      add(type.oid, [type.kind === "range" ? type.subtypeOid : undefined]);
      add(type.oid, [type.kind === "multirange" ? type.rangeOid : undefined]);
      if (type.arrayOid !== 0) add(type.arrayOid, [type.oid]);
    }
    for (const info of file.types) {
      const fields = (info.fields ?? []).map((field) => field.typeOid);
      add(info.oid, [info.elementOid, info.baseOid, info.subtypeOid, info.rangeOid, ...fields]);
    }
  }
  return found;
}

const NUMERIC_OIDS = numericOids();

function allOids(): number[] {
  const oids = new Set<number>();
  for (const type of BUILTIN_TYPES) {
    oids.add(type.oid);
    if (type.arrayOid !== 0) oids.add(type.arrayOid);
  }
  for (const info of file.types) oids.add(info.oid);
  return [...oids];
}

/**
 * `fn` (one decoder call for type `oid` on `inputLength` bytes or characters) throws nothing but
 * a DecodeError, and returns a value within the size bound (see {@linkcode UNITS_PER_INPUT}).
 */
function property(
  where: () => string,
  oid: number,
  inputLength: number,
  fn: () => unknown,
): void {
  let value: unknown;
  try {
    value = fn();
  } catch (error) {
    if (!(error instanceof DecodeError)) {
      throw new Error(`${where()}: threw ${String(error)}`, { cause: error });
    }
    assert.match(error.message, /^Cannot decode .+ message at offset -?\d+: /, where());
    return;
  }
  const numerics = NUMERIC_OIDS.has(oid) ? Math.floor(inputLength / 8) : 0;
  const budget = UNITS_PER_INPUT * inputLength + UNITS_FIXED + NUMERIC_UNITS * numerics;
  const size = units(value, budget);
  if (size > budget) {
    throw new Error(`${where()}: a value of more than ${budget} units from ${inputLength} input`);
  }
}

function mutate(bytes: Uint8Array, random: Random): Uint8Array {
  const out = Uint8Array.from(bytes);
  switch (random.int(5)) {
    case 0: // flip some bytes
      for (let k = random.int(4) + 1; k > 0 && out.length > 0; k--) {
        out[random.int(out.length)] = random.int(256);
      }
      return out;
    case 1: // truncate
      return out.subarray(0, random.int(out.length + 1));
    case 2: { // extend with junk
      const longer = new Uint8Array(out.length + random.int(8) + 1);
      longer.set(out);
      for (let i = out.length; i < longer.length; i++) longer[i] = random.int(256);
      return longer;
    }
    case 3: { // forge a large or negative 32-bit count somewhere
      if (out.length < 4) return out;
      const at = random.int(out.length - 3);
      const forged = [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0x00, 0x10, 0x00, 0x00];
      const pick = random.int(3) * 4;
      for (let k = 0; k < 4; k++) out[at + k] = forged[pick + k]!;
      return out;
    }
    default: // swap two bytes
      if (out.length > 1) {
        const i = random.int(out.length);
        const j = random.int(out.length);
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
  }
}

Deno.test("fuzz: random bytes into every binary decoder", () => {
  const random = seededRandom(SEED);
  const reg = registry();
  const oids = allOids();
  for (const oid of oids) {
    const decode = reg.decoder(oid, -1, "binary");
    for (let i = 0; i < 150; i++) {
      const bytes = random.bytes(random.int(48));
      property(
        () => `seed ${SEED} oid ${oid} bytes ${bytes.toHex()}`,
        oid,
        bytes.length,
        () => decode(bytes),
      );
    }
  }
});

Deno.test("fuzz: mutated recorded values into the binary decoders", () => {
  const random = seededRandom(SEED + 1);
  const reg = registry();
  for (const vector of file.vectors) {
    if (vector.hex.length > 4000) continue;
    const decode = reg.decoder(vector.oid, vector.typmod, "binary");
    const bytes = Uint8Array.fromHex(vector.hex);
    for (let i = 0; i < 12; i++) {
      const input = mutate(bytes, random);
      property(
        () => `seed ${SEED + 1} ${vector.label} bytes ${input.toHex()}`,
        vector.oid,
        input.length,
        () => decode(input),
      );
    }
  }
});

const SYNTAX = [..."{}()[]<>,;\"\\'NULnul01-+.:e@PYMDTHS ", "infinity", "empty", "BC", "é"];

Deno.test("fuzz: random and mutated text into every text decoder", () => {
  const random = seededRandom(SEED + 2);
  const reg = registry();
  for (const oid of allOids()) {
    const decode = reg.decoder(oid, -1, "text");
    for (let i = 0; i < 100; i++) {
      const text = Array.from({ length: random.int(24) }, () => random.pick(SYNTAX)).join("");
      property(
        () => `seed ${SEED + 2} oid ${oid} text ${JSON.stringify(text)}`,
        oid,
        text.length,
        () => decode(text),
      );
    }
  }
  for (const vector of file.vectors) {
    if (vector.text.length > 2000) continue;
    const decode = reg.decoder(vector.oid, vector.typmod, "text");
    for (let i = 0; i < 8; i++) {
      const chars = [...vector.text];
      const at = random.int(chars.length + 1);
      if (random.int(2) === 0) chars.splice(at, 1);
      else chars.splice(at, 0, random.pick(SYNTAX));
      const text = chars.join("");
      property(
        () => `seed ${SEED + 2} ${vector.label} text ${JSON.stringify(text)}`,
        vector.oid,
        text.length,
        () => decode(text),
      );
    }
  }
});
