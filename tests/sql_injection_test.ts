/**
 * Hostile names against a real server whose database sets `standard_conforming_strings = off`
 * (where a backslash escapes a quote in an ordinary literal): Spillway's sessions pin the
 * setting, its literals are safe without the pin, names are checked before any statement,
 * and `spillway check` changes nothing.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkPipeline } from "../check/mod.ts";
import { parsePipelineConfig } from "../config/mod.ts";
import { ConfigError } from "../errors.ts";
import { quoteIdent, quoteLiteral } from "../postgres/sql.ts";
import { ReplicationSource } from "../source/replication_source.ts";
import type { PgServer } from "../testing/embedded_postgres.ts";
import { connectOptions, sharedServers, sqlConnection } from "./_replication.ts";

/** Closes a literal under `standard_conforming_strings = off` with plain quote doubling. */
const HOSTILE = "x\\'; DROP TABLE canary; --";

const { server, stopAll } = sharedServers(`
  CREATE DATABASE sqli;
  ALTER DATABASE sqli SET standard_conforming_strings = off;
`);

/** The server, with a fresh canary table in the database `sqli`. */
async function serverWithCanary(): Promise<PgServer> {
  const pg = await server();
  await pg.psql("DROP TABLE IF EXISTS canary; CREATE TABLE canary (id int PRIMARY KEY)", {
    database: "sqli",
  });
  return pg;
}

async function canaryExists(pg: PgServer): Promise<boolean> {
  const found = await pg.psql("SELECT to_regclass('public.canary') IS NOT NULL", {
    database: "sqli",
  });
  return found === "t";
}

Deno.test("sql: the database really reads backslashes in literals as escapes (the setup can be exploited)", async () => {
  const pg = await serverWithCanary();
  assert.equal(await pg.psql("SHOW standard_conforming_strings", { database: "sqli" }), "off");
});

Deno.test("sql: every Spillway session pins standard_conforming_strings = on", async () => {
  const pg = await serverWithCanary();
  await using connection = await sqlConnection(pg, { database: "sqli" });
  const [row] = await connection.queryObjects("SHOW standard_conforming_strings");
  assert.equal(row?.standard_conforming_strings, "on");
});

Deno.test("sql: quoteLiteral and quoteIdent keep hostile values values, even with the setting off", async () => {
  const pg = await serverWithCanary();
  await using connection = await sqlConnection(pg, { database: "sqli" });
  await connection.query("SET standard_conforming_strings = off");
  for (const value of [HOSTILE, "a\\b", "\\", "'\\'", "\\\\'", "it's", "é\\n"]) {
    const [row] = await connection.queryObjects(
      `SELECT ${quoteLiteral(value)} AS v, 1 AS ${quoteIdent(value)}`,
    );
    assert.equal(row?.v, value);
    assert.equal(row?.[value], "1");
  }
  await connection.query("SET standard_conforming_strings = on");
  const [row] = await connection.queryObjects(`SELECT ${quoteLiteral(HOSTILE)} AS v`);
  assert.equal(row?.v, HOSTILE);
  assert.ok(await canaryExists(pg), "the canary table was dropped");
});

Deno.test("sql: a hostile publication name reaches the server as a name (tail and run)", async () => {
  const pg = await serverWithCanary();
  const source = await ReplicationSource.open({
    connection: connectOptions(pg, { database: "sqli" }),
    slot: "sqli_pub_slot",
    createSlot: true,
    publication: HOSTILE,
    createPublication: true,
    reconnect: { maxAttempts: 1 },
  });
  await source.close();
  try {
    assert.ok(await canaryExists(pg), "the canary table was dropped");
    const names = await pg.psql("SELECT pubname FROM pg_publication", { database: "sqli" });
    assert.equal(names, HOSTILE);
  } finally {
    await pg.psql(
      `SELECT pg_drop_replication_slot('sqli_pub_slot'); DROP PUBLICATION ${quoteIdent(HOSTILE)}`,
      { database: "sqli" },
    );
  }
});

Deno.test("sql: a hostile slot name is refused before any statement: nothing is created", async () => {
  const pg = await serverWithCanary();
  const error = await ReplicationSource.open({
    connection: connectOptions(pg, { database: "sqli" }),
    slot: HOSTILE,
    createSlot: true,
    publication: "sqli_unused_pub",
    createPublication: true,
    reconnect: { maxAttempts: 1 },
  }).then(() => null, (error: unknown) => error);
  assert.ok(error instanceof ConfigError, String(error));
  assert.match(error.message, /slot names are 1 to 63 lower-case letters/);
  assert.ok(await canaryExists(pg), "the canary table was dropped");
  assert.equal(await pg.psql("SELECT count(*) FROM pg_publication", { database: "sqli" }), "0");
  assert.equal(await pg.psql("SELECT count(*) FROM pg_replication_slots"), "0");
});

Deno.test("sql: spillway check with a hostile publication changes nothing", async () => {
  const pg = await serverWithCanary();
  const config = parsePipelineConfig(
    [
      "source:",
      `  url: "${pg.url({ database: "sqli" })}"`,
      "  slot: sqli_check_slot",
      `  publication: ${JSON.stringify(HOSTILE)}`,
      "tables:",
      "  public.canary: {}",
      "sinks: [stdout: {}]",
    ].join("\n"),
    { file: "test.yaml", env: {} },
  );
  assert.equal(config.source.publication, HOSTILE);
  const findings = await checkPipeline(config);
  assert.ok(findings.length > 0);
  assert.ok(await canaryExists(pg), "the canary table was dropped");
  assert.equal(await pg.psql("SELECT count(*) FROM pg_publication", { database: "sqli" }), "0");
});

Deno.test("teardown: stop the shared servers", async () => {
  await stopAll();
});
