/**
 * Structured logs on stderr: one line each, readable text or JSON.
 *
 * @module
 */

/** Log levels, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Writes one log line. */
export type Logger = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  level?: LogLevel;
  json?: boolean;
  write?: (line: string) => void;
  now?: () => Date;
}

const encoder = new TextEncoder();

/**
 * A logger writing to stderr.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createLogger } from "./log.ts";
 * const lines: string[] = [];
 * const log = createLogger({ json: true, write: (line) => lines.push(line) });
 * log("info", "Slot created", { slot: "orders" });
 * assert(JSON.parse(lines[0]!).slot === "orders");
 * ```
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = LEVELS[options.level ?? "info"];
  const write = options.write ??
    ((line: string) => Deno.stderr.writeSync(encoder.encode(`${line}\n`)));
  const now = options.now ?? (() => new Date());
  return (level, message, fields = {}) => {
    if (LEVELS[level] < threshold) return;
    if (options.json) {
      // JSON escapes control characters itself; long values are cut all the same.
      const record = { time: now().toISOString(), level, message, ...fields };
      write(JSON.stringify(record, (key, value) => {
        const plain = jsonReplacer(key, value);
        return typeof plain === "string" ? truncate(plain) : plain;
      }));
      return;
    }
    const extra = Object.entries(fields).map(([key, value]) =>
      `${key}=${
        printable(typeof value === "string" ? value : JSON.stringify(value, jsonReplacer) ?? "")
      }`
    ).join(" ");
    write(
      `${now().toISOString()} ${level.toUpperCase().padEnd(5)} ${printable(message)}${
        extra ? ` ${extra}` : ""
      }`,
    );
  };
}

/** The most characters of one message or value a log line or error line shows. */
export const MAX_SHOWN = 2_000;

/**
 * `text` safe for one line of a terminal or a log: control characters (a newline, say, which
 * could forge a line) written as escapes, and at most {@linkcode MAX_SHOWN} characters.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { printable } from "./log.ts";
 * assert.equal(printable("a\nb\u0007"), "a\\nb\\u0007");
 * assert.match(printable("x".repeat(5_000)), /^x{2000}… \(3000 more characters\)$/);
 * ```
 */
export function printable(text: string): string {
  return truncate(text).replace(CONTROL, (char) => ESCAPES[char] ?? unicodeEscape(char));
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function unicodeEscape(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

function truncate(text: string): string {
  return text.length <= MAX_SHOWN
    ? text
    : `${text.slice(0, MAX_SHOWN)}… (${text.length - MAX_SHOWN} more characters)`;
}

/** JSON.stringify replacer that renders bigint as a string and errors by message. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) return value.message;
  return value;
}

/** A logger that drops everything. */
export const silentLogger: Logger = () => {};
