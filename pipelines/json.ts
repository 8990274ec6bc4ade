/**
 * JSON renderings of events and transaction markers, one line each.
 *
 * @module
 */

import { formatLsn, formatUnixMicros, type Lsn } from "../decoder/lsn.ts";
import type { ChangeEvent, MessageEvent, Row } from "./events.ts";
import type { SourceItem } from "./source.ts";

/** A value made JSON-safe: bytes as base64, bigint as string. */
function jsonValue(value: unknown): unknown {
  if (value instanceof Uint8Array) return toBase64(value);
  if (typeof value === "bigint") return value.toString();
  return value;
}

function jsonRow(row: Row | null): Record<string, unknown> | null {
  if (row === null) return null;
  const out: Record<string, unknown> = {};
  for (const key in row) out[key] = jsonValue(row[key]);
  return out;
}

/** The JSON shape of a change event: LSNs as `X/X` text, times as ISO-8601 with µs. */
export function changeEventToJson(event: ChangeEvent): Record<string, unknown> {
  const source = event.source;
  const out: Record<string, unknown> = {
    op: event.op,
    source: {
      schema: source.schema,
      table: source.table,
      relid: source.relid,
      lsn: formatLsn(source.lsn),
      commitLsn: formatLsn(source.commitLsn),
      xid: source.xid,
      commitTime: formatUnixMicros(source.commitTime),
      ...(source.origin ? { origin: source.origin } : {}),
    },
    before: jsonRow(event.before),
    after: jsonRow(event.after),
    unchanged: event.unchanged,
  };
  if (event.truncate) out.truncate = event.truncate;
  return out;
}

function messageToJson(event: MessageEvent): Record<string, unknown> {
  return {
    op: "m",
    transactional: event.transactional,
    prefix: event.prefix,
    content: toBase64(event.content),
    lsn: formatLsn(event.lsn),
    ...(event.xid === undefined ? {} : { xid: event.xid }),
    ...(event.commitLsn === undefined ? {} : { commitLsn: formatLsn(event.commitLsn) }),
  };
}

/**
 * One JSON line for a source item, or `null` for items not shown (transaction
 * markers when `transactions` is false).
 */
export function itemToJsonLine(item: SourceItem, transactions: boolean): string | null {
  switch (item.kind) {
    case "change":
      return JSON.stringify(changeEventToJson(item.event));
    case "message":
      return JSON.stringify(messageToJson(item.event));
    case "begin":
      return transactions
        ? JSON.stringify({
          type: "begin",
          xid: item.tx.xid,
          commitLsn: formatLsn(item.tx.commitLsn),
          commitTime: formatUnixMicros(item.tx.commitTime),
          ...(item.tx.gid ? { gid: item.tx.gid } : {}),
          ...(item.tx.origin ? { origin: item.tx.origin } : {}),
          streamed: item.tx.streamed,
        })
        : null;
    case "commit":
    case "prepare":
      return transactions
        ? JSON.stringify({
          type: item.kind,
          xid: item.tx.xid,
          commitLsn: formatLsn(item.tx.commitLsn),
          endLsn: formatLsn(item.endLsn),
          events: item.eventCount,
          ...(item.tx.gid ? { gid: item.tx.gid } : {}),
        })
        : null;
    case "commit-prepared":
      return transactions
        ? JSON.stringify({
          type: "commit-prepared",
          xid: item.xid,
          gid: item.gid,
          commitLsn: formatLsn(item.commitLsn),
          endLsn: formatLsn(item.endLsn),
          commitTime: formatUnixMicros(item.commitTime),
        })
        : null;
    case "rollback-prepared":
      return transactions
        ? JSON.stringify({
          type: "rollback-prepared",
          xid: item.xid,
          gid: item.gid,
          endLsn: formatLsn(item.endLsn),
        })
        : null;
    case "schema-change":
      return JSON.stringify({
        type: "schema-change",
        schema: item.schema,
        table: item.table,
        relid: item.relid,
        version: item.version,
        previousColumns: item.previousColumns,
        columns: item.columns,
      });
    case "restart":
      return transactions ? JSON.stringify({ type: "restart", reason: item.reason }) : null;
  }
}

/** The LSN to confirm after an item is written, if it ends a transaction or is standalone. */
export function confirmableLsn(item: SourceItem): Lsn | null {
  switch (item.kind) {
    case "commit":
    case "prepare":
    case "commit-prepared":
    case "rollback-prepared":
      return item.endLsn;
    case "message":
      return item.event.transactional ? null : item.event.lsn;
    default:
      return null;
  }
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.byteLength; i++) binary += String.fromCharCode(bytes[i]!);
  return btoa(binary);
}
