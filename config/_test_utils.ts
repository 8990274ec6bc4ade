/**
 * Helpers shared by the config tests: lines of YAML, a minimal pipeline, and the
 * problem lines of a file that must not parse.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../errors.ts";
import { parsePipelineConfig, type PipelineConfig } from "./mod.ts";

export const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), "..", "examples");
export const BASE_DIR = "/srv/spillway";

/** Lines of YAML, joined, so that line numbers in expectations are easy to count. */
export function yaml(...lines: string[]): string {
  return lines.join("\n") + "\n";
}

export const SOURCE = [
  "source:",
  "  url: postgres://replicator:secret@localhost:5432/app",
  "  slot: orders_cdc",
  "  publication: orders_pub",
];
export const MINIMAL = yaml(...SOURCE, "tables:", '  "public.*": {}', "sinks:", "  - stdout: {}");

export function parse(text: string, env: Record<string, string | undefined> = {}): PipelineConfig {
  return parsePipelineConfig(text, { file: "pipeline.yaml", env, baseDir: BASE_DIR });
}

/** The problem lines of a file that must not parse. */
export function problems(text: string, env: Record<string, string | undefined> = {}): string[] {
  try {
    parse(text, env);
  } catch (error) {
    assert(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error.message.split("\n");
  }
  assert.fail("expected the configuration to be rejected");
}
