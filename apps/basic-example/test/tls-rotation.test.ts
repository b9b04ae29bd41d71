import { writeFileSync } from "node:fs";
import { expect, test } from "vitest";
import { handshake, issue, makeCa, serialOf, writeTlsFiles } from "@rockraft/test-utils/certs";
import { startExampleCluster } from "./helpers/processes.js";

// Certificate rotation by SIGHUP, real processes: a node reads its TLS files again, and
// connections made afterwards get the renewed certificate, with no restart.
test("SIGHUP: a certificate renewed in place is presented by new connections, without a restart", async () => {
  const ca = makeCa();
  const first = issue(ca, "rockraft-peer");
  const client = issue(ca, "client");
  let files: { caFile: string; certFile: string; keyFile: string } | undefined;
  const cluster = await startExampleCluster((dir) => {
    files ??= writeTlsFiles(dir, ca, first);
    return `\n[tls]\ncert_file = "${files.certFile}"\nkey_file = "${files.keyFile}"\nca_file = "${files.caFile}"\nrequire_client_cert = true\npeer_common_name = "rockraft-peer"\n`;
  });
  try {
    const node1 = cluster.nodes[0]!;
    expect(await handshake(node1.address, ca.certPem, client)).toEqual({ serial: serialOf(first) });

    const renewed = issue(ca, "rockraft-peer");
    writeFileSync(files!.certFile, renewed.certPem);
    writeFileSync(files!.keyFile, renewed.keyPem);
    node1.child!.kill("SIGHUP");
    await node1.waitForOutput(/✓ Config reloaded \(1 changed\)/);
    expect(await handshake(node1.address, ca.certPem, client)).toEqual({
      serial: serialOf(renewed),
    });
    expect(node1.running()).toBe(true);
  } finally {
    await cluster.cleanup();
  }
}, 120_000);
