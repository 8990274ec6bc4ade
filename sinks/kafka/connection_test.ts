/**
 * The produce connection's framing against a scripted socket server on localhost (the real
 * broker, TLS and SASL are in tests/kafka_*_test.ts): the request header written into the room
 * the request left, answers matched by correlation id in any order and however the bytes are
 * cut, a request's buffer released once written, and every waiting request failed when the
 * socket goes.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createServer, type Server, type Socket } from "node:net";
import { FIND_COORDINATOR } from "./apis.ts";
import { BrokerConnection, type BrokerConnectionOptions, ConnectionPool } from "./connection.ts";
import { type KafkaProtocolError, RequestWriter } from "./wire.ts";

type ScriptedServer = Awaited<ReturnType<typeof scriptedServer>>;

/**
 * A server that collects whole requests (size-prefixed frames) from its one client; `onFrame`
 * may answer each as it comes.
 */
async function scriptedServer(
  onFrame?: (frame: Buffer, write: (bytes: Uint8Array) => void) => void,
) {
  const frames: Buffer[] = [];
  let client: Socket | null = null;
  let pending = Buffer.alloc(0);
  const server: Server = createServer((socket) => {
    client = socket;
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
        const size = pending.readInt32BE(0);
        const frame = pending.subarray(4, 4 + size);
        frames.push(frame);
        pending = pending.subarray(4 + size);
        onFrame?.(frame, (bytes) => socket.write(bytes));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    frames,
    /** Writes raw bytes to the client. */
    write: (bytes: Uint8Array) => client!.write(bytes),
    dropClient: () => client!.destroy(),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * An answer frame: size, correlation id, (response header v1, `tagged`) an empty tagged-field
 * section, then `body`.
 */
function answer(correlationId: number, body: number[], tagged = true): Buffer {
  const at = tagged ? 9 : 8;
  const frame = Buffer.alloc(at + body.length);
  frame.writeInt32BE(frame.length - 4, 0);
  frame.writeInt32BE(correlationId, 4);
  frame.set(body, at);
  return frame;
}

/**
 * A Produce answer (v9–11) for partition 0 of topic `t`: `errorCode` 0 takes the records,
 * others refuse them with `message`.
 */
function produceAnswer(errorCode = 0, message: string | null = null): number[] {
  const writer = new RequestWriter();
  writer.compactArray(["t"], (topic) => {
    writer.compactString(topic);
    writer.compactArray([0], (partition) => {
      writer.int32(partition).int16(errorCode).int64(5n).int64(-1n).int64(0n);
      writer.compactArray([], () => {}).compactString(message).tags();
    });
    writer.tags();
  });
  writer.int32(0).tags();
  return [...writer.bytes()];
}

const options = { clientId: "sp", connectTimeoutMs: 5_000, requestTimeoutMs: 5_000 };

/**
 * Runs `body` with a connection to a scripted server, both closed afterwards; `settings`
 * change {@linkcode options}.
 */
async function withConnection(
  settings: Partial<BrokerConnectionOptions>,
  body: (connection: BrokerConnection, server: ScriptedServer) => Promise<void>,
  onFrame?: Parameters<typeof scriptedServer>[0],
): Promise<void> {
  const server = await scriptedServer(onFrame);
  try {
    const connection = await BrokerConnection.open("127.0.0.1", server.port, {
      ...options,
      ...settings,
    });
    try {
      await body(connection, server);
    } finally {
      connection.close();
    }
  } finally {
    await server.close();
  }
}

/**
 * Sends a Produce request (version 11) of `body` after the connection's header room; `written`
 * runs once it is written, `noResponse` as for acks 0.
 */
function produce(
  connection: BrokerConnection,
  body: number[],
  written: () => void = () => {},
  noResponse = false,
): Promise<void> {
  const bytes = new Uint8Array(connection.headerRoom + body.length);
  bytes.set(body, connection.headerRoom);
  return connection.produce(11, bytes, noResponse, written);
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.ok(condition(), "timed out waiting");
}

Deno.test("broker connection: requests carry their header in the room left for it; answers match by correlation id in any order and however cut", async () => {
  await withConnection({}, async (connection, server) => {
    const released: number[] = [];
    const first = produce(connection, [1, 2, 3], () => released.push(1));
    const second = produce(connection, [4], () => released.push(2));
    await until(() => server.frames.length === 2);
    assert.deepEqual(released, [1, 2], "each request's buffer is released once written");
    // api_key 0, api_version 11, correlation ids 1 and 2, client_id "sp", empty tags, body.
    assert.deepEqual([...server.frames[0]!], [0, 0, 0, 11, 0, 0, 0, 1, 0, 2, 115, 112, 0, 1, 2, 3]);
    assert.deepEqual([...server.frames[1]!.subarray(4, 8)], [0, 0, 0, 2]);
    // The second answered first, both in one write cut one byte into the second frame's size.
    const answers = Buffer.concat([answer(2, produceAnswer()), answer(1, produceAnswer())]);
    server.write(answers.subarray(0, 11));
    await new Promise((resolve) => setTimeout(resolve, 20));
    server.write(answers.subarray(11));
    await Promise.all([first, second]);
    // A partition refused fails that request only, with the broker's error and message.
    const refused = produce(connection, [5]);
    await until(() => server.frames.length === 3);
    server.write(answer(3, produceAnswer(10, "too big")));
    await assert.rejects(refused, (error: KafkaProtocolError) => {
      assert.equal(error.type, "MESSAGE_TOO_LARGE");
      assert.match(error.message, /MESSAGE_TOO_LARGE producing to t\[0\]: too big/);
      return true;
    });
    assert.equal(connection.broken, false);
    // Other requests: written by their API, their answers read by it.
    const found = connection.request(FIND_COORDINATOR, { key: "g", keyType: 0 });
    await until(() => server.frames.length === 4);
    // api_key 10, version 3, correlation id 4, client id, tags; key "g" (compact), key_type 0.
    assert.deepEqual([...server.frames[3]!], [
      0,
      10,
      0,
      3,
      0,
      0,
      0,
      4,
      0,
      2,
      115,
      112,
      0,
      2,
      103,
      0,
      0,
    ]);
    const coordinator = new RequestWriter();
    coordinator.int32(0).int16(0).compactString(null).int32(7).compactString("b7").int32(9092);
    server.write(answer(4, [...coordinator.tags().bytes()]));
    assert.deepEqual(await found, {
      errorCode: 0,
      errorMessage: null,
      nodeId: 7,
      host: "b7",
      port: 9092,
    });
  });
});

Deno.test("broker connection: a socket that closes fails every waiting request, retriably, and the connection takes no more", async () => {
  await withConnection({}, async (connection, server) => {
    const waiting = [1, 2, 3].map((n) => produce(connection, [n]));
    await until(() => server.frames.length === 3);
    server.dropClient();
    for (const request of waiting) {
      await assert.rejects(request, (error: Error & { code?: string }) => {
        assert.match(error.message, /connection to Kafka at 127\.0\.0\.1:\d+/);
        assert.equal(error.code, "NETWORK");
        return true;
      });
    }
    assert.equal(connection.broken, true);
    let released = false;
    await assert.rejects(produce(connection, [4], () => released = true), /connection to Kafka/);
    assert.ok(released, "a request refused at once is released too");
  });
});

Deno.test("broker connection: a broker that is not there fails the open, naming where", async () => {
  const server = await scriptedServer();
  const port = server.port;
  await server.close();
  await assert.rejects(
    BrokerConnection.open("127.0.0.1", port, options),
    new RegExp(`connecting to Kafka at 127\\.0\\.0\\.1:${port} failed: .*(ECONNREFUSED|refused)`),
  );
});

Deno.test("broker connection: an answer whose size no Kafka answer has fails the connection, saying so", async () => {
  await withConnection({}, async (connection, server) => {
    const waiting = produce(connection, [1]);
    await until(() => server.frames.length === 1);
    // What an HTTP server would answer: "HTTP" read as a size.
    server.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"));
    await assert.rejects(waiting, (error: Error & { code?: string }) => {
      assert.match(error.message, /sent an answer of \d+ bytes.*a Kafka listener/);
      assert.equal(error.code, "WRONG_LISTENER", "no retry mends it");
      return true;
    });
    assert.equal(connection.broken, true);
  });
});

Deno.test("broker connection: a request not answered within the request timeout gives the connection up; a request without an answer (acks 0) is done once written", async () => {
  await withConnection({ requestTimeoutMs: 100 }, async (connection) => {
    let released = false;
    await produce(connection, [1], () => released = true, true);
    assert.ok(released);
    await assert.rejects(produce(connection, [2]), /did not answer a request within 100 ms/);
    assert.equal(connection.broken, true);
  });
});

Deno.test("broker connection: SASL PLAIN in SaslHandshake v1 and SaslAuthenticate v2; a session the broker limits retires the connection at 80% of it, after its requests are answered", async () => {
  const seen: { apiKey: number; version: number; tail: string }[] = [];
  const broker = (frame: Buffer, write: (bytes: Uint8Array) => void) => {
    const apiKey = frame.readInt16BE(0);
    const version = frame.readInt16BE(2);
    const correlationId = frame.readInt32BE(4);
    seen.push({ apiKey, version, tail: frame.subarray(8).toString("latin1") });
    if (apiKey === 17) {
      // SaslHandshake v1 (response header v0): error_code 0, mechanisms ["PLAIN"]
      // (non-flexible: INT32 count).
      write(answer(correlationId, [0, 0, 0, 0, 0, 1, 0, 5, ...Buffer.from("PLAIN")], false));
    } else if (apiKey === 36) {
      // SaslAuthenticate v2: error_code 0, error_message null, auth_bytes empty,
      // session_lifetime_ms 300, empty tags.
      write(answer(correlationId, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x2c, 0]));
    }
  };
  const sasl = { mechanism: "PLAIN", username: "alice", password: "s3cret" } as const;
  await withConnection({ sasl }, async (connection, server) => {
    assert.deepEqual(seen.map(({ apiKey, version }) => [apiKey, version]), [[17, 1], [36, 2]]);
    // Header v1 for the handshake (client_id, no tags), then the mechanism's name.
    assert.ok(seen[0]!.tail.endsWith("\x00\x02sp\x00\x05PLAIN"), JSON.stringify(seen[0]!.tail));
    assert.ok(seen[1]!.tail.includes("\x00alice\x00s3cret"));
    assert.equal(connection.broken, false);
    const waiting = produce(connection, [9]);
    await until(() => seen.length === 3);
    await new Promise((resolve) => setTimeout(resolve, 300)); // past 80% of 300 ms
    assert.equal(connection.broken, true, "a retiring connection takes no new request");
    await assert.rejects(produce(connection, [10]), /retiring/);
    // The request it holds is still answered, then it closes.
    server.write(answer(3, produceAnswer()));
    assert.deepEqual(await waiting, undefined);
  }, broker);
});

Deno.test("connection pool: one connection per address, a new one once it broke, and none once closed (also for a get that was waiting)", async () => {
  const pool = new ConnectionPool<{ broken: boolean; closed: boolean; close(): void }>("The test");
  const made: { broken: boolean; closed: boolean; close(): void }[] = [];
  const open = () => {
    const connection = { broken: false, closed: false, close: () => connection.closed = true };
    made.push(connection);
    return Promise.resolve(connection);
  };
  const first = await pool.get("a:1", open);
  assert.equal(await pool.get("a:1", open), first);
  first.broken = true;
  const second = await pool.get("a:1", open);
  assert.notEqual(second, first);
  let release: (value: { broken: boolean; closed: boolean; close(): void }) => void = () => {};
  const slow = pool.get("b:2", () => new Promise((resolve) => release = resolve));
  const waiting = pool.get("b:2", open); // waits for the slow one
  pool.close();
  release({ broken: false, closed: false, close() {} });
  await slow;
  await assert.rejects(waiting, /The test was closed; not connecting to b:2/);
  await assert.rejects(pool.get("a:1", open), /was closed/);
  assert.equal(made.length, 2, "no connection is opened after close()");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.ok(second.closed, "close() closed the open connection");
});

Deno.test("broker connection: with clientVersion, it asks the broker its versions (ApiVersions v3, answered with header v0) and writes Produce at the newest both take", async () => {
  const ranges = (max: number) => {
    const w = new RequestWriter();
    w.int16(0).compactArray([[0, 3, max], [18, 0, 4]], ([key, min, top]) => {
      w.int16(key!).int16(min!).int16(top!).tags();
    });
    return [...w.int32(0).tags().bytes()];
  };
  for (const [brokerMax, expected] of [[10, 10], [12, 11]] as const) {
    const seen: number[][] = [];
    await withConnection({ clientVersion: "9.9.9" }, (connection) => {
      assert.equal(connection.produceVersion, expected);
      return Promise.resolve();
    }, (frame, write) => {
      seen.push([frame.readInt16BE(0), frame.readInt16BE(2)]);
      write(answer(frame.readInt32BE(4), ranges(brokerMax), false));
    });
    assert.deepEqual(seen, [[18, 3]]);
  }
  // A broker older than Kafka 2.8 (Produce up to 8): refused, naming it.
  await withConnection({ clientVersion: "9.9.9" }, (connection) => {
    assert.throws(() => connection.produceVersion, /speaks Produce up to version 8; .* 2\.8/);
    return Promise.resolve();
  }, (frame, write) => write(answer(frame.readInt32BE(4), ranges(8), false)));
});
