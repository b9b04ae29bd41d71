import { join } from "node:path";
import {
  credentials,
  loadPackageDefinition,
  Metadata,
  status,
  type Client,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { afterEach, expect, test } from "vitest";
import { startCluster, type TestCluster } from "./helpers/cluster.js";

// A client of any language: a stub generated from proto/rockraft/v1/kv.proto, one unary
// call per operation, no rockraft helpers.
const protoRoot = join(import.meta.dirname, "../../../proto");
const definition = loadSync("rockraft/v1/kv.proto", { includeDirs: [protoRoot] });
const KV = (
  loadPackageDefinition(definition) as unknown as {
    rockraft: {
      v1: {
        KV: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client;
      };
    };
  }
).rockraft.v1.KV;

let cluster: TestCluster | undefined;
const clients: Client[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await cluster?.close();
  cluster = undefined;
});

interface Outcome {
  readonly status: string;
  readonly errorCode: string | undefined;
  readonly details: string | undefined;
  readonly elapsedMs: number;
}

function put(address: string, deadlineMs: number, value = Buffer.from("v")): Promise<Outcome> {
  const client = new KV(address, credentials.createInsecure());
  clients.push(client);
  const began = Date.now();
  return new Promise((resolve) => {
    (
      client as unknown as Record<
        string,
        (
          request: object,
          metadata: Metadata,
          options: object,
          callback: (error: ServiceError | null) => void,
        ) => void
      >
    ).Put!(
      { key: Buffer.from("k"), value },
      new Metadata(),
      { deadline: Date.now() + deadlineMs },
      (error) => {
        const codes = Object.fromEntries(
          Object.entries(status).map(([name, value]) => [value, name]),
        ) as Record<number, string>;
        resolve({
          status: codes[error?.code ?? status.OK]!,
          errorCode: error?.metadata?.get("rockraft-error-code")[0]?.toString(),
          details: error?.details,
          elapsedMs: Date.now() - began,
        });
      },
    );
  });
}

test(
  "with no quorum, a plain gRPC client gets UNAVAILABLE and RAFT_NO_LEADER within an election timeout, not its whole deadline",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(3);
    const survivor = cluster.leader()!;
    const id = survivor.metrics().nodeId;
    for (const other of [1, 2, 3].filter((n) => n !== id)) await cluster.stop(other);
    // CheckQuorum makes the lone leader step down within two election timeouts (≤ 1.6 s here).
    await survivor
      .raft()
      .wait({ timeoutMs: 10_000 })
      .metrics((m) => m.currentLeader === undefined, "the leader to step down");
    const outcome = await put(cluster.configs.get(id)!.node.advertiseAddr, 20_000);
    expect([outcome.status, outcome.errorCode]).toEqual(["UNAVAILABLE", "RAFT_NO_LEADER"]);
    expect(outcome.elapsedMs).toBeLessThan(5_000); // one election timeout (at most 800 ms) and the call
  },
);

test(
  "a write that cannot commit is answered before the caller's deadline, with its trailers",
  { timeout: 60_000 },
  async () => {
    // Without CheckQuorum the lone leader keeps leading: the write is proposed, never commits.
    cluster = await startCluster(3, { extraRaft: "check_quorum = false\n" });
    const leader = cluster.leader()!;
    const id = leader.metrics().nodeId;
    for (const other of [1, 2, 3].filter((n) => n !== id)) await cluster.stop(other);
    // 6 s: the node answers 500 ms before it (a tenth of what is left, at most 500 ms), a
    // margin a stall of a loaded machine does not eat.
    const outcome = await put(cluster.configs.get(id)!.node.advertiseAddr, 6_000);
    expect([outcome.status, outcome.errorCode]).toEqual(["DEADLINE_EXCEEDED", "RAFT_TIMEOUT"]);
  },
);

test(
  "a node not yet initialized answers FAILED_PRECONDITION and RAFT_NOT_INITIALIZED",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(1, { initialize: false });
    const outcome = await put(cluster.configs.get(1)!.node.advertiseAddr, 20_000);
    expect([outcome.status, outcome.errorCode]).toEqual([
      "FAILED_PRECONDITION",
      "RAFT_NOT_INITIALIZED",
    ]);
    expect(outcome.elapsedMs).toBeLessThan(5_000);
  },
);

test(
  "an oversize value gets INVALID_ARGUMENT naming the limit; past the node's gRPC message limit, gRPC's own RESOURCE_EXHAUSTED",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(1, { extraRaft: "[limits]\nmax_value_bytes = 1000\n" });
    const address = cluster.configs.get(1)!.node.advertiseAddr;
    const fits = await put(address, 10_000, Buffer.alloc(1000, 1));
    expect(fits.status).toBe("OK");
    const over = await put(address, 10_000, Buffer.alloc(1001, 1));
    expect([over.status, over.errorCode]).toEqual(["INVALID_ARGUMENT", "RAFT_INVALID_ARGUMENT"]);
    expect(over.details).toMatch(/limit of 1000 \(limits.max_value_bytes\)/);
    // The message limit follows the config (max_bytes_per_append + keys + values, or the
    // snapshot chunk, plus 1 MiB): 4 MiB with these settings. gRPC refuses a larger message
    // before any rockraft code sees it, so there are no rockraft trailers; the details name
    // the limit in bytes.
    const huge = await put(address, 10_000, Buffer.alloc(5 * 1024 * 1024, 1));
    expect([huge.status, huge.errorCode]).toEqual(["RESOURCE_EXHAUSTED", undefined]);
    expect(huge.details).toMatch(/larger than max/);
  },
);
