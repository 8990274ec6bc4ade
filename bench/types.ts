/**
 * `deno task bench types`: the cost of decoding typed column values, text mode against binary
 * mode, for a wide table, next to `pg_recvlogical` draining the same rows.
 *
 * One PostgreSQL 17 server (test harness) gets a table `wide` of 31 columns, one of each type in
 * {@linkcode WIDE_COLUMNS} (the built-in types named by issue 4; `id int8` is the key), a
 * publication `wide_pub`, and, before anything is loaded, one fresh logical slot per
 * measurement. One transaction then inserts `--rows` rows (default 200,000) of varied values with
 * some NULLs. Each measurement drains its own slot, with proto_version 1, up to that commit:
 *
 * - `pg_recvlogical` (`/usr/bin/pg_recvlogical`) with `-o proto_version=1
 *   -o publication_names=wide_pub -o binary=false|true -f /dev/null -E <end LSN>`, timed from
 *   process start to exit;
 * - Spillway (`bench/_types_drain.ts`, its own process) with the same START_REPLICATION
 *   options: every XLogData goes through `TransactionAssembler`, which decodes every column to its
 *   typed value, into a null sink; timed from connect until the commit is confirmed and the copy
 *   ended.
 *
 * Two modes, text (`binary=false`) and binary (`binary=true`), each with both tools, repeated
 * `--reps` times (default 3) in alternating order; the table shows medians. Then, untimed, per
 * mode: one Spillway drain that keeps the payloads and times decoding them again offline (best of
 * `--iterations`: pgoutput parsing, the typed value decoders per row and per column, the whole
 * assembler), and one `pg_recvlogical` run into a file whose SHA-256 must equal that of the
 * payloads Spillway received, each followed by a newline. Text and binary rows must decode to
 * the same values: every 1000th row is compared through per-column digests.
 *
 * The server's session defaults are set to the values Spillway pins on its connections
 * (`TimeZone=UTC`, `DateStyle=ISO, MDY`, …), so that `pg_recvlogical` receives the same text.
 *
 * The last two lines are `types ratio vs pg_recvlogical: <R>` (the lower of the two modes' ratios
 * of Spillway rows/s to pg_recvlogical rows/s) and `types binary/text speed: <R>` (Spillway
 * binary rows/s ÷ Spillway text rows/s).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { SESSION_PARAMETERS } from "../postgres/connection_string.ts";
import type { TypesDrainResult } from "./_types_drain.ts";
import {
  cannotRun,
  checkSlotsConfirmed,
  createSlots,
  denoRunArgs,
  formatTable,
  invalidCount,
  type Load,
  loadAverage,
  loadInOneTransaction,
  MAX_SLOTS,
  missingTool,
  OUT_DIR,
  parseBenchArgs,
  printRaceTable,
  progressFor,
  raceOrder,
  raceSlot,
  raceSlots,
  recvlogicalRun,
  startBenchPostgres,
  timeDrain,
  type TimedRun,
  timeRecvlogical,
  writeResults,
} from "./_common.ts";

const PUBLICATION = "wide_pub";
/** Each rep needs 4 of the server's {@linkcode MAX_SLOTS} slots, plus 4 untimed ones. */
const MAX_REPS = Math.floor((MAX_SLOTS - 4) / 4);
const DRAIN = fileURLToPath(new URL("./_types_drain.ts", import.meta.url));
const progress = progressFor("types");

/**
 * The table's columns: name, type, and the value of row `g` (a `bigint` from
 * `generate_series`). Several columns are NULL every few rows.
 */
export const WIDE_COLUMNS: readonly (readonly [string, string, string])[] = [
  ["id", "int8 PRIMARY KEY", "g"],
  ["c_int2", "int2", "CASE WHEN g % 17 = 0 THEN NULL ELSE (g % 65535 - 32767)::int2 END"],
  ["c_int4", "int4", "((g * 7919) % 2000000000 - 1000000000)::int4"],
  ["c_float4", "float4", "CASE WHEN g % 23 = 0 THEN NULL ELSE (sin(g) * 10000)::float4 END"],
  ["c_float8", "float8", "cos(g) * 1e6"],
  ["c_num12", "numeric(12,2)", "((g * 7919) % 10000000) / 100.0 - 25000"],
  ["c_num", "numeric", "CASE WHEN g % 13 = 0 THEN NULL ELSE round(g * 1234.56789 / 7, 9) END"],
  ["c_bool", "bool", "CASE WHEN g % 7 = 0 THEN NULL ELSE g % 2 = 0 END"],
  [
    "c_text",
    "text",
    "CASE WHEN g % 10 = 0 THEN 'Zoë Müller #' || g ELSE 'customer ' || g || ' ' || md5(g::text) END",
  ],
  ["c_varchar", "varchar(40)", "substr(md5(g::text) || md5((g + 1)::text), 1, 8 + (g % 32)::int)"],
  ["c_bpchar", "char(10)", "'k' || (g % 10000)"],
  ["c_bytea", "bytea", "CASE WHEN g % 29 = 0 THEN NULL ELSE sha256(g::text::bytea) END"],
  ["c_uuid", "uuid", "md5(g::text)::uuid"],
  [
    "c_json",
    "json",
    `json_build_object('id', g, 'tags', json_build_array('a', g % 10, 'b"c'), 'ok', g % 2 = 0)`,
  ],
  [
    "c_jsonb",
    "jsonb",
    "CASE WHEN g % 19 = 0 THEN NULL ELSE jsonb_build_object('sku', 'SKU-' || g, " +
    "'qty', g % 100, 'price', (g % 100000) / 100.0, 'tags', jsonb_build_array('x', g % 3)) END",
  ],
  ["c_date", "date", "date '2020-01-01' + (g % 4000)::int"],
  ["c_time", "time", "time '00:00' + g * interval '1.234567 second'"],
  [
    "c_timetz",
    "timetz",
    "((time '00:00' + g * interval '37 second')::text || '+' || " +
    "lpad((g % 12)::text, 2, '0') || ':30')::timetz",
  ],
  ["c_ts", "timestamp", "timestamp '2024-01-01' + g * interval '1.5 second'"],
  [
    "c_tstz",
    "timestamptz",
    "CASE WHEN g % 31 = 0 THEN NULL ELSE timestamptz '2024-01-01 00:00:00+00' + " +
    "g * interval '1.000123 second' END",
  ],
  [
    "c_interval",
    "interval",
    "make_interval(0, (g % 14)::int, 0, (g % 30)::int, (g % 24)::int, (g % 60)::int, " +
    "(g % 1000) / 7.0)",
  ],
  [
    "c_inet",
    "inet",
    "CASE WHEN g % 5 = 0 THEN ('2001:db8::' || to_hex(g >> 16) || ':' || to_hex(g & 65535))::inet ELSE " +
    "('10.' || (g >> 16) % 256 || '.' || (g >> 8) % 256 || '.' || g % 256)::inet END",
  ],
  ["c_cidr", "cidr", "('10.' || (g % 256) || '.' || (g >> 8) % 256 || '.0/24')::cidr"],
  ["c_macaddr", "macaddr", "substr(md5(g::text), 1, 12)::macaddr"],
  [
    "c_int4arr",
    "int4[]",
    "ARRAY[(g % 100)::int, (g % 1000)::int, CASE WHEN g % 9 = 0 THEN NULL ELSE " +
    "(g * 31 % 100000)::int END, -(g % 7)::int]",
  ],
  [
    "c_textarr",
    "text[]",
    `CASE WHEN g % 37 = 0 THEN NULL ELSE ARRAY['tag' || (g % 10), 'red', ` +
    `'with space ' || (g % 3), 'q"uote'] END`,
  ],
  ["c_int4range", "int4range", "int4range((g % 1000)::int, (g % 1000 + 10 + g % 50)::int)"],
  [
    "c_tstzrange",
    "tstzrange",
    "tstzrange(timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', " +
    "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' + interval '90 minutes')",
  ],
  ["c_point", "point", "point(g / 7.0, -g / 3.0)"],
  ["c_money", "money", "(((g * 7919) % 100000000) / 100.0 - 1000)::numeric::money"],
  [
    "c_varbit",
    "varbit",
    "substring(((g * 2654435761) % 4294967296)::bit(32)::varbit from 1 for (8 + g % 24)::int)",
  ],
];

/**
 * The session settings Spillway pins ({@linkcode SESSION_PARAMETERS}), as server defaults; not
 * `client_encoding`, which each client sets for itself (the cluster is UTF8 anyway).
 */
const { client_encoding: _, ...SESSION_DEFAULTS } = SESSION_PARAMETERS;

interface Mode {
  key: string;
  label: string;
  binary: boolean;
}

const MODES: readonly Mode[] = [
  { key: "text", label: "text", binary: false },
  { key: "bin", label: "binary", binary: true },
];

/** One timed drain. */
type Run = TimedRun<TypesDrainResult>;

const USAGE = `deno task bench types [options]

Options:
  --rows N        rows inserted by the single transaction (default 200000)
  --reps N        measurements per tool and mode, 1-${MAX_REPS}; the table shows medians (default 3)
  --iterations N  offline timings of the captured payloads, best of N (default 3)
  --cpu-prof      run the Spillway drains under --cpu-prof (profiles in bench/out/profiles/;
                  timings are then not comparable)`;

/** Runs the types benchmark; returns the exit code. */
export async function typesBench(args: string[]): Promise<number> {
  const values = parseBenchArgs("types", USAGE, () =>
    parseArgs({
      args,
      options: {
        rows: { type: "string", default: "200000" },
        reps: { type: "string", default: "3" },
        iterations: { type: "string", default: "3" },
        "cpu-prof": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
    }).values);
  if (typeof values === "number") return values;
  const rows = Number(values.rows);
  const reps = Number(values.reps);
  const iterations = Number(values.iterations);
  const invalid = invalidCount("rows", rows) ?? invalidCount("reps", reps, MAX_REPS) ??
    invalidCount("iterations", iterations) ?? await missingTool();
  if (invalid !== null) return cannotRun("types", invalid);
  await Deno.mkdir(OUT_DIR, { recursive: true });
  const results = await measure({ rows, reps, iterations, cpuProf: values["cpu-prof"] });
  printResults(results);
  return 0;
}

interface MeasureOptions {
  rows: number;
  reps: number;
  iterations: number;
  cpuProf: boolean;
}

/** The untimed drains of one mode. */
interface Check {
  /** The Spillway drain that kept the payloads and timed decoding them offline. */
  capture: TypesDrainResult;
  recvlogicalBytes: number;
  recvlogicalSha256: string;
}

interface Results {
  /** /proc/loadavg (1, 5, 15 minutes) before and after: other work on the machine skews runs. */
  loadBefore: string;
  loadAfter: string;
  rows: number;
  reps: number;
  iterations: number;
  serverVersion: string;
  load: Load;
  runs: Run[];
  checks: Record<string, Check>;
}

async function measure(options: MeasureOptions): Promise<Results> {
  const loadBefore = await loadAverage();
  progress(`Starting PostgreSQL 17 (load average ${loadBefore})`);
  await using pg = await startBenchPostgres(SESSION_DEFAULTS);
  const psql = pg.psql.bind(pg);
  const serverVersion = await psql("SHOW server_version");
  const allSlots = raceSlots(MODES, options.reps, ["capture", "verify"]);
  await psql(`
    CREATE TABLE wide (
      ${WIDE_COLUMNS.map(([name, type]) => `${name} ${type}`).join(",\n      ")}
    );
    CREATE PUBLICATION ${PUBLICATION} FOR TABLE wide;
  `);
  await createSlots(psql, allSlots);
  progress(
    `Created ${allSlots.length} slots; loading ${options.rows} rows of ${WIDE_COLUMNS.length} ` +
      `columns in one transaction`,
  );
  const load = await loadInOneTransaction(
    psql,
    `INSERT INTO wide (${WIDE_COLUMNS.map(([name]) => name).join(", ")})
     SELECT ${WIDE_COLUMNS.map(([, , value]) => value).join(",\n            ")}
       FROM generate_series(1::bigint, ${options.rows}) AS g;`,
  );
  progress(`Loaded in ${load.seconds.toFixed(1)} s: xid ${load.xid}, end LSN ${load.endLsn}`);
  await psql("CHECKPOINT");

  const work = await Deno.makeTempDir({ prefix: "spillway-bench-types-" });
  const runs: Run[] = [];
  const checks: Record<string, Check> = {};
  const context = { port: pg.port, load, work, cpuProf: options.cpuProf };
  try {
    for (const { rep, mode, tool } of raceOrder(MODES, options.reps)) {
      const slot = raceSlot(mode.key, tool, rep);
      const run = tool === "spillway"
        ? await runSpillway({ ...context, slot, mode, offline: 0 })
        : await runRecvlogical({ ...context, slot, mode, output: "/dev/null" });
      run.rep = rep;
      if (run.drain !== undefined) checkDrain(run.drain, options.rows, mode);
      runs.push(run);
      progress(
        `rep ${rep} ${mode.label} ${tool}: ${run.seconds.toFixed(2)} s, CPU ${
          run.cpuSeconds.toFixed(2)
        } s, peak RSS ${(run.peakRssKib / 1024).toFixed(0)} MB`,
      );
    }
    for (const mode of MODES) {
      progress(`${mode.label}: untimed drains (offline timings, stream check)`);
      const capture = await runSpillway({
        ...context,
        slot: raceSlot(mode.key, "capture"),
        mode,
        offline: options.iterations,
      });
      checkDrain(capture.drain!, options.rows, mode);
      const output = join(work, `${mode.key}.recvlogical`);
      await runRecvlogical({ ...context, slot: raceSlot(mode.key, "verify"), mode, output });
      const check: Check = {
        capture: capture.drain!,
        recvlogicalBytes: (await Deno.stat(output)).size,
        recvlogicalSha256: await sha256File(output),
      };
      await Deno.remove(output);
      verifyStream(mode, check, runs);
      checks[mode.key] = check;
    }
    await checkSlotsConfirmed(psql, "bench%", checks[MODES[0]!.key]!.capture.commitEndLsn);
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  const loadAfter = await loadAverage();
  return {
    loadBefore,
    loadAfter,
    rows: options.rows,
    reps: options.reps,
    iterations: options.iterations,
    serverVersion,
    load,
    runs,
    checks,
  };
}

interface DrainContext {
  port: number;
  load: Load;
  work: string;
  cpuProf: boolean;
  slot: string;
  mode: Mode;
}

async function runSpillway(options: DrainContext & { offline: number }): Promise<Run> {
  const script = denoRunArgs(
    DRAIN,
    options.cpuProf ? `${options.slot}.cpuprofile` : undefined,
    { v8Flags: options.offline > 0 ? "--expose-gc" : undefined },
  );
  // deno-fmt-ignore
  const args = [...script, "--port", String(options.port), "--slot", options.slot,
    "--publication", PUBLICATION, "--xid", String(options.load.xid),
    "--end-lsn", options.load.endLsn, "--offline", String(options.offline)];
  if (options.mode.binary) args.push("--binary");
  return await timeDrain<TypesDrainResult>(options.mode.key, options.slot, args, options.work);
}

async function runRecvlogical(options: DrainContext & { output: string }): Promise<Run> {
  const timed = await timeRecvlogical({
    port: options.port,
    slot: options.slot,
    pluginOptions: [
      "proto_version=1",
      `publication_names=${PUBLICATION}`,
      `binary=${options.mode.binary}`,
    ],
    endLsn: options.load.endLsn,
    output: options.output,
    work: options.work,
  });
  return recvlogicalRun(options.mode.key, timed);
}

function checkDrain(drain: TypesDrainResult, rows: number, mode: Mode): void {
  if (drain.rows !== rows) {
    throw new Error(
      `Spillway drain in ${mode.label} mode saw ${drain.rows} rows, expected ${rows}`,
    );
  }
  if (drain.columns.length !== WIDE_COLUMNS.length) {
    throw new Error(
      `Spillway drain in ${mode.label} mode saw ${drain.columns.length} columns, expected ${WIDE_COLUMNS.length}`,
    );
  }
  const wanted = mode.binary ? "b" : "t";
  if (/[tbu]/.test(drain.firstRowFormats.replaceAll(wanted, ""))) {
    progress(
      `note: in ${mode.label} mode the first row came as "${drain.firstRowFormats}" (t text, ` +
        `b binary, n NULL)`,
    );
  }
}

/**
 * The untimed pg_recvlogical run wrote exactly the payloads Spillway's capture drain received,
 * each followed by a newline; every timed Spillway drain of the mode received as many bytes and
 * decoded the same sampled values.
 */
function verifyStream(mode: Mode, check: Check, runs: Run[]): void {
  const capture = check.capture;
  const expectedBytes = capture.payloadBytes + capture.messages;
  if (
    check.recvlogicalBytes !== expectedBytes ||
    check.recvlogicalSha256 !== capture.offline!.streamSha256
  ) {
    throw new Error(
      `pg_recvlogical wrote ${check.recvlogicalBytes} bytes (SHA-256 ${check.recvlogicalSha256}) in ${mode.label} mode but Spillway received ${expectedBytes} (${
        capture.offline!.streamSha256
      }): the two tools did not get the same stream`,
    );
  }
  for (const run of runs) {
    if (run.mode !== mode.key || run.drain === undefined) continue;
    if (run.drain.payloadBytes + run.drain.messages !== expectedBytes) {
      throw new Error(`Spillway drains of ${mode.label} mode received different streams`);
    }
    if (run.drain.digests.join() !== capture.digests.join()) {
      throw new Error(`Spillway drains of ${mode.label} mode decoded different values`);
    }
  }
  progress(
    `verified ${mode.label}: pg_recvlogical and Spillway got the same ${expectedBytes} bytes`,
  );
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buffer = new Uint8Array(1 << 20);
  for (;;) {
    const read = await file.read(buffer);
    if (read === null) break;
    hash.update(buffer.subarray(0, read));
  }
  return hash.digest("hex");
}

function printResults(results: Results): void {
  const text = results.checks.text!;
  const binary = results.checks.bin!;
  const mb = (check: Check) => (check.capture.payloadBytes / 1e6).toFixed(1);
  console.log(
    `PostgreSQL ${results.serverVersion}, ${results.rows} rows x ${WIDE_COLUMNS.length} columns ` +
      `in one transaction (load ${results.load.seconds.toFixed(1)} s; payload ${mb(text)} MB ` +
      `text, ${mb(binary)} MB binary), proto 1, median of ${results.reps}; load average ` +
      `${results.loadBefore} before, ${results.loadAfter} after`,
  );
  const { rates, lowestRatio } = printRaceTable(MODES, results.runs, results.rows);
  const speed = rates.bin!.spillway / rates.text!.spillway;
  console.log(`Spillway binary/text: ${speed.toFixed(2)}x rows/s`);

  // Offline: the client's own cost on the captured payloads.
  const columns = WIDE_COLUMNS.length;
  const offlineLines = [text, binary].map((check, i) => {
    const offline = check.capture.offline!;
    return [
      i === 0 ? "text" : "binary",
      String(offline.parseNsPerRow),
      String(offline.valuesNsPerRow),
      String(offline.assembleNsPerRow),
      (offline.assembleNsPerRow / columns).toFixed(0),
      Math.round(1e9 / offline.assembleNsPerRow).toLocaleString("en-US"),
    ];
  });
  const ratioOf = (index: number) =>
    (Number(offlineLines[1]![index]!) / Number(offlineLines[0]![index]!)).toFixed(2) + "x";
  offlineLines.push(["binary/text", ratioOf(1), ratioOf(2), ratioOf(3), ratioOf(4), ""]);
  console.log(
    `\nOffline, Spillway only, on the captured payloads of the first ` +
      `${text.capture.offline!.rows} rows (best of ${results.iterations})`,
  );
  const offlineHeader = [
    "mode",
    "parse ns/row",
    "values ns/row",
    "assemble ns/row",
    "ns/column",
    "rows/s",
  ];
  for (const line of formatTable(offlineHeader, offlineLines, 1)) console.log(line);
  console.log(
    "parse: PgoutputDecoder.decode; values: the column decoders, row by row; assemble: " +
      "TransactionAssembler.push (parse + values + events), ns/column = assemble / columns.",
  );

  const columnLines = text.capture.offline!.perColumn.map((t, i) => {
    const b = binary.capture.offline!.perColumn[i]!;
    return [
      t.name,
      t.type,
      b.format,
      String(t.nsPerValue),
      String(b.nsPerValue),
      (b.nsPerValue / Math.max(1, t.nsPerValue)).toFixed(2),
      String(b.nsPerValue - t.nsPerValue),
    ];
  });
  columnLines.sort((a, b) => Number(b[6]) - Number(a[6]));
  console.log(
    `\nPer column, the column decoder alone (ns/value, non-NULL values), by binary - text`,
  );
  const columnHeader = ["column", "type", "fmt", "text", "binary", "b/t", "b-t"];
  for (const line of formatTable(columnHeader, columnLines, 3)) console.log(line);

  const differing = text.capture.columns
    .filter((_, i) => text.capture.digests[i] !== binary.capture.digests[i])
    .map((column) => column.name);
  console.log(
    differing.length === 0
      ? `\nvalues: text and binary decode alike in all ${columns} columns ` +
        `(${text.capture.sampledRows} sampled rows)`
      : `\nvalues: text and binary DIFFER in ${differing.join(", ")} ` +
        `(${text.capture.sampledRows} sampled rows)`,
  );
  writeResults("types", { date: new Date().toISOString(), ...results });
  console.log(`types ratio vs pg_recvlogical: ${lowestRatio.toFixed(2)}`);
  console.log(`types binary/text speed: ${speed.toFixed(2)}`);
}
