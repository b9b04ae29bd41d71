import type { Entry } from "../../src/index.js";
import type { RaftLog } from "../../src/log.js";
import { SimViolation } from "./violation.js";

const dataHashes = new WeakMap<Uint8Array, number>();

function dataHash(data: Uint8Array): number {
  let hash = dataHashes.get(data);
  if (hash !== undefined) return hash;
  hash = 0x811c9dc5;
  for (const byte of data) hash = Math.imul(hash ^ byte, 0x01000193);
  hash >>>= 0;
  dataHashes.set(data, hash);
  return hash;
}

/** Hash of a log prefix ending with `entry`, chained from the previous prefix's hash. */
export function chainHash(previous: number, entry: Entry): number {
  let hash = Math.imul(previous ^ entry.index, 0x9e3779b1);
  hash = Math.imul(hash ^ entry.term, 0x85ebca6b);
  hash = Math.imul(
    hash ^ dataHash(entry.data) ^ (entry.type === "config" ? 0x5bd1e995 : 0),
    0xc2b2ae35,
  );
  return (hash ^ (hash >>> 15)) >>> 0;
}

/**
 * Every node's log as a chain of prefix hashes, kept up to date incrementally. Two logs
 * agree up to index i exactly when their prefix hashes at i are equal. Logs only change at
 * their tail (truncate and append) or lose their head to a snapshot, so each update
 * re-hashes only the changed suffix.
 *
 * Log Matching (§5.3) is checked here as hashes are computed: the first prefix hash seen for
 * an (index, term) is the only one any node may ever have for it.
 */
export class LogTracker {
  private readonly byPosition = new Map<string, number>();
  private readonly entries = new Map<number, (Entry | undefined)[]>();
  private readonly hashes = new Map<number, number[]>();
  private readonly firstIndexes = new Map<number, number>();

  /** Brings node `id`'s hashes up to date with `log`. */
  update(id: number, log: RaftLog): void {
    let entries = this.entries.get(id);
    let hashes = this.hashes.get(id);
    if (entries === undefined || hashes === undefined) {
      entries = [undefined];
      hashes = [0];
      this.entries.set(id, entries);
      this.hashes.set(id, hashes);
    }
    const first = log.firstIndex();
    const last = log.lastIndex();
    if (this.firstIndexes.get(id) !== first) {
      // The log restarts after a snapshot: its base is that snapshot's position.
      this.firstIndexes.set(id, first);
      const base = first - 1;
      const baseTerm = log.term(base) ?? 0;
      const known = base === 0 ? 0 : this.byPosition.get(`${base}/${baseTerm}`);
      if (known === undefined) {
        throw new SimViolation(
          "log-matching",
          `node ${id} holds a snapshot at (${base}, ${baseTerm}) that no log ever had`,
        );
      }
      entries.length = base + 1;
      hashes.length = base + 1;
      entries[base] = undefined;
      hashes[base] = known;
    }
    let same = Math.min(entries.length - 1, last);
    while (same >= first && log.entryAt(same) !== entries[same]) same--;
    if (same < first - 1) same = first - 1;
    entries.length = same + 1;
    hashes.length = same + 1;
    for (let index = same + 1; index <= last; index++) {
      const entry = log.entryAt(index)!;
      const hash = chainHash(hashes[index - 1]!, entry);
      const key = `${index}/${entry.term}`;
      const known = this.byPosition.get(key);
      if (known === undefined) this.byPosition.set(key, hash);
      else if (known !== hash) {
        throw new SimViolation(
          "log-matching",
          `node ${id} has entry (${index}, ${entry.term}) after a different prefix than another node`,
        );
      }
      entries.push(entry);
      hashes.push(hash);
    }
  }

  /** Prefix hash of node `id`'s log at `index`, or undefined if it does not reach it. */
  hashAt(id: number, index: number): number | undefined {
    return this.hashes.get(id)?.[index];
  }

  firstIndex(id: number): number {
    return this.firstIndexes.get(id) ?? 1;
  }
}
