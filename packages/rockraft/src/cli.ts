// The `rockraft` command line: talks to a cluster over the KV and Cluster gRPC services.
//   rockraft kv put <key> <value> | get <key> | del <key> | cas <key> <expected|--absent> <value>
//   rockraft cluster status | members | add-learner <id> <addr> | promote <id> | remove <id>
//                  | transfer-leader <id> | snapshot
//   rockraft config get | reload | set <key> <value> | unset <key>
//   rockraft auth|user|role … (cli-auth.ts)
// Options: --endpoints a:1,b:2 (default: the example's three nodes), --json, --timeout <ms>,
// --ca/--cert/--key for TLS, --user name[:password].
import { parseArgs } from "node:util";
import { AUTH_GROUPS, AUTH_USAGE, askOnTerminal, authCommand, userOption } from "./cli-auth.js";
import {
  RockraftClient,
  RockraftClientError,
  type ClusterMetrics,
  type ConfigResult,
  type Member,
  type ReloadResult,
} from "@rockraft/transport-grpc";

export const DEFAULT_ENDPOINTS = ["127.0.0.1:6682", "127.0.0.1:6683", "127.0.0.1:6684"];

const USAGE = `usage: rockraft [options] <command>

commands:
  kv put <key> <value>            write a key
  kv get <key>                    linearizable read
  kv del <key>                    delete a key
  kv cas <key> <expected> <value> compare-and-swap (use --absent to expect no key)
  cluster status                  each endpoint's view: role, term, leader, indexes
  cluster members                 voters and learners, with addresses
  cluster add-learner <id> <addr> add a learner
  cluster promote <id>            make a learner a voter
  cluster remove <id>             remove a voter or learner
  cluster transfer-leader <id>    hand leadership to a voter
  cluster snapshot                take a snapshot on the node answering
  config get                      each endpoint's running config and its generation
  config reload                   each endpoint reads its config file again (live keys only)
  config set <key> <value>        each endpoint sets a live key in place of its file's
                                  (until it restarts), e.g. config set log.level debug
  config unset <key>              each endpoint goes back to its file's value of the key
${AUTH_USAGE}

options:
  --endpoints <a:1,b:2>  nodes to talk to (default ${DEFAULT_ENDPOINTS.join(",")})
  --json                 machine-readable output
  --timeout <ms>         per-call deadline (default 5000)
  --absent               for kv cas: succeed only if the key does not exist
  --ca, --cert, --key    TLS files (PEM)
  --user <name[:pass]>   call as this user (asks for the password when not given)
  --prefix               for role grant and role revoke: a key prefix
`;

/** Exit codes: 0 ok, 1 the call failed, 2 bad usage, 3 kv get found nothing, 4 cas did not swap. */
export async function main(
  argv: readonly string[],
  out: (line: string) => void,
  err: (line: string) => void,
  /** Reads a password without echoing it; undefined when there is no terminal. */
  ask: (question: string) => Promise<string | undefined> = askOnTerminal,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        endpoints: { type: "string" },
        json: { type: "boolean", default: false },
        timeout: { type: "string" },
        absent: { type: "boolean", default: false },
        ca: { type: "string" },
        cert: { type: "string" },
        key: { type: "string" },
        user: { type: "string" },
        prefix: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    err(`rockraft: ${(error as Error).message}`);
    err(USAGE);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length < 2) {
    (values.help ? out : err)(USAGE);
    return values.help ? 0 : 2;
  }
  const timeoutMs = values.timeout === undefined ? 5_000 : Number(values.timeout);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    err(`rockraft: --timeout: expected a positive number of milliseconds, got ${values.timeout}`);
    return 2;
  }
  const endpoints =
    values.endpoints === undefined
      ? DEFAULT_ENDPOINTS
      : values.endpoints.split(",").filter(Boolean);
  const tls =
    values.ca === undefined && values.cert === undefined
      ? undefined
      : {
          ...(values.ca === undefined ? {} : { caFile: values.ca }),
          ...(values.cert === undefined ? {} : { certFile: values.cert }),
          ...(values.key === undefined ? {} : { keyFile: values.key }),
        };
  const auth = values.user === undefined ? undefined : await userOption(values.user, ask);
  if (values.user !== undefined && auth === undefined) {
    err(
      `rockraft: --user ${values.user}: no password given and no terminal to ask on: use --user ${values.user}:<password>`,
    );
    return 2;
  }
  const client = new RockraftClient({
    endpoints,
    timeoutMs,
    ...(tls === undefined ? {} : { tls }),
    ...(auth === undefined ? {} : { auth }),
  });
  const print = (human: string, json: unknown) => out(values.json ? JSON.stringify(json) : human);
  const decode = (bytes: Uint8Array | undefined) =>
    bytes === undefined ? null : new TextDecoder().decode(bytes);
  const [group, command, ...args] = positionals as [string, string, ...string[]];
  const need = (count: number, names: string): boolean => {
    if (args.length === count) return true;
    err(`rockraft: ${group} ${command} expects ${names}`);
    return false;
  };
  const id = (text: string | undefined): number | undefined => {
    const value = Number(text);
    if (Number.isSafeInteger(value) && value > 0) return value;
    err(`rockraft: expected a node id (a positive integer), got ${JSON.stringify(text)}`);
    return undefined;
  };
  try {
    if (AUTH_GROUPS.has(group)) {
      const context = {
        client,
        command,
        args,
        prefix: values.prefix,
        print,
        err,
        askPassword: ask,
      };
      const code = await authCommand(group, context);
      if (code >= 0) return code;
    }
    switch (`${group} ${command}`) {
      case "kv put": {
        if (!need(2, "<key> <value>")) return 2;
        const { logId } = await client.put(args[0]!, args[1]!);
        print(`OK (index ${logId.index}, term ${logId.term})`, { ok: true, logId });
        return 0;
      }
      case "kv get": {
        if (!need(1, "<key>")) return 2;
        const { found, value } = await client.get(args[0]!);
        print(found ? decode(value)! : "(not found)", { found, value: decode(value) });
        return found ? 0 : 3;
      }
      case "kv del": {
        if (!need(1, "<key>")) return 2;
        const { found, logId } = await client.delete(args[0]!);
        print(found ? "deleted" : "(not found)", { found, logId });
        return 0;
      }
      case "kv cas": {
        const absent = values.absent;
        if (
          !need(absent ? 2 : 3, absent ? "<key> <value> with --absent" : "<key> <expected> <value>")
        )
          return 2;
        const request = absent
          ? { key: args[0]!, expectFound: false, value: args[1]! }
          : { key: args[0]!, expectFound: true, expected: args[1]!, value: args[2]! };
        const result = await client.compareAndSwap(request);
        const current = decode(result.current);
        print(
          result.succeeded
            ? "swapped"
            : `not swapped: the key is ${result.found ? JSON.stringify(current) : "absent"}`,
          { succeeded: result.succeeded, found: result.found, current },
        );
        return result.succeeded ? 0 : 4;
      }
      case "cluster status": {
        const rows: (ClusterMetrics | { endpoint: string; error: string })[] = [];
        for (const endpoint of endpoints) {
          try {
            rows.push(await client.metrics({ endpoint }));
          } catch (error) {
            rows.push({ endpoint, error: (error as Error).message });
          }
        }
        const human = rows
          .map((row, i) =>
            "error" in row
              ? `${endpoints[i]}  unreachable: ${row.error}`
              : `${endpoints[i]}  node ${row.nodeId}  ${row.state.padEnd(9)} term ${row.currentTerm}  leader ${row.currentLeader || "-"}  ` +
                `last log ${row.lastLogIndex}  commit ${row.commitIndex}  applied ${row.lastApplied.index}`,
          )
          .join("\n");
        print(human, rows);
        return rows.some((row) => !("error" in row)) ? 0 : 1;
      }
      case "cluster members": {
        const metrics = await client.metrics();
        const line = (kind: string, list: readonly Member[]) =>
          list.map((m) => `${kind}  ${m.nodeId}  ${m.addr}`);
        print(
          [
            ...line("voter  ", metrics.voters),
            ...line("learner", metrics.learners),
            ...line("leaving", metrics.votersOutgoing),
          ].join("\n"),
          {
            voters: metrics.voters,
            learners: metrics.learners,
            votersOutgoing: metrics.votersOutgoing,
          },
        );
        return 0;
      }
      case "cluster add-learner": {
        if (!need(2, "<id> <addr>")) return 2;
        const nodeId = id(args[0]);
        if (nodeId === undefined) return 2;
        const { logIndex } = await client.addLearner({ nodeId, addr: args[1]! });
        print(`node ${nodeId} added as a learner (index ${logIndex})`, { ok: true, logIndex });
        return 0;
      }
      case "cluster promote":
      case "cluster remove": {
        if (!need(1, "<id>")) return 2;
        const nodeId = id(args[0]);
        if (nodeId === undefined) return 2;
        const metrics = await client.metrics();
        const all = [...metrics.voters, ...metrics.learners];
        const member = all.find((m) => m.nodeId === nodeId);
        if (member === undefined) {
          err(`rockraft: node ${nodeId} is not a member`);
          return 1;
        }
        const voters =
          command === "promote"
            ? [...metrics.voters.filter((m) => m.nodeId !== nodeId), member]
            : metrics.voters.filter((m) => m.nodeId !== nodeId);
        const learners = metrics.learners.filter((m) => m.nodeId !== nodeId);
        const { logIndex } = await client.changeMembership({ voters, learners });
        print(
          `node ${nodeId} ${command === "promote" ? "promoted to voter" : "removed"} (index ${logIndex})`,
          { ok: true, logIndex },
        );
        return 0;
      }
      case "cluster transfer-leader": {
        if (!need(1, "<id>")) return 2;
        const nodeId = id(args[0]);
        if (nodeId === undefined) return 2;
        await client.transferLeader(nodeId);
        print(`node ${nodeId} is the leader`, { ok: true, leader: nodeId });
        return 0;
      }
      case "cluster snapshot": {
        const { snapshotIndex } = await client.triggerSnapshot();
        print(`snapshot at index ${snapshotIndex}`, { snapshotIndex });
        return 0;
      }
      case "config get": {
        type Got = ConfigResult & { endpoint: string; config: unknown; set: unknown };
        const results: Got[] = [];
        for (const endpoint of endpoints) {
          const r = await client.getConfig({ endpoint });
          const config = JSON.parse(r.configJson) as unknown;
          const set = JSON.parse(r.overridesJson || "{}") as Record<string, unknown>;
          results.push({ endpoint, ...r, config, set });
        }
        const human = results.map((r) => {
          const set = r.overridesJson === "{}" ? "" : `, set: ${r.overridesJson}`;
          return `${r.endpoint}: generation ${r.generation}, from ${r.source}${set}\n${r.configJson}`;
        });
        print(
          human.join("\n"),
          results.map(({ configJson: _json, overridesJson: _set, ...r }) => r),
        );
        return 0;
      }
      case "config reload": {
        const results: (ReloadResult & { endpoint: string })[] = [];
        for (const endpoint of endpoints) {
          const r = await client.reloadConfig({ endpoint });
          results.push({ endpoint, ...r });
        }
        print(results.map(reloadLine).join("\n"), results);
        return 0;
      }
      case "config set":
      case "config unset": {
        const set = command === "set";
        if (!need(set ? 2 : 1, set ? "<key> <value>" : "<key>")) return 2;
        const value = set ? valueOf(args[1]!) : undefined;
        const results: (ReloadResult & { endpoint: string })[] = [];
        for (const endpoint of endpoints) {
          results.push({ endpoint, ...(await client.setConfig(args[0]!, value, { endpoint })) });
        }
        print(results.map(reloadLine).join("\n"), results);
        return 0;
      }
      default:
        err(`rockraft: unknown command "${group} ${command}"`);
        err(USAGE);
        return 2;
    }
  } catch (error) {
    const code =
      error instanceof RockraftClientError
        ? ` [${error.code}${error.serverCode === undefined ? "" : ` ${error.serverCode}`}]`
        : "";
    // The node's own answer (it has a server code) or none at all.
    const unknown =
      error instanceof RockraftClientError && error.outcomeUnknown
        ? error.serverCode === undefined
          ? " (the request may have reached the node but no answer came back: it may or may not have been applied)"
          : " (the node had proposed it but could not confirm it: it may or may not have been applied)"
        : "";
    err(`rockraft: ${(error as Error).message}${code}${unknown}`);
    return 1;
  } finally {
    client.close();
  }
}

/** One endpoint's reload, for a person. */
function reloadLine(r: ReloadResult & { endpoint: string }): string {
  const changed =
    r.changes.length === 0
      ? "nothing changed"
      : r.changes.map((c) => `${c.key} ${c.oldJson} → ${c.newJson}`).join(", ");
  return `${r.endpoint}: generation ${r.generation}; ${changed}`;
}

/** A value as JSON reads it (`2048`, `true`, `"x"`); anything else is the text itself. */
function valueOf(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
