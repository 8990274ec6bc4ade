/**
 * The record batches' codecs, none of them native code: gzip and zstd from `node:zlib`, snappy
 * (raw blocks, as Kafka's brokers read them) and LZ4 (frames) from the WebAssembly build of
 * `@platformatic/wasm-utils`, which is loaded only when one of those two is configured.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import zlib from "node:zlib";
import type { KafkaSinkConfig } from "../../config/mod.ts";
import type { BatchCompression } from "./record_batch.ts";

/** The codec of `compression`; `undefined` for none. */
export async function batchCompression(
  compression: KafkaSinkConfig["compression"],
): Promise<BatchCompression | undefined> {
  switch (compression) {
    case "none":
      return undefined;
    case "gzip":
      return { attribute: 1, compress: (bytes) => zlib.gzipSync(bytes) };
    case "zstd":
      return { attribute: 4, compress: (bytes) => zlib.zstdCompressSync(bytes) };
    case "snappy":
    case "lz4": {
      const wasm = await import("npm:@platformatic/wasm-utils@0.2.1");
      const codec = compression === "snappy" ? wasm.snappyCompress : wasm.lz4Compress;
      return {
        attribute: compression === "snappy" ? 2 : 3,
        // A Buffer over the same memory costs no copy.
        compress: (bytes) =>
          codec(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) as Buffer),
      };
    }
  }
}
