import assert from "node:assert/strict";
import { join } from "node:path";
import { parsePipelineConfig } from "../config/mod.ts";
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

Deno.test("createSink: a kafka config makes the Kafka sink, unopened (no connection yet)", async () => {
  const config = parsePipelineConfig(
    "source: { url: postgres://u@h/db, slot: s, publication: p }\n" +
      "tables: { public.t: {} }\nsinks: [kafka: { brokers: ['127.0.0.1:1'] }]\n",
    { file: "p.yaml", env: {} },
  );
  const sink = await createSink(config.sinks[0]!);
  assert.equal(sink.name, "kafka:127.0.0.1:1");
  assert.deepEqual(sink.status(), { state: "ok", written: 0 });
});

Deno.test("sinks/registry.ts imports no sink module eagerly: each comes by import() when asked for", async () => {
  const source = await Deno.readTextFile(new URL("./registry.ts", import.meta.url));
  const eager = [...source.matchAll(/^(import|export)\b(?!\s+type\b)[^;]*?from\s*"(\.\/[^"]+)"/gm)]
    .map((match) => match[2]);
  assert.deepEqual(eager, []);
  const lazy = [...source.matchAll(/\bimport\(\s*"(\.\/[^"]+)"\s*\)/g)].map((match) => match[1]);
  assert.deepEqual(lazy.sort(), ["./file.ts", "./kafka/mod.ts", "./stdout.ts"]);
});
