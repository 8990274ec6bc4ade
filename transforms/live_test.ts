import assert from "node:assert/strict";
import { join } from "node:path";
import { LiveTransform } from "./live.ts";
import type { WorkItem, WorkResult } from "./worker.ts";
import { TransformTimeoutError } from "./worker.ts";
import type { TransformEvent } from "./api.ts";

const transaction = { xid: 7, commitLsn: "0/20", commitTime: "2026-12-05T12:00:00.000000Z" };
const relation = { schema: "public", table: "t", relid: 1, columns: [] };

function change(id: number): WorkItem {
  return {
    kind: "change",
    event: {
      op: "c",
      source: { ...transaction, schema: "public", table: "t", relid: 1, lsn: "0/10" },
      before: null,
      after: { id },
      unchanged: [],
    },
    relation,
    transaction,
  };
}

const versionOf = (results: WorkResult[]) =>
  results.map((r) => r.ok ? (r.out[0] as TransformEvent).after?.v : `error: ${r.error.message}`);

function source(version: number, extra = ""): string {
  return `import { defineTransform } from "spillway";
import { tag } from "./tag.ts";
export default defineTransform({
  keepState: true,
  change(event, ctx) {
    ctx.state.seen = ((ctx.state.seen as number | undefined) ?? 0) + 1;
    ${extra}
    return { ...event, after: { ...event.after, v: ${version}, tag: tag, seen: ctx.state.seen } };
  },
});
`;
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(check(), `never: ${what}`);
}

Deno.test("live transform: an edit loads beside the running version and takes over only at a boundary; a broken edit keeps the running one; state is kept when asked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spillway-live-" });
  const path = join(dir, "t.ts");
  await Deno.writeTextFile(join(dir, "tag.ts"), `export const tag = "a";\n`);
  await Deno.writeTextFile(path, source(1));
  const logs: string[] = [];
  const live = await LiveTransform.start(path, {
    timeoutMs: 2_000,
    log: (level, message) => logs.push(`${level} ${message}`),
  });
  try {
    assert.deepEqual(versionOf(await live.run([change(1)])), [1]);
    const first = live.version;

    await Deno.writeTextFile(path, source(2));
    await until("version 2 to be ready", () => live.readyVersion !== null);
    // Ready, but the transaction in progress keeps the running version.
    assert.deepEqual(versionOf(await live.run([change(2)])), [1]);
    assert.equal(await live.boundary(), true);
    assert.notEqual(live.version, first);
    const [result] = await live.run([change(3)]);
    assert.ok(result!.ok);
    const after = (result!.out[0] as TransformEvent).after!;
    assert.equal(after.v, 2);
    assert.equal(after.seen, 3, "the state of version 1 carried over (keepState)");
    assert.equal(await live.boundary(), false, "nothing new");

    // An imported file changes: a new version too.
    await Deno.writeTextFile(join(dir, "tag.ts"), `export const tag = "b";\n`);
    await until("the import's change to load", () => live.readyVersion !== null);
    await live.boundary();
    const [tagged] = await live.run([change(4)]);
    assert.ok(tagged!.ok && (tagged!.out[0] as TransformEvent).after?.tag === "b");

    // A syntax error: reported with file:line:col, and version 2 keeps running.
    await Deno.writeTextFile(path, source(3, "const broken = ;"));
    await until("the failed load", () => live.lastError !== null);
    assert.match(live.lastError!, new RegExp(`${RegExp.escape(path)}:7:\\d+`));
    assert.equal(live.readyVersion, null);
    assert.equal(await live.boundary(), false);
    assert.deepEqual(versionOf(await live.run([change(5)])), [2]);
    assert.equal(live.reloads, 2);
    assert.ok(logs.some((l) => l.startsWith("error Transform did not load")), logs.join("\n"));
  } finally {
    await live.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("live transform: after a timeout a fresh worker of the same version takes the next batch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spillway-live-" });
  const path = join(dir, "loop.ts");
  await Deno.writeTextFile(
    path,
    `import { defineTransform } from "spillway";
export default defineTransform({ change(event) { if (event.after?.id === 2) for (;;) {} return event; } });
`,
  );
  const live = await LiveTransform.start(path, { timeoutMs: 200, watch: false });
  try {
    await assert.rejects(live.run([change(1), change(2)]), TransformTimeoutError);
    const [result] = await live.run([change(3)]);
    assert.ok(result!.ok);
  } finally {
    await live.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("live transform: saves that rename a new file over the old one are all seen, also after a broken one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spillway-live-" });
  const path = join(dir, "t.ts");
  await Deno.writeTextFile(join(dir, "tag.ts"), `export const tag = "a";\n`);
  await Deno.writeTextFile(path, source(1));
  // As vim and "safe write" editors save: a new file, renamed over the old one.
  const save = async (text: string) => {
    await Deno.writeTextFile(`${path}.swp`, text);
    await Deno.rename(`${path}.swp`, path);
  };
  const live = await LiveTransform.start(path, { timeoutMs: 2_000 });
  try {
    for (const version of [2, 3]) {
      await save(source(version));
      await until(`version ${version} to be ready`, () => live.readyVersion !== null);
      await live.boundary();
      assert.deepEqual(versionOf(await live.run([change(version)])), [version]);
    }
    await save(source(4, "const broken = ;"));
    await until("the failed load", () => live.lastError !== null);
    await save(source(5));
    await until("version 5 to be ready", () => live.readyVersion !== null);
    await live.boundary();
    assert.deepEqual(versionOf(await live.run([change(5)])), [5]);
  } finally {
    await live.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("live transform: a file only a failed version imports is followed, so fixing it loads the version", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spillway-live-" });
  const path = join(dir, "t.ts");
  await Deno.writeTextFile(join(dir, "tag.ts"), `export const tag = "a";\n`);
  await Deno.writeTextFile(path, source(1));
  const live = await LiveTransform.start(path, { timeoutMs: 2_000 });
  try {
    // The edit imports a new file that does not compile yet: the load fails.
    await Deno.writeTextFile(join(dir, "helper.ts"), `export const extra = ;\n`);
    await Deno.writeTextFile(
      path,
      source(2).replace(
        `import { tag } from "./tag.ts";`,
        `import { tag } from "./tag.ts";
import { extra } from "./helper.ts";
export const used = extra;`,
      ),
    );
    await until("the failed load", () => live.lastError !== null);
    assert.match(live.lastError!, /helper\.ts/);
    // Only the new file is fixed.
    await Deno.writeTextFile(join(dir, "helper.ts"), `export const extra = 1;\n`);
    await until("version 2 to be ready", () => live.readyVersion !== null);
    await live.boundary();
    assert.deepEqual(versionOf(await live.run([change(1)])), [2]);
  } finally {
    await live.close();
    await Deno.remove(dir, { recursive: true });
  }
});
