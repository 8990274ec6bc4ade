/**
 * `spillway tail`: print every decoded change as one JSON line.
 *
 * @module
 */

import { type ConnectOptions, redact } from "../postgres/connection_string.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import { type Lsn } from "../decoder/lsn.ts";
import type { ProtoVersion } from "../decoder/pgoutput.ts";
import { JsonRenderer, writeJsonLine } from "../formats/json.ts";
import { confirmableLsn } from "../events.ts";
import { JsonWriter } from "../formats/json_writer.ts";
import { createLogger, type Logger } from "../ops/log.ts";
import { ReplicationSource } from "../source/replication_source.ts";
import { TAIL_SESSION_PREFIX, TailSession } from "../source/publications.ts";
import { writeAll } from "../sinks/mod.ts";
import {
  connectOptionsFromUrl,
  parseCommandArgs,
  parseLogLevel,
  parseLsnFlag,
  stopOnSignal,
} from "./_common.ts";

/** Usage of `spillway tail`. */
export const TAIL_USAGE = `spillway tail <postgres-url> [options]

Connects as a logical replication client and prints each change as a JSON line
(op, before, after, unchanged, source). Without --slot, a temporary slot and
publications are made for this session and removed afterwards: every table's
inserts and truncates, and updates and deletes of the tables with a replica
identity (publishing those of a table without one would make them fail). Tables
that come, go or change identity are followed every few seconds.

Options:
  --slot NAME          read this permanent slot (with --create: create it if missing)
  --publication NAME   use this publication (with --create: create it FOR ALL TABLES if missing,
                       unless a table has no replica identity);
                       with --slot it defaults to the slot's name
  --create             create the named slot and publication when missing
  --from-lsn LSN       start at this LSN (e.g. 0/16B3748) instead of the slot's position
  --tx                 also print begin/commit lines
  --proto N            pgoutput proto_version 1-4 (default: the highest the server supports)
  --streaming MODE     off (default), on or parallel: large transactions arrive before commit
  --binary             ask for binary column values
  --no-messages        do not ask for pg_logical_emit_message messages
  --log-level LEVEL    debug, info (default), warn, error
  --log-json           logs as JSON lines on stderr
  -h, --help           this help

The URL may carry sslmode (disable, prefer, require, verify-ca, verify-full),
sslrootcert (a file, or system) and application_name: postgres://user@host:5432/db?sslmode=require.
What it leaves out comes from PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE, PGSSLROOTCERT and
PGAPPNAME; the password from PGPASSWORD or the password file (PGPASSFILE, ~/.pgpass), so it
need not be on the command line.`;

/** Runs `spillway tail <postgres-url> [options]` and returns the exit code. */
export async function tailCommand(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(TAIL_USAGE, args, {
    slot: { type: "string" },
    publication: { type: "string" },
    create: { type: "boolean" },
    "from-lsn": { type: "string" },
    tx: { type: "boolean" },
    proto: { type: "string" },
    streaming: { type: "string" },
    binary: { type: "boolean" },
    "no-messages": { type: "boolean" },
    "log-level": { type: "string" },
    "log-json": { type: "boolean" },
  }, { positionals: 1 });
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  const url = parsed.positionals[0]!; // one, checked above
  const proto = values.proto === undefined ? undefined : Number(values.proto);
  if (proto !== undefined && ![1, 2, 3, 4].includes(proto)) {
    throw new ConfigError(`Cannot use --proto "${values.proto}": expected 1, 2, 3 or 4`);
  }
  const streamingFlag = values.streaming ?? "off";
  if (!["off", "on", "parallel"].includes(streamingFlag)) {
    throw new ConfigError(
      `Cannot use --streaming "${streamingFlag}": expected off, on or parallel`,
    );
  }
  const level = parseLogLevel(values["log-level"] ?? "info");
  const log = createLogger({ level, json: values["log-json"] });
  using stopping = stopOnSignal(log, "Stopping; press Ctrl-C again to exit at once");
  const connection = connectOptionsFromUrl(url);
  log("info", "Connecting", { url: redact(url) });
  const count = await tail({
    connection,
    slot: values.slot,
    publication: values.publication,
    create: values.create,
    fromLsn: values["from-lsn"] === undefined
      ? undefined
      : parseLsnFlag("--from-lsn", values["from-lsn"]),
    transactions: values.tx,
    protoVersion: proto as ProtoVersion | undefined,
    streaming: streamingFlag === "parallel" ? "parallel" : streamingFlag === "on",
    binary: values.binary,
    messages: !values["no-messages"],
    signal: stopping.signal,
    log,
  });
  log("info", "Stopped", { changes: count });
  return 0;
}

/** Options of {@linkcode tail}. */
export interface TailOptions {
  connection: ConnectOptions;
  /** A permanent slot to read; without it a temporary slot is made for this session. */
  slot?: string;
  /**
   * Without it (and without `slot`), this session makes its publications and drops them
   * after (see {@linkcode TailSession}).
   */
  publication?: string;
  /** Create the named slot and publication when missing. */
  create?: boolean;
  fromLsn?: Lsn;
  /** Print begin/commit lines too. */
  transactions?: boolean;
  protoVersion?: ProtoVersion;
  streaming?: boolean | "parallel";
  binary?: boolean;
  messages?: boolean;
  signal?: AbortSignal;
  log: Logger;
  /** How often a session's UPDATE/DELETE publication is brought in step with the tables. */
  refreshMs?: number;
  /** Where lines go; default stdout. The bytes are reused once the promise settles. */
  write?: (bytes: Uint8Array) => Promise<void>;
}

function writeStdout(bytes: Uint8Array): Promise<void> {
  return writeAll(Deno.stdout, bytes);
}

/** Streams until the signal aborts; returns the number of change events printed. */
export async function tail(options: TailOptions): Promise<number> {
  // Without a slot or publication, the session makes its own and removes them at the end. A
  // session publication is newer than a permanent slot's position, and decoding from there
  // fails (the publication "does not exist" in the past): with --slot, the publication is
  // stable — named after the slot unless given — and never dropped.
  const temporary = options.slot === undefined;
  const session = temporary && options.publication === undefined
    ? await TailSession.begin({
      connection: options.connection,
      log: options.log,
      signal: options.signal,
    }).catch((error) => {
      if (options.signal?.aborted) return null;
      throw error;
    })
    : undefined;
  if (session === null) return 0;
  const refresh = session === undefined ? undefined : setInterval(() => {
    session.refresh().catch((error) =>
      options.log("warn", "Could not update the session publication", {
        error: errorMessage(error),
      })
    );
  }, options.refreshMs ?? 5_000);
  if (refresh !== undefined) Deno.unrefTimer(refresh);
  try {
    return await stream(options, session);
  } finally {
    clearInterval(refresh);
    await session?.end();
  }
}

async function stream(options: TailOptions, session: TailSession | undefined): Promise<number> {
  const slot = options.slot ?? session?.slot ??
    `${TAIL_SESSION_PREFIX}${Deno.pid}_${Date.now().toString(36)}`;
  const source = await ReplicationSource.open({
    connection: options.connection,
    slot,
    temporarySlot: options.slot === undefined,
    createSlot: options.create ?? false,
    publication: session?.inserts ?? options.publication ?? slot,
    extraPublications: session === undefined ? [] : [session.keyed],
    createPublication: session === undefined && (options.create ?? false),
    startLsn: options.fromLsn,
    protoVersion: options.protoVersion,
    streaming: options.streaming,
    binary: options.binary,
    messages: options.messages,
    signal: options.signal,
    log: options.log,
  }).catch((error) => {
    // Stopped before streaming began (a server that never answered, say): a clean stop.
    if (options.signal?.aborted) return null;
    throw error;
  });
  if (source === null) return 0;
  const write = options.write ?? writeStdout;
  const renderer = new JsonRenderer(source.assembler.types);
  const out = new JsonWriter();
  let changes = 0;
  try {
    // On abort the loop ends after the batch in hand is printed and confirmed.
    for await (const batch of source.batches(options.signal)) {
      let confirm: Lsn | null = null;
      out.reset();
      for (const item of batch) {
        writeJsonLine(out, item, options.transactions ?? false, renderer);
        if (item.kind === "change") changes++;
        confirm = confirmableLsn(item) ?? confirm;
      }
      if (out.length > 0) await write(out.bytes());
      // Printed lines are delivered: let the slot move past them.
      if (confirm !== null) source.confirm(confirm);
    }
  } finally {
    await source.close();
  }
  return changes;
}
