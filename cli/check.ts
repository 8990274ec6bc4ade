/**
 * `spillway check pipeline.yaml [--json]`: the command around {@linkcode checkPipeline}.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ConfigError } from "../errors.ts";
import { loadPipelineConfig, type PipelineConfig } from "../config/config.ts";
import { checkPipeline, formatFindings } from "../check/check.ts";
import type { CommandOptions } from "./_common.ts";

/** Usage of `spillway check`. */
export const CHECK_USAGE = `spillway check <pipeline.yaml> [--json]

Validates the pipeline file, then connects to its database (normally, and as a
replication client) and checks what the pipeline needs: wal_level, free replication
slots and WAL senders, max_slot_wal_keep_size, wal_sender_timeout, the role's
privileges, the publication, the tables (they exist; their replica identity gives
UPDATE and DELETE a key; the configured key columns exist), the slot, failover
settings and the transform files. Prints each finding with its fix. Changes nothing.

Options:
  --json       print the findings as JSON
  -h, --help   this help

Exit codes: 0 no errors (warnings allowed), 1 errors found, 2 bad usage or an invalid file.`;

/**
 * Runs `spillway check <pipeline.yaml> [--json]` and returns the exit code: 0 without
 * errors, 1 with errors, 2 for bad usage or an invalid pipeline file (printed as it is).
 */
export async function checkCommand(
  args: string[],
  options: CommandOptions & { color?: boolean } = {},
): Promise<number> {
  const out = options.stdout ?? ((line: string) => console.log(line));
  const err = options.stderr ?? ((line: string) => console.error(line));
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    });
  } catch (error) {
    err(`spillway check: ${error instanceof Error ? error.message : String(error)}`);
    err(`Usage: ${CHECK_USAGE.split("\n")[0]}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out(CHECK_USAGE);
    return 0;
  }
  const [file] = positionals;
  if (file === undefined || positionals.length > 1) {
    err(`Usage: ${CHECK_USAGE.split("\n")[0]}`);
    return 2;
  }
  let config: PipelineConfig;
  try {
    config = await loadPipelineConfig(file);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    err(error.message);
    return 2;
  }
  const findings = await checkPipeline(config, { connect: options.connect });
  const errors = findings.filter((finding) => finding.level === "error").length;
  if (values.json) {
    const warnings = findings.filter((finding) => finding.level === "warn").length;
    out(JSON.stringify(
      { pipeline: config.name, file: config.file, errors, warnings, findings },
      null,
      2,
    ));
  } else {
    const color = options.color ??
      (options.stdout === undefined && !Deno.noColor && Deno.stdout.isTerminal());
    out(formatFindings(findings, { color }));
  }
  return errors > 0 ? 1 : 0;
}
