// Users, roles and permissions in the replicated state, as etcd keeps them: every change is
// a log entry (an `auth` command) that every node applies the same way, so every node
// checks a caller against the same table. Passwords arrive already hashed (the proposing
// node hashes them; the log and the store never see one). A write proposed for a caller
// carries an auth tag (the user, and the auth revision the proposing node checked it at);
// when the table changed in between, the state machine checks the write again at apply,
// so a permission revoked before a write applies is never used by it.
import { DecodeError } from "./decode-error.js";
import { printableKey } from "./format.js";

/** What a permission allows on its keys. */
export type PermissionType = "read" | "write" | "readwrite";

/** A role's permission on one key, or on every key with a prefix. */
export interface Permission {
  /** What it allows. */
  readonly type: PermissionType;
  /** The key, or the prefix; never empty. */
  readonly key: Uint8Array;
  /** Whether `key` is a prefix (every key starting with it) rather than one key. */
  readonly prefix: boolean;
}

/** A user: a salted password hash and roles. */
export interface AuthUser {
  /** The user's name. */
  readonly name: string;
  /** How the password was hashed, e.g. `scrypt:16384:8:1` (the proposing node's choice). */
  readonly scheme: string;
  /** The salt, random per password. */
  readonly salt: Uint8Array;
  /** The password's hash. */
  readonly hash: Uint8Array;
  /** The roles granted, sorted. */
  readonly roles: readonly string[];
  /** Log index of the entry that last set the password: tokens issued before it are void. */
  readonly passwordIndex: number;
}

/** A role: a name and permissions. `root` is built in and may do everything. */
export interface AuthRole {
  /** The role's name. */
  readonly name: string;
  /** What it allows. */
  readonly permissions: readonly Permission[];
}

/** The whole auth table. Immutable: each change makes a new one. */
export interface AuthState {
  /** Whether calls are checked. */
  readonly enabled: boolean;
  /** Log index of the last change (0: none): a write checked at another must be checked again. */
  readonly revision: number;
  /** Log index of the last `enable` (0: never): tokens verified before it are void. */
  readonly enabledAt: number;
  /** Signs the tokens (set by each `enable`, so disabling and enabling voids every token). */
  readonly signingKey: Uint8Array;
  /** Users by name. */
  readonly users: ReadonlyMap<string, AuthUser>;
  /** Roles by name (`root` is not listed: it is built in). */
  readonly roles: ReadonlyMap<string, AuthRole>;
}

/** The built-in role that may do everything. */
export const ROOT_ROLE = "root";

/** The table of a new cluster: auth off, nobody. */
export const EMPTY_AUTH: AuthState = Object.freeze({
  enabled: false,
  revision: 0,
  enabledAt: 0,
  signingKey: new Uint8Array(0),
  users: new Map(),
  roles: new Map(),
});

/** A password as a user record keeps it. */
export type PasswordHash = Pick<AuthUser, "scheme" | "salt" | "hash">;

/** A change to the auth table (the payload of an `auth` command). */
export type AuthChange =
  | {
      /** Turn checking on, with a new token signing key (at least 32 bytes). */
      readonly op: "enable";
      /** Signs the tokens from now on (random, made by the proposing node). */
      readonly signingKey: Uint8Array;
    }
  | {
      /** Turn checking off (and forget the signing key). */
      readonly op: "disable";
    }
  | {
      /** Add a user, or set its password. */
      readonly op: "user-add" | "user-passwd";
      /** The user. */
      readonly user: string;
      /** The password, hashed. */
      readonly password: PasswordHash;
    }
  | {
      /** Delete a user. */
      readonly op: "user-delete";
      /** The user. */
      readonly user: string;
    }
  | {
      /** Grant a role to a user, or revoke it. */
      readonly op: "user-grant" | "user-revoke";
      /** The user. */
      readonly user: string;
      /** The role. */
      readonly role: string;
    }
  | {
      /** Add a role, or delete it (revoking it from every user). */
      readonly op: "role-add" | "role-delete";
      /** The role. */
      readonly role: string;
    }
  | {
      /** Grant a role a permission (replacing one on the same key or prefix). */
      readonly op: "role-grant";
      /** The role. */
      readonly role: string;
      /** The permission. */
      readonly permission: Permission;
    }
  | {
      /** Revoke a role's permission on a key or prefix. */
      readonly op: "role-revoke";
      /** The role. */
      readonly role: string;
      /** The key, or the prefix. */
      readonly key: Uint8Array;
      /** Whether `key` is a prefix. */
      readonly prefix: boolean;
    };

/** Who proposed a command, and the auth revision its node checked the caller at. */
export interface AuthTag {
  /** The caller's user name; empty for a caller without one (auth was off). */
  readonly user: string;
  /** The revision of the table the caller was checked against. */
  readonly revision: number;
}

/** Why an auth change or a caller's command was refused (nothing was applied). */
export type AuthRefusal =
  /** A change that does not fit the table (a user that exists, a role that does not…). */
  | "AUTH_INVALID"
  /** A caller without a user, or whose user is gone, while auth is on. */
  | "AUTH_UNAUTHENTICATED"
  /** A caller without the permission. */
  | "AUTH_PERMISSION_DENIED";

/** The outcome of checking something against the table: allowed, or why not. */
export type AuthVerdict =
  | {
      /** Allowed. */
      readonly allowed: true;
    }
  | {
      /** Refused. */
      readonly allowed: false;
      /** Why, as a stable code. */
      readonly refusal: AuthRefusal;
      /** Why, in words that name the user and the key. */
      readonly reason: string;
    };

const ALLOWED: AuthVerdict = Object.freeze({ allowed: true });
const refuse = (refusal: AuthRefusal, reason: string): AuthVerdict => ({
  allowed: false,
  refusal,
  reason,
});

function startsWith(key: Uint8Array, prefix: Uint8Array): boolean {
  if (key.byteLength < prefix.byteLength) return false;
  for (let i = 0; i < prefix.byteLength; i++) if (key[i] !== prefix[i]) return false;
  return true;
}

function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && startsWith(a, b);
}

/** Why a caller that names no user of the table (none at all: "") is refused. */
function unknownCaller(user: string): AuthVerdict {
  return user === ""
    ? refuse("AUTH_UNAUTHENTICATED", "authentication is enabled: the call carries no token")
    : refuse("AUTH_UNAUTHENTICATED", `user ${JSON.stringify(user)} does not exist`);
}

/** Whether `user` holds the root role. */
export function isRoot(state: AuthState, user: string): boolean {
  return state.users.get(user)?.roles.includes(ROOT_ROLE) === true;
}

/**
 * Whether `user` may `access` `key` (always, while auth is off): a root user may do
 * anything; anyone else needs a role with a permission of that type on the key or a prefix
 * of it.
 */
export function checkAccess(
  state: AuthState,
  user: string,
  access: "read" | "write",
  key: Uint8Array,
): AuthVerdict {
  if (!state.enabled) return ALLOWED;
  const found = state.users.get(user);
  if (found === undefined) return unknownCaller(user);
  if (found.roles.includes(ROOT_ROLE)) return ALLOWED;
  for (const name of found.roles) {
    for (const permission of state.roles.get(name)?.permissions ?? []) {
      if (permission.type !== "readwrite" && permission.type !== access) continue;
      if (permission.prefix ? startsWith(key, permission.key) : sameKey(key, permission.key))
        return ALLOWED;
    }
  }
  return refuse(
    "AUTH_PERMISSION_DENIED",
    `user ${JSON.stringify(user)} may not ${access} key ${printableKey(key)}`,
  );
}

/** Whether `user` may administer (membership, config, users and roles): root only, when on. */
export function checkAdmin(state: AuthState, user: string, what: string): AuthVerdict {
  if (!state.enabled) return ALLOWED;
  if (!state.users.has(user)) return unknownCaller(user);
  if (isRoot(state, user)) return ALLOWED;
  return refuse(
    "AUTH_PERMISSION_DENIED",
    `user ${JSON.stringify(user)} may not ${what}: it needs the root role`,
  );
}

/** Whether a name is acceptable for a user or role: 1 to 128 printable characters. */
function checkName(kind: string, name: string): AuthVerdict {
  return name.length > 0 && name.length <= 128 && /^[\x21-\x7e]+$/.test(name)
    ? ALLOWED
    : refuse(
        "AUTH_INVALID",
        `${kind} name ${JSON.stringify(name)}: expected 1 to 128 printable characters without spaces`,
      );
}

/** Whether, in `users` (the table after a change), some user still holds root while auth is on. */
function rootRemains(state: AuthState, users: ReadonlyMap<string, AuthUser>): boolean {
  if (!state.enabled) return true;
  for (const user of users.values()) if (user.roles.includes(ROOT_ROLE)) return true;
  return false;
}

/** Only a password's own three fields (whatever else a payload carried). */
function passwordOf(password: PasswordHash): PasswordHash {
  return { scheme: password.scheme, salt: password.salt.slice(), hash: password.hash.slice() };
}

/**
 * Whether a caller checked at `revision` is still who it was: while auth is on, its user
 * must exist, have kept its password since, and auth must not have been enabled again since
 * (a token from before that is void); a caller without a user ("") is not.
 */
function checkCaller(state: AuthState, tag: AuthTag): AuthVerdict {
  if (!state.enabled) return ALLOWED;
  const user = state.users.get(tag.user);
  if (user === undefined) return unknownCaller(tag.user);
  if (user.passwordIndex > tag.revision || state.enabledAt > tag.revision) {
    return refuse(
      "AUTH_UNAUTHENTICATED",
      `the token of user ${JSON.stringify(tag.user)} was void by the time the call applied (a new password, or authentication enabled again)`,
    );
  }
  return ALLOWED;
}

/**
 * Applies `change` at log index `index`: the new table, or why it cannot apply (the table
 * is unchanged). Every node reaches the same answer from the same table.
 */
export function applyAuthChange(
  state: AuthState,
  change: AuthChange,
  index: number,
): { readonly state: AuthState } | Extract<AuthVerdict, { allowed: false }> {
  const users = new Map(state.users);
  const roles = new Map(state.roles);
  const next = (fields: Partial<AuthState>) => ({
    state: Object.freeze({ ...state, users, roles, ...fields, revision: index }),
  });
  const invalid = (reason: string) =>
    refuse("AUTH_INVALID", reason) as Extract<AuthVerdict, { allowed: false }>;
  const named = (kind: string, name: string) => {
    const verdict = checkName(kind, name);
    return verdict.allowed ? undefined : verdict;
  };
  const user = "user" in change ? users.get(change.user) : undefined;
  const userName = "user" in change ? JSON.stringify(change.user) : "";
  const roleName = "role" in change ? JSON.stringify(change.role) : "";
  switch (change.op) {
    case "enable": {
      if (!users.get("root")?.roles.includes(ROOT_ROLE)) {
        return invalid(
          'authentication cannot be enabled without a user "root" holding the root role (user add root, then user grant-role root root)',
        );
      }
      if (change.signingKey.byteLength < 32)
        return invalid("enable: the signing key must be at least 32 bytes");
      return next({ enabled: true, enabledAt: index, signingKey: change.signingKey.slice() });
    }
    case "disable":
      return next({ enabled: false, signingKey: new Uint8Array(0) });
    case "user-add":
      if (named("user", change.user) !== undefined) return named("user", change.user)!;
      if (user !== undefined) return invalid(`user ${userName} already exists`);
      users.set(change.user, {
        name: change.user,
        ...passwordOf(change.password),
        roles: [],
        passwordIndex: index,
      });
      return next({});
    case "user-delete": {
      if (user === undefined) return invalid(`user ${userName} does not exist`);
      users.delete(change.user);
      if (!rootRemains(state, users))
        return invalid(
          `user ${userName} is the last one with the root role while authentication is enabled`,
        );
      return next({});
    }
    case "user-passwd":
      if (user === undefined) return invalid(`user ${userName} does not exist`);
      users.set(change.user, { ...user, ...passwordOf(change.password), passwordIndex: index });
      return next({});
    case "user-grant": {
      if (user === undefined) return invalid(`user ${userName} does not exist`);
      if (change.role !== ROOT_ROLE && !roles.has(change.role))
        return invalid(`role ${roleName} does not exist`);
      if (user.roles.includes(change.role))
        return invalid(`user ${userName} already has role ${roleName}`);
      users.set(change.user, { ...user, roles: [...user.roles, change.role].sort() });
      return next({});
    }
    case "user-revoke": {
      if (user === undefined) return invalid(`user ${userName} does not exist`);
      if (!user.roles.includes(change.role))
        return invalid(`user ${userName} does not have role ${roleName}`);
      users.set(change.user, { ...user, roles: user.roles.filter((r) => r !== change.role) });
      if (!rootRemains(state, users))
        return invalid(
          `user ${userName} is the last one with the root role while authentication is enabled`,
        );
      return next({});
    }
    case "role-add":
      if (named("role", change.role) !== undefined) return named("role", change.role)!;
      if (change.role === ROOT_ROLE || roles.has(change.role))
        return invalid(`role ${roleName} already exists`);
      roles.set(change.role, { name: change.role, permissions: [] });
      return next({});
    case "role-delete": {
      if (change.role === ROOT_ROLE)
        return invalid("the root role is built in: it cannot be deleted");
      if (!roles.has(change.role)) return invalid(`role ${roleName} does not exist`);
      roles.delete(change.role);
      for (const [name, holder] of users) {
        if (holder.roles.includes(change.role))
          users.set(name, { ...holder, roles: holder.roles.filter((r) => r !== change.role) });
      }
      return next({});
    }
    case "role-grant": {
      const role = roles.get(change.role);
      if (change.role === ROOT_ROLE)
        return invalid("the root role may do everything: it takes no permissions");
      if (role === undefined) return invalid(`role ${roleName} does not exist`);
      const { permission } = change;
      if (permission.key.byteLength === 0) {
        return invalid(
          `role ${roleName}: a permission needs a key or a non-empty prefix (an empty prefix would grant every key)`,
        );
      }
      // A grant on the same key (and kind) replaces the one before, as etcd's does.
      const kept = role.permissions.filter(
        (p) => !(p.prefix === permission.prefix && sameKey(p.key, permission.key)),
      );
      const granted = {
        type: permission.type,
        key: permission.key.slice(),
        prefix: permission.prefix,
      };
      roles.set(change.role, { ...role, permissions: [...kept, granted] });
      return next({});
    }
    case "role-revoke": {
      const role = roles.get(change.role);
      if (role === undefined) return invalid(`role ${roleName} does not exist`);
      const kept = role.permissions.filter(
        (p) => !(p.prefix === change.prefix && sameKey(p.key, change.key)),
      );
      if (kept.length === role.permissions.length) {
        return invalid(
          `role ${roleName} has no permission on ${change.prefix ? "prefix" : "key"} ${printableKey(change.key)}`,
        );
      }
      roles.set(change.role, { ...role, permissions: kept });
      return next({});
    }
  }
}

// ---- The record: the whole table as stored (and carried in snapshots) --------------------

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const unb64 = (text: unknown, what: string): Uint8Array => {
  if (typeof text !== "string") throw new DecodeError(`auth record: ${what} is not base64 text`);
  return new Uint8Array(Buffer.from(text, "base64"));
};

/** The table as one record (JSON: it changes seldom and stays small). */
export function encodeAuthState(state: AuthState): Uint8Array {
  const record = {
    v: 1,
    enabled: state.enabled,
    revision: state.revision,
    enabledAt: state.enabledAt,
    signingKey: b64(state.signingKey),
    users: [...state.users.values()].map((u) => ({
      name: u.name,
      scheme: u.scheme,
      salt: b64(u.salt),
      hash: b64(u.hash),
      roles: u.roles,
      passwordIndex: u.passwordIndex,
    })),
    roles: [...state.roles.values()].map((r) => ({
      name: r.name,
      permissions: r.permissions.map((p) => ({ type: p.type, key: b64(p.key), prefix: p.prefix })),
    })),
  };
  return new TextEncoder().encode(JSON.stringify(record));
}

/** Reads what {@link encodeAuthState} wrote; DecodeError when it is not such a record. */
export function decodeAuthState(bytes: Uint8Array): AuthState {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) as Record<
      string,
      unknown
    >;
  } catch (cause) {
    throw new DecodeError(`auth record: not JSON: ${(cause as Error).message}`);
  }
  if (record.v !== 1) throw new DecodeError(`auth record: unknown version ${String(record.v)}`);
  const list = (value: unknown, what: string) => {
    if (!Array.isArray(value)) throw new DecodeError(`auth record: ${what} is not a list`);
    return value as Record<string, unknown>[];
  };
  const text = (value: unknown, what: string) => {
    if (typeof value !== "string") throw new DecodeError(`auth record: ${what} is not text`);
    return value;
  };
  const users = new Map<string, AuthUser>();
  for (const u of list(record.users, "users")) {
    const name = text(u.name, "a user's name");
    users.set(name, {
      name,
      scheme: text(u.scheme, `user ${name}'s scheme`),
      salt: unb64(u.salt, `user ${name}'s salt`),
      hash: unb64(u.hash, `user ${name}'s hash`),
      roles: list(u.roles, `user ${name}'s roles`).map((r) => text(r, `a role of ${name}`)),
      passwordIndex: Number(u.passwordIndex),
    });
  }
  const roles = new Map<string, AuthRole>();
  for (const r of list(record.roles, "roles")) {
    const name = text(r.name, "a role's name");
    const permissions = list(r.permissions, `role ${name}'s permissions`).map((p): Permission => {
      const type = p.type;
      if (type !== "read" && type !== "write" && type !== "readwrite")
        throw new DecodeError(`auth record: role ${name} has a permission of type ${String(type)}`);
      const key = unb64(p.key, `a key of role ${name}`);
      return { type: type, key, prefix: p.prefix === true };
    });
    roles.set(name, { name, permissions });
  }
  return Object.freeze({
    enabled: record.enabled === true,
    revision: Number(record.revision),
    enabledAt: Number(record.enabledAt ?? 0),
    signingKey: unb64(record.signingKey, "the signing key"),
    users,
    roles,
  });
}

// ---- The table as the state machine keeps it ---------------------------------------------

/**
 * The auth table of one state machine generation, with an apply's begin/commit/rollback
 * (as SessionTable's) and `changes()`: the record to persist after an apply that changed it.
 */
export class AuthTable {
  private current: AuthState = EMPTY_AUTH;
  private before: AuthState | undefined;
  private changed = false;

  /** The table now (immutable; a change makes a new one). */
  get state(): AuthState {
    return this.current;
  }

  /** Loads the stored table (at open, or from a snapshot). */
  load(state: AuthState): void {
    this.current = state;
  }

  /** An apply begins: its changes can be rolled back until `commit`. */
  begin(): void {
    this.before = this.current;
  }

  /** The apply's changes stay. */
  commit(): void {
    this.before = undefined;
  }

  /** Undoes every change since `begin`. */
  rollback(): void {
    if (this.before === undefined) return;
    this.current = this.before;
    this.before = undefined;
  }

  /** Applies `change` at log index `index`: allowed (the table changed) or why it was refused. */
  apply(change: AuthChange, index: number): AuthVerdict {
    const outcome = applyAuthChange(this.current, change, index);
    if (!("state" in outcome)) return outcome;
    this.current = outcome.state;
    this.changed = true;
    return ALLOWED;
  }

  /**
   * Checks a tagged command again at apply when the table changed since its proposing node
   * checked it: `check` says what the caller needed.
   */
  recheck(
    tag: AuthTag | undefined,
    check: (state: AuthState, user: string) => AuthVerdict,
  ): AuthVerdict {
    if (tag === undefined || tag.revision === this.current.revision) return ALLOWED;
    const caller = checkCaller(this.current, tag);
    return caller.allowed ? check(this.current, tag.user) : caller;
  }

  /** The record to persist if the table changed since the last call, else undefined. */
  changes(): Uint8Array | undefined {
    if (!this.changed) return undefined;
    this.changed = false;
    return encodeAuthState(this.current);
  }
}
