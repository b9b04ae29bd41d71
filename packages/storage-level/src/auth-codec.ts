// The payload of an `auth` command (a change to the users and roles, auth.ts): JSON, its
// byte fields as base64, checked field by field when read, so that a payload that is not a
// change is skipped alike by every node rather than failing an apply.
import type { AuthChange } from "./auth.js";
import { DecodeError } from "./decode-error.js";

const encoder = new TextEncoder();
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

/** An auth change as JSON, its byte fields as base64 (an `auth` command's payload). */
export function encodeAuthChange(change: AuthChange): Uint8Array {
  // The holder's own value: a Buffer's toJSON has run by the time `value` is seen.
  const json = JSON.stringify(change, function (this: Record<string, unknown>, key, value) {
    const own = this[key];
    return own instanceof Uint8Array ? { b64: b64(own) } : (value as unknown);
  });
  return encoder.encode(json);
}

/** Reads what {@link encodeAuthChange} wrote; DecodeError when it is not an auth change. */
export function decodeAuthChange(bytes: Uint8Array): AuthChange {
  let change: unknown;
  try {
    change = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes), (_key, value) =>
      typeof value === "object" &&
      value !== null &&
      typeof (value as { b64?: unknown }).b64 === "string"
        ? new Uint8Array(Buffer.from((value as { b64: string }).b64, "base64"))
        : (value as unknown),
    );
  } catch (cause) {
    throw new DecodeError(`auth command: not JSON: ${(cause as Error).message}`);
  }
  return rebuildChange(change);
}

/** Fields each auth change must have, and their types ("bytes": base64 in the JSON). */
const CHANGE_FIELDS: Record<
  AuthChange["op"],
  Record<string, "string" | "bytes" | "boolean" | "password" | "permission">
> = {
  enable: { signingKey: "bytes" },
  disable: {},
  "user-add": { user: "string", password: "password" },
  "user-delete": { user: "string" },
  "user-passwd": { user: "string", password: "password" },
  "user-grant": { user: "string", role: "string" },
  "user-revoke": { user: "string", role: "string" },
  "role-add": { role: "string" },
  "role-delete": { role: "string" },
  "role-grant": { role: "string", permission: "permission" },
  "role-revoke": { role: "string", key: "bytes", prefix: "boolean" },
};

/**
 * The auth change in parsed JSON, rebuilt from its op's fields only (any other field is
 * dropped, so that nothing but what the op reads reaches the table); DecodeError when a
 * field is missing or of the wrong type (every node then skips the entry alike, as
 * `invalid`).
 */
function rebuildChange(change: unknown): AuthChange {
  const record = change as Record<string, unknown> | null;
  const op = record?.op;
  if (typeof op !== "string" || !Object.hasOwn(CHANGE_FIELDS, op))
    throw new DecodeError(`auth command: unknown op ${JSON.stringify(op)}`);
  const field = (value: unknown, type: string): unknown => {
    const fields = value as Record<string, unknown> | null;
    switch (type) {
      case "bytes":
        return value instanceof Uint8Array ? value : undefined;
      case "password":
        return typeof fields?.scheme === "string" &&
          fields.salt instanceof Uint8Array &&
          fields.hash instanceof Uint8Array
          ? { scheme: fields.scheme, salt: fields.salt, hash: fields.hash }
          : undefined;
      case "permission":
        return ["read", "write", "readwrite"].includes(fields?.type as string) &&
          fields?.key instanceof Uint8Array &&
          typeof fields.prefix === "boolean"
          ? { type: fields.type, key: fields.key, prefix: fields.prefix }
          : undefined;
      default:
        return typeof value === type ? value : undefined;
    }
  };
  const rebuilt: Record<string, unknown> = { op };
  for (const [name, type] of Object.entries(CHANGE_FIELDS[op as AuthChange["op"]])) {
    const value = field(record![name], type);
    if (value === undefined) throw new DecodeError(`auth command ${op}: ${name} is not a ${type}`);
    rebuilt[name] = value;
  }
  return rebuilt as unknown as AuthChange;
}
