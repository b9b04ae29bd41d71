import type { Observer } from "../cluster.js";
import { SimViolation } from "../violation.js";

/**
 * Leader Append-Only (§5.3, Figure 3): a leader never overwrites or deletes entries in its
 * log; it only appends. Checked as: while a node stays leader of one term, its last index
 * never falls and its prefix up to the previous last index is unchanged.
 */
export function leaderAppendOnly(): Observer {
  const previous = new Map<
    number,
    { term: number; incarnation: number; last: number; hash: number }
  >();
  return {
    name: "leader-append-only",
    afterStep(cluster) {
      for (const node of cluster.nodes) {
        if (!node.up || node.raft().role !== "leader") {
          previous.delete(node.id);
          continue;
        }
        const raft = node.raft();
        const last = raft.log.lastIndex();
        const before = previous.get(node.id);
        if (
          before !== undefined &&
          before.term === raft.term &&
          before.incarnation === node.incarnation
        ) {
          const hash = cluster.tracker.hashAt(node.id, before.last);
          if (last < before.last || hash !== before.hash) {
            throw new SimViolation(
              "leader-append-only",
              `leader ${node.id} (term ${raft.term}) changed its log at or before index ${before.last}`,
            );
          }
        }
        previous.set(node.id, {
          term: raft.term,
          incarnation: node.incarnation,
          last,
          hash: cluster.tracker.hashAt(node.id, last) ?? 0,
        });
      }
    },
  };
}
