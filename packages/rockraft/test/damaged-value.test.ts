import { ClassicLevel } from "classic-level";
import { afterEach, expect, test } from "vitest";
import { RockraftError } from "../src/index.js";
import { eventually, startCluster, type TestCluster } from "./helpers/cluster.js";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

/** Flips one byte of every stored copy of `value` in the state machine (not the log). */
async function damageStoredValue(dataPath: string, value: string): Promise<number> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dataPath, {
    keyEncoding: "view",
    valueEncoding: "view",
  });
  await db.open();
  const needle = Buffer.from(value);
  let damaged = 0;
  // State machine keys start with 0x02 (log entries with 0x01 carry their own checksum).
  for await (const [key, stored] of db.iterator({
    gte: Uint8Array.of(0x02),
    lt: Uint8Array.of(0x03),
  })) {
    const at = Buffer.from(stored).indexOf(needle);
    if (at < 0) continue;
    stored[at]! ^= 0x01;
    await db.put(key, stored);
    damaged++;
  }
  await db.close();
  return damaged;
}

test(
  "a damaged value in a node's state is never served: the read fails and the node stops",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(3);
    await cluster.leader()!.raft().clientWrite({ key: "k", value: "precious value" });
    const leaderId = cluster.leader()!.metrics().nodeId;
    const id = [1, 2, 3].find((n) => n !== leaderId)!;
    await eventually(
      async () =>
        new TextDecoder().decode(await cluster!.node(id).raft().read("k", { mode: "local" })) ===
        "precious value",
      "node to apply the write",
    );
    // Stop it so that its state reaches LevelDB's files, flip a byte there, restart it.
    await cluster.stop(id);
    expect(
      await damageStoredValue(cluster.configs.get(id)!.storage.dataPath, "precious value"),
    ).toBe(1);
    const node = await cluster.start(id);
    // The read needs a leader, which the restarted node may take a few seconds to hear from.
    await node.raft().wait({ timeoutMs: 15_000 }).leader("after the restart");

    const refused = await node
      .raft()
      .read("k")
      .then(
        (value) => expect.fail(`served ${JSON.stringify(new TextDecoder().decode(value))}`),
        (error: unknown) => error as RockraftError,
      );
    expect(refused.code).toBe("RAFT_NODE_STOPPED");
    expect(refused.message).toMatch(/the stored value of key "k" is damaged: checksum mismatch/);
    expect((await node.failed).code).toBe("RAFT_NODE_STOPPED");
    expect(node.metrics().state).toBe("stopped");
    // The others still serve the value.
    expect(new TextDecoder().decode(await cluster.node(leaderId).raft().read("k"))).toBe(
      "precious value",
    );
  },
);
