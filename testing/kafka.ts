/**
 * Real-Kafka test harness: a throwaway single-node Apache Kafka broker (KRaft mode) for tests,
 * benchmarks and the demo.
 *
 * The broker's jars (`org.apache.kafka:kafka_2.13` {@linkcode KAFKA_VERSION} and the
 * `log4j-slf4j-impl` logging binding) are fetched once from Maven Central with `mvn` into the
 * same cache as the PostgreSQL binaries (see `testing/embedded_postgres.ts`):
 *
 *     ${SPILLWAY_CACHE_DIR:-/var/tmp/spillway-cache}/m2                 (Maven's local repository)
 *     ${SPILLWAY_CACHE_DIR:-/var/tmp/spillway-cache}/kafka-4.4.0/libs   (the broker's class path)
 *
 * Later fetches run Maven offline. A file lock serializes fetches across processes, and the
 * `libs` folder appears by an atomic rename only once complete.
 *
 * Each broker gets its own temp dir under /tmp (server.properties, the log dir, and
 * `kafka.log`, where the broker's output goes), listens on 127.0.0.1 at free ports (PLAINTEXT
 * for clients, CONTROLLER for its own quorum) and runs on the machine's default `java` (17+).
 *
 * Security, for tests of clients that authenticate or encrypt ({@linkcode KafkaOptions.security}):
 * `sasl` adds a SASL_PLAINTEXT listener taking PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for one
 * user ({@linkcode KafkaBroker.credentials}; the SCRAM credentials are written at format time);
 * `tls` adds an SSL listener whose certificate (for `127.0.0.1` and `localhost`) a throwaway CA
 * made with `openssl` signed ({@linkcode KafkaBroker.caFile}); both add a SASL_SSL listener too.
 * The PLAINTEXT listener stays, as does plain traffic between the broker and its controller.
 *
 * Cleanup: `await using kafka = await startKafka()` stops the broker (SIGTERM, then SIGKILL
 * after a timeout) and deletes its temp dir. Brokers still running when the module unloads are
 * killed, and a small detached shell watchdog kills the broker and deletes its temp dir if the
 * test process dies without cleaning up (all of which `testing/_service.ts` does, for the
 * schema registry's harness too).
 *
 * @module
 */

import { dirname, join } from "node:path";
import { Kafka, logLevel } from "npm:kafkajs@2.2.4";
import { freePort, lastLines } from "./embedded_postgres.ts";
import { type Artifact, cachedJars, checkJava, runTool } from "./_java.ts";
import { type ServiceHandle, ServiceProcess, startService } from "./_service.ts";

/** The Apache Kafka version the harness runs. */
export const KAFKA_VERSION = "4.4.0";

const JARS: Artifact[] = [
  { group: "org.apache.kafka", artifact: "kafka_2.13", version: KAFKA_VERSION },
  // The logging binding.
  { group: "org.apache.logging.log4j", artifact: "log4j-slf4j-impl", version: "2.25.5" },
];

const HOST = "127.0.0.1";
const READY_TIMEOUT_MS = 60_000;
const PORT_ATTEMPTS = 3;
const LOG_NAME = "kafka.log";
/** The broker's JVM for tests: small and quick to start (one GC thread, C1 only). */
const TEST_JVM_OPTIONS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"];
/**
 * The JVM of Kafka's own `kafka-server-start.sh` (its `KAFKA_HEAP_OPTS` and
 * `KAFKA_JVM_PERFORMANCE_OPTS` defaults): what a broker runs with in production, for
 * benchmarks, which measure clients against a broker as deployed, not one tuned to start fast.
 */
export const PRODUCTION_JVM_OPTIONS: readonly string[] = [
  "-Xmx1G",
  "-Xms1G",
  "-server",
  "-XX:+UseG1GC",
  "-XX:MaxGCPauseMillis=20",
  "-XX:InitiatingHeapOccupancyPercent=35",
  "-XX:+ExplicitGCInvokesConcurrent",
  "-XX:MaxInlineLevel=15",
  "-Djava.awt.headless=true",
];

/** Options for {@linkcode startKafka}. */
export interface KafkaOptions {
  /** Extra server.properties settings; they override the harness defaults. */
  settings?: Record<string, string>;
  /** How long to wait for the broker to answer; default 60 s. */
  readyTimeoutMs?: number;
  /**
   * The broker's JVM options; default a small test JVM (256 MB heap, serial GC, C1 only).
   * Benchmarks pass {@linkcode PRODUCTION_JVM_OPTIONS}.
   */
  jvmOptions?: readonly string[];
  /**
   * Extra listeners, each on a free port of its own, beside the PLAINTEXT one (which stays):
   *
   * - `sasl`: SASL_PLAINTEXT with the mechanisms PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, for
   *   the user in {@linkcode KafkaBroker.credentials} ({@linkcode KafkaBroker.saslBrokers}).
   * - `tls`: SSL, with a broker certificate for `127.0.0.1` and `localhost` signed by a
   *   throwaway CA ({@linkcode KafkaBroker.caFile}; {@linkcode KafkaBroker.tlsBrokers}); needs
   *   `openssl` on PATH. No client certificate is asked for.
   * - both: also SASL_SSL ({@linkcode KafkaBroker.saslTlsBrokers}).
   */
  security?: KafkaSecurityOptions;
}

/** Which secured listeners {@linkcode startKafka} adds; see {@linkcode KafkaOptions.security}. */
export interface KafkaSecurityOptions {
  /** Add a SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512). */
  sasl?: boolean;
  /** Add an SSL listener with a certificate from a throwaway CA. */
  tls?: boolean;
}

/** The SASL mechanisms a broker started with `security: { sasl: true }` takes. */
export const SASL_MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] as const;

/** The one SASL user of a broker started with `security: { sasl: true }`. */
export interface KafkaCredentials {
  username: string;
  /** Random per broker. */
  password: string;
}

/**
 * A running (or stopped) throwaway Kafka broker: its process id, log and `stop` are those of
 * {@linkcode ServiceHandle}. Dispose it with `await using`.
 */
export interface KafkaBroker extends ServiceHandle {
  /** Bootstrap addresses for clients: `["127.0.0.1:<port>"]`. */
  readonly brokers: string[];
  /** Bootstrap addresses of the SASL_PLAINTEXT listener; empty unless `security.sasl`. */
  readonly saslBrokers: string[];
  /** Bootstrap addresses of the SSL listener; empty unless `security.tls`. */
  readonly tlsBrokers: string[];
  /** Bootstrap addresses of the SASL_SSL listener; empty unless both `sasl` and `tls`. */
  readonly saslTlsBrokers: string[];
  /** The SASL user (every mechanism in {@linkcode SASL_MECHANISMS}); `null` unless `sasl`. */
  readonly credentials: KafkaCredentials | null;
  /** The PEM file of the CA that signed the broker's certificate; `null` unless `tls`. */
  readonly caFile: string | null;
  /**
   * Stop the broker, keep its data, wait `downMs`, start it again on the same ports; resolves
   * once it answers again.
   */
  restart(downMs?: number): Promise<void>;
}

/**
 * Start a fresh single-node KRaft broker in a new temp dir, fetching Kafka first if the cache
 * lacks it. Resolves once the broker answers a Metadata request listing itself; rejects with
 * what failed, the fix, and the end of the broker's log. Nothing is left behind on failure.
 */
export async function startKafka(opts: KafkaOptions = {}): Promise<KafkaBroker> {
  const libs = await kafkaLibDir();
  await checkJava("Kafka");
  return await startService({
    prefix: "spillway-kafka-",
    logName: LOG_NAME,
    attempts: PORT_ATTEMPTS,
    portInUse: /Address already in use/,
    readyTimeoutMs: opts.readyTimeoutMs ?? READY_TIMEOUT_MS,
  }, async (baseDir) => {
    const listeners = await secureListeners(baseDir, opts.security ?? {});
    const port = freePort();
    const properties = join(baseDir, "server.properties");
    await Deno.writeTextFile(properties, serverProperties(baseDir, port, opts.settings, listeners));
    await Deno.writeTextFile(join(baseDir, "log4j2.properties"), LOG4J_CONFIG);
    await formatLogDir(libs, baseDir, listeners.credentials);
    return new Broker(libs, baseDir, port, listeners, opts.jvmOptions ?? TEST_JVM_OPTIONS);
  });
}

/**
 * Ensure Kafka's jars are in the cache and return the folder holding them (the class path is
 * `<folder>/*`).
 */
export function kafkaLibDir(): Promise<string> {
  return cachedJars("Kafka", KAFKA_VERSION, JARS);
}

// ---------------------------------------------------------------------------------------------
// Configuring and formatting

/** The secured listeners of one broker (ports `null`: not added), and what clients need. */
interface SecureListeners {
  saslPort: number | null;
  tlsPort: number | null;
  saslTlsPort: number | null;
  credentials: KafkaCredentials | null;
  /** The broker's key and certificate chain (PEM), for `ssl.keystore.location`. */
  keystore: string | null;
  caFile: string | null;
}

/** Pick ports for the listeners `security` asks for; make the user and the certificates. */
async function secureListeners(
  baseDir: string,
  security: KafkaSecurityOptions,
): Promise<SecureListeners> {
  const sasl = security.sasl === true;
  const tls = security.tls === true;
  const listeners: SecureListeners = {
    saslPort: sasl ? freePort() : null,
    tlsPort: tls ? freePort() : null,
    saslTlsPort: sasl && tls ? freePort() : null,
    credentials: sasl ? { username: "spillway", password: randomPassword() } : null,
    keystore: null,
    caFile: null,
  };
  if (tls) Object.assign(listeners, await makeCertificates(join(baseDir, "tls")));
  return listeners;
}

/** 24 random hex digits: safe inside JAAS and StorageTool quoting. */
function randomPassword(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "pw-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * In `dir`: a throwaway CA (`ca.pem`, `ca.key`) and a broker certificate for `127.0.0.1` and
 * `localhost` it signed, with the broker's unencrypted PKCS#8 key, as one PEM file
 * (`broker-keystore.pem`: key, then certificate, then the CA's).
 */
async function makeCertificates(dir: string): Promise<{ keystore: string; caFile: string }> {
  await Deno.mkdir(dir, { recursive: true });
  const caFile = join(dir, "ca.pem");
  const caKey = join(dir, "ca.key");
  const key = join(dir, "broker.key");
  const csr = join(dir, "broker.csr");
  const cert = join(dir, "broker.pem");
  const ext = join(dir, "broker.ext");
  await Deno.writeTextFile(
    ext,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n" +
      "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
  );
  // deno-fmt-ignore
  await openssl(dir, [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", caKey, "-out", caFile,
    "-days", "7", "-subj", "/CN=Spillway test CA",
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  // deno-fmt-ignore
  await openssl(dir, [
    "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
    "-subj", "/CN=127.0.0.1",
  ]);
  // deno-fmt-ignore
  await openssl(dir, [
    "x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-set_serial", "1",
    "-days", "7", "-extfile", ext, "-out", cert,
  ]);
  const keystore = join(dir, "broker-keystore.pem");
  const parts = await Promise.all([key, cert, caFile].map((f) => Deno.readTextFile(f)));
  await Deno.writeTextFile(keystore, parts.map((p) => p.trimEnd() + "\n").join(""));
  return { keystore, caFile };
}

/** Run `openssl` with `args` in `dir`; throws with its output on failure. */
async function openssl(dir: string, args: string[]): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("openssl", { args, cwd: dir, stdin: "null" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `Cannot make the Kafka broker's TLS certificates: "openssl" is not on PATH: ` +
          `install it ("apt-get install openssl")`,
      );
    }
    throw e;
  }
  if (out.code !== 0) {
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    throw new Error(
      `Cannot make the Kafka broker's TLS certificates (openssl ${args[0]} exit ${out.code}):\n` +
        lastLines(text, 20),
    );
  }
}

/**
 * A throwaway self-signed CA in `dir` (`<name>.pem`, `<name>.key`) that signed nothing, for
 * tests of a client that must refuse the broker's certificate. Returns the PEM file's path.
 */
export async function makeTestCa(dir: string, name = "other-ca"): Promise<string> {
  const caFile = join(dir, `${name}.pem`);
  // deno-fmt-ignore
  await openssl(dir, [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, `${name}.key`),
    "-out", caFile, "-days", "7", "-subj", `/CN=Spillway ${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return caFile;
}

/** The JAAS settings of one SASL listener (`listener`: its name in lower case). */
function saslSettings(listener: string, user: KafkaCredentials): Record<string, string> {
  const prefix = `listener.name.${listener}`;
  return {
    [`${prefix}.plain.sasl.jaas.config`]:
      "org.apache.kafka.common.security.plain.PlainLoginModule required " +
      `username="${user.username}" password="${user.password}" ` +
      `user_${user.username}="${user.password}";`,
    [`${prefix}.scram-sha-256.sasl.jaas.config`]:
      "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    [`${prefix}.scram-sha-512.sasl.jaas.config`]:
      "org.apache.kafka.common.security.scram.ScramLoginModule required;",
  };
}

const NO_SECURITY: SecureListeners = {
  saslPort: null,
  tlsPort: null,
  saslTlsPort: null,
  credentials: null,
  keystore: null,
  caFile: null,
};

function serverProperties(
  baseDir: string,
  port: number,
  settings: Record<string, string> = {},
  secure: SecureListeners = NO_SECURITY,
): string {
  const controllerPort = freePort();
  const listeners = [`PLAINTEXT://${HOST}:${port}`, `CONTROLLER://${HOST}:${controllerPort}`];
  const advertised = [`PLAINTEXT://${HOST}:${port}`];
  const protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"];
  const security: Record<string, string> = {};
  for (
    const [name, listenerPort] of [
      ["SASL_PLAINTEXT", secure.saslPort],
      ["SSL", secure.tlsPort],
      ["SASL_SSL", secure.saslTlsPort],
    ] as const
  ) {
    if (listenerPort === null) continue;
    listeners.push(`${name}://${HOST}:${listenerPort}`);
    advertised.push(`${name}://${HOST}:${listenerPort}`);
    protocols.push(`${name}:${name}`);
    if (name.startsWith("SASL") && secure.credentials !== null) {
      Object.assign(security, saslSettings(name.toLowerCase(), secure.credentials));
    }
  }
  if (secure.credentials !== null) security["sasl.enabled.mechanisms"] = SASL_MECHANISMS.join(",");
  if (secure.keystore !== null) {
    security["ssl.keystore.type"] = "PEM";
    security["ssl.keystore.location"] = secure.keystore;
    security["ssl.client.auth"] = "none";
  }
  const defaults: Record<string, string> = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "listeners": listeners.join(","),
    "advertised.listeners": advertised.join(","),
    "listener.security.protocol.map": protocols.join(","),
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "controller.quorum.voters": `1@${HOST}:${controllerPort}`,
    "log.dirs": join(baseDir, "data"),
    "num.partitions": "1",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    ...security,
  };
  const lines = ["# Written by testing/kafka.ts"];
  for (const [k, v] of Object.entries({ ...defaults, ...settings })) {
    lines.push(`${k}=${v}`);
  }
  return lines.join("\n") + "\n";
}

/** Log to stdout, which the harness sends to `kafka.log` in the broker's temp dir. */
const LOG4J_CONFIG = `status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
`;

function javaArgs(
  jvmOptions: readonly string[],
  libs: string,
  baseDir: string,
  ...main: string[]
): string[] {
  return [
    ...jvmOptions,
    `-Dlog4j2.configurationFile=${join(baseDir, "log4j2.properties")}`,
    "-cp",
    `${libs}/*`,
    ...main,
  ];
}

/**
 * The cluster id: 16 random bytes, base64url without padding. It may start with `-`, so it goes
 * to the StorageTool as `--cluster-id=<id>`, never as a separate argument.
 */
function clusterId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

async function formatLogDir(
  libs: string,
  baseDir: string,
  scramUser: KafkaCredentials | null = null,
): Promise<void> {
  const properties = join(baseDir, "server.properties");
  const args = javaArgs(TEST_JVM_OPTIONS, libs, baseDir, "kafka.tools.StorageTool", "format");
  // SCRAM credentials live in the metadata log; KRaft takes the first ones at format time.
  const scram = scramUser === null ? [] : ["SCRAM-SHA-256", "SCRAM-SHA-512"].flatMap((m) => [
    "--add-scram",
    `${m}=[name=${scramUser.username},password=${scramUser.password}]`,
  ]);
  const r = await runTool(
    "Kafka",
    "java",
    [...args, `--cluster-id=${clusterId()}`, "-c", properties, ...scram],
    baseDir,
  );
  if (r.code !== 0) {
    throw new Error(
      `Cannot format the Kafka log dir (kafka.tools.StorageTool exit ${r.code}):\n` +
        lastLines(r.output, 30),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// The broker process

/**
 * The broker: `kafka.Kafka` with its output going to `kafka.log` (see {@linkcode ServiceProcess}
 * for stopping and cleanup).
 */
class Broker extends ServiceProcess implements KafkaBroker {
  readonly brokers: string[];
  readonly saslBrokers: string[];
  readonly tlsBrokers: string[];
  readonly saslTlsBrokers: string[];
  readonly credentials: KafkaCredentials | null;
  readonly caFile: string | null;
  readonly #port: number;

  constructor(
    libs: string,
    baseDir: string,
    port: number,
    secure: SecureListeners,
    jvmOptions: readonly string[],
  ) {
    const main = ["kafka.Kafka", join(baseDir, "server.properties")];
    super(baseDir, LOG_NAME, ["java", ...javaArgs(jvmOptions, libs, baseDir, ...main)]);
    this.#port = port;
    this.brokers = [`${HOST}:${port}`];
    const at = (p: number | null) => p === null ? [] : [`${HOST}:${p}`];
    this.saslBrokers = at(secure.saslPort);
    this.tlsBrokers = at(secure.tlsPort);
    this.saslTlsBrokers = at(secure.saslTlsPort);
    this.credentials = secure.credentials;
    this.caFile = secure.caFile;
  }

  /**
   * Stops the broker (SIGTERM; SIGKILL after 10 s), keeps its log dir, waits `downMs`, and starts
   * it again on the same ports; resolves once it answers. For tests of a broker that goes away.
   */
  async restart(downMs = 0): Promise<void> {
    await this.respawn(downMs);
    await this.waitReady(READY_TIMEOUT_MS);
  }

  /** Wait until the broker lists itself in a Metadata answer. */
  waitReady(timeoutMs: number): Promise<void> {
    return this.pollReady({
      what: "Kafka broker",
      address: `${HOST}:${this.#port}`,
      detail: `port ${this.#port}`,
      timeoutMs,
      pollMs: 200,
      check: async () =>
        await brokerListsItself(this.#port) || "the broker does not list itself yet",
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Readiness over the Kafka wire protocol (no client library in the harness)

/** Kafka API keys used here. */
const ApiKey = {
  Metadata: 3,
  ApiVersions: 18,
} as const;

/** Metadata versions with the classic (non-flexible) encoding, v4–v8. */
const METADATA_VERSIONS = { min: 4, max: 8 };
const CLIENT_ID = "spillway-harness";
const REQUEST_TIMEOUT_MS = 2_000;

/**
 * Ask the broker, over one connection: ApiVersions v0 (which Metadata versions it serves),
 * then Metadata with no topics. True when the answer lists at least one broker.
 */
async function brokerListsItself(port: number): Promise<boolean> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const timer = setTimeout(() => conn.close(), REQUEST_TIMEOUT_MS);
  try {
    const versions = await request(conn, ApiKey.ApiVersions, 0, new Uint8Array(0));
    // ApiVersions v0 response: error_code int16, [api_key int16, min int16, max int16]
    const errorCode = versions.getInt16(0);
    if (errorCode !== 0) throw new Error(`ApiVersions answered error code ${errorCode}`);
    let version: number | undefined;
    const count = versions.getInt32(2);
    for (let i = 0; i < count; i++) {
      const at = 6 + i * 6;
      if (versions.getInt16(at) !== ApiKey.Metadata) continue;
      const max = Math.min(versions.getInt16(at + 4), METADATA_VERSIONS.max);
      if (max >= Math.max(versions.getInt16(at + 2), METADATA_VERSIONS.min)) version = max;
    }
    if (version === undefined) return true; // It answers; Metadata is beyond this check.
    // Metadata v4–v7 request: topics int32 array (0 = none), allow_auto_topic_creation int8;
    // v8 adds include_cluster_authorized_operations and include_topic_authorized_operations.
    const body = new Uint8Array(version >= 8 ? 7 : 5);
    const metadata = await request(conn, ApiKey.Metadata, version, body);
    // Metadata v4–v8 response: throttle_time_ms int32, brokers int32 array, …
    return metadata.getInt32(4) > 0;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

/**
 * Send one request (header v1: api_key int16, api_version int16, correlation_id int32,
 * client_id string) and return the response body after its header (correlation_id int32).
 */
async function request(
  conn: Deno.Conn,
  apiKey: number,
  apiVersion: number,
  body: Uint8Array,
): Promise<DataView> {
  const clientId = new TextEncoder().encode(CLIENT_ID);
  const frame = new Uint8Array(4 + 10 + clientId.length + body.length);
  const view = new DataView(frame.buffer);
  view.setInt32(0, frame.length - 4);
  view.setInt16(4, apiKey);
  view.setInt16(6, apiVersion);
  view.setInt32(8, apiKey);
  view.setInt16(12, clientId.length);
  frame.set(clientId, 14);
  frame.set(body, 14 + clientId.length);
  let written = 0;
  while (written < frame.length) written += await conn.write(frame.subarray(written));

  const size = new DataView((await readExactly(conn, 4)).buffer).getInt32(0);
  const response = await readExactly(conn, size);
  const view2 = new DataView(response.buffer);
  if (view2.getInt32(0) !== apiKey) throw new Error("Kafka answered another request");
  return new DataView(response.buffer, 4);
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let filled = 0;
  while (filled < n) {
    const read = await conn.read(out.subarray(filled));
    if (read === null) throw new Error("Kafka closed the connection");
    filled += read;
  }
  return out;
}

/**
 * Bytes of `topic`'s log segments on the broker's disk (all partitions): what its records take
 * as the broker stores them, batch headers included.
 */
export async function topicBytesOnDisk(broker: KafkaBroker, topic: string): Promise<number> {
  const data = join(dirname(broker.logFile), "data");
  let bytes = 0;
  for await (const dir of Deno.readDir(data)) {
    if (!dir.name.startsWith(`${topic}-`)) continue;
    for await (const file of Deno.readDir(join(data, dir.name))) {
      if (file.name.endsWith(".log")) {
        bytes += (await Deno.stat(join(data, dir.name, file.name))).size;
      }
    }
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Reading topics, as a consumer does

/** One record as a `read_committed` consumer got it. */
export interface ConsumedRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  /** `null`: a tombstone. */
  value: string | null;
  /** The key and value as bytes (binary formats such as Avro). */
  keyBytes: Uint8Array | null;
  valueBytes: Uint8Array | null;
  headers: Record<string, string>;
}

/**
 * Reads `topics` as a consumer in a fresh group (`read_committed`, from the beginning unless
 * `fromBeginning` is false) and calls `onRecord` for each record, until `signal` aborts. Topics
 * that do not exist yet are waited for (a sink creates its topics with its first records).
 * Resolves once the consumer has left.
 */
export async function tailTopics(
  brokers: string[],
  topics: string[],
  onRecord: (record: ConsumedRecord) => void,
  signal: AbortSignal,
  options: { fromBeginning?: boolean } = {},
): Promise<void> {
  const kafka = new Kafka({ clientId: "spillway-reader", brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    while (!signal.aborted) {
      const existing = new Set(await admin.listTopics());
      if (topics.every((topic) => existing.has(topic))) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await admin.disconnect();
  }
  if (signal.aborted) return;
  const consumer = kafka.consumer({
    groupId: `spillway-reader-${crypto.randomUUID()}`,
    readUncommitted: false,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics, fromBeginning: options.fromBeginning ?? true });
    await consumer.run({
      eachMessage: ({ topic, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(message.headers ?? {})) {
          headers[name] = String(value);
        }
        onRecord({
          topic,
          partition,
          offset: Number(message.offset),
          key: message.key === null ? null : message.key.toString(),
          value: message.value === null ? null : message.value.toString(),
          keyBytes: message.key === null ? null : new Uint8Array(message.key),
          valueBytes: message.value === null ? null : new Uint8Array(message.value),
          headers,
        });
        return Promise.resolve();
      },
    });
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
  } finally {
    await consumer.disconnect();
  }
}
