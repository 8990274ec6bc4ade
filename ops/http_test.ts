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

/** One response, framed by its content-length (none for HEAD), leaving the connection open. */
function readResponse(conn: Deno.Conn, method = "GET"): Promise<RawResponse> {
  return guarded(conn, "respond", async () => {
    let bytes = new Uint8Array(0);
    const chunk = new Uint8Array(4096);
    let response: RawResponse | undefined;
    let need = Infinity;
    while (bytes.length < need) {
      const n = await conn.read(chunk);
      if (n === null) throw new Error("The server closed the connection before responding");
      const joined = new Uint8Array(bytes.length + n);
      joined.set(bytes);
      joined.set(chunk.subarray(0, n), bytes.length);
      bytes = joined;
      const text = new TextDecoder().decode(bytes);
      const end = text.indexOf("\r\n\r\n");
      if (end === -1) continue;
      const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
      const headers = new Headers(
        lines.map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1)]),
      );
      need = end + 4 + (method === "HEAD" ? 0 : Number(headers.get("content-length")));
      response = { status: Number(statusLine.split(" ")[1]), headers, body: text.slice(end + 4) };
    }
    assert.equal(bytes.length, need, "no more bytes than the response");
    return response!;
  });
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
      assert.equal(get.body, metrics.render());
      // HEAD: the length of the GET body, no body; the next response starts right after.
      await conn.write(encoder.encode("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
      const head = await readResponse(conn, "HEAD");
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), String(get.body.length));
      assert.equal(head.body, "");
      await conn.write(encoder.encode("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"));
      assert.equal((await readResponse(conn)).status, 404);
      assert.equal(await readUntilClosed(conn), "");
    } finally {
      closeQuietly(conn);
    }
  }, { idleTimeoutMs: 200 });
});

Deno.test("http: connections past the cap are closed; those within it are still served", async () => {
  await withServer(async ({ server, logs }) => {
    const first = await connect(server);
    const second = await connect(server);
    try {
      await first.write(encoder.encode("GET /health HTTP/1.1\r\nHost: x\r\n"));
      await second.write(encoder.encode("GET / HTTP/1.1\r\n"));
      const third = await connect(server);
      try {
        await third.write(encoder.encode("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")).catch(() => 0);
        assert.equal(await readUntilClosed(third), "", "the third connection got no response");
      } finally {
        closeQuietly(third);
      }
      await first.write(encoder.encode("\r\n"));
      assert.equal((await readResponse(first)).status, 200);
      assert.deepEqual(
        logs.filter(([level]) => level === "warn"),
        [["warn", "Too many HTTP connections; closing new ones", { maxConnections: 2 }]],
      );
    } finally {
      closeQuietly(first);
      closeQuietly(second);
    }
    // Once the server has seen those two go, new connections are served again.
    for (let attempt = 1;; attempt++) {
      try {
        const response = await fetch(`${server.url}/`);
        assert.equal(response.status, 200);
        await response.body?.cancel();
        break;
      } catch (error) {
        if (attempt === 200) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }, { maxConnections: 2 });
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
