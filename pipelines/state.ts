/**
 * The pipeline's state file: which slot of which cluster and database it streams from, and
 * the last position it confirmed. With it, a pipeline whose slot is gone (dropped, or lost
 * in a failover to a standby without it) refuses to make a new one at the current WAL
 * position, which would skip every change since, unless the operator says so
 * (`spillway run --reset-slot`, which forgets the state).
 *
 * The file is small JSON, replaced atomically (written to a temporary file, synced, renamed).
 *
 * @module
 */

import { basename, dirname, extname, join } from "node:path";
import { ConfigError } from "../errors.ts";
import { formatLsn, type Lsn, parseLsn } from "../decoder/lsn.ts";
import type { PipelineConfig } from "../config/mod.ts";
import { type Logger, printable } from "../ops/log.ts";

/** What the state file records. */
export interface PipelineState {
  /** The slot's cluster: `IDENTIFY_SYSTEM`'s `systemid`. */
  systemId: string;
  database: string;
  slot: string;
  /** The last position confirmed to the server. */
  confirmedLsn: Lsn;
  /** When it was written, ISO 8601. */
  updatedAt: string;
}

/**
 * The state file of a pipeline run by `spillway run`: `source.state_file`, or by default
 * `<pipeline file without its extension>.state.json` beside the pipeline file; `null` when
 * `state_file: off`.
 */
export function defaultStateFile(config: PipelineConfig): string | null {
  const configured = config.source.stateFile;
  if (configured === false) return null;
  if (configured !== null) return configured;
  const file = basename(config.file);
  return join(config.baseDir, `${basename(file, extname(file))}.state.json`);
}

/** Reads a state file; `null` when there is none. */
export async function readState(path: string): Promise<PipelineState | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new ConfigError(
      `Cannot read the state file ${path} (source.state_file): ${errorText(error)}`,
    );
  }
  try {
    const json = JSON.parse(text);
    const fields = ["systemId", "database", "slot", "confirmedLsn", "updatedAt"];
    if (json?.version !== 1 || fields.some((field) => typeof json[field] !== "string")) {
      throw new Error(`expected version 1 with ${fields.join(", ")}`);
    }
    return {
      systemId: json.systemId,
      database: json.database,
      slot: json.slot,
      confirmedLsn: parseLsn(json.confirmedLsn),
      updatedAt: json.updatedAt,
    };
  } catch (error) {
    throw new ConfigError(
      `Cannot use the state file ${path} (source.state_file): ${
        printable(errorText(error))
      }; it is written by Spillway: restore it, or delete it to start as if the pipeline were new`,
    );
  }
}

/** Replaces the state file atomically: a temporary file, synced, renamed over it. */
export async function writeState(path: string, state: PipelineState): Promise<void> {
  const text = `${
    JSON.stringify({
      version: 1,
      systemId: state.systemId,
      database: state.database,
      slot: state.slot,
      confirmedLsn: formatLsn(state.confirmedLsn),
      updatedAt: state.updatedAt,
    })
  }\n`;
  const temporary = temporaryOf(path);
  const file = await Deno.open(temporary, { write: true, create: true, truncate: true });
  try {
    await file.write(new TextEncoder().encode(text));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(temporary, path);
}

/**
 * The error when the slot a state file names is gone: a new slot would start at the current
 * WAL position and skip everything since `state.confirmedLsn`.
 */
export function slotGoneError(path: string, state: PipelineState, file: string): ConfigError {
  return new ConfigError(
    `Cannot start: replication slot "${state.slot}" is gone, though this pipeline streamed from it (last confirmed ${
      formatLsn(state.confirmedLsn)
    } at ${state.updatedAt}, recorded in ${path}). A new slot would start at the current WAL position and silently skip every change since; nothing is created. To accept that gap, run spillway run ${file} --reset-slot`,
  );
}

/**
 * Throws the ConfigError {@linkcode StateRecorder.start} would, unless a file can be written
 * beside `path`: called before anything is created on the server.
 */
export async function probeStateFile(path: string): Promise<void> {
  const probe = temporaryOf(path);
  try {
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  } catch (error) {
    throw unwritable(path, error);
  }
}

function unwritable(path: string, error: unknown): ConfigError {
  return new ConfigError(
    `Cannot write the state file ${path} (source.state_file): ${
      errorText(error)
    }; make its directory writable, set source.state_file to a writable path, or state_file: off to run without it`,
  );
}

function temporaryOf(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp`);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Where a running pipeline is: the state file's fields but the position and time. */
export type StateOwner = Omit<PipelineState, "confirmedLsn" | "updatedAt">;

/**
 * Keeps a state file up to date as positions are confirmed: at most one write per
 * `intervalMs` (default 1 s), the last one on {@linkcode StateRecorder.close}. A failed write
 * during the run is logged (once until one succeeds) and tried again with the next position.
 */
export class StateRecorder {
  readonly path: string;
  #owner: StateOwner;
  #log: Logger;
  #intervalMs: number;
  #pending: Lsn | null = null;
  #written: Lsn | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #writing: Promise<void> = Promise.resolve();
  #failing = false;

  constructor(path: string, owner: StateOwner, log: Logger, intervalMs = 1_000) {
    this.path = path;
    this.#owner = owner;
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** Writes the state now; a failure is a ConfigError naming the file. */
  async start(position: Lsn): Promise<void> {
    try {
      await this.#write(position);
    } catch (error) {
      throw unwritable(this.path, error);
    }
  }

  /** Notes a confirmed position; it reaches the file within `intervalMs`. */
  record(position: Lsn): void {
    this.#pending = position;
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#flush();
    }, this.#intervalMs);
    Deno.unrefTimer(this.#timer);
  }

  /** Writes the last position noted, and stops. */
  async close(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#flush();
    await this.#writing;
  }

  #flush(): void {
    const position = this.#pending;
    this.#pending = null;
    if (position === null || position === this.#written) return;
    this.#writing = this.#writing.then(() => this.#write(position)).then(
      () => {
        if (this.#failing) this.#log("info", "State file written again", { path: this.path });
        this.#failing = false;
      },
      (error) => {
        if (!this.#failing) {
          this.#log("warn", "Cannot write the state file; trying again with the next position", {
            path: this.path,
            error: errorText(error),
          });
        }
        this.#failing = true;
      },
    );
  }

  async #write(position: Lsn): Promise<void> {
    await writeState(this.path, {
      ...this.#owner,
      confirmedLsn: position,
      updatedAt: new Date().toISOString(),
    });
    this.#written = position;
  }
}
