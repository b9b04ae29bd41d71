// `pnpm chaos -- --target etcd`: the same workload and faults against etcd members
// (Debian's etcd-server, as the cluster benchmark uses), to show that the harness passes on
// a trusted system, and, with serializable reads, that it catches stale reads.
import { join } from "node:path";
import { etcdStub } from "@rockraft/test-utils/stubs";
import { ProcessCluster } from "./cluster.mjs";
import { hostPort } from "./links.mjs";

/** The ports an etcd member serves inside its namespace: clients, then peers. */
export const ETCD_PORTS = [2379, 2380];

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

  probe(endpoint, timeoutMs) {
    const stub = etcdStub(endpoint, { timeoutMs });
    return {
      status: async () => {
        const s = await stub.status();
        return { leader: s.leader !== "0", term: s.term };
      },
      close: () => stub.close(),
    };
  }
}
