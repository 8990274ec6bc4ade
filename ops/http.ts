/**
 * The operations HTTP server: `GET /health` (JSON report) and `GET /metrics`
 * (Prometheus text), on the address of the pipeline's `http.listen`.
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
}

/** A running server. */
export interface HttpServer {
  /** Base URL with the real port, e.g. `http://127.0.0.1:9464`. */
  readonly url: string;
  /** The port listened on (the one picked when 0 was asked for). */
  readonly port: number;
  /** Stops listening and waits for requests in flight; safe to call twice. */
  close(): Promise<void>;
}

const INDEX = "Spillway\n\n/health   health report (JSON)\n/metrics  Prometheus metrics\n";
const ROUTES = new Set(["/", "/health", "/metrics"]);
const ALLOW = "GET, HEAD";

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
    const path = new URL(request.url).pathname;
    if (!ROUTES.has(path)) return text(404, `Not found: ${path}\n`);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return text(405, `Method ${request.method} is not allowed: use GET\n`, { allow: ALLOW });
    }
    const response = await route(path, options, log);
    return request.method === "HEAD"
      ? new Response(null, { status: response.status, headers: response.headers })
      : response;
  };
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

function serve(options: HttpServerOptions): HttpServer {
  const log = options.log ?? silentLogger;
  options.signal?.throwIfAborted();
  const { hostname, port } = parseListen(options.listen);
  const handler = createHttpHandler(options);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname,
      port,
      onListen: () => {},
      onError: (error) => {
        log("error", "HTTP request failed", { error });
        return text(500, `Internal error: ${errorMessage(error)}\n`);
      },
    }, handler);
  } catch (error) {
    throw listenError(options.listen, error);
  }
  const addr = server.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const url = `http://${host}:${addr.port}`;
  log("info", "HTTP server listening", { url });

  let closing: Promise<void> | undefined;
  const onAbort = () => void close();
  function close(): Promise<void> {
    if (closing === undefined) {
      options.signal?.removeEventListener("abort", onAbort);
      closing = server.shutdown().then(() => log("debug", "HTTP server closed", { url }));
    }
    return closing;
  }
  options.signal?.addEventListener("abort", onAbort, { once: true });
  return { url, port: addr.port, close };
}

/** `host:port` as written in `http.listen`, to what `Deno.serve` takes. */
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
