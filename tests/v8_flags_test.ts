/**
 * The V8 settings users run with are one setting: the `deno task` commands that start
 * Spillway, the README's `deno compile` line and what the benches measure (they read the `run`
 * task's flags) carry the same `--v8-flags`, or none of them does.
 *
 * @module
 */

import assert from "node:assert/strict";
import { taskV8Flags } from "../bench/_common.ts";

const ROOT = new URL("../", import.meta.url);

/** The `--v8-flags=…` argument of a command line, or `undefined`. */
function v8FlagsOf(command: string): string | undefined {
  return /--v8-flags=(\S+)/.exec(command)?.[1];
}

Deno.test("v8 flags: the tasks that start Spillway, the README's deno compile line and the benches use the same --v8-flags", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const flags = taskV8Flags();
  for (const task of ["run", "demo", "tail", "transform"]) {
    const command = String(config.tasks[task]);
    assert.ok(command.includes("main.ts"), `task ${task} starts Spillway: ${command}`);
    assert.equal(v8FlagsOf(command), flags, `task ${task}: ${command}`);
  }
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const compile = readme.split("\n").find((line) => line.startsWith("deno compile "));
  assert.ok(compile !== undefined, "the README shows how to compile the binary");
  assert.equal(v8FlagsOf(compile), flags, `README: ${compile}`);
});
