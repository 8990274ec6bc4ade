/**
 * `spillway run` options that lose changes ask first: `--from-lsn` and `--reset-slot`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startPostgres } from "./harness/postgres.ts";
import {
  MAIN,
  pipelineYaml,
  readJsonLines,
  ROOT,
  SpillwayProcess,
  waitFor,
} from "./_runner_util.ts";

async function runCli(args: string[], until?: (stderr: string) => boolean) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "run", ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const pump = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) stderr += text;
  })();
  if (until) {
    await waitFor("the pipeline to stream", () => until(stderr), { detail: () => stderr });
    child.kill("SIGINT");
  }
  const status = await child.status;
  await pump;
  return { code: status.code, stderr };
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
