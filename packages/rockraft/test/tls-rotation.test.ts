import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "@rockraft/config";
import { handshake, issue, makeCa, serialOf, writeTlsFiles } from "@rockraft/test-utils/certs";
import { afterEach, expect, test } from "vitest";
import { RockraftClient, RockraftError } from "../src/index.js";
import { nodeConfigText, startCluster, type TestCluster } from "./helpers/cluster.js";

// Certificate rotation without a restart: a reload reads the TLS files again, and
// connections made afterwards use the new certificate and CA.
let cluster: TestCluster | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

test(
  "a reload reads the TLS files again: new connections get the renewed certificate and the new CA; a broken file changes nothing",
  { timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "rockraft-rotation-"));
    dirs.push(dir);
    const oldCa = makeCa("old CA");
    const newCa = makeCa("new CA");
    const first = issue(oldCa, "node");
    const files = writeTlsFiles(dir, oldCa, first);
    const tls = `\n[tls]\ncert_file = "${files.certFile}"\nkey_file = "${files.keyFile}"\nca_file = "${files.caFile}"\nrequire_client_cert = true\n`;
    cluster = await startCluster(3, { extraRaft: tls });
    const node = cluster.node(1);
    const address = cluster.configs.get(1)!.node.advertiseAddr;
    const running = cluster.configs.get(1)!;
    const oldClient = issue(oldCa, "client");
    const newClient = issue(newCa, "client");
    expect(await handshake(address, oldCa.certPem, oldClient)).toEqual({
      serial: serialOf(first),
    });
    expect(await handshake(address, oldCa.certPem, newClient)).toHaveProperty("refused");

    // The certificate is renewed in place and the new CA is trusted alongside the old.
    const renewed = issue(oldCa, "node");
    writeFileSync(files.certFile, renewed.certPem);
    writeFileSync(files.keyFile, renewed.keyPem);
    writeFileSync(files.caFile, oldCa.certPem + newCa.certPem);
    const port = Number(running.node.raftAddr.split(":")[1]);
    const sameFile = parseConfig(nodeConfigText(1, port, running.storage.dataPath, tls), {
      source: "node1.toml",
    });
    const changes = await node.reloadConfig(sameFile);
    expect(changes.map((c) => c.key)).toEqual(["tls.certificate", "tls.ca"]);
    expect(node.metrics().configGeneration).toBe(2);
    const bundle = oldCa.certPem + newCa.certPem;
    expect(await handshake(address, bundle, newClient)).toEqual({
      serial: serialOf(renewed),
    });
    // The cluster goes on: node 1's peers accept its new certificate (the same CA).
    const client = new RockraftClient({
      endpoints: [address],
      tls: files,
    });
    try {
      await client.put("after rotation", "ok");
    } finally {
      client.close();
    }

    // A damaged key: the reload is refused, naming the files, and nothing changes.
    writeFileSync(files.keyFile, "not a key");
    const refused = await node.reloadConfig(sameFile).then(
      () => undefined,
      (error: unknown) => error as RockraftError,
    );
    expect(refused).toMatchObject({ code: "RAFT_INVALID_ARGUMENT" });
    expect(refused!.message).toContain("unusable together");
    expect(node.metrics().configGeneration).toBe(2);
    expect(await handshake(address, bundle, newClient)).toEqual({
      serial: serialOf(renewed),
    });
  },
);
