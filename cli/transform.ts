/**
 * `spillway transform FILE < events.jsonl`: runs a transform on change events as JSON lines
 * (what `spillway tail` and the file sink write) and prints what it makes of them.
 *
 * @module
 */

import { parseDuration } from "../config/units.ts";
import { errorMessage } from "../errors.ts";
import type { TransformEvent, TransformTransaction } from "../transforms/api.ts";
import { LiveTransform } from "../transforms/live.ts";
import { describeFailure, type WorkItem, type WorkResult } from "../transforms/worker.ts";
import { relationOf, transactionOf } from "../transforms/hooks.ts";
import { jsonReplacer } from "../ops/log.ts";
import { type CommandOptions, parseCommandArgs } from "./_common.ts";

/** Usage of `spillway transform`. */
export const TRANSFORM_USAGE = `spillway transform <transform.ts> [options] < events.jsonl

Runs a transform on change events given as JSON lines on stdin (as spillway tail
and the file sink write them; the event of a dead-letter line is replayed; other
lines are skipped, and a commit line sends its transaction through at once) and
prints each event it passes on as a JSON line. Hooks run in a Worker without
permissions, as in a pipeline; values are as the JSON lines hold them (numbers,
strings), not the typed values a pipeline hands over. An event a hook fails on
(throws, runs past the budget, returns something else than events) is reported
on stderr with the transform's file:line, the others go on, and the exit code is 1.

Options:
  --allow-read PATH   let the transform read PATH (repeatable)
  --allow-net HOST    let the transform connect to HOST or HOST:PORT (repeatable)
  --allow-env NAME    let the transform read the variable NAME (repeatable)
  --timeout DURATION  time budget per event, like 200ms or 2s (default 200ms, as in
                      a pipeline; 0 for none)
  -h, --help          this help

Exit codes: 0 success, 1 a hook failed, 2 bad usage or a transform that does not load.`;

/** Runs `spillway transform`; returns the exit code. */
export async function transformCommand(
  args: string[],
  options: CommandOptions & { stdin?: ReadableStream<Uint8Array> } = {},
): Promise<number> {
  const parsed = parseCommandArgs(TRANSFORM_USAGE, args, {
    "allow-read": { type: "string", multiple: true },
    "allow-net": { type: "string", multiple: true },
    "allow-env": { type: "string", multiple: true },
    timeout: { type: "string" },
  }, { stdout: options.stdout, stderr: options.stderr, positionals: 1 });
  if (typeof parsed === "number") return parsed;
  const out = options.stdout ?? ((line: string) => console.log(line));
  const err = options.stderr ?? ((line: string) => console.error(line));
  const timeoutMs = parseDuration(parsed.values.timeout ?? "200ms");
  if (timeoutMs === undefined) {
    err(
      `spillway transform: --timeout "${parsed.values.timeout}": expected a duration like 200ms or 2s, or 0\n`,
    );
    err(TRANSFORM_USAGE);
    return 2;
  }
  // A LiveTransform starts a fresh Worker after a timeout; it does not follow the file here.
  const transform = await LiveTransform.start(parsed.positionals[0]!, {
    timeoutMs,
    allow: {
      read: parsed.values["allow-read"] ?? [],
      net: parsed.values["allow-net"] ?? [],
      env: parsed.values["allow-env"] ?? [],
    },
    watch: false,
    log: (level, message, fields) =>
      err(`${level} ${message}${fields ? ` ${JSON.stringify(fields)}` : ""}`),
  });
  let failed = 0;
  let skipped = 0;
  const report = (result: WorkResult) => {
    if (result.ok) {
      for (const event of result.out) out(JSON.stringify(event, jsonReplacer));
      return;
    }
    failed++;
    err(`error ${describeFailure(result.error)}`);
  };
  try {
    const items: WorkItem[] = [];
    let open: TransformTransaction | null = null;
    const flush = async () => {
      if (open !== null) items.push({ kind: "commit", transaction: open });
      open = null;
      if (items.length === 0) return;
      const batch = items.splice(0);
      let results: WorkResult[];
      try {
        results = await transform.run(batch);
      } catch {
        // An event ran past its budget (or crashed the Worker): each alone, so only it fails.
        results = [];
        for (const item of batch) {
          try {
            results.push(...await transform.run([item]));
          } catch (error) {
            results.push({
              ok: false,
              error: { name: "Error", message: errorMessage(error), where: null, stack: null },
            });
          }
        }
      }
      results.forEach(report);
    };
    for await (const line of linesOf(options.stdin ?? Deno.stdin.readable)) {
      if (line.trim() === "") continue;
      let json = JSON.parse(line);
      if (json.type === "begin") continue; // a transaction starts with its first change
      if (json.type === "commit") {
        await flush();
        continue;
      }
      if (json.type === "dead-letter") json = json.event;
      if (!isChange(json)) {
        skipped++;
        continue;
      }
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
      } else {
        items.push({ kind: "change", event, relation, transaction });
      }
    }
    await flush();
  } finally {
    await transform.close();
  }
  if (skipped > 0) err(`info skipped ${skipped} line(s) that are not change events`);
  return failed > 0 ? 1 : 0;
}

/** A change or truncate line: an op of one, and a source with its transaction. */
function isChange(json: unknown): boolean {
  const value = json as { op?: unknown; source?: { xid?: unknown } } | null;
  return value !== null && typeof value === "object" &&
    ["c", "u", "d", "r", "t"].includes(value.op as string) &&
    typeof value.source?.xid === "number";
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
