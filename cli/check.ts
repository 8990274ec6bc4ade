/**
 * `spillway check pipeline.yaml [--json]`: the command around {@linkcode checkPipeline}.
 *
 * @module
 */

import { ConfigError, errorMessage } from "../errors.ts";
import { loadPipelineConfig, type PipelineConfig } from "../config/mod.ts";
import { checkPipeline, type Finding, formatFindings, type RecordedSlot } from "../check/mod.ts";
import { formatLsn } from "../decoder/lsn.ts";
import { defaultStateFile, probeStateFile, readState } from "../pipelines/state.ts";
import { type CommandOptions, errorLines, parseCommandArgs } from "./_common.ts";

/** Usage of `spillway check`. */
export const CHECK_USAGE = `spillway check <pipeline.yaml> [--json]

Validates the pipeline file, then connects to its database (normally, and as a
replication client) and checks what the pipeline needs: wal_level, free replication
slots and WAL senders, max_slot_wal_keep_size, wal_sender_timeout, the role's
privileges, the publication, the tables (they exist; their replica identity gives
UPDATE and DELETE a key; the configured key columns exist), the slot, failover
settings, the event triggers of capture_ddl (printing the SQL that installs and
removes them) and the transform files. Prints each finding with its fix. Changes
nothing.

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
  const parsed = parseCommandArgs(CHECK_USAGE, args, { json: { type: "boolean" } }, {
    ...options,
    positionals: 1,
  });
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  const file = parsed.positionals[0]!; // one, checked above
  let config: PipelineConfig;
  try {
    config = await loadPipelineConfig(file);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    err(errorLines(error));
    return 2;
  }
  // The slot the state file records, if there is one.
  const configured = config.source.stateFile;
  const statePath = configured === false ? null : configured ?? defaultStateFile(config);
  let recorded: RecordedSlot | null = null;
  let stateProblem: Finding | null = null;
  if (statePath !== null) {
    try {
      const state = await readState(statePath);
      if (state !== null) {
        recorded = { ...state, path: statePath, confirmedLsn: formatLsn(state.confirmedLsn) };
      }
      await probeStateFile(statePath);
    } catch (error) {
      stateProblem = {
        level: configured === null ? "warn" : "error",
        subject: "state file",
        message: errorMessage(error),
      };
    }
  }
  const findings = await checkPipeline(config, { connect: options.connect, recorded });
  if (stateProblem !== null) findings.splice(1, 0, stateProblem);
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
