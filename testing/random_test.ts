import assert from "node:assert/strict";
import { seededRandom } from "./random.ts";

Deno.test("random: mulberry32's sequence, which recorded seeds replay", () => {
  // decoder/types/testdata/vectors.json was generated from this sequence (seed 1).
  const random = seededRandom(1);
  assert.deepEqual([0, 1, 2, 3].map(() => random.uint32()), [
    2693262067,
    11749833,
    2265367787,
    4213581821,
  ]);
  assert.equal(seededRandom(1).next(), 2693262067 / 2 ** 32);
});

Deno.test("random: the same seed gives the same numbers; another seed others", () => {
  const draw = (seed: number) => {
    const random = seededRandom(seed);
    return Array.from({ length: 20 }, () => random.int(1000));
  };
  assert.deepEqual(draw(99), draw(99));
  assert.notDeepEqual(draw(99), draw(100));
});

Deno.test("random: helpers stay in their ranges", () => {
  const random = seededRandom(0x5eed);
  const seen = new Set<number>();
  for (let i = 0; i < 10_000; i++) {
    const x = random.next();
    assert(x >= 0 && x < 1);
    const n = random.int(7);
    assert(Number.isInteger(n) && n >= 0 && n < 7);
    const m = random.between(-3, 3);
    assert(Number.isInteger(m) && m >= -3 && m <= 3);
    seen.add(m);
  }
  assert.equal(seen.size, 7);
  assert.equal(random.pick(["a", "b", "c"]).length, 1);
  assert.throws(() => random.pick([]), RangeError);
  assert.equal(random.bytes(0).length, 0);
  assert.equal(random.bytes(16).length, 16);
});
