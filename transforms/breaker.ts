/**
 * The circuit breaker of one transform: `failures` failures within `window` open it; while it
 * is open every event skips the transform and takes `on_error`; after `cooldown` it is
 * half-open, and the next batch tries the transform again: without a failure the breaker
 * closes, with one it opens for another cooldown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Breaker } from "./breaker.ts";
 * let now = 0;
 * const breaker = new Breaker({ failures: 2, windowMs: 1_000, cooldownMs: 5_000 }, () => now);
 * breaker.failure();
 * assert.equal(breaker.state, "closed");
 * breaker.failure();
 * assert.equal(breaker.state, "open");
 * now += 5_000;
 * assert.equal(breaker.state, "half-open");
 * breaker.success();
 * assert.equal(breaker.state, "closed");
 * ```
 *
 * @module
 */

/** `closed`: the transform runs; `open`: it is skipped; `half-open`: it gets one more try. */
export type BreakerState = "closed" | "open" | "half-open";

/** Options of {@linkcode Breaker}. */
export interface BreakerOptions {
  failures: number;
  windowMs: number;
  cooldownMs: number;
}

/** One transform's breaker. */
export class Breaker {
  readonly #options: BreakerOptions;
  readonly #now: () => number;
  /** Times of the failures within the window, oldest first. */
  #failures: number[] = [];
  #openedAt: number | null = null;
  /** Times the breaker opened. */
  opened = 0;

  constructor(options: BreakerOptions, now: () => number = Date.now) {
    this.#options = options;
    this.#now = now;
  }

  get state(): BreakerState {
    if (this.#openedAt === null) return "closed";
    return this.#now() - this.#openedAt >= this.#options.cooldownMs ? "half-open" : "open";
  }

  /** True when the transform may run (closed or half-open). */
  allows(): boolean {
    return this.state !== "open";
  }

  /** A batch ran without a failure: a half-open breaker closes. */
  success(): void {
    if (this.state === "half-open") {
      this.#openedAt = null;
      this.#failures = [];
    }
  }

  /** Counts a failure; returns true when it opened the breaker. */
  failure(): boolean {
    const now = this.#now();
    const state = this.state;
    if (state === "open") return false;
    if (state === "half-open") {
      this.#openedAt = now;
      this.opened++;
      return true;
    }
    this.#failures.push(now);
    while (this.#failures.length > 0 && now - this.#failures[0]! >= this.#options.windowMs) {
      this.#failures.shift();
    }
    if (this.#failures.length < this.#options.failures) return false;
    this.#openedAt = now;
    this.#failures = [];
    this.opened++;
    return true;
  }
}
