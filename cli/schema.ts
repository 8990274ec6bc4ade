/**
 * `spillway schema`: print the JSON Schema of a pipeline file, for editors.
 *
 * @module
 */

import { pipelineJsonSchema } from "../config/mod.ts";
import { type CommandOptions, parseCommandArgs } from "./_common.ts";

/** Usage of `spillway schema`. */
export const SCHEMA_USAGE = `spillway schema

Prints the JSON Schema (draft-07) of a pipeline file: every key with its type, default
and description. Editors with a YAML language server use it for completion and checks:

  spillway schema > pipeline.schema.json

and, as the first line of a pipeline file:

  # yaml-language-server: $schema=pipeline.schema.json

The schema accepts every file \`spillway run\` does; \`spillway check\` checks more.

Options:
  -h, --help   this help

Exit codes: 0 success, 2 bad usage.`;

/**
 * Runs `spillway schema`: prints the schema as indented JSON and returns the exit code,
 * 0, or 2 for bad usage.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { schemaCommand } from "./schema.ts";
 * const lines: string[] = [];
 * assert.equal(await schemaCommand([], { stdout: (line) => lines.push(line) }), 0);
 * assert.equal(JSON.parse(lines.join("\n")).title, "Spillway pipeline");
 * ```
 */
export function schemaCommand(
  args: string[],
  options: Pick<CommandOptions, "stdout" | "stderr"> = {},
): Promise<number> {
  const out = options.stdout ?? ((line: string) => console.log(line));
  const parsed = parseCommandArgs(SCHEMA_USAGE, args, {}, { ...options, positionals: 0 });
  if (typeof parsed === "number") return Promise.resolve(parsed);
  out(JSON.stringify(pipelineJsonSchema(), null, 2));
  return Promise.resolve(0);
}
