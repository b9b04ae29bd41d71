import { afterAll, test } from "vitest";
import { storageConformanceTests, type StorageHarness } from "@rockraft/raft-core/testing";
import type { LevelStorage } from "../src/index.js";
import { TempDirs, open } from "./helpers/store.js";

// raft-core's storage contract, against real LevelDB in temp directories.
const dirs = new TempDirs();
afterAll(() => dirs.cleanup());

function harness(store: LevelStorage, dataPath: string): StorageHarness {
  return {
    storage: store.raftStorage,
    append: async (entries) => {
      await store.persist({ entries, mustSync: true });
    },
    setHardState: async (hardState) => {
      await store.persist({ entries: [], hardState, mustSync: true });
    },
    applySnapshot: async (snapshot) => {
      const installer = await store.beginSnapshotInstall(snapshot.metadata);
      await installer.finish(0);
      await store.persist({ entries: [], snapshot, mustSync: true });
    },
    snapshotAndCompact: async (index, confState) => {
      await store.recordSnapshot(index, confState);
      await store.persist({ entries: [], compactIndex: index, mustSync: true });
    },
    reopen: async () => {
      await store.close();
      return harness(await open(dataPath), dataPath);
    },
    close: () => store.close(),
  };
}

storageConformanceTests({
  test,
  durable: true,
  create: async () => {
    const dataPath = await dirs.make();
    return harness(await open(dataPath), dataPath);
  },
});
