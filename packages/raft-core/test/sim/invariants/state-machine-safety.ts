import type { Entry } from "../../../src/index.js";
import type { Observer } from "../cluster.js";
import { SimViolation } from "../violation.js";

/**
 * State Machine Safety (§5.4.3, Figure 3): if a server has applied a log entry at a given
 * index, no other server ever applies a different entry for that index. With snapshots,
 * also: every state machine at a given applied index (reached by applying entries or by
 * installing a snapshot) holds the same state.
 */
export function stateMachineSafety(): Observer {
  const applied = new Map<number, Entry>();
  const states = new Map<number, number>();
  return {
    name: "state-machine-safety",
    afterApply(_cluster, node) {
      const known = states.get(node.applied);
      if (known === undefined) states.set(node.applied, node.appliedHash);
      else if (known !== node.appliedHash) {
        throw new SimViolation(
          "state-machine-safety",
          `node ${node.id}'s state at applied index ${node.applied} differs from another node's there`,
        );
      }
    },
    onApply(_cluster, node, entry) {
      const first = applied.get(entry.index);
      if (first === undefined) applied.set(entry.index, entry);
      else if (first.term !== entry.term || first.data !== entry.data) {
        throw new SimViolation(
          "state-machine-safety",
          `node ${node.id} applied (${entry.index}, term ${entry.term}) where another node applied term ${first.term}`,
        );
      }
    },
  };
}
