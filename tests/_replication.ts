/**
 * Test helpers for integration tests: servers shared by a file's tests, a SQL connection, a
 * raw replication session (slot + stream + decoder) against a harness server, and reading a
 * `ReplicationSource`'s batches within a deadline.
 *
 * @module
 */

import assert from "node:assert/strict";
import { maxProtoVersion, PgConnection, type PgoutputOptions } from "../postgres/connection.ts";
import { type ConnectOptions, parseConnectionUrl } from "../postgres/connection_string.ts";
import { type Lsn, LSN_ZERO } from "../decoder/lsn.ts";
import { PgoutputDecoder, type PgoutputMessage, type ProtoVersion } from "../decoder/pgoutput.ts";
import type { ReplicationStream } from "../postgres/stream.ts";
import type { SourceItem } from "../events.ts";
import type { SourceOptions } from "../source/replication_source.ts";
import {
  type PgServer,
  type PgVersion,
  PRIMARY_VERSION,
  startPostgres,
} from "../testing/embedded_postgres.ts";

/** Servers shared by the tests of one file; see {@linkcode sharedServers}. */
export interface SharedServers {
  /** The server of `version` (default {@linkcode PRIMARY_VERSION}), started on first use. */
  server(version?: PgVersion): Promise<PgServer>;
  /** Stops the server of `version`, if one was started, and forgets it. */
  stop(version: PgVersion): Promise<void>;
  /** Stops every server started so far (the file's last test calls it). */
  stopAll(): Promise<void>;
}

/** How {@linkcode sharedServers} starts each server and sets it up. */
export interface SharedServerOptions {
  /** postgresql.conf settings, as {@linkcode startPostgres} takes them. */
  settings?: Record<string, string>;
  /** pg_hba.conf lines, as {@linkcode startPostgres} takes them. */
  hba?: string[];
  /** Run once the server is up: SQL text, or a function of the server (which knows its version). */
  setup?: string | ((pg: PgServer) => Promise<void>);
}

/**
 * One server per version, started on first use and then set up: by running `setup` as SQL, or
 * as {@linkcode SharedServerOptions} say.
 */
export function sharedServers(setup: string | SharedServerOptions): SharedServers {
  const options = typeof setup === "string" ? { setup } : setup;
  const servers = new Map<PgVersion, Promise<PgServer>>();
  return {
    server(version = PRIMARY_VERSION) {
      let pg = servers.get(version);
      if (pg === undefined) {
        pg = (async () => {
          const started = await startPostgres({
            version,
            settings: options.settings,
            hba: options.hba,
          });
          if (typeof options.setup === "string") await started.psql(options.setup);
          else await options.setup?.(started);
          return started;
        })();
        servers.set(version, pg);
      }
      return pg;
    },
    async stop(version) {
      const pg = servers.get(version);
      servers.delete(version);
      if (pg) await (await pg)[Symbol.asyncDispose]();
    },
    async stopAll() {
      for (const pg of servers.values()) await (await pg)[Symbol.asyncDispose]();
      servers.clear();
    },
  };
}

/** Connection options for a harness server (TLS off unless asked). */
export function connectOptions(
  server: PgServer,
  overrides: Partial<ConnectOptions> = {},
): ConnectOptions {
  return { ...parseConnectionUrl(server.url()), sslmode: "disable", ...overrides };
}

/**
 * Source options for the name a test works under: application name `name`, slot `name`_slot,
 * publication `name`_pub; `extra` adds to them.
 */
export function sourceOptions(
  server: PgServer,
  name: string,
  extra: Partial<SourceOptions> = {},
): SourceOptions {
  return {
    connection: connectOptions(server, { applicationName: name }),
    slot: `${name}_slot`,
    publication: `${name}_pub`,
    ...extra,
  };
}

/** A normal (non-replication) SQL connection to the server as the superuser. */
export function sqlConnection(
  server: PgServer,
  overrides: Partial<ConnectOptions> = {},
): Promise<PgConnection> {
  return PgConnection.connect(connectOptions(server, overrides));
}

/** A decoded message with the XLogData position it came with. */
export interface Received {
  walStart: Lsn;
  message: PgoutputMessage;
}

/** Options of {@linkcode openSession}. */
export interface SessionOptions {
  slot: string;
  publication: string;
  /** Default: the server's highest. */
  protoVersion?: ProtoVersion;
  streaming?: boolean | "parallel";
  binary?: boolean;
  messages?: boolean;
  twoPhase?: boolean;
  origin?: "any" | "none";
  /** Create the slot first (default true); `temporary` makes it a temporary slot. */
  createSlot?: boolean;
  temporary?: boolean;
  startLsn?: Lsn;
  /** Startup GUCs for the walsender, e.g. `{ logical_decoding_work_mem: "64kB" }`. */
  parameters?: Record<string, string>;
  statusIntervalMs?: number;
}

/** A replication session that decodes every XLogData as it arrives. */
export interface Session extends AsyncDisposable {
  connection: PgConnection;
  stream: ReplicationStream;
  decoder: PgoutputDecoder;
  /** Collects messages until `done` returns true for the list so far. */
  collect(done: (received: Received[]) => boolean, timeoutMs?: number): Promise<Received[]>;
  /** Collects until `count` transactions end (Commit, StreamCommit, Prepare, CommitPrepared, RollbackPrepared, StreamPrepare). */
  collectTransactions(count: number, timeoutMs?: number): Promise<Received[]>;
  /** Stops streaming cleanly (CopyDone) and closes the connection. */
  close(): Promise<void>;
}

const ENDS = new Set([
  "Commit",
  "StreamCommit",
  "Prepare",
  "StreamPrepare",
  "CommitPrepared",
  "RollbackPrepared",
]);

/** Opens a replication connection, optionally creates the slot, and starts streaming. */
export async function openSession(server: PgServer, options: SessionOptions): Promise<Session> {
  const connection = await PgConnection.connect(
    connectOptions(server, { replication: "database", parameters: options.parameters }),
  );
  if (options.createSlot ?? true) {
    await connection.createReplicationSlot(options.slot, {
      temporary: options.temporary,
      snapshot: "nothing",
      twoPhase: options.twoPhase,
    });
  }
  const protoVersion = options.protoVersion ?? maxProtoVersion(connection.serverMajorVersion);
  const pgoutput: PgoutputOptions = { protoVersion, publicationNames: [options.publication] };
  if (options.streaming !== undefined) pgoutput.streaming = options.streaming;
  if (options.binary !== undefined) pgoutput.binary = options.binary;
  if (options.messages !== undefined) pgoutput.messages = options.messages;
  if (options.twoPhase !== undefined) pgoutput.twoPhase = options.twoPhase;
  if (options.origin !== undefined) pgoutput.origin = options.origin;
  const stream = await connection.startReplication({
    slot: options.slot,
    startLsn: options.startLsn ?? LSN_ZERO,
    pgoutput,
    statusIntervalMs: options.statusIntervalMs ?? 1000,
  });
  const decoder = new PgoutputDecoder({ protoVersion });
  const pending: Received[] = [];
  let closed = false;

  async function collect(done: (received: Received[]) => boolean, timeoutMs = 15_000) {
    const out: Received[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (pending.length > 0) {
        out.push(pending.shift()!);
        if (done(out)) return out;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new Error(
          `Timed out after ${timeoutMs} ms; received: ${out.map((r) => r.message.type).join(", ")}`,
        );
      }
      const batch = await beforeDeadline(stream.nextBatch(), deadline);
      if (batch === "timeout") continue;
      if (batch === null) throw new Error("The replication stream ended");
      for (const xlog of batch) {
        pending.push({ walStart: xlog.walStart, message: decoder.decode(xlog.data) });
      }
    }
  }

  async function close() {
    if (closed) return;
    closed = true;
    await stream.stop().catch(() => {});
    await connection.close();
  }

  return {
    connection,
    stream,
    decoder,
    collect,
    collectTransactions(count, timeoutMs) {
      let seen = 0;
      return collect((received) => {
        const last = received[received.length - 1]!;
        if (ENDS.has(last.message.type)) seen++;
        return seen >= count;
      }, timeoutMs);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Narrows a received message to one type, failing the test otherwise. */
export function expectType<T extends PgoutputMessage["type"]>(
  received: Received | undefined,
  type: T,
): Extract<PgoutputMessage, { type: T }> {
  if (received?.message.type !== type) {
    throw new Error(`Expected ${type}, got ${received?.message.type ?? "nothing"}`);
  }
  return received.message as Extract<PgoutputMessage, { type: T }>;
}

/** Messages of the given types only (drops Relation/Type/Origin noise when asserting order). */
export function ofTypes(received: Received[], ...types: PgoutputMessage["type"][]): Received[] {
  return received.filter((r) => types.includes(r.message.type));
}

// ---------------------------------------------------------------------------------------------
// Within a deadline

/** What `promise` settles to, or `"timeout"` if `deadline` (a `Date.now()` time) comes first. */
export async function beforeDeadline<T>(
  promise: Promise<T>,
  deadline: number,
): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The next batch of a `ReplicationSource`'s `batches()`; fails with `failures.timeout`
 * if `deadline` (a `Date.now()` time) comes first, with `failures.ended` if the source ended.
 */
export async function nextBatch(
  iterator: AsyncIterator<SourceItem[]>,
  deadline: number,
  failures: { timeout: string; ended: string },
): Promise<SourceItem[]> {
  const next = await beforeDeadline(iterator.next(), deadline);
  assert.notEqual(next, "timeout", failures.timeout);
  const result = next as IteratorResult<SourceItem[]>;
  assert.ok(!result.done, failures.ended);
  return result.value;
}

/**
 * The items of a `ReplicationSource`'s batches until `done(items so far)` holds; fails after
 * `timeoutMs`, or when the source ends.
 */
export async function pullItems(
  iterator: AsyncIterator<SourceItem[]>,
  done: (items: SourceItem[]) => boolean,
  timeoutMs = 15_000,
): Promise<SourceItem[]> {
  const items: SourceItem[] = [];
  const deadline = Date.now() + timeoutMs;
  while (!done(items)) {
    items.push(
      ...await nextBatch(iterator, deadline, {
        timeout: `Timed out; got ${items.map((item) => item.kind).join(", ")}`,
        ended: "The source stopped",
      }),
    );
  }
  return items;
}
