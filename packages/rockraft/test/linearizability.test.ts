import { describe, expect, test } from "vitest";
import {
  checkKey,
  firstViolation,
  type KvInput,
  type KvOutput,
  type Operation,
} from "@rockraft/test-utils";

// The checker's self-tests: histories known to be linearizable and known not to be.

let client = 0;
function op(call: number, ret: number | undefined, input: KvInput, output?: KvOutput): Operation {
  return { client: client++, key: "k", input, output, call, ret: ret ?? Infinity };
}
const put = (call: number, ret: number | undefined, value: string) =>
  op(call, ret, { op: "put", value }, ret === undefined ? undefined : { op: "put" });
const get = (call: number, ret: number, value: string | undefined) =>
  op(call, ret, { op: "get" }, { op: "get", value });
const del = (call: number, ret: number | undefined, found?: boolean) =>
  op(call, ret, { op: "delete" }, found === undefined ? undefined : { op: "delete", found });
const cas = (
  call: number,
  ret: number | undefined,
  expected: string | undefined,
  value: string,
  result?: { succeeded: boolean; current: string | undefined },
) =>
  op(
    call,
    ret,
    { op: "cas", expectFound: expected !== undefined, expected, value },
    result === undefined
      ? undefined
      : { op: "cas", ...result, found: result.current !== undefined },
  );

describe("linearizable histories pass", () => {
  test("sequential writes and reads", () => {
    expect(checkKey([put(1, 2, "a"), get(3, 4, "a"), put(5, 6, "b"), get(7, 8, "b")]).ok).toBe(
      true,
    );
  });

  test("a read concurrent with a write may see either value", () => {
    expect(checkKey([put(1, 2, "a"), put(3, 6, "b"), get(4, 5, "a")]).ok).toBe(true);
    expect(checkKey([put(1, 2, "a"), put(3, 6, "b"), get(4, 5, "b")]).ok).toBe(true);
  });

  test("a write with an unknown outcome may have happened, at any point after its call", () => {
    expect(checkKey([put(1, 2, "a"), put(3, undefined, "b"), get(10, 11, "b")]).ok).toBe(true);
    expect(checkKey([put(1, 2, "a"), put(3, undefined, "b"), get(10, 11, "a")]).ok).toBe(true);
  });

  test("compare-and-swap and delete follow the register", () => {
    const history = [
      cas(1, 2, undefined, "a", { succeeded: true, current: undefined }),
      cas(3, 4, "x", "b", { succeeded: false, current: "a" }),
      cas(5, 6, "a", "c", { succeeded: true, current: "a" }),
      del(7, 8, true),
      del(9, 10, false),
      get(11, 12, undefined),
    ];
    expect(checkKey(history).ok).toBe(true);
  });
});

describe("known-bad histories fail", () => {
  test("a stale read: a value overwritten before the read began", () => {
    const history = [put(1, 2, "a"), put(3, 4, "b"), get(5, 6, "a")];
    expect(checkKey(history).ok).toBe(false);
    expect(firstViolation(history)).toBe(5);
  });

  test("a lost acknowledged write: a later read sees the value before it", () => {
    expect(checkKey([put(1, 2, "a"), put(3, 4, "b"), get(5, 6, "a"), get(7, 8, "b")]).ok).toBe(
      false,
    );
  });

  test("a read of a value nobody wrote", () => {
    expect(checkKey([put(1, 2, "a"), get(3, 4, "z")]).ok).toBe(false);
  });

  test("two reads that see the writes in opposite orders", () => {
    const history = [
      put(1, 10, "a"),
      put(2, 11, "b"),
      get(3, 4, "a"),
      get(5, 6, "b"),
      get(7, 8, "a"),
    ];
    expect(checkKey(history).ok).toBe(false);
  });

  test("a compare-and-swap that reports a value the register never held at its point", () => {
    const history = [
      put(1, 2, "a"),
      cas(3, 4, "a", "b", { succeeded: true, current: "a" }),
      cas(5, 6, "a", "c", { succeeded: true, current: "a" }),
    ];
    expect(checkKey(history).ok).toBe(false);
  });

  test("a delete applied twice (found after the key was already deleted)", () => {
    const history = [put(1, 2, "a"), del(3, 4, true), del(5, 6, true)];
    expect(checkKey(history).ok).toBe(false);
  });

  test("two concurrent compare-and-swaps from the same value that both succeed", () => {
    const history = [
      put(1, 2, "a"),
      cas(3, 6, "a", "b", { succeeded: true, current: "a" }),
      cas(4, 7, "a", "c", { succeeded: true, current: "a" }),
    ];
    expect(checkKey(history).ok).toBe(false);
    // One of them failing, having seen the other's value, is linearizable.
    const fine = [
      put(1, 2, "a"),
      cas(3, 6, "a", "b", { succeeded: true, current: "a" }),
      cas(4, 7, "a", "c", { succeeded: false, current: "b" }),
    ];
    expect(checkKey(fine).ok).toBe(true);
  });

  test("a write that un-applies: read once, then gone with nothing deleting it", () => {
    const history = [put(1, 2, "a"), get(3, 4, "a"), get(5, 6, undefined)];
    expect(checkKey(history).ok).toBe(false);
    expect(firstViolation(history)).toBe(5);
  });

  test("an unknown write cannot explain a read that ended before it was called", () => {
    const history = [put(1, 2, "a"), get(3, 4, "b"), put(5, undefined, "b")];
    expect(checkKey(history).ok).toBe(false);
  });
});

test("a long history with many concurrent calls is decided within the search budget (memoisation)", () => {
  const history: Operation[] = [];
  let t = 0;
  for (let i = 0; i < 300; i++) {
    // Eight clients writing at once, then a read of the last write.
    const base = t;
    for (let c = 0; c < 8; c++) history.push(put(base + c, base + 20 + c, `v${i}.${c}`));
    history.push(get(base + 30, base + 31, `v${i}.7`));
    t += 40;
  }
  const result = checkKey(history);
  expect(result).toEqual({ ok: true });
});
