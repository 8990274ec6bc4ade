/**
 * Change records shaped like the `orders` table of `bench/decode.ts` and `bench/pipeline.ts`
 * (one transaction of inserts), for the offline benchmarks (`bench/_render_offline.ts`,
 * `bench/_transform_offline.ts`).
 *
 * @module
 */

import { lsn } from "../decoder/lsn.ts";
import type { RelationMessage } from "../decoder/pgoutput.ts";
import { EVENT_RELATION, type SinkRecord } from "../events.ts";

/** The `orders` relation as the decoder gives it. */
export const ORDERS_RELATION: RelationMessage = {
  type: "Relation",
  relationId: 16385,
  namespace: "public",
  relationName: "orders",
  replicaIdentity: "d",
  columns: [
    { flags: 1, isKey: true, name: "id", typeOid: 20, typeModifier: -1 },
    { flags: 0, isKey: false, name: "customer", typeOid: 25, typeModifier: -1 },
    { flags: 0, isKey: false, name: "amount", typeOid: 1700, typeModifier: (12 << 16 | 2) + 4 },
    { flags: 0, isKey: false, name: "status", typeOid: 25, typeModifier: -1 },
    { flags: 0, isKey: false, name: "created_at", typeOid: 1184, typeModifier: -1 },
  ],
};

/** `rows` insert records of `orders`, as the router hands them on (no begin or commit). */
export function orderRecords(rows: number): SinkRecord[] {
  const records: SinkRecord[] = [];
  for (let i = 0; i < rows; i++) {
    const id = BigInt(i + 1);
    records.push({
      kind: "change",
      topic: "public.orders",
      key: { id },
      event: {
        op: "c",
        source: {
          schema: "public",
          table: "orders",
          relid: 16385,
          lsn: lsn(0x3000000n + BigInt(i * 120)),
          commitLsn: lsn(0x3620198n),
          xid: 741,
          commitTime: 1795000000000000n,
        },
        before: null,
        after: {
          id,
          customer: `customer-${i % 1000}`,
          amount: `${i % 10000}.${String(i % 100).padStart(2, "0")}`,
          status: i % 3 === 0 ? "shipped" : "new",
          created_at: "2026-11-25 19:35:00.123456+00",
        },
        unchanged: [],
        [EVENT_RELATION]: ORDERS_RELATION,
      },
    });
  }
  return records;
}
