/**
 * The operations HTTP server: `GET /health` (JSON report) and `GET /metrics`
 * (Prometheus text), on the address of the pipeline's `http.listen`.
 *
 * The server is a small HTTP/1.1 server over `Deno.listen` rather than `Deno.serve`, which
 * has no header timeout, idle timeout or connection cap, and whose accept loop turned a
 * "Too many open files" into an uncaught error that stopped the pipeline. Here a client
 * has a bounded time to send its request, kept-alive connections are dropped when idle,
 * connections beyond a cap are closed as soon as they are accepted, and an accept error
 * is logged and retried after a short pause: nothing a client does, and no lack of file
 * descriptors, can stop the pipeline through this server.
 *
 * @module
 */

import { ConfigError } from "../errors.ts";
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
  /** Milliseconds a kept-alive connection may wait for its next request. Default 5 000. */
  idleTimeoutMs?: number;
  /** Milliseconds to send one response to a client that reads it slowly. Default 10 000. */
  writeTimeoutMs?: number;
  /** Connections served at once; more are closed as soon as accepted. Default 64. */
  maxConnections?: number;
  /** Largest request line plus headers in bytes; a larger one is answered 431. Default 8 KiB. */
  maxHeaderBytes?: number;
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
   * Stops listening, drops connections waiting for a request and waits for the responses
   * in flight; safe to call twice.
   */
  close(): Promise<void>;
}

const INDEX = "Spillway\n\n/health   health report (JSON)\n/metrics  Prometheus metrics\n";
const ROUTES = new Set(["/", "/health", "/metrics"]);
const ALLOW = "GET, HEAD";

const DEFAULTS = {
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 5_000,
  writeTimeoutMs: 10_000,
  maxConnections: 64,
  maxHeaderBytes: 8 * 1024,
} as const;

/** At most one warning of a kind (accept errors, connections refused) this often. */
const WARN_INTERVAL_MS = 5_000;
/** The pause after a failed accept doubles from the first to the last. */
const ACCEPT_PAUSE_MS = { first: 10, max: 1_000 } as const;
/** After a last response, how long and how much of what the client still sends is read. */
const LINGER = { ms: 1_000, bytes: 64 * 1024 } as const;
const READ_CHUNK = 4096;

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

interface Limits {
  headerTimeoutMs: number;
  idleTimeoutMs: number;
  writeTimeoutMs: number;
  maxConnections: number;
  maxHeaderBytes: number;
}

function limitsOf(options: HttpServerOptions): Limits {
  const limits = {} as Limits;
  for (const key of Object.keys(DEFAULTS) as (keyof Limits)[]) {
    const value = options[key] ?? DEFAULTS[key];
    if (!(value > 0) || !Number.isFinite(value)) {
      throw new RangeError(`HTTP server option ${key} must be a positive number, got ${value}`);
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
  if (options.wrapListener !== undefined) listener = options.wrapListener(listener);
  const addr = listener.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `http://${host}:${addr.port}`;
  log("info", "HTTP server listening", { url });

  const peers = new Set<Peer>();
  const stopping = { value: false };
  const warnAccept = rateLimited(log, WARN_INTERVAL_MS);
  const warnFull = rateLimited(log, WARN_INTERVAL_MS);
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

  async function acceptLoop(): Promise<void> {
    let pauseMs = 0;
    while (!stopping.value) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        pauseMs = 0;
      } catch (error) {
        if (stopping.value) return;
        // Out of file descriptors (EMFILE), a connection reset before it was accepted and
        // the like: this server must not take the pipeline down, so log and try again.
        pauseMs = Math.min(Math.max(pauseMs * 2, ACCEPT_PAUSE_MS.first), ACCEPT_PAUSE_MS.max);
        warnAccept("Cannot accept an HTTP connection; retrying", { error, retryInMs: pauseMs });
        await pause(pauseMs);
        continue;
      }
      if (stopping.value || peers.size >= limits.maxConnections) {
        closeQuietly(conn);
        if (!stopping.value) {
          warnFull("Too many HTTP connections; closing new ones", {
            maxConnections: limits.maxConnections,
          });
        }
        continue;
      }
      const peer = new Peer(conn);
      peers.add(peer);
      peer.done = serveConnection(peer, { ...options, log }, limits, stopping)
        .catch((error) => log("error", "HTTP connection failed", { error }))
        .finally(() => {
          peer.close();
          peers.delete(peer);
        });
    }
  }
  const accepting = acceptLoop();

  let closing: Promise<void> | undefined;
  const onAbort = () => void close();
  function close(): Promise<void> {
    if (closing === undefined) {
      options.signal?.removeEventListener("abort", onAbort);
      stopping.value = true;
      closeQuietly(listener);
      wake?.();
      closing = (async () => {
        await accepting;
        // Connections waiting for a request go now; responses being written are finished.
        for (const peer of peers) if (peer.waiting) peer.close();
        await Promise.all([...peers].map((peer) => peer.done));
        log("debug", "HTTP server closed", { url });
      })();
    }
    return closing;
  }
  options.signal?.addEventListener("abort", onAbort, { once: true });
  return { url, port: addr.port, close };
}

/** One accepted connection: bytes read but not used yet, and one deadline at a time. */
class Peer {
  readonly #conn: Deno.Conn;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Read and not consumed yet (the start of a request, or a pipelined one). */
  buffered: Uint8Array = new Uint8Array(0);
  /** Waiting for (the rest of) a request: closing the server may drop it now. */
  waiting = true;
  /** The deadline passed and closed the connection. */
  timedOut = false;
  done: Promise<void> = Promise.resolve();

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Closes the connection in `ms` unless another deadline is set first; null clears it. */
  deadline(ms: number | null): void {
    clearTimeout(this.#timer);
    this.#timer = ms === null ? undefined : setTimeout(() => {
      this.timedOut = true;
      this.close();
    }, ms);
  }

  /** Reads more into `buffered`; false at the end of input or once closed. */
  async fill(): Promise<boolean> {
    const chunk = new Uint8Array(READ_CHUNK);
    let n: number | null;
    try {
      n = await this.#conn.read(chunk);
    } catch {
      n = null; // closed by a deadline or by the server, or reset by the client
    }
    if (n === null || this.#closed) return false;
    const joined = new Uint8Array(this.buffered.length + n);
    joined.set(this.buffered);
    joined.set(chunk.subarray(0, n), this.buffered.length);
    this.buffered = joined;
    return true;
  }

  /** Removes and returns the first `n` buffered bytes. */
  take(n: number): Uint8Array {
    const taken = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return taken;
  }

  /** Reads and drops `n` bytes (a request body); false if the connection ended first. */
  async skip(n: number): Promise<boolean> {
    while (this.buffered.length < n) {
      n -= this.buffered.length;
      this.buffered = new Uint8Array(0);
      if (!(await this.fill())) return false;
    }
    this.take(n);
    return true;
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
   * what the client still sends, so that closing with unread input (which resets the
   * connection) does not destroy the response before the client has read it.
   */
  async linger(): Promise<void> {
    try {
      await this.#conn.closeWrite();
    } catch {
      // already closed or reset
    }
    this.deadline(LINGER.ms);
    let drained = 0;
    while (drained < LINGER.bytes && await this.fill()) {
      drained += this.buffered.length;
      this.buffered = new Uint8Array(0);
    }
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.deadline(null);
    closeQuietly(this.#conn);
  }
}

/** A parsed request head. */
interface Head {
  method: string;
  target: string;
  keepAlive: boolean;
  /** Of the request body: 0 if none, null if not known (chunked). */
  bodyLength: number | null;
}

/** A request that is answered with an error status, then the connection is closed. */
interface Rejection {
  status: 400 | 431 | 505;
  message: string;
}

async function serveConnection(
  peer: Peer,
  options: HttpHandlerOptions & { log: Logger },
  limits: Limits,
  stopping: { value: boolean },
): Promise<void> {
  for (let first = true; !stopping.value; first = false) {
    peer.waiting = true;
    const head = await readHead(peer, first, limits);
    peer.waiting = false;
    if (head === null) {
      if (peer.timedOut) options.log("debug", "HTTP connection closed: no request in time");
      return;
    }
    if ("status" in head) {
      const response = text(head.status, `${head.message}\n`);
      if (
        await peer.write(serialize(response, await bytesOf(response), false), limits.writeTimeoutMs)
      ) {
        await peer.linger();
      }
      return;
    }
    let keepAlive = head.keepAlive;
    if (head.bodyLength === null || head.bodyLength > limits.maxHeaderBytes) {
      keepAlive = false; // not read: the connection ends after the response
    } else if (head.bodyLength > 0 && !(await peer.skip(head.bodyLength))) {
      return;
    }
    peer.deadline(null);
    const response = await respond(head, options);
    const body = await bytesOf(response);
    keepAlive &&= !stopping.value;
    const bytes = serialize(response, head.method === "HEAD" ? null : body, keepAlive, body.length);
    if (!(await peer.write(bytes, limits.writeTimeoutMs))) return;
    if (!keepAlive) {
      await peer.linger();
      return;
    }
  }
}

/**
 * The next request head, within the header timeout (and, after a first request, the idle
 * timeout until it starts); null if the connection ended or a deadline passed first.
 */
async function readHead(
  peer: Peer,
  first: boolean,
  limits: Limits,
): Promise<Head | Rejection | null> {
  if (first) {
    peer.deadline(limits.headerTimeoutMs);
  } else if (peer.buffered.length === 0) {
    peer.deadline(limits.idleTimeoutMs);
    if (!(await peer.fill())) return null;
    peer.deadline(limits.headerTimeoutMs);
  } else {
    peer.deadline(limits.headerTimeoutMs);
  }
  let scanned = 0;
  for (;;) {
    // Empty lines before a request line are ignored (RFC 9112, section 2.2).
    let skip = 0;
    while (peer.buffered[skip] === 13 || peer.buffered[skip] === 10) skip++;
    if (skip > 0) peer.take(skip);
    const end = headEnd(peer.buffered, scanned);
    if (end !== -1 && end + 4 <= limits.maxHeaderBytes) {
      const head = peer.take(end + 4).subarray(0, end);
      return parseHead(new TextDecoder("latin1").decode(head));
    }
    if (end !== -1 || peer.buffered.length >= limits.maxHeaderBytes) {
      return {
        status: 431,
        message: `Request line and headers are larger than ${limits.maxHeaderBytes} bytes`,
      };
    }
    scanned = Math.max(0, peer.buffered.length - 3);
    if (!(await peer.fill())) return null;
  }
}

/** Where `\r\n\r\n` starts in `bytes`, looking from `from`; -1 if nowhere. */
function headEnd(bytes: Uint8Array, from: number): number {
  for (let i = from; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The request line and headers, without the blank line that ends them. */
function parseHead(head: string): Head | Rejection {
  const [requestLine = "", ...lines] = head.split("\r\n");
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
  let chunked = false;
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
        chunked = true;
        break;
    }
  }
  const [length = "0"] = lengths;
  if (lengths.size > 1 || !/^\d{1,15}$/.test(length)) {
    return { status: 400, message: "Bad Content-Length" };
  }
  return { method, target, keepAlive, bodyLength: chunked ? null : Number(length) };
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

/** Status line, headers and `body` (none for HEAD) with the length of the full body. */
function serialize(
  response: Response,
  body: Uint8Array | null,
  keepAlive: boolean,
  length = body?.length ?? 0,
): Uint8Array {
  let head = `HTTP/1.1 ${response.status} ${REASONS[response.status] ?? ""}\r\n`;
  response.headers.forEach((value, name) => {
    if (name !== "content-length" && name !== "connection" && name !== "date") {
      head += `${name}: ${value}\r\n`;
    }
  });
  head += `date: ${new Date().toUTCString()}\r\ncontent-length: ${length}\r\n` +
    `connection: ${keepAlive ? "keep-alive" : "close"}\r\n\r\n`;
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

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
