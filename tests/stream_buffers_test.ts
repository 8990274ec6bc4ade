/**
 * The replication stream's reuse of its read buffers (`reuseReadBuffers`, which the source
 * asks for): a batch's bytes stay as they came until the next batch is asked for, however
 * the server's writes cut the frames and whenever the consumer asks, and the transport's
 * buffers are reused rather than made anew.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LSN_ZERO } from "../decoder/lsn.ts";
import type { XLogData } from "../decoder/replication.ts";
import { PgConnection } from "../postgres/connection.ts";
import { acceptReplication, fakeOptions, fakeServer } from "./_fake_server.ts";
import { seededRandom } from "../testing/random.ts";
import { backendFrame, Bytes, concat, copyData, xlogData } from "./testdata/_frames.ts";

/** The payload of message `i`: 1 to 3,000 bytes that say which message and which byte. */
function payload(i: number): Uint8Array {
  const length = 1 + (i * 37) % 3_000;
  return Uint8Array.from({ length }, (_, k) => (i * 13 + k * 7) & 0xff);
}

const MESSAGES = 20_000;

Deno.test("stream: with reuseReadBuffers, every batch holds what the server sent until the next is asked for; buffers are reused", async () => {
  const random = seededRandom(7);
  await using server = fakeServer(async (conn) => {
    await acceptReplication(conn);
    await conn.write(backendFrame("W", new Bytes().byte(0).int16(0).done()));
    // All messages, written in pieces of 1 byte to 40 KB cut anywhere, with pauses.
    const all = concat(
      ...Array.from(
        { length: MESSAGES },
        (_, i) => copyData(xlogData(BigInt(i), BigInt(i), 0n, payload(i))),
      ),
    );
    for (let offset = 0; offset < all.byteLength;) {
      const piece = all.subarray(offset, offset + 1 + Math.floor(random.next() * 40_000));
      for (let written = 0; written < piece.byteLength;) {
        written += await conn.write(piece.subarray(written));
      }
      offset += piece.byteLength;
      if (random.next() < 0.05) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await new Promise(() => {}); // stays open until the test ends
  });
  const connection = await PgConnection.connect(
    fakeOptions(server.port, { replication: "database", database: "database" }),
  );
  const stream = await connection.startReplication({
    slot: "s",
    startLsn: LSN_ZERO,
    pgoutput: { protoVersion: 1, publicationNames: ["p"] },
    maxBufferedBytes: 256 << 10,
    reuseReadBuffers: true,
  });
  // A hang fails the test: the connection is dropped, which ends the stream.
  const guard = setTimeout(() => connection.destroy(), 60_000);
  try {
    let next = 0;
    let previous: { batch: XLogData[]; first: number } | null = null;
    while (next < MESSAGES) {
      // The batch before is still as it came, right up to the next call.
      if (previous !== null) {
        previous.batch.forEach((message, k) => {
          assert.deepEqual(
            message.data,
            payload(previous!.first + k),
            `message ${previous!.first + k}, kept until now`,
          );
        });
      }
      // Asked for directly, as the source does: the fewest turns between the read loop's
      // steps and this call.
      const batch = await stream.nextBatch();
      assert.ok(batch !== null, `the stream ended after ${next} messages`);
      previous = { batch, first: next };
      for (const message of batch) {
        assert.equal(message.walStart, BigInt(next));
        assert.deepEqual(message.data, payload(next), `message ${next}`);
        next++;
      }
      // The consumer asks for the next batch at once, after a turn of the event loop, or
      // after a while: each lets the read loop be at another point.
      const wait = random.next();
      if (wait < 0.3) await new Promise((resolve) => setTimeout(resolve, 0));
      else if (wait < 0.4) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    // About 30 MB came through buffers of 256 KiB: without reuse 120 would be made.
    const made = connection.wire.transport.buffersAllocated;
    assert.ok(made <= 40, `${made} read buffers made`);
  } finally {
    clearTimeout(guard);
    connection.destroy();
    await stream.stop(100).catch(() => {});
  }
});
