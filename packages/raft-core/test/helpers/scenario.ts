import { MemoryStorage, type Message } from "../../src/index.js";
import { TestNetwork, bytes, storageWithPeers, text } from "./network.js";

/** One line per message, with the fields that matter for reading a scenario. */
export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case "MsgApp": {
      const list = m.entries.map(
        (e) => `${e.index}/${e.term}${e.type === "config" ? ":config" : ""}`,
      );
      return `${head} prev=${m.index}/${m.logTerm} entries=[${list.join(" ")}] commit=${m.commit}`;
    }
    case "MsgAppResp":
      return m.reject
        ? `${head} reject index=${m.index} hint=${m.rejectHint}/${m.logTerm}`
        : `${head} index=${m.index}`;
    case "MsgVote":
    case "MsgPreVote":
      return `${head} last=${m.index}/${m.logTerm}`;
    case "MsgVoteResp":
    case "MsgPreVoteResp":
      return `${head}${m.reject ? " reject" : ""}`;
    case "MsgHeartbeat":
      return `${head} commit=${m.commit}`;
    case "MsgSnap":
      return `${head} snapshot=${m.snapshot.metadata.index}/${m.snapshot.metadata.term} voters=${m.snapshot.metadata.confState.voters.join(",")}`;
    default:
      return head;
  }
}

/**
 * Runs a scenario script (one command per line; `#` starts a comment) and renders a
 * transcript: each command, the messages it caused, and `status` snapshots of every node.
 *
 *   cluster 1,2,3 spare 4,5   elect 1   propose 1 text   add-learner 1 4   promote 1 4
 *   change 1 voters=2,3,4 learners=   remove 1 3   isolate 3   recover   tick 1 [n]
 *   snapshot 1   report-snapshot 1 3 ok|fail   status
 */
export function runScenario(script: string, options = {}): string {
  const out: string[] = [];
  let network: TestNetwork | undefined;
  const net = () => {
    if (network === undefined) throw new Error("scenario: `cluster` must come first");
    return network;
  };
  for (const raw of script.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) {
      if (line !== "") out.push(line);
      continue;
    }
    out.push(`> ${line}`);
    const [command, ...args] = line.split(/\s+/);
    const ids = (list: string | undefined) => (list ?? "").split(",").filter(Boolean).map(Number);
    const before = network?.delivered.length ?? 0;
    switch (command) {
      case "cluster": {
        const voters = ids(args[0]);
        const spare = args[1] === "spare" ? ids(args[2]) : [];
        const storages = new Map<number, MemoryStorage>();
        for (const id of voters) storages.set(id, storageWithPeers(voters));
        for (const id of spare) storages.set(id, new MemoryStorage());
        network = new TestNetwork([...voters, ...spare], options, storages);
        break;
      }
      case "elect":
        net().elect(Number(args[0]));
        break;
      case "propose":
        net()
          .member(Number(args[0]))
          .node.propose(bytes(args.slice(1).join(" ")));
        net().stabilize();
        break;
      case "add-learner":
        net().member(Number(args[0])).node.addLearner(Number(args[1]));
        net().stabilize();
        break;
      case "promote":
        net().member(Number(args[0])).node.promote(Number(args[1]));
        net().stabilize();
        break;
      case "remove":
        net().member(Number(args[0])).node.remove(Number(args[1]));
        net().stabilize();
        break;
      case "change": {
        const fields = Object.fromEntries(
          args.slice(1).map((arg) => arg.split("=") as [string, string]),
        );
        net()
          .member(Number(args[0]))
          .node.changeMembership({ voters: ids(fields.voters), learners: ids(fields.learners) });
        net().stabilize();
        break;
      }
      case "isolate":
        net().isolate(Number(args[0]));
        break;
      case "recover":
        net().recover();
        break;
      case "tick":
        net().tick(Number(args[0]), Number(args[1] ?? 1));
        net().stabilize();
        break;
      case "snapshot": {
        const member = net().member(Number(args[0]));
        const applied = member.applied.at(-1)!.index;
        member.storage.createSnapshot(
          applied,
          net().raft(member.id).conf,
          bytes(`state@${applied}`),
        );
        member.node.snapshotTaken(applied, 0);
        net().stabilize();
        out.push(
          `  node ${member.id} snapshot at ${applied}, log now starts at ${member.storage.firstIndex()}`,
        );
        break;
      }
      case "report-snapshot":
        net()
          .member(Number(args[0]))
          .node.reportSnapshot(Number(args[1]), args[2] === "ok");
        net().stabilize();
        break;
      case "status":
        for (const member of net().members.values()) {
          const raft = net().raft(member.id);
          const conf = raft.conf;
          const outgoing =
            conf.votersOutgoing.length > 0 ? ` outgoing=${conf.votersOutgoing.join(",")}` : "";
          const last = member.applied.at(-1);
          out.push(
            `  ${member.id}: ${raft.role} term=${raft.term} lead=${raft.lead} log=${raft.log.firstIndex()}..${raft.log.lastIndex()} commit=${raft.log.committed}` +
              ` voters=${conf.voters.join(",")}${outgoing} learners=${conf.learners.join(",")}` +
              ` applied=${last === undefined ? "-" : last.type === "config" ? `${last.index}:config` : `${last.index}:${text(last.data) || "no-op"}`}`,
          );
        }
        break;
      default:
        throw new Error(`scenario: unknown command ${command}`);
    }
    if (network !== undefined) {
      for (const message of network.delivered.slice(before)) {
        if (message.type === "MsgHeartbeat" || message.type === "MsgHeartbeatResp") continue;
        out.push(`  ${describeMessage(message)}`);
      }
    }
  }
  return `${out.join("\n")}\n`;
}
