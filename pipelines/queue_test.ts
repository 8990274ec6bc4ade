import assert from "node:assert/strict";
import { type Lsn, lsn } from "../decoder/lsn.ts";
import type { SinkRecord, TransactionInfo } from "../events.ts";
import { BoundedQueue, type QueueBatch } from "./queue.ts";

const TX: TransactionInfo = {
  xid: 1,
  commitLsn: lsn(0x100n),
  commitTime: 0n,
  streamed: false,
};

function message(n: number): SinkRecord {
  return {
    kind: "message",
    event: {
      op: "m",
      transactional: true,
      prefix: `m${n}`,
      content: new Uint8Array(),
      lsn: lsn(BigInt(n)),
    },
  };
}

/** Entries taken and the position they confirm. */
function counted(batch: QueueBatch | null): [number, Lsn | null] | null {
  return batch === null ? null : [batch.count, batch.confirm];
}

function prefixes(batch: QueueBatch | null): string[] {
  return batch?.records.flatMap((record) =>
    record.kind === "message" ? [record.event.prefix] : []
  ) ?? [];
}

Deno.test("BoundedQueue: takes in order, at most half the capacity at a time", async () => {
  const queue = new BoundedQueue({ capacity: 6, highWatermark: 0.8 });
  for (let n = 1; n <= 7; n++) queue.push(message(n), null);
  assert.equal(queue.depth, 7);
  assert.deepEqual(prefixes(await queue.take()), ["m1", "m2", "m3"]);
  assert.deepEqual(prefixes(await queue.take()), ["m4", "m5", "m6"]);
  assert.deepEqual(prefixes(await queue.take()), ["m7"]);
  assert.equal(queue.depth, 0);
  // A capacity of 1 still takes one entry at a time.
  const tiny = new BoundedQueue({ capacity: 1, highWatermark: 0.1 });
  tiny.push(null, lsn(1n));
  tiny.push(null, lsn(2n));
  assert.equal(tiny.highWater, 1);
  assert.deepEqual(counted(await tiny.take()), [1, 1n]);
});

Deno.test("BoundedQueue: a batch confirms the last position among its entries; entries without a record count but give none", async () => {
  const queue = new BoundedQueue({ capacity: 10, highWatermark: 0.8 });
  queue.push(message(1), null);
  queue.push(null, lsn(2n)); // a filtered-out transaction's commit: a position only
  queue.push(message(3), lsn(3n));
  queue.push(message(4), null);
  const batch = await queue.take();
  assert.deepEqual(counted(batch), [4, 3n]);
  assert.deepEqual(prefixes(batch), ["m1", "m3", "m4"]);
  queue.push(message(5), null);
  assert.deepEqual(counted(await queue.take()), [1, null]);
});

Deno.test("BoundedQueue: the ring grows past its first slots and keeps the order across its end", async () => {
  // 4,001 slots to start with (the capacity and one), takes of 2,000: push past the slots
  // while the oldest are taken and reused.
  const queue = new BoundedQueue({ capacity: 4000, highWatermark: 0.8 });
  let pushed = 0;
  let next = 0;
  const expectOrder = async () => {
    const batch = await queue.take();
    for (const record of batch!.records) {
      assert.equal(record.kind === "message" && record.event.prefix, `m${next++}`);
    }
    return batch!.count;
  };
  for (; pushed < 3000; pushed++) queue.push(message(pushed), null);
  assert.equal(await expectOrder(), 2000); // the ring's front is free
  for (; pushed < 12_000; pushed++) queue.push(message(pushed), null); // wraps, then grows twice
  assert.equal(queue.depth, 10_000);
  while (queue.depth > 0) await expectOrder();
  assert.equal(next, 12_000);
});

Deno.test("BoundedQueue: full at the high watermark; the reader waits until the writer takes", async () => {
  const queue = new BoundedQueue({ capacity: 10, highWatermark: 0.8 });
  assert.equal(queue.highWater, 8);
  for (let n = 1; n <= 7; n++) queue.push(null, null);
  assert.equal(queue.full, false);
  queue.push(null, null);
  assert.equal(queue.full, true);
  let drained = false;
  const waiting = queue.drained().then(() => drained = true);
  await Promise.resolve();
  assert.equal(drained, false);
  await queue.take();
  await waiting;
  assert.equal(queue.full, false);
  // A failed writer releases a waiting reader too.
  let released = false;
  const again = queue.drained().then(() => released = true);
  queue.releaseReader();
  await again;
  assert.equal(released, true);
});

Deno.test("BoundedQueue: take waits for entries; after close it ends once empty", async () => {
  const queue = new BoundedQueue({ capacity: 4, highWatermark: 0.8 });
  const first = queue.take();
  queue.push(null, lsn(1n));
  queue.wakeWriter();
  assert.deepEqual(counted(await first), [1, 1n]);
  const second = queue.take();
  queue.push(null, lsn(2n));
  queue.close();
  assert.deepEqual(counted(await second), [1, 2n]);
  assert.equal(await queue.take(), null);
});

Deno.test("BoundedQueue: trimTransaction drops the queued part of the open transaction only", async () => {
  const queue = new BoundedQueue({ capacity: 100, highWatermark: 0.8 });
  queue.push(message(1), lsn(1n)); // a whole earlier transaction's last entry
  queue.markTransactionStart();
  queue.push({ kind: "begin", tx: TX }, null);
  queue.push(message(2), null);
  queue.trimTransaction();
  assert.equal(queue.depth, 1);
  assert.deepEqual(prefixes(await queue.take()), ["m1"]);

  // The writer already took the begin record: that stays taken, the rest goes.
  queue.markTransactionStart();
  queue.push({ kind: "begin", tx: TX }, null);
  queue.push(message(3), null);
  const taken = await queue.take();
  assert.equal(taken?.count, 2);
  queue.push(message(4), null);
  queue.trimTransaction();
  assert.equal(queue.depth, 0);
  queue.push(message(5), lsn(5n));
  assert.deepEqual(prefixes(await queue.take()), ["m5"]);
});

Deno.test("BoundedQueue: the transaction start survives a take that empties the queue", async () => {
  const queue = new BoundedQueue({ capacity: 100, highWatermark: 0.8 });
  queue.push(message(1), lsn(1n)); // before the transaction: the start is not at the front
  queue.markTransactionStart();
  queue.push({ kind: "begin", tx: TX }, null);
  queue.push(message(2), null);
  assert.equal((await queue.take())?.count, 3); // all of it
  queue.push(message(3), null); // still the open transaction's
  queue.trimTransaction();
  assert.equal(queue.depth, 0);
  queue.push(message(4), lsn(4n));
  assert.deepEqual(prefixes(await queue.take()), ["m4"]);
});

Deno.test("BoundedQueue: trimTransaction across the ring's end drops the open transaction's entries and bytes", async () => {
  const queue = new BoundedQueue({ capacity: 8, maxBytes: 1_000_000, highWatermark: 1 }); // 9 slots
  for (let n = 1; n <= 6; n++) queue.push(message(n), lsn(BigInt(n)), 10);
  assert.equal((await queue.take())?.count, 4); // half the capacity: slots 0-3 are free again
  queue.markTransactionStart();
  queue.push({ kind: "begin", tx: TX }, null); // slot 6
  for (let n = 7; n <= 10; n++) queue.push(message(n), null, 100); // slots 7, 8, 0, 1: wrapped
  assert.equal(queue.depth, 7);
  queue.trimTransaction(); // the begin record and m7-m10, across the end of the ring
  assert.equal(queue.depth, 2);
  assert.equal(
    queue.bytes,
    40 + 20,
    "the 4 taken (not released) and m5, m6 count; the rest is gone",
  );
  assert.deepEqual(prefixes(await queue.take()), ["m5", "m6"]);
  queue.push(message(11), lsn(11n), 10); // the slots after the trim are used again, in order
  queue.push(message(12), lsn(12n), 10);
  assert.deepEqual(counted(await queue.take()), [2, 12n]);
  assert.equal(queue.depth, 0);
});

Deno.test("BoundedQueue: the transaction start survives the ring's growth", async () => {
  const queue = new BoundedQueue({ capacity: 10_000, highWatermark: 0.8 });
  for (let n = 0; n < 5000; n++) queue.push(null, null); // past the first 4,096 slots: it grows
  queue.markTransactionStart();
  queue.push({ kind: "begin", tx: TX }, null);
  queue.push(message(1), null);
  // Takes the 5,000 entries before the transaction.
  for (let taken = 0; taken < 5000;) taken += (await queue.take())!.count;
  assert.equal(queue.depth, 2);
  queue.push(message(2), null);
  queue.trimTransaction();
  assert.equal(queue.depth, 0);
  queue.push(message(3), lsn(3n));
  assert.deepEqual(prefixes(await queue.take()), ["m3"]);
});

Deno.test("BoundedQueue: bytes bound it too: full at the high watermark of max_bytes, batches of at most half, held until released", async () => {
  const queue = new BoundedQueue({ capacity: 1000, maxBytes: 1000, highWatermark: 0.8 });
  assert.equal(queue.highWaterBytes, 800);
  for (let n = 1; n <= 7; n++) queue.push(message(n), null, 100);
  assert.equal(queue.bytes, 700);
  assert.equal(queue.full, false);
  queue.push(message(8), lsn(8n), 100);
  assert.equal(queue.full, true, "800 bytes of 1000 at a watermark of 0.8");
  // A batch holds at most half of max_bytes.
  const first = await queue.take();
  assert.deepEqual(prefixes(first), ["m1", "m2", "m3", "m4", "m5"]);
  // Taken is still held: the writer has not handed it to the sinks yet.
  assert.equal(queue.bytes, 800);
  assert.equal(queue.full, true);
  let drained = false;
  const waiting = queue.drained().then(() => drained = true);
  queue.release(first!);
  await waiting;
  assert.equal(drained, true, "a release wakes the reader");
  assert.equal(queue.bytes, 300);
  assert.equal(queue.full, false);
  // One entry larger than a batch is still taken, alone.
  queue.push(message(9), null, 5000);
  assert.deepEqual(prefixes(await queue.take()), ["m6", "m7", "m8"]);
  assert.deepEqual(prefixes(await queue.take()), ["m9"]);
});

Deno.test("BoundedQueue: dropping the open transaction's queued part gives its bytes back", () => {
  const queue = new BoundedQueue({ capacity: 100, maxBytes: 10_000, highWatermark: 0.8 });
  queue.push(message(1), lsn(1n), 10);
  queue.markTransactionStart();
  queue.push({ kind: "begin", tx: TX }, null);
  queue.push(message(2), null, 300);
  queue.push(message(3), null, 400);
  assert.equal(queue.bytes, 710);
  queue.trimTransaction();
  assert.equal(queue.bytes, 10);
  assert.equal(queue.depth, 1);
});

Deno.test("BoundedQueue: max_bytes null or 0 is no bound in bytes, only in entries", () => {
  for (const maxBytes of [null, 0]) {
    const queue = new BoundedQueue({ capacity: 10, maxBytes, highWatermark: 0.8 });
    queue.push(message(1), null, 1 << 30);
    assert.equal(queue.full, false, `maxBytes ${maxBytes}`);
    for (let n = 2; n <= 8; n++) queue.push(message(n), null, 1);
    assert.equal(queue.full, true, "8 entries of 10 at a watermark of 0.8");
  }
});

Deno.test("BoundedQueue: a record the writer took is no longer held by the queue, emptied or wrapped (so it can die young)", async () => {
  // A child process with gc() exposed: the queue's records are weakly watched while the queue
  // stays alive. (That growth empties the slots it leaves cannot be seen here: gc() is a full
  // collection, which frees the old arrays anyway; it matters to young collections only.)
  const script = `
    import { BoundedQueue } from ${JSON.stringify(new URL("./queue.ts", import.meta.url).href)};
    const queue = new BoundedQueue({ capacity: 4, highWatermark: 1 }); // takes of at most 2
    const refs = [];
    const push = () => {
      const record = { kind: "message", event: { op: "m", prefix: "x", content: new Uint8Array(), lsn: 1n } };
      refs.push(new WeakRef(record));
      queue.push(record, null, 1);
    };
    const live = async () => {
      await new Promise((resolve) => setTimeout(resolve, 0)); // WeakRefs hold until the turn ends
      globalThis.gc();
      return refs.map((ref) => ref.deref() !== undefined);
    };
    push(); push();
    queue.release(await queue.take()); // both taken: the queue is emptied
    push(); push(); push();
    queue.release(await queue.take()); // two of the three: one stays queued behind them
    const before = await live();
    push(); // the ring (5 slots) wraps, then grows: its old slots are left behind
    for (let n = 0; n < 20; n++) queue.push(null, null, 0);
    while (queue.depth > 0) queue.release(await queue.take());
    console.log(JSON.stringify({ before, after: await live(), depth: queue.depth }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", script],
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const result = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.deepEqual(result, {
    // The four taken are collectable; the last one pushed is still queued.
    before: [false, false, false, false, true],
    // Every one taken, across the wrap and the growth: none is held.
    after: [false, false, false, false, false, false],
    depth: 0,
  });
});
