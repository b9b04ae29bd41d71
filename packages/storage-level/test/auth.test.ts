import type { Entry } from "@rockraft/raft-core";
import { afterEach, describe, expect, test } from "vitest";
import {
  AuthTable,
  EMPTY_AUTH,
  checkAccess,
  decodeCommand,
  encodeCommand,
  type ApplyResult,
  type AuthChange,
  type Command,
  type LevelStorage,
} from "../src/index.js";
import { TempDirs, append, bytes, install, open, readAll, text } from "./helpers/store.js";

// Users, roles and permissions in the replicated state (auth.ts): the changes' rules, the
// codec of auth commands and tags, the check again at apply, and the table's persistence.
const dirs = new TempDirs();
afterEach(() => dirs.cleanup());

const at = (index: number, command: Command): Entry => ({
  index,
  term: 1,
  type: "normal",
  data: encodeCommand(command),
});
const password = { scheme: "test", salt: bytes("salt"), hash: bytes("hash") };
const change = (c: AuthChange): Extract<Command, { op: "auth" }> => ({ op: "auth", change: c });
const KEY = new Uint8Array(32).fill(7);

async function run(store: LevelStorage, entries: Entry[]): Promise<ApplyResult[]> {
  await append(store, entries, entries.at(-1)!.index);
  return store.apply(entries);
}

/** root (with the root role), alice with role reader (read on prefix "app/"), auth on. */
const SETUP: Command[] = [
  change({ op: "user-add", user: "root", password }),
  change({ op: "user-grant", user: "root", role: "root" }),
  change({ op: "role-add", role: "reader" }),
  change({
    op: "role-grant",
    role: "reader",
    permission: { type: "read", key: bytes("app/"), prefix: true },
  }),
  change({ op: "user-add", user: "alice", password }),
  change({ op: "user-grant", user: "alice", role: "reader" }),
  change({ op: "enable", signingKey: KEY }),
];

/** The reader role widened to read and write its prefix. */
const WIDEN = change({
  op: "role-grant",
  role: "reader",
  permission: { type: "readwrite", key: bytes("app/"), prefix: true },
});

describe("the auth table's rules", () => {
  const table = new AuthTable();
  const apply = (c: AuthChange, index: number) => table.apply(c, index);

  test("auth cannot be enabled without a root user holding the root role", () => {
    expect(apply({ op: "enable", signingKey: KEY }, 1)).toMatchObject({
      allowed: false,
      refusal: "AUTH_INVALID",
      reason: expect.stringContaining('user "root"'),
    });
    expect(table.state).toBe(EMPTY_AUTH);
  });

  test("each bad change is refused, naming what is wrong, and changes nothing", () => {
    let index = 1;
    for (const command of SETUP) {
      if (command.op !== "auth") throw new Error("setup");
      expect(apply(command.change, index++)).toEqual({ allowed: true });
    }
    const before = table.state;
    const refusals: [AuthChange, string][] = [
      [{ op: "user-add", user: "alice", password }, 'user "alice" already exists'],
      [{ op: "user-add", user: "has space", password }, "printable characters"],
      [{ op: "user-delete", user: "bob" }, 'user "bob" does not exist'],
      [{ op: "user-grant", user: "alice", role: "writer" }, 'role "writer" does not exist'],
      [{ op: "user-revoke", user: "alice", role: "root" }, "does not have role"],
      [{ op: "user-delete", user: "root" }, "last one with the root role"],
      [{ op: "user-revoke", user: "root", role: "root" }, "last one with the root role"],
      [{ op: "role-add", role: "root" }, 'role "root" already exists'],
      [{ op: "role-delete", role: "root" }, "built in"],
      [
        {
          op: "role-grant",
          role: "reader",
          permission: { type: "write", key: new Uint8Array(0), prefix: true },
        },
        "empty prefix",
      ],
      [
        {
          op: "role-grant",
          role: "root",
          permission: { type: "read", key: bytes("k"), prefix: false },
        },
        "takes no permissions",
      ],
      [
        { op: "role-revoke", role: "reader", key: bytes("app/"), prefix: false },
        "no permission on key",
      ],
    ];
    for (const [bad, reason] of refusals) {
      expect(apply(bad, index++), JSON.stringify(bad)).toMatchObject({
        allowed: false,
        refusal: "AUTH_INVALID",
        reason: expect.stringContaining(reason),
      });
      expect(table.state).toBe(before);
    }
    // A second root makes the first removable.
    expect(apply({ op: "user-add", user: "admin", password }, index++)).toEqual({ allowed: true });
    expect(apply({ op: "user-grant", user: "admin", role: "root" }, index++)).toEqual({
      allowed: true,
    });
    expect(apply({ op: "user-delete", user: "root" }, index)).toEqual({ allowed: true });
    expect(table.state.revision).toBe(index);
  });

  test("permissions: a read role reads its prefix and nothing else; root does anything", () => {
    const state = table.state;
    expect(checkAccess(state, "alice", "read", bytes("app/x")).allowed).toBe(true);
    expect(checkAccess(state, "alice", "write", bytes("app/x"))).toMatchObject({
      refusal: "AUTH_PERMISSION_DENIED",
      reason: 'user "alice" may not write key "app/x"',
    });
    expect(checkAccess(state, "alice", "read", bytes("other"))).toMatchObject({
      refusal: "AUTH_PERMISSION_DENIED",
    });
    expect(checkAccess(state, "admin", "write", bytes("anything")).allowed).toBe(true);
    expect(checkAccess(state, "", "read", bytes("app/x"))).toMatchObject({
      refusal: "AUTH_UNAUTHENTICATED",
    });
    expect(checkAccess(state, "ghost", "read", bytes("app/x"))).toMatchObject({
      refusal: "AUTH_UNAUTHENTICATED",
      reason: 'user "ghost" does not exist',
    });
  });
});

describe("auth commands and tags in the log", () => {
  test.each<[string, Command]>([
    ["an auth change", change({ op: "user-add", user: "ü", password })],
    ["a tagged auth change", { ...change({ op: "disable" }), auth: { user: "root", revision: 9 } }],
    [
      "a put tagged with a caller and a session, with a request id",
      {
        op: "put",
        key: bytes("k"),
        value: bytes("v"),
        requestId: bytes("r"),
        auth: { user: "alice", revision: 2 ** 40 },
        session: { id: 3, seq: 4, acknowledged: 2 },
      },
    ],
  ])("%s round-trips", (_name, command) => {
    expect(decodeCommand(encodeCommand(command))).toEqual(command);
  });

  test("a change with a Buffer key round-trips as bytes", () => {
    const grant = change({
      op: "role-grant",
      role: "r",
      permission: { type: "read", key: Buffer.from("app/"), prefix: true },
    });
    expect(decodeCommand(encodeCommand(grant))).toEqual({
      ...grant,
      change: { ...grant.change, permission: { type: "read", key: bytes("app/"), prefix: true } },
    });
  });

  test("a payload that is not a change applies as invalid on every node, stopping none", async () => {
    const store = await open(await dirs.make());
    const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
    const payloads = [
      json({
        op: "role-grant",
        role: "r",
        permission: { type: "read", key: "app/", prefix: true },
      }),
      json({ op: "user-add", user: "u" }),
      json({ op: "no-such-op" }),
      new TextEncoder().encode("{not json"),
    ];
    const entries = payloads.map((payload, i) => ({
      index: i + 1,
      term: 1,
      type: "normal" as const,
      data: new Uint8Array([7, ...payload]),
    }));
    const results = await run(store, entries);
    expect(results.map((r) => r.kind)).toEqual(["invalid", "invalid", "invalid", "invalid"]);
    expect(results[0]).toMatchObject({ reason: expect.stringContaining("permission") });
    await store.close();
  });

  test("a tag on a command it cannot tag is not a command", () => {
    const clock = encodeCommand({ op: "clock", elapsedMs: 1 });
    const tagged = new Uint8Array([0x12, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x61, ...clock]);
    expect(() => decodeCommand(tagged)).toThrow("an auth tag on a clock command");
  });
});

describe("the table in the state machine", () => {
  test("a write checked before a revoke is refused at apply; one checked at the current revision applies", async () => {
    const store = await open(await dirs.make());
    const results = await run(
      store,
      [...SETUP, WIDEN].map((command, i) => at(i + 1, command)),
    );
    expect(results.map((r) => r.kind)).toEqual(Array(8).fill("auth"));
    const revision = store.authState().revision;
    expect(revision).toBe(8);
    const put = (value: string, tagged: number): Command => ({
      op: "put",
      key: bytes("app/k"),
      value: bytes(value),
      auth: { user: "alice", revision: tagged },
    });
    // Checked at revision 8, applied at 8: no second check.
    const [first] = await run(store, [at(9, put("1", revision))]);
    expect(first).toMatchObject({ kind: "put" });
    // Checked at 8, but the grant is narrowed to read at 10 before it applies: refused.
    const [narrowed, late] = await run(store, [
      at(
        10,
        change({
          op: "role-grant",
          role: "reader",
          permission: { type: "read", key: bytes("app/"), prefix: true },
        }),
      ),
      at(11, put("2", revision)),
    ]);
    expect(narrowed).toMatchObject({ kind: "auth", revision: 10 });
    expect(late).toMatchObject({
      kind: "refused",
      refusal: "AUTH_PERMISSION_DENIED",
      reason: 'user "alice" may not write key "app/k"',
    });
    expect(text(await store.get(bytes("app/k")))).toBe("1");
    // An auth change proposed for a non-root caller is refused at apply too.
    const [byAlice] = await run(store, [
      at(12, { ...change({ op: "disable" }), auth: { user: "alice", revision: 9 } }),
    ]);
    expect(byAlice).toMatchObject({ kind: "refused", refusal: "AUTH_PERMISSION_DENIED" });
    expect(store.authState().enabled).toBe(true);
    await store.close();
  });

  test("a session is its opener's: another user's write or close in it is refused, a retry is answered even after a revoke", async () => {
    const dataPath = await dirs.make();
    const store = await open(dataPath);
    const setup = [
      ...SETUP,
      change({ op: "role-add", role: "writer" }),
      change({
        op: "role-grant",
        role: "writer",
        permission: { type: "readwrite", key: bytes("app/"), prefix: true },
      }),
      change({ op: "user-grant", user: "alice", role: "writer" }),
      change({ op: "user-add", user: "mallory", password }),
      change({ op: "user-grant", user: "mallory", role: "writer" }),
    ];
    await run(
      store,
      setup.map((command, i) => at(i + 1, command)),
    );
    const revision = store.authState().revision; // 12
    const as = (user: string, at = revision) => ({ user, revision: at });
    const limits = { idleTimeoutMs: 60_000, maxUnacknowledged: 8, maxSessions: 8 };
    const [opened] = await run(store, [
      at(13, { op: "session-open", ...limits, auth: as("alice") }),
    ]);
    expect(opened).toMatchObject({ kind: "session-open", sessionId: 13 });
    const put = (user: string, seq: number, value: string, checkedAt = revision): Command => ({
      op: "put",
      key: bytes("app/k"),
      value: bytes(value),
      session: { id: 13, seq, acknowledged: 1 },
      auth: as(user, checkedAt),
    });
    const [first, stolen, closed] = await run(store, [
      at(14, put("alice", 1, "alice's")),
      at(15, put("mallory", 2, "mallory's")),
      at(16, { op: "session-close", sessionId: 13, auth: as("mallory") }),
    ]);
    expect(first).toMatchObject({ kind: "put" });
    expect(stolen).toMatchObject({ kind: "refused", refusal: "SESSION_EXPIRED" });
    expect(closed).toMatchObject({ kind: "session-close", found: false });
    // alice loses write access; her retry of write 1 is still answered as it applied.
    const [, retry, next] = await run(store, [
      at(17, change({ op: "user-revoke", user: "alice", role: "writer" })),
      at(18, put("alice", 1, "alice's")),
      at(19, put("alice", 2, "alice's second")),
    ]);
    expect(retry).toMatchObject({ kind: "put", duplicateOf: { index: 14 } });
    expect(next).toMatchObject({ kind: "refused", refusal: "AUTH_PERMISSION_DENIED" });
    expect(text(await store.get(bytes("app/k")))).toBe("alice's");
    // The owner is stored with the session: after a restart it is still alice's alone.
    await store.close();
    const reopened = await open(dataPath);
    const [again] = await run(reopened, [at(20, put("mallory", 3, "mallory's"))]);
    expect(again).toMatchObject({ kind: "refused", refusal: "SESSION_EXPIRED" });
    // With authentication off, sessions are anyone's again (callers have no user then).
    const [, anyone] = await run(reopened, [
      at(21, change({ op: "disable" })),
      at(22, put("", 3, "with auth off", 21)),
    ]);
    expect(anyone).toMatchObject({ kind: "put" });
    await reopened.close();
  });

  test("a write checked with a token that a new password voided is refused when it applies", async () => {
    const store = await open(await dirs.make());
    await run(
      store,
      [...SETUP, WIDEN].map((command, i) => at(i + 1, command)),
    );
    const checkedAt = store.authState().revision; // 8
    const [, late] = await run(store, [
      at(9, change({ op: "user-passwd", user: "alice", password })),
      at(10, {
        op: "put",
        key: bytes("app/k"),
        value: bytes("v"),
        auth: { user: "alice", revision: checkedAt },
      }),
    ]);
    expect(late).toMatchObject({
      kind: "refused",
      refusal: "AUTH_UNAUTHENTICATED",
      reason: expect.stringContaining("a new password"),
    });
    await store.close();
  });

  test("a change's payload keeps only its op's fields: a password cannot carry roles", () => {
    const crafted = new TextEncoder().encode(
      JSON.stringify({
        op: "user-add",
        user: "eve",
        password: { scheme: "s", salt: { b64: "" }, hash: { b64: "" }, roles: ["root"] },
        roles: ["root"],
      }),
    );
    const decoded = decodeCommand(new Uint8Array([7, ...crafted]));
    expect(decoded).toEqual({
      op: "auth",
      change: {
        op: "user-add",
        user: "eve",
        password: { scheme: "s", salt: new Uint8Array(), hash: new Uint8Array() },
      },
    });
    const table = new AuthTable();
    if (decoded.op !== "auth") throw new Error("not an auth command");
    table.apply(decoded.change, 1);
    expect(table.state.users.get("eve")?.roles).toEqual([]);
  });

  test("the table survives a restart and travels in a snapshot", async () => {
    const dataPath = await dirs.make();
    const source = await open(dataPath);
    await run(
      source,
      SETUP.map((command, i) => at(i + 1, command)),
    );
    const before = source.authState();
    await source.close();
    const reopened = await open(dataPath);
    expect(reopened.authState()).toEqual(before);
    const target = await open(await dirs.make());
    await install(target, await readAll(reopened, 16));
    expect(target.authState()).toEqual(before);
    expect(target.authState().users.get("alice")?.roles).toEqual(["reader"]);
    await Promise.all([reopened.close(), target.close()]);
  });
});
