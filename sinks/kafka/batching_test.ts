/**
 * The batcher's delivery logic against a scripted stand-in for the client (the real broker is in
 * tests/kafka_*_test.ts): order, request sizes, what a durable write waits for, retries on a new
 * connection, fatal errors, exactly-once's commits, replays and restarts.
 */

import assert from "node:assert/strict";
import { type Lsn, lsn } from "../../decoder/lsn.ts";
import { silentLogger } from "../../ops/log.ts";
import { Batcher, type Marker } from "./batching.ts";
import { KafkaSinkError } from "./errors.ts";
import type { KafkaProducer, OutMessage } from "./producer.ts";
import { joinedBytes } from "../../formats/byte_writer.ts";

/** What the stand-in saw, in order, across its connections. */
type Event = string;

/** A stand-in for the client: records calls; `fail` scripts failures by call. */
class FakeProducer {
  readonly brokers = ["fake:9092"];
  retryError: string | null = null;
  inTx = false;
  constructor(
    readonly events: Event[],
    readonly fail: (call: string) => Error | null,
    readonly checkpoint: { value: Lsn | null },
  ) {}
  #check(call: string): void {
    const error = this.fail(call);
    if (error !== null) throw error;
  }
  send(messages: readonly OutMessage[]): Promise<void> {
    const values = messages.map((m) => new TextDecoder().decode(joinedBytes(m.value!))).join(",");
    this.#check(`send:${values}`);
    this.events.push(`${this.inTx ? "tx-" : ""}send:${values}`);
    return Promise.resolve();
  }
  prepare(): Promise<void> {
    return Promise.resolve();
  }
  begin(): Promise<void> {
    this.#check("begin");
    this.inTx = true;
    this.events.push("begin");
    return Promise.resolve();
  }
  commit(checkpoint: { offset: bigint }): Promise<void> {
    this.#check(`commit:${checkpoint.offset}`);
    this.inTx = false;
    this.checkpoint.value = lsn(checkpoint.offset);
    this.events.push(`commit:${checkpoint.offset}`);
    return Promise.resolve();
  }
  abort(): Promise<void> {
    if (this.inTx) this.events.push("abort");
    this.inTx = false;
    return Promise.resolve();
  }
  readCheckpoint(): Promise<Lsn | null> {
    return Promise.resolve(this.checkpoint.value);
  }
  close(): Promise<void> {
    this.events.push("close");
    return Promise.resolve();
  }
}

const encoder = new TextEncoder();
const message = (value: string): OutMessage => ({
  topic: "t",
  key: null,
  value: encoder.encode(value),
});
const commit = (at: number): Marker => ({ marker: "commit", lsn: lsn(BigInt(at)) });

function setup(options: {
  exactlyOnce?: boolean;
  batchBytes?: number;
  maxQueuedBytes?: number;
  fail?: (call: string) => Error | null;
}) {
  const events: Event[] = [];
  const checkpoint = { value: null as Lsn | null };
  const fail = options.fail ?? (() => null);
  let connections = 0;
  const connect = () => {
    connections++;
    events.push(`connect`);
    return new FakeProducer(events, fail, checkpoint) as unknown as KafkaProducer;
  };
  const batcher = new Batcher({
    producer: connect(),
    reconnect: () => Promise.resolve(connect()),
    exactlyOnce: options.exactlyOnce
      ? { group: "g", topic: "spillway.checkpoints", transactionalId: "tx" }
      : null,
    batchBytes: options.batchBytes ?? 1_000_000,
    maxQueuedBytes: options.maxQueuedBytes,
    lingerMs: 0,
    log: silentLogger,
    name: "kafka:fake",
  });
  return { batcher, events, connections: () => connections, checkpoint };
}

/** The stand-in's events without the checkpoint records a commit sends first. */
const withoutCheckpoints = (events: Event[]) =>
  events.map((event) => event.replace(/,?\{"transactional_id".*$/, "")).filter((e) =>
    e !== "tx-send:"
  );

Deno.test("batcher: records go out in order, in requests of at most batch_bytes (across commits); a durable write waits for all", async () => {
  const { batcher, events } = setup({ batchBytes: 100 }); // 71 bytes a record, as counted
  await batcher.add([message("a"), message("b")], false);
  await batcher.add([message("c"), commit(10), message("d")], true);
  assert.deepEqual(events, ["connect", "send:a", "send:b", "send:c", "send:d"]);
  await batcher.close();
  // Small transactions: their records share requests.
  const small = setup({});
  await small.batcher.add([message("e"), commit(30), message("f"), commit(40)], true);
  assert.deepEqual(small.events, ["connect", "send:e,f"]);
  await small.batcher.close();
});

Deno.test("batcher: a retriable failure is retried on a new connection with the same records; status says failing meanwhile", async () => {
  let failures = 0;
  const { batcher, events, connections } = setup({
    fail: (call) =>
      call === "send:a,b" && failures++ < 2
        ? new KafkaSinkError("broker down", { retriable: true })
        : null,
  });
  const seen: boolean[] = [];
  const timer = setInterval(() => seen.push(batcher.status().failing), 50);
  await batcher.add([message("a"), message("b"), commit(10)], true);
  clearInterval(timer);
  assert.deepEqual(events.filter((e) => e.startsWith("send")), ["send:a,b"]);
  assert.equal(connections(), 3);
  assert.ok(seen.includes(true), "status() never said failing while retrying");
  assert.equal(batcher.status().failing, false);
  await batcher.close();
});

Deno.test("batcher: status() says failing while the producer sends a request again in place, with its error", async () => {
  const { batcher } = setup({ fail: () => null });
  const producer = batcher.producer as unknown as FakeProducer;
  assert.equal(batcher.status().failing, false);
  producer.retryError = "Kafka at fake:9092 failed while sending records: connection closed";
  assert.deepEqual(batcher.status(), { failing: true, lastError: producer.retryError });
  producer.retryError = null;
  assert.equal(batcher.status().failing, false);
  await batcher.close();
});

Deno.test("batcher: a fatal failure fails the write and every write after it", async () => {
  const { batcher } = setup({
    fail: (call) =>
      call.startsWith("send") ? new KafkaSinkError("too large", { retriable: false }) : null,
  });
  await assert.rejects(batcher.add([message("a"), commit(10)], true), /too large/);
  await assert.rejects(batcher.add([message("b"), commit(20)], true), /too large/);
  assert.equal(batcher.status().failing, true);
  await batcher.close();
});

Deno.test("batcher exactly-once: one Kafka transaction per write, its records in requests across commits, committed at its last commit; what follows opens the next", async () => {
  const { batcher, events, checkpoint } = setup({ exactlyOnce: true });
  await batcher.add([message("a"), commit(10), message("b"), commit(20), message("c")], true);
  assert.equal(checkpoint.value, 20n);
  await batcher.add([commit(30)], true);
  assert.deepEqual(withoutCheckpoints(events), [
    "connect",
    "begin",
    "tx-send:a,b",
    "commit:20",
    "begin",
    "tx-send:c",
    "commit:30",
  ]);
  await batcher.close();
});

Deno.test("batcher exactly-once: a failure mid-transaction aborts it; the records are sent again in a new one, once", async () => {
  let failed = false;
  const { batcher, events, checkpoint } = setup({
    exactlyOnce: true,
    fail: (call) =>
      call === "send:b" && !failed
        ? (failed = true, new KafkaSinkError("leader moved", { retriable: true }))
        : null,
  });
  await batcher.add([message("a")], false);
  await batcher.add([message("b"), commit(10)], true);
  assert.equal(checkpoint.value, 10n);
  assert.deepEqual(withoutCheckpoints(events).filter((e) => e !== "close"), [
    "connect",
    "begin",
    "tx-send:a",
    "connect", // the failure: a new producer, which aborted the old one's transaction
    "begin",
    "tx-send:a,b", // replayed: what the transaction held, b too (it was sent, and failed)
    "commit:10",
  ]);
});

Deno.test("batcher exactly-once: a replay goes in requests of at most batch_bytes", async () => {
  let failed = false;
  const { batcher, events } = setup({
    exactlyOnce: true,
    batchBytes: 150, // two records a request (71 bytes each, as counted)
    fail: (call) =>
      call === "send:e" && !failed
        ? (failed = true, new KafkaSinkError("leader moved", { retriable: true }))
        : null,
  });
  await batcher.add(["a", "b", "c", "d", "e"].map(message), false);
  await batcher.add([commit(10)], true);
  assert.deepEqual(withoutCheckpoints(events).filter((e) => e !== "close"), [
    "connect",
    "begin",
    "tx-send:a,b",
    "tx-send:c,d",
    "connect",
    "begin",
    "tx-send:a,b",
    "tx-send:c,d",
    "tx-send:e",
    "commit:10",
  ]);
  await batcher.close();
});

Deno.test("batcher: requests go out while others are in flight; after a failure, the failed one and those sent after it are sent again, in order", async () => {
  let failed = false;
  const { batcher, events } = setup({
    batchBytes: 100, // one record a request
    fail: (call) =>
      call === "send:b" && !failed
        ? (failed = true, new KafkaSinkError("leader moved", { retriable: true }))
        : null,
  });
  await batcher.add([message("a"), message("b"), message("c"), message("d"), commit(10)], true);
  assert.deepEqual(events, [
    "connect",
    "send:a",
    // b failed; c and d were in flight and went through
    "send:c",
    "send:d",
    "close",
    "connect",
    "send:b",
    "send:c",
    "send:d",
  ]);
  await batcher.close();
});

Deno.test("batcher exactly-once: a commit whose answer was lost but that went through is not sent again", async () => {
  let failed = false;
  const holder: { checkpoint?: { value: Lsn | null } } = {};
  const { batcher, events, checkpoint } = setup({
    exactlyOnce: true,
    fail: (call) => {
      if (call === "commit:10" && !failed) {
        failed = true;
        holder.checkpoint!.value = lsn(10n); // the broker committed it
        return new KafkaSinkError("timed out", { retriable: true });
      }
      return null;
    },
  });
  holder.checkpoint = checkpoint;
  await batcher.add([message("a"), commit(10)], true);
  assert.equal(
    withoutCheckpoints(events).filter((e) => e === "tx-send:a").length,
    1,
    "the committed records were sent again",
  );
  await batcher.close();
});

Deno.test("batcher: a transaction sent again from its Begin drops what was queued of it; exactly-once aborts what was sent of it", async () => {
  const { batcher, events } = setup({ exactlyOnce: true, batchBytes: 1_000_000 });
  await batcher.add([message("a"), commit(10)], true);
  await batcher.add([message("partial")], false); // sent or queued, in a new Kafka transaction
  const pending: (OutMessage | Marker)[] = [];
  await batcher.restartTransaction(pending);
  await batcher.add([message("partial"), message("rest"), commit(20)], true);
  const sent = withoutCheckpoints(events).filter((e) => e !== "close");
  const afterFirstCommit = sent.slice(sent.indexOf("commit:10") + 1);
  // Either the partial record was still queued (dropped) or sent and then aborted.
  const visible = afterFirstCommit.slice(afterFirstCommit.lastIndexOf("begin") + 1);
  assert.deepEqual(visible, ["tx-send:partial,rest", "commit:20"]);
  await batcher.close();
});

Deno.test("batcher: a durable write of commits alone (nothing to send) resolves", async () => {
  const { batcher, events } = setup({});
  await batcher.add([message("a")], true);
  // Resolving at all is the point: the delivery ends within the call that starts it.
  await batcher.add([commit(10)], true);
  await batcher.add([commit(20), commit(30)], true);
  assert.deepEqual(events, ["connect", "send:a"]);
  await batcher.close();
});

Deno.test("batcher exactly-once: a send that fails after a restart (Kafka holds an older checkpoint) is replayed, not taken for a lost commit", async () => {
  let failed = false;
  const { batcher, events, checkpoint } = setup({
    exactlyOnce: true,
    fail: (call) =>
      call === "send:a" && !failed
        ? (failed = true, new KafkaSinkError("leader moved", { retriable: true }))
        : null,
  });
  checkpoint.value = lsn(5n); // the previous run's
  await batcher.add([message("a"), commit(10)], true);
  assert.equal(checkpoint.value, 10n);
  assert.deepEqual(withoutCheckpoints(events).filter((e) => e !== "close"), [
    "connect",
    "begin",
    "connect",
    "begin",
    "tx-send:a",
    "commit:10",
  ]);
  await batcher.close();
});

Deno.test("batcher exactly-once: a replay whose new transaction fails to begin keeps its records for the next attempt", async () => {
  let sendFailed = false;
  let beginFailures = 0;
  const { batcher, events, connections } = setup({
    exactlyOnce: true,
    fail: (call) => {
      if (call === "send:b" && !sendFailed) {
        sendFailed = true;
        return new KafkaSinkError("leader moved", { retriable: true });
      }
      // The first begin after the failure (on the second connection) fails too.
      if (call === "begin" && sendFailed && beginFailures++ === 0) {
        return new KafkaSinkError("coordinator not available", { retriable: true });
      }
      return null;
    },
  });
  await batcher.add([message("a")], false);
  await batcher.add([message("b"), commit(10)], true);
  assert.ok(connections() >= 3, `${connections()} connections`);
  const sends = withoutCheckpoints(events).filter((e) => e.startsWith("tx-send"));
  // a was sent, then replayed with b once a transaction could begin.
  assert.deepEqual(sends, ["tx-send:a", "tx-send:a,b"]);
  assert.equal(events.at(-1), "commit:10");
  await batcher.close();
});

Deno.test("batcher exactly-once: a durable write whose commit came in an earlier part waits until that commit is committed", async () => {
  // A large write reaches the batcher in parts (KafkaSink.write): the commit may be in a part
  // added without waiting, and the last part, durable, holds records of the next transaction.
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => release = resolve);
  const { batcher, events } = setup({ exactlyOnce: true });
  const producer = batcher.producer as unknown as FakeProducer;
  const commitOriginal = producer.commit.bind(producer);
  producer.commit = async (checkpoint) => {
    await gate;
    return commitOriginal(checkpoint);
  };
  await batcher.add([message("a"), commit(10)], false);
  let durable = false;
  const last = batcher.add([message("b")], true).then(() => durable = true);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(durable, false, "the durable write returned before its commit was committed");
  release();
  await last;
  assert.ok(withoutCheckpoints(events).includes("commit:10"));
  await batcher.close();
});

Deno.test("batcher exactly-once: a write in parts commits once, at its end; a queue that fills commits earlier", async () => {
  const { batcher, events } = setup({ exactlyOnce: true });
  await batcher.add([message("a"), commit(10), message("b")], false, true);
  await batcher.add([commit(20), message("c")], false, true);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(withoutCheckpoints(events).filter((e) => e.startsWith("commit")), []);
  await batcher.add([commit(30)], true);
  assert.deepEqual(withoutCheckpoints(events).filter((e) => e.startsWith("commit")), ["commit:30"]);
  await batcher.close();

  // Past its byte bound the queue does not wait for the rest of the write.
  const full = setup({ exactlyOnce: true, batchBytes: 100, maxQueuedBytes: 200 });
  await full.batcher.add([message("d"), commit(40), message("e"), message("f")], false, true);
  await full.batcher.add([message("g"), message("h")], false, true);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(withoutCheckpoints(full.events).includes("commit:40"), full.events.join(" "));
  await full.batcher.close();
});

Deno.test("batcher exactly-once: a commit queued before a write in parts is not held for that write", async () => {
  const { batcher, events } = setup({ exactlyOnce: true });
  await batcher.add([message("a"), commit(10)], false);
  await batcher.add([message("b")], false, true);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.ok(withoutCheckpoints(events).includes("commit:10"), events.join(" "));
  await batcher.add([commit(20)], true);
  assert.ok(withoutCheckpoints(events).includes("commit:20"));
  await batcher.close();
});
