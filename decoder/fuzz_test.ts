/**
 * Fuzzes the pure decoders with random and mutated bytes. The property: every
 * call returns a value or throws a DecodeError; never another exception, never
 * a hang. The PRNG is seeded; a failure reports the seed, iteration and input.
 */

import { units } from "../tests/testdata/_assert.ts";
import assert from "node:assert/strict";
import { FrameParser } from "./backend.ts";
import { DecodeError } from "../errors.ts";
import { PgoutputDecoder, type ProtoVersion } from "./pgoutput.ts";
import { parseCopyData, parseXLogData } from "./replication.ts";
import * as f from "../tests/testdata/_frames.ts";
import { type Random, seededRandom } from "../testing/random.ts";

const SEED = 0x5eed_2024;
const ITERATIONS = 20_000;
const MAX_LENGTH = 200;
/** The size bound of a decoded message (see {@linkcode assertBounded}). */
const UNITS_PER_BYTE = 8;
const UNITS_FIXED = 64;
/** FrameParser's bound on the memory it holds for a frame (see its `reservedBytes`). */
const RESERVE_SLACK = 64 * 1024;

function hex(bytes: Uint8Array): string {
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * A message decoded from `inputLength` bytes has at most `UNITS_PER_BYTE × inputLength +
 * UNITS_FIXED` units: every count in the protocol (columns, relations, bytes) is paid for by
 * input, so a decoder that allocates or loops by a forged count fails here, however fast.
 */
function assertBounded(where: () => string, message: unknown, inputLength: number): void {
  const budget = UNITS_PER_BYTE * inputLength + UNITS_FIXED;
  const size = units(message, budget);
  if (size > budget) {
    assert.fail(`${where()}: a message of more than ${budget} units from ${inputLength} bytes`);
  }
}

/** Runs `fn`; anything thrown that is not a DecodeError fails with enough to reproduce it. */
function property(where: () => string, fn: () => void): void {
  try {
    fn();
  } catch (error) {
    if (error instanceof DecodeError) {
      assert.match(error.message, /^Cannot decode .+ message at offset \d+: /);
      return;
    }
    throw new Error(`${where()}: threw ${String(error)}`, { cause: error });
  }
}

const PGOUTPUT_TAGS = [..."BCORYIUDTMSEcAbPKrp"].map((char) => char.charCodeAt(0));

/** A decoder of a random version, inside a stream block half the time when v2+. */
function randomDecoder(random: Random): PgoutputDecoder {
  const version = (1 + random.int(4)) as ProtoVersion;
  const decoder = new PgoutputDecoder({ protoVersion: version });
  if (version >= 2 && random.int(2) === 0) {
    decoder.decode(f.streamStart(1 + random.int(1000), true));
  }
  return decoder;
}

/** What `parse` returns, or the name and message type of the DecodeError it throws. */
function outcome(parse: () => unknown): unknown {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    return { error: error.name, messageType: error.messageType };
  }
}

/** Pushes `bytes` in 1–3 random chunks and parses every CopyData frame down to pgoutput. */
function throughFrames(random: Random, bytes: Uint8Array, decoder: PgoutputDecoder): void {
  const parser = new FrameParser();
  const cuts = [random.int(bytes.length + 1), random.int(bytes.length + 1)].sort((a, b) => a - b);
  const chunks = [
    bytes.subarray(0, cuts[0]),
    bytes.subarray(cuts[0], cuts[1]),
    bytes.subarray(cuts[1]),
  ];
  // The stream's path over the same chunks: each(), and XLogData read in place.
  const inPlace = new FrameParser();
  for (const chunk of chunks) {
    const seen: { code: number; body: Uint8Array }[] = [];
    let failure: unknown = null;
    try {
      inPlace.each(chunk, (code, at, start, end) => {
        seen.push({ code, body: at.slice(start, end) });
        if (code === 0x64 && end > start && at[start] === 0x77) {
          // The same XLogData, or the same kind of error for the same message type.
          assert.deepEqual(
            outcome(() => parseXLogData(at, start, end)),
            outcome(() => parseCopyData(at.subarray(start, end))),
          );
        }
      });
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error; // an assertion of the handler's
      failure = error;
    }
    let frames: ReturnType<FrameParser["push"]>;
    try {
      frames = parser.push(chunk);
    } catch (error) {
      // The same frames came out of each() before it threw the same kind of error.
      assert.ok(failure !== null && (failure as Error).name === (error as Error).name);
      throw error;
    }
    assert.deepEqual(
      seen.map((s) => [s.code, [...s.body]]),
      frames.map((f) => [f.code, [...f.body]]),
    );
    // A frame that announces a huge length gets memory only for the bytes that came.
    assert.ok(
      parser.reservedBytes <= 2 * parser.pendingBytes + RESERVE_SLACK,
      `${parser.reservedBytes} bytes reserved for ${parser.pendingBytes} pending: ${hex(bytes)}`,
    );
    for (const frame of frames) {
      if (frame.code !== 0x64 || frame.body.byteLength === 0) continue;
      const copy = parseCopyData(frame.body);
      if (copy.type === "XLogData") {
        const message = decoder.decode(copy.data);
        assertBounded(() => `frames ${hex(bytes)}`, message, copy.data.byteLength);
      }
    }
  }
}

/** Valid pgoutput payloads of every type, with the decoder state each needs. */
function validPayloads(): { bytes: Uint8Array; inBlock: boolean }[] {
  const prep = { prepareLsn: 1n, endLsn: 2n, prepareTime: 3n, xid: 4, gid: "gid" };
  const columns: f.ColumnSpec[] = [
    { flags: 1, name: "id", typeOid: 23, typmod: -1 },
    { flags: 0, name: "name", typeOid: 25, typmod: -1 },
    { flags: 0, name: "blob", typeOid: 17, typmod: -1 },
  ];
  const row: f.Value[] = [{ t: "1" }, { t: "名前" }, { b: new Uint8Array([0, 1, 2]) }];
  const plain = [
    f.begin({ finalLsn: 1n, commitTime: 2n, xid: 3 }),
    f.commit({ commitLsn: 1n, endLsn: 2n, commitTime: 3n }),
    f.origin({ lsn: 1n, name: "origin" }),
    f.relation({ relid: 1, namespace: "public", name: "t", replident: "d", columns }),
    f.typeMsg({ typeOid: 16500, namespace: "", name: "int4" }),
    f.insert(1, row),
    f.update(1, { new: [{ t: "1" }, null, "u"] }),
    f.update(1, { old: { kind: "K", tuple: [{ t: "1" }, null, null] }, new: row }),
    f.update(1, { old: { kind: "O", tuple: row }, new: row }),
    f.deleteMsg(1, { kind: "K", tuple: [{ t: "1" }, null, null] }),
    f.deleteMsg(1, { kind: "O", tuple: row }),
    f.truncate([1, 2, 3], 3),
    f.message({ transactional: true, lsn: 9n, prefix: "p", content: new Uint8Array([1, 2]) }),
    f.streamStart(5, true),
    f.streamCommit({ xid: 5, commitLsn: 1n, endLsn: 2n, commitTime: 3n }),
    f.streamAbort(5, 6),
    f.streamAbort(5, 6, { parallel: { abortLsn: 7n, abortTime: 8n } }),
    f.beginPrepare(prep),
    f.prepare(prep),
    f.streamPrepare(prep),
    f.commitPrepared({ commitLsn: 1n, endLsn: 2n, commitTime: 3n, xid: 4, gid: "gid" }),
    f.rollbackPrepared({
      prepareEndLsn: 1n,
      rollbackEndLsn: 2n,
      prepareTime: 3n,
      rollbackTime: 4n,
      xid: 5,
      gid: "gid",
    }),
  ];
  const inBlock = [
    f.relation({ relid: 1, namespace: "s", name: "t", replident: "f", columns }, { xid: 5 }),
    f.insert(1, row, { xid: 6 }),
    f.update(1, { old: { kind: "O", tuple: row }, new: row }, { xid: 5 }),
    f.deleteMsg(1, { kind: "K", tuple: [{ t: "1" }, null, null] }, { xid: 5 }),
    f.truncate([1], 0, { xid: 5 }),
    f.message({ transactional: true, lsn: 9n, prefix: "", content: new Uint8Array(0) }, { xid: 5 }),
    f.streamStop(),
  ];
  return [
    ...plain.map((bytes) => ({ bytes, inBlock: false })),
    ...inBlock.map((bytes) => ({ bytes, inBlock: true })),
  ];
}

const INTERESTING_INT32 = [
  0,
  1,
  3,
  4,
  5,
  0x7f,
  0x80,
  0xff,
  0x7fff,
  0x8000,
  0xffff,
  0x7fffffff,
  0x80000000,
  0xffffffff,
];

/** One random mutation: bit flips, cut, insertion, deletion or an Int16/Int32 overwrite. */
function mutate(random: Random, input: Uint8Array): Uint8Array {
  const bytes = input.slice();
  switch (random.int(6)) {
    case 0: { // flip 1–4 bits
      const flips = 1 + random.int(4);
      for (let i = 0; i < flips && bytes.length > 0; i++) {
        bytes[random.int(bytes.length)]! ^= 1 << random.int(8);
      }
      return bytes;
    }
    case 1: // truncate
      return bytes.slice(0, random.int(bytes.length + 1));
    case 2: { // insert 1–8 random bytes
      const at = random.int(bytes.length + 1);
      return f.concat(
        bytes.subarray(0, at),
        random.bytes(1 + random.int(8)),
        bytes.subarray(at),
      );
    }
    case 3: { // delete 1–8 bytes
      const at = random.int(bytes.length + 1);
      return f.concat(bytes.subarray(0, at), bytes.subarray(at + 1 + random.int(8)));
    }
    case 4: { // overwrite an Int32 (length and count fields) with an edge value
      if (bytes.length < 4) return bytes;
      const at = random.int(bytes.length - 3);
      const value = random.pick(INTERESTING_INT32);
      new DataView(bytes.buffer).setUint32(at, value >>> 0);
      return bytes;
    }
    default: { // overwrite an Int16 (column counts) with an edge value
      if (bytes.length < 2) return bytes;
      const at = random.int(bytes.length - 1);
      const value = random.pick(INTERESTING_INT32);
      new DataView(bytes.buffer).setUint16(at, value & 0xffff);
      return bytes;
    }
  }
}

Deno.test("fuzz: random bytes into PgoutputDecoder, parseCopyData and FrameParser", () => {
  const random = seededRandom(SEED);
  for (let i = 0; i < ITERATIONS; i++) {
    const bytes = random.bytes(random.int(MAX_LENGTH + 1));
    // Half the time start with a real tag so the message bodies get exercised.
    if (bytes.length > 0 && random.int(2) === 0) {
      bytes[0] = PGOUTPUT_TAGS[random.int(PGOUTPUT_TAGS.length)]!;
    }
    const where = () => `seed ${random.seed} iteration ${i} input ${hex(bytes)}`;
    property(where, () => {
      const message = randomDecoder(random).decode(bytes);
      assert.equal(typeof message.type, "string");
      assertBounded(where, message, bytes.length);
    });
    property(where, () => void parseCopyData(bytes));
    property(where, () => throughFrames(random, bytes, randomDecoder(random)));
  }
});

Deno.test("fuzz: mutated valid pgoutput messages and replication frames", () => {
  const random = seededRandom(SEED ^ 0x0bad_f00d);
  const payloads = validPayloads();
  // Every valid payload decodes before mutation, so mutations start from real frames.
  for (const { bytes, inBlock } of payloads) {
    const decoder = new PgoutputDecoder({ protoVersion: 4 });
    if (inBlock) decoder.decode(f.streamStart(5, true));
    decoder.decode(bytes);
  }
  let decoded = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const { bytes: original, inBlock } = payloads[random.int(payloads.length)]!;
    const mutated = mutate(random, original);
    const where = () =>
      `seed ${random.seed} iteration ${i} original ${hex(original)} mutated ${hex(mutated)}`;
    property(where, () => {
      const decoder = new PgoutputDecoder({ protoVersion: (1 + random.int(4)) as ProtoVersion });
      if (inBlock && decoder.protoVersion >= 2) decoder.decode(f.streamStart(5, true));
      assertBounded(where, decoder.decode(mutated), mutated.length);
      decoded++;
    });

    // The same payload inside XLogData inside CopyData, next to a keepalive, with the
    // frame bytes (including the CopyData length field) mutated.
    const stream = f.concat(
      f.copyData(f.xlogData(1n, 2n, 3n, original)),
      f.copyData(f.keepalive(4n, 5n, random.int(2) === 1)),
      f.backendFrame("Z", f.utf8("I")),
    );
    const mutatedStream = mutate(random, stream);
    property(
      () => `seed ${random.seed} iteration ${i} stream ${hex(mutatedStream)}`,
      () => {
        const decoder = new PgoutputDecoder({ protoVersion: 4 });
        if (inBlock) decoder.decode(f.streamStart(5, true));
        throughFrames(random, mutatedStream, decoder);
      },
    );
  }
  assert.ok(decoded > 0, "some mutations should still decode");
});
