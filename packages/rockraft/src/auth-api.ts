// `raftNode.raft().auth`: the users, roles and permissions of the cluster, changed through
// the log (storage-level's auth.ts applies them), and tokens for them (auth.ts).
import { randomBytes } from "node:crypto";
import { ROOT_ROLE, type AuthChange } from "@rockraft/storage-level";
import type {
  AuthRequest,
  AuthRevision,
  AuthRoleInfo,
  AuthStatus,
  AuthToken,
  AuthUserInfo,
} from "@rockraft/transport-grpc";
import { hashPassword, type AuthGate, type Caller } from "./auth.js";
import { RockraftError } from "./errors.js";
import type { NodeRuntime } from "./runtime.js";
import { proposeWithoutSession } from "./session-writes.js";

export type { AuthRequest, AuthRevision, AuthRoleInfo, AuthStatus, AuthToken, AuthUserInfo };

/** Options of {@link AuthApi.change}. */
export interface AuthChangeOptions {
  /** The call's deadline; default 10000 ms. */
  readonly timeoutMs?: number | undefined;
  /**
   * The caller the change is made for, checked again when it applies if the table changed
   * since (the gRPC server sets it). An in-process call without one is trusted.
   */
  readonly caller?: Caller | undefined;
}

/**
 * The cluster's users and roles. Changes go through the log, so every node checks callers
 * against the same table; reads answer from this node's applied table. In-process calls are
 * trusted (the application embedding the node acts as root); gRPC callers are checked.
 */
export class AuthApi {
  /** @internal Made by RaftApi. */
  constructor(
    private readonly runtime: NodeRuntime,
    private readonly gate: AuthGate,
  ) {}

  /** Whether auth is on, and the table's revision (the log index of its last change). */
  status(): AuthStatus {
    const { enabled, revision } = this.runtime.storage.authState();
    return { enabled, revision };
  }

  /** Every user and its roles, by name. */
  users(): AuthUserInfo[] {
    const users = [...this.runtime.storage.authState().users.values()];
    return users
      .map((user) => ({ name: user.name, roles: [...user.roles] }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Every role and its permissions, the built-in root role first. */
  roles(): AuthRoleInfo[] {
    const roles = [...this.runtime.storage.authState().roles.values()];
    return [
      { name: ROOT_ROLE, permissions: [] },
      ...roles
        .map((role) => ({ name: role.name, permissions: role.permissions.map((p) => ({ ...p })) }))
        .sort((a, b) => (a.name < b.name ? -1 : 1)),
    ];
  }

  /**
   * A token for `user` (valid for `[auth] token_ttl_ms`), if `password` is its password;
   * RAFT_UNAUTHENTICATED otherwise, the same for an unknown user.
   */
  authenticate(user: string, password: string): Promise<AuthToken> {
    return this.gate.authenticate(user, password);
  }

  /**
   * Changes the users and roles through the log; resolves with the table's revision once
   * the change is applied on this node. A change that does not fit the table fails
   * RAFT_AUTH_INVALID naming why, and changes nothing. Passwords are hashed here (salted
   * scrypt): only the hash is proposed. `enable` needs a user `root` with the root role;
   * it makes a new token signing key, so tokens from before are void.
   */
  async change(request: AuthRequest, options: AuthChangeOptions = {}): Promise<AuthRevision> {
    const deadline = this.runtime.clock.now() + (options.timeoutMs ?? 10_000);
    const change = await changeOf(request);
    const command = {
      op: "auth" as const,
      change,
      ...(options.caller === undefined ? {} : { auth: options.caller }),
    };
    const { result } = await proposeWithoutSession(this.runtime, command, deadline);
    if (result.kind !== "auth") throw new Error(`auth change: unexpected result ${result.kind}`);
    return { revision: result.revision };
  }
}

/** The change a request proposes: passwords hashed, a fresh signing key for `enable`. */
async function changeOf(request: AuthRequest): Promise<AuthChange> {
  const named = (kind: "user" | "role", name: unknown) => {
    if (typeof name !== "string" || name.length === 0)
      throw new RockraftError("RAFT_INVALID_ARGUMENT", `${kind}: expected a non-empty name`);
  };
  if ("user" in request) named("user", request.user);
  if ("role" in request) named("role", request.role);
  switch (request.op) {
    case "enable":
      return { op: "enable", signingKey: new Uint8Array(randomBytes(32)) };
    case "disable":
      return { op: "disable" };
    case "user-add":
    case "user-passwd":
      return { op: request.op, user: request.user, password: await hashPassword(request.password) };
    case "role-grant": {
      const { type, key, prefix } = request.permission;
      if (type !== "read" && type !== "write" && type !== "readwrite") {
        throw new RockraftError(
          "RAFT_INVALID_ARGUMENT",
          `permission.type: expected "read", "write" or "readwrite", got ${JSON.stringify(type)}`,
        );
      }
      return { op: "role-grant", role: request.role, permission: { type, key, prefix } };
    }
    default:
      return request;
  }
}
