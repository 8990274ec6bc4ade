/**
 * A slot invalidated by `max_slot_wal_keep_size` (1 MB here, 16 MB WAL segments): WAL is
 * written and checkpointed while the pipeline is stopped, or while it runs with its sink
 * blocked, until pg_replication_slots says `wal_status = lost` (and, on PostgreSQL 17+,
 * `invalidation_reason = wal_removed`).
 *
 * - `spillway run` on a slot lost while it was stopped exits 2 naming the slot, what happened
 *   and the fix, and creates nothing.
 * - A running pipeline whose slot is lost: `/health` answers 503 with the slot check failing
 *   and saying why; the checkpointer ends the walsender, the reconnect is refused, and the run
 *   fails with an error naming the slot and the fix; /health then says that too.
 *
 * One server per version of `testVersions("full")`. About 10 s on PostgreSQL 17.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parsePipelineConfig } from "../config/mod.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import { PostgresError } from "../errors.ts";
import { HealthRegistry } from "../ops/health.ts";
import { createHttpHandler } from "../ops/http.ts";
import { standardMetrics } from "../ops/metrics.ts";
import { MetricsRegistry } from "../ops/prometheus.ts";
import { PipelineRunner } from "../pipelines/runner.ts";
import { type PgServer, startPostgres, testVersions } from "../testing/embedded_postgres.ts";
import {
  dropSlot,
  pipelineYaml,
  Poller,
  readJsonLines,
  recordingLogger,
  RecordingSink,
  sleep,
  SpillwayProcess,
  waitFor,
} from "./_runner_util.ts";

/** What `GET /health` answers. */
interface HealthBody {
  status: string;
  checks: Record<
    string,
    { status: string; detail?: string; data?: Record<string, unknown> } | undefined
  >;
}

/** Writes and removes WAL segments until `slot` is lost (4 switches and a checkpoint a round). */
async function loseSlot(pg: PgServer, poller: Poller, slot: string): Promise<void> {
  await pg.psql("CREATE TABLE IF NOT EXISTS filler (id bigserial PRIMARY KEY, pad text)");
  await waitFor(`slot ${slot} to be lost`, async () => {
    for (let i = 0; i < 4; i++) {
      await pg.psql("INSERT INTO filler (pad) VALUES ('x'); SELECT pg_switch_wal();");
    }
    await pg.psql("CHECKPOINT");
    return await poller.value(
      `SELECT wal_status FROM pg_replication_slots WHERE slot_name = '${slot}'`,
    ) === "lost";
  }, { timeoutMs: 30_000, intervalMs: 10 });
}

for (const version of testVersions("full")) {
  Deno.test(`slot lost (PostgreSQL ${version}): spillway run on a slot invalidated by max_slot_wal_keep_size while it was stopped exits 2 naming the slot and the fix`, async () => {
    await using pg = await startPostgres({
      version,
      settings: { autovacuum: "off", max_slot_wal_keep_size: "1MB" },
    });
    const poller = new Poller(pg);
    const dir = await Deno.makeTempDir({ prefix: "spillway-slot-lost-" });
    try {
      await pg.psql("CREATE TABLE items (id int PRIMARY KEY)");
      const pipeline = join(dir, "p.yaml");
      await Deno.writeTextFile(
        pipeline,
        pipelineYaml({
          name: "lost",
          url: pg.url(),
          slot: "lost_slot",
          publication: "lost_pub",
          tables: { "public.items": "{}" },
          sinks: ["file: { path: out.jsonl }"],
        }),
      );
      const first = new SpillwayProcess(pipeline);
      await first.started();
      await pg.psql("INSERT INTO items VALUES (1)");
      await waitFor(
        "row 1",
        async () => (await readJsonLines(join(dir, "out.jsonl"))).lines.length >= 1,
      );
      assert.equal((await first.stop("SIGINT")).code, 0, first.stderr);

      await pg.psql("INSERT INTO items VALUES (2)");
      await loseSlot(pg, poller, "lost_slot");
      if (version >= 17) {
        assert.equal(
          await poller.value(
            "SELECT invalidation_reason FROM pg_replication_slots WHERE slot_name = 'lost_slot'",
          ),
          "wal_removed",
        );
      }

      const again = new SpillwayProcess(pipeline);
      const stopped = await Promise.race([
        again.exited,
        sleep(30_000).then(() => null),
      ]);
      if (stopped === null) await again.kill();
      else await again.stop();
      assert.equal(again.exitCode, 2, again.stderr);
      assert.match(
        again.stderr,
        /spillway run: Cannot stream from slot "lost_slot": it was invalidated \(wal_status lost\)/,
      );
      assert.match(again.stderr, /drop it, create it again and re-snapshot/);
      assert.match(again.stderr, /raise max_slot_wal_keep_size/);
      assert.doesNotMatch(again.stderr, /Streaming started/);
      // Refused, not replaced: the lost slot is still there, and nothing new was written.
      assert.equal(
        await poller.value(
          "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'lost_slot'",
        ),
        "1",
      );
      assert.deepEqual(
        (await readJsonLines(join(dir, "out.jsonl"))).lines.map((line) => line.after?.id),
        [1],
      );
    } finally {
      await dropSlot(poller, "lost_slot").catch(() => {});
      await poller.close();
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`slot lost (PostgreSQL ${version}): while the pipeline runs with its sink blocked, /health fails saying the slot was invalidated; the run then fails naming the slot and the fix`, async () => {
    await using pg = await startPostgres({
      version,
      settings: { autovacuum: "off", max_slot_wal_keep_size: "1MB" },
    });
    const poller = new Poller(pg);
    try {
      await pg.psql("CREATE TABLE items (id int PRIMARY KEY)");
      const config = parsePipelineConfig(
        pipelineYaml({
          name: "blocked",
          url: pg.url(),
          slot: "blocked_slot",
          publication: "blocked_pub",
          tables: { "public.items": "{}" },
        }),
        { file: "blocked.yaml", env: {} },
      );
      const registry = new MetricsRegistry();
      const health = new HealthRegistry();
      const handler = createHttpHandler({ metrics: registry, health });
      const sink = new RecordingSink();
      const log = recordingLogger();
      const controller = new AbortController();
      const runner = new PipelineRunner({
        config,
        log,
        sinks: [sink],
        types: new TypeRegistry(),
        metrics: standardMetrics(registry),
        health,
        monitorIntervalMs: 200,
        signal: controller.signal,
      });
      let ended = false;
      const run = runner.run().then(() => null, (error) => error).finally(() => ended = true);
      const release = sink.hold();
      try {
        await waitFor("streaming", () => {
          if (ended) assert.fail("the run ended before streaming");
          return runner.source?.stream != null;
        });
        // With 1 MB of max_slot_wal_keep_size the slot is at risk from the start: degraded.
        let before: HealthBody = { status: "", checks: {} };
        await waitFor("the monitor's first read of the slot", async () => {
          before = await (await handler(new Request("http://test/health"))).json();
          return before.checks.slot?.data !== undefined;
        });
        assert.equal(before.checks.slot?.status, "degraded", JSON.stringify(before));
        assert.equal(before.checks.slot?.data?.walStatus, "reserved");
        assert.equal(before.checks.source?.status, "ok", JSON.stringify(before));

        // A change the sink never finishes writing: the slot stays behind it.
        await pg.psql("INSERT INTO items VALUES (1)");
        await waitFor("the blocked write", () => sink.writing);
        await loseSlot(pg, poller, "blocked_slot");

        let body: HealthBody = { status: "", checks: {} };
        let status = 0;
        await waitFor("/health to fail on the slot", async () => {
          const response = await handler(new Request("http://test/health"));
          status = response.status;
          body = await response.json();
          return body.checks?.slot?.status === "failing";
        }, { detail: () => JSON.stringify(body) });
        assert.equal(status, 503);
        assert.equal(body.status, "failing");
        const slotCheck = body.checks.slot!;
        assert.equal(slotCheck.data?.walStatus, "lost");
        assert.match(
          slotCheck.detail ?? "",
          /slot "blocked_slot" was invalidated \(wal_status lost/,
        );
        assert.match(slotCheck.detail ?? "", /drop the slot, create it again and re-snapshot/);
        if (version >= 17) {
          assert.equal(slotCheck.data?.invalidationReason, "wal_removed");
          assert.match(slotCheck.detail ?? "", /wal_removed/);
        }
        assert.ok(
          log.lines.some((line) => line.level === "warn" && /invalidated/.test(line.message)),
          JSON.stringify(log.lines),
        );
      } catch (error) {
        controller.abort();
        throw error;
      } finally {
        release();
      }

      const error = await Promise.race([run, sleep(30_000).then(() => "hung" as const)]);
      assert.notEqual(error, "hung", "the run did not end once the sink was released");
      assert.ok(error instanceof PostgresError, `${error}`);
      assert.equal(error.code, "55000");
      assert.equal(error.retriable, false);
      assert.match(error.message, /replication slot "blocked_slot"/);
      assert.match(error.message, /drop it, create it again and re-snapshot/);
      assert.match(error.message, /max_slot_wal_keep_size/);
      const after: HealthBody = await (await handler(new Request("http://test/health"))).json();
      assert.equal(after.status, "failing");
      assert.equal(after.checks.source?.status, "failing");
      assert.equal(after.checks.source?.detail, error.message);
      // The blocked write finished once released; nothing came after it.
      assert.deepEqual(sink.changes().map((record) => record.event.after?.id), [1]);
    } finally {
      await dropSlot(poller, "blocked_slot").catch(() => {});
      await poller.close();
    }
  });
}
