/**
 * The `source` section: connection URL, slot, publication, protocol options and the
 * reconnect policy.
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import {
  parseConnectionUrl,
  redact,
  SSL_MODES,
  SYSTEM_ROOTS,
} from "../postgres/connection_string.ts";
import type { Scalar } from "npm:yaml@2.9.1";
import { SLOT_NAME } from "../postgres/sql.ts";
import { type Lsn, parseLsn } from "../decoder/lsn.ts";
import type { ProtoVersion } from "../decoder/pgoutput.ts";
import { formatDuration, formatSize, parseSize, SIZE_PATTERN } from "./units.ts";
import { DEFAULT_STREAMING, type ReconnectConfig, type SourceConfig } from "./types.ts";
import { type Checker, describe, quote, type ScalarValue, type Section } from "./_yaml.ts";
import {
  boolean,
  choice,
  duration,
  filePath,
  nullable,
  orVariable,
  type Reader,
  string,
  unquotedHint,
} from "./_readers.ts";
import { defaultsOf, sectionReader, type SectionSpec } from "./_fields.ts";

const URL_EXPECTED = "a connection URL like postgres://user:password@host:5432/database";
const encoder = new TextEncoder();

const CA_FILE = filePath("a path to a CA certificate file, or system");

/** `sslrootcert`: a CA file, resolved against the pipeline file, or the word `system`. */
const rootCertificates: Reader<string> = {
  ...CA_FILE,
  read: (checker, field) => {
    const scalar = checker.scalar(field, CA_FILE.expected);
    if (scalar === undefined) return undefined;
    return scalar.value === SYSTEM_ROOTS ? SYSTEM_ROOTS : CA_FILE.read(checker, field);
  },
};

const STATE_FILE = filePath("a file path, or off");

/** `state_file`: a path resolved against the pipeline file, or `off` (`false`). */
const stateFile: Reader<string | false> = {
  ...STATE_FILE,
  read: (checker, field) => {
    const scalar = checker.scalar(field, STATE_FILE.expected);
    if (scalar === undefined) return undefined;
    return scalar.value === "off" || scalar.value === false
      ? false
      : STATE_FILE.read(checker, field);
  },
};

/**
 * How a `${VAR}` value is written into `source.url`, given the URL before it (as substituted)
 * and the template after it: percent-encoded where it lands in the user info, the path (the
 * database name) or a query parameter's value, so `@ : / ? # % & + =` in a password stay part
 * of it; as it is elsewhere (a whole URL from one variable, a host, a port, a query key).
 * The user info is what comes before the authority's last `@`, as the URL parser splits it,
 * so a reference is in it when an `@` follows it within the authority.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeUrlValue } from "./source.ts";
 * const at = (before: string, after: string) => encodeUrlValue("p@ss/50%", { before, after });
 * assert.equal(at("postgres://u:", "@db/app"), "p%40ss%2F50%25");
 * assert.equal(at("postgres://u:p@ss", "@db/app"), "p%40ss%2F50%25");
 * assert.equal(at("postgres://u@db/", "?sslmode=require"), "p%40ss%2F50%25");
 * assert.equal(at("postgres://u@db/app?password=", "&sslmode=require"), "p%40ss%2F50%25");
 * assert.equal(at("postgres://", ":5432/app"), "p@ss/50%");
 * assert.equal(at("postgres://u@db/app?", ""), "p@ss/50%");
 * assert.equal(at("", ""), "p@ss/50%");
 * ```
 */
export function encodeUrlValue(value: string, place: { before: string; after: string }): string {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(place.before);
  if (scheme === null) return value; // the URL itself, or its scheme
  const rest = place.before.slice(scheme[0].length);
  const authorityEnd = rest.search(/[/?#]/);
  if (authorityEnd === -1) {
    // In the authority: the user info when an "@" follows within it.
    return /^[^/?#]*@/.test(place.after) ? encode(value) : value;
  }
  const tail = rest.slice(authorityEnd);
  if (tail.includes("#")) return value; // the fragment, which the connection ignores
  const query = tail.indexOf("?");
  if (query === -1) return encode(value); // the path: the database name
  const parameter = tail.slice(query + 1).split("&").at(-1)!;
  return parameter.includes("=") ? encode(value) : value;
}

/** Percent-encodes every character that is not unreserved (a lone surrogate as U+FFFD). */
function encode(value: string): string {
  return encodeURIComponent(value.toWellFormed());
}

/**
 * The URL quoted for a message, its password hidden. When `${VAR}` values were substituted
 * into it, the URL as written in the file: a value may hold a password where `redact` would
 * not find it (one that breaks the URL's syntax, say).
 */
function shown(url: string, template: string | null): string {
  return quote(redact(template ?? url));
}

const URL_READER: Reader<string> = {
  expected: URL_EXPECTED,
  jsonSchema: orVariable({
    type: "string",
    pattern: "^[Pp][Oo][Ss][Tt][Gg][Rr][Ee][Ss](?:[Qq][Ll])?://",
  }),
  read: (checker, field) => {
    const scalar = checker.scalar(field, URL_EXPECTED, encodeUrlValue);
    if (scalar === undefined) return undefined;
    const value = scalar.text ?? scalar.value;
    if (typeof value !== "string") {
      return checker.fail(field, URL_EXPECTED, describe(field.node, value));
    }
    // With substituted values, messages show the URL as written, never the values.
    const template = scalar.text === null ? null : String((field.node as Scalar).value);
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== "postgres:" && url.protocol !== "postgresql:")) {
      return checker.fail(field, URL_EXPECTED, shown(value, template));
    }
    const sslmode = url.searchParams.get("sslmode");
    if (sslmode !== null && !(SSL_MODES as readonly string[]).includes(sslmode)) {
      const modes = SSL_MODES.map(quote).join(", ");
      return checker.fail(field, `the URL's sslmode to be one of ${modes}`, quote(sslmode));
    }
    // The rest of what the connection will reject (a bad port or percent-encoding, say), at
    // the key's line rather than when the pipeline connects.
    try {
      parseConnectionUrl(value, {});
    } catch (error) {
      let message = errorMessage(error);
      // Its messages show the URL redacted, which may miss a substituted password.
      if (template !== null) message = message.replaceAll(redact(value), redact(template));
      checker.report(field.offset, `"${field.path}": ${message}`);
      return undefined;
    }
    return value;
  },
};

/**
 * The least `max_message_size`: the limit also applies to the startup and catalog
 * connections, whose answers (a catalog query's rows, say) must fit.
 */
const MIN_MESSAGE_BYTES = 2 ** 20;
const MESSAGE_SIZE_EXPECTED = `a size of at least ${formatSize(MIN_MESSAGE_BYTES)}, like 64MiB`;

/** `max_message_size`: a size of at least {@linkcode MIN_MESSAGE_BYTES}. */
const MESSAGE_SIZE: Reader<number> = {
  expected: MESSAGE_SIZE_EXPECTED,
  jsonSchema: orVariable({
    anyOf: [
      { type: "string", pattern: SIZE_PATTERN },
      { type: "integer", minimum: MIN_MESSAGE_BYTES },
    ],
  }),
  read: (checker, field) => {
    const scalar = checker.scalar(field, MESSAGE_SIZE_EXPECTED);
    if (scalar === undefined) return undefined;
    const value = scalar.value;
    const bytes = typeof value === "string" || typeof value === "number"
      ? parseSize(value)
      : undefined;
    if (bytes === undefined || bytes < MIN_MESSAGE_BYTES) {
      const found = describe(field.node, value);
      const shownBytes = bytes === undefined || typeof value === "number"
        ? ""
        : ` (${bytes} bytes)`;
      return checker.fail(field, MESSAGE_SIZE_EXPECTED, found + shownBytes);
    }
    return bytes;
  },
  represent: formatSize,
};

const LSN_EXPECTED = "an LSN like 16/B374D848";

const LSN_READER: Reader<Lsn> = {
  expected: LSN_EXPECTED,
  jsonSchema: orVariable({
    type: "string",
    pattern: "^\\s*[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}\\s*$",
  }),
  read: (checker, field) => {
    const scalar = checker.scalar(field, LSN_EXPECTED);
    if (scalar === undefined) return undefined;
    const value = scalar.text ?? scalar.value;
    if (typeof value === "string") {
      try {
        return parseLsn(value);
      } catch {
        // Reported below.
      }
    }
    return checker.fail(field, LSN_EXPECTED, describe(field.node, value));
  },
};

const MAX_ATTEMPTS_EXPECTED = "an integer of at least 1, or unlimited";

const MAX_ATTEMPTS: Reader<number> = {
  expected: MAX_ATTEMPTS_EXPECTED,
  jsonSchema: orVariable({ anyOf: [{ type: "integer", minimum: 1 }, { enum: ["unlimited"] }] }),
  read: (checker, field) => {
    const scalar = checker.scalar(field, MAX_ATTEMPTS_EXPECTED);
    if (scalar === undefined) return undefined;
    const value = scalar.value;
    if (value === "unlimited") return Infinity;
    const fits = (v: ScalarValue) => typeof v === "number" && Number.isSafeInteger(v) && v >= 1;
    if (typeof value === "number" && fits(value)) return value;
    return checker.fail(
      field,
      MAX_ATTEMPTS_EXPECTED,
      describe(field.node, value) + unquotedHint(value, fits),
    );
  },
  represent: (attempts) => attempts === Infinity ? "unlimited" : attempts,
};

/** `source.reconnect`. */
const RECONNECT: SectionSpec<ReconnectConfig> = {
  expected: "a map with max_attempts, initial_delay and max_delay",
  fields: {
    maxAttempts: {
      key: "max_attempts",
      reader: MAX_ATTEMPTS,
      default: 10,
      doc: "Connection attempts in all before the pipeline stops, or unlimited.",
    },
    initialDelayMs: {
      key: "initial_delay",
      reader: duration(),
      default: 250,
      doc: "Delay before the first retry; later delays grow up to max_delay.",
    },
    maxDelayMs: {
      key: "max_delay",
      reader: duration(),
      default: 15_000,
      doc: "Longest delay between attempts; at least initial_delay.",
    },
  },
  check: (checker, section, { initialDelayMs, maxDelayMs }) => {
    const field = section.get("max_delay") ?? section.get("initial_delay");
    if (initialDelayMs === undefined || maxDelayMs === undefined || field === undefined) return;
    if (maxDelayMs < initialDelayMs) {
      checker.fail(
        field,
        `max_delay to be at least initial_delay (${formatDuration(initialDelayMs)})`,
        formatDuration(maxDelayMs),
      );
    }
  },
};

/** The `source` section. */
export const SOURCE: SectionSpec<SourceConfig> = {
  expected: "a map with url, slot and publication",
  fields: {
    url: {
      key: "url",
      reader: URL_READER,
      required: URL_EXPECTED,
      doc: "Connection URL, postgres:// or postgresql://, with an optional sslmode. " +
        "Write the password as ${VAR} to keep it out of the file. Values of ${VAR} are " +
        "percent-encoded where they land (user info, path, query values), so write them raw; " +
        "a whole URL from one variable, or a host or port, goes in as it is.",
    },
    slot: {
      key: "slot",
      reader: string("a slot name of 1 to 63 lower-case letters, digits or underscores", SLOT_NAME),
      required: "a slot name like orders_cdc",
      doc: "Replication slot: 1 to 63 of a-z, 0-9 and _. Kept across restarts, so the " +
        "pipeline resumes where it stopped.",
    },
    publication: {
      key: "publication",
      reader: string(
        "a publication name of 1 to 63 bytes",
        (v) => encoder.encode(v).length <= 63,
        { maxLength: 63 },
      ),
      required: "a publication name like orders_pub",
      doc: "Publication of the tables to follow: 1 to 63 bytes.",
    },
    createSlot: {
      key: "create_slot",
      reader: boolean,
      default: true,
      doc: "Create the slot when it does not exist.",
    },
    createPublication: {
      key: "create_publication",
      reader: boolean,
      default: true,
      doc:
        'Create the publication when it does not exist: FOR TABLE the matched tables, or FOR ALL TABLES for a "*" entry.',
    },
    failover: {
      key: "failover",
      reader: boolean,
      default: false,
      doc: "Make a failover slot (PostgreSQL 17+), synchronized to standbys.",
    },
    twoPhase: {
      key: "two_phase",
      reader: boolean,
      default: false,
      doc: "Two-phase decoding (proto_version 3 or later). The runner refuses it: a " +
        "prepared transaction would reach the sinks as committed.",
    },
    protoVersion: {
      key: "proto_version",
      reader: choice<"auto" | ProtoVersion>(["auto", 1, 2, 3, 4]),
      default: "auto",
      doc: "pgoutput protocol version 1 to 4, or auto for the highest the server supports. " +
        "streaming: on needs 2, parallel 4, two_phase 3.",
    },
    streaming: {
      key: "streaming",
      reader: choice(["off", "on", "parallel"] as const, { false: "off", true: "on" }),
      default: DEFAULT_STREAMING,
      doc: "off: a transaction arrives after its commit (the server spills big ones to its " +
        "disk). on: big transactions arrive while they run (Spillway spills them). " +
        "parallel: as on, in protocol version 4's parallel mode. false and true mean off " +
        "and on.",
    },
    binary: {
      key: "binary",
      reader: boolean,
      default: false,
      doc: "Binary column values from the server (the same typed values as text).",
    },
    captureDdl: {
      key: "capture_ddl",
      reader: boolean,
      default: false,
      doc: "Send each DDL command's tag, objects and statement text into the stream, inside " +
        "its own transaction, as a message with prefix spillway.ddl. At start Spillway " +
        "installs, once per database, the function spillway.spillway_capture_ddl() and the " +
        "event triggers spillway_capture_ddl and spillway_capture_ddl_drop, which only a " +
        "superuser may create; spillway check shows the SQL, and how to remove them.",
    },
    heartbeatMs: {
      key: "heartbeat",
      reader: duration({ off: true }),
      default: 10_000,
      doc: "Period of the heartbeat message that keeps the slot moving on an idle " +
        "database; 0 or off disables it.",
    },
    statusIntervalMs: {
      key: "status_interval",
      reader: duration(),
      default: 10_000,
      doc:
        "Period of the standby status updates sent to the server; never more than a third of the server's wal_sender_timeout, and 10s at most.",
    },
    startLsn: {
      key: "start_lsn",
      reader: nullable(LSN_READER),
      default: null,
      doc: "Start at this LSN instead of the slot's confirmed position (only later than " +
        "it); null for the slot's.",
    },
    reconnect: {
      key: "reconnect",
      reader: sectionReader(RECONNECT),
      default: defaultsOf(RECONNECT),
      doc: "Reconnecting after the connection to the server is lost.",
    },
    sslmode: {
      key: "sslmode",
      reader: nullable(choice(SSL_MODES)),
      default: null,
      doc: "Overrides the URL's sslmode; null keeps the URL's.",
    },
    sslrootcert: {
      key: "sslrootcert",
      reader: nullable(rootCertificates),
      default: null,
      doc:
        "CA certificate file, relative to the pipeline file, or system for the runtime's public roots; null keeps the URL's (without one, verify-ca and verify-full use ~/.postgresql/root.crt).",
    },
    maxMessageBytes: {
      key: "max_message_size",
      reader: MESSAGE_SIZE,
      default: 2 ** 30,
      doc:
        "Largest replication message accepted (one row change with its values); a bigger one stops the pipeline naming the table. Default 1GiB, PostgreSQL's own limit; lower it to bound memory, but not below 1MiB: the limit also applies to the startup and catalog connections.",
    },
    stateFile: {
      key: "state_file",
      reader: nullable(stateFile),
      default: null,
      doc:
        "File recording the slot's cluster and the confirmed position (the server never hears of one the file does not hold), relative to the pipeline file; null for <pipeline file name>.state.json beside it when that can be written; off for none. With it, a start that would skip changes (the slot gone or made again, another cluster, a server behind the file) is refused; spillway run --reset-slot accepts the gap.",
    },
  },
  check: checkProtoVersion,
};

/** A fixed `proto_version` must support the streaming mode and two-phase setting asked for. */
function checkProtoVersion(
  checker: Checker,
  section: Section,
  options: Partial<Pick<SourceConfig, "protoVersion" | "streaming" | "twoPhase">>,
): void {
  const { protoVersion, streaming, twoPhase } = options;
  if (protoVersion === undefined || protoVersion === "auto" || streaming === undefined) return;
  const needed = streaming === "parallel" ? 4 : streaming === "on" ? 2 : 1;
  const streamingField = section.get("streaming");
  const versionField = section.get("proto_version");
  if (protoVersion < needed && streamingField !== undefined) {
    checker.fail(
      streamingField,
      `"off" with proto_version ${protoVersion} (streaming ${
        quote(streaming)
      } needs ${needed} or later)`,
    );
  } else if (protoVersion < needed && versionField !== undefined) {
    checker.fail(
      versionField,
      `${needed} or later for the default streaming ${quote(streaming)} (or set streaming: off)`,
    );
  }
  const twoPhaseField = section.get("two_phase");
  if (twoPhase && protoVersion < 3 && twoPhaseField !== undefined) {
    checker.fail(
      twoPhaseField,
      `false with proto_version ${protoVersion} (two_phase needs 3 or later)`,
    );
  }
}
