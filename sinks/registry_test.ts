import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { FileSink } from "./file.ts";
import { createSink } from "./registry.ts";
import { StdoutSink } from "./stdout.ts";

Deno.test("createSink: stdout and file configs make their sinks, unopened", async () => {
  const stdout = await createSink({ type: "stdout", format: "json" });
  assert.ok(stdout instanceof StdoutSink);
  const dir = await Deno.makeTempDir({ prefix: "spillway-sinks-" });
  try {
    const path = join(dir, "sub", "out.jsonl");
    const file = await createSink({ type: "file", path, rotateBytes: null, fsync: true });
    assert.ok(file instanceof FileSink);
    assert.equal(file.name, `file:${path}`);
    // Nothing is created before open().
    await assert.rejects(Deno.stat(join(dir, "sub")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createSink: a kafka sink is refused with a ConfigError naming the sinks there are", async () => {
  const error = await createSink({ type: "kafka", brokers: ["localhost:9092"] } as never)
    .then(() => null, (error: unknown) => error);
  assert.ok(error instanceof ConfigError);
  assert.match(error.message, /kafka sink: it is not available .*use the stdout or file sink/);
});

Deno.test("sinks/registry.ts imports no sink module eagerly: each comes by import() when asked for", async () => {
  const source = await Deno.readTextFile(new URL("./registry.ts", import.meta.url));
  const eager = [...source.matchAll(/^(import|export)\b(?!\s+type\b)[^;]*?from\s*"(\.\/[^"]+)"/gm)]
    .map((match) => match[2]);
  assert.deepEqual(eager, []);
  const lazy = [...source.matchAll(/\bimport\(\s*"(\.\/[^"]+)"\s*\)/g)].map((match) => match[1]);
  assert.deepEqual(lazy.sort(), ["./file.ts", "./stdout.ts"]);
});
