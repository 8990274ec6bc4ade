/**
 * A logical replication source: checks the server, prepares the publication and
 * slot, streams decoded transactions, and reconnects with backoff.
 *
 * Delivery contract: items come in commit order. The consumer calls
 * {@linkcode ReplicationSource.confirm} with a commit's `endLsn` once every sink
 * holds the transaction durably; only then does the slot advance. After a
 * reconnect, transactions already delivered in this process are not delivered
 * again, and a transaction cut off mid-way is announced with a `restart` item
 * and then re-sent whole.
 *
 * @module
 */

import {
  maxProtoVersion,
  PgConnection,
  type PgoutputOptions,
  type SystemIdentity,
} from "../postgres/connection.ts";
import { type ConnectOptions } from "../postgres/connection_string.ts";
import {
  ConfigError,
  ConnectionError,
  DecodeError,
  errorMessage,
  isRetriable,
  PostgresError,
} from "../errors.ts";
import { formatLsn, type Lsn, LSN_ZERO, maxLsn, parseLsn } from "../decoder/lsn.ts";
import type { ProtoVersion } from "../decoder/pgoutput.ts";
import type { XLogData } from "../decoder/replication.ts";
import type { FlushGate, ReplicationStream } from "../postgres/stream.ts";
import { TransactionAssembler } from "./assembler.ts";
import { DEFAULT_SPILL_BYTES, SpillBudget } from "./spill.ts";
import { PgoutputCode } from "../decoder/codes.ts";
import { FrameTooLargeError } from "../decoder/backend.ts";
import { loadTypeInfos } from "../decoder/types/catalog.ts";
import type { TypeInfo, TypeRegistry } from "../decoder/types/registry.ts";
import type { SourceItem } from "../events.ts";
import {
  maxStatusIntervalMs,
  querySlots,
  readSettings,
  readTableFacts,
  settingMs,
  type SlotRow,
} from "../postgres/catalog.ts";
import type { TableFactsRegistry } from "../decoder/table_facts.ts";
import { checkObjectName, checkSlotName, quoteIdent, quoteLiteral } from "../postgres/sql.ts";
import { type Logger, silentLogger } from "../ops/log.ts";
import { allTablesTarget } from "./publications.ts";
import { installDdlCapture } from "./ddl_capture.ts";
import { retry, type RetryOptions, untilAborted } from "../retry.ts";

/** pgoutput changes whose relation id follows the tag (and the xid in a stream block). */
const TAGGED_CHANGES = new Map<number, string>([
  [PgoutputCode.Insert, "insert"],
  [PgoutputCode.Update, "update"],
  [PgoutputCode.Delete, "delete"],
]);

/**
 * How long the socket is left unread after a small read (see {@linkcode readHoldMs}), so that
 * the next read takes what came meanwhile in one piece. Inside a stream block: a walsender
 * streaming a big transaction sends as it decodes; on a 2,000,000-row transaction that was 8,000
 * reads a second of about a kilobyte each, and the receiving took as much CPU as the decoding
 * after the commit. With 1 ms: 400 reads a second, half the CPU of the whole run (20–22 → 10 s),
 * and a faster drain, as the walsender gets the core back (2 and 4 ms were slower: its sends
 * block). Inside a big transaction sent whole: a pipeline faster than the walsender took each
 * read as it came, a few rows at a time, and spent more on each pass through the pipeline than
 * on the rows (1,000,000 rows into the null sink: 4.4 CPU s at 138,000 rows/s; held, 2.0 at
 * 175,000–186,000; bench/RESULTS.md).
 */
export const READ_HOLD_MS = 1;

/** A transaction with this many changes so far is big: its reads are held too. */
export const BIG_TRANSACTION_CHANGES = 10_000;

/**
 * XLogData read ahead of the decoder by default (64 KiB, a few hundred changes): what `tail`
 * reads ahead, and a pipeline at the default `queue.max_bytes`. Each message waiting is a few
 * objects. With 256 KiB, a 1,000,000-row drain that fell behind the walsender kept enough of
 * them (and of the changes decoded from them) alive through two young-generation collections
 * that V8 promoted 100-300 MB to its old generation and ran 10-50 full collections: peaks of
 * 105-164 MB. With 64 KiB: 4-10 MB promoted, 1 full collection, 94-99 MB, at the same rate
 * (bench/RESULTS.md, 2026-12-07 12:38).
 */
export const DEFAULT_READ_AHEAD_BYTES = 64 << 10;

/**
 * How long to hold the socket after a small read, given where the stream is: inside a stream
 * block, or inside a transaction of at least {@linkcode BIG_TRANSACTION_CHANGES} changes,
 * {@linkcode READ_HOLD_MS}; otherwise not at all. What waits is then data that waits for its
 * transaction's end anyway (a stream block's), or the rest of a transaction that has been
 * arriving for a while: by at most a millisecond per read, and never a small transaction or a
 * commit that ends an idle wait.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readHoldMs } from "./replication_source.ts";
 * assert.equal(readHoldMs({ inStreamBlock: true, openTransactionChanges: 0 }), 1);
 * assert.equal(readHoldMs({ inStreamBlock: false, openTransactionChanges: 10_000 }), 1);
 * assert.equal(readHoldMs({ inStreamBlock: false, openTransactionChanges: 9_999 }), 0);
 * ```
 */
export function readHoldMs(
  where: { inStreamBlock: boolean; openTransactionChanges: number },
): number {
  return where.inStreamBlock || where.openTransactionChanges >= BIG_TRANSACTION_CHANGES
    ? READ_HOLD_MS
    : 0;
}

/** Options of {@linkcode ReplicationSource}. */
export interface SourceOptions {
  connection: ConnectOptions;
  slot: string;
  /** A slot that lives as long as the connection; no reconnect is possible with it. */
  temporarySlot?: boolean;
  /** Create the slot when it does not exist (default false: a missing slot is an error). */
  createSlot?: boolean;
  publication: string;
  /** More publications to stream, which must exist (a `tail` session's second one). */
  extraPublications?: readonly string[];
  /** Create the publication when it does not exist (default false). */
  createPublication?: boolean;
  /**
   * What a created publication covers: returns the clause after the name, e.g.
   * `FOR TABLE public.orders`. Default `FOR ALL TABLES`, refused when a table has no
   * replica identity (see {@linkcode allTablesTarget}).
   */
  publicationTarget?: (connection: PgConnection) => Promise<string>;
  /**
   * Called once the server and the slot were read, before anything is created, with the
   * server's identity and the slot (`undefined` when it does not exist); throw to refuse
   * (a pipeline whose slot vanished, or is not the one it recorded, does).
   */
  checkSlot?: (system: SystemIdentity, slot: SlotRow | undefined) => void;
  /** Holds back the flush position sent to the server (see `postgres/stream.ts`). */
  flushGate?: FlushGate;
  /** Start here instead of the slot's confirmed position (must not be behind it). */
  startLsn?: Lsn;
  /** Default: the highest the server supports. */
  protoVersion?: ProtoVersion;
  streaming?: boolean | "parallel";
  binary?: boolean;
  messages?: boolean;
  twoPhase?: boolean;
  /** PostgreSQL 17+: create the slot with failover, so standbys can synchronise it. */
  failover?: boolean;
  /**
   * Install (idempotently, before the publication and slot are made) the event triggers that
   * send each DDL command's text as a transactional message with prefix `spillway.ddl` (see
   * `ddl_capture.ts`). Needs a superuser unless they are installed already.
   */
  captureDdl?: boolean;
  origin?: "any" | "none";
  /**
   * Filled with each relation's catalog facts (NOT NULL, defaults, primary key) when its
   * Relation message arrives; default: not read.
   */
  tables?: TableFactsRegistry;
  /** Status update period; never more than wal_sender_timeout / 3 (default 10 s). */
  statusIntervalMs?: number;
  /**
   * XLogData the stream reads ahead before it stops reading the socket (default
   * {@linkcode DEFAULT_READ_AHEAD_BYTES}); a chunk of items handed on ends once it holds half of
   * it (or 1 MiB) of messages.
   */
  maxBufferedBytes?: number;
  /** A server silent this long is presumed gone and the source reconnects (default 60 s). */
  receiveTimeoutMs?: number;
  /** Streamed transactions: bytes held in memory before spilling to `dir` (default 16 MB, OS temp). */
  spill?: { memoryLimitBytes: number; dir?: string | null };
  /** Type codecs shared with whoever renders the events; default a new registry. */
  types?: TypeRegistry;
  /**
   * Reconnect policy; default up to 10 attempts over about 2 minutes. `open()` follows it
   * too while the slot is still held by another reader (55006), as after a crash whose
   * walsender has not noticed yet (Debezium's `slot.max.retries`).
   */
  reconnect?: RetryOptions;
  /** Stops `open()`'s retries. */
  signal?: AbortSignal;
  log?: Logger;
}

/** 55006 on the slot: another walsender still holds it (it may be about to go away). */
function isSlotInUse(error: unknown): boolean {
  return error instanceof PostgresError && error.code === "55006";
}

/** What the source found about its slot, for logs and health. */
export interface SlotInfo {
  slotName: string;
  created: boolean;
  confirmedFlushLsn: Lsn | null;
  walStatus: string | null;
}

/** Streams decoded transactions from one slot. */
export class ReplicationSource {
  readonly options: SourceOptions;
  readonly assembler: TransactionAssembler;
  #log: Logger;
  #connection: PgConnection | null = null;
  #stream: ReplicationStream | null = null;
  #protoVersion: ProtoVersion = 1;
  #confirmed: Lsn = LSN_ZERO;
  #deliveredEnd: Lsn = LSN_ZERO;
  #skipping = false;
  #closing = false;
  #closed: Promise<void> | null = null;
  /** A normal SQL connection for catalog lookups, opened when a type must be loaded. */
  #catalog: PgConnection | null = null;
  #createdPublication = false;
  /** A permanent slot made by this `open()`, dropped again if the start fails. */
  #createdSlot = false;
  #statusIntervalMs = 10_000;
  #reconnects = 0;
  #bytesBeforeReconnects = 0;
  slotInfo: SlotInfo | null = null;
  /** The server's identity (`IDENTIFY_SYSTEM`), read when the source opened. */
  system: SystemIdentity | null = null;
  #lastTurn = 0;

  private constructor(options: SourceOptions) {
    this.options = options;
    this.assembler = new TransactionAssembler({
      types: options.types,
      spill: new SpillBudget({
        limitBytes: options.spill?.memoryLimitBytes ?? DEFAULT_SPILL_BYTES,
        dir: options.spill?.dir ?? null,
      }),
    });
    this.#log = options.log ?? silentLogger;
  }

  /** Connects, checks the server, prepares publication and slot, and starts streaming. */
  static async open(options: SourceOptions): Promise<ReplicationSource> {
    // Names are checked before they reach any statement or create anything.
    checkSlotName(options.slot);
    checkObjectName("publication", options.publication);
    const source = new ReplicationSource(options);
    try {
      await retry(async () => {
        try {
          await source.#connectAndStart(true);
        } catch (error) {
          if (isSlotInUse(error)) {
            source.#connection?.destroy();
            source.#connection = null;
          }
          throw error;
        }
      }, {
        maxAttempts: 10,
        initialDelayMs: 250,
        maxDelayMs: 15_000,
        ...options.reconnect,
        shouldRetry: isSlotInUse,
        signal: options.signal,
        onRetry: (error, attempt, delayMs) =>
          source.#log("warn", "Replication slot is in use by another reader; retrying", {
            slot: options.slot,
            attempt,
            delayMs,
            error: errorMessage(error),
          }),
      });
    } catch (error) {
      await source.#rollBack();
      await source.close();
      throw error;
    }
    source.#createdSlot = false;
    source.#createdPublication = false;
    return source;
  }

  /** The pgoutput protocol version in use. */
  get protoVersion(): ProtoVersion {
    return this.#protoVersion;
  }

  /** The position last confirmed by the consumer. */
  get confirmedLsn(): Lsn {
    return this.#confirmed;
  }

  /** Successful reconnections so far. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Replication payload bytes received over every connection so far. */
  get bytesReceived(): number {
    return this.#bytesBeforeReconnects + (this.#stream?.stats.bytesReceived ?? 0);
  }

  /** The underlying stream, for status and metrics. */
  get stream(): ReplicationStream | null {
    return this.#stream;
  }

  /** The server's major version. */
  get serverMajorVersion(): number {
    return this.#connection?.serverMajorVersion ?? 0;
  }

  async #connectAndStart(first: boolean): Promise<void> {
    const options = this.options;
    const connection = await PgConnection.connect({
      ...options.connection,
      replication: "database",
    }, { signal: options.signal });
    this.#connection = connection;
    try {
      await this.#start(connection, first);
    } catch (error) {
      // A failed reconnect attempt must not leave its walsender behind. (A failed first
      // attempt is cleaned up by open(), which may still need the connection.)
      if (!first) {
        connection.destroy();
        this.#connection = null;
      }
      throw error;
    }
  }

  async #start(connection: PgConnection, first: boolean): Promise<void> {
    const options = this.options;
    if (first) await this.#preflight(connection);
    const protoVersion = this.#chooseProtoVersion(connection);
    this.#protoVersion = protoVersion;
    const pgoutput: PgoutputOptions = {
      protoVersion,
      publicationNames: [options.publication, ...options.extraPublications ?? []],
      messages: options.messages ?? true,
    };
    if (options.binary !== undefined) pgoutput.binary = options.binary;
    if (options.streaming !== undefined) pgoutput.streaming = options.streaming;
    if (options.twoPhase !== undefined) pgoutput.twoPhase = options.twoPhase;
    if (options.origin !== undefined) pgoutput.origin = options.origin;
    // On a reconnect too: a start_lsn ahead of anything confirmed still skips what it skipped.
    const startLsn = maxLsn(this.#confirmed, options.startLsn ?? LSN_ZERO);
    this.assembler.startSession(protoVersion);
    this.#stream = await connection.startReplication({
      slot: options.slot,
      startLsn,
      pgoutput,
      // Never slower than a third of wal_sender_timeout, whatever was configured.
      statusIntervalMs: Math.min(options.statusIntervalMs ?? Infinity, this.#statusIntervalMs),
      maxBufferedBytes: options.maxBufferedBytes ?? DEFAULT_READ_AHEAD_BYTES,
      // A batch is decoded (its values copied out) before the next is asked for.
      reuseReadBuffers: true,
      receiveTimeoutMs: options.receiveTimeoutMs,
      isIdle: () => !this.assembler.inTransaction && this.assembler.openStreamedTransactions === 0,
      flushGate: options.flushGate,
    });
    // A new stream starts from nothing: tell it at once what this process confirmed.
    if (this.#confirmed > LSN_ZERO) this.#stream.confirm(this.#confirmed);
    this.#log("info", "Streaming started", {
      slot: options.slot,
      publication: options.publication,
      protoVersion,
      from: formatLsn(startLsn),
      server: connection.parameters.get("server_version"),
    });
  }

  /**
   * The protocol version to use, after checking that it and the options asked for work on
   * this server (so nothing is created for a start that would then be refused).
   */
  #chooseProtoVersion(connection: PgConnection): ProtoVersion {
    const options = this.options;
    const major = connection.serverMajorVersion;
    const protoVersion = options.protoVersion ?? maxProtoVersion(major);
    const refuse = (what: string) => {
      throw new ConfigError(`Cannot stream from PostgreSQL ${major} with ${what}`);
    };
    if (protoVersion > maxProtoVersion(major)) {
      refuse(
        `pgoutput proto_version ${protoVersion}: it supports ${maxProtoVersion(major)} at most`,
      );
    }
    if (options.streaming === "parallel" && protoVersion < 4) {
      refuse(
        `streaming parallel on proto_version ${protoVersion}: it needs proto_version 4 (PostgreSQL 16+)`,
      );
    }
    if (options.streaming === true && protoVersion < 2) {
      refuse(`streaming on proto_version ${protoVersion}: it needs proto_version 2 or later`);
    }
    if (options.twoPhase && protoVersion < 3) {
      refuse(
        `two-phase decoding on proto_version ${protoVersion}: it needs proto_version 3 (PostgreSQL 15+)`,
      );
    }
    if (options.origin !== undefined && major < 16) {
      refuse(`the origin option: it needs PostgreSQL 16+`);
    }
    if (options.failover && major < 17) {
      refuse(`a failover slot: it needs PostgreSQL 17+`);
    }
    return protoVersion;
  }

  /**
   * Checks everything before it creates anything: the server, the protocol version and
   * options, the slot; then creates the publication and the slot where asked. When a later
   * step of this first start fails, `open()` drops them again (see `#rollBack`).
   */
  async #preflight(connection: PgConnection): Promise<void> {
    const options = this.options;
    const settings = await readSettings(connection, ["wal_level", "wal_sender_timeout"]);
    const walLevel = settings.get("wal_level")?.value;
    if (walLevel !== "logical") {
      throw new ConfigError(
        `Cannot stream changes: the server's wal_level is "${walLevel}"; set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL`,
      );
    }
    const timeout = settings.get("wal_sender_timeout");
    this.#statusIntervalMs = maxStatusIntervalMs(
      timeout === undefined ? 60_000 : settingMs(timeout),
    );

    this.#chooseProtoVersion(connection);
    this.system = await connection.identifySystem();
    const publication = quoteLiteral(options.publication);
    const publications = await connection.queryObjects(
      `SELECT pubname FROM pg_catalog.pg_publication WHERE pubname = ${publication}`,
    );
    const createPublication = publications.length === 0;
    if (createPublication && !options.createPublication) {
      throw new ConfigError(
        `Cannot stream from publication "${options.publication}": it does not exist; create it (CREATE PUBLICATION ${
          quoteIdent(options.publication)
        } FOR ALL TABLES) or let Spillway create it (--create)`,
      );
    }

    const [slot] = await querySlots(connection, { slot: options.slot });
    options.checkSlot?.(this.system, slot);
    if (slot === undefined) {
      if (!options.temporarySlot && !options.createSlot) {
        throw new ConfigError(
          `Cannot stream from replication slot "${options.slot}": it does not exist; create it (--create, or SELECT pg_create_logical_replication_slot('${options.slot}', 'pgoutput'))`,
        );
      }
    } else {
      if (options.temporarySlot) {
        throw new ConfigError(
          `Cannot create temporary slot "${options.slot}": a slot with that name exists; choose another name or use --slot ${options.slot} to read it`,
        );
      }
      if (slot.slotType !== "logical" || slot.plugin !== "pgoutput") {
        throw new ConfigError(
          `Cannot stream from slot "${options.slot}": it is a ${slot.slotType} slot with plugin "${slot.plugin}", not a logical pgoutput slot; drop it or use another name`,
        );
      }
      if (slot.walStatus === "lost") {
        throw new ConfigError(
          `Cannot stream from slot "${options.slot}": it was invalidated (wal_status lost) because the WAL it needed was removed; drop it, create it again and re-snapshot (spillway run --reset-slot does the first two); raise max_slot_wal_keep_size to avoid a repeat`,
        );
      }
    }

    if (options.captureDdl) await installDdlCapture(connection, this.#log);
    if (createPublication) {
      await connection.query(
        `CREATE PUBLICATION ${quoteIdent(options.publication)} ${
          options.publicationTarget
            ? await options.publicationTarget(connection)
            : await allTablesTarget(connection, options.publication)
        }`,
      );
      this.#createdPublication = true;
      this.#log("info", "Publication created", { publication: options.publication });
    }

    if (slot !== undefined) {
      this.slotInfo = {
        slotName: options.slot,
        created: false,
        confirmedFlushLsn: slot.confirmedFlushLsn === null
          ? null
          : parseLsn(slot.confirmedFlushLsn),
        walStatus: slot.walStatus,
      };
      return;
    }
    let created;
    try {
      created = await connection.createReplicationSlot(options.slot, {
        temporary: options.temporarySlot,
        snapshot: "nothing",
        twoPhase: options.twoPhase,
        failover: options.failover,
      });
    } catch (error) {
      await this.#rollBack();
      throw error;
    }
    this.#createdSlot = !options.temporarySlot;
    this.slotInfo = {
      slotName: created.slotName,
      created: true,
      confirmedFlushLsn: created.consistentPoint,
      walStatus: "reserved",
    };
    this.#log("info", "Replication slot created", {
      slot: options.slot,
      temporary: options.temporarySlot ?? false,
      consistentPoint: formatLsn(created.consistentPoint),
    });
  }

  /**
   * Drops what a failed first start created (the slot, then the publication), over a fresh
   * connection: the one that failed may be gone. Nothing was delivered from them yet.
   */
  async #rollBack(): Promise<void> {
    const options = this.options;
    const drops = [
      ...this.#createdSlot
        ? [`SELECT pg_catalog.pg_drop_replication_slot(${quoteLiteral(options.slot)})`]
        : [],
      ...this.#createdPublication
        ? [`DROP PUBLICATION IF EXISTS ${quoteIdent(options.publication)}`]
        : [],
    ];
    if (drops.length === 0) return;
    this.#connection?.destroy(); // lets go of the slot, so it can be dropped
    this.#connection = null;
    let connection: PgConnection | null = null;
    try {
      connection = await PgConnection.connect({ ...options.connection, replication: undefined });
      for (const sql of drops) await connection.query(sql);
      this.#createdSlot = false;
      this.#createdPublication = false;
      this.#log("info", "Dropped again what the failed start created", {
        slot: options.slot,
        publication: options.publication,
      });
    } catch (error) {
      this.#log("warn", "Could not drop what the failed start created; drop it by hand", {
        sql: drops.join("; "),
        error: errorMessage(error),
      });
    } finally {
      await connection?.close();
    }
  }

  /**
   * Records that the consumer has made everything up to `position` durable
   * (a commit's `endLsn`). The slot advances with the next status update.
   */
  confirm(position: Lsn): void {
    this.#confirmed = maxLsn(this.#confirmed, position);
    this.#stream?.confirm(this.#confirmed);
  }

  /** Sends the confirmed position to the server now. */
  async flushStatus(): Promise<void> {
    await this.#stream?.sendStatusNow();
  }

  /**
   * Yields batches of items until closed or `signal` aborts; reconnects on
   * retriable failures (of the stream, or of a catalog lookup the stream needed). After
   * an abort, the batch in hand can still be finished and confirmed before {@linkcode close}.
   */
  async *batches(signal?: AbortSignal): AsyncGenerator<SourceItem[]> {
    while (!this.#closing && !signal?.aborted) {
      const stream = this.#stream;
      let next: { batch: XLogData[] } | { lost: unknown };
      try {
        if (stream === null) throw new ConnectionError("The replication stream is not running");
        const batch = await untilAborted(stream.nextBatch(), signal);
        if (batch === null) {
          if (this.#closing || signal?.aborted) return;
          throw new ConnectionError("The replication stream ended");
        }
        next = { batch };
      } catch (error) {
        if (this.#closing || signal?.aborted) return;
        if (error instanceof FrameTooLargeError) throw await this.#tooLarge(error);
        next = { lost: error };
      }
      if ("batch" in next) {
        try {
          yield* this.#assemble(next.batch);
          continue;
        } catch (error) {
          // A catalog lookup that failed with the server (a restart, say) is a lost
          // connection like the stream's; anything else ends the source.
          if (!isRetriable(error)) throw error;
          if (this.#closing || signal?.aborted) return;
          next = { lost: error };
        }
      }
      try {
        yield* this.#recover(next.lost, signal);
      } catch (failure) {
        if (signal?.aborted) return; // stopped while reconnecting: a clean stop
        throw failure;
      }
    }
  }

  /**
   * The error for a message over the size limit, naming the change's table and position when
   * its first bytes say (CopyData → XLogData → Insert, Update or Delete). Reconnecting would
   * meet the same message again, so it ends the source.
   */
  async #tooLarge(error: FrameTooLargeError): Promise<ConnectionError> {
    const head = error.head;
    let what = "A message";
    // 'd', length, 'w', walStart, walEnd, sendTime (8 bytes each), then the pgoutput message.
    if (head.byteLength >= 31 && head[0] === 0x64 && head[5] === 0x77) {
      const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
      what = await this.#describe(head.subarray(30), view.getBigUint64(6) as Lsn);
    }
    return new ConnectionError(
      `${what} is ${error.size} bytes, more than the limit of ${error.limit} (max_message_size); raise the limit (PostgreSQL's own is 1 GiB) to take it: until then the slot cannot move past it`,
      { cause: error, retriable: false },
    );
  }

  /**
   * "The insert on "s"."t" at 0/…" for a pgoutput change message (its start, at least the tag
   * and relation id), or "The message at 0/…".
   */
  async #describe(message: Uint8Array, walStart: Lsn): Promise<string> {
    const at = formatLsn(walStart);
    const change = TAGGED_CHANGES.get(message[0]!);
    const relidAt = this.assembler.inStreamBlock ? 5 : 1;
    if (change === undefined || message.byteLength < relidAt + 4) return `The message at ${at}`;
    const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
    const table = await this.#tableName(view.getUint32(relidAt));
    return table === null ? `The ${change} at ${at}` : `The ${change} on ${table} at ${at}`;
  }

  /**
   * A relation's qualified name: from the relation cache, else (its Relation message may be
   * buffered in a streamed transaction) the catalog's current name; `null` when unknown.
   */
  async #tableName(relid: number): Promise<string | null> {
    const relation = this.assembler.relations.get(relid);
    if (relation !== undefined) {
      return `${quoteIdent(relation.namespace)}.${quoteIdent(relation.relationName)}`;
    }
    try {
      const [row] = await this.#withCatalog((catalog) =>
        catalog.queryObjects(
          `SELECT n.nspname, c.relname
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = ${relid}`,
        )
      );
      return row === undefined
        ? null
        : `${quoteIdent(row.nspname ?? "")}.${quoteIdent(row.relname ?? "")}`;
    } catch {
      return null;
    }
  }

  /**
   * Items in chunks of at most this many, so a huge streamed transaction flows through in
   * pieces. Small, as the queue's capacity: what is in flight while the source is ahead of the
   * sinks (a replay, a backlog) must die within V8's young generation, or it is promoted; at
   * 4,096 here and in the queue, replaying 5,000,000 rows promoted 1,575 MB (73 full
   * collections), at 256 and 1,024 80 MB (3).
   */
  static readonly CHUNK = 256;
  /** ... and ends once it holds this many bytes of messages (1 MiB, or half the read-ahead). */
  get #chunkBytes(): number {
    return Math.min(1 << 20, (this.options.maxBufferedBytes ?? DEFAULT_READ_AHEAD_BYTES) / 2);
  }

  /**
   * The items of a batch, in chunks. When a retriable error (a catalog lookup that failed with
   * the server) ends it, the items made so far are handed on first: they may complete
   * transactions, which are not delivered again after the reconnect.
   */
  async *#assemble(batch: XLogData[]): AsyncGenerator<SourceItem[]> {
    let out: SourceItem[] = [];
    let outBytes = 0;
    const chunkBytes = this.#chunkBytes;
    try {
      for (const xlog of batch) {
        if (xlog.data[0] === PgoutputCode.Relation) {
          await this.#loadTypes(xlog.data);
          await this.#loadTableFacts(xlog.data);
        }
        // Stepped by hand (a streamed transaction's replay yields millions of items) so that a
        // change that cannot be decoded (malformed, or a value too long for a string) can be
        // named by its table and position.
        // An array (most messages: a change, or nothing) is indexed, with no iterator objects;
        // a streamed transaction's replay is stepped.
        let list: readonly SourceItem[] | null = null;
        let lazy: Iterator<SourceItem> | null = null;
        let index = 0;
        let reloaded = false;
        for (;;) {
          let next: SourceItem | undefined;
          try {
            if (list === null && lazy === null) {
              const items = this.assembler.push(xlog.walStart, xlog.data);
              if (Array.isArray(items)) list = items;
              else lazy = items[Symbol.iterator]();
            }
            if (list !== null) {
              next = list[index++];
            } else {
              const step = lazy!.next();
              next = step.done ? undefined : step.value;
            }
          } catch (error) {
            // A value that does not fit its type's description: the type may have changed
            // (ALTER TYPE sends no Relation message). Read it again, then decode again.
            if (error instanceof DecodeError && !reloaded && await this.#reloadSuspects()) {
              reloaded = true;
              if (list === null && lazy === null) continue; // the change is pushed again
              // A streamed transaction's replay cannot go back: the server sends it again.
              throw new ConnectionError(
                `A type changed in the catalog while a streamed transaction was decoded (${error.message}); reconnecting so that the server sends the transaction again`,
                { cause: error },
              );
            }
            if (error instanceof DecodeError && TAGGED_CHANGES.has(xlog.data[0]!)) {
              error.message = `${await this.#describe(xlog.data, xlog.walStart)}: ${error.message}`;
            }
            throw error;
          }
          if (next === undefined) break;
          const item = next;
          if (item.kind === "begin") {
            // Re-sent after a reconnect: this process already delivered it. Its rows are not
            // decoded: a type may have changed since (and been read again) that they predate.
            this.#skipping = item.tx.commitLsn < this.#deliveredEnd;
            if (this.#skipping) this.assembler.skipRows();
          }
          const ends = item.kind === "commit" || item.kind === "prepare";
          if (!this.#skipping) {
            out.push(item);
            if (item.kind === "change" || item.kind === "message") outBytes += item.size;
          }
          if (ends) {
            if (!this.#skipping) this.#deliveredEnd = maxLsn(this.#deliveredEnd, item.endLsn);
            this.#skipping = false;
          }
          if (out.length >= ReplicationSource.CHUNK || outBytes >= chunkBytes) {
            yield out;
            out = [];
            outBytes = 0;
            // A streamed transaction is replayed without any I/O: let timers (status
            // updates) and socket reads run now and then, or the walsender times us out.
            if (performance.now() - this.#lastTurn > 50) {
              await new Promise<void>((resolve) => setTimeout(resolve, 0));
              this.#lastTurn = performance.now();
            }
          }
        }
        // An enum label its description lacks (ADD VALUE, RENAME VALUE) decoded as it is;
        // the description is read again for what comes next.
        if (this.assembler.types.hasSuspects) await this.#reloadSuspects();
      }
      // Small reads inside a stream block or a big transaction are held: see readHoldMs.
      this.#stream?.holdSmallReads(readHoldMs(this.assembler));
    } catch (error) {
      if (isRetriable(error) && out.length > 0) yield out;
      throw error;
    }
    if (out.length > 0) yield out;
  }

  /** The normal SQL connection for catalog lookups, opened on first use. */
  async #catalogConnection(): Promise<PgConnection> {
    this.#catalog ??= await PgConnection.connect({
      ...this.options.connection,
      replication: undefined,
      applicationName: `${this.options.connection.applicationName ?? "spillway"}-catalog`,
    });
    return this.#catalog;
  }

  #dropCatalog(): void {
    this.#catalog?.destroy();
    this.#catalog = null;
  }

  /**
   * Runs `lookup` on the catalog connection. A connection kept from before that fails with a
   * retriable error (the server restarted since, or its backend was terminated) is replaced
   * once; when a new one fails too the server is away: the error is thrown, and the source
   * reconnects as when the stream is lost.
   */
  async #withCatalog<T>(lookup: (catalog: PgConnection) => Promise<T>): Promise<T> {
    for (let attempt = 1;; attempt++) {
      const kept = this.#catalog !== null;
      try {
        return await lookup(await this.#catalogConnection());
      } catch (error) {
        this.#dropCatalog();
        if (!kept || attempt > 1 || !isRetriable(error)) throw error;
        this.#log("info", "The catalog connection was lost; opening a new one", {
          error: errorMessage(error),
        });
      }
    }
  }

  /**
   * Loads `oids` and the catalog types they depend on (but those `isKnown` says to skip),
   * registers them, and returns those that were new or changed.
   */
  async #registerTypes(
    oids: number[],
    isKnown?: (oid: number) => boolean,
  ): Promise<TypeInfo[]> {
    const registry = this.assembler.types;
    const infos = await this.#withCatalog((catalog) => loadTypeInfos(catalog, oids, { isKnown }));
    const registered = infos.filter((info) => registry.register(info));
    if (registered.length > 0) {
      this.#log("debug", "Types loaded from the catalog", {
        types: registered.map((info) => `${info.namespace}.${info.name}`),
      });
    }
    return registered;
  }

  /**
   * Loads the catalog types (enums, domains, composites, ranges, extension types)
   * a Relation's columns need before the assembler decodes rows of it.
   */
  async #loadTypes(relation: Uint8Array): Promise<void> {
    const registry = this.assembler.types;
    const missing = registry.missing(this.assembler.relationTypeOids(relation));
    if (missing.length > 0) await this.#registerTypes(missing, (oid) => registry.has(oid));
  }

  /**
   * Reads the catalog facts (NOT NULL, defaults, primary key) of a Relation message's table
   * into `options.tables`, when the pipeline asked for them.
   */
  async #loadTableFacts(relation: Uint8Array): Promise<void> {
    const tables = this.options.tables;
    const relidAt = this.assembler.inStreamBlock ? 5 : 1;
    if (tables === undefined || relation.byteLength < relidAt + 4) return;
    const relid = new DataView(relation.buffer, relation.byteOffset).getUint32(relidAt);
    const facts = await this.#withCatalog((catalog) => readTableFacts(catalog, [relid]));
    for (const table of facts) tables.set(table);
  }

  /**
   * Reads again the types whose values did not fit their description (see
   * `TypeRegistry.takeSuspects`); true when one of them, or a type it depends on, changed.
   */
  async #reloadSuspects(): Promise<boolean> {
    const suspects = this.assembler.types.takeSuspects();
    if (suspects.length === 0) return false;
    const changed = await this.#registerTypes(suspects);
    if (changed.length > 0) {
      this.#log("info", "Types changed in the catalog were read again", {
        types: changed.map((info) => `${info.namespace}.${info.name}`),
      });
    }
    return changed.length > 0;
  }

  async *#recover(error: unknown, signal?: AbortSignal): AsyncGenerator<SourceItem[]> {
    const reason = errorMessage(error);
    if (this.options.temporarySlot) {
      throw new ConnectionError(
        `Replication stopped and cannot resume: ${reason}; a temporary slot vanishes with its connection, so use a permanent slot (--slot NAME --create) to survive reconnects`,
        { cause: error, retriable: false },
      );
    }
    if (!isRetriable(error)) throw error;
    this.#log("warn", "Replication connection lost; reconnecting", { error: reason });
    this.#connection?.destroy();
    this.#connection = null;
    this.#dropCatalog(); // opened again when needed: after a server restart it is dead
    this.#bytesBeforeReconnects += this.#stream?.stats.bytesReceived ?? 0;
    this.#stream = null;
    const partial = this.assembler.inTransaction || this.assembler.openStreamedTransactions > 0;
    this.assembler.reset();
    this.#skipping = false;
    if (partial) yield [{ kind: "restart", reason }];
    const policy: RetryOptions = {
      maxAttempts: 10,
      initialDelayMs: 250,
      maxDelayMs: 15_000,
      shouldRetry: isRetriable,
      signal,
      onRetry: (e, attempt, delay) =>
        this.#log("warn", "Reconnect failed; retrying", {
          attempt,
          delayMs: delay,
          error: errorMessage(e),
        }),
      ...this.options.reconnect,
    };
    try {
      await retry(() => this.#connectAndStart(false), policy);
    } catch (failure) {
      // A server that answers names its own error (and fix); one that cannot be reached is
      // said to be given up on.
      if (!(failure instanceof ConnectionError) || !failure.retriable || signal?.aborted) {
        throw failure;
      }
      throw new ConnectionError(
        `Gave up reconnecting after ${policy.maxAttempts} attempts (the reconnect limit, source.reconnect.max_attempts): ${
          errorMessage(failure)
        }; start the pipeline again once the server is back (nothing after the last confirmed position was lost), or raise the limit`,
        { cause: failure, retriable: false },
      );
    }
    this.#reconnects++;
  }

  /**
   * Stops streaming: sends the confirmed position, ends the copy, and closes the
   * connection.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    const stream = this.#stream;
    this.#stream = null;
    try {
      if (stream) await stream.stop();
    } catch (error) {
      this.#log("warn", "Clean shutdown of the replication connection failed", {
        error: errorMessage(error),
      });
    } finally {
      await this.#connection?.close();
      this.#connection = null;
      await this.#catalog?.close();
      this.#catalog = null;
    }
  }
}
