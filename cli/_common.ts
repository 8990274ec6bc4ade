/**
 * What the commands share, written once: where they write, how they connect and ask, the
 * `--from-lsn` and `--log-level` flags, and stopping on Ctrl-C.
 *
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import type { PgConnection } from "../postgres/connection.ts";
import { type ConnectOptions, parseConnectionUrl } from "../postgres/connection_string.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import { type Lsn, parseLsn } from "../decoder/lsn.ts";
import { type Logger, type LogLevel, printable } from "../ops/log.ts";

/** Where a command writes; defaults to the process's stdout and stderr, and its terminal. */
export interface CommandOptions {
  /** Receives each line (without its newline) meant for stdout. */
  stdout?: (line: string) => void;
  /** Receives each line (without its newline) meant for stderr. */
  stderr?: (line: string) => void;
  /** Connects; default {@linkcode PgConnection.connect}. */
  connect?: (options: ConnectOptions) => Promise<PgConnection>;
  /** Whether stdin is a terminal someone can answer on; default `Deno.stdin.isTerminal()`. */
  interactive?: boolean;
  /** Asks a yes/no question on the terminal; default {@linkcode promptYesNo}. */
  confirm?: (question: string) => Promise<boolean>;
}

// ---------------------------------------------------------------------------------------
// Flags

/** How {@linkcode parseCommandArgs} reads and answers. */
export interface ParseCommandOptions extends Pick<CommandOptions, "stdout" | "stderr"> {
  /** How many positional arguments the command takes; unchecked when absent. */
  positionals?: number;
  /** Printed after a usage error; default `Usage:` and the usage's first line. */
  usageHint?: string;
}

const HELP_FLAG = { help: { type: "boolean", short: "h" } } as const;

/**
 * Every command's prologue, once: parses `args` against `options` (plus `-h`/`--help`), and
 * returns the flags and positionals, or the exit code to return at once: 0 after printing
 * `usage` for `--help`, 2 after naming a bad flag or a wrong number of arguments.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommandArgs } from "./_common.ts";
 * const usage = "spillway thing <name> [--loud]\n\nDoes a thing.";
 * const errors: string[] = [];
 * const stderr = (line: string) => errors.push(line);
 * const parsed = parseCommandArgs(usage, ["x", "--loud"], { loud: { type: "boolean" } }, {
 *   positionals: 1,
 * });
 * assert.ok(typeof parsed !== "number" && parsed.values.loud && parsed.positionals[0] === "x");
 * assert.equal(parseCommandArgs(usage, ["--quiet"], {}, { stderr }), 2);
 * assert.match(errors[0]!, /^spillway thing: Unknown option '--quiet'/);
 * assert.equal(errors[1], "Usage: spillway thing <name> [--loud]");
 * assert.equal(parseCommandArgs(usage, [], {}, { positionals: 1, stderr }), 2);
 * assert.equal(parseCommandArgs(usage, ["-h"], {}, { stdout: () => {} }), 0);
 * // A synopsis without arguments names the command alone.
 * errors.length = 0;
 * assert.equal(parseCommandArgs("spillway schema\n\nPrints it.", ["--x"], {}, { stderr }), 2);
 * assert.match(errors[0]!, /^spillway schema: Unknown option '--x'/);
 * ```
 */
export function parseCommandArgs<const T extends ParseArgsOptionsConfig>(
  usage: string,
  args: string[],
  options: T,
  io: ParseCommandOptions = {},
) {
  const out = io.stdout ?? ((line: string) => console.log(line));
  const err = io.stderr ?? ((line: string) => console.error(line));
  const synopsis = usage.split("\n")[0]!;
  const hint = io.usageHint ?? `Usage: ${synopsis}`;
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...options, ...HELP_FLAG }, allowPositionals: true });
  } catch (error) {
    const name = synopsis.split(" ").slice(0, 2).join(" ");
    err(`${name}: ${errorMessage(error)}`);
    err(hint);
    return 2;
  }
  if ((parsed.values as { help?: boolean }).help) {
    out(usage);
    return 0;
  }
  if (io.positionals !== undefined && parsed.positionals.length !== io.positionals) {
    err(hint);
    return 2;
  }
  return parsed;
}

/**
 * A `--log-level` value, or a ConfigError naming the flag and the levels.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLogLevel } from "./_common.ts";
 * assert.equal(parseLogLevel("warn"), "warn");
 * assert.throws(() => parseLogLevel("loud"), /expected debug, info, warn or error/);
 * ```
 */
export function parseLogLevel(text: string): LogLevel {
  if (!["debug", "info", "warn", "error"].includes(text)) {
    throw new ConfigError(`Cannot use --log-level "${text}": expected debug, info, warn or error`);
  }
  return text as LogLevel;
}

/**
 * An LSN flag's value, or a ConfigError naming the flag and the expected form.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLsnFlag } from "./_common.ts";
 * assert.equal(parseLsnFlag("--from-lsn", "0/16B3748"), 0x16B3748n);
 * assert.throws(() => parseLsnFlag("--from-lsn", "soon"), /expected an LSN like 0\/16B3748/);
 * ```
 */
export function parseLsnFlag(flag: string, text: string): Lsn {
  try {
    return parseLsn(text);
  } catch {
    throw new ConfigError(`Cannot use ${flag} "${text}": expected an LSN like 0/16B3748`);
  }
}

/**
 * The connection options of a `postgres://` URL given on the command line; with
 * `applicationName`, that name replaces the URL's `application_name`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectOptionsFromUrl } from "./_common.ts";
 * const options = connectOptionsFromUrl("postgres://app@db/shop", "spillway-slots");
 * assert.equal(options.applicationName, "spillway-slots");
 * ```
 */
export function connectOptionsFromUrl(url: string, applicationName?: string): ConnectOptions {
  const options = parseConnectionUrl(url, Deno.env.toObject());
  return applicationName === undefined ? options : { ...options, applicationName };
}

// ---------------------------------------------------------------------------------------
// Asking

/** Asks a yes/no question on the terminal; anything but y/yes is no. */
export function promptYesNo(question: string): Promise<boolean> {
  const answer = prompt(`${question} [y/N]`);
  return Promise.resolve(answer !== null && /^\s*y(es)?\s*$/i.test(answer));
}

/**
 * Asks before something that loses changes; `--yes` (`yes`) answers for scripts. Without a
 * terminal to ask on, a ConfigError says to pass `--yes`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { confirmDanger } from "./_common.ts";
 * assert.equal(await confirmDanger("Drop it?", true), true);
 * await assert.rejects(
 *   confirmDanger("Drop it?", false, { interactive: false }),
 *   /Refusing without --yes: Drop it\?/,
 * );
 * ```
 */
export async function confirmDanger(
  question: string,
  yes: boolean,
  options: Pick<CommandOptions, "interactive" | "confirm"> = {},
): Promise<boolean> {
  if (yes) return true;
  if (!(options.interactive ?? Deno.stdin.isTerminal())) {
    throw new ConfigError(
      `Refusing without --yes: ${question} (stdin is not a terminal, so nobody can confirm)`,
    );
  }
  return await (options.confirm ?? promptYesNo)(question);
}

// ---------------------------------------------------------------------------------------
// Stopping

/** What {@linkcode stopOnSignal} returns; dispose it to remove the signal listeners. */
export interface SignalStop extends Disposable {
  /** Aborted by the first SIGINT or SIGTERM (or {@linkcode SignalStop.stop}). */
  readonly signal: AbortSignal;
  /** What a signal does: the first call logs and aborts `signal`; the next exits 130 at once. */
  stop(): void;
}

/**
 * Stops a command on Ctrl-C or SIGTERM: the first signal logs `message` and aborts the
 * returned signal, so the command can finish what it holds (a graceful stop); a second one
 * exits the process at once with code 130.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stopOnSignal } from "./_common.ts";
 * const logged: string[] = [];
 * using stopping = stopOnSignal((_level, message) => logged.push(message), "Stopping");
 * stopping.stop();
 * assert(stopping.signal.aborted);
 * assert.deepEqual(logged, ["Stopping"]);
 * ```
 */
export function stopOnSignal(log: Logger, message: string): SignalStop {
  const controller = new AbortController();
  const stop = () => {
    if (controller.signal.aborted) Deno.exit(130); // second signal: leave at once
    log("info", message);
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  return {
    signal: controller.signal,
    stop,
    [Symbol.dispose]() {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
    },
  };
}

/**
 * An error as the lines a command prints: each line made printable (control characters
 * escaped, long values cut), so no server text or echoed value can forge or flood output.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { errorLines } from "./_common.ts";
 * assert.equal(errorLines(new Error("bad\u001b[31m name")), "bad\\u001b[31m name");
 * ```
 */
export function errorLines(error: unknown): string {
  const message = errorMessage(error);
  return message.split("\n").map(printable).join("\n");
}
