/**
 * The pure protocol layer: bytes ⇄ typed messages, and the per-type value codecs. No sockets,
 * no `Deno.*`, no clocks; `postgres/` owns the socket and feeds bytes in.
 *
 * - framing of backend messages (`backend.ts`) and the client messages (`frontend.ts`), with
 *   the wire codes in one table (`codes.ts`);
 * - the CopyBoth sub-protocol of streaming replication (`replication.ts`);
 * - pgoutput, protocol versions 1–4 (`pgoutput.ts`), and the relation cache (`relations.ts`);
 * - LSNs and PostgreSQL timestamps (`lsn.ts`), MD5 and SCRAM authentication (`auth.ts`);
 * - per PostgreSQL type (`types/`): OIDs, value shapes, the codec registry, text and binary
 *   decoders, the JSON mapping, and the catalog reader (its connection is passed in).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatLsn, parseLsn } from "./mod.ts";
 * assert.equal(formatLsn(parseLsn("16/B374D848")), "16/B374D848");
 * ```
 *
 * @module
 */

export * from "./auth.ts";
export * from "./backend.ts";
export * from "./codes.ts";
export * from "./frontend.ts";
export * from "./lsn.ts";
export * from "./pgoutput.ts";
export * from "./relations.ts";
export * from "./replication.ts";
export * from "./types/catalog.ts";
export * from "./types/binary.ts";
export * from "./types/json.ts";
export * from "./types/oids.ts";
export * from "./types/registry.ts";
export * from "./types/text.ts";
export * from "./types/values.ts";
