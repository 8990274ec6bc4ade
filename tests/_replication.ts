/**
 * Test helpers for integration tests: servers shared by a file's tests, a SQL connection and a
 * raw replication session (slot + stream + decoder) against a harness server.
 *
 * @module
 */

import { maxProtoVersion, PgConnection, type PgoutputOptions } from "../postgres/connection.ts";
import { type ConnectOptions, parseConnectionUrl } from "../postgres/connection_string.ts";
import { type Lsn, LSN_ZERO } from "../decoder/lsn.ts";
import { PgoutputDecoder, type PgoutputMessage, type ProtoVersion } from "../decoder/pgoutput.ts";
import type { ReplicationStream } from "../postgres/stream.ts";
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
  /** Stops every server started so far (the file's last test calls it). */
  stopAll(): Promise<void>;
}

/** One server per version, started on first use and then set up by running `setupSql`. */
export function sharedServers(setupSql: string): SharedServers {
  const servers = new Map<PgVersion, Promise<PgServer>>();
  return {
    server(version = PRIMARY_VERSION) {
      let pg = servers.get(version);
      if (pg === undefined) {
        pg = (async () => {
          const started = await startPostgres({ version });
          await started.psql(setupSql);
          return started;
        })();
        servers.set(version, pg);
      }
      return pg;
    },
    async stopAll() {
      for (const pg of servers.values()) await (await pg)[Symbol.asyncDispose]();
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
      let timer: ReturnType<typeof setTimeout> | undefined;
      const batch = await Promise.race([
        stream.nextBatch(),
        new Promise<"timeout">((resolve) =>
          timer = setTimeout(() => resolve("timeout"), remaining)
        ),
      ]);
      clearTimeout(timer);
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
