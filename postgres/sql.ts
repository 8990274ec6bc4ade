/**
 * Quoting of SQL literals and identifiers for the statements Spillway sends.
 *
 * @module
 */

/** Quotes an SQL string literal. */
export function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** Quotes an SQL identifier. */
export function quoteIdent(value: string): string {
  return `"${value.replaceAll('"', '""')}"`;
}
