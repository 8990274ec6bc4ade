import assert from "node:assert/strict";
import * as net from "node:net";
import { Transport } from "./_transport.ts";

/**
 * A local TCP server that writes each of `pieces` `gapMs` apart to the first client, then
 * keeps the connection open until closed.
 */
async function trickleServer(pieces: string[], gapMs: number) {
  const sockets: net.Socket[] = [];
  const timers: ReturnType<typeof setTimeout>[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    // One write after another, each `gapMs` after the last was handed to the socket.
    let next = 0;
    const write = () => {
      if (next >= pieces.length || socket.destroyed) return;
      socket.write(pieces[next++]!);
      timers.push(setTimeout(write, gapMs));
    };
    write();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const text = (bytes: Uint8Array | null) => new TextDecoder().decode(bytes ?? undefined);

Deno.test("transport: without a hold, each small piece the server writes apart is a read of its own", async () => {
  const server = await trickleServer(["a", "b", "c"], 40);
  const transport = await Transport.connect("127.0.0.1", server.port);
  try {
    const reads = [await transport.read(), await transport.read(), await transport.read()];
    assert.deepEqual(reads.map(text), ["a", "b", "c"]);
  } finally {
    transport.close();
    await server.close();
  }
});

Deno.test("transport: holdSmallReads takes a trickle of small writes in fewer, larger reads, every byte in order", async () => {
  // 300 writes of 1,000 bytes, one a millisecond (as a walsender streaming as it decodes).
  const pieces = Array.from({ length: 300 }, (_, i) => String(i % 10).repeat(1_000));
  const server = await trickleServer(pieces, 1);
  const transport = await Transport.connect("127.0.0.1", server.port);
  try {
    transport.holdSmallReads(20);
    const reads: string[] = [];
    let length = 0;
    while (length < 300_000) {
      const chunk = text(await transport.read());
      reads.push(chunk);
      length += chunk.length;
    }
    assert.equal(reads.join(""), pieces.join(""));
    // About one read per hold, plus what the socket read before pausing; a busy machine
    // only makes reads fewer.
    assert.ok(reads.length <= 75, `${reads.length} reads for 300 writes`);
  } finally {
    transport.close();
    await server.close();
  }
});

Deno.test("transport: holdSmallReads(0) ends a hold at once", async () => {
  const server = await trickleServer(["a", "b"], 40);
  const transport = await Transport.connect("127.0.0.1", server.port);
  try {
    transport.holdSmallReads(60_000);
    assert.equal(text(await transport.read()), "a");
    // "b" is sent 40 ms after "a": held, it has not come 300 ms later.
    const next = transport.read();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<"waiting">((resolve) =>
      timer = setTimeout(() => resolve("waiting"), 300)
    );
    assert.equal(await Promise.race([next.then(() => "read"), waited]), "waiting");
    clearTimeout(timer);
    transport.holdSmallReads(0); // a minute's hold would time the test out
    assert.equal(text(await next), "b");
  } finally {
    transport.close();
    await server.close();
  }
});
