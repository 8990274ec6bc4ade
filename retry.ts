/**
 * One small retry helper: exponential backoff with jitter, a limit, and an
 * AbortSignal. Errors that say they are not retriable are thrown at once.
 *
 * @module
 */

import { isRetriable } from "./errors.ts";

/** Options of {@linkcode retry}. */
export interface RetryOptions {
  /** Attempts in all, the first included; `Infinity` never gives up. Default 10. */
  maxAttempts?: number;
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** 0..1: how much of each delay is random. Default 0.2. */
  jitter?: number;
  signal?: AbortSignal;
  /** Called before each wait, for logging. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Decides whether an error is worth another attempt. Default: its `retriable` flag. */
  shouldRetry?: (error: unknown) => boolean;
  /** Randomness source in [0, 1); tests pass their own. */
  random?: () => number;
}

/**
 * Runs `attempt` until it succeeds, a non-retriable error occurs, or the attempts run out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { retry } from "./retry.ts";
 * let calls = 0;
 * const value = await retry(() => {
 *   calls++;
 *   if (calls < 3) throw Object.assign(new Error("flaky"), { retriable: true });
 *   return Promise.resolve("ok");
 * }, { initialDelayMs: 1 });
 * assert(value === "ok" && calls === 3);
 * ```
 */
export async function retry<T>(
  attempt: (attemptNumber: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 10;
  const initial = options.initialDelayMs ?? 200;
  const maxDelay = options.maxDelayMs ?? 30_000;
  const jitter = options.jitter ?? 0.2;
  const random = options.random ?? Math.random;
  const shouldRetry = options.shouldRetry ?? isRetriable;
  for (let n = 1;; n++) {
    options.signal?.throwIfAborted();
    try {
      return await attempt(n);
    } catch (error) {
      if (n >= maxAttempts || !shouldRetry(error) || options.signal?.aborted) throw error;
      const base = Math.min(maxDelay, initial * 2 ** (n - 1));
      const delay = Math.round(base * (1 - jitter + 2 * jitter * random()));
      options.onRetry?.(error, n, delay);
      await sleep(delay, options.signal);
    }
  }
}

/** Waits `ms`, or less if the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * `promise`, or `null` once `signal` aborts. Unlike `Promise.race` with one
 * long-lived abort promise, nothing stays attached once it settles, so no batch
 * is kept alive by it.
 */
export function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T | null> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.resolve(null);
  return new Promise<T | null>((resolve, reject) => {
    const onAbort = () => resolve(null);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
