/**
 * How a batch of work items crosses to a transform's Worker: structured cloning copies every
 * object, so a change is sent as an array (its relation and transaction by index into tables
 * sent once per batch, its rows as arrays of column values) and made into the event again in the
 * Worker. On the way back, an output that is the input itself (a transform that returns its
 * event, or has no `change` hook) is sent as `0` and stands for the event the host sent.
 *
 * {@linkcode expandItems} runs inside the Worker: its source text is embedded in the Worker's
 * code, so it must stay self-contained (no imports, no outside names).
 *
 * @module
 */

import type { TransformRelation, TransformRow, TransformTransaction } from "./api.ts";
import type { WorkItem } from "./hooks.ts";

/** A change on the wire: relation index, transaction index, op, lsn, rows, routing. */
export type WireChange = [
  relation: number,
  transaction: number,
  op: string,
  lsn: string,
  before: unknown[] | TransformRow | null,
  after: unknown[] | TransformRow | null,
  unchanged: string[],
  topic: string | undefined,
  key: TransformRow | null | undefined,
  headers: Record<string, string> | undefined,
  origin: string | undefined,
];

/** A batch on the wire. */
export interface WireBatch {
  relations: TransformRelation[];
  transactions: TransformTransaction[];
  /** Changes as {@linkcode WireChange}, other items as they are. */
  items: (WireChange | WorkItem)[];
}

const columnIndexes = new WeakMap<TransformRelation, Map<string, number>>();

/** The batch to post for `items`. */
export function encodeItems(items: readonly WorkItem[]): WireBatch {
  const relations: TransformRelation[] = [];
  const relationIndex = new Map<TransformRelation, number>();
  const transactions: TransformTransaction[] = [];
  const transactionIndex = new Map<TransformTransaction, number>();
  const wire = items.map((item): WireChange | WorkItem => {
    if (item.kind !== "change") return item;
    const { event, relation, transaction } = item;
    const source = event.source;
    // Only what the Worker can make again exactly goes compact.
    if (
      source.relid !== relation.relid || source.schema !== relation.schema ||
      source.table !== relation.table || source.xid !== transaction.xid ||
      source.commitLsn !== transaction.commitLsn || source.commitTime !== transaction.commitTime
    ) {
      return item;
    }
    let r = relationIndex.get(relation);
    if (r === undefined) {
      r = relations.push(relation) - 1;
      relationIndex.set(relation, r);
    }
    let t = transactionIndex.get(transaction);
    if (t === undefined) {
      t = transactions.push(transaction) - 1;
      transactionIndex.set(transaction, t);
    }
    let columns = columnIndexes.get(relation);
    if (columns === undefined) {
      columns = new Map(relation.columns.map((column, i) => [column.name, i]));
      columnIndexes.set(relation, columns);
    }
    return [
      r,
      t,
      event.op,
      source.lsn,
      encodeRow(event.before, columns),
      encodeRow(event.after, columns),
      event.unchanged,
      event.topic,
      event.key,
      event.headers,
      source.origin,
    ];
  });
  return { relations, transactions, items: wire };
}

/**
 * A row as its values in column order (`undefined` where a column is absent), or the row itself
 * when it has a field that is not a column.
 */
function encodeRow(
  row: TransformRow | null,
  columns: Map<string, number>,
): unknown[] | TransformRow | null {
  if (row === null) return null;
  const values: unknown[] = new Array(columns.size);
  for (const name in row) {
    const i = columns.get(name);
    const value = row[name];
    if (i === undefined || value === undefined) return row;
    values[i] = value;
  }
  return values;
}

/** The work items of a batch, made again inside the Worker. */
export function expandItems(batch: WireBatch): WorkItem[] {
  const names = batch.relations.map((relation) => relation.columns.map((column) => column.name));
  const row = (value: unknown, columns: string[]) => {
    if (!Array.isArray(value)) return value;
    const out: Record<string, unknown> = {};
    for (let i = 0; i < value.length; i++) {
      if (value[i] !== undefined) out[columns[i]!] = value[i];
    }
    return out;
  };
  return batch.items.map((wire) => {
    if (!Array.isArray(wire)) return wire;
    const [r, t, op, lsn, before, after, unchanged, topic, key, headers, origin] = wire;
    const relation = batch.relations[r]!;
    const transaction = batch.transactions[t]!;
    const source: Record<string, unknown> = {
      schema: relation.schema,
      table: relation.table,
      relid: relation.relid,
      lsn,
      commitLsn: transaction.commitLsn,
      xid: transaction.xid,
      commitTime: transaction.commitTime,
    };
    if (origin !== undefined) source.origin = origin;
    const event: Record<string, unknown> = {
      op,
      source,
      before: row(before, names[r]!),
      after: row(after, names[r]!),
      unchanged,
    };
    if (topic !== undefined) event.topic = topic;
    if (key !== undefined) event.key = key;
    if (headers !== undefined) event.headers = headers;
    return { kind: "change", event, relation, transaction } as unknown as WorkItem;
  });
}
