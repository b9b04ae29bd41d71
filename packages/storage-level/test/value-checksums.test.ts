import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ClassicLevel } from "classic-level";
import { afterEach, expect, test } from "vitest";
import { StorageError } from "../src/index.js";
import { encodeU32 } from "../src/codec.js";
import { META_FORMAT, dataKey, dataRange, userKey } from "../src/keys.js";
import { TempDirs, append, bytes, open, put, text } from "./helpers/store.js";

// Every value read from the state machine is verified: a damaged one is never served.
const dirs = new TempDirs();
afterEach(() => dirs.cleanup());

async function rawDb(dataPath: string) {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dataPath, {
    keyEncoding: "view",
    valueEncoding: "view",
  });
  await db.open();
  return db;
}

/** A store with k0..k(n-1) applied, closed (its state in LevelDB's files). */
async function storeWithKeys(n: number): Promise<string> {
  const dataPath = await dirs.make();
  const store = await open(dataPath);
  const entries = Array.from({ length: n }, (_, i) => put(i + 1, 1, `k${i}`, `value ${i}`));
  await append(store, entries, n);
  await store.apply(entries);
  await store.close();
  return dataPath;
}

test("a flipped byte in a stored value is refused as STORAGE_CORRUPTED naming the key, never returned", async () => {
  const dataPath = await storeWithKeys(3);
  const db = await rawDb(dataPath);
  for await (const [key, value] of db.iterator(dataRange(1))) {
    if (text(userKey(key)) !== "k1") continue;
    value[2]! ^= 0x01; // "value 1" becomes "vblue 1"
    await db.put(key, value);
  }
  await db.close();

  const store = await open(dataPath);
  expect(text(await store.get(bytes("k0")))).toBe("value 0");
  const error = await store.get(bytes("k1")).then(
    () => expect.fail("a damaged value was returned"),
    (caught: unknown) => caught as StorageError,
  );
  expect(error).toBeInstanceOf(StorageError);
  expect(error.code).toBe("STORAGE_CORRUPTED");
  expect(error.message).toMatch(
    new RegExp(
      `^data path ${dataPath}: the stored value of key "k1" is damaged: checksum mismatch`,
    ),
  );
  // A snapshot stream refuses to carry it too.
  const reader = await store.openSnapshotReader(1 << 20);
  await expect(
    (async () => {
      for await (const chunk of reader.chunks()) void chunk;
    })(),
  ).rejects.toThrow(/the stored value of a key in the snapshot is damaged/);
  await store.close();
});

test("a value found under another key is refused (the checksum covers the key)", async () => {
  const dataPath = await storeWithKeys(2);
  const db = await rawDb(dataPath);
  const generation = 1; // a new store's
  const k0 = (await db.get(dataKey(generation, bytes("k0"))))!;
  await db.put(dataKey(generation, bytes("k1")), k0);
  await db.close();
  const store = await open(dataPath);
  await expect(store.get(bytes("k1"))).rejects.toThrow(/key "k1" is damaged/);
  await store.close();
});

test("a format 1 store (values without checksums) is converted when opened", async () => {
  const dataPath = await storeWithKeys(3);
  // Make it format 1: values stripped of their checksums, the marker set back.
  const db = await rawDb(dataPath);
  const stripped: [Uint8Array, Uint8Array][] = [];
  for await (const [key, value] of db.iterator(dataRange(1)))
    stripped.push([key, value.slice(0, value.byteLength - 4)]);
  await db.batch([
    ...stripped.map(([key, value]) => ({ type: "put" as const, key, value })),
    { type: "put", key: META_FORMAT, value: encodeU32(1) },
  ]);
  await db.close();

  const store = await open(dataPath);
  for (let i = 0; i < 3; i++) expect(text(await store.get(bytes(`k${i}`)))).toBe(`value ${i}`);
  expect(store.applied().index).toBe(3);
  await store.close();
  const reopened = await open(dataPath); // format 2 now: opened as it is
  expect(text(await reopened.get(bytes("k2")))).toBe("value 2");
  await reopened.close();
});

test("bytes flipped in a LevelDB table file: the open fails or the read does, as STORAGE_CORRUPTED, never a wrong value", async () => {
  const dataPath = await storeWithKeys(400);
  await (await open(dataPath)).close(); // reopened: the write-ahead log becomes a table file
  const tables = (await readdir(dataPath)).filter((name) => name.endsWith(".ldb"));
  expect(tables.length).toBeGreaterThan(0);
  for (const table of tables) {
    const file = join(dataPath, table);
    const content = await readFile(file);
    for (const at of [200, 4_000, 12_000, 30_000])
      if (at < content.length - 100) content[at]! ^= 0xff;
    await writeFile(file, content);
  }
  let store;
  try {
    store = await open(dataPath);
  } catch (error) {
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe("STORAGE_CORRUPTED");
    return;
  }
  let refused = 0;
  for (let i = 0; i < 400; i++) {
    try {
      const value = await store.get(bytes(`k${i}`));
      expect(text(value)).toBe(`value ${i}`);
    } catch (error) {
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).code).toBe("STORAGE_CORRUPTED");
      refused++;
    }
  }
  expect(refused).toBeGreaterThan(0);
  await store.close();
});
