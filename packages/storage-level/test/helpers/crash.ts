import type { ChildProcess } from "node:child_process";
import { createPrng } from "@rockraft/raft-core";
import { open, text } from "./store.js";
import { exited, startFixture, waitForLine } from "./child.js";

const KEYS = 50;

export interface CrashRound {
  /** When to kill: after a random delay, or right after a given stdout marker. */
  readonly killAt: { afterMs: number } | { marker: "install-writing" | "install-staged" | "begin" };
}

interface Observed {
  acked: number;
  batches: [number, number][];
  lines: number;
}

function observe(child: ChildProcess): Observed {
  const observed: Observed = { acked: 0, batches: [], lines: 0 };
  let buffer = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) {
      observed.lines++;
      const [kind, a, b] = line.split(" ");
      if (kind === "ack") observed.acked = Math.max(observed.acked, Number(a));
      if (kind === "begin") observed.batches.push([Number(a), Number(b)]);
    }
  });
  return observed;
}

/**
 * Runs the crash worker on `dataPath`, SIGKILLs it, reopens the store and checks: every
 * acknowledged batch is there, no batch is partly there, and the state machine equals a
 * replay of the log up to its applied index. Returns a one-line description, or throws.
 */
export async function crashRound(
  dataPath: string,
  seed: number,
  round: CrashRound,
): Promise<string> {
  const child = startFixture("crash-worker.ts", [dataPath, String(seed)]);
  const observed = observe(child);
  try {
    // A minute: a worker's start (tsx compiling it) can take many seconds on a loaded machine.
    await waitForLine(child, /^ready /, 60_000);
    const killAt = round.killAt;
    if ("afterMs" in killAt) await new Promise((resolve) => setTimeout(resolve, killAt.afterMs));
    else await waitForLine(child, new RegExp(`^${killAt.marker} `), 60_000);
  } finally {
    child.kill("SIGKILL");
    await exited(child);
  }

  const store = await open(dataPath, 1, "crash");
  try {
    const last = store.raftStorage.lastIndex();
    const applied = store.applied().index;
    if (last < observed.acked) {
      throw new Error(`acknowledged entry ${observed.acked} is missing: the store ends at ${last}`);
    }
    const boundaries = new Set(observed.batches.map(([, end]) => end));
    const firstBatchStart = observed.batches[0]?.[0] ?? last + 1;
    if (last >= firstBatchStart && !boundaries.has(last)) {
      throw new Error(`a partial batch is visible: the store ends at ${last}, inside a batch`);
    }
    if (applied > last) throw new Error(`applied ${applied} is beyond the log's end ${last}`);
    for (let key = 0; key < KEYS; key++) {
      let writer = applied;
      while (writer > 0 && writer % KEYS !== key) writer--;
      const expected = writer === 0 ? undefined : `v${writer}`.padEnd(200, ".");
      const actual = text(await store.get(new TextEncoder().encode(`k${key}`)));
      if (actual !== expected) {
        throw new Error(
          `k${key} is ${JSON.stringify(actual?.slice(0, 12))}, but replaying to ${applied} gives ${JSON.stringify(expected?.slice(0, 12))}`,
        );
      }
    }
    return `killed after ${observed.lines} lines: acked ${observed.acked}, store ends at ${last}, applied ${applied}`;
  } finally {
    await store.close();
  }
}

/** A mix of kill moments: random delays, mid-install, staged-but-not-switched, mid-batch. */
export function crashPlan(seed: number, rounds: number): CrashRound[] {
  const prng = createPrng(seed);
  const markers = ["install-writing", "install-staged", "begin"] as const;
  return Array.from({ length: rounds }, (_, i) =>
    i % 2 === 0
      ? { killAt: { afterMs: 50 + prng.nextInt(400) } }
      : { killAt: { marker: markers[prng.nextInt(3)]! } },
  );
}
