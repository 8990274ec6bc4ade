/**
 * Holds the raw pgoutput messages of a streamed transaction until its Stream
 * Commit, compactly, and spills them to a file beyond a memory budget.
 *
 * Streamed transactions are the big ones: the server streams a transaction
 * once its changes pass `logical_decoding_work_mem`. Keeping them decoded (one
 * object per change) costs ~10× the wire size and grows without bound; here each
 * message costs its bytes plus a 16-byte header, in 1 MiB chunks, and chunks
 * beyond the budget go to disk. Decoding happens once, at commit, as the
 * transaction is handed on.
 *
 * Entry layout in a chunk: `UInt32 length, UInt32 subXid, UInt64 walStart, Byte[length]`.
 *
 * @module
 */

import type { Lsn } from "../decoder/lsn.ts";

const CHUNK_BYTES = 1 << 20;
const HEADER_BYTES = 16;

/**
 * The default budget (16 MB, as `spill.memory_limit`): beyond it a streamed transaction goes to
 * disk. Its chunks come from the C allocator, which keeps what it once held: a 64 MB budget held
 * 99 MB there on a 5,000,000-row transaction, 16 MB held 50 MB, at the same throughput.
 */
export const DEFAULT_SPILL_BYTES = 16_000_000;

/** A memory budget shared by every open streamed transaction of one source. */
export class SpillBudget {
  readonly limitBytes: number;
  readonly dir: string | null;
  /** Bytes held in memory now, across buffers. */
  usedBytes = 0;
  /** Bytes written to spill files so far (a counter, for metrics). */
  spilledBytes = 0;

  constructor(options: { limitBytes: number; dir?: string | null }) {
    this.limitBytes = options.limitBytes;
    this.dir = options.dir ?? null;
  }
}

/**
 * One raw message of a streamed transaction. From {@linkcode StreamedBuffer.messages},
 * `bytes` is valid until the next message is asked for.
 */
export interface BufferedMessage {
  walStart: Lsn;
  bytes: Uint8Array;
}

/**
 * The messages of one streamed transaction, in arrival order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SpillBudget, StreamedBuffer } from "./spill.ts";
 * import type { Lsn } from "../decoder/lsn.ts";
 * const buffer = new StreamedBuffer(new SpillBudget({ limitBytes: 1 << 20 }));
 * buffer.push(16n as Lsn, 7, new Uint8Array([1, 2]));
 * buffer.push(32n as Lsn, 8, new Uint8Array([3]));
 * buffer.abortSubtransaction(8);
 * assert.deepEqual(Array.from(buffer.messages(), (m) => [...m.bytes]), [[1, 2]]);
 * buffer.dispose();
 * ```
 */
export class StreamedBuffer {
  readonly #budget: SpillBudget;
  /** Chunks still in memory, with the bytes used in each; the last one is being filled. */
  #chunks: { bytes: Uint8Array; view: DataView; used: number }[] = [];
  /**
   * Chunks already written to the spill file, to fill again: a transaction that spills takes
   * no new memory for each chunk (1 MiB chunks left behind were garbage outside V8's heap, and
   * the C allocator kept what it once held).
   */
  #free: Uint8Array[] = [];
  #aborted = new Set<number>();
  #spillFile: Deno.FsFile | null = null;
  #spillPath: string | null = null;
  #spilledBytes = 0;
  #heldBytes = 0;
  count = 0;
  /** Chunks allocated so far (the rest were filled again after spilling). */
  chunksAllocated = 0;

  constructor(budget: SpillBudget) {
    this.#budget = budget;
  }

  /** Bytes written to this buffer's spill file. */
  get spilledBytes(): number {
    return this.#spilledBytes;
  }

  /** Copies one message in. */
  push(walStart: Lsn, subXid: number, bytes: Uint8Array): void {
    const size = HEADER_BYTES + bytes.byteLength;
    let chunk = this.#chunks[this.#chunks.length - 1];
    if (chunk === undefined || chunk.used + size > chunk.bytes.byteLength) {
      if (chunk !== undefined) this.#spillIfOverBudget();
      let bytes = size <= CHUNK_BYTES ? this.#free.pop() : undefined;
      if (bytes === undefined) {
        bytes = new Uint8Array(Math.max(CHUNK_BYTES, size));
        this.chunksAllocated++;
      }
      // One view per chunk, not one per message (the receiving of a streamed change).
      chunk = {
        bytes,
        view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        used: 0,
      };
      this.#chunks.push(chunk);
      this.#hold(chunk.bytes.byteLength);
    }
    const view = chunk.view;
    view.setUint32(chunk.used, bytes.byteLength);
    view.setUint32(chunk.used + 4, subXid);
    view.setBigUint64(chunk.used + 8, walStart);
    chunk.bytes.set(bytes, chunk.used + HEADER_BYTES);
    chunk.used += size;
    this.count++;
  }

  /** Drops the messages of a rolled-back subtransaction (applied when read). */
  abortSubtransaction(subXid: number): void {
    this.#aborted.add(subXid);
  }

  #hold(bytes: number): void {
    this.#heldBytes += bytes;
    this.#budget.usedBytes += bytes;
  }

  /** Called when the newest chunk is full: over budget, every full chunk goes to disk, in order. */
  #spillIfOverBudget(): void {
    const budget = this.#budget;
    if (budget.usedBytes <= budget.limitBytes) return;
    const file = this.#spillFile ?? this.#openSpill();
    for (const chunk of this.#chunks) {
      try {
        writeAllSync(file, chunk.bytes.subarray(0, chunk.used));
      } catch (error) {
        throw this.#spillError(error);
      }
      this.#spilledBytes += chunk.used;
      budget.spilledBytes += chunk.used;
      this.#heldBytes -= chunk.bytes.byteLength;
      budget.usedBytes -= chunk.bytes.byteLength;
      // Written out synchronously, and nothing was handed out of it (messages() comes after
      // the last push): it can be filled again, as many as the budget holds, and one more.
      if (
        chunk.bytes.byteLength === CHUNK_BYTES &&
        this.#free.length * CHUNK_BYTES <= budget.limitBytes
      ) {
        this.#free.push(chunk.bytes);
      }
    }
    this.#chunks = [];
  }

  #openSpill(): Deno.FsFile {
    const dir = this.#budget.dir ?? undefined;
    try {
      if (dir !== undefined) Deno.mkdirSync(dir, { recursive: true });
      this.#spillPath = Deno.makeTempFileSync({
        dir,
        prefix: "spillway-stream-",
        suffix: ".spill",
      });
      this.#spillFile = Deno.openSync(this.#spillPath, { read: true, write: true });
    } catch (error) {
      throw this.#spillError(error);
    }
    return this.#spillFile;
  }

  #spillError(error: unknown): Error {
    const where = this.#budget.dir ?? "the system temp directory";
    return new Error(
      `Cannot spill a streamed transaction to ${where}: ${
        (error as Error).message
      }; set spill.dir to a writable directory with free space, or raise spill.memory_limit`,
      { cause: error },
    );
  }

  /**
   * Every message not rolled back, in order: the spilled ones first, then those in memory.
   * A message's bytes are valid until the next is asked for (see `#fromFile`).
   */
  *messages(): Generator<BufferedMessage> {
    if (this.#spillFile !== null) {
      this.#spillFile.seekSync(0, Deno.SeekMode.Start);
      yield* this.#fromFile(this.#spillFile);
    }
    for (const chunk of this.#chunks) yield* this.#fromChunk(chunk.bytes, chunk.view, chunk.used);
  }

  *#fromChunk(chunk: Uint8Array, view: DataView, end: number): Generator<BufferedMessage> {
    let offset = 0;
    while (offset + HEADER_BYTES <= end) {
      const length = view.getUint32(offset);
      const subXid = view.getUint32(offset + 4);
      const walStart = view.getBigUint64(offset + 8) as Lsn;
      const start = offset + HEADER_BYTES;
      offset = start + length;
      if (!this.#aborted.has(subXid)) {
        yield { walStart, bytes: chunk.subarray(start, start + length) };
      }
    }
  }

  /**
   * Reads the spill file in blocks of at least a chunk and cuts the entries out of
   * them (a read per header and per body would cost two syscalls per message). The block
   * is read into again once its entries are used up, so a view handed out is valid until
   * the next is asked for (the assembler decodes each before): a new block per chunk would
   * leave hundreds of megabytes to the garbage collector on a big transaction.
   */
  *#fromFile(file: Deno.FsFile): Generator<BufferedMessage> {
    let block = new Uint8Array(0);
    // One view per block, not per entry (two per entry were most of what the replay allocated).
    let view = new DataView(block.buffer);
    let start = 0;
    let end = 0;
    for (;;) {
      let need = HEADER_BYTES;
      if (end - start >= HEADER_BYTES) need += view.getUint32(block.byteOffset + start);
      if (end - start < need) {
        if (need <= block.byteLength) {
          block.copyWithin(0, start, end); // the rest of an entry, to the front
        } else {
          const next = new Uint8Array(Math.max(CHUNK_BYTES, need));
          next.set(block.subarray(start, end));
          block = next;
          view = new DataView(block.buffer);
        }
        end -= start;
        start = 0;
        while (end < need) {
          const n = file.readSync(block.subarray(end));
          if (n === null || n === 0) {
            if (end === 0) return; // every entry read
            // A transaction delivered in part would be lost in part: stop instead.
            throw new Error(
              `Cannot replay a streamed transaction from spill file "${this.#spillPath}": it ends inside a change (${end} of ${need} bytes); nothing of the transaction is confirmed, so a restart receives it again; check the disk of spill.dir`,
            );
          }
          end += n;
        }
        continue; // the header may only now be complete: measure again
      }
      const at = block.byteOffset + start;
      const length = view.getUint32(at);
      const subXid = view.getUint32(at + 4);
      const walStart = view.getBigUint64(at + 8) as Lsn;
      const body = start + HEADER_BYTES;
      start = body + length;
      if (!this.#aborted.has(subXid)) yield { walStart, bytes: block.subarray(body, start) };
    }
  }

  /** Frees memory and deletes the spill file. */
  dispose(): void {
    this.#budget.usedBytes -= this.#heldBytes;
    this.#heldBytes = 0;
    this.#chunks = [];
    this.#free = [];
    if (this.#spillFile !== null) {
      this.#spillFile.close();
      this.#spillFile = null;
    }
    if (this.#spillPath !== null) {
      try {
        Deno.removeSync(this.#spillPath);
      } catch {
        // Already gone: nothing to clean up.
      }
      this.#spillPath = null;
    }
  }
}

function writeAllSync(file: Deno.FsFile, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.byteLength) offset += file.writeSync(bytes.subarray(offset));
}
