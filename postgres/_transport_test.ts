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

/** A local TCP server that writes `bytes` in pieces of `piece` bytes to the first client. */
async function writingServer(bytes: Uint8Array, piece: number) {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    for (let at = 0; at < bytes.byteLength; at += piece) {
      socket.write(bytes.subarray(at, at + piece));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** 4 MiB whose every byte says where it is. */
const pattern = Uint8Array.from({ length: 4 << 20 }, (_, i) => (i * 7 + (i >> 12)) & 0xff);

Deno.test("transport: reads are copied into the transport's buffers; a released one is written over, never one still viewed", async () => {
  const server = await writingServer(pattern, 5_000);
  const transport = await Transport.connect("127.0.0.1", server.port, {
    highWaterBytes: 512 << 10,
  });
  try {
    let received = 0;
    let kept: { chunk: Uint8Array; from: number } | null = null;
    let first: Uint8Array | null = null;
    let poisoned = false;
    while (received < pattern.byteLength) {
      const chunk = (await transport.read())!;
      assert.ok(chunk !== null, "the server sent all it has");
      assert.ok(chunk.buffer.byteLength >= 256 << 10, "a view into a buffer of the transport");
      // The chunk kept since the last read was not written over by the reads since.
      if (kept !== null) {
        assert.deepEqual(
          kept.chunk,
          pattern.subarray(kept.from, kept.from + kept.chunk.byteLength),
        );
      }
      assert.deepEqual(chunk, pattern.subarray(received, received + chunk.byteLength));
      kept = { chunk, from: received };
      received += chunk.byteLength;
      assert.equal(transport.position, received);
      // Done with everything before this chunk: that may be written over, this may not.
      transport.release(kept.from);
      // (Buffers filled before the first release are not tracked: they go to the collector.)
      if (kept.from >= 1 << 20) first ??= chunk;
      // That chunk's buffer is released once it is full and read past; until it is read
      // into again, a view kept past its release reads the poison, not other bytes.
      poisoned ||= first !== null && first !== chunk && first.every((byte) => byte === 0xee);
    }
    assert.ok(poisoned, "a released buffer is poisoned");
    // 4 MiB through buffers of 256 KiB: without reuse 16 or more would be made.
    assert.ok(transport.buffersAllocated <= 8, `${transport.buffersAllocated} buffers made`);
  } finally {
    transport.close();
    await server.close();
  }
});

Deno.test("transport: without release, no buffer is reused: every chunk keeps its bytes", async () => {
  const server = await writingServer(pattern, 64 << 10);
  const transport = await Transport.connect("127.0.0.1", server.port);
  try {
    const chunks: Uint8Array[] = [];
    let received = 0;
    while (received < pattern.byteLength) {
      const chunk = (await transport.read())!;
      chunks.push(chunk);
      received += chunk.byteLength;
    }
    let at = 0;
    for (const chunk of chunks) {
      assert.deepEqual(chunk, pattern.subarray(at, at + chunk.byteLength));
      at += chunk.byteLength;
    }
    assert.ok(transport.buffersAllocated >= 16, `${transport.buffersAllocated} buffers made`);
  } finally {
    transport.close();
    await server.close();
  }
});

Deno.test("transport: endReuse ends the reuse: later reads are kept by no one, and chunks read before stay as they were", async () => {
  const server = await writingServer(pattern, 5_000);
  const transport = await Transport.connect("127.0.0.1", server.port, {
    highWaterBytes: 512 << 10,
  });
  try {
    let received = 0;
    while (received < 1 << 20) {
      const chunk = (await transport.read())!;
      received += chunk.byteLength;
      transport.release(received - chunk.byteLength);
    }
    // Then read on without releasing: the buffers filled meanwhile wait for a release.
    while (received < 2 << 20) received += (await transport.read())!.byteLength;
    assert.ok(transport.buffersKept > 0, "kept for a release while reuse is on");
    transport.endReuse();
    assert.equal(transport.buffersKept, 0);
    // As after a replication stream ends: the connection's next reader does not release.
    const after: { chunk: Uint8Array; from: number }[] = [];
    while (received < pattern.byteLength) {
      const chunk = (await transport.read())!;
      after.push({ chunk, from: received });
      received += chunk.byteLength;
    }
    assert.equal(transport.buffersKept, 0, "nothing kept for a release that will not come");
    for (const { chunk, from } of after) {
      assert.deepEqual(chunk, pattern.subarray(from, from + chunk.byteLength));
    }
  } finally {
    transport.close();
    await server.close();
  }
});
