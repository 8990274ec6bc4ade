/**
 * Durations and sizes as people write them in configuration files.
 *
 * Durations: `200ms`, `10s`, `2min` (or `2m`), `1h`, `1d`, parts combined as in `1h30m`,
 * decimals as in `1.5s`; a plain integer is milliseconds. Sizes: `1kB`, `64MB`, `10GB`
 * (powers of 1000) and `1KiB`, `100MiB` (powers of 1024); a plain integer is bytes. Unit
 * letters are not case-sensitive.
 *
 * Both parsers return `undefined` for text they do not understand, so the caller can
 * word the error for its context.
 *
 * @module
 */

const DURATION_UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  sec: 1_000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1_000,
  mb: 1_000_000,
  gb: 1_000_000_000,
  tb: 1_000_000_000_000,
  kib: 1_024,
  mib: 1_048_576,
  gib: 1_073_741_824,
  tib: 1_099_511_627_776,
};

const DECIMAL = /^\d+(?:\.\d+)?$/;
const DURATION_PART = /(\d+(?:\.\d+)?)\s*([a-z]+)/gy;
const SIZE = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/;

/**
 * Parses a duration into whole milliseconds (rounded), or `undefined` when the text is
 * not a duration. Negative values are not durations.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDuration } from "./units.ts";
 * assert.equal(parseDuration("200ms"), 200);
 * assert.equal(parseDuration("1h30m"), 5_400_000);
 * assert.equal(parseDuration(250), 250);
 * assert.equal(parseDuration("soon"), undefined);
 * ```
 */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === "number") {
    return Number.isSafeInteger(input) && input >= 0 ? input : undefined;
  }
  const text = input.trim().toLowerCase();
  if (text === "") return undefined;
  if (DECIMAL.test(text)) return text.includes(".") ? undefined : checked(Number(text));
  let total = 0;
  let offset = 0;
  const units = new Set<number>();
  DURATION_PART.lastIndex = 0;
  while (offset < text.length) {
    const match = DURATION_PART.exec(text);
    if (match === null) return undefined;
    const factor = DURATION_UNITS_MS[match[2]!];
    // Each unit once, largest first: "1h30m" is a duration, "30m1h" and "1s1s" are typos.
    if (factor === undefined || units.has(factor)) return undefined;
    for (const seen of units) if (seen < factor) return undefined;
    units.add(factor);
    total += Number(match[1]) * factor;
    offset = DURATION_PART.lastIndex;
    while (text[offset] === " ") offset++;
    DURATION_PART.lastIndex = offset;
  }
  return checked(Math.round(total));
}

/**
 * Parses a size into whole bytes (rounded), or `undefined` when the text is not a size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSize } from "./units.ts";
 * assert.equal(parseSize("64MB"), 64_000_000);
 * assert.equal(parseSize("100MiB"), 104_857_600);
 * assert.equal(parseSize(4096), 4096);
 * assert.equal(parseSize("big"), undefined);
 * ```
 */
export function parseSize(input: string | number): number | undefined {
  if (typeof input === "number") {
    return Number.isSafeInteger(input) && input >= 0 ? input : undefined;
  }
  const text = input.trim().toLowerCase();
  if (DECIMAL.test(text)) return text.includes(".") ? undefined : checked(Number(text));
  const match = SIZE.exec(text);
  if (match === null) return undefined;
  const factor = SIZE_UNITS[match[2]!];
  if (factor === undefined) return undefined;
  return checked(Math.round(Number(match[1]) * factor));
}

/**
 * Formats milliseconds the way {@linkcode parseDuration} reads them, for messages.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDuration } from "./units.ts";
 * assert.equal(formatDuration(90_000), "1m30s");
 * assert.equal(formatDuration(250), "250ms");
 * ```
 */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  const parts: string[] = [];
  let rest = ms;
  for (
    const [unit, factor] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], [
      "s",
      1_000,
    ]] as const
  ) {
    if (rest >= factor) {
      parts.push(`${Math.floor(rest / factor)}${unit}`);
      rest %= factor;
    }
  }
  if (rest > 0) parts.push(`${rest}ms`);
  return parts.join("");
}

/**
 * Formats bytes the way {@linkcode parseSize} reads them: the largest unit that divides
 * them exactly, powers of 1000 first (`64MB`, `1KiB`, `1500B`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatSize, parseSize } from "./units.ts";
 * assert.equal(formatSize(64_000_000), "64MB");
 * assert.equal(formatSize(104_857_600), "100MiB");
 * assert.equal(parseSize(formatSize(1_500)), 1_500);
 * ```
 */
export function formatSize(bytes: number): string {
  for (const unit of ["TB", "GB", "MB", "kB", "TiB", "GiB", "MiB", "KiB"]) {
    const factor = SIZE_UNITS[unit.toLowerCase()]!;
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}B`;
}

/** A unit that matches in either case, for a pattern without flags: `[mM][sS]`. */
function anyCase(unit: string): string {
  return [...unit].map((char) => `[${char}${char.toUpperCase()}]`).join("");
}

/** The units of a table, longest first, so that `min` is tried before `m`. */
function unitPattern(units: Record<string, number>): string {
  return Object.keys(units).sort((a, b) => b.length - a.length).map(anyCase).join("|");
}

/**
 * What {@linkcode parseDuration} reads from text, as a regular expression for JSON Schema
 * (which has no flags, so unit letters match in either case). Looser than the parser: it
 * does not check that each unit comes once, largest first, or that the total fits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DURATION_PATTERN } from "./units.ts";
 * const duration = new RegExp(DURATION_PATTERN);
 * assert(duration.test("1h30m") && duration.test("250"));
 * assert(!duration.test("soon"));
 * ```
 */
export const DURATION_PATTERN: string = `^\\s*(?:\\d+|(?:\\d+(?:\\.\\d+)?\\s*(?:${
  unitPattern(DURATION_UNITS_MS)
}) *)+)\\s*$`;

/**
 * What {@linkcode parseSize} reads from text, as a regular expression for JSON Schema.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SIZE_PATTERN } from "./units.ts";
 * const size = new RegExp(SIZE_PATTERN);
 * assert(size.test("64MB") && size.test("100MiB") && size.test("4096"));
 * assert(!size.test("big"));
 * ```
 */
export const SIZE_PATTERN: string = `^\\s*(?:\\d+|\\d+(?:\\.\\d+)?\\s*(?:${
  unitPattern(SIZE_UNITS)
}))\\s*$`;

function checked(value: number): number | undefined {
  return Number.isSafeInteger(value) ? value : undefined;
}

/**
 * A byte count the way `pg_size_pretty` prints it (powers of 1024): `812 bytes`, `12 kB`, `3 MB`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatBytes } from "./units.ts";
 * assert.equal(formatBytes(812), "812 bytes");
 * assert.equal(formatBytes(3 * 1024 * 1024), "3 MB");
 * assert.equal(formatBytes(1536), "1.5 kB");
 * ```
 */
export function formatBytes(bytes: number): string {
  const units = ["kB", "MB", "GB", "TB", "PB"];
  if (Math.abs(bytes) < 1024) return `${bytes} bytes`;
  let value = bytes;
  let unit = "bytes";
  for (const next of units) {
    if (Math.abs(value) < 1024) break;
    value /= 1024;
    unit = next;
  }
  const shown = Math.abs(value) >= 100 || Number.isInteger(value)
    ? Math.round(value).toString()
    : value.toFixed(1).replace(/\.0$/, "");
  return `${shown} ${unit}`;
}
