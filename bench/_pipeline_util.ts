/**
 * Helpers of `bench/pipeline.ts`: RSS sampled from `/proc/<pid>/status`, a child read line by
 * line, counting lines, and finding the Debian PostgreSQL client binaries. What it shares with
 * the other benchmarks is in `bench/_common.ts`.
 *
 * @module
 */

import { exists, spawnPiped } from "./_common.ts";

/**
 * A PostgreSQL client binary of the newest Debian client package
 * (`/usr/lib/postgresql/<N>/bin/<name>`), called directly rather than through the Perl
 * `pg_wrapper` behind `/usr/bin/<name>`, so that the wrapper's start-up is not timed.
 */
export async function clientBinary(name: string): Promise<{ path: string; version: string }> {
  const versions: number[] = [];
  try {
    for await (const entry of Deno.readDir("/usr/lib/postgresql")) {
      if (/^\d+$/.test(entry.name)) versions.push(Number(entry.name));
    }
  } catch {
    // No Debian PostgreSQL packages: reported below.
  }
  for (const version of versions.sort((a, b) => b - a)) {
    const path = `/usr/lib/postgresql/${version}/bin/${name}`;
    if (await exists(path)) {
      const out = await new Deno.Command(path, { args: ["--version"], stdout: "piped" }).output();
      return { path, version: new TextDecoder().decode(out.stdout).trim() };
    }
  }
  throw new Error(`Cannot find ${name} under /usr/lib/postgresql/*/bin; install postgresql-client`);
}

/** One VmRSS reading: milliseconds since sampling started, and KiB. */
export interface RssSample {
  ms: number;
  kib: number;
}

/** Reads VmRSS of a process every `intervalMs` until stopped or the process is gone. */
export class RssSampler {
  readonly samples: RssSample[] = [];
  #timer: ReturnType<typeof setInterval>;
  #started = performance.now();
  #pid: number;
  #reading = false;

  constructor(pid: number, intervalMs = 100) {
    this.#pid = pid;
    this.#timer = setInterval(() => this.#sample(), intervalMs);
    this.#sample();
  }

  async #sample(): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    try {
      const status = await Deno.readTextFile(`/proc/${this.#pid}/status`);
      const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
      if (match) {
        this.samples.push({ ms: performance.now() - this.#started, kib: Number(match[1]) });
      }
    } catch {
      // The process is gone.
    } finally {
      this.#reading = false;
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Highest VmRSS seen, KiB. */
  get peakKib(): number {
    return this.samples.reduce((peak, sample) => Math.max(peak, sample.kib), 0);
  }
}

/** A child process whose stdout is read line by line as it arrives. */
export class LineChild {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly #waiters: { match: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  readonly #stdout: Promise<void>;
  readonly #stderr: Promise<string>;

  constructor(command: string, args: string[]) {
    this.child = spawnPiped(command, args);
    this.#stdout = this.#readLines();
    this.#stderr = new Response(this.child.stderr).text();
  }

  get pid(): number {
    return this.child.pid;
  }

  async #readLines(): Promise<void> {
    let pending = "";
    for await (const text of this.child.stdout.pipeThrough(new TextDecoderStream())) {
      pending += text;
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        this.lines.push(line);
        for (let i = this.#waiters.length - 1; i >= 0; i--) {
          const waiter = this.#waiters[i]!;
          if (waiter.match(line)) {
            this.#waiters.splice(i, 1);
            waiter.resolve(line);
          }
        }
      }
    }
    if (pending !== "") this.lines.push(pending);
  }

  /** Resolves with the first line (from now on) that matches, or rejects when the child exits. */
  waitForLine(match: (line: string) => boolean): Promise<string> {
    const found = this.lines.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      this.#waiters.push({ match, resolve });
      this.child.status.then(async (status) => {
        await this.#stdout;
        const line = this.lines.find(match);
        if (line !== undefined) resolve(line);
        else reject(new Error(`exited (${status.code}) first: ${await this.#stderr}`));
      });
    });
  }

  /** Waits for the exit; returns the code and stderr. */
  async wait(): Promise<{ code: number; stderr: string }> {
    const status = await this.child.status;
    await this.#stdout;
    return { code: status.code, stderr: (await this.#stderr).trim() };
  }
}

/** Counts the newline bytes of a file (the JSON lines a file sink wrote). */
export async function countLines(path: string): Promise<number> {
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(1 << 20);
  let lines = 0;
  for (;;) {
    const n = await file.read(buffer);
    if (n === null) return lines;
    for (let i = 0; i < n; i++) if (buffer[i] === 10) lines++;
  }
}
