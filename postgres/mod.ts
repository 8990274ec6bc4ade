/**
 * I/O with a PostgreSQL server: connection settings (`connection_string.ts`, pure), one
 * connection with startup, TLS, authentication, simple queries and the replication commands
 * (`connection.ts`), the CopyBoth replication stream (`stream.ts`), server errors with their
 * fix (`explain.ts`), SQL quoting (`sql.ts`) and the administrative catalog queries
 * (`catalog.ts`). Parsing is `decoder/`'s.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConnectionUrl, quoteIdent } from "./mod.ts";
 * assert.equal(parseConnectionUrl("postgres://app@db.local/shop").host, "db.local");
 * assert.equal(quoteIdent('my "table"'), '"my ""table"""');
 * ```
 *
 * @module
 */

export * from "./catalog.ts";
export * from "./connection.ts";
export * from "./connection_string.ts";
export * from "./explain.ts";
export * from "./sql.ts";
export * from "./stream.ts";
