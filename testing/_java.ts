/**
 * What the Java-based harnesses (`testing/kafka.ts`, `testing/debezium.ts`) share: running
 * `java`, `javac` and `mvn` with errors that name the harness and the fix, checking the Java
 * runtime once, and fetching jars from Maven Central into the shared cache (see
 * `testing/embedded_postgres.ts`) under a file lock, each folder appearing by an atomic rename
 * only once complete.
 *
 * Every error names the harness through a `what` argument ("Kafka", "Debezium"), as in
 * `Cannot run Kafka: "java" is not on PATH: …`.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  cacheRoot,
  forgetOnUnload,
  killOnUnload,
  lastLines,
  mkdirShared,
} from "./embedded_postgres.ts";

/** The tools the Java harnesses run. */
export type JavaTool = "java" | "javac" | "mvn";

/** A Maven artifact (a jar in Maven Central). */
export interface Artifact {
  group: string;
  artifact: string;
  version: string;
}

const INSTALL_HINT: Record<JavaTool, string> = {
  java: `install a Java 17 runtime ("apt-get install openjdk-17-jre-headless")`,
  javac: `install a Java 17 JDK ("apt-get install openjdk-17-jdk-headless")`,
  mvn: `install Maven ("apt-get install maven")`,
};

/**
 * `fn`, run once and its promise shared; after a failure the next call runs it again.
 */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () => {
    running ??= fn().catch((e) => {
      running = undefined;
      throw e;
    });
    return running;
  };
}

/** Whether `path` exists. */
export async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** The error for `cmd` missing from PATH when running `what`, with how to install it. */
export function notOnPath(what: string, cmd: JavaTool): Error {
  return new Error(`Cannot run ${what}: "${cmd}" is not on PATH: ${INSTALL_HINT[cmd]}`);
}

/** Run `cmd` to its end in `cwd`; stdout and stderr come back together. */
export async function runTool(
  what: string,
  cmd: JavaTool,
  args: string[],
  cwd: string,
): Promise<{ code: number; output: string }> {
  try {
    const out = await new Deno.Command(cmd, { args, cwd, stdin: "null" }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return { code: out.code, output: text };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw notOnPath(what, cmd);
    throw e;
  }
}

const javaChecked = new Map<string, Promise<void>>();

/** Check once (per harness, until it succeeds) that `java -version` works. */
export function checkJava(what: string): Promise<void> {
  let checked = javaChecked.get(what);
  if (!checked) {
    checked = runTool(what, "java", ["-version"], "/").then((r) => {
      if (r.code !== 0) {
        throw new Error(`Cannot run ${what}: "java -version" failed: ${r.output.trim()}`);
      }
    });
    checked.catch(() => javaChecked.delete(what));
    javaChecked.set(what, checked);
  }
  return checked;
}

/**
 * Run `fn` holding the fetch lock of the cache folder `home` (created readable by all, with
 * its parent), one process at a time: flock on `home/.fetch.lock`, released on close or exit.
 * `fn` gets a fresh work dir inside `home`, removed afterwards; it should check again whether
 * another process filled the cache while this one waited.
 */
export async function withFetchLock<T>(
  home: string,
  fn: (work: string) => Promise<T>,
): Promise<T> {
  await mkdirShared(dirname(home));
  await mkdirShared(home);
  const lockPath = join(home, ".fetch.lock");
  const lockFile = await Deno.open(lockPath, { create: true, write: true });
  const work = await Deno.makeTempDir({ dir: home, prefix: ".fetch-" });
  try {
    await Deno.chmod(lockPath, 0o666).catch(() => {});
    await lockFile.lock(true);
    return await fn(work);
  } finally {
    lockFile.close();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** Make the finished folder `from` readable by all and move it to `to` in one rename. */
export async function publishDir(from: string, to: string): Promise<void> {
  await Deno.chmod(from, 0o755);
  // The folder appears complete or not at all.
  await Deno.rename(from, to);
}

const fetched = new Map<string, Promise<string>>();

/**
 * Ensure the jars of `dependencies` (and their runtime dependencies) are in the cache folder
 * `<cache>/<what>-<version>/<libsName>` (`what` in lower case, `libsName` default `libs`) and
 * return that folder: fetched once, under {@linkcode withFetchLock}, by
 * {@linkcode mavenFetch}; later calls only look. A harness that fetches more than one set of
 * jars for one version gives each set its own `libsName`.
 */
export function cachedJars(
  what: string,
  version: string,
  dependencies: Artifact[],
  libsName = "libs",
): Promise<string> {
  const home = join(cacheRoot(), `${what.toLowerCase()}-${version}`);
  const libs = join(home, libsName);
  let fetching = fetched.get(libs);
  if (!fetching) {
    fetching = (async () => {
      if (await exists(libs)) return libs;
      await withFetchLock(home, async (work) => {
        if (await exists(libs)) return;
        await mavenFetch({ what, version, dependencies, work, libs });
      });
      return libs;
    })();
    fetching.catch(() => fetched.delete(libs));
    fetched.set(libs, fetching);
  }
  return fetching;
}

/** What {@linkcode mavenFetch} fetches. */
interface MavenFetch {
  /** The harness, for the pom's name and errors: "Kafka". */
  what: string;
  /** Its version, for errors. */
  version: string;
  /** The artifacts; their runtime dependencies come too. */
  dependencies: Artifact[];
  /** A work dir (see {@linkcode withFetchLock}). */
  work: string;
  /** Where the jars go; it appears by {@linkcode publishDir}. */
  libs: string;
}

/**
 * Fetch `dependencies` and their runtime dependencies with `mvn` through the cache's local
 * repository (`<cache>/m2`) into `libs`. Maven runs offline when the repository already holds
 * every listed jar, and online again if that fails.
 */
async function mavenFetch(f: MavenFetch): Promise<void> {
  const repo = join(cacheRoot(), "m2");
  await Deno.writeTextFile(join(f.work, "pom.xml"), fetchPom(f.what, f.dependencies));
  const args = [
    "-B",
    "-q",
    `-Dmaven.repo.local=${repo}`,
    "dependency:copy-dependencies",
    "-DincludeScope=runtime",
    `-DoutputDirectory=${join(f.work, "libs")}`,
  ];
  let offline = true;
  for (const d of f.dependencies) offline &&= await exists(artifactJar(repo, d));
  let r = await runTool(f.what, "mvn", offline ? ["-o", ...args] : args, f.work);
  if (r.code !== 0 && offline) r = await runTool(f.what, "mvn", args, f.work);
  if (r.code !== 0) {
    throw new Error(
      `Cannot fetch ${f.what} ${f.version} with Maven (exit ${r.code}): is Maven Central ` +
        `(https://repo.maven.apache.org) reachable from here?\n${lastLines(r.output, 30)}`,
    );
  }
  await publishDir(join(f.work, "libs"), f.libs);
}

function fetchPom(what: string, dependencies: Artifact[]): string {
  const dependency = (d: Artifact) =>
    `    <dependency><groupId>${d.group}</groupId><artifactId>${d.artifact}</artifactId>` +
    `<version>${d.version}</version></dependency>`;
  return [
    `<project xmlns="http://maven.apache.org/POM/4.0.0">`,
    `  <modelVersion>4.0.0</modelVersion>`,
    `  <groupId>spillway.testing</groupId>`,
    `  <artifactId>${what.toLowerCase()}-fetch</artifactId>`,
    `  <version>1</version>`,
    `  <packaging>pom</packaging>`,
    `  <dependencies>`,
    ...dependencies.map(dependency),
    `  </dependencies>`,
    `</project>`,
    "",
  ].join("\n");
}

function artifactJar(repo: string, d: Artifact): string {
  return join(repo, ...d.group.split("."), d.artifact, d.version, `${d.artifact}-${d.version}.jar`);
}

// ---------------------------------------------------------------------------------------------
// Java programs under tests/: compiled once, run to their end

/**
 * The classes of the Java program at `program` (class `mainClass`), compiled with `javac`
 * against `classpath` into `<home>/classes-<hash of the source>`: once per source, one
 * compiler at a time across processes. Returns that folder.
 */
export async function compiledProgram(
  what: string,
  program: URL,
  mainClass: string,
  classpath: string,
  home: string,
): Promise<string> {
  const path = fileURLToPath(program);
  const source = await Deno.readFile(path);
  const classes = join(home, `classes-${await shortHash(source)}`);
  if (await exists(classes)) return classes;
  await withFetchLock(home, async (work) => {
    if (await exists(classes)) return;
    const src = join(work, `${mainClass}.java`);
    await Deno.writeFile(src, source);
    const out = join(work, "classes");
    await Deno.mkdir(out);
    const args = ["--release", "17", "-nowarn", "-encoding", "UTF-8", "-cp", classpath];
    const r = await runTool(what, "javac", [...args, "-d", out, src], work);
    if (r.code !== 0) {
      throw new Error(
        `Cannot compile ${path} for ${what} (javac exit ${r.code}): fix the program, or install ` +
          `a Java 17 JDK ("apt-get install openjdk-17-jdk-headless"):\n${lastLines(r.output, 40)}`,
      );
    }
    await publishDir(out, classes);
  });
  return classes;
}

/** The first 8 bytes of the SHA-256 of `bytes`, in hex. */
export async function shortHash(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A running JVM, killed if the module unloads first. */
class Jvm {
  readonly child: Deno.ChildProcess;
  #exited = false;

  constructor(child: Deno.ChildProcess) {
    this.child = child;
    child.status.then(() => this.#exited = true, () => this.#exited = true);
  }

  killSync(): void {
    forgetOnUnload(this);
    if (this.#exited) return;
    try {
      this.child.kill("SIGKILL");
    } catch { /* already gone */ }
  }
}

/** What {@linkcode runJava} saw. */
export interface JavaRun {
  code: number;
  stdout: string;
  /** Its last `stderrKeep` bytes. */
  stderr: string;
  /** It ran past `timeoutMs` and was killed. */
  timedOut: boolean;
}

/**
 * Runs `java args` to its end, killing it after `timeoutMs` (and if this process unloads
 * first). `stdinOpen`: its stdin stays open and empty until it ends, so a program that exits
 * when stdin closes dies with this process.
 */
export async function runJava(
  what: string,
  args: string[],
  timeoutMs: number,
  options: { stdinOpen?: boolean; stderrKeep?: number } = {},
): Promise<JavaRun> {
  await checkJava(what);
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("java", {
      args,
      stdin: options.stdinOpen ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw notOnPath(what, "java");
    throw e;
  }
  const jvm = new Jvm(child);
  killOnUnload(jvm);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    jvm.killSync();
  }, timeoutMs);
  try {
    const [stdout, stderr, status] = await Promise.all([
      collect(child.stdout, Infinity),
      collect(child.stderr, options.stderrKeep ?? Infinity),
      child.status,
    ]);
    return { code: status.code, stdout, stderr, timedOut };
  } finally {
    clearTimeout(timer);
    forgetOnUnload(jvm);
    if (options.stdinOpen) {
      try {
        await child.stdin.close();
      } catch { /* already closed */ }
    }
  }
}

/** Read a stream to its end as text, keeping only its last `keep` bytes. */
async function collect(stream: ReadableStream<Uint8Array>, keep: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream) {
    chunks.push(chunk);
    size += chunk.length;
    while (size > keep && chunks.length > 1) size -= chunks.shift()!.length;
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return new TextDecoder().decode(all);
}
