import { afterEach, expect, test } from "vitest";
import { RockraftClient, RockraftClientError } from "@rockraft/transport-grpc";
import { waitFor } from "@rockraft/test-utils";
import { startExampleCluster } from "./helpers/processes.js";

// Exactly-once writes through client sessions, with real processes: the leader is killed
// (SIGKILL) while clients increment counters by compare-and-swap, and the client's retries
// (same session, same sequence number) must neither apply an increment twice nor leave a
// call with an unknown outcome while a quorum is up.
let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

const WRITERS = 4;

interface Counter {
  /** Increments the cluster acknowledged (`succeeded: true`). */
  acknowledged: number;
  /** Compare-and-swaps that found another value than the writer's own last one. */
  lostTrack: string[];
  /** Calls that ended with an unknown outcome, or failed at all. */
  failures: string[];
}

/** Increments counter `key` by compare-and-swap, one call at a time, while `running()`. */
async function increment(
  kv: RockraftClient,
  key: string,
  counter: Counter,
  running: () => boolean,
) {
  while (running()) {
    const value = counter.acknowledged;
    try {
      const result = await kv.compareAndSwap({
        key,
        expectFound: value > 0,
        expected: String(value),
        value: String(value + 1),
      });
      if (result.succeeded) counter.acknowledged++;
      else {
        // Only this writer writes `key`: a refusal means an earlier increment applied twice
        // (or its answer was lost and it applied anyway).
        const current =
          result.current === undefined ? "absent" : Buffer.from(result.current).toString();
        counter.lostTrack.push(`expected ${value}, found ${current}`);
        return;
      }
    } catch (error) {
      const unknown = error instanceof RockraftClientError && error.outcomeUnknown;
      counter.failures.push(`${unknown ? "outcome unknown: " : ""}${(error as Error).message}`);
      return;
    }
  }
}

test(
  "SIGKILL of the leader while clients increment counters by compare-and-swap: every increment applies exactly once, and no call's outcome is unknown",
  { timeout: 180_000 },
  async () => {
    const cluster = await startExampleCluster();
    cleanup = cluster.cleanup;
    const nodes = cluster.nodes;
    // Retries on (the default): each client writes in a session of its own.
    const clients = Array.from(
      { length: WRITERS },
      () => new RockraftClient({ endpoints: nodes.map((n) => n.address), timeoutMs: 20_000 }),
    );
    const counters: Counter[] = clients.map(() => ({
      acknowledged: 0,
      lostTrack: [],
      failures: [],
    }));
    let running = true;
    const writers = clients.map((kv, i) =>
      increment(kv, `counter${i}`, counters[i]!, () => running),
    );
    const total = () => counters.reduce((sum, c) => sum + c.acknowledged, 0);
    const problems = () =>
      counters.flatMap((c, i) => [...c.lostTrack, ...c.failures].map((p) => `counter${i}: ${p}`));
    try {
      for (let round = 0; round < 2; round++) {
        await waitFor(
          () => total() >= (round + 1) * 200 || problems().length > 0,
          "increments",
          60_000,
        );
        expect(problems()).toEqual([]);
        const leaderId = (await clients[0]!.metrics()).currentLeader;
        const leader = nodes.find((n) => n.id === leaderId)!;
        await leader.stop("SIGKILL");
        const before = total();
        await waitFor(
          () => total() >= before + 100 || problems().length > 0,
          "increments after the leader was killed",
          60_000,
        );
        leader.start();
        await leader.waitForOutput(/is running/);
      }
      await waitFor(
        () => total() >= 700 || problems().length > 0,
        "increments after the restarts",
        60_000,
      );
    } finally {
      running = false;
      await Promise.all(writers);
    }
    expect(problems()).toEqual([]);
    // Every node ends with exactly the acknowledged number of increments on each counter.
    for (const node of nodes) {
      const reader = new RockraftClient({ endpoints: [node.address], timeoutMs: 15_000 });
      try {
        for (let i = 0; i < WRITERS; i++) {
          const { value } = await reader.get(`counter${i}`);
          const stored = value === undefined ? 0 : Number(Buffer.from(value).toString());
          expect(stored, `counter${i} on node ${node.id}`).toBe(counters[i]!.acknowledged);
        }
      } finally {
        reader.close();
      }
    }
    for (const kv of clients) kv.close();
  },
);
