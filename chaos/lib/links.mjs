// Where each node listens and where its peers and clients dial it, and the `slow` fault.
// Kernel netem (delay, jitter, loss on an interface) is missing on many machines, this
// project's CI among them; so `slow` runs through a user-space link emulator
// (link-proxy.mjs, a process of its own): every address a node serves gets a proxy, the
// cluster is configured with the proxies' addresses, and a slow node's links hold their
// bytes back. Peers and clients alike go through the proxies, so a slow node is slow to
// everyone. Without `slow` in the run, nodes are dialled directly.
import { fork } from "node:child_process";
import { join } from "node:path";
import { freePorts } from "@rockraft/test-utils";

/**
 * The addresses of `count` nodes, each serving `ports` ports (their numbers inside a node's
 * namespace): `{ listen: [[host, port], ...], dial: [[host, port], ...] }` per node, ids from 1.
 * `network`: a NodeNetwork, or undefined for 127.0.0.1; `proxied`: dial through the emulator.
 */
export async function planAddresses({ count, ports, network, proxied }) {
  const free =
    network === undefined ? await freePorts(count * ports.length * (proxied ? 2 : 1)) : [];
  const plan = [];
  for (let id = 1; id <= count; id++) {
    if (network !== undefined) {
      const listen = ports.map((port) => [network.address(id), port]);
      plan.push({ listen, dial: listen.map(([, port]) => [network.dialAddress(id), port]) });
    } else {
      const listen = ports.map(() => ["127.0.0.1", free.shift()]);
      const dial = proxied ? ports.map(() => ["127.0.0.1", free.shift()]) : listen;
      plan.push({ listen, dial });
    }
  }
  return plan;
}

export const hostPort = ([host, port]) => `${host}:${port}`;

export class LinkEmulator {
  /** Starts the proxies for `plan` (from planAddresses with `proxied`). */
  async start(plan, network) {
    this.child = fork(join(import.meta.dirname, "link-proxy.mjs"), [], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const routes = plan.flatMap(({ listen, dial }, i) =>
      listen.map((target, j) => ({ node: i + 1, listen: dial[j], target })),
    );
    const nodeHosts =
      network === undefined ? [] : plan.map((_, i) => [network.address(i + 1), i + 1]);
    const answer = new Promise((resolve, reject) => {
      this.child.once("message", (message) =>
        message.type === "ready"
          ? resolve()
          : reject(new Error(`link emulator: ${message.message}`)),
      );
      this.child.once("exit", (code) => reject(new Error(`link emulator exited (${code})`)));
    });
    this.child.send({ type: "routes", routes, nodeHosts });
    await answer;
  }

  /** Node `node`'s links hold each chunk `delayMs` ± `jitterMs`, `lossPercent` of them longer. */
  slow(node, link) {
    this.child.send({ type: "slow", node, link });
  }

  /** Every link at full speed again. */
  heal() {
    this.child?.send({ type: "heal" });
  }

  /** Connections between the nodes of each pair hold their bytes until healCuts(). */
  cut(pairs) {
    this.child.send({ type: "cut", pairs });
  }

  /** Every cut connection passes its bytes again (held ones first, in order). */
  healCuts() {
    this.child?.send({ type: "heal-cuts" });
  }

  stop() {
    this.child?.kill();
  }
}
