import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, test } from "vitest";
import { storageConformanceTests, type StorageHarness } from "@rockraft/raft-core/testing";
import { openStorage } from "@rockraft/storage-level";
import {
  nodeStorageConformanceTests,
  type NodeStorageHarness,
} from "./helpers/node-storage-conformance.js";
import { SimDisk } from "./sim/sim-disk.js";
import { SimStorage } from "./sim/sim-storage.js";

// One storage contract, two implementations: LevelStorage on real LevelDB (production) and
// SimStorage on a simulated disk (the whole-node simulation). Both must pass the runtime's
// suite, and the simulated one raft-core's as well (LevelStorage runs it in its package).

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function level(): Promise<NodeStorageHarness> {
  const dataPath = await mkdtemp(join(tmpdir(), "rockraft-conformance-"));
  dirs.push(dataPath);
  const open = async (): Promise<NodeStorageHarness> => {
    const storage = await openStorage({ dataPath, nodeId: 1, clusterId: "test" });
    return {
      storage,
      reopen: async () => {
        await storage.close();
        return open();
      },
      close: () => storage.close(),
    };
  };
  return open();
}

function simulated(disk = new SimDisk()): NodeStorageHarness {
  const storage = SimStorage.open(
    disk,
    () => Promise.resolve(),
    () => 0,
  );
  return {
    storage,
    reopen: async () => {
      await storage.close();
      return simulated(disk);
    },
    close: () => storage.close(),
  };
}

describe("LevelStorage", () => {
  nodeStorageConformanceTests({ test, create: level });
});

describe("SimStorage", () => {
  nodeStorageConformanceTests({ test, create: () => Promise.resolve(simulated()) });

  function raftHarness(disk: SimDisk): StorageHarness {
    const store = SimStorage.open(
      disk,
      () => Promise.resolve(),
      () => 0,
    );
    return {
      storage: store.raftStorage,
      append: async (entries) => {
        await store.persist({ entries, mustSync: true });
      },
      setHardState: async (hardState) => {
        await store.persist({ entries: [], hardState, mustSync: true });
      },
      applySnapshot: async (snapshot) => {
        const sink = await store.beginSnapshotInstall(snapshot.metadata);
        await sink.finish(0);
        await store.persist({ entries: [], snapshot, mustSync: true });
      },
      snapshotAndCompact: async (index, confState) => {
        await store.recordSnapshot(index, confState);
        await store.persist({ entries: [], compactIndex: index, mustSync: true });
      },
      reopen: async () => {
        await store.close();
        return raftHarness(disk);
      },
      close: () => store.close(),
    };
  }
  storageConformanceTests({
    test,
    durable: true,
    create: () => Promise.resolve(raftHarness(new SimDisk())),
  });

  test("a crash keeps what was synced and loses the rest", async () => {
    const { expect } = await import("vitest");
    const disk = new SimDisk();
    const store = SimStorage.open(
      disk,
      () => Promise.resolve(),
      () => 0,
    );
    const entry = (index: number) => ({
      index,
      term: 1,
      type: "normal" as const,
      data: new Uint8Array(0),
    });
    await store.persist({ entries: [entry(1)], mustSync: true });
    await store.persist({ entries: [entry(2)], mustSync: false });
    disk.crash();
    const after = SimStorage.open(
      disk,
      () => Promise.resolve(),
      () => 0,
    );
    expect(after.raftStorage.lastIndex()).toBe(1);
  });

  test("a deferred apply dies with the process unless a write carried it", async () => {
    // As LevelStorage holds it: in memory until the next write's batch. The simulation once
    // wrote it to the disk at once, so a SIGKILL kept an applied index past the log.
    const { expect } = await import("vitest");
    const disk = new SimDisk();
    const open = () =>
      SimStorage.open(
        disk,
        () => Promise.resolve(),
        () => 0,
      );
    const store = open();
    const entry = { index: 1, term: 1, type: "normal" as const, data: new Uint8Array(0) };
    await store.apply([entry], { waitForWrite: false });
    expect(store.applied().index).toBe(1);
    disk.processDied();
    expect(open().applied().index).toBe(0);
    const again = open();
    await again.apply([entry], { waitForWrite: false });
    await again.persist({ entries: [entry], mustSync: false });
    disk.processDied(); // the operating system keeps what was written, synced or not
    expect(open().applied().index).toBe(1);
  });

  test("a failed write stops the store: every later call fails", async () => {
    const { expect } = await import("vitest");
    const disk = new SimDisk();
    const store = SimStorage.open(
      disk,
      () => Promise.resolve(),
      () => 0,
    );
    disk.failWrites = "ENOSPC: no space left on device";
    const entry = { index: 1, term: 1, type: "normal" as const, data: new Uint8Array(0) };
    await expect(store.persist({ entries: [entry], mustSync: true })).rejects.toThrow(/ENOSPC/);
    disk.failWrites = undefined;
    await expect(store.persist({ entries: [entry], mustSync: true })).rejects.toThrow(/closed/);
  });
});
