/**
 * `spillway run` options that lose changes ask first: `--from-lsn` and `--reset-slot`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startPostgres } from "../testing/embedded_postgres.ts";
import { pipelineYaml, readJsonLines, SpillwayProcess, waitFor } from "./_runner_util.ts";

/** `spillway run <file> [flags…]` to its end, or until `until(stderr)` holds and then SIGINT. */
async function runCli(
  [file, ...flags]: [string, ...string[]],
  until?: (stderr: string) => boolean,
): Promise<{ code: number; stderr: string }> {
  const child = new SpillwayProcess(file, { args: flags, stdout: "null" });
  if (until) {
    await waitFor("the pipeline to stream", () => until(child.stderr), {
      detail: () => child.stderr,
    });
    child.signal("SIGINT");
  }
  return { code: await child.finished(), stderr: child.stderr };
}

Deno.test("spillway run --from-lsn / --reset-slot refuse without --yes when nobody can confirm; --reset-slot --yes skips what the old slot held", async () => {
  await using pg = await startPostgres();
  const dir = await Deno.makeTempDir({ prefix: "spillway-run-cli-" });
  try {
    await pg.psql("CREATE TABLE items (id int PRIMARY KEY)");
    const file = join(dir, "p.yaml");
    await Deno.writeTextFile(
      file,
      pipelineYaml({
        name: "cli",
        url: pg.url(),
        slot: "cli_slot",
        publication: "cli_pub",
        tables: { "public.items": "{}" },
        sinks: ["file: { path: out.jsonl }"],
      }),
    );

    for (const flag of [["--from-lsn", "0/0"], ["--reset-slot"]]) {
      const refused = await runCli([file, ...flag]);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /Refusing without --yes/);
    }

    // Run once so the slot exists, stop, then write while nothing reads.
    const first = new SpillwayProcess(file);
    await first.started();
    assert.equal((await first.stop("SIGINT")).code, 0, first.stderr);
    await pg.psql("INSERT INTO items SELECT generate_series(1, 10)");

    // --reset-slot --yes: the rows the old slot held are gone; new ones arrive.
    const reset = runCli(
      [file, "--reset-slot", "--yes"],
      (stderr) => stderr.includes("Streaming started"),
    );
    await waitFor(
      "the new slot",
      async () =>
        (await pg.psql(
          "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cli_slot'",
        )) === "1",
    );
    const result = await reset;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /Replication slot created/);
    const afterReset = new SpillwayProcess(file);
    await afterReset.started();
    await pg.psql("INSERT INTO items VALUES (11)");
    await waitFor(
      "row 11",
      async () => (await readJsonLines(join(dir, "out.jsonl"))).lines.length > 0,
    );
    assert.equal((await afterReset.stop("SIGINT")).code, 0, afterReset.stderr);
    const ids = (await readJsonLines(join(dir, "out.jsonl"))).lines.map((line) => line.after?.id);
    assert.deepEqual(ids, [11]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spillway run serves /health and /metrics that follow the pipeline", async () => {
  await using pg = await startPostgres();
  const dir = await Deno.makeTempDir({ prefix: "spillway-run-http-" });
  try {
    await pg.psql("CREATE TABLE items (id int PRIMARY KEY, note text)");
    const file = join(dir, "p.yaml");
    const yaml = pipelineYaml({
      name: "ops",
      url: pg.url(),
      slot: "ops_slot",
      publication: "ops_pub",
      tables: { "public.items": "{}" },
      sinks: ["file: { path: out.jsonl }"],
    }).replace("http: off", "http: { listen: 127.0.0.1:0 }");
    await Deno.writeTextFile(file, yaml);
    const child = new SpillwayProcess(file);
    try {
      await child.started();
      await waitFor("the HTTP server", () => /HTTP server listening url=(\S+)/.test(child.stderr));
      const url = /HTTP server listening url=(\S+)/.exec(child.stderr)![1]!;
      await pg.psql(
        "INSERT INTO items SELECT generate_series(1, 25), 'x'; UPDATE items SET note = 'y' WHERE id <= 5; DELETE FROM items WHERE id = 25",
      );
      await waitFor(
        "31 events in the file",
        async () => (await readJsonLines(join(dir, "out.jsonl"))).lines.length >= 31,
      );

      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, /^spillway_events_total\{table="public\.items",op="c"\} 25$/m);
      assert.match(metrics, /^spillway_events_total\{table="public\.items",op="u"\} 5$/m);
      assert.match(metrics, /^spillway_events_total\{table="public\.items",op="d"\} 1$/m);
      assert.match(metrics, /^spillway_transactions_total [1-9]\d*$/m);
      assert.match(metrics, /^spillway_slot_wal_status\{status="reserved"\} 1$/m);
      assert.match(metrics, /^spillway_sink_write_seconds_count\{sink="file:[^"]+"\} [1-9]\d*$/m);
      const confirmed = Number(/^spillway_confirmed_lsn (\d+)$/m.exec(metrics)?.[1]);
      assert.ok(confirmed > 0, metrics);

      const response = await fetch(`${url}/health`);
      const health = await response.json();
      assert.equal(response.status, 200);
      assert.equal(health.status, "ok");
      assert.deepEqual(Object.keys(health.checks).sort(), [
        "queue",
        `sink:file:${join(dir, "out.jsonl")}`,
        "slot",
        "source",
      ]);
      assert.equal(health.checks.source.data.slot, "ops_slot");
      assert.equal(health.checks.slot.data.walStatus, "reserved");
    } finally {
      assert.equal((await child.stop("SIGINT")).code, 0, child.stderr);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spillway run: bad --from-lsn, --log-level and --reset-slot combinations, a missing transform file and the Kafka sink's Avro format exit 2 naming the thing, before anything is dropped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spillway-run-flags-" });
  try {
    const file = join(dir, "p.yaml");
    // Nothing listens on port 1: any attempt to connect (or drop a slot) would fail otherwise.
    await Deno.writeTextFile(
      file,
      pipelineYaml({
        name: "flags",
        url: "postgres://postgres@127.0.0.1:1/app",
        slot: "flags_slot",
        publication: "flags_pub",
        tables: { "public.items": "{}" },
        sinks: ["file: { path: out.jsonl }"],
        source: { create_slot: "false" },
      }),
    );
    const cases: [string[], RegExp][] = [
      [["--from-lsn", "zz", "--yes"], /--from-lsn "zz": expected an LSN like 0\/16B3748/],
      [["--log-level", "verbose"], /--log-level "verbose": expected debug, info, warn or error/],
      [["--reset-slot", "--from-lsn", "0/0", "--yes"], /--reset-slot with --from-lsn/],
      [["--reset-slot", "--yes"], /source\.create_slot: false, so the slot could not be created/],
    ];
    for (const [flags, message] of cases) {
      const result = await runCli([file, ...flags]);
      assert.equal(result.code, 2, `${flags.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
    // A transform that cannot load, and settings for what this version does not have yet (two
    // phase), are refused, never skipped silently.
    const unsupported: [string, string[], RegExp][] = [
      ["transform", [], /Cannot load transform .*t\.ts: .*t\.ts cannot be read/],
      ["two_phase", [], /source\.two_phase: true: sinks would get a prepared transaction/],
    ];
    for (const [name, sinks, message] of unsupported) {
      const other = join(dir, `${name}.yaml`);
      await Deno.writeTextFile(
        other,
        pipelineYaml({
          name,
          url: "postgres://postgres@127.0.0.1:1/app",
          slot: `${name}_slot`,
          publication: `${name}_pub`,
          tables: { "public.items": name === "transform" ? "{ transform: t.ts }" : "{}" },
          sinks: sinks.length > 0 ? sinks : ["file: { path: out.jsonl }"],
          ...(name === "two_phase" ? { source: { two_phase: "true" } } : {}),
        }),
      );
      const result = await runCli([other]);
      assert.equal(result.code, 2, `${name}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spillway run: a missing sslrootcert file exits 2 naming the key and the file, before the HTTP endpoint starts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spillway-run-ca-" });
  try {
    const file = join(dir, "p.yaml");
    const yaml = pipelineYaml({
      name: "ca",
      url: "postgres://postgres@127.0.0.1:1/app",
      slot: "ca_slot",
      publication: "ca_pub",
      tables: { "public.items": "{}" },
      sinks: ["file: { path: out.jsonl }"],
      source: { sslmode: "verify-full", sslrootcert: "certs/missing-ca.pem" },
    }).replace("http: off", "http: { listen: 127.0.0.1:0 }");
    await Deno.writeTextFile(file, yaml);
    const result = await runCli([file]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /source\.sslrootcert in .*p\.yaml/);
    assert.match(result.stderr, /missing-ca\.pem/);
    assert.match(result.stderr, /sslrootcert|system/);
    assert.doesNotMatch(result.stderr, /HTTP|listening/i);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
