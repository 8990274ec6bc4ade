/**
 * The state file of `spillway run` against a real server: it records the slot's cluster and
 * the last confirmed position; when that slot is gone, the next run refuses to make a new
 * one (which would skip the changes since) and creates nothing, until `--reset-slot --yes`
 * accepts the gap; a state file that cannot be written stops the run before anything is
 * created; a state file of another cluster is replaced with a warning.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseLsn } from "../decoder/lsn.ts";
import { readState } from "../pipelines/state.ts";
import { startPostgres, testVersions } from "../testing/embedded_postgres.ts";
import {
  MAIN,
  pipelineYaml,
  readJsonLines,
  ROOT,
  SpillwayProcess,
  waitFor,
} from "./_runner_util.ts";

for (const version of testVersions("full")) {
  Deno.test(`PG${version}: a pipeline whose slot vanished refuses a new one until --reset-slot; the state file records the slot`, async () => {
    await using pg = await startPostgres({ version });
    const dir = await Deno.makeTempDir({ prefix: "spillway-state-" });
    try {
      await pg.psql("CREATE TABLE items (id int PRIMARY KEY)");
      const file = join(dir, "orders.yaml");
      const out = join(dir, "out.jsonl");
      const statePath = join(dir, "orders.state.json");
      await Deno.writeTextFile(
        file,
        pipelineYaml({
          name: "state",
          url: pg.url(),
          slot: "state_slot",
          publication: "state_pub",
          tables: { "public.items": "{}" },
          sinks: ["file: { path: out.jsonl }"],
        }),
      );
      const rows = async () => (await readJsonLines(out)).lines.length;
      const slotCount = async () =>
        await pg.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'state_slot'");

      // First run: the slot is made, rows stream, the state names the slot and its position.
      const first = new SpillwayProcess(file);
      await first.started();
      const endLsn = await pg.psql(
        "INSERT INTO items VALUES (1), (2); SELECT pg_current_wal_lsn()",
      );
      await waitFor("the rows", async () => await rows().catch(() => 0) === 2);
      assert.equal((await first.stop()).code, 0, first.stderr);
      assert.equal(await rows(), 2);
      const systemId = await pg.psql("SELECT system_identifier FROM pg_control_system()");
      const state = await readState(statePath);
      assert.ok(state !== null);
      assert.equal(state.systemId, systemId);
      assert.equal(state.slot, "state_slot");
      assert.equal(state.database, "postgres");
      // The file leads the server: the slot is never past it, and both are past the rows.
      const slotAt = async () =>
        parseLsn(
          await pg.psql(
            "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'state_slot'",
          ),
        );
      const confirmed = await slotAt();
      assert.ok(confirmed <= state.confirmedLsn, `slot ${confirmed} > file ${state.confirmedLsn}`);
      assert.ok(confirmed >= parseLsn(endLsn), `${confirmed} < ${endLsn}`);

      // Every refusal below creates nothing and says how to accept the gap.
      const refusedWith = async (pattern: RegExp) => {
        const run = new SpillwayProcess(file);
        assert.equal(await run.finished(), 2, run.stderr);
        assert.match(run.stderr, pattern);
        assert.match(run.stderr, /--reset-slot/);
      };
      const recorded = await Deno.readTextFile(statePath);
      const edited = async (change: Record<string, string>) =>
        await Deno.writeTextFile(statePath, JSON.stringify({ ...JSON.parse(recorded), ...change }));
      // The state file of another cluster under the same slot name (a new cluster after
      // pg_upgrade, say): its LSNs are unrelated.
      await edited({ systemId: "1" });
      await refusedWith(/records slot "state_slot" .* system id 1 .* another cluster or database/);
      // A server whose WAL is behind what was confirmed: restored from a backup.
      await edited({ confirmedLsn: "FFFF/0" });
      await refusedWith(/the server's WAL ends at .* behind the position this pipeline confirmed/);
      await Deno.writeTextFile(statePath, recorded);
      // The slot dropped and made again by hand, and a change in between that it cannot see.
      await pg.psql(
        `SELECT pg_drop_replication_slot('state_slot'); INSERT INTO items VALUES (100);
         SELECT pg_create_logical_replication_slot('state_slot', 'pgoutput');`,
      );
      await refusedWith(
        /replication slot "state_slot" is at .* ahead of the position this pipeline confirmed/,
      );
      assert.equal(await rows(), 2, "nothing was read from the new slot");

      // The slot vanishes (dropped; a failover to a standby without it looks the same), and
      // changes go by that no new slot can deliver.
      await pg.psql("SELECT pg_drop_replication_slot('state_slot'); INSERT INTO items VALUES (3)");
      // spillway check says so too, instead of "it will be created".
      const check = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", MAIN, "check", file, "--json"],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(check.code, 1, new TextDecoder().decode(check.stderr));
      const report = JSON.parse(new TextDecoder().decode(check.stdout));
      const slotFindings = report.findings.filter((f: { subject: string }) =>
        f.subject === 'slot "state_slot"'
      );
      assert.equal(slotFindings.length, 1, JSON.stringify(report.findings));
      assert.equal(slotFindings[0].level, "error");
      assert.match(slotFindings[0].message, /though this pipeline streamed from it/);
      assert.match(slotFindings[0].fix, /--reset-slot/);

      await refusedWith(
        /replication slot "state_slot" is gone, though this pipeline streamed from it \(last confirmed [0-9A-F]+\/[0-9A-F]+ at .*orders\.state\.json\)/,
      );
      assert.equal(await slotCount(), "0", "nothing was created");

      // The operator accepts the gap.
      const reset = new SpillwayProcess(file, { args: ["--reset-slot", "--yes"] });
      await reset.started();
      assert.equal((await reset.stop()).code, 0, reset.stderr);
      assert.equal(await slotCount(), "1");
      assert.equal((await readState(statePath))?.slot, "state_slot");
      assert.equal(await rows(), 2, "rows 100 and 3 went by while no slot of ours existed");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`PG${version}: a state file that cannot be written stops the run before anything is created`, async () => {
    await using pg = await startPostgres({ version });
    const dir = await Deno.makeTempDir({ prefix: "spillway-state-" });
    try {
      await pg.psql("CREATE TABLE items (id int PRIMARY KEY)");
      const file = join(dir, "p.yaml");
      await Deno.writeTextFile(
        file,
        pipelineYaml({
          name: "unwritable",
          url: pg.url(),
          slot: "unwritable_slot",
          publication: "unwritable_pub",
          source: { state_file: "no/such/dir/p.state.json" },
          tables: { "public.items": "{}" },
          sinks: ["file: { path: out.jsonl }"],
        }),
      );
      const result = new SpillwayProcess(file);
      assert.equal(await result.finished(), 2, result.stderr);
      assert.match(
        result.stderr,
        /Cannot write the state file .*no\/such\/dir\/p\.state\.json \(source\.state_file\).*state_file: off/,
      );
      assert.equal(await pg.psql("SELECT count(*) FROM pg_replication_slots"), "0");
      assert.equal(await pg.psql("SELECT count(*) FROM pg_publication"), "0");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
