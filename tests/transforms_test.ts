/**
 * Transforms in a running pipeline, against a real PostgreSQL, with transform files written
 * (and edited) on disk: every hook in order for a workload; hot reload under load, switching
 * only at transaction boundaries; schemaChange on DDL; transforms that throw, loop, fail to
 * compile or reach for what they were not granted, each down its on_error path with nothing
 * lost; the breaker; `stop` holding the slot until the file is fixed.
 *
 * The default run takes about a minute on 2 cores (the stop-while-hanging test waits out the
 * 10 s grace period).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { SinkRecord } from "../events.ts";
import { parsePipelineConfig } from "../config/mod.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import { formatLsn, parseLsn } from "../decoder/lsn.ts";
import { createDeadLetterSink } from "../pipelines/run_pipeline.ts";
import { HealthRegistry } from "../ops/health.ts";
import { MetricsRegistry } from "../ops/prometheus.ts";
import { testVersions } from "../testing/embedded_postgres.ts";
import { transformMetrics } from "../transforms/metrics.ts";
import { sharedServers } from "./_replication.ts";
import {
  confirmedReaches,
  dropItemsPipeline,
  failure,
  pipelineYaml,
  Poller,
  range,
  readJsonLines,
  RecordingSink,
  type Running,
  sleep,
  slotPosition,
  startRunner,
  waitFor,
} from "./_runner_util.ts";
import { versionTests } from "./_versions.ts";

const servers = sharedServers({ settings: { wal_sender_timeout: "5s", autovacuum: "off" } });
const tests = versionTests(servers);

type Change = Extract<SinkRecord, { kind: "change" }>;

/** A temporary folder with transform files, and a pipeline over `${name}_items` beside them. */
async function workspace(name: string, files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: `spillway-${name}-` });
  for (const [file, text] of Object.entries(files)) await Deno.writeTextFile(join(dir, file), text);
  return dir;
}

interface Setup {
  dir: string;
  poller: Poller;
  sink: RecordingSink;
  running: Running;
  registry: MetricsRegistry;
  health: HealthRegistry;
}

/** Creates `${name}_items (id int primary key, value text)` and runs the pipeline over it. */
async function runWith(
  version: Parameters<typeof servers.server>[0],
  name: string,
  files: Record<string, string>,
  options: { table?: string; transforms?: string; columns?: string } = {},
): Promise<Setup> {
  const pg = await servers.server(version);
  const poller = new Poller(pg);
  await poller.rows(
    `CREATE TABLE ${name}_items (${options.columns ?? "id int PRIMARY KEY, value text"})`,
  );
  const dir = await workspace(name, files);
  const yaml = pipelineYaml({
    name,
    url: pg.url(),
    slot: `${name}_slot`,
    publication: `${name}_pub`,
    tables: { [`public.${name}_items`]: options.table ?? "{ transform: t.ts }" },
  }) + (options.transforms ? `transforms: ${options.transforms}\n` : "");
  const sink = new RecordingSink();
  const registry = new MetricsRegistry();
  const health = new HealthRegistry();
  const running = await startRunner(yaml, {
    file: join(dir, "pipeline.yaml"),
    sinks: [sink],
    transformMetrics: transformMetrics(registry),
    health,
  });
  return { dir, poller, sink, running, registry, health };
}

async function cleanUp(version: Parameters<typeof servers.server>[0], name: string, setup: Setup) {
  await setup.running.stop().catch(() => {});
  await dropItemsPipeline(await servers.server(version), setup.poller, name);
  await setup.poller.close();
  await Deno.remove(setup.dir, { recursive: true });
}

function changeIds(sink: RecordingSink): number[] {
  return sink.changes().map((record) => Number((record.event.after ?? record.event.before)?.id));
}

Deno.test("transforms: a dead-letter file that a file sink writes too is refused", async () => {
  const yaml = pipelineYaml({
    name: "dlq",
    url: "postgres://postgres@127.0.0.1:1/app",
    slot: "dlq_slot",
    publication: "dlq_pub",
    tables: { "public.t": "{ transform: t.ts }" },
    sinks: ["file: { path: out.jsonl }"],
  }) + "transforms: { dead_letter: { file: { path: out.jsonl } } }\n";
  const config = parsePipelineConfig(yaml, { file: "/srv/p.yaml", env: {} });
  const error = await failure(async () => await createDeadLetterSink(config, new TypeRegistry()));
  assert.match(error.message, /Cannot write dead letters to \/srv\/out\.jsonl: a file sink/);
});

// ---------------------------------------------------------------------------------------------
// Hooks

const TRACING = `import { defineTransform } from "spillway";
export default defineTransform<{ id: number; value: string | null }>({
  setup(ctx) { ctx.log("info", "hook setup"); },
  begin(tx, ctx) { ctx.log("info", \`hook begin \${tx.xid}\`); },
  change(event, ctx) {
    const row = event.after ?? event.before!;
    ctx.log("info", \`hook change \${event.op} \${row.id} \${event.source.xid} \${ctx.relation!.columns.map((c) => c.name).join(",")}\`);
    return { ...event, after: event.after && { ...event.after, traced: true } };
  },
  truncate(event, ctx) { ctx.log("info", \`hook truncate \${event.source.table} \${event.source.xid}\`); return event; },
  commit(tx, ctx) { ctx.log("info", \`hook commit \${tx.xid}\`); },
});
`;

tests.test("transforms: every hook in order for inserts, updates, deletes, a truncate, a big and an aborted transaction", async (version) => {
  const name = "tr_hooks";
  const setup = await runWith(version, name, { "t.ts": TRACING });
  const { poller, sink, running } = setup;
  try {
    await poller.rows(`INSERT INTO ${name}_items VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
    await poller.rows(`UPDATE ${name}_items SET value = 'A' WHERE id = 1`);
    await poller.rows(`DELETE FROM ${name}_items WHERE id = 2`);
    await poller.rows(`BEGIN; INSERT INTO ${name}_items VALUES (9999, 'x'); ROLLBACK`);
    await poller.rows(`TRUNCATE ${name}_items`);
    await poller.rows(
      `INSERT INTO ${name}_items SELECT g, 'big' FROM generate_series(100, 5099) g`,
    );
    await waitFor("the big transaction", () => sink.commits().length >= 5);
    const hooks = running.log.lines
      .filter((line) => line.message.startsWith("hook "))
      .map((line) => line.message.slice(5));
    assert.equal(hooks[0], "setup");
    // Group by transaction: begin X … commit X, every change of X inside.
    const groups: string[][] = [];
    for (const hook of hooks.slice(1)) {
      if (hook.startsWith("begin ")) groups.push([hook]);
      else groups.at(-1)!.push(hook);
    }
    assert.equal(
      groups.length,
      5,
      `five transactions reached the transform: ${groups.map((g) => g[0]).join("; ")}`,
    );
    for (const group of groups) {
      const xid = group[0]!.split(" ")[1];
      assert.equal(group.at(-1), `commit ${xid}`);
      for (const hook of group.slice(1, -1)) {
        assert.ok(hook.endsWith(` ${xid}`) || hook.includes(` ${xid} `), hook);
      }
    }
    const body = (i: number) =>
      groups[i]!.slice(1, -1).map((hook) => hook.split(" ").slice(0, 3).join(" "));
    assert.deepEqual(body(0), ["change c 1", "change c 2", "change c 3"]);
    assert.deepEqual(body(1), ["change u 1"]);
    assert.deepEqual(body(2), ["change d 2"]);
    assert.deepEqual(body(3).map((hook) => hook.split(" ").slice(0, 2).join(" ")), [
      `truncate ${name}_items`,
    ]);
    assert.deepEqual(body(4), range(100, 5099).map((id) => `change c ${id}`));
    assert.ok(groups[0]![1]!.endsWith(" id,value"), "ctx.relation has the table's columns");
    // The aborted transaction never reached it, and the sinks got what the transform returned.
    assert.ok(!hooks.some((hook) => hook.includes(" 9999 ")));
    const inserted = sink.changes().filter((record) => record.event.op === "c");
    assert.equal(inserted.length, 3 + 5000);
    assert.ok(inserted.every((record) => record.event.after?.traced === true));
    assert.deepEqual(sink.commits().map((commit) => commit.eventCount), [3, 1, 1, 1, 5000]);
  } finally {
    await cleanUp(version, name, setup);
  }
});

// ---------------------------------------------------------------------------------------------
// Hot reload

function stamped(version: number): string {
  return `import { defineTransform } from "spillway";
export default defineTransform({
  change: (event) => ({ ...event, after: { ...event.after, version: ${version} } }),
});
`;
}

tests.test("transforms: edited 20 times under load, each event is run by exactly one version, switching only between transactions", async (version) => {
  const name = "tr_reload";
  const setup = await runWith(version, name, { "t.ts": stamped(0) });
  const { poller, sink, dir } = setup;
  try {
    let stop = false;
    let next = 1;
    const load = (async () => {
      while (!stop) {
        await poller.rows(
          `INSERT INTO ${name}_items SELECT g, 'v' FROM generate_series(${next}, ${next + 9}) g`,
        );
        next += 10;
        await sleep(5);
      }
    })();
    for (let edit = 1; edit <= 20; edit++) {
      await sleep(150);
      await Deno.writeTextFile(join(dir, "t.ts"), stamped(edit));
    }
    await waitFor(
      "version 20 at work",
      () => sink.changes().some((record) => record.event.after?.version === 20),
      { timeoutMs: 20_000 },
    );
    stop = true;
    await load;
    await waitFor("every row", () => sink.changes().length === next - 1, { timeoutMs: 20_000 });
    assert.deepEqual(
      changeIds(setup.sink).sort((a, b) => a - b),
      range(1, next - 1),
      "none lost or twice",
    );
    let previous = 0;
    const versions = new Set<number>();
    for (const [, records] of Map.groupBy(sink.changes(), (record) => record.event.source.xid)) {
      const seen = new Set(records.map((record) => record.event.after?.version as number));
      assert.equal(seen.size, 1, "one version per transaction");
      const [v] = seen;
      assert.ok(v! >= previous, `versions only move forward (${previous} then ${v})`);
      previous = v!;
      versions.add(v!);
    }
    assert.ok(versions.size >= 10, `most edits took over (${[...versions].join(", ")})`);
    assert.ok(
      setup.registry.render().includes(`spillway_transform_reloads_total{transform="t.ts"}`),
    );
  } finally {
    await cleanUp(version, name, setup);
  }
});

tests.test("transforms: a version that does not compile leaves the running one in place, its error in /health", async (version) => {
  const name = "tr_badedit";
  const setup = await runWith(version, name, { "t.ts": stamped(1) });
  const { poller, sink, dir, health } = setup;
  try {
    await poller.rows(`INSERT INTO ${name}_items VALUES (1, 'a')`);
    await waitFor("row 1", () => sink.changes().length === 1);
    await Deno.writeTextFile(
      join(dir, "t.ts"),
      `import { defineTransform } from "spillway";\nexport default defineTransform({\n  change: (event) => { return event +; },\n});\n`,
    );
    await waitFor("the failed reload in /health", async () => {
      const report = await health.report();
      return JSON.stringify(report).includes("t.ts:3:");
    });
    assert.equal((await health.report()).checks["transform:t.ts"]?.status, "degraded");
    await poller.rows(`INSERT INTO ${name}_items VALUES (2, 'b')`);
    await waitFor("row 2", () => sink.changes().length === 2);
    assert.equal(sink.changes()[1]!.event.after?.version, 1, "the old version still runs");
    await Deno.writeTextFile(join(dir, "t.ts"), stamped(2));
    await sleep(500);
    await poller.rows(`INSERT INTO ${name}_items VALUES (3, 'c')`);
    await waitFor("row 3", () => sink.changes().length === 3);
    assert.equal(sink.changes()[2]!.event.after?.version, 2, "the fixed version took over");
    assert.equal((await health.report()).checks["transform:t.ts"]?.status, "ok");
  } finally {
    await cleanUp(version, name, setup);
  }
});

// ---------------------------------------------------------------------------------------------
// Failures

const FAILING = `import { defineTransform } from "spillway";
export default defineTransform<{ id: number; value: string }>({
  change(event) {
    const id = event.after!.id;
    if (id % 10 === 0) throw new Error(\`no tens: \${id}\`);
    if (id === 33) for (;;) {}
    if (id === 47) Deno.readTextFileSync("/etc/passwd");
    if (id === 58) return fetch("http://localhost:45678/").then(() => event);
    if (id === 61) return { op: "x" } as never;
    return event;
  },
});
`;

tests.test("transforms: throws, loops, forbidden reads and fetches, invalid returns all go to the dead-letter file; nothing lost", async (version) => {
  const name = "tr_fail";
  const setup = await runWith(version, name, { "t.ts": FAILING }, {
    transforms: "{ timeout: 300ms, on_error: dead_letter, breaker: { failures: 100 } }",
  });
  const { poller, sink, dir } = setup;
  try {
    for (let first = 1; first <= 70; first += 10) {
      await poller.rows(
        `INSERT INTO ${name}_items SELECT g, 'v' FROM generate_series(${first}, ${first + 9}) g`,
      );
    }
    const file = join(dir, `${name}.dead-letter.jsonl`);
    await waitFor("seven commits", () => sink.commits().length === 7, { timeoutMs: 30_000 });
    const { lines } = await readJsonLines(file);
    const dead = lines as unknown as {
      type: string;
      transform: string;
      error: { name: string; message: string; where: string | null };
      event: { after: { id: number } };
    }[];
    const deadIds = dead.map((line) => line.event.after.id).sort((a, b) => a - b);
    assert.deepEqual(deadIds, [10, 20, 30, 33, 40, 47, 50, 58, 60, 61, 70]);
    const delivered = changeIds(sink);
    assert.deepEqual(
      [...delivered, ...deadIds].sort((a, b) => a - b),
      range(1, 70),
      "nothing lost",
    );
    const byId = new Map(dead.map((line) => [line.event.after.id, line]));
    assert.match(byId.get(10)!.error.message, /no tens: 10/);
    assert.match(byId.get(10)!.error.where ?? "", /t\.ts:5:\d+$/);
    assert.match(byId.get(33)!.error.message, /time budget/);
    assert.equal(byId.get(47)!.error.name, "NotCapable");
    assert.match(byId.get(47)!.error.where ?? "", /t\.ts:7:\d+$/);
    assert.equal(byId.get(58)!.error.name, "NotCapable", JSON.stringify(byId.get(58)));
    assert.match(byId.get(61)!.error.message, /returned \{"op":"x"\}/);
    assert.equal(byId.get(10)!.transform, "t.ts");
    // Each commit counts what the sinks got.
    assert.deepEqual(
      sink.commits().map((commit) => commit.eventCount),
      [9, 9, 9, 8, 8, 8, 8],
    );
  } finally {
    await cleanUp(version, name, setup);
  }
});

tests.test("transforms: retry, then passthrough marks the event untransformed", async (version) => {
  const name = "tr_pass";
  const setup = await runWith(version, name, {
    "t.ts": `import { defineTransform } from "spillway";
export default defineTransform({
  change(event, ctx) {
    const n = (ctx.state.n as number | undefined ?? 0) + 1;
    ctx.state.n = n;
    // Row 2 fails once (its retry passes), row 3 always.
    if (event.after!.id === 2 && n === 2) throw new Error("flaky");
    if (event.after!.id === 3) throw new Error("always");
    return { ...event, after: { ...event.after, done: true } };
  },
});
`,
  }, { transforms: "{ on_error: [retry: 2, passthrough] }" });
  const { poller, sink } = setup;
  try {
    await poller.rows(`INSERT INTO ${name}_items VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
    await waitFor("three rows", () => sink.changes().length === 3);
    const [one, two, three] = sink.changes() as Change[];
    assert.equal(one!.event.after?.done, true);
    assert.equal(two!.event.after?.done, true, "the retry passed");
    assert.equal(three!.event.after?.done, undefined, "passed through as decoded");
    assert.match(
      three!.headers?.["spillway.untransformed"] ?? "",
      /^t\.ts: Error: always|^t\.ts: always/,
    );
    assert.equal(one!.headers, undefined);
  } finally {
    await cleanUp(version, name, setup);
  }
});

tests.test("transforms: the breaker opens after N failures and every event then takes on_error; skip drops them", async (version) => {
  const name = "tr_breaker";
  const setup = await runWith(version, name, {
    "t.ts": `import { defineTransform } from "spillway";
export default defineTransform({
  change(event) {
    if (event.after!.id <= 3) throw new Error("broken");
    return event;
  },
});
`,
  }, { transforms: "{ on_error: skip, breaker: { failures: 3, window: 1m, cooldown: 1h } }" });
  const { poller, sink, registry, health } = setup;
  try {
    for (let id = 1; id <= 3; id++) {
      await poller.rows(`INSERT INTO ${name}_items VALUES (${id}, 'v')`);
    }
    await waitFor("three commits", () => sink.commits().length === 3);
    assert.ok(registry.render().includes(`spillway_transform_breaker_state{transform="t.ts"} 2`));
    // Rows the transform would take: the open breaker sends them to on_error all the same.
    for (let id = 4; id <= 6; id++) {
      await poller.rows(`INSERT INTO ${name}_items VALUES (${id}, 'v')`);
    }
    await waitFor("six commits", () => sink.commits().length === 6);
    assert.deepEqual(changeIds(sink), [], "1-3 failed, 4-6 met the open breaker; all skipped");
    const metrics = registry.render();
    assert.ok(metrics.includes(`spillway_transform_breaker_state{transform="t.ts"} 2`), metrics);
    assert.ok(
      metrics.includes(`spillway_transform_fallbacks_total{transform="t.ts",action="skip"} 6`),
    );
    const report = await health.report();
    assert.equal(report.checks["transform:t.ts"]?.status, "degraded");
  } finally {
    await cleanUp(version, name, setup);
  }
});

tests.test("transforms: on_error stop holds the slot and writes nothing until the file is fixed", async (version) => {
  const name = "tr_stop";
  const setup = await runWith(version, name, {
    "t.ts": `import { defineTransform } from "spillway";
export default defineTransform({
  change(event) {
    if (event.after!.id === 2) throw new Error("cannot take 2");
    return { ...event, after: { ...event.after, v: 1 } };
  },
});
`,
  }, { transforms: "{ on_error: stop }" });
  const { poller, sink, dir, health } = setup;
  try {
    await poller.rows(`INSERT INTO ${name}_items VALUES (1, 'a')`);
    await waitFor("row 1", () => sink.commits().length === 1);
    const held = await confirmedReaches(poller, `${name}_slot`, sink.commits()[0]!.endLsn);
    await poller.rows(`INSERT INTO ${name}_items VALUES (2, 'b'), (3, 'c')`);
    await poller.rows(`INSERT INTO ${name}_items VALUES (4, 'd')`);
    await waitFor(
      "the stop in /health",
      async () => (await health.report()).checks["transform:t.ts"]?.status === "failing",
    );
    await sleep(500);
    assert.equal(sink.commits().length, 1, "nothing written while held");
    assert.equal((await slotPosition(poller, `${name}_slot`))?.confirmed, held);
    await Deno.writeTextFile(
      join(dir, "t.ts"),
      `import { defineTransform } from "spillway";
export default defineTransform({ change: (event) => ({ ...event, after: { ...event.after, v: 2 } }) });
`,
    );
    await waitFor("the rest", () => sink.commits().length === 3);
    assert.deepEqual(changeIds(sink), [1, 2, 3, 4]);
    assert.deepEqual(sink.changes().map((record) => record.event.after?.v), [1, 2, 2, 2]);
    assert.equal((await health.report()).checks["transform:t.ts"]?.status, "ok");
  } finally {
    await cleanUp(version, name, setup);
  }
});

tests.test("transforms: a transform that does not compile stops the start with its file:line:col", async (version) => {
  const pg = await servers.server(version);
  const dir = await workspace("tr_syntax", {
    "t.ts":
      `import { defineTransform } from "spillway";\nexport default defineTransform({\n  change(event) { return event +; },\n});\n`,
  });
  try {
    const yaml = pipelineYaml({
      name: "tr_syntax",
      url: pg.url(),
      slot: "tr_syntax_slot",
      publication: "tr_syntax_pub",
      tables: { "public.*": "{ transform: t.ts }" },
    });
    const error = await failure(() => startRunner(yaml, { file: join(dir, "pipeline.yaml") }));
    assert.match(error.message, /t\.ts:3:\d+/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Chains, fan-out, routing

tests.test("transforms: a chain applies its files in order; fan-out sets topics, keys and headers", async (version) => {
  const name = "tr_chain";
  const setup = await runWith(version, name, {
    "a.ts": `import { defineTransform } from "spillway";
export default defineTransform({
  change: (event) => [
    { ...event, after: { ...event.after, a: true } },
    { ...event, topic: "audit", key: { audit: event.after!.id }, headers: { from: "a" } },
  ],
});
`,
    "b.ts": `import { defineTransform } from "spillway";
export default defineTransform({
  change: (event) => event.topic === "audit" ? event : { ...event, after: { ...event.after, b: event.after!.a === true } },
});
`,
  }, { table: "{ transform: [a.ts, b.ts] }" });
  const { poller, sink } = setup;
  try {
    await poller.rows(`INSERT INTO ${name}_items VALUES (7, 'x')`);
    await waitFor("the commit", () => sink.commits().length === 1);
    const [main, audit] = sink.changes() as Change[];
    assert.deepEqual(main!.event.after, { id: 7, value: "x", a: true, b: true });
    assert.equal(main!.topic, `${name}.public.${name}_items`);
    assert.deepEqual(main!.key, { id: 7 });
    assert.equal(audit!.topic, "audit");
    assert.deepEqual(audit!.key, { audit: 7 });
    assert.deepEqual(audit!.headers, { from: "a" });
    assert.equal(sink.commits()[0]!.eventCount, 2);
  } finally {
    await cleanUp(version, name, setup);
  }
});

tests.test("transforms: a transform with a message hook sees pg_logical_emit_message messages and may drop them", async (version) => {
  const name = "tr_msg";
  const setup = await runWith(version, name, {
    "t.ts": `import { defineTransform } from "spillway";
export default defineTransform({
  message(message, ctx) {
    ctx.log("info", \`message \${message.prefix} \${new TextDecoder().decode(message.content)}\`);
    return message.prefix === "drop" ? null : { ...message, prefix: message.prefix + ".seen" };
  },
});
`,
  });
  const { poller, sink, running } = setup;
  try {
    await poller.rows(
      `BEGIN; INSERT INTO ${name}_items VALUES (1, 'a'); ` +
        `SELECT pg_logical_emit_message(true, 'keep', 'k1'); ` +
        `SELECT pg_logical_emit_message(true, 'drop', 'd1'); COMMIT`,
    );
    await waitFor("the commit", () => sink.commits().length === 1);
    const messages = sink.records.flatMap((record) =>
      record.kind === "message" ? [record.event.prefix] : []
    );
    assert.deepEqual(messages, ["keep.seen"]);
    assert.deepEqual(
      running.log.lines.filter((line) => line.message.startsWith("message ")).map((l) => l.message),
      ["message keep k1", "message drop d1"],
    );
    assert.equal(sink.commits()[0]!.eventCount, 2, "the change and the message kept");
  } finally {
    await cleanUp(version, name, setup);
  }
});

tests.test("transforms: the same file twice in a chain runs as two transforms with their own names", async (version) => {
  const name = "tr_twice";
  const setup = await runWith(version, name, {
    "t.ts": `import { defineTransform } from "spillway";
export default defineTransform<{ id: number; value: string }>({
  change: (event) => ({ ...event, after: { ...event.after!, value: event.after!.value + "x" } }),
});
`,
  }, { table: "{ transform: [t.ts, t.ts] }" });
  const { poller, sink, health, registry } = setup;
  try {
    await poller.rows(`INSERT INTO ${name}_items VALUES (1, 'v')`);
    await waitFor("row 1", () => sink.changes().length === 1);
    assert.equal(sink.changes()[0]!.event.after?.value, "vxx");
    const checks = (await health.report()).checks;
    assert.equal(checks["transform:t.ts"]?.status, "ok");
    assert.equal(checks["transform:t.ts#2"]?.status, "ok");
    assert.ok(registry.render().includes(`spillway_transform_events_total{transform="t.ts#2"} 1`));
  } finally {
    await cleanUp(version, name, setup);
  }
});

tests.test("transforms: in one batch of hanging events, the breaker stops the restarts once it opens", async (version) => {
  const name = "tr_hang";
  const setup = await runWith(version, name, {
    "t.ts": `import { defineTransform } from "spillway";
export default defineTransform({ change() { for (;;) {} } });
`,
  }, {
    transforms: "{ timeout: 50ms, on_error: dead_letter, breaker: { failures: 3, cooldown: 1h } }",
  });
  const { poller, sink, registry, dir } = setup;
  try {
    await poller.rows(
      `INSERT INTO ${name}_items SELECT g, 'v' FROM generate_series(1, 20) g`,
    );
    await waitFor("the commit", () => sink.commits().length === 1);
    const metrics = registry.render();
    // Three events ran past their budget; the breaker then sent the other 17 on unrun.
    assert.ok(
      metrics.includes(`spillway_transform_failures_total{transform="t.ts",reason="timeout"} 3`),
      metrics,
    );
    const { lines } = await readJsonLines(join(dir, `${name}.dead-letter.jsonl`));
    const reasons = (lines as unknown as { reason: string }[]).map((line) => line.reason);
    assert.equal(reasons.length, 20, "every event dead-lettered");
    assert.equal(reasons.filter((reason) => reason === "failed").length, 3);
  } finally {
    await cleanUp(version, name, setup);
  }
});

tests.test("transforms: a stop while a transform hangs (no time budget) ends after the grace period, writing nothing of its batch", async (version) => {
  const name = "tr_stuck";
  const setup = await runWith(version, name, {
    "t.ts": `import { defineTransform } from "spillway";
export default defineTransform<{ id: number }>({
  change(event) {
    if (event.after!.id === 2) for (;;) {}
    return event;
  },
});
`,
  }, { transforms: "{ timeout: off }" });
  const { poller, sink, running } = setup;
  try {
    await poller.rows(`INSERT INTO ${name}_items VALUES (1, 'a')`);
    await waitFor("row 1", () => sink.commits().length === 1);
    const confirmed = await confirmedReaches(poller, `${name}_slot`, sink.commits()[0]!.endLsn);
    // A position inside the stuck transaction: after its insert, before its commit.
    const inside = parseLsn(
      (await poller.value(
        `WITH row AS (INSERT INTO ${name}_items VALUES (2, 'b') RETURNING id)
         SELECT pg_current_wal_insert_lsn() FROM row`,
      ))!,
    );
    await sleep(300);
    await running.stop(); // resolves: the Workers end once the grace period is over
    assert.deepEqual(changeIds(sink), [1], "nothing of the stuck batch written");
    // An idle stream may confirm WAL that holds no transaction (a running-xacts record) after
    // row 1's commit, but never the stuck transaction's commit.
    const after = (await slotPosition(poller, `${name}_slot`))!.confirmed!;
    assert.ok(
      after >= confirmed && after < inside,
      `confirmed_flush_lsn ${formatLsn(after)}: expected from ${formatLsn(confirmed)} to before ${
        formatLsn(inside)
      }`,
    );
  } finally {
    await cleanUp(version, name, setup);
  }
});

// ---------------------------------------------------------------------------------------------
// DDL

tests.test("transforms: schemaChange fires once per ADD COLUMN, DROP COLUMN and ALTER TYPE, before the first event of the new shape", async (version) => {
  const name = "tr_ddl";
  const setup = await runWith(version, name, {
    "t.ts": `import { defineTransform } from "spillway";
export default defineTransform({
  schemaChange(previous, next, ctx) {
    const shape = (r: typeof next) => r.columns.map((c) => \`\${c.name}:\${c.type}\`).join(",");
    ctx.log("info", \`schema \${shape(previous)} -> \${shape(next)}\`);
  },
  change(event, ctx) {
    ctx.log("info", \`change \${Object.keys(event.after!).join(",")}\`);
    return event;
  },
});
`,
  });
  const { poller, sink, running } = setup;
  try {
    await poller.rows(`INSERT INTO ${name}_items VALUES (1, 'a')`);
    await poller.rows(`ALTER TABLE ${name}_items ADD COLUMN n int`);
    await poller.rows(`INSERT INTO ${name}_items VALUES (2, 'b', 5)`);
    await poller.rows(`INSERT INTO ${name}_items VALUES (3, 'c', 6)`);
    await poller.rows(`ALTER TABLE ${name}_items DROP COLUMN value`);
    await poller.rows(`INSERT INTO ${name}_items VALUES (4, 7)`);
    await poller.rows(`ALTER TABLE ${name}_items ALTER COLUMN n TYPE bigint`);
    await poller.rows(`INSERT INTO ${name}_items VALUES (5, 8)`);
    await waitFor("five rows", () => sink.changes().length === 5);
    const trace = running.log.lines
      .filter((line) => line.message.startsWith("schema ") || line.message.startsWith("change "))
      .map((line) => line.message);
    assert.deepEqual(trace, [
      "change id,value",
      "schema id:int4,value:text -> id:int4,value:text,n:int4",
      "change id,value,n",
      "change id,value,n",
      "schema id:int4,value:text,n:int4 -> id:int4,n:int4",
      "change id,n",
      "schema id:int4,n:int4 -> id:int4,n:int8",
      "change id,n",
    ]);
    assert.equal(typeof sink.changes()[4]!.event.after?.n, "bigint");
  } finally {
    await cleanUp(version, name, setup);
  }
});

tests.test("transforms: with types_dir, the row types are written at the start and again after ALTER TABLE", async (version) => {
  const name = "tr_types";
  const setup = await runWith(version, name, { "t.ts": stamped(1) }, {
    transforms: "{ types_dir: types }",
  });
  const { poller, sink, dir } = setup;
  const file = join(dir, "types", "public.ts");
  const text = () => Deno.readTextFile(file).catch(() => "");
  try {
    await waitFor("the types at the start", async () => (await text()).includes("TrTypesItems"));
    assert.doesNotMatch(await text(), /extra/);
    await poller.rows(`INSERT INTO ${name}_items VALUES (0, 'z')`);
    await waitFor("row 0", () => sink.changes().length === 1);
    await poller.rows(`ALTER TABLE ${name}_items ADD COLUMN extra boolean`);
    await poller.rows(`INSERT INTO ${name}_items VALUES (1, 'a', true)`);
    await waitFor("row 1", () => sink.changes().length === 2);
    await waitFor(
      "the new column in the types",
      async () => /extra: boolean \| null/.test(await text()),
    );
  } finally {
    await cleanUp(version, name, setup);
  }
});

tests.test("transforms: ALTER TYPE ... ADD VALUE on an enum fires schemaChange once, with the new label in next", async (version) => {
  const name = "tr_enum";
  const pg = await servers.server(version);
  await pg.psql(`DROP TYPE IF EXISTS tr_mood; CREATE TYPE tr_mood AS ENUM ('sad', 'ok')`);
  const setup = await runWith(version, name, {
    "t.ts": `import { defineTransform } from "spillway";
export default defineTransform({
  schemaChange(previous, next, ctx) {
    const values = (r: typeof next) => r.columns.find((c) => c.name === "mood")!.values!.join("|");
    ctx.log("info", \`schema \${values(previous)} -> \${values(next)}\`);
  },
  change(event, ctx) {
    ctx.log("info", \`change \${(event.after as { mood: string }).mood}\`);
    return event;
  },
});
`,
  }, { columns: "id int PRIMARY KEY, mood tr_mood" });
  const { poller, sink, running } = setup;
  try {
    await poller.rows(`INSERT INTO ${name}_items VALUES (1, 'ok')`);
    await waitFor("row 1", () => sink.changes().length === 1);
    await poller.rows(`ALTER TYPE tr_mood ADD VALUE 'happy'`);
    await poller.rows(`INSERT INTO ${name}_items VALUES (2, 'happy')`);
    await poller.rows(`INSERT INTO ${name}_items VALUES (3, 'happy')`);
    await waitFor("rows 2 and 3", () => sink.changes().length === 3);
    const trace = running.log.lines
      .filter((line) => line.message.startsWith("schema ") || line.message.startsWith("change "))
      .map((line) => line.message);
    assert.deepEqual(trace, [
      "change ok",
      "schema sad|ok -> sad|ok|happy",
      "change happy",
      "change happy",
    ]);
  } finally {
    await cleanUp(version, name, setup);
    await pg.psql(`DROP TYPE IF EXISTS tr_mood`);
  }
});

// ---------------------------------------------------------------------------------------------
// One version after the other: its tests, then its server stops.

tests.register(testVersions("full"));
