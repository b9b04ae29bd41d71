// The client's side of authentication: a token for its user, got from Auth.Authenticate
// when first needed and again before it expires, sent as metadata on every call; and the
// Auth service's calls, as `client.auth`.
import {
  InterceptingCall,
  type Interceptor,
  type Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { RockraftClientError, type Endpoint } from "./client-calls.js";
import type {
  AuthClient,
  AuthenticateResponse,
  Permission as WirePermission,
  RoleListResponse,
  UserListResponse,
} from "./gen/rockraft/v1/auth.js";
import type {
  AuthRequest,
  AuthRevision,
  AuthRoleInfo,
  AuthStatus,
  AuthToken,
  AuthUserInfo,
} from "./handlers.js";
import { permissionFromWire, wirePermission } from "./services/auth.js";
import { toNumber } from "./wire.js";

/** A user name and password for {@link RockraftClientOptions.auth}. */
export interface ClientCredentials {
  /** The user's name. */
  readonly user: string;
  /** Its password (kept in memory to authenticate again when the token expires). */
  readonly password: string;
}

/**
 * Where a client's tokens come from, instead of a user's password: `token` gives one valid
 * for at least a while, or undefined when calls need none (authentication is off).
 * rockraft's nodes use this to forward membership calls with a token of their own.
 */
export interface ClientTokenSource {
  /** A token, or undefined when none is needed now. */
  readonly token: (deadline: number) => Promise<AuthToken | undefined>;
}

/** How long a client without a token (auth was off) waits before it asks again. */
const NO_TOKEN_RECHECK_MS = 5_000;

/**
 * The token of a client's user: fetched when first needed, fetched again once a quarter of
 * its lifetime is left (or the cluster refused it), and added to every call's metadata.
 * Lifetimes count from when the answer arrived, by this machine's clock (the issuing
 * node's may differ). While the cluster has authentication off, calls go without one.
 */
export class ClientToken {
  private token: string | undefined;
  private expiresAtMs = 0;
  private refreshAtMs = 0;
  private fetching: Promise<void> | undefined;

  constructor(
    private readonly fetch: (deadline: number) => Promise<AuthToken | undefined>,
    /** Called with each new token (the client then moves its Batch streams to it). */
    private readonly renewed: () => void,
  ) {}

  /** Resolves once the client holds a token that is not about to expire (or needs none). */
  ready(deadline: number): Promise<void> {
    if (Date.now() < this.refreshAtMs) return Promise.resolve();
    const asked = Date.now();
    this.fetching ??= this.fetch(deadline)
      .then((answer) => {
        const had = this.token;
        this.token = answer?.token;
        if (answer === undefined) {
          this.expiresAtMs = 0;
          this.refreshAtMs = Date.now() + NO_TOKEN_RECHECK_MS;
        } else {
          // Counted from when it was asked for: it was issued after that. (A node that
          // does not say its lifetime: what is left by its expiry time, at least a second.)
          const ttlMs =
            answer.ttlMs > 0 ? answer.ttlMs : Math.max(1_000, answer.expiresAtMs - asked);
          this.expiresAtMs = asked + ttlMs;
          this.refreshAtMs = asked + (ttlMs * 3) / 4;
        }
        if (this.token !== had) this.renewed();
      })
      .finally(() => {
        this.fetching = undefined;
      });
    return this.fetching;
  }

  /** The cluster refused the token (or wants one now): the next call fetches another. */
  invalidate(): void {
    this.refreshAtMs = 0;
  }

  /** Adds `authorization: Bearer <token>` to every call of a channel. */
  readonly interceptor: Interceptor = (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata: Metadata, listener, next) => {
        if (this.token !== undefined && Date.now() < this.expiresAtMs)
          metadata.set("authorization", `Bearer ${this.token}`);
        next(metadata, listener);
      },
    });
}

/** One call of the Auth service, with the client's leader-following and retries. */
export type AuthInvoker = <Response>(
  method: string,
  request: unknown,
  mode: "read" | "write",
  options: { timeoutMs?: number },
) => Promise<Response>;

/**
 * The token of `credentials`' user, fetched through `auth` (none while the cluster has
 * authentication off), or `credentials`' own source; each new one moves the Batch streams
 * of `endpoints` on (calls on a stream carry the token it was opened with; the old stream
 * answers what it has).
 */
export function clientToken(
  credentials: ClientCredentials | ClientTokenSource,
  auth: AuthCalls,
  endpoints: () => Iterable<Endpoint>,
): ClientToken {
  const fetch =
    "token" in credentials
      ? credentials.token
      : (deadline: number) =>
          auth
            .authenticate(credentials.user, credentials.password, {
              timeoutMs: Math.max(1, deadline - Date.now()),
            })
            .catch((error: unknown) => {
              if (
                error instanceof RockraftClientError &&
                error.serverCode === "RAFT_AUTH_NOT_ENABLED"
              )
                return undefined;
              throw error;
            });
  return new ClientToken(fetch, () => {
    for (const endpoint of endpoints()) endpoint.batch.rotate();
  });
}

/** A generated client's unary method, bound. */
type UnaryMethod = (
  request: unknown,
  metadata: Metadata,
  options: { deadline: number },
  callback: (error: ServiceError | null, response: never) => void,
) => unknown;

/** The generated Auth client's unary method `name`, bound. */
export function authMethod(client: AuthClient, name: string): UnaryMethod {
  const method = (client as unknown as Record<string, UnaryMethod | undefined>)[name];
  if (method === undefined) throw new Error(`Auth has no method ${name}`);
  return method.bind(client);
}

/**
 * The Auth service as `client.auth`: the same calls as a node's in-process
 * `raft().auth`. Changes need the root role while auth is on.
 */
export class AuthCalls {
  /** @internal Made by RockraftClient. */
  constructor(private readonly invoke: AuthInvoker) {}

  /** A token for `user` (RockraftClient gets its own with its `auth` option). */
  async authenticate(
    user: string,
    password: string,
    options: { timeoutMs?: number } = {},
  ): Promise<AuthToken> {
    const answer = await this.invoke<AuthenticateResponse>(
      "authenticate",
      { user, password },
      "read",
      options,
    );
    return {
      token: answer.token,
      expiresAtMs: toNumber(answer.expiresAtMs, "expires_at_ms"),
      ttlMs: toNumber(answer.ttlMs, "ttl_ms"),
    };
  }

  /** Whether auth is on, and the table's revision. */
  async status(options: { timeoutMs?: number } = {}): Promise<AuthStatus> {
    const answer = await this.invoke<{ enabled: boolean; revision: bigint }>(
      "authStatus",
      {},
      "read",
      options,
    );
    return { enabled: answer.enabled, revision: toNumber(answer.revision, "revision") };
  }

  /** Every user and its roles. */
  async users(options: { timeoutMs?: number } = {}): Promise<AuthUserInfo[]> {
    const answer = await this.invoke<UserListResponse>("userList", {}, "read", options);
    return answer.users.map((u) => ({ name: u.name, roles: u.roles }));
  }

  /** Every role and its permissions, the built-in root role first. */
  async roles(options: { timeoutMs?: number } = {}): Promise<AuthRoleInfo[]> {
    const answer = await this.invoke<RoleListResponse>("roleList", {}, "read", options);
    return answer.roles.map((r) => ({
      name: r.name,
      permissions: r.permissions.map((p, i) => permissionFromWire(p, `permissions[${i}]`)),
    }));
  }

  /**
   * Changes the users and roles; resolves with the table's revision once applied. Not
   * retried after an attempt whose outcome is unknown.
   */
  async change(request: AuthRequest, options: { timeoutMs?: number } = {}): Promise<AuthRevision> {
    const [method, wire] = wireRequest(request);
    const answer = await this.invoke<{ revision: bigint }>(method, wire, "write", options);
    return { revision: toNumber(answer.revision, "revision") };
  }
}

function wireRequest(request: AuthRequest): [string, unknown] {
  switch (request.op) {
    case "enable":
      return ["authEnable", {}];
    case "disable":
      return ["authDisable", {}];
    case "user-add":
      return ["userAdd", { user: request.user, password: request.password }];
    case "user-delete":
      return ["userDelete", { user: request.user }];
    case "user-passwd":
      return ["userChangePassword", { user: request.user, password: request.password }];
    case "user-grant":
      return ["userGrantRole", { user: request.user, role: request.role }];
    case "user-revoke":
      return ["userRevokeRole", { user: request.user, role: request.role }];
    case "role-add":
      return ["roleAdd", { role: request.role }];
    case "role-delete":
      return ["roleDelete", { role: request.role }];
    case "role-grant": {
      const permission: WirePermission = wirePermission(request.permission);
      return ["roleGrantPermission", { role: request.role, permission }];
    }
    case "role-revoke":
      return [
        "roleRevokePermission",
        { role: request.role, key: Buffer.from(request.key), prefix: request.prefix },
      ];
  }
}
