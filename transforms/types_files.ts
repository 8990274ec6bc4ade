/**
 * Writes the row types of a pipeline's tables to a folder, read from the live database: the
 * files `spillway types` writes, and that a running pipeline with `transforms.types_dir`
 * writes again when a table's columns change.
 *
 * @module
 */

import { join } from "node:path";
import { matchTable, type PipelineConfig } from "../config/mod.ts";
import { loadTypeInfos } from "../decoder/types/catalog.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../ops/log.ts";
import { readColumnTypes, readTables } from "../postgres/catalog.ts";
import type { PgConnection } from "../postgres/connection.ts";
import { catalogTypeOids, PG_SHAPES, renderSchema, typeName } from "./types_gen.ts";

/** One file of row types: its path, the interfaces in it, and whether this call rewrote it. */
export interface TypesFile {
  path: string;
  interfaces: string[];
  /** False when the file already held exactly this text (it was left alone). */
  changed: boolean;
}

/**
 * Reads the tables the pipeline selects (columns, nullability, catalog types) and writes
 * `dir/<schema>.ts` per schema and `dir/_pg.ts`. A file that already holds the text is left
 * alone; the others are written whole to a temporary name and renamed, so `deno check` never
 * sees half a file.
 */
export async function writeRowTypes(
  connection: PgConnection,
  config: PipelineConfig,
  dir: string,
): Promise<TypesFile[]> {
  const selected = (await readTables(connection)).filter((t) =>
    matchTable(config, t.schema, t.table) !== null
  );
  const columns = await readColumnTypes(connection, selected.map((t) => t.oid));
  const tables = selected.map((t) => ({
    schema: t.schema,
    table: t.table,
    columns: columns.get(t.oid) ?? [],
  }));
  const infos = await loadTypeInfos(connection, catalogTypeOids(tables));
  const types = new Map(infos.map((info) => [info.oid, info]));
  await Deno.mkdir(dir, { recursive: true });
  await replaceFile(join(dir, "_pg.ts"), PG_SHAPES);
  const written: TypesFile[] = [];
  for (const [schema, list] of Map.groupBy(tables, (t) => t.schema)) {
    const path = join(dir, `${schema}.ts`);
    const changed = await replaceFile(path, renderSchema(schema, list, types));
    written.push({ path, interfaces: list.map((t) => typeName(t.table)), changed });
  }
  return written;
}

/** Writes `text` to `path` unless it holds it already; true when it wrote. */
async function replaceFile(path: string, text: string): Promise<boolean> {
  const current = await Deno.readTextFile(path).catch(() => null);
  if (current === text) return false;
  const temporary = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.writeTextFile(temporary, text);
  await Deno.rename(temporary, path);
  return true;
}

/**
 * Writes the row types again whenever {@linkcode TypesRefresher.changed} is called (a table's
 * columns changed): one write at a time, and one more after it when changes came meanwhile.
 * A failure is logged, never thrown: the pipeline goes on.
 */
export class TypesRefresher {
  readonly #connect: () => Promise<PgConnection>;
  readonly #config: PipelineConfig;
  readonly #dir: string;
  readonly #log: Logger;
  #running: Promise<void> | null = null;
  #again = false;
  /** Writes done so far. */
  writes = 0;

  constructor(
    config: PipelineConfig,
    dir: string,
    connect: () => Promise<PgConnection>,
    log: Logger,
  ) {
    this.#config = config;
    this.#dir = dir;
    this.#connect = connect;
    this.#log = log;
  }

  /** A table's columns changed: the types are written again soon. */
  changed(): void {
    if (this.#running !== null) {
      this.#again = true;
      return;
    }
    this.#running = this.#write().finally(() => {
      this.#running = null;
      if (this.#again) {
        this.#again = false;
        this.changed();
      }
    });
  }

  /** Waits for a write in progress (and the one after it). */
  async settled(): Promise<void> {
    while (this.#running !== null) await this.#running;
  }

  async #write(): Promise<void> {
    try {
      const connection = await this.#connect();
      try {
        const changed = (await writeRowTypes(connection, this.#config, this.#dir))
          .filter((file) => file.changed);
        this.writes++;
        if (changed.length > 0) {
          this.#log("info", "Row types written for the tables' current columns", {
            dir: this.#dir,
            files: changed.map((file) => file.path).join(", "),
          });
        }
      } finally {
        await connection.close();
      }
    } catch (error) {
      this.#log("warn", "Cannot write the row types (transforms.types_dir)", {
        dir: this.#dir,
        error: errorMessage(error),
      });
    }
  }
}
