/**
 * `spillway demo` as a subprocess (as `deno task demo` runs it): it starts its embedded
 * PostgreSQL, prints the shop's changes as JSON lines (stdout is a pipe), and on SIGINT (Ctrl-C)
 * or SIGTERM exits 0 leaving no server process, data directory or listening port behind.
 * About 6 s per signal on 2 cores (the server binaries are already cached by then).
 *
 * @module
 */

import assert from "node:assert/strict";
import { MAIN, sleep, Subprocess, waitFor } from "./_runner_util.ts";

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
    const child = new Subprocess(
      Deno.execPath(),
      ["run", "-A", "--unstable-worker-options", MAIN, "demo", "--interval-ms", "100"],
      { env: { SPILLWAY_DEMO_HTTP_PORT: "0" }, stdout: "collect", name: "spillway demo" },
    );
    let postmaster: Postmaster | null = null;
    try {
      // Generous: the first run on a machine installs the server binaries.
      await waitFor("the embedded server", () => {
        if (child.exitCode !== null) {
          assert.fail(`the demo exited with ${child.exitCode}:\n${child.stderr}`);
        }
        return /PostgreSQL is up url=\S+/.test(child.stderr);
      }, { timeoutMs: 120_000, detail: () => child.stderr });
      const url = new URL(/PostgreSQL is up url=(\S+)/.exec(child.stderr)![1]!);
      const port = Number(url.port);
      postmaster = await postmasterOnPort(port);
      assert.ok(postmaster !== null, `no postmaster found for port ${port}`);

      // A dozen changes: inserts and updates of orders, as JSON lines.
      await waitFor("a dozen changes on stdout", () => child.stdout.split("\n").length > 12, {
        timeoutMs: 30_000,
        detail: () => `${child.stdout}\n${child.stderr}`,
      });
      const lines = child.stdout.split("\n").filter((line) => line !== "").map((line) =>
        JSON.parse(line)
      );
      const orders = lines.filter((line) => line.topic === "shop.public.orders");
      assert.ok(orders.some((line) => line.op === "c" && line.after?.note === "order 1"));
      assert.ok(orders.some((line) => line.op === "u" && line.before === null));
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
