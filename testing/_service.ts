/**
 * What the harnesses that run a long-lived service as a child process (`testing/kafka.ts`,
 * `testing/registry.ts`) share: starting it in a fresh temp dir (again, with new ports, while
 * its log says a port was taken), its output appended to a log file there, stopping it
 * (SIGTERM, then SIGKILL after a timeout) and deleting the temp dir, and the cleanup when the
 * test process does not: services still running when the module unloads are killed, and a
 * small detached shell watchdog kills the service and deletes its temp dir if the test
 * process dies.
 *
 * Each harness keeps what is its own (configuration, readiness, restart semantics) in a
 * subclass of {@linkcode ServiceProcess}.
 *
 * @module
 */

import { join } from "node:path";
import { forgetOnUnload, killOnUnload, lastLines } from "./embedded_postgres.ts";

/** How long {@linkcode ServiceProcess.stop} waits after SIGTERM before SIGKILL. */
export const STOP_TIMEOUT_MS = 10_000;

/**
 * Detached shell loop that kills the service ($2) and deletes its temp dir ($3) once the test
 * process ($1) is gone; it ends by itself when the temp dir goes.
 */
const WATCHDOG = `(
trap '' INT HUP
while [ -d "/proc/$1" ] && [ -d "$3" ]; do sleep 1; done
if [ -d "$3" ]; then kill -9 "$2"; rm -rf "$3"; fi
) </dev/null >/dev/null 2>&1 &`;

/**
 * What tests get of a running (or stopped) service; each harness's interface adds its own
 * (addresses, `restart`). Dispose it with `await using`.
 */
export interface ServiceHandle extends AsyncDisposable {
  /** Process id of the service (the JVM, for the Java harnesses). */
  readonly pid: number;
  /** The file the service logs to. */
  readonly logFile: string;
  /** The last `lines` (default 30) lines of the service's log, for assertion messages. */
  tailLog(lines?: number): Promise<string>;
  /** Stop the service (SIGTERM, SIGKILL after 10 s) and remove its temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Same as {@linkcode ServiceHandle.stop}. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * One service process in its own temp dir: `command` (the program, then its arguments) runs
 * there through `sh` and `exec`, its stdout and stderr appended to `<baseDir>/<logName>`. It
 * starts in the constructor and is killed if the module unloads before {@linkcode stop}.
 * Subclasses say when it is ready ({@linkcode waitReady}).
 */
export abstract class ServiceProcess implements ServiceHandle {
  /** The file the service logs to. */
  readonly logFile: string;
  readonly #baseDir: string;
  readonly #command: string[];
  #child: Deno.ChildProcess;
  #exited = false;
  #stopping: Promise<void> | undefined;

  constructor(baseDir: string, logName: string, command: string[]) {
    this.#baseDir = baseDir;
    this.#command = command;
    this.logFile = join(baseDir, logName);
    this.#child = this.#spawn();
    killOnUnload(this);
  }

  /** Resolve once the service answers; reject (with the end of its log) after `timeoutMs`. */
  abstract waitReady(timeoutMs: number): Promise<void>;

  /**
   * Call `probe.check` every `probe.pollMs` until it answers `true`. Rejects, with the end of
   * the log, once the process exits or after `probe.timeoutMs`. For {@linkcode waitReady}.
   */
  protected async pollReady(probe: ReadyProbe): Promise<void> {
    const deadline = Date.now() + probe.timeoutMs;
    let last = "no answer yet";
    while (Date.now() < deadline) {
      if (this.#exited) {
        throw new Error(
          `${probe.what} exited during startup (${probe.detail}); ` +
            `--- last 30 lines of ${this.logFile} ---\n${await this.tailLog(30)}`,
        );
      }
      try {
        const answer = await probe.check();
        if (answer === true) return;
        last = answer;
      } catch (e) {
        last = e instanceof Error ? e.message : String(e);
      }
      await new Promise((resolve) => setTimeout(resolve, probe.pollMs));
    }
    throw new Error(
      `${probe.what} did not answer on ${probe.address} within ${probe.timeoutMs} ms ` +
        `(${last}); --- last 30 lines of ${this.logFile} ---\n${await this.tailLog(30)}`,
    );
  }

  /** Process id of the service (its `sh` became the program by `exec`). */
  get pid(): number {
    return this.#child.pid;
  }

  /** The last `lines` (default 30) lines of the service's log, for assertion messages. */
  async tailLog(lines = 30): Promise<string> {
    try {
      return lastLines(await Deno.readTextFile(this.logFile), lines);
    } catch (e) {
      return `(cannot read ${this.logFile}: ${e instanceof Error ? e.message : e})`;
    }
  }

  /**
   * Stop the process (SIGTERM; SIGKILL after {@linkcode STOP_TIMEOUT_MS}), keeping its temp
   * dir, wait `downMs`, and start the same command again. Not waiting until it is ready: for
   * a subclass's `restart`.
   */
  protected async respawn(downMs: number): Promise<void> {
    await this.#terminate();
    await new Promise((resolve) => setTimeout(resolve, downMs));
    this.#child = this.#spawn();
  }

  /** Stop the service (SIGTERM, SIGKILL after 10 s) and remove its temp dir. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /** Same as {@linkcode ServiceProcess.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** Synchronous best-effort kill and removal, for the unload hook. */
  killSync(): void {
    forgetOnUnload(this);
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
    try {
      Deno.removeSync(this.#baseDir, { recursive: true });
    } catch { /* best effort */ }
  }

  /** Start the command, its output appended to the log file, and arm the watchdog. */
  #spawn(): Deno.ChildProcess {
    const child = new Deno.Command("sh", {
      args: ["-c", 'exec "$@" >>"$0" 2>&1', this.logFile, ...this.#command],
      cwd: this.#baseDir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#exited = false;
    child.status.then(() => {
      if (this.#child === child) this.#exited = true;
    });
    new Deno.Command("sh", {
      args: ["-c", WATCHDOG, "sh", String(Deno.pid), String(child.pid), this.#baseDir],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return child;
  }

  async #stop(): Promise<void> {
    forgetOnUnload(this);
    try {
      await this.#terminate();
    } finally {
      await Deno.remove(this.#baseDir, { recursive: true }).catch(() => {});
    }
  }

  /** SIGTERM, SIGKILL after {@linkcode STOP_TIMEOUT_MS}; resolves once the process is gone. */
  async #terminate(): Promise<void> {
    const child = this.#child;
    if (!this.#exited) {
      try {
        child.kill("SIGTERM");
      } catch { /* exited meanwhile */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
      });
      const exited = child.status.then(() => false);
      if (await Promise.race([exited, timedOut])) {
        try {
          child.kill("SIGKILL");
        } catch { /* exited meanwhile */ }
      }
      clearTimeout(timer);
    }
    await child.status;
  }
}

/** How {@linkcode ServiceProcess.pollReady} asks a service whether it is ready. */
export interface ReadyProbe {
  /** The service, for errors: "Kafka broker". */
  what: string;
  /** Where it should answer, for errors: "127.0.0.1:9092", a URL. */
  address: string;
  /** What errors add when it exits during startup: "port 9092". */
  detail: string;
  /** How long to keep asking. */
  timeoutMs: number;
  /** How long to wait between tries. */
  pollMs: number;
  /** One try: `true` once ready, else why not yet; a throw counts as not yet, with its message. */
  check: () => Promise<true | string>;
}

/** How {@linkcode startService} starts a service. */
export interface StartService {
  /** The temp dir's name prefix, under /tmp: `spillway-kafka-`. */
  prefix: string;
  /** The log file's name in the temp dir, as the service's constructor was given it. */
  logName: string;
  /** How often to try, each time in a new temp dir, while `portInUse` matches the log. */
  attempts: number;
  /** What the service logs when one of its ports was taken meanwhile. */
  portInUse: RegExp;
  /** How long to wait for {@linkcode ServiceProcess.waitReady}. */
  readyTimeoutMs: number;
}

/**
 * Make a fresh temp dir, `create` the service in it (writing its files, picking free ports)
 * and wait until it is ready. If a port was taken meanwhile (the log matches `portInUse`),
 * start again in a new temp dir, up to `attempts` times. On failure the service is stopped and
 * its temp dir removed, and the error (which names what failed and the fix) is rethrown.
 */
export async function startService<T extends ServiceProcess>(
  how: StartService,
  create: (baseDir: string) => Promise<T> | T,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    const baseDir = await Deno.makeTempDir({ dir: "/tmp", prefix: how.prefix });
    let service: T | undefined;
    try {
      service = await create(baseDir);
      await service.waitReady(how.readyTimeoutMs);
      return service;
    } catch (e) {
      const log = await Deno.readTextFile(join(baseDir, how.logName)).catch(() => "");
      if (service) await service.stop();
      else await Deno.remove(baseDir, { recursive: true }).catch(() => {});
      if (attempt >= how.attempts || !how.portInUse.test(log)) throw e;
    }
  }
}
