/**
 * One decode-only drain of a replication slot, run as its own process by `bench/decode.ts` so
 * that its peak RSS can be measured apart from the benchmark driver.
 *
 * It connects as a logical walsender, starts the slot with exactly the pgoutput options
 * `pg_recvlogical` is given (`proto_version`, `publication_names`, optionally `streaming`),
 * decodes every XLogData with {@linkcode PgoutputDecoder}, assembles the messages into change
 * events with {@linkcode TransactionAssembler} (Spillway's decode path), and hands every item to a
 * null sink that only counts. It stops at the commit of transaction `--xid`, confirms its end
 * LSN, ends the copy cleanly and prints one JSON line ({@linkcode DrainResult}) on stdout.
 *
 * Usage: `deno run -A bench/_drain.ts --port N --slot NAME --proto 1|2 [--streaming]
 * --xid XID --end-lsn LSN [--publication NAME] [--capture FILE]`
 *
 * `--capture FILE` also writes every XLogData as an `Int64 walStart, Int32 length, Byte[length]`
 * record, for decoding offline (`bench/_decode_offline.ts`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { PgoutputOptions } from "../postgres/connection.ts";
import { formatLsn, type Lsn } from "../decoder/lsn.ts";
import type { ProtoVersion } from "../decoder/pgoutput.ts";
import { TransactionAssembler } from "../source/assembler.ts";
import type { StreamItem } from "../events.ts";
import {
  connectReplication,
  DRAIN_OPTIONS,
  type DrainTarget,
  drainTarget,
  drainToCommit,
  printResult,
  readVmHwmKib,
} from "./_drain_common.ts";

/** What one drain measured; printed as one JSON line. */
export interface DrainResult {
  /** Inserted rows that reached the sink as change events. */
  rows: number;
  /** Connect → commit seen, confirmed and copy ended, in seconds. */
  seconds: number;
  /** Connect → streaming started, in seconds. */
  startSeconds: number;
  /** Connect → the load's commit reached the sink, in seconds. */
  commitSeconds: number;
  /** XLogData messages received and decoded. */
  messages: number;
  /** Bytes of pgoutput payload received (XLogData data, without headers). */
  payloadBytes: number;
  /** Stream Start messages seen: more than zero means the transaction was streamed. */
  streamStarts: number;
  /** The assembler marked the load's transaction as streamed. */
  streamed: boolean;
  /** End LSN of the load's commit, as confirmed to the server. */
  commitEndLsn: string;
  /** Peak RSS of this process (VmHWM), in KiB. */
  vmHwmKib: number;
}

interface DrainOptions extends DrainTarget {
  publication: string;
  protoVersion: ProtoVersion;
  streaming: boolean;
  capture?: string;
}

function parseDrainArgs(args: string[]): DrainOptions {
  const { values } = parseArgs({
    args,
    options: {
      ...DRAIN_OPTIONS,
      publication: { type: "string", default: "orders_pub" },
      proto: { type: "string", default: "1" },
      streaming: { type: "boolean", default: false },
      capture: { type: "string" },
    },
    strict: true,
  });
  const target = drainTarget(values);
  const protoVersion = Number(values.proto);
  if (![1, 2, 3, 4].includes(protoVersion)) {
    throw new Error(`Cannot drain: "--proto" must be 1, 2, 3 or 4, not "${values.proto}"`);
  }
  return {
    ...target,
    publication: values.publication,
    protoVersion: protoVersion as ProtoVersion,
    streaming: values.streaming,
    capture: values.capture,
  };
}

/** Counts what reaches it and keeps nothing: the cheapest possible sink. */
class NullSink {
  rows = 0;
  endOf: { xid: number; endLsn: Lsn; streamed: boolean } | null = null;

  write(item: StreamItem): void {
    if (item.kind === "change") {
      if (item.event.op === "c") this.rows++;
    } else if (item.kind === "commit") {
      this.endOf = { xid: item.tx.xid, endLsn: item.endLsn, streamed: item.tx.streamed };
    }
  }
}

/** Appends `Int64 walStart, Int32 length, Byte[length]` records to a file, in 1 MiB writes. */
class Capture {
  #file: Deno.FsFile;
  #buffer = new Uint8Array(1 << 20);
  #view = new DataView(this.#buffer.buffer);
  #used = 0;

  constructor(path: string) {
    this.#file = Deno.openSync(path, { write: true, create: true, truncate: true });
  }

  add(walStart: Lsn, payload: Uint8Array): void {
    const size = 12 + payload.byteLength;
    if (this.#used + size > this.#buffer.byteLength) this.flush();
    if (size > this.#buffer.byteLength) {
      const header = new Uint8Array(12);
      const view = new DataView(header.buffer);
      view.setBigUint64(0, walStart);
      view.setInt32(8, payload.byteLength);
      this.#writeAll(header);
      this.#writeAll(payload);
      return;
    }
    this.#view.setBigUint64(this.#used, walStart);
    this.#view.setInt32(this.#used + 8, payload.byteLength);
    this.#buffer.set(payload, this.#used + 12);
    this.#used += size;
  }

  flush(): void {
    this.#writeAll(this.#buffer.subarray(0, this.#used));
    this.#used = 0;
  }

  close(): void {
    this.flush();
    this.#file.close();
  }

  #writeAll(bytes: Uint8Array): void {
    let offset = 0;
    while (offset < bytes.byteLength) offset += this.#file.writeSync(bytes.subarray(offset));
  }
}

/** Drains the slot up to the load's commit and reports what it measured. */
export async function drain(options: DrainOptions): Promise<DrainResult> {
  const started = performance.now();
  const connection = await connectReplication(options.port, "spillway-bench");
  try {
    const assembler = new TransactionAssembler({ protoVersion: options.protoVersion });
    const sink = new NullSink();
    const capture = options.capture === undefined ? null : new Capture(options.capture);
    const pgoutput: PgoutputOptions = {
      protoVersion: options.protoVersion,
      publicationNames: [options.publication],
    };
    if (options.streaming) pgoutput.streaming = true;
    const stream = await connection.startReplication({
      slot: options.slot,
      pgoutput,
      isIdle: () => !assembler.inTransaction && assembler.openStreamedTransactions === 0,
    });
    const streamingAt = performance.now();
    let streamStarts = 0;
    const { messages, payloadBytes, committedAt } = await drainToCommit(
      stream,
      assembler,
      sink,
      options,
      (xlog) => {
        capture?.add(xlog.walStart, xlog.data);
        if (xlog.data[0] === 0x53) streamStarts++; // 'S': Stream Start
      },
    );
    const end = sink.endOf!;
    capture?.close();
    const finished = performance.now();
    return {
      rows: sink.rows,
      seconds: (finished - started) / 1000,
      startSeconds: (streamingAt - started) / 1000,
      commitSeconds: (committedAt - started) / 1000,
      messages,
      payloadBytes,
      streamStarts,
      streamed: end.streamed,
      commitEndLsn: formatLsn(end.endLsn),
      vmHwmKib: readVmHwmKib(),
    };
  } finally {
    await connection.close();
  }
}

if (import.meta.main) {
  const options = parseDrainArgs(Deno.args);
  await printResult(
    () => drain(options),
    600_000,
    `Drain of slot "${options.slot}" timed out after 10 minutes`,
  );
}
