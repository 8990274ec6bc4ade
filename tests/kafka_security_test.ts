/**
 * The Kafka sink's SASL and TLS against a real broker (`startKafka({ security })`: listeners
 * SASL_PLAINTEXT, SSL and SASL_SSL beside PLAINTEXT).
 *
 * Asserted: with the right credentials a sink opens and writes over SASL PLAIN, SCRAM-SHA-256
 * and SCRAM-SHA-512, over TLS with the CA that signed the broker's certificate, and over both
 * at once, and a consumer (over PLAINTEXT) reads what it wrote; with a wrong password `open()`
 * fails at once, not to be retried, naming SASL and the fix, and the password appears nowhere
 * in the message; with a CA that did not sign the broker's certificate `open()` fails at once,
 * not to be retried, naming the certificate and `tls.ca`.
 *
 * Every `open()` runs under a time limit, so a sink that keeps retrying fails its test rather
 * than hanging it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type KafkaBroker, makeTestCa, startKafka } from "../testing/kafka.ts";
import { parsePipelineConfig } from "../config/mod.ts";
import type { KafkaSinkConfig } from "../config/mod.ts";
import { KafkaSink } from "../sinks/kafka/mod.ts";
import { KafkaSinkError } from "../sinks/kafka/errors.ts";
import { lsn } from "../decoder/lsn.ts";
import { EVENT_RELATION, type SinkRecord } from "../events.ts";
import { consume } from "./_kafka.ts";

/** Longest an `open()` may take before the test calls it a hang. */
const OPEN_LIMIT_MS = 45_000;
/** A refused login or certificate must fail well within this. */
const FAST_FAIL_MS = 15_000;

type Mechanism = "plain" | "scram-sha-256" | "scram-sha-512";
const MECHANISMS: Mechanism[] = ["plain", "scram-sha-256", "scram-sha-512"];

let brokerStarting: Promise<KafkaBroker> | null = null;
const broker = () => brokerStarting ??= startKafka({ security: { sasl: true, tls: true } });

/** The sink config of a pipeline whose only sink is `kafka: <fields>`. */
function kafkaConfig(fields: Record<string, unknown>): KafkaSinkConfig {
  const config = parsePipelineConfig(
    "source: { url: postgres://u@h/db, slot: s, publication: p }\n" +
      `tables: { public.t: {} }\nsinks: [kafka: ${JSON.stringify(fields)}]\n`,
    { file: "p.yaml", env: {} },
  );
  const sink = config.sinks[0]!;
  assert.equal(sink.type, "kafka");
  return sink as KafkaSinkConfig;
}

function newSink(config: KafkaSinkConfig): KafkaSink {
  return new KafkaSink({ config, pipeline: "sec", topicPrefix: "sec", database: "db" });
}

/** What a timed-out step resolves to. */
const TIMED_OUT = Symbol("timed out");

/** `promise`, or {@linkcode TIMED_OUT} once `ms` passed. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Opens `sink`; throws (after closing it, which ends its retries) when `open()` has neither
 * succeeded nor failed within `ms`, with the error the sink reports meanwhile.
 */
async function openWithin(sink: KafkaSink, ms = OPEN_LIMIT_MS): Promise<void> {
  const opening = sink.open();
  opening.catch(() => {});
  const result = await within(opening, ms);
  if (result === TIMED_OUT) {
    const status = sink.status();
    await sink.close();
    await within(opening.catch(() => {}), 15_000);
    throw new Error(
      `open() neither succeeded nor failed within ${ms} ms (status ${status.state}: ${
        status.lastError ?? "no error"
      })`,
    );
  }
}

/** The error `open()` fails with, and how long it took; throws if it opened or hung. */
async function openFailure(sink: KafkaSink): Promise<{ error: Error; ms: number }> {
  const began = Date.now();
  try {
    await openWithin(sink);
  } catch (e) {
    const error = e as Error;
    if (error.message.startsWith("open() neither")) throw error;
    return { error, ms: Date.now() - began };
  }
  throw new Error("open() succeeded; it should have failed");
}

/** Begin, one insert into `public.<table>` with `id`, commit: the records a pipeline sends. */
function oneInsert(topic: string, table: string, id: number, end: bigint): SinkRecord[] {
  const tx = {
    xid: 7,
    commitLsn: lsn(end - 8n),
    commitTime: 1_700_000_000_000_000n,
    streamed: false,
  };
  const relation = {
    type: "Relation" as const,
    relationId: 16384,
    namespace: "public",
    relationName: table,
    replicaIdentity: "d" as const,
    columns: [{ flags: 1, isKey: true, name: "id", typeOid: 23, typeModifier: -1 }],
  };
  const source = {
    schema: "public",
    table,
    relid: 16384,
    lsn: lsn(end - 16n),
    commitLsn: tx.commitLsn,
    xid: tx.xid,
    commitTime: tx.commitTime,
  };
  return [
    { kind: "begin", tx },
    {
      kind: "change",
      topic,
      key: { id },
      event: {
        op: "c",
        source,
        before: null,
        after: { id },
        unchanged: [],
        [EVENT_RELATION]: relation,
      },
    },
    { kind: "commit", tx, endLsn: lsn(end), eventCount: 1 },
  ];
}

/**
 * Opens a sink with `config`, writes one insert to a topic of its own and reads it back over
 * the broker's PLAINTEXT listener.
 */
async function writesAndIsRead(
  kafka: KafkaBroker,
  config: KafkaSinkConfig,
  table: string,
): Promise<void> {
  const topic = `sec.public.${table}`;
  const sink = newSink(config);
  const began = Date.now();
  try {
    await openWithin(sink);
    const opened = Date.now();
    await sink.write(oneInsert(topic, table, 42, 1_000n));
    console.log(
      `  ${table}: open ${opened - began} ms, write ${Date.now() - opened} ms`,
    );
    assert.equal(sink.status().state, "ok");
  } finally {
    await sink.close();
  }
  const records = await consume(kafka.brokers, [topic], 1, { timeoutMs: 30_000 });
  assert.equal(records.length, 1, `one record on ${topic}`);
  assert.equal(records[0]!.key, '{"id":42}');
  const value = JSON.parse(records[0]!.value!);
  assert.deepEqual(value.after, { id: 42 });
  assert.equal(value.op, "c");
}

const options = { sanitizeResources: false, sanitizeOps: false };

for (const mechanism of MECHANISMS) {
  Deno.test({
    name: `kafka security: SASL ${mechanism} with the right password: the sink opens and writes`,
    ...options,
    fn: async () => {
      const kafka = await broker();
      const { username, password } = kafka.credentials!;
      await writesAndIsRead(
        kafka,
        kafkaConfig({
          brokers: kafka.saslBrokers,
          schemas: false,
          sasl: { mechanism, username, password },
        }),
        `sasl_${mechanism.replaceAll("-", "_")}`,
      );
    },
  });

  Deno.test({
    name:
      `kafka security: SASL ${mechanism} with a wrong password: open() fails at once, not retriable, naming SASL and the fix, without the password`,
    ...options,
    fn: async () => {
      const kafka = await broker();
      const { username, password } = kafka.credentials!;
      const wrong = `wrong-${crypto.randomUUID()}`;
      const sink = newSink(kafkaConfig({
        brokers: kafka.saslBrokers,
        sasl: { mechanism, username, password: wrong },
      }));
      try {
        const { error, ms } = await openFailure(sink);
        console.log(`  ${mechanism} refused in ${ms} ms: ${error.message}`);
        assert.ok(error instanceof KafkaSinkError, `a KafkaSinkError, got ${error.name}`);
        assert.equal(error.retriable, false);
        assert.ok(ms < FAST_FAIL_MS, `failed after ${ms} ms`);
        assert.match(error.message, /SASL/);
        assert.match(error.message, /sasl\.password/);
        assert.ok(!error.message.includes(wrong), "the wrong password is not in the message");
        assert.ok(!error.message.includes(password), "the right password is not in the message");
      } finally {
        await sink.close();
      }
    },
  });
}

Deno.test({
  name:
    "kafka security: TLS with the CA that signed the broker's certificate: the sink opens and writes",
  ...options,
  fn: async () => {
    const kafka = await broker();
    await writesAndIsRead(
      kafka,
      kafkaConfig({ brokers: kafka.tlsBrokers, schemas: false, tls: { ca: kafka.caFile } }),
      "tls",
    );
  },
});

Deno.test({
  name: "kafka security: SASL scram-sha-512 over TLS (SASL_SSL): the sink opens and writes",
  ...options,
  fn: async () => {
    const kafka = await broker();
    const { username, password } = kafka.credentials!;
    await writesAndIsRead(
      kafka,
      kafkaConfig({
        brokers: kafka.saslTlsBrokers,
        schemas: false,
        tls: { ca: kafka.caFile },
        sasl: { mechanism: "scram-sha-512", username, password },
      }),
      "sasl_ssl",
    );
  },
});

Deno.test({
  name:
    "kafka security: TLS with a CA that did not sign the broker's certificate: the sink does not open, and says why",
  ...options,
  fn: async () => {
    const kafka = await broker();
    const dir = await Deno.makeTempDir({ prefix: "spillway-kafka-ca-" });
    try {
      const otherCa = await makeTestCa(dir);
      const sink = newSink(kafkaConfig({ brokers: kafka.tlsBrokers, tls: { ca: otherCa } }));
      try {
        const { error, ms } = await openFailure(sink);
        console.log(`  wrong CA refused in ${ms} ms: ${error.message}`);
        assert.ok(error instanceof KafkaSinkError, `a KafkaSinkError, got ${error.name}`);
        assert.equal(error.retriable, false);
        assert.ok(ms < FAST_FAIL_MS, `failed after ${ms} ms`);
        assert.match(error.message, /certificate/i);
        assert.match(error.message, /tls\.ca/);
      } finally {
        await sink.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "kafka security: stop the broker",
  ...options,
  fn: async () => {
    if (brokerStarting) await (await brokerStarting).stop();
  },
});
