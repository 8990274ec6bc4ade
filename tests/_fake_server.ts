/**
 * A fake PostgreSQL server for the protocol cases a real one will not play: silent, flooding,
 * or never reading.
 *
 * @module
 */

import type { ConnectOptions } from "../postgres/connection_string.ts";
import { backendFrame, Bytes, concat, utf8 } from "./testdata/_frames.ts";

/**
 * A TCP server on a free port that runs `serve` for each connection: a fake PostgreSQL that
 * stays silent or floods. Closed by disposing it.
 */
export function fakeServer(
  serve: (conn: Deno.Conn) => Promise<void>,
): AsyncDisposable & { port: number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      serve(conn).catch(() => {});
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    [Symbol.asyncDispose]: () => {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
      return Promise.resolve();
    },
  };
}

/** `promise`, or a failure if it is still pending after `ms`: a hang fails the test. */
export function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms);
  });
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

export function fakeOptions(port: number, overrides: Partial<ConnectOptions> = {}): ConnectOptions {
  return { host: "127.0.0.1", port, user: "u", database: "d", sslmode: "disable", ...overrides };
}

/** Reads from `conn` until what came holds a frontend message of type `code`. */
async function readUntil(conn: Deno.Conn, code: string): Promise<void> {
  const buffer = new Uint8Array(65536);
  let seen = "";
  while (!seen.includes(code)) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`The client closed the connection before sending "${code}"`);
    seen += String.fromCharCode(...buffer.subarray(0, n));
  }
}

/**
 * The server's side up to START_REPLICATION: answers the startup packet (no password,
 * server_version 17.0, ready for a query), then reads until the client asks to stream.
 */
export async function acceptReplication(conn: Deno.Conn): Promise<void> {
  await readUntil(conn, "database"); // the startup packet
  await conn.write(concat(
    backendFrame("R", new Bytes().int32(0).done()),
    backendFrame("S", concat(utf8("server_version\0"), utf8("17.0\0"))),
    backendFrame("Z", utf8("I")),
  ));
  await readUntil(conn, "START_REPLICATION");
}
