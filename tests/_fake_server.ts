/**
 * A fake PostgreSQL server for the protocol cases a real one will not play: silent, flooding,
 * or never reading.
 *
 * @module
 */

import type { ConnectOptions } from "../postgres/connection_string.ts";

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
