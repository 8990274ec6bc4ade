import { errorMessage } from "../errors.ts";
/**
 * Health checks by name, run together into one report for `GET /health`.
 * Each stage registers its own checks (source, slot, queue, transforms, sinks).
 *
 * @module
 */

/** How a check, or the whole process, is doing; `failing` answers HTTP 503. */
export type HealthStatus = "ok" | "degraded" | "failing";

/** What one check says. */
export interface HealthCheckResult {
  status: HealthStatus;
  /** One line for a human, e.g. why it is degraded and what to do. */
  detail?: string;
  /** Figures behind the status, rendered as JSON. */
  data?: Record<string, unknown>;
}

/** A check: quick, and free of side effects. */
export type HealthCheck = () => HealthCheckResult | Promise<HealthCheckResult>;

/** Every check's result and the worst of them. */
export interface HealthReport {
  /** The worst status of all checks; `ok` when there are none. */
  status: HealthStatus;
  /** Results by check name, in registration order. */
  checks: Record<string, HealthCheckResult>;
  /** When the report was made, ISO 8601. */
  time: string;
}

/** Options of {@linkcode HealthRegistry}. */
export interface HealthRegistryOptions {
  /** A check that takes longer counts as failing. Default 1000 ms. */
  timeoutMs?: number;
  /** Clock for the report's `time`. */
  now?: () => Date;
}

const SEVERITY: Record<HealthStatus, number> = { ok: 0, degraded: 1, failing: 2 };

/**
 * Named health checks. A check that throws, answers something that is not a
 * result, or takes longer than the timeout counts as failing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HealthRegistry } from "./health.ts";
 * const health = new HealthRegistry();
 * health.register("queue", () => ({ status: "ok", data: { depth: 3 } }));
 * health.register("slot", () => ({ status: "degraded", detail: "wal_status is extended" }));
 * const report = await health.report();
 * assert.equal(report.status, "degraded");
 * assert.equal(report.checks.queue?.status, "ok");
 * ```
 */
export class HealthRegistry {
  readonly #checks = new Map<string, HealthCheck>();
  readonly #timeoutMs: number;
  readonly #now: () => Date;

  constructor(options: HealthRegistryOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 1000;
    this.#now = options.now ?? (() => new Date());
  }

  /** Adds a check; a name already in use is an error. */
  register(name: string, check: HealthCheck): void {
    if (typeof name !== "string" || name === "") {
      throw new TypeError("Cannot register health check: the name must be a non-empty string");
    }
    if (typeof check !== "function") {
      throw new TypeError(`Cannot register health check "${name}": the check must be a function`);
    }
    if (this.#checks.has(name)) {
      throw new Error(`Cannot register health check "${name}": the name is already registered`);
    }
    this.#checks.set(name, check);
  }

  /** Removes a check, e.g. when a transform is unloaded. True if it was there. */
  unregister(name: string): boolean {
    return this.#checks.delete(name);
  }

  /** The names of the registered checks, in registration order. */
  names(): string[] {
    return [...this.#checks.keys()];
  }

  /** Runs every check at once and reports each result and the worst status. */
  async report(): Promise<HealthReport> {
    const entries = [...this.#checks];
    const results = await Promise.all(
      entries.map(([name, check]) => runCheck(name, check, this.#timeoutMs)),
    );
    let status: HealthStatus = "ok";
    for (const result of results) status = worseStatus(status, result.status);
    const checks = Object.fromEntries(entries.map(([name], index) => [name, results[index]!]));
    return { status, checks, time: this.#now().toISOString() };
  }
}

/**
 * The worse of two statuses: `failing` over `degraded` over `ok`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { worseStatus } from "./health.ts";
 * assert.equal(worseStatus("degraded", "ok"), "degraded");
 * ```
 */
export function worseStatus(a: HealthStatus, b: HealthStatus): HealthStatus {
  return SEVERITY[b] > SEVERITY[a] ? b : a;
}

/**
 * The HTTP status for a health status: 200 for `ok` and `degraded`, 503 for `failing`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { healthHttpStatus } from "./health.ts";
 * assert.equal(healthHttpStatus("failing"), 503);
 * ```
 */
export function healthHttpStatus(status: HealthStatus): 200 | 503 {
  return status === "failing" ? 503 : 200;
}

async function runCheck(
  name: string,
  check: HealthCheck,
  timeoutMs: number,
): Promise<HealthCheckResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    const result = await Promise.race([check(), timeout]);
    if (result === "timeout") {
      return { status: "failing", detail: `Check "${name}" did not answer within ${timeoutMs} ms` };
    }
    return validResult(name, result);
  } catch (error) {
    return { status: "failing", detail: errorMessage(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** A copy of a check's result with only the known fields, or a failing result saying why not. */
function validResult(name: string, result: unknown): HealthCheckResult {
  if (typeof result !== "object" || result === null) {
    return {
      status: "failing",
      detail: `Check "${name}" returned ${String(result)}, not a result`,
    };
  }
  const { status, detail, data } = result as Record<string, unknown>;
  if (typeof status !== "string" || !Object.hasOwn(SEVERITY, status)) {
    return {
      status: "failing",
      detail: `Check "${name}" returned status ${JSON.stringify(status) ?? "undefined"}: ` +
        'expected "ok", "degraded" or "failing"',
    };
  }
  const copy: HealthCheckResult = { status: status as HealthStatus };
  if (detail !== undefined) copy.detail = String(detail);
  if (typeof data === "object" && data !== null) copy.data = data as Record<string, unknown>;
  return copy;
}
