/**
 * Routing: which tables a pipeline keeps, and for each kept change its topic, its key and
 * the table's unchanged-TOAST policy; plus the FOR clause of a publication created for
 * the pipeline.
 *
 * @module
 */

import { setField } from "../decoder/types/values.ts";
import type { RelationMessage } from "../decoder/pgoutput.ts";
import {
  matchRoute,
  matchTable,
  type PipelineConfig,
  publishesAllTables,
  type RouteRule,
} from "../config/mod.ts";
import { type ChangeEvent, EVENT_RELATION, type Row, type SinkRecord } from "../events.ts";
import type { PgConnection } from "../postgres/connection.ts";
import { coveredTables, readTables } from "../postgres/catalog.ts";
import type { Logger } from "../ops/log.ts";
import { refuseBlockedTables } from "../source/publications.ts";
import { ConfigError } from "../errors.ts";
import { ToastPolicy } from "./toast.ts";

/** Per-relation routing, cached until the relation's schema changes. */
interface Route {
  topic: string;
  keyColumns: string[];
  toast: ToastPolicy;
}

/**
 * Turns change events into sink records: drops tables the pipeline does not name, and
 * adds the topic, the key and the TOAST policy of the table's entry. Routes are cached per
 * relation until {@linkcode Router.forget}; TOAST policies per table name, so a schema
 * change keeps the values a `last_value` policy remembers.
 */
export class Router {
  readonly #config: PipelineConfig;
  readonly #relation: (relid: number) => RelationMessage | undefined;
  readonly #primaryKey: (relid: number) => string[] | undefined;
  #routes = new Map<number, Route | null>();
  #toastPolicies = new Map<string, ToastPolicy>();
  /** The policies the open transaction's changes went through (those with something pending). */
  #learning = new Set<ToastPolicy>();

  /**
   * @param primaryKey A table's primary key columns (`[]`: it has none), `undefined` when
   *   not known.
   * @param relation The newest relation the source knows for a relid, for events
   *   decoded without one.
   */
  constructor(
    config: PipelineConfig,
    relation: (relid: number) => RelationMessage | undefined,
    primaryKey: (relid: number) => string[] | undefined = () => undefined,
  ) {
    this.#config = config;
    this.#relation = relation;
    this.#primaryKey = primaryKey;
  }

  /** The record for `event`, or `null` when its table is not part of the pipeline. */
  route(event: ChangeEvent): SinkRecord | null {
    const relid = event.source.relid;
    let route = this.#routes.get(relid);
    if (route === undefined) {
      route = this.#makeRoute(event);
      this.#routes.set(relid, route);
    }
    if (route === null) return null;
    const key = keyOf(event, route.keyColumns);
    if (event.unchanged.length > 0 || route.toast.mode === "last_value") {
      route.toast.apply(event, key === null ? null : JSON.stringify(key, bigintSafe));
      // Only a last_value policy learns; commit() and discard() visit just those that did.
      if (route.toast.mode === "last_value") this.#learning.add(route.toast);
    }
    return { kind: "change", event, topic: route.topic, key };
  }

  /** At a transaction's commit: the TOAST policies keep what its changes taught them. */
  commit(): void {
    if (this.#learning.size === 0) return;
    for (const toast of this.#learning) toast.commit();
    this.#learning.clear();
  }

  /**
   * When an open transaction is dropped (cut by a reconnect or a stop, to be sent again): the
   * TOAST policies forget what its routed changes taught them.
   */
  discard(): void {
    if (this.#learning.size === 0) return;
    for (const toast of this.#learning) toast.discard();
    this.#learning.clear();
  }

  /**
   * Takes the routing table's rows as they stand now (see `routing` in the configuration):
   * every route is worked out again, so the next change of each table follows them. Rows whose
   * pattern does not parse are reported to `invalid` and left out.
   */
  setRules(
    rules: readonly RouteRule[],
    invalid?: (rule: RouteRule, problem: string) => void,
  ): void {
    // Each bad row is reported once, now, not at every table it is tried on.
    matchRoute(this.#config, rules, "", "", invalid);
    this.#rules = rules;
    this.#routes.clear();
  }

  #rules: readonly RouteRule[] = [];

  /** Drops the cached route of a relation whose schema (or name) changed. */
  forget(relid: number): void {
    this.#routes.delete(relid);
  }

  #makeRoute(event: ChangeEvent): Route | null {
    const { schema, table, relid } = event.source;
    const resolved = matchTable(this.#config, schema, table);
    if (resolved === null) return null;
    // The relation the event was decoded with: the assembler may already know a newer one.
    const relation = event[EVENT_RELATION] ?? this.#relation(relid);
    // The configured columns, else the primary key (also under REPLICA IDENTITY FULL, whose
    // Relation marks every column as key; none: no key, as Debezium), else, when the catalog's
    // facts are unknown, the replica identity's columns.
    const rule = this.#rules.length === 0
      ? null
      : matchRoute(this.#config, this.#rules, schema, table);
    const keyColumns = rule?.key ?? resolved.key ?? this.#primaryKey(relid) ??
      relation?.columns.filter((column) => column.isKey).map((column) => column.name) ?? [];
    const policyKey = `${schema}.${table}`;
    let toast = this.#toastPolicies.get(policyKey);
    if (toast === undefined) {
      toast = new ToastPolicy({
        mode: resolved.toast,
        placeholder: resolved.toastPlaceholder,
        cacheSize: resolved.toastCacheSize,
      });
      this.#toastPolicies.set(policyKey, toast);
    }
    return { topic: rule?.topic ?? resolved.topic, keyColumns, toast };
  }
}

/**
 * The FOR clause of a publication created for this pipeline: `FOR ALL TABLES`
 * when an entry matches every schema and table, otherwise the tables the entries
 * match now. Throws a ConfigError, before anything is created, when the publication would
 * cover a table without a replica identity: the application's UPDATE and DELETE on it would
 * fail while the publication exists.
 */
export async function publicationTarget(
  config: PipelineConfig,
  connection: PgConnection,
  log?: Logger,
): Promise<string> {
  const name = config.source.publication;
  const all = await readTables(connection);
  const allTables = publishesAllTables(config);
  const routing = config.routing;
  // The routing table's changes come through the slot too.
  const matched = allTables
    ? all
    : all.filter((t) =>
      matchTable(config, t.schema, t.table) !== null ||
      (routing !== null && t.schema === routing.schema && t.table === routing.table)
    );
  // Unlogged tables are never published, and FOR TABLE refuses them.
  const unlogged = matched.filter((t) => t.persistence !== "p");
  const listed = matched.filter((t) => t.persistence === "p");
  // What the publication would carry: the tables listed and the partitions of those that are
  // partitioned (inheritance children only when listed themselves: FOR TABLE ONLY).
  refuseBlockedTables(
    name,
    coveredTables(listed, all),
    `leave them out of tables in ${config.file}`,
  );
  if (allTables) return "FOR ALL TABLES";
  if (listed.length === 0) {
    throw new ConfigError(
      `Cannot create publication "${name}": no existing table matches the pipeline's tables (${
        config.tables.map((entry) => entry.pattern).join(", ")
      })${
        unlogged.length > 0
          ? ` but the unlogged ${
            unlogged.map((t) => t.qualified).join(", ")
          }, whose changes PostgreSQL never publishes`
          : ""
      }; create the tables first or fix the names`,
    );
  }
  if (unlogged.length > 0) {
    log?.(
      "warn",
      "Unlogged tables match the pipeline's tables; PostgreSQL never publishes their changes",
      {
        tables: unlogged.map((t) => t.qualified).join(", "),
      },
    );
  }
  return `FOR TABLE ${listed.map((t) => `ONLY ${t.qualified}`).join(", ")}`;
}

function keyOf(event: ChangeEvent, columns: string[]): Row | null {
  if (columns.length === 0) return null;
  const row = event.after ?? event.before;
  if (row === null) return null;
  const key: Row = {};
  for (const column of columns) {
    setField<unknown>(key, column, row[column] ?? event.before?.[column] ?? null);
  }
  return key;
}

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}
