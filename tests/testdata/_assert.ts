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
