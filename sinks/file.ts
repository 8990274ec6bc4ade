/**
 * The file sink: JSON lines appended to a file, fsync'ed before a durable write
 * resolves (a write inside a transaction waits for the next durable one), rotated by size.
 *
 * Rotation renames the active file to `<name>-<seq>.<ext>` (seq counting up
 * from 1, zero-padded) and starts a new active file; the directory is fsync'ed
 * so a crash never loses a rotated file. A line a crash cut short at the end of the active file
 * is cut off when the sink opens it again (it was never confirmed), so the next record starts
 * on a line of its own.
 *
 * @module
 */

import { basename, dirname, extname, join } from "node:path";
import type { Sink, SinkStatus, WriteOptions } from "./types.ts";
import type { SinkRecord } from "../events.ts";
import { JsonRenderer, writeJsonLine } from "../formats/json.ts";
import { JsonWriter } from "../formats/json_writer.ts";
import { writeAll } from "./_io.ts";
import { type Logger, silentLogger } from "../ops/log.ts";

/** Options of {@linkcode FileSink}. */
export interface FileSinkOptions {
  path: string;
  /** Rotate once the active file would pass this size; `null` never rotates. */
  rotateBytes?: number | null;
  /** fsync before a write resolves (default true). */
  fsync?: boolean;
  /** Also write begin/commit lines. */
  transactions?: boolean;
  /** Renders values by their types; default the built-in types. */
  renderer?: JsonRenderer;
  /** Where the sink says what it repaired on open; default silent. */
  log?: Logger;
}

/** Appends JSON lines to a file. */
export class FileSink implements Sink {
  readonly name: string;
  readonly #options: Required<Omit<FileSinkOptions, "renderer" | "log">>;
  readonly #log: Logger;
  readonly #renderer: JsonRenderer;
  readonly #out = new JsonWriter();
  #file: Deno.FsFile | null = null;
  #size = 0;
  #sequence = 0;
  #written = 0;
  #lastError: string | undefined;
  /** Bytes were written to the active file since its last fsync. */
  #unsynced = false;
  #fsyncs = 0;
  #opened = false;
  /** An fsync failed: what was written may be gone, so nothing more is accepted. */
  #broken: string | null = null;

  constructor(options: FileSinkOptions) {
    this.#options = {
      rotateBytes: null,
      fsync: true,
      transactions: false,
      ...options,
    };
    this.name = `file:${options.path}`;
    this.#renderer = options.renderer ?? new JsonRenderer();
    this.#log = options.log ?? silentLogger;
  }

  async open(): Promise<void> {
    const path = this.#options.path;
    try {
      await Deno.mkdir(dirname(path), { recursive: true });
      this.#sequence = await this.#lastSequence();
    } catch (error) {
      throw cannotOpen(path, error);
    }
    await this.#openActive();
    await this.#cutTornLine();
    this.#opened = true;
  }

  /**
   * Cuts off a last line a crash left unfinished. A write resolves only after its last
   * newline, so nothing after the file's last newline was ever confirmed: it comes again
   * from the slot. Without the cut, the next record would continue that line.
   */
  async #cutTornLine(): Promise<void> {
    const path = this.#options.path;
    if (this.#size === 0) return;
    try {
      const end = await lastLineEnd(path, this.#size);
      if (end === this.#size) return;
      await this.#file!.truncate(end);
      if (this.#options.fsync) await this.#file!.sync();
      this.#log("warn", "File sink cut off a torn last line left by a crash", {
        path,
        bytes: this.#size - end,
        note: "it was never confirmed; its change comes again from the slot",
      });
      this.#size = end;
    } catch (error) {
      throw cannotOpen(path, error);
    }
  }

  /** Opens (or creates) the active file; a new file's directory entry is fsync'ed too. */
  async #openActive(): Promise<void> {
    const path = this.#options.path;
    try {
      this.#file = await Deno.open(path, { append: true, create: true });
      this.#size = (await this.#file.stat()).size;
      if (this.#size === 0 && this.#options.fsync) await syncDirectory(dirname(path));
    } catch (error) {
      throw cannotOpen(path, error);
    }
  }

  /** The highest rotation number already on disk, so a restart never overwrites one. */
  async #lastSequence(): Promise<number> {
    const path = this.#options.path;
    const extension = extname(path);
    const stem = basename(path, extension);
    const pattern = new RegExp(`^${escapeRegExp(stem)}-(\\d+)${escapeRegExp(extension)}$`);
    let highest = 0;
    for await (const entry of Deno.readDir(dirname(path))) {
      const match = pattern.exec(entry.name);
      if (match) highest = Math.max(highest, Number(match[1]));
    }
    return highest;
  }

  async write(records: readonly SinkRecord[], options?: WriteOptions): Promise<void> {
    const path = this.#options.path;
    if (!this.#opened) {
      throw new Error(`Cannot write to file sink "${path}": it is not open; call open() first`);
    }
    if (this.#broken !== null) throw new Error(this.#broken);
    const out = this.#out;
    out.reset();
    for (const record of records) {
      writeJsonLine(out, record, this.#options.transactions, this.#renderer);
    }
    try {
      // A rotation that failed half-way left no active file: open it again.
      if (this.#file === null) await this.#openActive();
      if (out.length > 0) {
        const bytes = out.bytes();
        const limit = this.#options.rotateBytes;
        if (limit !== null && this.#size > 0 && this.#size + bytes.byteLength > limit) {
          await this.#rotate();
        }
        await this.#append(bytes);
      }
      // Batches inside a transaction confirm nothing: the next durable write's fsync covers them.
      if (options?.durable !== false) await this.#sync();
      this.#written += records.length;
      this.#lastError = undefined;
    } catch (error) {
      if (error instanceof FsyncError) {
        this.#broken = this.#lastError = error.message;
        throw error; // not retriable: a second fsync can succeed after the data was dropped
      }
      this.#lastError = (error as Error).message;
      throw Object.assign(
        new Error(
          `Cannot write to file sink "${path}": ${this.#lastError}; check free space and permissions in "${
            dirname(path)
          }"`,
          { cause: error },
        ),
        { retriable: true },
      );
    }
  }

  /** Appends every byte; on failure the file is cut back, so a retry leaves no torn line. */
  async #append(bytes: Uint8Array): Promise<void> {
    const file = this.#file!;
    const start = this.#size;
    try {
      await writeAll(file, bytes);
    } catch (error) {
      await file.truncate(start).catch(() => {});
      throw error;
    }
    this.#size = start + bytes.byteLength;
    this.#unsynced = true;
  }

  async #sync(): Promise<void> {
    if (!this.#options.fsync || !this.#unsynced) return;
    try {
      await this.#file!.sync();
    } catch (error) {
      throw new FsyncError(
        `File sink "${this.#options.path}" cannot make its writes durable: fsync failed (${
          (error as Error).message
        }); the pipeline stops without confirming them and a restart sends them again from the slot; check the disk`,
        { cause: error },
      );
    }
    this.#fsyncs++;
    this.#unsynced = false;
  }

  async #rotate(): Promise<void> {
    const path = this.#options.path;
    const extension = extname(path);
    const stem = basename(path, extension);
    // The rotated file must hold everything written to it, durable or not yet.
    await this.#sync();
    this.#file?.close();
    this.#file = null;
    this.#sequence++;
    const rotated = join(
      dirname(path),
      `${stem}-${String(this.#sequence).padStart(6, "0")}${extension}`,
    );
    await Deno.rename(path, rotated);
    // The new (empty) active file fsyncs the directory, which makes the rename durable too.
    await this.#openActive();
  }

  async close(): Promise<void> {
    this.#opened = false;
    const file = this.#file;
    if (file === null) return;
    try {
      await this.#sync();
    } finally {
      file.close();
      this.#file = null;
    }
  }

  /** fsync calls on data files so far (a non-durable write makes none). */
  get fsyncs(): number {
    return this.#fsyncs;
  }

  status(): SinkStatus {
    return {
      state: this.#lastError === undefined ? "ok" : "failing",
      written: this.#written,
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
    };
  }
}

/** An fsync failed: the sink cannot say what is durable any more. */
class FsyncError extends Error {}

function cannotOpen(path: string, error: unknown): Error {
  return new Error(
    `Cannot open file sink "${path}": ${
      (error as Error).message
    }; check that the directory is writable`,
    { cause: error },
  );
}

/** The offset just past the last newline in the first `size` bytes of `path` (0 for none). */
async function lastLineEnd(path: string, size: number): Promise<number> {
  const file = await Deno.open(path, { read: true });
  try {
    const chunk = new Uint8Array(64 * 1024);
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - chunk.byteLength);
      const view = chunk.subarray(0, end - start);
      await file.seek(start, Deno.SeekMode.Start);
      let filled = 0;
      while (filled < view.byteLength) {
        const read = await file.read(view.subarray(filled));
        if (read === null) break;
        filled += read;
      }
      const newline = view.subarray(0, filled).lastIndexOf(0x0a);
      if (newline !== -1) return start + newline + 1;
      end = start;
    }
    return 0;
  } finally {
    file.close();
  }
}

/** fsync of a directory, so renames and new files in it survive a crash. */
async function syncDirectory(path: string): Promise<void> {
  const directory = await Deno.open(path, { read: true });
  try {
    await directory.sync();
  } finally {
    directory.close();
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
