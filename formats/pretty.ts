/**
 * The terminal format: one readable, optionally coloured line per sink record (the stdout
 * sink's `pretty` format).
 *
 * @module
 */

import { formatLsn, formatUnixMicros } from "../decoder/lsn.ts";
import type { JsonRenderer } from "./json.ts";
import type { SinkRecord } from "../events.ts";

const RESET = "\x1b[0m";
const OP_COLORS: Record<string, string> = {
  c: "\x1b[32m",
  u: "\x1b[33m",
  d: "\x1b[31m",
  t: "\x1b[35m",
  r: "\x1b[36m",
};
const OP_NAMES: Record<string, string> = {
  c: "INSERT",
  u: "UPDATE",
  d: "DELETE",
  t: "TRUNCATE",
  r: "READ",
};

/** How a changed column of an UPDATE stands out: bold yellow, the colour of UPDATE. */
const CHANGED = "\x1b[1;33m";

/**
 * A readable line for a terminal.
 *
 * An UPDATE whose `before` holds the old value of every column of `after` (the table has
 * REPLICA IDENTITY FULL) prints the new row with each changed column as `"column":old → new`,
 * highlighted when `color` is on (the arrow marks it without colour); other columns print as
 * they are. An UPDATE whose `before` is the key alone or null prints the key before (if sent)
 * and the new row, marking nothing: what the other columns were is not known.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsonRenderer, recordToPrettyLine } from "./mod.ts";
 * import { lsn } from "../decoder/lsn.ts";
 * const source = {
 *   schema: "public", table: "orders", relid: 1, lsn: lsn(1n), commitLsn: lsn(2n), xid: 7,
 *   commitTime: 0n,
 * };
 * const line = recordToPrettyLine({
 *   kind: "change",
 *   topic: "shop.public.orders",
 *   key: { id: 1 },
 *   event: {
 *     op: "u", source, unchanged: [],
 *     before: { id: 1, status: "paid" },
 *     after: { id: 1, status: "packed" },
 *   },
 * }, false, new JsonRenderer());
 * assert.equal(line, 'UPDATE   public.orders  {"id":1,"status":"paid" → "packed"}');
 * ```
 */
export function recordToPrettyLine(
  record: SinkRecord,
  color: boolean,
  renderer: JsonRenderer,
): string | null {
  const paint = (code: string, text: string) => (color ? `${code}${text}${RESET}` : text);
  switch (record.kind) {
    case "begin":
    case "dead-letter":
      return null;
    case "commit":
      return paint(
        "\x1b[2m",
        `── commit xid ${record.tx.xid} at ${
          formatLsn(record.endLsn)
        } · ${record.eventCount} event(s) · ${formatUnixMicros(record.tx.commitTime)}`,
      );
    case "change": {
      const event = record.event;
      const name = `${event.source.schema}.${event.source.table}`;
      const op = paint(OP_COLORS[event.op] ?? "", (OP_NAMES[event.op] ?? event.op).padEnd(8));
      const json = renderer.changeEvent(event);
      const before = json.before as Record<string, unknown> | null;
      const after = json.after as Record<string, unknown> | null;
      const parts = [`${op} ${name}`];
      if (event.op === "u" && before !== null && after !== null && covers(before, after)) {
        parts.push(rowWithChanges(before, after, (text) => paint(CHANGED, text)));
      } else {
        if (event.op === "u" && before !== null) parts.push(`before ${JSON.stringify(before)}`);
        if (after !== null) parts.push(JSON.stringify(after));
        else if (before !== null) parts.push(JSON.stringify(before));
      }
      if (event.unchanged.length > 0) {
        parts.push(paint("\x1b[2m", `unchanged: ${event.unchanged.join(", ")}`));
      }
      return parts.join("  ");
    }
    case "message":
      return `${paint("\x1b[36m", "MESSAGE ")} ${record.event.prefix}`;
    case "schema-change":
      return paint(
        "\x1b[35m",
        `SCHEMA   ${record.schema}.${record.table} v${record.version}: ${
          record.previousColumns.join(", ")
        } → ${record.columns.join(", ")}`,
      );
  }
}

/** Whether `before` has every column of `after`, so that comparing them says what changed. */
function covers(before: Record<string, unknown>, after: Record<string, unknown>): boolean {
  return Object.keys(after).every((column) => Object.hasOwn(before, column));
}

/**
 * `after` as JSON, each column whose value differs from `before`'s (compared as JSON text)
 * written `"column":old → new` through `mark`.
 */
function rowWithChanges(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
  mark: (text: string) => string,
): string {
  const columns = Object.keys(after).map((column) => {
    const name = JSON.stringify(column);
    const value = JSON.stringify(after[column]);
    const old = JSON.stringify(before[column]);
    return old === value ? `${name}:${value}` : mark(`${name}:${old} → ${value}`);
  });
  return `{${columns.join(",")}}`;
}
