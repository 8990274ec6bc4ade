/**
 * Events to bytes: JSON lines through a UTF-8 byte buffer (`json.ts`, `json_writer.ts`) and
 * the terminal format (`pretty.ts`). Formats know `events.ts` and `decoder/`, never a sink,
 * so any transport can reuse them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsonWriter } from "./mod.ts";
 * const out = new JsonWriter();
 * out.value({ id: 1 });
 * assert.equal(new TextDecoder().decode(out.bytes()), '{"id":1}');
 * ```
 *
 * @module
 */

export * from "./json.ts";
export * from "./json_writer.ts";
export * from "./pretty.ts";
