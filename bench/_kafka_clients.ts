/**
 * Benchmark helper: which npm Kafka client should the Kafka sink use under Deno?
 *
 * Starts a throwaway broker (`testing/kafka.ts`) and, for each client and mode, produces
 * `--messages` records (default 1,000,000) of a ~600-byte JSON value and a small JSON key
 * (`{"id":n}`, 1,000 distinct keys) to a fresh 3-partition topic the way a sink would: an
 * idempotent producer with acks=all, sending arrays of `--batch` records and awaiting the acks.
 *
 *     npx -y deno@2.9.6 run -A bench/_kafka_clients.ts [--messages N] [--batch N]
 *       [--in-flight N] [--txn-size N] [--clients kafkajs,platformatic]
 *       [--modes batch,in-flight,txn]
 *
 * Clients:
 *
 * - `kafkajs`: `npm:kafkajs@2.2.4` with its (Java-compatible murmur2) `DefaultPartitioner`.
 * - `platformatic`: `npm:@platformatic/kafka@2.12.1` with its `compatibilityPartitioner` (its
 *   default partitioner is murmur2 too, but not masked like Java's, so keys land elsewhere).
 *
 * Modes:
 *
 * - `batch`: one `send` of `--batch` records at a time, each awaited before the next.
 * - `in-flight`: up to `--in-flight` (default 5) sends outstanding, awaited in order, as a sink
 *   that checkpoints in order would. Order per partition still holds: kafkajs serializes the
 *   produce requests of an idempotent producer per broker (a broker lock), and
 *   @platformatic/kafka forces one in-flight request per connection for an idempotent producer
 *   but numbers the sequences when `send` is called, so sends queue in call order.
 * - `txn`: transactions of `--txn-size` records (default 1,000): begin, one `send`, commit.
 *
 * Each client × mode runs in a fresh child process (this script with `--client X --mode Y`), so
 * its peak RSS (VmHWM) is its own. Afterwards the parent checks the topic's end offsets per
 * partition against what Java's default partitioner would give for the keys (plus one commit
 * marker per partition written in each transaction), so a lost, duplicated or differently
 * partitioned record fails the run.
 *
 * Neither client splits a `send` by size: the records one `send` gives a partition travel as one
 * record batch, and a batch above the broker's `message.max.bytes` (default ~1 MiB) fails with
 * MESSAGE_TOO_LARGE. With these ~640-byte records, `--batch 5000` (~1.07 MB per partition)
 * fails for both; `--batch 3000` passes.
 *
 * The children run with `--no-lock`, so trying a client does not add it to `deno.lock`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { startKafka } from "../testing/kafka.ts";

const KAFKAJS = "npm:kafkajs@2.2.4";
const PLATFORMATIC = "npm:@platformatic/kafka@2.12.1";

const CLIENTS = ["kafkajs", "platformatic"] as const;
const MODES = ["batch", "in-flight", "txn"] as const;
type Client = typeof CLIENTS[number];
type Mode = typeof MODES[number];

const PARTITIONS = 3;
const DISTINCT_KEYS = 1_000;

/** The options both the parent and the children read. */
interface Options {
  messages: number;
  batch: number;
  inFlight: number;
  txnSize: number;
}

/** What a child prints (one JSON line on stdout) after producing. */
interface ChildResult {
  client: Client;
  mode: Mode;
  messages: number;
  /** UTF-8 bytes of keys and values. */
  bytes: number;
  /** From the first `send` to the last ack (connecting excluded). */
  seconds: number;
  /** Connecting and, for the idempotent/transactional producer, getting a producer id. */
  connectSeconds: number;
  /** VmHWM of the child, in KiB. */
  peakRssKib: number;
}

// ---------------------------------------------------------------------------------------------
// The records

const FILLER = "lorem ipsum dolor sit amet ".repeat(13);
const BASE_TS = Date.UTC(2026, 0, 1);

/** The key of record `seq`: `{"id":n}` over {@linkcode DISTINCT_KEYS} ids. */
function keyOf(seq: number): string {
  return `{"id":${seq % DISTINCT_KEYS}}`;
}

/** A Debezium-like change event of about 600 bytes for record `seq`. */
function valueOf(seq: number): string {
  const id = seq % DISTINCT_KEYS;
  return JSON.stringify({
    before: null,
    after: {
      id,
      customer_id: (seq * 7919) % 100_000,
      status: seq % 3 === 0 ? "shipped" : "pending",
      amount: ((seq * 31) % 100_000) / 100,
      created_at: new Date(BASE_TS + seq * 1000).toISOString(),
      note: FILLER,
    },
    source: {
      connector: "spillway",
      db: "shop",
      schema: "public",
      table: "orders",
      lsn: 0x1000000 + seq * 64,
      txId: 1000 + Math.floor(seq / 100),
    },
    op: "u",
    ts_ms: BASE_TS + seq,
  });
}

interface KeyValue {
  key: string;
  value: string;
}

/** Records `from` (inclusive) to `to` (exclusive), and their UTF-8 size. */
function records(from: number, to: number): { records: KeyValue[]; bytes: number } {
  const out: KeyValue[] = [];
  let bytes = 0;
  for (let seq = from; seq < to; seq++) {
    const key = keyOf(seq);
    const value = valueOf(seq);
    bytes += key.length + value.length; // ASCII only
    out.push({ key, value });
  }
  return { records: out, bytes };
}

// ---------------------------------------------------------------------------------------------
// Java's default partitioner for keyed records: toPositive(murmur2(keyBytes)) % partitions

/** Kafka's `Utils.murmur2` (seed 0x9747b28c) over `data`, as a signed 32-bit int. */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const blocks = length >> 2;
  for (let i = 0; i < blocks; i++) {
    const o = i * 4;
    let k = data[o]! | (data[o + 1]! << 8) | (data[o + 2]! << 16) | (data[o + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = blocks * 4;
  switch (length & 3) {
    case 3:
      h ^= data[tail + 2]! << 16;
    // falls through
    case 2:
      h ^= data[tail + 1]! << 8;
    // falls through
    case 1:
      h ^= data[tail]!;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition Java's producer picks for a keyed record. */
export function javaPartition(key: string, partitions: number): number {
  return (murmur2(new TextEncoder().encode(key)) & 0x7fffffff) % partitions;
}

/**
 * The end offset of each partition once all records are written: the records it got, plus,
 * with transactions, one commit marker per transaction that wrote to it.
 */
function expectedEndOffsets(opts: Options, mode: Mode): number[] {
  const partitionOfKey = Array.from(
    { length: DISTINCT_KEYS },
    (_, id) => javaPartition(`{"id":${id}}`, PARTITIONS),
  );
  const ends = new Array<number>(PARTITIONS).fill(0);
  const chunk = mode === "txn" ? opts.txnSize : opts.messages;
  for (let from = 0; from < opts.messages; from += chunk) {
    const touched = new Set<number>();
    for (let seq = from; seq < Math.min(from + chunk, opts.messages); seq++) {
      const p = partitionOfKey[seq % DISTINCT_KEYS]!;
      ends[p]!++;
      touched.add(p);
    }
    if (mode === "txn") { for (const p of touched) ends[p]!++; }
  }
  return ends;
}

// ---------------------------------------------------------------------------------------------
// The clients, behind one small interface

/** What the benchmark needs from a client's producer. */
interface SinkProducer {
  /** Send records and resolve once acknowledged by all in-sync replicas. */
  send(records: KeyValue[]): Promise<void>;
  /** Begin a transaction, send the records, commit. */
  sendTransaction(records: KeyValue[]): Promise<void>;
  close(): Promise<void>;
}

async function kafkajsProducer(
  brokers: string[],
  topic: string,
  transactional: boolean,
): Promise<SinkProducer> {
  const { Kafka, logLevel, Partitioners } = await import(KAFKAJS);
  const kafka = new Kafka({
    clientId: "spillway-bench",
    brokers,
    // WARN, not NOTHING, so that the benchmark shows what a sink would log.
    logLevel: logLevel.WARN,
  });
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    // Naming the partitioner also silences kafkajs's "switched default partitioner" warning.
    createPartitioner: Partitioners.DefaultPartitioner,
    ...(transactional ? { transactionalId: `spillway-bench-${topic}` } : {}),
  });
  await producer.connect();
  return {
    async send(messages) {
      await producer.send({ topic, acks: -1, messages });
    },
    async sendTransaction(messages) {
      const tx = await producer.transaction();
      try {
        await tx.send({ topic, acks: -1, messages });
        await tx.commit();
      } catch (e) {
        await tx.abort().catch(() => {});
        throw e;
      }
    },
    close: () => producer.disconnect(),
  };
}

async function platformaticProducer(
  brokers: string[],
  topic: string,
  transactional: boolean,
): Promise<SinkProducer> {
  const { Producer, stringSerializers, compatibilityPartitioner } = await import(PLATFORMATIC);
  const producer = new Producer({
    clientId: "spillway-bench",
    bootstrapBrokers: brokers,
    idempotent: true, // implies acks=all (-1) and one in-flight request per connection
    serializers: stringSerializers,
    // The default partitioner is `murmur2(key) >>> 0`; Java masks with 0x7fffffff instead.
    partitioner: compatibilityPartitioner,
    // After a commit the coordinator answers the next transaction's AddPartitionsToTxn with
    // CONCURRENT_TRANSACTIONS until its markers are written; with the default flat 1 s retry
    // delay every transaction stalls ~1 s. Retry after 20 ms (as the Java client does for this
    // case), backing off to 1 s.
    retryDelay: (_client: unknown, _op: string, attempt: number) =>
      Math.min(20 * 2 ** attempt, 1000),
    ...(transactional ? { transactionalId: `spillway-bench-${topic}` } : {}),
  });
  // The producer connects lazily; getting the producer id up front keeps connecting out of
  // the timed part, as for kafkajs's connect().
  await producer.initIdempotentProducer({});
  const toMessages = (records: KeyValue[]) => records.map((r) => ({ topic, ...r }));
  return {
    async send(records) {
      await producer.send({ messages: toMessages(records) });
    },
    async sendTransaction(records) {
      const tx = await producer.beginTransaction();
      try {
        await tx.send({ messages: toMessages(records) });
        await tx.commit();
      } catch (e) {
        await tx.abort().catch(() => {});
        throw e;
      }
    },
    close: () => producer.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// The child: produce and report

async function runChild(
  client: Client,
  mode: Mode,
  brokers: string[],
  topic: string,
  opts: Options,
): Promise<ChildResult> {
  const connectStart = performance.now();
  const create = client === "kafkajs" ? kafkajsProducer : platformaticProducer;
  const producer = await create(brokers, topic, mode === "txn");
  const connectSeconds = (performance.now() - connectStart) / 1000;

  let bytes = 0;
  const start = performance.now();
  try {
    if (mode === "batch") {
      for (let from = 0; from < opts.messages; from += opts.batch) {
        const batch = records(from, Math.min(from + opts.batch, opts.messages));
        bytes += batch.bytes;
        await producer.send(batch.records);
      }
    } else if (mode === "in-flight") {
      // Acks are awaited in send order; at most `inFlight` sends outstanding.
      const pending: Promise<void>[] = [];
      for (let from = 0; from < opts.messages; from += opts.batch) {
        const batch = records(from, Math.min(from + opts.batch, opts.messages));
        bytes += batch.bytes;
        pending.push(producer.send(batch.records));
        if (pending.length >= opts.inFlight) await pending.shift();
      }
      await Promise.all(pending);
    } else {
      for (let from = 0; from < opts.messages; from += opts.txnSize) {
        const batch = records(from, Math.min(from + opts.txnSize, opts.messages));
        bytes += batch.bytes;
        await producer.sendTransaction(batch.records);
      }
    }
  } finally {
    await producer.close();
  }
  const seconds = (performance.now() - start) / 1000;
  return {
    client,
    mode,
    messages: opts.messages,
    bytes,
    seconds,
    connectSeconds,
    peakRssKib: readVmHwmKib(),
  };
}

/** The peak resident set size (VmHWM) of this process in KiB; 0 where /proc is missing. */
function readVmHwmKib(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    return Number(/^VmHWM:\s+(\d+)\s+kB$/m.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// The parent: broker, topics, children, verification, table

/** Topic administration for the parent, through kafkajs (loaded only in the parent). */
async function connectAdmin(brokers: string[]) {
  const { Kafka, logLevel } = await import(KAFKAJS);
  const admin = new Kafka({ clientId: "spillway-bench-admin", brokers, logLevel: logLevel.ERROR })
    .admin();
  await admin.connect();
  return {
    async create(topic: string) {
      await admin.createTopics({
        topics: [{ topic, numPartitions: PARTITIONS }],
        waitForLeaders: true,
      });
    },
    /** End offset (high watermark) per partition. */
    async endOffsets(topic: string): Promise<number[]> {
      const offsets: { partition: number; high: string }[] = await admin.fetchTopicOffsets(topic);
      const ends = new Array<number>(PARTITIONS).fill(0);
      for (const o of offsets) ends[o.partition] = Number(o.high);
      return ends;
    },
    async delete(topic: string) {
      await admin.deleteTopics({ topics: [topic] });
    },
    close: () => admin.disconnect(),
  };
}

/** Runs one client × mode in a fresh process; returns its result and its stderr lines. */
async function spawnChild(
  client: Client,
  mode: Mode,
  brokers: string[],
  topic: string,
  opts: Options,
): Promise<{ result: ChildResult; stderr: string[] }> {
  const args = [
    "run",
    "-A",
    // The clients are only imported here; keep them out of the repository's deno.lock.
    "--no-lock",
    fileURLToPath(import.meta.url),
    `--client=${client}`,
    `--mode=${mode}`,
    `--brokers=${brokers.join(",")}`,
    `--topic=${topic}`,
    `--messages=${opts.messages}`,
    `--batch=${opts.batch}`,
    `--in-flight=${opts.inFlight}`,
    `--txn-size=${opts.txnSize}`,
  ];
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr).split("\n").filter((l) => l.trim());
  const line = stdout.split("\n").findLast((l) => l.startsWith("{"));
  if (!out.success || !line) {
    throw new Error(
      `${client}/${mode} failed (exit ${out.code}):\n${stdout}\n${stderr.slice(-30).join("\n")}`,
    );
  }
  return { result: JSON.parse(line), stderr };
}

/** The most telling line of a failed child's output: the first `SomeError: message`. */
function childError(e: unknown): string {
  // deno-lint-ignore no-control-regex
  const text = String((e as Error).message).replace(/\x1b\[[0-9;]*m/g, "");
  const match = /\b\w*Error: [^\n]+/.exec(text.slice(text.indexOf("\n")));
  return (match?.[0] ?? text.split("\n")[0] ?? "").slice(0, 160);
}

/** Distinct stderr lines (ANSI codes and numbers blurred), with counts, for the summary. */
function summarizeStderr(lines: string[]): string[] {
  const counts = new Map<string, number>();
  for (const line of lines) {
    // deno-lint-ignore no-control-regex
    const plain = line.replace(/\x1b\[[0-9;]*m/g, "").replace(/\d+/g, "#").slice(0, 200);
    counts.set(plain, (counts.get(plain) ?? 0) + 1);
  }
  return [...counts].map(([line, n]) => `${n}× ${line}`);
}

async function runParent(clients: Client[], modes: Mode[], opts: Options): Promise<void> {
  console.log(
    `${opts.messages} records, batch ${opts.batch}, in-flight ${opts.inFlight}, ` +
      `transactions of ${opts.txnSize}; ${PARTITIONS} partitions, ${DISTINCT_KEYS} keys`,
  );
  await using kafka = await startKafka();
  const admin = await connectAdmin(kafka.brokers);
  const rows: string[][] = [];
  let failed = false;
  try {
    for (const mode of modes) {
      for (const client of clients) {
        const topic = `bench.${client}.${mode}`;
        await admin.create(topic);
        let child;
        try {
          child = await spawnChild(client, mode, kafka.brokers, topic, opts);
        } catch (e) {
          // Keep going with the other runs; a client's failure is a result too.
          failed = true;
          await admin.delete(topic);
          console.log(`${client}/${mode}: ${(e as Error).message}`);
          rows.push([client, mode, "-", "-", "-", "-", "-", `FAILED: ${childError(e)}`]);
          continue;
        }
        const { result, stderr } = child;
        const ends = await admin.endOffsets(topic);
        const expected = expectedEndOffsets(opts, mode);
        const ok = ends.every((e, p) => e === expected[p]);
        failed ||= !ok;
        const check = ok
          ? "ok"
          : `MISMATCH end offsets ${ends.join("/")} expected ${expected.join("/")}`;
        await admin.delete(topic);
        rows.push([
          client,
          mode,
          Math.round(result.messages / result.seconds).toLocaleString("en-US"),
          (result.bytes / result.seconds / 1e6).toFixed(1),
          (result.peakRssKib / 1024).toFixed(0),
          result.seconds.toFixed(1),
          result.connectSeconds.toFixed(2),
          check,
        ]);
        console.log(`${client}/${mode}: ${rows.at(-1)!.slice(2).join(" | ")}`);
        for (const line of summarizeStderr(stderr)) console.log(`  stderr: ${line}`);
      }
    }
  } finally {
    await admin.close();
  }
  const header = ["client", "mode", "rows/s", "MB/s", "peak RSS MiB", "s", "connect s", "count"];
  console.log(`\n| ${header.join(" | ")} |\n|${header.map(() => "---").join("|")}|`);
  for (const row of rows) console.log(`| ${row.join(" | ")} |`);
  if (failed) Deno.exitCode = 1;
}

// ---------------------------------------------------------------------------------------------

function positive(name: string, raw: string): number {
  const n = Number(raw.replaceAll("_", ""));
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer`);
  return n;
}

function pick<T extends string>(name: string, raw: string, allowed: readonly T[]): T[] {
  const picked = raw.split(",").map((s) => s.trim()).filter(Boolean);
  for (const p of picked) {
    if (!allowed.includes(p as T)) throw new Error(`--${name}: ${p} is not one of ${allowed}`);
  }
  return picked as T[];
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      messages: { type: "string", default: "1000000" },
      batch: { type: "string", default: "1000" },
      "in-flight": { type: "string", default: "5" },
      "txn-size": { type: "string", default: "1000" },
      clients: { type: "string", default: CLIENTS.join(",") },
      modes: { type: "string", default: MODES.join(",") },
      // Child only:
      client: { type: "string" },
      mode: { type: "string" },
      brokers: { type: "string" },
      topic: { type: "string" },
    },
  });
  const opts: Options = {
    messages: positive("messages", values.messages),
    batch: positive("batch", values.batch),
    inFlight: positive("in-flight", values["in-flight"]),
    txnSize: positive("txn-size", values["txn-size"]),
  };
  if (values.client) {
    const [client] = pick("client", values.client, CLIENTS);
    const [mode] = pick("mode", values.mode ?? "", MODES);
    if (!client || !mode || !values.brokers || !values.topic) {
      throw new Error("a child needs --client, --mode, --brokers and --topic");
    }
    const result = await runChild(client, mode, values.brokers.split(","), values.topic, opts);
    console.log(JSON.stringify(result));
    Deno.exit(0); // don't wait for a client's lingering timers
  } else {
    await runParent(
      pick("clients", values.clients, CLIENTS),
      pick("modes", values.modes, MODES),
      opts,
    );
  }
}
