import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { parseConfig } from "@rockraft/config";
import { RaftNodeBuilder, type RaftNode } from "../src/index.js";
import { freePorts, nodeConfigText } from "./helpers/cluster.js";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

test("a start that fails leaves a new data directory unclaimed: the corrected config starts on it", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rockraft-failed-start-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const dataPath = join(dir, "data");
  const [busy, free] = (await freePorts(2)) as [number, number];
  const squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen(busy, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => squatter.close(resolve)));

  // A typo: node 9 on a port in use. The start fails...
  const wrong = parseConfig(nodeConfigText(9, busy, dataPath), { source: "wrong.toml" });
  await expect(RaftNodeBuilder.build(wrong)).rejects.toThrow(/already in use/);

  // ...and the corrected config (node 1, a free port) starts on the same data path.
  const right = parseConfig(nodeConfigText(1, free, dataPath), { source: "right.toml" });
  const node: RaftNode = await RaftNodeBuilder.build(right);
  cleanups.push(() => node.shutdown());
  expect(node.metrics().nodeId).toBe(1);
  await node.shutdown();

  // Once started, the directory is node 1's.
  const other = parseConfig(nodeConfigText(2, free, dataPath), { source: "other.toml" });
  await expect(RaftNodeBuilder.build(other)).rejects.toThrow(/belongs to node 1 of cluster/);
});

test("a metrics port in use is named in the error, and the start leaves nothing running", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rockraft-failed-start-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const [busy, free] = (await freePorts(2)) as [number, number];
  const squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen(busy, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => squatter.close(resolve)));
  const text = `${nodeConfigText(1, free, join(dir, "data"))}\n[metrics]\naddr = "127.0.0.1:${busy}"\n`;
  const config = parseConfig(text, { source: "node1.toml" });
  await expect(RaftNodeBuilder.build(config)).rejects.toThrow(
    `metrics.addr: 127.0.0.1:${busy} is already in use by another process`,
  );
  // Its gRPC port and data directory were released: the same config starts once the port is free.
  await new Promise((resolve) => squatter.close(resolve));
  const node = await RaftNodeBuilder.build(config);
  await node.shutdown();
});
