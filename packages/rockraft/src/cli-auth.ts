// The command line's auth commands (cli.ts runs them): users, roles, permissions, and
// whether authentication is on. Passwords are read from the terminal when not given.
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import type { AuthRequest, RockraftClient } from "@rockraft/transport-grpc";

/** What an auth command needs from the command line. */
export interface AuthCommandContext {
  readonly client: RockraftClient;
  readonly command: string;
  readonly args: readonly string[];
  /** `--prefix`: a permission on every key starting with the key given. */
  readonly prefix: boolean;
  readonly print: (human: string, json: unknown) => void;
  readonly err: (line: string) => void;
  /** Reads a password from the terminal (not echoed); undefined when there is none. */
  readonly askPassword: (question: string) => Promise<string | undefined>;
}

export const AUTH_USAGE = `  auth enable                     turn authentication on (needs user root with role root)
  auth disable                    turn it off
  auth status                     whether it is on, and the table's revision
  user add <name> [password]      add a user (asks for the password when not given)
  user delete <name>              delete a user
  user passwd <name> [password]   change a user's password
  user list                       users and their roles
  user grant-role <user> <role>   grant a role ("root" may do everything)
  user revoke-role <user> <role>  revoke a role
  role add <name>                 add a role
  role delete <name>              delete a role (and revoke it from every user)
  role list                       roles and their permissions
  role grant <role> <read|write|readwrite> <key> [--prefix]
                                  allow a key, or with --prefix every key starting with it
  role revoke <role> <key> [--prefix]
                                  remove that permission`;

/** The groups auth commands belong to. */
export const AUTH_GROUPS = new Set(["auth", "user", "role"]);

/**
 * Runs `auth|user|role <command>`; the exit code (0 ok, 2 bad usage; a failed call
 * throws for cli.ts to report).
 */
export async function authCommand(group: string, context: AuthCommandContext): Promise<number> {
  const { client, command, args, print, err } = context;
  const usage = (names: string) => {
    err(`rockraft: ${group} ${command} expects ${names}`);
    return 2;
  };
  const change = async (request: AuthRequest, done: string) => {
    const { revision } = await client.auth.change(request);
    print(`${done} (revision ${revision})`, { ok: true, revision });
    return 0;
  };
  const password = async (name: string, given: string | undefined) =>
    given ?? (await context.askPassword(`Password of ${name}: `));
  switch (`${group} ${command}`) {
    case "auth enable":
      return change({ op: "enable" }, "authentication enabled");
    case "auth disable":
      return change({ op: "disable" }, "authentication disabled");
    case "auth status": {
      const status = await client.auth.status();
      print(
        `authentication ${status.enabled ? "enabled" : "disabled"} (revision ${status.revision})`,
        status,
      );
      return 0;
    }
    case "user add":
    case "user passwd": {
      if (args.length < 1 || args.length > 2) return usage("<name> [password]");
      const user = args[0]!;
      const secret = await password(user, args[1]);
      if (secret === undefined) {
        err(
          `rockraft: ${group} ${command} ${user}: no password given and no terminal to ask on: give it after the name`,
        );
        return 2;
      }
      return command === "add"
        ? change({ op: "user-add", user, password: secret }, `user ${user} added`)
        : change({ op: "user-passwd", user, password: secret }, `password of ${user} changed`);
    }
    case "user delete":
      if (args.length !== 1) return usage("<name>");
      return change({ op: "user-delete", user: args[0]! }, `user ${args[0]} deleted`);
    case "user grant-role":
    case "user revoke-role": {
      if (args.length !== 2) return usage("<user> <role>");
      const [user, role] = args as [string, string];
      return command === "grant-role"
        ? change({ op: "user-grant", user, role }, `role ${role} granted to ${user}`)
        : change({ op: "user-revoke", user, role }, `role ${role} revoked from ${user}`);
    }
    case "user list": {
      const users = await client.auth.users();
      print(users.map((u) => `${u.name}  ${u.roles.join(",") || "-"}`).join("\n"), users);
      return 0;
    }
    case "role add":
      if (args.length !== 1) return usage("<name>");
      return change({ op: "role-add", role: args[0]! }, `role ${args[0]} added`);
    case "role delete":
      if (args.length !== 1) return usage("<name>");
      return change({ op: "role-delete", role: args[0]! }, `role ${args[0]} deleted`);
    case "role grant": {
      if (args.length !== 3) return usage("<role> <read|write|readwrite> <key> [--prefix]");
      const [role, type, key] = args as [string, string, string];
      if (type !== "read" && type !== "write" && type !== "readwrite") {
        err(`rockraft: role grant: expected read, write or readwrite, got ${JSON.stringify(type)}`);
        return 2;
      }
      const permission = {
        type,
        key: new TextEncoder().encode(key),
        prefix: context.prefix,
      } as const;
      const what = `${type} on ${context.prefix ? "prefix" : "key"} ${JSON.stringify(key)}`;
      return change({ op: "role-grant", role, permission }, `role ${role} may ${what}`);
    }
    case "role revoke": {
      if (args.length !== 2) return usage("<role> <key> [--prefix]");
      const [role, key] = args as [string, string];
      const request = {
        op: "role-revoke",
        role,
        key: new TextEncoder().encode(key),
        prefix: context.prefix,
      } as const;
      return change(request, `permission of ${role} on ${JSON.stringify(key)} revoked`);
    }
    case "role list": {
      const roles = await client.auth.roles();
      const text = (key: Uint8Array) => JSON.stringify(new TextDecoder().decode(key));
      const line = (role: (typeof roles)[number]) =>
        role.name === "root"
          ? "root  (everything)"
          : `${role.name}  ${
              role.permissions
                .map((p) => `${p.type} ${p.prefix ? "prefix " : ""}${text(p.key)}`)
                .join(", ") || "-"
            }`;
      const json = roles.map((r) => ({
        name: r.name,
        permissions: r.permissions.map((p) => ({ ...p, key: new TextDecoder().decode(p.key) })),
      }));
      print(roles.map(line).join("\n"), json);
      return 0;
    }
    default:
      return -1;
  }
}

/**
 * `--user name[:password]`: the name and password; the password is asked for on the
 * terminal when absent (undefined: none given and no terminal).
 */
export async function userOption(
  option: string,
  askPassword: AuthCommandContext["askPassword"],
): Promise<{ user: string; password: string } | undefined> {
  const colon = option.indexOf(":");
  if (colon >= 0) return { user: option.slice(0, colon), password: option.slice(colon + 1) };
  const password = await askPassword(`Password of ${option}: `);
  return password === undefined ? undefined : { user: option, password };
}

/** Asks on the terminal without echoing what is typed; undefined when stdin is not one. */
export function askOnTerminal(question: string): Promise<string | undefined> {
  const input = process.stdin;
  if (!input.isTTY) return Promise.resolve(undefined);
  // The terminal echoes what readline writes: it writes to nowhere, after the question.
  const nowhere = new Writable({ write: (_chunk, _encoding, done) => done() });
  return new Promise((resolve) => {
    const prompt = createInterface({ input, output: nowhere, terminal: true });
    process.stderr.write(question);
    prompt.question("", (answer) => {
      process.stderr.write("\n");
      prompt.close();
      resolve(answer);
    });
  });
}
