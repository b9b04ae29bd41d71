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

/** What {@link applyCommands} returns. */
export interface AppliedCommands {
  /** One result per entry applied, in order. */
  readonly results: ApplyResult[];
  /** The applied position afterwards (the one given when no entry was new). */
  readonly applied: SnapshotMetadata;
}

/**
 * What committed entries do to a key-value state machine: the KV commands (put, delete,
 * compare-and-swap) read and write through `read` and `write`; membership entries change the
 * membership and no-ops only move the applied position. Entries at or below `applied` are
 * skipped (so that applying again is exactly once); the rest must follow it without a gap.
 * Within the call, a read sees the writes before it. Returns one result per entry applied
 * and the new applied position (`applied` itself when none was new). LevelStorage applies
 * with it; so can a store of your own, or a simulated one.
 */
export async function applyCommands(
  entries: readonly Entry[],
  applied: SnapshotMetadata,
  read: (key: Uint8Array) => Promise<Uint8Array | undefined> | Uint8Array | undefined,
  write: (key: Uint8Array, value: Uint8Array | undefined) => void,
): Promise<AppliedCommands> {
  const overlay = new Map<string, Uint8Array | null>();
  const results: ApplyResult[] = [];
  let { index: lastIndex, term: lastTerm, confState } = applied;
  const current = async (key: Uint8Array): Promise<Uint8Array | undefined> => {
    const pending = overlay.get(keyString(key));
    // A copy: the value is a view of a log entry (decodeCommand), and callers get it.
    if (pending !== undefined) return pending?.slice() ?? undefined;
    return read(key);
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
        write(command.key, command.value);
        results.push({ index, term, kind: "put", ...tag });
        break;
      case "delete": {
        const found = (await current(command.key)) !== undefined;
        overlay.set(key, null);
        write(command.key, undefined);
        results.push({ index, term, kind: "delete", found, ...tag });
        break;
      }
      case "cas": {
        const before = await current(command.key);
        const found = before !== undefined;
        const succeeded =
          found === command.expectFound && (!found || sameBytes(before, command.expected));
        if (succeeded) {
          overlay.set(key, command.value);
          write(command.key, command.value);
        }
        results.push({ index, term, kind: "cas", succeeded, found, current: before, ...tag });
        break;
      }
    }
  }
  if (results.length === 0) return { results, applied };
  return { results, applied: { index: lastIndex, term: lastTerm, confState } };
}

/**
 * Applies `entries` to the state machine of `generation` (see `applyCommands`): appends the
 * data writes and the new applied position to `ops` (nothing when no entry is new) and
 * returns the results and the position, which the caller records once `ops` are written.
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
  const outcome = await applyCommands(
    entries,
    state.applied,
    (key) => state.read(dataKey(generation, key)),
    (key, value) =>
      ops.push(
        value === undefined
          ? { type: "del", key: dataKey(generation, key) }
          : { type: "put", key: dataKey(generation, key), value: sealValue(key, value) },
      ),
  );
  if (outcome.results.length > 0) {
    ops.push({
      type: "put",
      key: stateMetaKey(generation),
      value: encodeMetadata(outcome.applied),
    });
  }
  return outcome;
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
