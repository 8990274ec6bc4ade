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

Deno.test("decodeUtf8: every length on each side of the ASCII paths, with a non-ASCII character at several places and last, decodes as TextDecoder does, invalid bytes included", () => {
  const decoder = new TextDecoder("utf-8");
  const encoder = new TextEncoder();
  for (let length = 0; length <= 80; length++) {
    const ascii = Array.from({ length }, (_, i) => String.fromCharCode(32 + (i * 7) % 95)).join("");
    const padded = encoder.encode(`<${ascii}>`);
    assert.equal(decodeUtf8(padded, 1, padded.length - 1), ascii, `ASCII of ${length} bytes`);
    const places = new Set<number>();
    for (let at = 0; at < length; at += Math.max(1, length >> 2)) places.add(at);
    if (length > 0) places.add(length - 1);
    for (const at of places) {
      const mixed = ascii.slice(0, at) + "é" + ascii.slice(at + 1);
      const bytes = encoder.encode(`<${mixed}>`);
      assert.equal(decodeUtf8(bytes, 1, bytes.length - 1), decoder.decode(bytes.subarray(1, -1)));
      assert.equal(decodeUtf8(bytes, 1, bytes.length - 1), mixed);
      const broken = bytes.slice(1, -1);
      broken[at] = 0xff;
      const decoded = decodeUtf8(broken, 0, broken.length);
      assert.equal(decoded, decoder.decode(broken), `0xff at ${at}`);
      assert.ok(decoded.includes("\ufffd"));
      // A lone invalid byte in ASCII.
      const lone = encoder.encode(ascii);
      lone[at] = 0xff;
      assert.equal(decodeUtf8(lone, 0, lone.length), decoder.decode(lone), `lone 0xff at ${at}`);
    }
  }
  // A shorter string after a longer one is not left with the longer one's tail.
  const long = encoder.encode("x".repeat(60));
  const short = encoder.encode("abcdefghijklmnop");
  assert.equal(decodeUtf8(long, 0, long.length), "x".repeat(60));
  assert.equal(decodeUtf8(short, 0, short.length), "abcdefghijklmnop");
});
