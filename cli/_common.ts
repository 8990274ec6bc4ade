/**
 * What the commands share: where they write, how they connect and ask.
 *
 * @module
 */

import type { ConnectOptions, PgConnection } from "../postgres/connection.ts";

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
  /** Asks a yes/no question on the terminal; default the global `prompt()`. */
  confirm?: (question: string) => Promise<boolean>;
}
