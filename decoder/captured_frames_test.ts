import assert from "node:assert/strict";
import { DecodeError } from "../errors.ts";
import { PgoutputDecoder } from "./pgoutput.ts";
import { TransactionAssembler } from "../source/assembler.ts";
import { readCapturedFrames } from "../tests/testdata/_captured.ts";
import { type Random, seededRandom } from "../testing/random.ts";
import type { Lsn } from "./lsn.ts";

const frames = readCapturedFrames();

Deno.test("captured frames from PostgreSQL 17 decode in order, every message type present", () => {
  const decoder = new PgoutputDecoder({ protoVersion: 4 });
  const counts = new Map<string, number>();
  for (const frame of frames) {
    assert.equal(decoder.inStreamBlock, frame.inStreamBlock);
    const message = decoder.decode(frame.data);
    counts.set(message.type, (counts.get(message.type) ?? 0) + 1);
  }
  for (
    const type of [
      "Begin",
      "Commit",
      "Relation",
      "Type",
      "Insert",
      "Update",
      "Delete",
      "Truncate",
      "Message",
      "StreamStart",
      "StreamStop",
      "StreamCommit",
      "StreamAbort",
      "BeginPrepare",
      "Prepare",
      "CommitPrepared",
      "RollbackPrepared",
    ]
  ) {
    assert.ok((counts.get(type) ?? 0) > 0, `no ${type} in the capture`);
  }
});

Deno.test("captured frames assemble into transactions without errors", () => {
  const assembler = new TransactionAssembler({ protoVersion: 4 });
  let commits = 0;
  let changes = 0;
  for (const frame of frames) {
    for (const item of assembler.push(0n as Lsn, frame.data)) {
      if (item.kind === "commit") commits++;
      if (item.kind === "change") changes++;
    }
  }
  assert.ok(commits >= 10);
  assert.ok(changes > 100);
  assert.equal(assembler.openStreamedTransactions, 0);
});

function mutate(data: Uint8Array, random: Random): Uint8Array {
  const bytes = data.slice();
  switch (random.int(5)) {
    case 0: // flip a few bits
      for (let i = 0, n = 1 + random.int(4); i < n && bytes.length > 0; i++) {
        bytes[random.int(bytes.length)]! ^= 1 << random.int(8);
      }
      return bytes;
    case 1: // truncate
      return bytes.subarray(0, random.int(bytes.length));
    case 2: { // insert random bytes
      const at = random.int(bytes.length + 1);
      const extra = random.bytes(1 + random.int(8));
      const out = new Uint8Array(bytes.length + extra.length);
      out.set(bytes.subarray(0, at));
      out.set(extra, at);
      out.set(bytes.subarray(at), at + extra.length);
      return out;
    }
    case 3: { // corrupt a 32-bit field with an extreme value (lengths, counts)
      if (bytes.length < 5) return bytes;
      const at = random.int(bytes.length - 4);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      view.setInt32(at, random.pick([0x7fffffff, -1, -2, 0x10000, 0]));
      return bytes;
    }
    default: // change the message tag
      if (bytes.length > 0) bytes[0] = random.int(256);
      return bytes;
  }
}

Deno.test("mutated captured frames either decode or raise DecodeError", () => {
  const seed = Number(Deno.env.get("SPILLWAY_FUZZ_SEED") ?? 20261125);
  const random = seededRandom(seed);
  let errors = 0;
  for (let round = 0; round < 30_000; round++) {
    const frame = random.pick(frames);
    const decoder = new PgoutputDecoder({ protoVersion: frame.protoVersion });
    if (frame.inStreamBlock) decoder.decode(new Uint8Array([0x53, 0, 0, 0, 1, 1])); // enter a block
    const input = mutate(frame.data, random);
    try {
      decoder.decode(input);
    } catch (error) {
      if (!(error instanceof DecodeError)) {
        throw new Error(`seed ${seed} round ${round}: ${error} for bytes ${Array.from(input)}`);
      }
      assert.match(error.message, /^Cannot decode \S+ message at offset \d+: /);
      errors++;
    }
  }
  assert.ok(errors > 1000, `only ${errors} mutations were rejected`);
});
