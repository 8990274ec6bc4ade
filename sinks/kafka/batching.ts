/**
 * Adaptive batching and delivery of the Kafka sink: produce requests in flight, completed in
 * order (up to five when the sink says so: an idempotent producer, transactional or not, keeps
 * the order per partition; one otherwise), and while they are in flight the next records
 * gather, up to `batch_bytes` per request. An idle pipeline's commit goes out at once (small
 * requests, low latency); a busy one fills requests (throughput). A write that confirms
 * nothing (inside a big transaction) returns once its records are queued; one that confirms
 * waits until the broker acknowledged everything up to its last commit.
 *
 * Failures: a retriable one (broker down, leader moving, timeout) that the producer's own
 * retries did not mend is retried with backoff, on a new producer, for as long as it takes; a
 * fatal one fails every waiting write. {@linkcode Batcher.status} says failing during either
 * kind of retry.
 *
 * Exactly-once: records go out inside a Kafka transaction, which commits at the last
 * PostgreSQL commit queued (with the checkpoint, see `checkpoint.ts`), so a Kafka transaction
 * holds whole PostgreSQL transactions, and a new one starts for what follows. A retriable
 * failure aborts the Kafka transaction; the records it held are sent again in a new one
 * (they are kept until it commits, up to {@linkcode REPLAY_LIMIT_BYTES}; past that the sink
 * fails and a restart resumes from the checkpoint).
 *
 * @module
 */

import { formatLsn, type Lsn } from "../../decoder/lsn.ts";
import type { Logger } from "../../ops/log.ts";
import { checkpointRecord } from "./checkpoint.ts";
import { classifyError, KafkaSinkError } from "./errors.ts";
import type { KafkaProducer, OutMessage } from "./producer.ts";

/** A PostgreSQL commit among the queued records: the end LSN to checkpoint. */
export interface Marker {
  marker: "commit";
  lsn: Lsn;
}

type Entry = OutMessage | Marker;

/**
 * Produce requests in flight at once: as the Java producer's default
 * `max.in.flight.requests.per.connection` (an idempotent producer keeps order with up to 5).
 * One at a time left the sink waiting on each acknowledgement: 27% slower on big records.
 */
export const MAX_IN_FLIGHT = 5;

/** One produce request sent: its records, the queue entries it covers, how it ended. */
interface Flight {
  chunk: OutMessage[];
  taken: number;
  /** `null` once acknowledged, or the error it failed with (never rejects). */
  result: Promise<unknown>;
}

/** Records of an open Kafka transaction kept for a replay, at most. */
export const REPLAY_LIMIT_BYTES = 32 * 1024 * 1024;

/** Options of {@linkcode Batcher}. */
export interface BatcherOptions {
  producer: KafkaProducer;
  /** A new producer after a failure (exactly-once: fences the old one, aborting its transaction). */
  reconnect: () => Promise<KafkaProducer>;
  exactlyOnce: { group: string; topic: string; transactionalId: string } | null;
  batchBytes: number;
  lingerMs: number;
  /**
   * Requests in flight at most; default {@linkcode MAX_IN_FLIGHT}. One keeps order where the
   * producer cannot promise it with more: one that is not idempotent (acks 0 or 1), whose
   * records carry no sequence numbers for the broker to order them by.
   */
  maxInFlight?: number;
  /**
   * Bytes queued before a write waits for the broker; default 2 × batchBytes, at least 2 MiB
   * (with five requests in flight, enough to keep the broker busy: 4 and 16 MiB were no
   * faster, and the records queued live long enough to fill V8's old generation: 2 MiB took
   * 10–15 MB off the peak).
   */
  maxQueuedBytes?: number;
  log: Logger;
  name: string;
}

interface Waiter {
  /** Resolved once this many entries were processed. */
  upTo: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Bytes of a record's key and value (0 for a commit marker). */
export function recordBytes(entry: Entry): number {
  if ("marker" in entry) return 0;
  return (entry.key?.byteLength ?? 0) + (entry.value?.byteLength ?? 0);
}

/** What a queued entry counts for: its bytes and about 70 of a record's overhead. */
function sizeOf(entry: Entry): number {
  return "marker" in entry ? 0 : recordBytes(entry) + 70;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });

/** Queues records and delivers them, in order, in requests of at most `batch_bytes`. */
export class Batcher {
  #producer: KafkaProducer;
  readonly #options: BatcherOptions;
  readonly #maxQueued: number;
  #queue: Entry[] = [];
  #head = 0;
  #queuedBytes = 0;
  /** Entries ever added, and entries processed (sent, or a commit committed). */
  #added = 0;
  #done = 0;
  /** Entries taken off the queue: in flight, or done. */
  #taken = 0;
  /** Sequence number of the newest commit marker queued. */
  #lastMarker = -1;
  #waiters: Waiter[] = [];
  /** The entries last added are part of a write whose rest follows (see {@linkcode add}). */
  #more = false;
  /** The sequence number where the write in parts began: its commits are the ones held. */
  #holdFrom = 0;
  #roomWaiters: (() => void)[] = [];
  #pump: Promise<void> | null = null;
  #linger: ReturnType<typeof setTimeout> | undefined;
  #fatal: unknown = null;
  #failing = false;
  #lastError: string | undefined;
  readonly #closing = new AbortController();
  // Exactly-once
  #txOpen = false;
  #txSent: OutMessage[] = [];
  #txBytes = 0;
  /** The open transaction's records are all in `#txSent`. */
  #replayable = true;
  /** Exactly-once: the checkpoint of the commit under way, whose answer may be lost. */
  #committing: Lsn | null = null;
  /**
   * Exactly-once after a failure: `check`: whether the open transaction committed is not
   * known yet; `replay`: it was aborted, its records go again in a new one.
   */
  #recovery: "none" | "check" | "replay" = "none";

  constructor(options: BatcherOptions) {
    this.#producer = options.producer;
    this.#options = options;
    this.#maxQueued = options.maxQueuedBytes ??
      Math.max(2 * options.batchBytes, 2 * 1024 * 1024);
  }

  /** The producer in use (a new one after a reconnect). */
  get producer(): KafkaProducer {
    return this.#producer;
  }

  /**
   * Failing while the sink retries, or while its producer sends a request again in place (a
   * broker away: see `DELIVERY_TIMEOUT_MS`).
   */
  status(): { failing: boolean; lastError?: string } {
    const inPlace = this.#producer.retryError;
    if (!this.#failing && inPlace !== null) return { failing: true, lastError: inPlace };
    return { failing: this.#failing, lastError: this.#lastError };
  }

  /**
   * Queues `entries`. Durable: resolves once everything up to the last commit marker queued
   * (at-least-once: everything) is acknowledged (exactly-once: committed). Otherwise resolves
   * once queued, or once there is room when the queue is over its byte bound. `more`: the rest
   * of the same write follows (exactly-once then commits at its end, unless the queue fills).
   */
  async add(entries: readonly Entry[], durable: boolean, more = false): Promise<void> {
    if (this.#fatal !== null) throw this.#fatal;
    // The first part of a write in parts: commits queued before it are not held for it.
    if (more && !this.#more) this.#holdFrom = this.#added;
    this.#more = more;
    for (const entry of entries) {
      this.#queue.push(entry);
      this.#queuedBytes += sizeOf(entry);
      if ("marker" in entry) this.#lastMarker = this.#added;
      this.#added++;
    }
    if (durable) {
      // Exactly-once: up to the newest commit queued, this write's or (when a write came in
      // parts, see KafkaSink.write) an earlier part's.
      const upTo = this.#options.exactlyOnce === null ? this.#added : this.#lastMarker + 1;
      if (upTo <= this.#done) return;
      // The waiter first: the delivery may finish within #kick() (a write of commits alone
      // sends nothing), and would then find no one to tell.
      const done = new Promise<void>((resolve, reject) =>
        this.#waiters.push({ upTo, resolve, reject })
      );
      this.#kick();
      await done;
      return;
    }
    if (this.#queuedBytes >= this.#options.batchBytes || this.#options.lingerMs <= 0) {
      this.#kick();
    } else if (this.#pump === null && this.#linger === undefined) {
      this.#linger = setTimeout(() => {
        this.#linger = undefined;
        this.#kick();
      }, this.#options.lingerMs);
    }
    while (this.#queuedBytes > this.#maxQueued && this.#fatal === null) {
      this.#kick();
      await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
    }
    if (this.#fatal !== null) throw this.#fatal;
  }

  /**
   * The PostgreSQL transaction in progress is being sent again from its Begin: drops its
   * records still queued and, exactly-once, aborts the Kafka transaction that holds the rest
   * (it holds nothing else: each one commits at the last commit queued).
   */
  async restartTransaction(pendingOfThisWrite: Entry[]): Promise<void> {
    // What this write made after its last commit belongs to the transaction sent again.
    const lastCommit = pendingOfThisWrite.findLastIndex((entry) => "marker" in entry);
    pendingOfThisWrite.length = lastCommit + 1;
    if (lastCommit >= 0) return; // the transaction began in this write: nothing queued of it
    await this.#idle();
    // Everything after the last marker belongs to the transaction being sent again.
    const keepUpTo = this.#lastMarker + 1; // sequence number just after the marker
    const dropFrom = Math.max(keepUpTo, this.#taken) - this.#taken + this.#head;
    for (let i = dropFrom; i < this.#queue.length; i++) {
      this.#queuedBytes -= sizeOf(this.#queue[i]!);
    }
    const dropped = this.#queue.length - dropFrom;
    this.#queue.length = dropFrom;
    this.#added -= dropped;
    if (this.#options.exactlyOnce !== null && this.#txOpen && this.#head === this.#queue.length) {
      await this.#producer.abort().catch(() => {});
      this.#endTransaction();
    }
  }

  #endTransaction(): void {
    this.#txOpen = false;
    this.#txSent = [];
    this.#txBytes = 0;
    this.#replayable = true;
  }

  /** Waits until no request is in flight. */
  async #idle(): Promise<void> {
    while (this.#pump !== null) await this.#pump.catch(() => {});
  }

  /** Exactly-once: the commit at the head waits for the rest of its write (see {@linkcode add}). */
  #holdsCommit(): boolean {
    return this.#more && this.#lastMarker >= this.#holdFrom &&
      this.#queuedBytes <= this.#maxQueued;
  }

  #kick(): void {
    if (this.#linger !== undefined) {
      clearTimeout(this.#linger);
      this.#linger = undefined;
    }
    if (this.#pump !== null || this.#fatal !== null) return;
    if (this.#head >= this.#queue.length) return;
    // A commit held for the rest of its write: the next add (or a full queue) starts it.
    const first = this.#queue[this.#head]!;
    if (
      this.#options.exactlyOnce !== null && "marker" in first &&
      this.#taken === this.#lastMarker && this.#holdsCommit()
    ) return;
    this.#pump = this.#run().then(
      () => {
        this.#pump = null;
        // What gathered while the request was in flight goes next.
        this.#kick();
      },
      (error) => {
        this.#pump = null;
        this.#fail(error);
      },
    );
  }

  #fail(error: unknown): void {
    this.#fatal = error;
    this.#failing = true;
    this.#lastError = error instanceof Error ? error.message : String(error);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    for (const resolve of this.#roomWaiters.splice(0)) resolve();
  }

  /**
   * Delivers what is queued, in order, until the queue is empty: up to
   * {@linkcode MAX_IN_FLIGHT} requests at once, completed in the order they were sent.
   */
  async #run(): Promise<void> {
    const eos = this.#options.exactlyOnce;
    const flights: Flight[] = [];
    for (;;) {
      const maxInFlight = this.#options.maxInFlight ?? MAX_IN_FLIGHT;
      while (flights.length < maxInFlight && this.#head < this.#queue.length) {
        if (this.#closing.signal.aborted) throw new Error(`${this.#options.name} is closed`);
        const first = this.#queue[this.#head]!;
        if ("marker" in first && eos !== null && this.#taken === this.#lastMarker) {
          // Exactly-once commits at the last commit queued, once everything before it is in;
          // while more of the write is coming (and there is room for it), at its end: one
          // Kafka transaction per write, as when a write came whole.
          if (flights.length > 0 || this.#holdsCommit()) break;
          this.#take(1);
          await this.#retrying("committing", async () => {
            await this.#replay();
            await this.#commit(first.lsn);
          });
          this.#advance(1);
          continue;
        }
        const flight = this.#nextChunk();
        if (eos !== null && flight.chunk.length > 0 && !this.#txOpen) {
          // Nothing is in flight here: a Kafka transaction ends only with no request in flight.
          await this.#retrying("beginning a transaction", async () => {
            await this.#replay();
            if (this.#txOpen) return;
            await this.#producer.begin();
            this.#txOpen = true;
          });
        }
        flights.push(await this.#launch(flight));
      }
      const oldest = flights[0];
      if (oldest === undefined) return;
      const error = await oldest.result;
      if (error === null) {
        flights.shift();
        this.#advance(oldest.taken);
        continue;
      }
      // A request failed: the ones after it are let finish, then all of them are delivered
      // again, in order, on a new connection (at-least-once: some twice; exactly-once: in a new
      // Kafka transaction with everything the aborted one held).
      await Promise.all(flights.map((flight) => flight.result));
      const failed = flights.splice(0);
      const records = failed.reduce((sum, flight) => sum + flight.chunk.length, 0);
      let next = 0;
      await this.#retrying(`sending ${records} records`, async () => {
        if (eos !== null) {
          await this.#replay();
          return;
        }
        for (; next < failed.length; next++) await this.#producer.send(failed[next]!.chunk);
      }, error);
      for (const flight of failed) this.#advance(flight.taken);
    }
  }

  /**
   * The next request's records, from the head of the queue. A request takes records across
   * commits (exactly-once: up to the one it commits at), so a stream of small transactions
   * goes out in few requests; it may hold commits alone.
   */
  #nextChunk(): { chunk: OutMessage[]; bytes: number; taken: number } {
    const limit = this.#options.batchBytes;
    const eos = this.#options.exactlyOnce !== null;
    const chunk: OutMessage[] = [];
    let bytes = 0;
    let taken = 0;
    for (let i = this.#head; i < this.#queue.length; i++) {
      const entry = this.#queue[i]!;
      if ("marker" in entry) {
        if (eos && this.#taken + taken === this.#lastMarker) break;
        taken++;
        continue;
      }
      const size = sizeOf(entry);
      if (chunk.length > 0 && bytes + size > limit) break;
      chunk.push(entry);
      bytes += size;
      taken++;
    }
    this.#take(taken);
    return { chunk, bytes, taken };
  }

  /**
   * Starts a request, once the producer holds its topics' metadata (see
   * `KafkaProducer.prepare`); exactly-once, its records are kept for a replay first.
   */
  async #launch(request: { chunk: OutMessage[]; bytes: number; taken: number }): Promise<Flight> {
    const { chunk, bytes, taken } = request;
    if (chunk.length === 0) return { chunk, taken, result: Promise.resolve(null) };
    if (this.#options.exactlyOnce !== null) this.#keep(chunk, bytes);
    let result: Promise<unknown>;
    try {
      await this.#producer.prepare(chunk);
      result = this.#producer.send(chunk).then(() => null, (error: unknown) => error);
    } catch (error) {
      result = Promise.resolve(error);
    }
    return { chunk, taken, result };
  }

  /** Takes `n` entries off the queue (they are in flight). */
  #take(n: number): void {
    this.#taken += n;
    for (let i = 0; i < n; i++) {
      this.#queuedBytes -= sizeOf(this.#queue[this.#head]!);
      this.#queue[this.#head++] = undefined as never;
    }
    if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.#queuedBytes <= this.#maxQueued) {
      for (const resolve of this.#roomWaiters.splice(0)) resolve();
    }
  }

  /** `n` more entries are done: writes waiting for them resolve. */
  #advance(n: number): void {
    this.#done += n;
    if (this.#waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.upTo <= this.#done) waiter.resolve();
      else still.push(waiter);
    }
    this.#waiters = still;
  }

  /** Exactly-once: keeps records sent in the open transaction, for a replay in a new one. */
  #keep(chunk: OutMessage[], bytes: number): void {
    this.#txBytes += bytes;
    if (this.#txBytes > REPLAY_LIMIT_BYTES) {
      // Kept no more: a failure from here on fails the sink (see #recover).
      this.#replayable = false;
      this.#txSent = [];
    } else {
      for (const message of chunk) this.#txSent.push(message);
    }
  }

  async #commit(lsn: Lsn): Promise<void> {
    const eos = this.#options.exactlyOnce!;
    if (!this.#txOpen) {
      await this.#producer.begin();
      this.#txOpen = true;
    }
    await this.#producer.send([checkpointRecord(eos.topic, eos.transactionalId, lsn)]);
    // From here a failure may hide a commit that went through (see #recover).
    this.#committing = lsn;
    await this.#producer.commit({ group: eos.group, topic: eos.topic, offset: lsn });
    this.#committing = null;
    this.#endTransaction();
  }

  /**
   * Runs `step` until it succeeds: a retriable failure waits (200 ms doubling to 10 s) and
   * opens a new producer (exactly-once: `step` then replays the aborted transaction first,
   * see {@linkcode #replay}). `failed`: the first attempt already failed with it.
   */
  async #retrying(doing: string, step: () => Promise<void>, failed?: unknown): Promise<void> {
    const { log, name } = this.#options;
    let delay = 200;
    for (let attempt = 1;; attempt++) {
      try {
        if (attempt === 1 && failed !== undefined) throw failed;
        await step();
        if (this.#failing) {
          log("info", "Kafka is reachable again; writing resumed", {
            sink: name,
            attempts: attempt,
          });
        }
        this.#failing = false;
        this.#lastError = undefined;
        return;
      } catch (caught) {
        const error = classifyError(caught, doing, this.#producer.brokers);
        if (!error.retriable || this.#closing.signal.aborted) throw error;
        this.#failing = true;
        this.#lastError = error.message;
        log(attempt === 1 ? "warn" : "debug", "Kafka write failed; retrying", {
          sink: name,
          attempt,
          delayMs: delay,
          error: error.message,
        });
        await sleep(delay * (0.8 + 0.4 * Math.random()), this.#closing.signal);
        delay = Math.min(delay * 2, 10_000);
        if (this.#closing.signal.aborted) throw error;
        await this.#recover(error).catch((again) => {
          const wrapped = classifyError(again, "reconnecting", this.#producer.brokers);
          if (!wrapped.retriable) throw wrapped;
          this.#lastError = wrapped.message;
        });
      }
    }
  }

  /**
   * After a retriable failure: a new producer. Exactly-once, the open transaction is lost
   * (the new producer's start aborts it) unless its commit went through before the failure
   * was seen: until the checkpoint tells which, nothing is sent; then either the transaction
   * is done, or its records are to be replayed ({@linkcode #replay}).
   */
  async #recover(error: KafkaSinkError): Promise<void> {
    const eos = this.#options.exactlyOnce;
    if (eos !== null && this.#txOpen) this.#recovery = "check";
    const old = this.#producer;
    await old.close();
    this.#producer = await this.#options.reconnect();
    if (eos === null || this.#recovery !== "check") return;
    // Only a commit under way can have gone through unseen: a send that failed aborted the
    // transaction for sure (a checkpoint in Kafka then is an older one, from before it).
    const committing = this.#committing;
    const checkpoint = committing === null
      ? null
      : await this.#producer.readCheckpoint(eos.group, eos.topic);
    if (committing !== null && checkpoint !== null && checkpoint >= committing) {
      this.#options.log(
        "info",
        "Kafka had committed the transaction whose acknowledgement was lost",
        {
          sink: this.#options.name,
          checkpoint: formatLsn(checkpoint),
        },
      );
      this.#committing = null;
      this.#endTransaction();
      this.#recovery = "none";
      return;
    }
    this.#committing = null;
    if (!this.#replayable) {
      throw new KafkaSinkError(
        `A Kafka transaction of more than ${REPLAY_LIMIT_BYTES} bytes failed (${error.message}); it was aborted, and a restart resumes from the checkpoint`,
        { retriable: false, cause: error },
      );
    }
    this.#recovery = "replay";
  }

  /**
   * Exactly-once, after {@linkcode #recover}: sends what the aborted transaction held again, in
   * order, in a new one. Fails (retriably) while the checkpoint has not been read yet.
   */
  async #replay(): Promise<void> {
    if (this.#recovery === "none") return;
    if (this.#recovery === "check") {
      throw new KafkaSinkError(
        `${this.#options.name} has not reconnected yet: ${this.#lastError ?? "unknown error"}`,
        { retriable: true },
      );
    }
    const replay = this.#txSent;
    // Begun first: if that fails, the records are still held for the next attempt.
    if (replay.length > 0) await this.#producer.begin();
    this.#endTransaction();
    if (replay.length > 0) {
      this.#txOpen = true;
      this.#keep(replay, replay.reduce((sum, message) => sum + sizeOf(message), 0));
      // In requests of at most batch_bytes, as they went the first time (the producer does not
      // split a send, and the broker refuses a batch over its message.max.bytes).
      const limit = this.#options.batchBytes;
      for (let start = 0; start < replay.length;) {
        let end = start + 1;
        let bytes = sizeOf(replay[start]!);
        while (end < replay.length && bytes + sizeOf(replay[end]!) <= limit) {
          bytes += sizeOf(replay[end++]!);
        }
        await this.#producer.send(replay.slice(start, end));
        start = end;
      }
    }
    this.#recovery = "none";
  }

  /** Stops retrying and fails writes still waiting. */
  async close(): Promise<void> {
    this.#closing.abort();
    if (this.#linger !== undefined) clearTimeout(this.#linger);
    await this.#pump?.catch(() => {});
    if (this.#waiters.length > 0) this.#fail(new Error(`${this.#options.name} was closed`));
    await this.#producer.close();
  }
}
