/**
 * Log sequence numbers and PostgreSQL timestamps.
 *
 * An LSN is a 64-bit position in the write-ahead log. It is a branded `bigint`
 * so that a plain number or string can never be passed where a position is meant.
 *
 * @module
 */

/** A position in the PostgreSQL write-ahead log. */
export type Lsn = bigint & { readonly __brand: "Lsn" };

/** The zero LSN, `0/0`: "no position" or "start from the slot's confirmed position". */
export const LSN_ZERO = 0n as Lsn;

const LSN_MAX = 0xffff_ffff_ffff_ffffn;
const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/**
 * Wraps a `bigint` as an LSN, checking that it fits in 64 unsigned bits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lsn, formatLsn } from "./lsn.ts";
 * assert(formatLsn(lsn(0x16_B374_D848n)) === "16/B374D848");
 * ```
 */
export function lsn(value: bigint): Lsn {
  if (value < 0n || value > LSN_MAX) {
    throw new RangeError(`Cannot make an LSN from ${value}: it must be within 0 and 2^64-1`);
  }
  return value as Lsn;
}

/**
 * Parses the text form `16/B374D848` (hex, with or without zero padding).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLsn } from "./lsn.ts";
 * assert(parseLsn("16/B374D848") === 0x16_B374_D848n);
 * assert(parseLsn("0/00000010") === 16n);
 * ```
 */
export function parseLsn(text: string): Lsn {
  const match = LSN_PATTERN.exec(text.trim());
  if (match === null) {
    throw new SyntaxError(
      `Cannot parse LSN "${text}": expected two hex numbers like "16/B374D848"`,
    );
  }
  const high = BigInt(`0x${match[1]}`);
  const low = BigInt(`0x${match[2]}`);
  return ((high << 32n) | low) as Lsn;
}

/**
 * Formats an LSN the way PostgreSQL prints it: upper-case hex, no padding.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatLsn, lsn } from "./lsn.ts";
 * assert(formatLsn(lsn(16n)) === "0/10");
 * ```
 */
export function formatLsn(value: Lsn): string {
  // Below 2^53 (the first 8 PiB of WAL) the halves are exact in a double: no bigint work.
  if (value <= MAX_SAFE_LSN) {
    const number = Number(value);
    const high = Math.floor(number / 0x1_0000_0000);
    const low = number - high * 0x1_0000_0000;
    return `${high.toString(16).toUpperCase()}/${low.toString(16).toUpperCase()}`;
  }
  const high = value >> 32n;
  const low = value & 0xffff_ffffn;
  return `${high.toString(16).toUpperCase()}/${low.toString(16).toUpperCase()}`;
}

const MAX_SAFE_LSN = BigInt(Number.MAX_SAFE_INTEGER);

/** The larger of two LSNs. */
export function maxLsn(a: Lsn, b: Lsn): Lsn {
  return a > b ? a : b;
}

/** Microseconds between 1970-01-01 and 2000-01-01, the PostgreSQL epoch. */
export const PG_EPOCH_OFFSET_MICROS = 946_684_800_000_000n;

/**
 * Converts a PostgreSQL timestamp (µs since 2000-01-01 UTC) to µs since the Unix epoch.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pgMicrosToUnixMicros } from "./lsn.ts";
 * assert(pgMicrosToUnixMicros(0n) === 946_684_800_000_000n);
 * ```
 */
export function pgMicrosToUnixMicros(pgMicros: bigint): bigint {
  return pgMicros + PG_EPOCH_OFFSET_MICROS;
}

/** Converts µs since the Unix epoch to a PostgreSQL timestamp (µs since 2000-01-01 UTC). */
export function unixMicrosToPgMicros(unixMicros: bigint): bigint {
  return unixMicros - PG_EPOCH_OFFSET_MICROS;
}

/**
 * Formats µs since the Unix epoch as ISO-8601 UTC with microseconds,
 * e.g. `2024-02-29T13:45:00.123456Z`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatUnixMicros } from "./lsn.ts";
 * assert(formatUnixMicros(1_000_001n) === "1970-01-01T00:00:01.000001Z");
 * ```
 */
export function formatUnixMicros(unixMicros: bigint): string {
  let millis = unixMicros / 1000n;
  let micros = unixMicros % 1000n;
  if (micros < 0n) {
    micros += 1000n;
    millis -= 1n;
  }
  const iso = new Date(Number(millis)).toISOString(); // ...sss Z
  return `${iso.slice(0, -1)}${micros.toString().padStart(3, "0")}Z`;
}
