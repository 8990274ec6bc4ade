/**
 * Date and time arithmetic shared by the binary decoders (which must print exactly what
 * PostgreSQL prints with `DateStyle=ISO, MDY`, `TimeZone=UTC`) and the JSON conversion
 * (which reads those strings back into epoch numbers).
 *
 * Calendar: proleptic Gregorian with astronomical year numbering inside (year 0 is 1 BC), as
 * PostgreSQL's `j2date`/`date2j` use it. Day numbers count from 2000-01-01 (PostgreSQL's
 * epoch) unless a name says "epoch" (1970-01-01).
 *
 * @module
 */

import { PG_EPOCH_OFFSET_MICROS } from "../lsn.ts";

/** Microseconds per day. */
export const USECS_PER_DAY = 86_400_000_000;
const USECS_PER_DAY_N = 86_400_000_000n;
/** Days from 1970-01-01 to 2000-01-01 (10957): `decoder/lsn.ts`'s epoch offset, in days. */
export const PG_EPOCH_DAYS = Number(PG_EPOCH_OFFSET_MICROS / USECS_PER_DAY_N);

/** Binary `date` values reserved for `-infinity` and `infinity` (INT32 min and max). */
export const DATE_NOBEGIN = -2147483648;
export const DATE_NOEND = 2147483647;
/** First and one-past-last valid `date` (days from 2000-01-01): 4714-11-24 BC, 5874898-01-01. */
export const DATE_MIN = -2451545;
export const DATE_END = 2147483494 - 2451545;
/** Valid `timestamp` range in µs from 2000-01-01: 4714-11-24 00:00 BC up to 294277-01-01. */
export const TIMESTAMP_MIN = -211813488000000000n;
export const TIMESTAMP_END = 9223371331200000000n;
/** Binary `timestamp[tz]` values reserved for `-infinity` and `infinity` (INT64 min and max). */
export const TIMESTAMP_NOBEGIN = -9223372036854775808n;
export const TIMESTAMP_NOEND = 9223372036854775807n;

// Scratch results, so the hot paths return several numbers without allocating.
let civilYear = 0;
let civilMonth = 0;
let civilDay = 0;

/** Sets civilYear/civilMonth/civilDay from a day number counted from 2000-01-01. */
function civilFromDays(days: number): void {
  // Shift to an era-based count starting 0000-03-01, so leap days fall at the end of a year.
  const z = days + PG_EPOCH_DAYS + 719468;
  const era = Math.floor(z / 146097);
  const dayOfEra = z - era * 146097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) -
      Math.floor(dayOfEra / 146096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) -
    Math.floor(yearOfEra / 100));
  const monthIndex = Math.floor((5 * dayOfYear + 2) / 153); // 0 = March
  civilDay = dayOfYear - Math.floor((153 * monthIndex + 2) / 5) + 1;
  civilMonth = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9;
  civilYear = yearOfEra + era * 400 + (civilMonth <= 2 ? 1 : 0);
}

/** Days from 1970-01-01 of a proleptic Gregorian date (astronomical year). */
export function epochDaysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) +
    dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

function pad2(n: number): string {
  return n < 10 ? "0" + n : "" + n;
}

function pad4(n: number): string {
  if (n >= 1000) return "" + n;
  if (n >= 100) return "0" + n;
  if (n >= 10) return "00" + n;
  return "000" + n;
}

/** `.ffffff` with trailing zeros removed, or "" for 0 (PostgreSQL's `AppendSeconds`). */
export function formatFraction(micros: number): string {
  if (micros === 0) return "";
  let n = micros;
  let width = 6;
  while (n % 10 === 0) {
    n /= 10;
    width--;
  }
  const digits = "" + n;
  return "." + "000000".slice(0, width - digits.length) + digits;
}

/** `YYYY-MM-DD` from civil*, year printed as PostgreSQL does (1 BC is year 0 inside). */
function civilDate(): string {
  const year = civilYear > 0 ? civilYear : 1 - civilYear;
  return pad4(year) + "-" + pad2(civilMonth) + "-" + pad2(civilDay);
}

/** Formats a `date` (days from 2000-01-01, or the INT32 min/max infinities) like `date_out`. */
export function formatDate(days: number): string {
  if (days === DATE_NOEND) return "infinity";
  if (days === DATE_NOBEGIN) return "-infinity";
  civilFromDays(days);
  return civilYear > 0 ? civilDate() : civilDate() + " BC";
}

/** `HH:MM:SS[.ffffff]` of a time of day in µs (0 … 24:00:00). */
export function formatTimeOfDay(micros: number): string {
  const seconds = Math.floor(micros / 1_000_000);
  const fraction = micros - seconds * 1_000_000;
  const hours = Math.floor(seconds / 3600);
  const rest = seconds - hours * 3600;
  const minutes = Math.floor(rest / 60);
  return pad2(hours) + ":" + pad2(minutes) + ":" + pad2(rest - minutes * 60) +
    formatFraction(fraction);
}

/**
 * A zone offset as PostgreSQL's `EncodeTimezone` prints it: `+05:30`, `-08`, `+00:53:28`.
 * `secondsWest` is positive west of Greenwich, as in the `timetz` binary format.
 */
export function formatZone(secondsWest: number): string {
  let seconds = Math.abs(secondsWest);
  let minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const hours = Math.floor(minutes / 60);
  minutes -= hours * 60;
  const sign = secondsWest <= 0 ? "+" : "-";
  if (seconds !== 0) return sign + pad2(hours) + ":" + pad2(minutes) + ":" + pad2(seconds);
  if (minutes !== 0) return sign + pad2(hours) + ":" + pad2(minutes);
  return sign + pad2(hours);
}

/**
 * Formats a `timestamp` (or with `zone`, a `timestamptz` shown in UTC as `+00`) given as whole
 * days from 2000-01-01 plus µs into that day, like `timestamp_out`/`timestamptz_out`.
 */
export function formatTimestamp(days: number, microsOfDay: number, zone: boolean): string {
  civilFromDays(days);
  const text = civilDate() + " " + formatTimeOfDay(microsOfDay) + (zone ? "+00" : "");
  return civilYear > 0 ? text : text + " BC";
}

/**
 * Formats a `timestamp[tz]` given as µs from 2000-01-01. `micros` is a number when it is
 * exact (|µs| < 2^53, the fast path), else a bigint.
 */
export function formatTimestampMicros(micros: number | bigint, zone: boolean): string {
  if (typeof micros === "number") {
    let days = Math.floor(micros / USECS_PER_DAY);
    let rest = micros - days * USECS_PER_DAY;
    // micros / USECS_PER_DAY is rounded, so floor() may be off by one near a day boundary.
    if (rest < 0) {
      days--;
      rest += USECS_PER_DAY;
    } else if (rest >= USECS_PER_DAY) {
      days++;
      rest -= USECS_PER_DAY;
    }
    return formatTimestamp(days, rest, zone);
  }
  let days = micros / USECS_PER_DAY_N;
  let rest = micros % USECS_PER_DAY_N;
  if (rest < 0n) {
    days -= 1n;
    rest += USECS_PER_DAY_N;
  }
  return formatTimestamp(Number(days), Number(rest), zone);
}

// ---------------------------------------------------------------------------------------------
// Reading PostgreSQL's ISO text back (for the JSON conversion).

/** A parsed `date`, `timestamp` or `timestamptz` string. */
export interface ParsedDateTime {
  /** `1` for `infinity`, `-1` for `-infinity`, else `0`. */
  infinity: -1 | 0 | 1;
  /** Astronomical year (1 BC = 0). */
  year: number;
  month: number;
  day: number;
  /** µs into the day; 0 for a date. */
  microsOfDay: number;
  /** Zone offset in seconds EAST of UTC (as printed); 0 when none. */
  offsetSeconds: number;
}

function digitsAt(text: string, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return end > start ? n : -1;
}

/**
 * Parses the `HH:MM:SS[.ffffff]` at `start`; returns the µs and sets `parseEnd` to the index
 * after it, or returns -1.
 */
function parseTimeAt(text: string, start: number): number {
  let i = text.indexOf(":", start);
  if (i < 0) return -1;
  const hours = digitsAt(text, start, i);
  const minutes = digitsAt(text, i + 1, i + 3);
  if (text.charCodeAt(i + 3) !== 58) return -1; // ':'
  const seconds = digitsAt(text, i + 4, i + 6);
  if (hours < 0 || minutes < 0 || seconds < 0) return -1;
  i += 6;
  let micros = 0;
  if (text.charCodeAt(i) === 46) { // '.'
    let scale = 100_000;
    i++;
    while (i < text.length) {
      const c = text.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      // PostgreSQL prints at most 6 digits; any beyond µs are dropped, never made fractional.
      if (scale >= 1) {
        micros += c * scale;
        scale /= 10;
      }
      i++;
    }
  }
  parseEnd = i;
  return ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros;
}

let parseEnd = 0;

/** Parses a zone `+HH[:MM[:SS]]` at `start` into seconds east; sets `parseEnd`. NaN if none. */
function parseZoneAt(text: string, start: number): number {
  const sign = text.charCodeAt(start);
  if (sign !== 43 && sign !== 45) return NaN; // '+' '-'
  const hours = digitsAt(text, start + 1, start + 3);
  if (hours < 0) return NaN;
  let seconds = hours * 3600;
  let i = start + 3;
  if (text.charCodeAt(i) === 58) {
    const minutes = digitsAt(text, i + 1, i + 3);
    if (minutes < 0) return NaN;
    seconds += minutes * 60;
    i += 3;
    if (text.charCodeAt(i) === 58) {
      const secs = digitsAt(text, i + 1, i + 3);
      if (secs < 0) return NaN;
      seconds += secs;
      i += 3;
    }
  }
  parseEnd = i;
  return sign === 45 ? -seconds : seconds;
}

/**
 * Parses PostgreSQL's ISO output of `date`, `timestamp` or `timestamptz`
 * (`2024-02-29`, `0044-03-15 BC`, `2024-02-29 13:45:00.5+00`, `infinity`). Returns null when
 * the text has another shape.
 */
export function parseDateTimeText(text: string): ParsedDateTime | null {
  if (text === "infinity" || text === "-infinity") {
    return {
      infinity: text === "infinity" ? 1 : -1,
      year: 0,
      month: 0,
      day: 0,
      microsOfDay: 0,
      offsetSeconds: 0,
    };
  }
  const dash = text.indexOf("-", 1);
  if (dash < 4) return null;
  let year = digitsAt(text, 0, dash);
  const month = digitsAt(text, dash + 1, dash + 3);
  const day = digitsAt(text, dash + 4, dash + 6);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > 31) return null;
  if (text.charCodeAt(dash + 3) !== 45) return null;
  let i = dash + 6;
  let microsOfDay = 0;
  let offsetSeconds = 0;
  if (text.charCodeAt(i) === 32 && text.charCodeAt(i + 1) !== 66) { // ' ' not followed by 'B'
    microsOfDay = parseTimeAt(text, i + 1);
    if (microsOfDay < 0) return null;
    i = parseEnd;
    if (i < text.length && text.charCodeAt(i) !== 32) {
      offsetSeconds = parseZoneAt(text, i);
      if (Number.isNaN(offsetSeconds)) return null;
      i = parseEnd;
    }
  }
  if (i < text.length) {
    if (text.slice(i) !== " BC") return null;
    year = 1 - year;
  }
  return { infinity: 0, year, month, day, microsOfDay, offsetSeconds };
}

/** Parses `time` text (`13:45:00.5`) into µs of the day; -1 when malformed. */
export function parseTimeText(text: string): number {
  const micros = parseTimeAt(text, 0);
  return micros >= 0 && parseEnd === text.length ? micros : -1;
}

/** Parses `timetz` text (`13:45:00+05:30`) into µs of the day and seconds east of UTC. */
export function parseTimetzText(text: string): { micros: number; offsetSeconds: number } | null {
  const micros = parseTimeAt(text, 0);
  if (micros < 0) return null;
  const offsetSeconds = parseZoneAt(text, parseEnd);
  if (Number.isNaN(offsetSeconds) || parseEnd !== text.length) return null;
  return { micros, offsetSeconds };
}
