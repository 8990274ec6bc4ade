/** Debezium's envelope in Avro: the schemas to register, the wire header, the same payload. */

import assert from "node:assert/strict";
import { DebeziumFormat } from "../debezium.ts";
import { orderRecords } from "../../bench/_orders_records.ts";
import { DebeziumAvroFormat } from "./debezium_avro.ts";
import type { AvroSchema } from "./schema.ts";
import { asNumbers, avscType } from "./testdata/avsc.ts";

Deno.test("DebeziumAvroFormat: subjects by topic, ids in the wire header, the payload debezium-json writes", () => {
  const options = { serverName: "shop", database: "postgres", version: "0" };
  const format = new DebeziumAvroFormat(options);
  const json = new DebeziumFormat({ ...options, schemas: false });
  const records = orderRecords(2).filter((r) => r.kind === "change");
  const needed = format.schemasOf(records[0]!);
  assert.deepEqual(needed.map((s) => s.subject), ["public.orders-key", "public.orders-value"]);
  // The same schema objects for every record of the table: registered once.
  assert.equal(format.schemasOf(records[1]!)[1]!.schema, needed[1]!.schema);
  const ids = new Map<AvroSchema, number>(needed.map((s, i) => [s.schema, 100 + i]));
  const idOf = (_subject: string, schema: AvroSchema) => ids.get(schema)!;
  const valueType = avscType(needed[1]!.schema);
  for (const record of records) {
    const [encoded] = format.change(record, true, idOf);
    const [expected] = json.change(record, true);
    assert.deepEqual([...encoded!.key!.subarray(0, 5)], [0, 0, 0, 0, 100]);
    assert.deepEqual([...encoded!.value!.subarray(0, 5)], [0, 0, 0, 0, 101]);
    const payload = JSON.parse(new TextDecoder().decode(expected!.value!));
    const decoded = valueType.decode(encoded!.value!.subarray(5)) as Record<
      string,
      Record<string, unknown>
    >;
    assert.equal(decoded.op as unknown, payload.op);
    assert.deepEqual(asNumbers({ ...decoded.after, amount: null }), {
      ...payload.after,
      amount: null,
    });
    assert.equal((decoded.after!.amount as Uint8Array).toBase64(), payload.after.amount);
    assert.deepEqual(asNumbers({ ...decoded.source }), payload.source);
    assert.equal(decoded.source!.table, "orders");
  }
  const fixed = format.fixedSchemas();
  assert.deepEqual(fixed.transaction.map((s) => s.subject), [
    "shop.transaction-key",
    "shop.transaction-value",
  ]);
  assert.deepEqual(fixed.message.map((s) => s.subject), ["shop.message-key", "shop.message-value"]);
});

Deno.test("DebeziumAvroFormat: subjects by record name, and by topic and record name", () => {
  const options = { serverName: "shop", database: "postgres", version: "0" };
  const [record] = orderRecords(1);
  if (record?.kind !== "change") throw new Error("a change record");
  const byRecord = new DebeziumAvroFormat({ ...options, subjectNaming: "record" });
  assert.deepEqual(byRecord.schemasOf(record).map((s) => s.subject), [
    "public.orders.Key",
    "public.orders.Envelope",
  ]);
  const both = new DebeziumAvroFormat({ ...options, subjectNaming: "topic_record" });
  assert.deepEqual(both.schemasOf(record).map((s) => s.subject), [
    "public.orders-public.orders.Key",
    "public.orders-public.orders.Envelope",
  ]);
  assert.deepEqual(both.fixedSchemas().message.map((s) => s.subject), [
    "shop.message-io.debezium.connector.postgresql.MessageKey",
    "shop.message-io.debezium.connector.postgresql.MessageValue",
  ]);
});

Deno.test("DebeziumAvroFormat: a message outside a transaction carries the last change's commit time, as in JSON", () => {
  const options = { serverName: "shop", database: "postgres", version: "0" };
  const format = new DebeziumAvroFormat(options);
  const [record] = orderRecords(1);
  if (record?.kind !== "change") throw new Error("a change record");
  const [subjectKey, subjectValue] = format.schemasOf(record);
  const fixed = format.fixedSchemas().message;
  const ids = new Map<AvroSchema, number>(
    [subjectKey!, subjectValue!, ...fixed].map((s, i) => [s.schema, i + 1]),
  );
  const idOf = (_subject: string, schema: AvroSchema) => ids.get(schema)!;
  format.change(record, true, idOf);
  const message = format.message({
    op: "m",
    transactional: false,
    prefix: "audit",
    content: new Uint8Array([0, 255]),
    lsn: record.event.source.lsn,
  } as never, idOf);
  const decoded = avscType(fixed[1]!.schema).decode(message.value!.subarray(5)) as {
    source: { ts_us: bigint };
  };
  assert.equal(decoded.source.ts_us, record.event.source.commitTime);
});
