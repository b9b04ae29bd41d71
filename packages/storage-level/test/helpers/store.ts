import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry } from "@rockraft/raft-core";
import { encodeCommand, openStorage, type LevelStorage } from "../../src/index.js";

export const bytes = (text: string) => new TextEncoder().encode(text);
export const text = (data: Uint8Array | undefined) =>
  data === undefined ? undefined : new TextDecoder().decode(data);

/** A fresh temp directory per call; `cleanup` removes them all. */
export class TempDirs {
  private readonly dirs: string[] = [];

  async make(prefix = "rockraft-storage-"): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  }
}

export function open(dataPath: string, nodeId = 1, clusterId = "test"): Promise<LevelStorage> {
  return openStorage({ dataPath, nodeId, clusterId });
}

export function put(index: number, term: number, key: string, value: string): Entry {
  return {
    index,
    term,
    type: "normal",
    data: encodeCommand({ op: "put", key: bytes(key), value: bytes(value) }),
  };
}

export function entry(index: number, term: number, payload = `e${index}`): Entry {
  return { index, term, type: "normal", data: bytes(payload) };
}

/** Appends entries durably, like a Ready with entries. */
export async function append(store: LevelStorage, entries: Entry[], commit?: number) {
  await store.persist({
    entries,
    mustSync: true,
    ...(commit === undefined
      ? {}
      : { hardState: { term: entries.at(-1)?.term ?? 0, vote: 0, commit } }),
  });
}
