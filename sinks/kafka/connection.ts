/**
 * The sink's connection to a broker: TCP or TLS, SASL (PLAIN, SCRAM-SHA-256/512), and
 * requests written without a copy.
 *
 * Produce requests are the big ones: the caller leaves room for the request's header at the
 * start of its buffer ({@linkcode BrokerConnection.headerRoom}), the header is written into it,
 * and the request goes out in one write from that buffer, which the caller may use again once
 * the socket wrote it ({@linkcode BrokerConnection.produce}'s `written`). (A Kafka client
 * library the sink used before copied each request into a buffer of its own and held it until
 * the broker answered; those copies, garbage outside V8's heap until a full collection, set the
 * sink's peak RSS: bench/RESULTS.md, 2026-12-06.) The other requests (`apis.ts`) are small and
 * go through {@linkcode BrokerConnection.request}.
 *
 * What goes on here: one socket, requests numbered by correlation id, answered in any order,
 * each with a timeout; a socket that fails or closes fails every request waiting on it, and the
 * connection is not used again (its owner, {@linkcode ConnectionPool}, opens a new one). A SASL
 * session the broker limits (`connections.max.reauth.ms`) is not renewed on the connection: at
 * 80% of its lifetime the connection retires (takes no new request, closes once the last one is
 * answered), and a new one takes over.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { connect as connectTcp, isIP, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import { ScramClient } from "../../decoder/auth.ts";
import {
  type Api,
  API_VERSIONS,
  type ApiRanges,
  readProduceResponse,
  SASL_AUTHENTICATE,
  SASL_HANDSHAKE,
} from "./apis.ts";
import { KafkaSinkError } from "./errors.ts";
import { PRODUCE_API_KEY, PRODUCE_VERSIONS } from "./produce.ts";
import { checkError, KafkaProtocolError, RequestWriter, ResponseReader } from "./wire.ts";

/** How to reach and authenticate with a broker. */
export interface BrokerConnectionOptions {
  clientId: string;
  /** Set: TLS, with `ca` as the trusted certificates (else the system's). */
  tls?: { ca?: string };
  sasl?: {
    mechanism: "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512";
    username: string;
    password: string;
  };
  connectTimeoutMs: number;
  /** How long a request may wait for its answer before the connection is given up. */
  requestTimeoutMs: number;
  /**
   * Spillway's version. Set: once open, the connection asks the broker which request versions
   * it takes (ApiVersions), for {@linkcode BrokerConnection.produceVersion}.
   */
  clientVersion?: string;
}

/** The oldest Kafka whose versions of the sink's requests are all known. */
const OLDEST_KAFKA = "2.8";

/** Reads a response's body. */
type Parser = (reader: ResponseReader) => unknown;

interface Waiting {
  parser: Parser;
  responseTagged: boolean;
  callback: (error: Error | null, response?: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** A failure of the connection itself: the broker away, a socket closed, a request timed out. */
export class BrokerConnectionError extends Error {
  override name = "BrokerConnectionError";
  readonly code: string = "NETWORK";
}

/**
 * The other end answered with bytes no Kafka answer has: not a Kafka listener, or a TLS one
 * spoken to without `tls`. No retry mends it. (The other mismatches, TLS spoken to a plaintext
 * listener or no SASL to a SASL one, end in a connection the broker closes, which looks like a
 * broker going away: they are retried, and the log says why each time.)
 */
export class WrongListenerError extends BrokerConnectionError {
  override name = "WrongListenerError";
  override readonly code = "WRONG_LISTENER";
}

const encoder = new TextEncoder();

/** The largest answer taken: the sink's requests have small answers (Metadata the largest). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** One connection to one broker: the produce path's, or the cluster's for other requests. */
export class BrokerConnection {
  readonly #socket: Socket;
  readonly #options: BrokerConnectionOptions;
  readonly #where: string;
  readonly #clientId: Uint8Array;
  #correlationId = 0;
  readonly #waiting = new Map<number, Waiting>();
  /** Received bytes not yet parsed. */
  #received: Uint8Array[] = [];
  #receivedBytes = 0;
  #failed: Error | null = null;
  /** The request versions the broker takes, when asked (see {@linkcode produceVersion}). */
  #apis: ApiRanges | null = null;
  /** Takes no new request: closes once nothing is waiting (see {@linkcode #retire}). */
  #retiring = false;
  #retireTimer: ReturnType<typeof setTimeout> | undefined;
  /** Requests to write, in order; the first is being written. */
  #writes: {
    request: Uint8Array;
    /** The request's buffer is free again. */
    release: () => void;
    /** The request is done (only a request without an answer waits for this). */
    settle: (error: Error | null) => void;
  }[] = [];

  private constructor(socket: Socket, options: BrokerConnectionOptions, where: string) {
    this.#socket = socket;
    this.#options = options;
    this.#where = where;
    this.#clientId = encoder.encode(options.clientId);
    socket.on("data", (chunk: Uint8Array) => this.#onData(chunk));
    socket.on("error", (error: Error) => this.#fail(error));
    socket.on(
      "close",
      () => this.#fail(new BrokerConnectionError(`the connection to Kafka at ${where} closed`)),
    );
  }

  /** Connects to `host:port` and authenticates (SASL) if configured. */
  static async open(
    host: string,
    port: number,
    options: BrokerConnectionOptions,
  ): Promise<BrokerConnection> {
    const where = `${host}:${port}`;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const socket: Socket = options.tls === undefined
        ? connectTcp({ host, port })
        : connectTls({ host, port, ca: options.tls.ca, servername: isIP(host) ? undefined : host });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new BrokerConnectionError(`connecting to Kafka at ${where} timed out`));
      }, options.connectTimeoutMs);
      const failed = (error: Error) => {
        clearTimeout(timer);
        reject(
          new BrokerConnectionError(`connecting to Kafka at ${where} failed: ${error.message}`, {
            cause: error,
          }),
        );
      };
      socket.once("error", failed);
      socket.once(options.tls === undefined ? "connect" : "secureConnect", () => {
        clearTimeout(timer);
        socket.removeListener("error", failed);
        socket.setNoDelay(true);
        resolve(socket);
      });
    });
    const connection = new BrokerConnection(socket, options, where);
    if (options.sasl !== undefined) {
      // The exchange has the connect timeout too, whatever the requests' own.
      const timer = setTimeout(() => {
        connection.#fail(
          new BrokerConnectionError(
            `authenticating with Kafka at ${where} (SASL ${
              options.sasl!.mechanism
            }) took longer than ${options.connectTimeoutMs} ms`,
          ),
        );
      }, options.connectTimeoutMs);
      try {
        const lifetimeMs = await connection.#authenticate(options.sasl);
        if (lifetimeMs > 0) {
          // Timers take at most 2^31 - 1 ms (24.8 days); a longer one would fire at once.
          const retireMs = Math.min(lifetimeMs * 0.8, 2 ** 31 - 1);
          connection.#retireTimer = setTimeout(() => connection.#retire(), retireMs);
          Deno.unrefTimer(connection.#retireTimer);
        }
      } catch (error) {
        connection.close();
        throw error;
      } finally {
        clearTimeout(timer);
      }
    }
    if (options.clientVersion !== undefined) {
      try {
        const { errorCode, apis } = await connection.request(API_VERSIONS, options.clientVersion);
        checkError(errorCode, `asking Kafka at ${where} which request versions it takes`);
        connection.#apis = apis;
      } catch (error) {
        connection.close();
        throw error;
      }
    }
    return connection;
  }

  /**
   * The newest Produce version both this broker and the sink's requests (`produce.ts`) speak.
   * Brokers of one cluster may differ (one being upgraded): each connection's requests are
   * written at its broker's version.
   */
  get produceVersion(): number {
    return this.newestVersion(
      "Produce",
      PRODUCE_API_KEY,
      PRODUCE_VERSIONS.min,
      PRODUCE_VERSIONS.max,
    );
  }

  /**
   * The newest version of API `key` in `[min, max]` that this broker speaks; throws when none
   * is (a Kafka older than the sink needs), or when the broker was not asked.
   */
  newestVersion(name: string, key: number, min: number, max: number): number {
    if (this.#apis === null) {
      throw new Error(`The connection to Kafka at ${this.#where} was opened without clientVersion`);
    }
    const range = this.#apis.get(key);
    if (range === undefined || range.max < min || range.min > max) {
      const has = range === undefined
        ? "not at all"
        : range.max < min
        ? `up to version ${range.max}`
        : `from version ${range.min}`;
      throw new KafkaSinkError(
        `Kafka at ${this.#where} speaks ${name} ${has}; Spillway needs versions ${min}–${max} (Kafka ${OLDEST_KAFKA} or later): upgrade the broker`,
        { retriable: false },
      );
    }
    return Math.min(range.max, max);
  }

  /** The connection failed, was closed or retires: it takes no new request. */
  get broken(): boolean {
    return this.#failed !== null || this.#retiring;
  }

  /**
   * Bytes a request given to {@linkcode produce} leaves free at its start, for the request's
   * size and header.
   */
  get headerRoom(): number {
    return requestHeaderSize(this.#clientId, true);
  }

  /**
   * Sends a Produce request: `request` is its body after {@linkcode headerRoom} free bytes,
   * which this fills. Resolves once the broker answered without error (`noResponse`, acks 0:
   * once written); a partition refused rejects with its error ({@linkcode KafkaProtocolError},
   * an AggregateError of them when several were). `written` runs once the socket wrote
   * `request`: its buffer may be used again from then on.
   */
  produce(
    apiVersion: number,
    request: Uint8Array,
    noResponse: boolean,
    written: () => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#request(
        PRODUCE_API_KEY,
        apiVersion,
        request,
        true,
        { parser: checkProduceResponse, responseTagged: true },
        (error) => error ? reject(error) : resolve(),
        noResponse,
        written,
      );
    });
  }

  /** Sends one of the requests of `apis.ts` and resolves with its answer. */
  request<Args, Result>(api: Api<Args, Result>, args: Args): Promise<Result> {
    return new Promise((resolve, reject) => {
      let body: Uint8Array;
      try {
        const writer = new RequestWriter(requestHeaderSize(this.#clientId, api.taggedRequest));
        api.write(writer, args);
        body = writer.bytes();
      } catch (error) {
        reject(error);
        return;
      }
      this.#request(
        api.key,
        api.version,
        body,
        api.taggedRequest,
        { parser: api.read, responseTagged: api.taggedResponse },
        (error, response) => error ? reject(error) : resolve(response as Result),
      );
    });
  }

  /** Closes the socket; requests still waiting fail. */
  close(): void {
    this.#fail(new BrokerConnectionError(`the connection to Kafka at ${this.#where} was closed`));
  }

  /**
   * Writes a request (its header into the room at the start of `request`) and waits for its
   * answer.
   */
  #request(
    apiKey: number,
    apiVersion: number,
    request: Uint8Array,
    requestTagged: boolean,
    response: { parser: Parser; responseTagged: boolean },
    callback: (error: Error | null, response?: unknown) => void,
    noResponse = false,
    written?: () => void,
  ): void {
    if (this.#failed !== null || this.#retiring) {
      written?.();
      callback(
        this.#failed ??
          new BrokerConnectionError(`the connection to Kafka at ${this.#where} is retiring`),
      );
      return;
    }
    const correlationId = this.#correlationId = (this.#correlationId + 1) & 0x7fffffff;
    // The request's size (INT32), then header v1: api_key INT16, api_version INT16,
    // correlation_id INT32, client_id STRING; v2 adds an empty tagged-field section.
    const header = new DataView(request.buffer, request.byteOffset, request.byteLength);
    header.setInt32(0, request.byteLength - 4);
    header.setInt16(4, apiKey);
    header.setInt16(6, apiVersion);
    header.setInt32(8, correlationId);
    header.setInt16(12, this.#clientId.byteLength);
    request.set(this.#clientId, 14);
    if (requestTagged) request[14 + this.#clientId.byteLength] = 0;
    // Answered or not, a request that takes longer than this (a broker that stopped reading
    // holds the write, too) gives the connection up.
    const timer = setTimeout(() => {
      this.#fail(
        new BrokerConnectionError(
          `Kafka at ${this.#where} did not ${
            noResponse ? "take" : "answer"
          } a request within ${this.#options.requestTimeoutMs} ms`,
        ),
      );
    }, this.#options.requestTimeoutMs);
    if (!noResponse) {
      this.#waiting.set(correlationId, { ...response, callback, timer });
    }
    let settled = !noResponse;
    this.#writes.push({
      request,
      release: () => written?.(),
      settle: (error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        callback(error);
      },
    });
    if (this.#writes.length === 1) this.#writeNext();
  }

  /**
   * Writes the oldest request waiting, then the next once the socket took it: one write at a
   * time, so the socket never gathers several (Deno's sockets join gathered writes into a new
   * buffer, the copy this connection is here to avoid).
   */
  #writeNext(): void {
    const next = this.#writes[0];
    if (next === undefined || this.#failed !== null) return;
    this.#socket.write(next.request, (error?: Error | null) => {
      next.release();
      next.settle(error ?? this.#failed);
      if (this.#writes[0] !== next) return; // failed meanwhile: the queue was emptied
      this.#writes.shift();
      this.#writeNext();
      this.#closeIfRetired();
    });
  }

  #onData(chunk: Uint8Array): void {
    this.#received.push(chunk);
    this.#receivedBytes += chunk.byteLength;
    while (this.#receivedBytes >= 4) {
      let first = this.#received[0]!;
      if (first.byteLength < 4) first = this.#join();
      const size = new DataView(first.buffer, first.byteOffset, 4).getInt32(0);
      if (size < 4 || size > MAX_RESPONSE_BYTES) {
        this.#fail(
          new WrongListenerError(
            `Kafka at ${this.#where} sent an answer of ${size} bytes, which none of the sink's requests gets; check that brokers names a Kafka listener (not another service) and that tls matches it`,
          ),
        );
        return;
      }
      if (this.#receivedBytes < 4 + size) return;
      if (first.byteLength < 4 + size) first = this.#join();
      const frame = first.subarray(4, 4 + size);
      const rest = first.subarray(4 + size);
      if (rest.byteLength > 0) this.#received[0] = rest;
      else this.#received.shift();
      this.#receivedBytes -= 4 + size;
      this.#onResponse(frame);
      if (this.#failed !== null) return;
    }
  }

  /** The received bytes as one buffer (kept as the only one). */
  #join(): Uint8Array {
    if (this.#received.length > 1) this.#received = [Buffer.concat(this.#received)];
    return this.#received[0]!;
  }

  #onResponse(frame: Uint8Array): void {
    const correlationId = new DataView(frame.buffer, frame.byteOffset, 4).getInt32(0);
    const waiting = this.#waiting.get(correlationId);
    if (waiting === undefined) {
      this.#fail(
        new BrokerConnectionError(
          `Kafka at ${this.#where} answered a request it was not sent (correlation id ${correlationId})`,
        ),
      );
      return;
    }
    this.#waiting.delete(correlationId);
    clearTimeout(waiting.timer);
    let response: unknown;
    try {
      // The response header: correlation_id INT32, then (v1) a tagged-field section.
      const reader = new ResponseReader(frame);
      reader.int32();
      if (waiting.responseTagged) reader.tags();
      response = waiting.parser(reader);
    } catch (error) {
      this.#answer(waiting, error as Error);
      return;
    }
    this.#answer(waiting, null, response);
  }

  /** Hands an answer on; a callback that throws gives the connection up, failing the rest. */
  #answer(waiting: Waiting, error: Error | null, response?: unknown): void {
    try {
      waiting.callback(error, response);
    } catch (thrown) {
      this.#fail(thrown as Error);
      return;
    }
    this.#closeIfRetired();
  }

  /** Takes no new request from now on, and closes once nothing is waiting. */
  #retire(): void {
    this.#retiring = true;
    this.#closeIfRetired();
  }

  #closeIfRetired(): void {
    if (!this.#retiring || this.#failed !== null) return;
    if (this.#waiting.size > 0 || this.#writes.length > 0) return;
    this.#fail(
      new BrokerConnectionError(
        `the connection to Kafka at ${this.#where} retired before its SASL session ended`,
      ),
    );
  }

  #fail(error: Error): void {
    if (this.#failed !== null) return;
    clearTimeout(this.#retireTimer);
    this.#failed = error instanceof BrokerConnectionError ? error : new BrokerConnectionError(
      `the connection to Kafka at ${this.#where} failed: ${error.message}`,
      { cause: error },
    );
    this.#socket.destroy();
    // The request being written is released when the socket is done with it; the rest never
    // reached it.
    const writes = this.#writes.splice(0);
    writes.forEach((write, i) => {
      if (i > 0) write.release();
      write.settle(this.#failed);
    });
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const { timer, callback } of waiting) {
      clearTimeout(timer);
      callback(this.#failed);
    }
  }

  /**
   * SaslHandshake v1, then the mechanism's exchange in SaslAuthenticate v2 requests; returns the
   * session's lifetime the broker gave (0: unlimited). A refusal is SASL_AUTHENTICATION_FAILED
   * (or UNSUPPORTED_SASL_MECHANISM); the password is in no message.
   */
  async #authenticate(sasl: NonNullable<BrokerConnectionOptions["sasl"]>): Promise<number> {
    const handshake = await this.request(SASL_HANDSHAKE, sasl.mechanism);
    if (handshake.errorCode !== 0) {
      throw new KafkaProtocolError(
        handshake.errorCode,
        `asking Kafka at ${this.#where} for SASL ${sasl.mechanism}`,
        `the listener offers ${handshake.mechanisms.join(", ") || "no mechanism"}`,
      );
    }
    const step = async (bytes: Uint8Array) => {
      const answer = await this.request(SASL_AUTHENTICATE, bytes);
      if (answer.errorCode !== 0) {
        throw new KafkaProtocolError(
          answer.errorCode,
          `authenticating with Kafka at ${this.#where} (SASL ${sasl.mechanism})`,
          answer.errorMessage,
        );
      }
      return answer;
    };
    if (sasl.mechanism === "PLAIN") {
      const last = await step(encoder.encode(`\0${sasl.username}\0${sasl.password}`));
      return Number(last.sessionLifetimeMs);
    }
    const scram = new ScramClient({
      password: sasl.password,
      username: sasl.username,
      hash: sasl.mechanism === "SCRAM-SHA-512" ? "SHA-512" : "SHA-256",
      // Kafka's SCRAM has no channel binding: its GS2 header is "n,," whatever the transport
      // (the "y,," a TLS client would send means something else, and the broker refuses it).
      tls: false,
    });
    const textOf = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    try {
      const serverFirst = await step(scram.first([sasl.mechanism]));
      const serverFinal = await step(await scram.final(textOf(serverFirst.authBytes)));
      scram.verify(textOf(serverFinal.authBytes));
      return Number(serverFinal.sessionLifetimeMs);
    } catch (error) {
      if (error instanceof KafkaProtocolError || error instanceof BrokerConnectionError) {
        throw error;
      }
      // The exchange itself failed (a malformed answer, a signature that does not match).
      throw new KafkaProtocolError(
        58,
        `authenticating with Kafka at ${this.#where} (SASL ${sasl.mechanism})`,
        (error as Error).message,
      );
    }
  }
}

/** Produce's answer: throws for the partitions refused. */
function checkProduceResponse(reader: ResponseReader): void {
  const refused = readProduceResponse(reader);
  if (refused.length === 0) return;
  const errors = refused.map(({ topic, partition, errorCode, errorMessage }) =>
    new KafkaProtocolError(errorCode, `producing to ${topic}[${partition}]`, errorMessage)
  );
  if (errors.length === 1) throw errors[0];
  throw new AggregateError(errors, errors.map((error) => error.message).join("; "));
}

/**
 * Connections by address: the open one, or a new one once it broke (the requests on it failed,
 * and are sent again on the new one); none once closed.
 */
export class ConnectionPool<C extends { readonly broken: boolean; close(): void }> {
  readonly #connections = new Map<string, Promise<C>>();
  readonly #owner: string;
  #closed = false;

  /** `owner` names what holds the pool, for messages: e.g. `The Kafka producer`. */
  constructor(owner: string) {
    this.#owner = owner;
  }

  /** The connection to `address`: the open one, or one `open` makes. */
  async get(address: string, open: () => Promise<C>): Promise<C> {
    for (;;) {
      if (this.#closed) {
        throw new KafkaSinkError(`${this.#owner} was closed; not connecting to ${address}`, {
          retriable: true,
        });
      }
      const known = this.#connections.get(address);
      if (known === undefined) break;
      const connection = await known.catch(() => null);
      if (this.#closed) continue;
      if (connection !== null && !connection.broken) return connection;
      if (this.#connections.get(address) === known) break;
    }
    const opening = open();
    this.#connections.set(address, opening);
    opening.catch(() => {
      if (this.#connections.get(address) === opening) this.#connections.delete(address);
    });
    return await opening;
  }

  /** The connections opened or being opened. */
  values(): IterableIterator<Promise<C>> {
    return this.#connections.values();
  }

  /** Closes every connection; no new one is opened. */
  close(): void {
    this.#closed = true;
    for (const opening of this.#connections.values()) {
      opening.then((connection) => connection.close(), () => {});
    }
    this.#connections.clear();
  }
}

/** The bytes of a request's size and header (v2 when `tagged`, else v1). */
function requestHeaderSize(clientId: Uint8Array, tagged: boolean): number {
  return 14 + clientId.byteLength + (tagged ? 1 : 0);
}
