/**
 * Fuzzes every decoder with random and mutated input. The property: each call returns a value
 * or throws a DecodeError, never another exception, and never takes long (no hang, no huge
 * allocation from a forged count). The PRNG is seeded; a failure names the seed and input.
 */

import assert from "node:assert/strict";
import { DecodeError } from "../../errors.ts";
import { BUILTIN_TYPES } from "./oids.ts";
import { TypeRegistry } from "./registry.ts";
import type { VectorFile } from "./testdata/_expected.ts";
import { type Random, seededRandom } from "../../testing/random.ts";

const SEED = 0x7e57_da7a;
const SLOW_MS = 250;

const file = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/vectors.json", import.meta.url)),
) as VectorFile;

function registry(): TypeRegistry {
  const r = new TypeRegistry();
  for (const info of file.types) r.register(info);
  return r;
}

function allOids(): number[] {
  const oids = new Set<number>();
  for (const type of BUILTIN_TYPES) {
    oids.add(type.oid);
    if (type.arrayOid !== 0) oids.add(type.arrayOid);
  }
  for (const info of file.types) oids.add(info.oid);
  return [...oids];
}

function property(where: () => string, fn: () => unknown): void {
  const started = performance.now();
  try {
    fn();
  } catch (error) {
    if (!(error instanceof DecodeError)) {
      throw new Error(`${where()}: threw ${String(error)}`, { cause: error });
    }
    assert.match(error.message, /^Cannot decode .+ message at offset -?\d+: /, where());
  }
  const elapsed = performance.now() - started;
  if (elapsed > SLOW_MS) throw new Error(`${where()}: took ${elapsed.toFixed(0)} ms`);
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
      property(() => `seed ${SEED} oid ${oid} bytes ${bytes.toHex()}`, () => decode(bytes));
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
        () => decode(text),
      );
    }
  }
});
