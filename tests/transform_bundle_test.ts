/**
 * Transforms from a `deno bundle` output file: the Worker's code and the transform's modules
 * are made from text (a `blob:` URL and `data:` URLs), so a bundle, which holds no file of the
 * tree, loads and runs a transform file the same way `deno run` does; and a bundle of main.ts
 * runs a pipeline with a transform against a real server. (`deno compile` cannot be run here;
 * it needs a runtime download.)
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startPostgres } from "../testing/embedded_postgres.ts";
import { pipelineYaml, Subprocess, waitFor } from "./_runner_util.ts";

const TRANSFORMS = fileURLToPath(new URL("../transforms/mod.ts", import.meta.url));
const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

Deno.test("transforms: a bundle loads a transform file from its text and runs it in a permission-less Worker", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spillway-bundle-" });
  try {
    await Deno.writeTextFile(
      join(dir, "entry.ts"),
      `import { loadTransform, TransformWorker } from ${JSON.stringify(TRANSFORMS)};
const worker = await TransformWorker.start(await loadTransform(Deno.args[0]!), { timeoutMs: 5000 });
const transaction = { xid: 1, commitLsn: "0/2", commitTime: "2026-12-05T00:00:00Z" };
const results = await worker.run([1, 2].map((id) => ({
  kind: "change" as const,
  event: { op: "c" as const, source: { ...transaction, schema: "s", table: "t", relid: 1, lsn: "0/1" }, before: null, after: { id: BigInt(id) }, unchanged: [] },
  relation: { schema: "s", table: "t", relid: 1, columns: [] },
  transaction,
})));
console.log(JSON.stringify(results, (_k, v) => typeof v === "bigint" ? v + "n" : v));
worker.terminate();
`,
    );
    await Deno.writeTextFile(
      join(dir, "orders.ts"),
      `import { defineTransform } from "spillway";
import { mark } from "./mark.ts";
export default defineTransform<{ id: bigint }>({
  change(event) {
    if (event.after?.id === 2n) Deno.readTextFileSync("/etc/hostname");
    return { ...event, after: { ...event.after!, mark } };
  },
});
`,
    );
    await Deno.writeTextFile(join(dir, "mark.ts"), `export const mark: string = "bundled";\n`);
    const bundle = join(dir, "out.js");
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", join(dir, "entry.ts"), "-o", bundle],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(built.code, 0, new TextDecoder().decode(built.stderr));
    // Run from another directory: nothing of the tree is needed.
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-worker-options", bundle, join(dir, "orders.ts")],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    const [one, two] = JSON.parse(new TextDecoder().decode(run.stdout));
    assert.deepEqual(one.out[0].after, { id: "1n", mark: "bundled" });
    assert.equal(two.ok, false);
    assert.equal(two.error.name, "NotCapable");
    assert.match(two.error.where, /orders\.ts:5:\d+$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("transforms: a pipeline with a transform runs from a bundle of main.ts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spillway-bundle-run-" });
  await using pg = await startPostgres();
  try {
    await pg.psql("CREATE TABLE bundled (id int PRIMARY KEY, value text)");
    const bundle = join(dir, "spillway.js");
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", MAIN, "-o", bundle],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(built.code, 0, new TextDecoder().decode(built.stderr));
    await Deno.writeTextFile(
      join(dir, "t.ts"),
      `import { defineTransform } from "spillway";
export default defineTransform<{ id: number; value: string }>({
  change: (event) => ({ ...event, after: { ...event.after!, shouted: event.after!.value.toUpperCase() } }),
});
`,
    );
    const out = join(dir, "out.jsonl");
    const pipeline = join(dir, "pipeline.yaml");
    await Deno.writeTextFile(
      pipeline,
      pipelineYaml({
        name: "bundled",
        url: pg.url(),
        slot: "bundled_slot",
        publication: "bundled_pub",
        tables: { "public.bundled": "{ transform: t.ts }" },
        sinks: [`file: { path: ${JSON.stringify(out)} }`],
      }),
    );
    const run = new Subprocess(
      Deno.execPath(),
      ["run", "-A", "--unstable-worker-options", bundle, "run", pipeline],
      { name: "the bundled spillway run" },
    );
    try {
      await run.started();
      await pg.psql("INSERT INTO bundled VALUES (1, 'quiet')");
      await waitFor("the transformed row in the file", async () => {
        const text = await Deno.readTextFile(out).catch(() => "");
        return text.includes('"shouted":"QUIET"');
      }, { detail: () => run.stderr });
      assert.equal((await run.stop("SIGTERM")).code, 0, run.stderr);
    } finally {
      await run.kill();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
