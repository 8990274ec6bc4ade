import assert from "node:assert/strict";
import {
  type HealthCheckResult,
  healthHttpStatus,
  HealthRegistry,
  type HealthStatus,
  worseStatus,
} from "./health.ts";

const fixedNow = () => new Date("2025-01-02T03:04:05.678Z");

Deno.test("report: no checks is ok, with the clock's time", async () => {
  const report = await new HealthRegistry({ now: fixedNow }).report();
  assert.deepEqual(report, { status: "ok", checks: {}, time: "2025-01-02T03:04:05.678Z" });
});

Deno.test("report: the worst status wins", async () => {
  const cases: [HealthStatus[], HealthStatus][] = [
    [["ok"], "ok"],
    [["ok", "ok"], "ok"],
    [["ok", "degraded"], "degraded"],
    [["degraded", "ok"], "degraded"],
    [["ok", "failing", "degraded"], "failing"],
    [["failing", "ok"], "failing"],
  ];
  for (const [statuses, expected] of cases) {
    const health = new HealthRegistry();
    statuses.forEach((status, index) => health.register(`c${index}`, () => ({ status })));
    const report = await health.report();
    assert.equal(report.status, expected, `${statuses.join(", ")} → ${expected}`);
  }
});

Deno.test("report: results by name in registration order, sync and async", async () => {
  const health = new HealthRegistry({ now: fixedNow });
  health.register("slot", () => ({
    status: "degraded",
    detail: "wal_status is extended",
    data: { safeWalSize: 1024 },
  }));
  health.register("queue", async () => {
    await Promise.resolve();
    return { status: "ok", data: { depth: 3, capacity: 10 } };
  });
  const report = await health.report();
  assert.deepEqual(Object.keys(report.checks), ["slot", "queue"]);
  assert.deepEqual(report, {
    status: "degraded",
    checks: {
      slot: { status: "degraded", detail: "wal_status is extended", data: { safeWalSize: 1024 } },
      queue: { status: "ok", data: { depth: 3, capacity: 10 } },
    },
    time: "2025-01-02T03:04:05.678Z",
  });
});

Deno.test("report: a check that throws or rejects is failing with the error message", async () => {
  const health = new HealthRegistry();
  health.register("sync", () => {
    throw new Error("Cannot query pg_replication_slots: connection closed");
  });
  health.register("async", () => Promise.reject(new Error("Kafka broker unreachable")));
  health.register("odd", () => {
    throw "a string";
  });
  health.register("fine", () => ({ status: "ok" }));
  const report = await health.report();
  assert.equal(report.status, "failing");
  assert.deepEqual(report.checks, {
    sync: { status: "failing", detail: "Cannot query pg_replication_slots: connection closed" },
    async: { status: "failing", detail: "Kafka broker unreachable" },
    odd: { status: "failing", detail: "a string" },
    fine: { status: "ok" },
  });
});

Deno.test("report: a check slower than the timeout is failing", async () => {
  const health = new HealthRegistry({ timeoutMs: 20 });
  health.register("stuck", () => new Promise<HealthCheckResult>(() => {}));
  health.register("quick", () => ({ status: "ok" }));
  const report = await health.report();
  assert.equal(report.status, "failing");
  assert.deepEqual(report.checks.stuck, {
    status: "failing",
    detail: 'Check "stuck" did not answer within 20 ms',
  });
  assert.deepEqual(report.checks.quick, { status: "ok" });
});

Deno.test("report: the default timeout is one second", async () => {
  const health = new HealthRegistry();
  health.register("stuck", () => new Promise<HealthCheckResult>(() => {}));
  // The timer is looked at, not waited for: the delays the report arms are recorded and every
  // timer fires at once, so the answer shows which timer ended the wait, whatever the load.
  const delays: (number | undefined)[] = [];
  const realSetTimeout = globalThis.setTimeout;
  globalThis.setTimeout = ((callback: () => void, delay?: number) => {
    delays.push(delay);
    return realSetTimeout(callback, 0);
  }) as typeof setTimeout;
  let report;
  try {
    report = await health.report();
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
  assert.deepEqual(delays, [1000], "one timer, of 1000 ms");
  assert.equal(report.status, "failing");
  assert.equal(report.checks.stuck?.detail, 'Check "stuck" did not answer within 1000 ms');
});

Deno.test("report: a check that answers after a wait within the timeout counts", async () => {
  const health = new HealthRegistry({ timeoutMs: 500 });
  health.register("slow", async () => {
    await new Promise((resolve) => setTimeout(resolve, 10));
    return { status: "degraded", detail: "lagging" };
  });
  assert.deepEqual((await health.report()).checks.slow, { status: "degraded", detail: "lagging" });
});

Deno.test("report: checks run at the same time", async () => {
  // "first" can only finish once "second" has started; run one after the other it would time out.
  const health = new HealthRegistry({ timeoutMs: 200 });
  let release = () => {};
  const secondStarted = new Promise<void>((resolve) => release = resolve);
  health.register("first", async () => {
    await secondStarted;
    return { status: "ok" };
  });
  health.register("second", () => {
    release();
    return { status: "ok" };
  });
  assert.equal((await health.report()).status, "ok");
});

Deno.test("report: an answer that is not a result is failing, extra fields dropped", async () => {
  const health = new HealthRegistry();
  const register = (name: string, value: unknown) =>
    health.register(name, () => value as HealthCheckResult);
  register("nothing", undefined);
  register("number", 3);
  register("unknown", { status: "green" });
  register("missing", { detail: "no status" });
  register("extra", { status: "ok", detail: 5, data: { a: 1 }, secret: "dropped" });
  const report = await health.report();
  assert.deepEqual(report.checks, {
    nothing: { status: "failing", detail: 'Check "nothing" returned undefined, not a result' },
    number: { status: "failing", detail: 'Check "number" returned 3, not a result' },
    unknown: {
      status: "failing",
      detail: 'Check "unknown" returned status "green": expected "ok", "degraded" or "failing"',
    },
    missing: {
      status: "failing",
      detail: 'Check "missing" returned status undefined: expected "ok", "degraded" or "failing"',
    },
    extra: { status: "ok", detail: "5", data: { a: 1 } },
  });
});

Deno.test("register: names are unique, non-empty, and can be removed", async () => {
  const health = new HealthRegistry();
  health.register("transform:public.orders", () => ({ status: "ok" }));
  assert.throws(() => health.register("transform:public.orders", () => ({ status: "ok" })), {
    message:
      'Cannot register health check "transform:public.orders": the name is already registered',
  });
  assert.throws(() => health.register("", () => ({ status: "ok" })), {
    message: "Cannot register health check: the name must be a non-empty string",
  });
  assert.throws(
    () => health.register("x", "not a function" as unknown as () => HealthCheckResult),
    { message: 'Cannot register health check "x": the check must be a function' },
  );
  health.register("__proto__", () => ({ status: "degraded" }));
  assert.deepEqual(health.names(), ["transform:public.orders", "__proto__"]);
  const report = await health.report();
  assert.equal(Object.hasOwn(report.checks, "__proto__"), true);
  assert.equal(report.status, "degraded");
  assert.equal(health.unregister("__proto__"), true);
  assert.equal(health.unregister("__proto__"), false);
  assert.equal((await health.report()).status, "ok");
});

Deno.test("status helpers: worse status and HTTP status", () => {
  assert.equal(worseStatus("ok", "ok"), "ok");
  assert.equal(worseStatus("ok", "degraded"), "degraded");
  assert.equal(worseStatus("failing", "degraded"), "failing");
  assert.equal(healthHttpStatus("ok"), 200);
  assert.equal(healthHttpStatus("degraded"), 200);
  assert.equal(healthHttpStatus("failing"), 503);
});
