/**
 * The V8 settings users run with are one setting: the `deno task` commands that start
 * Spillway, the README's `deno compile` line and what the benches measure (they read the `run`
 * task's flags) carry the same `--v8-flags`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { taskV8Flags } from "../bench/_common.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("v8 flags: the tasks that start Spillway, the README's deno compile line and the benches use the same --v8-flags", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const flags = taskV8Flags();
  assert.ok(flags !== undefined, "deno task run sets --v8-flags");
  for (const task of ["run", "demo", "tail", "transform"]) {
    const command = String(config.tasks[task]);
    assert.ok(command.includes(`--v8-flags=${flags} `), `task ${task}: ${command}`);
  }
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const compile = readme.split("\n").find((line) => line.startsWith("deno compile "));
  assert.ok(compile?.includes(`--v8-flags=${flags} `), `README: ${compile}`);
});
