/**
 * The Kafka sink with `format: debezium-avro` against a real PostgreSQL 17, a real Kafka broker
 * and a real schema registry (Apicurio Registry 3.3.3, Confluent-compatible API): records in
 * Confluent's wire format whose schema ids the registry resolves, decoded with the registry's
 * copy of the schema by avsc (an independent Avro implementation) into the payload Debezium's
 * JSON would carry; a compatible column change (a nullable column) registers a new version
 * and goes on; an incompatible one under BACKWARD (a NOT NULL column without a default) stops
 * the pipeline naming the table, the subject, the level and the change, with the slot left
 * before it; after the operator sets the subject to NONE, a restart writes it; with
 * `on_incompatible: dead_letter` a refused change sends the table's changes to the dead-letter
 * topic as JSON lines and the pipeline goes on, until a compatible change brings them back; a
 * registry that is down at start or mid-stream is waited for; a transform's shape is in the
 * registered schema.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startKafka } from "../testing/kafka.ts";
import { startRegistry } from "../testing/registry.ts";
import { sharedServers } from "./_replication.ts";
import { consume, type Consumed, ordered, reshapingPipeline } from "./_kafka.ts";
import { join } from "node:path";
import { SchemaRegistryClient } from "../formats/avro/registry.ts";
import { asNumbers, avscType } from "../formats/avro/testdata/avsc.ts";
import { parseLsn } from "../decoder/lsn.ts";
import { HealthRegistry } from "../ops/health.ts";
import { checkPipeline } from "../check/mod.ts";
import { parsePipelineConfig } from "../config/mod.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
import {
  confirmedReaches,
  dropItemsPipeline,
  itemsPipelineYaml,
  Poller,
  releasedConfirmed,
  startRunner,
} from "./_runner_util.ts";

const { server, stopAll } = sharedServers({ settings: { autovacuum: "off" } });

// One broker and one registry for the file's tests (each uses its own tables and subjects).
let brokerStarting: ReturnType<typeof startKafka> | null = null;
const broker = () => brokerStarting ??= startKafka();
let registryStarting: ReturnType<typeof startRegistry> | null = null;
const schemaRegistry = () => registryStarting ??= startRegistry();

/** The health check of the pipeline's Kafka sink. */
async function kafkaHealth(
  health: HealthRegistry,
): Promise<{ status: string; detail?: string } | undefined> {
  const report = await health.report();
  return Object.entries(report.checks).find(([check]) => check.startsWith("sink:kafka"))?.[1];
}

/** The schema id of a record in Confluent's wire format, and its Avro body. */
function unwire(bytes: Uint8Array): { id: number; body: Uint8Array } {
  assert.equal(bytes[0], 0, "magic byte");
  return {
    id: new DataView(bytes.buffer, bytes.byteOffset).getInt32(1),
    body: bytes.subarray(5),
  };
}

/** Decodes records with the schemas the registry holds for their ids. */
async function decode(registryUrl: string, bytes: Uint8Array): Promise<Record<string, unknown>> {
  const { id, body } = unwire(bytes);
  const response = await fetch(`${registryUrl}/schemas/ids/${id}`);
  assert.equal(response.status, 200, `schema ${id}`);
  const { schema } = await response.json() as { schema: string };
  return avscType(JSON.parse(schema)).decode(body) as Record<string, unknown>;
}

Deno.test("kafka avro: wire format with registry ids, compatible and refused column changes, restart after the level changes", async () => {
  const pg = await server();
  const kafka = await broker();
  const registry = await schemaRegistry();
  const poller = new Poller(pg);
  const name = "kavro";
  const topic = `${name}.public.${name}_items`;
  const yaml = itemsPipelineYaml(pg, name, {
    sinks: [
      `kafka: { brokers: [${
        kafka.brokers[0]
      }], format: debezium-avro, schema_registry: "${registry.url}" }`,
    ],
  });
  const client = new SchemaRegistryClient({ url: registry.url });
  try {
    await pg.psql(
      `CREATE TABLE ${name}_items (id bigint PRIMARY KEY, name text NOT NULL, price numeric(10,2), at timestamptz)`,
    );
    let records: Consumed[] = [];
    let running = await startRunner(yaml);
    try {
      await pg.psql(
        `INSERT INTO ${name}_items VALUES (1, 'one', 1.50, '2024-02-29 13:45:00.5+00'), (9007199254740993, 'big', NULL, NULL);
         ALTER TABLE ${name}_items ADD COLUMN note text;
         INSERT INTO ${name}_items VALUES (3, 'three', 3.00, NULL, 'nullable column');`,
      );
      records = await consume(kafka.brokers, [topic], 3);
    } finally {
      await running.stop();
    }
    const changes = ordered(records, topic);
    const values = (await Promise.all(changes.map((r) => decode(registry.url, r.valueBytes!))))
      .map((v) => asNumbers(v) as Record<string, unknown>);
    const keys = await Promise.all(changes.map((r) => decode(registry.url, r.keyBytes!)));
    // int8 past 2^53, exact.
    assert.deepEqual(keys.map((k) => k.id), [1n, 9007199254740993n, 3n]);
    assert.deepEqual(values.map((v) => v.op), ["c", "c", "c"]);
    const first = values[0]!.after as Record<string, unknown>;
    assert.equal(first.name, "one");
    assert.equal(first.at, "2024-02-29T13:45:00.500000Z");
    assert.equal((values[2]!.after as Record<string, unknown>).note, "nullable column");
    // Two versions of the value subject: the nullable column was compatible.
    const versions = await (await fetch(`${registry.url}/subjects/${topic}-value/versions`)).json();
    assert.deepEqual(versions.length, 2);

    // A NOT NULL column without a default breaks BACKWARD (the registry's default level).
    await client.setLevel(`${topic}-value`, "BACKWARD");
    running = await startRunner(yaml);
    await pg.psql(
      `ALTER TABLE ${name}_items ADD COLUMN sku text NOT NULL DEFAULT 'x';
       ALTER TABLE ${name}_items ALTER COLUMN sku DROP DEFAULT;
       INSERT INTO ${name}_items VALUES (4, 'four', NULL, NULL, NULL, 'sku-4');`,
    );
    const insertEnd = parseLsn((await pg.psql("SELECT pg_current_wal_lsn()")).trim());
    const failure = await running.ended;
    assert.ok(failure instanceof Error, `the pipeline did not stop: ${failure}`);
    assert.match(failure.message, new RegExp(`public\\.${name}_items`));
    assert.match(failure.message, new RegExp(`subject ${topic.replaceAll(".", "\\.")}-value`));
    assert.match(failure.message, /BACKWARD/);
    assert.match(failure.message, /column sku added without a default/);
    assert.match(failure.message, /slot was not moved past the change/);
    const confirmed = await releasedConfirmed(poller, `${name}_slot`);
    assert.ok(confirmed < insertEnd, "the slot moved past the refused change");

    // The operator relaxes the level; a restart writes the change.
    await client.setLevel(`${topic}-value`, "NONE");
    running = await startRunner(yaml);
    try {
      records = await consume(kafka.brokers, [topic], 4);
    } finally {
      await running.stop();
    }
    const last = await decode(registry.url, ordered(records, topic).at(-1)!.valueBytes!);
    assert.equal((last.after as Record<string, unknown>).sku, "sku-4");

    // on_incompatible: dead_letter: a refused change sends the table's changes to the
    // dead-letter topic as JSON, and the pipeline goes on (health degraded, the slot moving).
    await client.setLevel(`${topic}-value`, "BACKWARD");
    const health = new HealthRegistry();
    running = await startRunner(
      itemsPipelineYaml(pg, name, {
        sinks: [
          `kafka: { brokers: [${
            kafka.brokers[0]
          }], format: debezium-avro, schema_registry: { url: "${registry.url}", on_incompatible: dead_letter } }`,
        ],
      }),
      { health },
    );
    let dead: Consumed[];
    let sinkHealth: { status: string; detail?: string } | undefined;
    try {
      await pg.psql(
        `ALTER TABLE ${name}_items ADD COLUMN code int NOT NULL DEFAULT 0;
         ALTER TABLE ${name}_items ALTER COLUMN code DROP DEFAULT;
         INSERT INTO ${name}_items VALUES (5, 'five', NULL, NULL, NULL, 'sku-5', 55);
         UPDATE ${name}_items SET name = 'FOUR' WHERE id = 4;`,
      );
      const end = parseLsn((await pg.psql("SELECT pg_current_wal_lsn()")).trim());
      dead = await consume(kafka.brokers, [`${name}.dead-letter`], 2);
      await confirmedReaches(poller, `${name}_slot`, end);
      sinkHealth = await kafkaHealth(health);
      // The column made nullable: a compatible schema, registered; the table's changes go to
      // its topic again and the sink is healthy.
      await pg.psql(
        `ALTER TABLE ${name}_items ALTER COLUMN code DROP NOT NULL;
         INSERT INTO ${name}_items VALUES (6, 'six', NULL, NULL, NULL, 'sku-6', 66);`,
      );
      const back = ordered(await consume(kafka.brokers, [topic], 5), topic);
      assert.equal(back.length, 5, "the refused changes reached the table's topic");
      const six = await decode(registry.url, back[4]!.valueBytes!);
      assert.equal((six.after as Record<string, unknown>).code, 66);
      assert.equal((await kafkaHealth(health))?.status, "ok");
    } finally {
      await running.stop();
    }
    assert.equal(sinkHealth?.status, "degraded");
    assert.match(sinkHealth?.detail ?? "", new RegExp(`go to ${name}\\.dead-letter`));
    assert.deepEqual(dead.map((r) => r.headers["spillway.dead_letter.reason"]), [
      "schema-refused",
      "schema-refused",
    ]);
    const letters = dead.map((r) => JSON.parse(r.value!));
    assert.deepEqual(letters.map((l) => [l.reason, l.subject, l.topic, l.key, l.event.op]), [
      ["schema-refused", `${topic}-value`, topic, { id: 5 }, "c"],
      ["schema-refused", `${topic}-value`, topic, { id: 4 }, "u"],
    ]);
    assert.equal(letters[0].event.after.code, 55);
    assert.match(letters[0].error.message, /BACKWARD/);
    assert.match(letters[0].error.message, /column code added without a default/);
    assert.deepEqual(dead.map((r) => JSON.parse(r.key!)), [{ id: 5 }, { id: 4 }]);
  } finally {
    client.close();
    await dropItemsPipeline(pg, poller, name);
  }
});

Deno.test("kafka avro: a schema registry that is down at start and mid-stream is waited for (the sink reports failing, replication stays connected), then every row arrives", async () => {
  const pg = await server();
  const kafka = await broker();
  const registry = await schemaRegistry();
  const poller = new Poller(pg);
  const name = "kavrodown";
  const topic = `${name}.public.${name}_items`;
  const health = new HealthRegistry();
  /** The sink's failing detail once health shows it within `ms`; `null` if it does not. */
  const failingWithin = async (ms: number) => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const sink = await kafkaHealth(health);
      if (sink?.status === "failing") return sink.detail ?? "failing";
      await sleep(250);
    }
    return null;
  };
  /** Resolves once the registry no longer answers (it is being restarted). */
  const down = async () => {
    for (let i = 0; i < 100; i++) {
      const answered = await fetch(`${registry.url}/subjects`).then(
        async (response) => (await response.body?.cancel(), true),
        () => false,
      );
      if (!answered) return;
      await sleep(100);
    }
    assert.fail("the registry still answers 10 s after its restart began");
  };
  try {
    await pg.psql(`CREATE TABLE ${name}_items (id int PRIMARY KEY, name text)`);
    // Down at start: the pipeline starts, and its first write waits for the registry.
    const firstOutage = registry.restart(2_000);
    await down();
    const running = await startRunner(
      itemsPipelineYaml(pg, name, {
        sinks: [
          `kafka: { brokers: [${
            kafka.brokers[0]
          }], format: debezium-avro, schema_registry: "${registry.url}" }`,
        ],
      }),
      { health },
    );
    let records: Consumed[];
    let failingAtStart: string | null;
    let failingMidStream: string | null;
    try {
      await pg.psql(`INSERT INTO ${name}_items SELECT g, 'n' || g FROM generate_series(1, 5) g`);
      failingAtStart = await failingWithin(6_000);
      await firstOutage;
      await consume(kafka.brokers, [topic], 5);
      // Down mid-stream, when a column change needs a new schema registered.
      const secondOutage = registry.restart(2_000);
      await down();
      await pg.psql(
        `ALTER TABLE ${name}_items ADD COLUMN note text;
         INSERT INTO ${name}_items SELECT g, 'n' || g, 'note ' || g FROM generate_series(6, 8) g`,
      );
      failingMidStream = await failingWithin(6_000);
      await secondOutage;
      records = await consume(kafka.brokers, [topic], 8);
      assert.equal(running.runner.source?.reconnects ?? -1, 0, "replication reconnected");
      assert.equal((await kafkaHealth(health))?.status, "ok");
    } finally {
      await running.stop();
    }
    for (const failing of [failingAtStart, failingMidStream]) {
      assert.ok(failing !== null, "the sink never reported failing while the registry was down");
      assert.match(failing!, /[Ss]chema registry/);
    }
    const changes = ordered(records, topic);
    assert.equal(changes.length, 8);
    // The test's registry keeps schemas in memory: its restart lost the ids of the schemas
    // registered before, so the values written after the change (whose schema was registered
    // after the restart) are the ones decoded.
    const last = await Promise.all(
      changes.slice(5).map(async (r) => {
        const { id, note } = (await decode(registry.url, r.valueBytes!)).after as {
          id: number;
          note: string;
        };
        return { id, note };
      }),
    );
    assert.deepEqual(last, [
      { id: 6, note: "note 6" },
      { id: 7, note: "note 7" },
      { id: 8, note: "note 8" },
    ]);
  } finally {
    await dropItemsPipeline(pg, poller, name);
  }
});

Deno.test("kafka avro: a transform's retyped, dropped and added fields get Avro types in the registered schema", async () => {
  const pg = await server();
  const kafka = await broker();
  const registry = await schemaRegistry();
  const poller = new Poller(pg);
  const name = "kavroshape";
  const topic = `${name}.public.${name}_items`;
  const dir = await Deno.makeTempDir({ prefix: "spillway-avro-shape-" });
  try {
    const running = await startRunner(
      await reshapingPipeline(
        pg,
        name,
        dir,
        `kafka: { brokers: [${
          kafka.brokers[0]
        }], format: debezium-avro, schema_registry: "${registry.url}" }`,
      ),
      { file: join(dir, "p.yaml") },
    );
    let records: Consumed[];
    try {
      await pg.psql(`INSERT INTO ${name}_items VALUES (1, 1.50, 'n', 's'), (2, NULL, NULL, 's')`);
      records = await consume(kafka.brokers, [topic], 2);
    } finally {
      await running.stop();
    }
    const latest = await (await fetch(`${registry.url}/subjects/${topic}-value/versions/latest`))
      .json() as { schema: string; version: number };
    assert.equal(latest.version, 1, "one schema version for one shape");
    const envelope = JSON.parse(latest.schema);
    // The Value record is defined at `before` (`after` names it).
    const value = envelope.fields.find((f: { name: string }) => f.name === "before").type
      .find((t: unknown) => typeof t === "object");
    assert.deepEqual(
      value.fields.map((f: { name: string; type: unknown }) => [f.name, f.type]),
      [
        ["id", "int"],
        ["price", ["null", "double"]],
        ["note", ["null", "string"]],
        ["price_cents", ["null", "long"]],
        ["tags", ["null", { type: "array", items: ["null", "string"] }]],
      ],
    );
    const afters = await Promise.all(
      ordered(records, topic).map(async (r) => ({
        ...(await decode(registry.url, r.valueBytes!)).after as object,
      })),
    );
    assert.deepEqual(afters, [
      { id: 1, price: 1.5, note: "n", price_cents: 150n, tags: ["a", "n"] },
      { id: 2, price: null, note: null, price_cents: null, tags: ["a", "none"] },
    ]);
  } finally {
    await dropItemsPipeline(pg, poller, name);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kafka avro: spillway check says whether each table's schemas are registered, or would be refused", async () => {
  const pg = await server();
  const kafka = await broker();
  const registry = await schemaRegistry();
  const poller = new Poller(pg);
  const name = "kavrocheck";
  const yaml = itemsPipelineYaml(pg, name, {
    sinks: [
      `kafka: { brokers: [${
        kafka.brokers[0]
      }], format: debezium-avro, schema_registry: "${registry.url}" }`,
    ],
  });
  const check = async () =>
    (await checkPipeline(parsePipelineConfig(yaml, { file: "test.yaml", env: {} })))
      .filter((f) => f.subject === `avro public.${name}_items`);
  try {
    await pg.psql(
      `CREATE TABLE ${name}_items (id int PRIMARY KEY, price numeric(10,2), e_at timestamptz)`,
    );
    // Nothing registered yet.
    let [finding] = await check();
    assert.equal(finding?.level, "ok", JSON.stringify(finding));
    assert.match(finding!.message, /-value: not registered yet/);
    // A run registers them; check then finds them (the same schemas the sink makes).
    const running = await startRunner(yaml);
    try {
      await pg.psql(`INSERT INTO ${name}_items VALUES (1, 2.50, now())`);
      await consume(kafka.brokers, [`${name}.public.${name}_items`], 1);
    } finally {
      await running.stop();
    }
    [finding] = await check();
    assert.equal(finding?.level, "ok", JSON.stringify(finding));
    assert.match(finding!.message, /-key: registered; .*-value: registered$/);
    // A NOT NULL column without a default: refused under BACKWARD, before any change is read.
    await new SchemaRegistryClient({ url: registry.url }).setLevel(
      `${name}.public.${name}_items-value`,
      "BACKWARD",
    );
    await pg.psql(
      `ALTER TABLE ${name}_items ADD COLUMN sku text NOT NULL DEFAULT 'x';
       ALTER TABLE ${name}_items ALTER COLUMN sku DROP DEFAULT;`,
    );
    [finding] = await check();
    assert.equal(finding?.level, "error", JSON.stringify(finding));
    assert.match(finding!.message, /-value: changed and incompatible under BACKWARD/);
    assert.match(finding!.fix!, /compatibility level/);
  } finally {
    await dropItemsPipeline(pg, poller, name);
  }
});

Deno.test({
  name: "kafka avro: stop the shared servers",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await stopAll();
    if (brokerStarting) await (await brokerStarting).stop();
    if (registryStarting) await (await registryStarting).stop();
  },
});
