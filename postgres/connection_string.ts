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

/** An authentication method a server may ask for, as `require_auth` names them. */
export type AuthMethod = "password" | "md5" | "scram-sha-256" | "none";

const AUTH_METHODS: readonly AuthMethod[] = ["password", "md5", "scram-sha-256", "none"];

/** The start-up deadline when none is given: a server that never answers is noticed. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;

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
  /**
   * The authentication methods the server may ask for (libpq's `require_auth`): any of
   * `password`, `md5`, `scram-sha-256`, `none`. Unset allows them all.
   */
  requireAuth?: readonly AuthMethod[];
  /**
   * `require`: authenticate only with SCRAM channel binding (SCRAM-SHA-256-PLUS over TLS), so
   * a man in the middle cannot relay the login (libpq's `channel_binding`). Default `prefer`.
   */
  channelBinding?: "prefer" | "require";
  /** Extra startup parameters (GUCs such as `DateStyle`). */
  parameters?: Record<string, string>;
  /**
   * Deadline for the whole start-up: TCP connect, TLS, authentication, until the server is
   * ready for queries (libpq's `connect_timeout`). Default {@linkcode DEFAULT_CONNECT_TIMEOUT_MS}.
   */
  connectTimeoutMs?: number;
  /**
   * The largest message accepted from the server, in bytes (a replication message carries one
   * row change); a bigger one ends the connection with a FrameTooLargeError. Default
   * `MAX_FRAME_BYTES` of `decoder/backend.ts`: PostgreSQL's own limit.
   */
  maxMessageBytes?: number;
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

/** Environment variables as libpq reads them (`PGHOST`, `PGPASSWORD`, …), by name. */
export type LibpqEnv = Readonly<Record<string, string | undefined>>;

/**
 * Parses `postgres://user:password@host:port/database?sslmode=…&sslrootcert=…`.
 *
 * What the URL leaves out comes, as in libpq, from its query parameters (`host`, `port`,
 * `user`, `password`, `dbname`), then from `env`: `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
 * `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGAPPNAME`, and a password from the password
 * file (`PGPASSFILE`, or `~/.pgpass`) when none was given. Pass `Deno.env.toObject()` to read
 * the process's environment; the default reads none. `sslrootcert` names a file; it is read
 * here, as is the password file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConnectionUrl } from "./connection_string.ts";
 * const options = parseConnectionUrl("postgres://app:s3cret@db.local:6543/shop");
 * assert(options.port === 6543 && options.database === "shop");
 * const fromEnv = parseConnectionUrl("postgres:///shop", { PGHOST: "db", PGPASSWORD: "pw" });
 * assert(fromEnv.host === "db" && fromEnv.password === "pw" && fromEnv.database === "shop");
 * ```
 */
export function parseConnectionUrl(url: string, env: LibpqEnv = {}): ConnectOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(
      `Cannot parse connection URL "${
        redact(url)
      }": expected postgres://user:password@host:port/database (percent-encode "@", ":", "/", "?" and "#" in the user name and password)`,
    );
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new ConfigError(
      `Cannot use connection URL "${redact(url)}": the scheme must be postgres:// or postgresql://`,
    );
  }
  const params = parsed.searchParams;
  const sslmode = params.get("sslmode") ?? env.PGSSLMODE ?? "prefer";
  if (!(SSL_MODES as readonly string[]).includes(sslmode)) {
    throw new ConfigError(
      `Cannot use sslmode "${sslmode}": expected disable, prefer, require, verify-ca or verify-full`,
    );
  }
  const user = decodePart(parsed.username, "user name", url) || params.get("user") ||
    env.PGUSER || "postgres";
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1") || params.get("host") ||
    env.PGHOST || "localhost";
  const port = Number(parsed.port || params.get("port") || env.PGPORT || 5432);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(
      `Cannot use connection URL "${redact(url)}": the port must be a number from 1 to 65535`,
    );
  }
  const database = decodePart(parsed.pathname.replace(/^\//, ""), "database name", url) ||
    params.get("dbname") || env.PGDATABASE || user;
  const password = decodePart(parsed.password, "password", url) || params.get("password") ||
    env.PGPASSWORD || passwordFromFile(env, { host, port, database, user });
  const rootCertPath = params.get("sslrootcert") ?? env.PGSSLROOTCERT;
  const requireAuth = parseRequireAuth(params.get("require_auth") ?? env.PGREQUIREAUTH);
  const channelBinding = params.get("channel_binding") ?? env.PGCHANNELBINDING ?? "prefer";
  if (channelBinding !== "prefer" && channelBinding !== "require" && channelBinding !== "disable") {
    throw new ConfigError(
      `Cannot use channel_binding "${channelBinding}": expected disable, prefer or require`,
    );
  }
  const timeout = params.get("connect_timeout") ?? env.PGCONNECT_TIMEOUT;
  const timeoutSeconds = timeout === undefined ? undefined : Number(timeout);
  if (timeoutSeconds !== undefined && !(Number.isFinite(timeoutSeconds) && timeoutSeconds > 0)) {
    throw new ConfigError(
      `Cannot use connect_timeout "${timeout}": expected a number of seconds above 0`,
    );
  }
  return {
    host,
    port,
    user,
    password: password || undefined,
    database,
    sslmode: sslmode as SslMode,
    sslrootcert: rootCertPath ? readRootCertificates(rootCertPath) : undefined,
    applicationName: params.get("application_name") ?? env.PGAPPNAME ?? undefined,
    ...(timeoutSeconds === undefined ? {} : { connectTimeoutMs: timeoutSeconds * 1000 }),
    ...(requireAuth === undefined ? {} : { requireAuth }),
    ...(channelBinding === "require" ? { channelBinding: "require" as const } : {}),
  };
}

/**
 * `require_auth` as libpq writes it: methods separated by commas, or all of them but those
 * named with `!` (`!password,!md5`).
 */
function parseRequireAuth(text: string | undefined): AuthMethod[] | undefined {
  if (text === undefined || text === "") return undefined;
  const names = text.split(",").map((name) => name.trim());
  const negated = names.every((name) => name.startsWith("!"));
  if (!negated && names.some((name) => name.startsWith("!"))) {
    throw new ConfigError(
      `Cannot use require_auth "${text}": name the methods to allow, or those to refuse with "!", not both`,
    );
  }
  const listed = names.map((name) => name.replace(/^!/, ""));
  for (const name of listed) {
    if (!(AUTH_METHODS as readonly string[]).includes(name)) {
      throw new ConfigError(
        `Cannot use require_auth "${text}": "${name}" is not one of ${AUTH_METHODS.join(", ")}`,
      );
    }
  }
  return negated
    ? AUTH_METHODS.filter((method) => !listed.includes(method))
    : listed as AuthMethod[];
}

/** A percent-decoded part of the URL, or a ConfigError naming the part (never its value). */
function decodePart(text: string, part: string, url: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new ConfigError(
      `Cannot use connection URL "${
        redact(url)
      }": its ${part} has a "%" that starts no percent-encoded byte; write "%" as %25`,
    );
  }
}

/**
 * The password for a server from the password file (`PGPASSFILE`, or `~/.pgpass`), as libpq
 * reads it: lines `host:port:database:user:password`, `*` matching anything, `\:` and `\\`
 * escaped, the first matching line winning. `undefined` without a file or a matching line.
 */
function passwordFromFile(
  env: LibpqEnv,
  target: { host: string; port: number; database: string; user: string },
): string | undefined {
  const file = env.PGPASSFILE ?? (env.HOME === undefined ? undefined : `${env.HOME}/.pgpass`);
  if (file === undefined) return undefined;
  let text: string;
  try {
    const mode = Deno.statSync(file).mode;
    if (mode !== null && (mode & 0o077) !== 0) {
      throw new ConfigError(
        `Cannot use the password file "${file}": others can read it; chmod 600 "${file}"`,
      );
    }
    text = Deno.readTextFileSync(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`Cannot read the password file "${file}": ${(error as Error).message}`);
  }
  const wanted = [target.host, String(target.port), target.database, target.user];
  for (const line of text.split(/\r?\n/)) {
    if (line === "" || line.startsWith("#")) continue;
    const fields = splitPassLine(line);
    if (fields.length < 5) continue;
    if (wanted.every((value, i) => fields[i] === "*" || fields[i] === value)) {
      return fields.slice(4).join(":");
    }
  }
  return undefined;
}

/** A password-file line split at unescaped colons, escapes removed. */
function splitPassLine(line: string): string[] {
  const fields: string[] = [];
  let field = "";
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (char === "\\" && i + 1 < line.length) {
      field += line[i + 1]!;
      i++;
    } else if (char === ":") {
      fields.push(field);
      field = "";
    } else {
      field += char;
    }
  }
  fields.push(field);
  return fields;
}

/**
 * Hides the password of a URL for messages: the one in the user info (a user name or password
 * may hold a raw "@": the host starts after the last "@" before the path) and a `password`
 * query parameter.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { redact } from "./connection_string.ts";
 * assert.equal(redact("postgres://app:s3cret@db/shop"), "postgres://app:***@db/shop");
 * assert.equal(redact("postgres://app:p@ss@db/shop?x=a@b"), "postgres://app:***@db/shop?x=a@b");
 * assert.equal(redact("postgres://us@er:pw@db/shop"), "postgres://us@er:***@db/shop");
 * assert.equal(
 *   redact("postgres://app@db/shop?password=pw&x=1"),
 *   "postgres://app@db/shop?password=***&x=1",
 * );
 * ```
 */
export function redact(url: string): string {
  const start = url.indexOf("//");
  if (start === -1) return url;
  const rest = url.slice(start + 2);
  const pathAt = rest.search(/[/?#]/);
  const authority = pathAt === -1 ? rest : rest.slice(0, pathAt);
  const tail = pathAt === -1 ? "" : rest.slice(pathAt);
  const at = authority.lastIndexOf("@");
  let shown = authority;
  if (at !== -1) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.lastIndexOf(":");
    if (colon !== -1) shown = `${userinfo.slice(0, colon)}:***${authority.slice(at)}`;
  }
  const query = tail.replace(/([?&]password=)[^&#]*/gi, "$1***");
  return `${url.slice(0, start + 2)}${shown}${query}`;
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
