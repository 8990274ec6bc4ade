import assert from "node:assert/strict";
import type { Lsn } from "./lsn.ts";
import { BufferWriter } from "./_writer.ts";

Deno.test("BufferWriter: every method writes into the grown buffer when it has to grow", () => {
  // A 6-byte start: the type byte and length take 5, so each write below grows the buffer.
  const writes: [string, (w: BufferWriter) => void, number[]][] = [
    ["uint8", (w) => w.uint8(0xab), [0xab]],
    ["int16", (w) => w.int16(-2), [0xff, 0xfe]],
    ["int32", (w) => w.int32(0x01020304), [1, 2, 3, 4]],
    ["int64", (w) => w.int64(-1n), [255, 255, 255, 255, 255, 255, 255, 255]],
    ["lsn", (w) => w.lsn(0x0102030405060708n as Lsn), [1, 2, 3, 4, 5, 6, 7, 8]],
    ["bytes", (w) => w.bytes(Uint8Array.of(9, 8, 7)), [9, 8, 7]],
  ];
  for (const [name, write, expected] of writes) {
    const writer = new BufferWriter(6);
    writer.int32(0); // fills the start past its end
    write(writer);
    const message = writer.flush(0x51);
    assert.deepEqual([...message.subarray(9)], expected, name);
  }
});
