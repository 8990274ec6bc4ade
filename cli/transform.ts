/**
 * `spillway transform FILE < events.jsonl`: runs a transform on change events as JSON lines
 * (what `spillway tail` and the file sink write) and prints what it makes of them.
 *
 * @module
 */

import type { TransformEvent, TransformTransaction } from "../transforms/api.ts";
import { loadTransform } from "../transforms/loader.ts";
import { TransformWorker, type WorkItem } from "../transforms/worker.ts";
import { relationOf, transactionOf } from "../transforms/hooks.ts";
import { jsonReplacer } from "../ops/log.ts";
import { type CommandOptions, parseCommandArgs } from "./_common.ts";

/** Usage of `spillway transform`. */
export const TRANSFORM_USAGE = `spillway transform <transform.ts> [options] < events.jsonl

Runs a transform on change events given as JSON lines on stdin (as spillway tail
and the file sink write them; begin/commit lines are optional) and prints each
event it passes on as a JSON line. Hooks run in a Worker without permissions, as
in a pipeline; values are as the JSON lines hold them (numbers, strings), not
the typed values a pipeline hands over. An event a hook fails on is reported on
stderr with the transform's file:line, and the exit code is 1.

Options:
  --allow-read PATH   let the transform read PATH (repeatable)
  --timeout MS        time budget per event (default 1000)
  -h, --help          this help

Exit codes: 0 success, 1 a hook failed, 2 bad usage or a transform that does not load.`;

/** Runs `spillway transform`; returns the exit code. */
export async function transformCommand(
  args: string[],
  options: CommandOptions & { stdin?: ReadableStream<Uint8Array> } = {},
): Promise<number> {
  const parsed = parseCommandArgs(TRANSFORM_USAGE, args, {
    "allow-read": { type: "string", multiple: true },
    timeout: { type: "string" },
  }, { stdout: options.stdout, stderr: options.stderr, positionals: 1 });
  if (typeof parsed === "number") return parsed;
  const out = options.stdout ?? ((line: string) => console.log(line));
  const err = options.stderr ?? ((line: string) => console.error(line));
  const timeoutMs = Number(parsed.values.timeout ?? 1000);
  const worker = await TransformWorker.start(await loadTransform(parsed.positionals[0]!), {
    timeoutMs,
    allow: { read: parsed.values["allow-read"] ?? [] },
    log: (level, message, fields) =>
      err(`${level} ${message}${fields ? ` ${JSON.stringify(fields)}` : ""}`),
  });
  let failed = 0;
  try {
    const items: WorkItem[] = [];
    let open: TransformTransaction | null = null;
    const flush = async () => {
      if (open !== null) items.push({ kind: "commit", transaction: open });
      open = null;
      if (items.length === 0) return;
      const results = await worker.run(items.splice(0));
      for (const result of results) {
        if (!result.ok) {
          failed++;
          err(
            `error ${result.error.name}: ${result.error.message}${
              result.error.where ? ` (at ${result.error.where})` : ""
            }`,
          );
          continue;
        }
        for (const event of result.out) out(JSON.stringify(event, jsonReplacer));
      }
    };
    for await (const line of linesOf(options.stdin ?? Deno.stdin.readable)) {
      if (line.trim() === "") continue;
      const json = JSON.parse(line);
      if (json.type === "begin" || json.type === "commit") continue;
      const event = json as TransformEvent;
      const transaction = transactionOf(event.source);
      if (open !== null && (open as TransformTransaction).xid !== transaction.xid) await flush();
      if (open === null) {
        open = transaction;
        items.push({ kind: "begin", transaction });
      }
      const relation = relationOf(json);
      if (json.op === "t") {
        items.push({ kind: "truncate", event: json, relation, transaction });
      } else if (json.op === "m") {
        items.push({ kind: "message", event: json, transaction });
      } else {
        items.push({ kind: "change", event, relation, transaction });
      }
    }
    await flush();
  } finally {
    await worker.stop();
  }
  return failed > 0 ? 1 : 0;
}

/** The lines of a byte stream, without their newlines. */
async function* linesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    pending += text;
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, newline);
      pending = pending.slice(newline + 1);
    }
  }
  if (pending !== "") yield pending;
}
