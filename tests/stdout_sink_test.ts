/**
 * The stdout sink through `spillway run`: with stdout a pipe (`format: auto` picks JSON), each
 * change is one JSON line in the documented shape (`topic`, `key`, then the ChangeEvent: `op`,
 * `source`, `before`, `after`, `unchanged`), values per the type mapping; transactional
 * messages are `m` lines. The lines are compared, whole, with the changes made and with what
 * the server's WAL says about them (xid, commit position). About 5 s.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { PRIMARY_VERSION, startPostgres } from "../testing/embedded_postgres.ts";
import { lsnText, pipelineYaml, Poller, sleep, SpillwayProcess, waitFor } from "./_runner_util.ts";
import { parseLsn } from "../decoder/lsn.ts";

Deno.test("stdout sink: spillway run prints each change as the documented JSON line, one per change, in commit order", async () => {
  await using pg = await startPostgres({
    version: PRIMARY_VERSION,
    settings: { autovacuum: "off" },
  });
  await pg.psql(`
    CREATE EXTENSION pg_walinspect;
    CREATE TABLE items (
      id int PRIMARY KEY,
      note text,
      amount numeric(10,2),
      big int8,
      at timestamptz,
      data bytea,
      tags text[],
      doc jsonb
    );
    CREATE TABLE ignored (id int PRIMARY KEY);
  `);
  const poller = new Poller(pg);
  const dir = await Deno.makeTempDir({ prefix: "spillway-stdout-" });
  const pipeline = join(dir, "p.yaml");
  await Deno.writeTextFile(
    pipeline,
    pipelineYaml({
      name: "shop",
      url: pg.url(),
      slot: "stdout_slot",
      publication: "stdout_pub",
      tables: { "public.items": "{}" },
      sinks: ["stdout: { format: auto }"],
    }),
  );
  const child = new SpillwayProcess(pipeline, { stdout: "collect" });
  try {
    await child.started();
    const start = parseLsn((await poller.value("SELECT pg_current_wal_lsn()"))!);
    // Four transactions; each returns its xid. The ignored table is not in the pipeline.
    const xids: string[] = [];
    for (
      const sql of [
        `INSERT INTO items VALUES
           (1, 'first', 12.5, 9007199254740993, '2024-01-02 03:04:05.123456+00', '\\x00ff10',
            ARRAY['a', 'b'], '{"k": [1, 2]}'),
           (2, 'second', NULL, -1, NULL, NULL, '{}', NULL);
         INSERT INTO ignored VALUES (1)`,
        `UPDATE items SET note = 'changed', amount = amount * 2 WHERE id = 1`,
        `DELETE FROM items WHERE id = 2;
         SELECT pg_logical_emit_message(true, 'app', 'hello')`,
        `UPDATE items SET id = 10 WHERE id = 1`,
      ]
    ) {
      const out = await pg.psql(`BEGIN; ${sql}; SELECT txid_current(); COMMIT;`);
      xids.push(out.split("\n").at(-1)!);
    }
    await waitFor("six lines on stdout", () => child.stdout.split("\n").length > 6, {
      detail: () => `${child.stdout}\n${child.stderr}`,
    });
    await sleep(300); // nothing more may come
    const relid = Number(await poller.value("SELECT 'public.items'::regclass::oid"));
    const commits = await poller.rows(
      `SELECT xid, start_lsn FROM pg_get_wal_records_info('${lsnText(start)}', pg_current_wal_lsn())
        WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%'`,
    );
    const commitLsn = (xid: string) => {
      const row = commits.find((commit) => commit.xid === xid);
      assert.ok(row, `no commit record for xid ${xid}: ${JSON.stringify(commits)}`);
      return row.start_lsn!;
    };

    const texts = child.stdout.split("\n");
    assert.equal(texts.pop(), "", "the output ends with a newline");
    assert.equal(texts.length, 6, child.stdout);
    // int8 beyond 2^53 is an exact JSON number, not a rounded one or a string.
    assert.match(texts[0]!, /"big":9007199254740993[,}]/);
    const lines = texts.map((text) => JSON.parse(text));
    for (const line of lines.filter((line) => line.op !== "m")) {
      // The documented key order: topic, key, op, source, before, after, unchanged.
      assert.deepEqual(Object.keys(line), [
        "topic",
        "key",
        "op",
        "source",
        "before",
        "after",
        "unchanged",
      ]);
      assert.match(line.source.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
      assert.match(line.source.commitTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      delete line.source.lsn;
      delete line.source.commitTime;
    }
    const source = (xid: string) => ({
      schema: "public",
      table: "items",
      relid,
      commitLsn: commitLsn(xid),
      xid: Number(xid),
    });
    const first = {
      id: 1,
      note: "first",
      amount: "12.50",
      big: 9007199254740992, // JSON.parse rounds; the text above is exact
      at: "2024-01-02T03:04:05.123456Z",
      data: "AP8Q",
      tags: ["a", "b"],
      doc: '{"k": [1, 2]}',
    };
    const changed = { ...first, note: "changed", amount: "25.00" };
    const topic = "shop.public.items";
    assert.deepEqual(lines[0], {
      topic,
      key: { id: 1 },
      op: "c",
      source: source(xids[0]!),
      before: null,
      after: first,
      unchanged: [],
    });
    assert.deepEqual(lines[1], {
      topic,
      key: { id: 2 },
      op: "c",
      source: source(xids[0]!),
      before: null,
      after: {
        id: 2,
        note: "second",
        amount: null,
        big: -1,
        at: null,
        data: null,
        tags: [],
        doc: null,
      },
      unchanged: [],
    });
    assert.deepEqual(lines[2], {
      topic,
      key: { id: 1 },
      op: "u",
      source: source(xids[1]!),
      before: null,
      after: changed,
      unchanged: [],
    });
    assert.deepEqual(lines[3], {
      topic,
      key: { id: 2 },
      op: "d",
      source: source(xids[2]!),
      before: { id: 2 },
      after: null,
      unchanged: [],
    });
    assert.deepEqual(
      { ...lines[4], lsn: undefined },
      {
        op: "m",
        transactional: true,
        prefix: "app",
        content: btoa("hello"),
        lsn: undefined,
        xid: Number(xids[2]),
        commitLsn: commitLsn(xids[2]!),
      },
    );
    assert.deepEqual(lines[5], {
      topic,
      key: { id: 10 },
      op: "u",
      source: source(xids[3]!),
      before: { id: 1 },
      after: { ...changed, id: 10 },
      unchanged: [],
    });

    child.signal("SIGINT");
    assert.equal(await child.finished(), 0, child.stderr);
    assert.equal(child.stdout.split("\n").length - 1, 6, "nothing more was printed on the way out");
  } finally {
    await child.kill();
    await poller.close();
    await Deno.remove(dir, { recursive: true });
  }
});
