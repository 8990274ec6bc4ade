/**
 * Error types shared by the decoder and the connection.
 *
 * Every error says whether retrying can help (`retriable`), so callers never
 * retry a programmer or configuration error.
 *
 * @module
 */

/** Malformed or truncated bytes: names the message type and the byte offset. */
export class DecodeError extends Error {
  override name = "DecodeError";
  readonly retriable = false;
  /** The message being decoded, e.g. `"Insert"` or `"backend frame"`. */
  readonly messageType: string;
  /** Offset within that message where decoding failed. */
  readonly offset: number;

  constructor(messageType: string, offset: number, detail: string) {
    super(`Cannot decode ${messageType} message at offset ${offset}: ${detail}`);
    this.messageType = messageType;
    this.offset = offset;
  }
}

/** Fields of a PostgreSQL ErrorResponse or NoticeResponse, keyed by their field code. */
export interface PostgresNotice {
  severity: string;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  position?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  constraint?: string;
}

/** SQLSTATEs where a retry after a pause can succeed. */
const RETRIABLE_CODES = new Set([
  "55006", // object_in_use: slot still held by a walsender that has not noticed we left
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: starting up or shutting down
  "53300", // too_many_connections
  "08000",
  "08003",
  "08006",
  "40001",
  "40P01",
]);

/** An ErrorResponse from the server, with its SQLSTATE and the server's detail and hint. */
export class PostgresError extends Error implements PostgresNotice {
  override name = "PostgresError";
  readonly severity: string;
  readonly code: string;
  readonly detail?: string;
  readonly hint?: string;
  readonly position?: string;
  readonly where?: string;
  readonly schema?: string;
  readonly table?: string;
  readonly column?: string;
  readonly constraint?: string;
  /** A fix for the user, written by Spillway for well-known failures. */
  readonly fix?: string;
  readonly retriable: boolean;
  /** The server's notice as received, to re-wrap the error with other context. */
  readonly notice: PostgresNotice;

  constructor(notice: PostgresNotice, context?: string, fix?: string) {
    const parts = [`${context ? `${context}: ` : ""}${notice.message} (SQLSTATE ${notice.code})`];
    if (notice.detail) parts.push(`detail: ${notice.detail}`);
    if (notice.hint) parts.push(`hint: ${notice.hint}`);
    if (fix) parts.push(`fix: ${fix}`);
    super(parts.join("; "));
    this.severity = notice.severity;
    this.code = notice.code;
    this.detail = notice.detail;
    this.hint = notice.hint;
    this.position = notice.position;
    this.where = notice.where;
    this.schema = notice.schema;
    this.table = notice.table;
    this.column = notice.column;
    this.constraint = notice.constraint;
    this.fix = fix;
    this.notice = notice;
    this.retriable = RETRIABLE_CODES.has(notice.code);
  }
}

/** The connection broke (EOF, reset, timeout). Retrying with backoff can help. */
export class ConnectionError extends Error {
  override name = "ConnectionError";
  readonly retriable: boolean;
  constructor(message: string, options?: { cause?: unknown; retriable?: boolean }) {
    super(message, { cause: options?.cause });
    this.retriable = options?.retriable ?? true;
  }
}

/** A caller asked for something the server or configuration cannot give. Never retried. */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly retriable = false;
}

/** True when an error says a retry can help. */
export function isRetriable(error: unknown): boolean {
  return typeof error === "object" && error !== null && "retriable" in error &&
    (error as { retriable: unknown }).retriable === true;
}

/** An error's message, or the thrown value as text when it is not an Error. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
