/**
 * One connection to PostgreSQL: startup, TLS, authentication, simple queries and
 * the replication commands. The socket lives here and in `_transport.ts` only;
 * parsing is delegated to the pure modules.
 *
 * @module
 */

import { md5PasswordResponse, ScramClient } from "../decoder/auth.ts";
import {
  backendMessageName,
  type FieldDescription,
  type Frame,
  FrameParser,
  parseAuthentication,
  parseBackendKeyData,
  parseCommandComplete,
  parseDataRow,
  parseNotice,
  parseParameterStatus,
  parseRowDescription,
} from "../decoder/backend.ts";
import { BackendCode } from "../decoder/codes.ts";
import { ConfigError, ConnectionError, PostgresError } from "../errors.ts";
import {
  encodeCopyDone,
  encodePassword,
  encodeQuery,
  encodeSaslInitialResponse,
  encodeSaslResponse,
  encodeSslRequest,
  encodeStartup,
  encodeTerminate,
} from "../decoder/frontend.ts";
import { formatLsn, type Lsn, LSN_ZERO, parseLsn } from "../decoder/lsn.ts";
import { Transport } from "./_transport.ts";
import {
  type AuthMethod,
  type ConnectOptions,
  DEFAULT_CONNECT_TIMEOUT_MS,
  SESSION_PARAMETERS,
  type SslMode,
  SYSTEM_ROOTS,
} from "./connection_string.ts";
import { checkSlotName } from "./sql.ts";
import { explain } from "./explain.ts";
import { type CopyBothHost, ReplicationStream, type ReplicationStreamOptions } from "./stream.ts";

/** The rows of one statement of a simple query; values are text or null. */
export interface QueryResult {
  command: string;
  fields: FieldDescription[];
  rows: (string | null)[][];
}

/** Result of IDENTIFY_SYSTEM. */
export interface SystemIdentity {
  systemId: string;
  timeline: number;
  xlogPos: Lsn;
  dbName: string | null;
}

/** Options of CREATE_REPLICATION_SLOT. */
export interface CreateSlotOptions {
  temporary?: boolean;
  /** `export` (default) keeps a snapshot until the next command; `nothing` skips it. */
  snapshot?: "export" | "nothing" | "use";
  /** PG15+: decode prepared transactions at PREPARE time. */
  twoPhase?: boolean;
  /** PG17+: let standbys synchronise this slot. */
  failover?: boolean;
}

/** Result of CREATE_REPLICATION_SLOT. */
export interface CreatedSlot {
  slotName: string;
  consistentPoint: Lsn;
  snapshotName: string | null;
  outputPlugin: string;
}

/** pgoutput options of START_REPLICATION. */
export interface PgoutputOptions {
  protoVersion: 1 | 2 | 3 | 4;
  publicationNames: string[];
  binary?: boolean;
  messages?: boolean;
  streaming?: boolean | "parallel";
  twoPhase?: boolean;
  origin?: "any" | "none";
}

/** Options of {@linkcode PgConnection.startReplication}. */
export interface StartReplicationOptions extends ReplicationStreamOptions {
  slot: string;
  /** `LSN_ZERO` (default) resumes from the slot's confirmed position. */
  startLsn?: Lsn;
  pgoutput: PgoutputOptions;
}

/**
 * A connection speaking the simple-query protocol, optionally as a logical walsender.
 *
 * @example
 * ```ts ignore
 * import { PgConnection } from "./connection.ts";
 * import { parseConnectionUrl } from "./connection_string.ts";
 * const conn = await PgConnection.connect(parseConnectionUrl("postgres://postgres@localhost/app"));
 * const [result] = await conn.query("SELECT 1 AS one");
 * console.log(result?.rows); // [["1"]]
 * await conn.close();
 * ```
 */
export class PgConnection implements CopyBothHost {
  readonly options: ConnectOptions;
  readonly parameters = new Map<string, string>();
  backendPid = 0;
  #transport: Transport;
  #parser: FrameParser;
  #frames: Frame[] = [];
  #frameIndex = 0;
  #busy = false;
  #closed = false;

  private constructor(options: ConnectOptions, transport: Transport) {
    this.options = options;
    this.#transport = transport;
    this.#parser = new FrameParser({ maxFrameBytes: options.maxMessageBytes });
  }

  /** Connects, negotiates TLS, authenticates, and waits for ReadyForQuery. */
  static async connect(
    options: ConnectOptions,
    control: { signal?: AbortSignal } = {},
  ): Promise<PgConnection> {
    const where = `${options.host}:${options.port}`;
    const deadlineMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    control.signal?.throwIfAborted();
    const transport = await Transport.connect(options.host, options.port, {
      timeoutMs: deadlineMs,
    });
    const connection = new PgConnection(options, transport);
    // The deadline and the signal end the start-up by closing the socket: every wait in it
    // (SSLRequest, authentication, a flood of notices) ends with the connection.
    let cut: Error | null = null;
    const stop = (error: Error) => {
      cut ??= error;
      transport.close();
    };
    const timer = setTimeout(() =>
      stop(
        new ConnectionError(
          `Cannot connect to ${where}: the server did not finish the start-up within ${deadlineMs} ms; check that a PostgreSQL server that is not overloaded listens there, or raise connect_timeout`,
        ),
      ), deadlineMs);
    const onAbort = () =>
      stop(new ConnectionError(`Connecting to ${where} was stopped`, { retriable: false }));
    control.signal?.addEventListener("abort", onAbort, { once: true });
    // A signal that came while the socket was connecting fired no listener yet.
    if (control.signal?.aborted) onAbort();
    try {
      await connection.#negotiateTls();
      await connection.#startup();
    } catch (error) {
      transport.close();
      if (cut !== null) throw cut;
      if (error instanceof PostgresError) {
        throw new PostgresError(
          error.notice,
          `Cannot connect to ${where} as "${options.user}"`,
          error.fix,
        );
      }
      throw error;
    } finally {
      clearTimeout(timer);
      control.signal?.removeEventListener("abort", onAbort);
    }
    return connection;
  }

  /** Major version of the server, e.g. 16. */
  get serverMajorVersion(): number {
    const text = this.parameters.get("server_version") ?? "0";
    return Number.parseInt(text, 10);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Throws unless `require_auth` allows `method` (before anything is sent for it). */
  #allow(method: AuthMethod, what: string): void {
    const allowed = this.options.requireAuth;
    if (allowed === undefined || allowed.includes(method)) return;
    throw new ConfigError(
      `Refusing to authenticate to ${this.options.host}: the server asks for ${what}, and require_auth allows only ${
        allowed.join(", ")
      }; nothing was sent`,
    );
  }

  /**
   * At AuthenticationOk: a SCRAM exchange must have ended with the server's proof, and a
   * policy without `none` (or with channel_binding=require) needs authentication to have happened.
   */
  #checkAuthenticated(scram: ScramClient | null): void {
    const options = this.options;
    if (scram !== null && !scram.verified) {
      throw new ConnectionError(
        `Refusing the connection to ${options.host}: the server ended SCRAM without proving that it knows the password; it may not be the server it claims to be`,
        { retriable: false },
      );
    }
    const unauthenticated = scram === null && !this.#askedForPassword;
    if (
      unauthenticated &&
      ((options.requireAuth !== undefined && !options.requireAuth.includes("none")) ||
        options.channelBinding === "require")
    ) {
      throw new ConnectionError(
        `Refusing the connection to ${options.host}: the server let us in without authentication, and ${
          options.channelBinding === "require" ? "channel_binding=require" : "require_auth"
        } does not allow that`,
        { retriable: false },
      );
    }
  }

  async #negotiateTls(): Promise<void> {
    const mode = this.options.sslmode ?? "prefer";
    if (mode === "disable") return;
    // Known before anything is sent: a verifying mode without a root certificate stops here.
    const ca = rootCertificates(mode, this.options.sslrootcert);
    await this.#transport.write(encodeSslRequest());
    const answer = await this.#transport.read();
    if (answer === null) {
      throw new ConnectionError("The server closed the connection during SSLRequest");
    }
    if (answer.byteLength !== 1) {
      throw new ConnectionError("Refusing connection: unexpected bytes in answer to SSLRequest", {
        retriable: false,
      });
    }
    if (answer[0] === 0x53) { // 'S'
      await this.#transport.startTls({
        host: this.options.host,
        mode,
        ca,
        timeoutMs: this.options.connectTimeoutMs,
      });
      return;
    }
    if (answer[0] === 0x4e) { // 'N'
      if (mode === "prefer") return;
      throw new ConnectionError(
        `Cannot connect with sslmode=${mode}: the server does not accept TLS; enable ssl on the server or use sslmode=prefer`,
        { retriable: false },
      );
    }
    throw new ConnectionError(
      `Refusing connection: the server answered SSLRequest with byte 0x${answer[0]!.toString(16)}`,
      { retriable: false },
    );
  }

  async #startup(): Promise<void> {
    const options = this.options;
    const parameters: Record<string, string> = {
      user: options.user,
      database: options.database,
      application_name: options.applicationName ?? "spillway",
      ...SESSION_PARAMETERS,
      ...options.parameters,
    };
    if (options.replication) parameters.replication = options.replication;
    await this.#transport.write(encodeStartup(parameters));
    let scram: ScramClient | null = null;
    for (;;) {
      const frame = await this.#nextFrame();
      switch (frame.code) {
        case BackendCode.Authentication: {
          const request = parseAuthentication(frame.body);
          switch (request.kind) {
            case "ok":
              this.#checkAuthenticated(scram);
              break;
            case "cleartext":
              this.#allow("password", "a password in clear text");
              await this.#transport.write(encodePassword(this.#password("cleartext")));
              break;
            case "md5":
              this.#allow("md5", "an MD5 password hash");
              await this.#transport.write(
                encodePassword(
                  md5PasswordResponse(options.user, this.#password("md5"), request.salt),
                ),
              );
              break;
            case "sasl":
              this.#allow("scram-sha-256", "SCRAM");
              scram = new ScramClient({
                password: this.#password("SCRAM-SHA-256"),
                tls: this.#transport.encrypted,
                serverCertificate: this.#transport.peerCertificate,
              });
              {
                const clientFirst = scram.first(request.mechanisms); // picks the mechanism
                if (
                  options.channelBinding === "require" && scram.mechanism !== "SCRAM-SHA-256-PLUS"
                ) {
                  throw new ConfigError(
                    `Refusing to authenticate to ${options.host}: channel_binding=require, but SCRAM with channel binding is not possible here (it needs TLS and a server offering SCRAM-SHA-256-PLUS); use sslmode=require or stronger, or channel_binding=prefer`,
                  );
                }
                await this.#transport.write(
                  encodeSaslInitialResponse(scram.mechanism, clientFirst),
                );
              }
              break;
            case "sasl-continue":
              if (scram === null) throw new ConnectionError("SASLContinue without SASL start");
              await this.#transport.write(encodeSaslResponse(await scram.final(request.data)));
              break;
            case "sasl-final":
              if (scram === null) throw new ConnectionError("SASLFinal without SASL start");
              scram.verify(request.data);
              break;
            case "unsupported":
              throw new ConfigError(
                `Cannot authenticate: the server asks for authentication method ${request.code}, which Spillway does not support; use scram-sha-256, md5, password or trust in pg_hba.conf`,
              );
            default:
              return assertNever(request);
          }
          break;
        }
        case BackendCode.ParameterStatus: {
          const [name, value] = parseParameterStatus(frame.body);
          this.parameters.set(name, value);
          break;
        }
        case BackendCode.BackendKeyData:
          this.backendPid = parseBackendKeyData(frame.body).pid;
          break;
        case BackendCode.NoticeResponse:
          this.options.onNotice?.(parseNotice(frame.body));
          break;
        case BackendCode.ErrorResponse:
          throw explain(parseNotice(frame.body), undefined, this.options);
        case BackendCode.NegotiateProtocolVersion:
          break;
        case BackendCode.ReadyForQuery:
          return;
        default:
          throw new ConnectionError(
            `Unexpected ${backendMessageName(frame.code)} message during startup`,
          );
      }
    }
  }

  #password(method: string): string {
    this.#askedForPassword = true;
    if (this.options.password === undefined) {
      throw new ConfigError(
        `Cannot authenticate as "${this.options.user}": the server asks for a password (${method}) and none was given; set PGPASSWORD, use a password file (~/.pgpass), or put it in the URL (postgres://user:password@host/db)`,
      );
    }
    return this.options.password;
  }

  /** The server asked for a password (in clear text, MD5 or SCRAM). */
  #askedForPassword = false;

  /** Next backend frame; reads from the socket when none is buffered. */
  async #nextFrame(): Promise<Frame> {
    for (;;) {
      if (this.#frameIndex < this.#frames.length) {
        return this.#frames[this.#frameIndex++]!;
      }
      // A frame over the limit after the frames just handed out: fail now, not at the next read.
      const failure = this.#parser.failure;
      if (failure !== null) throw failure;
      const chunk = await this.#transport.read();
      if (chunk === null) {
        this.#closed = true;
        throw new ConnectionError("The server closed the connection");
      }
      this.#frames = this.#parser.push(chunk);
      this.#frameIndex = 0;
    }
  }

  /** Frames already buffered, without waiting; used by the replication stream. */
  takeBufferedFrames(): Frame[] {
    const frames = this.#frames.slice(this.#frameIndex);
    this.#frames = [];
    this.#frameIndex = 0;
    return frames;
  }

  /** The frame parser and transport, handed to a replication stream. */
  get wire(): { transport: Transport; parser: FrameParser } {
    return { transport: this.#transport, parser: this.#parser };
  }

  /**
   * Runs SQL with the simple-query protocol (several statements allowed) and
   * returns one result per statement. Values are text.
   */
  async query(sql: string): Promise<QueryResult[]> {
    if (this.#busy) {
      throw new Error("Cannot run a query: the connection is busy (streaming or another query)");
    }
    this.#busy = true;
    try {
      await this.#transport.write(encodeQuery(sql));
      const results: QueryResult[] = [];
      let current: QueryResult = { command: "", fields: [], rows: [] };
      let error: PostgresError | null = null;
      for (;;) {
        const frame = await this.#nextFrame();
        switch (frame.code) {
          case BackendCode.RowDescription:
            current.fields = parseRowDescription(frame.body);
            break;
          case BackendCode.DataRow:
            current.rows.push(parseDataRow(frame.body));
            break;
          case BackendCode.CommandComplete:
            current.command = parseCommandComplete(frame.body);
            results.push(current);
            current = { command: "", fields: [], rows: [] };
            break;
          case BackendCode.EmptyQueryResponse:
            break;
          case BackendCode.ErrorResponse:
            error = explain(parseNotice(frame.body), sql, this.options);
            break;
          case BackendCode.NoticeResponse:
            this.options.onNotice?.(parseNotice(frame.body));
            break;
          case BackendCode.ParameterStatus: {
            const [name, value] = parseParameterStatus(frame.body);
            this.parameters.set(name, value);
            break;
          }
          case BackendCode.NotificationResponse:
            break;
          case BackendCode.CopyInResponse:
          case BackendCode.CopyOutResponse:
          case BackendCode.CopyBothResponse:
            throw new ConfigError(`Cannot run "${sql}" with query(): it starts a COPY`);
          case BackendCode.ReadyForQuery:
            if (error !== null) throw error;
            return results;
          default:
            throw new ConnectionError(
              `Unexpected ${backendMessageName(frame.code)} message in a query response`,
            );
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  /** Runs one statement and returns its rows as objects keyed by column name. */
  async queryObjects(sql: string): Promise<Record<string, string | null>[]> {
    const results = await this.query(sql);
    const last = results[results.length - 1];
    if (last === undefined) return [];
    return last.rows.map((row) =>
      Object.fromEntries(last.fields.map((field, i) => [field.name, row[i] ?? null]))
    );
  }

  /** IDENTIFY_SYSTEM: the cluster id, timeline, current WAL position and database. */
  async identifySystem(): Promise<SystemIdentity> {
    const [row] = await this.queryObjects("IDENTIFY_SYSTEM");
    if (row === undefined) throw new ConnectionError("IDENTIFY_SYSTEM returned no row");
    return {
      systemId: row.systemid ?? "",
      timeline: Number(row.timeline),
      xlogPos: parseLsn(row.xlogpos ?? "0/0"),
      dbName: row.dbname ?? null,
    };
  }

  /** CREATE_REPLICATION_SLOT … LOGICAL pgoutput, in the syntax the server understands. */
  async createReplicationSlot(name: string, options: CreateSlotOptions = {}): Promise<CreatedSlot> {
    checkSlotName(name);
    const snapshot = options.snapshot ?? "export";
    let sql = `CREATE_REPLICATION_SLOT ${name}${
      options.temporary ? " TEMPORARY" : ""
    } LOGICAL pgoutput`;
    if (this.serverMajorVersion >= 15) {
      const parts = [`SNAPSHOT '${snapshot}'`];
      if (options.twoPhase) parts.push("TWO_PHASE true");
      if (options.failover) {
        if (this.serverMajorVersion < 17) {
          throw new ConfigError(
            `Cannot create slot "${name}" with failover: PostgreSQL ${this.serverMajorVersion} has no failover slots (17+ has)`,
          );
        }
        parts.push("FAILOVER true");
      }
      sql += ` (${parts.join(", ")})`;
    } else {
      if (options.twoPhase || options.failover) {
        throw new ConfigError(
          `Cannot create slot "${name}" with ${
            options.twoPhase ? "two_phase" : "failover"
          } on PostgreSQL 14: it needs 15+ (two_phase) or 17+ (failover)`,
        );
      }
      sql += { export: " EXPORT_SNAPSHOT", nothing: " NOEXPORT_SNAPSHOT", use: " USE_SNAPSHOT" }[
        snapshot
      ];
    }
    const [row] = await this.queryObjects(sql);
    if (row === undefined) throw new ConnectionError("CREATE_REPLICATION_SLOT returned no row");
    return {
      slotName: row.slot_name ?? name,
      consistentPoint: parseLsn(row.consistent_point ?? "0/0"),
      snapshotName: row.snapshot_name ?? null,
      outputPlugin: row.output_plugin ?? "pgoutput",
    };
  }

  /** DROP_REPLICATION_SLOT; with `wait`, blocks until the slot's reader lets go. */
  async dropReplicationSlot(name: string, options: { wait?: boolean } = {}): Promise<void> {
    checkSlotName(name);
    await this.query(`DROP_REPLICATION_SLOT ${name}${options.wait ? " WAIT" : ""}`);
  }

  /**
   * START_REPLICATION SLOT … LOGICAL with pgoutput options. Resolves once the
   * server answers CopyBothResponse; errors about options arrive before that.
   */
  async startReplication(options: StartReplicationOptions): Promise<ReplicationStream> {
    checkSlotName(options.slot);
    const sql = `START_REPLICATION SLOT ${options.slot} LOGICAL ${
      formatLsn(options.startLsn ?? LSN_ZERO)
    } (${pgoutputOptionList(options.pgoutput)})`;
    if (this.#busy) throw new Error("Cannot start replication: the connection is busy");
    this.#busy = true;
    await this.#transport.write(encodeQuery(sql));
    let error: PostgresError | null = null;
    for (;;) {
      const frame = await this.#nextFrame();
      switch (frame.code) {
        case BackendCode.CopyBothResponse:
          return new ReplicationStream(this, options, () => this.#busy = false);
        case BackendCode.ErrorResponse:
          error = explain(parseNotice(frame.body), sql, this.options);
          break;
        case BackendCode.NoticeResponse:
          this.options.onNotice?.(parseNotice(frame.body));
          break;
        case BackendCode.ParameterStatus:
          break;
        case BackendCode.ReadyForQuery:
          this.#busy = false;
          throw error ?? new ConnectionError("START_REPLICATION ended without streaming");
        default:
          this.#busy = false;
          throw new ConnectionError(
            `Unexpected ${backendMessageName(frame.code)} message in answer to START_REPLICATION`,
          );
      }
    }
  }

  /**
   * Sends Terminate and closes the socket. A server that does not take the Terminate within
   * a second (it stopped reading) is not waited for.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.#transport.write(encodeTerminate()),
        new Promise<void>((resolve) => timer = setTimeout(resolve, 1_000)),
      ]);
    } catch {
      // The server may already be gone; closing is all that is left to do.
    } finally {
      clearTimeout(timer);
    }
    this.#transport.close();
  }

  /** Closes the socket without a goodbye, as a crash would. */
  destroy(): void {
    this.#closed = true;
    this.#transport.close();
  }

  /** @internal Sends raw bytes; used by the replication stream. */
  send(bytes: Uint8Array): Promise<void> {
    return this.#transport.write(bytes);
  }

  /** @internal Marks the connection closed after the stream saw the socket end. */
  markClosed(): void {
    this.#closed = true;
  }

  /** @internal CopyDone for a stream shutdown. */
  sendCopyDone(): Promise<void> {
    return this.#transport.write(encodeCopyDone());
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Renders pgoutput options as START_REPLICATION's option list. */
export function pgoutputOptionList(options: PgoutputOptions): string {
  const names = options.publicationNames.map((name) => `"${name.replaceAll('"', '""')}"`).join(",");
  const parts = [
    `proto_version '${options.protoVersion}'`,
    `publication_names '${names.replaceAll("'", "''")}'`,
  ];
  if (options.binary !== undefined) parts.push(`binary '${options.binary}'`);
  if (options.messages !== undefined) parts.push(`messages '${options.messages}'`);
  if (options.streaming !== undefined) {
    parts.push(
      `streaming '${
        options.streaming === "parallel" ? "parallel" : options.streaming ? "on" : "off"
      }'`,
    );
  }
  if (options.twoPhase !== undefined) parts.push(`two_phase '${options.twoPhase}'`);
  if (options.origin !== undefined) parts.push(`origin '${options.origin}'`);
  return parts.join(", ");
}

/** The highest pgoutput protocol version a server major version supports. */
export function maxProtoVersion(serverMajorVersion: number): 1 | 2 | 3 | 4 {
  if (serverMajorVersion >= 16) return 4;
  if (serverMajorVersion >= 15) return 3;
  if (serverMajorVersion >= 14) return 2;
  return 1;
}

/**
 * The CA certificates that verify the server under `mode`, as libpq picks them: the given
 * PEM text; the runtime's public roots (`undefined`) only for `sslrootcert=system`; without
 * either, `~/.postgresql/root.crt`, and no connection when that file is missing. Modes that
 * do not verify take what is given.
 */
function rootCertificates(mode: SslMode, sslrootcert: string | undefined): string | undefined {
  if (mode !== "verify-ca" && mode !== "verify-full") {
    return sslrootcert === SYSTEM_ROOTS ? undefined : sslrootcert;
  }
  if (sslrootcert === SYSTEM_ROOTS) return undefined;
  if (sslrootcert !== undefined) return sslrootcert;
  const home = Deno.env.get("HOME");
  const file = home === undefined ? null : `${home}/.postgresql/root.crt`;
  try {
    if (file !== null) return Deno.readTextFileSync(file);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  throw new ConfigError(
    `Cannot verify the server's certificate with sslmode=${mode}: no root certificate was given and ${
      file ?? "~/.postgresql/root.crt"
    } does not exist; give sslrootcert=<CA file>, or sslrootcert=system to trust the system's public roots, or use sslmode=require to encrypt without verifying`,
  );
}

function assertNever(value: never): never {
  throw new Error(`Unhandled case: ${JSON.stringify(value)}`);
}
