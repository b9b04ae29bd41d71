// A network of its own for each node, so that links between nodes can be cut: one Linux
// network namespace per node, each with one end of a veth pair on a bridge in the
// harness's namespace, on a private /24 that the harness makes and removes itself. A
// partition is a pair of blackhole routes (each side drops what it would send the other, at
// the other's own address and at its proxy's), so nothing outside these addresses is ever
// touched. Needs root and iproute2's `ip`.
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

/** Whether this process can make network namespaces: tried, with one made and removed. */
export function namespacesAvailable() {
  if (process.getuid?.() !== 0) return false;
  const probe = `rkprobe${process.pid}`;
  if (spawnSync("ip", ["netns", "add", probe]).status !== 0) return false;
  spawnSync("ip", ["netns", "del", probe]);
  return true;
}

/** A 10.213.x.0/24 no interface of this machine uses yet. */
function freeSubnet() {
  const used = spawnSync("ip", ["-o", "-4", "addr", "show"], { encoding: "utf8" }).stdout ?? "";
  for (let i = 0; i < 250; i++) {
    const subnet = 1 + ((process.pid + i) % 250);
    if (!used.includes(`10.213.${subnet}.`)) return subnet;
  }
  throw new Error("no free 10.213.x.0/24 for the nodes' network (leftovers of killed runs?)");
}

export class NodeNetwork {
  /**
   * `count` nodes, addressed 10.213.<subnet>.1..count; the harness is .254. `proxied`: each
   * node is also dialled at .101..100+count, an address of the harness's where the link
   * emulator's proxies listen (links.mjs).
   */
  constructor(count, { proxied = false } = {}) {
    this.count = count;
    this.proxied = proxied;
    const tag = `rk${process.pid % 100000}`;
    this.tag = tag;
    this.subnet = freeSubnet();
    this.bridge = `${tag}b`;
    this.cut = new Set();
    process.on("exit", () => this.remove());
  }

  namespace(id) {
    return `${this.tag}n${id}`;
  }

  /** Where node `id` listens, in its namespace. */
  address(id) {
    return `10.213.${this.subnet}.${id}`;
  }

  /** Where peers and clients dial node `id`. */
  dialAddress(id) {
    return this.proxied ? `10.213.${this.subnet}.${100 + id}` : this.address(id);
  }

  /** The addresses a node must not reach when cut from node `id`. */
  addressesOf(id) {
    return [...new Set([this.address(id), this.dialAddress(id)])];
  }

  create() {
    ip(["link", "add", this.bridge, "type", "bridge"]);
    ip(["addr", "add", `10.213.${this.subnet}.254/24`, "dev", this.bridge]);
    for (let id = 1; id <= this.count && this.proxied; id++)
      ip(["addr", "add", `${this.dialAddress(id)}/32`, "dev", this.bridge]);
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
    for (const [from, to] of [
      [a, b],
      [b, a],
    ]) {
      for (const address of this.addressesOf(to))
        ip(["-n", this.namespace(from), "route", "add", "blackhole", `${address}/32`]);
    }
  }

  /** Every link whole again. */
  healAll() {
    for (const key of this.cut) {
      const [a, b] = key.split("-").map(Number);
      for (const [from, to] of [
        [a, b],
        [b, a],
      ]) {
        for (const address of this.addressesOf(to))
          ip(["-n", this.namespace(from), "route", "del", "blackhole", `${address}/32`], {
            check: false,
          });
      }
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
