import { join } from "node:path";
import {
  credentials,
  loadPackageDefinition,
  Metadata,
  type Client,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { SignJWT } from "jose";
import { afterEach, expect, test } from "vitest";
import { RockraftClient, RockraftClientError } from "../src/index.js";
import { eventually, startCluster, type TestCluster } from "./helpers/cluster.js";

// Authentication and roles over real gRPC and LevelDB: users and roles in the replicated
// state, tokens every node verifies, and each call checked.
let cluster: TestCluster | undefined;
const closing: { close(): void }[] = [];
afterEach(async () => {
  for (const client of closing.splice(0)) client.close();
  await cluster?.close();
  cluster = undefined;
});

const HELLO = new TextEncoder().encode("hello");
const addresses = () => [1, 2, 3].map((id) => cluster!.configs.get(id)!.node.advertiseAddr);

function client(options: { user?: string; password?: string; endpoints?: string[] } = {}) {
  const made = new RockraftClient({
    endpoints: options.endpoints ?? addresses(),
    timeoutMs: 10_000,
    ...(options.user === undefined
      ? {}
      : { auth: { user: options.user, password: options.password ?? "" } }),
  });
  closing.push(made);
  return made;
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error as RockraftClientError,
  );

/** root (root role); role reader: read on prefix "app/"; alice: reader. Auth on. */
async function setUp(admin: RockraftClient) {
  const auth = admin.auth;
  await auth.change({ op: "user-add", user: "root", password: "root-secret" });
  await auth.change({ op: "user-grant", user: "root", role: "root" });
  await auth.change({ op: "role-add", role: "reader" });
  await auth.change({
    op: "role-grant",
    role: "reader",
    permission: { type: "read", key: Buffer.from("app/"), prefix: true },
  });
  await auth.change({ op: "user-add", user: "alice", password: "alice-secret" });
  await auth.change({ op: "user-grant", user: "alice", role: "reader" });
  await auth.change({ op: "enable" });
}

// A client of any language, sending whatever token it likes.
const protoRoot = join(import.meta.dirname, "../../../proto");
const KV = (
  loadPackageDefinition(
    loadSync("rockraft/v1/kv.proto", { includeDirs: [protoRoot] }),
  ) as unknown as {
    rockraft: {
      v1: {
        KV: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client;
      };
    };
  }
).rockraft.v1.KV;

function rawGet(address: string, token: string): Promise<ServiceError | null> {
  const raw = new KV(address, credentials.createInsecure());
  closing.push(raw);
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) =>
    (raw as unknown as Record<string, (...args: unknown[]) => void>).Get!(
      { key: Buffer.from("app/x") },
      metadata,
      { deadline: Date.now() + 5_000 },
      (error: ServiceError | null) => resolve(error),
    ),
  );
}

test(
  "a read-only role reads its prefix and writes nothing; no token, a forged one or an expired one is refused on every node",
  { timeout: 120_000 },
  async () => {
    // Tokens live 5 s: long enough for the nine calls below made with a fresh one, each on
    // a new connection, on a loaded machine; short enough to see one expire.
    cluster = await startCluster(3, { extraRaft: "\n[auth]\ntoken_ttl_ms = 5000\n" });
    await setUp(client());

    const anonymous = client();
    const noToken = await failure(anonymous.put("app/x", "1"));
    expect(noToken).toMatchObject({ code: "UNAUTHENTICATED", serverCode: "RAFT_UNAUTHENTICATED" });
    expect(noToken!.message).toContain("authentication is enabled and the call carries no token");
    const noTokenRead = await failure(anonymous.get("app/x"));
    expect(noTokenRead!.message).toContain("KV.Get: authentication is enabled");

    const wrong = await failure(client({ user: "alice", password: "guess" }).get("app/x"));
    expect(wrong).toMatchObject({ code: "UNAUTHENTICATED" });
    expect(wrong!.message).toContain('wrong user name or password for user "alice"');
    expect(wrong!.message).not.toContain("guess");

    const root = client({ user: "root", password: "root-secret" });
    await root.put("app/x", "hello");
    await root.put("other", "secret");

    const alice = client({ user: "alice", password: "alice-secret" });
    expect((await alice.get("app/x")).value).toEqual(HELLO);
    const write = await failure(alice.put("app/x", "mine"));
    expect(write).toMatchObject({
      code: "PERMISSION_DENIED",
      serverCode: "RAFT_PERMISSION_DENIED",
    });
    expect(write!.message).toContain('KV.Put: user "alice" may not write key "app/x"');
    const outside = await failure(alice.get("other"));
    expect(outside).toMatchObject({ code: "PERMISSION_DENIED" });
    expect(outside!.message).toContain('may not read key "other"');
    const cas = await failure(
      alice.compareAndSwap({ key: "app/x", expectFound: false, value: "v" }),
    );
    expect(cas).toMatchObject({ code: "PERMISSION_DENIED" });
    const admin = await failure(alice.auth.change({ op: "disable" }));
    expect(admin).toMatchObject({ code: "PERMISSION_DENIED" });
    expect(admin!.message).toContain("needs the root role");
    const membership = await failure(alice.triggerSnapshot());
    expect(membership).toMatchObject({ code: "PERMISSION_DENIED" });
    expect((await root.get("app/x")).value).toEqual(HELLO);

    // Every node verifies the same tokens: a real one works everywhere, a forged one (signed
    // with another key) and a damaged one nowhere.
    const { token } = await alice.auth.authenticate("alice", "alice-secret");
    const forged = await new SignJWT({ pwi: 5 })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("root")
      .setExpirationTime("1h")
      .sign(new Uint8Array(32).fill(1));
    for (const address of addresses()) {
      expect(await rawGet(address, token)).toBeNull();
      for (const bad of [forged, `${token.slice(0, -2)}xx`]) {
        const refused = await rawGet(address, bad);
        expect(refused?.details).toContain("the token is not valid");
      }
    }
    // An expired token is refused everywhere too; the client fetches a new one by itself.
    await eventually(
      async () => (await rawGet(addresses()[0]!, token))?.details.includes("expired"),
      "alice's first token to expire",
      15_000,
    );
    for (const address of addresses()) {
      expect((await rawGet(address, token))?.details).toContain("expired");
    }
    expect((await alice.get("app/x")).value).toEqual(HELLO);
  },
);

test(
  "users and roles survive restarts, a snapshot install and a leader change; bad changes are refused and change nothing; a new password voids old tokens",
  { timeout: 120_000 },
  async () => {
    cluster = await startCluster(3, {
      extraRaft: "snapshot_logs_since_last = 20\nsnapshot_keep_logs = 5\n",
    });
    await setUp(client());
    const root = client({ user: "root", password: "root-secret" });

    // Bad changes, each a clear error; the table is as it was.
    const before = await root.auth.status();
    const bad: [Parameters<typeof root.auth.change>[0], string][] = [
      [{ op: "user-delete", user: "root" }, "last one with the root role"],
      [{ op: "user-revoke", user: "root", role: "root" }, "last one with the root role"],
      [
        {
          op: "role-grant",
          role: "reader",
          permission: { type: "write", key: new Uint8Array(), prefix: true },
        },
        "empty prefix",
      ],
      [{ op: "user-add", user: "alice", password: "x" }, 'user "alice" already exists'],
      [{ op: "user-grant", user: "alice", role: "nobody" }, 'role "nobody" does not exist'],
    ];
    for (const [request, reason] of bad) {
      const refused = await failure(root.auth.change(request));
      expect(refused, JSON.stringify(request)).toMatchObject({
        code: "FAILED_PRECONDITION",
        serverCode: "RAFT_AUTH_INVALID",
      });
      expect(refused!.message).toContain(reason);
    }
    expect(await root.auth.status()).toEqual(before);

    // A follower misses the table's next changes past a snapshot, and catches up by one.
    const leader = cluster.leader()!;
    const followerId = [1, 2, 3].find((id) => id !== leader.metrics().nodeId)!;
    await cluster.stop(followerId);
    await root.auth.change({ op: "role-add", role: "writer" });
    await root.auth.change({
      op: "role-grant",
      role: "writer",
      permission: { type: "readwrite", key: Buffer.from("app/"), prefix: true },
    });
    await root.auth.change({ op: "user-add", user: "bob", password: "bob-secret" });
    await root.auth.change({ op: "user-grant", user: "bob", role: "writer" });
    for (let i = 0; i < 40; i++) await root.put(`fill/${i}`, "v");
    await leader
      .raft()
      .wait({ timeoutMs: 10_000 })
      .metrics((m) => m.snapshotIndex > 0, "a snapshot on the leader");
    const follower = await cluster.start(followerId);
    await follower
      .raft()
      .wait({ timeoutMs: 20_000 })
      .appliedIndex(leader.metrics().lastApplied!.index, "catching up by snapshot");
    expect(follower.metrics().snapshotIndex).toBeGreaterThan(0);
    const onFollower = client({
      user: "bob",
      password: "bob-secret",
      endpoints: [cluster.configs.get(followerId)!.node.advertiseAddr],
    });
    expect(await onFollower.auth.status()).toEqual(await root.auth.status());

    // Every node restarts; then a leader change. The table holds throughout.
    for (const id of [1, 2, 3]) await cluster.stop(id);
    for (const id of [1, 2, 3]) await cluster.start(id);
    // A transfer may be abandoned (its MsgTimeoutNow dropped while a restarted peer's
    // connection is not up yet): asked again, of whichever node leads then.
    await eventually(
      async () => {
        const leader = cluster!.leader();
        if (leader === undefined) return false;
        const next = [1, 2, 3].find((id) => id !== leader.metrics().nodeId)!;
        await leader.raft().transferLeader(next, { timeoutMs: 2_000 });
        return true;
      },
      "a leader change after the restart",
      20_000,
    );
    const bob = client({ user: "bob", password: "bob-secret" });
    await bob.put("app/b", "written by bob");
    const alice = client({ user: "alice", password: "alice-secret" });
    expect(await failure(alice.put("app/a", "no"))).toMatchObject({ code: "PERMISSION_DENIED" });
    expect((await root.auth.users()).map((u) => u.name)).toEqual(["alice", "bob", "root"]);

    // A changed password: tokens from before it are refused, the new password works.
    const { token } = await bob.auth.authenticate("bob", "bob-secret");
    await root.auth.change({ op: "user-passwd", user: "bob", password: "new-secret" });
    for (const address of addresses()) {
      await eventually(
        async () => (await rawGet(address, token))?.details.includes("password changed"),
        `node ${address} to refuse bob's old token`,
        10_000,
      );
    }
    const renamed = client({ user: "bob", password: "new-secret" });
    expect((await renamed.get("app/b")).found).toBe(true);
    expect(await failure(bob.auth.authenticate("bob", "bob-secret"))).toMatchObject({
      code: "UNAUTHENTICATED",
    });

    // Membership calls on a follower, from root over gRPC and in process, reach the leader
    // with the follower's own token.
    const leaderNow = cluster.leader()!.metrics().nodeId;
    const followerNow = [1, 2, 3].find((id) => id !== leaderNow)!;
    const viaFollower = client({
      user: "root",
      password: "root-secret",
      endpoints: [cluster.configs.get(followerNow)!.node.advertiseAddr],
    });
    await viaFollower.addLearner({ nodeId: 4, addr: "127.0.0.1:1" });
    const voters = cluster.leader()!.metrics().membership.voters;
    await cluster.node(followerNow).raft().changeMembership({ voters, learners: [] });
    expect(cluster.node(followerNow).metrics().membership.learners).toEqual([]);

    // Auth off again (root only): anyone may call, and a client with a user goes on
    // without a token.
    await root.auth.change({ op: "disable" });
    expect((await client().get("app/b")).found).toBe(true);
    expect((await renamed.get("app/b")).found).toBe(true);
    expect(
      (await client({ user: "carol", password: "x" }).put("app/c", "v")).logId.index,
    ).toBeGreaterThan(0);
  },
);
