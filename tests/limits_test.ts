/**
 * Limits against a real server: a row change bigger than `max_message_size` stops the source
 * with an error naming the table and position (in a plain and in a streamed transaction),
 * and the slot does not move past it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseLsn } from "../decoder/lsn.ts";
import { confirmableLsn } from "../events.ts";
import { ReplicationSource } from "../source/replication_source.ts";
import { startPostgres, testVersions } from "../testing/embedded_postgres.ts";
import { connectOptions } from "./_replication.ts";

/** Reads `source` until it fails, then closes it; returns what it failed with (or undefined). */
async function failureOf(source: ReplicationSource): Promise<unknown> {
  try {
    for await (const _ of source.batches()) { /* until it fails */ }
  } catch (error) {
    return error;
  } finally {
    await source.close();
  }
}

for (const version of testVersions("full")) {
  Deno.test(`PG${version}: a change over max_message_size stops the source naming its table; the slot stays before it`, async () => {
    await using pg = await startPostgres({
      version,
      settings: { logical_decoding_work_mem: "64kB" },
    });
    await pg.psql(
      `CREATE TABLE "Big Rows" (id int PRIMARY KEY, v text);
       ALTER TABLE "Big Rows" ALTER COLUMN v SET STORAGE EXTERNAL;
       CREATE PUBLICATION limits_pub FOR TABLE "Big Rows";
       SELECT pg_create_logical_replication_slot('limits_slot', 'pgoutput');`,
    );
    // A small change first, which goes through; then a 2 MB value (over the 1 MiB limit).
    await pg.psql(`INSERT INTO "Big Rows" VALUES (1, 'small')`);
    const before = parseLsn(await pg.psql("SELECT pg_current_wal_lsn()"));
    await pg.psql(`INSERT INTO "Big Rows" VALUES (2, repeat('x', 2000000))`);
    for (const streaming of [false, true]) {
      const source = await ReplicationSource.open({
        connection: { ...connectOptions(pg), maxMessageBytes: 2 ** 20 },
        slot: "limits_slot",
        publication: "limits_pub",
        streaming,
        protoVersion: streaming ? 2 : 1,
        reconnect: { maxAttempts: 1 },
      });
      let failure: unknown = null;
      try {
        for await (const batch of source.batches()) {
          for (const item of batch) {
            const lsn = confirmableLsn(item);
            if (lsn !== null) source.confirm(lsn);
          }
        }
      } catch (error) {
        failure = error;
      } finally {
        await source.close();
      }
      assert.ok(failure instanceof Error, `streaming ${streaming}: ${failure}`);
      assert.match(
        failure.message,
        /^The insert on "public"\."Big Rows" at [0-9A-F]+\/[0-9A-F]+ is \d+ bytes, more than the limit of 1048576 \(max_message_size\)/,
      );
      const confirmed = parseLsn(
        await pg.psql(
          "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'limits_slot'",
        ),
      );
      assert.ok(confirmed <= before, "the slot did not move past the big row");
    }
    // In a streamed transaction (more than logical_decoding_work_mem before its commit), the
    // change carries its xid before the relation: still named.
    await pg.psql(
      `SELECT pg_drop_replication_slot('limits_slot');
       SELECT pg_create_logical_replication_slot('limits_slot', 'pgoutput');
       BEGIN;
       INSERT INTO "Big Rows" SELECT g, repeat('y', 100) FROM generate_series(10, 3000) g;
       INSERT INTO "Big Rows" VALUES (3, repeat('z', 2000000));
       INSERT INTO "Big Rows" SELECT g, repeat('y', 100) FROM generate_series(3001, 6000) g;
       COMMIT;`,
    );
    const source = await ReplicationSource.open({
      connection: { ...connectOptions(pg), maxMessageBytes: 2 ** 20 },
      slot: "limits_slot",
      publication: "limits_pub",
      streaming: true,
      protoVersion: 2,
      reconnect: { maxAttempts: 1 },
    });
    const failure = await failureOf(source);
    assert.ok(failure instanceof Error, String(failure));
    assert.match(failure.message, /^The insert on "public"\."Big Rows" at /);
  });
}

Deno.test({
  name:
    "a text value longer than a string can be stops the source naming its table (SPILLWAY_SOAK=1)",
  ignore: Deno.env.get("SPILLWAY_SOAK") !== "1",
  fn: async () => {
    await using pg = await startPostgres({ settings: { shared_buffers: "1GB" } });
    await pg.psql(
      `CREATE TABLE "Big Rows" (id int PRIMARY KEY, v text);
       ALTER TABLE "Big Rows" ALTER COLUMN v SET STORAGE EXTERNAL;
       CREATE PUBLICATION limits_pub FOR TABLE "Big Rows";
       SELECT pg_create_logical_replication_slot('limits_slot', 'pgoutput');
       INSERT INTO "Big Rows" VALUES (1, repeat('x', 540000000));`,
    );
    const source = await ReplicationSource.open({
      connection: connectOptions(pg),
      slot: "limits_slot",
      publication: "limits_pub",
      reconnect: { maxAttempts: 1 },
    });
    const failure = await failureOf(source);
    assert.ok(failure instanceof Error, String(failure));
    assert.match(
      failure.message,
      /^The insert on "public"\."Big Rows" at [0-9A-F]+\/[0-9A-F]+: Cannot decode Insert message .*540000000 bytes of UTF-8 make a string longer than the 536870888 characters/,
    );
  },
});
