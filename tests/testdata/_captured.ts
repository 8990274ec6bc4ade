/**
 * Reads `pgoutput_frames.bin`: real frames captured by `capture_frames.ts`.
 *
 * @module
 */

import type { ProtoVersion } from "../../decoder/pgoutput.ts";

/** One captured XLogData payload with the decoder state it was decoded in. */
export interface CapturedFrame {
  protoVersion: ProtoVersion;
  inStreamBlock: boolean;
  data: Uint8Array;
}

/** Every frame in the capture file, in order. */
export function readCapturedFrames(): CapturedFrame[] {
  const bytes = Deno.readFileSync(new URL("./pgoutput_frames.bin", import.meta.url));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frames: CapturedFrame[] = [];
  let offset = 0;
  while (offset < bytes.byteLength) {
    const protoVersion = bytes[offset]! as ProtoVersion;
    const inStreamBlock = bytes[offset + 1] === 1;
    const length = view.getUint32(offset + 2);
    frames.push({
      protoVersion,
      inStreamBlock,
      data: bytes.slice(offset + 6, offset + 6 + length),
    });
    offset += 6 + length;
  }
  return frames;
}
