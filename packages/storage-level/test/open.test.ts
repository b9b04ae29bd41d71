import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ClassicLevel } from "classic-level";
import { afterEach, describe, expect, test } from "vitest";
import { FORMAT_VERSION, StorageError, openStorage } from "../src/index.js";
import { exited, startFixture, waitForLine } from "./helpers/child.js";
import { TempDirs, append, entry, open } from "./helpers/store.js";

const dirs = new TempDirs();
afterEach(() => dirs.cleanup());

async function refusal(promise: Promise<unknown>): Promise<StorageError> {
  const error = await promise.then(
    () => expect.fail("expected a StorageError"),
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(StorageError);
  return error as StorageError;
}

describe("opening a store", () => {
  test("a new data path is created and records format, cluster id and node id", async () => {
    const dataPath = join(await dirs.make(), "nested", "node1");
    const store = await openStorage({ dataPath, nodeId: 1, clusterId: "prod" });
    expect(store.path).toBe(dataPath);
    expect(store.raftStorage.lastIndex()).toBe(0);
    await store.close();
    const reopened = await openStorage({ dataPath, nodeId: 1, clusterId: "prod" });
    await reopened.close();
  });

  test("with stampIdentity false, a new store is claimed by stampIdentity() or its first write, not by opening", async () => {
    const dataPath = await dirs.make();
    const unclaimed = await openStorage({
      dataPath,
      nodeId: 9,
      clusterId: "test",
      stampIdentity: false,
    });
    await unclaimed.close();
    // Node 9's start failed after opening: another id may open the store.
    const claimed = await openStorage({
      dataPath,
      nodeId: 1,
      clusterId: "test",
      stampIdentity: false,
    });
    await claimed.stampIdentity();
    await claimed.close();
    await expect(openStorage({ dataPath, nodeId: 2, clusterId: "test" })).rejects.toThrow(
      /belongs to node 1 of cluster "test"/,
    );

    const other = await dirs.make();
    const written = await openStorage({
      dataPath: other,
      nodeId: 3,
      clusterId: "test",
      stampIdentity: false,
    });
    await append(written, [entry(1, 1)], 0);
    await written.close();
    await expect(openStorage({ dataPath: other, nodeId: 4, clusterId: "test" })).rejects.toThrow(
      /belongs to node 3 of cluster "test"/,
    );
  });

  test("a path locked by another process is refused with STORAGE_LOCKED, naming it", async () => {
    const dataPath = await dirs.make();
    const child = startFixture("hold-open.ts", [dataPath]);
    try {
      await waitForLine(child, /^open$/);
      const error = await refusal(open(dataPath));
      expect(error.code).toBe("STORAGE_LOCKED");
      expect(error.message).toBe(
        `data path ${dataPath} is in use by another process (LevelDB lock held)`,
      );
      expect(error.path).toBe(dataPath);
      expect((error.cause as { cause?: { code?: string } }).cause?.code).toBe("LEVEL_LOCKED");
    } finally {
      child.stdin?.end();
      await exited(child);
    }
    // Once the other process has closed it, the path opens.
    await (await open(dataPath)).close();
  });

  test("a path already open in this process is refused the same way", async () => {
    const dataPath = await dirs.make();
    const store = await open(dataPath);
    const error = await refusal(open(dataPath));
    expect(error.code).toBe("STORAGE_LOCKED");
    await store.close();
  });

  test("a path of another node id is refused with STORAGE_IDENTITY_MISMATCH", async () => {
    const dataPath = await dirs.make();
    await (await open(dataPath, 1, "prod")).close();
    const error = await refusal(open(dataPath, 2, "prod"));
    expect([error.code, error.message]).toEqual([
      "STORAGE_IDENTITY_MISMATCH",
      `data path ${dataPath} belongs to node 1 of cluster "prod", not node 2 of cluster "prod"`,
    ]);
  });

  test("a path of another cluster id is refused with STORAGE_IDENTITY_MISMATCH", async () => {
    const dataPath = await dirs.make();
    await (await open(dataPath, 1, "prod")).close();
    const error = await refusal(open(dataPath, 1, "staging"));
    expect(error.message).toBe(
      `data path ${dataPath} belongs to node 1 of cluster "prod", not node 1 of cluster "staging"`,
    );
  });

  test("data written in a newer format is refused with STORAGE_FORMAT", async () => {
    const dataPath = await dirs.make();
    await (await open(dataPath)).close();
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dataPath, {
      keyEncoding: "view",
      valueEncoding: "view",
    });
    const value = new Uint8Array(8);
    new DataView(value.buffer).setUint32(0, FORMAT_VERSION + 1);
    const { crc32 } = await import("node:zlib");
    new DataView(value.buffer).setUint32(4, crc32(value.subarray(0, 4)));
    await db.put(Uint8Array.of(0, 1), value);
    await db.close();
    const error = await refusal(open(dataPath));
    expect([error.code, error.message]).toEqual([
      "STORAGE_FORMAT",
      `data path ${dataPath} was written in storage format 4; this version reads format 3 (upgrade rockraft)`,
    ]);
  });

  test("a LevelDB that is not rockraft's is refused rather than adopted", async () => {
    const dataPath = await dirs.make();
    const db = new ClassicLevel(dataPath);
    await db.put("someone", "else");
    await db.close();
    const error = await refusal(open(dataPath));
    expect([error.code, error.message]).toEqual([
      "STORAGE_CORRUPTED",
      `data path ${dataPath}: format marker: missing, but the database is not empty: it is not a rockraft store (point data_path at an empty directory or at this node's own data)`,
    ]);
  });

  test("a path that cannot be created says so", async () => {
    const file = join(await dirs.make(), "a-file");
    await writeFile(file, "x");
    const error = await refusal(open(join(file, "node1")));
    expect(error.code).toBe("STORAGE_IO");
    expect(error.message).toMatch(
      new RegExp(`^data path ${file}/node1 cannot be created: ENOTDIR`),
    );
  });

  test("bad arguments are programmer errors", async () => {
    const dataPath = await dirs.make();
    await expect(openStorage({ dataPath, nodeId: 0, clusterId: "x" })).rejects.toThrow(
      new RangeError("openStorage: nodeId must be a positive integer, got 0"),
    );
    await expect(openStorage({ dataPath, nodeId: 1, clusterId: "" })).rejects.toThrow(RangeError);
  });

  test("calls after close reject with STORAGE_CLOSED; close is idempotent", async () => {
    const store = await open(await dirs.make());
    await store.close();
    await store.close();
    const error = await refusal(append(store, [entry(1, 1)]));
    expect(error.code).toBe("STORAGE_CLOSED");
    await expect(store.get(new Uint8Array([1]))).rejects.toThrow(StorageError);
  });
});

test("classic-level still has the private _batch the store writes through (level-storage.ts, write)", async () => {
  // The store calls classic-level's _batch directly to skip abstract-level's per-op checks;
  // if a release renames or changes it, this fails here rather than at a node's first write.
  const db = new ClassicLevel<Uint8Array, Uint8Array>(await dirs.make(), {
    keyEncoding: "view",
    valueEncoding: "view",
  });
  await db.open();
  const raw = db as unknown as {
    _batch?: (ops: unknown[], options: { sync: boolean }) => Promise<void>;
  };
  expect(typeof raw._batch).toBe("function");
  const key = Uint8Array.of(0x7f, 1);
  await raw._batch!([{ type: "put", key, value: Uint8Array.of(42) }], { sync: true });
  expect([...(await db.get(key))!]).toEqual([42]);
  await db.close();
});
