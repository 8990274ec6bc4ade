/**
 * A replication server that floods keepalives asking for a reply and never reads what it is
 * sent: the client's writes stay bounded (status replies coalesced, a cap on what may wait
 * in the socket), and stopping the stream and closing the connection end within their
 * deadlines instead of waiting for the server to read. And a server that sends a frame over
 * the limit and closes: the stream fails with the frame's error.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LSN_ZERO } from "../decoder/lsn.ts";
import { PgConnection } from "../postgres/connection.ts";
import { acceptReplication, fakeOptions, fakeServer, within } from "./_fake_server.ts";
import { FrameTooLargeError } from "../decoder/backend.ts";
import {
  backendFrame,
  Bytes,
  concat,
  copyData,
  keepalive,
  utf8,
  xlogData,
} from "./testdata/_frames.ts";

Deno.test("hostile server: a keepalive flood with replies requested, never reading: bounded writes, and stop() and close() end on time", async () => {
  let keepalivesSent = 0;
  await using flood = fakeServer(async (conn) => {
    await acceptReplication(conn);
    await conn.write(backendFrame("W", new Bytes().byte(0).int16(0).done()));
    // From here on, nothing the client sends is read.
    const burst = concat(
      ...Array.from({ length: 500 }, () => backendFrame("d", keepalive(0n, 0n, true))),
    );
    for (;;) {
      for (let offset = 0; offset < burst.byteLength;) {
        offset += await conn.write(burst.subarray(offset));
      }
      keepalivesSent += 500;
    }
  });
  const connection = await PgConnection.connect(
    fakeOptions(flood.port, { replication: "database", database: "database" }),
  );
  const stream = await connection.startReplication({
    slot: "s",
    startLsn: LSN_ZERO,
    pgoutput: { protoVersion: 1, publicationNames: ["p"] },
  });
  const reading = (async () => {
    try {
      while (await stream.nextBatch() !== null) { /* keepalives make no batches */ }
    } catch { /* ended by stop() */ }
  })();
  // A flood of keepalives asking for replies: the replies are coalesced (one in flight at a
  // time), so what we write stays small however long the flood goes on.
  const transport = connection.wire.transport;
  let mostPending = 0;
  // Bounded, so that a regression fails rather than hangs: it takes about a second here,
  // and 12,000 waits are at least two minutes.
  for (let waits = 0; stream.stats.keepalivesReceived < 1_000_000; waits++) {
    if (waits === 12_000) {
      connection.destroy();
      assert.fail(`only ${stream.stats.keepalivesReceived} keepalives read in 12,000 waits`);
    }
    mostPending = Math.max(mostPending, transport.pendingWriteBytes);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.ok(mostPending <= 2 * 64, `${mostPending} bytes waited to be written`);
  assert.ok(
    stream.stats.statusUpdatesSent * 100 < stream.stats.keepalivesReceived,
    `${stream.stats.statusUpdatesSent} replies to ${stream.stats.keepalivesReceived} requests`,
  );
  // Fill every socket buffer between us, as a long backlog of writes to a server that never
  // reads would, until a write waits in ours: then a goodbye can never be delivered.
  const chunk = new Uint8Array(256 * 1024);
  while (transport.pendingWriteBytes === 0) {
    const sent = connection.send(chunk);
    sent.catch(() => {}); // the last ones fail when the connection is closed below
    await Promise.race([sent, new Promise((resolve) => setTimeout(resolve, 20))]);
  }
  // What may wait is bounded: a write past the cap fails at once instead of queueing.
  await assert.rejects(
    connection.send(new Uint8Array(2 << 20)),
    /still waiting for it to read them; it has stopped reading/,
  );
  // The goodbye cannot be delivered, so only stop()'s deadline can end it, and that path
  // drops the connection: it is closed, and the stream ended, before close() is called. (The
  // bounds are hang guards, far above the deadline.)
  await within(stream.stop(100), 60_000);
  assert.equal(connection.closed, true, "stop() dropped the connection at its deadline");
  assert.equal(await within(stream.nextBatch(), 60_000), null, "the stream ended");
  await within(reading, 60_000);
  await within(connection.close(), 60_000);
});

Deno.test("hostile server: a frame over the limit right after whole frames fails the stream with it, though the server then closes", async () => {
  const before = copyData(xlogData(0x10n, 0x20n, 0n, utf8("before")));
  const tooLarge = concat(new Bytes().byte("d").int32(1 << 24).done(), new Uint8Array(64));
  // In one write with CopyBothResponse (the connection's parser meets the big frame), or
  // after the stream's first status update (the stream's reads meet it).
  for (const when of ["with CopyBothResponse", "after a status update"]) {
    await using server = fakeServer(async (conn) => {
      await acceptReplication(conn);
      const copyBoth = backendFrame("W", new Bytes().byte(0).int16(0).done());
      if (when === "with CopyBothResponse") {
        await conn.write(concat(copyBoth, before, tooLarge));
      } else {
        await conn.write(copyBoth);
        await conn.read(new Uint8Array(1024)); // a status update: the stream is running
        await conn.write(concat(before, tooLarge));
      }
      // The server closes its side (and reads on, so the close is not a reset).
      await conn.closeWrite();
      while (await conn.read(new Uint8Array(1024)) !== null) { /* drained */ }
    });
    const connection = await PgConnection.connect(
      fakeOptions(server.port, {
        replication: "database",
        database: "database",
        maxMessageBytes: 1024,
      }),
    );
    const stream = await connection.startReplication({
      slot: "s",
      startLsn: LSN_ZERO,
      pgoutput: { protoVersion: 1, publicationNames: ["p"] },
      statusIntervalMs: 200,
      receiveTimeoutMs: 0,
    });
    // What came before the big frame is delivered first, then its error (not the retriable
    // "server closed the connection" that the close after it would give).
    const batch = await within(stream.nextBatch(), 60_000);
    assert.deepEqual(batch?.map((message) => message.walStart), [0x10n], when);
    const error = await within(stream.nextBatch().then(() => null, (error) => error), 60_000);
    assert.ok(error instanceof FrameTooLargeError, `${when}: ${error}`);
    assert.equal(error.size, 1 + (1 << 24), when);
    await within(connection.close(), 60_000);
  }
});
