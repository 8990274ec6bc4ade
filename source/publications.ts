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

import { ConfigError } from "../errors.ts";
import {
  type DbTable,
  publicationsNamed,
  querySlots,
  readPublication,
  readTables,
  replicaIdentity,
  tableKey,
  tablesBlockedByPublishing,
} from "../postgres/catalog.ts";
import { PgConnection } from "../postgres/connection.ts";
import type { ConnectOptions } from "../postgres/connection_string.ts";
import { quoteIdent } from "../postgres/sql.ts";
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

/** `spillway_tail_<pid>_<base-36 ms>`, with `_i` / `_k` on the publications. */
const SESSION_NAME = /^spillway_tail_\d+_([0-9a-z]+)(?:_[ik])?$/;

/** Options of {@linkcode TailSession.begin}. */
export interface TailSessionOptions {
  connection: ConnectOptions;
  log?: Logger;
  signal?: AbortSignal;
  /**
   * A session's publications without its slot are an earlier session's leftovers once they
   * are this old (default 2 minutes: a starting session makes its slot within seconds).
   */
  leftoverAgeMs?: number;
  /** The clock, for tests. */
  now?: () => number;
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
  #connection: PgConnection | null;
  #blocked = new Set<string>();
  #refreshing: Promise<void> | null = null;
  #ended: Promise<void> | null = null;

  private constructor(options: TailSessionOptions, connection: PgConnection, slot: string) {
    this.#options = options;
    this.#log = options.log ?? silentLogger;
    this.#connection = connection;
    this.slot = slot;
    this.inserts = `${slot}_i`;
    this.keyed = `${slot}_k`;
  }

  /** Both publications, as the replication connection asks for them. */
  get publications(): readonly string[] {
    return [this.inserts, this.keyed];
  }

  /**
   * Drops earlier sessions' leftovers, then creates this session's publications. When a
   * step fails, what it created is dropped again before the error is thrown.
   */
  static async begin(options: TailSessionOptions): Promise<TailSession> {
    const now = options.now ?? Date.now;
    const connection = await PgConnection.connect(options.connection, { signal: options.signal });
    const session = new TailSession(
      options,
      connection,
      `${TAIL_SESSION_PREFIX}${Deno.pid}_${now().toString(36)}`,
    );
    try {
      await session.#dropLeftovers(now());
      await connection.query(
        `CREATE PUBLICATION ${
          quoteIdent(session.inserts)
        } FOR ALL TABLES WITH (publish = 'insert, truncate')`,
      );
      await connection.query(
        `CREATE PUBLICATION ${quoteIdent(session.keyed)} WITH (publish = 'update, delete')`,
      );
      await session.refresh();
    } catch (error) {
      await session.end();
      throw error;
    }
    return session;
  }

  /**
   * Brings the UPDATE/DELETE publication in step with the tables: adds those that have a
   * replica identity, removes those that lost it. Failures are logged; the next call tries
   * again. Calls while one runs share it.
   */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => this.#refreshing = null);
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    const connection = this.#connection;
    if (connection === null || connection.closed || this.#ended !== null) return;
    const tables = (await readTables(connection)).filter((t) =>
      t.kind === "r" && t.persistence === "p"
    );
    const current = (await readPublication(connection, this.keyed))?.tables ?? new Set();
    const keyed = tables.filter((t) => replicaIdentity(t).columns !== null);
    const wanted = new Set(keyed.map((t) => tableKey(t.schema, t.table)));
    const add = keyed.filter((t) => !current.has(tableKey(t.schema, t.table)));
    const remove = tables.filter((t) =>
      current.has(tableKey(t.schema, t.table)) && !wanted.has(tableKey(t.schema, t.table))
    );
    for (const [verb, list] of [["ADD", add], ["DROP", remove]] as const) {
      if (list.length === 0) continue;
      try {
        await connection.query(
          `ALTER PUBLICATION ${quoteIdent(this.keyed)} ${verb} TABLE ${
            list.map((t) => t.qualified).join(", ")
          }`,
        );
      } catch (error) {
        // A table dropped or renamed meanwhile: the next refresh reads the tables again.
        this.#log("warn", "Could not update the session publication; trying again later", {
          publication: this.keyed,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    }
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
   * Drops both publications, over a fresh connection when the session's own is gone, and
   * closes it. Failures are logged, not thrown. Safe to call twice.
   */
  end(): Promise<void> {
    this.#ended ??= this.#end();
    return this.#ended;
  }

  async #end(): Promise<void> {
    await this.#refreshing?.catch(() => {});
    let connection = this.#connection;
    this.#connection = null;
    try {
      if (connection === null || connection.closed) {
        connection = await PgConnection.connect(this.#options.connection);
      }
      await connection.query(
        `DROP PUBLICATION IF EXISTS ${quoteIdent(this.inserts)}, ${quoteIdent(this.keyed)}`,
      );
    } catch (error) {
      this.#log("warn", "Could not drop the session publications; the next tail drops them", {
        publications: this.publications,
        error: error instanceof Error ? error.message : String(error),
      });
    } finally {
      await connection?.close().catch(() => {});
    }
  }

  /** Drops publications of sessions that ended without dropping them (no slot, old enough). */
  async #dropLeftovers(now: number): Promise<void> {
    const connection = this.#connection!;
    const ageMs = this.#options.leftoverAgeMs ?? 120_000;
    const names = await publicationsNamed(connection, TAIL_SESSION_PREFIX);
    if (names.length === 0) return;
    const slots = new Set((await querySlots(connection)).map((slot) => slot.slotName));
    for (const name of names) {
      const match = SESSION_NAME.exec(name);
      if (match === null) continue;
      const slot = name.replace(/_[ik]$/, "");
      const made = Number.parseInt(match[1]!, 36);
      if (slots.has(slot) || !(now - made >= ageMs)) continue;
      try {
        await connection.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`);
        this.#log("info", "Dropped a publication left by an earlier tail session", {
          publication: name,
        });
      } catch (error) {
        this.#log("warn", "Could not drop a publication left by an earlier tail session", {
          publication: name,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    }
  }
}

function listFew(names: readonly string[]): string {
  return names.length > 5 ? `${names.slice(0, 5).join(", ")}, …` : names.join(", ");
}
