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
  checkChange(change);
  return change;
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

/** Refuses JSON that is not an auth change (every node skips it alike, as `invalid`). */
function checkChange(change: unknown): asserts change is AuthChange {
  const record = change as Record<string, unknown> | null;
  const op = record?.op;
  if (typeof op !== "string" || !Object.hasOwn(CHANGE_FIELDS, op))
    throw new DecodeError(`auth command: unknown op ${JSON.stringify(op)}`);
  const is = (value: unknown, type: string): boolean => {
    const fields = value as Record<string, unknown> | null;
    switch (type) {
      case "bytes":
        return value instanceof Uint8Array;
      case "password":
        return (
          typeof fields?.scheme === "string" &&
          fields.salt instanceof Uint8Array &&
          fields.hash instanceof Uint8Array
        );
      case "permission":
        return (
          ["read", "write", "readwrite"].includes(fields?.type as string) &&
          fields?.key instanceof Uint8Array &&
          typeof fields.prefix === "boolean"
        );
      default:
        return typeof value === type;
    }
  };
  for (const [field, type] of Object.entries(CHANGE_FIELDS[op as AuthChange["op"]])) {
    if (!is(record![field], type))
      throw new DecodeError(`auth command ${op}: ${field} is not a ${type}`);
  }
}
