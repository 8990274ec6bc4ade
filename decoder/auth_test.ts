import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { md5PasswordResponse, ScramClient } from "./auth.ts";
import { ConfigError } from "../errors.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------
// MD5

/** `"md5" + md5hex(md5hex(password + user) + salt)`, computed here from the protocol docs. */
function expectedMd5(user: string, password: string, salt: Uint8Array): string {
  const inner = createHash("md5").update(encoder.encode(password + user)).digest("hex");
  const outer = createHash("md5").update(Buffer.concat([encoder.encode(inner), salt])).digest(
    "hex",
  );
  return `md5${outer}`;
}

Deno.test("md5PasswordResponse: matches an independent computation", () => {
  const salt = new Uint8Array([1, 2, 3, 4]);
  assert.equal(
    md5PasswordResponse("postgres", "secret", salt),
    expectedMd5("postgres", "secret", salt),
  );
  // Also computed with Python's hashlib, so both sides of this test are pinned.
  assert.equal(
    md5PasswordResponse("postgres", "secret", salt),
    "md5bb41a296aab6baccb36ff243a562abff",
  );
});

Deno.test("md5PasswordResponse: non-ASCII names and high salt bytes", () => {
  const salt = new Uint8Array([0xff, 0x00, 0x80, 0x07]);
  assert.equal(md5PasswordResponse("ü", "päss", salt), expectedMd5("ü", "päss", salt));
  assert.equal(md5PasswordResponse("ü", "päss", salt), "md5e47f61969478a28acb956f631db0a96e");
});

// ---------------------------------------------------------------------------
// SCRAM-SHA-256: an independent RFC 5802 computation with WebCrypto

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function unbase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
}

async function hmacSha256(key: Uint8Array, data: string): Promise<Uint8Array> {
  const imported = await crypto.subtle.importKey(
    "raw",
    key as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", imported, encoder.encode(data)));
}

/**
 * RFC 5802 §3: SaltedPassword = Hi(password, salt, i); ClientKey = HMAC(SaltedPassword,
 * "Client Key"); StoredKey = H(ClientKey); ClientProof = ClientKey XOR HMAC(StoredKey,
 * AuthMessage); ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage).
 */
async function referenceScram(
  input: {
    password: string;
    clientFirstBare: string;
    serverFirst: string;
    channelBinding: Uint8Array;
  },
): Promise<{ clientFinal: string; serverSignature: string }> {
  const attributes = new Map(
    input.serverFirst.split(",").map((part) => [part.slice(0, 1), part.slice(2)]),
  );
  const passwordKey = await crypto.subtle.importKey(
    "raw",
    encoder.encode(input.password),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const salted = new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "PBKDF2",
        hash: "SHA-256",
        salt: unbase64(attributes.get("s")!) as BufferSource,
        iterations: Number(attributes.get("i")),
      },
      passwordKey,
      256,
    ),
  );
  const withoutProof = `c=${base64(input.channelBinding)},r=${attributes.get("r")}`;
  const authMessage = `${input.clientFirstBare},${input.serverFirst},${withoutProof}`;
  const clientKey = await hmacSha256(salted, "Client Key");
  const storedKey = new Uint8Array(
    await crypto.subtle.digest("SHA-256", clientKey as BufferSource),
  );
  const clientSignature = await hmacSha256(storedKey, authMessage);
  const proof = clientKey.map((byte, i) => byte ^ clientSignature[i]!);
  const serverKey = await hmacSha256(salted, "Server Key");
  return {
    clientFinal: `${withoutProof},p=${base64(proof)}`,
    serverSignature: base64(await hmacSha256(serverKey, authMessage)),
  };
}

// RFC 7677 §3.
const RFC_CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_FIRST =
  "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL =
  "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

Deno.test("SCRAM reference computation reproduces the RFC 7677 test vector", async () => {
  const result = await referenceScram({
    password: "pencil",
    clientFirstBare: `n=user,r=${RFC_CLIENT_NONCE}`,
    serverFirst: RFC_SERVER_FIRST,
    channelBinding: encoder.encode("n,,"),
  });
  assert.equal(result.clientFinal, RFC_CLIENT_FINAL);
  assert.equal(`v=${result.serverSignature}`, RFC_SERVER_FINAL);
});

function client(options: { tls?: boolean; certificate?: Uint8Array; password?: string } = {}) {
  return new ScramClient({
    password: options.password ?? "pencil",
    tls: options.tls ?? false,
    serverCertificate: options.certificate,
    nonce: () => RFC_CLIENT_NONCE,
  });
}

// The RFC vector cannot be replayed byte for byte: ScramClient sends `n=,r=…`
// (PostgreSQL takes the user from the startup message), which changes the
// AuthMessage and so the proof. The RFC's client-first-bare is `n=user,r=…`.
Deno.test("ScramClient: RFC 7677 exchange with the empty user name PostgreSQL uses", async () => {
  const scram = client();
  const first = decoder.decode(scram.first(["SCRAM-SHA-256"]));
  assert.equal(first, `n,,n=,r=${RFC_CLIENT_NONCE}`);
  assert.equal(scram.mechanism, "SCRAM-SHA-256");

  const expected = await referenceScram({
    password: "pencil",
    clientFirstBare: `n=,r=${RFC_CLIENT_NONCE}`,
    serverFirst: RFC_SERVER_FIRST,
    channelBinding: encoder.encode("n,,"),
  });
  const final = decoder.decode(await scram.final(RFC_SERVER_FIRST));
  assert.equal(final, expected.clientFinal);
  assert.ok(final.startsWith("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p="));
  assert.notEqual(final, RFC_CLIENT_FINAL); // the user name is part of what is signed
  scram.verify(`v=${expected.serverSignature}`);
});

Deno.test("ScramClient: with the user name in client-first (as Kafka reads it), the RFC 7677 vector exactly", async () => {
  const scram = new ScramClient({
    password: "pencil",
    username: "user",
    tls: false,
    nonce: () => RFC_CLIENT_NONCE,
  });
  assert.equal(decoder.decode(scram.first(["SCRAM-SHA-256"])), `n,,n=user,r=${RFC_CLIENT_NONCE}`);
  assert.equal(decoder.decode(await scram.final(RFC_SERVER_FIRST)), RFC_CLIENT_FINAL);
  scram.verify(RFC_SERVER_FINAL);
  assert.ok(scram.verified);
});

Deno.test("ScramClient: '=' and ',' in a user name are escaped; SHA-512 is its own mechanism", () => {
  const scram = new ScramClient({ password: "p", username: "a=b,c", hash: "SHA-512", tls: false });
  assert.match(decoder.decode(scram.first(["SCRAM-SHA-512"])), /^n,,n=a=3Db=2Cc,r=/);
  assert.equal(scram.mechanism, "SCRAM-SHA-512");
  const other = new ScramClient({ password: "p", hash: "SHA-512", tls: false });
  assert.throws(() => other.first(["SCRAM-SHA-256"]), /supports "SCRAM-SHA-512"/);
});

Deno.test('ScramClient: the RFC\'s server signature (for user "user") is rejected', async () => {
  const scram = client();
  scram.first(["SCRAM-SHA-256"]);
  await scram.final(RFC_SERVER_FIRST);
  assert.throws(() => scram.verify(RFC_SERVER_FINAL), ConfigError);
});

Deno.test("ScramClient: wrong or missing server signature is an error", async () => {
  const scram = client();
  scram.first(["SCRAM-SHA-256"]);
  await scram.final(RFC_SERVER_FIRST);
  const pattern = /Cannot authenticate: the server's SCRAM signature does not match/;
  assert.throws(() => scram.verify(`v=${base64(new Uint8Array(32))}`), pattern);
  assert.throws(() => scram.verify(""), pattern);
  assert.throws(() => scram.verify("v="), pattern);
});

Deno.test("ScramClient: server error e= is an error naming it", async () => {
  const scram = client();
  scram.first(["SCRAM-SHA-256"]);
  await scram.final(RFC_SERVER_FIRST);
  assert.throws(
    () => scram.verify("e=invalid-proof"),
    (error: unknown) =>
      error instanceof ConfigError && /rejected SCRAM with "invalid-proof"/.test(error.message),
  );
});

Deno.test("ScramClient: server nonce that does not extend ours is an error", async () => {
  for (
    const nonce of [
      "XOprNGfwEbeRWgbNEkqO%hvYD", // different prefix
      RFC_CLIENT_NONCE, // not extended
      "rOprNGfwEbeRWgbNEkq", // shorter
    ]
  ) {
    const scram = client();
    scram.first(["SCRAM-SHA-256"]);
    await assert.rejects(
      () => scram.final(`r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`),
      /nonce does not extend ours/,
    );
  }
});

Deno.test("ScramClient: malformed server-first-message is an error", async () => {
  for (
    const serverFirst of [
      "",
      `s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`,
      `r=${RFC_CLIENT_NONCE}xyz,i=4096`,
      `r=${RFC_CLIENT_NONCE}xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==`,
      `r=${RFC_CLIENT_NONCE}xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=12.5`,
    ]
  ) {
    const scram = client();
    scram.first(["SCRAM-SHA-256"]);
    await assert.rejects(() => scram.final(serverFirst), /malformed SCRAM server-first-message/);
  }
});

Deno.test("ScramClient: mechanism choice without TLS", () => {
  const scram = client();
  assert.equal(
    decoder.decode(scram.first(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])),
    `n,,n=,r=${RFC_CLIENT_NONCE}`,
  );
  assert.equal(scram.mechanism, "SCRAM-SHA-256");
});

Deno.test("ScramClient: TLS, PLUS not offered: SCRAM-SHA-256 with gs2 header y,,", async () => {
  const scram = client({ tls: true });
  const first = decoder.decode(scram.first(["SCRAM-SHA-256"]));
  assert.equal(scram.mechanism, "SCRAM-SHA-256");
  assert.equal(first, `y,,n=,r=${RFC_CLIENT_NONCE}`);
  const expected = await referenceScram({
    password: "pencil",
    clientFirstBare: `n=,r=${RFC_CLIENT_NONCE}`,
    serverFirst: RFC_SERVER_FIRST,
    channelBinding: encoder.encode("y,,"),
  });
  const final = decoder.decode(await scram.final(RFC_SERVER_FIRST));
  assert.ok(final.startsWith("c=eSws,")); // base64("y,,")
  assert.equal(final, expected.clientFinal);
  scram.verify(`v=${expected.serverSignature}`);
});

Deno.test("ScramClient: PLUS is chosen only with a certificate and when offered", async () => {
  const certificate = encoder.encode("not really DER, but hashed all the same");
  const plus = client({ tls: true, certificate });
  const first = decoder.decode(plus.first(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]));
  assert.equal(plus.mechanism, "SCRAM-SHA-256-PLUS");
  assert.equal(first, `p=tls-server-end-point,,n=,r=${RFC_CLIENT_NONCE}`);

  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", certificate));
  const binding = new Uint8Array([...encoder.encode("p=tls-server-end-point,,"), ...hash]);
  const expected = await referenceScram({
    password: "pencil",
    clientFirstBare: `n=,r=${RFC_CLIENT_NONCE}`,
    serverFirst: RFC_SERVER_FIRST,
    channelBinding: binding,
  });
  assert.equal(decoder.decode(await plus.final(RFC_SERVER_FIRST)), expected.clientFinal);
  plus.verify(`v=${expected.serverSignature}`);

  // A certificate, but the server does not offer PLUS: plain SCRAM with "y,,".
  const notOffered = client({ tls: true, certificate });
  assert.equal(
    decoder.decode(notOffered.first(["SCRAM-SHA-256"])),
    `y,,n=,r=${RFC_CLIENT_NONCE}`,
  );
  assert.equal(notOffered.mechanism, "SCRAM-SHA-256");
});

Deno.test("ScramClient: TLS, PLUS offered but no certificate to bind: n,, (a server offering PLUS refuses y,,)", () => {
  const scram = client({ tls: true });
  const first = decoder.decode(scram.first(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]));
  assert.equal(scram.mechanism, "SCRAM-SHA-256");
  assert.equal(first, `n,,n=,r=${RFC_CLIENT_NONCE}`);
});

Deno.test("ScramClient: no supported mechanism is a ConfigError listing the offered ones", () => {
  assert.throws(
    () => client().first(["SCRAM-SHA-1", "OAUTHBEARER"]),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message.includes(`"SCRAM-SHA-1", "OAUTHBEARER"`) && !error.retriable,
  );
  assert.throws(() => client({ tls: true }).first(["SCRAM-SHA-256-PLUS"]), ConfigError);
});

Deno.test("ScramClient: password is normalised (NFKC) before hashing", async () => {
  // U+2168 ROMAN NUMERAL NINE normalises to "IX" under NFKC.
  const scram = client({ password: "\u2168" });
  scram.first(["SCRAM-SHA-256"]);
  const expected = await referenceScram({
    password: "IX",
    clientFirstBare: `n=,r=${RFC_CLIENT_NONCE}`,
    serverFirst: RFC_SERVER_FIRST,
    channelBinding: encoder.encode("n,,"),
  });
  assert.equal(decoder.decode(await scram.final(RFC_SERVER_FIRST)), expected.clientFinal);
});

Deno.test("ScramClient: default nonce is random and printable", () => {
  const a = decoder.decode(new ScramClient({ password: "x", tls: false }).first(["SCRAM-SHA-256"]));
  const b = decoder.decode(new ScramClient({ password: "x", tls: false }).first(["SCRAM-SHA-256"]));
  assert.notEqual(a, b);
  assert.match(a, /^n,,n=,r=[\x21-\x2b\x2d-\x7e]{18,}$/);
});
