/**
 * Byte output shared by the sinks (and `spillway tail`).
 *
 * @module
 */

/** Writes every byte, looping over short writes. */
export async function writeAll(
  writer: { write(bytes: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) offset += await writer.write(bytes.subarray(offset));
}
