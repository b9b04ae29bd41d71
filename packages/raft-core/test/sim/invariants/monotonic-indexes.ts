import { checkInvariants } from "../../../src/status.js";
import type { Observer } from "../cluster.js";
import { SimViolation } from "../violation.js";

/**
 * Commit and applied indexes never decrease while a node runs (§5.3: committed entries are
 * durable and are applied once, in order). A restart may start lower (from what is durable).
 */
export function monotonicIndexes(): Observer {
  const seen = new Map<number, { incarnation: number; commit: number; applied: number }>();
  return {
    name: "monotonic-indexes",
    afterStep(cluster) {
      for (const node of cluster.nodes) {
        if (!node.up) continue;
        const raft = node.raft();
        checkInvariants(raft);
        const commit = raft.log.committed;
        const applied = node.applied;
        const before = seen.get(node.id);
        if (before !== undefined && before.incarnation === node.incarnation) {
          if (commit < before.commit || applied < before.applied) {
            throw new SimViolation(
              "monotonic-indexes",
              `node ${node.id}: commit ${before.commit} -> ${commit}, applied ${before.applied} -> ${applied}`,
            );
          }
        }
        seen.set(node.id, { incarnation: node.incarnation, commit, applied });
      }
    },
  };
}
