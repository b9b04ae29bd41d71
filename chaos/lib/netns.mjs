// A network of its own for each node, so that links between nodes can be cut: one Linux
// network namespace per node, each with one end of a veth pair on a bridge in the
// harness's namespace, on a private /24 that the harness makes and removes itself. A
// partition is a pair of blackhole routes (each side drops what it would send the other),
// so nothing outside these addresses is ever touched. Needs root and iproute2's `ip`.
import { spawnSync } from "node:child_process";

function ip(args, { check = true } = {}) {
  const result = spawnSync("ip", args, { encoding: "utf8" });
  if (check && result.status !== 0) {
    throw new Error(
      `ip ${args.join(" ")}: ${(result.stderr || result.error?.message || "").trim()}`,
    );
  }
  return result.status === 0;
}

/** Whether this process can make namespaces (root, with `ip`). */
export function namespacesAvailable() {
  if (process.getuid?.() !== 0) return false;
  return spawnSync("ip", ["netns", "list"]).status === 0;
}

export class NodeNetwork {
  /** `count` nodes, addressed 10.213.<subnet>.1..count; the harness is .254. */
  constructor(count) {
    this.count = count;
    const tag = `rk${process.pid % 100000}`;
    this.tag = tag;
    this.subnet = 1 + (process.pid % 250);
    this.bridge = `${tag}b`;
    this.cut = new Set();
    process.on("exit", () => this.remove());
  }

  namespace(id) {
    return `${this.tag}n${id}`;
  }

  address(id) {
    return `10.213.${this.subnet}.${id}`;
  }

  create() {
    ip(["link", "add", this.bridge, "type", "bridge"]);
    ip(["addr", "add", `10.213.${this.subnet}.254/24`, "dev", this.bridge]);
    ip(["link", "set", this.bridge, "up"]);
    for (let id = 1; id <= this.count; id++) {
      const ns = this.namespace(id);
      const outside = `${this.tag}v${id}`;
      const inside = `${this.tag}p${id}`;
      ip(["netns", "add", ns]);
      ip(["link", "add", outside, "type", "veth", "peer", "name", inside]);
      ip(["link", "set", inside, "netns", ns]);
      ip(["link", "set", outside, "master", this.bridge]);
      ip(["link", "set", outside, "up"]);
      ip(["-n", ns, "addr", "add", `${this.address(id)}/24`, "dev", inside]);
      ip(["-n", ns, "link", "set", inside, "up"]);
      ip(["-n", ns, "link", "set", "lo", "up"]);
    }
  }

  /** The command line that runs `argv` inside node `id`'s namespace. */
  wrap(id, argv) {
    return ["ip", ["netns", "exec", this.namespace(id), ...argv]];
  }

  /** Cuts the link between `a` and `b`, both ways. */
  disconnect(a, b) {
    const key = `${Math.min(a, b)}-${Math.max(a, b)}`;
    if (this.cut.has(key)) return;
    this.cut.add(key);
    ip(["-n", this.namespace(a), "route", "add", "blackhole", `${this.address(b)}/32`]);
    ip(["-n", this.namespace(b), "route", "add", "blackhole", `${this.address(a)}/32`]);
  }

  /** Every link whole again. */
  healAll() {
    for (const key of this.cut) {
      const [a, b] = key.split("-").map(Number);
      ip(["-n", this.namespace(a), "route", "del", "blackhole", `${this.address(b)}/32`], {
        check: false,
      });
      ip(["-n", this.namespace(b), "route", "del", "blackhole", `${this.address(a)}/32`], {
        check: false,
      });
    }
    this.cut.clear();
  }

  /** Removes the namespaces, their veths and the bridge. Idempotent. */
  remove() {
    for (let id = 1; id <= this.count; id++) {
      ip(["netns", "del", this.namespace(id)], { check: false });
      ip(["link", "del", `${this.tag}v${id}`], { check: false });
    }
    ip(["link", "del", this.bridge], { check: false });
  }
}
