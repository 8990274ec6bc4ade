/**
 * Schema-registry test harness: a throwaway Apicurio Registry {@linkcode REGISTRY_VERSION}
 * serving the Confluent-compatible REST API (`/apis/ccompat/v7`), for tests of clients that
 * register Avro schemas and check their compatibility.
 *
 * The registry is a ready Quarkus application (`io.apicurio:apicurio-registry-app`, the
 * `all` tar.gz, about 160 MB), fetched once from Maven Central with `mvn dependency:get` into
 * the same cache as the Kafka jars (see `testing/kafka.ts` and `testing/embedded_postgres.ts`)
 * and unpacked there:
 *
 *     ${SPILLWAY_CACHE_DIR:-/var/tmp/spillway-cache}/m2                             (Maven's local repository)
 *     ${SPILLWAY_CACHE_DIR:-/var/tmp/spillway-cache}/apicurio-registry-3.3.3/app    (quarkus-run.jar, lib/, …)
 *
 * An `app` folder already there is used as it is, without Maven. Otherwise Maven runs offline
 * when its repository already holds the tar.gz, and online again if that fails. A file lock
 * serializes fetches across processes, and the `app` folder appears by an atomic rename only
 * once complete.
 *
 * The registry is compiled for Java 21, so it needs a Java 21+ runtime; the machine's default
 * `java` may be older. The harness takes, in this order: {@linkcode RegistryOptions.javaHome},
 * the java binary named by `SPILLWAY_REGISTRY_JAVA`, then the first Java 21+ among
 * `$JAVA_HOME/bin/java`, `java` on PATH and the newest JDK under `/usr/lib/jvm`.
 *
 * Each registry gets its own temp dir under /tmp (its working and `java.io.tmpdir` folder, and
 * `registry.log`, where its output goes) and listens on 127.0.0.1 at a free port. Storage is
 * Apicurio's default in-memory H2 database: schemas, ids and configs live only as long as the
 * JVM, so {@linkcode SchemaRegistry.restart} gives an empty registry.
 *
 * Cleanup: `await using registry = await startRegistry()` stops the JVM (SIGTERM, then SIGKILL
 * after a timeout) and deletes its temp dir. Registries still running when the module unloads
 * are killed, and a small detached shell watchdog kills the JVM and deletes its temp dir if the
 * test process dies without cleaning up (all of which `testing/_service.ts` does, as for the
 * Kafka harness).
 *
 * @module
 */

import { join } from "node:path";
import { cacheRoot, freePort, lastLines } from "./embedded_postgres.ts";
import { exists, once, publishDir, runTool, withFetchLock } from "./_java.ts";
import { type ServiceHandle, ServiceProcess, startService } from "./_service.ts";

/** The Apicurio Registry version the harness runs. */
export const REGISTRY_VERSION = "3.3.3";

/** The path of the Confluent-compatible API on the registry's HTTP port. */
export const CCOMPAT_PATH = "/apis/ccompat/v7";

/** The lowest Java feature version the registry runs on. */
export const REGISTRY_MIN_JAVA = 21;

const WHAT = "Apicurio Registry";
const ARTIFACT = {
  group: "io.apicurio",
  artifact: "apicurio-registry-app",
  version: REGISTRY_VERSION,
  type: "tar.gz",
  classifier: "all",
} as const;

const HOST = "127.0.0.1";
const READY_TIMEOUT_MS = 60_000;
const POLL_MS = 250;
const REQUEST_TIMEOUT_MS = 2_000;
const PORT_ATTEMPTS = 3;
const LOG_NAME = "registry.log";
const JVM_OPTIONS = ["-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"];
/** The environment variable naming a Java 21+ binary for the registry. */
export const REGISTRY_JAVA_ENV = "SPILLWAY_REGISTRY_JAVA";

/** Options for {@linkcode startRegistry}. */
export interface RegistryOptions {
  /**
   * A Java 21+ installation to run the registry with (its `bin/java` is used). Default: the
   * binary named by `SPILLWAY_REGISTRY_JAVA`, else the first Java 21+ found (see the module
   * doc).
   */
  javaHome?: string;
  /** How long to wait for the registry to answer; default 60 s. */
  readyTimeoutMs?: number;
}

/**
 * A running (or stopped) throwaway schema registry: its process id, log and `stop` are those
 * of {@linkcode ServiceHandle}. Dispose it with `await using`.
 */
export interface SchemaRegistry extends ServiceHandle {
  /**
   * The base URL of the Confluent-compatible API, without a trailing slash:
   * `http://127.0.0.1:<port>/apis/ccompat/v7`.
   */
  readonly url: string;
  /** The registry's HTTP port on 127.0.0.1. */
  readonly port: number;
  /**
   * Stop the registry, wait `downMs`, start it again on the same port; resolves once it
   * answers again. Storage is in-memory: the restarted registry has no subjects, schemas or
   * configs, and hands out ids from the start again.
   */
  restart(downMs?: number): Promise<void>;
}

/**
 * Start a fresh, empty registry in a new temp dir, fetching it first if the cache lacks it.
 * Resolves once `GET <url>/subjects` answers 200 with a JSON array; rejects with what failed,
 * the fix, and the end of the registry's log. Nothing is left behind on failure.
 */
export async function startRegistry(opts: RegistryOptions = {}): Promise<SchemaRegistry> {
  const java = await registryJava(opts.javaHome);
  const app = await registryAppDir();
  return await startService({
    prefix: "spillway-registry-",
    logName: LOG_NAME,
    attempts: PORT_ATTEMPTS,
    portInUse: /Address already in use|seems to be in use/,
    readyTimeoutMs: opts.readyTimeoutMs ?? READY_TIMEOUT_MS,
  }, (baseDir) => new Registry(java, app, baseDir, freePort()));
}

// ---------------------------------------------------------------------------------------------
// Fetching

/**
 * Ensure the registry application is unpacked in the cache and return its folder (holding
 * `quarkus-run.jar`). Fetched once, under the cache's fetch lock; later calls only look.
 */
export const registryAppDir: () => Promise<string> = once(async () => {
  const home = join(cacheRoot(), `apicurio-registry-${REGISTRY_VERSION}`);
  const app = join(home, "app");
  if (await exists(join(app, "quarkus-run.jar"))) return app;
  await withFetchLock(home, async (work) => {
    if (await exists(join(app, "quarkus-run.jar"))) return;
    const tarball = await mavenGet(work);
    const unpacked = join(work, "unpacked");
    await Deno.mkdir(unpacked);
    await untar(tarball, unpacked);
    await publishDir(await quarkusRoot(unpacked), app);
  });
  return app;
});

/**
 * Fetch the tar.gz with `mvn dependency:get` into the cache's local repository (`<cache>/m2`)
 * and return its path there. Maven runs offline when the repository already holds it.
 */
async function mavenGet(work: string): Promise<string> {
  const repo = join(cacheRoot(), "m2");
  const { group, artifact, version, type, classifier } = ARTIFACT;
  const tarball = join(
    repo,
    ...group.split("."),
    artifact,
    version,
    `${artifact}-${version}-${classifier}.${type}`,
  );
  const args = [
    "-B",
    "-q",
    `-Dmaven.repo.local=${repo}`,
    "dependency:get",
    `-Dartifact=${group}:${artifact}:${version}:${type}:${classifier}`,
    "-Dtransitive=false",
  ];
  const offline = await exists(tarball);
  let r = await runTool(WHAT, "mvn", offline ? ["-o", ...args] : args, work);
  if (r.code !== 0 && offline) r = await runTool(WHAT, "mvn", args, work);
  if (r.code !== 0) {
    throw new Error(
      `Cannot fetch ${WHAT} ${REGISTRY_VERSION} with Maven (exit ${r.code}): is Maven Central ` +
        `(https://repo.maven.apache.org) reachable from here?\n${lastLines(r.output, 30)}`,
    );
  }
  if (!await exists(tarball)) {
    throw new Error(
      `Cannot fetch ${WHAT} ${REGISTRY_VERSION}: Maven succeeded but ${tarball} is missing; ` +
        `delete ${join(repo, ...group.split("."), artifact)} and try again`,
    );
  }
  return tarball;
}

/** Unpack `tarball` into `dir` with `tar`. */
async function untar(tarball: string, dir: string): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    const args = ["--no-same-owner", "-xzf", tarball, "-C", dir];
    out = await new Deno.Command("tar", { args, stdin: "null" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `Cannot unpack ${WHAT}: "tar" is not on PATH: install it ("apt-get install tar gzip")`,
      );
    }
    throw e;
  }
  if (out.code !== 0) {
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    throw new Error(
      `Cannot unpack ${WHAT} (tar exit ${out.code}): is ${tarball} complete? Delete it to ` +
        `fetch it again.\n${lastLines(text, 20)}`,
    );
  }
}

/** The folder holding `quarkus-run.jar`: `dir` itself or its one subfolder. */
async function quarkusRoot(dir: string): Promise<string> {
  if (await exists(join(dir, "quarkus-run.jar"))) return dir;
  const entries: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isDirectory) entries.push(e.name);
  for (const name of entries) {
    if (await exists(join(dir, name, "quarkus-run.jar"))) return join(dir, name);
  }
  throw new Error(
    `Cannot use ${WHAT} ${REGISTRY_VERSION}: its tar.gz holds no quarkus-run.jar ` +
      `(top-level entries: ${entries.join(", ") || "none"}); is it the "all" distribution?`,
  );
}

// ---------------------------------------------------------------------------------------------
// Finding Java 21+

/** The feature version `java -version` reports for `java` (`1.8` → 8), or `null`. */
async function javaVersion(java: string): Promise<number | null> {
  try {
    const out = await new Deno.Command(java, {
      args: ["-version"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code !== 0) return null;
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    const m = /version "(\d+)(?:\.(\d+))?/.exec(text);
    if (!m) return null;
    const major = Number(m[1]);
    return major === 1 ? Number(m[2] ?? 0) : major;
  } catch {
    return null;
  }
}

/** Java binaries to try when none is named: JAVA_HOME, PATH, then /usr/lib/jvm, newest first. */
async function javaCandidates(): Promise<string[]> {
  const out: string[] = [];
  const javaHome = Deno.env.get("JAVA_HOME");
  if (javaHome) out.push(join(javaHome, "bin", "java"));
  out.push("java");
  const jvms: string[] = [];
  try {
    for await (const e of Deno.readDir("/usr/lib/jvm")) {
      if (e.isDirectory || e.isSymlink) jvms.push(join("/usr/lib/jvm", e.name, "bin", "java"));
    }
  } catch { /* no /usr/lib/jvm */ }
  // Newest first by the first number in the folder name (temurin-25-jdk, java-17-openjdk, …).
  const rank = (p: string) => Number(/(\d+)/.exec(p.split("/")[4] ?? "")?.[1] ?? 0);
  jvms.sort((a, b) => rank(b) - rank(a));
  return [...out, ...jvms];
}

const found = new Map<string, Promise<string>>();

/** The java binary to run the registry with; see {@linkcode RegistryOptions.javaHome}. */
function registryJava(javaHome: string | undefined): Promise<string> {
  const key = javaHome ?? "";
  let finding = found.get(key);
  if (!finding) {
    finding = findJava(javaHome);
    finding.catch(() => found.delete(key));
    found.set(key, finding);
  }
  return finding;
}

async function findJava(javaHome: string | undefined): Promise<string> {
  const named = javaHome !== undefined
    ? { java: join(javaHome, "bin", "java"), from: "the javaHome option" }
    : Deno.env.get(REGISTRY_JAVA_ENV)
    ? { java: Deno.env.get(REGISTRY_JAVA_ENV)!, from: REGISTRY_JAVA_ENV }
    : undefined;
  if (named) {
    const version = await javaVersion(named.java);
    if (version === null) {
      throw new Error(
        `Cannot run ${WHAT}: ${named.java} (from ${named.from}) does not run ` +
          `"java -version"; name a Java ${REGISTRY_MIN_JAVA}+ runtime there`,
      );
    }
    if (version < REGISTRY_MIN_JAVA) {
      throw new Error(
        `Cannot run ${WHAT}: ${named.java} (from ${named.from}) is Java ${version}, but the ` +
          `registry needs Java ${REGISTRY_MIN_JAVA}+; name a newer runtime there`,
      );
    }
    return named.java;
  }
  const tried: string[] = [];
  for (const java of await javaCandidates()) {
    const version = await javaVersion(java);
    if (version !== null && version >= REGISTRY_MIN_JAVA) return java;
    tried.push(`${java} (${version === null ? "does not run" : `Java ${version}`})`);
  }
  throw new Error(
    `Cannot run ${WHAT}: it needs Java ${REGISTRY_MIN_JAVA}+ and none was found (tried ` +
      `${tried.join(", ")}): install one ("apt-get install openjdk-21-jre-headless") or set ` +
      `${REGISTRY_JAVA_ENV} to a Java ${REGISTRY_MIN_JAVA}+ binary`,
  );
}

// ---------------------------------------------------------------------------------------------
// The registry process

/**
 * The registry: `quarkus-run.jar` with its output going to `registry.log` (see
 * {@linkcode ServiceProcess} for stopping and cleanup).
 */
class Registry extends ServiceProcess implements SchemaRegistry {
  readonly url: string;
  readonly port: number;
  readonly #java: string;

  constructor(java: string, app: string, baseDir: string, port: number) {
    super(baseDir, LOG_NAME, [
      java,
      ...JVM_OPTIONS,
      `-Djava.io.tmpdir=${baseDir}`,
      `-Dquarkus.http.port=${port}`,
      `-Dquarkus.http.host=${HOST}`,
      // Its management interface listens on 0.0.0.0:9000 by default, so a second registry on
      // the machine (test files run in parallel) failed to start; nothing here uses it. (Whether
      // it is there at all is fixed when the registry is built.)
      "-Dquarkus.management.port=0",
      `-Dquarkus.management.host=${HOST}`,
      "-jar",
      join(app, "quarkus-run.jar"),
    ]);
    this.#java = java;
    this.port = port;
    this.url = `http://${HOST}:${port}${CCOMPAT_PATH}`;
  }

  /**
   * Stops the registry (SIGTERM; SIGKILL after 10 s), waits `downMs`, and starts it again on
   * the same port; resolves once it answers. Its in-memory storage starts empty again.
   */
  async restart(downMs = 0): Promise<void> {
    await this.respawn(downMs);
    await this.waitReady(READY_TIMEOUT_MS);
  }

  /** Wait until `GET <url>/subjects` answers 200 with a JSON array. */
  waitReady(timeoutMs: number): Promise<void> {
    return this.pollReady({
      what: WHAT,
      address: this.url,
      detail: `port ${this.port}, java ${this.#java}`,
      timeoutMs,
      pollMs: POLL_MS,
      check: async () => {
        const res = await fetch(`${this.url}/subjects`, {
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        const body = await res.text();
        if (res.status === 200 && Array.isArray(JSON.parse(body))) return true;
        return `GET /subjects answered ${res.status}: ${body.slice(0, 200)}`;
      },
    });
  }
}
