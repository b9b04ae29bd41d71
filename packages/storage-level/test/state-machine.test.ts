import { encodeConfState, makeConfState, type ConfState } from "@rockraft/raft-core";
import { ClassicLevel } from "classic-level";
import { waitFor } from "@rockraft/test-utils";
import { afterEach, describe, expect, test, vi } from "vitest";
import { decodeCommand, encodeCommand, type Command, type LevelStorage } from "../src/index.js";
import { decodeMetadata, encodeMetadata } from "../src/codec.js";
import { LOG_START_KEY, logKey } from "../src/keys.js";
import { TempDirs, append, bytes, entry, open, put, text } from "./helpers/store.js";

const dirs = new TempDirs();
afterEach(() => dirs.cleanup());

const command = (index: number, value: Command) => ({
  index,
  term: 1,
  type: "normal" as const,
  data: encodeCommand(value),
});

/** A compare-and-swap of key "k" from `expected` to `value`. */
const swapK = (index: number, expected: string, value: string) =>
  command(index, {
    op: "cas",
    key: bytes("k"),
    expectFound: true,
    expected: bytes(expected),
    value: bytes(value),
  });

/** Counts the store's LevelDB batches and their ops from now on. */
function countWrites(store: LevelStorage): { batches: number; ops: number } {
  const db = (store as unknown as { db: { _batch: (ops: unknown[], o: object) => unknown } }).db;
  const original = db._batch.bind(db);
  const counts = { batches: 0, ops: 0 };
  db._batch = (ops, options) => {
    counts.batches++;
    counts.ops += ops.length;
    return original(ops, options);
  };
  return counts;
}

describe("the command codec", () => {
  test.each<[string, Command]>([
    ["put", { op: "put", key: bytes("k"), value: bytes("v") }],
    ["put of an empty value", { op: "put", key: bytes("k"), value: new Uint8Array() }],
    ["delete", { op: "delete", key: bytes("key") }],
    [
      "cas",
      {
        op: "cas",
        key: bytes("k"),
        expectFound: true,
        expected: bytes("old"),
        value: bytes("new"),
      },
    ],
    [
      "cas on absence",
      {
        op: "cas",
        key: bytes("k"),
        expectFound: false,
        expected: new Uint8Array(),
        value: bytes("v"),
      },
    ],
  ])("a %s round-trips", (_name, value) => {
    expect(decodeCommand(encodeCommand(value))).toEqual(value);
  });

  test.each<[string, Command]>([
    ["put", { op: "put", key: bytes("k"), value: bytes("v"), requestId: bytes("node1/7") }],
    ["delete", { op: "delete", key: bytes("k"), requestId: Uint8Array.of(0, 255) }],
    [
      "cas",
      {
        op: "cas",
        key: bytes("k"),
        expectFound: false,
        expected: new Uint8Array(),
        value: bytes("v"),
        requestId: new Uint8Array(255).fill(7),
      },
    ],
  ])("a %s tagged with a request id round-trips", (_name, value) => {
    expect(decodeCommand(encodeCommand(value))).toEqual(value);
  });

  test("metadata encodes the membership it is given, frozen or changed in place", () => {
    const frozen = makeConfState([1, 2, 3]);
    const open = { voters: [1], learners: [], votersOutgoing: [] };
    const metadata = (confState: ConfState) => ({ index: 7, term: 2, confState });
    expect(decodeMetadata(encodeMetadata(metadata(frozen))).confState).toEqual(frozen);
    expect(decodeMetadata(encodeMetadata(metadata(frozen))).confState).toEqual(frozen);
    expect(decodeMetadata(encodeMetadata(metadata(open))).confState.voters).toEqual([1]);
    open.voters.push(4);
    expect(decodeMetadata(encodeMetadata(metadata(open))).confState.voters).toEqual([1, 4]);
    expect(decodeMetadata(encodeMetadata(metadata(frozen))).confState).toEqual(frozen);
  });

  test("a request id over 255 bytes is refused", () => {
    expect(() =>
      encodeCommand({ op: "delete", key: bytes("k"), requestId: new Uint8Array(256) }),
    ).toThrow(new RangeError("encodeCommand: requestId is 256 bytes, at most 255"));
  });

  test.each([
    [Uint8Array.of(9), "unknown command op 9"],
    [Uint8Array.of(1, 0, 0, 0, 9, 1), "command truncated"],
    [Uint8Array.of(2, 0, 0, 0, 1, 65, 66), "delete command has trailing bytes"],
    [Uint8Array.of(0x10, 3, 1, 2), "request id truncated"],
    [Uint8Array.of(0x10, 1, 1, 0x10, 1, 1, 2, 0, 0, 0, 1, 65), "nested request id"],
  ])("malformed payloads are named (%j)", (payload, message) => {
    expect(() => decodeCommand(payload)).toThrow(message);
  });
});

describe("applying committed entries", () => {
  test("put, delete and compare-and-swap, with their results", async () => {
    const store = await open(await dirs.make());
    const entries = [
      command(1, { op: "put", key: bytes("a"), value: bytes("1") }),
      command(2, {
        op: "cas",
        key: bytes("a"),
        expectFound: true,
        expected: bytes("1"),
        value: bytes("2"),
      }),
      command(3, {
        op: "cas",
        key: bytes("a"),
        expectFound: true,
        expected: bytes("1"),
        value: bytes("3"),
      }),
      command(4, {
        op: "cas",
        key: bytes("b"),
        expectFound: false,
        expected: new Uint8Array(),
        value: bytes("x"),
      }),
      command(5, {
        op: "cas",
        key: bytes("b"),
        expectFound: false,
        expected: new Uint8Array(),
        value: bytes("y"),
      }),
      command(6, { op: "delete", key: bytes("a") }),
      command(7, { op: "delete", key: bytes("a") }),
      { index: 8, term: 1, type: "normal" as const, data: new Uint8Array() },
      entry(9, 1, "\u0009garbage"),
    ];
    await append(store, entries, 9);
    const results = await store.apply(entries);
    expect(
      results.map((r) => ({ ...r, ...("current" in r ? { current: text(r.current) } : {}) })),
    ).toEqual([
      { index: 1, term: 1, kind: "put" },
      { index: 2, term: 1, kind: "cas", succeeded: true, found: true, current: "1" },
      { index: 3, term: 1, kind: "cas", succeeded: false, found: true, current: "2" },
      { index: 4, term: 1, kind: "cas", succeeded: true, found: false, current: undefined },
      { index: 5, term: 1, kind: "cas", succeeded: false, found: true, current: "x" },
      { index: 6, term: 1, kind: "delete", found: true },
      { index: 7, term: 1, kind: "delete", found: false },
      { index: 8, term: 1, kind: "noop" },
      { index: 9, term: 1, kind: "invalid", reason: "unknown command op 9" },
    ]);
    expect(text(await store.get(bytes("a")))).toBeUndefined();
    expect(text(await store.get(bytes("b")))).toBe("x");
    expect(store.applied().index).toBe(9);
    await store.close();
  });

  test("a config entry updates the stored membership", async () => {
    const store = await open(await dirs.make());
    const conf = { voters: [1, 2, 3], learners: [4], votersOutgoing: [] };
    const entries = [{ index: 1, term: 1, type: "config" as const, data: encodeConfState(conf) }];
    await append(store, entries, 1);
    expect(await store.apply(entries)).toEqual([{ index: 1, term: 1, kind: "config" }]);
    expect(store.applied()).toEqual({ index: 1, term: 1, confState: conf });
  });

  test("applying is exactly once: entries at or below the applied index are skipped, across reopen", async () => {
    const dataPath = await dirs.make();
    const store = await open(dataPath);
    const entries = [
      put(1, 1, "k", "first"),
      command(2, {
        op: "cas",
        key: bytes("k"),
        expectFound: true,
        expected: bytes("first"),
        value: bytes("second"),
      }),
    ];
    await append(store, entries, 2);
    expect(await store.apply(entries)).toHaveLength(2);
    expect(await store.apply(entries)).toEqual([]);
    await store.close();
    const reopened = await open(dataPath);
    expect(reopened.applied().index).toBe(2);
    expect(await reopened.apply(entries)).toEqual([]);
    expect(text(await reopened.get(bytes("k")))).toBe("second");
    await reopened.close();
  });

  test("a commit-only hard state can ride along with the apply batch", async () => {
    const dataPath = await dirs.make();
    const store = await open(dataPath);
    const entries = [put(1, 1, "k", "v")];
    await store.persist({ entries, hardState: { term: 1, vote: 1, commit: 0 }, mustSync: true });
    await store.apply(entries, { hardState: { term: 1, vote: 1, commit: 1 } });
    expect(store.raftStorage.initialState().hardState.commit).toBe(1);
    await store.close();
    const reopened = await open(dataPath);
    expect(reopened.raftStorage.initialState().hardState).toEqual({ term: 1, vote: 1, commit: 1 });
    expect(reopened.applied().index).toBe(1);
    await expect(
      reopened.apply([], { hardState: { term: 1, vote: 1, commit: 5 } }),
    ).rejects.toThrow(new RangeError("apply: commit index 5 is beyond the log's last index 1"));
    await reopened.close();
  });

  test("results carry the request id of a tagged command", async () => {
    const store = await open(await dirs.make());
    const id = bytes("node2/41");
    const entries = [
      command(1, { op: "put", key: bytes("a"), value: bytes("1"), requestId: id }),
      command(2, { op: "delete", key: bytes("a") }),
    ];
    await append(store, entries, 2);
    expect(await store.apply(entries)).toEqual([
      { index: 1, term: 1, kind: "put", requestId: id },
      { index: 2, term: 1, kind: "delete", found: true },
    ]);
    await store.close();
  });

  test("values handed out are the caller's: changing them changes neither the store nor the log", async () => {
    const store = await open(await dirs.make());
    const entries = [put(1, 1, "k", "v1"), swapK(2, "v1", "v2")];
    await append(store, entries, 2);
    const [, cas] = await store.apply(entries, { waitForWrite: false });
    const current = cas?.kind === "cas" ? cas.current : undefined;
    expect(text(current)).toBe("v1"); // read from the same apply's first entry
    current!.fill(0);
    const read = await store.get(bytes("k")); // the deferred write's value
    expect(text(read)).toBe("v2");
    read!.fill(0);
    expect(text(await store.get(bytes("k")))).toBe("v2");
    expect(decodeCommand(entries[0]!.data)).toMatchObject({ value: bytes("v1") });
    expect(decodeCommand(entries[1]!.data)).toMatchObject({ value: bytes("v2") });
    await store.close();
  });

  test("apply may resolve before its batch is written; reads still see it", async () => {
    const dataPath = await dirs.make();
    const store = await open(dataPath);
    const entries = [put(1, 1, "k", "v1"), put(2, 1, "k", "v2")];
    await append(store, entries, 2);
    const results = await store.apply(entries, { waitForWrite: false });
    expect(results.map((r) => r.index)).toEqual([1, 2]);
    expect(store.applied().index).toBe(2);
    expect(text(await store.get(bytes("k")))).toBe("v2");
    await store.close();
    const reopened = await open(dataPath);
    expect(reopened.applied().index).toBe(2);
    expect(text(await reopened.get(bytes("k")))).toBe("v2");
    await reopened.close();
  });

  test("a deferred apply's own write that fails tells the failure listener at once", async () => {
    // Nothing awaits that write: without the listener its owner learnt of the failure only
    // at its next call, as "storage is closed".
    const dataPath = await dirs.make();
    const store = await open(dataPath);
    await append(store, [put(1, 1, "k", "v1")], 0);
    const failures: Error[] = [];
    store.onFailure((error) => failures.push(error));
    const db = (store as unknown as { db: { _batch: (ops: unknown[], o: object) => unknown } }).db;
    db._batch = () => Promise.reject(new Error("EIO: i/o error"));
    await store.apply([put(1, 1, "k", "v1")], {
      hardState: { term: 1, vote: 1, commit: 1 },
      waitForWrite: false,
    });
    await waitFor(() => failures.length > 0, "the failed write", 5_000, 5);
    expect(failures.map((e) => e.message)).toEqual([`write to ${dataPath} failed: EIO: i/o error`]);
    await expect(store.get(bytes("k"))).rejects.toMatchObject({ code: "STORAGE_CLOSED" });
    await store.close();
  });

  /** Counts the LevelDB write batches a store makes from now on. */
  test("a deferred apply costs no write of its own: the next persist carries it", async () => {
    const dataPath = await dirs.make();
    const store = await open(dataPath);
    await append(store, [put(1, 1, "k", "v1")], 0);
    const writes = countWrites(store);
    await store.apply([put(1, 1, "k", "v1")], {
      hardState: { term: 1, vote: 1, commit: 1 },
      waitForWrite: false,
    });
    expect(writes.batches).toBe(0);
    expect(text(await store.get(bytes("k")))).toBe("v1");
    await store.persist({ entries: [put(2, 1, "k", "v2")], mustSync: true });
    // One batch: the entry, the deferred data, the applied log id, the commit index and the
    // synced write's number (durable-mark.ts).
    expect(writes).toEqual({ batches: 1, ops: 5 });
    expect(store.raftStorage.initialState().hardState.commit).toBe(1);
    await store.close();
    const reopened = await open(dataPath);
    expect(reopened.applied().index).toBe(1);
    expect(reopened.raftStorage.initialState().hardState.commit).toBe(1);
    expect(text(await reopened.get(bytes("k")))).toBe("v1");
    await reopened.close();
  });

  test("a deferred apply is written on its own shortly when nothing else writes", async () => {
    const store = await open(await dirs.make());
    await append(store, [put(1, 1, "k", "v1")], 1);
    const writes = countWrites(store);
    await store.apply([put(1, 1, "k", "v1")], { waitForWrite: false });
    expect(writes.batches).toBe(0);
    // 10 ms, unless the machine is very busy.
    await waitFor(() => writes.batches > 0, "the deferred apply's own write", 5_000, 5);
    expect(writes.batches).toBe(1);
    await store.close();
  });

  test("applies after a deferred one see its data: delete and compare-and-swap", async () => {
    const store = await open(await dirs.make());
    const entries = [
      put(1, 1, "k", "v1"),
      swapK(2, "v1", "v2"),
      command(3, { op: "delete", key: bytes("k") }),
      command(4, { op: "delete", key: bytes("k") }),
    ];
    await append(store, entries, 4);
    const results = [];
    for (const e of entries) results.push(...(await store.apply([e], { waitForWrite: false })));
    expect(
      results.map((r) => ("succeeded" in r ? r.succeeded : "found" in r ? r.found : r.kind)),
    ).toEqual(["put", true, true, false]);
    expect(await store.get(bytes("k"))).toBeUndefined();
    await store.close();
  });

  test("persist can apply committed entries in the same batch, exactly once", async () => {
    const dataPath = await dirs.make();
    const store = await open(dataPath);
    const first = [put(1, 1, "a", "1"), put(2, 1, "b", "2")];
    await store.persist({ entries: first, mustSync: true });
    // A leader's Ready: new entries 3..4, and 1..3 committed (3 is in this very Ready).
    const second = [
      command(3, { op: "delete", key: bytes("a") }),
      command(4, { op: "put", key: bytes("c"), value: bytes("4") }),
    ];
    const results = await store.persist(
      { entries: second, hardState: { term: 1, vote: 1, commit: 3 }, mustSync: true },
      { apply: [...first, second[0]!] },
    );
    expect(results).toEqual([
      { index: 1, term: 1, kind: "put" },
      { index: 2, term: 1, kind: "put" },
      { index: 3, term: 1, kind: "delete", found: true },
    ]);
    expect(store.applied().index).toBe(3);
    expect(store.raftStorage.lastIndex()).toBe(4);
    expect(await store.get(bytes("a"))).toBeUndefined();
    expect(text(await store.get(bytes("b")))).toBe("2");
    // Applying the same entries again is skipped.
    expect(await store.persist({ entries: [], mustSync: false }, { apply: first })).toEqual([]);
    await store.close();

    const reopened = await open(dataPath);
    expect(reopened.applied().index).toBe(3);
    expect(reopened.raftStorage.initialState().hardState.commit).toBe(3);
    expect(await reopened.get(bytes("a"))).toBeUndefined();
    expect(await reopened.get(bytes("c"))).toBeUndefined();
    expect(await reopened.apply([second[1]!])).toEqual([{ index: 4, term: 1, kind: "put" }]);
    expect(text(await reopened.get(bytes("c")))).toBe("4");
    await reopened.close();
  });

  test("an entry that does not follow the applied index is a programmer error", async () => {
    const store = await open(await dirs.make());
    await expect(store.apply([put(3, 1, "k", "v")])).rejects.toThrow(
      new RangeError("apply: entry 3 does not follow the applied index 0"),
    );
    await store.close();
  });
});

describe("persisting Readies", () => {
  test("a conflicting suffix is replaced, in the view and on disk", async () => {
    const dataPath = await dirs.make();
    const store = await open(dataPath);
    await append(store, [entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)]);
    await store.persist({
      entries: [entry(2, 2)],
      hardState: { term: 2, vote: 1, commit: 1 },
      mustSync: true,
    });
    expect(store.raftStorage.lastIndex()).toBe(2);
    await store.close();
    const reopened = await open(dataPath);
    expect(reopened.raftStorage.entries(1, 3).map((e) => [e.index, e.term])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(reopened.raftStorage.initialState().hardState).toEqual({ term: 2, vote: 1, commit: 1 });
    await reopened.close();
  });

  test("compaction deletes the covered prefix and is remembered across reopen", async () => {
    const dataPath = await dirs.make();
    const store = await open(dataPath);
    const entries = [1, 2, 3, 4, 5, 6].map((i) => put(i, 1, `k${i}`, `v${i}`));
    await append(store, entries, 6);
    await store.apply(entries);
    expect(await store.takeSnapshot()).toEqual({
      index: 6,
      term: 1,
      confState: { voters: [], learners: [], votersOutgoing: [] },
    });
    expect(await store.takeSnapshot()).toBeUndefined();
    await store.persist({ entries: [], compactIndex: 4, mustSync: false });
    expect(store.raftStorage.firstIndex()).toBe(5);
    await store.close();
    const reopened = await open(dataPath);
    expect([reopened.raftStorage.firstIndex(), reopened.raftStorage.lastIndex()]).toEqual([5, 6]);
    expect(reopened.raftStorage.term(4)).toBe(1);
    expect(reopened.raftStorage.snapshot().metadata.index).toBe(6);
    await reopened.close();
  });

  /** Log entries still in LevelDB at or below `index` (the store must be closed). */
  async function rawLogKeysUpTo(dataPath: string, index: number): Promise<number> {
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dataPath, {
      keyEncoding: "view",
      valueEncoding: "view",
    });
    const keys = await db.keys({ gte: LOG_START_KEY, lte: logKey(index) }).all();
    await db.close();
    return keys.length;
  }

  /** A store whose log holds entries 1..count, applied, with a snapshot at `count`. */
  async function storeWithSnapshot(dataPath: string, count: number): Promise<LevelStorage> {
    const store = await open(dataPath);
    const entries = Array.from({ length: count }, (_, i) => entry(i + 1, 1));
    await append(store, entries, count);
    await store.apply(entries);
    await store.takeSnapshot();
    return store;
  }

  test("a compaction's deletes trail behind it, carried by the next writes", async () => {
    const dataPath = await dirs.make();
    const store = await storeWithSnapshot(dataPath, 1000);
    const writes = countWrites(store);
    await store.persist({ entries: [], compactIndex: 900, mustSync: false });
    // The log start moves at once; the batch itself holds only that, not 900 deletes.
    expect(store.raftStorage.firstIndex()).toBe(901);
    expect(writes.ops).toBeLessThan(100);
    // Each later write carries a slice of them: fifteen writes carry all 900.
    for (let i = 1001; i <= 1015; i++) await append(store, [entry(i, 1)]);
    expect(writes.ops).toBeGreaterThan(900);
    await store.close();
    expect(await rawLogKeysUpTo(dataPath, 900)).toBe(0);
    expect(await rawLogKeysUpTo(dataPath, 1015)).toBe(115);
  });

  test("with nothing else to write, the trailing deletes are written on their own", async () => {
    const dataPath = await dirs.make();
    const store = await storeWithSnapshot(dataPath, 300);
    await store.persist({ entries: [], compactIndex: 200, mustSync: false });
    const writes = countWrites(store);
    // About 40 ms, unless the machine is very busy.
    await waitFor(() => writes.ops >= 199, "the trailing deletes' own writes", 5_000, 5);
    await store.close();
    expect(await rawLogKeysUpTo(dataPath, 200)).toBe(0);
    expect(await rawLogKeysUpTo(dataPath, 300)).toBe(100);
  });

  test("LevelDB compacts the deleted range once the store is idle, not while it writes", async () => {
    const dataPath = await dirs.make();
    const store = await storeWithSnapshot(dataPath, 300);
    const db = (store as unknown as { db: { compactRange: (...range: unknown[]) => unknown } }).db;
    const original = db.compactRange.bind(db);
    const ranges: unknown[][] = [];
    db.compactRange = (...range: unknown[]) => {
      ranges.push(range);
      return original(...range);
    };
    // The store's clock is faked: time moves only when the test says so.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    try {
      await store.persist({ entries: [], compactIndex: 200, mustSync: false });
      // A write every 50 ms for 1.5 s: never idle for the 1 s the compaction waits for.
      for (let i = 301; i <= 330; i++) {
        await append(store, [entry(i, 1)]);
        await vi.advanceTimersByTimeAsync(50);
      }
      expect(ranges).toEqual([]);
      await vi.advanceTimersByTimeAsync(1_000); // idle now
      expect(ranges).toEqual([[logKey(1), logKey(201)]]);
    } finally {
      vi.useRealTimers();
    }
    await store.close();
  });

  test("entries a stop left below the log start are deleted when the store opens", async () => {
    const dataPath = await dirs.make();
    const store = await storeWithSnapshot(dataPath, 300);
    await store.persist({ entries: [], compactIndex: 250, mustSync: false });
    await store.close(); // before any write carried the deletes
    expect(await rawLogKeysUpTo(dataPath, 250)).toBe(250);
    const reopened = await open(dataPath);
    expect([reopened.raftStorage.firstIndex(), reopened.raftStorage.lastIndex()]).toEqual([
      251, 300,
    ]);
    expect(reopened.raftStorage.entries(251, 253).map((e) => text(e.data))).toEqual([
      "e251",
      "e252",
    ]);
    await reopened.close();
    expect(await rawLogKeysUpTo(dataPath, 250)).toBe(0);
  });

  test("the view changes only once the write is durable", async () => {
    const store = await open(await dirs.make());
    const pending = append(store, [entry(1, 1)]);
    expect(store.raftStorage.lastIndex()).toBe(0);
    await pending;
    expect(store.raftStorage.lastIndex()).toBe(1);
    await store.close();
  });
});
