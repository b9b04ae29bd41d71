import { expect, test } from "vitest";
import {
  DecodeError,
  allocate,
  decodeCommand,
  encodeCommand,
  type Command,
  readU32,
  readU64,
  writeU32,
  writeU64,
} from "../src/codec.js";
import {
  dataKey,
  generationOf,
  logKey,
  logKeyIndex,
  sessionKey,
  sessionKeyId,
} from "../src/keys.js";

// The byte-level integers every key and record is built with.

test("u32 and u64 round-trip big-endian at their edges", () => {
  const bytes = new Uint8Array(12);
  for (const value of [0, 1, 0xff, 0x100, 0x7fffffff, 0x80000000, 0xffffffff]) {
    writeU32(bytes, 3, value);
    expect(readU32(bytes, 3)).toBe(value);
  }
  writeU32(bytes, 0, 0x01020304);
  expect([...bytes.subarray(0, 4)]).toEqual([1, 2, 3, 4]);
  for (const value of [0, 1, 0xffffffff, 0x100000000, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER]) {
    writeU64(bytes, 2, value);
    expect(readU64(bytes, 2)).toBe(value);
  }
  writeU64(bytes, 0, 2 ** 32 + 2);
  expect([...bytes.subarray(0, 8)]).toEqual([0, 0, 0, 1, 0, 0, 0, 2]);
});

test("reads past the end or beyond 2^53 are DecodeErrors, not garbage", () => {
  expect(() => readU32(new Uint8Array(3), 0)).toThrow(DecodeError);
  expect(() => readU64(new Uint8Array(10), 4)).toThrow(DecodeError);
  const huge = new Uint8Array(8).fill(0xff);
  expect(() => readU64(huge, 0)).toThrow(/beyond 2\^53/);
});

test("allocate gives a plain Uint8Array whose slice copies", () => {
  const bytes = allocate(16);
  expect(Object.getPrototypeOf(bytes)).toBe(Uint8Array.prototype);
  expect(bytes.byteLength).toBe(16);
  bytes.fill(7);
  const copy = bytes.slice(0, 4);
  copy[0] = 9;
  expect(bytes[0]).toBe(7);
});

test("keys carry their numbers and nothing left over from the pool", () => {
  // Fill the whole current pool with garbage first (keys are carved from it): a byte a key
  // builder forgot would show.
  new Uint8Array(Buffer.allocUnsafe(1).buffer).fill(0xaa);
  expect([...logKey(0x0102030405)]).toEqual([1, 0, 0, 0, 1, 2, 3, 4, 5]);
  expect(logKeyIndex(logKey(2 ** 40 + 7))).toBe(2 ** 40 + 7);
  const session = sessionKey(3, 2 ** 35 + 1);
  expect([...session.subarray(0, 6)]).toEqual([2, 0, 0, 0, 3, 2]);
  expect(sessionKeyId(session)).toBe(2 ** 35 + 1);
  const data = dataKey(0x01020304, Uint8Array.of(0x61, 0x62));
  expect([...data]).toEqual([2, 1, 2, 3, 4, 1, 0x61, 0x62]);
  expect(generationOf(data)).toBe(0x01020304);
});

test("commands with every tag round-trip through the byte writers", () => {
  const commands: Command[] = [
    {
      op: "cas",
      key: Uint8Array.of(1, 2),
      expectFound: true,
      expected: Uint8Array.of(3),
      value: Uint8Array.of(4, 5, 6),
      requestId: Uint8Array.of(9, 9),
      session: { id: 2 ** 33, seq: 5, acknowledged: 4 },
      auth: { user: "ana", revision: 2 ** 34 + 1 },
    },
    { op: "session-open", idleTimeoutMs: 2 ** 36, maxUnacknowledged: 0xfffffffe, maxSessions: 7 },
    { op: "session-close", sessionId: 2 ** 40 },
    { op: "clock", elapsedMs: 2 ** 32 + 3 },
  ];
  for (const command of commands) expect(decodeCommand(encodeCommand(command))).toEqual(command);
});
