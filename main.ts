/**
 * The `spillway` command line: argv → `cli/<command>.ts`, usage and exit codes.
 *
 * @module
 */

import { ConfigError } from "./errors.ts";

const USAGE = `spillway: PostgreSQL change data capture

Usage:
  spillway run <pipeline.yaml>             run a pipeline: PostgreSQL → transforms → sinks
  spillway check <pipeline.yaml> [--json]  check a pipeline file and its database; each finding with its fix
  spillway slots list|drop <postgres-url>  list logical slots with their lag; drop one
  spillway tail <postgres-url> [options]   print every change as one JSON line
  spillway demo                            embedded PostgreSQL, a trickle of changes, tail
  spillway schema                          the JSON Schema of pipeline files, for editors
  spillway types <pipeline.yaml> [--out D] TypeScript row types of the pipeline's tables
  spillway transform <file.ts> < events    run a transform on JSON-line events (from tail)
  spillway help [command]

Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.`;

async function usageFor(command: string | undefined): Promise<string> {
  switch (command) {
    case "tail":
      return (await import("./cli/tail.ts")).TAIL_USAGE;
    case "run":
      return (await import("./cli/run.ts")).RUN_USAGE;
    case "check":
      return (await import("./cli/check.ts")).CHECK_USAGE;
    case "slots":
      return (await import("./cli/slots.ts")).SLOTS_USAGE;
    case "schema":
      return (await import("./cli/schema.ts")).SCHEMA_USAGE;
    case "demo":
      return (await import("./cli/demo.ts")).DEMO_USAGE;
    case "types":
      return (await import("./cli/types.ts")).TYPES_USAGE;
    case "transform":
      return (await import("./cli/transform.ts")).TRANSFORM_USAGE;
    default:
      return USAGE;
  }
}

/** Runs the CLI and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "run": {
        const { runCommand } = await import("./cli/run.ts");
        return await runCommand(rest);
      }
      case "tail": {
        const { tailCommand } = await import("./cli/tail.ts");
        return await tailCommand(rest);
      }
      case "check": {
        const { checkCommand } = await import("./cli/check.ts");
        return await checkCommand(rest);
      }
      case "slots": {
        const { slotsCommand } = await import("./cli/slots.ts");
        return await slotsCommand(rest);
      }
      case "schema": {
        const { schemaCommand } = await import("./cli/schema.ts");
        return await schemaCommand(rest);
      }
      case "demo": {
        const { demo } = await import("./cli/demo.ts");
        return await demo(rest);
      }
      case "types": {
        const { typesCommand } = await import("./cli/types.ts");
        return await typesCommand(rest);
      }
      case "transform": {
        const { transformCommand } = await import("./cli/transform.ts");
        return await transformCommand(rest);
      }
      case "help":
      case "-h":
      case "--help":
      case undefined:
        console.log(await usageFor(rest[0]));
        return command === undefined ? 2 : 0;
      default:
        console.error(
          `Unknown command ${JSON.stringify(command.slice(0, 100))}; run "spillway help"`,
        );
        return 2;
    }
  } catch (error) {
    const { errorLines } = await import("./cli/_common.ts");
    console.error(`spillway ${command}: ${errorLines(error)}`);
    return error instanceof ConfigError ? 2 : 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
