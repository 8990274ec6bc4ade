/**
 * `spillway tail`: print every decoded change as one JSON line.
 *
 * @module
 */

import { type ConnectOptions } from "../postgres/connection.ts";
import { type Lsn } from "../decoder/lsn.ts";
import type { ProtoVersion } from "../decoder/pgoutput.ts";
import { JsonRenderer, writeJsonLine } from "../formats/json.ts";
import { confirmableLsn } from "../events.ts";
import { JsonWriter } from "../formats/json_writer.ts";
import type { Logger } from "../ops/log.ts";
import { ReplicationSource } from "../source/replication_source.ts";

/** Options of {@linkcode tail}. */
export interface TailOptions {
  connection: ConnectOptions;
  /** A permanent slot to read; without it a temporary slot is made for this session. */
  slot?: string;
  /** Without it a publication for all tables is made for this session and dropped after. */
  publication?: string;
  /** Create the named slot and publication when missing. */
  create?: boolean;
  fromLsn?: Lsn;
  /** Print begin/commit lines too. */
  transactions?: boolean;
  protoVersion?: ProtoVersion;
  streaming?: boolean | "parallel";
  binary?: boolean;
  messages?: boolean;
  signal?: AbortSignal;
  log: Logger;
  /** Where lines go; default stdout. The bytes are reused once the promise settles. */
  write?: (bytes: Uint8Array) => Promise<void>;
}

async function writeStdout(bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) offset += await Deno.stdout.write(bytes.subarray(offset));
}

/** Streams until the signal aborts; returns the number of change events printed. */
export async function tail(options: TailOptions): Promise<number> {
  const session = `spillway_tail_${Deno.pid}_${Date.now().toString(36)}`;
  // A session publication is newer than a permanent slot's position, and decoding from
  // there fails (the publication "does not exist" in the past): with --slot, the
  // publication is stable — named after the slot unless given — and never dropped.
  const temporary = options.slot === undefined;
  const source = await ReplicationSource.open({
    connection: options.connection,
    slot: options.slot ?? session,
    temporarySlot: temporary,
    createSlot: options.create ?? false,
    publication: options.publication ?? options.slot ?? session,
    // A session publication is always made; a named one only with --create.
    createPublication: (temporary && options.publication === undefined) ||
      (options.create ?? false),
    dropPublicationOnClose: temporary && options.publication === undefined,
    startLsn: options.fromLsn,
    protoVersion: options.protoVersion,
    streaming: options.streaming,
    binary: options.binary,
    messages: options.messages,
    log: options.log,
  });
  const write = options.write ?? writeStdout;
  const renderer = new JsonRenderer(source.assembler.types);
  const out = new JsonWriter();
  let changes = 0;
  try {
    // On abort the loop ends after the batch in hand is printed and confirmed.
    for await (const batch of source.batches(options.signal)) {
      let confirm: Lsn | null = null;
      out.reset();
      for (const item of batch) {
        writeJsonLine(out, item, options.transactions ?? false, renderer);
        if (item.kind === "change") changes++;
        confirm = confirmableLsn(item) ?? confirm;
      }
      if (out.length > 0) await write(out.bytes());
      // Printed lines are delivered: let the slot move past them.
      if (confirm !== null) source.confirm(confirm);
    }
  } finally {
    await source.close();
  }
  return changes;
}
