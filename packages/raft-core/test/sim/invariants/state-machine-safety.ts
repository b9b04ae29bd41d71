import type { Entry } from "../../../src/index.js";
import type { Observer } from "../cluster.js";
import { SimViolation } from "../violation.js";

/**
 * State Machine Safety (§5.4.3, Figure 3): if a server has applied a log entry at a given
 * index, no other server ever applies a different entry for that index.
 */
export function stateMachineSafety(): Observer {
  const applied = new Map<number, Entry>();
  return {
    name: "state-machine-safety",
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
