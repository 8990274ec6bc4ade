/**
 * Conformance against real PostgreSQL servers: what a publication selects. Partitioned tables
 * published through their leaves or their root (`publish_via_partition_root`), row filters and
 * column lists (PG15+).
 *
 * One server per version of `testVersions("full")`; each step has its own tables, publications
 * and slots. Numbers in step names refer to ../shared/reference/pgoutput.md §4.
 *
 * @module
 */

import assert from "node:assert/strict";
import { testVersions } from "../testing/embedded_postgres.ts";
import {
  bodyOf,
  checkTransactions,
  col,
  collectTx,
  conformanceTests,
  type Ctx,
  INT4,
  publishAndReceive,
  relationMessage,
  relid,
  runTx,
  type Scenario,
  session,
  TEXT,
  transactions,
  updateMessage,
  VARCHAR,
} from "./_conformance.ts";

// ---------------------------------------------------------------------------------------------
// Scenarios (the helpers are shared with the other conformance files, in _conformance.ts)

/**
 * §4.31: a partitioned table whose partitions differ in column order. Through the leaves,
 * changes name the partition, in its own column order; through the root
 * (`publish_via_partition_root`), they name the root, converted to its column order, and the
 * root's Relation goes out before each partition's own. A cross-partition UPDATE arrives as
 * Delete from the old partition + Insert into the new one.
 */
async function partitions(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  await sql.query(
    `CREATE TABLE pt (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
     CREATE TABLE pt_eu PARTITION OF pt FOR VALUES IN ('eu');
     CREATE TABLE pt_us (v text, region text NOT NULL, id int NOT NULL);
     ALTER TABLE pt ATTACH PARTITION pt_us FOR VALUES IN ('us');
     CREATE PUBLICATION pt_leaf FOR TABLE pt;
     CREATE PUBLICATION pt_root FOR TABLE pt WITH (publish_via_partition_root = true)`,
  );
  const [root, eu, us] = [
    await relid(sql, "pt"),
    await relid(sql, "pt_eu"),
    await relid(sql, "pt_us"),
  ];
  await using leafSession = await session(ctx, { slot: "pt_leaf", publication: "pt_leaf" });
  await using rootSession = await session(ctx, { slot: "pt_root", publication: "pt_root" });
  const xids = [
    await runTx(sql, "INSERT INTO pt VALUES (1, 'eu', 'a'), (2, 'us', 'b')"),
    await runTx(sql, "UPDATE pt SET v = 'c' WHERE id = 2"),
    await runTx(sql, "UPDATE pt SET region = 'us' WHERE id = 1"),
    await runTx(sql, "DELETE FROM pt WHERE id = 2"),
  ];
  const rootColumns = [col("id", INT4, true), col("region", TEXT, true), col("v", TEXT)];
  const usColumns = [col("v", TEXT), col("region", TEXT, true), col("id", INT4, true)];

  const leaf = transactions(await collectTx(leafSession, 4));
  checkTransactions(leaf, xids);
  assert.deepEqual(bodyOf(leaf[0]), [
    relationMessage(eu, "pt_eu", rootColumns),
    { type: "Insert", relationId: eu, newTuple: ["1", "eu", "a"] },
    relationMessage(us, "pt_us", usColumns),
    { type: "Insert", relationId: us, newTuple: ["b", "us", "2"] },
  ]);
  assert.deepEqual(bodyOf(leaf[1]), [updateMessage(us, null, null, ["c", "us", "2"])]);
  assert.deepEqual(bodyOf(leaf[2]), [
    { type: "Delete", relationId: eu, oldTupleKind: "key", oldTuple: ["1", "eu", null] },
    { type: "Insert", relationId: us, newTuple: ["a", "us", "1"] },
  ]);
  assert.deepEqual(bodyOf(leaf[3]), [
    { type: "Delete", relationId: us, oldTupleKind: "key", oldTuple: [null, "us", "2"] },
  ]);

  const viaRoot = transactions(await collectTx(rootSession, 4));
  checkTransactions(viaRoot, xids);
  assert.deepEqual(bodyOf(viaRoot[0]), [
    relationMessage(root, "pt", rootColumns),
    relationMessage(eu, "pt_eu", rootColumns),
    { type: "Insert", relationId: root, newTuple: ["1", "eu", "a"] },
    relationMessage(root, "pt", rootColumns),
    relationMessage(us, "pt_us", usColumns),
    { type: "Insert", relationId: root, newTuple: ["2", "us", "b"] },
  ]);
  assert.deepEqual(bodyOf(viaRoot[1]), [updateMessage(root, null, null, ["2", "us", "c"])]);
  assert.deepEqual(bodyOf(viaRoot[2]), [
    { type: "Delete", relationId: root, oldTupleKind: "key", oldTuple: ["1", "eu", null] },
    { type: "Insert", relationId: root, newTuple: ["1", "us", "a"] },
  ]);
  assert.deepEqual(bodyOf(viaRoot[3]), [
    { type: "Delete", relationId: root, oldTupleKind: "key", oldTuple: ["2", "us", null] },
  ]);
}

/**
 * §4.30 (PG15+): row filter `WHERE (id > 10)`: an UPDATE into the filter is an Insert, out of
 * it a Delete with the old key, and one that stays outside sends nothing.
 */
async function rowFilter(ctx: Ctx): Promise<void> {
  const { sql } = ctx;
  await sql.query(
    `CREATE TABLE rf_t (id int PRIMARY KEY, v text);
     CREATE PUBLICATION rf FOR TABLE rf_t WHERE (id > 10)`,
  );
  const oid = await relid(sql, "rf_t");
  await using s = await session(ctx, { slot: "rf", publication: "rf" });
  await runTx(sql, "INSERT INTO rf_t VALUES (1, 'a'), (5, 'b')"); // both filtered out
  const xids = [
    await runTx(sql, "UPDATE rf_t SET id = 20 WHERE id = 5"), // 5→20: enters
    await runTx(sql, "UPDATE rf_t SET v = 'c' WHERE id = 20"), // stays inside
    await runTx(sql, "UPDATE rf_t SET id = 5 WHERE id = 20"), // 20→5: leaves
  ];
  await runTx(sql, "UPDATE rf_t SET id = 2 WHERE id = 1"); // 1→2: stays outside
  await runTx(sql, "DELETE FROM rf_t WHERE id = 2"); // outside
  xids.push(await runTx(sql, "INSERT INTO rf_t VALUES (30, 'z')"));
  xids.push(await runTx(sql, "DELETE FROM rf_t WHERE id = 30"));

  const txs = transactions(await collectTx(s, 5));
  checkTransactions(txs, xids);
  assert.deepEqual(bodyOf(txs[0]), [
    relationMessage(oid, "rf_t", [col("id", INT4, true), col("v", TEXT)]),
    { type: "Insert", relationId: oid, newTuple: ["20", "b"] },
  ]);
  assert.deepEqual(bodyOf(txs[1]), [updateMessage(oid, null, null, ["20", "c"])]);
  assert.deepEqual(bodyOf(txs[2]), [
    { type: "Delete", relationId: oid, oldTupleKind: "key", oldTuple: ["20", null] },
  ]);
  assert.deepEqual(bodyOf(txs[3]), [{ type: "Insert", relationId: oid, newTuple: ["30", "z"] }]);
  assert.deepEqual(bodyOf(txs[4]), [
    { type: "Delete", relationId: oid, oldTupleKind: "key", oldTuple: ["30", null] },
  ]);
}

/**
 * §4.29 (PG15+): a column list: the Relation and every tuple (new, key) carry only the listed
 * columns; an UPDATE of an unlisted column still sends an Update.
 */
async function columnList(ctx: Ctx): Promise<void> {
  const { oid, txs } = await publishAndReceive(ctx, {
    table: "cl_t",
    publication: "cl",
    setup: `
      CREATE TABLE cl_t (id int PRIMARY KEY, a text, b text, c varchar(5));
      CREATE PUBLICATION cl FOR TABLE cl_t (id, a, c)`,
    statements: [
      "INSERT INTO cl_t VALUES (1, 'a1', 'b1', 'c1')",
      "UPDATE cl_t SET b = 'b2' WHERE id = 1",
      "UPDATE cl_t SET id = 2, a = 'a2' WHERE id = 1",
      "DELETE FROM cl_t WHERE id = 2",
    ],
  });
  assert.deepEqual(bodyOf(txs[0]), [
    relationMessage(oid, "cl_t", [
      col("id", INT4, true),
      col("a", TEXT),
      col("c", VARCHAR, false, 9),
    ]),
    { type: "Insert", relationId: oid, newTuple: ["1", "a1", "c1"] },
  ]);
  assert.deepEqual(bodyOf(txs[1]), [updateMessage(oid, null, null, ["1", "a1", "c1"])]);
  assert.deepEqual(bodyOf(txs[2]), [
    updateMessage(oid, "key", ["1", null, null], ["2", "a2", "c1"]),
  ]);
  assert.deepEqual(bodyOf(txs[3]), [
    { type: "Delete", relationId: oid, oldTupleKind: "key", oldTuple: ["2", null, null] },
  ]);
}

const SCENARIOS: Scenario[] = [
  { name: "partitioned table via leaves and via root", minVersion: 14, fn: partitions },
  { name: "row filter", minVersion: 15, fn: rowFilter },
  { name: "column list", minVersion: 15, fn: columnList },
];

conformanceTests("conformance publications", testVersions("full"), SCENARIOS);
