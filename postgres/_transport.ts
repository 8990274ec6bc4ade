import { Buffer } from "node:buffer";
import * as net from "node:net";
import * as tls from "node:tls";
import { ConnectionError } from "../errors.ts";
import type { SslMode } from "./connection_string.ts";

/**
 * A byte stream over TCP or TLS with pull-based reads. When more than
 * `highWaterBytes` are buffered unread, the socket is paused, so the server's
 * writes block instead of our memory growing.
 *
 * What the socket reads is copied into buffers of {@linkcode READ_BUFFER_BYTES} that the
 * transport owns, and the socket's own buffer is let go of at once (detached): left to the
 * garbage collector, dead socket reads pile up in the C heap until V8 collects their
 * wrappers, tens of megabytes under load. The chunks handed out are views into the
 * transport's buffers; a reader that says when it is done with what it read
 * ({@linkcode Transport.release}) gets those buffers back for later reads.
 */
export class Transport {
  #socket: net.Socket;
  /** Chunks not yet read; the first `#chunkHead` are taken. */
  #chunks: Uint8Array[] = [];
  #chunkHead = 0;
  #waiter: (() => void) | null = null;
  #ended = false;
  #error: Error | null = null;
  #paused = false;
  /** See {@linkcode Transport.holdSmallReads}. */
  #holdMs = 0;
  #holdTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  readonly highWaterBytes: number;
  /**
   * Bytes written and not yet taken by the socket (a server that does not read makes them
   * pile up); a write beyond this many fails instead of growing memory.
   */
  readonly maxPendingWriteBytes: number = 1 << 20;
  /** DER of the server certificate, when TLS is up. */
  peerCertificate?: Uint8Array;
  encrypted = false;
  /** The buffer reads are copied into, and how much of it is filled. */
  #current: Uint8Array | null = null;
  #currentUsed = 0;
  /**
   * Buffers filled before `#current` that a reader may still view, oldest first, with the
   * position their bytes end at (kept once a reader releases; see `release`).
   */
  #filled: { bytes: Uint8Array; end: number }[] = [];
  #free: Uint8Array[] = [];
  /** Bytes received since the connection opened (those not yet `#taken` wait to be read). */
  #received = 0;
  /** Bytes handed out by {@linkcode Transport.read}. */
  #taken = 0;
  #recycle = false;
  /** Buffers made for reads so far (the rest of the reads went into released ones). */
  buffersAllocated = 0;

  private constructor(socket: net.Socket, highWaterBytes: number) {
    this.#socket = socket;
    this.highWaterBytes = highWaterBytes;
    this.#attach(socket);
  }

  static async connect(
    host: string,
    port: number,
    options: { timeoutMs?: number; highWaterBytes?: number } = {},
  ): Promise<Transport> {
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    await waitForEvent(socket, "connect", options.timeoutMs ?? 10_000, `${host}:${port}`);
    return new Transport(socket, options.highWaterBytes ?? 4 << 20);
  }

  #attach(socket: net.Socket): void {
    socket.on("data", (data: Buffer) => {
      const n = data.byteLength; // before #keep, which detaches `data`
      this.#keep(data);
      if (this.#received - this.#taken > this.highWaterBytes && !this.#paused) {
        this.#paused = true;
        socket.pause();
      }
      if (this.#holdMs > 0 && n < HOLD_BELOW_BYTES && !this.#held) {
        socket.pause();
        this.#holdTimer = setTimeout(() => this.#endHold(), this.#holdMs);
      }
      this.#wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on("error", (error: Error) => {
      this.#error = error;
      this.#wake();
    });
  }

  /**
   * Copies `data` into the transport's buffers, as chunks to read (more than one when it does
   * not fit the current buffer: TLS hands out reads of megabytes), and lets go of `data`'s
   * memory.
   */
  #keep(data: Uint8Array): void {
    const n = data.byteLength;
    for (let from = 0; from < n;) {
      let current = this.#current;
      if (current === null || current.byteLength === this.#currentUsed) {
        // Without a reader that releases, a buffer is forgotten once full (and freed by the
        // garbage collector with the last chunk that views it).
        if (current !== null && this.#recycle) {
          this.#filled.push({ bytes: current, end: this.#received });
        }
        current = this.#free.pop() ?? null;
        if (current === null) {
          current = new Uint8Array(READ_BUFFER_BYTES);
          this.buffersAllocated++;
        }
        this.#current = current;
        this.#currentUsed = 0;
      }
      const at = this.#currentUsed;
      const taken = Math.min(n - from, current.byteLength - at);
      current.set(data.subarray(from, from + taken), at);
      this.#currentUsed = at + taken;
      this.#received += taken;
      from += taken;
      append(this.#chunks, this.#chunkHead, current.subarray(at, at + taken));
    }
    // A socket read is a buffer of its own (checked: never a slice of a shared pool), which
    // nothing reads after its 'data' event; detached, its memory is freed now. (Were a Deno
    // to hand out its own read buffer, detaching it would break the next read: the
    // transport's tests read megabytes in full-size reads.)
    const buffer = data.buffer;
    if (data.byteOffset === 0 && buffer.byteLength === n && buffer instanceof ArrayBuffer) {
      buffer.transfer(0);
    }
  }

  /** Buffers kept for reuse: filled ones a reader has not released yet, and spare ones. */
  get buffersKept(): number {
    return this.#filled.length + this.#free.length;
  }

  /**
   * Ends what {@linkcode Transport.release} began: buffers are no longer reused, and those
   * kept for it are left to the garbage collector with the last chunk that views them. For a
   * connection whose reader that released is done (a replication stream that ended), so that
   * a later reader that does not release pins nothing.
   */
  endReuse(): void {
    this.#recycle = false;
    this.#filled.length = 0;
    this.#free.length = 0;
  }

  /**
   * Bytes handed out by {@linkcode Transport.read} so far: a chunk just read spans
   * `[position - chunk.byteLength, position)`.
   */
  get position(): number {
    return this.#taken;
  }

  /**
   * Says that the chunks read so far are done with below `position` (a
   * {@linkcode Transport.position} of before): no view into them is used any more, so the
   * buffers they are in are written over by later reads. From the first call on, a reader
   * must keep this promise for everything it reads; without a call, buffers are never
   * reused.
   */
  release(position: number): void {
    this.#recycle = true;
    const filled = this.#filled;
    while (filled.length > 0 && filled[0]!.end <= position) {
      const { bytes } = filled.shift()!;
      if (this.#free.length < MAX_FREE_BUFFERS) {
        // A view kept past its release reads this, which fails to decode, rather than
        // another message's bytes.
        bytes.fill(POISON);
        this.#free.push(bytes);
      } else {
        // Freed now rather than by a collection (a view kept past its release reads nothing).
        (bytes.buffer as ArrayBuffer).transfer(0);
      }
    }
  }

  get #held(): boolean {
    return this.#holdTimer !== undefined;
  }

  #endHold(): void {
    clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    if (!this.#paused) this.#socket.resume();
  }

  /** The hold set by {@linkcode Transport.holdSmallReads} (0: none). */
  get holdMs(): number {
    return this.#holdMs;
  }

  /**
   * While `ms` > 0, a read that brought less than 32 KiB pauses the socket for `ms`, so that
   * what a server sends in small pieces waits in the kernel and comes in fewer, larger reads
   * (each read wakes the event loop and costs a syscall, a buffer and a parse; a walsender
   * streaming a big transaction as it decodes sends a kilobyte every ~120 µs). The socket's
   * stream still reads up to its high-water mark (16 KiB) while paused; what it holds comes out
   * at the end of the hold, the first small piece starting the next one. So at most one small
   * read is handed on per `ms`, and a read of 32 KiB or more is never held: a sender faster
   * than 32 KiB per hold is not slowed by it. For data nobody waits for piece by piece, such as
   * a streamed transaction's changes before its commit, or the rest of a big transaction; 0 ends
   * a hold and reads as soon as anything arrives.
   */
  holdSmallReads(ms: number): void {
    this.#holdMs = ms;
    if (ms === 0 && this.#held) this.#endHold();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }

  /** The next chunk, or `null` at end of stream. */
  async read(): Promise<Uint8Array | null> {
    for (;;) {
      if (this.#chunkHead < this.#chunks.length) {
        const chunks = this.#chunks;
        const chunk = chunks[this.#chunkHead]!;
        chunks[this.#chunkHead++] = EMPTY;
        if (this.#chunkHead === chunks.length) {
          chunks.length = 0;
          this.#chunkHead = 0;
        } else if (this.#chunkHead >= 1024 && this.#chunkHead * 2 > chunks.length) {
          // A backlog that never drains whole: the taken slots go all the same.
          chunks.splice(0, this.#chunkHead);
          this.#chunkHead = 0;
        }
        this.#taken += chunk.byteLength;
        if (this.#paused && this.#received - this.#taken <= this.highWaterBytes / 2) {
          this.#paused = false;
          if (!this.#held) this.#socket.resume();
        }
        return chunk;
      }
      if (this.#error !== null) {
        throw new ConnectionError(`Connection to the server failed: ${this.#error.message}`, {
          cause: this.#error,
        });
      }
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#waiter = resolve);
    }
  }

  /** True when chunks are waiting to be read. */
  get hasBuffered(): boolean {
    return this.#chunkHead < this.#chunks.length;
  }

  /** Bytes written that the socket has not handed to the operating system yet. */
  get pendingWriteBytes(): number {
    return this.#socket.writableLength;
  }

  /**
   * Writes `bytes`; resolves once the socket took them. Fails when the connection is closed,
   * or when more than {@linkcode Transport.maxPendingWriteBytes} would wait: the server has
   * stopped reading what it is sent.
   */
  write(bytes: Uint8Array): Promise<void> {
    if (this.#error !== null || this.#socket.destroyed) {
      return Promise.reject(
        new ConnectionError("Cannot write to the server: the connection is closed"),
      );
    }
    const pending = this.#socket.writableLength;
    if (pending > 0 && pending + bytes.byteLength > this.maxPendingWriteBytes) {
      return Promise.reject(
        new ConnectionError(
          `Cannot write to the server: ${pending} bytes written before are still waiting for it to read them; it has stopped reading`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (error?: Error | null) => {
        if (error) {
          reject(
            new ConnectionError(`Cannot write to the server: ${error.message}`, { cause: error }),
          );
        } else resolve();
      });
    });
  }

  /**
   * Upgrades to TLS after the server answered 'S' to SSLRequest. Bytes the server
   * sent before the handshake would be a buffer-stuffing attack: refuse them.
   */
  async startTls(
    options: { host: string; mode: SslMode; ca?: string; timeoutMs?: number },
  ): Promise<void> {
    if (this.hasBuffered) {
      throw new ConnectionError(
        "Refusing TLS: the server sent unencrypted bytes after accepting SSLRequest",
        { retriable: false },
      );
    }
    const plain = this.#socket;
    plain.removeAllListeners("data");
    plain.removeAllListeners("end");
    plain.removeAllListeners("close");
    plain.removeAllListeners("error");
    const verify = options.mode === "verify-ca" || options.mode === "verify-full";
    const secure = tls.connect({
      socket: plain,
      servername: net.isIP(options.host) ? undefined : options.host,
      ca: options.ca,
      rejectUnauthorized: verify,
      // Against the host the caller named: an IP address is checked against the
      // certificate's IP SANs (node would check "localhost" when no servername is sent).
      checkServerIdentity: options.mode === "verify-full"
        ? (_servername: string, cert: tls.PeerCertificate) =>
          tls.checkServerIdentity(options.host, cert)
        : () => undefined,
    });
    try {
      await waitForEvent(secure, "secureConnect", options.timeoutMs ?? 10_000, options.host);
    } catch (error) {
      secure.destroy();
      throw new ConnectionError(
        `TLS handshake with ${options.host} failed (sslmode=${options.mode}): ${
          (error as Error).message
        }`,
        { cause: error, retriable: false },
      );
    }
    this.#socket = secure;
    this.encrypted = true;
    const raw = secure.getPeerCertificate()?.raw;
    if (raw) this.peerCertificate = new Uint8Array(raw);
    this.#attach(secure);
  }

  close(): void {
    clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    this.#socket.destroy();
    this.#ended = true;
    this.#wake();
  }
}

/**
 * Appends `chunk` to `chunks` (whose first `head` are taken), as part of the last one when
 * it directly follows it in the same buffer and both come to at most
 * {@linkcode MERGED_CHUNK_BYTES}: small reads the reader has not kept up with are handed out
 * as one.
 */
function append(chunks: Uint8Array[], head: number, chunk: Uint8Array): void {
  const last = chunks.length > head ? chunks[chunks.length - 1]! : null;
  if (
    last !== null && last.buffer === chunk.buffer &&
    last.byteOffset + last.byteLength === chunk.byteOffset &&
    last.byteLength + chunk.byteLength <= MERGED_CHUNK_BYTES
  ) {
    chunks[chunks.length - 1] = new Uint8Array(
      last.buffer,
      last.byteOffset,
      last.byteLength + chunk.byteLength,
    );
  } else chunks.push(chunk);
}

/** The size of the buffers socket reads are copied into. */
const READ_BUFFER_BYTES = 256 << 10;
/**
 * The most a merged chunk holds: a chunk is parsed at once, and its messages go to the
 * stream's queue together, whose bound is checked between chunks.
 */
const MERGED_CHUNK_BYTES = 64 << 10;
/** Released buffers kept for reuse; more are left to the garbage collector. */
const MAX_FREE_BUFFERS = 8;
const EMPTY = new Uint8Array(0);
/** What a released buffer holds until written into again. */
const POISON = 0xee;

/** A read smaller than this is "small" for {@linkcode Transport.holdSmallReads}. */
const HOLD_BELOW_BYTES = 32 << 10;

function waitForEvent(
  emitter: net.Socket,
  event: string,
  timeoutMs: number,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      emitter.destroy();
      reject(new ConnectionError(`Timed out after ${timeoutMs} ms connecting to ${what}`));
    }, timeoutMs);
    const onEvent = () => {
      cleanup();
      resolve();
    };
    const onError = (error: Error) => {
      cleanup();
      reject(new ConnectionError(`Cannot connect to ${what}: ${error.message}`, { cause: error }));
    };
    const cleanup = () => {
      clearTimeout(timer);
      emitter.off(event, onEvent);
      emitter.off("error", onError);
    };
    emitter.once(event, onEvent);
    emitter.once("error", onError);
  });
}
