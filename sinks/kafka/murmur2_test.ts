/** Java's murmur2 against the Kafka client's independent port of it. */

import assert from "node:assert/strict";
import { murmur2 as clientMurmur2 } from "npm:@platformatic/kafka@2.12.1";
import { Buffer } from "node:buffer";
import { keyHash, murmur2 } from "./murmur2.ts";

Deno.test("murmur2 equals the Kafka client's BigInt port of Java's for every tail length", () => {
  // Deterministic pseudo-random keys of 0 to 64 bytes, several of each length.
  let state = 12345;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 24;
  for (let length = 0; length <= 64; length++) {
    for (let n = 0; n < 20; n++) {
      const key = new Uint8Array(length).map(() => next());
      assert.equal(murmur2(key), clientMurmur2(Buffer.from(key)), `key ${key}`);
    }
  }
});

Deno.test("keyHash is non-negative: Java's toPositive", () => {
  const text = new TextEncoder();
  for (let i = 0; i < 1000; i++) {
    const hash = keyHash(text.encode(`{"id":${i}}`));
    assert.ok(hash >= 0);
    assert.equal(hash, murmur2(text.encode(`{"id":${i}}`)) & 0x7fffffff);
  }
});
