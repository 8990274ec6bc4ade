/**
 * `spillway demo` as a subprocess (as `deno task demo` runs it): it starts its embedded
 * PostgreSQL, prints the shop's changes as JSON lines (stdout is a pipe), the orders through
 * the demo's transform, and on SIGINT (Ctrl-C) or SIGTERM exits 0 leaving no server process,
 * data directory or listening port behind. It names the copy of the transform to edit, and an
 * edit of it while the demo runs takes over: the demo says so, and the next changes show it.
 * About 6 s per test on 2 cores (the server binaries are already cached by then).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ChangeLine, MAIN, sleep, Subprocess, waitFor } from "./_runner_util.ts";

/** The demo, writing its pipeline and transform into `dir` (not the repository). */
function startDemo(dir: string): Subprocess {
  return new Subprocess(
    Deno.execPath(),
    ["run", "-A", "--unstable-worker-options", MAIN, "demo", "--interval-ms", "100", "--dir", dir],
    { env: { SPILLWAY_DEMO_HTTP_PORT: "0" }, stdout: "collect", name: "spillway demo" },
  );
}

/** Waits for the demo's server; generous, since the first run on a machine installs it. */
async function serverUp(child: Subprocess): Promise<URL> {
  await waitFor("the embedded server", () => {
    if (child.exitCode !== null) {
      assert.fail(`the demo exited with ${child.exitCode}:\n${child.stderr}`);
    }
    return /PostgreSQL is up url=\S+/.test(child.stderr);
  }, { timeoutMs: 120_000, detail: () => child.stderr });
  return new URL(/PostgreSQL is up url=(\S+)/.exec(child.stderr)![1]!);
}

/** The JSON lines on stdout so far, parsed. */
function changes(child: Subprocess): ChangeLine[] {
  return child.stdout.split("\n").filter((line) => line !== "").map((line) =>
    JSON.parse(line) as ChangeLine
  );
}

/** A running PostgreSQL postmaster: its pid and data directory. */
interface Postmaster {
  pid: number;
  dataDir: string;
}

/** The postmaster listening on `port`, found through /proc and its postmaster.pid file. */
async function postmasterOnPort(port: number): Promise<Postmaster | null> {
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let argv: string[];
    try {
      argv = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`)).split("\0");
    } catch {
      continue; // gone meanwhile
    }
    const dash = argv.indexOf("-D");
    if (!argv[0]?.endsWith("/postgres") || dash === -1 || argv[dash + 1] === undefined) continue;
    const dataDir = argv[dash + 1]!;
    try {
      // postmaster.pid: pid, data directory, start time, port, …
      const lines = (await Deno.readTextFile(`${dataDir}/postmaster.pid`)).split("\n");
      if (Number(lines[0]) === Number(entry.name) && Number(lines[3]) === port) {
        return { pid: Number(entry.name), dataDir };
      }
    } catch {
      continue;
    }
  }
  return null;
}

/** Processes whose command line mentions `text`. */
async function processesMentioning(text: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`)).replaceAll(
        "\0",
        " ",
      );
      if (cmdline.includes(text)) found.push(`${entry.name}: ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Whether `pid` is a live process (not gone, and not a zombie waiting to be reaped). */
async function alive(pid: number): Promise<boolean> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    return !/^State:\s+[ZX]/m.test(status);
  } catch {
    return false;
  }
}

/** A temporary directory for the demo's files, removed when disposed. */
async function workDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "spillway-demo-test-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test(`demo: spillway demo prints the shop's changes, and ${signal} stops it with exit 0 and no server left behind`, async () => {
    await using work = await workDir();
    const child = startDemo(work.path);
    let postmaster: Postmaster | null = null;
    try {
      const url = await serverUp(child);
      const port = Number(url.port);
      postmaster = await postmasterOnPort(port);
      assert.ok(postmaster !== null, `no postmaster found for port ${port}`);

      // A dozen changes: inserts and updates of orders, as JSON lines.
      await waitFor("a dozen changes on stdout", () => child.stdout.split("\n").length > 12, {
        timeoutMs: 30_000,
        detail: () => `${child.stdout}\n${child.stderr}`,
      });
      const lines = changes(child);
      const orders = lines.filter((line) => line.topic === "shop.public.orders");
      // Through the transform: the status labelled, the amount in cents; keyed by id.
      const first = orders.find((line) => line.op === "c" && line.after?.note === "order 1");
      assert.ok(first?.after, child.stdout);
      assert.equal(first.after.status, "NEW");
      assert.equal(first.after.amount_cents, Math.round(Number(first.after.amount) * 100));
      assert.deepEqual(first.key, { id: first.after.id });
      // REPLICA IDENTITY FULL: an update's before is the whole old row.
      const update = orders.find((line) => line.op === "u");
      assert.ok(update?.before && update.after, child.stdout);
      assert.equal(update.before.id, update.after.id);
      assert.equal(update.before.note, update.after.note);
      assert.notEqual(update.before.status, update.after.status);
      for (const line of lines) {
        assert.match(line.topic, /^shop\.public\.(orders|customers)$/);
        assert.ok(["c", "u", "d"].includes(line.op), JSON.stringify(line));
        assert.equal(typeof line.source.commitLsn, "string");
      }
      assert.match(child.stderr, /Streaming started/);
      assert.match(child.stderr, /HTTP server listening/);

      child.signal(signal);
      await Promise.race([child.exited, sleep(30_000)]);
      assert.notEqual(child.exitCode, null, `the demo did not stop on ${signal}:\n${child.stderr}`);
      await child.finished();
      assert.equal(child.exitCode, 0, child.stderr);
      assert.match(child.stderr, /Stopping the demo/);
      assert.match(child.stderr, /Demo finished/);
      assert.doesNotMatch(child.stderr, /ERROR|WARN/, child.stderr);
      // Every line printed is whole.
      assert.ok(child.stdout.endsWith("\n"));

      // Nothing of the server is left: no process, no data directory, nothing on the port.
      // (The harness's watchdog shell, which would stop the server had the demo died, notices
      // within a second that there is nothing left to do.)
      let left: string[] = [];
      await waitFor("every process of the server to be gone", async () => {
        left = await processesMentioning(postmaster!.dataDir);
        return left.length === 0;
      }, { timeoutMs: 10_000, detail: () => left.join("\n") });
      assert.equal(await alive(postmaster.pid), false, "the postmaster is alive");
      assert.equal(await exists(postmaster.dataDir), false, "the data directory is left");
      const refused = await Deno.connect({ hostname: "127.0.0.1", port }).then(
        (connection) => {
          connection.close();
          return false;
        },
        () => true,
      );
      assert.ok(refused, `something still listens on port ${port}`);
    } finally {
      if (child.exitCode === null) {
        await child.kill();
        // A demo killed this way leaves its server: stop it.
        if (postmaster !== null) {
          try {
            Deno.kill(postmaster.pid, "SIGQUIT");
          } catch {
            // Already gone.
          }
        }
      }
    }
  });
}

Deno.test("demo: names the transform to edit; an edit while it runs takes over, the demo says so, and the next changes show it", async () => {
  await using work = await workDir();
  const child = startDemo(work.path);
  try {
    await serverUp(child);
    const hint = /==> To see a hot reload, edit (\S+) while the demo runs: (.+)/;
    await waitFor("the file to edit", () => hint.test(child.stderr), {
      detail: () => child.stderr,
    });
    const [, file, suggestion] = hint.exec(child.stderr)!;
    // The demo's own copy of the template, in its working directory.
    assert.equal(file, join(work.path, "demo", "orders.ts"));
    assert.match(suggestion!, /change a status label .* and save/);
    const template = await Deno.readTextFile(
      new URL("../examples/demo/orders.ts", import.meta.url),
    );
    const text = await Deno.readTextFile(file!);
    assert.equal(text, template);

    // The running version labels new orders "NEW".
    const inserts = () =>
      changes(child).filter((line) => line.topic === "shop.public.orders" && line.op === "c");
    await waitFor("a new order", () => inserts().length > 0, {
      detail: () => `${child.stdout}\n${child.stderr}`,
    });
    const loaded = /Transform loaded transform=demo\/orders\.ts version=([0-9a-f]{12})/.exec(
      child.stderr,
    );
    assert.ok(loaded, child.stderr);

    // The edit a user would make: another label for new orders.
    assert.ok(text.includes('new: "NEW",'), "the template's label for new orders");
    await Deno.writeTextFile(file!, text.replace('new: "NEW",', 'new: "NEW (edited)",'));
    const switched =
      /==> Hot reload: (\S+) version ([0-9a-f]{12}) took over from ([0-9a-f]{12}): the changes after this line went through it/;
    await waitFor("the new version to take over", () => switched.test(child.stderr), {
      detail: () => child.stderr,
    });
    const [, path, version, previous] = switched.exec(child.stderr)!;
    assert.equal(path, file);
    assert.equal(previous, loaded[1]);
    assert.notEqual(version, previous);

    await waitFor("a new order through the edited version", () => {
      return inserts().some((line) => line.after?.status === "NEW (edited)");
    }, { detail: () => `${child.stdout}\n${child.stderr}` });
    // Old labels up to the switch, the edited one after it, never back.
    const labels = inserts().map((line) => line.after?.status);
    const switchedAt = labels.indexOf("NEW (edited)");
    assert.ok(switchedAt > 0, labels.join(", "));
    assert.ok(labels.slice(0, switchedAt).every((label) => label === "NEW"), labels.join(", "));
    assert.ok(
      labels.slice(switchedAt).every((label) => label === "NEW (edited)"),
      labels.join(", "),
    );

    const { code } = await child.stop("SIGINT", 30_000);
    assert.equal(code, 0, child.stderr);
    assert.doesNotMatch(child.stderr, /ERROR|WARN/, child.stderr);
    // The edit is kept, in the working directory only.
    assert.equal(
      await Deno.readTextFile(file!),
      text.replace('new: "NEW",', 'new: "NEW (edited)",'),
    );
  } finally {
    if (child.exitCode === null) await child.kill();
  }
});

Deno.test("demo --kafka: the shop's changes go through a local broker, and the demo prints them as a consumer reads them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spillway-demo-kafka-" });
  const child = new Subprocess(
    Deno.execPath(),
    [
      "run",
      "-A",
      "--unstable-worker-options",
      MAIN,
      "demo",
      "--kafka",
      "--interval-ms",
      "100",
      "--dir",
      dir,
    ],
    { env: { SPILLWAY_DEMO_HTTP_PORT: "0" }, stdout: "collect", name: "spillway demo --kafka" },
  );
  try {
    const line = /^shop\.public\.orders \[\d+@\d+\] key=(\{.*?\}) (\{.*\})$/m;
    await waitFor("an order read back from Kafka", () => {
      if (child.exitCode !== null) {
        assert.fail(`the demo exited with ${child.exitCode}:\n${child.stderr}`);
      }
      return line.test(child.stdout) && child.stdout.includes("shop.transaction [");
    }, { timeoutMs: 180_000, detail: () => child.stderr.slice(-3000) });
    const [, key, value] = line.exec(child.stdout)!;
    const record = JSON.parse(value!);
    assert.equal(JSON.parse(key!).id, (record.after ?? record.before).id);
    assert.equal(record.source.connector, "postgresql");
    assert.equal(record.source.name, "shop");
    const stopped = await child.stop("SIGINT");
    assert.equal(stopped.code, 0, child.stderr);
  } finally {
    await child.kill();
    await Deno.remove(dir, { recursive: true });
  }
});
