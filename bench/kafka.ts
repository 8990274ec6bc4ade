/**
 * `deno task bench kafka`: Spillway's Kafka sink against Debezium (embedded engine, producing
 * into the same broker) and pg_recvlogical, on the same machine in the same run.
 *
 * One PostgreSQL 17 server (the `orders`/`ticks` tables and publication of `bench/pipeline.ts`)
 * and one Kafka broker (`testing/kafka.ts`, 3 partitions per auto-created topic, deleted topics
 * removed from disk after 1 s). Two workloads of `--rows` orders (default 1,000,000): one
 * transaction, and transactions of `--txn-rows` (default 1,000). Every drain has its own slot,
 * all created before the load, so all start at the same position; each run writes to its own
 * topic, deleted after its checks.
 *
 * Drains of each workload, `--reps` times (order reversed on even reps):
 *
 * - Spillway: `spillway run <pipeline.yaml>` (as `deno task run` runs it) with a `kafka:` sink
 *   `{ brokers, partitions: 3, schemas, exactly_once }` (acks all and idempotent by default,
 *   `format: debezium-json`): at-least-once with `schemas: true` (the JsonConverter's default)
 *   and with `schemas: false`, and exactly-once with `schemas: true`. Timed from the server's
 *   side: a `psql \watch` polls `pg_replication_slots` every 50 ms, from the first poll that sees
 *   the slot active (Spillway's walsender started streaming) to the first that sees its
 *   `confirmed_flush_lsn` at the load's end. Spillway confirms a commit only once the broker
 *   acknowledged its records, and sends that position within its confirm delay. Then SIGTERM;
 *   peak RSS and CPU from GNU time.
 * - Debezium: `runDebezium` (its harness tuning; producer acks=all, idempotent, linger 10 ms,
 *   1 MiB batches) with `schemas` true (its default) and false, stopping after `--rows` records.
 *   Timed from the first poll that sees its slot active to its last ack (the harness's
 *   `last_ms`; it confirms to its slot only on its 10 s offset flush, so its slot is not
 *   waited for). Its JVM runs under GNU time through a `java` wrapper put first on PATH.
 * - pg_recvlogical with Spillway's START_REPLICATION options, into /dev/null: spawn → exit at
 *   the end LSN, the floor.
 *
 * After each Spillway or Debezium drain the topic's end offsets (kafkajs
 * `admin.fetchTopicOffsets`) must add up to `--rows` (at-least-once: no record lost, none
 * doubled by a retry); an exactly-once topic also holds transaction markers, so there a
 * read_committed consumer must count `--rows` records.
 *
 * Latency: `pgbench -R <rate>` one-row transactions into `ticks` for `--latency-seconds`, into a
 * running `spillway run` (kafka sink, at-least-once, schemas true) that has already delivered
 * one priming row (so the sink's connecting is not measured); a kafkajs consumer in this
 * process records, per record, the time from its commit (the `spillway.commit_time` header,
 * server clock) to the moment its fetch returned it (so: commit → readable by a consumer),
 * after a 2 s warm-up. The record's timestamp (Spillway's producer sets it, ms) splits that
 * into commit → produced and produced → consumer; the median per second of the load shows
 * whether the pipeline keeps up.
 *
 * The last line printed is `kafka ratio vs debezium: <R>`: Spillway rows/s ÷ Debezium rows/s,
 * at-least-once, schemas true, one transaction (medians of the reps).
 *
 * @module
 */

import { latencyOf, type LatencySummary } from "./_pipeline_run.ts";
import { extraYamlLines } from "./_drain_common.ts";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import {
  type KafkaBroker,
  PRODUCTION_JVM_OPTIONS,
  startKafka,
  topicBytesOnDisk,
} from "../testing/kafka.ts";
import { startRegistry } from "../testing/registry.ts";
import { debeziumClassPath, runDebezium } from "../testing/debezium.ts";
import { DEFAULT_MODE, type Load, loadSingle, startContext } from "./pipeline.ts";
import type { Context } from "./pipeline.ts";
import {
  benchV8Flags,
  createSlots,
  formatTable,
  insertOrders,
  loadAverage,
  loadInOneTransaction,
  parseParts,
  progressFor,
  recvlogicalTimes,
  RUN_COLUMNS,
  runBenchmark,
  runCells,
  type RunTimes,
  timeProcess,
  timeRecvlogical,
  writeResults,
} from "./_common.ts";
import { clientBinary } from "./_pipeline_util.ts";
import {
  javaUsageFile,
  KafkaAdmin,
  LatencyConsumer,
  readUsage,
  SlotWatch,
  SpillwayProcess,
  wrapJava,
} from "./_kafka_util.ts";

const progress = progressFor("kafka");
const PUBLICATION = "bench_pub";
const PARTITIONS = 3;
const MAX_REPS = 5;
/**
 * Drains per tool and variant by default: the median of three, one of them in the reversed
 * order, so that the broker's warm-up (see `bench/RESULTS.md`, 2026-12-07) does not fall on one
 * tool's drains only.
 */
const KAFKA_REPS = 3;
const RUN_TIMEOUT_S = 900;
/** How long a Spillway run under `--cpu-prof` may take to stop: writing the profile is slow. */
const PROFILED_STOP_GRACE_MS = 120_000;
const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const MEMORY_MAIN = fileURLToPath(new URL("./_memory_main.ts", import.meta.url));
const WARMUP_MS = 2000;
/** Megabytes produced into the broker before the first drain (see `KafkaAdmin.warmUp`). */
const WARM_UP_MB = 300;

const PROFILE_DIR = fileURLToPath(new URL("./out/profiles", import.meta.url));

const USAGE = `deno task bench kafka [options]

Options:
  --rows N             rows of each throughput load (default 1000000)
  --txn-rows N         rows per transaction of the many-transactions load (default 1000)
  --reps N             drains per tool and variant, 1-${MAX_REPS} (default ${KAFKA_REPS}; the order is
                       reversed on even reps; the median is reported). The broker still gets
                       faster over its first few drains (about 10 GB), which the first drain
                       of a run (Spillway's) meets alone with --reps 1.
  --latency-seconds S  duration of the 1,000 tx/s load (default 20)
  --rate R             transactions per second of the latency load (default 1000)
  --only LIST          run only some parts: single,txns,latency (comma-separated)
  --variants LIST      run only some drains of single and txns (comma-separated):
                       sp_alo_s, sp_alo_n, sp_eos_s (Spillway at-least-once schemas true,
                       false; exactly-once schemas true), dbz_s, dbz_n (Debezium schemas
                       true, false), recv (pg_recvlogical), sp_avro (Spillway, Avro with
                       a schema registry); default all but sp_avro
  --v8-flags FLAGS     V8 flags for Spillway (default: those of "deno task run"; none
                       for V8's own defaults)
  --cpu-prof           run Spillway under --cpu-prof (profiles in bench/out/profiles/,
                       named after the drain's topic prefix)
  --memory             print where each Spillway drain's memory went (peaks of the V8 heap,
                       external buffers and RSS, sampled inside the process)

Environment, for probes (printed when set):
  SPILLWAY_BENCH_EXTRA_YAML   more top-level keys of Spillway's pipeline files, lines
                              separated by ';', e.g. 'queue: { capacity: 500 }'
  SPILLWAY_BENCH_KAFKA_SINK   more keys of its kafka sink, as a JSON object, e.g.
                              '{"batch_bytes":"256KB"}' (not the variant's own keys)
  SPILLWAY_BENCH_SNAP_S       with --memory: a V8 heap snapshot that many seconds into each
                              Spillway drain, next to its pipeline file (it pauses the drain)`;

/** More keys of the bench's kafka sink (`SPILLWAY_BENCH_KAFKA_SINK`), checked up front. */
function extraSinkKeys(): Record<string, unknown> {
  const text = Deno.env.get("SPILLWAY_BENCH_KAFKA_SINK");
  if (text === undefined) return {};
  let keys: unknown;
  try {
    keys = JSON.parse(text);
  } catch (error) {
    throw new Error(
      `SPILLWAY_BENCH_KAFKA_SINK is not JSON (${
        (error as Error).message
      }); give an object such as '{"batch_bytes":"256KB"}'`,
    );
  }
  if (typeof keys !== "object" || keys === null || Array.isArray(keys)) {
    throw new Error("SPILLWAY_BENCH_KAFKA_SINK must be a JSON object of kafka sink keys");
  }
  for (const own of ["brokers", "partitions", "schemas", "exactly_once", "format"]) {
    if (own in keys) {
      throw new Error(`SPILLWAY_BENCH_KAFKA_SINK cannot set "${own}": the variant does`);
    }
  }
  return keys as Record<string, unknown>;
}

type Part = "single" | "txns" | "latency";
const PARTS: readonly Part[] = ["single", "txns", "latency"];

interface Options {
  rows: number;
  txnRows: number;
  reps: number;
  latencySeconds: number;
  rate: number;
  parts: Part[];
  /** Keys of the {@linkcode VARIANTS} drained. */
  variants: string[];
  /** Spillway's drains write V8 CPU profiles. */
  cpuProf: boolean;
  /** Spillway's drains report where their memory went (`bench/_memory_main.ts`). */
  memory: boolean;
  /** V8 flags of Spillway's drains. */
  v8Flags: string | undefined;
}

/** Runs the Kafka benchmark; returns the exit code. */
export function kafkaBench(args: string[]): Promise<number> {
  return runBenchmark({
    name: "kafka",
    usage: USAGE,
    args,
    parse: (args) =>
      parseOptions(args, { parts: PARTS, variants: DEFAULT_VARIANTS, reps: KAFKA_REPS }),
    run: async (options) => printResults(await measure(options), "debezium"),
  });
}

const AVRO_USAGE = `deno task bench avro [options]

The 1,000,000-row transaction of bench kafka into the local broker as Avro (with a schema
registry: Apicurio Registry 3.3.3) and as JSON without and with the embedded schema, in the
same run: rows/s and bytes per event on the broker's disk. The last line is
"avro/json throughput ratio: <R>" (Avro rows/s ÷ JSON without schema rows/s).

Options: as bench kafka (--rows, --reps, --only, --variants, --v8-flags, --cpu-prof);
default --only single --variants sp_avro,sp_alo_n,sp_alo_s.`;

/** Runs the Avro benchmark (Avro against JSON into Kafka); returns the exit code. */
export function avroBench(args: string[]): Promise<number> {
  return runBenchmark({
    name: "avro",
    usage: AVRO_USAGE,
    args,
    parse: (args) =>
      parseOptions(args, {
        parts: ["single"],
        variants: ["sp_avro", "sp_alo_n", "sp_alo_s"],
        reps: 1,
      }),
    run: async (options) => printResults(await measure(options), "avro"),
  });
}

function parseOptions(
  args: string[],
  defaults: { parts: readonly Part[]; variants: readonly string[]; reps: number },
): Options {
  const { values } = parseArgs({
    args,
    options: {
      rows: { type: "string", default: "1000000" },
      "txn-rows": { type: "string", default: "1000" },
      reps: { type: "string", default: String(defaults.reps) },
      "latency-seconds": { type: "string", default: "20" },
      rate: { type: "string", default: "1000" },
      only: { type: "string" },
      variants: { type: "string" },
      "cpu-prof": { type: "boolean", default: false },
      memory: { type: "boolean", default: false },
      "v8-flags": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  const integer = (name: string, text: string, min: number, max = Infinity) => {
    const value = Number(text.replaceAll("_", ""));
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new Error(
        max === Infinity
          ? `--${name} must be an integer of at least ${min}`
          : `--${name} must be an integer from ${min} to ${max}`,
      );
    }
    return value;
  };
  return {
    rows: integer("rows", values.rows, 1),
    txnRows: integer("txn-rows", values["txn-rows"], 1),
    reps: integer("reps", values.reps, 1, MAX_REPS),
    latencySeconds: integer("latency-seconds", values["latency-seconds"], 1),
    rate: integer("rate", values.rate, 1),
    parts: values.only === undefined ? [...defaults.parts] : parseParts(values.only, PARTS),
    variants: values.variants === undefined
      ? [...defaults.variants]
      : parseVariants(values.variants),
    cpuProf: values["cpu-prof"],
    memory: values.memory,
    v8Flags: benchV8Flags(values["v8-flags"]),
  };
}

/** The variant keys `--variants` names. */
function parseVariants(list: string): string[] {
  const keys = VARIANTS.map((variant) => variant.key);
  const chosen = list.split(",").map((key) => key.trim()).filter((key) => key !== "");
  for (const key of chosen) {
    if (!keys.includes(key)) throw new Error(`--variants takes ${keys.join(", ")}, not "${key}"`);
  }
  if (chosen.length === 0) throw new Error("--variants names none");
  return chosen;
}

// ---------------------------------------------------------------------------------------------
// Measurements

type Tool = "spillway" | "debezium" | "pg_recvlogical";

/** A drain's tool and settings. */
interface Variant {
  key: string;
  tool: Tool;
  /** JsonConverter schemas (Spillway's `schemas`, Debezium's `schemas.enable`). */
  schemas: boolean;
  exactlyOnce: boolean;
  /** Spillway's format; Debezium's runs are JSON. */
  format: "debezium-json" | "debezium-avro";
  label: string;
}

const JSON_FORMAT = "debezium-json" as const;

const VARIANTS: readonly Variant[] = ([
  { key: "sp_alo_s", tool: "spillway", schemas: true, exactlyOnce: false },
  { key: "dbz_s", tool: "debezium", schemas: true, exactlyOnce: false },
  { key: "recv", tool: "pg_recvlogical", schemas: false, exactlyOnce: false },
  { key: "sp_alo_n", tool: "spillway", schemas: false, exactlyOnce: false },
  { key: "dbz_n", tool: "debezium", schemas: false, exactlyOnce: false },
  { key: "sp_eos_s", tool: "spillway", schemas: true, exactlyOnce: true },
  {
    key: "sp_avro",
    tool: "spillway",
    schemas: false,
    exactlyOnce: false,
    format: "debezium-avro",
  },
] satisfies (Omit<Variant, "label" | "format"> & { format?: Variant["format"] })[] as (
  & Omit<Variant, "label" | "format">
  & { format?: Variant["format"] }
)[]).map((variant) => ({
  ...variant,
  format: variant.format ?? JSON_FORMAT,
  label: variant.tool === "pg_recvlogical"
    ? "-"
    : variant.format === "debezium-avro"
    ? "at-least-once, avro"
    : `${variant.exactlyOnce ? "exactly-once" : "at-least-once"}, schemas ${variant.schemas}`,
}));

/** What `deno task bench kafka` drains unless `--variants` says otherwise (Avro: bench avro). */
const DEFAULT_VARIANTS = VARIANTS.filter((v) => v.format === JSON_FORMAT).map((v) => v.key);

/** One timed drain. */
interface Drain extends RunTimes {
  workload: Part;
  variant: string;
  tool: Tool;
  rep: number;
  slot: string;
  rows: number;
  topic?: string;
  /** How the topic was checked: end offsets summed, or records a consumer counted. */
  check?: string;
  /** Debezium: its own first record → last ack. */
  debeziumElapsedSeconds?: number;
  /** Why the drain failed; its times are then NaN. */
  error?: string;
  /** The topic's log segments on the broker's disk ÷ rows (batch headers included). */
  bytesPerEvent?: number;
}

interface LatencyResult {
  rate: number;
  seconds: number;
  pgbench: { tps: number; transactions: number };
  records: number;
  warmupRecords: number;
  commitToConsumer: LatencySummary;
  commitToConsumerAll: LatencySummary;
  /** The median commit → consumer latency of each second of the load, ms. */
  medianBySecond: number[];
  /** After the warm-up: commit → the record's timestamp (set by Spillway's producer, ms). */
  commitToProduced: LatencySummary;
  /** After the warm-up: the record's timestamp → read by the consumer. */
  producedToConsumer: LatencySummary;
  peakRssKib: number;
}

interface Results {
  date: string;
  options: Options;
  loadBefore: string;
  loadAfter: string;
  serverVersion: string;
  recvlogical: string;
  loads: Partial<Record<Part, Load>>;
  drains: Drain[];
  latency: LatencyResult | null;
  seconds: number;
}

/** What every drain needs. */
interface Bench {
  context: Context;
  brokers: string[];
  admin: KafkaAdmin;
  psql: string;
  recvlogical: string;
  drains: Drain[];
  cpuProf: boolean;
  memory: boolean;
  v8Flags: string | undefined;
  kafka: KafkaBroker;
  /** The schema registry of the Avro drains; `null` when none runs. */
  registryUrl: string | null;
  /** More keys of Spillway's kafka sink (`SPILLWAY_BENCH_KAFKA_SINK`). */
  extraSinkKeys: Record<string, unknown>;
}

async function measure(options: Options): Promise<Results> {
  const started = performance.now();
  const loadBefore = await loadAverage();
  const recvlogical = await clientBinary("pg_recvlogical");
  const psql = await clientBinary("psql");
  const sinkKeys = extraSinkKeys(); // a mistake there fails now, not after the set-up
  for (
    const name of [
      "SPILLWAY_BENCH_EXTRA_YAML",
      "SPILLWAY_BENCH_KAFKA_SINK",
      "SPILLWAY_BENCH_SNAP_S",
    ]
  ) {
    const value = Deno.env.get(name);
    if (value !== undefined) progress(`${name}=${value}`);
  }
  progress("Preparing Debezium (jars, program)");
  await debeziumClassPath();
  progress(`Starting PostgreSQL 17 and Kafka (load average ${loadBefore})`);
  await using kafka = await startKafka({
    jvmOptions: PRODUCTION_JVM_OPTIONS,
    settings: {
      "num.partitions": String(PARTITIONS),
      // Each run's topic is deleted after its checks: free the disk at once.
      "log.segment.delete.delay.ms": "1000",
      "file.delete.delay.ms": "1000",
    },
  });
  await using context = await startContext({
    recvlogical: recvlogical.path,
    cpuProf: false,
    progress,
  });
  await using registry = options.variants.includes("sp_avro") ? await startRegistry() : null;
  const restorePath = await wrapJava(context.work);
  const admin = new KafkaAdmin(kafka.brokers);
  await admin.connect();
  progress(`Warming the broker up (${WARM_UP_MB} MB)`);
  await admin.warmUp(WARM_UP_MB);
  const bench: Bench = {
    context,
    brokers: kafka.brokers,
    admin,
    psql: psql.path,
    recvlogical: recvlogical.path,
    drains: [],
    cpuProf: options.cpuProf,
    memory: options.memory,
    extraSinkKeys: sinkKeys,
    v8Flags: options.v8Flags,
    kafka,
    registryUrl: registry?.url ?? null,
  };
  const loads: Partial<Record<Part, Load>> = {};
  let latency: LatencyResult | null = null;
  try {
    const serverVersion = await context.psql("SHOW server_version");
    if (options.parts.includes("single")) {
      loads.single = await workload(
        bench,
        options,
        "single",
        () => loadSingle(context, options.rows),
      );
    }
    if (options.parts.includes("txns")) {
      loads.txns = await workload(
        bench,
        options,
        "txns",
        () => loadTransactions(context, options.rows, options.txnRows),
      );
    }
    if (options.parts.includes("latency")) {
      const pgbench = await clientBinary("pgbench");
      latency = await measureLatency(bench, options, pgbench.path);
    }
    return {
      date: new Date().toISOString(),
      options,
      loadBefore,
      loadAfter: await loadAverage(),
      serverVersion,
      recvlogical: recvlogical.version,
      loads,
      drains: bench.drains,
      latency,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    restorePath();
    await admin.admin.disconnect().catch(() => {});
  }
}

/**
 * Inserts `rows` orders in transactions of `txnRows` (a DO block committing after each, the
 * last one on its own); the last transaction's xid and the WAL position after its commit.
 */
async function loadTransactions(context: Context, rows: number, txnRows: number): Promise<Load> {
  const first = context.nextId;
  context.nextId += rows;
  const transactions = Math.ceil(rows / txnRows);
  const lastFrom = first + (transactions - 1) * txnRows;
  const started = performance.now();
  if (transactions > 1) {
    const batch = `${first}::bigint + t * ${txnRows}`;
    await context.psql(`
      DO $$
      BEGIN
        FOR t IN 0..${transactions - 2} LOOP
          ${insertOrders(`generate_series(${batch}, ${batch} + ${txnRows - 1})`)}
          COMMIT;
        END LOOP;
      END $$;`);
  }
  const last = await loadInOneTransaction(
    context.psql,
    insertOrders(`generate_series(${lastFrom}::bigint, ${first + rows - 1})`),
  );
  const seconds = (performance.now() - started) / 1000;
  await context.psql("CHECKPOINT");
  const load = { xid: last.xid, endLsn: last.endLsn, rows, transactions, seconds };
  progress(
    `Loaded ${transactions} transactions in ${seconds.toFixed(1)} s, end LSN ${load.endLsn}`,
  );
  return load;
}

/** Creates the slots of every drain of a workload, loads, drains each, drops the slots. */
async function workload(
  bench: Bench,
  options: Options,
  name: Part,
  load: () => Promise<Load>,
): Promise<Load> {
  const plan: { variant: Variant; rep: number; slot: string }[] = [];
  for (let rep = 1; rep <= options.reps; rep++) {
    const chosen = VARIANTS.filter((variant) => options.variants.includes(variant.key));
    const round = rep % 2 === 1 ? chosen : [...chosen].reverse();
    for (const variant of round) {
      plan.push({ variant, rep, slot: `k_${name}_${variant.key}_${rep}` });
    }
  }
  const slots = plan.map((step) => step.slot);
  await createSlots(bench.context.psql, slots);
  progress(`Created ${slots.length} slots; loading ${options.rows} rows (${name})`);
  const loaded = await load();
  for (const step of plan) {
    let drain: Drain;
    try {
      drain = await drainOnce(bench, name, loaded, step.variant, step.rep, step.slot);
    } catch (error) {
      // A failed drain is a result too: report it and go on with the others.
      const message = (error as Error).message;
      bench.drains.push({
        workload: name,
        variant: step.variant.key,
        tool: step.variant.tool,
        rep: step.rep,
        slot: step.slot,
        rows: loaded.rows,
        seconds: Number.NaN,
        processSeconds: Number.NaN,
        cpuSeconds: Number.NaN,
        peakRssKib: 0,
        error: message,
      });
      progress(
        `${name} ${step.variant.tool} ${step.variant.label} rep ${step.rep}: FAILED: ${message}`,
      );
      await bench.context.psql(`SELECT pg_drop_replication_slot('${step.slot}')`);
      continue;
    }
    bench.drains.push(drain);
    progress(
      `${name} ${step.variant.tool} ${step.variant.label} rep ${step.rep}: ${
        drain.seconds.toFixed(2)
      } s (${Math.round(drain.rows / drain.seconds).toLocaleString("en-US")} rows/s), peak RSS ${
        (drain.peakRssKib / 1024).toFixed(0)
      } MB, CPU ${drain.cpuSeconds.toFixed(2)} s${drain.check ? `, ${drain.check}` : ""}`,
    );
    // A drained slot only pins WAL.
    await bench.context.psql(`SELECT pg_drop_replication_slot('${step.slot}')`);
  }
  return loaded;
}

async function drainOnce(
  bench: Bench,
  workload: Part,
  load: Load,
  variant: Variant,
  rep: number,
  slot: string,
): Promise<Drain> {
  const base = { workload, variant: variant.key, tool: variant.tool, rep, slot, rows: load.rows };
  const work = bench.context.work;
  if (variant.tool === "pg_recvlogical") {
    const timed = await timeRecvlogical({
      binary: bench.recvlogical,
      port: bench.context.pg.port,
      slot,
      // As bench/pipeline.ts: the options Spillway's source sends.
      pluginOptions: [
        "proto_version=4",
        `publication_names=${PUBLICATION}`,
        "binary=false",
        "messages=true",
        `streaming=${DEFAULT_MODE}`,
      ],
      endLsn: load.endLsn,
      output: "/dev/null",
      work,
      timeoutSeconds: RUN_TIMEOUT_S,
    });
    return { ...base, ...recvlogicalTimes(timed) };
  }
  // Topic names: <prefix>.public.orders; a prefix per run (and per pipeline name).
  const prefix = `k${workload}_${variant.key}_${rep}`.replaceAll("_", "-");
  const topic = `${prefix}.public.orders`;
  const watch = new SlotWatch(
    bench.psql,
    bench.context.pg.port,
    slot,
    load.endLsn,
    join(work, `${prefix}.watch.sql`),
  );
  let drain: Drain;
  try {
    if (variant.tool === "spillway") {
      const file = join(work, `${prefix}.yaml`);
      await Deno.writeTextFile(file, pipelineYaml(bench, prefix, slot, ["public.orders"], variant));
      const flags = bench.cpuProf
        ? ["--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=${prefix}.cpuprofile`]
        : [];
      if (bench.v8Flags !== undefined) flags.push(`--v8-flags=${bench.v8Flags}`);
      const usageFile = join(work, `${prefix}.usage`);
      const main = bench.memory ? MEMORY_MAIN : MAIN;
      const process = new SpillwayProcess(main, file, usageFile, RUN_TIMEOUT_S, flags);
      try {
        await watch.confirmed(process.exited);
      } catch (error) {
        await process.kill();
        const usage = await process.wait();
        throw new Error(`Spillway on slot ${slot}: ${(error as Error).message}: ${usage.stderr}`);
      }
      const usage = await process.stop(bench.cpuProf ? PROFILED_STOP_GRACE_MS : undefined);
      if (usage.code !== 0) {
        throw new Error(`Spillway on slot ${slot} exited ${usage.code}: ${usage.stderr}`);
      }
      if (usage.stderr !== "") progress(`(stderr of ${slot}: ${usage.stderr.slice(0, 400)})`);
      if (bench.memory) {
        progress(`memory of ${slot}: ${await Deno.readTextFile(`${file}.memory.json`)}`);
      }
      drain = {
        ...base,
        topic,
        seconds: (watch.times.confirmedMs - watch.times.activeMs) / 1000,
        processSeconds: usage.seconds,
        cpuSeconds: usage.cpuSeconds,
        peakRssKib: usage.peakRssKib,
      };
    } else {
      const usageFile = join(work, `${prefix}.java.usage`);
      javaUsageFile(usageFile);
      const spawned = performance.now();
      const result = await runDebezium({
        database: {
          host: "127.0.0.1",
          port: bench.context.pg.port,
          user: "postgres",
          dbname: "postgres",
        },
        slot,
        publication: PUBLICATION,
        tables: ["public.orders"],
        topicPrefix: prefix,
        schemas: variant.schemas,
        count: load.rows,
        kafka: bench.brokers,
        readLines: false,
        timeoutMs: RUN_TIMEOUT_S * 1000,
      });
      const processSeconds = (performance.now() - spawned) / 1000;
      const usage = await readUsage(usageFile);
      if (result.records !== load.rows) {
        throw new Error(
          `Debezium on slot ${slot} handled ${result.records} records, not ${load.rows}`,
        );
      }
      if (watch.times.activeMs === 0) await watch.active();
      drain = {
        ...base,
        topic,
        seconds: (result.lastMs - watch.times.activeMs) / 1000,
        processSeconds,
        ...usage,
        debeziumElapsedSeconds: result.elapsedMs / 1000,
      };
    }
  } finally {
    await watch.stop();
  }
  drain.check = await checkTopic(bench, topic, load.rows, variant.exactlyOnce);
  drain.bytesPerEvent = await topicBytesOnDisk(bench.kafka, topic) / load.rows;
  await bench.admin.delete(topic);
  return drain;
}

/** Throws unless the topic holds `rows` records; says how that was checked. */
async function checkTopic(
  bench: Bench,
  topic: string,
  rows: number,
  exactlyOnce: boolean,
): Promise<string> {
  const ends = await bench.admin.endOffsets(topic);
  const sum = ends.reduce((a, b) => a + b, 0);
  if (!exactlyOnce) {
    if (sum !== rows) {
      throw new Error(`Topic ${topic}: end offsets ${ends.join("+")} = ${sum}, not ${rows}`);
    }
    return `end offsets ${ends.join("+")} = ${sum}`;
  }
  const counted = await bench.admin.countCommitted(topic, rows);
  if (counted !== rows) {
    throw new Error(
      `Topic ${topic}: a read_committed consumer read ${counted} records, not ${rows}`,
    );
  }
  return `${counted} committed records (end offsets ${sum}, markers included)`;
}

/** The pipeline file of a Spillway run into Kafka. */
function pipelineYaml(
  bench: Bench,
  name: string,
  slot: string,
  tables: string[],
  variant: { schemas: boolean; exactlyOnce: boolean; format: Variant["format"] },
): string {
  const sink = {
    ...bench.extraSinkKeys,
    brokers: bench.brokers,
    partitions: PARTITIONS,
    schemas: variant.schemas,
    exactly_once: variant.exactlyOnce,
    format: variant.format,
    ...(variant.format === "debezium-avro" ? { schema_registry: bench.registryUrl } : {}),
  };
  return [
    `name: ${name}`,
    "source:",
    `  url: ${JSON.stringify(bench.context.pg.url())}`,
    `  slot: ${slot}`,
    `  publication: ${PUBLICATION}`,
    "  create_slot: false",
    "  create_publication: false",
    "tables:",
    ...tables.map((table) => `  ${JSON.stringify(table)}: {}`),
    "sinks:",
    `  - kafka: ${JSON.stringify(sink)}`,
    "http: off",
    "log: { level: warn }",
    ...extraYamlLines(),
    "",
  ].join("\n");
}

/**
 * Commit → readable latency: pgbench one-row transactions into `ticks`, a running `spillway
 * run` into Kafka, a consumer here.
 */
async function measureLatency(
  bench: Bench,
  options: Options,
  pgbench: string,
): Promise<LatencyResult> {
  const { context } = bench;
  const slot = "k_latency";
  const name = "klatency";
  const topic = `${name}.public.ticks`;
  await createSlots(context.psql, [slot]);
  await bench.admin.create(topic, PARTITIONS);
  const consumer = new LatencyConsumer(bench.admin);
  await consumer.start(topic);
  const script = join(context.work, "tick.sql");
  await Deno.writeTextFile(
    script,
    "INSERT INTO ticks (sent_us, note) VALUES " +
      "((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, 'tick');\n",
  );
  const file = join(context.work, `${name}.yaml`);
  await Deno.writeTextFile(
    file,
    pipelineYaml(bench, name, slot, ["public.ticks"], {
      schemas: true,
      exactlyOnce: false,
      format: JSON_FORMAT,
    }),
  );
  progress(`Latency: pgbench at ${options.rate} tx/s for ${options.latencySeconds} s`);
  const watch = new SlotWatch(
    bench.psql,
    context.pg.port,
    slot,
    "0/0",
    join(context.work, `${name}.watch.sql`),
  );
  const process = new SpillwayProcess(
    MAIN,
    file,
    join(context.work, `${name}.usage`),
    RUN_TIMEOUT_S,
  );
  let out: string;
  try {
    await Promise.race([
      watch.active(),
      process.exited.then(() => {
        throw new Error("spillway run exited before streaming");
      }),
    ]);
    // One record through first, so the sink's connecting is not in the measured records.
    await context.psql("INSERT INTO ticks (sent_us, note) VALUES (0, 'prime')");
    await consumer.waitFor(1, 60_000);
    if (consumer.arrivals.length !== 1) throw new Error("The priming record never reached Kafka");
    // deno-fmt-ignore
    const run = await timeProcess(pgbench, [
      "-n", "-h", "127.0.0.1", "-p", String(context.pg.port), "-U", "postgres",
      "-c", "4", "-j", "2", "-R", String(options.rate), "-T", String(options.latencySeconds),
      "-f", script, "postgres",
    ], join(context.work, "pgbench.usage"), RUN_TIMEOUT_S);
    if (run.code !== 0) throw new Error(`pgbench failed (exit ${run.code}): ${run.stderr}`);
    out = run.stdout;
  } catch (error) {
    await process.kill();
    await watch.stop();
    await consumer.stop().catch(() => {});
    throw error;
  }
  await watch.stop();
  const number = (pattern: RegExp) => Number(pattern.exec(out)?.[1] ?? Number.NaN);
  const transactions = number(/^number of transactions actually processed: (\d+)/m);
  await consumer.waitFor(transactions + 1, 30_000);
  const usage = await process.stop();
  await consumer.stop();
  await context.psql(`SELECT pg_drop_replication_slot('${slot}')`);
  await bench.admin.delete(topic);
  const arrivals = consumer.arrivals.slice(1);
  if (arrivals.length !== transactions) {
    throw new Error(
      `The consumer read ${arrivals.length} records; pgbench committed ${transactions} (and 1 before)`,
    );
  }
  const first = Math.min(...arrivals.map((a) => a.commitMicros));
  // Per second of the load: the median commit -> consumer latency, ms (does it grow?).
  const bySecond: number[][] = [];
  for (const a of arrivals) {
    (bySecond[Math.floor((a.commitMicros - first) / 1e6)] ??= []).push(
      a.readMicros - a.commitMicros,
    );
  }
  const all = arrivals.map((a) => a.readMicros - a.commitMicros);
  const warm = arrivals.filter((a) => a.commitMicros - first >= WARMUP_MS * 1000);
  const after = warm.map((a) => a.readMicros - a.commitMicros);
  const result: LatencyResult = {
    rate: options.rate,
    seconds: options.latencySeconds,
    pgbench: { tps: number(/^tps = ([\d.]+)/m), transactions },
    records: arrivals.length,
    warmupRecords: arrivals.length - after.length,
    commitToConsumer: latencyOf(after),
    commitToConsumerAll: latencyOf(all),
    medianBySecond: Array.from(bySecond, (values) => latencyOf(values ?? []).p50),
    commitToProduced: latencyOf(warm.map((a) => a.producedMicros - a.commitMicros)),
    producedToConsumer: latencyOf(warm.map((a) => a.readMicros - a.producedMicros)),
    peakRssKib: usage.peakRssKib,
  };
  progress(
    `Latency: ${result.records} records, commit -> consumer p50 ${
      result.commitToConsumer.p50.toFixed(2)
    } ms, p99 ${result.commitToConsumer.p99.toFixed(2)} ms`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------
// Report

function printResults(results: Results, headline: "debezium" | "avro"): void {
  const header = ["workload", "tool", "variant", ...RUN_COLUMNS, "vs recv"];
  const rows: string[][] = [];
  const rates: Record<string, number> = {};
  const failures: string[] = [];
  for (const part of ["single", "txns"] as const) {
    const load = results.loads[part];
    if (load === undefined) continue;
    const runsOf = (key: string) =>
      results.drains.filter((drain) => drain.workload === part && drain.variant === key);
    const recv = runsOf("recv").filter((drain) => drain.error === undefined);
    const floor = recv.length === 0 ? Number.NaN : runCells(recv, load.rows).rate;
    const label = part === "single"
      ? `1 txn (${rowsLabel(load.rows)})`
      : `${load.transactions} txns (${rowsLabel(load.rows)})`;
    const ordered = [...VARIANTS].sort((a, b) => toolOrder(a.tool) - toolOrder(b.tool));
    for (const variant of ordered) {
      const all = runsOf(variant.key);
      if (all.length === 0) continue;
      const runs = all.filter((drain) => drain.error === undefined);
      const failed = all.length - runs.length;
      if (runs.length === 0) {
        rows.push([label, variant.tool, variant.label, "FAILED"]);
        continue;
      }
      if (failed > 0) {
        failures.push(
          `${label} ${variant.tool} ${variant.label}: ${failed} of ${all.length} failed`,
        );
      }
      const { rate, cells } = runCells(runs, load.rows);
      rates[`${part}|${variant.key}`] = rate;
      rows.push([
        label,
        variant.tool,
        variant.label,
        ...cells,
        Number.isNaN(floor) ? "-" : `${(rate / floor).toFixed(2)}x`,
      ]);
    }
  }
  const loadText = (["single", "txns"] as const).map((part) => results.loads[part])
    .filter((load) => load !== undefined)
    .map((load) =>
      `${load.transactions} txn(s) of ${load.rows} rows loaded in ${load.seconds.toFixed(1)} s`
    )
    .join(", ");
  console.log(
    `PostgreSQL ${results.serverVersion}; Kafka (1 broker, ${PARTITIONS} partitions); ${loadText}; ` +
      `median of ${results.options.reps}; load average ${results.loadBefore} before, ` +
      `${results.loadAfter} after; ${results.seconds.toFixed(0)} s in all`,
  );
  const width = header.length;
  const padded = rows.map((row) => [...row, ...new Array(width - row.length).fill("")]);
  for (const line of formatTable(header, padded, 3)) console.log(line);
  for (const failure of failures) console.log(`FAILED runs (left out of the medians): ${failure}`);
  for (const drain of results.drains.filter((d) => d.error !== undefined)) {
    console.log(`FAILED ${drain.slot}: ${drain.error!.split("\n")[0]!.slice(0, 400)}`);
  }
  console.log(
    "seconds: Spillway: its slot seen active -> its slot seen confirming the load's end (polled " +
      "every 50 ms; confirmed only after the broker acked); Debezium: its slot seen active -> " +
      "its last ack; pg_recvlogical: spawn -> exit at the end LSN. process s: spawn -> exit. " +
      "CPU s and peak RSS: GNU time (Debezium: the JVM). Every Kafka topic checked: end offsets " +
      "(exactly-once: a read_committed count) = rows.",
  );
  const dbz = results.drains.filter((drain) => drain.debeziumElapsedSeconds !== undefined);
  if (dbz.length > 0) {
    console.log(
      `Debezium's own first record -> last ack (s): ${
        dbz.map((d) =>
          `${d.workload} schemas ${d.variant === "dbz_s"} rep ${d.rep}: ${
            d.debeziumElapsedSeconds!.toFixed(2)
          }`
        ).join("; ")
      }`,
    );
  }
  const latency = results.latency;
  if (latency) {
    const show = (s: LatencySummary) =>
      `p50 ${s.p50.toFixed(2)} ms, p90 ${s.p90.toFixed(2)}, p99 ${s.p99.toFixed(2)}, p99.9 ${
        s.p999.toFixed(2)
      }, max ${s.max.toFixed(2)}, mean ${s.mean.toFixed(2)} (${s.count} records)`;
    console.log(
      `Latency: pgbench -R ${latency.rate} for ${latency.seconds} s: ${latency.pgbench.tps} tx/s, ` +
        `${latency.pgbench.transactions} transactions; spillway run (kafka, at-least-once, ` +
        `schemas true) peak RSS ${(latency.peakRssKib / 1024).toFixed(0)} MB`,
    );
    console.log(
      `  commit -> readable by a consumer (after 2 s warm-up): ${show(latency.commitToConsumer)}`,
    );
    console.log(`  commit -> readable by a consumer (all): ${show(latency.commitToConsumerAll)}`);
    console.log(
      `  of which commit -> record timestamp (producer clock, ms resolution): ${
        show(latency.commitToProduced)
      }`,
    );
    console.log(
      `  and record timestamp -> consumer: ${show(latency.producedToConsumer)}`,
    );
    console.log(
      `  median commit -> consumer per second of the load (ms): ${
        latency.medianBySecond.map((ms) => ms.toFixed(1)).join(" ")
      }`,
    );
    console.log(
      `kafka latency p50/p99 ms (commit -> consumer): ${latency.commitToConsumer.p50.toFixed(2)}/${
        latency.commitToConsumer.p99.toFixed(2)
      }`,
    );
  }
  const sizes = results.drains.filter((d) => d.bytesPerEvent !== undefined);
  if (sizes.length > 0) {
    console.log(
      `bytes per event on the broker's disk: ${
        sizes.map((d) =>
          `${d.workload} ${VARIANTS.find((v) => v.key === d.variant)?.label} rep ${d.rep}: ${
            d.bytesPerEvent!.toFixed(0)
          }`
        ).join("; ")
      }`,
    );
  }
  writeResults(headline === "avro" ? "avro" : "kafka", { ...results, rates });
  if (headline === "avro") {
    const avro = rates["single|sp_avro"];
    const json = rates["single|sp_alo_n"];
    console.log("Headline: Avro rows/s / JSON without schema rows/s, one transaction.");
    console.log(
      `avro/json throughput ratio: ${
        avro === undefined || json === undefined ? "n/a" : (avro / json).toFixed(2)
      }`,
    );
    return;
  }
  const spillway = rates["single|sp_alo_s"];
  const debezium = rates["single|dbz_s"];
  console.log(
    "Headline: Spillway rows/s / Debezium rows/s, at-least-once, schemas true, one transaction.",
  );
  console.log(
    `kafka ratio vs debezium: ${
      spillway === undefined || debezium === undefined ? "n/a" : (spillway / debezium).toFixed(2)
    }`,
  );
}

function toolOrder(tool: Tool): number {
  return tool === "spillway" ? 0 : tool === "debezium" ? 1 : 2;
}

/** 5000000 → "5M", 200000 → "200k". */
function rowsLabel(rows: number): string {
  if (rows % 1_000_000 === 0) return `${rows / 1_000_000}M rows`;
  if (rows % 1000 === 0) return `${rows / 1000}k rows`;
  return `${rows} rows`;
}
