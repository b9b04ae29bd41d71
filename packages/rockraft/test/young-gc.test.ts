import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "@rockraft/config";
import { pino } from "pino";
import { afterEach, describe, expect, test } from "vitest";
import { RaftNodeBuilder, RockraftError, type BuildOptions } from "../src/index.js";
import {
  YOUNG_GC_CHECK_EVERY,
  YOUNG_GC_MAX_ENTRIES,
  YoungGcScheduler,
  v8YoungGcHooks,
} from "../src/young-gc.js";
import { freePorts, nodeConfigText, startCluster, type TestCluster } from "./helpers/cluster.js";

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Enough event-loop turns for any collection the scheduler has set up to have run. */
const settled = async () => {
  for (let i = 0; i < 3; i++) await turn();
};

function fakeHooks(fill: number) {
  const calls = { collect: 0, fill: 0 };
  const hooks = {
    collect: () => void calls.collect++,
    fill: () => {
      calls.fill++;
      return fill;
    },
  };
  return { calls, hooks };
}

describe("YoungGcScheduler", () => {
  test("collects two event-loop turns after the appends were sent, once the young generation is 60% full", async () => {
    const { calls, hooks } = fakeHooks(0.7);
    const scheduler = new YoungGcScheduler(hooks);
    for (let i = 0; i < YOUNG_GC_CHECK_EVERY; i++) scheduler.afterAppendsSent(1);
    expect(calls.collect).toBe(0);
    await turn(); // the transport's flush runs in this turn's setImmediate
    expect(calls.collect).toBe(0);
    await turn(); // Node's HTTP/2 session writes on the next
    await turn();
    expect(calls.collect).toBe(1);
  });

  test("below the threshold it leaves the collector alone, and reads the fill only every few appends", async () => {
    const { calls, hooks } = fakeHooks(0.5);
    const scheduler = new YoungGcScheduler(hooks);
    for (let i = 0; i < 2 * YOUNG_GC_CHECK_EVERY; i++) scheduler.afterAppendsSent(1);
    await settled();
    expect(calls).toEqual({ collect: 0, fill: 2 });
  });

  test("schedules one collection at a time", async () => {
    const { calls, hooks } = fakeHooks(0.9);
    const scheduler = new YoungGcScheduler(hooks);
    for (let i = 0; i < 5 * YOUNG_GC_CHECK_EVERY; i++) scheduler.afterAppendsSent(1);
    await settled();
    expect(calls).toEqual({ collect: 1, fill: 1 });
  });

  test("stays out of the way of a busy leader", async () => {
    const { calls, hooks } = fakeHooks(0.9);
    const scheduler = new YoungGcScheduler(hooks);
    for (let i = 0; i < 2 * YOUNG_GC_CHECK_EVERY; i++) {
      scheduler.afterAppendsSent(YOUNG_GC_MAX_ENTRIES + 1);
    }
    await settled();
    expect(calls).toEqual({ collect: 0, fill: 0 });
  });

  test("close() skips a collection already scheduled, and schedules none after", async () => {
    const { calls, hooks } = fakeHooks(0.9);
    const scheduler = new YoungGcScheduler(hooks);
    for (let i = 0; i < YOUNG_GC_CHECK_EVERY; i++) scheduler.afterAppendsSent(1);
    scheduler.close();
    for (let i = 0; i < YOUNG_GC_CHECK_EVERY; i++) scheduler.afterAppendsSent(1);
    await settled();
    expect(calls.collect).toBe(0);
  });
});

describe("V8's hooks", () => {
  const exposed = globalThis as { gc?: unknown };
  afterEach(() => {
    delete exposed.gc;
  });

  test("exist only when the process exposes the collector", () => {
    expect(exposed.gc).toBeUndefined(); // vitest's workers run without --expose-gc
    expect(v8YoungGcHooks()).toBeUndefined();
    const seen: unknown[] = [];
    exposed.gc = (options: unknown) => void seen.push(options);
    const hooks = v8YoungGcHooks()!;
    hooks.collect();
    expect(seen).toEqual([{ type: "minor" }]);
    const fill = hooks.fill();
    expect(fill).toBeGreaterThan(0);
    expect(fill).toBeLessThanOrEqual(1);
  });
});

describe('BuildOptions.youngGc: "scheduled"', () => {
  const exposed = globalThis as { gc?: unknown };
  let cluster: TestCluster | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    delete exposed.gc;
    await cluster?.close();
    cluster = undefined;
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  test(
    "a leader writing one value at a time collects the young generation itself; every write is applied",
    { timeout: 120_000 },
    async () => {
      const minor: unknown[] = [];
      exposed.gc = (options: unknown) => void minor.push(options);
      cluster = await startCluster(3, { buildOptions: { youngGc: "scheduled" } });
      const leader = cluster.leader()!;
      const value = "v".repeat(256);
      // Three nodes in this process allocate well over 100 KB per write: 400 writes fill any
      // young generation V8 sizes (at most 16 MB here) several times over.
      for (let i = 0; i < 400; i++) {
        await leader.raft().clientWrite({ key: `key-${i}`, value });
      }
      expect(minor.length).toBeGreaterThan(0);
      expect(minor.every((options) => JSON.stringify(options) === '{"type":"minor"}')).toBe(true);
      for (const node of cluster.nodes.values()) {
        expect(new TextDecoder().decode(await node.raft().read("key-399"))).toBe(value);
      }
    },
  );

  test("without the collector exposed, the node says so and keeps V8's timing", async () => {
    const dir = await mkdtemp(join(tmpdir(), "rockraft-young-gc-"));
    dirs.push(dir);
    const [port] = await freePorts(1);
    const config = parseConfig(nodeConfigText(1, port!, join(dir, "node1")), {
      source: "node1.toml",
    });
    const lines: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(line) });
    const node = await RaftNodeBuilder.build(config, { logger, youngGc: "scheduled" });
    await node.shutdown();
    expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toContain(
      'youngGc: "scheduled" needs the collector exposed (node --expose-gc); keeping V8\'s own timing',
    );
  });

  test("an unknown value is refused, naming the option", async () => {
    const [port] = await freePorts(1);
    const config = parseConfig(nodeConfigText(1, port!, join(tmpdir(), "never-opened")), {
      source: "node1.toml",
    });
    const options = { youngGc: "sometimes" } as unknown as BuildOptions;
    const error = await RaftNodeBuilder.build(config, options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RockraftError);
    expect((error as RockraftError).code).toBe("RAFT_INVALID_ARGUMENT");
    expect((error as RockraftError).message).toBe(
      'BuildOptions.youngGc: expected "v8" or "scheduled", got "sometimes"',
    );
  });
});
