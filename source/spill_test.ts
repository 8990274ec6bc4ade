import assert from "node:assert/strict";
import type { Lsn } from "../decoder/lsn.ts";
import * as f from "../tests/testdata/_frames.ts";
import { TransactionAssembler } from "./assembler.ts";
import { SpillBudget, StreamedBuffer } from "./spill.ts";

function payload(i: number): Uint8Array {
  return new TextEncoder().encode(`message ${i} `.repeat(1 + (i % 50)));
}

Deno.test("streamed buffer: messages come back in order, from memory", () => {
  const budget = new SpillBudget({ limitBytes: 64 << 20 });
  const buffer = new StreamedBuffer(budget);
  for (let i = 0; i < 1000; i++) buffer.push(BigInt(i) as Lsn, 7, payload(i));
  const back = [...buffer.messages()];
  assert.equal(back.length, 1000);
  back.forEach((message, i) => {
    assert.equal(message.walStart, BigInt(i));
    assert.deepEqual(message.bytes, payload(i));
  });
  assert.equal(buffer.spilledBytes, 0);
  buffer.dispose();
  assert.equal(budget.usedBytes, 0);
});

Deno.test("streamed buffer: beyond the budget, chunks spill to disk and come back in order", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const budget = new SpillBudget({ limitBytes: 1 << 20, dir });
    const buffer = new StreamedBuffer(budget);
    const count = 20_000; // ~5 MB: several chunks past a 1 MiB budget
    for (let i = 0; i < count; i++) buffer.push(BigInt(i) as Lsn, i % 3 === 0 ? 9 : 7, payload(i));
    buffer.abortSubtransaction(9);
    assert.ok(buffer.spilledBytes > 2 << 20, `spilled only ${buffer.spilledBytes} bytes`);
    assert.ok(budget.usedBytes <= 2 << 20, `holds ${budget.usedBytes} bytes in memory`);
    // Spilled chunks are filled again: a 1 MiB budget takes two chunks, however much spills.
    assert.ok(buffer.chunksAllocated <= 3, `allocated ${buffer.chunksAllocated} chunks`);
    assert.equal([...Deno.readDirSync(dir)].length, 1);
    // Each message is checked before the next is asked for: a view is valid until then.
    const back: number[] = [];
    for (const message of buffer.messages()) {
      back.push(Number(message.walStart));
      assert.deepEqual(message.bytes, payload(Number(message.walStart)));
    }
    const expected = Array.from({ length: count }, (_, i) => i).filter((i) => i % 3 !== 0);
    assert.deepEqual(back, expected);
    buffer.dispose();
    assert.equal([...Deno.readDirSync(dir)].length, 0, "the spill file is removed");
    assert.equal(budget.usedBytes, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("assembler: a streamed transaction larger than the budget spills and replays whole", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const spill = new SpillBudget({ limitBytes: 256 << 10, dir });
    const assembler = new TransactionAssembler({ protoVersion: 2, spill });
    const relation = f.relation({
      relid: 1,
      namespace: "public",
      name: "t",
      replident: "d",
      columns: [{ flags: 1, name: "id", typeOid: 23, typmod: -1 }, {
        flags: 0,
        name: "body",
        typeOid: 25,
        typmod: -1,
      }],
    }, { xid: 500 });
    const feed = (
      walStart: number,
      bytes: Uint8Array,
    ) => [...assembler.push(BigInt(walStart) as Lsn, bytes)];
    const rows = 30_000;
    let lsn = 0x1000;
    assert.deepEqual(feed(lsn, f.streamStart(500, true)), []);
    feed(lsn, relation);
    for (let i = 0; i < rows; i++) {
      lsn += 0x40;
      assert.deepEqual(
        feed(lsn, f.insert(1, [{ t: String(i) }, { t: "x".repeat(40) }], { xid: 500 })),
        [],
      );
    }
    feed(lsn, f.streamStop());
    assert.ok(spill.spilledBytes > 0, "nothing spilled");
    const items = feed(
      lsn + 0x100,
      f.streamCommit({
        xid: 500,
        commitLsn: BigInt(lsn + 0x80),
        endLsn: BigInt(lsn + 0x100),
        commitTime: 0n,
      }),
    );
    const changes = items.filter((item) => item.kind === "change");
    assert.equal(changes.length, rows);
    assert.equal(items[0]?.kind, "begin");
    const commit = items[items.length - 1];
    assert.ok(commit?.kind === "commit" && commit.eventCount === rows);
    changes.forEach((item, i) => {
      assert.ok(item.kind === "change");
      assert.deepEqual(item.event.after, { id: i, body: "x".repeat(40) });
      assert.equal(item.event.source.commitLsn, BigInt(lsn + 0x80));
      assert.equal(item.event.source.xid, 500);
    });
    assert.equal(spill.usedBytes, 0);
    assert.equal([...Deno.readDirSync(dir)].length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("streamed buffer: a spill file cut short fails the replay, naming the file, instead of ending early", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const buffer = new StreamedBuffer(new SpillBudget({ limitBytes: 1 << 20, dir }));
    for (let i = 0; i < 20_000; i++) buffer.push(BigInt(i) as Lsn, 7, payload(i));
    const [spill] = [...Deno.readDirSync(dir)];
    const path = `${dir}/${spill!.name}`;
    await Deno.truncate(path, (await Deno.stat(path)).size - 10);
    assert.throws(
      () => [...buffer.messages()],
      (error: Error) =>
        error.message.includes(`spill file "${path}": it ends inside a change`) &&
        error.message.includes("a restart receives it again"),
    );
    buffer.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("streamed buffer: a change larger than a chunk, spilled between small ones, comes back whole, and the small ones around it too", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const buffer = new StreamedBuffer(new SpillBudget({ limitBytes: 1 << 20, dir }));
    const big = new Uint8Array(3 << 20).map((_, i) => i % 251);
    const bytesOf = (i: number) => i === 5_000 || i === 9_000 ? big : payload(i);
    for (let i = 0; i < 12_000; i++) buffer.push(BigInt(i) as Lsn, 7, bytesOf(i));
    assert.ok(buffer.spilledBytes > 6 << 20, `spilled only ${buffer.spilledBytes} bytes`);
    let i = 0;
    for (const message of buffer.messages()) {
      assert.equal(message.walStart, BigInt(i));
      assert.deepEqual(message.bytes, bytesOf(i));
      i++;
    }
    assert.equal(i, 12_000);
    buffer.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
