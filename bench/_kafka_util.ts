/**
 * Helpers of `bench/kafka.ts`: watching a replication slot from the server's side (when a
 * client starts streaming from it, when it confirms a position), `spillway run` as a child under
 * GNU time, a `java` wrapper that puts the Debezium JVM under GNU time too, and the Kafka side
 * (topic end offsets, counting committed records, commit → consumer latency) through kafkajs.
 *
 * @module
 */

import { join } from "node:path";
import { Kafka, logLevel } from "npm:kafkajs@2.2.4";
import { GNU_TIME, spawnPiped, TIMEOUT } from "./_common.ts";
import { LineChild } from "./_pipeline_util.ts";

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// The slot, as the server sees it

/** What {@linkcode SlotWatch} saw, in epoch ms of the server's clock (same machine). */
export interface SlotTimes {
  /** First poll that found the slot active (a client's walsender streaming from it). */
  activeMs: number;
  /** First poll that found `confirmed_flush_lsn` at or past the end; 0 if not (yet). */
  confirmedMs: number;
}

/**
 * Polls `pg_replication_slots` every 50 ms (one `psql` running `\watch`): when the slot turns
 * active, and when its `confirmed_flush_lsn` reaches `endLsn`.
 *
 * Every 10 ms the watch itself (psql, its backend, this process reading its lines) took about
 * 12% of one of the 2 cores from the drains it timed (`top`, 2026-12-07); every 50 ms times a
 * 20–60 s drain to within 0.1–0.3% and takes a fifth of that.
 */
export class SlotWatch {
  readonly times: SlotTimes = { activeMs: 0, confirmedMs: 0 };
  readonly #child: LineChild;
  #confirmed: Promise<void>;
  #active: Promise<void>;

  /** `scriptFile`: where to write psql's script (a `\\watch` cannot come with `-c`). */
  constructor(psql: string, port: number, slot: string, endLsn: string, scriptFile: string) {
    Deno.writeTextFileSync(
      scriptFile,
      `SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint, active,
        coalesce(confirmed_flush_lsn >= '${endLsn}'::pg_lsn, false)
        FROM pg_replication_slots WHERE slot_name = '${slot}' \\watch 0.05\n`,
    );
    // deno-fmt-ignore
    this.#child = new LineChild(psql, ["-X", "-q", "-At", "-h", "127.0.0.1", "-p", String(port),
      "-U", "postgres", "-d", "postgres", "-f", scriptFile]);
    const parse = (line: string) => /^(\d+)\|([tf])\|([tf])$/.exec(line);
    this.#active = this.#child.waitForLine((line) => {
      const m = parse(line);
      if (m === null || m[2] !== "t") return false;
      this.times.activeMs ||= Number(m[1]);
      return true;
    }).then(() => {});
    this.#confirmed = this.#child.waitForLine((line) => {
      const m = parse(line);
      if (m === null || m[3] !== "t") return false;
      this.times.confirmedMs ||= Number(m[1]);
      return true;
    }).then(() => {});
    // A watch that is stopped before it saw both must not leave a rejection behind.
    this.#active.catch(() => {});
    this.#confirmed.catch(() => {});
  }

  /** Resolves once the slot was seen active. */
  active(): Promise<void> {
    return this.#active;
  }

  /** Resolves once the slot confirmed the end; rejects if `give` (a failed run) rejects first. */
  confirmed(give?: Promise<unknown>): Promise<void> {
    return give === undefined ? this.#confirmed : Promise.race([
      this.#confirmed,
      give.then(
        () => {
          throw new Error("the run ended before its slot confirmed the load's end");
        },
      ),
    ]);
  }

  async stop(): Promise<void> {
    try {
      this.#child.child.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    await this.#child.wait();
  }
}

// ---------------------------------------------------------------------------------------------
// `spillway run` under GNU time

/** What a stopped `spillway run` cost, as GNU time saw it. */
export interface ProcessUsage {
  code: number;
  /** Spawn → exit. */
  seconds: number;
  peakRssKib: number;
  cpuSeconds: number;
  stderr: string;
}

/** Reads GNU time's `%M %U %S` (last line; it writes a status line first on failure). */
export async function readUsage(
  file: string,
): Promise<{ peakRssKib: number; cpuSeconds: number }> {
  const text = (await Deno.readTextFile(file).catch(() => "")).trim();
  await Deno.remove(file).catch(() => {});
  const [rss, user, system] = (text.split("\n").pop() ?? "").split(" ").map(Number);
  return { peakRssKib: rss || 0, cpuSeconds: (user || 0) + (system || 0) };
}

/**
 * `deno run -A --unstable-worker-options main.ts run <pipeline.yaml>` (as `deno task run` has
 * it) under GNU time and `timeout`. {@linkcode stop} sends SIGTERM (which `timeout` passes on):
 * Spillway drains, confirms and exits; a second SIGTERM after its grace (15 s by default) makes
 * it exit at once.
 */
export class SpillwayProcess {
  readonly #child: Deno.ChildProcess;
  readonly #usage: string;
  readonly #started = performance.now();
  readonly #stderr: Promise<string>;
  readonly #stdout: Promise<string>;
  readonly exited: Promise<Deno.CommandStatus>;

  constructor(
    main: string,
    pipelineFile: string,
    usageFile: string,
    timeoutSeconds: number,
    denoFlags: string[] = [],
  ) {
    this.#usage = usageFile;
    // deno-fmt-ignore
    this.#child = spawnPiped(GNU_TIME, ["-f", "%M %U %S", "-o", usageFile, TIMEOUT, "--signal=KILL",
      String(timeoutSeconds), Deno.execPath(), "run", "-A", "--unstable-worker-options",
      ...denoFlags, main, "run", pipelineFile]);
    this.#stdout = new Response(this.#child.stdout).text();
    this.#stderr = new Response(this.#child.stderr).text();
    this.exited = this.#child.status;
  }

  /** The `timeout` process between GNU time and Deno, which passes signals on. */
  async #timeoutPid(): Promise<number | null> {
    const pid = this.#child.pid;
    const text = await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`).catch(() => "");
    const first = text.trim().split(" ")[0];
    return first ? Number(first) : null;
  }

  /**
   * SIGTERM, and again after `graceMs` (the second exits at once); waits for the exit and
   * returns what GNU time measured.
   */
  async stop(graceMs = 15_000): Promise<ProcessUsage> {
    const signal = async () => {
      const pid = await this.#timeoutPid();
      if (pid !== null) {
        try {
          Deno.kill(pid, "SIGTERM");
        } catch {
          // Gone meanwhile.
        }
      }
    };
    let done = false;
    this.exited.finally(() => done = true);
    await signal();
    for (let waited = 0; !done && waited < graceMs; waited += 50) await delay(50);
    if (!done) await signal();
    return await this.wait();
  }

  /** Waits for the exit; returns what GNU time measured. */
  async wait(): Promise<ProcessUsage> {
    const status = await this.exited;
    const seconds = (performance.now() - this.#started) / 1000;
    await this.#stdout;
    const usage = await readUsage(this.#usage);
    return { code: status.code, seconds, ...usage, stderr: (await this.#stderr).trim() };
  }

  /** Kills Spillway (SIGKILL), so that `timeout` and GNU time exit too. */
  async kill(): Promise<void> {
    const timeoutPid = await this.#timeoutPid();
    const children = timeoutPid === null
      ? ""
      : await Deno.readTextFile(`/proc/${timeoutPid}/task/${timeoutPid}/children`).catch(() => "");
    for (const pid of children.trim().split(" ").filter(Boolean)) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch {
        // Gone.
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The Debezium JVM under GNU time

const USAGE_VARIABLE = "SPILLWAY_BENCH_JAVA_USAGE";

/**
 * Puts a `java` script first on this process's PATH that runs the real `java` under GNU time,
 * writing `%M %U %S` to the file {@linkcode javaUsageFile} names (the Debezium harness spawns
 * `java` from PATH). Returns a function that restores PATH.
 */
export async function wrapJava(work: string): Promise<() => void> {
  const which = await new Deno.Command("sh", {
    args: ["-c", 'readlink -f "$(command -v java)"'],
    stdout: "piped",
  }).output();
  const java = new TextDecoder().decode(which.stdout).trim();
  if (java === "") throw new Error("Cannot find java on PATH");
  const dir = join(work, "java-bin");
  await Deno.mkdir(dir, { recursive: true });
  const script = join(dir, "java");
  await Deno.writeTextFile(
    script,
    `#!/bin/sh\nexec ${GNU_TIME} -f "%M %U %S" -o "\${${USAGE_VARIABLE}:-/dev/null}" ${
      JSON.stringify(java)
    } "$@"\n`,
  );
  await Deno.chmod(script, 0o755);
  const path = Deno.env.get("PATH") ?? "";
  Deno.env.set("PATH", `${dir}:${path}`);
  return () => Deno.env.set("PATH", path);
}

/** Where the wrapped `java` of the next Debezium run writes its usage. */
export function javaUsageFile(file: string): void {
  Deno.env.set(USAGE_VARIABLE, file);
}

// ---------------------------------------------------------------------------------------------
// Kafka

/** Topic administration and checks through kafkajs. */
export class KafkaAdmin {
  readonly kafka: InstanceType<typeof Kafka>;
  readonly admin: ReturnType<InstanceType<typeof Kafka>["admin"]>;

  constructor(brokers: string[]) {
    this.kafka = new Kafka({ clientId: "spillway-bench-kafka", brokers, logLevel: logLevel.ERROR });
    this.admin = this.kafka.admin();
  }

  connect(): Promise<void> {
    return this.admin.connect();
  }

  async create(topic: string, partitions: number): Promise<void> {
    await this.admin.createTopics({ topics: [{ topic, numPartitions: partitions }] });
  }

  /** End offsets (high watermarks) of every partition of `topic`, by partition. */
  async endOffsets(topic: string): Promise<number[]> {
    const offsets = await this.admin.fetchTopicOffsets(topic);
    const ends: number[] = [];
    for (const o of offsets) ends[o.partition] = Number(o.high);
    return ends;
  }

  async delete(topic: string): Promise<void> {
    await this.admin.deleteTopics({ topics: [topic] }).catch(() => {});
  }

  /**
   * Warms the broker up: `megabytes` of 4 KB records, idempotent with acks=all, into a
   * throwaway 3-partition topic, then deleted. A broker's JIT compiles its produce path during
   * the first few hundred MB; without this the first drain of a run (always Spillway's) met a
   * slower broker than the ones after it.
   */
  async warmUp(megabytes: number): Promise<void> {
    const topic = `warmup-${crypto.randomUUID()}`;
    await this.create(topic, 3);
    const producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    try {
      const value = "a".repeat(4096);
      const perBatch = 200;
      for (let sent = 0; sent < megabytes * 256; sent += perBatch) {
        await producer.send({
          topic,
          acks: -1,
          messages: Array.from({ length: perBatch }, (_, i) => ({ key: String(i), value })),
        });
      }
    } finally {
      await producer.disconnect();
      await this.delete(topic);
    }
  }

  /**
   * Reads `topic` from the start as a read_committed consumer until `expected` records came
   * (control records are not counted) or nothing came for `idleMs`; returns the count.
   */
  async countCommitted(topic: string, expected: number, idleMs = 15_000): Promise<number> {
    const consumer = this.kafka.consumer({
      groupId: `count-${topic}-${crypto.randomUUID()}`,
      readUncommitted: false,
      maxBytes: 64 << 20,
      maxBytesPerPartition: 16 << 20,
    });
    await consumer.connect();
    let count = 0;
    let last = performance.now();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachBatchAutoResolve: true,
        autoCommit: false,
        eachBatch: ({ batch }) => {
          count += batch.messages.length;
          last = performance.now();
          return Promise.resolve();
        },
      });
      while (count < expected && performance.now() - last < idleMs) await delay(50);
    } finally {
      await consumer.disconnect();
    }
    return count;
  }
}

/** Microseconds since the Unix epoch, with sub-millisecond resolution. */
export function nowMicros(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

/** `2026-01-01T00:00:00.123456Z` (the `spillway.commit_time` header) → epoch microseconds. */
export function parseMicros(text: string): number {
  const millis = Date.parse(`${text.slice(0, 23)}Z`);
  const micros = Number(text.slice(23, 26));
  return millis * 1000 + micros;
}

/** One record a {@linkcode LatencyConsumer} got: its commit time and when it was read. */
export interface Arrival {
  commitMicros: number;
  /** The record's timestamp (the producer's CreateTime), in microseconds. */
  producedMicros: number;
  readMicros: number;
}

/**
 * A consumer (its own group, from the start) recording, per record of `topic`, its commit time
 * (the `spillway.commit_time` header) and the moment the consumer's fetch handed it over.
 */
export class LatencyConsumer {
  readonly arrivals: Arrival[] = [];
  readonly #consumer;

  constructor(admin: KafkaAdmin) {
    this.#consumer = admin.kafka.consumer({
      groupId: `latency-${crypto.randomUUID()}`,
      maxWaitTimeInMs: 100,
    });
  }

  /** Connects, subscribes and resolves once the group was joined. */
  async start(topic: string): Promise<void> {
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topic, fromBeginning: true });
    const joined = new Promise<void>((resolve) => {
      this.#consumer.on(this.#consumer.events.GROUP_JOIN, () => resolve());
    });
    await this.#consumer.run({
      autoCommit: false,
      eachBatch: ({ batch }) => {
        const now = nowMicros();
        for (const message of batch.messages) {
          const header = message.headers?.["spillway.commit_time"];
          const text = header === undefined ? "" : String(header);
          this.arrivals.push({
            commitMicros: text ? parseMicros(text) : Number.NaN,
            producedMicros: Number(message.timestamp) * 1000,
            readMicros: now,
          });
        }
        return Promise.resolve();
      },
    });
    await joined;
  }

  /** Waits until `count` records came, or `timeoutMs` passed. */
  async waitFor(count: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.arrivals.length < count && performance.now() < deadline) await delay(50);
  }

  stop(): Promise<void> {
    return this.#consumer.disconnect();
  }
}
