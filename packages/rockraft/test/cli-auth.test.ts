import { afterAll, beforeAll, expect, test } from "vitest";
import { main } from "../src/cli.js";
import { startCluster, type TestCluster } from "./helpers/cluster.js";

// The command line's auth commands, against a cluster of its own (auth ends enabled).
let cluster: TestCluster;
let endpoints: string;
beforeAll(async () => {
  cluster = await startCluster(3);
  endpoints = [...cluster.configs.values()].map((c) => c.node.advertiseAddr).join(",");
}, 60_000);
afterAll(() => cluster.close());

async function run(
  args: string[],
  answers: string[] = [],
): Promise<{ code: number; out: string; err: string; asked: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const asked: string[] = [];
  const code = await main(
    [...args, "--endpoints", endpoints],
    (l) => out.push(l),
    (l) => err.push(l),
    (question) => {
      asked.push(question);
      return Promise.resolve(answers.shift());
    },
  );
  return { code, out: out.join("\n"), err: err.join("\n"), asked };
}

test("users, roles and auth from the command line; --user with or without its password", async () => {
  const added = await run(["user", "add", "root"], ["root-pw"]);
  expect(added).toMatchObject({ code: 0, asked: ["Password of root: "] });
  expect(added.out).toMatch(/^user root added \(revision \d+\)$/);
  expect((await run(["user", "grant-role", "root", "root"])).code).toBe(0);
  expect((await run(["role", "add", "reader"])).code).toBe(0);
  expect((await run(["role", "grant", "reader", "read", "app/", "--prefix"])).out).toMatch(
    /^role reader may read on prefix "app\/" \(revision \d+\)$/,
  );
  expect((await run(["user", "add", "alice", "alice-pw"])).code).toBe(0);
  expect((await run(["user", "grant-role", "alice", "reader"])).code).toBe(0);
  expect(await run(["role", "grant", "reader", "own", "x"])).toMatchObject({
    code: 2,
    err: 'rockraft: role grant: expected read, write or readwrite, got "own"',
  });
  expect((await run(["auth", "enable"])).out).toMatch(/^authentication enabled/);

  // No user: refused, with the gRPC status and rockraft's code.
  const anonymous = await run(["kv", "get", "app/x"]);
  expect(anonymous.code).toBe(1);
  expect(anonymous.err).toContain("[UNAUTHENTICATED RAFT_UNAUTHENTICATED]");
  // alice reads her prefix, and may write nothing.
  expect((await run(["kv", "get", "app/x", "--user", "alice:alice-pw"])).code).toBe(3);
  const write = await run(["kv", "put", "app/x", "v", "--user", "alice:alice-pw"]);
  expect(write.code).toBe(1);
  expect(write.err).toContain('user "alice" may not write key "app/x"');
  expect(write.err).toContain("[PERMISSION_DENIED RAFT_PERMISSION_DENIED]");
  // root's password asked for on the terminal; none there: a clear usage error.
  const asRoot = await run(["kv", "put", "app/x", "v", "--user", "root"], ["root-pw"]);
  expect(asRoot).toMatchObject({ code: 0, asked: ["Password of root: "] });
  expect(await run(["kv", "get", "app/x", "--user", "root"])).toMatchObject({
    code: 2,
    err: "rockraft: --user root: no password given and no terminal to ask on: use --user root:<password>",
  });

  const roles = JSON.parse((await run(["role", "list", "--json", "--user", "root:root-pw"])).out);
  expect(roles).toEqual([
    { name: "root", permissions: [] },
    { name: "reader", permissions: [{ type: "read", key: "app/", prefix: true }] },
  ]);
  expect((await run(["user", "list", "--user", "root:root-pw"])).out).toBe(
    "alice  reader\nroot  root",
  );
  const denied = await run(["auth", "disable", "--user", "alice:alice-pw"]);
  expect(denied.err).toContain("needs the root role");
  expect(JSON.parse((await run(["auth", "status", "--json"])).out)).toMatchObject({
    enabled: true,
  });
});
