/**
 * `spillway types pipeline.yaml [--out DIR]`: TypeScript row types of the pipeline's tables,
 * from the live schema, so transform files type-check against the real columns.
 *
 * @module
 */

import { join } from "node:path";
import { connectOptions, loadPipelineConfig } from "../config/mod.ts";
import { PgConnection } from "../postgres/connection.ts";
import { type TypesFile, writeRowTypes } from "../transforms/types_files.ts";
import { type CommandOptions, parseCommandArgs } from "./_common.ts";

/** Usage of `spillway types`. */
export const TYPES_USAGE = `spillway types <pipeline.yaml> [--out DIR]

Writes TypeScript row types of every table the pipeline selects, read from the
database: DIR/<schema>.ts with an interface per table (orders -> Orders), a
property per column (| null unless NOT NULL), enums as unions of their labels,
domains as their base type, composites as interfaces, arrays and ranges as the
shapes in DIR/_pg.ts. A transform then type-checks against the real schema:

  import type { Orders } from "./types/public.ts";
  export default defineTransform<Orders>({ ... });

Run it again after DDL. Options:
  --out DIR    where to write (default: transforms.types_dir, else types/ beside
               the pipeline file)
  -h, --help   this help

Exit codes: 0 success, 1 the database could not be read, 2 bad usage or configuration.`;

/** Runs `spillway types`; returns the exit code. */
export async function typesCommand(args: string[], options: CommandOptions = {}): Promise<number> {
  const parsed = parseCommandArgs(TYPES_USAGE, args, { out: { type: "string" } }, {
    stdout: options.stdout,
    stderr: options.stderr,
    positionals: 1,
  });
  if (typeof parsed === "number") return parsed;
  const out = options.stdout ?? ((line: string) => console.log(line));
  const config = await loadPipelineConfig(parsed.positionals[0]!);
  const dir = parsed.values.out ?? config.transforms.typesDir ?? join(config.baseDir, "types");
  const connect = options.connect ?? PgConnection.connect;
  const connection = await connect(connectOptions(config, "spillway-types"));
  let files: TypesFile[];
  try {
    files = await writeRowTypes(connection, config, dir);
  } finally {
    await connection.close();
  }
  for (const file of files) out(`${file.path}: ${file.interfaces.join(", ")}`);
  if (files.length === 0) out("No table of the database matches the pipeline's tables");
  return 0;
}
