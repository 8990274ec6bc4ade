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

/** A readable line for a terminal. */
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
      const parts = [`${op} ${name}`];
      if (event.op === "u" && json.before) parts.push(`before ${JSON.stringify(json.before)}`);
      if (json.after) parts.push(JSON.stringify(json.after));
      else if (json.before) parts.push(JSON.stringify(json.before));
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
