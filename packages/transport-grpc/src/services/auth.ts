// The Auth service: tokens, and the users and roles table (proto/rockraft/v1/auth.proto).
import { unary } from "../call-status.js";
import { RpcError } from "../errors.js";
import {
  Permission_Type,
  type AuthServer,
  type Permission as WirePermission,
} from "../gen/rockraft/v1/auth.js";
import type {
  AuthHandler,
  AuthPermission,
  AuthRequest,
  CallContext,
  TransportLogger,
} from "../handlers.js";

const TYPES: Record<AuthPermission["type"], Permission_Type> = {
  read: Permission_Type.TYPE_READ,
  write: Permission_Type.TYPE_WRITE,
  readwrite: Permission_Type.TYPE_READWRITE,
};

/** A permission as the wire carries it. */
export function wirePermission(permission: AuthPermission): WirePermission {
  return {
    type: TYPES[permission.type],
    key: Buffer.from(permission.key),
    prefix: permission.prefix,
  };
}

/** A permission from the wire; INVALID_ARGUMENT naming `field` when it has no type. */
export function permissionFromWire(
  wire: WirePermission | undefined,
  field: string,
): AuthPermission {
  if (wire === undefined) throw new RpcError("INVALID_ARGUMENT", `${field}: missing`);
  const type = (Object.keys(TYPES) as AuthPermission["type"][]).find(
    (name) => TYPES[name] === wire.type,
  );
  if (type === undefined) {
    throw new RpcError(
      "INVALID_ARGUMENT",
      `${field}.type: expected TYPE_READ, TYPE_WRITE or TYPE_READWRITE, got ${wire.type}`,
    );
  }
  return { type, key: wire.key, prefix: wire.prefix };
}

/** The Auth service over `auth`. */
export function authService(auth: AuthHandler, logger: TransportLogger): AuthServer {
  const change = <Request>(what: string, request: (wire: Request) => AuthRequest) =>
    unary(
      what,
      async (wire: Request, context: CallContext) => {
        const { revision } = await auth.change(request(wire), context);
        return { revision: BigInt(revision) };
      },
      logger,
    );
  return {
    authenticate: unary(
      "Auth.Authenticate",
      async (request, context) => {
        const token = await auth.authenticate(request.user, request.password, context);
        return {
          token: token.token,
          expiresAtMs: BigInt(token.expiresAtMs),
          ttlMs: BigInt(token.ttlMs),
        };
      },
      logger,
    ),
    authEnable: change("Auth.AuthEnable", () => ({ op: "enable" })),
    authDisable: change("Auth.AuthDisable", () => ({ op: "disable" })),
    authStatus: unary(
      "Auth.AuthStatus",
      async (_request, context) => {
        const status = await auth.status(context);
        return { enabled: status.enabled, revision: BigInt(status.revision) };
      },
      logger,
    ),
    userAdd: change("Auth.UserAdd", (r: { user: string; password: string }) => ({
      op: "user-add",
      user: r.user,
      password: r.password,
    })),
    userDelete: change("Auth.UserDelete", (r: { user: string }) => ({
      op: "user-delete",
      user: r.user,
    })),
    userChangePassword: change(
      "Auth.UserChangePassword",
      (r: { user: string; password: string }) => ({
        op: "user-passwd",
        user: r.user,
        password: r.password,
      }),
    ),
    userGrantRole: change("Auth.UserGrantRole", (r: { user: string; role: string }) => ({
      op: "user-grant",
      user: r.user,
      role: r.role,
    })),
    userRevokeRole: change("Auth.UserRevokeRole", (r: { user: string; role: string }) => ({
      op: "user-revoke",
      user: r.user,
      role: r.role,
    })),
    userList: unary(
      "Auth.UserList",
      async (_request, context) => ({
        users: (await auth.users(context)).map((u) => ({ name: u.name, roles: [...u.roles] })),
      }),
      logger,
    ),
    roleAdd: change("Auth.RoleAdd", (r: { role: string }) => ({ op: "role-add", role: r.role })),
    roleDelete: change("Auth.RoleDelete", (r: { role: string }) => ({
      op: "role-delete",
      role: r.role,
    })),
    roleGrantPermission: change(
      "Auth.RoleGrantPermission",
      (r: { role: string; permission?: WirePermission | undefined }) => ({
        op: "role-grant",
        role: r.role,
        permission: permissionFromWire(r.permission, "permission"),
      }),
    ),
    roleRevokePermission: change(
      "Auth.RoleRevokePermission",
      (r: { role: string; key: Uint8Array; prefix: boolean }) => ({
        op: "role-revoke",
        role: r.role,
        key: r.key,
        prefix: r.prefix,
      }),
    ),
    roleList: unary(
      "Auth.RoleList",
      async (_request, context) => ({
        roles: (await auth.roles(context)).map((r) => ({
          name: r.name,
          permissions: r.permissions.map(wirePermission),
        })),
      }),
      logger,
    ),
  };
}
