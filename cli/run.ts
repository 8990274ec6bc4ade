/**
 * `spillway run pipeline.yaml`: run a pipeline until Ctrl-C, with the flags that move or
 * reset its slot first.
 *
 * @module
 */

import { PgConnection } from "../postgres/connection.ts";
import { ConfigError, errorMessage, PostgresError } from "../errors.ts";
import { formatLsn } from "../decoder/lsn.ts";
import { createLogger } from "../ops/log.ts";
import { connectOptions, loadPipelineConfig, type PipelineConfig } from "../config/mod.ts";
import { runPipeline } from "../pipelines/run_pipeline.ts";
import { defaultStateFile, probeStateFile } from "../pipelines/state.ts";
import {
  confirmDanger,
  parseCommandArgs,
  parseLogLevel,
  parseLsnFlag,
  stopOnSignal,
} from "./_common.ts";

/** Usage of `spillway run`. */
export const RUN_USAGE = `spillway run <pipeline.yaml> [options]

Runs a pipeline until Ctrl-C (or SIGTERM): the first signal drains what was read into
the sinks, confirms it to PostgreSQL and exits 0; a second one exits at once.

Options:
  --from-lsn LSN       start at LSN instead of the slot's confirmed position (asks first:
                       changes before it are skipped)
  --reset-slot         drop the slot and create it again at the current WAL position, and
                       forget the position the state file recorded (asks first: every
                       change the slot still holds, or held when it vanished, is lost)
  --yes                answer yes to those questions (needed when stdin is not a terminal)
  --log-level LEVEL    overrides log.level in the file
  --log-json           overrides log.format in the file
  -h, --help           this help`;

/** Runs `spillway run <pipeline.yaml> [options]` and returns the exit code. */
export async function runCommand(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(RUN_USAGE, args, {
    "from-lsn": { type: "string" },
    "reset-slot": { type: "boolean" },
    yes: { type: "boolean" },
    "log-level": { type: "string" },
    "log-json": { type: "boolean" },
  }, { positionals: 1 });
  if (typeof parsed === "number") return parsed;
  const { values } = parsed;
  const file = parsed.positionals[0]!; // one, checked above
  const config = await loadPipelineConfig(file);
  const slot = config.source.slot;
  // Every flag is checked before anything is asked or dropped.
  const level = parseLogLevel(values["log-level"] ?? config.log.level);
  const log = createLogger({ level, json: values["log-json"] ?? config.log.format === "json" });
  if (config.source.stateFile === null) {
    // The default place: without it (a read-only directory, say) the pipeline runs unguarded,
    // as before state files existed; a state_file set explicitly must work.
    const path = defaultStateFile(config);
    try {
      await probeStateFile(path);
      config.source.stateFile = path;
    } catch (error) {
      log("warn", "Running without a state file: a vanished slot will not be noticed", {
        error: errorMessage(error),
      });
      config.source.stateFile = false;
    }
  }
  if (values["reset-slot"] && values["from-lsn"] !== undefined) {
    throw new ConfigError(
      "Cannot use --reset-slot with --from-lsn: a new slot starts at the current WAL position; give one of them",
    );
  }
  if (values["reset-slot"] && !config.source.createSlot) {
    throw new ConfigError(
      `Cannot use --reset-slot on "${slot}": ${file} sets source.create_slot: false, so the slot could not be created again; set it to true (or drop and create the slot yourself)`,
    );
  }
  if (values["from-lsn"] !== undefined) {
    const from = parseLsnFlag("--from-lsn", values["from-lsn"]);
    const question = `Start slot "${slot}" at ${
      formatLsn(from)
    }? Changes the slot holds before it will not be delivered.`;
    if (!await confirmDanger(question, values.yes ?? false)) return 1;
    config.source.startLsn = from;
  }
  if (values["reset-slot"]) {
    const question =
      `Drop replication slot "${slot}" and create it again? Every change it holds that was not delivered is lost; the new slot starts at the current WAL position.`;
    if (!await confirmDanger(question, values.yes ?? false)) return 1;
    await dropSlotIfExists(config, slot);
    // The recorded position is of the old slot: forget it, or the new slot would be refused.
    if (config.source.stateFile !== false) {
      await Deno.remove(config.source.stateFile).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    }
  }
  // A second signal leaves without confirming more.
  using stopping = stopOnSignal(
    log,
    "Stopping: draining to the sinks; press Ctrl-C again to exit at once",
  );
  await runPipeline({ config, log, signal: stopping.signal });
  return 0;
}

/** Drops `slot` with DROP_REPLICATION_SLOT; a slot that does not exist is no error. */
async function dropSlotIfExists(config: PipelineConfig, slot: string): Promise<void> {
  const connection = await PgConnection.connect({
    ...connectOptions(config),
    replication: "database",
  });
  try {
    await connection.dropReplicationSlot(slot);
  } catch (error) {
    if (!(error instanceof PostgresError && error.code === "42704")) throw error;
  } finally {
    await connection.close();
  }
}
