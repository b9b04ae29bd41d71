import { readFile, writeFile } from "node:fs/promises";
import { afterEach, expect, test } from "vitest";
import { RockraftClient, RockraftClientError } from "@rockraft/transport-grpc";
import { waitFor } from "@rockraft/test-utils";
import { startExampleCluster } from "./helpers/processes.js";

// SIGHUP re-reads a node's config file: live keys change without a restart; a key that is
// not live, or a file that does not parse, is refused with a line naming it, and nothing
// changes.
let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

test("SIGHUP: a smaller value limit takes effect at once; a key that is not live, or a broken file, is refused and changes nothing", async () => {
  const cluster = await startExampleCluster();
  cleanup = cluster.cleanup;
  const node1 = cluster.nodes[0]!;
  const original = await readFile(node1.confPath, "utf8");
  const client = new RockraftClient({ endpoints: [node1.address], timeoutMs: 10_000 });
  const putAtNode1 = (value: string) =>
    client.put("k", value, { once: true }).catch((e: unknown) => e as RockraftClientError);
  try {
    expect(await putAtNode1("x".repeat(100))).not.toBeInstanceOf(Error);
    const hup = async (text: string) => {
      await writeFile(node1.confPath, text);
      node1.child!.kill("SIGHUP");
    };

    await hup(`${original}\n[limits]\nmax_value_bytes = 10\n`);
    await node1.waitForOutput(/✓ Config reloaded \(1 changed\)/);
    const refused = await putAtNode1("x".repeat(100));
    expect(refused).toMatchObject({ code: "INVALID_ARGUMENT" });
    expect((refused as Error).message).toMatch(/over the limit of 10 \(limits.max_value_bytes\)/);

    await hup(original.replace("tick_interval_ms = 20", "tick_interval_ms = 25"));
    await waitFor(() => /config not reloaded/.test(node1.errors), "the refusal", 10_000);
    expect(node1.errors).toMatch(
      /error: config not reloaded: reload from .*node1\.toml: raft\.tick_interval_ms \(20 → 25\) cannot change while the node runs: restart the node to change it; nothing was changed/,
    );
    await hup("[node]\nnode_id = \n");
    await waitFor(() => /invalid TOML/.test(node1.errors), "the parse error", 10_000);
    // Both refused: the limit of the first reload still holds, and the node still serves.
    expect(await putAtNode1("x".repeat(100))).toMatchObject({ code: "INVALID_ARGUMENT" });
    expect(await putAtNode1("small")).not.toBeInstanceOf(Error);
    expect(node1.running()).toBe(true);

    // The admin API does what SIGHUP does: the original file, its limit back.
    await writeFile(node1.confPath, original);
    const reloaded = await client.reloadConfig({ endpoint: node1.address });
    expect(reloaded).toEqual({
      changes: [{ key: "limits.max_value_bytes", oldJson: "10", newJson: "1048576" }],
      generation: 3,
    });
    expect((await client.getConfig({ endpoint: node1.address })).generation).toBe(3);
    expect(await putAtNode1("x".repeat(100))).not.toBeInstanceOf(Error);

    // config set: a live key in place of the file's, through later SIGHUPs, until unset.
    expect(
      await client.setConfig("limits.max_value_bytes", 20, { endpoint: node1.address }),
    ).toEqual({
      changes: [{ key: "limits.max_value_bytes", oldJson: "1048576", newJson: "20" }],
      generation: 4,
    });
    expect(await putAtNode1("x".repeat(100))).toMatchObject({ code: "INVALID_ARGUMENT" });
    node1.child!.kill("SIGHUP");
    await node1.waitForOutput(/✓ Config reloaded \(0 changed\)/);
    expect(await putAtNode1("x".repeat(100))).toMatchObject({ code: "INVALID_ARGUMENT" });
    expect(JSON.parse((await client.getConfig({ endpoint: node1.address })).overridesJson)).toEqual(
      {
        "limits.max_value_bytes": 20,
      },
    );
    const notLive = await client
      .setConfig("raft.tick_interval_ms", 25, { endpoint: node1.address })
      .catch((e: unknown) => e as RockraftClientError);
    expect(notLive).toMatchObject({ code: "INVALID_ARGUMENT" });
    await client.setConfig("limits.max_value_bytes", undefined, { endpoint: node1.address });
    expect(await putAtNode1("x".repeat(100))).not.toBeInstanceOf(Error);
  } finally {
    client.close();
  }
}, 120_000);
