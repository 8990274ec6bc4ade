/** JsonWriter's take(): records handed out for keeps share buffers and are never written over. */

import assert from "node:assert/strict";
import { JsonWriter, TAKE_CHUNK_BYTES } from "./json_writer.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("JsonWriter.take: taken records keep their bytes while the writer goes on, through growth and new buffers", () => {
  const w = new JsonWriter(64);
  const taken: [string, Uint8Array][] = [];
  // Small records, a few larger than the writer's first buffer, and one larger than a chunk.
  for (let i = 0; i < 2000; i++) {
    w.reset();
    const size = i === 700 ? TAKE_CHUNK_BYTES * 2 : i % 97 === 0 ? 5000 : 40;
    const value = `${i}:${"x".repeat(size)}`;
    w.string(value);
    taken.push([JSON.stringify(value), w.take()]);
    // Something written and thrown away between records (reset) must not touch them either.
    w.raw("garbage that is reset");
  }
  for (const [expected, bytes] of taken) assert.equal(text(bytes), expected);
  // Neighbours share buffers: far fewer buffers than records.
  const buffers = new Set(taken.map(([, bytes]) => bytes.buffer));
  assert.ok(buffers.size < 200, `${buffers.size} buffers for ${taken.length} records`);
});

Deno.test("JsonWriter: reset, length and bytes count from what take() handed out", () => {
  const w = new JsonWriter(16);
  w.raw("first");
  assert.equal(text(w.take()), "first");
  assert.equal(w.length, 0);
  w.raw("second");
  assert.equal(w.length, 6);
  assert.equal(w.text(), "second");
  w.reset();
  assert.equal(w.length, 0);
  assert.equal(w.text(), "");
});

Deno.test("JsonWriter.lsn: PostgreSQL's text form at every digit count and at the edges", () => {
  const cases: bigint[] = [0n, 0xfn, 0x10n, 0xffn, 0xabcdefn, 0xffff_ffffn, 0x1_0000_0000n];
  for (let shift = 0n; shift < 53n; shift += 3n) cases.push((1n << shift) + 0x9n);
  cases.push(BigInt(Number.MAX_SAFE_INTEGER), 0xffff_ffff_ffff_ffffn);
  for (const value of cases) {
    const writer = new JsonWriter();
    writer.lsn(value);
    const expected = `${(value >> 32n).toString(16)}/${(value & 0xffff_ffffn).toString(16)}`
      .toUpperCase();
    assert.equal(writer.text(), expected, `lsn ${value}`);
  }
});

Deno.test("JsonWriter.integer and bigint write what String() writes, without strings", () => {
  const out = new JsonWriter();
  const numbers = [0, -0, 7, -7, 9, 10, 99, 100, 1234567, -987654321, 2 ** 53 - 1, -(2 ** 53 - 1)];
  // Around the split at 10^8 (a low part with leading zeros) and the epoch in µs.
  numbers.push(99_999_999, 100_000_000, 100_000_001, 1_000_000_007, 1_733_475_600_000_123);
  for (let i = 0; i < 2000; i++) numbers.push(Math.floor((Math.random() - 0.5) * 2 ** 53));
  for (const n of numbers) {
    out.reset();
    out.integer(n);
    assert.equal(out.text(), String(n));
  }
  for (const n of [1.5, 2 ** 60, -1e21]) {
    out.reset();
    out.integer(n);
    assert.equal(out.text(), String(n));
  }
  for (const b of [0n, 42n, -42n, 2n ** 53n - 1n, 2n ** 53n, -(2n ** 64n), 2n ** 64n - 1n]) {
    out.reset();
    out.bigint(b);
    assert.equal(out.text(), String(b));
  }
});
