/**
 * Integration tests of the connection layer against real servers: authentication
 * methods, TLS and sslmode, SCRAM channel binding, and the replication commands
 * (IDENTIFY_SYSTEM, CREATE/DROP_REPLICATION_SLOT, START_REPLICATION errors, CopyDone).
 *
 * Two servers are shared by every test in this file: PostgreSQL 17 with TLS and one
 * pg_hba line per authentication method (one role per method), and PostgreSQL 14
 * without TLS (legacy slot syntax, proto_version limits, sslmode=require refused).
 *
 * @module
 */

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ScramClient } from "../decoder/auth.ts";
import { PgConnection } from "../postgres/connection.ts";
import { type ConnectOptions, parseConnectionUrl } from "../postgres/connection_string.ts";
import { ConfigError, ConnectionError, PostgresError } from "../errors.ts";
import { formatLsn, LSN_ZERO, parseLsn } from "../decoder/lsn.ts";
import { type PgServer, PRIMARY_VERSION, startPostgres } from "../testing/embedded_postgres.ts";
import { connectOptions } from "./_replication.ts";
import { failure, waitFor } from "./_runner_util.ts";
import { fakeOptions, fakeServer, within } from "./_fake_server.ts";
import { authenticationBody, backendFrame, concat, utf8 } from "./testdata/_frames.ts";

// ---------------------------------------------------------------------------------------------
// Shared servers

/** One role per authentication method; each gets its own pg_hba line. */
const ROLES = {
  trust: { user: "u_trust", password: "trust-is-not-checked" },
  password: { user: "u_password", password: "cleartext pw 1" },
  md5: { user: "u_md5", password: "md5 pw 2" },
  "scram-sha-256": { user: "u_scram", password: "scram pw 3 ü" },
} as const;
type Method = keyof typeof ROLES;

/** A role that may only log in over TLS (hostssl), with SCRAM. */
const TLS_ROLE = { user: "u_tls", password: "tls only pw" };

const LOG_SETTINGS = { log_replication_commands: "on", log_connections: "on" };

let primary: Promise<PgServer> | undefined;
let pg14: Promise<PgServer> | undefined;

/** PostgreSQL 17 with TLS and a role per authentication method. */
function primaryServer(): Promise<PgServer> {
  primary ??= (async () => {
    const server = await startPostgres({
      version: PRIMARY_VERSION,
      tls: true,
      settings: LOG_SETTINGS,
      hba: [
        `host all ${ROLES.trust.user} 127.0.0.1/32 trust`,
        `host all ${ROLES.password.user} 127.0.0.1/32 password`,
        `host all ${ROLES.md5.user} 127.0.0.1/32 md5`,
        `host all ${ROLES["scram-sha-256"].user} 127.0.0.1/32 scram-sha-256`,
        `hostssl all ${TLS_ROLE.user} 127.0.0.1/32 scram-sha-256`,
        `hostnossl all ${TLS_ROLE.user} 127.0.0.1/32 reject`,
      ],
    });
    await server.psql(`
      CREATE ROLE ${ROLES.trust.user} LOGIN REPLICATION;
      CREATE ROLE ${ROLES.password.user} LOGIN REPLICATION PASSWORD '${ROLES.password.password}';
      SET password_encryption = 'md5';
      CREATE ROLE ${ROLES.md5.user} LOGIN REPLICATION PASSWORD '${ROLES.md5.password}';
      RESET password_encryption;
      CREATE ROLE ${ROLES["scram-sha-256"].user} LOGIN REPLICATION
        PASSWORD '${ROLES["scram-sha-256"].password}';
      CREATE ROLE ${TLS_ROLE.user} LOGIN REPLICATION PASSWORD '${TLS_ROLE.password}';
      CREATE TABLE items (id int PRIMARY KEY, name text);
      CREATE PUBLICATION pub FOR ALL TABLES;
    `);
    return server;
  })();
  return primary;
}

/** PostgreSQL 14 without TLS. */
function pg14Server(): Promise<PgServer> {
  pg14 ??= (async () => {
    const server = await startPostgres({ version: 14, settings: LOG_SETTINGS });
    await server.psql(
      "CREATE TABLE items (id int PRIMARY KEY, name text); CREATE PUBLICATION pub FOR ALL TABLES",
    );
    return server;
  })();
  return pg14;
}

function serverFor(version: 14 | 17): Promise<PgServer> {
  return version === 14 ? pg14Server() : primaryServer();
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Connection options for a role on the primary, TLS off unless overridden. */
function roleOptions(
  server: PgServer,
  role: { user: string; password?: string },
  overrides: Partial<ConnectOptions> = {},
): ConnectOptions {
  return connectOptions(server, { user: role.user, password: role.password, ...overrides });
}

/** Connects, runs `body`, and always closes the connection. */
async function withConnection<T>(
  options: ConnectOptions,
  body: (connection: PgConnection) => Promise<T>,
): Promise<T> {
  const connection = await PgConnection.connect(options);
  try {
    return await body(connection);
  } finally {
    await connection.close();
  }
}

/** Whether the server sees this session as TLS-encrypted (pg_stat_ssl). */
async function serverSeesSsl(connection: PgConnection): Promise<boolean> {
  const [row] = await connection.queryObjects(
    "SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()",
  );
  return row?.ssl === "t";
}

/** Records the SCRAM mechanism chosen by every ScramClient made while `body` runs. */
async function recordScramMechanisms<T>(body: (mechanisms: string[]) => Promise<T>): Promise<T> {
  const mechanisms: string[] = [];
  const original = ScramClient.prototype.first;
  ScramClient.prototype.first = function (this: ScramClient, offered: string[]) {
    const message = original.call(this, offered);
    mechanisms.push(this.mechanism);
    return message;
  };
  try {
    return await body(mechanisms);
  } finally {
    ScramClient.prototype.first = original;
  }
}

/** The server log, from the start (the harness keeps one file per server). */
function serverLog(server: PgServer): Promise<string> {
  return Deno.readTextFile(server.logFile);
}

async function slotRow(
  server: PgServer,
  slot: string,
): Promise<string> {
  return await server.psql(
    `SELECT slot_type, plugin, temporary, active FROM pg_replication_slots WHERE slot_name = '${slot}'`,
  );
}

/** A second, unrelated CA (PEM text), to fail verification with. */
async function otherCaPem(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "spillway-other-ca-" });
  try {
    const out = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        join(dir, "ca.key"),
        "-out",
        join(dir, "ca.crt"),
        "-days",
        "2",
        "-subj",
        "/CN=Some other CA",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return await Deno.readTextFile(join(dir, "ca.crt"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A name other than "localhost" that /etc/hosts maps to 127.0.0.1, if there is one. */
function loopbackAlias(): string | undefined {
  let hosts: string;
  try {
    hosts = Deno.readTextFileSync("/etc/hosts");
  } catch {
    return undefined;
  }
  for (const line of hosts.split("\n")) {
    const [address, ...names] = line.replace(/#.*/, "").trim().split(/\s+/);
    if (address !== "127.0.0.1") continue;
    const alias = names.find((name) => name !== "" && !name.startsWith("localhost"));
    if (alias) return alias;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Authentication

/** What the server logs for a connection authenticated by each method (PG 17, log_connections). */
const LOGGED_METHOD: Record<Method, string | null> = {
  trust: null, // trust authenticates no identity, so there is no "connection authenticated" line
  password: "password",
  md5: "md5",
  "scram-sha-256": "scram-sha-256",
};

/** The method name the missing-password error quotes. */
const ASKED_METHOD: Record<Exclude<Method, "trust">, string> = {
  password: "cleartext",
  md5: "md5",
  "scram-sha-256": "SCRAM-SHA-256",
};

for (const method of Object.keys(ROLES) as Method[]) {
  const role = ROLES[method];

  Deno.test(`auth ${method}: replication and normal connections succeed`, async () => {
    const server = await primaryServer();
    await withConnection(
      roleOptions(server, role, { replication: "database" }),
      async (connection) => {
        assert.equal(connection.serverMajorVersion, PRIMARY_VERSION);
        assert.ok(connection.backendPid > 0);
        // IDENTIFY_SYSTEM only works on a walsender connection.
        const identity = await connection.identifySystem();
        assert.equal(identity.dbName, "postgres");
        const [row] = await connection.queryObjects("SELECT current_user AS who");
        assert.equal(row?.who, role.user);
        assert.equal(
          await server.psql(
            `SELECT backend_type FROM pg_stat_activity WHERE pid = ${connection.backendPid}`,
          ),
          "walsender",
        );
      },
    );
    await withConnection(roleOptions(server, role), async (connection) => {
      const [row] = await connection.queryObjects("SELECT current_user AS who");
      assert.equal(row?.who, role.user);
      const error = await failure(() => connection.identifySystem());
      assert.ok(error instanceof PostgresError);
      assert.equal(error.code, "42601", "a normal session does not know IDENTIFY_SYSTEM");
    });

    const logged = LOGGED_METHOD[method];
    if (logged !== null) {
      // The server really used the method under test (not a trust fallback).
      const pattern = new RegExp(`identity="${role.user}" method=${logged} `);
      assert.match(await serverLog(server), pattern);
    }
  });

  if (method === "trust") continue;
  const askedMethod = ASKED_METHOD[method];

  Deno.test(`auth ${method}: a wrong password is 28P01 naming the fix`, async () => {
    const server = await primaryServer();
    for (const replication of ["database", undefined] as const) {
      const error = await failure(() =>
        PgConnection.connect(roleOptions(server, { ...role, password: "wrong" }, { replication }))
      );
      assert.ok(error instanceof PostgresError, `${error.name}: ${error.message}`);
      assert.equal(error.code, "28P01");
      assert.equal(error.retriable, false);
      assert.match(error.message, /^Cannot connect to 127\.0\.0\.1:\d+ as "u_\w+": /);
      assert.ok(
        error.message.includes(`password authentication failed for user "${role.user}"`),
        error.message,
      );
      assert.ok(error.message.includes(`check the password for "${role.user}"`), error.message);
      assert.equal(error.fix, `check the password for "${role.user}"`);
    }
  });

  Deno.test(`auth ${method}: a missing password is a ConfigError saying to put it in the URL`, async () => {
    const server = await primaryServer();
    const error = await failure(() =>
      PgConnection.connect(roleOptions(server, { user: role.user }, { replication: "database" }))
    );
    assert.ok(error instanceof ConfigError, `${error.name}: ${error.message}`);
    assert.equal(error.retriable, false);
    assert.ok(error.message.includes(`"${role.user}"`), error.message);
    assert.ok(error.message.includes(`(${askedMethod})`), error.message);
    assert.ok(error.message.includes("put it in the URL"), error.message);
  });
}

Deno.test({
  name: "auth: a connect error states its SQLSTATE, detail and fix once",

  fn: async () => {
    const server = await primaryServer();
    const role = ROLES["scram-sha-256"];
    const error = await failure(() =>
      PgConnection.connect(roleOptions(server, { ...role, password: "wrong" }))
    );
    assert.equal(error.message.match(/SQLSTATE 28P01/g)?.length, 1, error.message);
    assert.equal(error.message.match(/fix: /g)?.length, 1, error.message);
  },
});

Deno.test("auth: a hostssl-only role is refused without TLS with a pg_hba fix (28000)", async () => {
  const server = await primaryServer();
  const error = await failure(() =>
    PgConnection.connect(roleOptions(server, TLS_ROLE, { sslmode: "disable" }))
  );
  assert.ok(error instanceof PostgresError, `${error.name}: ${error.message}`);
  assert.equal(error.code, "28000");
  assert.ok(error.message.includes("pg_hba.conf"), error.message);
  assert.ok(error.message.includes(`add a pg_hba.conf line for user "${TLS_ROLE.user}"`));
});

// ---------------------------------------------------------------------------------------------
// TLS

Deno.test("tls: sslmode=require connects encrypted (normal and replication connections)", async () => {
  const server = await primaryServer();
  for (const replication of [undefined, "database"] as const) {
    await withConnection(
      connectOptions(server, { sslmode: "require", replication }),
      async (connection) => {
        assert.equal(connection.wire.transport.encrypted, true);
        assert.ok(connection.wire.transport.peerCertificate, "the server certificate is kept");
        assert.equal(await serverSeesSsl(connection), true);
      },
    );
  }
  // And sslmode=disable really is plaintext, so the checks above mean something.
  await withConnection(connectOptions(server, { sslmode: "disable" }), async (connection) => {
    assert.equal(connection.wire.transport.encrypted, false);
    assert.equal(await serverSeesSsl(connection), false);
  });
});

Deno.test("tls: sslmode=prefer uses TLS when offered and plaintext when not", async () => {
  const server = await primaryServer();
  await withConnection(connectOptions(server, { sslmode: "prefer" }), async (connection) => {
    assert.equal(await serverSeesSsl(connection), true);
  });
  const plain = await pg14Server();
  await withConnection(connectOptions(plain, { sslmode: "prefer" }), async (connection) => {
    assert.equal(connection.wire.transport.encrypted, false);
    assert.equal(await serverSeesSsl(connection), false);
  });
});

Deno.test("tls: verify-full with the right CA and host localhost connects", async () => {
  const server = await primaryServer();
  const ca = await Deno.readTextFile(server.caCertFile!);
  const options = connectOptions(server, {
    host: "localhost",
    sslmode: "verify-full",
    sslrootcert: ca,
    replication: "database",
  });
  await withConnection(options, async (connection) => {
    assert.equal(await serverSeesSsl(connection), true);
    assert.equal((await connection.identifySystem()).dbName, "postgres");
  });
});

Deno.test("tls: verify-full with host 127.0.0.1 passes: the certificate has SAN IP:127.0.0.1", async () => {
  const server = await primaryServer();
  const ca = await Deno.readTextFile(server.caCertFile!);
  const options = connectOptions(server, {
    host: "127.0.0.1",
    sslmode: "verify-full",
    sslrootcert: ca,
  });
  await withConnection(options, async (connection) => {
    assert.equal(await serverSeesSsl(connection), true);
  });
});

Deno.test("tls: verify-full and verify-ca with a wrong CA fail naming TLS and sslmode", async () => {
  const server = await primaryServer();
  const wrongCa = await otherCaPem();
  for (const sslmode of ["verify-full", "verify-ca"] as const) {
    const error = await failure(() =>
      PgConnection.connect(
        connectOptions(server, { host: "localhost", sslmode, sslrootcert: wrongCa }),
      )
    );
    assert.ok(error instanceof ConnectionError, `${error.name}: ${error.message}`);
    assert.equal(error.retriable, false, "a certificate problem does not go away by retrying");
    assert.ok(error.message.includes("TLS"), error.message);
    assert.ok(error.message.includes(`sslmode=${sslmode}`), error.message);
    assert.ok(error.message.includes("localhost"), error.message);
  }
  // sslmode=require does not verify, so the same CA does not matter there.
  await withConnection(
    connectOptions(server, { sslmode: "require", sslrootcert: wrongCa }),
    async (connection) => assert.equal(await serverSeesSsl(connection), true),
  );
});

const alias = loopbackAlias();

Deno.test({
  name: `tls: a host name not in the certificate fails verify-full but passes verify-ca (${
    alias ?? "no loopback alias in /etc/hosts"
  })`,
  ignore: alias === undefined,
  fn: async () => {
    const server = await primaryServer();
    const ca = await Deno.readTextFile(server.caCertFile!);
    const error = await failure(() =>
      PgConnection.connect(
        connectOptions(server, { host: alias!, sslmode: "verify-full", sslrootcert: ca }),
      )
    );
    assert.ok(error instanceof ConnectionError, `${error.name}: ${error.message}`);
    assert.ok(error.message.includes("sslmode=verify-full"), error.message);
    assert.ok(error.message.includes(alias!), error.message);
    await withConnection(
      connectOptions(server, { host: alias!, sslmode: "verify-ca", sslrootcert: ca }),
      async (connection) => assert.equal(await serverSeesSsl(connection), true),
    );
  },
});

Deno.test("tls: sslmode=require against a server without TLS fails naming the fix", async () => {
  const server = await pg14Server();
  for (const sslmode of ["require", "verify-full"] as const) {
    // verify-full gets roots to verify with, so it reaches the server's answer.
    const error = await failure(() =>
      PgConnection.connect(
        connectOptions(server, { sslmode, sslrootcert: "system", replication: "database" }),
      )
    );
    assert.ok(error instanceof ConnectionError, `${error.name}: ${error.message}`);
    assert.equal(error.retriable, false);
    assert.ok(error.message.includes(`sslmode=${sslmode}`), error.message);
    assert.ok(error.message.includes("does not accept TLS"), error.message);
    assert.ok(error.message.includes("enable ssl on the server"), error.message);
    assert.ok(error.message.includes("sslmode=prefer"), error.message);
  }
});

Deno.test("tls: SCRAM over TLS uses SCRAM-SHA-256-PLUS (channel binding); plain SCRAM without TLS", async () => {
  const server = await primaryServer();
  const role = ROLES["scram-sha-256"];
  const ca = await Deno.readTextFile(server.caCertFile!);
  await recordScramMechanisms(async (mechanisms) => {
    for (const replication of ["database", undefined] as const) {
      await withConnection(
        roleOptions(server, role, {
          host: "localhost",
          sslmode: "verify-full",
          sslrootcert: ca,
          replication,
        }),
        async (connection) => {
          assert.equal(await serverSeesSsl(connection), true);
          const [row] = await connection.queryObjects("SELECT current_user AS who");
          assert.equal(row?.who, role.user);
        },
      );
      assert.equal(mechanisms.pop(), "SCRAM-SHA-256-PLUS");
    }
    // The hostssl-only role too, with sslmode=require (no verification, binding still on).
    await withConnection(roleOptions(server, TLS_ROLE, { sslmode: "require" }), async (c) => {
      assert.equal(await serverSeesSsl(c), true);
    });
    assert.equal(mechanisms.pop(), "SCRAM-SHA-256-PLUS");
    // Without TLS there is nothing to bind to.
    await withConnection(roleOptions(server, role, { sslmode: "disable" }), async (c) => {
      assert.equal(await serverSeesSsl(c), false);
    });
    assert.equal(mechanisms.pop(), "SCRAM-SHA-256");
    // A wrong password over a bound channel is still 28P01.
    const error = await failure(() =>
      PgConnection.connect(roleOptions(server, { ...role, password: "x" }, { sslmode: "require" }))
    );
    assert.ok(error instanceof PostgresError && error.code === "28P01", error.message);
    assert.equal(mechanisms.pop(), "SCRAM-SHA-256-PLUS");
  });
});

/**
 * Runs `script` (shell commands that write server.crt and server.key from the harness CA in
 * the data dir), reloads, and waits until the server presents a certificate `presented`
 * accepts.
 */
async function installCertificate(
  server: PgServer,
  script: string[],
  presented: (der: Uint8Array) => boolean,
): Promise<void> {
  const commands = [
    ...script,
    "chmod 600 server.key",
    'if [ "$(id -u)" = 0 ]; then chown postgres server.key server.crt; fi',
  ].join(" && ");
  const out = await new Deno.Command("sh", { args: ["-c", commands], cwd: server.dataDir })
    .output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  await server.psql("SELECT pg_reload_conf()");
  await waitFor("the new certificate", async () => {
    const connection = await PgConnection.connect(connectOptions(server, { sslmode: "require" }));
    const der = connection.wire.transport.peerCertificate;
    await connection.close();
    return der !== undefined && presented(der);
  }, { timeoutMs: 10_000 });
}

/**
 * Starts a TLS server for the SCRAM role, replaces its certificate with what `script` (run in
 * the data dir) writes, reloads, waits until the server presents a certificate containing
 * `oid` (its signature algorithm, DER-encoded), then logs in over TLS and returns the SASL
 * mechanism the client chose.
 */
async function scramWithCertificate(script: string[], oid: number[]): Promise<string | undefined> {
  await using server = await startPostgres({
    tls: true,
    hba: [`host all ${ROLES["scram-sha-256"].user} 127.0.0.1/32 scram-sha-256`],
  });
  const role = ROLES["scram-sha-256"];
  await server.psql(`CREATE ROLE ${role.user} LOGIN PASSWORD '${role.password}'`);
  await installCertificate(
    server,
    script,
    (der) => der.some((_, i) => oid.every((byte, j) => der[i + j] === byte)),
  );
  let chosen: string | undefined;
  await recordScramMechanisms(async (mechanisms) => {
    await withConnection(
      roleOptions(server, role, { sslmode: "require" }),
      async (connection) => assert.equal(await serverSeesSsl(connection), true),
    );
    chosen = mechanisms.pop();
  });
  return chosen;
}

Deno.test("tls: SCRAM-SHA-256-PLUS works with a certificate signed with SHA-384", async () => {
  // Re-issued from the harness CA, signed with SHA-384 (sha384WithRSAEncryption).
  const mechanism = await scramWithCertificate([
    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > sha384.ext",
    "openssl req -new -newkey rsa:2048 -nodes -keyout server.key -out sha384.csr -subj /CN=localhost",
    "openssl x509 -req -in sha384.csr -CA ca.crt -CAkey ca.key -set_serial 0x5ee1 -days 2 " +
    "-sha384 -extfile sha384.ext -out server.crt",
  ], [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c]);
  assert.equal(mechanism, "SCRAM-SHA-256-PLUS");
});

Deno.test("tls: an Ed25519 certificate (no hash to bind with) logs in with plain SCRAM-SHA-256, gs2 header n", async () => {
  // Self-signed with Ed25519 (OID 1.3.101.112): its signature has no hash for RFC 5929.
  const mechanism = await scramWithCertificate([
    "openssl req -x509 -newkey ed25519 -nodes -keyout server.key -out server.crt -days 2 " +
    "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1",
  ], [0x06, 0x03, 0x2b, 0x65, 0x70]);
  assert.equal(mechanism, "SCRAM-SHA-256");
});

Deno.test("tls: cleartext, md5 and scram roles all authenticate over TLS", async () => {
  const server = await primaryServer();
  for (const method of ["password", "md5", "scram-sha-256"] as const) {
    await withConnection(
      roleOptions(server, ROLES[method], { sslmode: "require", replication: "database" }),
      async (connection) => assert.equal(await serverSeesSsl(connection), true),
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Replication commands

Deno.test("replication: IDENTIFY_SYSTEM returns systemid, timeline, xlogpos and dbname", async () => {
  const server = await primaryServer();
  const before = parseLsn(await server.psql("SELECT pg_current_wal_lsn()"));
  await withConnection(connectOptions(server, { replication: "database" }), async (connection) => {
    const identity = await connection.identifySystem();
    const after = parseLsn(await server.psql("SELECT pg_current_wal_lsn()"));
    assert.equal(
      identity.systemId,
      await server.psql("SELECT system_identifier FROM pg_control_system()"),
    );
    assert.match(identity.systemId, /^\d+$/);
    assert.equal(identity.timeline, 1);
    assert.ok(
      identity.xlogPos >= before && identity.xlogPos <= after,
      `xlogpos ${formatLsn(identity.xlogPos)} outside [${formatLsn(before)}, ${formatLsn(after)}]`,
    );
    assert.equal(identity.dbName, "postgres");
  });
});

for (const version of [14, 17] as const) {
  const syntax = version === 14 ? "legacy" : "parenthesised";

  Deno.test(`replication: PG${version} CREATE_REPLICATION_SLOT in ${syntax} syntax, with an exported snapshot`, async () => {
    const server = await serverFor(version);
    const slot = `export_${version}`;
    await server.psql(`INSERT INTO items VALUES (${version}, 'before the slot')`);
    await withConnection(
      connectOptions(server, { replication: "database" }),
      async (connection) => {
        const created = await connection.createReplicationSlot(slot, { snapshot: "export" });
        assert.equal(created.slotName, slot);
        assert.equal(created.outputPlugin, "pgoutput");
        assert.ok(created.consistentPoint > LSN_ZERO);
        assert.ok(created.snapshotName, "an exported snapshot has a name");
        assert.match(created.snapshotName, /^[0-9A-F]+-[0-9A-F]+-\d+$/);
        assert.equal(await slotRow(server, slot), "logical|pgoutput|f|f");

        // The snapshot lives until this connection's next command: another session can
        // import it and sees the data as of the slot's consistent point.
        await server.psql(`INSERT INTO items VALUES (${version + 100}, 'after the slot')`);
        await withConnection(connectOptions(server), async (reader) => {
          const results = await reader.query(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; " +
              `SET TRANSACTION SNAPSHOT '${created.snapshotName}'; ` +
              `SELECT count(*) AS n FROM items WHERE id IN (${version}, ${version + 100}); ` +
              "COMMIT",
          );
          assert.deepEqual(results[2]?.rows, [["1"]], "the snapshot predates the second insert");
        });

        const temporary = await connection.createReplicationSlot(`${slot}_tmp`, {
          snapshot: "nothing",
          temporary: true,
        });
        assert.equal(temporary.snapshotName, null);
        assert.equal(await slotRow(server, `${slot}_tmp`), "logical|pgoutput|t|t");
      },
    );
    // The temporary slot went with its connection; the permanent one stays.
    await waitFor(
      "the temporary slot to go",
      async () => await slotRow(server, `${slot}_tmp`) === "",
      { timeoutMs: 10_000 },
    );
    assert.equal(await slotRow(server, slot), "logical|pgoutput|f|f");

    const log = await serverLog(server);
    const expected = version === 14
      ? `CREATE_REPLICATION_SLOT ${slot} LOGICAL pgoutput EXPORT_SNAPSHOT`
      : `CREATE_REPLICATION_SLOT ${slot} LOGICAL pgoutput (SNAPSHOT 'export')`;
    assert.ok(log.includes(`received replication command: ${expected}\n`), `no "${expected}"`);
    const expectedTemporary = version === 14
      ? `CREATE_REPLICATION_SLOT ${slot}_tmp TEMPORARY LOGICAL pgoutput NOEXPORT_SNAPSHOT`
      : `CREATE_REPLICATION_SLOT ${slot}_tmp TEMPORARY LOGICAL pgoutput (SNAPSHOT 'nothing')`;
    assert.ok(log.includes(`received replication command: ${expectedTemporary}\n`));
    await server.psql(`SELECT pg_drop_replication_slot('${slot}')`);
  });
}

Deno.test("replication: CREATE_REPLICATION_SLOT options PG14 lacks, and bad slot names, are ConfigErrors", async () => {
  const server = await pg14Server();
  await withConnection(connectOptions(server, { replication: "database" }), async (connection) => {
    const twoPhase = await failure(() =>
      connection.createReplicationSlot("tp", { twoPhase: true })
    );
    assert.ok(twoPhase instanceof ConfigError, twoPhase.message);
    assert.ok(twoPhase.message.includes("two_phase"), twoPhase.message);
    assert.ok(twoPhase.message.includes("15+"), twoPhase.message);
    const badName = await failure(() => connection.createReplicationSlot("Bad-Name"));
    assert.ok(badName instanceof ConfigError, badName.message);
    assert.ok(badName.message.includes('"Bad-Name"'), badName.message);
    // Nothing was sent: the connection is fine and no slot exists.
    assert.equal((await connection.identifySystem()).dbName, "postgres");
  });
  assert.equal(
    await server.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'tp'"),
    "0",
  );
});

Deno.test("replication: CREATE_REPLICATION_SLOT for an existing slot is 42710", async () => {
  const server = await primaryServer();
  await withConnection(connectOptions(server, { replication: "database" }), async (connection) => {
    await connection.createReplicationSlot("twice", { snapshot: "nothing", temporary: true });
    const error = await failure(() =>
      connection.createReplicationSlot("twice", { snapshot: "nothing", temporary: true })
    );
    assert.ok(error instanceof PostgresError, error.message);
    assert.equal(error.code, "42710");
    assert.ok(error.message.includes('"twice"'), error.message);
    assert.equal((await connection.identifySystem()).dbName, "postgres");
  });
});

Deno.test("replication: DROP_REPLICATION_SLOT drops; a missing slot is 42704 with a fix; an active one is 55006", async () => {
  const server = await primaryServer();
  await withConnection(connectOptions(server, { replication: "database" }), async (connection) => {
    await connection.createReplicationSlot("to_drop", { snapshot: "nothing" });
    assert.equal(await slotRow(server, "to_drop"), "logical|pgoutput|f|f");
    await connection.dropReplicationSlot("to_drop");
    assert.equal(await slotRow(server, "to_drop"), "");

    const missing = await failure(() => connection.dropReplicationSlot("to_drop"));
    assert.ok(missing instanceof PostgresError, missing.message);
    assert.equal(missing.code, "42704");
    assert.ok(missing.message.includes('replication slot "to_drop" does not exist'));
    assert.ok(missing.fix?.includes("refuses to replace one it streamed from"), missing.message);

    // A slot another walsender is reading cannot be dropped without WAIT.
    await connection.createReplicationSlot("busy_slot", { snapshot: "nothing" });
    await withConnection(connectOptions(server, { replication: "database" }), async (reader) => {
      const stream = await reader.startReplication({
        slot: "busy_slot",
        pgoutput: { protoVersion: 1, publicationNames: ["pub"] },
      });
      try {
        const busy = await failure(() => connection.dropReplicationSlot("busy_slot"));
        assert.ok(busy instanceof PostgresError, busy.message);
        assert.equal(busy.code, "55006");
        assert.equal(busy.retriable, true);
        assert.ok(busy.message.includes("another process is reading this slot"), busy.message);
      } finally {
        await stream.stop();
      }
    });
    await connection.dropReplicationSlot("busy_slot", { wait: true });
    assert.equal(await slotRow(server, "busy_slot"), "");
  });
});

for (const [version, tooHigh] of [[17, 5], [14, 3]] as const) {
  Deno.test(`replication: PG${version} START_REPLICATION with proto_version ${tooHigh} is 0A000; the connection stays usable`, async () => {
    const server = await serverFor(version);
    const slot = `proto_${version}`;
    await withConnection(
      connectOptions(server, { replication: "database" }),
      async (connection) => {
        // Permanent: an ERROR on the walsender drops the session's temporary slots.
        await connection.createReplicationSlot(slot, { snapshot: "nothing" });
        const error = await failure(() =>
          connection.startReplication({
            slot,
            // Beyond the type on purpose: the server must be the one to refuse it.
            pgoutput: { protoVersion: tooHigh as 1, publicationNames: ["pub"] },
          })
        );
        assert.ok(error instanceof PostgresError, `${error.name}: ${error.message}`);
        assert.equal(error.code, "0A000");
        assert.equal(error.retriable, false);
        assert.ok(error.message.includes(`proto_version=${tooHigh}`), error.message);
        assert.ok(error.message.includes("START_REPLICATION"), "the message names the command");
        assert.ok(error.fix?.includes("lower proto_version"), error.message);

        // ReadyForQuery came after the error: another command works on the same connection,
        // and so does a valid START_REPLICATION.
        assert.equal((await connection.identifySystem()).dbName, "postgres");
        const stream = await connection.startReplication({
          slot,
          pgoutput: { protoVersion: version === 14 ? 2 : 4, publicationNames: ["pub"] },
        });
        await stream.stop();
        assert.equal((await connection.identifySystem()).dbName, "postgres");
        await connection.dropReplicationSlot(slot);
      },
    );
  });
}

Deno.test("replication: bad pgoutput options: duplicate 42601, unknown XX000, missing publication_names 22023", async () => {
  const server = await primaryServer();
  const cases = [
    {
      what: "duplicate publication_names",
      options: "proto_version '1', publication_names 'pub', publication_names 'pub'",
      code: "42601",
      text: "conflicting or redundant options",
    },
    {
      what: "unknown option",
      options: "proto_version '1', publication_names 'pub', no_such_option 'x'",
      code: "XX000",
      text: "unrecognized pgoutput option: no_such_option",
    },
    {
      what: "missing publication_names",
      options: "proto_version '1'",
      code: "22023",
      text: "publication_names",
    },
  ];
  await withConnection(connectOptions(server, { replication: "database" }), async (connection) => {
    // Permanent: an ERROR on the walsender drops the session's temporary slots.
    await connection.createReplicationSlot("bad_options", { snapshot: "nothing" });
    for (const { what, options, code, text } of cases) {
      // Raw SQL: pgoutputOptionList() cannot produce these on purpose.
      const error = await failure(() =>
        connection.query(`START_REPLICATION SLOT bad_options LOGICAL 0/0 (${options})`)
      );
      assert.ok(error instanceof PostgresError, `${what}: ${error.name}: ${error.message}`);
      assert.equal(error.code, code, `${what}: ${error.message}`);
      assert.ok(error.message.includes(text), `${what}: ${error.message}`);
      // The error arrives before CopyBothResponse: the connection is usable afterwards.
      assert.equal((await connection.identifySystem()).dbName, "postgres", what);
    }
    await connection.dropReplicationSlot("bad_options");
  });
});

Deno.test({
  name: "replication: proto_version below 1 is 0A000 with a fix that does not say 'lower'",

  fn: async () => {
    const server = await primaryServer();
    await withConnection(
      connectOptions(server, { replication: "database" }),
      async (connection) => {
        await connection.createReplicationSlot("proto_low", { snapshot: "nothing" });
        try {
          const error = await failure(() =>
            connection.query(
              "START_REPLICATION SLOT proto_low LOGICAL 0/0 (proto_version '0', publication_names 'pub')",
            )
          );
          assert.ok(error instanceof PostgresError && error.code === "0A000", error.message);
          assert.ok(error.message.includes("or higher"), error.message);
          assert.ok(!error.fix?.includes("lower"), error.message);
        } finally {
          await connection.dropReplicationSlot("proto_low");
        }
      },
    );
  },
});

Deno.test("replication: after stream.stop() (CopyDone) the connection runs DROP_REPLICATION_SLOT", async () => {
  const server = await primaryServer();
  await withConnection(connectOptions(server, { replication: "database" }), async (connection) => {
    await connection.createReplicationSlot("stop_then_drop", { snapshot: "nothing" });
    const stream = await connection.startReplication({
      slot: "stop_then_drop",
      pgoutput: { protoVersion: 1, publicationNames: ["pub"] },
      statusIntervalMs: 500,
    });
    await server.psql("INSERT INTO items VALUES (1000, 'streamed')");
    const batch = await stream.nextBatch();
    assert.ok(batch !== null && batch.length > 0, "something was streamed");
    assert.equal(await slotRow(server, "stop_then_drop"), "logical|pgoutput|f|t");

    await stream.stop();
    assert.equal(stream.copyDoneReceived, true, "the server answered our CopyDone with its own");
    assert.equal(await stream.nextBatch(), null, "the stream has ended");
    assert.equal(connection.closed, false);

    await connection.dropReplicationSlot("stop_then_drop");
    assert.equal(await slotRow(server, "stop_then_drop"), "");
    assert.equal((await connection.identifySystem()).dbName, "postgres");
  });
});

// ---------------------------------------------------------------------------------------------
// Certificate verification against the host named, and the root certificates trusted

/**
 * Re-issues `server`'s certificate from its CA with `subjectAltName` (e.g. `IP:127.0.0.1`),
 * reloads, and waits until the server presents it.
 */
async function reissueCertificate(server: PgServer, subjectAltName: string): Promise<void> {
  const expected = subjectAltName.replace("IP:", "IP Address:");
  await installCertificate(server, [
    `printf 'subjectAltName=${subjectAltName}\\n' > san.ext`,
    "openssl req -new -newkey rsa:2048 -nodes -keyout server.key -out san.csr -subj /CN=spillway-test",
    "openssl x509 -req -in san.csr -CA ca.crt -CAkey ca.key -set_serial 0x5a4e -days 2 " +
    "-extfile san.ext -out server.crt",
  ], (der) => new X509Certificate(der).subjectAltName === expected);
}

Deno.test("tls: verify-full checks an IP host against the certificate's IP SANs, not localhost's name", async () => {
  await using server = await startPostgres({ tls: true });
  const ca = await Deno.readTextFile(server.caCertFile!);
  const verifyFull = (host: string) =>
    connectOptions(server, { host, sslmode: "verify-full", sslrootcert: ca });

  await reissueCertificate(server, "DNS:localhost");
  const refused = await failure(() => PgConnection.connect(verifyFull("127.0.0.1")));
  assert.ok(refused instanceof ConnectionError, String(refused));
  assert.match(refused.message, /sslmode=verify-full/);
  assert.match(refused.message, /127\.0\.0\.1/);
  await withConnection(verifyFull("localhost"), async (c) => assert.ok(await serverSeesSsl(c)));

  await reissueCertificate(server, "IP:127.0.0.1");
  await withConnection(verifyFull("127.0.0.1"), async (c) => assert.ok(await serverSeesSsl(c)));
  const byName = await failure(() => PgConnection.connect(verifyFull("localhost")));
  assert.ok(byName instanceof ConnectionError, String(byName));
});

/**
 * Connects in a child process whose HOME is `home` and says how it went: HOME is the whole
 * test process's, which test modules running in parallel share.
 */
async function connectWithHome(
  home: string,
  options: ConnectOptions,
): Promise<{ ssl?: boolean; error?: { class: string; message: string } }> {
  const probe = fileURLToPath(new URL("./testdata/connect_probe.ts", import.meta.url));
  // Deno's cache stays where it is (it defaults to one under HOME).
  const cache = Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? home, ".cache", "deno");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", probe, JSON.stringify(options)],
    env: { HOME: home, DENO_DIR: cache },
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(text);
}

Deno.test("tls: verify-ca and verify-full without sslrootcert use ~/.postgresql/root.crt, refuse without it, and trust public roots only with sslrootcert=system", async () => {
  const server = await primaryServer();
  const home = await Deno.makeTempDir({ prefix: "spillway-home-" });
  try {
    for (const sslmode of ["verify-ca", "verify-full"] as const) {
      const options = connectOptions(server, { host: "localhost", sslmode });
      const missing = await connectWithHome(home, options);
      assert.equal(missing.error?.class, "ConfigError", JSON.stringify(missing));
      assert.match(missing.error.message, /root\.crt does not exist/);
      assert.match(missing.error.message, /sslrootcert=system/);
      assert.ok(missing.error.message.includes(join(home, ".postgresql", "root.crt")));

      // The harness CA is no public root: system roots refuse the server.
      const system = await connectWithHome(home, { ...options, sslrootcert: "system" });
      assert.equal(system.error?.class, "ConnectionError", JSON.stringify(system));
      assert.match(system.error.message, /TLS handshake/);
    }
    await Deno.mkdir(join(home, ".postgresql"));
    await Deno.copyFile(server.caCertFile!, join(home, ".postgresql", "root.crt"));
    const trusted = await connectWithHome(
      home,
      connectOptions(server, { host: "localhost", sslmode: "verify-full" }),
    );
    assert.deepEqual(trusted, { ssl: true });
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("tls: sslrootcert=system in a URL is the word, not a file to read", () => {
  const options = parseConnectionUrl("postgres://u@h/db?sslmode=verify-full&sslrootcert=system");
  assert.equal(options.sslrootcert, "system");
});

// ---------------------------------------------------------------------------------------------
// Passwords without a command line: libpq's environment and password file

Deno.test("auth: the password comes from ?password=, PGPASSWORD or the password file, never needed on the command line", async () => {
  const server = await primaryServer();
  const role = ROLES["scram-sha-256"];
  const base = `postgres://${role.user}@127.0.0.1:${server.port}/postgres?sslmode=disable`;
  const whoami = async (url: string, env: Record<string, string>) => {
    const connection = await PgConnection.connect(parseConnectionUrl(url, env));
    try {
      return (await connection.queryObjects("SELECT current_user AS u"))[0]?.u;
    } finally {
      await connection.close();
    }
  };
  assert.equal(
    await whoami(`${base}&password=${encodeURIComponent(role.password)}`, {}),
    role.user,
  );
  assert.equal(await whoami(base, { PGPASSWORD: role.password }), role.user);

  const dir = await Deno.makeTempDir({ prefix: "spillway-pgpass-" });
  try {
    const passfile = join(dir, "pgpass");
    await Deno.writeTextFile(
      passfile,
      [
        "# host:port:database:user:password",
        `otherhost:*:*:${role.user}:wrong`,
        `127.0.0.1:${server.port}:*:${role.user}:${role.password.replaceAll(":", "\\:")}`,
      ].join("\n"),
    );
    await Deno.chmod(passfile, 0o600);
    assert.equal(await whoami(base, { PGPASSFILE: passfile }), role.user);
    await Deno.chmod(passfile, 0o644);
    const open = await failure(() => whoami(base, { PGPASSFILE: passfile }));
    assert.ok(open instanceof ConfigError, String(open));
    assert.match(open.message, /chmod 600/);
    // The rest of libpq's variables fill what the URL leaves out.
    const options = parseConnectionUrl("postgres://", {
      PGHOST: "127.0.0.1",
      PGPORT: String(server.port),
      PGUSER: role.user,
      PGDATABASE: "postgres",
      PGSSLMODE: "disable",
      PGAPPNAME: "from-env",
      PGPASSWORD: role.password,
    });
    await withConnection(options, async (connection) => {
      const [row] = await connection.queryObjects(
        "SELECT current_user AS u, current_setting('application_name') AS app",
      );
      assert.deepEqual(row, { u: role.user, app: "from-env" });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auth: a URL's password is hidden in every message, whatever it holds", () => {
  for (
    const [url, secret] of [
      ["postgres://app:p@ss@127.0.0.1:1/x?sslmode=bogus", "p@ss"],
      ["postgres://us@er:hunter2@127.0.0.1:1/x?sslmode=bogus", "hunter2"],
      ["postgres://app@127.0.0.1:1/x?password=hunter2&sslmode=bogus", "hunter2"],
      ["postgres://app:50%off@127.0.0.1:1/x", "50%off"],
    ] as const
  ) {
    const error = failureSync(() => parseConnectionUrl(url));
    assert.ok(error instanceof ConfigError, String(error));
    assert.ok(!error.message.includes(secret), error.message);
  }
});

// ---------------------------------------------------------------------------------------------
// Silent and hostile servers during the start-up

Deno.test("startup: a server that accepts and never answers fails at connect_timeout, for SSLRequest and startup alike", async () => {
  await using silent = fakeServer(() => new Promise(() => {}));
  for (const sslmode of ["disable", "prefer"] as const) {
    const error = await within(
      failure(() =>
        PgConnection.connect(fakeOptions(silent.port, { sslmode, connectTimeoutMs: 300 }))
      ),
      20_000,
    );
    assert.ok(error instanceof ConnectionError, String(error));
    assert.match(error.message, /did not finish the start-up within 300 ms/);
    assert.match(error.message, /connect_timeout/);
  }
});

Deno.test("startup: a server flooding notices during the start-up fails at connect_timeout", async () => {
  const notice = new Uint8Array([0x4e, 0, 0, 0, 12, 0x4d, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0, 0]);
  await using flood = fakeServer(async (conn) => {
    for (;;) await conn.write(notice);
  });
  const error = await within(
    failure(() => PgConnection.connect(fakeOptions(flood.port, { connectTimeoutMs: 300 }))),
    20_000,
  );
  assert.ok(error instanceof ConnectionError, String(error));
  assert.match(error.message, /did not finish the start-up/);
});

Deno.test("startup: the stop signal ends a start-up the server never answers", async () => {
  await using silent = fakeServer(() => new Promise(() => {}));
  const stop = new AbortController();
  setTimeout(() => stop.abort(), 100);
  const error = await within(
    failure(() =>
      PgConnection.connect(fakeOptions(silent.port, { connectTimeoutMs: 60_000 }), {
        signal: stop.signal,
      })
    ),
    20_000,
  );
  assert.ok(error instanceof ConnectionError, String(error));
  assert.match(error.message, /was stopped/);
  assert.equal(error.retriable, false);
});

Deno.test("startup: a stop signal that comes while the socket is still connecting ends the start-up too", async () => {
  await using silent = fakeServer(() => new Promise(() => {}));
  const stop = new AbortController();
  const connecting = failure(() =>
    PgConnection.connect(fakeOptions(silent.port, { connectTimeoutMs: 60_000 }), {
      signal: stop.signal,
    })
  );
  // The call has begun and awaits the TCP connect: the signal comes before the start-up's wait.
  stop.abort();
  const error = await within(connecting, 10_000);
  assert.ok(error instanceof ConnectionError, String(error));
  assert.match(error.message, /was stopped/);
});

Deno.test("startup: connect_timeout and PGCONNECT_TIMEOUT set the deadline in seconds", () => {
  assert.equal(parseConnectionUrl("postgres://h/d?connect_timeout=2.5").connectTimeoutMs, 2500);
  assert.equal(
    parseConnectionUrl("postgres://h/d", { PGCONNECT_TIMEOUT: "7" }).connectTimeoutMs,
    7000,
  );
  assert.throws(
    () => parseConnectionUrl("postgres://h/d?connect_timeout=soon"),
    /connect_timeout "soon"/,
  );
});

Deno.test("auth policy: require_auth refuses a method before sending anything for it, and refuses no authentication", async () => {
  const server = await primaryServer();
  const url = (role: { user: string; password: string }, query: string) =>
    `postgres://${role.user}:${
      encodeURIComponent(role.password)
    }@127.0.0.1:${server.port}/postgres?sslmode=disable&${query}`;
  const cleartext = await failure(() =>
    PgConnection.connect(parseConnectionUrl(url(ROLES.password, "require_auth=scram-sha-256")))
  );
  assert.ok(cleartext instanceof ConfigError, String(cleartext));
  assert.match(
    cleartext.message,
    /asks for a password in clear text, and require_auth allows only scram-sha-256; nothing was sent/,
  );
  const md5 = await failure(() =>
    PgConnection.connect(parseConnectionUrl(url(ROLES.md5, "require_auth=!md5,!password")))
  );
  assert.ok(md5 instanceof ConfigError || md5 instanceof PostgresError, String(md5));
  const trusted = await failure(() =>
    PgConnection.connect(parseConnectionUrl(url(ROLES.trust, "require_auth=scram-sha-256")))
  );
  assert.ok(trusted instanceof ConnectionError, String(trusted));
  assert.match(trusted.message, /without authentication/);
  await withConnection(
    parseConnectionUrl(url(ROLES["scram-sha-256"], "require_auth=scram-sha-256")),
    async (connection) => {
      const [row] = await connection.queryObjects("SELECT current_user AS u");
      assert.equal(row?.u, ROLES["scram-sha-256"].user);
    },
  );
});

Deno.test("auth policy: channel_binding=require logs in only with SCRAM-SHA-256-PLUS over TLS", async () => {
  const server = await primaryServer();
  const role = ROLES["scram-sha-256"];
  const base = `postgres://${role.user}:${
    encodeURIComponent(role.password)
  }@127.0.0.1:${server.port}/postgres?channel_binding=require`;
  const plain = await failure(() =>
    PgConnection.connect(parseConnectionUrl(`${base}&sslmode=disable`))
  );
  assert.ok(plain instanceof ConfigError, String(plain));
  assert.match(plain.message, /channel_binding=require/);
  await recordScramMechanisms(async (mechanisms) => {
    await withConnection(parseConnectionUrl(`${base}&sslmode=require`), async (connection) => {
      assert.equal(await serverSeesSsl(connection), true);
    });
    assert.equal(mechanisms.at(-1), "SCRAM-SHA-256-PLUS");
  });
});

Deno.test("auth policy: a server that ends SCRAM without proving it knows the password is refused", async () => {
  const sasl = backendFrame("R", authenticationBody(10, utf8("SCRAM-SHA-256\0\0")));
  const ok = backendFrame("R", authenticationBody(0));
  const ready = backendFrame("Z", utf8("I"));
  await using impostor = fakeServer(async (conn) => {
    const buffer = new Uint8Array(4096);
    await conn.read(buffer); // the startup packet
    await conn.write(sasl);
    await conn.read(buffer); // SASLInitialResponse: the impostor skips the exchange
    await conn.write(concat(ok, ready));
    await new Promise(() => {});
  });
  const error = await within(
    failure(() =>
      PgConnection.connect(
        fakeOptions(impostor.port, { password: "secret", connectTimeoutMs: 5_000 }),
      )
    ),
    20_000,
  );
  assert.ok(error instanceof ConnectionError, String(error));
  assert.match(error.message, /ended SCRAM without proving that it knows the password/);
  assert.equal(error.retriable, false);
});

// ---------------------------------------------------------------------------------------------

Deno.test("teardown: stop the shared servers", async () => {
  const servers = await Promise.all([primary, pg14].filter((p) => p !== undefined));
  await Promise.all(servers.map((server) => server[Symbol.asyncDispose]()));
});

function failureSync(body: () => unknown): Error {
  try {
    body();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error");
}
