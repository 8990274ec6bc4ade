import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { type HealthCheckResult, HealthRegistry } from "./health.ts";
import { createHttpHandler, type HttpServer, startHttpServer } from "./http.ts";
import type { Logger, LogLevel } from "./log.ts";
import { MetricsRegistry, PROMETHEUS_CONTENT_TYPE } from "./prometheus.ts";

interface Setup {
  server: HttpServer;
  metrics: MetricsRegistry;
  health: HealthRegistry;
  logs: [LogLevel, string, Record<string, unknown> | undefined][];
}

async function withServer(test: (setup: Setup) => Promise<void>): Promise<void> {
  const metrics = new MetricsRegistry();
  const health = new HealthRegistry({ now: () => new Date("2025-01-02T03:04:05.000Z") });
  const logs: Setup["logs"] = [];
  const log: Logger = (level, message, fields) => logs.push([level, message, fields]);
  const server = await startHttpServer({ listen: "127.0.0.1:0", metrics, health, log });
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
