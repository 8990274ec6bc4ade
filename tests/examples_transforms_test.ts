/**
 * The worked example of the README's "Transforms" section (`examples/transforms.yaml` and
 * `examples/transforms/`), against a real PostgreSQL: its row types are what `spillway types`
 * writes for its schema, `deno check` passes on its transform and unit test, the demo still
 * creates its orders table, and the pipeline runs the transform as the README says: test orders
 * dropped, `note` renamed, `amount_cents` added, big orders fanned out, a failing event in the
 * dead-letter file with the transform's file:line, DDL met by `schemaChange`, an edit taking
 * over live and a broken edit leaving it running.
 *
 * About 10 s on 2 cores.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { typesCommand } from "../cli/types.ts";
import type { SinkRecord } from "../events.ts";
import type { LogLevel } from "../ops/log.ts";
import { parseConnectionUrl } from "../postgres/connection_string.ts";
import { PgConnection } from "../postgres/connection.ts";
import { startPostgres } from "../testing/embedded_postgres.ts";
import {
  Poller,
  readJsonLines,
  RecordingSink,
  ROOT,
  type Running,
  startRunner,
  waitFor,
} from "./_runner_util.ts";

const EXAMPLES = fileURLToPath(new URL("../examples/", import.meta.url));
const TRANSFORM = join(EXAMPLES, "transforms", "orders.ts");

type Change = Extract<SinkRecord, { kind: "change" }>;

/** A log line with its fields, which the runner's recording logger leaves out. */
interface Line {
  level: string;
  message: string;
  fields: Record<string, unknown>;
}

function fieldsLogger() {
  const lines: Line[] = [];
  const log = (level: LogLevel, message: string, fields: Record<string, unknown> = {}) => {
    lines.push({ level, message, fields });
    if (Deno.env.get("SPILLWAY_TEST_LOG") === "1") {
      console.error(`[runner ${level}] ${message} ${JSON.stringify(fields)}`);
    }
  };
  return Object.assign(log, { lines });
}

/** `deno <args>` in the repository; its exit code and output. */
async function deno(args: string[], stdin?: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const result = await child.output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: result.code, output: decode(result.stdout) + decode(result.stderr) };
}

/** `CREATE TABLE orders (…);` as `text` has it. */
function ordersTable(text: string): string {
  const match = /CREATE TABLE orders \([\s\S]*?\n\);/.exec(text);
  assert.ok(match !== null, `no CREATE TABLE orders in:\n${text}`);
  return match[0];
}

/** The 1-based number of the line of `text` that holds `fragment`. */
function lineOf(text: string, fragment: string): number {
  const at = text.indexOf(fragment);
  assert.ok(at >= 0, `${fragment} is not in the text`);
  return text.slice(0, at).split("\n").length;
}

Deno.test("examples/transforms: its types are spillway types', it type-checks, and the pipeline runs it as the README says", async (t) => {
  // Started first: it runs while the server starts.
  const checking = deno([
    "check",
    "--quiet",
    "examples/transforms/orders.ts",
    "examples/transforms/orders_test.ts",
  ]);
  await using pg = await startPostgres();
  const schema = await Deno.readTextFile(join(EXAMPLES, "transforms", "schema.sql"));
  await pg.psql(schema);
  await pg.psql(
    "INSERT INTO customers (name, email) SELECT 'Customer ' || n, 'c' || n || '@example.com' FROM generate_series(1, 3) n",
  );

  await t.step("the demo creates the same orders table as transforms/schema.sql", async () => {
    const demo = await Deno.readTextFile(join(ROOT, "cli", "demo.ts"));
    assert.equal(ordersTable(demo), ordersTable(schema));
  });

  await t.step(
    "the checked-in row types are what spillway types writes",
    () => typesMatch(pg.url()),
  );

  await t.step("deno check passes on the transform and its unit test", async () => {
    const checked = await checking;
    assert.equal(checked.code, 0, checked.output);
  });

  await t.step(
    "the pipeline runs it: drops, renames, adds, fans out, dead-letters, follows DDL and edits",
    () => runExample(pg.url(), new Poller(pg)),
  );
});

/**
 * `spillway types examples/transforms.yaml` against the server at `url` writes what
 * `examples/transforms/types/` holds (`SPILLWAY_UPDATE_EXAMPLES=1` writes it there).
 */
async function typesMatch(url: string): Promise<void> {
  const out = await Deno.makeTempDir({ prefix: "spillway-example-types-" });
  try {
    const lines: string[] = [];
    const code = await typesCommand([join(EXAMPLES, "transforms.yaml"), "--out", out], {
      stdout: (line) => lines.push(line),
      // The example's URL, whatever ORDERS_URL says, is replaced by the test server's.
      connect: (options) => PgConnection.connect({ ...options, ...parseConnectionUrl(url) }),
    });
    assert.equal(code, 0);
    assert.deepEqual(lines, [`${join(out, "public.ts")}: Orders`]);
    for (const file of ["public.ts", "_pg.ts"]) {
      const written = await Deno.readTextFile(join(out, file));
      const path = join(EXAMPLES, "transforms", "types", file);
      if (Deno.env.get("SPILLWAY_UPDATE_EXAMPLES") === "1") await Deno.writeTextFile(path, written);
      assert.equal(
        written,
        await Deno.readTextFile(path),
        `examples/transforms/types/${file} is not what spillway types writes: run this test with SPILLWAY_UPDATE_EXAMPLES=1 to write it`,
      );
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

/** A run of the example pipeline, as the README's walk-through has it. */
interface Run {
  /** The copy of the transform the run follows. */
  copy: string;
  /** The text of `examples/transforms/orders.ts`. */
  original: string;
  dir: string;
  poller: Poller;
  sink: RecordingSink;
  log: ReturnType<typeof fieldsLogger>;
  /** The changes written for order `id`. */
  ofOrder(id: number): Change[];
}

/**
 * Runs a copy of the example pipeline and its transform against `url` (only `source.url`
 * changed), so that what the run writes (dead letters, row types) stays out of the repository.
 */
async function runExample(url: string, poller: Poller): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "spillway-example-" });
  const copy = join(dir, "transforms", "orders.ts");
  await Deno.mkdir(join(dir, "transforms"));
  const original = await Deno.readTextFile(TRANSFORM);
  await Deno.writeTextFile(copy, original);
  const yaml = (await Deno.readTextFile(join(EXAMPLES, "transforms.yaml")))
    .replace(/^ {2}url: .*$/m, `  url: ${JSON.stringify(url)}`);
  assert.ok(yaml.includes(url), "the example's source.url was replaced");
  const sink = new RecordingSink();
  const log = fieldsLogger();
  let running: Running | null = null;
  try {
    running = await startRunner(yaml, { file: join(dir, "transforms.yaml"), sinks: [sink], log });
    const ofOrder = (id: number) =>
      (sink.changes() as Change[]).filter((record) =>
        (record.event.after ?? record.event.before)?.id === BigInt(id)
      );
    const run: Run = { copy, original, dir, poller, sink, log, ofOrder };
    await changesAndFailures(run);
    await schemaChange(run);
    await edits(run);
  } finally {
    await running?.stop();
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Inserts, a test order, a big one, an update, a delete and an amount that fails. */
async function changesAndFailures({ dir, copy, original, poller, sink, log }: Run): Promise<void> {
  await poller.rows(
    "INSERT INTO orders (customer_id, amount, note) VALUES (1, 25.00, 'gift wrap')",
  );
  await poller.rows("INSERT INTO orders (customer_id, amount, status) VALUES (2, 9.99, 'test')");
  await poller.rows("INSERT INTO orders (customer_id, amount) VALUES (3, 450.00)");
  await poller.rows("UPDATE orders SET status = 'paid' WHERE id = 1");
  await poller.rows("DELETE FROM orders WHERE id = 1");
  await poller.rows("INSERT INTO orders (customer_id, amount) VALUES (1, 'NaN')");
  await waitFor("six transactions", () => sink.commits().length === 6);

  const changes = sink.changes() as Change[];
  assert.deepEqual(
    changes.map((r) => [r.event.op, r.topic, r.key, r.headers ?? null]),
    [
      ["c", "shop.orders", { id: 1n }, null],
      ["c", "shop.orders", { id: 3n }, null],
      ["c", "shop.orders.big", { id: 3n }, { priority: "high" }],
      ["u", "shop.orders", { id: 1n }, null],
      ["d", "shop.orders", { id: 1n }, null],
    ],
    "test order 2 dropped, big order 3 twice, order 4 dead-lettered",
  );
  const first = changes[0]!.event.after!;
  assert.equal(typeof first.created_at, "string");
  assert.deepEqual({ ...first, created_at: "…" }, {
    id: 1n,
    customer_id: 1n,
    amount: "25.00",
    status: "new",
    created_at: "…",
    comment: "gift wrap",
    amount_cents: 2500,
  });
  assert.equal(changes[3]!.event.after?.status, "paid");
  assert.deepEqual(changes[4]!.event.before, { id: 1n }, "a delete's key, as sent");
  assert.deepEqual(sink.commits().map((commit) => commit.eventCount), [1, 0, 2, 1, 1, 0]);
  const dropped = log.lines.find((line) => line.message === "Test order dropped");
  assert.deepEqual(dropped?.fields, {
    transform: "transforms/orders.ts",
    table: "public.orders",
    id: "2",
    op: "c",
  });

  const { lines } = await readJsonLines(join(dir, "shop_orders.dead-letter.jsonl"));
  assert.equal(lines.length, 1, JSON.stringify(lines));
  const dead = lines[0] as unknown as DeadLetter;
  assert.deepEqual(
    [dead.type, dead.transform, dead.reason, dead.attempts, dead.topic, dead.key],
    ["dead-letter", "transforms/orders.ts", "failed", 1, "shop.orders", { id: 4 }],
  );
  assert.equal(dead.error.name, "RangeError");
  assert.equal(dead.error.message, 'Order 4: amount "NaN" is not a number of cents');
  const where = `${RegExp.escape(copy)}:${lineOf(original, "throw new RangeError")}:\\d+`;
  assert.match(dead.error.where, new RegExp(`^${where}$`));
  assert.equal(dead.event.after.amount, "NaN");
  assert.equal(dead.event.after.note, null, "the event as it came, before the transform");
}

/** A dead-letter line, as the README describes it. */
interface DeadLetter {
  type: string;
  transform: string;
  reason: string;
  error: { name: string; message: string; where: string };
  attempts: number;
  topic: string;
  key: unknown;
  event: { op: string; after: Record<string, unknown> };
}

/** DDL: schemaChange logs it; the new column comes through. */
async function schemaChange({ poller, log, ofOrder }: Run): Promise<void> {
  await poller.rows("ALTER TABLE orders ADD COLUMN coupon text");
  await poller.rows(
    "INSERT INTO orders (customer_id, amount, coupon) VALUES (2, 12.50, 'WELCOME')", // 5
  );
  await waitFor("order 5", () => ofOrder(5).length === 1);
  assert.equal(ofOrder(5)[0]!.event.after?.coupon, "WELCOME");
  const ddl = log.lines.find((line) => line.message.startsWith("Columns of public.orders"));
  assert.equal(ddl?.level, "warn");
  assert.deepEqual(ddl?.fields, {
    transform: "transforms/orders.ts",
    table: "public.orders",
    added: "coupon",
    dropped: "",
  });
}

/**
 * An edit: the new version's setup runs, then it takes over at the next transaction. A
 * broken edit: the log names its file:line:col, and the running version stays.
 */
async function edits({ copy, original, poller, log, ofOrder }: Run): Promise<void> {
  const ready = () => log.lines.filter((line) => line.message === "Orders transform ready");
  const edited = original.replace("BIG_ORDER_CENTS = 40_000", "BIG_ORDER_CENTS = 1_000");
  await Deno.writeTextFile(copy, edited);
  await waitFor("the edited version's setup", () => ready().length === 2);
  assert.equal(ready()[1]!.fields.bigOrderCents, 1_000);
  await poller.rows("INSERT INTO orders (customer_id, amount) VALUES (3, 25.00)"); // 6
  await waitFor("order 6 twice", () => ofOrder(6).length === 2, {
    detail: () => JSON.stringify(ofOrder(6).map((r) => r.topic)),
  });
  assert.ok(log.lines.some((line) => line.message === "Transform version took over"));

  const broken = edited.replace("return clean;\n", "return clean +;\n");
  await Deno.writeTextFile(copy, broken);
  const failed = () => log.lines.find((line) => line.message.startsWith("Transform did not load"));
  await waitFor("the failed reload", () => failed() !== undefined);
  const at = new RegExp(`orders\\.ts:${lineOf(broken, "return clean +;")}:\\d+`);
  assert.match(String(failed()!.fields.error), at);
  await poller.rows("INSERT INTO orders (customer_id, amount) VALUES (1, 30.00)"); // 7
  await waitFor("order 7 twice, by the edited version", () => ofOrder(7).length === 2, {
    detail: () => JSON.stringify(ofOrder(7).map((r) => r.topic)),
  });
}
