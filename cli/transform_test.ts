import assert from "node:assert/strict";
import { join } from "node:path";
import { transformCommand } from "./transform.ts";

Deno.test("spillway transform: runs a transform on JSON-line events from tail, printing what it passes on and naming failures by file:line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spillway-transform-cli-" });
  try {
    const file = join(dir, "orders.ts");
    await Deno.writeTextFile(
      file,
      `import { defineTransform } from "spillway";
export default defineTransform<{ id: number; status: string }>({
  begin(tx, ctx) { ctx.log("info", "begin " + tx.xid); },
  change(event) {
    if (event.after?.id === 3) throw new Error("three");
    if (event.after?.status === "test") return null;
    return { ...event, topic: "orders.clean" };
  },
});
`,
    );
    const source = (xid: number) => ({
      schema: "public",
      table: "orders",
      relid: 16384,
      lsn: "0/10",
      commitLsn: `0/${xid}F`,
      xid,
      commitTime: "2026-12-05T12:00:00.000000Z",
    });
    const line = (xid: number, id: number, status: string) =>
      JSON.stringify({
        op: "c",
        before: null,
        after: { id, status },
        unchanged: [],
        source: source(xid),
      });
    const input = [
      JSON.stringify({ type: "begin", xid: 7 }),
      line(7, 1, "paid"),
      line(7, 2, "test"),
      JSON.stringify({ type: "commit", xid: 7 }),
      line(8, 3, "paid"),
      line(8, 4, "new"),
    ].join("\n");
    const out: string[] = [];
    const err: string[] = [];
    const code = await transformCommand([file], {
      stdout: (l) => out.push(l),
      stderr: (l) => err.push(l),
      stdin: ReadableStream.from([new TextEncoder().encode(input)]),
    });
    assert.equal(code, 1, err.join("\n"));
    assert.deepEqual(out.map((l) => [JSON.parse(l).after.id, JSON.parse(l).topic]), [
      [1, "orders.clean"],
      [4, "orders.clean"],
    ]);
    assert.deepEqual(err.filter((l) => l.startsWith("info")), ["info begin 7", "info begin 8"]);
    const failure = err.find((l) => l.startsWith("error"));
    assert.match(
      failure ?? "",
      new RegExp(`^error Error: three \\(at ${RegExp.escape(file)}:5:\\d+\\)$`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spillway transform: skips lines that are not changes, replays dead letters, and an event past --timeout fails alone", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spillway-transform-cli-" });
  try {
    const file = join(dir, "loop.ts");
    await Deno.writeTextFile(
      file,
      `import { defineTransform } from "spillway";
export default defineTransform<{ id: number }>({
  change(event) {
    if (event.after?.id === 2) for (;;) {}
    return event;
  },
});
`,
    );
    const source = {
      schema: "public",
      table: "t",
      relid: 1,
      lsn: "0/10",
      commitLsn: "0/1F",
      xid: 7,
      commitTime: "2026-12-05T12:00:00.000000Z",
    };
    const change = (id: number) => ({
      op: "c",
      before: null,
      after: { id },
      unchanged: [],
      source,
    });
    const input = [
      JSON.stringify({ op: "m", transactional: false, prefix: "p", content: "", lsn: "0/1" }),
      JSON.stringify({ type: "schema-change", schema: "public", table: "t", relid: 1 }),
      JSON.stringify(change(1)),
      JSON.stringify(change(2)),
      JSON.stringify({ type: "dead-letter", transform: "t.ts", event: change(3) }),
    ].join("\n");
    const out: string[] = [];
    const err: string[] = [];
    const code = await transformCommand([file, "--timeout", "100ms"], {
      stdout: (l) => out.push(l),
      stderr: (l) => err.push(l),
      stdin: ReadableStream.from([new TextEncoder().encode(input)]),
    });
    assert.equal(code, 1, err.join("\n"));
    assert.deepEqual(out.map((l) => JSON.parse(l).after.id), [1, 3]);
    assert.equal(
      err.filter((l) => /^error .*time budget of 100 ms/.test(l)).length,
      1,
      err.join("\n"),
    );
    assert.ok(err.includes("info skipped 2 line(s) that are not change events"), err.join("\n"));
    const bad = await transformCommand([file, "--timeout", "soon"], {
      stdout: () => {},
      stderr: (l) => err.push(l),
      stdin: ReadableStream.from([]),
    });
    assert.equal(bad, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
