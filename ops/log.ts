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
      write(JSON.stringify({ time: now().toISOString(), level, message, ...fields }, jsonReplacer));
      return;
    }
    const extra = Object.entries(fields).map(([key, value]) =>
      `${key}=${typeof value === "string" ? value : JSON.stringify(value, jsonReplacer)}`
    ).join(" ");
    write(
      `${now().toISOString()} ${level.toUpperCase().padEnd(5)} ${message}${
        extra ? ` ${extra}` : ""
      }`,
    );
  };
}

/** JSON.stringify replacer that renders bigint as a string and errors by message. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) return value.message;
  return value;
}

/** A logger that drops everything. */
export const silentLogger: Logger = () => {};
