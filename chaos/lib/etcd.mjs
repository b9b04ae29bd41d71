// `pnpm chaos -- --target etcd`: the same workload and faults against etcd members
// (Debian's etcd-server, as the cluster benchmark uses), to show that the harness passes on
// a trusted system, and, with serializable reads, that it catches stale reads.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { waitFor } from "@rockraft/test-utils";
import { etcdStub } from "@rockraft/test-utils/stubs";
import { ProcessCluster } from "./cluster.mjs";
import { hostPort } from "./links.mjs";

/** The ports an etcd member serves inside its namespace: clients, then peers. */
export const ETCD_PORTS = [2379, 2380];

/** Installs Debian's etcd-server when `etcd` is missing (as the cluster benchmark does). */
export function ensureEtcd() {
  if (spawnSync("which", ["etcd"]).status === 0) return;
  console.log("etcd not found: installing Debian's etcd-server...");
  const install = spawnSync("apt-get", ["install", "-y", "etcd-server"], {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  if (install.status !== 0) throw new Error("apt-get install etcd-server failed");
}

export class EtcdCluster extends ProcessCluster {
  constructor(options) {
    super(options);
    this.readyPattern = /ready to serve client requests/;
  }

  async writeConfigs() {}

  command(id) {
    const url = (address) => `http://${hostPort(address)}`;
    const { listen, dial } = this.plan[id - 1];
    const initialCluster = this.plan.map((p, i) => `m${i + 1}=${url(p.dial[1])}`).join(",");
    return {
      argv: [
        "etcd",
        ...["--name", `m${id}`, "--data-dir", join(this.disks.path(id), "etcd")],
        ...["--listen-client-urls", url(listen[0]), "--advertise-client-urls", url(dial[0])],
        ...["--listen-peer-urls", url(listen[1]), "--initial-advertise-peer-urls", url(dial[1])],
        ...["--initial-cluster", initialCluster, "--initial-cluster-state", "new"],
        ...["--initial-cluster-token", "rockraft-chaos"],
      ],
      cwd: this.dir,
      env: process.env,
    };
  }

  electedTerms(log) {
    return [...log.matchAll(/elected leader \S+ at term (\d+)/g)].map((match) => Number(match[1]));
  }

  async waitForLeader(timeoutMs = 30_000) {
    const stubs = this.endpoints.map((endpoint) => etcdStub(endpoint, { timeoutMs: 1_000 }));
    try {
      await waitFor(
        async () => {
          const status = await Promise.all(stubs.map((s) => s.status().catch(() => undefined)));
          return status.every((s) => s !== undefined && s.leader !== "0") || undefined;
        },
        "every member to know a leader",
        timeoutMs,
        100,
      );
    } finally {
      for (const stub of stubs) stub.close();
    }
  }

  async terms() {
    const terms = [];
    for (const endpoint of this.endpoints) {
      const stub = etcdStub(endpoint, { timeoutMs: 5_000 });
      terms.push((await stub.status()).term);
      stub.close();
    }
    return terms;
  }
}
