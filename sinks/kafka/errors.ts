/**
 * The Kafka sink's errors: {@linkcode KafkaSinkError} says whether another attempt can help,
 * and {@linkcode classifyError} judges any failure met on the way to the broker (a broker's
 * error code, a socket, TLS, SASL) and says what to fix.
 *
 * @module
 */

/** A failure of the sink's Kafka client, with whether another attempt can succeed. */
export class KafkaSinkError extends Error {
  override name = "KafkaSinkError";
  readonly retriable: boolean;
  /** The producer was fenced by another with the same transactional id. */
  readonly fenced: boolean;

  constructor(message: string, options: { retriable: boolean; fenced?: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.retriable = options.retriable;
    this.fenced = options.fenced ?? false;
  }
}

/** The broker's error types that no retry mends. */
const FATAL_TYPES = new Set([
  "TOPIC_AUTHORIZATION_FAILED",
  "CLUSTER_AUTHORIZATION_FAILED",
  "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
  "GROUP_AUTHORIZATION_FAILED",
  "SASL_AUTHENTICATION_FAILED",
  "UNSUPPORTED_SASL_MECHANISM",
  "MESSAGE_TOO_LARGE",
  "RECORD_LIST_TOO_LARGE",
  "INVALID_TOPIC_EXCEPTION",
  "INVALID_REQUIRED_ACKS",
  "INVALID_RECORD",
  "UNSUPPORTED_VERSION",
  "UNSUPPORTED_FOR_MESSAGE_FORMAT",
  "INVALID_TRANSACTION_TIMEOUT",
  "UNSUPPORTED_COMPRESSION_TYPE",
  // Creating topics with settings the cluster refuses. (Not INVALID_REPLICATION_FACTOR: a KRaft
  // cluster answers it too while its brokers are fenced, restarting, and then takes the topic.)
  "INVALID_PARTITIONS",
  "INVALID_CONFIG",
  "POLICY_VIOLATION",
  "INVALID_REQUEST",
]);
/** Node's TLS verification failures: a retry meets the same certificate. */
export const CERTIFICATE_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

const FENCED_TYPES = new Set([
  "PRODUCER_FENCED",
  "INVALID_PRODUCER_EPOCH",
  "TRANSACTIONAL_ID_NOT_FOUND",
]);

/** What is read of an error and the errors inside it. */
interface ErrorLike {
  name?: string;
  /** A socket's or TLS's code (e.g. `ECONNREFUSED`), or a connection's (`connection.ts`). */
  code?: unknown;
  /** The broker's error name, e.g. `MESSAGE_TOO_LARGE` ({@linkcode KafkaProtocolError}). */
  type?: string;
  message?: string;
  cause?: unknown;
  errors?: unknown[];
}

/** An error, its cause and the errors it gathers, and theirs, each once. */
function* errorTree(error: unknown, seen = new Set<unknown>()): Generator<ErrorLike> {
  if (error === null || typeof error !== "object" || seen.has(error)) return;
  seen.add(error);
  yield error as ErrorLike;
  for (const inner of nested(error as ErrorLike)) yield* errorTree(inner, seen);
}

/** The errors an error holds: those it gathers, then its cause. */
function nested(error: ErrorLike): unknown[] {
  return [...(error.errors ?? []), ...(error.cause ? [error.cause] : [])];
}

/**
 * The broker's error names (e.g. `MESSAGE_TOO_LARGE`), the codes and the class names in an
 * error, its cause and the errors it gathers.
 */
export function errorTypes(error: unknown): string[] {
  const types: string[] = [];
  for (const like of errorTree(error)) {
    for (const field of [like.type, like.code, like.name]) {
      if (typeof field === "string") types.push(field);
    }
  }
  return types;
}

/** The innermost messages of an error, joined: an error may gather several answers. */
export function describeError(error: unknown): string {
  const messages: string[] = [];
  for (const like of errorTree(error)) {
    if (nested(like).length === 0 && like.message) messages.push(like.message);
  }
  if (messages.length === 0) return error instanceof Error ? error.message : String(error);
  return [...new Set(messages)].join("; ");
}

/**
 * Wraps a client error: fatal ones (authorization, authentication, a record the broker will
 * never take, a fenced producer) are not retriable; everything else (the broker down or
 * restarting, leadership moving, timeouts) is.
 */
export function classifyError(
  error: unknown,
  doing: string,
  brokers: readonly string[],
): KafkaSinkError {
  if (error instanceof KafkaSinkError) return error;
  const types = errorTypes(error);
  const message = describeError(error);
  const where = brokers.join(",");
  if (types.some((type) => FENCED_TYPES.has(type))) {
    return new KafkaSinkError(
      `Kafka fenced this producer while it was ${doing}: another Spillway runner with the same transactional id took over (${message}); stop one of them`,
      { retriable: false, fenced: true, cause: error },
    );
  }
  if (
    types.includes("SASL_AUTHENTICATION_FAILED") || types.includes("ILLEGAL_SASL_STATE") ||
    types.includes("UNSUPPORTED_SASL_MECHANISM")
  ) {
    return new KafkaSinkError(
      `Kafka at ${where} refused the SASL credentials while ${doing} (${message}); check sasl.username, sasl.password and sasl.mechanism, and that brokers names the broker's SASL listener`,
      { retriable: false, cause: error },
    );
  }
  const certificate = types.find((type) => CERTIFICATE_CODES.has(type));
  if (certificate !== undefined) {
    return new KafkaSinkError(
      `Kafka at ${where} presented a certificate Spillway does not trust while ${doing} (${certificate}: ${message}); set tls.ca to the CA that signed the broker's certificate, which must name the host in brokers`,
      { retriable: false, cause: error },
    );
  }
  if (types.includes("WRONG_LISTENER")) {
    // Not a Kafka listener, or one that speaks TLS where the sink does not.
    return new KafkaSinkError(
      `Kafka at ${where} cannot be used as configured while ${doing}: ${message}; check tls and sasl against the broker's listener`,
      { retriable: false, cause: error },
    );
  }
  const fatal = types.find((type) => FATAL_TYPES.has(type));
  if (fatal !== undefined) {
    const fix = fatal.endsWith("AUTHORIZATION_FAILED")
      ? "grant the Kafka user the ACLs it needs (Write and Create on the topics, and for exactly_once Write on the transactional id)"
      : fatal === "MESSAGE_TOO_LARGE" || fatal === "RECORD_LIST_TOO_LARGE"
      ? "raise the topic's max.message.bytes (and the broker's message.max.bytes), or lower batch_bytes"
      : ["INVALID_PARTITIONS", "POLICY_VIOLATION"].includes(fatal)
      ? "set partitions and replication_factor to what the cluster allows (-1: its defaults), or create the topics yourself and set create_topics: false"
      : "check the sink's settings against the broker";
    return new KafkaSinkError(`Kafka at ${where} refused ${doing}: ${fatal} (${message}); ${fix}`, {
      retriable: false,
      cause: error,
    });
  }
  // Passing, but the one a missing topic gives for as long as it is missing.
  const hint = types.includes("UNKNOWN_TOPIC_OR_PARTITION")
    ? "; Spillway retries, and if the topic does not exist, create it or set create_topics: true"
    : "";
  return new KafkaSinkError(`Kafka at ${where} failed while ${doing}: ${message}${hint}`, {
    retriable: true,
    cause: error,
  });
}
