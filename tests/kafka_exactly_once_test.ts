/**
 * Exactly-once into Kafka under kill -9: `spillway run` with a `kafka: { exactly_once: true }`
 * sink runs as a subprocess while a workload commits 2,000 transactions (each inserts 100 new
 * rows and updates the 100 rows of the transaction before: 200,000 rows, 399,900 changes);
 * the runner is SIGKILLed at random moments (a seeded PRNG; the seed is printed) at least 10
 * times and started again, until the workload has finished and a last run has caught up and
 * stopped with SIGINT.
 *
 * Asserted, by a `read_committed` consumer of the table's topic: every change exactly once
 * (no row lost, none twice), and per key in order (insert, then update). Also: a second sink
 * with the same transactional id fences the first, whose next write fails with an error
 * naming the cause.
 *
 * Environment: `SPILLWAY_CRASH_SEED=N` replays a printed seed's kill schedule.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startKafka } from "../testing/kafka.ts";
import { startPostgres } from "../testing/embedded_postgres.ts";
import { seededRandom } from "../testing/random.ts";
import { parsePipelineConfig } from "../config/mod.ts";
import { KafkaSink } from "../sinks/kafka/mod.ts";
import { lsn } from "../decoder/lsn.ts";
import { consume } from "./_kafka.ts";
import {
  pipelineYaml,
  Poller,
  sleep,
  slotPosition,
  SpillwayProcess,
  waitFor,
} from "./_runner_util.ts";

const TRANSACTIONS = 2_000;
const ROWS_PER_TRANSACTION = 100;
const MIN_KILLS = 10;
const PAUSE_MS = 10;
const KILL_AFTER_MS: [number, number] = [300, 5_000];

Deno.test("kafka exactly-once: spillway run killed with SIGKILL at random moments writes every change exactly once, in per-key order", async () => {
  const seed = Number(Deno.env.get("SPILLWAY_CRASH_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  console.log(`kafka exactly-once seed: ${seed} (SPILLWAY_CRASH_SEED=${seed} replays it)`);
  const random = seededRandom(seed);
  const began = Date.now();
  await using kafka = await startKafka();
  await using pg = await startPostgres({ settings: { autovacuum: "off" } });
  const poller = new Poller(pg);
  const workload = new Poller(pg);
  const dir = await Deno.makeTempDir({ prefix: "spillway-kafka-eos-" });
  const pipeline = join(dir, "p.yaml");
  const table = "eos_items";
  let child: SpillwayProcess | null = null;
  let work: Promise<void> | null = null;
  let abandoned = false;
  try {
    await pg.psql(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL)`);
    await Deno.writeTextFile(
      pipeline,
      pipelineYaml({
        name: "eos",
        url: pg.url(),
        slot: "eos_slot",
        publication: "eos_pub",
        tables: { [`public.${table}`]: "{}" },
        heartbeat: "1s",
        source: { status_interval: "1s" },
        sinks: [
          `kafka: { brokers: [${
            kafka.brokers[0]
          }], exactly_once: true, schemas: false, partitions: 3 }`,
        ],
        log: "{ level: info, format: text }",
      }),
    );
    let workloadDone = false;
    let lastCommitEnd: bigint | null = null;
    const startWorkload = () =>
      (async () => {
        for (let tx = 0; tx < TRANSACTIONS && !abandoned; tx++) {
          const first = tx * ROWS_PER_TRANSACTION + 1;
          const last = first + ROWS_PER_TRANSACTION - 1;
          await workload.rows(
            `WITH u AS (UPDATE ${table} SET v = 1 WHERE id BETWEEN ${
              first - ROWS_PER_TRANSACTION
            } AND ${first - 1} RETURNING id)
             INSERT INTO ${table} SELECT g, 0 FROM generate_series(${first}, ${last}) g`,
          );
          await sleep(PAUSE_MS);
        }
        lastCommitEnd = BigInt(
          (await workload.value("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))!,
        );
        workloadDone = true;
      })();

    let kills = 0;
    for (let index = 0;; index++) {
      const kill = !workloadDone || kills < MIN_KILLS;
      child = new SpillwayProcess(pipeline);
      if (index === 0) {
        await child.started();
        work = startWorkload();
      }
      if (kill) {
        const after = KILL_AFTER_MS[0] + random.next() * (KILL_AFTER_MS[1] - KILL_AFTER_MS[0]);
        await sleep(after);
        if (child.exitCode !== null) {
          assert.fail(`run ${index} exited with ${child.exitCode} by itself:\n${child.stderr}`);
        }
        await child.kill();
        kills++;
        child = null;
        await waitFor("the killed run's walsender to go", async () => {
          const position = await slotPosition(poller, "eos_slot");
          return position !== null && !position.active;
        });
        continue;
      }
      await child.started(60_000);
      await waitFor("the last run to confirm the workload's last commit", async () => {
        const position = await slotPosition(poller, "eos_slot");
        return position?.confirmed != null && position.confirmed >= lastCommitEnd!;
      }, { timeoutMs: 180_000, detail: () => child!.stderr.slice(-2000) });
      const stopped = await child.stop("SIGINT");
      assert.equal(stopped.code, 0, child.stderr);
      child = null;
      break;
    }
    await work;

    const expected = TRANSACTIONS * ROWS_PER_TRANSACTION * 2 - ROWS_PER_TRANSACTION;
    const records = await consume(kafka.brokers, [`eos.public.${table}`], expected, {
      timeoutMs: 120_000,
      settleMs: 2_000,
    });
    const perKey = new Map<number, string[]>();
    for (const record of records.sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
      const id = JSON.parse(record.key!).id as number;
      const op = JSON.parse(record.value!).op as string;
      let ops = perKey.get(id);
      if (ops === undefined) perKey.set(id, ops = []);
      ops.push(op);
    }
    const wrong: string[] = [];
    const rows = TRANSACTIONS * ROWS_PER_TRANSACTION;
    for (let id = 1; id <= rows; id++) {
      const want = id > rows - ROWS_PER_TRANSACTION ? ["c"] : ["c", "u"];
      const got = perKey.get(id) ?? [];
      if (got.join() !== want.join()) wrong.push(`${id}: ${got.join(",") || "none"}`);
    }
    console.log(
      `kafka exactly-once: seed ${seed}; ${kills} kills; ${records.length} records read (${expected} expected); ${wrong.length} keys wrong; ${
        Math.round((Date.now() - began) / 1000)
      } s`,
    );
    assert.deepEqual(wrong.slice(0, 20), [], `${wrong.length} keys lost, doubled or out of order`);
    assert.equal(records.length, expected);
    assert.ok(kills >= MIN_KILLS, `only ${kills} kills`);
  } finally {
    abandoned = true;
    await work?.catch(() => {});
    await child?.kill();
    await workload.close();
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kafka exactly-once: a second sink with the same transactional id fences the first, whose next write fails naming the cause", async () => {
  await using kafka = await startKafka();
  const config = parsePipelineConfig(
    "source: { url: postgres://u@h/db, slot: s, publication: p }\n" +
      `tables: { public.t: {} }\nsinks: [kafka: { brokers: ['${
        kafka.brokers[0]
      }'], exactly_once: true, transactional_id: fenced }]\n`,
    { file: "p.yaml", env: {} },
  );
  const sinkConfig = config.sinks[0]!;
  assert.equal(sinkConfig.type, "kafka");
  if (sinkConfig.type !== "kafka") return;
  const options = { config: sinkConfig, pipeline: "p", topicPrefix: "p", database: "db" };
  const first = new KafkaSink(options);
  const second = new KafkaSink(options);
  try {
    await first.open();
    const commit = (end: bigint) => ({
      kind: "commit" as const,
      tx: { xid: 1, commitLsn: lsn(end - 8n), commitTime: 0n, streamed: false },
      endLsn: lsn(end),
      eventCount: 0,
    });
    const begin = (end: bigint) => ({ kind: "begin" as const, tx: commit(end).tx });
    await first.write([begin(100n), commit(100n)]);
    await second.open();
    assert.equal(second.checkpoint, 100n, "the second sink reads the first one's checkpoint");
    const error = await first.write([begin(200n), commit(200n)]).then(
      () => null,
      (e: unknown) => e as Error,
    );
    assert.ok(error !== null, "the fenced sink's write must fail");
    assert.match(error.message, /fenced|another Spillway runner|same transactional id/);
    assert.equal(first.status().state, "failing");
    await second.write([begin(300n), commit(300n)]);
  } finally {
    await first.close();
    await second.close();
  }
});
