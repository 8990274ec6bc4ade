/**
 * The pipeline's state file: which slot of which cluster and database it streams from, and
 * the position it confirmed. The file leads the server: a flush position is sent to the
 * server only once the file holds it (see {@linkcode StateGate}), so the slot this pipeline
 * streams from is never ahead of the file.
 *
 * With it, a start refuses what would silently skip changes (see {@linkcode checkRecordedSlot}):
 * a slot that is gone (dropped, or lost in a failover to a standby without it), a slot ahead of
 * the file (dropped and made again by hand), another cluster or database under the same slot
 * name, or a server whose WAL is behind the file (restored from a backup). `spillway run
 * --reset-slot` accepts the gap and forgets the file.
 *
 * The file is small JSON, replaced atomically: written to a temporary file of its own name,
 * synced, renamed over it, and the directory synced.
 *
 * @module
 */

import { basename, dirname, extname, join } from "node:path";
import { ConfigError, errorMessage } from "../errors.ts";
import { formatLsn, type Lsn, LSN_ZERO, maxLsn, parseLsn } from "../decoder/lsn.ts";
import type { PipelineConfig } from "../config/mod.ts";
import type { SlotRow } from "../postgres/catalog.ts";
import type { SystemIdentity } from "../postgres/connection.ts";
import type { FlushGate } from "../postgres/stream.ts";
import { type Logger, printable } from "../ops/log.ts";
import { writeAll } from "../sinks/mod.ts";

/** What the state file records. */
export interface PipelineState {
  /** The slot's cluster: `IDENTIFY_SYSTEM`'s `systemid`. */
  systemId: string;
  database: string;
  slot: string;
  /** The position confirmed: the server's slot is never ahead of it. */
  confirmedLsn: Lsn;
  /** When it was written, ISO 8601. */
  updatedAt: string;
}

/**
 * The default state file of a pipeline run by `spillway run`:
 * `<pipeline file without its extension>.state.json` beside the pipeline file.
 */
export function defaultStateFile(config: PipelineConfig): string {
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
      `Cannot read the state file ${path} (source.state_file): ${errorMessage(error)}`,
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
        printable(errorMessage(error))
      }; it is written by Spillway: restore it, or delete it to start as if the pipeline were new`,
    );
  }
}

/**
 * Replaces the state file atomically: a temporary file of its own (two writers never share
 * one), written whole and synced, renamed over the file, then the directory synced so the
 * rename survives a power loss.
 */
export async function writeState(path: string, state: PipelineState): Promise<void> {
  const bytes = new TextEncoder().encode(`${
    JSON.stringify({
      version: 1,
      systemId: state.systemId,
      database: state.database,
      slot: state.slot,
      confirmedLsn: formatLsn(state.confirmedLsn),
      updatedAt: state.updatedAt,
    })
  }\n`);
  const temporary = temporaryOf(path);
  try {
    const file = await Deno.open(temporary, { write: true, createNew: true });
    try {
      await writeAll(file, bytes);
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
  const directory = await Deno.open(dirname(path), { read: true });
  try {
    await directory.sync();
  } finally {
    directory.close();
  }
}

/**
 * Throws the ConfigError {@linkcode StateRecorder.start} would, unless a file can be written
 * beside `path`: called before anything is created on the server.
 */
export async function probeStateFile(path: string): Promise<void> {
  const probe = temporaryOf(path);
  try {
    await Deno.writeTextFile(probe, "", { createNew: true });
    await Deno.remove(probe);
  } catch (error) {
    throw unwritable(path, error);
  }
}

/**
 * Throws a ConfigError when starting on `slot` (as the server has it, `undefined` when it does
 * not exist) would skip changes the state file says were not delivered. Called before
 * anything is created.
 */
export function checkRecordedSlot(
  path: string,
  recorded: PipelineState | null,
  config: PipelineConfig,
  system: SystemIdentity,
  slot: SlotRow | undefined,
): void {
  if (recorded === null || recorded.slot !== config.source.slot) return;
  const name = config.source.slot;
  const reset = `spillway run ${config.file} --reset-slot`;
  const last = `last confirmed ${formatLsn(recorded.confirmedLsn)} at ${recorded.updatedAt}`;
  const database = system.dbName ?? "";
  if (recorded.systemId !== system.systemId || recorded.database !== database) {
    throw new ConfigError(
      `Cannot start: ${path} records slot "${name}" of database "${recorded.database}" on the cluster with system id ${recorded.systemId} (${last}), but the server is database "${database}" on system id ${system.systemId}: another cluster or database (a new cluster after pg_upgrade or a restore, or a changed source.url). Its LSNs are unrelated to the ones the sinks hold, and its slot would start a new history; nothing is created. If this is intended, run ${reset}, and reset what consumers remember of LSNs`,
    );
  }
  if (system.xlogPos < recorded.confirmedLsn) {
    throw new ConfigError(
      `Cannot start: the server's WAL ends at ${
        formatLsn(system.xlogPos)
      }, behind the position this pipeline confirmed (${last}, recorded in ${path}): the cluster went back in time (restored from a backup, or a point-in-time recovery), and what the sinks hold past that point is not in its history; nothing is created. Reconcile the sinks, then run ${reset}`,
    );
  }
  if (slot === undefined) {
    throw new ConfigError(
      `Cannot start: replication slot "${name}" is gone, though this pipeline streamed from it (${last}, recorded in ${path}). A new slot would start at the current WAL position and silently skip every change since; nothing is created. To accept that gap, run ${reset}`,
    );
  }
  const confirmed = slot.confirmedFlushLsn === null ? null : parseLsn(slot.confirmedFlushLsn);
  if (confirmed !== null && confirmed > recorded.confirmedLsn) {
    throw new ConfigError(
      `Cannot start: replication slot "${name}" is at ${
        formatLsn(confirmed)
      }, ahead of the position this pipeline confirmed (${last}, recorded in ${path}). Spillway never lets its slot pass what the file holds, so this is another slot of the same name (dropped and made again?), and the changes in between are lost to it; nothing is read. To accept that gap, run ${reset}`,
    );
  }
}

/** Where a running pipeline is: the state file's fields but the position and time. */
export type StateOwner = Omit<PipelineState, "confirmedLsn" | "updatedAt">;

/**
 * Keeps a state file up to date as positions are wanted: at most one write per `intervalMs`
 * (default 100 ms), the last one on {@linkcode StateRecorder.close}. After each write,
 * `onRecorded` gets the position the file now holds. A failed write during the run is logged
 * (once until one succeeds) and tried again with the next position; meanwhile the server
 * hears of no position past the last one recorded.
 */
export class StateRecorder {
  readonly path: string;
  #owner: StateOwner;
  #log: Logger;
  #intervalMs: number;
  #onRecorded: (position: Lsn) => void;
  #pending: Lsn | null = null;
  #written: Lsn = LSN_ZERO;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #writing: Promise<void> = Promise.resolve();
  #failing = false;

  constructor(
    path: string,
    owner: StateOwner,
    log: Logger,
    onRecorded: (position: Lsn) => void,
    intervalMs = 100,
  ) {
    this.path = path;
    this.#owner = owner;
    this.#log = log;
    this.#onRecorded = onRecorded;
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

  /** Asks for `position` to be recorded; it is within `intervalMs`. */
  record(position: Lsn): void {
    if (position <= this.#written || (this.#pending !== null && position <= this.#pending)) {
      return;
    }
    this.#pending = position;
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#flush();
    }, this.#intervalMs);
  }

  /** Writes the last position asked for, and stops. */
  async close(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#flush();
    await this.#writing;
  }

  #flush(): void {
    const position = this.#pending;
    this.#pending = null;
    if (position === null || position <= this.#written) return;
    this.#writing = this.#writing.then(() => this.#write(position)).then(
      () => {
        if (this.#failing) this.#log("info", "State file written again", { path: this.path });
        this.#failing = false;
      },
      (error) => {
        if (!this.#failing) {
          this.#log("warn", "Cannot write the state file; trying again with the next position", {
            path: this.path,
            error: errorMessage(error),
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
    this.#written = maxLsn(this.#written, position);
    this.#onRecorded(this.#written);
  }
}

/**
 * The gate between the replication stream and the state file: the stream may send a flush
 * position once the file holds it. Positions wanted before the recorder exists are kept.
 */
export class StateGate implements FlushGate {
  #allowed: Lsn = LSN_ZERO;
  #wanted: Lsn = LSN_ZERO;
  #recorder: StateRecorder | null = null;

  get allowed(): Lsn {
    return this.#allowed;
  }

  want(position: Lsn): void {
    this.#wanted = maxLsn(this.#wanted, position);
    this.#recorder?.record(position);
  }

  /** The file now holds `position`. */
  recorded(position: Lsn): void {
    this.#allowed = maxLsn(this.#allowed, position);
  }

  /** Hands wanted positions to `recorder` from now on. */
  attach(recorder: StateRecorder): void {
    this.#recorder = recorder;
    if (this.#wanted > this.#allowed) recorder.record(this.#wanted);
  }
}

function unwritable(path: string, error: unknown): ConfigError {
  return new ConfigError(
    `Cannot write the state file ${path} (source.state_file): ${
      errorMessage(error)
    }; make its directory writable, set source.state_file to a writable path, or state_file: off to run without it`,
  );
}

/** A temporary name beside `path`, unique to this process and call. */
function temporaryOf(path: string): string {
  const random = crypto.getRandomValues(new Uint32Array(1))[0]!.toString(36);
  return join(dirname(path), `.${basename(path)}.${Deno.pid}.${random}.tmp`);
}
