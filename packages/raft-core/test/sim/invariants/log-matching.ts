import type { Observer } from "../cluster.js";

/**
 * Log Matching (§5.3, Figure 3): if two logs contain an entry with the same index and term,
 * the logs are identical in all entries up through that index. The LogTracker checks it as
 * it hashes each node's log; this observer keeps every up node's hashes current.
 */
export function logMatching(): Observer {
  return {
    name: "log-matching",
    afterStep(cluster) {
      for (const node of cluster.nodes) {
        if (node.up) cluster.tracker.update(node.id, node.log());
      }
    },
  };
}
