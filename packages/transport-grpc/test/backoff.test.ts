import { expect, test } from "vitest";
import { Backoff } from "../src/backoff.js";

test("delays double from the first up to the cap, each within ±20%, and start over after reset", () => {
  const middle = new Backoff(25, 100, () => 0.5); // no spread
  expect([middle.next(), middle.next(), middle.next(), middle.next()]).toEqual([25, 50, 100, 100]);
  middle.reset();
  expect(middle.next()).toBe(25);
  const low = new Backoff(100, 1_000, () => 0);
  const high = new Backoff(100, 1_000, () => 0.999_999);
  expect(low.next()).toBe(80);
  expect(high.next()).toBe(120);
});
