import assert from "node:assert/strict";
import { formatDuration, parseDuration, parseSize } from "./units.ts";

Deno.test("parseDuration reads single units", () => {
  const cases: [string, number][] = [
    ["200ms", 200],
    ["10s", 10_000],
    ["10 s", 10_000],
    ["2min", 120_000],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1d", 86_400_000],
    ["1.5s", 1_500],
    ["0.25s", 250],
    ["0s", 0],
    ["10S", 10_000],
    [" 30s ", 30_000],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

Deno.test("parseDuration reads combined units, largest first", () => {
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("1m30s"), 90_000);
  assert.equal(parseDuration("2h 15min"), 8_100_000);
  assert.equal(parseDuration("1s500ms"), 1_500);
  assert.equal(parseDuration("30m1h"), undefined);
  assert.equal(parseDuration("1s1s"), undefined);
});

Deno.test("parseDuration takes plain integers as milliseconds", () => {
  assert.equal(parseDuration(250), 250);
  assert.equal(parseDuration("250"), 250);
  assert.equal(parseDuration(0), 0);
  assert.equal(parseDuration("0"), 0);
});

Deno.test("parseDuration rejects what is not a duration", () => {
  for (const input of ["", "soon", "-1s", "10 seconds", "1.5", "s", "10s!", "1e3ms", "1h 1h"]) {
    assert.equal(parseDuration(input), undefined, input);
  }
  for (const input of [-1, 1.5, Number.NaN, Infinity]) {
    assert.equal(parseDuration(input), undefined, String(input));
  }
});

Deno.test("parseSize reads decimal and binary units", () => {
  const cases: [string, number][] = [
    ["1kB", 1_000],
    ["1KB", 1_000],
    ["64MB", 64_000_000],
    ["10GB", 10_000_000_000],
    ["1TB", 1_000_000_000_000],
    ["1KiB", 1_024],
    ["100MiB", 104_857_600],
    ["2GiB", 2_147_483_648],
    ["1.5MiB", 1_572_864],
    ["512B", 512],
    ["512 B", 512],
    ["4096", 4_096],
    ["0", 0],
  ];
  for (const [text, bytes] of cases) assert.equal(parseSize(text), bytes, text);
  assert.equal(parseSize(4096), 4096);
});

Deno.test("parseSize rejects what is not a size", () => {
  for (const input of ["", "big", "10XB", "-1MB", "1.5", "MB", "10 MB extra", "1e6"]) {
    assert.equal(parseSize(input), undefined, input);
  }
  for (const input of [-1, 0.5, Number.NaN]) assert.equal(parseSize(input), undefined);
  assert.equal(parseSize("99999999TB"), undefined); // beyond 2^53 bytes
});

Deno.test("formatDuration writes what parseDuration reads", () => {
  for (const ms of [0, 1, 250, 1_000, 90_000, 5_400_000, 90_061_001]) {
    assert.equal(parseDuration(formatDuration(ms)), ms, String(ms));
  }
  assert.equal(formatDuration(90_061_001), "1d1h1m1s1ms");
});
