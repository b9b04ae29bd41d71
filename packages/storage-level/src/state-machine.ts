// The KV state machine: what a committed entry does to the data (put, delete,
// compare-and-swap; membership and no-op entries only move the applied position), and how a
// stored value is read back and verified.
import { decodeConfState, type Entry, type SnapshotMetadata } from "@rockraft/raft-core";
import { decodeCommand, encodeMetadata, openValue, sealValue } from "./codec.js";
import { StorageError } from "./errors.js";
import { REMEDY, isLevelCorruption, levelCause, printableKey } from "./format.js";
import { dataKey, stateMetaKey, userKey } from "./keys.js";
import type { ApplyResult, BatchOp, Db } from "./types.js";

export function keyString(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

/**
 * Applies `entries` to the state machine of `generation`: appends the data writes and the
 * new applied position to `ops` (nothing when no entry is new) and returns the results and
 * the position, which the caller records once `ops` are written. Entries at or below the
 * applied index are skipped (exactly once); `read` reads a data key's current value.
 */
export async function applyEntries(
  entries: readonly Entry[],
  ops: BatchOp[],
  state: {
    readonly generation: number;
    readonly applied: SnapshotMetadata;
    readonly read: (dataKey: Uint8Array) => Promise<Uint8Array | undefined>;
  },
): Promise<{ results: ApplyResult[]; applied: SnapshotMetadata }> {
  const generation = state.generation;
  const overlay = new Map<string, Uint8Array | null>();
  const results: ApplyResult[] = [];
  let { index: lastIndex, term: lastTerm, confState } = state.applied;
  const read = async (key: Uint8Array): Promise<Uint8Array | undefined> => {
    const pending = overlay.get(keyString(key));
    // A copy: the value is a view of a log entry (decodeCommand), and callers get it.
    if (pending !== undefined) return pending?.slice() ?? undefined;
    return state.read(dataKey(generation, key));
  };
  for (const entry of entries) {
    if (entry.index <= lastIndex) continue;
    if (entry.index !== lastIndex + 1) {
      throw new RangeError(
        `apply: entry ${entry.index} does not follow the applied index ${lastIndex}`,
      );
    }
    const { index, term } = entry;
    lastIndex = index;
    lastTerm = term;
    if (entry.type === "config") {
      confState = decodeConfState(entry.data);
      results.push({ index, term, kind: "config" });
      continue;
    }
    if (entry.data.byteLength === 0) {
      results.push({ index, term, kind: "noop" });
      continue;
    }
    let command;
    try {
      command = decodeCommand(entry.data);
    } catch (error) {
      results.push({ index, term, kind: "invalid", reason: (error as Error).message });
      continue;
    }
    const key = keyString(command.key);
    const tag = command.requestId === undefined ? {} : { requestId: command.requestId };
    switch (command.op) {
      case "put":
        overlay.set(key, command.value);
        ops.push({
          type: "put",
          key: dataKey(generation, command.key),
          value: sealValue(command.key, command.value),
        });
        results.push({ index, term, kind: "put", ...tag });
        break;
      case "delete": {
        const found = (await read(command.key)) !== undefined;
        overlay.set(key, null);
        ops.push({ type: "del", key: dataKey(generation, command.key) });
        results.push({ index, term, kind: "delete", found, ...tag });
        break;
      }
      case "cas": {
        const current = await read(command.key);
        const found = current !== undefined;
        const succeeded =
          found === command.expectFound && (!found || sameBytes(current, command.expected));
        if (succeeded) {
          overlay.set(key, command.value);
          ops.push({
            type: "put",
            key: dataKey(generation, command.key),
            value: sealValue(command.key, command.value),
          });
        }
        results.push({ index, term, kind: "cas", succeeded, found, current, ...tag });
        break;
      }
    }
  }
  const applied: SnapshotMetadata = { index: lastIndex, term: lastTerm, confState };
  if (results.length > 0) {
    ops.push({ type: "put", key: stateMetaKey(generation), value: encodeMetadata(applied) });
  }
  return { results, applied: results.length > 0 ? applied : state.applied };
}

/**
 * A data key's value: a deferred apply's (from `deferred`), else LevelDB's, its checksum
 * verified. A value that fails it is never returned: STORAGE_CORRUPTED, which stops the node.
 */
export async function readValue(
  db: Db,
  deferred: ReadonlyMap<string, Uint8Array | null>,
  key: Uint8Array,
  path: string,
): Promise<Uint8Array | undefined> {
  let stored: Uint8Array | null | undefined;
  if (deferred.size > 0) stored = deferred.get(keyString(key));
  // A deferred value is shared (the pending batch holds it): callers get a copy of it.
  const shared = stored !== undefined;
  if (stored === undefined) {
    try {
      stored = await db.get(key);
    } catch (error) {
      // LevelDB found a damaged table block: the node must stop, not answer per key.
      if (isLevelCorruption(error)) throw damagedValue(userKey(key), levelCause(error), path);
      throw error;
    }
  }
  if (stored === undefined || stored === null) return undefined;
  try {
    const value = openValue(userKey(key), stored);
    return shared ? value.slice() : value;
  } catch (error) {
    throw damagedValue(userKey(key), error, path);
  }
}

function damagedValue(key: Uint8Array, error: unknown, path: string): StorageError {
  return new StorageError(
    "STORAGE_CORRUPTED",
    path,
    `data path ${path}: the stored value of key ${printableKey(key)} is damaged: ${(error as Error).message}. The node must not serve it: ${REMEDY}`,
    { cause: error },
  );
}
