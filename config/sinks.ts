/**
 * The `sinks` list: one map per sink, keyed by its type (`stdout`, `file`, `kafka`).
 *
 * @module
 */

import { isMap, isScalar, type YAMLMap } from "npm:yaml@2.9.1";
import type {
  FileSinkConfig,
  KafkaDeadLetterConfig,
  KafkaSinkConfig,
  SinkConfig,
  StdoutSinkConfig,
} from "./types.ts";
import {
  type Checker,
  childPath,
  describe,
  type Field,
  isNull,
  keyName,
  quote,
  quotePath,
  type Section,
  startOf,
  suggestion,
} from "./_yaml.ts";
import {
  anyOf,
  boolean,
  choice,
  duration,
  filePath,
  integer,
  list,
  nullable,
  orVariable,
  type Reader,
  secret,
  size,
  string,
} from "./_readers.ts";
import { readSection, sectionReader, sectionSchema, type SectionSpec } from "./_fields.ts";

const SINK_TYPES = ["stdout", "file", "kafka"] as const;
type SinkType = typeof SINK_TYPES[number];
const SINKS_EXPECTED = "a list of sinks like - stdout: { format: json }";

// ---------------------------------------------------------------------------------------
// stdout and file

const STDOUT: SectionSpec<Omit<StdoutSinkConfig, "type">> = {
  expected: "a map with format",
  fields: {
    format: {
      key: "format",
      reader: choice(["json", "pretty", "auto"] as const),
      default: "auto",
      doc: "json: JSON lines; pretty: for reading; auto: pretty on a terminal, JSON " +
        "lines otherwise.",
    },
  },
};

const FILE_PATH_EXPECTED = "a file path like out/changes.jsonl";

const FILE: SectionSpec<Omit<FileSinkConfig, "type">> = {
  expected: "a map with path, rotate_bytes and fsync",
  fields: {
    path: {
      key: "path",
      reader: filePath(FILE_PATH_EXPECTED),
      required: FILE_PATH_EXPECTED,
      doc: "File to append to, relative to the pipeline file; one file per file sink.",
    },
    rotateBytes: {
      key: "rotate_bytes",
      reader: size({ off: true }),
      default: null,
      doc: "Start a new file after this size; 0, off or null never rotates.",
    },
    fsync: {
      key: "fsync",
      reader: boolean,
      default: true,
      doc: "fsync each batch before the slot may advance past it.",
    },
  },
};

/** Two file sinks must not write one file. */
function checkFileOnce(
  checker: Checker,
  section: Section,
  path: string | undefined,
  files: Map<string, string>,
): void {
  if (path === undefined) return;
  const other = files.get(path);
  if (other !== undefined) {
    const found = `${quote(path)}, also written by ${quotePath(other)}`;
    checker.fail(section.get("path")!, "a file no other file sink writes", found);
    return;
  }
  files.set(path, section.field.path);
}

// ---------------------------------------------------------------------------------------
// kafka

const BROKERS_EXPECTED = "a list of brokers like [localhost:9092]";
const BROKER = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/;
const REGISTRY_EXPECTED = "a schema registry URL like http://localhost:8081";
const HTTP_URL = /^https?:\/\/\S+$/;

const acksChoice = choice<"all" | -1 | 0 | 1>(["all", -1, 0, 1]);

const ACKS: Reader<"all" | 0 | 1> = {
  expected: acksChoice.expected,
  jsonSchema: acksChoice.jsonSchema,
  read: (checker, field) => {
    const value = acksChoice.read(checker, field);
    return value === -1 ? "all" : value;
  },
};

type SchemaRegistry = NonNullable<KafkaSinkConfig["schemaRegistry"]>;

const registryUrl = string(REGISTRY_EXPECTED, HTTP_URL);

const REGISTRY: SectionSpec<SchemaRegistry> = {
  expected:
    `${REGISTRY_EXPECTED}, or a map with url, username, password, ca, subject_naming, on_incompatible and dead_letter_topic`,
  fields: {
    url: { key: "url", reader: registryUrl, required: REGISTRY_EXPECTED, doc: "Registry URL." },
    username: {
      key: "username",
      reader: nullable(string("a user name")),
      default: null,
      doc: "User for basic authentication; null for none.",
    },
    password: {
      key: "password",
      reader: nullable(secret("a password")),
      default: null,
      doc: "Password for basic authentication, best as ${VAR}; null for none.",
    },
    ca: {
      key: "ca",
      reader: nullable(filePath("a path to a CA certificate file")),
      default: null,
      doc: "CA certificate file for an https registry, relative to the pipeline file; null " +
        "for the system's.",
    },
    subjectNaming: {
      key: "subject_naming",
      reader: choice(["topic", "record", "topic_record"] as const),
      default: "topic",
      doc: "Subject of each schema: topic (<topic>-key/-value, TopicNameStrategy), record " +
        "(the record's full name, RecordNameStrategy) or topic_record " +
        "(<topic>-<record name>, TopicRecordNameStrategy).",
    },
    onIncompatible: {
      key: "on_incompatible",
      reader: choice(["stop", "dead_letter"] as const),
      default: "stop",
      doc: "When the registry refuses a table's new schema (a change its subject's " +
        "compatibility level forbids): stop (the pipeline stops before the change, the slot " +
        "not moved past it) or dead_letter (the table's changes go to dead_letter_topic as " +
        "JSON until its schema changes again or the pipeline restarts).",
    },
    deadLetterTopic: {
      key: "dead_letter_topic",
      reader: nullable(string("a topic name")),
      default: null,
      doc: "Where on_incompatible: dead_letter writes; null for <topic_prefix>.dead-letter.",
    },
  },
};

const SCHEMA_REGISTRY: Reader<SchemaRegistry> = {
  expected: REGISTRY.expected,
  jsonSchema: anyOf(registryUrl.jsonSchema, sectionSchema(REGISTRY)),
  read: (checker, field) => {
    if (isMap(field.node)) return readSection(checker, field, REGISTRY);
    const url = registryUrl.read(checker, field);
    return url === undefined ? undefined : {
      url,
      username: null,
      password: null,
      ca: null,
      subjectNaming: "topic",
      onIncompatible: "stop",
      deadLetterTopic: null,
    };
  },
};

type Tls = KafkaSinkConfig["tls"];

const TLS_EXPECTED = "true, false, or a map with ca";

const TLS_MAP: SectionSpec<NonNullable<Tls>> = {
  expected: TLS_EXPECTED,
  fields: {
    ca: {
      key: "ca",
      reader: nullable(filePath("a path to a CA certificate file")),
      default: null,
      doc: "CA certificate file, relative to the pipeline file; null for the system's.",
    },
  },
};

const TLS: Reader<Tls> = {
  expected: TLS_EXPECTED,
  jsonSchema: anyOf(orVariable({ type: ["boolean", "null"] }), sectionSchema(TLS_MAP)),
  read: (checker, field) => {
    if (isMap(field.node)) return readSection(checker, field, TLS_MAP);
    const scalar = checker.scalar(field, TLS_EXPECTED);
    if (scalar === undefined) return undefined;
    if (scalar.value === null || scalar.value === false) return null;
    if (scalar.value === true) return { ca: null };
    return checker.fail(field, TLS_EXPECTED, describe(field.node, scalar.value));
  },
  represent: (tls) => tls === null ? false : tls.ca === null ? true : { ca: tls.ca },
};

const SASL_MECHANISMS = ["plain", "scram-sha-256", "scram-sha-512"] as const;

const SASL: SectionSpec<NonNullable<KafkaSinkConfig["sasl"]>> = {
  expected: "a map with mechanism, username and password",
  fields: {
    mechanism: {
      key: "mechanism",
      reader: choice(SASL_MECHANISMS),
      required: `one of ${SASL_MECHANISMS.map(quote).join(", ")}`,
      doc: "SASL mechanism.",
    },
    username: {
      key: "username",
      reader: string("a user name"),
      required: "a user name",
      doc: "SASL user.",
    },
    password: {
      key: "password",
      reader: secret("a password"),
      required: "a password like ${KAFKA_PASSWORD}",
      doc: "SASL password, best as ${VAR}.",
    },
  },
};

const KAFKA: SectionSpec<Omit<KafkaSinkConfig, "type">> = {
  expected: "a map with brokers and other Kafka options",
  fields: {
    brokers: {
      key: "brokers",
      reader: list(string("a broker like localhost:9092", BROKER), BROKERS_EXPECTED),
      required: BROKERS_EXPECTED,
      doc: "Bootstrap brokers as host:port; at least one.",
    },
    format: {
      key: "format",
      reader: choice(["debezium-json", "debezium-avro", "json"] as const),
      default: "debezium-json",
      doc: "Record format: Debezium's JSON envelope, its Avro form (needs " +
        "schema_registry), or plain JSON.",
    },
    exactlyOnce: {
      key: "exactly_once",
      reader: boolean,
      default: false,
      doc: "Transactional, exactly-once writes (acks must be all).",
    },
    transactionalId: {
      key: "transactional_id",
      reader: nullable(string("an id")),
      default: null,
      doc: "Kafka transactional id; null derives it from the pipeline name.",
    },
    schemaRegistry: {
      key: "schema_registry",
      reader: nullable(SCHEMA_REGISTRY),
      default: null,
      doc: "Schema registry for debezium-avro: its URL, or a map with url, username and " +
        "password.",
    },
    acks: {
      key: "acks",
      reader: ACKS,
      default: "all",
      doc: "Acknowledgements a write waits for: all (or -1), 0 or 1.",
    },
    compression: {
      key: "compression",
      reader: choice(["none", "gzip", "snappy", "lz4", "zstd"] as const),
      default: "none",
      doc: "Compression of record batches.",
    },
    clientId: {
      key: "client_id",
      reader: string("a client id"),
      default: "spillway",
      doc: "Kafka client id.",
    },
    topicPrefix: {
      key: "topic_prefix",
      reader: nullable(string("a topic prefix")),
      default: null,
      doc: "Overrides defaults.topic_prefix for this sink; null keeps it.",
    },
    tls: {
      key: "tls",
      reader: TLS,
      default: null,
      doc: "true for TLS with the system's CAs, a map with ca for a CA file, false or " +
        "null for plain TCP.",
    },
    sasl: {
      key: "sasl",
      reader: nullable(sectionReader(SASL)),
      default: null,
      doc: "SASL authentication; null for none.",
    },
    schemas: {
      key: "schemas",
      reader: boolean,
      default: true,
      doc: "Embed the Connect schema in keys and values, as Kafka Connect's JsonConverter " +
        "with schemas.enable=true.",
    },
    tombstones: {
      key: "tombstones",
      reader: boolean,
      default: true,
      doc: "Follow each delete with a tombstone (null value), as Debezium's " +
        "tombstones.on.delete.",
    },
    truncate: {
      key: "truncate",
      reader: boolean,
      default: false,
      doc: "Write truncates as op t events (Debezium skips them by default).",
    },
    transactionMetadata: {
      key: "transaction_metadata",
      reader: boolean,
      default: false,
      doc: "BEGIN and END records on <prefix>.transaction and a transaction block in each " +
        "event, as Debezium's provide.transaction.metadata.",
    },
    headers: {
      key: "headers",
      reader: boolean,
      default: true,
      doc: "Record headers spillway.lsn, spillway.xid, spillway.commit_time and " +
        "spillway.schema_version.",
    },
    keyless: {
      key: "keyless",
      reader: choice(["null_key", "single_partition", "error"] as const),
      default: "null_key",
      doc: "Changes of a table without a primary key (or key columns): null_key spreads " +
        "them over partitions, single_partition keeps them in order on partition 0, error " +
        "stops the pipeline.",
    },
    createTopics: {
      key: "create_topics",
      reader: boolean,
      default: true,
      doc: "Create missing topics with partitions and replication_factor.",
    },
    partitions: {
      key: "partitions",
      reader: integer(-1),
      default: -1,
      doc: "Partitions of created topics; -1 for the broker's default.",
    },
    replicationFactor: {
      key: "replication_factor",
      reader: integer(-1),
      default: -1,
      doc: "Replication factor of created topics; -1 for the broker's default.",
    },
    lingerMs: {
      key: "linger",
      reader: duration(),
      default: 5,
      doc: "Longest a record waits for others to join its produce request while the " +
        "pipeline is busy; an idle pipeline sends at once.",
    },
    batchBytes: {
      key: "batch_bytes",
      reader: size(),
      default: 1_000_000,
      doc: "Largest produce request, in bytes of records.",
    },
    checkpointTopic: {
      key: "checkpoint_topic",
      reader: string("a topic name"),
      default: "spillway.checkpoints",
      doc: "Compacted topic where exactly_once records each committed position.",
    },
  },
  check: (checker, section, { exactlyOnce, acks, format }) => {
    const acksField = section.get("acks");
    if (exactlyOnce && acks !== "all" && acksField !== undefined) {
      checker.fail(acksField, '"all" when exactly_once is true');
    }
    const field = section.field;
    const registryField = section.get("schema_registry");
    if (format === "debezium-avro" && registryField === undefined && section.present) {
      const path = quotePath(childPath(field.path, "schema_registry"));
      checker.report(
        field.offset,
        `${path}: expected ${REGISTRY_EXPECTED} for format "debezium-avro", found no "schema_registry" key`,
      );
    } else if (format === "debezium-avro" && registryField && isNull(registryField.node)) {
      checker.fail(registryField, `${REGISTRY_EXPECTED} for format "debezium-avro"`);
    }
  },
};

// ---------------------------------------------------------------------------------------
// The list

const SINKS_OF_TYPE: { [K in SinkType]: { spec: SectionSpec<object>; doc: string } } = {
  stdout: { spec: STDOUT, doc: "Writes each change to stdout." },
  file: { spec: FILE, doc: "Appends each change to a file as a JSON line." },
  kafka: { spec: KAFKA, doc: "Writes each change to a Kafka topic." },
};

/** The `sinks` list: each item a map with one key, the sink's type. */
export const SINKS: Reader<SinkConfig[]> = {
  expected: SINKS_EXPECTED,
  jsonSchema: {
    type: "array",
    minItems: 1,
    items: {
      oneOf: SINK_TYPES.map((type) => ({
        type: "object",
        properties: {
          [type]: {
            description: SINKS_OF_TYPE[type].doc,
            ...sectionSchema(SINKS_OF_TYPE[type].spec),
          },
        },
        required: [type],
        additionalProperties: false,
      })),
    },
  },
  read: (checker, field) => {
    const files = new Map<string, string>();
    const sink: Reader<SinkConfig> = {
      expected: SINKS_EXPECTED,
      jsonSchema: {},
      read: (checker, field) => readSink(checker, field, files),
    };
    return list(sink, SINKS_EXPECTED).read(checker, field);
  },
};

/**
 * `transforms.dead_letter`: one sink written like a `sinks` entry. Only a file for now (a
 * Kafka dead-letter topic comes with the Kafka sink).
 */
const KAFKA_DEAD_LETTER: SectionSpec<Omit<KafkaDeadLetterConfig, "type">> = {
  ...KAFKA,
  fields: {
    ...KAFKA.fields,
    topic: {
      key: "topic",
      reader: nullable(string("a topic name")),
      default: null,
      doc: "The dead-letter topic; null for <topic_prefix>.dead-letter.",
    },
  },
};

const DEAD_LETTER_EXPECTED =
  "a sink like file: { path: dead-letter.jsonl } or kafka: { brokers: [...], topic: ... }";

export const DEAD_LETTER_SINK: Reader<FileSinkConfig | KafkaDeadLetterConfig> = {
  expected: DEAD_LETTER_EXPECTED,
  jsonSchema: {
    type: "object",
    properties: {
      file: { description: SINKS_OF_TYPE.file.doc, ...sectionSchema(FILE) },
      kafka: {
        description: "Writes each dead letter to a Kafka topic (at-least-once).",
        ...sectionSchema(KAFKA_DEAD_LETTER),
      },
    },
    minProperties: 1,
    additionalProperties: false,
  },
  read: (checker, field) => {
    if (isScalar(field.node)) return checker.fail(field, DEAD_LETTER_EXPECTED);
    const node = field.node;
    const only = isMap(node) && (node as YAMLMap).items.length === 1
      ? (node as YAMLMap).items[0]!
      : undefined;
    if (only !== undefined && isScalar(only.key) && only.key.value === "kafka") {
      const path = childPath(field.path, "kafka");
      const value = only.value === null ? null : checker.deref(only.value, path);
      if (value === undefined) return undefined;
      const kafka = readSection(checker, {
        node: value,
        path,
        offset: startOf(value) ?? field.offset,
      }, KAFKA_DEAD_LETTER);
      return kafka === undefined ? undefined : { type: "kafka", ...kafka };
    }
    const sink = readSink(checker, field, new Map());
    if (sink === undefined) return undefined;
    if (sink.type === "file") return sink;
    return checker.fail(field, "a file or kafka sink", `a ${sink.type} sink`);
  },
};

function readSink(
  checker: Checker,
  field: Field,
  files: Map<string, string>,
): SinkConfig | undefined {
  const node = field.node;
  const types = SINK_TYPES.join(", ");
  if (!isMap(node)) {
    const named = isScalar(node) && (SINK_TYPES as readonly unknown[]).includes(node.value);
    const hint = named ? `; write "${node.value}: {}"` : "";
    return checker.fail(
      field,
      `a map with one key naming the sink type (${types})`,
      describe(node) + hint,
    );
  }
  const pairs = (node as YAMLMap).items;
  if (pairs.length !== 1) {
    const names = pairs.map((pair) =>
      isScalar(pair.key) ? quote(String(pair.key.value)) : describe(pair.key)
    );
    const found = pairs.length === 0
      ? "an empty map"
      : `${pairs.length} keys: ${names.join(", ")}; start each sink with its own "-"`;
    return checker.fail(field, `one sink type per list item (${types})`, found);
  }
  const pair = pairs[0]!;
  const type = keyName(checker, pair.key, field);
  if (type === undefined) return undefined;
  const keyOffset = startOf(pair.key) ?? field.offset;
  if (!(SINK_TYPES as readonly string[]).includes(type)) {
    const hint = suggestion(type, SINK_TYPES);
    checker.report(
      keyOffset,
      `unknown sink type ${quote(type)} in ${quotePath(field.path)}${hint}`,
    );
    return undefined;
  }
  const path = childPath(field.path, type);
  const value = pair.value === null ? null : checker.deref(pair.value, path);
  if (value === undefined) return undefined;
  const valueField: Field = { node: value, path, offset: startOf(value) ?? keyOffset };
  const sinkType = type as SinkType;
  switch (sinkType) {
    case "stdout": {
      const sink = readSection(checker, valueField, STDOUT);
      return sink === undefined ? undefined : { type: "stdout", ...sink };
    }
    case "file": {
      const sink = readSection(checker, valueField, {
        ...FILE,
        check: (checker, section, { path }) => checkFileOnce(checker, section, path, files),
      });
      return sink === undefined ? undefined : { type: "file", ...sink };
    }
    case "kafka": {
      const sink = readSection(checker, valueField, KAFKA);
      return sink === undefined ? undefined : { type: "kafka", ...sink };
    }
    default: {
      const unreachable: never = sinkType;
      throw new Error(`Cannot read sink type "${unreachable}"`);
    }
  }
}
