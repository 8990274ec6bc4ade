/**
 * Password authentication: MD5 and SCRAM-SHA-256 (RFC 5802 / RFC 7677), with
 * optional `tls-server-end-point` channel binding (SCRAM-SHA-256-PLUS); SCRAM-SHA-512 too, as
 * Kafka's brokers offer it (the Kafka sink's SASL exchange uses this client).
 * No I/O: the connection feeds in server messages and sends what comes out.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ConfigError } from "../errors.ts";

const encoder = new TextEncoder();
/** PostgreSQL uses 4096; a server asking for far more would stall us in PBKDF2. */
const MAX_ITERATIONS = 1_000_000;

/**
 * The MD5 password response: `"md5" + md5hex(md5hex(password + user) + salt)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { md5PasswordResponse } from "./auth.ts";
 * const reply = md5PasswordResponse("alice", "secret", new Uint8Array([1, 2, 3, 4]));
 * assert(reply.startsWith("md5") && reply.length === 35);
 * ```
 */
export function md5PasswordResponse(user: string, password: string, salt: Uint8Array): string {
  const inner = createHash("md5").update(password + user, "utf8").digest("hex");
  const outer = createHash("md5").update(inner, "utf8").update(salt).digest("hex");
  return `md5${outer}`;
}

/** Options of {@linkcode ScramClient}. */
export interface ScramOptions {
  password: string;
  /** DER of the server's TLS certificate, when channel binding is to be used. */
  serverCertificate?: Uint8Array;
  /** True when the connection is encrypted, even if channel binding is not used. */
  tls: boolean;
  /** Nonce source; tests pass a fixed one. */
  nonce?: () => string;
  /** The hash: SHA-256 (PostgreSQL's) by default. */
  hash?: "SHA-256" | "SHA-512";
  /**
   * The user name sent in client-first-message. PostgreSQL takes it from the startup message
   * and leaves it empty here; Kafka reads it from here.
   */
  username?: string;
}

/**
 * One SCRAM exchange (SHA-256 unless {@linkcode ScramOptions.hash} says SHA-512).
 *
 * 1. `first(mechanisms)` picks the mechanism and returns client-first-message.
 * 2. `final(serverFirst)` returns client-final-message.
 * 3. `verify(serverFinal)` checks the server's signature.
 */
export class ScramClient {
  readonly #password: string;
  readonly #certificate?: Uint8Array;
  readonly #tls: boolean;
  readonly #nonce: string;
  readonly #hash: "SHA-256" | "SHA-512";
  readonly #username: string;
  #mechanism: string;
  #gs2Header = "n,,";
  #clientFirstBare = "";
  #expectedServerSignature = "";
  #verified = false;

  constructor(options: ScramOptions) {
    this.#password = options.password;
    this.#certificate = options.serverCertificate;
    this.#tls = options.tls;
    this.#nonce = (options.nonce ?? randomNonce)();
    this.#hash = options.hash ?? "SHA-256";
    this.#username = options.username ?? "";
    this.#mechanism = `SCRAM-${this.#hash}`;
  }

  /** The chosen mechanism, after `first`. */
  get mechanism(): string {
    return this.#mechanism;
  }

  /** Chooses a mechanism and returns client-first-message. */
  first(mechanisms: string[]): Uint8Array {
    const base = `SCRAM-${this.#hash}`;
    const plusOffered = mechanisms.includes(`${base}-PLUS`);
    if (
      plusOffered && this.#certificate !== undefined &&
      certificateSignatureHash(this.#certificate) !== null
    ) {
      this.#mechanism = `${base}-PLUS`;
      this.#gs2Header = "p=tls-server-end-point,,";
    } else if (mechanisms.includes(base)) {
      this.#mechanism = base;
      // "y": the client could bind but the server offers no PLUS (a server that does offer it
      // refuses "y" as a downgrade). When it offers PLUS but this certificate cannot be bound
      // (no certificate, or no usable hash), the client does not support binding: "n".
      this.#gs2Header = this.#tls && !plusOffered ? "y,," : "n,,";
    } else {
      throw new ConfigError(
        `Cannot authenticate: the server offers SASL mechanisms ${
          mechanisms.map((m) => `"${m}"`).join(", ")
        } and Spillway supports "${base}"`,
      );
    }
    // PostgreSQL takes the user name from the startup message, so it is left empty there.
    this.#clientFirstBare = `n=${saslName(this.#username)},r=${this.#nonce}`;
    return encoder.encode(this.#gs2Header + this.#clientFirstBare);
  }

  /** Takes server-first-message, returns client-final-message. */
  async final(serverFirst: string): Promise<Uint8Array> {
    const attributes = parseAttributes(serverFirst);
    const nonce = attributes.get("r");
    const salt = attributes.get("s");
    const iterations = Number(attributes.get("i"));
    if (
      nonce === undefined || salt === undefined || !Number.isInteger(iterations) ||
      iterations < 1 || iterations > MAX_ITERATIONS
    ) {
      throw new ConfigError(
        `Cannot authenticate: malformed SCRAM server-first-message "${serverFirst}"`,
      );
    }
    let saltBytes: Uint8Array;
    try {
      saltBytes = Uint8Array.fromBase64(salt);
    } catch {
      throw new ConfigError(`Cannot authenticate: the SCRAM salt "${salt}" is not base64`);
    }
    if (!nonce.startsWith(this.#nonce) || nonce.length === this.#nonce.length) {
      throw new ConfigError("Cannot authenticate: the server's SCRAM nonce does not extend ours");
    }
    let binding: Uint8Array = encoder.encode(this.#gs2Header);
    if (this.#mechanism.endsWith("-PLUS") && this.#certificate !== undefined) {
      const hash = await certificateHash(this.#certificate);
      if (hash !== null) binding = concat(binding, hash);
    }
    const clientFinalWithoutProof = `c=${binding.toBase64()},r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${clientFinalWithoutProof}`;

    const hash = this.#hash;
    const saltedPassword = await pbkdf2(saslPrep(this.#password), saltBytes, iterations, hash);
    const clientKey = await hmac(saltedPassword, "Client Key", hash);
    const storedKey = new Uint8Array(
      await crypto.subtle.digest(hash, clientKey as BufferSource),
    );
    const clientSignature = await hmac(storedKey, authMessage, hash);
    const proof = clientKey.map((byte, i) => byte ^ clientSignature[i]!);
    const serverKey = await hmac(saltedPassword, "Server Key", hash);
    const serverSignature = await hmac(serverKey, authMessage, hash);
    this.#expectedServerSignature = serverSignature.toBase64();
    return encoder.encode(`${clientFinalWithoutProof},p=${proof.toBase64()}`);
  }

  /** Checks server-final-message; throws when the server did not prove it knows the password. */
  verify(serverFinal: string): void {
    if (this.#expectedServerSignature === "") {
      throw new ConfigError(
        "Cannot authenticate: SCRAM server-final-message arrived before server-first",
      );
    }
    const attributes = parseAttributes(serverFinal);
    const error = attributes.get("e");
    if (error !== undefined) {
      throw new ConfigError(`Cannot authenticate: the server rejected SCRAM with "${error}"`);
    }
    if (attributes.get("v") !== this.#expectedServerSignature) {
      throw new ConfigError(
        "Cannot authenticate: the server's SCRAM signature does not match; the server may not be who it claims",
      );
    }
    this.#verified = true;
  }

  /** True once the server proved, with its signature, that it knows the password. */
  get verified(): boolean {
    return this.#verified;
  }
}

function parseAttributes(message: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const part of message.split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) attributes.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return attributes;
}

/** SASLprep's main effect is NFKC normalisation; like libpq we fall back to the raw string. */
function saslPrep(password: string): string {
  return password.normalize("NFKC");
}

/** A user name as SCRAM writes it: `=` and `,` escaped (RFC 5802, saslname). */
function saslName(name: string): string {
  return name.replaceAll("=", "=3D").replaceAll(",", "=2C");
}

async function pbkdf2(
  password: string,
  salt: Uint8Array,
  iterations: number,
  hash: "SHA-256" | "SHA-512",
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(password), "PBKDF2", false, [
    "deriveBits",
  ]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash, salt: salt as BufferSource, iterations },
    key,
    hash === "SHA-256" ? 256 : 512,
  );
  return new Uint8Array(bits);
}

async function hmac(
  key: Uint8Array,
  message: string,
  hash: "SHA-256" | "SHA-512",
): Promise<Uint8Array> {
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    key as BufferSource,
    { name: "HMAC", hash },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, encoder.encode(message)));
}

/**
 * `tls-server-end-point` (RFC 5929): the certificate hashed with its signature's
 * hash function, SHA-256 where that is MD5 or SHA-1. `null` when the signature
 * has no usable hash (Ed25519, Ed448): then channel binding cannot be used.
 */
async function certificateHash(der: Uint8Array): Promise<Uint8Array | null> {
  const hash = certificateSignatureHash(der);
  if (hash === null) return null;
  return new Uint8Array(await crypto.subtle.digest(hash, der as BufferSource));
}

type BindingHash = "SHA-256" | "SHA-384" | "SHA-512";

/** Signature algorithm OIDs → the hash channel binding uses. */
const SIGNATURE_HASHES: Record<string, BindingHash | null> = {
  "1.2.840.113549.1.1.4": "SHA-256", // md5WithRSAEncryption: SHA-256 per RFC 5929
  "1.2.840.113549.1.1.5": "SHA-256", // sha1WithRSAEncryption: SHA-256 per RFC 5929
  "1.2.840.113549.1.1.11": "SHA-256", // sha256WithRSAEncryption
  "1.2.840.113549.1.1.12": "SHA-384", // sha384WithRSAEncryption
  "1.2.840.113549.1.1.13": "SHA-512", // sha512WithRSAEncryption
  "1.2.840.113549.1.1.10": null, // RSASSA-PSS: the server finds no digest for it either
  "1.2.840.113549.1.1.14": null, // sha224WithRSAEncryption: SHA-224, which WebCrypto lacks
  "1.2.840.10045.4.1": "SHA-256", // ecdsa-with-SHA1
  "1.2.840.10045.4.3.1": null, // ecdsa-with-SHA224: SHA-224, which WebCrypto lacks
  "1.2.840.10045.4.3.2": "SHA-256", // ecdsa-with-SHA256
  "1.2.840.10045.4.3.3": "SHA-384", // ecdsa-with-SHA384
  "1.2.840.10045.4.3.4": "SHA-512", // ecdsa-with-SHA512
  "1.3.101.112": null, // Ed25519
  "1.3.101.113": null, // Ed448
};

/**
 * Reads `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }`
 * far enough to name the hash of the signature algorithm (`null`: channel binding cannot be
 * used). Algorithms not in the table fall back to SHA-256.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { certificateSignatureHash } from "./auth.ts";
 * assert.equal(certificateSignatureHash(new Uint8Array([1, 2, 3])), "SHA-256");
 * ```
 */
export function certificateSignatureHash(der: Uint8Array): BindingHash | null {
  try {
    const certificate = derElement(der, 0);
    const tbs = derElement(der, certificate.contentStart);
    const algorithm = derElement(der, tbs.end);
    const oid = derElement(der, algorithm.contentStart);
    if (oid.tag !== 0x06) return "SHA-256";
    const hash = SIGNATURE_HASHES[decodeOid(der.subarray(oid.contentStart, oid.end))];
    return hash === undefined ? "SHA-256" : hash;
  } catch {
    return "SHA-256";
  }
}

/** One DER element: tag, where its content starts, where it ends. */
function derElement(
  der: Uint8Array,
  offset: number,
): { tag: number; contentStart: number; end: number } {
  const tag = der[offset];
  const first = der[offset + 1];
  if (tag === undefined || first === undefined) throw new RangeError("truncated DER");
  let start = offset + 2;
  let length = first;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4) throw new RangeError("unsupported DER length");
    length = 0;
    for (let i = 0; i < count; i++) {
      const byte = der[start + i];
      if (byte === undefined) throw new RangeError("truncated DER");
      length = length * 256 + byte;
    }
    start += count;
  }
  if (start + length > der.byteLength) throw new RangeError("truncated DER");
  return { tag, contentStart: start, end: start + length };
}

/** Dotted form of a DER object identifier. */
function decodeOid(bytes: Uint8Array): string {
  const parts: number[] = [];
  let value = 0;
  for (const byte of bytes) {
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) !== 0) continue;
    if (parts.length === 0) {
      const first = value < 80 ? Math.floor(value / 40) : 2;
      parts.push(first, value - first * 40);
    } else {
      parts.push(value);
    }
    value = 0;
  }
  return parts.join(".");
}

function randomNonce(): string {
  return crypto.getRandomValues(new Uint8Array(18)).toBase64();
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}
