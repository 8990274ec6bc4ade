/**
 * Column changes against a real schema registry's compatibility rules (Apicurio Registry 3.3.3):
 * each change turns a table's Debezium-shaped Avro value schema (`formats/avro/schema.ts`) into
 * a new one, which the registry tests under BACKWARD and FULL. The verdicts are Avro's schema
 * resolution rules applied to what Spillway generates: a nullable column is optional with
 * default null (added or dropped freely); a NOT NULL column without a default is required.
 * `tests/kafka_avro_test.ts` shows a refused change stopping a running pipeline.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ConnectColumn } from "../formats/connect_schema.ts";
import { envelopeSchema } from "../formats/connect_schema.ts";
import { DEBEZIUM_DEFAULTS } from "../decoder/types/json.ts";
import { avroSchema } from "../formats/avro/schema.ts";
import { SchemaRegistryClient } from "../formats/avro/registry.ts";
import { startRegistry } from "../testing/registry.ts";

const TOPIC = "shop.public.items";
const column = (name: string, typeOid: number, optional: boolean): ConnectColumn => ({
  name,
  typeOid,
  typeModifier: -1,
  optional,
});
const INT4 = 23;
const INT8 = 20;
const TEXT = 25;

const BASE = [column("id", INT4, false), column("name", TEXT, false), column("note", TEXT, true)];

/** Each change, and whether BACKWARD and FULL accept it. */
const CHANGES: { change: string; columns: ConnectColumn[]; backward: boolean; full: boolean }[] = [
  {
    change: "a nullable column added",
    columns: [...BASE, column("extra", TEXT, true)],
    backward: true,
    full: true,
  },
  {
    change: "a NOT NULL column added without a default",
    columns: [...BASE, column("sku", TEXT, false)],
    backward: false,
    full: false,
  },
  {
    change: "a NOT NULL column added with a default",
    columns: [...BASE, { ...column("sku", TEXT, false), default: "none" }],
    backward: true,
    full: true,
  },
  {
    change: "a nullable column dropped",
    columns: BASE.filter((c) => c.name !== "note"),
    backward: true,
    full: true,
  },
  {
    // Old readers need it: FORWARD (so FULL) breaks.
    change: "a NOT NULL column dropped",
    columns: BASE.filter((c) => c.name !== "name"),
    backward: true,
    full: false,
  },
  {
    // int promotes to long for a new reader; an old reader cannot read a long.
    change: "a column's type widened (integer to bigint)",
    columns: BASE.map((c) => c.name === "id" ? column("id", INT8, false) : c),
    backward: true,
    full: false,
  },
  {
    change: "a column's type changed (integer to text)",
    columns: BASE.map((c) => c.name === "id" ? column("id", TEXT, false) : c),
    backward: false,
    full: false,
  },
  {
    change: "a nullable column renamed",
    columns: BASE.map((c) => c.name === "note" ? column("remark", TEXT, true) : c),
    backward: true,
    full: true,
  },
  {
    change: "a NOT NULL column renamed",
    columns: BASE.map((c) => c.name === "name" ? column("title", TEXT, false) : c),
    backward: false,
    full: false,
  },
];

const value = (columns: ConnectColumn[]) =>
  avroSchema(envelopeSchema(TOPIC, columns, DEBEZIUM_DEFAULTS));

Deno.test("avro compatibility: column changes under BACKWARD and FULL, as the registry rules on Spillway's schemas", async () => {
  await using registry = await startRegistry();
  const client = new SchemaRegistryClient({ url: registry.url });
  try {
    const verdicts: string[] = [];
    const expected: string[] = [];
    let n = 0;
    for (const level of ["BACKWARD", "FULL"] as const) {
      for (const { change, columns, backward, full } of CHANGES) {
        const subject = `${TOPIC}-${++n}-value`;
        await client.register(subject, value(BASE));
        await client.setLevel(subject, level);
        const verdict = await client.compatibility(subject, value(columns));
        verdicts.push(`${level}: ${change}: ${verdict?.compatible}`);
        expected.push(`${level}: ${change}: ${level === "BACKWARD" ? backward : full}`);
      }
    }
    assert.deepEqual(verdicts, expected);
  } finally {
    client.close();
  }
});
