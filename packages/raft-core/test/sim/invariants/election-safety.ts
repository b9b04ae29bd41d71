import type { Observer } from "../cluster.js";
import { SimViolation } from "../violation.js";

/** Election Safety (§5.2, Figure 3): at most one leader can be elected in a given term. */
export function electionSafety(): Observer {
  const leaders = new Map<number, number>();
  return {
    name: "election-safety",
    afterStep(cluster) {
      for (const node of cluster.nodes) {
        if (!node.up) continue;
        const raft = node.raft();
        if (raft.role !== "leader") continue;
        const known = leaders.get(raft.term);
        if (known === undefined) leaders.set(raft.term, node.id);
        else if (known !== node.id) {
          throw new SimViolation(
            "election-safety",
            `nodes ${known} and ${node.id} were both leader in term ${raft.term}`,
          );
        }
      }
    },
  };
}
