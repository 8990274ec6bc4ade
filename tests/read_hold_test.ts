/**
 * The source's read hold (`readHoldMs`) against a real server: set once a transaction has
 * brought `BIG_TRANSACTION_CHANGES` changes, and gone again after its commit; never set for
 * small transactions.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { SourceItem } from "../events.ts";
import {
  BIG_TRANSACTION_CHANGES,
  READ_HOLD_MS,
  ReplicationSource,
} from "../source/replication_source.ts";
import { testVersions } from "../testing/embedded_postgres.ts";
import { nextBatch, sharedServers, sourceOptions } from "./_replication.ts";
import { versionTests } from "./_versions.ts";

const servers = sharedServers("");
const { test, register } = versionTests(servers);

test("read hold: set inside a transaction past BIG_TRANSACTION_CHANGES changes, never for small ones, gone after the commit", async (version) => {
  const pg = await servers.server(version);
  const name = "read_hold";
  await pg.psql(`CREATE TABLE ${name} (id int PRIMARY KEY, note text);
    CREATE PUBLICATION ${name}_pub FOR TABLE ${name}`);
  const source = await ReplicationSource.open(sourceOptions(pg, name, {
    createSlot: true,
    messages: false,
    streaming: false, // the big transaction comes whole after its commit, not in stream blocks
    maxBufferedBytes: 64 << 10, // small batches: the hold is set at the end of each
    statusIntervalMs: 1000,
  }));
  try {
    const iterator = source.batches()[Symbol.asyncIterator]();
    const big = BIG_TRANSACTION_CHANGES * 3;
    // 50 small transactions, then one big one, and nothing after it.
    await pg.psql(`
      DO $$ BEGIN
        FOR i IN 1..50 LOOP INSERT INTO ${name} VALUES (i, 'small'); COMMIT; END LOOP;
      END $$;
      INSERT INTO ${name} SELECT g, 'big' FROM generate_series(1001, ${1000 + big}) g;`);
    const deadline = Date.now() + 60_000;
    const failures = { timeout: "Timed out before the last transaction", ended: "Source ended" };
    /** The hold in effect when each batch came, with the changes of the open transaction then. */
    const seen: { changes: number; hold: number }[] = [];
    let changes = 0;
    let commits = 0;
    let bigCommitted = false;
    while (commits < 51) {
      const hold = source.stream!.readHoldMs;
      seen.push({ changes, hold });
      const items: SourceItem[] = await nextBatch(iterator, deadline, failures);
      for (const item of items) {
        if (item.kind === "change") changes++;
        if (item.kind === "commit" && item.eventCount > 0) {
          commits++;
          if (changes === big) bigCommitted = true;
          changes = 0;
        }
      }
    }
    assert.ok(bigCommitted, "the big transaction came whole");
    // Before BIG_TRANSACTION_CHANGES, no hold: the small transactions, the big one's start.
    const early = seen.filter((s) => s.changes < BIG_TRANSACTION_CHANGES);
    assert.ok(early.length > 0);
    assert.deepEqual(early.filter((s) => s.hold !== 0), []);
    // Once the batches before had brought it past the threshold (with a batch's slack), held.
    const late = seen.filter((s) => s.changes >= BIG_TRANSACTION_CHANGES + 5_000);
    assert.ok(late.length > 0, "batches came in the big transaction's second half");
    assert.deepEqual(late.filter((s) => s.hold !== READ_HOLD_MS), []);
    // Once its commit is handed on (the last piece of a batch is handed on after the hold is
    // set for what comes next): no hold, though nothing else came.
    assert.equal(source.stream!.readHoldMs, 0);
  } finally {
    await source.close();
  }
});

register(testVersions("full"));
