/**
 * Spillway's decode path without a server: XLogData payloads captured by
 * `deno task bench decode --capture` (`bench/out/<mode>.frames`) are decoded with
 * {@linkcode PgoutputDecoder} and assembled with {@linkcode TransactionAssembler}, several times
 * over, so the client's own cost can be timed and profiled apart from the walsender's.
 *
 * Usage: `deno run -A --v8-flags=--expose-gc bench/_decode_offline.ts FILE --proto N
 * [--iterations N]`. Prints, per iteration, the decode-only and decode+assemble rates in rows/s,
 * and the heap held by the assembler just before the last message (for a streamed transaction:
 * every buffered change).
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { Lsn } from "../decoder/lsn.ts";
import { PgoutputDecoder, type ProtoVersion } from "../decoder/pgoutput.ts";
import { TransactionAssembler } from "../source/assembler.ts";
import { collectGarbage } from "./_drain_common.ts";

interface Captured {
  walStart: Lsn;
  data: Uint8Array;
}

/** Reads the records written by `_drain.ts --capture`. */
function readCapture(path: string): Captured[] {
  const bytes = Deno.readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Captured[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    const walStart = view.getBigUint64(offset) as Lsn;
    const length = view.getInt32(offset + 8);
    out.push({ walStart, data: bytes.subarray(offset + 12, offset + 12 + length) });
    offset += 12 + length;
  }
  return out;
}

function main(args: string[]): void {
  const { values, positionals } = parseArgs({
    args,
    options: {
      proto: { type: "string", default: "1" },
      iterations: { type: "string", default: "5" },
    },
    allowPositionals: true,
    strict: true,
  });
  const path = positionals[0];
  if (path === undefined) throw new Error("Cannot decode offline: name a .frames file");
  const protoVersion = Number(values.proto) as ProtoVersion;
  const captured = readCapture(path);
  const inserts = captured.filter((frame) => frame.data[0] === 0x49).length; // 'I'
  console.log(`${path}: ${captured.length} messages, ${inserts} inserts`);
  for (let iteration = 1; iteration <= Number(values.iterations); iteration++) {
    collectGarbage();
    let started = performance.now();
    const decodeOnly = new PgoutputDecoder({ protoVersion });
    let kept = 0;
    for (const frame of captured) {
      if (decodeOnly.decode(frame.data).type === "Insert") kept++;
    }
    const decodeSeconds = (performance.now() - started) / 1000;

    collectGarbage();
    const heapBefore = Deno.memoryUsage().heapUsed;
    started = performance.now();
    const assembler = new TransactionAssembler({ protoVersion });
    let rows = 0;
    let heldBytes = 0;
    const last = captured.length - 1;
    for (let i = 0; i <= last; i++) {
      const frame = captured[i]!;
      if (i === last) {
        const pausedAt = performance.now();
        collectGarbage();
        heldBytes = Deno.memoryUsage().heapUsed - heapBefore;
        started += performance.now() - pausedAt;
      }
      for (const item of assembler.push(frame.walStart, frame.data)) {
        if (item.kind === "change" && item.event.op === "c") rows++;
      }
    }
    const assembleSeconds = (performance.now() - started) / 1000;
    console.log(
      `#${iteration}: decode ${Math.round(kept / decodeSeconds).toLocaleString("en-US")} rows/s ` +
        `(${decodeSeconds.toFixed(2)} s), decode+assemble ${
          Math.round(rows / assembleSeconds).toLocaleString("en-US")
        } rows/s (${assembleSeconds.toFixed(2)} s), held before the last message ${
          (heldBytes / 1048576).toFixed(0)
        } MiB (${Math.round(heldBytes / Math.max(1, rows))} B/row)`,
    );
  }
}

if (import.meta.main) main(Deno.args);
