// Who a gRPC caller is, and what it may do. The users, roles and permissions live in the
// replicated state (storage-level's auth.ts); this node hashes passwords before they are
// proposed, issues tokens (JWTs signed with the table's key, by `jose`) and checks each
// call's token and permission against the table it has applied.
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { SignJWT, errors as joseErrors, jwtVerify } from "jose";
import {
  checkAccess,
  checkAdmin,
  type AuthState,
  type AuthTag,
  type AuthUser,
  type AuthVerdict,
  type PasswordHash,
} from "@rockraft/storage-level";
import type { AuthToken } from "@rockraft/transport-grpc";
import { RockraftError } from "./errors.js";
import type { Clock } from "./seams.js";

/**
 * A caller as checked: its user ("" when auth is off) and the table revision checked at;
 * `node`: another node of the cluster forwarding a call it checked already (its token is
 * one nodes make with the cluster's signing key), allowed what root is.
 */
export type Caller = AuthTag & {
  /** Another node of the cluster, by id, forwarding a call it checked already. */
  readonly node?: number;
};

/** scrypt's cost: N, r, p (about 50 ms and 16 MiB per hash on this kind of machine). */
const SCRYPT = { N: 16_384, r: 8, p: 1 } as const;
const SCHEME = `scrypt:${SCRYPT.N}:${SCRYPT.r}:${SCRYPT.p}`;
const KEY_BYTES = 32;

function derive(
  password: string,
  salt: Uint8Array,
  cost: { N: number; r: number; p: number },
): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEY_BYTES, { ...cost, maxmem: 64 * 1024 * 1024 }, (error, key) =>
      error === null ? resolve(key) : reject(error),
    ),
  );
}

/** A password's salted hash, as a user record keeps it (the password itself goes nowhere). */
export async function hashPassword(password: string): Promise<PasswordHash> {
  if (password.length === 0)
    throw new RockraftError("RAFT_INVALID_ARGUMENT", "password: expected a non-empty password");
  const salt = new Uint8Array(randomBytes(16));
  return { scheme: SCHEME, salt, hash: new Uint8Array(await derive(password, salt, SCRYPT)) };
}

async function passwordMatches(user: AuthUser, password: string): Promise<boolean> {
  const [name, N, r, p] = user.scheme.split(":");
  if (name !== "scrypt") return false;
  const key = await derive(password, user.salt, { N: Number(N), r: Number(r), p: Number(p) });
  return key.byteLength === user.hash.byteLength && timingSafeEqual(key, user.hash);
}

/** A token's claims, once verified. */
interface Verified {
  readonly user: string;
  /** A node's own token: the node's id. */
  readonly node: number | undefined;
  readonly passwordIndex: number;
  readonly expiresAtMs: number;
  /** The signing key it was verified with (a token signed before a re-enable is void). */
  readonly key: Uint8Array;
}

/** Tokens verified already, so that a call costs a map lookup, not a signature check. */
const CACHE_LIMIT = 10_000;
/** Password checks at once (each takes about 50 ms and 16 MiB); more wait, up to a queue. */
const HASHING_AT_ONCE = 2;
const HASHING_QUEUE = 64;
/** How long a node's own token (for calls it forwards) is valid. */
const NODE_TOKEN_MS = 60_000;
/** A hash compared against for an unknown user, so that it takes as long as a known one. */
const NOBODY: AuthUser = {
  name: "",
  scheme: SCHEME,
  salt: new Uint8Array(16),
  hash: new Uint8Array(KEY_BYTES),
  roles: [],
  passwordIndex: 0,
};

/**
 * The node's gate: issues tokens and says who a call's token names and whether it may do
 * what it asks, against the table this node has applied.
 */
export class AuthGate {
  private readonly verified = new Map<string, Verified>();
  private hashing = 0;
  private readonly waiting: (() => void)[] = [];
  private nodeToken_: { token: string; key: Uint8Array; refreshAt: number } | undefined;
  private anonymous: Caller | undefined;

  constructor(
    /** The applied table, now. */
    private readonly state: () => AuthState,
    /** How long a token is valid (`[auth] token_ttl_ms`, live). */
    private readonly ttlMs: () => number,
    private readonly clock: Clock,
    /** Whether a call without a token is its client certificate's user (`[tls] client_cert_auth`). */
    private readonly certificateUsers: () => boolean = () => false,
  ) {}

  /**
   * A token for `user`, if `password` is its password: the same error, after the same
   * work, for an unknown user as for a wrong password. At most a few passwords are
   * checked at once (RAFT_AUTH_BUSY beyond a queue), so that a flood of attempts cannot
   * starve the node's storage of the thread pool they share.
   */
  async authenticate(user: string, password: string): Promise<AuthToken> {
    const state = this.state();
    if (!state.enabled) {
      throw new RockraftError(
        "RAFT_AUTH_NOT_ENABLED",
        "Auth.Authenticate: authentication is not enabled: calls need no token",
      );
    }
    const found = state.users.get(user);
    const matches = await this.limited(() => passwordMatches(found ?? NOBODY, password));
    if (!matches || found === undefined) {
      throw new RockraftError(
        "RAFT_UNAUTHENTICATED",
        `Auth.Authenticate: wrong user name or password for user ${JSON.stringify(user)}`,
      );
    }
    return this.sign({ sub: user, pwi: found.passwordIndex }, this.ttlMs(), state);
  }

  /**
   * A token of this node's own, for the calls it forwards to the leader after checking
   * them itself (undefined while authentication is off).
   */
  async nodeToken(nodeId: number): Promise<AuthToken | undefined> {
    const state = this.state();
    if (!state.enabled) return undefined;
    const held = this.nodeToken_;
    const now = this.clock.now();
    if (held !== undefined && held.key === state.signingKey && now < held.refreshAt) {
      return { token: held.token, expiresAtMs: held.refreshAt, ttlMs: held.refreshAt - now };
    }
    const token = await this.sign({ sub: "", nod: nodeId, pwi: 0 }, NODE_TOKEN_MS, state);
    this.nodeToken_ = {
      token: token.token,
      key: state.signingKey,
      refreshAt: now + NODE_TOKEN_MS / 2,
    };
    return { ...token, ttlMs: NODE_TOKEN_MS / 2 };
  }

  private async sign(
    claims: Record<string, string | number>,
    ttlMs: number,
    state: AuthState,
  ): Promise<AuthToken> {
    const now = this.clock.now();
    const expiresAtMs = Math.ceil((now + ttlMs) / 1000) * 1000;
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256" })
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(expiresAtMs / 1000)
      .sign(state.signingKey);
    return { token, expiresAtMs, ttlMs };
  }

  /** Runs `work` when fewer than HASHING_AT_ONCE run; RAFT_AUTH_BUSY when too many wait. */
  private async limited<T>(work: () => Promise<T>): Promise<T> {
    if (this.hashing >= HASHING_AT_ONCE) {
      if (this.waiting.length >= HASHING_QUEUE) {
        throw new RockraftError(
          "RAFT_AUTH_BUSY",
          "Auth.Authenticate: too many authentications in progress on this node; try again",
        );
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.hashing++;
    try {
      return await work();
    } finally {
      this.hashing--;
      this.waiting.shift()?.();
    }
  }

  /**
   * Who the call's `token` names, checked against the applied table: anyone (user "") while
   * auth is off; otherwise RAFT_UNAUTHENTICATED when the token is missing, forged, expired,
   * signed before auth was last enabled, or names a user that is gone or has changed its
   * password since. Without a token, with `[tls] client_cert_auth`, the user its verified
   * client certificate names (which must exist). `what` names the call in the error.
   */
  async identify(
    call: { readonly token?: string | undefined; readonly certificateName?: string | undefined },
    what: string,
  ): Promise<Caller> {
    const state = this.state();
    if (!state.enabled) {
      // Every call while auth is off: one caller per revision, not an object per call.
      if (this.anonymous?.revision !== state.revision)
        this.anonymous = Object.freeze({ user: "", revision: state.revision });
      return this.anonymous;
    }
    const token = call.token;
    if ((token === undefined || token === "") && this.certificateUsers()) {
      const name = call.certificateName;
      if (name !== undefined && state.users.has(name))
        return { user: name, revision: state.revision };
      if (name !== undefined) {
        throw new RockraftError(
          "RAFT_UNAUTHENTICATED",
          `${what}: the client certificate's common name ${JSON.stringify(name)} is not a user, and the call carries no token`,
        );
      }
    }
    if (token === undefined || token === "") {
      throw new RockraftError(
        "RAFT_UNAUTHENTICATED",
        `${what}: authentication is enabled and the call carries no token (metadata "authorization: Bearer <token>", from Auth.Authenticate)`,
      );
    }
    let claims = this.verified.get(token);
    if (claims === undefined || claims.key !== state.signingKey) {
      claims = await this.verify(token, state, what);
      if (this.verified.size >= CACHE_LIMIT) this.verified.clear();
      this.verified.set(token, claims);
    }
    if (claims.expiresAtMs <= this.clock.now()) {
      this.verified.delete(token);
      throw new RockraftError(
        "RAFT_UNAUTHENTICATED",
        `${what}: the token of user ${JSON.stringify(claims.user)} has expired: authenticate again`,
      );
    }
    if (claims.node !== undefined) return { user: "", revision: state.revision, node: claims.node };
    const user = state.users.get(claims.user);
    if (user === undefined) {
      throw new RockraftError(
        "RAFT_UNAUTHENTICATED",
        `${what}: user ${JSON.stringify(claims.user)} no longer exists`,
      );
    }
    if (user.passwordIndex !== claims.passwordIndex) {
      throw new RockraftError(
        "RAFT_UNAUTHENTICATED",
        `${what}: the token was issued before user ${JSON.stringify(claims.user)}'s password changed: authenticate again`,
      );
    }
    return { user: claims.user, revision: state.revision };
  }

  private async verify(token: string, state: AuthState, what: string): Promise<Verified> {
    try {
      const { payload } = await jwtVerify(token, state.signingKey, {
        algorithms: ["HS256"],
        currentDate: new Date(this.clock.now()),
      });
      if (typeof payload.sub !== "string" || typeof payload.pwi !== "number" || !payload.exp)
        throw new Error("claims missing");
      return {
        user: payload.sub,
        node: typeof payload.nod === "number" ? payload.nod : undefined,
        passwordIndex: payload.pwi,
        expiresAtMs: payload.exp * 1000,
        key: state.signingKey,
      };
    } catch (error) {
      const expired = error instanceof joseErrors.JWTExpired;
      throw new RockraftError(
        "RAFT_UNAUTHENTICATED",
        expired
          ? `${what}: the token has expired: authenticate again`
          : `${what}: the token is not valid (forged, damaged, or signed before authentication was last enabled)`,
      );
    }
  }

  /** Throws unless `caller` may `access` `key` (RAFT_PERMISSION_DENIED naming both). */
  checkKey(caller: Caller, access: "read" | "write", key: Uint8Array, what: string): void {
    throwIfRefused(checkAccess(this.state(), caller.user, access, key), what);
  }

  /** Throws unless `caller` may administer (the root role, while auth is on; or a node). */
  checkAdmin(caller: Caller, what: string): void {
    if (caller.node !== undefined) return;
    throwIfRefused(checkAdmin(this.state(), caller.user, `call ${what}`), what);
  }

  /**
   * Whether the table changed since `caller` was checked (a read checked before it waited
   * for its read index is checked again after).
   */
  changedSince(caller: Caller): boolean {
    return this.state().revision !== caller.revision;
  }
}

function throwIfRefused(verdict: AuthVerdict, what: string): void {
  if (verdict.allowed) return;
  throw new RockraftError(
    verdict.refusal === "AUTH_UNAUTHENTICATED" ? "RAFT_UNAUTHENTICATED" : "RAFT_PERMISSION_DENIED",
    `${what}: ${verdict.reason}`,
  );
}
