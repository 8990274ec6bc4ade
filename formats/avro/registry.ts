/**
 * A small client of a schema registry's Confluent-compatible REST API (Confluent Schema
 * Registry, Apicurio's `/apis/ccompat/v7`, Karapace, Redpanda): register a schema under a
 * subject and get its id, test a schema against the subject's compatibility level, read that
 * level. Ids are cached per subject and schema text, so an event costs no request.
 *
 * Why our own: the calls needed are three, over `fetch`; the npm clients bring their own HTTP
 * stacks and Avro libraries, and none is maintained for Deno.
 *
 * Errors say what was asked (the subject), what the registry answered (its HTTP status, error
 * code and message) and whether a retry can help: a registry that is down, restarting or
 * answering 5xx is retriable; a schema it refuses (409: incompatible; 422: invalid) or
 * credentials it refuses (401/403) are not. The password never appears in a message.
 *
 * @module
 */

import type { AvroSchema } from "./schema.ts";

/** Where the registry is and how to reach it. */
export interface RegistryOptions {
  /** Base URL of the Confluent-compatible API, e.g. `http://registry:8081`. */
  url: string;
  username?: string;
  password?: string;
  /** PEM text of a CA to trust for an `https` URL. */
  caCert?: string;
  /** Per request; default 30 s. */
  timeoutMs?: number;
}

/** What the registry said about a schema against a subject's compatibility level. */
export interface CompatibilityResult {
  compatible: boolean;
  /** The registry's reasons when not compatible (when it gives them). */
  messages: string[];
}

/** A failure of a registry call. */
export class RegistryError extends Error {
  override name = "RegistryError";
  /** HTTP status; 0 when no answer came. */
  readonly status: number;
  /** The registry's `error_code`, when it gave one. */
  readonly code: number | null;
  readonly retriable: boolean;

  constructor(
    message: string,
    options: { status: number; code?: number | null; retriable: boolean; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.status = options.status;
    this.code = options.code ?? null;
    this.retriable = options.retriable;
  }
}

const CONTENT_TYPE = "application/vnd.schemaregistry.v1+json";

/**
 * A schema's JSON text as sent to the registry, with the string `"{}"` (a `jsonb DEFAULT '{}'`
 * column's default) written `"\u007b}"`: the same JSON, which Apicurio Registry 3.3's
 * Confluent-compatible API takes, where it refuses `"{}"` (42201, its content type detection
 * reads it as an empty object).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { schemaText } from "./registry.ts";
 * const text = schemaText({ type: "string", default: "{}" });
 * assert.equal(text, String.raw`{"type":"string","default":"\u007b}"}`);
 * assert.deepEqual(JSON.parse(text), { type: "string", default: "{}" });
 * ```
 */
export function schemaText(schema: AvroSchema): string {
  return JSON.stringify(schema).replaceAll('"{}"', '"\\u007b}"');
}

/** A schema registry client (see the module doc). */
export class SchemaRegistryClient {
  readonly url: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #client: Deno.HttpClient | undefined;
  /** Ids by subject, then by schema text. */
  readonly #ids = new Map<string, Map<string, number>>();

  constructor(options: RegistryOptions) {
    // Credentials in the URL (https://user:pass@host) go to basic authentication, and never
    // into a message: the URL kept is without them.
    const parsed = new URL(options.url);
    const username = options.username ??
      (parsed.username === "" ? undefined : decodeURIComponent(parsed.username));
    const password = options.password ??
      (parsed.password === "" ? undefined : decodeURIComponent(parsed.password));
    parsed.username = "";
    parsed.password = "";
    this.url = parsed.href.replace(/\/+$/, "");
    this.#headers = { "content-type": CONTENT_TYPE, accept: CONTENT_TYPE };
    if (username !== undefined) {
      const credentials = `${username}:${password ?? ""}`;
      this.#headers.authorization = `Basic ${new TextEncoder().encode(credentials).toBase64()}`;
    }
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#client = options.caCert === undefined
      ? undefined
      : Deno.createHttpClient({ caCerts: [options.caCert] });
  }

  /**
   * The id of `schema` under `subject`, registering it when the registry does not have it
   * (the registry checks it against the subject's compatibility level, and refuses it with
   * 409 when it breaks it).
   */
  async register(subject: string, schema: AvroSchema): Promise<number> {
    const text = schemaText(schema);
    const cached = this.#ids.get(subject)?.get(text);
    if (cached !== undefined) return cached;
    const answer = await this.#call(
      "POST",
      `/subjects/${encodeURIComponent(subject)}/versions`,
      { schema: text },
      `registering a schema under subject ${subject}`,
    ) as { id?: unknown };
    if (typeof answer.id !== "number") {
      throw new RegistryError(
        `Schema registry at ${this.url} answered a registration under subject ${subject} without an id`,
        { status: 200, retriable: false },
      );
    }
    let bySchema = this.#ids.get(subject);
    if (bySchema === undefined) this.#ids.set(subject, bySchema = new Map());
    bySchema.set(text, answer.id);
    return answer.id;
  }

  /**
   * Whether `schema` may follow the subject's latest version under its compatibility level;
   * `null` when the subject has no version yet and the registry says so (Confluent's 404;
   * Apicurio answers compatible instead): anything may be its first.
   */
  async compatibility(subject: string, schema: AvroSchema): Promise<CompatibilityResult | null> {
    try {
      const answer = await this.#call(
        "POST",
        `/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest?verbose=true`,
        { schema: schemaText(schema) },
        `testing a schema against subject ${subject}`,
      ) as { is_compatible?: unknown; messages?: unknown };
      return {
        compatible: answer.is_compatible === true,
        messages: Array.isArray(answer.messages) ? answer.messages.map(String) : [],
      };
    } catch (error) {
      if (notFound(error)) return null;
      throw error;
    }
  }

  /**
   * The id of `schema` when the subject has it already (the registry compares schemas as Avro
   * does, not as text); `null` when it has not.
   */
  async lookup(subject: string, schema: AvroSchema): Promise<number | null> {
    try {
      const answer = await this.#call(
        "POST",
        `/subjects/${encodeURIComponent(subject)}`,
        { schema: schemaText(schema) },
        `looking up a schema under subject ${subject}`,
      ) as { id?: unknown };
      return typeof answer.id === "number" ? answer.id : null;
    } catch (error) {
      // 40401: no such subject; 40403: the subject does not have this schema.
      if (
        error instanceof RegistryError && error.status === 404 &&
        (error.code === 40401 || error.code === 40403)
      ) {
        return null;
      }
      throw error;
    }
  }

  /** The subject's latest schema; `null` when it has none. */
  async latest(subject: string): Promise<AvroSchema | null> {
    try {
      const answer = await this.#call(
        "GET",
        `/subjects/${encodeURIComponent(subject)}/versions/latest`,
        undefined,
        `reading the latest schema of subject ${subject}`,
      ) as { schema?: unknown };
      return typeof answer.schema === "string" ? JSON.parse(answer.schema) as AvroSchema : null;
    } catch (error) {
      if (notFound(error)) return null;
      throw error;
    }
  }

  /** The subject's compatibility level (the registry's global one when it has none of its own). */
  async level(subject: string): Promise<string> {
    const answer = await this.#call(
      "GET",
      `/config/${encodeURIComponent(subject)}?defaultToGlobal=true`,
      undefined,
      `reading the compatibility level of subject ${subject}`,
    ) as { compatibilityLevel?: unknown; compatibility?: unknown };
    const level = answer.compatibilityLevel ?? answer.compatibility;
    return typeof level === "string" ? level : "BACKWARD";
  }

  /** Sets the subject's compatibility level (tests, and operators through tools). */
  async setLevel(subject: string, level: string): Promise<void> {
    await this.#call(
      "PUT",
      `/config/${encodeURIComponent(subject)}`,
      { compatibility: level },
      `setting the compatibility level of subject ${subject}`,
    );
  }

  close(): void {
    this.#client?.close();
  }

  async #call(method: string, path: string, body: unknown, doing: string): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers: this.#headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
        ...(this.#client === undefined ? {} : { client: this.#client }),
      });
    } catch (error) {
      throw new RegistryError(
        `Schema registry at ${this.url} did not answer while ${doing}: ${
          (error as Error).message
        }; check that it runs and that the sink's schema_registry.url names it`,
        { status: 0, retriable: true, cause: error },
      );
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw new RegistryError(
        `Schema registry at ${this.url} broke off its answer while ${doing}: ${
          (error as Error).message
        }`,
        { status: 0, retriable: true, cause: error },
      );
    }
    let parsed: unknown = null;
    try {
      parsed = text === "" ? null : JSON.parse(text);
    } catch {
      parsed = null;
    }
    if (response.ok) return parsed ?? {};
    const { error_code: code, message } = (parsed ?? {}) as {
      error_code?: number;
      message?: string;
    };
    const said = `HTTP ${response.status}${code === undefined ? "" : ` error ${code}`}: ${
      message ?? text.slice(0, 300)
    }`;
    const status = response.status;
    const fix = status === 401 || status === 403
      ? "; check schema_registry.username and password"
      : status === 409
      ? "; the schema breaks the subject's compatibility level"
      : status === 422
      ? "; the registry refuses the schema as invalid"
      : "";
    throw new RegistryError(`Schema registry at ${this.url} refused ${doing} (${said})${fix}`, {
      status,
      code: code ?? null,
      retriable: status >= 500 || status === 408 || status === 429,
    });
  }
}

/**
 * The registry has no such subject or version (error codes 40401 and 40402, in Confluent's API
 * and Apicurio's): a 404 without them is another thing (a wrong URL, say) and stays an error.
 */
function notFound(error: unknown): boolean {
  return error instanceof RegistryError && error.status === 404 &&
    (error.code === 40401 || error.code === 40402);
}
