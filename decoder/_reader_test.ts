import assert from "node:assert/strict";
import { DecodeError } from "../errors.ts";
import { BufferReader, decodeUtf8, MAX_STRING_LENGTH } from "./_reader.ts";

Deno.test("BufferReader.utf8: a text value longer than a string can be is a DecodeError saying so", () => {
  const length = MAX_STRING_LENGTH + 1;
  const bytes = new Uint8Array(length + 4);
  new DataView(bytes.buffer).setInt32(0, length);
  bytes.fill(0x61, 4);
  const reader = new BufferReader();
  reader.reset(bytes, "Insert");
  assert.throws(
    () => reader.utf8(reader.int32("text length"), "text value"),
    (error) =>
      error instanceof DecodeError &&
      /Insert message at offset 4: text value: 536870889 bytes of UTF-8 make a string longer than the 536870888 characters/
        .test(error.message),
  );
  // Multi-byte text still decodes as before.
  const wide = new Uint8Array(3 * 1024).fill(0xe2);
  for (let i = 0; i < wide.length; i += 3) wide.set([0xe2, 0x82, 0xac], i); // "€"
  assert.equal(decodeUtf8(wide, 0, wide.length), "€".repeat(1024));
});
