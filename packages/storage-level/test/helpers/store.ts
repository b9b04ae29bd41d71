import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry, SnapshotMetadata } from "@rockraft/raft-core";
import {
  encodeCommand,
  openStorage,
  type LevelStorage,
  type SnapshotChunk,
} from "../../src/index.js";

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

/** A store's snapshot stream, read whole: its metadata and chunks. */
export async function readAll(store: LevelStorage, chunkBytes: number) {
  const reader = await store.openSnapshotReader(chunkBytes);
  const chunks: SnapshotChunk[] = [];
  for await (const chunk of reader.chunks()) chunks.push(chunk);
  return { metadata: reader.metadata, chunks };
}

/** Installs a stream read by `readAll` into `target`, as a follower does (stage, then persist). */
export async function install(
  target: LevelStorage,
  source: { metadata: SnapshotMetadata; chunks: SnapshotChunk[] },
) {
  const installer = await target.beginSnapshotInstall(source.metadata);
  for (const chunk of source.chunks) await installer.write(chunk);
  await installer.finish(source.chunks.at(-1)!.checksum!);
  await target.persist({
    entries: [],
    snapshot: { metadata: source.metadata, data: new Uint8Array() },
    mustSync: true,
  });
}
