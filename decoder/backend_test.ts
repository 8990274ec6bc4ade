import assert from "node:assert/strict";
import {
  type Frame,
  FrameParser,
  FrameTooLargeError,
  MAX_FRAME_BYTES,
  parseAuthentication,
  parseDataRow,
  parseNotice,
  parseRowDescription,
} from "./backend.ts";
import { decodeError } from "../tests/testdata/_assert.ts";
import { DecodeError } from "../errors.ts";
import * as f from "../tests/testdata/_frames.ts";

/** Frames as plain data, copied, so later pushes cannot change what we compare. */
function plain(frames: Iterable<Frame>): { code: number; body: number[] }[] {
  return [...frames].map((frame) => ({ code: frame.code, body: [...frame.body] }));
}

/** A stream of several frames: empty body, small, CopyData with XLogData, larger. */
function sampleStream(): { bytes: Uint8Array; frames: { code: number; body: number[] }[] } {
  const bodies: [string, Uint8Array][] = [
    ["Z", f.utf8("I")],
    ["c", new Uint8Array(0)],
    ["d", f.xlogData(0x10n, 0x20n, 3n, f.insert(1, [{ t: "héllo" }, null]))],
    ["d", f.keepalive(0x30n, 4n, true)],
    ["N", f.noticeBody([["S", "NOTICE"], ["M", "x".repeat(300)]])],
    ["C", f.utf8("COPY 0\0")],
  ];
  const frames = bodies.map(([code, body]) => ({ code: code.charCodeAt(0), body: [...body] }));
  return { bytes: f.concat(...bodies.map(([code, body]) => f.backendFrame(code, body))), frames };
}

Deno.test("FrameParser: several frames in one chunk", () => {
  const { bytes, frames } = sampleStream();
  const parser = new FrameParser();
  assert.deepEqual(plain(parser.push(bytes)), frames);
  assert.equal(parser.pendingBytes, 0);
});

Deno.test("FrameParser: one split at every byte boundary gives the same frames", () => {
  const { bytes, frames } = sampleStream();
  for (let cut = 0; cut <= bytes.length; cut++) {
    const parser = new FrameParser();
    const got = [
      ...plain(parser.push(bytes.slice(0, cut))),
      ...plain(parser.push(bytes.slice(cut))),
    ];
    assert.deepEqual(got, frames, `split at ${cut}`);
    assert.equal(parser.pendingBytes, 0);
  }
});

Deno.test("FrameParser: one byte per chunk gives the same frames", () => {
  const { bytes, frames } = sampleStream();
  const parser = new FrameParser();
  const got: { code: number; body: number[] }[] = [];
  for (let i = 0; i < bytes.length; i++) {
    got.push(...plain(parser.push(bytes.slice(i, i + 1))));
    const consumed = got.reduce((sum, frame) => sum + 5 + frame.body.length, 0);
    assert.equal(parser.pendingBytes, i + 1 - consumed, `after byte ${i}`);
  }
  assert.deepEqual(got, frames);
  assert.equal(parser.pendingBytes, 0);
});

Deno.test("FrameParser: two splits at every pair of boundaries give the same frames", () => {
  const bytes = f.concat(
    f.backendFrame("S", f.utf8("a\0b\0")),
    f.backendFrame("Z", f.utf8("T")),
    f.backendFrame("c"),
  );
  const expected = plain(new FrameParser().push(bytes));
  assert.equal(expected.length, 3);
  for (let a = 0; a <= bytes.length; a++) {
    for (let b = a; b <= bytes.length; b++) {
      const parser = new FrameParser();
      const got = [
        ...plain(parser.push(bytes.slice(0, a))),
        ...plain(parser.push(bytes.slice(a, b))),
        ...plain(parser.push(bytes.slice(b))),
      ];
      assert.deepEqual(got, expected, `splits at ${a}, ${b}`);
    }
  }
});

Deno.test("FrameParser: frames already yielded keep their bytes after later pushes", () => {
  const parser = new FrameParser();
  const first = f.concat(f.backendFrame("d", f.utf8("abc")), f.backendFrame("d", f.utf8("de")));
  const frames = [...parser.push(first.slice(0, 12))]; // whole first frame, part of the second
  assert.equal(frames.length, 1);
  const more = [...parser.push(first.slice(12))];
  assert.equal(more.length, 1);
  assert.deepEqual([...frames[0]!.body], [...f.utf8("abc")]);
  assert.deepEqual([...more[0]!.body], [...f.utf8("de")]);
});

Deno.test("FrameParser: a partial header waits without error", () => {
  const parser = new FrameParser();
  assert.deepEqual([...parser.push(new Uint8Array([0x5a, 0, 0]))], []);
  assert.equal(parser.pendingBytes, 3);
  assert.deepEqual(plain(parser.push(new Uint8Array([0, 5, 0x49]))), [{
    code: 0x5a,
    body: [0x49],
  }]);
});

Deno.test("FrameParser: invalid lengths are DecodeErrors", () => {
  for (const length of [0, 3, -1, -2147483648]) {
    const bytes = new f.Bytes().byte("Z").int32(length).done();
    const error = decodeError(
      () => [...new FrameParser().push(bytes)],
      new RegExp(`backend frame message at offset 0: invalid length ${length}`),
    );
    assert.equal(error.messageType, "backend frame");
  }
  // A bad length after a good frame reports that frame's offset.
  const bytes = f.concat(f.backendFrame("Z", f.utf8("I")), new f.Bytes().byte("Z").int32(2).done());
  const error = decodeError(() => [...new FrameParser().push(bytes)]);
  assert.equal(error.offset, 6);
});

Deno.test("FrameParser: a frame over the limit is a FrameTooLargeError with the frame's first bytes, however it arrives", () => {
  const body = new Uint8Array(200).map((_, i) => i);
  const frame = f.backendFrame("d", body);
  const limit = frame.byteLength - 1;
  // Whole in one chunk; split inside the header; split after the header.
  for (const cut of [frame.byteLength, 3, 40]) {
    const parser = new FrameParser({ maxFrameBytes: limit });
    let error: unknown = null;
    try {
      parser.push(frame.subarray(0, cut));
      parser.push(frame.subarray(cut));
    } catch (caught) {
      error = caught;
    }
    assert.ok(error instanceof FrameTooLargeError, `cut at ${cut}: ${error}`);
    assert.equal(error.size, frame.byteLength);
    assert.equal(error.limit, limit);
    assert.match(
      error.message,
      new RegExp(`frame of ${frame.byteLength} bytes .* limit of ${limit}`),
    );
    // The first bytes that had arrived: at least the header, up to 64.
    assert.ok(error.head.byteLength >= 5 && error.head.byteLength <= 64);
    assert.deepEqual([...error.head], [...frame.subarray(0, error.head.byteLength)]);
    // Nothing was reserved for it.
    assert.equal(parser.reservedBytes, 0);
  }
  // Frames before it in the same chunk come out first; the next push throws.
  const parser = new FrameParser({ maxFrameBytes: limit });
  const small = f.backendFrame("d", f.utf8("R"));
  assert.deepEqual(plain(parser.push(f.concat(small, frame))), [{ code: 0x64, body: [0x52] }]);
  assert.throws(() => parser.push(new Uint8Array(1)), FrameTooLargeError);
  // The default limit: PostgreSQL's largest message and a little more, never 2 GiB.
  assert.equal(MAX_FRAME_BYTES, 2 ** 30 + 64);
  const huge = new f.Bytes().byte("d").int32(2 ** 31 - 1).done();
  assert.throws(() => new FrameParser().push(huge), FrameTooLargeError);
  // At the limit is fine.
  assert.equal(new FrameParser({ maxFrameBytes: frame.byteLength }).push(frame).length, 1);
});

Deno.test("FrameParser: after a frame over the limit, every push throws the same error", () => {
  const frame = f.backendFrame("d", new Uint8Array(200));
  const limit = frame.byteLength - 1;
  // The refused frame's body is not read as frames: it holds a whole, valid frame here.
  const inner = f.backendFrame("Z", f.utf8("I"));
  const body = f.concat(inner, new Uint8Array(200 - inner.byteLength));
  const bigFrame = f.concat(new f.Bytes().byte("d").int32(4 + body.byteLength).done(), body);
  assert.equal(bigFrame.byteLength, frame.byteLength);
  // Thrown at once: the header whole in a chunk, or completed by the next one.
  for (const cut of [5, 3, 40, bigFrame.byteLength]) {
    const parser = new FrameParser({ maxFrameBytes: limit });
    let error: unknown = null;
    try {
      parser.push(bigFrame.subarray(0, cut));
      parser.push(bigFrame.subarray(cut));
    } catch (caught) {
      error = caught;
    }
    assert.ok(error instanceof FrameTooLargeError, `cut at ${cut}: ${error}`);
    for (const more of [bigFrame.subarray(5), inner, new Uint8Array(0)]) {
      assert.throws(() => parser.push(more), (thrown) => thrown === error, `cut at ${cut}`);
    }
    assert.equal(parser.failure, error);
    assert.equal(parser.pendingBytes, 0);
    assert.equal(parser.reservedBytes, 0);
  }
  // After whole frames of the same chunk: they come out, and the parser is failed at once,
  // so a caller need not wait for more bytes to learn it.
  assert.equal(new FrameParser().failure, null);
  const parser = new FrameParser({ maxFrameBytes: limit });
  assert.deepEqual(plain(parser.push(f.concat(inner, bigFrame))), [{ code: 0x5a, body: [0x49] }]);
  const failure = parser.failure;
  assert.ok(failure instanceof FrameTooLargeError);
  assert.equal(failure.size, bigFrame.byteLength);
  for (const more of [bigFrame.subarray(5), inner]) {
    assert.throws(() => parser.push(more), (thrown) => thrown === failure);
  }
  // The same after a frame completed from an earlier chunk.
  const split = new FrameParser({ maxFrameBytes: limit });
  assert.deepEqual(split.push(inner.subarray(0, 3)), []);
  assert.equal(split.push(f.concat(inner.subarray(3), bigFrame)).length, 1);
  assert.ok(split.failure instanceof FrameTooLargeError);
  // An invalid length fails the parser too.
  const invalid = new FrameParser();
  const bad = new f.Bytes().byte("Z").int32(2).done();
  const error = decodeError(() => invalid.push(bad));
  assert.equal(invalid.failure, error);
  assert.throws(() => invalid.push(inner), (thrown) => thrown === error);
});

/** The frames `each` hands on for `chunks`, copied as they come. */
function eachFrames(parser: FrameParser, chunks: Uint8Array[]): { code: number; body: number[] }[] {
  const got: { code: number; body: number[] }[] = [];
  for (const chunk of chunks) {
    parser.each(chunk, (code, bytes, start, end) => {
      got.push({ code, body: [...bytes.subarray(start, end)] });
    });
  }
  return got;
}

Deno.test("FrameParser.each: the frames of push, in place, however the stream is cut", () => {
  const { bytes, frames } = sampleStream();
  assert.deepEqual(eachFrames(new FrameParser(), [bytes]), frames);
  for (let a = 0; a <= bytes.length; a += 7) {
    for (let b = a; b <= bytes.length; b += 11) {
      const parser = new FrameParser();
      const got = eachFrames(parser, [bytes.slice(0, a), bytes.slice(a, b), bytes.slice(b)]);
      assert.deepEqual(got, frames, `splits at ${a}, ${b}`);
      assert.equal(parser.pendingBytes, 0);
    }
  }
  // Whole frames are the chunk itself, at their offsets: no copy.
  const seen: Uint8Array[] = [];
  new FrameParser().each(bytes, (_code, chunk) => seen.push(chunk));
  assert.ok(seen.length === frames.length && seen.every((chunk) => chunk === bytes));
});

Deno.test("FrameParser.each: a frame over the limit, or a handler's error, fails the parser after the frames before it", () => {
  const inner = f.backendFrame("Z", f.utf8("I"));
  const big = f.backendFrame("d", new Uint8Array(200));
  const parser = new FrameParser({ maxFrameBytes: big.byteLength - 1 });
  const codes: number[] = [];
  assert.throws(
    () => parser.each(f.concat(inner, big), (code) => codes.push(code)),
    FrameTooLargeError,
  );
  assert.deepEqual(codes, [0x5a]);
  assert.ok(parser.failure instanceof FrameTooLargeError);
  assert.throws(() => parser.each(inner, () => {}), (thrown) => thrown === parser.failure);
  assert.throws(() => parser.push(inner), (thrown) => thrown === parser.failure);
  // What a handler throws passes through, and the parser, which lost the rest of the chunk
  // (half of the next frame here), is failed: it no longer knows where a frame starts.
  const handled = new FrameParser();
  const refusal = new Error("refused");
  const next = f.backendFrame("E", f.utf8("x".repeat(40)));
  assert.throws(() =>
    handled.each(f.concat(inner, next.subarray(0, 3)), () => {
      throw refusal;
    }), (thrown) => thrown === refusal);
  const lost = handled.failure;
  assert.ok(lost instanceof DecodeError && /handler failed \(refused\)/.test(lost.message));
  assert.throws(() => handled.each(next.subarray(3), () => {}), (thrown) => thrown === lost);
  assert.throws(() => handled.push(inner), (thrown) => thrown === lost);
});

Deno.test("FrameParser: length 4 is an empty body", () => {
  assert.deepEqual(plain(new FrameParser().push(f.backendFrame("c"))), [{ code: 0x63, body: [] }]);
});

// ---------------------------------------------------------------------------

Deno.test("parseNotice: every known field", () => {
  const body = f.noticeBody([
    ["S", "ERROR"],
    ["V", "ERROR"],
    ["C", "42P01"],
    ["M", 'relation "nope" does not exist'],
    ["D", "some detail"],
    ["H", "some hint"],
    ["P", "15"],
    ["W", "PL/pgSQL function"],
    ["s", "public"],
    ["t", "nope"],
    ["c", "col"],
    ["n", "nope_pkey"],
    ["F", "parse_relation.c"],
    ["L", "1392"],
    ["R", "parserOpenTable"],
  ]);
  assert.deepEqual(parseNotice(body), {
    severity: "ERROR",
    code: "42P01",
    message: 'relation "nope" does not exist',
    detail: "some detail",
    hint: "some hint",
    position: "15",
    where: "PL/pgSQL function",
    schema: "public",
    table: "nope",
    column: "col",
    constraint: "nope_pkey",
  });
});

Deno.test("parseNotice: only the localized severity (S) is used when V is absent", () => {
  const notice = parseNotice(f.noticeBody([["S", "WARNING"], ["C", "01000"], ["M", "careful"]]));
  assert.deepEqual(notice, { severity: "WARNING", code: "01000", message: "careful" });
});

Deno.test("parseNotice: V wins over a localized S", () => {
  const notice = parseNotice(f.noticeBody([["S", "AVISO"], ["V", "WARNING"], ["C", "01000"], [
    "M",
    "x",
  ]]));
  assert.equal(notice.severity, "WARNING");
});

Deno.test("parseNotice: V ERROR is kept when S is localized", () => {
  const notice = parseNotice(f.noticeBody([["S", "FEHLER"], ["V", "ERROR"], ["C", "42P01"], [
    "M",
    "x",
  ]]));
  assert.equal(notice.severity, "ERROR");
});

Deno.test("parseNotice: no fields gives defaults; missing terminator is a DecodeError", () => {
  assert.deepEqual(parseNotice(new Uint8Array([0])), {
    severity: "ERROR",
    code: "XX000",
    message: "",
  });
  decodeError(() => parseNotice(f.utf8("Mabc")), /no NUL terminator/);
  decodeError(() => parseNotice(new Uint8Array(0)), /field type/);
});

Deno.test("parseRowDescription: every field of several columns", () => {
  const fields = [
    {
      name: "slot_name",
      tableOid: 0,
      columnNumber: 0,
      typeOid: 25,
      typeSize: -1,
      typeModifier: -1,
      format: 0,
    },
    {
      name: "lsn_é",
      tableOid: 0xfffffff0,
      columnNumber: 3,
      typeOid: 3220,
      typeSize: 8,
      typeModifier: 12,
      format: 1,
    },
  ];
  assert.deepEqual(parseRowDescription(f.rowDescriptionBody(fields)), fields);
  assert.deepEqual(parseRowDescription(f.rowDescriptionBody([])), []);
});

Deno.test("parseRowDescription: truncated body is a DecodeError", () => {
  const body = f.rowDescriptionBody([
    {
      name: "a",
      tableOid: 1,
      columnNumber: 1,
      typeOid: 23,
      typeSize: 4,
      typeModifier: -1,
      format: 0,
    },
  ]);
  for (let cut = 0; cut < body.length; cut++) {
    const error = decodeError(() => parseRowDescription(body.slice(0, cut)));
    assert.equal(error.messageType, "RowDescription");
  }
});

Deno.test("parseDataRow: text, NULL, empty and multibyte values", () => {
  assert.deepEqual(parseDataRow(f.dataRowBody(["0/16B3748", null, "", "日本"])), [
    "0/16B3748",
    null,
    "",
    "日本",
  ]);
  assert.deepEqual(parseDataRow(f.dataRowBody([])), []);
});

Deno.test("parseDataRow: bad lengths are DecodeErrors", () => {
  const tooLong = new f.Bytes().int16(1).int32(10).raw(f.utf8("abc")).done();
  decodeError(() => parseDataRow(tooLong), /DataRow.*needs 10 bytes/);
  const negative = new f.Bytes().int16(1).int32(-2).done();
  decodeError(() => parseDataRow(negative), /DataRow.*negative length -2/);
});

Deno.test("parseAuthentication: ok, cleartext, md5, SASL, continue, final, unsupported", () => {
  assert.deepEqual(parseAuthentication(f.authenticationBody(0)), { kind: "ok" });
  assert.deepEqual(parseAuthentication(f.authenticationBody(3)), { kind: "cleartext" });
  assert.deepEqual(parseAuthentication(f.authenticationBody(5, new Uint8Array([1, 2, 3, 4]))), {
    kind: "md5",
    salt: new Uint8Array([1, 2, 3, 4]),
  });
  assert.deepEqual(
    parseAuthentication(f.authenticationBody(10, f.utf8("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"))),
    { kind: "sasl", mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"] },
  );
  assert.deepEqual(
    parseAuthentication(f.authenticationBody(11, f.utf8("r=abc,s=c2FsdA==,i=4096"))),
    {
      kind: "sasl-continue",
      data: "r=abc,s=c2FsdA==,i=4096",
    },
  );
  assert.deepEqual(parseAuthentication(f.authenticationBody(12, f.utf8("v=abc="))), {
    kind: "sasl-final",
    data: "v=abc=",
  });
  assert.deepEqual(parseAuthentication(f.authenticationBody(7)), { kind: "unsupported", code: 7 });
});

Deno.test("parseAuthentication: malformed bodies are DecodeErrors", () => {
  decodeError(() => parseAuthentication(new Uint8Array([0, 0])), /Authentication.*auth code/);
  decodeError(() => parseAuthentication(f.authenticationBody(5, new Uint8Array([1, 2]))), /salt/);
  decodeError(
    () => parseAuthentication(f.authenticationBody(10, f.utf8("SCRAM-SHA-256\0"))),
    /Authentication.*SASL mechanism has no NUL terminator/,
  );
});

Deno.test("parseAuthentication: md5 salt is a copy", () => {
  const body = f.authenticationBody(5, new Uint8Array([1, 2, 3, 4]));
  const request = parseAuthentication(body);
  body.fill(0);
  assert.deepEqual(request, { kind: "md5", salt: new Uint8Array([1, 2, 3, 4]) });
});

Deno.test("FrameParser: a 40 MB frame in 64 KiB chunks arrives whole, held in at most twice what came", () => {
  const size = 40 * 1024 * 1024;
  const frame = new Uint8Array(5 + size);
  frame[0] = 0x64; // 'd'
  new DataView(frame.buffer).setInt32(1, 4 + size);
  for (let i = 5; i < frame.byteLength; i++) frame[i] = i % 251;
  const parser = new FrameParser();
  const chunk = 64 * 1024;
  let frames: { code: number; body: Uint8Array }[] = [];
  for (let offset = 3; offset - chunk < frame.byteLength; offset += chunk) {
    const start = Math.max(0, offset - chunk);
    frames = parser.push(frame.subarray(start, Math.min(offset, frame.byteLength)));
    if (frames.length === 0) {
      assert.ok(
        parser.reservedBytes <= 2 * parser.pendingBytes + 64 * 1024,
        `${parser.reservedBytes} bytes held for ${parser.pendingBytes} received`,
      );
    }
  }
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.code, 0x64);
  assert.equal(frames[0]!.body.byteLength, size);
  assert.ok(frames[0]!.body.every((byte, i) => byte === (i + 5) % 251));
  assert.equal(parser.pendingBytes, 0);
  assert.equal(parser.reservedBytes, 0);
});

Deno.test("FrameParser: a peer announcing a 1 GiB frame gets memory only for what it sent", () => {
  const parser = new FrameParser();
  const header = new Uint8Array(5);
  header[0] = 0x64;
  new DataView(header.buffer).setInt32(1, 1 << 30);
  parser.push(header);
  const chunk = new Uint8Array(1024 * 1024);
  for (let i = 0; i < 8; i++) assert.deepEqual(parser.push(chunk), []);
  assert.equal(parser.pendingBytes, 5 + 8 * chunk.byteLength);
  assert.ok(parser.reservedBytes <= 2 * parser.pendingBytes, `${parser.reservedBytes} held`);
});
