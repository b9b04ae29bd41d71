import { readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ClassicLevel } from "classic-level";
import { afterEach, expect, test } from "vitest";
import { StorageError } from "../src/index.js";
import { logKey, stateMetaKey } from "../src/keys.js";
import { encodeMetadata } from "../src/codec.js";
import { TempDirs, append, entry, open, put } from "./helpers/store.js";

// Corrupt data is named and refused, with what the operator can do; the node never runs on
// a guess.
const REMEDY =
  ". The node cannot start on damaged data: remove it from the cluster, then add it back with an empty data directory (it copies the state from the leader)";
const dirs = new TempDirs();
afterEach(() => dirs.cleanup());

async function withRawDb(
  dataPath: string,
  change: (db: ClassicLevel<Uint8Array, Uint8Array>) => Promise<void>,
) {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dataPath, {
    keyEncoding: "view",
    valueEncoding: "view",
  });
  await change(db);
  await db.close();
}

/** LevelDB's newest write-ahead log file (the highest number). */
function newestLevelLog(dataPath: string): string {
  const logs = readdirSync(dataPath)
    .filter((name) => /^\d+\.log$/.test(name))
    .sort((a, b) => parseInt(b, 10) - parseInt(a, 10));
  return join(dataPath, logs[0]!);
}

async function storeWithLog(): Promise<string> {
  const dataPath = await dirs.make();
  const store = await open(dataPath);
  await append(store, [entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 2)], 3);
  await store.close();
  return dataPath;
}

async function openError(dataPath: string): Promise<StorageError> {
  const error = await open(dataPath).then(
    () => expect.fail("expected STORAGE_CORRUPTED"),
    (caught: unknown) => caught as StorageError,
  );
  expect(error).toBeInstanceOf(StorageError);
  expect(error.code).toBe("STORAGE_CORRUPTED");
  return error;
}

test("an entry whose bytes changed fails its checksum, named by index", async () => {
  const dataPath = await storeWithLog();
  await withRawDb(dataPath, async (db) => {
    const value = (await db.get(logKey(2)))!;
    value[value.byteLength - 6]! ^= 0xff;
    await db.put(logKey(2), value);
  });
  expect((await openError(dataPath)).message).toBe(
    `data path ${dataPath}: log entry 2: checksum mismatch${REMEDY}`,
  );
});

test("a truncated entry does not decode", async () => {
  const dataPath = await storeWithLog();
  await withRawDb(dataPath, (db) => db.put(logKey(3), Uint8Array.of(1, 2, 3)));
  expect((await openError(dataPath)).message).toBe(
    `data path ${dataPath}: log entry 3: 3 bytes, too short${REMEDY}`,
  );
});

test("a gap in the log is refused", async () => {
  const dataPath = await storeWithLog();
  await withRawDb(dataPath, (db) => db.del(logKey(2)));
  expect((await openError(dataPath)).message).toBe(
    `data path ${dataPath}: log: gap: entry 3 follows 1${REMEDY}`,
  );
});

test("an entry stored under another index is refused", async () => {
  const dataPath = await storeWithLog();
  await withRawDb(dataPath, async (db) => db.put(logKey(3), (await db.get(logKey(4)))!));
  expect((await openError(dataPath)).message).toBe(
    `data path ${dataPath}: log entry 3: holds entry 4${REMEDY}`,
  );
});

test("an applied index beyond the log's end is refused", async () => {
  const dataPath = await dirs.make();
  const store = await open(dataPath);
  await append(store, [put(1, 1, "k", "v")], 1);
  await store.apply([put(1, 1, "k", "v")]);
  await store.close();
  await withRawDb(dataPath, (db) =>
    db.put(
      stateMetaKey(1),
      encodeMetadata({
        index: 9,
        term: 1,
        confState: { voters: [1], learners: [], votersOutgoing: [] },
      }),
    ),
  );
  expect((await openError(dataPath)).message).toBe(
    `data path ${dataPath}: state machine: applied index 9 is beyond the log's last index 1${REMEDY}`,
  );
});

test("a commit index beyond the log's end is refused", async () => {
  const dataPath = await dirs.make();
  const store = await open(dataPath);
  await store.persist({
    entries: [entry(1, 1)],
    hardState: { term: 1, vote: 1, commit: 5 },
    mustSync: true,
  });
  await store.close();
  expect((await openError(dataPath)).message).toBe(
    `data path ${dataPath}: hard state: commit index 5 is beyond the log's last index 1${REMEDY}`,
  );
});

test("a term that goes down along the log is refused", async () => {
  const dataPath = await storeWithLog();
  await withRawDb(dataPath, async (db) => {
    const { encodeEntry } = await import("../src/codec.js");
    await db.put(logKey(4), encodeEntry({ ...entry(4, 2), term: 0 }));
  });
  expect((await openError(dataPath)).message).toBe(
    `data path ${dataPath}: log: entry 4 has term 0, below the term 1 of the entry before it${REMEDY}`,
  );
});

test("a store whose format marker was lost is reported as damaged, not as someone else's", async () => {
  const dataPath = await storeWithLog();
  const { META_FORMAT } = await import("../src/keys.js");
  await withRawDb(dataPath, (db) => db.del(META_FORMAT));
  expect((await openError(dataPath)).message).toBe(
    `data path ${dataPath}: format marker: lost, while the store holds rockraft's log or identity${REMEDY}`,
  );
});

test("a LevelDB log cut short after a crash is refused: the store lost writes it reported durable", async () => {
  // The operator's probe: SIGKILL, then the newest LevelDB .log truncated to a third.
  // LevelDB drops a damaged log tail without a word and opens in an older, consistent state;
  // only the durable mark beside it shows that writes it acknowledged are gone.
  const dataPath = await dirs.make();
  const store = await open(dataPath);
  for (let i = 1; i <= 30; i++) await append(store, [entry(i, 1, "x".repeat(100))], i);
  await store.close(); // closing does not flush LevelDB's memtable: the writes are in its log
  const newest = newestLevelLog(dataPath);
  truncateSync(newest, Math.floor(statSync(newest).size / 3));
  const message = (await openError(dataPath)).message;
  expect(message).toMatch(
    new RegExp(
      `^data path ${dataPath}: log: LevelDB lost writes it had reported durable: it holds synced write \\d+, but ROCKRAFT-DURABLE-MARK says write 30 had completed`,
    ),
  );
  expect(message.endsWith(REMEDY)).toBe(true);
});

test("a store that was only stopped opens with its durable mark intact", async () => {
  const dataPath = await dirs.make();
  let store = await open(dataPath);
  for (let i = 1; i <= 3; i++) await append(store, [entry(i, 1)], i);
  await store.close();
  store = await open(dataPath);
  await append(store, [entry(4, 1)], 4);
  await store.close();
  store = await open(dataPath);
  expect(store.raftStorage.lastIndex()).toBe(4);
  await store.close();
});

test("a record damaged in the middle of LevelDB's log is refused, not skipped", async () => {
  // LevelDB (paranoid checks off) drops a damaged block of its log, replays the records after
  // it and says so only in its LOG file: a lost vote would go unnoticed.
  const dataPath = await dirs.make();
  const store = await open(dataPath);
  for (let i = 1; i <= 30; i++) await append(store, [entry(i, 1, "x".repeat(2000))], i);
  await store.close();
  const newest = newestLevelLog(dataPath);
  const bytes = readFileSync(newest);
  bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
  writeFileSync(newest, bytes);
  const message = (await openError(dataPath)).message;
  expect(message).toMatch(
    new RegExp(
      `^data path ${dataPath}: log: LevelDB dropped damaged records while opening the store \\(dropping \\d+ bytes; Corruption: checksum mismatch`,
    ),
  );
});

test("a hard state whose term is below its log's last entry is refused (a lost vote or term)", async () => {
  const dataPath = await dirs.make();
  const store = await open(dataPath);
  await store.persist({
    entries: [entry(1, 1), entry(2, 3)],
    hardState: { term: 2, vote: 1, commit: 1 },
    mustSync: true,
  });
  await store.close();
  expect((await openError(dataPath)).message).toBe(
    `data path ${dataPath}: hard state: term 2 is below the term 3 of the log's last entry 2 (a lost vote or term)${REMEDY}`,
  );
});

test("a data directory emptied of LevelDB's files but not of the durable mark says so", async () => {
  const dataPath = await dirs.make();
  const store = await open(dataPath);
  for (let i = 1; i <= 3; i++) await append(store, [entry(i, 1)], i);
  await store.close();
  const { rmSync } = await import("node:fs");
  for (const name of readdirSync(dataPath))
    if (name !== "ROCKRAFT-DURABLE-MARK") rmSync(join(dataPath, name));
  const message = (await openError(dataPath)).message;
  expect(message).toContain("it holds synced write 0, but ROCKRAFT-DURABLE-MARK says write 3");
  expect(message).toContain(
    "if you emptied the directory on purpose, remove ROCKRAFT-DURABLE-MARK too",
  );
  // The refused open claimed nothing: no identity was written into the empty store.
  const { META_IDENTITY } = await import("../src/keys.js");
  await withRawDb(dataPath, async (db) => expect(await db.get(META_IDENTITY)).toBeUndefined());
});
