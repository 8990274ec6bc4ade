import assert from "node:assert/strict";
import {
  DURATION_PATTERN,
  formatDuration,
  formatSize,
  parseDuration,
  parseSize,
  SIZE_PATTERN,
} from "./units.ts";

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

Deno.test("DURATION_PATTERN and SIZE_PATTERN match every text the parsers read", () => {
  const duration = new RegExp(DURATION_PATTERN, "u");
  const durations = ["200ms", "10S", " 30s ", "1h30m", "2h 15min", "1.5s", "0", "250", "1sec"];
  for (const text of durations) {
    assert.notEqual(parseDuration(text), undefined, text);
    assert(duration.test(text), text);
  }
  for (const text of ["", "soon", "-1s", "10 seconds", "1.5", "s", "10s!", "1e3ms"]) {
    assert.equal(parseDuration(text), undefined, text);
    assert(!duration.test(text), text);
  }
  const size = new RegExp(SIZE_PATTERN, "u");
  for (const text of ["64MB", "100MiB", "1kb", "4096", " 1 GB ", "1.5GiB", "10b"]) {
    assert.notEqual(parseSize(text), undefined, text);
    assert(size.test(text), text);
  }
  for (const text of ["", "big", "1.5", "-1MB", "10 MBs", "MB"]) {
    assert.equal(parseSize(text), undefined, text);
    assert(!size.test(text), text);
  }
});

Deno.test("formatSize writes what parseSize reads back", () => {
  for (const bytes of [1, 999, 1_000, 1_024, 1_500, 64_000_000, 104_857_600, 3_000_000_000_000]) {
    assert.equal(parseSize(formatSize(bytes)), bytes, String(bytes));
  }
  assert.equal(formatSize(64_000_000), "64MB");
  assert.equal(formatSize(1_024), "1KiB");
  assert.equal(formatSize(1_500), "1500B");
});
