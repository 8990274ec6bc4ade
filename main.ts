/**
 * The `spillway` command line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseConnectionUrl, PgConnection, redact } from "./postgres/connection.ts";
import { ConfigError, PostgresError } from "./errors.ts";
import { formatLsn, type Lsn, parseLsn } from "./decoder/lsn.ts";
import type { ProtoVersion } from "./decoder/pgoutput.ts";
import { createLogger, type LogLevel } from "./ops/log.ts";
import { tail } from "./cli/tail.ts";
import { loadPipelineConfig, type PipelineConfig } from "./config/mod.ts";
import { promptYesNo } from "./cli/slots.ts";
import { connectOptions } from "./config/mod.ts";
import { runPipeline } from "./pipelines/run_pipeline.ts";

const USAGE = `spillway: PostgreSQL change data capture

Usage:
  spillway run <pipeline.yaml>             run a pipeline: PostgreSQL → transforms → sinks
  spillway check <pipeline.yaml> [--json]  check a pipeline file and its database; each finding with its fix
  spillway slots list|drop <postgres-url>  list logical slots with their lag; drop one
  spillway tail <postgres-url> [options]   print every change as one JSON line
  spillway demo                            embedded PostgreSQL, a trickle of changes, tail
  spillway help [command]

Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.`;

const TAIL_USAGE = `spillway tail <postgres-url> [options]

Connects as a logical replication client and prints each change as a JSON line
(op, before, after, unchanged, source). Without --slot, a temporary slot and a
publication for all tables are made for this session and removed afterwards.

Options:
  --slot NAME          read this permanent slot (with --create: create it if missing)
  --publication NAME   use this publication (with --create: create it FOR ALL TABLES if missing);
                       with --slot it defaults to the slot's name
  --create             create the named slot and publication when missing
  --from-lsn LSN       start at this LSN (e.g. 0/16B3748) instead of the slot's position
  --tx                 also print begin/commit lines
  --proto N            pgoutput proto_version 1-4 (default: the highest the server supports)
  --streaming MODE     off (default), on or parallel: large transactions arrive before commit
  --binary             ask for binary column values
  --no-messages        do not ask for pg_logical_emit_message messages
  --log-level LEVEL    debug, info (default), warn, error
  --log-json           logs as JSON lines on stderr
  -h, --help           this help

The URL may carry sslmode (disable, prefer, require, verify-ca, verify-full),
sslrootcert (a file) and application_name: postgres://user:pass@host:5432/db?sslmode=require`;

async function usageFor(command: string | undefined): Promise<string> {
  switch (command) {
    case "tail":
      return TAIL_USAGE;
    case "run":
      return RUN_USAGE;
    case "check":
      return (await import("./cli/check.ts")).CHECK_USAGE;
    case "slots":
      return (await import("./cli/slots.ts")).SLOTS_USAGE;
    default:
      return USAGE;
  }
}

/** Runs the CLI and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "run":
        return await runCommand(rest);
      case "tail":
        return await tailCommand(rest);
      case "check": {
        const { checkCommand } = await import("./cli/check.ts");
        return await checkCommand(rest);
      }
      case "slots": {
        const { slotsCommand } = await import("./cli/slots.ts");
        return await slotsCommand(rest);
      }
      case "demo": {
        const { demo } = await import("./cli/demo.ts");
        return await demo(rest);
      }
      case "help":
      case "-h":
      case "--help":
      case undefined:
        console.log(await usageFor(rest[0]));
        return command === undefined ? 2 : 0;
      default:
        console.error(`Unknown command "${command}"; run "spillway help"`);
        return 2;
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`spillway ${command}: ${message}`);
    return error instanceof ConfigError || error instanceof TypeError ? 2 : 1;
  }
}

const RUN_USAGE = `spillway run <pipeline.yaml> [options]

Runs a pipeline until Ctrl-C (or SIGTERM): the first signal drains what was read into
the sinks, confirms it to PostgreSQL and exits 0; a second one exits at once.

Options:
  --from-lsn LSN       start at LSN instead of the slot's confirmed position (asks first:
                       changes before it are skipped)
  --reset-slot         drop the slot and create it again at the current WAL position (asks
                       first: every change the slot still holds is lost)
  --yes                answer yes to those questions (needed when stdin is not a terminal)
  --log-level LEVEL    overrides log.level in the file
  --log-json           overrides log.format in the file
  -h, --help           this help`;

async function runCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      "from-lsn": { type: "string" },
      "reset-slot": { type: "boolean" },
      yes: { type: "boolean" },
      "log-level": { type: "string" },
      "log-json": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(RUN_USAGE);
    return 0;
  }
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) {
    console.error(`Usage: ${RUN_USAGE.split("\n")[0]}`);
    return 2;
  }
  const config = await loadPipelineConfig(file);
  const slot = config.source.slot;
  // Every flag is checked before anything is asked or dropped.
  const level = parseLogLevel(values["log-level"] ?? config.log.level);
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
  }
  const log = createLogger({ level, json: values["log-json"] ?? config.log.format === "json" });
  const controller = new AbortController();
  const stop = () => {
    if (controller.signal.aborted) Deno.exit(130); // second signal: leave without confirming more
    log("info", "Stopping: draining to the sinks; press Ctrl-C again to exit at once");
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    await runPipeline({ config, log, signal: controller.signal });
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
}

/** A `--log-level` value, or a ConfigError naming the flag and the levels. */
function parseLogLevel(text: string): LogLevel {
  if (!["debug", "info", "warn", "error"].includes(text)) {
    throw new ConfigError(`Cannot use --log-level "${text}": expected debug, info, warn or error`);
  }
  return text as LogLevel;
}

/** An LSN flag's value, or a ConfigError naming the flag and the expected form. */
function parseLsnFlag(flag: string, text: string): Lsn {
  try {
    return parseLsn(text);
  } catch {
    throw new ConfigError(`Cannot use ${flag} "${text}": expected an LSN like 0/16B3748`);
  }
}

/** Asks before something that loses changes; `--yes` answers for scripts. */
async function confirmDanger(question: string, yes: boolean): Promise<boolean> {
  if (yes) return true;
  if (!Deno.stdin.isTerminal()) {
    throw new ConfigError(
      `Refusing without --yes: ${question} (stdin is not a terminal, so nobody can confirm)`,
    );
  }
  return await promptYesNo(question);
}

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

async function tailCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      slot: { type: "string" },
      publication: { type: "string" },
      create: { type: "boolean" },
      "from-lsn": { type: "string" },
      tx: { type: "boolean" },
      proto: { type: "string" },
      streaming: { type: "string" },
      binary: { type: "boolean" },
      "no-messages": { type: "boolean" },
      "log-level": { type: "string" },
      "log-json": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(TAIL_USAGE);
    return 0;
  }
  const url = positionals[0];
  if (url === undefined || positionals.length > 1) {
    console.error(`Usage: ${TAIL_USAGE.split("\n")[0]}`);
    return 2;
  }
  const proto = values.proto === undefined ? undefined : Number(values.proto);
  if (proto !== undefined && ![1, 2, 3, 4].includes(proto)) {
    throw new ConfigError(`Cannot use --proto "${values.proto}": expected 1, 2, 3 or 4`);
  }
  const streamingFlag = values.streaming ?? "off";
  if (!["off", "on", "parallel"].includes(streamingFlag)) {
    throw new ConfigError(
      `Cannot use --streaming "${streamingFlag}": expected off, on or parallel`,
    );
  }
  const level = parseLogLevel(values["log-level"] ?? "info");
  const log = createLogger({ level, json: values["log-json"] });
  const controller = new AbortController();
  const stop = () => {
    if (controller.signal.aborted) Deno.exit(130); // second signal: leave at once
    log("info", "Stopping; press Ctrl-C again to exit at once");
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    const connection = parseConnectionUrl(url);
    log("info", "Connecting", { url: redact(url) });
    const count = await tail({
      connection,
      slot: values.slot,
      publication: values.publication,
      create: values.create,
      fromLsn: values["from-lsn"] === undefined
        ? undefined
        : parseLsnFlag("--from-lsn", values["from-lsn"]),
      transactions: values.tx,
      protoVersion: proto as ProtoVersion | undefined,
      streaming: streamingFlag === "parallel" ? "parallel" : streamingFlag === "on",
      binary: values.binary,
      messages: !values["no-messages"],
      signal: controller.signal,
      log,
    });
    log("info", "Stopped", { changes: count });
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
