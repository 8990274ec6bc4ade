import assert from "node:assert/strict";
import { FrameParser } from "../decoder/backend.ts";
import { concat, copyData, keepalive } from "../tests/testdata/_frames.ts";
import type { Transport } from "./_transport.ts";
import { type CopyBothHost, ReplicationStream } from "./stream.ts";

/**
 * A server that floods keepalives asking for a reply and never reads: its socket takes no
 * status update, so `send` stays pending until the test lets it go.
 */
function floodingHost(keepalives: number) {
  const frame = copyData(keepalive(0x1000n, 0n, true));
  const chunks = [concat(...Array.from({ length: keepalives }, () => frame))];
  const transport = {
    read: () => chunks.length > 0 ? Promise.resolve(chunks.shift()!) : new Promise(() => {}),
    get hasBuffered() {
      return chunks.length > 0;
    },
  } as unknown as Transport;
  const sent: Uint8Array[] = [];
  const pending: (() => void)[] = [];
  let reading = false;
  const host: CopyBothHost = {
    options: { user: "u", database: "d", host: "fake" },
    closed: false,
    wire: { transport, parser: new FrameParser() },
    takeBufferedFrames: () => [],
    send: (bytes) => {
      sent.push(bytes);
      return reading ? Promise.resolve() : new Promise<void>((resolve) => pending.push(resolve));
    },
    sendCopyDone: () => Promise.resolve(),
    markClosed() {},
    destroy() {},
  };
  /** The server reads again: every status update written so far is taken. */
  const drain = () => {
    for (const resolve of pending.splice(0)) resolve();
  };
  /** The server reads from now on. */
  const read = () => {
    reading = true;
    drain();
  };
  return { host, sent, drain, read };
}

Deno.test("stream: keepalives asking for replies while the server reads nothing queue one status update, not one each", async () => {
  const { host, sent, drain, read } = floodingHost(10_000);
  const stream = new ReplicationStream(host, { statusIntervalMs: 60_000 }, () => {});
  try {
    for (let i = 0; i < 1_000 && stream.stats.keepalivesReceived < 10_000; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    assert.equal(stream.stats.keepalivesReceived, 10_000);
    assert.equal(sent.length, 1, "one update written; the other 9,999 replies wait as one");
    drain(); // the server reads: the one update asked for meanwhile follows
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(sent.length, 2);
  } finally {
    read();
    await stream.stop(10);
  }
});
