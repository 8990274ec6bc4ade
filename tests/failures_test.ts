/**
 * Failure behaviour against real servers: every failure gets a test, and every
 * error must name the thing and the fix. Mostly through ReplicationSource (the
 * pipeline's source) and the `spillway tail` CLI as a subprocess.
 *
 * Every test runs on each version of `testVersions("full")` (PostgreSQL 17; every
 * version with `SPILLWAY_PG_MATRIX=full`, as `deno task test:matrix` sets), with the
 * version in its name. The tests of a version share one server, which stops before
 * the next version's starts; the wal_level=replica case needs a second one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { maxProtoVersion, PgConnection } from "../postgres/connection.ts";
import { ConfigError, ConnectionError, DecodeError, PostgresError } from "../errors.ts";
import { type Lsn, LSN_ZERO } from "../decoder/lsn.ts";
import { ReplicationSource } from "../source/replication_source.ts";
import { type SourceItem } from "../events.ts";
import { type PgServer, startPostgres, testVersions } from "../testing/embedded_postgres.ts";
import { connectOptions, pullItems, sharedServers, sourceOptions } from "./_replication.ts";
import {
  failure,
  logSince,
  logSize,
  MAIN,
  recordingLogger,
  ROOT,
  sleep,
  waitFor,
} from "./_runner_util.ts";
import { versionTests } from "./_versions.ts";

// ---------------------------------------------------------------------------------------------
// Shared server and helpers

const PASSWORD_ROLE = { user: "pw_user", password: "right password" };
const NO_REPLICATION_ROLE = "no_repl";

/** Servers with a role that logs in with a password, and one without REPLICATION. */
const servers = sharedServers({
  hba: [`host all ${PASSWORD_ROLE.user} 127.0.0.1/32 scram-sha-256`],
  setup: `
    CREATE ROLE ${PASSWORD_ROLE.user} LOGIN REPLICATION PASSWORD '${PASSWORD_ROLE.password}';
    CREATE ROLE ${NO_REPLICATION_ROLE} LOGIN;
  `,
});
const server = servers.server;

/** The tests of the file, each run on every version of `testVersions("full")` (see its end). */
const { test, register } = versionTests(servers);

/** Runs `deno run -A main.ts …`; kills it after `timeoutMs`. */
async function runCli(
  args: string[],
  timeoutMs = 20_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const out = await child.output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

function assertIncludes(text: string, ...parts: string[]): void {
  for (const part of parts) assert.ok(text.includes(part), `Expected "${part}" in: ${text}`);
}

/** A table, a publication for it, and a permanent slot created after the publication. */
async function prepare(pg: PgServer, name: string, columns = "id int PRIMARY KEY"): Promise<void> {
  await pg.psql(`
    CREATE TABLE ${name} (${columns});
    CREATE PUBLICATION ${name}_pub FOR TABLE ${name};
    SELECT pg_create_logical_replication_slot('${name}_slot', 'pgoutput');
  `);
}

/** Drops what {@linkcode prepare} made (the slot once it is released). */
async function cleanup(pg: PgServer, name: string): Promise<void> {
  await pg.psql(`
    SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
      WHERE slot_name = '${name}_slot' AND active_pid IS NOT NULL;
  `);
  await waitFor(
    `slot ${name}_slot to be released`,
    async () =>
      await pg.psql(
        `SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${name}_slot' AND active`,
      ) === "0",
    { timeoutMs: 15_000 },
  );
  await pg.psql(`
    SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
      WHERE slot_name = '${name}_slot';
    DROP PUBLICATION IF EXISTS ${name}_pub;
    DROP TABLE IF EXISTS ${name};
  `);
}

/** The walsender pids serving `applicationName`. */
async function walsenderPids(pg: PgServer, applicationName: string): Promise<string> {
  return await pg.psql(
    `SELECT pid FROM pg_stat_replication WHERE application_name = '${applicationName}' ORDER BY pid`,
  );
}

/** Backends (any kind) of `applicationName`. */
async function backendCount(pg: PgServer, applicationName: string): Promise<number> {
  return Number(
    await pg.psql(
      `SELECT count(*) FROM pg_stat_activity WHERE application_name = '${applicationName}'`,
    ),
  );
}

function commits(items: SourceItem[]): number {
  return items.filter((item) => item.kind === "commit").length;
}

/**
 * Opens a source on `name`'s slot (up to `maxAttempts` reconnect attempts, 100–200 ms apart),
 * lets it receive one transaction, then terminates its walsender and waits until the slot is
 * released; runs `body` with the source's iterator and log, and closes the source after it.
 */
async function withCutOffSource<T>(
  pg: PgServer,
  name: string,
  maxAttempts: number,
  body: (
    iterator: AsyncIterator<SourceItem[]>,
    log: ReturnType<typeof recordingLogger>,
  ) => Promise<T>,
): Promise<T> {
  const log = recordingLogger();
  const source = await ReplicationSource.open(
    sourceOptions(pg, name, {
      log,
      reconnect: { maxAttempts, initialDelayMs: 100, maxDelayMs: 200 },
    }),
  );
  try {
    const iterator = source.batches()[Symbol.asyncIterator]();
    await pg.psql(`INSERT INTO ${name} VALUES (1)`);
    await pullItems(iterator, (items) => commits(items) >= 1);

    const pid = await walsenderPids(pg, name);
    await pg.psql(`SELECT pg_terminate_backend(${pid})`);
    await waitFor(
      "the slot to be released",
      async () =>
        await pg.psql(
          `SELECT active FROM pg_replication_slots WHERE slot_name = '${name}_slot'`,
        ) ===
          "f",
      { timeoutMs: 15_000 },
    );
    return await body(iterator, log);
  } finally {
    await source.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Configuration and permission failures

test("failure: wal_level=replica gives a clear error asking for wal_level = logical", async (version) => {
  await using replica = await startPostgres({ version, settings: { wal_level: "replica" } });
  const error = await failure(() =>
    ReplicationSource.open({
      connection: connectOptions(replica),
      slot: "s",
      createSlot: true,
      publication: "p",
      createPublication: true,
    })
  );
  assert.ok(error instanceof ConfigError, `${error.name}: ${error.message}`);
  assert.equal(error.retriable, false);
  assertIncludes(error.message, 'wal_level is "replica"', "wal_level = logical", "restart");
  // Nothing was left behind by the failed attempt.
  assert.equal(await replica.psql("SELECT count(*) FROM pg_replication_slots"), "0");
  assert.equal(await replica.psql("SELECT count(*) FROM pg_publication"), "0");

  // The CLI: a configuration error is exit code 2, with the same advice.
  const cli = await runCli(["tail", replica.url()]);
  assert.equal(cli.code, 2, cli.stderr);
  assertIncludes(cli.stderr, "spillway tail:", "wal_level = logical");
  assert.equal(cli.stdout, "");
});

test("failure: a missing publication is named, with CREATE PUBLICATION as the fix", async (version) => {
  const pg = await server(version);
  const error = await failure(() =>
    ReplicationSource.open({
      connection: connectOptions(pg),
      slot: "nopub_slot",
      createSlot: true,
      publication: "no_such_pub",
      createPublication: false,
    })
  );
  assert.ok(error instanceof ConfigError, `${error.name}: ${error.message}`);
  assertIncludes(
    error.message,
    '"no_such_pub"',
    "does not exist",
    'CREATE PUBLICATION "no_such_pub"',
  );
  // The publication is checked before the slot is made: no slot was created.
  assert.equal(
    await pg.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'nopub_slot'"),
    "0",
  );

  const cli = await runCli([
    "tail",
    pg.url(),
    "--slot",
    "nopub_slot",
    "--publication",
    "no_such_pub",
  ]);
  assert.equal(cli.code, 2, cli.stderr);
  assertIncludes(cli.stderr, '"no_such_pub"', "CREATE PUBLICATION");
});

test("failure: a missing slot is named, with --create as the fix", async (version) => {
  const pg = await server(version);
  await pg.psql("CREATE PUBLICATION noslot_pub FOR ALL TABLES");
  try {
    const error = await failure(() =>
      ReplicationSource.open({
        connection: connectOptions(pg),
        slot: "no_such_slot",
        createSlot: false,
        publication: "noslot_pub",
      })
    );
    assert.ok(error instanceof ConfigError, `${error.name}: ${error.message}`);
    assertIncludes(error.message, '"no_such_slot"', "does not exist", "--create");

    const cli = await runCli([
      "tail",
      pg.url(),
      "--slot",
      "no_such_slot",
      "--publication",
      "noslot_pub",
    ]);
    assert.equal(cli.code, 2, cli.stderr);
    assertIncludes(cli.stderr, '"no_such_slot"', "--create");
    assert.equal(
      await pg.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'no_such_slot'"),
      "0",
    );
  } finally {
    await pg.psql("DROP PUBLICATION noslot_pub");
  }
});

test("failure: a role without REPLICATION gets 42501 at connect, naming ALTER ROLE … WITH REPLICATION", async (version) => {
  const pg = await server(version);
  const error = await failure(() =>
    ReplicationSource.open({
      connection: connectOptions(pg, { user: NO_REPLICATION_ROLE }),
      slot: "norepl_slot",
      createSlot: true,
      publication: "norepl_pub",
      createPublication: true,
    })
  );
  assert.ok(error instanceof PostgresError, `${error.name}: ${error.message}`);
  assert.equal(error.code, "42501");
  assert.equal(error.retriable, false);
  assertIncludes(
    error.message,
    `Cannot connect to 127.0.0.1:${pg.port} as "${NO_REPLICATION_ROLE}"`,
    `ALTER ROLE "${NO_REPLICATION_ROLE}" WITH REPLICATION`,
  );
  // A normal session of the same role works: only walsenders need the attribute.
  const plain = await PgConnection.connect(connectOptions(pg, { user: NO_REPLICATION_ROLE }));
  await plain.close();
});

test("failure: a wrong password via the CLI exits 1 naming the user and the password", async (version) => {
  const pg = await server(version);
  const url = pg.url({ user: PASSWORD_ROLE.user, password: "not the password" });
  const cli = await runCli(["tail", url]);
  assert.equal(cli.code, 1, cli.stderr);
  assertIncludes(
    cli.stderr,
    "spillway tail:",
    `password authentication failed for user "${PASSWORD_ROLE.user}"`,
    `check the password for "${PASSWORD_ROLE.user}"`,
    "28P01",
  );
  assert.ok(!cli.stderr.includes("not the password"), "the password is never printed");
  assert.equal(cli.stdout, "");

  // And no password at all: a usage/config error (exit 2) saying to put it in the URL.
  const missing = await runCli(["tail", pg.url({ user: PASSWORD_ROLE.user })]);
  assert.equal(missing.code, 2, missing.stderr);
  assertIncludes(missing.stderr, `"${PASSWORD_ROLE.user}"`, "put it in the URL");

  // The right password works (the role is set up correctly): the CLI streams until SIGINT.
  // The role may not create a FOR ALL TABLES publication, so it gets one made for it.
  await pg.psql("CREATE PUBLICATION pw_pub FOR ALL TABLES");
  const good = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "tail", pg.url(PASSWORD_ROLE), "--publication", "pw_pub"],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = good.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = Date.now() + 15_000;
  while (!text.includes("Streaming started") && Date.now() < deadline) {
    const { value, done } = await stderr.read();
    if (done) break;
    text += value;
  }
  good.kill("SIGINT");
  while (true) {
    const { done } = await stderr.read();
    if (done) break;
  }
  assert.equal((await good.status).code, 0, text);
  assertIncludes(text, "Streaming started");
  await pg.psql("DROP PUBLICATION pw_pub");
});

test(
  "failure: a role that may not create the publication is not told to add REPLICATION",
  async (version) => {
    const pg = await server(version);
    const cli = await runCli(["tail", pg.url(PASSWORD_ROLE)]);
    assert.equal(cli.code, 1, cli.stderr);
    assertIncludes(cli.stderr, "CREATE PUBLICATION", "permission denied");
    assert.ok(!cli.stderr.includes("WITH REPLICATION"), cli.stderr);
  },
);

// ---------------------------------------------------------------------------------------------
// Slot contention

/**
 * The source streams from a slot; its walsender is terminated and another process takes the
 * slot before the source reconnects, so every reconnect attempt meets 55006. Returns the
 * error the source ends with, and its log.
 */
async function loseSlotToAnotherReader(
  pg: PgServer,
  name: string,
): Promise<{ error: Error; retries: number }> {
  return await withCutOffSource(pg, name, 3, async (iterator, log) => {
    const holder = await PgConnection.connect(
      connectOptions(pg, { replication: "database", applicationName: "holder" }),
    );
    try {
      const held = await holder.startReplication({
        slot: `${name}_slot`,
        pgoutput: { protoVersion: maxProtoVersion(pg.version), publicationNames: [`${name}_pub`] },
      });
      const error = await failure(() => pullItems(iterator, () => false));
      await held.stop();
      const retries = log.lines.filter((line) => line.message === "Reconnect failed; retrying");
      return { error, retries: retries.length };
    } finally {
      await holder.close();
    }
  });
}

test("failure: a slot active in another process: 55006, limited retries, then a clear error", async (version) => {
  const pg = await server(version);
  const name = "contended";
  await prepare(pg, name);
  try {
    // A second START_REPLICATION on a slot that a walsender is reading: 55006.
    const first = await PgConnection.connect(connectOptions(pg, { replication: "database" }));
    const second = await PgConnection.connect(connectOptions(pg, { replication: "database" }));
    try {
      const pgoutput = {
        protoVersion: maxProtoVersion(pg.version),
        publicationNames: [`${name}_pub`],
      };
      const stream = await first.startReplication({ slot: `${name}_slot`, pgoutput });
      const busy = await failure(() => second.startReplication({ slot: `${name}_slot`, pgoutput }));
      // ReplicationSource.open retries while the slot is held (as after a crash whose
      // walsender has not gone yet), within the reconnect budget, then fails with the same
      // advice and says a retry may help.
      const openLog = recordingLogger();
      const opening = await failure(() =>
        ReplicationSource.open(sourceOptions(pg, name, {
          reconnect: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 200 },
          log: openLog,
        }))
      );
      const openRetries = openLog.lines.filter((line) =>
        line.message === "Replication slot is in use by another reader; retrying"
      );
      assert.equal(openRetries.length, 2, "3 attempts in all");
      assert.equal(await backendCount(pg, name), 0, "failed attempts left no connection");
      // When the other reader lets go during the retries, open() gets the slot.
      const released = sleep(400).then(() => stream.stop());
      const opened = await ReplicationSource.open(sourceOptions(pg, name, {
        reconnect: { maxAttempts: 20, initialDelayMs: 100, maxDelayMs: 200 },
      }));
      await released;
      assert.ok(opened.stream !== null, "streaming after the slot was released");
      await opened.close();
      assert.ok(opening instanceof PostgresError, opening.message);
      assert.equal(opening.code, "55006");
      assert.equal(opening.retriable, true);
      assertIncludes(opening.message, `"${name}_slot"`, "another process is reading this slot");
      assert.ok(busy instanceof PostgresError, busy.message);
      assert.equal(busy.code, "55006");
      assert.equal(busy.retriable, true, "55006 is worth retrying: the reader may be going away");
      assertIncludes(busy.message, `replication slot "${name}_slot" is active for PID`);
      assertIncludes(busy.message, "another process is reading this slot");
    } finally {
      await second.close();
      await first.close();
    }

    // The source loses its connection and another process takes the slot: its reconnects
    // meet 55006 until the attempts run out.
    const { error, retries } = await loseSlotToAnotherReader(pg, name);
    assert.ok(error instanceof PostgresError, `${error.name}: ${error.message}`);
    assert.equal(error.code, "55006");
    assertIncludes(
      error.message,
      `replication slot "${name}_slot" is active for PID`,
      "another process is reading this slot",
    );
    // Bounded by count: 3 attempts in all, whatever the time they take.
    assert.equal(retries, 2, "3 attempts in all: 2 retries, then the error");
  } finally {
    await cleanup(pg, name);
  }
});

test(
  "failure: failed reconnect attempts close their connections",
  async (version) => {
    const pg = await server(version);
    const name = "leaky";
    await prepare(pg, name);
    try {
      const { error } = await loseSlotToAnotherReader(pg, name);
      assert.ok(error instanceof PostgresError && error.code === "55006", error.message);
      await waitFor(
        "the source's connections to close",
        async () => await backendCount(pg, name) === 0,
        { timeoutMs: 3_000 },
      ).catch(async () =>
        assert.fail(`${await backendCount(pg, name)} connections of the source are still open`)
      );
    } finally {
      await cleanup(pg, name);
    }
  },
);

// ---------------------------------------------------------------------------------------------
// Server restarts

for (const mode of ["fast", "immediate"] as const) {
  test(`failure: server restart (${mode}) mid-stream: reconnect, nothing lost, nothing confirmed re-delivered`, async (version) => {
    const pg = await server(version);
    const name = `restart_${mode}`;
    await prepare(pg, name);
    const log = recordingLogger();
    const source = await ReplicationSource.open(
      sourceOptions(pg, name, {
        log,
        reconnect: { maxAttempts: 40, initialDelayMs: 100, maxDelayMs: 500 },
      }),
    );
    const firstStream = source.stream;

    // Writer: small transactions of 3 rows; reconnects while the server is down.
    const totalTransactions = 120;
    let writerDone = false;
    const writer = (async () => {
      let connection: PgConnection | null = null;
      for (let tx = 0; tx < totalTransactions; tx++) {
        const first = tx * 3 + 1;
        for (;;) {
          try {
            connection ??= await PgConnection.connect(connectOptions(pg));
            await connection.query(
              `INSERT INTO ${name} SELECT g FROM generate_series(${first}, ${first + 2}) g`,
            );
            break;
          } catch (error) {
            connection?.destroy();
            connection = null;
            // A lost COMMIT may have happened anyway: skip rows that exist already.
            if (error instanceof PostgresError && error.code === "23505") break;
            await sleep(100);
          }
        }
        await sleep(15);
      }
      await connection?.close();
      writerDone = true;
    })();

    // Consumer: "process" each transaction, then confirm its end LSN.
    const delivered = new Map<number, number>();
    const deliveredTx = new Map<Lsn, number>();
    const confirmed = new Set<Lsn>();
    let confirmedAtRestart = new Set<Lsn>();
    let restarts = 0;
    let restart: Promise<void> | null = null;
    const consumer = (async () => {
      for await (const batch of source.batches()) {
        for (const item of batch) {
          if (item.kind === "restart") restarts++;
          if (item.kind === "begin") {
            deliveredTx.set(item.tx.commitLsn, (deliveredTx.get(item.tx.commitLsn) ?? 0) + 1);
          }
          if (item.kind === "change") {
            const id = Number(item.event.after?.id);
            delivered.set(id, (delivered.get(id) ?? 0) + 1);
          }
          if (item.kind === "commit") {
            await sleep(0); // processing
            source.confirm(item.endLsn);
            confirmed.add(item.tx.commitLsn);
          }
        }
        if (restart === null && confirmed.size >= 30) {
          confirmedAtRestart = new Set(confirmed);
          restart = pg.restart(mode); // not awaited: keep consuming while it shuts down
        }
      }
    })();

    try {
      await writer;
      await waitFor("the restart to finish", async () => {
        if (restart === null) return false;
        await restart;
        return true;
      }, { timeoutMs: 60_000 });
      const truth = (await pg.psql(`SELECT id FROM ${name} ORDER BY id`)).split("\n").map(Number);
      assert.ok(truth.length >= (totalTransactions - 5) * 3, `only ${truth.length} rows committed`);
      await waitFor(
        "every committed row to be delivered",
        () => Promise.resolve(truth.every((id) => delivered.has(id))),
        { timeoutMs: 30_000 },
      ).catch(() => {
        const missing = truth.filter((id) => !delivered.has(id));
        assert.fail(
          `${missing.length} committed rows never delivered, e.g. ${missing.slice(0, 10)}`,
        );
      });
      assert.ok(writerDone);
      const phantom = [...delivered.keys()].filter((id) => !truth.includes(id));
      assert.deepEqual(phantom, [], "only committed rows are delivered");

      // The source noticed the restart and reconnected on a new stream.
      assert.ok(
        log.lines.some((line) => line.message === "Replication connection lost; reconnecting"),
        "a reconnect happened",
      );
      assert.notEqual(source.stream, firstStream);
      // A transaction confirmed before the restart never comes again; anything re-sent was cut
      // off mid-way (announced with a restart item) and never confirmed.
      for (const [commitLsn, count] of deliveredTx) {
        if (count > 1) {
          assert.ok(!confirmedAtRestart.has(commitLsn), "a confirmed transaction was re-delivered");
          assert.ok(restarts > 0, "a re-sent transaction is announced with a restart item");
        }
      }
    } finally {
      await source.close();
      await consumer.catch(() => {});
      await writer.catch(() => {});
      await cleanup(pg, name);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// wal_sender_timeout

/** ~`megabytes` MB of row data in `transactions` transactions. */
function bulkInsert(table: string, megabytes: number, transactions: number): string {
  const rowsPerTx = Math.ceil((megabytes * 1000) / transactions); // 1000-char rows
  const statements: string[] = [];
  for (let tx = 0; tx < transactions; tx++) {
    const first = tx * rowsPerTx + 1;
    statements.push(
      `INSERT INTO ${table} SELECT g, repeat(md5(g::text), 32)
         FROM generate_series(${first}, ${first + rowsPerTx - 1}) g;`,
    );
  }
  return statements.join("\n");
}

test("failure: wal_sender_timeout (2 s) is never exceeded while the consumer is paused for 7 s", async (version) => {
  const pg = await server(version);
  const name = "paused";
  await prepare(pg, name, "id int PRIMARY KEY, payload text");
  const logOffset = await logSize(pg);
  const log = recordingLogger();
  const source = await ReplicationSource.open(
    sourceOptions(pg, name, {
      connection: connectOptions(pg, {
        applicationName: name,
        // PGC_USERSET: set for this walsender only, so the rest of the file keeps the default.
        parameters: { wal_sender_timeout: "2s" },
      }),
      maxBufferedBytes: 64 * 1024,
      log,
    }),
  );
  try {
    const stream = source.stream!;
    const pidBefore = await walsenderPids(pg, name);
    assert.match(pidBefore, /^\d+$/);

    const transactions = 8;
    await pg.psql(bulkInsert(name, 40, transactions));
    const rows = Number(await pg.psql(`SELECT count(*) FROM ${name}`));

    // Do not consume for more than 3 × wal_sender_timeout.
    await sleep(7_000);
    assert.equal(stream.paused, true, "the stream stopped reading: the consumer is behind");
    const updatesWhilePaused = stream.stats.statusUpdatesSent;

    // Now consume everything.
    const iterator = source.batches()[Symbol.asyncIterator]();
    const items = await pullItems(iterator, (got) => commits(got) >= transactions, 60_000);
    const changes = items.filter((item) => item.kind === "change").length;
    assert.equal(changes, rows);
    assert.equal(items.filter((item) => item.kind === "restart").length, 0);

    // Still the same stream and walsender: no reconnect happened.
    assert.equal(source.stream, stream);
    assert.equal(await walsenderPids(pg, name), pidBefore);
    assert.ok(!log.lines.some((line) => line.message.includes("reconnecting")));
    // At least one per wal_sender_timeout (2 s), which is what keeps the walsender alive; a
    // stream that sent none while paused, or only at the default status interval (10 s),
    // sends 0 or 1 in 7 s. (It sends one every third of the timeout: about 20, when not slowed.)
    assert.ok(updatesWhilePaused >= 3, `only ${updatesWhilePaused} status updates were sent`);
    const serverLog = await logSince(pg, logOffset);
    assert.ok(
      !serverLog.includes("replication timeout"),
      `the server timed the walsender out:\n${serverLog}`,
    );
  } finally {
    await source.close();
    await cleanup(pg, name);
  }
});

test("failure: without status updates the same pause does hit wal_sender_timeout", async (version) => {
  // A raw stream whose timer practically never fires: while paused it does not read the
  // socket, so the server's keepalives go unanswered and the walsender times out. This shows
  // that the previous test passes because of the status updates sent while paused.
  const pg = await server(version);
  const name = "unanswered";
  await prepare(pg, name, "id int PRIMARY KEY, payload text");
  const logOffset = await logSize(pg);
  const connection = await PgConnection.connect(
    connectOptions(pg, {
      replication: "database",
      applicationName: name,
      parameters: { wal_sender_timeout: "2s" },
    }),
  );
  try {
    const stream = await connection.startReplication({
      slot: `${name}_slot`,
      pgoutput: { protoVersion: maxProtoVersion(pg.version), publicationNames: [`${name}_pub`] },
      statusIntervalMs: 600_000,
      maxBufferedBytes: 64 * 1024,
    });
    await pg.psql(bulkInsert(name, 4, 2));
    await sleep(7_000);
    assert.equal(stream.paused, true);
    const serverLog = await logSince(pg, logOffset);
    assertIncludes(serverLog, "terminating walsender process due to replication timeout");

    // The consumer finds out once it drains what was buffered: the socket was closed.
    const error = await failure(async () => {
      while (await stream.nextBatch() !== null) { /* drain */ }
    });
    assert.ok(error instanceof ConnectionError, `${error.name}: ${error.message}`);
    assert.equal(error.retriable, true);
    assertIncludes(error.message, "closed the replication connection", "wal_sender_timeout");
  } finally {
    connection.destroy();
    await cleanup(pg, name);
  }
});

// ---------------------------------------------------------------------------------------------
// Slot dropped, malformed bytes

test("failure: a slot dropped mid-stream ends the source with an error naming the slot, not a loop", async (version) => {
  const pg = await server(version);
  const name = "dropped";
  await prepare(pg, name);
  try {
    // Another session kicks the walsender off the slot and drops it.
    await withCutOffSource(pg, name, 5, async (iterator, log) => {
      await pg.psql(`SELECT pg_drop_replication_slot('${name}_slot')`);
      await pg.psql(`INSERT INTO ${name} VALUES (2)`);

      const error = await failure(() => pullItems(iterator, () => false, 20_000));
      assert.ok(error instanceof PostgresError, `${error.name}: ${error.message}`);
      assert.equal(error.code, "42704");
      assert.equal(error.retriable, false);
      assertIncludes(
        error.message,
        `replication slot "${name}_slot" does not exist`,
        "--reset-slot",
      );
      // Not retried: counted in attempts, not timed.
      const retries = log.lines.filter((line) => line.message === "Reconnect failed; retrying");
      assert.equal(retries.length, 0, "a missing slot is not worth retrying");
    });
  } finally {
    await pg.psql(`DROP PUBLICATION ${name}_pub; DROP TABLE ${name}`);
  }
});

test("failure: a DecodeError from the stream ends the source; close() leaves the server clean and the transaction unconfirmed", async (version) => {
  // Injection without editing source files: the source decodes the stream through its
  // TransactionAssembler, whose PgoutputDecoder (one per replication session, made when
  // streaming starts) is made to reject Insert messages, as it would reject malformed bytes
  // (the byte-level cases are in the unit fuzz tests).
  const pg = await server(version);
  const name = "malformed";
  await prepare(pg, name);
  const logOffset = await logSize(pg);
  const log = recordingLogger();
  let source: ReplicationSource | undefined;
  try {
    source = await ReplicationSource.open(sourceOptions(pg, name, { log }));
    const decoder = source.assembler.decoder;
    const decode = decoder.decode.bind(decoder);
    let injected = 0;
    decoder.decode = (bytes: Uint8Array) => {
      if (bytes[0] === 0x49) {
        injected++;
        throw new DecodeError("Insert", 5, "injected: malformed tuple");
      }
      return decode(bytes);
    };
    const iterator = source.batches()[Symbol.asyncIterator]();
    await pg.psql(`INSERT INTO ${name} VALUES (1)`);
    const error = await failure(() => pullItems(iterator, () => false));
    assert.ok(error instanceof DecodeError, `${error.name}: ${error.message}`);
    assert.equal(error.retriable, false);
    assert.equal(error.messageType, "Insert");
    assert.equal(error.offset, 5);
    assertIncludes(error.message, "Cannot decode Insert message at offset 5");
    assert.equal(injected, 1, "the error came from the assembler's decoder, once");
    assert.ok(!log.lines.some((line) => line.message.includes("reconnecting")), "not retried");
    assert.equal(source.assembler.decoder, decoder, "no new session was started");
    assert.equal((await iterator.next()).done, true, "the source's batches have ended");

    await source.close();
    assert.equal(await backendCount(pg, name), 0, "the connection is closed");
    assert.equal(
      await pg.psql(`SELECT active FROM pg_replication_slots WHERE slot_name = '${name}_slot'`),
      "f",
    );
    const serverLog = await logSince(pg, logOffset);
    assert.ok(
      !/unexpected EOF|could not receive data|connection reset/i.test(serverLog),
      serverLog,
    );
  } finally {
    await source?.close();
  }
  // The transaction was never confirmed: a fresh source gets it.
  const again = await ReplicationSource.open(sourceOptions(pg, name));
  try {
    const iterator = again.batches()[Symbol.asyncIterator]();
    const items = await pullItems(iterator, (got) => commits(got) >= 1);
    const change = items.find((item) => item.kind === "change");
    assert.ok(change?.kind === "change");
    assert.deepEqual(change.event.after, { id: 1 });
    assert.ok(again.confirmedLsn === LSN_ZERO);
  } finally {
    await again.close();
    await cleanup(pg, name);
  }
});

// ---------------------------------------------------------------------------------------------

test("failure: a walsender that goes silent (SIGSTOP) is noticed at the receive timeout; the source reconnects and streams on", async (version) => {
  const pg = await server(version);
  const name = "silent";
  await prepare(pg, name);
  const logged: string[] = [];
  const source = await ReplicationSource.open(
    sourceOptions(pg, name, {
      receiveTimeoutMs: 1_500,
      reconnect: { maxAttempts: 50, initialDelayMs: 100, maxDelayMs: 300 },
      log: (level, message, fields) => logged.push(`${level} ${message} ${JSON.stringify(fields)}`),
    }),
  );
  let stopped: number | null = null;
  try {
    const iterator = source.batches()[Symbol.asyncIterator]();
    await pg.psql(`INSERT INTO ${name} VALUES (1)`);
    await pullItems(iterator, (items) => commits(items) >= 1);
    const before = Number(await walsenderPids(pg, name));
    Deno.kill(before, "SIGSTOP"); // alive, connected, and silent: a dead NAT entry, say
    stopped = before;
    const next = pullItems(iterator, (items) => commits(items) >= 1, 60_000);
    await waitFor(
      "the receive timeout",
      () => logged.some((line) => line.includes("No data from the server")),
      { timeoutMs: 20_000, detail: () => logged.join("\n") },
    );
    // The stopped walsender still holds the slot: let it go, so the reconnect can take it.
    Deno.kill(before, "SIGCONT");
    stopped = null;
    await pg.psql(`SELECT pg_terminate_backend(${before})`);
    await pg.psql(`INSERT INTO ${name} VALUES (2)`);
    const items = await next;
    const ids = items.filter((item) => item.kind === "change").map((item) =>
      item.kind === "change" ? Number(item.event.after?.id) : 0
    );
    assert.ok(ids.includes(2), `got ${ids.join(", ")}`);
    const after = Number(await walsenderPids(pg, name));
    assert.notEqual(after, before);
  } finally {
    if (stopped !== null) Deno.kill(stopped, "SIGCONT");
    await source.close();
  }
});

// ---------------------------------------------------------------------------------------------
// One version after the other: its tests, then its server stops.

register(testVersions("full"));
