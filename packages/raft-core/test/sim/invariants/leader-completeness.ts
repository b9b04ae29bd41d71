import type { Observer } from "../cluster.js";
import { SimViolation } from "../violation.js";

/**
 * Leader Completeness (§5.4, Figure 3): an entry committed in a term is present in the logs
 * of the leaders of all higher terms. Also checks that a committed prefix is never lost:
 * every node's log agrees with the committed log up to its own commit index.
 *
 * The committed log is learnt as nodes' commit indexes advance; each committed index
 * remembers the lowest term in which a node was seen to have it committed.
 */
export function leaderCompleteness(): Observer {
  const committedHash: number[] = [0];
  const committedTerm: number[] = [0];
  const leaderTerms = new Map<number, number>();
  return {
    name: "leader-completeness",
    afterStep(cluster) {
      for (const node of cluster.nodes) {
        if (!node.up) continue;
        const raft = node.raft();
        const commit = raft.log.committed;
        const hash = cluster.tracker.hashAt(node.id, commit);
        if (hash === undefined) continue; // Below its snapshot: covered when it was committed.
        if (commit < committedHash.length) {
          if (committedHash[commit] !== hash) {
            throw new SimViolation(
              "leader-completeness",
              `node ${node.id} committed a different entry at ${commit} than was committed before`,
            );
          }
        } else {
          const base = committedHash.length - 1;
          if (cluster.tracker.hashAt(node.id, base) !== committedHash[base]) {
            throw new SimViolation(
              "leader-completeness",
              `node ${node.id} committed up to ${commit} over a different committed prefix at ${base}`,
            );
          }
          for (let index = committedHash.length; index <= commit; index++) {
            committedHash.push(cluster.tracker.hashAt(node.id, index)!);
            committedTerm.push(raft.term);
          }
        }
        if (raft.role === "leader" && leaderTerms.get(node.id) !== raft.term) {
          leaderTerms.set(node.id, raft.term);
          // Every entry committed in an earlier term must be in the new leader's log.
          let index = committedTerm.length - 1;
          while (index > 0 && committedTerm[index]! >= raft.term) index--;
          const held = cluster.tracker.hashAt(node.id, index);
          if (held !== undefined && held !== committedHash[index]) {
            throw new SimViolation(
              "leader-completeness",
              `leader ${node.id} of term ${raft.term} lacks committed entry ${index}`,
            );
          }
          if (held === undefined && index >= cluster.tracker.firstIndex(node.id)) {
            throw new SimViolation(
              "leader-completeness",
              `leader ${node.id} of term ${raft.term} lacks committed entry ${index} (its log ends at ${raft.log.lastIndex()})`,
            );
          }
        }
      }
    },
  };
}
