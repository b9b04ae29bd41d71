import { ClassicLevel } from "classic-level";
import { afterEach, describe, expect, test } from "vitest";
import { StorageError, type LevelStorage, type SnapshotChunk } from "../src/index.js";
import { TempDirs, append, bytes, install, open, put, readAll, text } from "./helpers/store.js";

const dirs = new TempDirs();
afterEach(() => dirs.cleanup());

/** A store with keys k0..k(n-1) applied (log index i+1 writes k_i). */
async function storeWithKeys(n: number, prefix = "v"): Promise<LevelStorage> {
  const store = await open(await dirs.make());
  const entries = Array.from({ length: n }, (_, i) => put(i + 1, 1, `k${i}`, `${prefix}${i}`));
  await append(store, entries, n);
  await store.apply(entries);
  return store;
}

describe("snapshots", () => {
  test("a snapshot reader holds deferred applies: exactly what applied() reports", async () => {
    const store = await storeWithKeys(3);
    const more = [put(4, 1, "k3", "v3"), put(5, 1, "k0", "changed")];
    await append(store, more, 5);
    await store.apply(more, { waitForWrite: false });
    const source = await readAll(store, 1 << 20);
    expect(source.metadata.index).toBe(5);
    const target = await open(await dirs.make());
    await install(target, source);
    expect(text(await target.get(bytes("k3")))).toBe("v3");
    expect(text(await target.get(bytes("k0")))).toBe("changed");
    await Promise.all([store.close(), target.close()]);
  });

  test("entries applied with a snapshot's persist go into the installed state", async () => {
    const source = await storeWithKeys(20);
    const stream = await readAll(source, 500);
    const target = await open(await dirs.make());
    const installer = await target.beginSnapshotInstall(stream.metadata);
    for (const chunk of stream.chunks) await installer.write(chunk);
    await installer.finish(stream.chunks.at(-1)!.checksum!);
    const after = [put(21, 1, "k0", "after"), put(22, 1, "k99", "new")];
    const results = await target.persist(
      {
        entries: after,
        snapshot: { metadata: stream.metadata, data: new Uint8Array() },
        hardState: { term: 1, vote: 0, commit: 22 },
        mustSync: true,
      },
      { apply: after },
    );
    expect(results.map((r) => r.index)).toEqual([21, 22]);
    expect(target.applied().index).toBe(22);
    expect(text(await target.get(bytes("k0")))).toBe("after");
    expect(text(await target.get(bytes("k5")))).toBe("v5");
    expect(text(await target.get(bytes("k99")))).toBe("new");
    await source.close();
    await target.close();
  });

  test("a snapshot streams in chunks and installs into another store exactly", async () => {
    const source = await storeWithKeys(200);
    const stream = await readAll(source, 500);
    expect(stream.metadata.index).toBe(200);
    expect(stream.chunks.length).toBeGreaterThan(3);
    expect(stream.chunks.map((c) => c.last)).toEqual([
      ...stream.chunks.slice(1).map(() => false),
      true,
    ]);
    const target = await storeWithKeys(5, "old");
    await target.persist({ entries: [put(6, 1, "only-in-target", "x")], mustSync: true });
    await install(target, stream);
    expect(target.applied()).toEqual(stream.metadata);
    expect(target.raftStorage.snapshot().metadata.index).toBe(200);
    expect([target.raftStorage.firstIndex(), target.raftStorage.lastIndex()]).toEqual([201, 200]);
    for (const i of [0, 4, 199]) expect(text(await target.get(bytes(`k${i}`)))).toBe(`v${i}`);
    expect(await target.get(bytes("only-in-target"))).toBeUndefined();
    await source.close();
    await target.close();
  });

  test("the reader sees one consistent state while writes go on", async () => {
    const store = await storeWithKeys(50);
    const reader = await store.openSnapshotReader(64);
    const more = [put(51, 1, "k0", "changed"), put(52, 1, "new", "x")];
    await append(store, more, 52);
    await store.apply(more);
    const target = await open(await dirs.make());
    const chunks: SnapshotChunk[] = [];
    for await (const chunk of reader.chunks()) chunks.push(chunk);
    await install(target, { metadata: reader.metadata, chunks });
    expect(reader.metadata.index).toBe(50);
    expect(text(await target.get(bytes("k0")))).toBe("v0");
    expect(await target.get(bytes("new"))).toBeUndefined();
    expect(text(await store.get(bytes("k0")))).toBe("changed");
    await store.close();
    await target.close();
  });

  test("a checksum mismatch is refused and nothing is staged", async () => {
    const source = await storeWithKeys(20);
    const stream = await readAll(source, 100);
    const target = await storeWithKeys(3, "old");
    const installer = await target.beginSnapshotInstall(stream.metadata);
    for (const chunk of stream.chunks) await installer.write(chunk);
    const error = await installer
      .finish(stream.chunks.at(-1)!.checksum! + 1)
      .catch((e: unknown) => e as StorageError);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe("STORAGE_SNAPSHOT_INVALID");
    expect((error as StorageError).message).toMatch(
      /^snapshot 20 for .*: checksum mismatch: received \d+, expected \d+$/,
    );
    await expect(
      target.persist({
        entries: [],
        snapshot: { metadata: stream.metadata, data: new Uint8Array() },
        mustSync: true,
      }),
    ).rejects.toThrow(/no staged data for the snapshot at index 20/);
    expect(text(await target.get(bytes("k0")))).toBe("old0");
    await source.close();
    await target.close();
  });

  test("a chunk out of order is refused", async () => {
    const source = await storeWithKeys(20);
    const stream = await readAll(source, 100);
    const target = await open(await dirs.make());
    const installer = await target.beginSnapshotInstall(stream.metadata);
    await installer.write(stream.chunks[0]!);
    await expect(installer.write(stream.chunks[2]!)).rejects.toThrow(
      `chunk at offset ${stream.chunks[2]!.offset}, expected ${stream.chunks[1]!.offset}`,
    );
    await source.close();
    await target.close();
  });

  test("a stream that ends inside a record is refused", async () => {
    const source = await storeWithKeys(5);
    const stream = await readAll(source, 1 << 20);
    const whole = stream.chunks[0]!.data;
    const target = await open(await dirs.make());
    const installer = await target.beginSnapshotInstall(stream.metadata);
    await installer.write({ offset: 0, data: whole.subarray(0, whole.byteLength - 3) });
    await expect(installer.finish(0)).rejects.toThrow("the stream ends inside a record (");
    await source.close();
    await target.close();
  });

  test("an install interrupted before its switch leaves the old state intact, and its staging data is dropped at the next open", async () => {
    const source = await storeWithKeys(30);
    const stream = await readAll(source, 100);
    const dataPath = await dirs.make();
    const target = await open(dataPath);
    const old = [put(1, 1, "mine", "kept")];
    await append(target, old, 1);
    await target.apply(old);
    const installer = await target.beginSnapshotInstall(stream.metadata);
    await installer.write(stream.chunks[0]!);
    await installer.write(stream.chunks[1]!);
    await target.close(); // as if the process died mid-install
    const reopened = await open(dataPath);
    expect(text(await reopened.get(bytes("mine")))).toBe("kept");
    expect(await reopened.get(bytes("k0"))).toBeUndefined();
    expect(reopened.applied().index).toBe(1);
    const reader = await reopened.openSnapshotReader(1 << 20);
    let records = 0;
    for await (const chunk of reader.chunks()) records += chunk.data.byteLength;
    expect(records).toBe(4 + 4 + 4 + 4); // one record: "mine" -> "kept"
    await reopened.close();
    await source.close();
  });

  test("staged data of a snapshot the core ignored is deleted, not kept until the next open", async () => {
    const source = await storeWithKeys(30);
    const stream = await readAll(source, 100);
    const dataPath = await dirs.make();
    const entries = Array.from({ length: 40 }, (_, i) => put(i + 1, 1, `mine${i}`, "kept"));
    let target = await open(dataPath);
    await append(target, entries, 40);
    await target.apply(entries);
    await target.close();
    const keysBefore = await countKeys(dataPath);
    target = await open(dataPath);
    const installer = await target.beginSnapshotInstall(stream.metadata); // index 30
    for (const chunk of stream.chunks) await installer.write(chunk);
    await installer.finish(stream.chunks.at(-1)!.checksum!);
    expect(target.hasStagedSnapshots()).toBe(true);
    await target.discardStagedSnapshots(29); // not at or below the applied index: kept
    expect(target.hasStagedSnapshots()).toBe(true);
    await target.discardStagedSnapshots(40); // the core, at applied 40, ignored its MsgSnap
    expect(target.hasStagedSnapshots()).toBe(false);
    expect(text(await target.get(bytes("mine0")))).toBe("kept");
    await target.close();
    expect(await countKeys(dataPath)).toBe(keysBefore);
    await source.close();
  });
});

async function countKeys(dataPath: string): Promise<number> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dataPath, {
    keyEncoding: "view",
    valueEncoding: "view",
  });
  const keys = await db.keys().all();
  await db.close();
  return keys.length;
}
