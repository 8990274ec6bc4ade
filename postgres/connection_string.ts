/**
 * Connection settings as data: the options of one connection, the session settings every
 * connection pins, and the `postgres://` URL parser. No sockets; `config/` imports this file
 * alone from `postgres/`.
 *
 * @module
 */

import { ConfigError, type PostgresNotice } from "../errors.ts";

/** Where a TLS connection's certificate checks stand. */
export type SslMode = "disable" | "prefer" | "require" | "verify-ca" | "verify-full";

/** `sslrootcert=system`: trust the runtime's public root certificates, as libpq 16+ does. */
export const SYSTEM_ROOTS = "system";

/** Every {@linkcode SslMode}, weakest first. */
export const SSL_MODES: readonly SslMode[] = [
  "disable",
  "prefer",
  "require",
  "verify-ca",
  "verify-full",
];

/** How to reach and log in to a server. */
export interface ConnectOptions {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
  /** `"database"` opens a logical walsender connection; omit for a normal session. */
  replication?: "database";
  sslmode?: SslMode;
  /**
   * PEM text of the CA certificate(s) that verify the server, or {@linkcode SYSTEM_ROOTS}
   * to trust the runtime's public roots. Unset, `verify-ca` and `verify-full` use
   * `~/.postgresql/root.crt` and refuse to connect without it, as libpq does.
   */
  sslrootcert?: string;
  applicationName?: string;
  /** Extra startup parameters (GUCs such as `DateStyle`). */
  parameters?: Record<string, string>;
  connectTimeoutMs?: number;
  /** Receives NoticeResponse messages (warnings) from the server. */
  onNotice?: (notice: PostgresNotice) => void;
}

/**
 * Settings every Spillway session pins at startup, so that text output and the meaning of
 * the SQL it sends never depend on server, database or role defaults.
 */
export const SESSION_PARAMETERS: Readonly<Record<string, string>> = {
  standard_conforming_strings: "on",
  client_encoding: "UTF8",
  DateStyle: "ISO, MDY",
  IntervalStyle: "postgres",
  TimeZone: "UTC",
  extra_float_digits: "3",
  bytea_output: "hex",
  lc_monetary: "C",
};

/**
 * Parses `postgres://user:password@host:port/database?sslmode=…&sslrootcert=…`.
 * `sslrootcert` names a file; it is read here (the one file this module reads).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConnectionUrl } from "./connection_string.ts";
 * const options = parseConnectionUrl("postgres://app:s3cret@db.local:6543/shop");
 * assert(options.port === 6543 && options.database === "shop");
 * ```
 */
export function parseConnectionUrl(url: string): ConnectOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(
      `Cannot parse connection URL "${
        redact(url)
      }": expected postgres://user:password@host:port/database`,
    );
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new ConfigError(
      `Cannot use connection URL "${redact(url)}": the scheme must be postgres:// or postgresql://`,
    );
  }
  const params = parsed.searchParams;
  const sslmode = params.get("sslmode") ?? "prefer";
  if (!(SSL_MODES as readonly string[]).includes(sslmode)) {
    throw new ConfigError(
      `Cannot use sslmode "${sslmode}": expected disable, prefer, require, verify-ca or verify-full`,
    );
  }
  const user = decodeURIComponent(parsed.username) || "postgres";
  const rootCertPath = params.get("sslrootcert");
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost",
    port: parsed.port ? Number(parsed.port) : 5432,
    user,
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    database: decodeURIComponent(parsed.pathname.replace(/^\//, "")) || user,
    sslmode: sslmode as SslMode,
    sslrootcert: rootCertPath ? readRootCertificates(rootCertPath) : undefined,
    applicationName: params.get("application_name") ?? undefined,
  };
}

/**
 * Hides the password in a URL for messages.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { redact } from "./connection_string.ts";
 * assert.equal(redact("postgres://app:s3cret@db/shop"), "postgres://app:***@db/shop");
 * // A raw "@" in the password: the host starts after the last "@" before the path.
 * assert.equal(redact("postgres://app:p@ss@db/shop?x=a@b"), "postgres://app:***@db/shop?x=a@b");
 * ```
 */
export function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^/?#]*@/, "$1***@");
}

/**
 * The `sslrootcert` value for a path: the file's PEM text, or {@linkcode SYSTEM_ROOTS} for
 * the word `system`. A file that cannot be read is a ConfigError naming `key` (where the path
 * was given) and the fix.
 */
export function readRootCertificates(path: string, key = "sslrootcert"): string {
  if (path === SYSTEM_ROOTS) return SYSTEM_ROOTS;
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new ConfigError(
      `Cannot read the CA certificate file "${path}" of ${key}: ${
        (error as Error).message
      }; give the path of a readable PEM file, or system to trust the system's public roots`,
      { cause: error },
    );
  }
}
