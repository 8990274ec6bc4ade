import { Buffer } from "node:buffer";
import * as net from "node:net";
import * as tls from "node:tls";
import { ConnectionError } from "../errors.ts";
import type { SslMode } from "./connection_string.ts";

/**
 * A byte stream over TCP or TLS with pull-based reads. When more than
 * `highWaterBytes` are buffered unread, the socket is paused, so the server's
 * writes block instead of our memory growing.
 */
export class Transport {
  #socket: net.Socket;
  #chunks: Uint8Array[] = [];
  #queuedBytes = 0;
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
    socket.on("data", (chunk: Buffer) => {
      this.#chunks.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.#queuedBytes += chunk.byteLength;
      if (this.#queuedBytes > this.highWaterBytes && !this.#paused) {
        this.#paused = true;
        socket.pause();
      }
      if (this.#holdMs > 0 && chunk.byteLength < HOLD_BELOW_BYTES && !this.#held) {
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
      const chunk = this.#chunks.shift();
      if (chunk !== undefined) {
        this.#queuedBytes -= chunk.byteLength;
        if (this.#paused && this.#queuedBytes <= this.highWaterBytes / 2) {
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
    return this.#chunks.length > 0;
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
    if (this.#chunks.length > 0) {
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
