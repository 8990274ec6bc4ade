/**
 * Test-only assertions shared by the decoder unit tests. Kept apart from `_frames.ts`, which
 * shares no code with `decoder/`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DecodeError } from "../../errors.ts";

/** Runs `fn`, expecting a DecodeError (whose message matches `pattern`, if given); returns it. */
export function decodeError(fn: () => unknown, pattern?: RegExp): DecodeError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof DecodeError, `expected DecodeError, got ${String(caught)}`);
  if (pattern !== undefined) assert.match(caught.message, pattern);
  return caught;
}

/**
 * The size of a decoded message or value in units (for the fuzzers' bounds): one per value, plus one per string character, byte,
 * array slot (holes included) and object field. Counting stops once it passes `budget`, so a
 * forged count of 2^31 slots is reported without walking them.
 */
export function units(value: unknown, budget: number): number {
  let count = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0 && count <= budget) {
    const next = pending.pop();
    count++;
    if (typeof next === "string") {
      count += next.length;
    } else if (ArrayBuffer.isView(next)) {
      count += next.byteLength;
    } else if (Array.isArray(next)) {
      count += next.length;
      if (count <= budget) { for (const item of next) pending.push(item); }
    } else if (typeof next === "object" && next !== null) {
      const fields = Object.values(next);
      count += fields.length;
      if (count <= budget) { for (const field of fields) pending.push(field); }
    }
  }
  return count;
}
