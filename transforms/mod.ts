/**
 * Transforms: per-table TypeScript modules that change, drop or fan out events, each in its
 * own Worker. `api.ts` is what a transform file uses (`defineTransform`); `loader.ts` makes a
 * file and its local imports into `data:` URLs; `worker.ts` runs one version of one transform.
 *
 * @module
 */

export * from "./api.ts";
export * from "./loader.ts";
export * from "./worker.ts";
export * from "./test_transform.ts";
export * from "./hooks.ts";
export * from "./live.ts";
