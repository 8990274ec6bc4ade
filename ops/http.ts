/**
 * The operations HTTP server: `GET /health` (JSON report) and `GET /metrics`
 * (Prometheus text), on the address of the pipeline's `http.listen`.
 *
 * The server is a small HTTP/1.1 server over `Deno.listen` rather than `Deno.serve`, which
 * has no header timeout, idle timeout or connection cap, and whose accept loop turned a
 * "Too many open files" into an uncaught error that stopped the pipeline. Here a client
 * has a bounded time to send its request, kept-alive connections are dropped when idle,
 * a new connection at the cap replaces the one that has waited longest for a request
 * (a client sending nothing cannot lock out the probes), request bodies are never read
 * (such a request is answered, then the connection is closed), closing gives responses
 * in flight a short grace and no more, and an accept error is logged and retried after a
 * short pause: nothing a client does, and no lack of file descriptors, can stop the
 * pipeline through this server or hold up its shutdown.
 *
 * @module
 */

import { ConfigError, errorMessage } from "../errors.ts";
import { healthHttpStatus, type HealthRegistry } from "./health.ts";
import { jsonReplacer, type Logger, silentLogger } from "./log.ts";
import { type MetricsRegistry, PROMETHEUS_CONTENT_TYPE } from "./prometheus.ts";

/** What {@linkcode createHttpHandler} serves. */
export interface HttpHandlerOptions {
  metrics: MetricsRegistry;
  health: HealthRegistry;
  log?: Logger;
}

/** Options of {@linkcode startHttpServer}. */
export interface HttpServerOptions extends HttpHandlerOptions {
  /** `host:port`, `[v6]:port`, `:port` or `port`; port 0 picks a free port. */
  listen: string;
  /** Closes the server when aborted. */
  signal?: AbortSignal;
  /**
   * Milliseconds a client has to send a whole request line and headers, counted from
   * connecting (or, on a kept-alive connection, from the first byte of the next request);
   * a client still sending then is disconnected. Default 10 000.
   */
  headerTimeoutMs?: number;
  /**
   * Milliseconds a kept-alive connection may wait for its next request, sent to the client
   * in `keep-alive: timeout=`. Default 65 000: longer than the idle time of proxies' upstream
   * connections (60 s for nginx and AWS load balancers), so that they close first.
   */
  idleTimeoutMs?: number;
  /** Milliseconds to send one response to a client that reads it slowly. Default 10 000. */
  writeTimeoutMs?: number;
  /**
   * Connections open at once. A new one past the cap closes the connection that has waited
   * longest for a request (or lingers after its last response); it is closed itself only
   * when every connection is busy with a response. Default 64.
   */
  maxConnections?: number;
  /** Largest request line plus headers in bytes; a larger one is answered 431. Default 8 KiB. */
  maxHeaderBytes?: number;
  /**
   * Milliseconds {@linkcode HttpServer.close} lets responses in flight finish before it
   * closes every connection. Default 1 000.
   */
  closeGraceMs?: number;
  /**
   * For tests only: wraps the listener, e.g. to make `accept()` fail the way it does
   * when the process runs out of file descriptors.
   */
  wrapListener?: (listener: HttpListener) => HttpListener;
}

/** What the server needs of a listener; see {@linkcode HttpServerOptions.wrapListener}. */
export interface HttpListener {
  readonly addr: Deno.NetAddr;
  accept(): Promise<Deno.Conn>;
  close(): void;
}

/** A running server. */
export interface HttpServer {
  /** Base URL with the real port, e.g. `http://127.0.0.1:9464`. */
  readonly url: string;
  /** The port listened on (the one picked when 0 was asked for). */
  readonly port: number;
  /**
   * Stops listening, drops connections waiting for a request, lets the responses in flight
   * finish for at most `closeGraceMs`, then closes every connection; safe to call twice.
   */
  close(): Promise<void>;
}

const INDEX = "Spillway\n\n/health   health report (JSON)\n/metrics  Prometheus metrics\n";
const ROUTES = new Set(["/", "/health", "/metrics"]);
const ALLOW = "GET, HEAD";

const DEFAULTS = {
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 65_000,
  writeTimeoutMs: 10_000,
  maxConnections: 64,
  maxHeaderBytes: 8 * 1024,
  closeGraceMs: 1_000,
} as const;

/** At most one warning of a kind (accept errors, connections replaced or refused) this often. */
const WARN_INTERVAL_MS = 5_000;
/** The pause after a failed accept doubles from the first to the last. */
const ACCEPT_PAUSE_MS = { first: 10, max: 1_000 } as const;
/** After a last response, how long and how much of what the client still sends is read. */
const LINGER = { ms: 1_000, bytes: 64 * 1024 } as const;
const LF = 10;
const CR = 13;

/**
 * The request handler behind {@linkcode startHttpServer}, usable without a socket.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHttpHandler } from "./http.ts";
 * import { HealthRegistry } from "./health.ts";
 * import { MetricsRegistry } from "./prometheus.ts";
 * const handler = createHttpHandler({ metrics: new MetricsRegistry(), health: new HealthRegistry() });
 * const response = await handler(new Request("http://localhost/health"));
 * assert.equal(response.status, 200);
 * assert.equal((await response.json()).status, "ok");
 * ```
 */
export function createHttpHandler(
  options: HttpHandlerOptions,
): (request: Request) => Promise<Response> {
  const log = options.log ?? silentLogger;
  return async (request) => {
    const response = await answer(request.method, new URL(request.url).pathname, options, log);
    return request.method === "HEAD"
      ? new Response(null, { status: response.status, headers: response.headers })
      : response;
  };
}

/** The response to `method` on `path`, with its body also for HEAD. */
async function answer(
  method: string,
  path: string,
  options: HttpHandlerOptions,
  log: Logger,
): Promise<Response> {
  if (!ROUTES.has(path)) return text(404, `Not found: ${path}\n`);
  if (method !== "GET" && method !== "HEAD") {
    return text(405, `Method ${method} is not allowed: use GET\n`, { allow: ALLOW });
  }
  return await route(path, options, log);
}

async function route(path: string, options: HttpHandlerOptions, log: Logger): Promise<Response> {
  if (path === "/metrics") {
    try {
      return text(200, options.metrics.render(), { "content-type": PROMETHEUS_CONTENT_TYPE });
    } catch (error) {
      log("error", "Cannot render metrics", { error });
      return text(500, `Cannot render metrics: ${errorMessage(error)}\n`);
    }
  }
  if (path === "/health") {
    const report = await options.health.report();
    return text(healthHttpStatus(report.status), `${JSON.stringify(report, jsonReplacer, 2)}\n`, {
      "content-type": "application/json; charset=utf-8",
    });
  }
  return text(200, INDEX);
}

/**
 * Serves {@linkcode createHttpHandler} on `options.listen`. A listen address
 * that is taken or not valid is a {@linkcode ConfigError} naming the address
 * and the `http.listen` key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startHttpServer } from "./http.ts";
 * import { HealthRegistry } from "./health.ts";
 * import { MetricsRegistry } from "./prometheus.ts";
 * const server = await startHttpServer({
 *   listen: "127.0.0.1:0",
 *   metrics: new MetricsRegistry(),
 *   health: new HealthRegistry(),
 * });
 * const response = await fetch(`${server.url}/metrics`);
 * assert.equal(response.status, 200);
 * await response.body?.cancel();
 * await server.close();
 * ```
 */
export function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  return new Promise((resolve) => resolve(serve(options)));
}

type Limits = { -readonly [K in keyof typeof DEFAULTS]: number };

function limitsOf(options: HttpServerOptions): Limits {
  const limits = {} as Limits;
  for (const key of Object.keys(DEFAULTS) as (keyof Limits)[]) {
    const value = options[key] ?? DEFAULTS[key];
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(
        `HTTP server option ${key} must be a whole number of at least 1, got ${value}`,
      );
    }
    limits[key] = value;
  }
  return limits;
}

function serve(options: HttpServerOptions): HttpServer {
  const log = unfailing(options.log ?? silentLogger);
  options.signal?.throwIfAborted();
  const limits = limitsOf(options);
  const { hostname, port } = parseListen(options.listen);
  let listener: HttpListener;
  try {
    listener = Deno.listen({ hostname, port, transport: "tcp" });
  } catch (error) {
    throw listenError(options.listen, error);
  }
  if (options.wrapListener !== undefined) {
    const listening = listener;
    try {
      listener = options.wrapListener(listening);
    } catch (error) {
      closeQuietly(listening);
      throw error;
    }
  }
  const addr = listener.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `http://${host}:${addr.port}`;
  log("info", "HTTP server listening", { url });

  const handlerOptions = { ...options, log };
  /** Open connections; those not busy in the order they started to wait. */
  const peers = new Set<Peer>();
  let stopping = false;
  const warnAccept = rateLimited(log, WARN_INTERVAL_MS);
  const warnReplaced = rateLimited(log, WARN_INTERVAL_MS);
  const warnRefused = rateLimited(log, WARN_INTERVAL_MS);
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        wake = undefined;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
    });

  /** Sets what `peer` does; one that starts to wait goes after the others. */
  function mark(peer: Peer, state: PeerState): void {
    peer.state = state;
    if (state !== "busy" && peers.delete(peer)) peers.add(peer);
  }

  /** Makes room for a new connection, if need be by closing the one waiting longest. */
  function makeRoom(): boolean {
    if (peers.size < limits.maxConnections) return true;
    const fields = { maxConnections: limits.maxConnections };
    for (const peer of peers) {
      if (peer.state !== "busy") {
        peers.delete(peer);
        peer.close();
        warnReplaced("Too many HTTP connections; closing the one that waited longest", fields);
        return true;
      }
    }
    warnRefused("Too many HTTP connections, all busy; closing new ones", fields);
    return false;
  }

  async function acceptLoop(): Promise<void> {
    let pauseMs = 0;
    while (!stopping) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        pauseMs = 0;
      } catch (error) {
        if (stopping) return;
        // Out of file descriptors (EMFILE), a connection reset before it was accepted and
        // the like: this server must not take the pipeline down, so log and try again.
        pauseMs = Math.min(Math.max(pauseMs * 2, ACCEPT_PAUSE_MS.first), ACCEPT_PAUSE_MS.max);
        warnAccept("Cannot accept an HTTP connection; retrying", { error, retryInMs: pauseMs });
        await pause(pauseMs);
        continue;
      }
      if (stopping || !makeRoom()) {
        closeQuietly(conn);
        continue;
      }
      const peer = new Peer(conn, limits.maxHeaderBytes);
      peers.add(peer);
      peer.done = serveConnection(peer)
        .catch((error) => log("error", "HTTP connection failed", { error }))
        .finally(() => {
          peer.close();
          peers.delete(peer);
        });
    }
  }

  /** Serves the requests of one connection until it ends, times out or is closed. */
  async function serveConnection(peer: Peer): Promise<void> {
    for (let first = true; !stopping; first = false) {
      mark(peer, "waiting");
      const head = await readHead(peer, first);
      if (head === null) {
        if (peer.timedOut) log("debug", "HTTP connection closed: no request in time");
        return;
      }
      mark(peer, "busy");
      peer.deadline(null);
      let response: Response;
      let keepAlive = false;
      let withBody = true;
      if ("status" in head) {
        response = text(head.status, `${head.message}\n`);
      } else {
        response = await respond(head, handlerOptions);
        keepAlive = head.keepAlive;
        withBody = head.method !== "HEAD";
      }
      const body = await bytesOf(response);
      keepAlive &&= !stopping;
      const idleMs = keepAlive ? limits.idleTimeoutMs : null;
      const bytes = serialize(response, withBody ? body : null, body.length, idleMs);
      if (!(await peer.write(bytes, limits.writeTimeoutMs))) return;
      if (!keepAlive) {
        mark(peer, "lingering");
        await peer.linger();
        return;
      }
    }
  }

  /**
   * The next request head, within the header timeout (and, after a first request, the idle
   * timeout until it starts); null if the connection ended or was closed first.
   */
  async function readHead(peer: Peer, first: boolean): Promise<Head | Rejection | null> {
    if (!first && peer.filled === 0) {
      peer.deadline(limits.idleTimeoutMs);
      if (!(await peer.fill())) return null;
    }
    peer.deadline(limits.headerTimeoutMs);
    for (let scanned = 0;;) {
      // Empty lines before a request line are ignored (RFC 9112, section 2.2).
      let blank = 0;
      while (blank < peer.filled && (peer.buffer[blank] === CR || peer.buffer[blank] === LF)) {
        blank++;
      }
      peer.consume(blank);
      const end = headEnd(peer.buffer, Math.max(0, scanned - blank), peer.filled);
      if (end !== null) {
        const head = LATIN1.decode(peer.buffer.subarray(0, end.length));
        peer.consume(end.next);
        return parseHead(head);
      }
      if (peer.filled === peer.buffer.length) {
        return {
          status: 431,
          message: `Request line and headers are larger than ${limits.maxHeaderBytes} bytes`,
        };
      }
      scanned = Math.max(0, peer.filled - 2);
      if (!(await peer.fill())) return null;
    }
  }

  const accepting = acceptLoop();

  let closing: Promise<void> | undefined;
  const onAbort = () => void close();
  function close(): Promise<void> {
    closing ??= (async () => {
      options.signal?.removeEventListener("abort", onAbort);
      stopping = true;
      closeQuietly(listener);
      wake?.();
      await accepting;
      // Connections waiting for a request go now; responses in flight (and connections
      // lingering after one) get the grace period, then go too, read or not.
      for (const peer of peers) if (peer.state === "waiting") peer.close();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all([...peers].map((peer) => peer.done)),
        new Promise((resolve) => timer = setTimeout(resolve, limits.closeGraceMs)),
      ]);
      clearTimeout(timer);
      for (const peer of peers) peer.close();
      log("debug", "HTTP server closed", { url });
    })();
    return closing;
  }
  options.signal?.addEventListener("abort", onAbort, { once: true });
  return { url, port: addr.port, close };
}

/**
 * What a connection does: waits for (the rest of) a request, is busy with a response, or
 * lingers after its last one. One that is not busy may be closed for a new connection.
 */
type PeerState = "waiting" | "busy" | "lingering";

/** One accepted connection: bytes read but not used yet, and one deadline at a time. */
class Peer {
  readonly #conn: Deno.Conn;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Holds the bytes read and not consumed yet, `buffer[0, filled)`: (part of) a request head. */
  readonly buffer: Uint8Array;
  filled = 0;
  state: PeerState = "waiting";
  /** A deadline passed and closed the connection. */
  timedOut = false;
  done: Promise<void> = Promise.resolve();

  constructor(conn: Deno.Conn, bufferBytes: number) {
    this.#conn = conn;
    this.buffer = new Uint8Array(bufferBytes);
  }

  /**
   * Closes the connection in `ms` unless another deadline is set first; null clears it.
   * Once closed, does nothing.
   */
  deadline(ms: number | null): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (ms === null || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.timedOut = true;
      this.close();
    }, ms);
  }

  /** Reads more into `buffer` after `filled`; false at the end of input or once closed. */
  async fill(): Promise<boolean> {
    const n = await this.#read(this.buffer.subarray(this.filled));
    if (n === null) return false;
    this.filled += n;
    return true;
  }

  /** Drops the first `n` bytes read. */
  consume(n: number): void {
    if (n === 0) return;
    this.buffer.copyWithin(0, n, this.filled);
    this.filled -= n;
  }

  /** Writes all of `bytes` within `ms`; false if that failed or took too long. */
  async write(bytes: Uint8Array, ms: number): Promise<boolean> {
    this.deadline(ms);
    try {
      for (let at = 0; at < bytes.length;) at += await this.#conn.write(bytes.subarray(at));
      return true;
    } catch {
      return false;
    } finally {
      this.deadline(null);
    }
  }

  /**
   * Closes after a last response: first the sending side, then reads for a little while
   * what the client still sends (such as a request body, never read otherwise), so that
   * closing with unread input (which resets the connection) does not destroy the response
   * before the client has read it.
   */
  async linger(): Promise<void> {
    try {
      await this.#conn.closeWrite();
    } catch {
      // already closed or reset
    }
    this.deadline(LINGER.ms);
    for (let drained = 0; drained < LINGER.bytes;) {
      const n = await this.#read(this.buffer);
      if (n === null) break;
      drained += n;
    }
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.deadline(null);
    closeQuietly(this.#conn);
  }

  /** Reads into `into`: how many bytes, or null at the end of input or once closed. */
  async #read(into: Uint8Array): Promise<number | null> {
    try {
      const n = await this.#conn.read(into);
      return this.#closed ? null : n;
    } catch {
      return null; // closed by a deadline or by the server, or reset by the client
    }
  }
}

/** A parsed request head. */
interface Head {
  method: string;
  target: string;
  /** False also when the request has a body: bodies are not read, so the connection ends. */
  keepAlive: boolean;
}

/** A request that is answered with an error status, then the connection is closed. */
interface Rejection {
  status: 400 | 431 | 505;
  message: string;
}

const LATIN1 = new TextDecoder("latin1");

/**
 * Where the head in `bytes[0, to)` ends, looking for the empty line after it (`\n\n` or
 * `\n\r\n`) from `from`: the length of the head without the line break of its last line,
 * and where what follows starts; null if it is not all there yet.
 */
function headEnd(
  bytes: Uint8Array,
  from: number,
  to: number,
): { length: number; next: number } | null {
  for (let i = from; i + 1 < to; i++) {
    if (bytes[i] !== LF) continue;
    const next = bytes[i + 1] === LF
      ? i + 2
      : bytes[i + 1] === CR && i + 2 < to && bytes[i + 2] === LF
      ? i + 3
      : 0;
    if (next > 0) return { length: i > 0 && bytes[i - 1] === CR ? i - 1 : i, next };
  }
  return null;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The request line and headers, without the line break that ends the last one. */
function parseHead(head: string): Head | Rejection {
  // Lines end in CRLF or a bare LF (RFC 9112, section 2.2); a bare CR is an error.
  const [requestLine = "", ...lines] = head.split(/\r?\n/);
  const match = /^(\S+) (\S+) HTTP\/(\d)\.(\d)$/.exec(requestLine);
  if (match === null || !TOKEN.test(match[1]!)) {
    return { status: 400, message: "Bad request line" };
  }
  const [, method, target, major, minor] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
  ];
  if (major !== "1") return { status: 505, message: "Only HTTP/1.x is served" };
  let keepAlive = minor !== "0";
  const lengths = new Set<string>();
  let encoded = false;
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0 || !TOKEN.test(line.slice(0, colon)) || /[\0\r\n]/.test(line)) {
      return { status: 400, message: "Bad header line" };
    }
    const value = line.slice(colon + 1).trim();
    switch (line.slice(0, colon).toLowerCase()) {
      case "connection":
        for (const option of value.toLowerCase().split(",")) {
          if (option.trim() === "close") keepAlive = false;
          if (option.trim() === "keep-alive" && minor === "0") keepAlive = true;
        }
        break;
      case "content-length":
        for (const length of value.split(",")) lengths.add(length.trim());
        break;
      case "transfer-encoding":
        encoded = true;
        break;
    }
  }
  const [length = "0"] = lengths;
  if (lengths.size > 1 || !/^\d{1,15}$/.test(length)) {
    return { status: 400, message: "Bad Content-Length" };
  }
  // A body is never read: the connection closes after the response, and what the client
  // still sends is drained by the linger. No wait for it either (`Expect: 100-continue`).
  if (encoded || Number(length) > 0) keepAlive = false;
  return { method, target, keepAlive };
}

/** The path of a request target: origin form (`/metrics?x`) or absolute form. */
function pathOf(target: string): string | null {
  try {
    if (target.startsWith("/")) return new URL(`http://localhost${target}`).pathname;
    if (/^https?:\/\//i.test(target)) return new URL(target).pathname;
  } catch {
    // not a URL
  }
  return null;
}

async function respond(
  head: Head,
  options: HttpHandlerOptions & { log: Logger },
): Promise<Response> {
  const path = pathOf(head.target);
  if (path === null) return text(400, "Bad request target\n");
  try {
    return await answer(head.method, path, options, options.log);
  } catch (error) {
    options.log("error", "HTTP request failed", { error });
    return text(500, `Internal error: ${errorMessage(error)}\n`);
  }
}

async function bytesOf(response: Response): Promise<Uint8Array> {
  return new Uint8Array(await response.arrayBuffer());
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/**
 * Status line, headers and `body` (none for HEAD) with the `length` of the full body; the
 * connection is kept alive for `idleMs` more, or closed if null.
 */
function serialize(
  response: Response,
  body: Uint8Array | null,
  length: number,
  idleMs: number | null,
): Uint8Array {
  let head = `HTTP/1.1 ${response.status} ${REASONS[response.status] ?? ""}\r\n`;
  response.headers.forEach((value, name) => {
    if (!["content-length", "connection", "keep-alive", "date"].includes(name)) {
      head += `${name}: ${value}\r\n`;
    }
  });
  head += `date: ${new Date().toUTCString()}\r\ncontent-length: ${length}\r\n` +
    (idleMs === null
      ? "connection: close\r\n\r\n"
      : `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(idleMs / 1000)}\r\n\r\n`);
  const headBytes = new TextEncoder().encode(head);
  if (body === null || body.length === 0) return headBytes;
  const bytes = new Uint8Array(headBytes.length + body.length);
  bytes.set(headBytes);
  bytes.set(body, headBytes.length);
  return bytes;
}

/** A logger of warnings that writes at most one per `intervalMs`, counting the others. */
function rateLimited(
  log: Logger,
  intervalMs: number,
): (message: string, fields: Record<string, unknown>) => void {
  let last = -Infinity;
  let suppressed = 0;
  return (message, fields) => {
    const now = performance.now();
    if (now - last < intervalMs) {
      suppressed++;
      return;
    }
    last = now;
    log("warn", message, suppressed > 0 ? { ...fields, suppressed } : fields);
    suppressed = 0;
  };
}

/** `log`, except that a logger that throws cannot break the accept loop or a connection. */
function unfailing(log: Logger): Logger {
  return (level, message, fields) => {
    try {
      log(level, message, fields);
    } catch {
      // nowhere left to report it
    }
  };
}

function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close();
  } catch {
    // already closed
  }
}

/** `host:port` as written in `http.listen`, to what `Deno.listen` takes. */
function parseListen(listen: string): { hostname: string; port: number } {
  const match = /^(?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]*):)?(\d{1,5})$/.exec(listen);
  const port = Number(match?.[2]);
  if (match === null || port > 65_535) {
    throw new ConfigError(
      `Cannot start the HTTP server: "http.listen" must be host:port like 127.0.0.1:9464, ` +
        `got ${JSON.stringify(listen)}`,
    );
  }
  const host = (match[1] ?? "").replace(/^\[(.*)\]$/, "$1");
  return { hostname: host === "" ? "127.0.0.1" : host, port };
}

function listenError(listen: string, error: unknown): ConfigError {
  const reason = error instanceof Deno.errors.AddrInUse
    ? "the address is already in use; stop the other process or change the port"
    : error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable
    ? `${errorMessage(error)}; choose a port above 1023 or grant the permission`
    : errorMessage(error);
  return new ConfigError(
    `Cannot start the HTTP server on "${listen}" (config key "http.listen"): ${reason}`,
    { cause: error },
  );
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}
