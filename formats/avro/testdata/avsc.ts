/**
 * avsc (an independent Avro implementation) for the tests: a type from an Avro schema, with
 * longs as bigints (avsc's default refuses values past 2^53, as `ts_ns`), and a helper that
 * turns bigints back into numbers to compare with `JSON.parse` output.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import avro from "npm:avsc@5.7.9";

const bigLong = avro.types.LongType.__with({
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE(),
  toBuffer: (n: bigint) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt(n));
    return buf;
  },
  fromJSON: BigInt,
  toJSON: Number,
  isValid: (n: unknown) => typeof n === "bigint",
  compare: (a: bigint, b: bigint) => (a === b ? 0 : a < b ? -1 : 1),
});

/** An avsc type of `schema`; `decode` reads a body (no wire header). */
export function avscType(schema: unknown): { decode(bytes: Uint8Array): unknown } {
  const type = avro.Type.forSchema(schema as never, { registry: { long: bigLong } } as never);
  return { decode: (bytes) => type.fromBuffer(Buffer.from(bytes)) };
}

/** Bigints as numbers (and records as plain objects), as `JSON.parse` gives them. */
export function asNumbers(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? Number(v) : v)));
}
