/**
 * One drain of a replication slot for `bench/types.ts`, run as its own process: the slot is
 * started with pgoutput `binary` on or off, every XLogData goes through
 * {@linkcode TransactionAssembler}, which decodes every column of every row to its typed value
 * (the cost being measured), into a sink that counts rows. It stops at the commit of `--xid`,
 * confirms it, ends the copy and prints one JSON line ({@linkcode TypesDrainResult}).
 *
 * To show that text and binary mode yield the same values, every {@linkcode SAMPLE_EVERY}-th row
 * is folded into one digest per column (values in a canonical JSON form).
 *
 * With `--offline N` (an untimed drain), the drain also hashes the stream as `pg_recvlogical`
 * writes it (each payload plus a newline), keeps a copy of the payloads up to the
 * {@linkcode OFFLINE_ROWS}-th Insert and, once the copy has ended, times Spillway's decoding of
 * those payloads N times, without a server ({@linkcode OfflineResult}): pgoutput parsing alone,
 * the whole assembler path, and the typed value decoders alone, row by row and per column. Best
 * of N.
 *
 * Usage: `deno run -A bench/_types_drain.ts --port N --slot NAME --xid XID --end-lsn LSN
 * [--binary] [--publication NAME] [--offline N]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createHash, type Hash } from "node:crypto";
import { formatLsn, type Lsn } from "../decoder/lsn.ts";
import {
  PgoutputDecoder,
  type RelationMessage,
  type TupleData,
  type TupleValue,
} from "../decoder/pgoutput.ts";
import { TypeRegistry } from "../decoder/types/registry.ts";
import { TransactionAssembler } from "../source/assembler.ts";
import { EVENT_RELATION, type Row, type StreamItem } from "../events.ts";
import {
  collectGarbage,
  connectReplication,
  DRAIN_OPTIONS,
  type DrainTarget,
  drainTarget,
  drainToCommit,
  printResult,
  readVmHwmKib,
} from "./_drain_common.ts";

/** Every this many rows (the 1st, 1001st, …) one row goes into the per-column digests. */
export const SAMPLE_EVERY = 1000;
/** The offline timings decode the first this many rows (their tuples are held parsed). */
export const OFFLINE_ROWS = 25_000;
const PROTO_VERSION = 1;

/** What one drain measured; printed as one JSON line. */
export interface TypesDrainResult {
  binary: boolean;
  /** Inserted rows that reached the sink as change events. */
  rows: number;
  /** Connect → commit seen, confirmed and copy ended, in seconds. */
  seconds: number;
  /** Connect → streaming started. */
  startSeconds: number;
  /** XLogData messages received. */
  messages: number;
  /** Bytes of pgoutput payload received (XLogData data, without headers). */
  payloadBytes: number;
  commitEndLsn: string;
  /** Peak RSS of this process (VmHWM), in KiB. */
  vmHwmKib: number;
  /** The relation's columns and their type names. */
  columns: { name: string; type: string }[];
  /** How the columns of the first Insert were sent: `'t'`, `'b'` or `'n'` (NULL). */
  firstRowFormats: string;
  /** Rows folded into {@linkcode digests}. */
  sampledRows: number;
  /** Per column: SHA-1 of the sampled rows' decoded values, in canonical JSON. */
  digests: string[];
  offline?: OfflineResult;
}

/** Decoding the captured payloads again without a server (best of `iterations`). */
export interface OfflineResult {
  iterations: number;
  /** SHA-256 of every payload followed by a newline: what `pg_recvlogical -f` writes. */
  streamSha256: string;
  /** Rows decoded per timing: the first {@linkcode OFFLINE_ROWS}. */
  rows: number;
  /** `PgoutputDecoder.decode` of every message: framing and tuple extraction only. */
  parseNsPerRow: number;
  /** `TransactionAssembler.push` of every message: parse, typed values, events. */
  assembleNsPerRow: number;
  /** The column decoders, row by row (as the assembler calls them), on parsed tuples. */
  valuesNsPerRow: number;
  /** Per column, the column decoder alone over all the rows' values (NULLs skipped). */
  perColumn: { name: string; type: string; format: string; values: number; nsPerValue: number }[];
}

interface DrainOptions extends DrainTarget {
  publication: string;
  binary: boolean;
  /** Iterations of the offline timings; 0: none, and no payloads kept. */
  offline: number;
}

function parseDrainArgs(args: string[]): DrainOptions {
  const { values } = parseArgs({
    args,
    options: {
      ...DRAIN_OPTIONS,
      publication: { type: "string", default: "wide_pub" },
      binary: { type: "boolean", default: false },
      offline: { type: "string", default: "0" },
    },
    strict: true,
  });
  return {
    ...drainTarget(values),
    publication: values.publication,
    binary: values.binary,
    offline: Number(values.offline),
  };
}

/** JSON with bigints (`"123n"`), bytes (`"\\x…"`) and object keys in sorted order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "bigint") return `${v}n`;
    if (v instanceof Uint8Array) {
      return "\\x" + Array.from(v, (byte) => byte.toString(16).padStart(2, "0")).join("");
    }
    if (typeof v === "number" && !Number.isFinite(v)) return String(v);
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      const sorted: Record<string, unknown> = {};
      for (const key of Object.keys(v).sort()) sorted[key] = (v as Record<string, unknown>)[key];
      return sorted;
    }
    return v;
  });
}

/** Counts rows, folds every {@linkcode SAMPLE_EVERY}-th one into per-column digests. */
class DigestSink {
  rows = 0;
  sampled = 0;
  endOf: { xid: number; endLsn: Lsn } | null = null;
  /** The relation of the first change. */
  relation: RelationMessage | undefined;
  #hashes: Hash[] = [];
  #names: string[] = [];

  write(item: StreamItem): void {
    if (item.kind === "change") {
      if (item.event.op !== "c") return;
      this.relation ??= item.event[EVENT_RELATION];
      if (this.rows++ % SAMPLE_EVERY === 0) this.#fold(item.event.after!);
    } else if (item.kind === "commit") {
      this.endOf = { xid: item.tx.xid, endLsn: item.endLsn };
    }
  }

  #fold(row: Row): void {
    if (this.#hashes.length === 0) {
      this.#names = Object.keys(row);
      this.#hashes = this.#names.map(() => createHash("sha1"));
    }
    this.#names.forEach((name, i) => this.#hashes[i]!.update(canonicalJson(row[name]) + "\n"));
    this.sampled++;
  }

  digests(): string[] {
    return this.#hashes.map((hash) => hash.digest("hex").slice(0, 16));
  }
}

interface Frame {
  walStart: Lsn;
  data: Uint8Array;
}

/** Drains the slot up to the load's commit and reports what it measured. */
async function drain(
  options: DrainOptions,
): Promise<{ result: TypesDrainResult; kept: Frame[]; streamSha256: string }> {
  const started = performance.now();
  const connection = await connectReplication(options.port, "spillway-bench-types");
  const kept: Frame[] = [];
  let keptInserts = 0;
  const streamHash = createHash("sha256");
  const newline = new Uint8Array([0x0a]);
  try {
    const assembler = new TransactionAssembler({
      protoVersion: PROTO_VERSION,
      types: new TypeRegistry(),
    });
    const sink = new DigestSink();
    const stream = await connection.startReplication({
      slot: options.slot,
      pgoutput: {
        protoVersion: PROTO_VERSION,
        publicationNames: [options.publication],
        binary: options.binary,
      },
      isIdle: () => !assembler.inTransaction,
    });
    const streamingAt = performance.now();
    let firstRowFormats = "";
    const { messages, payloadBytes } = await drainToCommit(
      stream,
      assembler,
      sink,
      options,
      (xlog) => {
        if (options.offline > 0) {
          streamHash.update(xlog.data).update(newline);
          if (keptInserts < OFFLINE_ROWS) {
            kept.push({ walStart: xlog.walStart, data: xlog.data.slice() });
            if (xlog.data[0] === 0x49) keptInserts++;
          }
        }
        if (firstRowFormats === "" && xlog.data[0] === 0x49) { // 'I'
          firstRowFormats = formatsOf(xlog.data);
        }
      },
    );
    const end = sink.endOf!;
    const finished = performance.now();
    const relation = sink.relation;
    return {
      result: {
        binary: options.binary,
        rows: sink.rows,
        seconds: (finished - started) / 1000,
        startSeconds: (streamingAt - started) / 1000,
        messages,
        payloadBytes,
        commitEndLsn: formatLsn(end.endLsn),
        vmHwmKib: 0,
        columns: relation === undefined ? [] : columnsOf(relation, assembler.types),
        firstRowFormats,
        sampledRows: sink.sampled,
        digests: sink.digests(),
      },
      kept,
      streamSha256: streamHash.digest("hex"),
    };
  } finally {
    await connection.close();
  }
}

function columnsOf(relation: RelationMessage, types: TypeRegistry): TypesDrainResult["columns"] {
  return relation.columns.map((column) => ({
    name: column.name,
    type: types.typeName(column.typeOid),
  }));
}

/** `t`, `b`, `n` or `u` per column of an Insert message. */
function formatsOf(insert: Uint8Array): string {
  const message = new PgoutputDecoder({ protoVersion: PROTO_VERSION }).decode(insert);
  if (message.type !== "Insert") return "";
  return message.newTuple.map(formatOf).join("");
}

function formatOf(value: TupleValue): string {
  if (value === null) return "n";
  if (typeof value === "string") return "t";
  if (value instanceof Uint8Array) return "b";
  return "u";
}

/** Times Spillway's decoding of the kept payloads; see {@linkcode OfflineResult}. */
function offline(frames: Frame[], iterations: number, streamSha256: string): OfflineResult {
  // Parse once untimed: the relation, and the tuples the value timings decode.
  const types = new TypeRegistry();
  let relation: RelationMessage | undefined;
  const tuples: TupleData[] = [];
  {
    const decoder = new PgoutputDecoder({ protoVersion: PROTO_VERSION });
    for (const frame of frames) {
      const message = decoder.decode(frame.data);
      if (message.type === "Relation") relation ??= message;
      else if (message.type === "Insert") tuples.push(message.newTuple);
    }
  }
  if (relation === undefined) throw new Error("Cannot time decoding: no Relation message");
  const columns = relation.columns;
  const decoders = columns.map((c) => types.columnDecoder(c.typeOid, c.typeModifier));

  let parseBest = Infinity;
  let assembleBest = Infinity;
  let valuesBest = Infinity;
  const columnBest = columns.map(() => Infinity);
  let rows = 0;
  let sink = 0;
  for (let iteration = 0; iteration < iterations; iteration++) {
    collectGarbage();
    let started = performance.now();
    const decoder = new PgoutputDecoder({ protoVersion: PROTO_VERSION });
    for (const frame of frames) if (decoder.decode(frame.data).type === "Insert") sink++;
    parseBest = Math.min(parseBest, performance.now() - started);

    collectGarbage();
    started = performance.now();
    const assembler = new TransactionAssembler({ protoVersion: PROTO_VERSION, types });
    rows = 0;
    for (const frame of frames) {
      for (const item of assembler.push(frame.walStart, frame.data)) {
        if (item.kind === "change" && item.event.op === "c") rows++;
      }
    }
    assembleBest = Math.min(assembleBest, performance.now() - started);

    collectGarbage();
    started = performance.now();
    for (const tuple of tuples) {
      const row: Row = {};
      for (let i = 0; i < columns.length; i++) {
        const value = tuple[i];
        row[columns[i]!.name] = value === null || typeof value === "symbol" || value === undefined
          ? null
          : decoders[i]!(value);
      }
      if (row.id === undefined) sink++;
    }
    valuesBest = Math.min(valuesBest, performance.now() - started);

    for (let i = 0; i < columns.length; i++) {
      const decode = decoders[i]!;
      started = performance.now();
      for (const tuple of tuples) {
        const value = tuple[i];
        if (value !== null && typeof value !== "symbol" && value !== undefined) {
          if (decode(value) === undefined) sink++;
        }
      }
      columnBest[i] = Math.min(columnBest[i]!, performance.now() - started);
    }
  }
  if (sink < 0) console.error(sink); // keeps `sink` observable
  const ns = (ms: number, count: number) => Math.round(ms * 1e6 / Math.max(1, count));
  return {
    iterations,
    streamSha256,
    rows,
    parseNsPerRow: ns(parseBest, rows),
    assembleNsPerRow: ns(assembleBest, rows),
    valuesNsPerRow: ns(valuesBest, tuples.length),
    perColumn: columns.map((column, i) => {
      const present = tuples.filter((tuple) =>
        typeof tuple[i] === "string" || tuple[i] instanceof Uint8Array
      );
      return {
        name: column.name,
        type: types.typeName(column.typeOid),
        format: present.length === 0 ? "n" : formatOf(present[0]![i]!),
        values: present.length,
        nsPerValue: ns(columnBest[i]!, present.length),
      };
    }),
  };
}

if (import.meta.main) {
  const options = parseDrainArgs(Deno.args);
  await printResult(
    async () => {
      const { result, kept, streamSha256 } = await drain(options);
      result.vmHwmKib = readVmHwmKib();
      if (options.offline > 0) result.offline = offline(kept, options.offline, streamSha256);
      return result;
    },
    600_000,
    `Drain of slot "${options.slot}" timed out after 10 minutes`,
  );
}
