/**
 * Quoting of SQL literals and identifiers for the statements Spillway sends, and the checks
 * of the names it puts in them.
 *
 * Every session pins `standard_conforming_strings = on` at startup (see
 * `SESSION_PARAMETERS`), and {@linkcode quoteLiteral} is safe without that pin too: a value
 * with a backslash is written as an escape string (`E'…'`), whose meaning does not depend on
 * the setting, as PostgreSQL's own `quote_literal` does.
 *
 * @module
 */

import { ConfigError } from "../errors.ts";

/** A replication slot name as PostgreSQL accepts it: 1 to 63 of `a-z`, `0-9` and `_`. */
export const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

/** The most bytes of a name PostgreSQL keeps (NAMEDATALEN - 1); longer names are cut. */
const NAME_BYTES = 63;

const encoder = new TextEncoder();

/**
 * Quotes an SQL string literal, safe whatever `standard_conforming_strings` says: quotes are
 * doubled, and a value with a backslash becomes an escape string with its backslashes doubled.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quoteLiteral } from "./sql.ts";
 * assert.equal(quoteLiteral("o'clock"), "'o''clock'");
 * assert.equal(quoteLiteral("x\\'; drop table t; --"), "E'x\\\\''; drop table t; --'");
 * ```
 */
export function quoteLiteral(value: string): string {
  checkNoNul("a string", value);
  const quoted = value.replaceAll("'", "''");
  return value.includes("\\") ? `E'${quoted.replaceAll("\\", "\\\\")}'` : `'${quoted}'`;
}

/**
 * Quotes an SQL identifier: double quotes are doubled.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quoteIdent } from "./sql.ts";
 * assert.equal(quoteIdent('My "Pub"'), '"My ""Pub"""');
 * ```
 */
export function quoteIdent(value: string): string {
  checkNoNul("an identifier", value);
  return `"${value.replaceAll('"', '""')}"`;
}

/**
 * Throws a ConfigError unless `name` is a valid replication slot name. Call it before the
 * name reaches any statement.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSlotName } from "./sql.ts";
 * checkSlotName("orders_cdc");
 * assert.throws(() => checkSlotName("x'; drop table t; --"), /1 to 63 lower-case letters/);
 * ```
 */
export function checkSlotName(name: string): void {
  if (!SLOT_NAME.test(name)) {
    throw new ConfigError(
      `Cannot use replication slot name ${
        JSON.stringify(name.slice(0, 80))
      }: slot names are 1 to 63 lower-case letters, digits or underscores`,
    );
  }
}

/**
 * Throws a ConfigError unless `name` can name a database object (a publication, say) as
 * it is: not empty, no NUL, at most 63 bytes (PostgreSQL would cut a longer one, and the
 * object Spillway then looked for would not be the one it created).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkObjectName } from "./sql.ts";
 * checkObjectName("publication", "Orders Pub");
 * assert.throws(() => checkObjectName("publication", "p".repeat(64)), /1 to 63 bytes/);
 * ```
 */
export function checkObjectName(kind: string, name: string): void {
  const bytes = encoder.encode(name).length;
  if (bytes === 0 || bytes > NAME_BYTES || name.includes("\0")) {
    throw new ConfigError(
      `Cannot use ${kind} name "${
        name.slice(0, 80)
      }": names are 1 to ${NAME_BYTES} bytes, without NUL; choose a shorter name`,
    );
  }
}

function checkNoNul(what: string, value: string): void {
  if (value.includes("\0")) {
    throw new ConfigError(`Cannot send ${what} with a NUL character to PostgreSQL`);
  }
}
