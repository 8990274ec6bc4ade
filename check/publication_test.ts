import assert from "node:assert/strict";
import { parsePipelineConfig } from "../config/mod.ts";
import type { DbTable, Publication } from "../postgres/catalog.ts";
import { tableKey } from "../postgres/catalog.ts";
import { pipeline, server } from "./_testing.ts";
import { checkPublication } from "./publication.ts";

function table(name: string, changes: Partial<DbTable> = {}): DbTable {
  return {
    schema: "public",
    table: name,
    qualified: `public.${name}`,
    kind: "r",
    identity: "d",
    persistence: "p",
    owned: true,
    columns: ["id"],
    primaryKey: ["id"],
    identityIndex: null,
    ...changes,
  };
}

const orders = table("orders");
const audit = table("audit", { primaryKey: null });
const scratch = table("scratch", { primaryKey: null, persistence: "u" });
const full = table("history", { primaryKey: null, identity: "f" });

function publication(all: boolean, operations: string[], tables: DbTable[] = []): Publication {
  return {
    allTables: all,
    operations,
    tables: new Set(tables.map((t) => tableKey(t.schema, t.table))),
    names: tables.map((t) => t.qualified),
  };
}

Deno.test("checkPublication: an existing publication of UPDATE/DELETE over a table without replica identity is a warning", () => {
  const everything = [orders, audit, scratch, full];
  for (
    const [pub, blocked] of [
      [publication(true, ["insert", "update", "delete", "truncate"]), true],
      [publication(false, ["insert", "update", "delete"], [orders, audit]), true],
      // Nothing blocks: inserts only, or the table is not covered.
      [publication(true, ["insert", "truncate"]), false],
      [publication(false, ["insert", "update", "delete"], [orders, full]), false],
    ] as const
  ) {
    const findings = checkPublication(pipeline(), server({}), pub, [orders], everything);
    const warning = findings.find((f) => f.level === "warn" && /replica identity/.test(f.message));
    if (!blocked) {
      assert.equal(warning, undefined, JSON.stringify(findings));
      continue;
    }
    assert.ok(warning, JSON.stringify(findings));
    // The unlogged table (never published) and the FULL one are not named.
    assert.match(warning.message, /covers 1 table without a replica identity \(public\.audit\)/);
    assert.match(warning.message, /UPDATE and DELETE on them fail \(SQLSTATE 55000\)/);
    assert.match(warning.fix!, /ALTER TABLE public\.audit REPLICA IDENTITY FULL/);
  }
});

Deno.test("checkPublication: a FOR ALL TABLES publication to create over a table without replica identity is an error", () => {
  const config = parsePipelineConfig(
    [
      "source:",
      '  url: "postgres://app@db/shop"',
      "  slot: s",
      "  publication: p",
      "tables:",
      '  "*": {}',
      "sinks: [stdout: {}]",
    ].join("\n"),
    { file: "all.yaml", env: {} },
  );
  const superuser = { ...server({}), superuser: true };
  const findings = checkPublication(config, superuser, null, [orders, audit], [orders, audit]);
  assert.equal(findings.length, 1);
  assert.equal(findings[0]!.level, "error");
  assert.match(
    findings[0]!.message,
    /does not exist, and Spillway will not create it FOR ALL TABLES: covers 1 table without a replica identity \(public\.audit\)/,
  );
  const fine = checkPublication(config, superuser, null, [orders], [orders, scratch]);
  assert.deepEqual(fine.map((f) => f.level), ["ok"]);
});
