/**
 * The CopyBoth phase of a logical walsender connection: XLogData in batches,
 * keepalives answered, standby status updates on a timer.
 *
 * Flow control: the stream reads from the socket only while fewer than
 * `maxBufferedBytes` of XLogData wait to be taken. While paused it keeps sending
 * status updates on its timer, so the walsender (blocked writing to us) never
 * reaches `wal_sender_timeout`.
 *
 * @module
 */

import {
  backendMessageName,
  type Frame,
  type FrameParser,
  parseNotice,
} from "../decoder/backend.ts";
import { BackendCode, ReplicationCode } from "../decoder/codes.ts";
import { ConnectionError } from "../errors.ts";
import { type Lsn, LSN_ZERO, unixMicrosToPgMicros } from "../decoder/lsn.ts";
import {
  encodeStandbyStatus,
  parseCopyData,
  parseXLogData,
  type PrimaryKeepalive,
  type XLogData,
} from "../decoder/replication.ts";
import type { Transport } from "./_transport.ts";
import type { ConnectOptions } from "./connection_string.ts";
import { explain } from "./explain.ts";

/**
 * What a {@linkcode ReplicationStream} needs from its connection (a `PgConnection`, which
 * passes itself once the server answers START_REPLICATION with CopyBothResponse).
 */
export interface CopyBothHost {
  /** Who is connected where: named in server errors; receives server notices. */
  readonly options: Pick<ConnectOptions, "user" | "database" | "host" | "onNotice">;
  /** True once the connection is closed. */
  readonly closed: boolean;
  /** The socket and the frame parser holding any bytes already read past CopyBothResponse. */
  readonly wire: { transport: Transport; parser: FrameParser };
  /** Frames already parsed but not yet handled. */
  takeBufferedFrames(): Frame[];
  /** Sends raw bytes. */
  send(bytes: Uint8Array): Promise<void>;
  /** Sends CopyDone. */
  sendCopyDone(): Promise<void>;
  /** Marks the connection closed after the stream saw the socket end. */
  markClosed(): void;
  /** Closes the socket without a goodbye. */
  destroy(): void;
}

/** Options of a {@linkcode ReplicationStream}. */
export interface ReplicationStreamOptions {
  /** Status update period (default 10 s). Keep it well under the server's wal_sender_timeout. */
  statusIntervalMs?: number;
  /**
   * A confirm that moves the flush position is sent this soon (default 100 ms), coalesced
   * with the ones that follow; so a crash re-delivers little more than what was in flight.
   * The status interval stays the keepalive of an idle stream.
   */
  confirmDelayMs?: number;
  /**
   * A server silent this long (nothing read while reading) is presumed gone, as a standby's
   * `wal_receiver_timeout`: at half of it a status update asks for a reply, and at all of it
   * the stream fails with a retriable ConnectionError (the source reconnects). Default 60 s;
   * 0 never times out.
   */
  receiveTimeoutMs?: number;
  /** Stop reading the socket while this many XLogData bytes wait to be taken (default 8 MiB). */
  maxBufferedBytes?: number;
  /**
   * The bytes of a batch from {@linkcode ReplicationStream.nextBatch} are read over once the
   * next batch is asked for: the socket's read buffers are reused, not left to the garbage
   * collector. For a consumer that is done with a batch (decoded it, or copied what it keeps)
   * before it asks for the next one. Default false: a batch's bytes stay as they are.
   */
  reuseReadBuffers?: boolean;
  /**
   * When idle (everything delivered is confirmed), advance the flush position to the
   * keepalive's walEnd so the slot does not pin WAL written for other databases. Default true.
   */
  confirmKeepaliveWhenIdle?: boolean;
  /**
   * Asked before a keepalive advances the flush position: false while the consumer
   * holds a transaction that is open (e.g. streamed but not yet committed).
   */
  isIdle?: () => boolean;
  /** Client clock in µs since the Unix epoch; tests pass their own. */
  now?: () => bigint;
  /**
   * Holds back the flush position sent to the server until someone (a pipeline's state
   * file) has recorded it: what is sent is at most `allowed`, and a higher position is
   * passed to `want` first. Default: none.
   */
  flushGate?: FlushGate | null;
}

/** See {@linkcode ReplicationStreamOptions.flushGate}. */
export interface FlushGate {
  /** The highest flush position that may be sent now. */
  readonly allowed: Lsn;
  /** Asks for `position` to be allowed; the caller sends a status update once it is. */
  want(position: Lsn): void;
}

/**
 * A stream of XLogData batches. Iterate it with `for await`; call
 * {@linkcode confirm} with a Commit's `endLsn` once the transaction is durable.
 */
export class ReplicationStream implements AsyncIterable<XLogData[]> {
  readonly #connection: CopyBothHost;
  readonly #transport: Transport;
  readonly #parser: FrameParser;
  readonly #release: () => void;
  readonly #options: Required<ReplicationStreamOptions>;
  #queue: XLogData[] = [];
  #queuedBytes = 0;
  /**
   * The transport's position where the chunk of the oldest queued XLogData began (see
   * `reuseReadBuffers`); set by the first message into an empty queue.
   */
  #queueFrom = 0;
  /** The transport's position where the chunk whose frames are being handled began. */
  #chunkFrom = 0;
  /**
   * The transport's position up to which every chunk read has been parsed and its frames
   * handled. A chunk the transport has handed out may still wait to be: the read loop takes
   * it up a turn later.
   */
  #handledTo = 0;
  #consumerWaiter: (() => void) | null = null;
  #readerWaiter: (() => void) | null = null;
  #error: Error | null = null;
  #ended = false;
  #stopping = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The status update being written; see `#sendStatus`. */
  #statusSending: Promise<void> | null = null;
  #statusAgain = false;
  /** A status update asked the server for a reply; sent with the next one written. */
  #replyWanted = false;
  /** Nothing read since then (ms since the epoch); see `receiveTimeoutMs`. */
  #lastReceivedAt = Date.now();
  /** The receive timeout's reply request was sent for this silence. */
  #pinged = false;
  /** The status update a confirm asked for, while it waits to be sent. */
  #confirmTimer: ReturnType<typeof setTimeout> | undefined;
  #readLoop: Promise<void>;
  #written: Lsn = LSN_ZERO;
  #flushed: Lsn = LSN_ZERO;
  #lastDelivered: Lsn = LSN_ZERO;
  #serverWalEnd: Lsn = LSN_ZERO;
  #lastStatusAt = 0;
  #copyDoneReceived = false;
  #copyDoneSent = false;
  #statusUpdatesSent = 0;
  #keepalivesReceived = 0;
  #bytesReceived = 0;

  /** @internal Made by `PgConnection.startReplication`. */
  constructor(connection: CopyBothHost, options: ReplicationStreamOptions, release: () => void) {
    this.#connection = connection;
    const wire = connection.wire;
    this.#transport = wire.transport;
    this.#parser = wire.parser;
    this.#release = release;
    this.#options = {
      statusIntervalMs: options.statusIntervalMs ?? 10_000,
      confirmDelayMs: options.confirmDelayMs ?? 100,
      receiveTimeoutMs: options.receiveTimeoutMs ?? 60_000,
      maxBufferedBytes: options.maxBufferedBytes ?? 8 << 20,
      reuseReadBuffers: options.reuseReadBuffers ?? false,
      confirmKeepaliveWhenIdle: options.confirmKeepaliveWhenIdle ?? true,
      isIdle: options.isIdle ?? (() => true),
      now: options.now ?? (() => BigInt(Date.now()) * 1000n),
      flushGate: options.flushGate ?? null,
    };
    const receiveTimeout = this.#options.receiveTimeoutMs;
    const period = Math.min(
      this.#options.statusIntervalMs / 2,
      receiveTimeout > 0 ? receiveTimeout / 4 : Infinity,
    );
    this.#timer = setInterval(() => this.#tick(), Math.max(50, Math.floor(period)));
    // The frames the connection parsed ahead are handled first, and count as at position 0.
    this.#handledTo = this.#transport.position;
    this.#readLoop = this.#run(connection.takeBufferedFrames());
  }

  /** The timer's work: the receive timeout, then the periodic status update. */
  #tick(): void {
    const now = Date.now();
    const timeout = this.#options.receiveTimeoutMs;
    if (timeout > 0 && !this.#stopping) {
      // While reading is paused for the consumer, the silence is ours, not the server's.
      if (this.#queuedBytes >= this.#options.maxBufferedBytes) this.#lastReceivedAt = now;
      const silentMs = now - this.#lastReceivedAt;
      if (silentMs >= timeout) {
        this.#fail(
          new ConnectionError(
            `No data from the server for ${silentMs} ms (the receive timeout is ${timeout} ms): the connection is presumed dead, so it is dropped and made again`,
          ),
        );
        this.#connection.destroy();
        return;
      }
      if (silentMs >= timeout / 2 && !this.#pinged) {
        this.#pinged = true;
        this.#sendStatus(true).catch((error) => this.#fail(error));
        return;
      }
    }
    if (now - this.#lastStatusAt >= this.#options.statusIntervalMs / 2) {
      this.#sendStatus(false).catch((error) => this.#fail(error));
    }
  }

  /** The flush position last sent to the server (the slot's confirmed position). */
  get flushedLsn(): Lsn {
    return this.#flushed;
  }

  /** The newest WAL position the server reported. */
  get serverWalEnd(): Lsn {
    return this.#serverWalEnd;
  }

  /** The newest position received (the write position). */
  get receivedLsn(): Lsn {
    return this.#written;
  }

  /** True while the socket is not being read because the consumer is behind. */
  get paused(): boolean {
    return this.#readerWaiter !== null;
  }

  /** Counters for tests and metrics. */
  get stats(): {
    statusUpdatesSent: number;
    keepalivesReceived: number;
    bufferedBytes: number;
    bytesReceived: number;
  } {
    return {
      statusUpdatesSent: this.#statusUpdatesSent,
      keepalivesReceived: this.#keepalivesReceived,
      bufferedBytes: this.#queuedBytes,
      bytesReceived: this.#bytesReceived,
    };
  }

  /**
   * Reads the socket in fewer, larger pieces while `ms` > 0 (see `Transport.holdSmallReads`):
   * for a stretch of the stream whose data nobody waits for yet.
   */
  holdSmallReads(ms: number): void {
    this.#transport.holdSmallReads(ms);
  }

  /** The hold {@linkcode ReplicationStream.holdSmallReads} set (0: none). */
  get readHoldMs(): number {
    return this.#transport.holdMs;
  }

  /**
   * Records that everything up to `position` is durable. Positions never move
   * backwards; a lower one is ignored. A new position is sent within `confirmDelayMs`
   * (one update for all the confirms in that time).
   */
  confirm(position: Lsn): void {
    if (position <= this.#flushed) return;
    this.#flushed = position;
    if (this.#written < this.#flushed) this.#written = this.#flushed;
    if (this.#confirmTimer !== undefined || this.#ended) return;
    this.#confirmTimer = setTimeout(() => {
      this.#confirmTimer = undefined;
      this.#sendStatus(false).catch((error) => this.#fail(error));
    }, this.#options.confirmDelayMs);
  }

  /** Sends a status update now (e.g. right after a confirm at shutdown). */
  async sendStatusNow(): Promise<void> {
    await this.#sendStatus(false);
  }

  /**
   * Sends a status update with the newest positions. At most one is being written at a time:
   * asked for again meanwhile, one more follows it (with the positions of then), however often
   * it was asked. So a server that requests replies and never reads gets no growing queue.
   */
  #sendStatus(replyRequested: boolean): Promise<void> {
    this.#replyWanted ||= replyRequested;
    if (this.#statusSending !== null) {
      this.#statusAgain = true;
      return this.#statusSending;
    }
    this.#statusSending = this.#writeStatus().finally(() => {
      this.#statusSending = null;
    });
    return this.#statusSending;
  }

  async #writeStatus(): Promise<void> {
    do {
      this.#statusAgain = false;
      if (this.#ended || this.#copyDoneSent || this.#connection.closed) return;
      const replyRequested = this.#replyWanted;
      this.#replyWanted = false;
      this.#lastStatusAt = Date.now();
      this.#statusUpdatesSent++;
      let flushed = this.#flushed;
      const gate = this.#options.flushGate;
      if (gate !== null && flushed > gate.allowed) {
        gate.want(flushed);
        flushed = gate.allowed;
      }
      await this.#connection.send(encodeStandbyStatus({
        written: this.#written,
        flushed,
        applied: flushed,
        clientTime: unixMicrosToPgMicros(this.#options.now()),
        replyRequested,
      }));
    } while (this.#statusAgain);
  }

  async #run(initial: Frame[]): Promise<void> {
    try {
      for (const frame of initial) {
        this.#handleFrame(frame.code, frame.body, 0, frame.body.byteLength);
      }
      this.#throwIfParserFailed();
      while (!this.#ended) {
        if (this.#queuedBytes >= this.#options.maxBufferedBytes && !this.#stopping) {
          await new Promise<void>((resolve) => this.#readerWaiter = resolve);
          this.#lastReceivedAt = Date.now(); // the silence while paused was ours
          continue;
        }
        const chunk = await this.#transport.read();
        this.#lastReceivedAt = Date.now();
        this.#pinged = false;
        if (chunk === null) {
          this.#connection.markClosed();
          throw new ConnectionError(
            "The server closed the replication connection (it may have restarted, or timed us out after wal_sender_timeout)",
          );
        }
        this.#chunkFrom = this.#transport.position - chunk.byteLength;
        try {
          this.#parser.each(chunk, this.#onFrame);
        } catch (error) {
          // A bad frame after one whose handling failed (a server error, say): the first wins.
          throw this.#frameError ?? error;
        }
        if (this.#frameError !== null) throw this.#frameError;
        this.#handledTo = this.#chunkFrom + chunk.byteLength;
      }
    } catch (error) {
      this.#fail(error);
    }
  }

  /**
   * Throws the error of a bad frame that came after the frames just handled (a frame over
   * the limit, say): now, not once more bytes arrive, which a server that then closes the
   * connection or falls silent never sends (the stream would end as a retriable disconnect).
   */
  #throwIfParserFailed(): void {
    const failure = this.#parser.failure;
    if (failure !== null) throw failure;
  }

  /** What handling a frame of the chunk being parsed threw (the frames after it are ignored). */
  #frameError: unknown = null;

  /**
   * A frame of a chunk, as the parser hands it on. What the handling throws ends the chunk's
   * handling, and the stream, once the parser is done with the chunk.
   */
  readonly #onFrame = (code: number, bytes: Uint8Array, start: number, end: number): void => {
    if (this.#ended || this.#frameError !== null) return;
    try {
      this.#handleFrame(code, bytes, start, end);
    } catch (error) {
      this.#frameError = error;
    }
  };

  /**
   * One frame, its body `bytes` from `start` to `end`. An XLogData is read in place: no view of
   * its payload, nor an object for the frame (the per-change path).
   */
  #handleFrame(code: number, bytes: Uint8Array, start: number, end: number): void {
    switch (code) {
      case BackendCode.CopyData: {
        const message = end > start && bytes[start] === ReplicationCode.XLogData
          ? parseXLogData(bytes, start, end)
          : parseCopyData(bytes.subarray(start, end));
        if (message.type === "XLogData") {
          this.#onXLogData(message);
        } else {
          this.#onKeepalive(message);
        }
        return;
      }
      case BackendCode.CopyDone:
        this.#copyDoneReceived = true;
        return;
      case BackendCode.CommandComplete:
        // The server ends the copy: after our CopyDone, or on its own at shutdown.
        return;
      case BackendCode.ReadyForQuery:
        this.#finish();
        return;
      case BackendCode.ErrorResponse:
        throw explain(
          parseNotice(bytes.subarray(start, end)),
          "replication stream",
          this.#connection.options,
        );
      case BackendCode.NoticeResponse:
        this.#connection.options.onNotice?.(parseNotice(bytes.subarray(start, end)));
        return;
      case BackendCode.ParameterStatus:
        return;
      default:
        throw new ConnectionError(
          `Unexpected ${backendMessageName(code)} message during replication`,
        );
    }
  }

  #onXLogData(message: XLogData): void {
    if (message.walEnd > this.#serverWalEnd) this.#serverWalEnd = message.walEnd;
    if (message.walStart > this.#written) this.#written = message.walStart;
    if (message.walStart > this.#lastDelivered) this.#lastDelivered = message.walStart;
    if (this.#queue.length === 0) this.#queueFrom = this.#chunkFrom;
    this.#queue.push(message);
    this.#queuedBytes += message.data.byteLength + 64;
    this.#bytesReceived += message.data.byteLength;
    this.#wakeConsumer();
  }

  #onKeepalive(message: PrimaryKeepalive): void {
    this.#keepalivesReceived++;
    if (message.walEnd > this.#serverWalEnd) this.#serverWalEnd = message.walEnd;
    const idle = this.#queue.length === 0 && this.#flushed >= this.#lastDelivered &&
      this.#options.isIdle();
    if (idle && this.#options.confirmKeepaliveWhenIdle && !this.#stopping) {
      // Nothing delivered awaits confirmation, so nothing before walEnd is ours to lose.
      this.confirm(message.walEnd);
    }
    if (message.replyRequested) this.#sendStatus(false).catch((error) => this.#fail(error));
  }

  #wakeConsumer(): void {
    const waiter = this.#consumerWaiter;
    this.#consumerWaiter = null;
    waiter?.();
  }

  #fail(error: unknown): void {
    if (this.#error === null && !this.#ended) {
      this.#error = error instanceof Error ? error : new Error(String(error));
    }
    this.#finish();
  }

  #finish(): void {
    if (this.#ended) return;
    this.#ended = true;
    // The connection may run queries after a clean stop: their reads must not be kept for a
    // release that no one will make.
    if (this.#options.reuseReadBuffers) this.#transport.endReuse();
    clearInterval(this.#timer);
    clearTimeout(this.#confirmTimer);
    this.#release();
    this.#wakeConsumer();
    const reader = this.#readerWaiter;
    this.#readerWaiter = null;
    reader?.();
  }

  /** Takes every XLogData received so far, waiting for at least one. `null` once ended. */
  async nextBatch(): Promise<XLogData[] | null> {
    if (this.#options.reuseReadBuffers) {
      // The batch before is done with: what it viewed may be read over, up to the chunk of
      // the oldest message still queued (or all that was handled, with none queued).
      this.#transport.release(this.#queue.length > 0 ? this.#queueFrom : this.#handledTo);
    }
    for (;;) {
      if (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        this.#queuedBytes = 0;
        const reader = this.#readerWaiter;
        this.#readerWaiter = null;
        reader?.();
        return batch;
      }
      if (this.#error !== null) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#consumerWaiter = resolve);
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<XLogData[]> {
    for (;;) {
      const batch = await this.nextBatch();
      if (batch === null) return;
      yield batch;
    }
  }

  /**
   * Ends streaming cleanly: a final status update, CopyDone, then waits for the
   * server's CommandComplete and ReadyForQuery. The connection is usable afterwards.
   * XLogData still in flight is discarded (it was never confirmed).
   */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.#ended) {
      clearInterval(this.#timer);
      clearTimeout(this.#confirmTimer);
      return;
    }
    this.#stopping = true;
    clearTimeout(this.#confirmTimer);
    // The deadline covers the goodbye too: a server that stops reading cannot hold it.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#connection.destroy();
        this.#finish();
        resolve();
      }, timeoutMs);
    });
    const goodbye = (async () => {
      await this.#sendStatus(false);
      this.#copyDoneSent = true; // no CopyData may follow our CopyDone
      await this.#connection.sendCopyDone();
      const reader = this.#readerWaiter;
      this.#readerWaiter = null;
      reader?.();
      await this.#readLoop;
    })();
    goodbye.catch(() => {}); // after the deadline, a failure of the goodbye is moot
    try {
      await Promise.race([goodbye, timeout]);
    } finally {
      clearTimeout(timer);
      this.#queue = [];
      this.#queuedBytes = 0;
    }
  }

  /** Whether the server sent CopyDone (it does after ours, not when it shuts down). */
  get copyDoneReceived(): boolean {
    return this.#copyDoneReceived;
  }
}
