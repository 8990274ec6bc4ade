/**
 * Spillway's schema registry client (`formats/avro/registry.ts`) and its Avro schemas
 * (`formats/avro/schema.ts`) against a real Apicurio Registry 3.3.3 (`testing/registry.ts`),
 * whose Apache Avro parser is an independent check that the schemas are valid: Debezium-shaped
 * key and envelope schemas register; ids are cached; a table's new schema is tested against the
 * subject's compatibility level (a nullable column added passes BACKWARD; a NOT NULL column
 * without a default does not, with the registry's reason); a refused registration and a
 * registry that is down fail with errors that say whether a retry helps.
 *
 * @module
 */

import assert from "node:assert/strict";
import { envelopeSchema, keySchema } from "../formats/connect_schema.ts";
import type { ConnectColumn } from "../formats/connect_schema.ts";
import { DEBEZIUM_DEFAULTS } from "../decoder/types/json.ts";
import { avroSchema } from "../formats/avro/schema.ts";
import { RegistryError, SchemaRegistryClient } from "../formats/avro/registry.ts";
import { startRegistry } from "../testing/registry.ts";

const TOPIC = "shop.public.orders";

const COLUMNS: ConnectColumn[] = [
  { name: "id", typeOid: 20, typeModifier: -1, optional: false },
  { name: "customer", typeOid: 25, typeModifier: -1, optional: true },
  { name: "amount", typeOid: 1700, typeModifier: (12 << 16 | 2) + 4, optional: true },
  { name: "status", typeOid: 25, typeModifier: -1, optional: false, default: "new" },
  { name: "created_at", typeOid: 1184, typeModifier: -1, optional: true },
  { name: "tags", typeOid: 1009, typeModifier: -1, optional: true },
  { name: "payload", typeOid: 3802, typeModifier: -1, optional: true },
];

const value = (columns: ConnectColumn[]) =>
  avroSchema(envelopeSchema(TOPIC, columns, DEBEZIUM_DEFAULTS));

Deno.test("avro registry: Debezium-shaped schemas register in a real registry; compatibility across column changes; errors say whether a retry helps", async () => {
  await using registry = await startRegistry();
  const client = new SchemaRegistryClient({ url: registry.url });
  try {
    const key = avroSchema(keySchema(TOPIC, [COLUMNS[0]!], DEBEZIUM_DEFAULTS));
    const keyId = await client.register(`${TOPIC}-key`, key);
    const valueId = await client.register(`${TOPIC}-value`, value(COLUMNS));
    assert.equal(typeof keyId, "number");
    assert.notEqual(keyId, valueId);
    // Cached: the same schema again asks nothing (the registry would answer the same id).
    assert.equal(await client.register(`${TOPIC}-value`, value(COLUMNS)), valueId);

    await client.setLevel(`${TOPIC}-value`, "BACKWARD");
    assert.equal(await client.level(`${TOPIC}-value`), "BACKWARD");
    // A subject without versions: anything may be first (Confluent answers 404: null;
    // Apicurio answers compatible).
    const first = await client.compatibility("nothing-here-value", value(COLUMNS));
    assert.ok(first === null || first.compatible, JSON.stringify(first));

    // A nullable column added: readers of the new schema read old data (null default).
    const added = [...COLUMNS, { name: "note", typeOid: 25, typeModifier: -1, optional: true }];
    assert.deepEqual(
      (await client.compatibility(`${TOPIC}-value`, value(added)))?.compatible,
      true,
    );
    const addedId = await client.register(`${TOPIC}-value`, value(added));
    assert.notEqual(addedId, valueId);

    // A NOT NULL column without a default: old data has no value for it.
    const required = [...added, { name: "sku", typeOid: 25, typeModifier: -1, optional: false }];
    const verdict = await client.compatibility(`${TOPIC}-value`, value(required));
    assert.equal(verdict?.compatible, false);
    const refused = await client.register(`${TOPIC}-value`, value(required)).then(
      () => null,
      (error) => error,
    );
    assert.ok(refused instanceof RegistryError, `not refused: ${refused}`);
    assert.equal(refused.status, 409);
    assert.equal(refused.retriable, false);
    assert.match(refused.message, /shop\.public\.orders-value/);
    assert.match(refused.message, /compatibility/);

    // Under NONE it is taken.
    await client.setLevel(`${TOPIC}-value`, "NONE");
    assert.equal(typeof await client.register(`${TOPIC}-value`, value(required)), "number");
  } finally {
    client.close();
  }

  // Down: a retriable error naming the registry.
  await registry.stop();
  const down = new SchemaRegistryClient({ url: registry.url, timeoutMs: 2_000 });
  const error = await down.register(`${TOPIC}-key`, { type: "string" }).then(
    () => null,
    (e) => e,
  );
  assert.ok(error instanceof RegistryError);
  assert.equal(error.retriable, true);
  assert.match(error.message, /did not answer/);
  assert.match(error.message, new RegExp(registry.url.replaceAll(".", "\\.")));
  down.close();
});
