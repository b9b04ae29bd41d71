import type { Observer } from "../cluster.js";
import { SimViolation } from "../violation.js";

/**
 * Linearizable reads (thesis §6.4): a ReadIndex read returns a state at least as new as
 * every write acknowledged before the read began. The read is served once the node has
 * applied its read index, so the read index itself must cover those writes.
 */
export function linearizableReads(): Observer {
  return {
    name: "linearizable-reads",
    onReadIndex(_cluster, node, read) {
      if (read.index! < read.ackedAtStart) {
        throw new SimViolation(
          "linearizable-reads",
          `read ${read.context} at node ${node.id} got index ${read.index} but write ${read.ackedAtStart} was acknowledged before it began`,
        );
      }
    },
  };
}
