import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { type HealthCheckResult, HealthRegistry } from "./health.ts";
import {
  createHttpHandler,
  type HttpListener,
  type HttpServer,
  type HttpServerOptions,
  startHttpServer,
} from "./http.ts";
import type { Logger, LogLevel } from "./log.ts";
import { MetricsRegistry, PROMETHEUS_CONTENT_TYPE } from "./prometheus.ts";

interface Setup {
  server: HttpServer;
  metrics: MetricsRegistry;
  health: HealthRegistry;
  logs: [LogLevel, string, Record<string, unknown> | undefined][];
}

async function withServer(
  test: (setup: Setup) => Promise<void>,
  options: Partial<HttpServerOptions> = {},
): Promise<void> {
  const metrics = new MetricsRegistry();
  const health = new HealthRegistry({ now: () => new Date("2025-01-02T03:04:05.000Z") });
  const logs: Setup["logs"] = [];
  const log: Logger = (level, message, fields) => logs.push([level, message, fields]);
  const server = await startHttpServer({ listen: "127.0.0.1:0", metrics, health, log, ...options });
  try {
    await test({ server, metrics, health, logs });
  } finally {
    await server.close();
  }
}

Deno.test("http: port 0 gives the real port and URL, and a log line", async () => {
  await withServer(({ server, logs }) => {
    assert(server.port > 0);
    assert.equal(server.url, `http://127.0.0.1:${server.port}`);
    assert.deepEqual(logs[0], ["info", "HTTP server listening", { url: server.url }]);
    return Promise.resolve();
  });
});

Deno.test("http: GET /metrics serves the registry in text format 0.0.4", async () => {
  await withServer(async ({ server, metrics }) => {
    metrics.counter("app_events_total", "Events", ["op"]).inc({ op: "c" }, 2);
    const response = await fetch(`${server.url}/metrics?debug=1`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
    assert.equal(PROMETHEUS_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(response.headers.get("cache-control"), "no-store");
    assert.equal(
      await response.text(),
      '# HELP app_events_total Events\n# TYPE app_events_total counter\napp_events_total{op="c"} 2\n',
    );
  });
});

Deno.test("http: GET /health serves the report as pretty JSON, 200 when ok", async () => {
  await withServer(async ({ server, health }) => {
    health.register("queue", () => ({ status: "ok", data: { depth: 1 } }));
    const response = await fetch(`${server.url}/health`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json; charset=utf-8");
    const body = await response.text();
    const report = {
      status: "ok",
      checks: { queue: { status: "ok", data: { depth: 1 } } },
      time: "2025-01-02T03:04:05.000Z",
    };
    assert.equal(body, `${JSON.stringify(report, null, 2)}\n`);
  });
});

Deno.test("http: /health is 200 when degraded and 503 when failing", async () => {
  await withServer(async ({ server, health }) => {
    let slot: HealthCheckResult = { status: "degraded", detail: "wal_status is extended" };
    health.register("slot", () => slot);
    const degraded = await fetch(`${server.url}/health`);
    assert.equal(degraded.status, 200);
    assert.equal((await degraded.json()).status, "degraded");

    slot = { status: "failing", detail: "wal_status is lost" };
    const failing = await fetch(`${server.url}/health`);
    assert.equal(failing.status, 503);
    const report = await failing.json();
    assert.equal(report.status, "failing");
    assert.equal(report.checks.slot.detail, "wal_status is lost");

    health.register("broken", () => {
      throw new Error("Cannot reach the server");
    });
    slot = { status: "ok" };
    const thrown = await fetch(`${server.url}/health`);
    assert.equal(thrown.status, 503);
    assert.equal((await thrown.json()).checks.broken.detail, "Cannot reach the server");
  });
});

Deno.test("http: GET / is a small text index", async () => {
  await withServer(async ({ server }) => {
    const response = await fetch(`${server.url}/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
    const body = await response.text();
    assert.match(body, /\/health/);
    assert.match(body, /\/metrics/);
  });
});

Deno.test("http: unknown paths are 404, other methods 405", async () => {
  await withServer(async ({ server }) => {
    for (const path of ["/nope", "/metrics/", "/healthz"]) {
      const response = await fetch(`${server.url}${path}`);
      assert.equal(response.status, 404, path);
      assert.equal(await response.text(), `Not found: ${path}\n`);
    }
    for (const method of ["POST", "PUT", "DELETE"]) {
      const response = await fetch(`${server.url}/metrics`, { method });
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get("allow"), "GET, HEAD");
      assert.equal(await response.text(), `Method ${method} is not allowed: use GET\n`);
    }
    const head = await fetch(`${server.url}/metrics`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-type"), PROMETHEUS_CONTENT_TYPE);
    assert.equal(await head.text(), "");
  });
});

Deno.test("http: a metric that cannot be collected is a 500 naming it, and is logged", async () => {
  await withServer(async ({ server, metrics, logs }) => {
    metrics.gauge("app_lag_bytes", "Lag", [], {
      collect: () => {
        throw new Error("no slot yet");
      },
    });
    const response = await fetch(`${server.url}/metrics`);
    assert.equal(response.status, 500);
    assert.equal(
      await response.text(),
      'Cannot render metrics: Cannot collect metric "app_lag_bytes": no slot yet\n',
    );
    assert(
      logs.some(([level, message]) => level === "error" && message === "Cannot render metrics"),
    );
  });
});

Deno.test("http: a taken address is a clear error naming it and http.listen", async () => {
  await withServer(async ({ server }) => {
    const listen = `127.0.0.1:${server.port}`;
    const error = await startHttpServer({
      listen,
      metrics: new MetricsRegistry(),
      health: new HealthRegistry(),
    }).then(() => assert.fail("a second server on a taken port should not start"), (e) => e);
    assert(error instanceof ConfigError);
    assert.equal(
      error.message,
      `Cannot start the HTTP server on "${listen}" (config key "http.listen"): ` +
        "the address is already in use; stop the other process or change the port",
    );
    assert(error.cause instanceof Deno.errors.AddrInUse);
  });
});

Deno.test("http: a listen value that is not host:port is a clear error", async () => {
  for (const listen of ["localhost", "127.0.0.1:99999", "1.2.3.4:port", ""]) {
    await assert.rejects(
      startHttpServer({ listen, metrics: new MetricsRegistry(), health: new HealthRegistry() }),
      (error: Error) =>
        error instanceof ConfigError &&
        error.message === `Cannot start the HTTP server: "http.listen" must be host:port ` +
            `like 127.0.0.1:9464, got ${JSON.stringify(listen)}`,
    );
  }
});

Deno.test("http: listen forms :port and [::1]:port", async () => {
  const options = { metrics: new MetricsRegistry(), health: new HealthRegistry() };
  const v4 = await startHttpServer({ ...options, listen: ":0" });
  assert.equal(v4.url, `http://127.0.0.1:${v4.port}`);
  await v4.close();
  let v6: HttpServer;
  try {
    v6 = await startHttpServer({ ...options, listen: "[::1]:0" });
  } catch {
    return; // no IPv6 loopback on this machine
  }
  assert.equal(v6.url, `http://[::1]:${v6.port}`);
  const response = await fetch(`${v6.url}/`);
  assert.equal(response.status, 200);
  await response.body?.cancel();
  await v6.close();
});

Deno.test("http: close is idempotent and frees the port", async () => {
  const options = { metrics: new MetricsRegistry(), health: new HealthRegistry() };
  const server = await startHttpServer({ ...options, listen: "127.0.0.1:0" });
  await Promise.all([server.close(), server.close()]);
  await server.close();
  const again = await startHttpServer({ ...options, listen: `127.0.0.1:${server.port}` });
  assert.equal(again.port, server.port);
  await again.close();
});

Deno.test("http: aborting the signal closes the server", async () => {
  const controller = new AbortController();
  const server = await startHttpServer({
    listen: "127.0.0.1:0",
    metrics: new MetricsRegistry(),
    health: new HealthRegistry(),
    signal: controller.signal,
  });
  const response = await fetch(`${server.url}/`);
  await response.body?.cancel();
  controller.abort();
  await server.close();
  await assert.rejects(fetch(`${server.url}/`));
});

Deno.test("http: an aborted signal starts nothing", async () => {
  const controller = new AbortController();
  controller.abort(new Error("shutting down"));
  await assert.rejects(
    startHttpServer({
      listen: "127.0.0.1:0",
      metrics: new MetricsRegistry(),
      health: new HealthRegistry(),
      signal: controller.signal,
    }),
    { message: "shutting down" },
  );
});

Deno.test("http: the handler works without a socket", async () => {
  const health = new HealthRegistry();
  health.register("sink", () => ({ status: "failing", detail: "Kafka down" }));
  const handler = createHttpHandler({ metrics: new MetricsRegistry(), health });
  const response = await handler(new Request("http://spillway.local/health"));
  assert.equal(response.status, 503);
  assert.equal((await response.json()).checks.sink.detail, "Kafka down");
});

// Raw connections, for what fetch cannot do: send half a request, hold a connection open.

const encoder = new TextEncoder();
/** Far above any timeout the tests set: reached only when the server does not do its part. */
const GUARD_MS = 20_000;

function connect(server: HttpServer): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port: server.port });
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/** Runs `read` on `conn`, closing `conn` and failing if that takes longer than the guard. */
async function guarded<T>(conn: Deno.Conn, what: string, read: () => Promise<T>): Promise<T> {
  let expired = false;
  const guard = setTimeout(() => {
    expired = true;
    closeQuietly(conn);
  }, GUARD_MS);
  try {
    const result = await read();
    assert(!expired, `the server did not ${what} within ${GUARD_MS} ms`);
    return result;
  } catch (error) {
    assert(!expired, `the server did not ${what} within ${GUARD_MS} ms`);
    throw error;
  } finally {
    clearTimeout(guard);
  }
}

/** All the server sends until it closes the connection (end of input or reset). */
function readUntilClosed(conn: Deno.Conn): Promise<string> {
  return guarded(conn, "close the connection", async () => {
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(4096);
    let received = "";
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionReset) return received;
        throw error;
      }
      if (n === null) return received;
      received += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  });
}

interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

/** Reads responses one after another, framed by content-length (none for HEAD). */
function responseReader(conn: Deno.Conn) {
  let bytes = new Uint8Array(0);
  const chunk = new Uint8Array(4096);
  const next = (method = "GET") =>
    guarded(conn, "respond", async () => {
      for (;;) {
        const end = new TextDecoder("latin1").decode(bytes).indexOf("\r\n\r\n");
        if (end !== -1) {
          const [statusLine = "", ...lines] = new TextDecoder().decode(bytes.subarray(0, end))
            .split("\r\n");
          const headers = new Headers(
            lines.map((
              line,
            ) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1)]),
          );
          const need = end + 4 + (method === "HEAD" ? 0 : Number(headers.get("content-length")));
          if (bytes.length >= need) {
            const body = new TextDecoder().decode(bytes.subarray(end + 4, need));
            bytes = bytes.subarray(need);
            return { status: Number(statusLine.split(" ")[1]), headers, body } as RawResponse;
          }
        }
        const n = await conn.read(chunk);
        if (n === null) throw new Error("The server closed the connection before responding");
        const joined = new Uint8Array(bytes.length + n);
        joined.set(bytes);
        joined.set(chunk.subarray(0, n), bytes.length);
        bytes = joined;
      }
    });
  return { next, pending: () => bytes.length };
}

/** One response, leaving the connection open; the server must have sent no more. */
async function readResponse(conn: Deno.Conn, method = "GET"): Promise<RawResponse> {
  const reader = responseReader(conn);
  const response = await reader.next(method);
  assert.equal(reader.pending(), 0, "no more bytes than the response");
  return response;
}

/** Sends `request` on a new connection and returns all the server sends until it closes. */
async function exchange(server: HttpServer, request: string): Promise<string> {
  const conn = await connect(server);
  try {
    await conn.write(encoder.encode(request));
    return await readUntilClosed(conn);
  } finally {
    closeQuietly(conn);
  }
}

/** Fails unless `promise` settles within the guard. */
async function settles<T>(promise: Promise<T>, what: string): Promise<T> {
  let guard: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    guard = setTimeout(
      () => reject(new Error(`${what} did not happen within ${GUARD_MS} ms`)),
      GUARD_MS,
    );
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(guard);
  }
}

/** A health registry whose check waits until released, counting the calls. */
function blockingHealth() {
  const health = new HealthRegistry({ timeoutMs: 600_000 });
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  let calls = 0;
  let onCall = () => {};
  health.register("slow", async () => {
    calls++;
    onCall();
    await released;
    return { status: "ok" } as HealthCheckResult;
  });
  const called = (n: number) =>
    settles(
      new Promise<void>((resolve) => {
        const check = () => calls >= n ? resolve() : void (onCall = check);
        check();
      }),
      `health check call ${n}`,
    );
  return { health, called, release };
}

Deno.test("http: a client that sends nothing, half a request or a trickle is disconnected", async () => {
  await withServer(async ({ server }) => {
    const silent = await connect(server);
    const half = await connect(server);
    const trickle = await connect(server);
    // A byte every 50 ms: progress does not extend the time to send the whole head.
    const trickling = (async () => {
      try {
        await trickle.write(encoder.encode("GET /health HTTP/1.1\r\nx-slow: "));
        for (;;) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          await trickle.write(encoder.encode("a"));
        }
      } catch {
        // closed by the server, or by this test
      }
    })();
    try {
      await half.write(encoder.encode("GET /health HTTP/1.1\r\nHost: x\r\n"));
      const received = await Promise.all([silent, half, trickle].map(readUntilClosed));
      assert.deepEqual(received, ["", "", ""]);
    } finally {
      [silent, half, trickle].forEach(closeQuietly);
      await trickling;
    }
    const response = await fetch(`${server.url}/health`);
    assert.equal(response.status, 200);
    await response.body?.cancel();
  }, { headerTimeoutMs: 200 });
});

Deno.test("http: a kept-alive connection serves requests, then is closed when idle", async () => {
  await withServer(async ({ server, metrics }) => {
    metrics.counter("app_events_total", "Events").inc();
    const conn = await connect(server);
    try {
      await conn.write(encoder.encode("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
      const get = await readResponse(conn);
      assert.equal(get.status, 200);
      assert.equal(get.headers.get("connection"), "keep-alive");
      assert.equal(get.headers.get("keep-alive"), "timeout=0", "whole seconds, rounded down");
      assert.equal(get.body, metrics.render());
      // HEAD: the length of the GET body, no body; the next response starts right after.
      await conn.write(encoder.encode("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
      const head = await readResponse(conn, "HEAD");
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), String(encoder.encode(get.body).length));
      assert.equal(head.body, "");
      await conn.write(encoder.encode("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"));
      assert.equal((await readResponse(conn)).status, 404);
      assert.equal(await readUntilClosed(conn), "");
    } finally {
      closeQuietly(conn);
    }
  }, { idleTimeoutMs: 200 });
});

Deno.test("http: at the cap, clients sending nothing cannot lock out a real request", async () => {
  await withServer(async ({ server, logs }) => {
    const silent: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < 64; i++) silent.push(await connect(server));
      const response = await fetch(`${server.url}/health`);
      assert.equal(response.status, 200);
      await response.body?.cancel();
      // The one that waited longest made room.
      assert.equal(await readUntilClosed(silent[0]!), "");
      assert.deepEqual(logs.filter(([level]) => level === "warn"), [
        ["warn", "Too many HTTP connections; closing the one that waited longest", {
          maxConnections: 64,
        }],
      ]);
    } finally {
      silent.forEach(closeQuietly);
    }
  }, { headerTimeoutMs: 600_000 });
});

Deno.test("http: at the cap, an idle connection makes room; when all are busy the new one is closed", async () => {
  const { health, called, release } = blockingHealth();
  await withServer(async ({ server, logs }) => {
    const conns: Deno.TcpConn[] = [];
    const open = async () => {
      conns.push(await connect(server));
      return conns.at(-1)!;
    };
    try {
      const idle = await open();
      await idle.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      assert.equal((await readResponse(idle)).status, 200);
      const busy = await open();
      await busy.write(encoder.encode("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
      await called(1);
      const next = await open();
      assert.equal(await readUntilClosed(idle), "", "the idle connection made room");
      await next.write(encoder.encode("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
      await called(2);
      const refused = await open();
      await refused.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).catch(() => 0);
      assert.equal(await readUntilClosed(refused), "", "no room: every connection is busy");
      release();
      assert.equal((await readResponse(busy)).status, 200);
      assert.equal((await readResponse(next)).status, 200);
      assert.deepEqual(logs.filter(([level]) => level === "warn"), [
        ["warn", "Too many HTTP connections; closing the one that waited longest", {
          maxConnections: 2,
        }],
        ["warn", "Too many HTTP connections, all busy; closing new ones", { maxConnections: 2 }],
      ]);
    } finally {
      release();
      conns.forEach(closeQuietly);
    }
  }, { maxConnections: 2, health, idleTimeoutMs: 600_000 });
});

Deno.test("http: oversized or malformed requests get an error status and are closed", async () => {
  await withServer(async ({ server }) => {
    const ask = async (request: string) => {
      const conn = await connect(server);
      try {
        await conn.write(encoder.encode(request));
        return await readUntilClosed(conn);
      } finally {
        closeQuietly(conn);
      }
    };
    const big = await ask(
      `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(16_384)}\r\n\r\n`,
    );
    assert.match(big, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    assert.match(big, /\r\nconnection: close\r\n/);
    assert.match(big, /larger than 8192 bytes\n$/);
    // Just under the limit is fine.
    const fits = await ask(
      `GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ${"a".repeat(8_000)}\r\n\r\n`,
    );
    assert.match(fits, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(await ask("HELLO\r\n\r\n"), /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(await ask("GET / HTTP/1.1\r\nno colon\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.match(await ask("GET / HTTP/2.0\r\n\r\n"), /^HTTP\/1\.1 505 /);
  });
});

Deno.test("http: an accept error (out of file descriptors) is logged, and serving goes on", async () => {
  let failures = 3;
  const wrapListener = (listener: HttpListener): HttpListener => ({
    addr: listener.addr,
    accept: () =>
      failures-- > 0
        ? Promise.reject(
          Object.assign(new Error("Too many open files (os error 24)"), { code: "EMFILE" }),
        )
        : listener.accept(),
    close: () => listener.close(),
  });
  await withServer(async ({ server, logs }) => {
    const response = await fetch(`${server.url}/health`);
    assert.equal(response.status, 200);
    await response.body?.cancel();
    const warnings = logs.filter(([level]) => level === "warn");
    // One warning per few seconds, not one per error.
    assert(warnings.length >= 1 && warnings.length < 3, JSON.stringify(warnings));
    const [, message, fields] = warnings[0]!;
    assert.equal(message, "Cannot accept an HTTP connection; retrying");
    assert.equal((fields?.error as Error).message, "Too many open files (os error 24)");
  }, { wrapListener });

  // Closing while accept keeps failing stops promptly.
  const logs: string[] = [];
  const failing = await startHttpServer({
    listen: "127.0.0.1:0",
    metrics: new MetricsRegistry(),
    health: new HealthRegistry(),
    log: (_level, message) => logs.push(message),
    wrapListener: (listener) => ({
      addr: listener.addr,
      accept: () => Promise.reject(new Error("Too many open files (os error 24)")),
      close: () => listener.close(),
    }),
  });
  while (!logs.includes("Cannot accept an HTTP connection; retrying")) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await failing.close();
});

Deno.test("http: close drops connections waiting for a request and finishes responses", async () => {
  const health = new HealthRegistry({ timeoutMs: 600_000 });
  let release = () => {};
  let started = () => {};
  const called = new Promise<void>((resolve) => started = resolve);
  health.register("slow", () => {
    started();
    return new Promise<HealthCheckResult>((resolve) => release = () => resolve({ status: "ok" }));
  });
  const server = await startHttpServer({
    listen: "127.0.0.1:0",
    metrics: new MetricsRegistry(),
    health,
    headerTimeoutMs: 600_000,
    closeGraceMs: 600_000,
  });
  const half = await connect(server);
  try {
    await half.write(encoder.encode("GET / HTTP/1.1\r\n"));
    const pending = fetch(`${server.url}/health`);
    await called;
    const closed = server.close();
    assert.equal(await readUntilClosed(half), "");
    release();
    const response = await pending;
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("connection"), "close");
    assert.equal((await response.json()).checks.slow.status, "ok");
    await closed;
  } finally {
    closeQuietly(half);
  }
  await assert.rejects(fetch(`${server.url}/`));
});

Deno.test("http: close closes, after its grace, a connection whose client does not read", async () => {
  const metrics = new MetricsRegistry();
  // Far more than the socket buffers hold: writing it waits for the client.
  metrics.counter("app_big_total", "x".repeat(16 * 1024 * 1024));
  const server = await startHttpServer({
    listen: "127.0.0.1:0",
    metrics,
    health: new HealthRegistry(),
    writeTimeoutMs: 600_000,
    closeGraceMs: 100,
  });
  const conn = await connect(server);
  try {
    await conn.write(encoder.encode("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    // The response has started; the client reads no more of it until the server is closed.
    await guarded(conn, "respond", () => conn.read(new Uint8Array(16)));
    await settles(server.close(), "close()");
    const received = await readUntilClosed(conn);
    assert(received.length < 16 * 1024 * 1024, "the response was cut off");
  } finally {
    closeQuietly(conn);
  }
});

Deno.test("http: kept-alive responses say how long the connection stays open", async () => {
  await withServer(async ({ server }) => {
    const conn = await connect(server);
    try {
      await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      const response = await readResponse(conn);
      assert.equal(response.headers.get("connection"), "keep-alive");
      assert.equal(response.headers.get("keep-alive"), "timeout=65");
    } finally {
      closeQuietly(conn);
    }
  });
});

Deno.test("http: HTTP/1.0 closes unless asked to keep alive", async () => {
  await withServer(async ({ server }) => {
    const closed = await exchange(server, "GET / HTTP/1.0\r\n\r\n");
    assert.match(closed, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(closed, /\r\nconnection: close\r\n/);
    assert.match(closed, /\/metrics {2}Prometheus metrics\n$/);
    const conn = await connect(server);
    try {
      for (let i = 0; i < 2; i++) {
        await conn.write(encoder.encode("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        const response = await readResponse(conn);
        assert.equal(response.status, 200);
        assert.equal(response.headers.get("connection"), "keep-alive");
      }
    } finally {
      closeQuietly(conn);
    }
  });
});

Deno.test("http: pipelined requests are answered in order", async () => {
  await withServer(async ({ server, metrics }) => {
    metrics.counter("app_events_total", "Events").inc();
    const conn = await connect(server);
    try {
      await conn.write(encoder.encode(
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" +
          "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n" +
          "\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      ));
      const reader = responseReader(conn);
      const metricsResponse = await reader.next();
      assert.equal(metricsResponse.status, 200);
      assert.equal(metricsResponse.body, metrics.render());
      const head = await reader.next("HEAD");
      assert.equal(head.status, 200);
      assert.equal(head.body, "");
      const last = await reader.next();
      assert.equal(last.status, 404);
      assert.equal(last.headers.get("connection"), "close");
      assert.equal(reader.pending(), 0);
      assert.equal(await readUntilClosed(conn), "");
    } finally {
      closeQuietly(conn);
    }
  });
});

Deno.test("http: absolute-form targets are served by their path", async () => {
  await withServer(async ({ server, metrics }) => {
    metrics.counter("app_events_total", "Events").inc();
    const conn = await connect(server);
    try {
      await conn.write(
        encoder.encode("GET http://spillway.local:9464/metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
      );
      const response = await readResponse(conn);
      assert.equal(response.status, 200);
      assert.equal(response.body, metrics.render());
    } finally {
      closeQuietly(conn);
    }
    assert.match(
      await exchange(server, "GET spillway.local/metrics HTTP/1.1\r\nConnection: close\r\n\r\n"),
      /^HTTP\/1\.1 400 Bad Request\r\n[^]*Bad request target\n$/,
    );
  });
});

Deno.test("http: a request with a body is answered without reading it, then closed", async () => {
  await withServer(async ({ server }) => {
    for (
      const request of [
        "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        // The body is never sent: the client waits for a 100 Continue that does not come.
        "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        // What looks like a second request is the body, not served.
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 31\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
      ]
    ) {
      const received = await exchange(server, request);
      assert.match(received, /^HTTP\/1\.1 (200 OK|405 Method Not Allowed)\r\n/, request);
      assert.match(received, /\r\nconnection: close\r\n/, request);
      assert.equal(received.match(/HTTP\/1\.1/g)?.length, 1, request);
    }
    // Content-Length: 0 is no body: the connection stays open.
    const conn = await connect(server);
    try {
      await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
      assert.equal((await readResponse(conn)).headers.get("connection"), "keep-alive");
    } finally {
      closeQuietly(conn);
    }
  });
});

Deno.test("http: lines may end in a bare LF, not in a bare CR", async () => {
  await withServer(async ({ server }) => {
    assert.match(await exchange(server, "GET / HTTP/1.0\n\n"), /^HTTP\/1\.1 200 OK\r\n/);
    const conn = await connect(server);
    try {
      await conn.write(encoder.encode("\nGET /health HTTP/1.1\nHost: x\r\n\n"));
      assert.equal((await readResponse(conn)).status, 200);
      await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\n\r\n"));
      assert.equal((await readResponse(conn)).status, 200);
    } finally {
      closeQuietly(conn);
    }
    for (
      const request of [
        "GET / HTTP/1.1\rHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\r\n\r\n",
      ]
    ) {
      assert.match(await exchange(server, request), /^HTTP\/1\.1 400 Bad Request\r\n/, request);
    }
  }, { headerTimeoutMs: 600_000 });
});

Deno.test("http: limits must be whole numbers of at least 1", async () => {
  const cases: [keyof HttpServerOptions, number][] = [
    ["maxConnections", 0],
    ["maxConnections", 1.5],
    ["headerTimeoutMs", Number.NaN],
    ["idleTimeoutMs", Infinity],
    ["maxHeaderBytes", 2 ** 53],
    ["closeGraceMs", -1],
  ];
  for (const [key, value] of cases) {
    await assert.rejects(
      startHttpServer({
        listen: "127.0.0.1:0",
        metrics: new MetricsRegistry(),
        health: new HealthRegistry(),
        [key]: value,
      }),
      (error: Error) =>
        error instanceof RangeError &&
        error.message ===
          `HTTP server option ${key} must be a whole number of at least 1, got ${value}`,
    );
  }
});

Deno.test("http: a wrapListener that throws leaves the port free", async () => {
  let port = 0;
  const options = { metrics: new MetricsRegistry(), health: new HealthRegistry() };
  await assert.rejects(
    startHttpServer({
      ...options,
      listen: "127.0.0.1:0",
      wrapListener: (listener) => {
        port = listener.addr.port;
        throw new Error("Cannot wrap");
      },
    }),
    { message: "Cannot wrap" },
  );
  const again = await startHttpServer({ ...options, listen: `127.0.0.1:${port}` });
  assert.equal(again.port, port);
  await again.close();
});
