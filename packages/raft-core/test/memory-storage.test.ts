import { test } from "vitest";
import { MemoryStorage } from "../src/index.js";
import { storageConformanceTests } from "../testing/index.js";

// MemoryStorage is the reference implementation of the storage contract.
storageConformanceTests({
  test,
  create: () => {
    const storage = new MemoryStorage();
    return {
      storage,
      append: (entries) => storage.append(entries),
      setHardState: (hardState) => storage.setHardState(hardState),
      applySnapshot: (snapshot) => storage.applySnapshot(snapshot),
      snapshotAndCompact: (index, confState, data) => {
        storage.createSnapshot(index, confState, data);
        storage.compact(index);
      },
    };
  },
});
