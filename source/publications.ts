/**
 * Publications Spillway creates, made so that they never break the application's writes.
 *
 * PostgreSQL refuses UPDATE and DELETE on a table without a replica identity while a
 * publication that publishes them covers the table (SQLSTATE 55000). So:
 *
 * - {@linkcode refuseBlockedTables}: a publication made for a pipeline (or for `tail
 *   --create`) is not created when it would cover such a table; the error names them and
 *   the fix.
 * - {@linkcode TailSession}: the publications of one `tail` session without a named
 *   publication. Every table's INSERT and TRUNCATE come from a `FOR ALL TABLES` publication
 *   that publishes only those; UPDATE and DELETE from a second publication that lists the
 *   tables with a replica identity, kept in step as tables come, go or change identity. The
 *   publications are dropped at the end over a connection of their own (so a dead
 *   replication stream does not leave them behind), and those of earlier sessions that
 *   crashed are dropped at the next start.
 *
 * @module
 */

import { ConfigError, ConnectionError, errorMessage } from "../errors.ts";
import {
  type DbTable,
  publicationNames,
  querySlots,
  readPublication,
  readTables,
  replicaIdentity,
  tableKey,
  tablesBlockedByPublishing,
} from "../postgres/catalog.ts";
import { PgConnection } from "../postgres/connection.ts";
import type { ConnectOptions } from "../postgres/connection_string.ts";
import { quoteIdent, quoteLiteral } from "../postgres/sql.ts";
import { type Logger, silentLogger } from "../ops/log.ts";

/**
 * Throws a ConfigError when `tables` (what a new publication would cover) holds tables
 * without a replica identity; `remedy` ends the message with the way to leave them out.
 */
export function refuseBlockedTables(
  publication: string,
  tables: readonly DbTable[],
  remedy: string,
): void {
  const blocked = tablesBlockedByPublishing(tables).map((t) => t.qualified);
  if (blocked.length === 0) return;
  throw new ConfigError(
    `Cannot create publication "${publication}": it would cover ${blocked.length} table(s) without a replica identity (${
      listFew(blocked)
    }), and the application's UPDATE and DELETE on them would fail while it exists; give each a key (ALTER TABLE ${
      blocked[0]
    } ADD PRIMARY KEY (…), or ALTER TABLE ${blocked[0]} REPLICA IDENTITY FULL), or ${remedy}`,
  );
}

/**
 * The clause of a publication of every table (`FOR ALL TABLES`), or a ConfigError when a
 * table lacks a replica identity (see {@linkcode refuseBlockedTables}).
 */
export async function allTablesTarget(
  connection: PgConnection,
  publication: string,
): Promise<string> {
  refuseBlockedTables(
    publication,
    await readTables(connection),
    `create the publication yourself FOR TABLE the tables you want`,
  );
  return "FOR ALL TABLES";
}

/** The start of the name of every session object of `tail`. */
export const TAIL_SESSION_PREFIX = "spillway_tail_";

/** `spillway_tail_<pid>_<random>`, with `_i` / `_k` on the publications. */
const SESSION_NAME = /^spillway_tail_\d+_[0-9a-z]+(?:_[ik])?$/;

/**
 * The advisory lock a live session holds (two int4 keys: this namespace and the hash of the
 * session's name), so a new session never drops the publications of one that is still
 * starting, whatever the clocks say.
 */
const LOCK = (name: string) =>
  `pg_catalog.hashtext('spillway_tail'), pg_catalog.hashtext(${quoteLiteral(name)})`;

/**
 * Settings of the session's own connection: its catalog changes wait at most a second for a
 * lock (and are tried again at the next refresh) rather than queue the application's DDL and
 * writes behind them.
 */
const SESSION_SETTINGS = { lock_timeout: "1s", statement_timeout: "30s" };

/** Options of {@linkcode TailSession.begin}. */
export interface TailSessionOptions {
  connection: ConnectOptions;
  log?: Logger;
  signal?: AbortSignal;
}

/** The publications of one `tail` session, and the name of its temporary slot. */
export class TailSession {
  /** The temporary slot's name; the publications are named after it. */
  readonly slot: string;
  /** All tables' INSERT and TRUNCATE. */
  readonly inserts: string;
  /** UPDATE and DELETE of the tables with a replica identity. */
  readonly keyed: string;
  #options: TailSessionOptions;
  #log: Logger;
  #connection: PgConnection | null = null;
  #blocked = new Set<string>();
  #refreshing: Promise<void> | null = null;
  #ended: Promise<void> | null = null;
  /** Whether creating the publications began (there may be something to drop). */
  #madeAny = false;

  private constructor(options: TailSessionOptions) {
    this.#options = options;
    this.#log = options.log ?? silentLogger;
    const random = crypto.getRandomValues(new Uint32Array(2));
    this.slot = `${TAIL_SESSION_PREFIX}${Deno.pid}_${random[0]!.toString(36)}${
      random[1]!.toString(36)
    }`;
    this.inserts = `${this.slot}_i`;
    this.keyed = `${this.slot}_k`;
  }

  /** Both publications, as the replication connection asks for them. */
  get publications(): readonly string[] {
    return [this.inserts, this.keyed];
  }

  /**
   * Takes the session's lock, drops earlier sessions' leftovers, then creates this session's
   * publications and lists the tables with a replica identity. When a step fails, what it
   * created is dropped again before the error is thrown.
   */
  static async begin(options: TailSessionOptions): Promise<TailSession> {
    const session = new TailSession(options);
    try {
      const connection = await session.#connect();
      await session.#dropLeftovers(connection);
      session.#madeAny = true;
      await connection.query(
        `CREATE PUBLICATION ${
          quoteIdent(session.inserts)
        } FOR ALL TABLES WITH (publish = 'insert, truncate')`,
      );
      await connection.query(
        `CREATE PUBLICATION ${quoteIdent(session.keyed)} WITH (publish = 'update, delete')`,
      );
      // The first listing must work: a session that shows no updates would mislead.
      await session.#refresh(true);
    } catch (error) {
      await session.end();
      throw error;
    }
    return session;
  }

  /** How the session connects: the source's options with {@linkcode SESSION_SETTINGS}. */
  #connectOptions(): ConnectOptions {
    const connection = this.#options.connection;
    return { ...connection, parameters: { ...connection.parameters, ...SESSION_SETTINGS } };
  }

  /** The session's connection, opened (and its lock taken) again when it was lost. */
  async #connect(): Promise<PgConnection> {
    if (this.#connection !== null && !this.#connection.closed) return this.#connection;
    this.#connection?.destroy();
    this.#connection = null;
    const connection = await PgConnection.connect(this.#connectOptions(), {
      signal: this.#options.signal,
    });
    try {
      await connection.query(`SELECT pg_catalog.pg_advisory_lock(${LOCK(this.slot)})`);
    } catch (error) {
      connection.destroy();
      throw error;
    }
    this.#connection = connection;
    return connection;
  }

  /**
   * Brings the UPDATE/DELETE publication in step with the tables: adds those that have a
   * replica identity, removes those that lost it. Failures are logged; the next call tries
   * again (over a new connection when this one was lost). Calls while one runs share it.
   */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh(false).finally(() => this.#refreshing = null);
    return this.#refreshing;
  }

  async #refresh(strict: boolean): Promise<void> {
    if (this.#ended !== null) return;
    try {
      const connection = await this.#connect();
      const tables = (await readTables(connection, { lean: true })).filter((t) =>
        t.kind === "r" && t.persistence === "p"
      );
      const current = (await readPublication(connection, this.keyed))?.tables ?? new Set();
      const keyed = tables.filter((t) => replicaIdentity(t).columns !== null);
      const wanted = new Set(keyed.map((t) => tableKey(t.schema, t.table)));
      const add = keyed.filter((t) => !current.has(tableKey(t.schema, t.table)));
      const remove = tables.filter((t) =>
        current.has(tableKey(t.schema, t.table)) && !wanted.has(tableKey(t.schema, t.table))
      );
      // What makes writes fail goes first; then what is missing, checked before it commits.
      if (remove.length > 0) await this.#alter(connection, "DROP", remove);
      if (add.length > 0) await this.#alter(connection, "ADD", add);
      this.#warnBlocked(tables);
    } catch (error) {
      if (error instanceof ConnectionError) {
        this.#connection?.destroy();
        this.#connection = null;
      }
      if (strict) throw error;
      if (this.#ended !== null) return; // cut short by end()
      this.#log("warn", "Could not update the session publication; trying again later", {
        publication: this.keyed,
        error: errorMessage(error),
      });
    }
  }

  /**
   * `ALTER PUBLICATION … ADD|DROP TABLE ONLY …` in a transaction that, for ADD, checks the
   * tables it now lists by their identity before it commits: a table renamed or re-keyed
   * between the read and the ALTER rolls it back (the next refresh reads again).
   */
  async #alter(connection: PgConnection, verb: "ADD" | "DROP", tables: DbTable[]): Promise<void> {
    const list = tables.map((t) => `ONLY ${t.qualified}`).join(", ");
    await connection.query("BEGIN");
    try {
      await connection.query(`ALTER PUBLICATION ${quoteIdent(this.keyed)} ${verb} TABLE ${list}`);
      if (verb === "ADD") {
        const listed = await readPublication(connection, this.keyed);
        const now = await readTables(connection, { lean: true });
        const blocked = tablesBlockedByPublishing(
          now.filter((t) => listed?.tables.has(tableKey(t.schema, t.table))),
        );
        if (blocked.length > 0) {
          throw new Error(
            `${blocked.map((t) => t.qualified).join(", ")} lost its replica identity meanwhile`,
          );
        }
      }
      await connection.query("COMMIT");
    } catch (error) {
      await connection.query("ROLLBACK").catch(() => {});
      throw error;
    }
  }

  #warnBlocked(tables: DbTable[]): void {
    const blocked = tablesBlockedByPublishing(tables).map((t) => t.qualified);
    const fresh = blocked.filter((name) => !this.#blocked.has(name));
    this.#blocked = new Set(blocked);
    if (fresh.length > 0) {
      this.#log(
        "warn",
        "Tables without a replica identity: their INSERT and TRUNCATE are shown, their UPDATE and DELETE are not (publishing them would make them fail)",
        { tables: listFew(fresh), count: fresh.length },
      );
    }
  }

  /**
   * Drops both publications, over a fresh connection when the session's own fails (it may have
   * died with a server restart), and closes it. Failures are logged, not thrown. Safe to call
   * twice. A refresh still waiting for a lock is not waited for.
   */
  end(): Promise<void> {
    this.#ended ??= this.#end();
    return this.#ended;
  }

  async #end(): Promise<void> {
    const drop = `DROP PUBLICATION IF EXISTS ${quoteIdent(this.inserts)}, ${
      quoteIdent(this.keyed)
    }`;
    const own = this.#connection;
    this.#connection = null;
    let dropped = !this.#madeAny; // nothing to drop
    if (!dropped && own !== null && this.#refreshing === null && !own.closed) {
      dropped = await own.query(drop).then(() => true, () => false);
    }
    own?.destroy(); // also lets go of a refresh in flight, and of the lock
    if (!dropped) {
      let fresh: PgConnection | null = null;
      try {
        fresh = await PgConnection.connect({
          ...this.#connectOptions(),
          connectTimeoutMs: Math.min(this.#options.connection.connectTimeoutMs ?? 10_000, 10_000),
        });
        await fresh.query(drop);
      } catch (error) {
        this.#log("warn", "Could not drop the session publications; drop them by hand", {
          publications: this.publications,
          sql: drop,
          error: errorMessage(error),
        });
      } finally {
        await fresh?.close();
      }
    }
    await own?.close().catch(() => {});
  }

  /**
   * Drops publications of sessions that ended without dropping them: no slot of their name
   * exists (a session's temporary slot lives as long as its stream), and no session holds
   * their lock (one that is still starting does).
   */
  async #dropLeftovers(connection: PgConnection): Promise<void> {
    // Names only: listing the tables of publications another session drops meanwhile fails.
    const names = (await publicationNames(connection))
      .filter((name) => name.startsWith(TAIL_SESSION_PREFIX) && SESSION_NAME.test(name));
    if (names.length === 0) return;
    const slots = new Set((await querySlots(connection)).map((slot) => slot.slotName));
    for (const name of names) {
      const slot = name.replace(/_[ik]$/, "");
      if (slot === this.slot || slots.has(slot)) continue;
      try {
        const [row] = await connection.queryObjects(
          `SELECT pg_catalog.pg_try_advisory_lock(${LOCK(slot)}) AS free`,
        );
        if (row?.free !== "t") continue;
        try {
          await connection.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`);
        } finally {
          await connection.query(`SELECT pg_catalog.pg_advisory_unlock(${LOCK(slot)})`);
        }
        this.#log("info", "Dropped a publication left by an earlier tail session", {
          publication: name,
        });
      } catch (error) {
        this.#log("warn", "Could not drop a publication left by an earlier tail session", {
          publication: name,
          error: errorMessage(error),
        });
      }
    }
  }
}

function listFew(names: readonly string[]): string {
  return names.length > 5 ? `${names.slice(0, 5).join(", ")}, …` : names.join(", ");
}
