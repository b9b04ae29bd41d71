import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, test } from "vitest";
import {
  CertificateFiles,
  PeerTransport,
  RockraftClient,
  RockraftClientError,
  TransportError,
  type TransportLogger,
} from "../src/index.js";
import { makeCertificates } from "@rockraft/test-utils/certs";
import { metricsCluster, startServer, waitFor } from "./helpers/servers.js";

const dir = mkdtempSync(join(tmpdir(), "rockraft-tls-"));
const certs = makeCertificates(dir);
// The rotation tests' next certificates, made here: making them takes seconds on a loaded
// machine, out of no test's time.
const nextDir = mkdtempSync(join(tmpdir(), "rockraft-rotate-next-"));
const next = makeCertificates(nextDir);
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(nextDir, { recursive: true, force: true });
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tlsServer(
  requireClientCert: boolean,
  logger?: TransportLogger,
  peerCommonName?: string,
) {
  const started = await startServer({
    cluster: metricsCluster,
    ...(logger === undefined ? {} : { logger }),
    tls: {
      caFile: certs.caFile,
      certFile: certs.certFile,
      keyFile: certs.keyFile,
      requireClientCert,
      ...(peerCommonName === undefined ? {} : { peerCommonName }),
    },
  });
  cleanups.push(() => started.server.shutdown(100));
  return started;
}

/** The deadline of a call that must be served (a handshake may be slow on a loaded machine). */
const SERVED_MS = 10_000;

/** A client of `address`; its calls' deadline is 2 s (one expected to be refused) or `timeoutMs`. */
function clientOf(
  address: string,
  tls: ConstructorParameters<typeof RockraftClient>[0]["tls"],
  timeoutMs = 2_000,
) {
  const client = new RockraftClient({
    endpoints: [address],
    timeoutMs,
    ...(tls === undefined ? {} : { tls }),
  });
  cleanups.push(() => client.close());
  return client;
}

/** A peer transport of node 1 sending to node 2 at `address`, and the peers it found unreachable. */
function peerTransportTo(
  address: string,
  tls: ConstructorParameters<typeof PeerTransport>[0]["tls"],
  backoffMaxMs?: number,
) {
  const unreachable: number[] = [];
  const peers = new PeerTransport({
    nodeId: 1,
    clusterId: "test",
    tls,
    backoffInitialMs: 20,
    ...(backoffMaxMs === undefined ? {} : { backoffMaxMs }),
    onUnreachable: (peer) => unreachable.push(peer),
    onSnapshotStatus: () => undefined,
    snapshotSource: () => Promise.reject(new Error("none")),
  });
  peers.setPeers([[2, address]]);
  cleanups.push(() => peers.close());
  return { peers, unreachable };
}

/** A heartbeat from node 1 to node 2. */
const HEARTBEAT = {
  type: "MsgHeartbeat" as const,
  from: 1,
  to: 2,
  term: 1,
  commit: 0,
  context: "",
};

describe("TLS", () => {
  test("a client that trusts the CA is served over TLS", async () => {
    const { address } = await tlsServer(false);
    const metrics = await clientOf(address, { caFile: certs.caFile }, SERVED_MS).metrics();
    expect(metrics.state).toBe("leader");
  });

  test("a plaintext client is refused by a TLS server", async () => {
    const { address } = await tlsServer(false);
    const error = await clientOf(address, undefined)
      .metrics()
      .catch((e: unknown) => e as RockraftClientError);
    expect(error).toBeInstanceOf(RockraftClientError);
    expect((error as RockraftClientError).code).toBe("UNAVAILABLE");
  });

  test("a client that does not trust the server's CA is refused", async () => {
    const { address } = await tlsServer(false);
    const error = await clientOf(address, { caFile: certs.strangerCertFile })
      .metrics()
      .catch((e: unknown) => e as RockraftClientError);
    expect((error as RockraftClientError).code).toBe("UNAVAILABLE");
  });
});

describe("mutual TLS", () => {
  test("a client with a certificate from the cluster's CA is accepted", async () => {
    const { address } = await tlsServer(true);
    const client = clientOf(
      address,
      { caFile: certs.caFile, certFile: certs.certFile, keyFile: certs.keyFile },
      SERVED_MS,
    );
    expect((await client.metrics()).nodeId).toBe(2);
  });

  test("a client without a certificate is refused", async () => {
    const { address } = await tlsServer(true);
    const error = await clientOf(address, { caFile: certs.caFile })
      .metrics()
      .catch((e: unknown) => e as RockraftClientError);
    expect((error as RockraftClientError).code).toBe("UNAVAILABLE");
  });

  test("a client with a certificate from another CA is refused", async () => {
    const { address } = await tlsServer(true);
    const client = clientOf(address, {
      caFile: certs.caFile,
      certFile: certs.strangerCertFile,
      keyFile: certs.strangerKeyFile,
    });
    const error = await client.metrics().catch((e: unknown) => e as RockraftClientError);
    expect((error as RockraftClientError).code).toBe("UNAVAILABLE");
  });

  test("peers with valid certificates exchange messages; a peer without one is refused", async () => {
    const { inbox, address } = await tlsServer(true);
    const make = (tls: ConstructorParameters<typeof PeerTransport>[0]["tls"]) =>
      peerTransportTo(address, tls);
    const message = HEARTBEAT;
    const stranger = make({
      caFile: certs.caFile,
      certFile: certs.strangerCertFile,
      keyFile: certs.strangerKeyFile,
    });
    const trusted = make({
      caFile: certs.caFile,
      certFile: certs.certFile,
      keyFile: certs.keyFile,
    });
    await waitFor(() => {
      trusted.peers.send([message]);
      return inbox.messages.length > 0;
    }, "the trusted peer's message");
    // The stranger keeps trying; each try is refused and reported.
    await waitFor(() => {
      stranger.peers.send([{ ...message, commit: 99 }]);
      return stranger.unreachable.length >= 3;
    }, "the stranger's messages to be refused three times");
    expect(inbox.messages.filter((m) => m.type === "MsgHeartbeat" && m.commit === 99)).toEqual([]);
  });

  test("with peerCommonName, a client's certificate from the same CA cannot act as a peer", async () => {
    const { inbox, address } = await tlsServer(true, undefined, "node");
    const make = (certFile: string, keyFile: string) =>
      peerTransportTo(address, { caFile: certs.caFile, certFile, keyFile });
    const message = HEARTBEAT;
    const client = make(certs.clientCertFile, certs.clientKeyFile);
    await waitFor(() => {
      client.peers.send([{ ...message, commit: 7 }]);
      return client.unreachable.length >= 2;
    }, "the client certificate's messages to be refused");
    expect(inbox.messages).toEqual([]);
    const peer = make(certs.certFile, certs.keyFile);
    await waitFor(() => {
      peer.peers.send([message]);
      return inbox.messages.length > 0;
    }, "the peer's message");
    expect(inbox.messages.some((m) => m.type === "MsgHeartbeat" && m.commit === 7)).toBe(false);
  });

  test("a peer refused for its certificate logs why, at WARN, once per 30 s", async () => {
    const { address } = await tlsServer(true);
    const records: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
    const record =
      (level: string) =>
      (obj: Record<string, unknown>, msg = "") =>
        records.push({ level, obj, msg });
    const logger = {
      debug: record("debug"),
      info: record("info"),
      warn: record("warn"),
      error: record("error"),
    };
    const peers = new PeerTransport({
      nodeId: 1,
      clusterId: "test",
      tls: {
        caFile: certs.caFile,
        certFile: certs.strangerCertFile,
        keyFile: certs.strangerKeyFile,
      },
      backoffInitialMs: 20,
      backoffMaxMs: 50,
      onUnreachable: () => undefined,
      onSnapshotStatus: () => undefined,
      snapshotSource: () => Promise.reject(new Error("none")),
      logger,
    });
    cleanups.push(() => peers.close());
    peers.setPeers([[2, address]]);
    await waitFor(
      () => records.some((r) => r.level === "warn" && r.msg.startsWith("cannot connect to peer 2")),
      "a warning about peer 2",
    );
    const warning = records.find((r) => r.msg.startsWith("cannot connect to peer 2"))!;
    expect(warning.msg).toMatch(new RegExp(`^cannot connect to peer 2 at ${address}: TLS`));
    expect(String(warning.obj.reason)).toMatch(/certificate|unknown ca|alert/i);
    // Several more failed attempts (counted by the connection, not logged).
    const connection = () =>
      (peers as unknown as { peers: Map<number, { failuresUnlogged: number }> }).peers.get(2)!;
    await waitFor(() => connection().failuresUnlogged >= 3, "three more failed attempts");
    expect(records.filter((r) => r.msg.startsWith("cannot connect to peer 2"))).toHaveLength(1);
  });

  test("the server logs each refused handshake with its reason, at WARN, once per address per 30 s", async () => {
    const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
    const logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (obj: Record<string, unknown>, msg = "") => warnings.push({ obj, msg }),
      error: () => undefined,
    };
    const { address } = await tlsServer(true, logger);
    const stranger = {
      caFile: certs.caFile,
      certFile: certs.strangerCertFile,
      keyFile: certs.strangerKeyFile,
    };
    await clientOf(address, stranger)
      .metrics()
      .catch(() => undefined);
    await waitFor(() => warnings.length > 0, "the server's warning");
    expect(warnings[0]!.msg).toMatch(/^refused a TLS connection from 127\.0\.0\.1: /);
    expect(warnings[0]!.obj.reason).toBe(
      "its certificate failed verification: UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    );
    // Further refusals from the same address within 30 s are counted, not logged.
    await clientOf(address, stranger)
      .metrics()
      .catch(() => undefined);
    await clientOf(address, undefined)
      .metrics()
      .catch(() => undefined);
    expect(warnings).toHaveLength(1);
  });

  test("an unreachable peer is logged with the reason", async () => {
    const records: string[] = [];
    const logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (_obj: object, msg = "") => records.push(msg),
      error: () => undefined,
    };
    const peers = new PeerTransport({
      nodeId: 1,
      clusterId: "test",
      backoffInitialMs: 20,
      onUnreachable: () => undefined,
      onSnapshotStatus: () => undefined,
      snapshotSource: () => Promise.reject(new Error("none")),
      logger,
    });
    cleanups.push(() => peers.close());
    peers.setPeers([[3, "127.0.0.1:1"]]);
    await waitFor(() => records.length > 0, "a warning about peer 3");
    expect(records[0]).toMatch(/^cannot connect to peer 3 at 127\.0\.0\.1:1: ECONNREFUSED/);
  });

  test("dialling a node by IP address prints no DEP0123 warning (no IP as TLS server name)", async () => {
    const { execFile } = await import("node:child_process");
    const fixture = join(import.meta.dirname, "fixtures/tls-to-ip.ts");
    const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>(
      (resolve, reject) =>
        execFile(
          process.execPath,
          ["--import", "tsx", fixture],
          { cwd: join(import.meta.dirname, ".."), timeout: 110_000 },
          (error, out, err) =>
            error
              ? reject(new Error(`${error.message}\n${err}`))
              : resolve({ stdout: out, stderr: err }),
        ),
    );
    expect(stdout).toBe("node 2, peer connected: true\n");
    expect(stderr).toBe("");
  }, 120_000); // a process of its own: tsx, and RSA keys made in JavaScript

  test("requiring client certificates without a CA is a configuration error", async () => {
    const error = await startServer({
      tls: { certFile: certs.certFile, keyFile: certs.keyFile, requireClientCert: true },
    }).catch((e: unknown) => e as TransportError);
    expect(error).toBeInstanceOf(TransportError);
    expect([(error as TransportError).code, (error as Error).message]).toEqual([
      "TRANSPORT_TLS",
      "tls: requireClientCert needs a caFile to verify client certificates",
    ]);
  });

  test("an unreadable certificate file is named", async () => {
    const error = await startServer({
      tls: { certFile: join(dir, "missing.pem"), keyFile: certs.keyFile },
    }).catch((e: unknown) => e as TransportError);
    expect((error as TransportError).code).toBe("TRANSPORT_TLS");
    expect((error as Error).message).toMatch(
      new RegExp(`^tls: cannot read the certificate ${dir}/missing.pem: ENOENT`),
    );
  });

  test("a certificate and a key that do not belong together are named, both", async () => {
    const error = await startServer({
      tls: { certFile: certs.certFile, keyFile: certs.strangerKeyFile },
    }).catch((e: unknown) => e as TransportError);
    expect((error as TransportError).code).toBe("TRANSPORT_TLS");
    expect((error as Error).message).toMatch(
      new RegExp(
        `^tls: the certificate ${certs.certFile} and the private key ${certs.strangerKeyFile} are unusable together: `,
      ),
    );
  });

  test("a client with an unreadable CA file is refused at construction, naming the file", () => {
    let error: unknown;
    try {
      new RockraftClient({ endpoints: ["127.0.0.1:1"], tls: { caFile: join(dir, "no-ca.pem") } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TransportError);
    expect((error as TransportError).code).toBe("TRANSPORT_TLS");
    expect((error as Error).message).toMatch(
      new RegExp(`^tls: cannot read the CA file ${dir}/no-ca.pem: ENOENT`),
    );
  });
});

describe("certificate rotation (CertificateFiles.reload)", () => {
  test("connections made after a reload use the new certificate and CA, without a restart", async () => {
    const live = mkdtempSync(join(tmpdir(), "rockraft-rotate-"));
    cleanups.push(() => rmSync(live, { recursive: true, force: true }));
    const files = {
      caFile: join(live, "ca.pem"),
      certFile: join(live, "node.pem"),
      keyFile: join(live, "node.key"),
    };
    const install = (from: { caFile: string; certFile: string; keyFile: string }) => {
      copyFileSync(from.caFile, files.caFile);
      copyFileSync(from.certFile, files.certFile);
      copyFileSync(from.keyFile, files.keyFile);
    };
    install(certs);
    const certificates = new CertificateFiles({ ...files, requireClientCert: false });
    const started = await startServer({ cluster: metricsCluster, tls: certificates });
    cleanups.push(() => started.server.shutdown(100));
    expect(
      (await clientOf(started.address, { caFile: certs.caFile }, SERVED_MS).metrics()).state,
    ).toBe("leader");

    // The files are replaced by a certificate from another CA, and read again.
    install(next);
    expect(certificates.reload()).toBe(true);
    expect(certificates.reload()).toBe(false); // nothing new the second time
    expect(
      (await clientOf(started.address, { caFile: next.caFile }, SERVED_MS).metrics()).state,
    ).toBe("leader");
    const old = await clientOf(started.address, { caFile: certs.caFile })
      .metrics()
      .catch((error: unknown) => error as RockraftClientError);
    expect(old).toBeInstanceOf(RockraftClientError);

    // Refused, each keeping the loaded certificate: a CA removed (the server was set up to
    // verify with one), a certificate whose common name is not the peers', a damaged file.
    expect(() => certificates.reload({ ...files, caFile: undefined })).toThrow(
      "tls: ca_file was removed: that needs a restart",
    );
    const peers = new CertificateFiles({
      ...files,
      requireClientCert: true,
      peerCommonName: "node",
    });
    copyFileSync(next.clientCertFile, files.certFile);
    copyFileSync(next.clientKeyFile, files.keyFile);
    expect(() => peers.reload()).toThrow(
      /has common name "client", not tls.peer_common_name "node"/,
    );
    writeFileSync(files.keyFile, "not a key");
    expect(() => certificates.reload()).toThrow(/unusable together/);
    expect(
      (await clientOf(started.address, { caFile: next.caFile }, SERVED_MS).metrics()).state,
    ).toBe("leader");
  });

  test("a peer whose certificate was refused connects once its files are rotated and read again", async () => {
    // The server trusts only the next CA; the peer starts with a certificate of the old one.
    const started = await startServer({
      cluster: metricsCluster,
      tls: { ...next, requireClientCert: true },
    });
    cleanups.push(() => started.server.shutdown(100));
    const live = mkdtempSync(join(tmpdir(), "rockraft-rotate-peer-"));
    cleanups.push(() => rmSync(live, { recursive: true, force: true }));
    const files = {
      caFile: join(live, "ca.pem"),
      certFile: join(live, "node.pem"),
      keyFile: join(live, "node.key"),
    };
    copyFileSync(next.caFile, files.caFile); // it trusts the server already
    copyFileSync(certs.certFile, files.certFile);
    copyFileSync(certs.keyFile, files.keyFile);
    const certificates = new CertificateFiles(files);
    const { peers, unreachable } = peerTransportTo(started.address, certificates, 100);
    const message = HEARTBEAT;
    await waitFor(() => {
      peers.send([message]);
      return unreachable.length >= 2;
    }, "the old certificate to be refused");
    copyFileSync(next.certFile, files.certFile);
    copyFileSync(next.keyFile, files.keyFile);
    expect(certificates.reload()).toBe(true);
    await waitFor(() => {
      peers.send([message]);
      return started.inbox.messages.length > 0;
    }, "a message over a connection with the new certificate");
  });
});
