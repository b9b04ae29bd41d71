// Built apart from src/ (which holds only the pure, synchronous core) and importing the core
// through its public entry point, like any storage implementation would.
import {
  EMPTY_CONF_STATE,
  EMPTY_HARD_STATE,
  RaftError,
  entrySize,
  makeConfState,
  type ConfState,
  type Entry,
  type HardState,
  type RaftStorage,
  type Snapshot,
} from "@rockraft/raft-core";

/**
 * What a storage implementation provides to the conformance suite: the storage the core
 * reads, and the mutations its runtime performs. A mutation's effect must be visible in
 * `storage` once the returned promise (if any) resolves.
 */
export interface StorageHarness {
  /** The synchronous view raft-core reads. */
  readonly storage: RaftStorage;
  /** Appends entries durably, replacing any stored suffix from the first one's index. */
  append(entries: readonly Entry[]): Promise<void> | void;
  /** Stores the hard state durably. */
  setHardState(hardState: HardState): Promise<void> | void;
  /** Installs a snapshot received from a leader: the log restarts after it. */
  applySnapshot(snapshot: Snapshot): Promise<void> | void;
  /** Records a snapshot of applied state at `index` and compacts the log up to it. */
  snapshotAndCompact(index: number, confState: ConfState, data: Uint8Array): Promise<void> | void;
  /** For durable implementations: close, reopen from disk and return the reopened harness. */
  reopen?(): Promise<StorageHarness>;
  /** Releases the storage after a test. */
  close?(): Promise<void> | void;
}

/** Options of {@link storageConformanceTests}. */
export interface StorageConformanceOptions {
  /** The test registrar of your test framework, e.g. vitest's or node:test's `test`. */
  readonly test: (name: string, fn: () => Promise<void>) => void;
  /** A fresh, empty storage per test. */
  readonly create: () => Promise<StorageHarness> | StorageHarness;
  /** Registers the reopen test too; every harness must then implement `reopen`. */
  readonly durable?: boolean;
}

class ConformanceError extends Error {
  override readonly name = "ConformanceError";
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i]);
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => same(item, b[i]));
  }
  if (typeof a === "object" && typeof b === "object" && a !== null && b !== null) {
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length &&
      keys.every((key) =>
        same((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]),
      )
    );
  }
  return false;
}

function show(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    item instanceof Uint8Array ? `bytes[${Array.from(item).join(",")}]` : item,
  );
}

function expectEqual(actual: unknown, expected: unknown, what: string): void {
  if (!same(actual, expected)) {
    throw new ConformanceError(`${what}: expected ${show(expected)}, got ${show(actual)}`);
  }
}

function expectRaftError(fn: () => unknown, code: string, what: string): void {
  try {
    fn();
  } catch (error) {
    // By name and code, not instanceof: the implementation may load another copy of raft-core.
    if (error instanceof Error && error.name === "RaftError" && (error as RaftError).code === code)
      return;
    throw new ConformanceError(`${what}: expected RaftError ${code}, got ${String(error)}`);
  }
  throw new ConformanceError(`${what}: expected RaftError ${code}, but it returned`);
}

async function expectRejects(fn: () => Promise<void> | void, what: string): Promise<void> {
  try {
    await fn();
  } catch {
    return;
  }
  throw new ConformanceError(`${what}: expected an error`);
}

function entry(index: number, term: number, payload = `e${index}`): Entry {
  return { index, term, type: "normal", data: new TextEncoder().encode(payload) };
}

function range(lo: number, hi: number, term: number): Entry[] {
  const entries: Entry[] = [];
  for (let index = lo; index < hi; index++) entries.push(entry(index, term));
  return entries;
}

/**
 * Registers the conformance tests every `RaftStorage` implementation must pass: how the
 * core may read the log, hard state and snapshot, and how appends, truncation, snapshots
 * and compaction change what it reads. Ranges are half-open, [lo, hi).
 */
export function storageConformanceTests(options: StorageConformanceOptions): void {
  const { test, create } = options;
  const withHarness = (
    name: string,
    body: (harness: StorageHarness) => Promise<StorageHarness | void> | void,
  ) =>
    test(name, async () => {
      const harness = await create();
      let current = harness;
      try {
        current = (await body(harness)) ?? harness;
      } finally {
        await current.close?.();
      }
    });

  withHarness("an empty storage has no entries, an empty hard state and no members", (h) => {
    const s = h.storage;
    expectEqual(s.firstIndex(), 1, "firstIndex");
    expectEqual(s.lastIndex(), 0, "lastIndex");
    expectEqual(s.term(0), 0, "term(0)");
    expectEqual(s.entries(1, 1), [], "entries(1, 1)");
    expectEqual(
      s.initialState(),
      { hardState: EMPTY_HARD_STATE, confState: EMPTY_CONF_STATE },
      "initialState",
    );
    expectEqual(s.snapshot().metadata.index, 0, "snapshot index");
  });

  withHarness("appended entries read back in [lo, hi) with their terms", async (h) => {
    const entries = [...range(1, 4, 1), ...range(4, 6, 2)];
    await h.append(entries);
    const s = h.storage;
    expectEqual(s.lastIndex(), 5, "lastIndex");
    expectEqual(s.entries(1, 6), entries, "entries(1, 6)");
    expectEqual(s.entries(2, 4), entries.slice(1, 3), "entries(2, 4)");
    expectEqual(
      [1, 2, 3, 4, 5].map((i) => s.term(i)),
      [1, 1, 1, 2, 2],
      "terms",
    );
  });

  withHarness("entries stop at the byte budget but always return at least one", async (h) => {
    const entries = range(1, 6, 1);
    await h.append(entries);
    const size = entrySize(entries[0]!);
    const s = h.storage;
    expectEqual(s.entries(1, 6, 0), entries.slice(0, 1), "budget 0");
    expectEqual(s.entries(1, 6, size * 2), entries.slice(0, 2), "budget of two entries");
    expectEqual(
      s.entries(1, 6, size * 2 + size - 1),
      entries.slice(0, 2),
      "budget just short of three",
    );
    expectEqual(s.entries(1, 6, Number.MAX_SAFE_INTEGER), entries, "unlimited budget");
  });

  withHarness(
    "reads outside the log throw RAFT_LOG_COMPACTED or RAFT_LOG_UNAVAILABLE",
    async (h) => {
      await h.append(range(1, 4, 1));
      const s = h.storage;
      expectRaftError(() => s.entries(0, 2), "RAFT_LOG_COMPACTED", "entries(0, 2)");
      expectRaftError(() => s.entries(2, 5), "RAFT_LOG_UNAVAILABLE", "entries(2, 5)");
      expectRaftError(() => s.term(4), "RAFT_LOG_UNAVAILABLE", "term(4)");
    },
  );

  withHarness("an append over the tail replaces the conflicting suffix", async (h) => {
    await h.append(range(1, 6, 1));
    await h.append(range(3, 5, 2));
    const s = h.storage;
    expectEqual(s.lastIndex(), 4, "lastIndex after truncation");
    expectEqual(s.entries(1, 5), [...range(1, 3, 1), ...range(3, 5, 2)], "entries");
  });

  withHarness("an append that would leave a gap is refused", async (h) => {
    await h.append(range(1, 3, 1));
    await expectRejects(() => h.append(range(5, 6, 1)), "append(5) after 2");
    expectEqual(h.storage.lastIndex(), 2, "lastIndex unchanged");
  });

  withHarness("the hard state reads back as written", async (h) => {
    await h.append(range(1, 4, 3));
    const hardState = { term: 3, vote: 2, commit: 3 };
    await h.setHardState(hardState);
    expectEqual(h.storage.initialState().hardState, hardState, "hard state");
  });

  withHarness("a snapshot compacts the log before it and keeps the rest", async (h) => {
    await h.append([...range(1, 4, 1), ...range(4, 8, 2)]);
    const conf = makeConfState([1, 2, 3], [4]);
    await h.snapshotAndCompact(5, conf, new Uint8Array([7]));
    const s = h.storage;
    expectEqual(s.firstIndex(), 6, "firstIndex");
    expectEqual(s.lastIndex(), 7, "lastIndex");
    expectEqual(s.term(5), 2, "term at the snapshot index");
    expectEqual(s.entries(6, 8), range(6, 8, 2), "entries after the snapshot");
    expectRaftError(() => s.entries(5, 6), "RAFT_LOG_COMPACTED", "entries(5, 6)");
    expectRaftError(() => s.term(4), "RAFT_LOG_COMPACTED", "term(4)");
    expectEqual(s.snapshot().metadata, { index: 5, term: 2, confState: conf }, "snapshot metadata");
    expectEqual(s.initialState().confState, conf, "initialState membership");
  });

  withHarness("an installed snapshot replaces the whole log", async (h) => {
    await h.append(range(1, 10, 1));
    const conf = makeConfState([1, 2, 3]);
    const snapshot: Snapshot = {
      metadata: { index: 20, term: 4, confState: conf },
      data: new Uint8Array([1, 2, 3]),
    };
    await h.applySnapshot(snapshot);
    const s = h.storage;
    expectEqual(s.firstIndex(), 21, "firstIndex");
    expectEqual(s.lastIndex(), 20, "lastIndex");
    expectEqual(s.term(20), 4, "term at the snapshot index");
    expectEqual(s.snapshot().metadata, snapshot.metadata, "snapshot metadata");
    await h.append(range(21, 23, 4));
    expectEqual(s.entries(21, 23), range(21, 23, 4), "entries appended after the snapshot");
  });

  withHarness("entries already covered by the snapshot are ignored on append", async (h) => {
    await h.append(range(1, 6, 1));
    await h.snapshotAndCompact(4, makeConfState([1]), new Uint8Array());
    await h.append(range(3, 8, 1));
    expectEqual(h.storage.firstIndex(), 5, "firstIndex");
    expectEqual(h.storage.entries(5, 8), range(5, 8, 1), "entries");
  });

  if (options.durable !== true) return;
  withHarness("everything survives a reopen", async (h) => {
    if (h.reopen === undefined)
      throw new ConformanceError("a durable harness must implement reopen");
    await h.append(range(1, 6, 2));
    await h.setHardState({ term: 2, vote: 1, commit: 4 });
    await h.snapshotAndCompact(3, makeConfState([1, 2, 3]), new Uint8Array([9]));
    const reopened = await h.reopen();
    const s = reopened.storage;
    expectEqual(s.firstIndex(), 4, "firstIndex");
    expectEqual(s.lastIndex(), 5, "lastIndex");
    expectEqual(s.entries(4, 6), range(4, 6, 2), "entries");
    expectEqual(
      s.initialState(),
      {
        hardState: { term: 2, vote: 1, commit: 4 },
        confState: makeConfState([1, 2, 3]),
      },
      "initialState",
    );
    return reopened;
  });
}
