import { writeFileSync } from "node:fs";
import { expect, test } from "vitest";
import { handshake, issue, makeCa, serialOf, writePem } from "@rockraft/test-utils/certs";
import { startExampleCluster } from "./helpers/processes.js";

// Certificate rotation by SIGHUP, real processes: a node reads its TLS files again, and
// connections made afterwards get the renewed certificate, with no restart.
test("SIGHUP: a certificate renewed in place is presented by new connections, without a restart", async () => {
  const ca = makeCa();
  const first = issue(ca, "rockraft-peer");
  const client = issue(ca, "client");
  let files: { ca: string; cert: string; key: string } | undefined;
  const cluster = await startExampleCluster((dir) => {
    files ??= {
      ca: writePem(dir, "ca.pem", ca.certPem),
      cert: writePem(dir, "node.pem", first.certPem),
      key: writePem(dir, "node.key", first.keyPem),
    };
    return `\n[tls]\ncert_file = "${files.cert}"\nkey_file = "${files.key}"\nca_file = "${files.ca}"\nrequire_client_cert = true\npeer_common_name = "rockraft-peer"\n`;
  });
  try {
    const node1 = cluster.nodes[0]!;
    expect(await handshake(node1.address, ca.certPem, client)).toEqual({ serial: serialOf(first) });

    const renewed = issue(ca, "rockraft-peer");
    writeFileSync(files!.cert, renewed.certPem);
    writeFileSync(files!.key, renewed.keyPem);
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
