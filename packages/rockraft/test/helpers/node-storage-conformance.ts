// The runtime's storage contract (seams.ts NodeStorage), as tests any implementation must
// pass: LevelStorage on real LevelDB and the simulation's SimStorage both run them
// (test/storage-conformance.test.ts), on top of raft-core's own storage suite.
import { expect } from "vitest";
import type { Entry } from "@rockraft/raft-core";
import { EMPTY_CONF_STATE } from "@rockraft/raft-core";
import { encodeCommand, type Command } from "@rockraft/storage-level";
import type { NodeStorage } from "../../src/seams.js";

export interface NodeStorageHarness {
  readonly storage: NodeStorage;
  /** Closes cleanly and opens the same data again. */
  reopen(): Promise<NodeStorageHarness>;
  close(): Promise<void>;
}

type TestFn = (name: string, fn: () => Promise<void>) => void;

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined) =>
  value === undefined ? undefined : new TextDecoder().decode(value);

function command(index: number, term: number, c: Command): Entry {
  return { index, term, type: "normal", data: encodeCommand(c) };
}
const put = (index: number, key: string, value: string, term = 1) =>
  command(index, term, { op: "put", key: bytes(key), value: bytes(value) });
const del = (index: number, key: string, term = 1) =>
  command(index, term, { op: "delete", key: bytes(key) });
const cas = (index: number, key: string, expected: string | undefined, value: string) =>
  command(index, 1, {
    op: "cas",
    key: bytes(key),
    expectFound: expected !== undefined,
    expected: bytes(expected ?? ""),
    value: bytes(value),
  });

/** Streams `source`'s snapshot into `target`'s staging area, in 16-byte chunks. */
async function streamSnapshot(source: NodeStorage, target: NodeStorage) {
  const reader = await source.openSnapshotReader(16);
  const sink = await target.beginSnapshotInstall(reader.metadata);
  let checksum = 0;
  for await (const chunk of reader.chunks()) {
    await sink.write(chunk);
    if (chunk.last) checksum = chunk.checksum ?? 0;
  }
  await reader.close();
  await sink.finish(checksum);
  return reader;
}

export function nodeStorageConformanceTests(options: {
  test: TestFn;
  create: () => Promise<NodeStorageHarness>;
}): void {
  const { test, create } = options;

  test("persist: entries and the hard state survive a reopen", async () => {
    const h = await create();
    await h.storage.persist({
      entries: [put(1, "a", "1"), put(2, "b", "2", 2)],
      hardState: { term: 2, vote: 1, commit: 1 },
      mustSync: true,
    });
    const r = await h.reopen();
    expect(r.storage.raftStorage.lastIndex()).toBe(2);
    expect(r.storage.raftStorage.term(2)).toBe(2);
    expect(r.storage.raftStorage.initialState().hardState).toEqual({ term: 2, vote: 1, commit: 1 });
    await r.close();
  });

  test("persist replaces a conflicting suffix", async () => {
    const h = await create();
    await h.storage.persist({
      entries: [put(1, "a", "1"), put(2, "a", "2"), put(3, "a", "3")],
      hardState: { term: 1, vote: 1, commit: 1 },
      mustSync: true,
    });
    await h.storage.persist({
      entries: [put(2, "a", "x", 2)],
      hardState: { term: 2, vote: 2, commit: 1 },
      mustSync: true,
    });
    expect(h.storage.raftStorage.lastIndex()).toBe(2);
    expect(h.storage.raftStorage.term(2)).toBe(2);
    const r = await h.reopen();
    expect(r.storage.raftStorage.lastIndex()).toBe(2);
    await r.close();
  });

  test("apply: each command's result, and each entry exactly once, across a reopen", async () => {
    const h = await create();
    const entries = [
      put(1, "k", "v1"),
      cas(2, "k", "v1", "v2"),
      cas(3, "k", "nope", "v3"),
      del(4, "k"),
      del(5, "k"),
      cas(6, "k", undefined, "v6"),
    ];
    await h.storage.persist({
      entries,
      hardState: { term: 1, vote: 1, commit: 6 },
      mustSync: true,
    });
    const results = await h.storage.apply(entries);
    expect(results.map((r) => r.kind)).toEqual(["put", "cas", "cas", "delete", "delete", "cas"]);
    const swap = results[1]!;
    expect(swap.kind === "cas" && [swap.succeeded, text(swap.current)]).toEqual([true, "v1"]);
    const refused = results[2]!;
    expect(refused.kind === "cas" && [refused.succeeded, text(refused.current)]).toEqual([
      false,
      "v2",
    ]);
    expect(results[3]!.kind === "delete" && results[3]!.found).toBe(true);
    expect(results[4]!.kind === "delete" && results[4]!.found).toBe(false);
    expect(text(await h.storage.get(bytes("k")))).toBe("v6");
    expect(await h.storage.apply(entries)).toEqual([]); // already applied: nothing again
    expect(h.storage.applied().index).toBe(6);
    const r = await h.reopen();
    expect(r.storage.applied().index).toBe(6);
    expect(await r.storage.apply(entries)).toEqual([]);
    expect(text(await r.storage.get(bytes("k")))).toBe("v6");
    await r.close();
  });

  test("persist with apply: committed entries are applied in the same batch", async () => {
    const h = await create();
    const entries = [put(1, "a", "1"), put(2, "b", "2")];
    const results = await h.storage.persist(
      { entries, hardState: { term: 1, vote: 1, commit: 2 }, mustSync: true },
      { apply: entries },
    );
    expect(results.map((r) => r.index)).toEqual([1, 2]);
    expect(h.storage.applied().index).toBe(2);
    const r = await h.reopen();
    expect(r.storage.applied().index).toBe(2);
    expect(text(await r.storage.get(bytes("b")))).toBe("2");
    await r.close();
  });

  test("a deferred apply is readable at once and durable with the next persist", async () => {
    const h = await create();
    await h.storage.persist({
      entries: [put(1, "a", "1")],
      hardState: { term: 1, vote: 0, commit: 0 },
      mustSync: true,
    });
    const results = await h.storage.apply([put(1, "a", "1")], {
      hardState: { term: 1, vote: 0, commit: 1 },
      waitForWrite: false,
    });
    expect(results.map((r) => r.kind)).toEqual(["put"]);
    expect(text(await h.storage.get(bytes("a")))).toBe("1");
    await h.storage.persist({ entries: [put(2, "b", "2")], mustSync: true });
    const r = await h.reopen();
    expect(r.storage.applied().index).toBe(1);
    expect(r.storage.raftStorage.initialState().hardState.commit).toBe(1);
    expect(text(await r.storage.get(bytes("a")))).toBe("1");
    await r.close();
  });

  test("persist with issued: the results come once the batch is handed over, readable then", async () => {
    // The runtime answers committed entries then, before the batch (which syncs newer
    // entries, here the same ones: a follower's) is durable.
    const h = await create();
    const entries = [put(1, "a", "1"), put(2, "b", "2")];
    let answered: number[] = [];
    let read: Promise<Uint8Array | undefined> | undefined;
    const results = await h.storage.persist(
      { entries, hardState: { term: 1, vote: 1, commit: 2 }, mustSync: true },
      {
        apply: entries,
        issued: (early) => {
          answered = early.map((r) => r.index);
          read = h.storage.get(bytes("b"));
        },
      },
    );
    expect(answered).toEqual([1, 2]);
    expect(results.map((r) => r.index)).toEqual([1, 2]);
    expect(text(await read)).toBe("2");
    let again = 0; // called at once when the persist has nothing to write
    await h.storage.persist({ entries: [], mustSync: false }, { issued: () => void again++ });
    expect(again).toBe(1);
    const r = await h.reopen();
    expect(r.storage.applied().index).toBe(2);
    expect(r.storage.raftStorage.initialState().hardState.commit).toBe(2);
    expect(text(await r.storage.get(bytes("b")))).toBe("2");
    await r.close();
  });

  test("snapshot: built at the applied index, streamed, installed into another store", async () => {
    const source = await create();
    const entries = [put(1, "a", "1"), put(2, "b", "2"), del(3, "a")];
    await source.storage.persist(
      { entries, hardState: { term: 1, vote: 1, commit: 3 }, mustSync: true },
      { apply: entries },
    );
    const metadata = await source.storage.takeSnapshot();
    expect(metadata?.index).toBe(3);
    expect(await source.storage.takeSnapshot()).toBeUndefined(); // already there
    const target = await create();
    const reader = await streamSnapshot(source.storage, target.storage);
    expect(target.storage.hasStagedSnapshots()).toBe(true);
    await target.storage.persist({
      entries: [],
      snapshot: { metadata: reader.metadata, data: new Uint8Array(0) },
      hardState: { term: 1, vote: 0, commit: 3 },
      mustSync: true,
    });
    expect(target.storage.applied().index).toBe(3);
    expect(target.storage.raftStorage.firstIndex()).toBe(4);
    expect(text(await target.storage.get(bytes("b")))).toBe("2");
    expect(await target.storage.get(bytes("a"))).toBeUndefined();
    const reopened = await target.reopen();
    expect(reopened.storage.applied().index).toBe(3);
    expect(text(await reopened.storage.get(bytes("b")))).toBe("2");
    expect(reopened.storage.raftStorage.snapshot().metadata.index).toBe(3);
    await reopened.close();
    await source.close();
  });

  test("client sessions: a retry answers as before, after a reopen and in an installed snapshot", async () => {
    const limits = { idleTimeoutMs: 5_000, maxUnacknowledged: 8, maxSessions: 8 };
    const tagged: Command = {
      op: "cas",
      key: bytes("n"),
      expectFound: false,
      expected: bytes(""),
      value: bytes("1"),
      session: { id: 1, seq: 1, acknowledged: 1 },
    };
    const source = await create();
    const first = [
      command(1, 1, { op: "session-open", ...limits }),
      command(2, 1, { op: "clock", elapsedMs: 100 }),
      command(3, 1, tagged),
    ];
    await source.storage.persist(
      { entries: first, hardState: { term: 1, vote: 1, commit: 3 }, mustSync: true },
      { apply: first },
    );
    const reopened = await source.reopen();
    const [retry] = await reopened.storage.apply([command(4, 1, tagged)]);
    expect(retry).toMatchObject({ kind: "cas", succeeded: true, duplicateOf: { index: 3 } });
    await reopened.storage.takeSnapshot();
    const target = await create();
    const reader = await streamSnapshot(reopened.storage, target.storage);
    await target.storage.persist({
      entries: [],
      snapshot: { metadata: reader.metadata, data: new Uint8Array(0) },
      hardState: { term: 1, vote: 0, commit: 4 },
      mustSync: true,
    });
    const [again, expired] = await target.storage.apply([
      command(5, 1, tagged),
      command(6, 1, { op: "clock", elapsedMs: 5_001 }),
    ]);
    expect(again).toMatchObject({ kind: "cas", succeeded: true, duplicateOf: { index: 3 } });
    expect(expired).toMatchObject({ kind: "clock", expired: [1] });
    expect(text(await target.storage.get(bytes("n")))).toBe("1");
    await Promise.all([reopened.close(), target.close()]);
  });

  test("a snapshot whose stream is damaged is refused and leaves nothing staged", async () => {
    const target = await create();
    const metadata = { index: 5, term: 1, confState: EMPTY_CONF_STATE };
    const sink = await target.storage.beginSnapshotInstall(metadata);
    await sink.write({ offset: 0, data: bytes("garbage") });
    await expect(sink.finish(12345)).rejects.toThrow();
    await target.storage.discardStagedSnapshots(0);
    expect(target.storage.hasStagedSnapshots()).toBe(false);
    await target.close();
  });

  test("compaction moves the log start; a reopen keeps it", async () => {
    const h = await create();
    const entries = [1, 2, 3, 4, 5].map((i) => put(i, "k", `v${i}`));
    await h.storage.persist(
      { entries, hardState: { term: 1, vote: 1, commit: 5 }, mustSync: true },
      { apply: entries },
    );
    await h.storage.takeSnapshot();
    await h.storage.persist({ entries: [], compactIndex: 3, mustSync: true });
    expect(h.storage.raftStorage.firstIndex()).toBe(4);
    const r = await h.reopen();
    expect(r.storage.raftStorage.firstIndex()).toBe(4);
    expect(r.storage.raftStorage.lastIndex()).toBe(5);
    expect(r.storage.raftStorage.term(3)).toBe(1);
    await r.close();
  });
}
