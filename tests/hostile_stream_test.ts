/**
 * A replication server that floods keepalives asking for a reply and never reads what it is
 * sent: the client's writes stay bounded (status replies coalesced, a cap on what may wait
 * in the socket), and stopping the stream and closing the connection end within their
 * deadlines instead of waiting for the server to read.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LSN_ZERO } from "../decoder/lsn.ts";
import { PgConnection } from "../postgres/connection.ts";
import { fakeOptions, fakeServer, within } from "./_fake_server.ts";
import { backendFrame, Bytes, concat, keepalive, utf8 } from "./testdata/_frames.ts";

/** Reads from `conn` until `bytes` holds a frontend message of type `code`. */
async function readUntil(conn: Deno.Conn, code: string): Promise<void> {
  const buffer = new Uint8Array(65536);
  let seen = "";
  while (!seen.includes(code)) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("the client went away");
    seen += String.fromCharCode(...buffer.subarray(0, n));
  }
}

Deno.test("hostile server: a keepalive flood with replies requested, never reading: bounded writes, and stop() and close() end on time", async () => {
  let keepalivesSent = 0;
  await using flood = fakeServer(async (conn) => {
    await readUntil(conn, "database"); // the startup packet
    await conn.write(concat(
      backendFrame("R", new Bytes().int32(0).done()),
      backendFrame("S", concat(utf8("server_version\0"), utf8("17.0\0"))),
      backendFrame("Z", utf8("I")),
    ));
    await readUntil(conn, "START_REPLICATION");
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
  while (stream.stats.keepalivesReceived < 1_000_000) {
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
  // The goodbye cannot be delivered: stop() gives up at its deadline, close() soon after.
  await within(stream.stop(500), 15_000);
  await within(connection.close(), 15_000);
  await within(reading, 15_000);
  assert.equal(connection.closed, true);
});
