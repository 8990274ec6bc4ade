/**
 * The broker goes away while changes flow: a pipeline with a Kafka sink (at-least-once) writes
 * a stream of transactions; the broker is stopped for 20 s (`SPILLWAY_SOAK=1`: 2 minutes) and
 * started again on the same ports with its data. Meanwhile:
 *
 * - /health's `sink:kafka:…` check says failing, with the broker's error;
 * - the replication connection stays up (no reconnect), although the server's
 *   wal_sender_timeout is 10 s: status updates go on while the queue is full and reading is
 *   paused;
 * - and when the broker is back, every committed row arrives (none lost), in per-key order,
 *   and the slot confirms the last commit.
 *
 * The same with `exactly_once: true`: every row exactly once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startKafka } from "../testing/kafka.ts";
import { startPostgres } from "../testing/embedded_postgres.ts";
import { HealthRegistry } from "../ops/health.ts";
import { consume } from "./_kafka.ts";
import { pipelineYaml, Poller, sleep, SOAK, startRunner, waitFor } from "./_runner_util.ts";

const OUTAGE_MS = SOAK ? 120_000 : 20_000;
const TRANSACTIONS = 60;
const ROWS = 50;

for (const exactlyOnce of [false, true]) {
  Deno.test(
    `kafka outage: the broker down for ${OUTAGE_MS / 1000} s (${
      exactlyOnce ? "exactly-once" : "at-least-once"
    }): the sink fails its health check, replication stays connected, and every row arrives ${
      exactlyOnce ? "exactly once" : "(none lost)"
    } in per-key order once the broker is back`,
    async () => {
      await using kafka = await startKafka();
      await using pg = await startPostgres({
        settings: { autovacuum: "off", wal_sender_timeout: "10s" },
      });
      const poller = new Poller(pg);
      const table = "outage_items";
      const name = exactlyOnce ? "outeos" : "outalo";
      try {
        await pg.psql(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL)`);
        const health = new HealthRegistry();
        const running = await startRunner(
          pipelineYaml({
            name,
            url: pg.url(),
            slot: `${name}_slot`,
            publication: `${name}_pub`,
            tables: { [`public.${table}`]: "{}" },
            heartbeat: "1s",
            source: { status_interval: "1s" },
            sinks: [
              `kafka: { brokers: [${
                kafka.brokers[0]
              }], schemas: false, exactly_once: ${exactlyOnce} }`,
            ],
            queue: "{ capacity: 200 }",
          }),
          { health },
        );
        let failingSeen: string | null = null;
        /** The sink's health as each look during the outage found it. */
        const seen: string[] = [];
        try {
          // Transactions before, during and after the outage: each inserts ROWS rows and updates
          // the previous transaction's.
          let tx = 0;
          const commit = async () => {
            const first = tx * ROWS + 1;
            await poller.rows(
              `WITH u AS (UPDATE ${table} SET v = 1 WHERE id BETWEEN ${first - ROWS} AND ${
                first - 1
              } RETURNING id) INSERT INTO ${table} SELECT g, 0 FROM generate_series(${first}, ${
                first + ROWS - 1
              }) g`,
            );
            tx++;
          };
          for (let i = 0; i < 10; i++) await commit();
          // Watched until the broker is back: its graceful stop takes seconds of the outage's
          // first part, more on a loaded machine (a full test run under CI).
          let back = false;
          const watchStart = Date.now();
          const outage = kafka.restart(OUTAGE_MS).finally(() => back = true);
          const watching = (async () => {
            while (!back) {
              const report = await health.report();
              const sink = Object.entries(report.checks).find(([check]) =>
                check.startsWith("sink:kafka")
              );
              if (sink?.[1].status === "failing") failingSeen ??= sink[1].detail ?? "failing";
              seen.push(`${Math.round((Date.now() - watchStart) / 100) / 10}s ${sink?.[1].status}`);
              await sleep(500);
            }
          })();
          while (tx < TRANSACTIONS - 10) {
            await commit();
            await sleep(OUTAGE_MS / (TRANSACTIONS - 20));
          }
          await outage;
          await watching;
          for (; tx < TRANSACTIONS;) await commit();
          await waitFor(
            "the runner to write every transaction",
            () => running.runner.state().transactionsWritten >= TRANSACTIONS,
            { timeoutMs: 120_000 },
          );
          assert.equal(
            running.runner.source?.reconnects ?? -1,
            0,
            "the replication connection was kept through the outage",
          );
        } finally {
          await running.stop();
        }
        assert.ok(
          failingSeen !== null,
          `/health's sink check never said failing during the outage: ${seen.join(", ")}`,
        );

        const expected = TRANSACTIONS * ROWS * 2 - ROWS;
        const records = await consume(kafka.brokers, [`${name}.public.${table}`], expected, {
          timeoutMs: 60_000,
          settleMs: 1_000,
        });
        const perKey = new Map<number, string[]>();
        for (
          const record of records.sort((a, b) => a.partition - b.partition || a.offset - b.offset)
        ) {
          const id = JSON.parse(record.key!).id as number;
          let ops = perKey.get(id);
          if (ops === undefined) perKey.set(id, ops = []);
          ops.push(JSON.parse(record.value!).op);
        }
        const wrong: string[] = [];
        for (let id = 1; id <= TRANSACTIONS * ROWS; id++) {
          const want = id > (TRANSACTIONS - 1) * ROWS ? "c" : "c,u";
          let got = (perKey.get(id) ?? []).join(",");
          // At-least-once may repeat what was sent before a failure, but in order.
          if (!exactlyOnce) got = got.replace(/^(c,)+/, "c,").replace(/(,u)+$/, ",u");
          if (got !== want) wrong.push(`${id}: ${got || "none"}`);
        }
        assert.deepEqual(wrong.slice(0, 20), [], `${wrong.length} keys lost or out of order`);
        if (exactlyOnce) assert.equal(records.length, expected);
        else assert.ok(records.length >= expected);
      } finally {
        await poller.close();
      }
    },
  );
}
