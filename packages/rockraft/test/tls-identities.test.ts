import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issue, makeCa, writeTlsFiles } from "@rockraft/test-utils/certs";
import { afterEach, expect, test } from "vitest";
import { RockraftClient, RockraftClientError } from "../src/index.js";
import { eventually, startCluster, type TestCluster } from "./helpers/cluster.js";

// [tls] client_cert_auth (etcd's --client-cert-auth): with authentication on, a call
// without a token is made as the user its verified client certificate names.
let cluster: TestCluster | undefined;
const closing: { close(): void }[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const client of closing.splice(0)) client.close();
  await cluster?.close();
  cluster = undefined;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

test(
  "a client certificate's common name is its user: alice reads her prefix and writes nothing; a name that is no user is refused",
  { timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "rockraft-identities-"));
    dirs.push(dir);
    const ca = makeCa();
    const files = writeTlsFiles(dir, ca, issue(ca, "rockraft-peer"));
    // Every certificate is made before the cluster starts: making a key pair blocks the
    // process (the nodes' too, in this one) for a while on a loaded machine.
    const clientTls = new Map(
      ["alice", "mallory"].map((name) => [name, writeTlsFiles(dir, ca, issue(ca, name), name)]),
    );
    const tls =
      `\n[tls]\ncert_file = "${files.certFile}"\nkey_file = "${files.keyFile}"\nca_file = "${files.caFile}"\n` +
      'require_client_cert = true\npeer_common_name = "rockraft-peer"\nclient_cert_auth = true\n';
    cluster = await startCluster(3, { extraRaft: tls });
    const auth = cluster.node(1).raft().auth; // in process: trusted
    await auth.change({ op: "user-add", user: "root", password: "root-secret" });
    await auth.change({ op: "user-grant", user: "root", role: "root" });
    await auth.change({ op: "role-add", role: "reader" });
    const permission = {
      type: "read",
      key: new TextEncoder().encode("app/"),
      prefix: true,
    } as const;
    await auth.change({ op: "role-grant", role: "reader", permission });
    await auth.change({ op: "user-add", user: "alice", password: "unused" });
    await auth.change({ op: "user-grant", user: "alice", role: "reader" });
    await auth.change({ op: "enable" });
    await cluster.node(1).raft().clientWrite({ key: "app/x", value: "hello" });

    const endpoints = [1, 2, 3].map((id) => cluster!.configs.get(id)!.node.advertiseAddr);
    const as = (name: string) => {
      const client = new RockraftClient({ endpoints, sessions: false, tls: clientTls.get(name)! });
      closing.push(client);
      return client;
    };
    const failure = (promise: Promise<unknown>) =>
      promise.then(
        () => undefined,
        (error: unknown) => error as RockraftClientError,
      );
    const alice = as("alice");
    expect(new TextDecoder().decode((await alice.get("app/x")).value)).toBe("hello");
    const write = await failure(alice.put("app/x", "mine"));
    expect(write).toMatchObject({ code: "PERMISSION_DENIED" });
    expect(write!.message).toContain('user "alice" may not write key "app/x"');
    // A follower forwards a membership change to the leader over TLS, with its own files.
    const leader = await eventually(() => cluster!.leader(), "a leader");
    const leaderId = leader.metrics().nodeId;
    const follower = cluster.node([1, 2, 3].find((id) => id !== leaderId)!);
    await follower.raft().addLearner({ nodeId: 4, addr: "127.0.0.1:1" });
    const voters = leader.metrics().membership.voters;
    await follower.raft().changeMembership({ voters, learners: [] });
    expect(follower.metrics().membership.learners).toEqual([]);

    const stranger = await failure(as("mallory").get("app/x"));
    expect(stranger).toMatchObject({ code: "UNAUTHENTICATED" });
    expect(stranger!.message).toContain(
      'the client certificate\'s common name "mallory" is not a user',
    );
  },
);
