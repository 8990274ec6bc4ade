/**
 * `spillway check` against real servers: a good setup has no errors, and each problem
 * the check knows (wal_level, missing tables, unusable replica identities, key columns,
 * the publication, the role, the slot, failover, transform files) is an error or a
 * warning with its fix. Also `checkCommand`'s output and exit codes.
 *
 * One PostgreSQL 17 server (PRIMARY_VERSION) carries most tests; a PostgreSQL 14 server
 * covers the version-dependent queries and, last, wal_level = replica. Each test uses
 * its own database and slot names.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { checkPipeline, type Finding, formatFindings } from "../check/mod.ts";
import { checkCommand } from "../cli/check.ts";
import { slotsCommand } from "../cli/slots.ts";
import { parsePipelineConfig, type PipelineConfig } from "../config/mod.ts";
import { type PgServer, PRIMARY_VERSION } from "../testing/embedded_postgres.ts";
import { PgConnection } from "../postgres/connection.ts";
import { connectOptions, sharedServers } from "./_replication.ts";

// ---------------------------------------------------------------------------------------------
// Servers and helpers

/** Shared servers with the roles the tests log in as. */
const { server, stopAll } = sharedServers(`
  CREATE ROLE app LOGIN REPLICATION;
  CREATE ROLE no_repl LOGIN;
`);

/** A fresh database owned by `owner`, with `sql` run in it as that owner. */
async function database(pg: PgServer, name: string, sql: string, owner = "app"): Promise<void> {
  await pg.psql(`CREATE DATABASE ${name} OWNER ${owner}`);
  if (sql !== "") await pg.psql(`SET ROLE ${owner};\n${sql}`, { database: name });
}

interface PipelineOptions {
  database: string;
  user?: string;
  slot: string;
  publication: string;
  /** Extra lines of the source section. */
  source?: string[];
  /** Lines of the tables section. */
  tables: string[];
  port?: number;
}

function pipelineYaml(pg: PgServer, options: PipelineOptions): string {
  let url = pg.url({ user: options.user ?? "app", database: options.database });
  if (options.port !== undefined) url = url.replace(`:${pg.port}/`, `:${options.port}/`);
  return [
    "source:",
    `  url: "${url}"`,
    `  slot: ${options.slot}`,
    `  publication: ${options.publication}`,
    ...(options.source ?? []).map((line) => `  ${line}`),
    "tables:",
    ...options.tables.map((line) => `  ${line}`),
    "sinks: [stdout: {}]",
  ].join("\n");
}

function pipeline(pg: PgServer, options: PipelineOptions): PipelineConfig {
  return parsePipelineConfig(pipelineYaml(pg, options), { file: "test.yaml", env: {} });
}

/** The findings about `subject` (exact, or a pattern) at `level`. */
function findAll(findings: Finding[], subject: string | RegExp, level?: Finding["level"]) {
  return findings.filter((f) =>
    (typeof subject === "string" ? f.subject === subject : subject.test(f.subject)) &&
    (level === undefined || f.level === level)
  );
}

/** Asserts one finding matches and returns it; the message shows all findings otherwise. */
function expectFinding(
  findings: Finding[],
  expected: { level: Finding["level"]; subject: string | RegExp; message?: RegExp; fix?: RegExp },
): Finding {
  const found = findAll(findings, expected.subject, expected.level).find((f) =>
    (expected.message === undefined || expected.message.test(f.message)) &&
    (expected.fix === undefined || expected.fix.test(f.fix ?? ""))
  );
  assert.ok(
    found,
    `Expected ${expected.level} ${expected.subject} ${expected.message ?? ""} ${
      expected.fix ?? ""
    } in:\n${formatFindings(findings, { color: false })}`,
  );
  return found;
}

function assertNoErrors(findings: Finding[]): void {
  const errors = findings.filter((f) => f.level === "error");
  assert.deepEqual(errors, [], formatFindings(findings, { color: false }));
}

async function dropSlots(pg: PgServer, prefix: string): Promise<void> {
  await pg.psql(
    `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
      WHERE slot_name LIKE '${prefix}%' AND NOT active`,
  );
}

const GOOD_TABLES = `
  CREATE TABLE orders (id int PRIMARY KEY, note text);
  CREATE TABLE items (order_id int, line int, sku text, PRIMARY KEY (order_id, line));
  CREATE TABLE audit (at timestamptz, what text);
  ALTER TABLE audit REPLICA IDENTITY FULL;
`;

// ---------------------------------------------------------------------------------------------
// A good setup, on the primary version and on PostgreSQL 14

for (const version of [PRIMARY_VERSION, 14] as const) {
  Deno.test(`check (PG${version}): a good setup has no errors; existing publication and slot are described`, async () => {
    const pg = await server(version);
    await database(
      pg,
      "good",
      `${GOOD_TABLES}
       CREATE PUBLICATION good_pub FOR TABLE orders, items, audit;`,
    );
    await pg.psql("SELECT pg_create_logical_replication_slot('good_slot', 'pgoutput')", {
      database: "good",
    });
    try {
      await pg.psql("INSERT INTO orders VALUES (1, 'first')", { database: "good" });
      const findings = await checkPipeline(pipeline(pg, {
        database: "good",
        slot: "good_slot",
        publication: "good_pub",
        source: ["create_slot: false", "create_publication: false"],
        tables: ["public.orders: { key: [id] }", "'public.*': {}"],
      }));
      assertNoErrors(findings);
      expectFinding(findings, {
        level: "ok",
        subject: "connection",
        message: new RegExp(`database "good", as "app" \\(PostgreSQL ${version}\\.`),
      });
      expectFinding(findings, { level: "ok", subject: "replication connection" });
      expectFinding(findings, { level: "ok", subject: "wal_level", message: /^logical$/ });
      expectFinding(findings, { level: "ok", subject: "role", message: /"app" has REPLICATION/ });
      expectFinding(findings, {
        level: "ok",
        subject: "max_replication_slots",
        message: /^\d+ of 20 in use$/,
      });
      expectFinding(findings, { level: "ok", subject: "max_wal_senders", message: /of 20 in use/ });
      expectFinding(findings, {
        level: "warn",
        subject: "max_slot_wal_keep_size",
        message: /unlimited/,
        fix: /ALTER SYSTEM SET max_slot_wal_keep_size/,
      });
      expectFinding(findings, { level: "ok", subject: "wal_sender_timeout", message: /^1m / });
      expectFinding(findings, {
        level: "ok",
        subject: 'publication "good_pub"',
        message: /^exists, covers 3 tables \(public\.audit, public\.items, public\.orders\)/,
      });
      expectFinding(findings, {
        level: "ok",
        subject: "replica identity",
        message: /3 tables carry a key.*REPLICA IDENTITY FULL.*primary key \(order_id, line\)/,
      });
      expectFinding(findings, {
        level: "ok",
        subject: 'slot "good_slot"',
        message: /^exists \(pgoutput, database "good"\): .* behind, wal_status reserved/,
      });
      expectFinding(findings, { level: "ok", subject: 'tables "public.*"', message: /3 tables/ });
    } finally {
      await dropSlots(pg, "good_");
    }
  });
}

Deno.test("check (PG14): failover: true is an error before PostgreSQL 17", async () => {
  const pg = await server(14);
  await database(pg, "failover14", "CREATE TABLE t (id int PRIMARY KEY);");
  const findings = await checkPipeline(pipeline(pg, {
    database: "failover14",
    slot: "failover14_slot",
    publication: "failover14_pub",
    source: ["failover: true"],
    tables: ["public.t: {}"],
  }));
  expectFinding(findings, {
    level: "error",
    subject: "failover",
    message: /PostgreSQL 14 has no failover slots \(17\+\)/,
    fix: /failover: false/,
  });
});

Deno.test("check (PG17): failover: true reports synchronized_standby_slots and what a standby needs", async () => {
  const pg = await server();
  await database(pg, "failover17", "CREATE TABLE t (id int PRIMARY KEY);");
  const findings = await checkPipeline(pipeline(pg, {
    database: "failover17",
    slot: "failover17_slot",
    publication: "failover17_pub",
    source: ["failover: true"],
    tables: ["public.t: {}"],
  }));
  assertNoErrors(findings);
  expectFinding(findings, {
    level: "warn",
    subject: "failover",
    message: /^synchronized_standby_slots is empty/,
    fix: /ALTER SYSTEM SET synchronized_standby_slots/,
  });
  expectFinding(findings, {
    level: "ok",
    subject: "failover",
    message: /sync_replication_slots = off.*needs sync_replication_slots = on.*primary_slot_name/,
  });
  expectFinding(findings, {
    level: "ok",
    subject: 'slot "failover17_slot"',
    message: /will be created \(pgoutput, failover\)/,
  });
});

// ---------------------------------------------------------------------------------------------
// Tables, replica identity and keys

Deno.test("check: a missing table is an error naming the entry's line; a glob without tables warns", async () => {
  const pg = await server();
  await database(pg, "missing", "CREATE TABLE orders (id int PRIMARY KEY);");
  const findings = await checkPipeline(pipeline(pg, {
    database: "missing",
    slot: "missing_slot",
    publication: "missing_pub",
    tables: [
      "public.orders: {}",
      "public.invoices: {}",
      "'public.\"Orders\"': {}",
      "'sales.*': {}",
    ],
  }));
  expectFinding(findings, {
    level: "error",
    subject: "table public.invoices",
    message: /^does not exist in database "missing"$/,
    fix: /create it, or fix or remove the tables entry public\.invoices at test\.yaml:7/,
  });
  expectFinding(findings, {
    level: "error",
    subject: 'table public."Orders"',
    message: /names are case-sensitive; public\.orders exists/,
  });
  expectFinding(findings, {
    level: "warn",
    subject: 'tables "sales.*"',
    message: /match no table/,
    fix: /test\.yaml:9/,
  });
  // The publication would be created for what exists.
  expectFinding(findings, {
    level: "ok",
    subject: 'publication "missing_pub"',
    message: /will be created FOR TABLE public\.orders$/,
  });
});

Deno.test("check: REPLICA IDENTITY NOTHING and a table without primary key are errors with the fix", async () => {
  const pg = await server();
  await database(
    pg,
    "identity",
    `CREATE TABLE nopk (a int, b text);
     CREATE TABLE nothing (id int PRIMARY KEY);
     ALTER TABLE nothing REPLICA IDENTITY NOTHING;
     CREATE TABLE full_row (a int);
     ALTER TABLE full_row REPLICA IDENTITY FULL;
     CREATE TABLE by_index (a int NOT NULL, b int NOT NULL, c text);
     CREATE UNIQUE INDEX by_index_ab ON by_index (a, b);
     ALTER TABLE by_index REPLICA IDENTITY USING INDEX by_index_ab;`,
  );
  const findings = await checkPipeline(pipeline(pg, {
    database: "identity",
    slot: "identity_slot",
    publication: "identity_pub",
    tables: ["'public.*': {}"],
  }));
  expectFinding(findings, {
    level: "error",
    subject: "table public.nopk",
    message: /no primary key and REPLICA IDENTITY DEFAULT.*UPDATE and DELETE .* fail .*55000/,
    fix: /ALTER TABLE public\.nopk ADD PRIMARY KEY.*ALTER TABLE public\.nopk REPLICA IDENTITY FULL/,
  });
  expectFinding(findings, {
    level: "error",
    subject: "table public.nothing",
    message: /^REPLICA IDENTITY NOTHING/,
    fix: /ALTER TABLE public\.nothing REPLICA IDENTITY FULL/,
  });
  expectFinding(findings, {
    level: "ok",
    subject: "replica identity",
    message:
      /2 tables carry a key.*public\.by_index \(index \(a, b\)\).*public\.full_row \(REPLICA IDENTITY FULL\)/,
  });
  assert.equal(findAll(findings, /^table /, "error").length, 2);
});

Deno.test("check: a key column that does not exist is an error; a key outside the identity warns", async () => {
  const pg = await server();
  await database(
    pg,
    "keys",
    `CREATE TABLE orders (id int PRIMARY KEY, region text, note text);
     CREATE TABLE lines (id int PRIMARY KEY, sku text);`,
  );
  const findings = await checkPipeline(pipeline(pg, {
    database: "keys",
    slot: "keys_slot",
    publication: "keys_pub",
    tables: ["public.orders: { key: [id, regoin] }", "public.lines: { key: [id, sku] }"],
  }));
  expectFinding(findings, {
    level: "error",
    subject: "table public.orders",
    message: /has no column "regoin" for its key \(columns: id, region, note\)/,
    fix: /fix "key" of the entry "public\.orders" in test\.yaml/,
  });
  expectFinding(findings, {
    level: "warn",
    subject: "table public.lines",
    message: /key \(id, sku\) differs from the replica identity, primary key \(id\).*lacks sku/,
    fix: /REPLICA IDENTITY FULL/,
  });
});

// ---------------------------------------------------------------------------------------------
// Publication, role, slot

Deno.test("check: the publication: missing with create_publication false is an error; creation rights are checked", async () => {
  const pg = await server();
  await database(pg, "pubs", "CREATE TABLE orders (id int PRIMARY KEY);");
  await pg.psql("CREATE TABLE not_mine (id int PRIMARY KEY)", { database: "pubs" });
  const base = { database: "pubs", slot: "pubs_slot", publication: "pubs_pub" };

  let findings = await checkPipeline(pipeline(pg, {
    ...base,
    source: ["create_publication: false"],
    tables: ["public.orders: {}"],
  }));
  expectFinding(findings, {
    level: "error",
    subject: 'publication "pubs_pub"',
    message: /does not exist, and source\.create_publication is false/,
    fix: /CREATE PUBLICATION "pubs_pub" FOR TABLE public\.orders; or set create_publication: true/,
  });

  findings = await checkPipeline(pipeline(pg, { ...base, tables: ["'*': {}"] }));
  expectFinding(findings, {
    level: "error",
    subject: 'publication "pubs_pub"',
    message: /FOR ALL TABLES .* needs a superuser, and "app" is not one/,
  });

  findings = await checkPipeline(pipeline(pg, { ...base, tables: ["'public.*': {}"] }));
  expectFinding(findings, {
    level: "error",
    subject: 'publication "pubs_pub"',
    message: /needs ownership of each table, and "app" does not own public\.not_mine/,
  });

  findings = await checkPipeline(pipeline(pg, { ...base, tables: ["public.orders: {}"] }));
  assertNoErrors(findings);
  expectFinding(findings, {
    level: "ok",
    subject: 'publication "pubs_pub"',
    message: /will be created FOR TABLE public\.orders/,
  });

  // An existing publication that leaves out a configured table.
  await pg.psql("CREATE PUBLICATION pubs_pub FOR TABLE orders", { database: "pubs" });
  findings = await checkPipeline(
    pipeline(pg, { ...base, user: "postgres", tables: ["'public.*': {}"] }),
  );
  expectFinding(findings, {
    level: "warn",
    subject: 'publication "pubs_pub"',
    message: /does not cover 1 configured table \(public\.not_mine\)/,
    fix: /ALTER PUBLICATION "pubs_pub" ADD TABLE public\.not_mine/,
  });
});

Deno.test("check: a role without REPLICATION is an error, and so is its replication connection", async () => {
  const pg = await server();
  await database(pg, "norepl", "CREATE TABLE t (id int PRIMARY KEY);", "no_repl");
  const findings = await checkPipeline(pipeline(pg, {
    database: "norepl",
    user: "no_repl",
    slot: "norepl_slot",
    publication: "norepl_pub",
    tables: ["public.t: {}"],
  }));
  expectFinding(findings, {
    level: "error",
    subject: "role",
    message: /"no_repl" has neither REPLICATION nor superuser/,
    fix: /ALTER ROLE "no_repl" WITH REPLICATION/,
  });
  expectFinding(findings, {
    level: "error",
    subject: "replication connection",
    message: /42501/,
    fix: /ALTER ROLE "no_repl" WITH REPLICATION/,
  });
});

Deno.test("check: the slot: missing with create_slot false, another database, in use by another reader", async () => {
  const pg = await server();
  await database(
    pg,
    "slots",
    "CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION slots_pub FOR TABLE t;",
  );
  await database(pg, "slots_other", "");
  await pg.psql("SELECT pg_create_logical_replication_slot('slots_elsewhere', 'pgoutput')", {
    database: "slots_other",
  });
  const base = { database: "slots", publication: "slots_pub", tables: ["public.t: {}"] };
  try {
    let findings = await checkPipeline(pipeline(pg, {
      ...base,
      slot: "slots_missing",
      source: ["create_slot: false"],
    }));
    expectFinding(findings, {
      level: "error",
      subject: 'slot "slots_missing"',
      message: /does not exist, and source\.create_slot is false/,
      fix: /pg_create_logical_replication_slot\('slots_missing', 'pgoutput'\)/,
    });

    findings = await checkPipeline(pipeline(pg, { ...base, slot: "slots_elsewhere" }));
    expectFinding(findings, {
      level: "error",
      subject: 'slot "slots_elsewhere"',
      message: /belongs to database "slots_other", not "slots"/,
    });

    // A reader streaming from a slot of this database.
    const reader = await PgConnection.connect(
      connectOptions(pg, { database: "slots", replication: "database" }),
    );
    try {
      await reader.createReplicationSlot("slots_busy", { snapshot: "nothing" });
      const stream = await reader.startReplication({
        slot: "slots_busy",
        pgoutput: { protoVersion: 1, publicationNames: ["slots_pub"] },
      });
      findings = await checkPipeline(pipeline(pg, { ...base, slot: "slots_busy" }));
      expectFinding(findings, {
        level: "warn",
        subject: 'slot "slots_busy"',
        message: new RegExp(`in use by PID ${reader.backendPid}; .*55006`),
        fix: new RegExp(`pg_terminate_backend\\(${reader.backendPid}\\)`),
      });
      expectFinding(findings, { level: "ok", subject: "max_wal_senders", message: /^1 of 20/ });
      await stream.stop();
    } finally {
      await reader.close();
    }
  } finally {
    await dropSlots(pg, "slots_");
  }
});

Deno.test("check: a slot lost to max_slot_wal_keep_size is an error: drop and recreate", async () => {
  const pg = await server();
  await database(
    pg,
    "lost",
    "CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION lost_pub FOR TABLE t;",
  );
  await pg.psql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'; SELECT pg_reload_conf();");
  try {
    await pg.psql("SELECT pg_create_logical_replication_slot('lost_slot', 'pgoutput')", {
      database: "lost",
    });
    // Three WAL segments past the slot, then a checkpoint, invalidate it.
    for (let i = 0; i < 3; i++) {
      await pg.psql(`INSERT INTO t VALUES (${i}); SELECT pg_switch_wal();`, { database: "lost" });
    }
    await pg.psql("CHECKPOINT");
    const findings = await checkPipeline(pipeline(pg, {
      database: "lost",
      slot: "lost_slot",
      publication: "lost_pub",
      tables: ["public.t: {}"],
    }));
    const lost = expectFinding(findings, {
      level: "error",
      subject: 'slot "lost_slot"',
      message: /invalidated \(wal_status lost, wal_removed\)/,
      fix:
        /^drop it \(spillway slots drop postgres:\/\/app@127\.0\.0\.1:\d+\/lost lost_slot\), .*max_slot_wal_keep_size/,
    });
    expectFinding(findings, { level: "ok", subject: "max_slot_wal_keep_size", message: /^1 MB/ });
    // The command in the fix works as it is written (answering its question with yes).
    const command = /\(spillway slots (drop \S+ \S+)\)/.exec(lost.fix ?? "")![1]!.split(" ");
    const errors: string[] = [];
    const code = await slotsCommand(command, {
      stdout: () => {},
      stderr: (line) => errors.push(line),
      interactive: true,
      confirm: () => Promise.resolve(true),
    });
    assert.equal(code, 0, errors.join("\n"));
    assert.equal(
      await pg.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'lost_slot'"),
      "0",
    );
  } finally {
    await pg.psql("ALTER SYSTEM RESET max_slot_wal_keep_size; SELECT pg_reload_conf();");
    await dropSlots(pg, "lost_");
  }
});

Deno.test("check: transform files must exist; a status_interval above a third of wal_sender_timeout is clamped, not warned about", async () => {
  const pg = await server();
  await database(
    pg,
    "files",
    "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE u (id int PRIMARY KEY);",
  );
  const dir = await Deno.makeTempDir({ prefix: "spillway_check_" });
  try {
    const present = join(dir, "t.ts");
    await Deno.writeTextFile(present, "export default {};\n");
    const findings = await checkPipeline(pipeline(pg, {
      database: "files",
      slot: "files_slot",
      publication: "files_pub",
      source: ["status_interval: 40s"],
      tables: [`public.t: { transform: ${present} }`, `public.u: { transform: ${dir}/nope.ts }`],
    }));
    expectFinding(findings, {
      level: "error",
      subject: "transform",
      message: new RegExp(
        `^"${dir}/nope\\.ts" \\(tables\\."public\\.u" at test\\.yaml:\\d+\\) does not exist$`,
      ),
      fix: /create the module, or fix "transform"/,
    });
    expectFinding(findings, {
      level: "ok",
      subject: "transform",
      message: /^1 transform file found$/,
    });
    // The source sends status updates within a third of wal_sender_timeout (and 10 s).
    expectFinding(findings, {
      level: "ok",
      subject: "wal_sender_timeout",
      message: /^1m; status updates every 10s: source\.status_interval \(40s\) is clamped/,
    });
    assert.deepEqual(findAll(findings, "wal_sender_timeout", "warn"), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// checkCommand

Deno.test("checkCommand: exit codes 0, 1 and 2 with text and JSON output", async () => {
  const pg = await server();
  await database(pg, "cli", "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE bare (a int);");
  const dir = await Deno.makeTempDir({ prefix: "spillway_check_" });
  const run = async (args: string[]) => {
    const stdout: string[] = [];
    const stderr: string[] = [];
    const code = await checkCommand(args, {
      stdout: (line) => stdout.push(line),
      stderr: (line) => stderr.push(line),
    });
    return { code, stdout: stdout.join("\n"), stderr: stderr.join("\n") };
  };
  try {
    const good = join(dir, "good.yaml");
    await Deno.writeTextFile(
      good,
      pipelineYaml(pg, {
        database: "cli",
        slot: "cli_slot",
        publication: "cli_pub",
        tables: ["public.t: {}"],
      }),
    );
    let result = await run([good]);
    assert.equal(result.code, 0, result.stdout);
    assert.match(result.stdout, /^ok {5}pipeline: ".*good\.yaml" is valid: pipeline "good"/);
    assert.match(result.stdout, /\nwarn {3}max_slot_wal_keep_size: is unlimited/);
    assert.match(result.stdout, /\n {7}fix: ALTER SYSTEM SET max_slot_wal_keep_size/);
    assert.match(result.stdout, /\n\n0 errors, 1 warning, \d+ ok$/);
    assert.ok(!result.stdout.includes("\x1b["));
    assert.equal(result.stderr, "");

    const bad = join(dir, "bad.yaml");
    await Deno.writeTextFile(
      bad,
      pipelineYaml(pg, {
        database: "cli",
        slot: "cli_slot",
        publication: "cli_pub",
        source: ["create_publication: false"],
        tables: ["public.bare: {}"],
      }),
    );
    result = await run([bad]);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stdout, /\nerror {2}table public\.bare: no primary key/);
    assert.match(result.stdout, /\nerror {2}publication "cli_pub": does not exist/);
    assert.match(result.stdout, /\n\n2 errors, 1 warning, \d+ ok$/);

    result = await run([bad, "--json"]);
    assert.equal(result.code, 1);
    const report = JSON.parse(result.stdout);
    assert.equal(report.pipeline, "bad");
    assert.equal(report.errors, 2);
    assert.equal(report.warnings, 1);
    assert.ok(
      report.findings.some((f: Finding) =>
        f.level === "error" && f.subject === "table public.bare" &&
        f.fix?.includes("REPLICA IDENTITY FULL")
      ),
    );

    // No server: one connection error, exit 1.
    const down = join(dir, "down.yaml");
    await Deno.writeTextFile(
      down,
      pipelineYaml(pg, {
        database: "cli",
        slot: "s",
        publication: "p",
        tables: ["public.t: {}"],
        port: 1,
      }),
    );
    result = await run([down]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /\nerror {2}connection: /);

    // Usage and configuration errors: exit 2, the config's message as it is.
    result = await run([]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^Usage: spillway check <pipeline\.yaml> \[--json\]/);
    result = await run([good, bad]);
    assert.equal(result.code, 2);
    result = await run(["--bogus", good]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--bogus/);
    result = await run([join(dir, "absent.yaml")]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^Cannot load pipeline ".*absent\.yaml": file not found/);
    const invalid = join(dir, "invalid.yaml");
    await Deno.writeTextFile(invalid, "source: {}\ntables: {}\nsinks: []\nqueu: {}\n");
    result = await run([invalid]);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /invalid\.yaml:4:1: unknown key "queu" at the top level; did you mean "queue"\?/,
    );
    assert.equal(result.stdout, "");
    result = await run(["--help"]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^spillway check <pipeline\.yaml> \[--json\]/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("formatFindings: colour only when asked", () => {
  const findings: Finding[] = [
    { level: "ok", subject: "a", message: "fine" },
    { level: "warn", subject: "b", message: "hmm", fix: "do x" },
    { level: "error", subject: "c", message: "bad", fix: "do y" },
  ];
  assert.equal(
    formatFindings(findings, { color: false }),
    [
      "ok     a: fine",
      "warn   b: hmm",
      "       fix: do x",
      "error  c: bad",
      "       fix: do y",
      "",
      "1 error, 1 warning, 1 ok",
    ].join("\n"),
  );
  const colored = formatFindings(findings, { color: true });
  assert.ok(colored.startsWith("\x1b[32mok\x1b[0m     a: fine\n"));
  assert.ok(colored.includes("\n\x1b[1;31merror\x1b[0m  c: bad\n"));
});

// ---------------------------------------------------------------------------------------------
// Last on the PostgreSQL 14 server: it restarts with wal_level = replica.

Deno.test("check (PG14): wal_level = replica is an error with the fix", async () => {
  const pg = await server(14);
  await database(pg, "walreplica", "CREATE TABLE t (id int PRIMARY KEY);");
  // A server with logical slots refuses to start with wal_level below logical.
  await pg.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots");
  await pg.reconfigure({ wal_level: "replica" });
  const findings = await checkPipeline(pipeline(pg, {
    database: "walreplica",
    slot: "walreplica_slot",
    publication: "walreplica_pub",
    tables: ["public.t: {}"],
  }));
  expectFinding(findings, {
    level: "error",
    subject: "wal_level",
    message: /^is "replica"; logical decoding needs "logical"$/,
    fix: /ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL/,
  });
  // A change that waits for the restart says so.
  await pg.psql("ALTER SYSTEM SET wal_level = logical; SELECT pg_reload_conf();");
  const pending = await checkPipeline(pipeline(pg, {
    database: "walreplica",
    slot: "walreplica_slot",
    publication: "walreplica_pub",
    tables: ["public.t: {}"],
  }));
  expectFinding(pending, {
    level: "error",
    subject: "wal_level",
    message: /waits for a restart/,
    fix: /restart PostgreSQL/,
  });
});

Deno.test("teardown: stop the shared servers", async () => {
  await stopAll();
});
