import assert from "node:assert/strict";
import { join } from "node:path";
import type { Lsn } from "../decoder/lsn.ts";
import type { ChangeEvent } from "../events.ts";
import { FileSink } from "./file.ts";
import type { SinkRecord } from "../events.ts";

function change(id: number): SinkRecord {
  const event: ChangeEvent = {
    op: "c",
    source: {
      schema: "public",
      table: "orders",
      relid: 1,
      lsn: BigInt(id * 16) as Lsn,
      commitLsn: BigInt(id * 16 + 8) as Lsn,
      xid: 700 + id,
      commitTime: 1_700_000_000_000_000n,
    },
    before: null,
    after: { id, note: "x".repeat(50) },
    unchanged: [],
  };
  return { kind: "change", event, topic: "app.public.orders", key: { id } };
}

async function lines(path: string): Promise<Record<string, unknown>[]> {
  const text = await Deno.readTextFile(path);
  return text.trim().split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
}

Deno.test("file sink: JSON lines with topic, key and the event, appended across reopen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "nested", "out.jsonl");
    const sink = new FileSink({ path });
    await sink.open();
    await sink.write([change(1), change(2)]);
    await sink.close();
    const again = new FileSink({ path });
    await again.open();
    await again.write([change(3)]);
    await again.close();
    const written = await lines(path);
    assert.deepEqual(written.map((line) => (line.after as { id: number }).id), [1, 2, 3]);
    assert.equal(written[0]?.topic, "app.public.orders");
    assert.deepEqual(written[0]?.key, { id: 1 });
    assert.equal((written[0]?.source as { lsn: string }).lsn, "0/10");
    assert.equal(again.status().written, 1);
    assert.equal(again.status().state, "ok");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: rotates by size into numbered files and keeps numbering after a restart", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "changes.jsonl");
    const sink = new FileSink({ path, rotateBytes: 1000 });
    await sink.open();
    for (let i = 0; i < 20; i++) await sink.write([change(i), change(i + 100)]);
    await sink.close();
    const restarted = new FileSink({ path, rotateBytes: 1000 });
    await restarted.open();
    for (let i = 200; i < 210; i++) await restarted.write([change(i)]);
    await restarted.close();

    const names = [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
    const rotated = names.filter((name) => /^changes-\d{6}\.jsonl$/.test(name));
    assert.ok(rotated.length >= 5, `rotated files: ${names.join(", ")}`);
    assert.deepEqual(
      rotated.map((name) => Number(name.slice(8, 14))),
      rotated.map((_, i) => i + 1),
      "numbers count up from 1 with no gap or overwrite",
    );
    let all: number[] = [];
    for (const name of [...rotated, "changes.jsonl"]) {
      const file = join(dir, name);
      if (name !== "changes.jsonl") assert.ok(Deno.statSync(file).size <= 1000);
      all = all.concat((await lines(file)).map((line) => (line.after as { id: number }).id));
    }
    const expected = [
      ...Array.from({ length: 20 }, (_, i) => [i, i + 100]).flat(),
      ...Array.from({ length: 10 }, (_, i) => 200 + i),
    ];
    assert.deepEqual(all, expected, "every record once, in order, across the files");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: a write after close is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const sink = new FileSink({ path: join(dir, "out.jsonl") });
    await sink.open();
    await sink.close();
    await assert.rejects(() => sink.write([change(1)]), /not open/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: an unwritable directory names the path and the fix", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const blocker = join(dir, "file");
    await Deno.writeTextFile(blocker, "");
    const sink = new FileSink({ path: join(blocker, "out.jsonl") });
    await assert.rejects(() => sink.open(), (error: Error) => error.message.includes(blocker));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: writes inside a transaction (durable: false) are not fsync'ed until a durable one; rotation keeps them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "changes.jsonl");
    const sink = new FileSink({ path, rotateBytes: 2000 });
    await sink.open();
    for (let i = 1; i <= 3; i++) await sink.write([change(i)], { durable: false });
    assert.equal(sink.fsyncs, 0);
    await sink.write([change(4)]);
    assert.equal(sink.fsyncs, 1, "one fsync covers the earlier writes");
    await sink.write([change(5)], { durable: true });
    assert.equal(sink.fsyncs, 2);
    // Non-durable writes past the rotation size: the rotated file is fsync'ed before it is
    // closed, so nothing written to it is left behind.
    for (let i = 6; i <= 20; i++) await sink.write([change(i)], { durable: false });
    assert.ok(sink.fsyncs > 2, "rotation fsync'ed the file it rotated");
    await sink.close();
    // Sorted, the rotated files (`changes-000001.jsonl`, …) come before the active one.
    const names = [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
    assert.ok(names.length > 1, `rotated: ${names.join(", ")}`);
    assert.equal(names.at(-1), "changes.jsonl");
    const ids: number[] = [];
    for (const name of names) {
      for (const line of await lines(join(dir, name))) ids.push((line.after as { id: number }).id);
    }
    assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => i + 1));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: a rotation that fails is retried by the next write and loses nothing; close fsyncs what is pending", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "changes.jsonl");
    const sink = new FileSink({ path, rotateBytes: 600 });
    await sink.open();
    await sink.write([change(1), change(2)]);
    // A directory where the rotated file must go makes the rename fail.
    const blocker = join(dir, "changes-000001.jsonl");
    await Deno.mkdir(blocker);
    let error: unknown = null;
    try {
      await sink.write([change(3)]);
    } catch (caught) {
      error = caught;
    }
    assert.ok(error instanceof Error, "the blocked rotation fails");
    assert.equal((error as { retriable?: boolean }).retriable, true);
    assert.match(
      error.message,
      /Cannot write to file sink ".*changes\.jsonl": .*; check free space/,
    );
    assert.equal(sink.status().state, "failing");
    await Deno.remove(blocker);
    // The same records again (as the runner retries): the sink recovers.
    await sink.write([change(3)], { durable: false });
    assert.equal(sink.status().state, "ok");
    const before = sink.fsyncs;
    await sink.close();
    assert.equal(sink.fsyncs, before + 1, "close fsynced the non-durable write");
    const names = [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
    const ids: number[] = [];
    for (const name of names) {
      for (const line of await lines(join(dir, name))) ids.push((line.after as { id: number }).id);
    }
    assert.deepEqual(ids.sort((a, b) => a - b), [1, 2, 3]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: a last line torn by a crash is cut off on open, logged, and the next record starts a line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "out.jsonl");
    const first = new FileSink({ path });
    await first.open();
    await first.write([change(1), change(2)]);
    await first.close();
    const complete = (await Deno.stat(path)).size;
    // A crash in the middle of the next write: half a line, longer than one read chunk.
    const torn = `{"topic":"app.public.orders","after":{"id":3,"note":"${"y".repeat(70_000)}`;
    await Deno.writeTextFile(path, torn, { append: true });

    const logged: { message: string; fields?: Record<string, unknown> }[] = [];
    const again = new FileSink({
      path,
      log: (_level, message, fields) => logged.push({ message, fields }),
    });
    await again.open();
    assert.equal((await Deno.stat(path)).size, complete);
    await again.write([change(4)]);
    await again.close();
    assert.deepEqual((await lines(path)).map((line) => (line.after as { id: number }).id), [
      1,
      2,
      4,
    ]);
    assert.equal(logged.length, 1);
    assert.match(logged[0]!.message, /torn last line/);
    assert.equal(logged[0]!.fields?.bytes, new TextEncoder().encode(torn).byteLength);

    // A file that is one torn line and nothing else is emptied; a whole file is left alone.
    await Deno.writeTextFile(path, '{"topic":"app.pub');
    const only = new FileSink({ path });
    await only.open();
    await only.close();
    assert.equal(await Deno.readTextFile(path), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
