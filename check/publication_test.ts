import assert from "node:assert/strict";
import { parsePipelineConfig } from "../config/mod.ts";
import type { DbTable, Publication } from "../postgres/catalog.ts";
import { tableKey } from "../postgres/catalog.ts";
import { pipeline, server } from "./_testing.ts";
import { checkOtherPublications, checkPublication } from "./publication.ts";

let nextOid = 16_384;

function table(name: string, changes: Partial<DbTable> = {}): DbTable {
  return {
    oid: nextOid++,
    ancestors: [],
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

function publication(
  all: boolean,
  operations: string[],
  tables: DbTable[] = [],
  name = "other_pub",
): Publication {
  return {
    name,
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

Deno.test("checkPublication: partitions without a replica identity count when the publication lists their root (publish_via_partition_root)", () => {
  const root = table("measurements", { kind: "p", primaryKey: null });
  const leaf = table("measurements_2026", { primaryKey: null, ancestors: [root.oid] });
  const keyedLeaf = table("measurements_2025", { ancestors: [root.oid] });
  const findings = checkPublication(
    pipeline(),
    server({}),
    publication(false, ["insert", "update"], [root]),
    [orders],
    [orders, root, leaf, keyedLeaf],
  );
  const warning = findings.find((f) => f.level === "warn" && /replica identity/.test(f.message));
  assert.ok(warning, JSON.stringify(findings));
  assert.match(
    warning.message,
    /covers 1 table without a replica identity \(public\.measurements_2026\)/,
  );
});

Deno.test("checkOtherPublications: other publications that block writes are warned about; a tail leftover gets its DROP", () => {
  const everything = [orders, audit, scratch, full];
  const findings = checkOtherPublications(pipeline(), [
    publication(true, ["insert", "update", "delete", "truncate"], [], "orders_pub"), // the pipeline's own
    publication(true, ["insert", "truncate"], [], "spillway_tail_1_abc_i"), // inserts only: fine
    publication(false, ["update", "delete"], [audit], "spillway_tail_1_abc_k"),
    publication(false, ["insert", "update"], [audit, orders], "app_pub"),
  ], everything);
  assert.deepEqual(findings.map((f) => f.subject), [
    'publication "spillway_tail_1_abc_k"',
    'publication "app_pub"',
  ]);
  assert.match(findings[0]!.message, /left by a spillway tail session that did not end cleanly/);
  assert.equal(findings[0]!.fix, 'DROP PUBLICATION "spillway_tail_1_abc_k"');
  assert.match(findings[1]!.fix!, /ALTER TABLE public\.audit REPLICA IDENTITY FULL/);
});
