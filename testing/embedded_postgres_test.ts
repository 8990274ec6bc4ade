import assert from "node:assert/strict";
import { PRIMARY_VERSION, startPostgres, testVersions } from "./embedded_postgres.ts";

for (const version of testVersions("smoke")) {
  Deno.test(`harness: PostgreSQL ${version} starts with logical WAL`, async () => {
    await using pg = await startPostgres({ version });
    assert.equal(pg.version, version);
    assert.equal(pg.host, "127.0.0.1");
    assert.notEqual(pg.port, 5432);
    assert.equal(await pg.psql("SHOW wal_level"), "logical", await pg.tailLog());
    const num = await pg.psql("SELECT current_setting('server_version_num')");
    assert.match(num, new RegExp(`^${version}\\d{4}$`));
    assert.equal(await pg.psql("SELECT 1, 'a'; SELECT 2, 'b'"), "1|a\n2|b");
  });
}

Deno.test("harness: TLS server verifiable with the generated CA", async () => {
  await using pg = await startPostgres({
    version: PRIMARY_VERSION,
    tls: true,
    hba: ["hostssl all all 127.0.0.1/32 trust"],
  });
  assert.equal(await pg.psql("SHOW ssl"), "on");
  assert.ok(pg.caCertFile);
  const conninfo = `host=localhost port=${pg.port} user=postgres dbname=postgres ` +
    `sslmode=verify-full sslrootcert=${pg.caCertFile} connect_timeout=10`;
  const out = await new Deno.Command("/usr/bin/psql", {
    args: [
      "-X",
      "-At",
      "-d",
      conninfo,
      "-c",
      "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    ],
    env: { PGSSLCERT: "/nonexistent", PGSSLKEY: "/nonexistent" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `psql verify-full failed: ${stderr}\n${await pg.tailLog()}`);
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "t");
});

Deno.test("harness: stop/start keeps data; reconfigure; dispose cleans up", async () => {
  const pg = await startPostgres();
  try {
    await pg.psql("CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'x')");
    const port = pg.port;
    await pg.stop();
    await pg.stop(); // idempotent
    await assert.rejects(pg.psql("SELECT 1"));
    await pg.start();
    assert.equal(pg.port, port);
    assert.equal(await pg.psql("SELECT v FROM t WHERE id = 1"), "x");

    await pg.psql("ALTER SYSTEM SET max_replication_slots = 5");
    await pg.reconfigure({ max_replication_slots: "7", work_mem: "8MB" });
    assert.equal(await pg.psql("SHOW max_replication_slots"), "7");
    assert.equal(await pg.psql("SHOW work_mem"), "8MB");
    assert.equal(await pg.psql("SHOW wal_level"), "logical");

    await pg.restart("immediate");
    assert.equal(await pg.psql("SELECT count(*) FROM t"), "1");
    assert.match(await pg.tailLog(200), /database system is ready to accept connections/);
  } finally {
    await pg[Symbol.asyncDispose]();
  }
  await assert.rejects(Deno.stat(pg.dataDir), Deno.errors.NotFound);
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: pg.port }));
});

Deno.test("harness: password, pg_hba extras and initdb args", async () => {
  await using pg = await startPostgres({
    superuserPassword: "s3cret:/@",
    hba: ["host all all 127.0.0.1/32 scram-sha-256"],
    initdbArgs: ["--encoding=LATIN1"],
  });
  assert.match(pg.url(), /^postgres:\/\/postgres:s3cret%3A%2F%40@127\.0\.0\.1:\d+\/postgres$/);
  assert.equal(await pg.psql("SHOW server_encoding"), "LATIN1");
  assert.equal(
    pg.url({ user: "a b", database: "d", params: { options: "-c x=y" } }),
    `postgres://a%20b@127.0.0.1:${pg.port}/d?options=-c%20x%3Dy`,
  );
  const wrong = await new Deno.Command("/usr/bin/psql", {
    args: ["-X", "-At", "-d", pg.url({ password: "wrong" }), "-c", "SELECT 1"],
    env: { PGCONNECT_TIMEOUT: "10" },
  }).output();
  assert.notEqual(wrong.code, 0);
  assert.match(new TextDecoder().decode(wrong.stderr), /password authentication failed/);
});

Deno.test("harness: a failed start reports the server log", async () => {
  await assert.rejects(
    startPostgres({ settings: { shared_buffers: "bogus" } }),
    /invalid value for parameter "shared_buffers"/,
  );
});
