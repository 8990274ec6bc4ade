import assert from "node:assert/strict";
import { join } from "node:path";
import { loadTransform, TransformLoadError } from "./loader.ts";
import {
  itemWatch,
  TransformStartError,
  TransformTimeoutError,
  TransformWorker,
  type WorkItem,
} from "./worker.ts";
import type { TransformEvent } from "./api.ts";

const transaction = { xid: 7, commitLsn: "0/20", commitTime: "2026-12-05T12:00:00.000000Z" };
const relation = {
  schema: "public",
  table: "orders",
  relid: 16384,
  columns: [{ name: "id", typeOid: 20, type: "int8", key: true }],
};

function change(id: number, status = "paid"): WorkItem {
  const event: TransformEvent = {
    op: "c",
    source: { ...transaction, schema: "public", table: "orders", relid: 16384, lsn: "0/10" },
    before: null,
    after: { id: BigInt(id), status },
    unchanged: [],
  };
  return { kind: "change", event, relation, transaction };
}

/** Writes `files` (name → text) into a new directory; the first is the transform. */
async function withFiles(
  files: Record<string, string>,
  fn: (path: string, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "spillway-transform-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.mkdir(join(dir, name, ".."), { recursive: true });
      await Deno.writeTextFile(join(dir, name), text);
    }
    await fn(join(dir, Object.keys(files)[0]!), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function started(path: string, timeoutMs = 2_000) {
  return await TransformWorker.start(await loadTransform(path), { timeoutMs });
}

Deno.test("transform worker: change keeps, changes, fans out and drops events; other hooks run in order; state lasts", async () => {
  await withFiles({
    "orders.ts": `
      import { defineTransform } from "spillway";
      import { label } from "./lib/label.ts";
      import type { Nothing } from "./lib/types.ts";
      const calls: string[] = [];
      export default defineTransform<{ id: bigint; status: string }>({
        setup(ctx) { ctx.state.seen = 0; },
        begin(tx) { calls.push("begin " + tx.xid); },
        change(event, ctx) {
          (ctx.state.seen as number)++;
          calls.push("change " + event.after?.id);
          if (event.after?.id === 1n) ctx.log("debug", "first", { id: 1 });
          const status = event.after?.status;
          if (status === "test") return null;
          if (status === "split") {
            return [{ ...event, topic: "a" }, { ...event, topic: "b", key: { id: event.after!.id } }];
          }
          return { ...event, after: { ...event.after!, status: label(status!) } };
        },
        commit(tx, ctx) { calls.push("commit " + tx.xid + " seen " + ctx.state.seen); ctx.log("info", calls.join(", "), { table: ctx.relation?.table ?? null }); },
      });
    `,
    "lib/label.ts": `export const label = (s: string): string => s.toUpperCase();`,
  }, async (path) => {
    const lines: string[] = [];
    const fields: unknown[] = [];
    const loaded = await loadTransform(path);
    // The transform and its value import; the type-only import is erased, not loaded.
    assert.equal(loaded.files.size, 2);
    const worker = await TransformWorker.start(loaded, {
      timeoutMs: 2_000,
      log: (level, message, extra) => {
        lines.push(`${level} ${message}`);
        fields.push(extra);
      },
    });
    try {
      const results = await worker.run([
        { kind: "begin", transaction },
        change(1),
        change(2, "test"),
        change(3, "split"),
        { kind: "commit", transaction },
      ]);
      assert.ok(results.every((r) => r.ok), Deno.inspect(results, { depth: 6 }));
      const outs = results.map((r) => r.ok ? r.out : []);
      assert.deepEqual(outs[0], []);
      assert.equal((outs[1]![0] as TransformEvent).after?.status, "PAID");
      assert.equal((outs[1]![0] as TransformEvent).after?.id, 1n, "bigint crosses intact");
      assert.deepEqual(outs[2], []);
      assert.deepEqual(outs[3]!.map((e) => (e as TransformEvent).topic), ["a", "b"]);
      assert.deepEqual((outs[3]![1] as TransformEvent).key, { id: 3n });
      assert.deepEqual(lines, [
        "debug first",
        "info begin 7, change 1, change 2, change 3, commit 7 seen 3",
      ]);
      // A change hook's lines name its table; the transform's own fields come after.
      assert.deepEqual(fields[0], { table: "public.orders", id: 1 });
      assert.deepEqual(await worker.stop(), { seen: 3 });
    } finally {
      worker.terminate();
    }
  });
});

Deno.test("transform worker: a throw and an invalid return are errors of their event only, with file:line", async () => {
  await withFiles({
    "flaky.ts": `import { defineTransform } from "spillway";
export default defineTransform({
  change(event) {
    if (event.after?.id === 2n) throw new Error("no twos");
    if (event.after?.id === 3n) return 42 as never;
    return event;
  },
});
`,
  }, async (path) => {
    const worker = await started(path);
    try {
      const [one, two, three, four] = await worker.run([
        change(1),
        change(2),
        change(3),
        change(4),
      ]);
      assert.ok(one!.ok && four!.ok);
      assert.ok(!two!.ok);
      assert.equal(two!.error.message, "no twos");
      assert.match(two!.error.where ?? "", new RegExp(`^${RegExp.escape(path)}:4:\\d+$`));
      assert.ok(!two!.error.stack?.includes("data:"), two!.error.stack ?? "");
      assert.ok(!three!.ok);
      assert.match(three!.error.message, /change\(\) returned 42: expected an event/);
    } finally {
      worker.terminate();
    }
  });
});

Deno.test("transform worker: an endless loop runs past the budget, and the worker is terminated", async () => {
  await withFiles({
    "loop.ts": `import { defineTransform } from "spillway";
export default defineTransform({ change(event) { if (event.after?.id === 2n) for (;;) {} return event; } });
`,
  }, async (path) => {
    const worker = await started(path, 200);
    await assert.rejects(worker.run([change(1), change(2)]), TransformTimeoutError);
    assert.equal(worker.terminated, true);
    await assert.rejects(worker.run([change(1)]), /was stopped/);
  });
});

Deno.test("transform worker: no permissions unless granted: reading a file, connecting and env fail inside the hook", async () => {
  await withFiles({
    "nosy.ts": `import { defineTransform } from "spillway";
export default defineTransform({
  async change(event) {
    if (event.after?.id === 1n) Deno.readTextFileSync("/etc/passwd");
    if (event.after?.id === 2n) (await Deno.connect({ hostname: "127.0.0.1", port: Number(event.after.status) })).close();
    if (event.after?.id === 3n) Deno.env.get("HOME");
    return event;
  },
});
`,
  }, async (path) => {
    // A port that accepts: only the missing permission can make the connect fail.
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = String(listener.addr.port);
    const worker = await started(path);
    try {
      const [read, net, env] = await worker.run([change(1), change(2, port), change(3)]);
      for (const result of [read, net, env]) assert.ok(result && !result.ok);
      assert.equal(!read!.ok && read!.error.name, "NotCapable");
      assert.match(!read!.ok ? read!.error.message : "", /read access to "\/etc\/passwd"/);
      assert.match(
        !read!.ok ? read!.error.where ?? "" : "",
        new RegExp(`^${RegExp.escape(path)}:4:\\d+$`),
      );
      assert.equal(!net!.ok && net!.error.name, "NotCapable");
      assert.match(!net!.ok ? net!.error.message : "", /net access to "127\.0\.0\.1:\d+"/);
      assert.equal(!env!.ok && env!.error.name, "NotCapable");
    } finally {
      worker.terminate();
    }
    // Granted, the read works.
    const granted = await TransformWorker.start(await loadTransform(path), {
      timeoutMs: 2_000,
      allow: { read: ["/etc/passwd"] },
    });
    try {
      const [read] = await granted.run([change(1)]);
      assert.ok(read!.ok, Deno.inspect(read, { depth: 5 }));
    } finally {
      granted.terminate();
    }
  });
});

Deno.test("transform worker: a module that cannot start says why, with file:line:col", async () => {
  await withFiles(
    { "broken.ts": `import { defineTransform } from "spillway";\nconst x = ;\n` },
    async (path) => {
      const error = await started(path).then(() => null, (e) => e);
      assert.ok(error instanceof TransformStartError, String(error));
      assert.match(error.message, /SyntaxError/);
      assert.equal(error.where, `${path}:2:11`);
      assert.ok(!error.message.includes("data:"), error.message);
    },
  );
  await withFiles({
    "setup.ts":
      `import { defineTransform } from "spillway";\nexport default defineTransform({ setup() { throw new RangeError("no config"); } });\n`,
  }, async (path) => {
    const error = await started(path).then(() => null, (e) => e);
    assert.ok(error instanceof TransformStartError);
    assert.match(error.message, /RangeError: no config \(at .*setup\.ts:2:/);
  });
  await withFiles(
    { "plain.ts": `export default { change: (e: unknown) => e };\n` },
    async (path) => {
      await assert.rejects(
        started(path),
        /default export is not a transform: export default defineTransform/,
      );
    },
  );
  await withFiles(
    { "remote.ts": `import x from "https://example.com/x.ts";\nexport default x;\n` },
    async (path) => {
      await assert.rejects(
        loadTransform(path),
        (e) =>
          e instanceof TransformLoadError &&
          e.message.includes(`${path}:1 imports "https://example.com/x.ts"`),
      );
    },
  );
  await assert.rejects(loadTransform("/no/such/transform.ts"), /cannot be read/);
  await withFiles({
    "output.ts":
      `import { defineTransform } from "spillway";\nexport default defineTransform({ output: { total: "money2" } as never, change: (e) => e });\n`,
  }, async (path) => {
    await assert.rejects(
      started(path),
      (e) =>
        e instanceof TransformStartError &&
        e.message.includes(`Cannot start transform ${path}: output.total: "money2" is not a type`),
    );
  });
});

Deno.test("transform loader: the version changes with the file and with what it imports", async () => {
  await withFiles({
    "t.ts": `import { f } from "./f.ts";\nexport default f;\n`,
    "f.ts": `export const f = 1;\n`,
  }, async (path, dir) => {
    const first = await loadTransform(path);
    assert.equal((await loadTransform(path)).version, first.version);
    await Deno.writeTextFile(join(dir, "f.ts"), `export const f = 2;\n`);
    assert.notEqual((await loadTransform(path)).version, first.version);
  });
});

Deno.test("transform worker: an error no hook caught ends the worker, and later batches fail at once", async () => {
  await withFiles({
    "stray.ts": `import { defineTransform } from "spillway";
export default defineTransform({
  change(event) {
    if (event.after?.id === 2n) setTimeout(() => { throw new Error("stray"); }, 0);
    return event;
  },
});
`,
  }, async (path) => {
    // No time budget: only the crash handling can end the wait.
    const worker = await TransformWorker.start(await loadTransform(path), { timeoutMs: 0 });
    await worker.run([change(2)]);
    for (let i = 0; i < 200 && !worker.terminated; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(worker.terminated, true);
    await assert.rejects(worker.run([change(1)]), /was stopped/);
  });
});

Deno.test("transform worker: events cross compact and come back equal; one returned as it came is the host's own; changing one fails with a hint", async () => {
  await withFiles({
    "wire.ts": `import { defineTransform } from "spillway";
export default defineTransform<{ id: bigint; status: string; note?: string }>({
  change(event, ctx) {
    if (event.after!.id === 1n || event.after!.id === 5n) return event;
    if (event.after!.id === 2n) return { ...event, after: { ...event.after!, seen: ctx.relation!.columns.length } };
    if (event.after!.id === 3n) return { ...event, before: event.before, after: event.after, copy: true } as never;
    event.after!.status = "changed";
    return event;
  },
});
`,
  }, async (path) => {
    const worker = await started(path);
    try {
      const typed = {
        ...relation,
        columns: ["id", "status", "note"].map((name) => ({
          name,
          typeOid: 25,
          type: "text",
          key: name === "id",
        })),
      };
      // Row 3's `after` has no `note` (a TOASTed column not sent), and an extra field no column has.
      type Change = Extract<WorkItem, { kind: "change" }>;
      const items = [1, 2, 3, 4].map((id) => ({ ...change(id) as Change, relation: typed }));
      (items[2]!.event as { unchanged: string[] }).unchanged = ["note"];
      const withExtra = { ...change(5) as Change, relation: typed };
      (withExtra.event.after as Record<string, unknown>).extra = [1, 2];
      const [one, two, three, four, five] = await worker.run([...items, withExtra]);
      assert.ok(one!.ok && one!.out[0] === items[0]!.event, "the host's own event object");
      assert.ok(two!.ok);
      assert.deepEqual((two!.out[0] as TransformEvent).after, { id: 2n, status: "paid", seen: 3 });
      assert.deepEqual((two!.out[0] as TransformEvent).source, items[1]!.event.source);
      assert.ok(three!.ok);
      const copy = three!.out[0] as TransformEvent;
      assert.deepEqual(copy.after, { id: 3n, status: "paid" });
      assert.deepEqual(copy.unchanged, ["note"]);
      assert.ok(!four!.ok);
      assert.match(four!.error.message, /events are read-only: return a changed copy/);
      assert.ok(five!.ok && five!.out[0] === withExtra.event, "a row with a field no column has");
    } finally {
      worker.terminate();
    }
  });
});

Deno.test("transform worker: the budget counts only while an item runs, not the batch's trip to the Worker and back", () => {
  const watch = itemWatch(100);
  // The batch crosses to the Worker for 500 ms: no item runs (0), nothing is over budget.
  for (let t = 0; t <= 500; t += 50) assert.equal(watch(0, t), null);
  // Items 0 and 1 run briefly, then the batch crosses back (0) for another 500 ms.
  assert.equal(watch(1, 510), null);
  assert.equal(watch(2, 520), null);
  for (let t = 530; t <= 1_030; t += 50) assert.equal(watch(0, t), null);
  // In the next batch item 0 runs 50 ms, within budget; item 3 runs past it.
  assert.equal(watch(1, 1_100), null);
  assert.equal(watch(1, 1_150), null);
  assert.equal(watch(4, 1_160), null);
  assert.equal(watch(4, 1_250), null);
  assert.equal(watch(4, 1_261), 3);
});

Deno.test("transform worker: bytes changed in place (a typed array cannot be frozen) reach the host", async () => {
  await withFiles({
    "redact.ts": `import { defineTransform } from "spillway";
export default defineTransform<{ id: bigint; payload: Uint8Array }>({
  change(event) {
    event.after!.payload.fill(0);
    return event;
  },
});
`,
  }, async (path) => {
    const worker = await started(path);
    try {
      const item = change(1) as Extract<WorkItem, { kind: "change" }>;
      (item.event.after as Record<string, unknown>).payload = new Uint8Array([1, 2, 3]);
      const [result] = await worker.run([item]);
      assert.ok(result!.ok);
      const after = (result!.out[0] as TransformEvent).after!;
      assert.deepEqual(after.payload, new Uint8Array([0, 0, 0]));
    } finally {
      worker.terminate();
    }
  });
});

Deno.test("transform worker: an output that cannot be copied (a function) fails its own event only, saying what to return", async () => {
  await withFiles({
    "fn.ts": `import { defineTransform } from "spillway";
export default defineTransform({
  change(event) {
    if (event.after!.id === 2n) return { ...event, after: { ...event.after, f: () => 1 } };
    return { ...event, after: { ...event.after, ok: true } };
  },
});
`,
  }, async (path) => {
    const worker = await started(path);
    try {
      const [one, two, three] = await worker.run([change(1), change(2), change(3)]);
      assert.ok(one!.ok && three!.ok);
      assert.equal((three!.out[0] as TransformEvent).after?.ok, true);
      assert.ok(!two!.ok);
      assert.match(two!.error.message, /cannot be sent on .*return plain data/);
      assert.equal(worker.terminated, false, "the Worker goes on");
    } finally {
      worker.terminate();
    }
  });
});

Deno.test("transform loader: commented-out imports are not imports", async () => {
  await withFiles({
    "commented.ts": `import { defineTransform } from "spillway";
// import { assert } from "jsr:@std/assert";
/* import { gone } from "./gone.ts"; */
const url = "http://example.com/a"; // a "//" inside a string is no comment
export default defineTransform({ change: (event) => event });
`,
  }, async (path) => {
    const loaded = await loadTransform(path);
    assert.equal(loaded.files.size, 1, "nothing but the file itself");
  });
});
