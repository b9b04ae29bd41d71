import { confStateEqual, decodeConfState, type ConfState } from "../../../src/index.js";
import type { Observer } from "../cluster.js";
import { SimViolation } from "../violation.js";

/**
 * A committed configuration is never lost (thesis §4.3): once a config entry is applied
 * (so committed), every node whose commit index covers it runs that configuration or one
 * appended after it, never an older one.
 */
export function committedConfig(): Observer {
  const committed: { index: number; conf: ConfState }[] = [];
  return {
    name: "committed-config",
    onApply(_cluster, _node, entry) {
      if (entry.type !== "config") return;
      const last = committed[committed.length - 1];
      if (last === undefined || entry.index > last.index) {
        committed.push({ index: entry.index, conf: decodeConfState(entry.data) });
      }
    },
    afterStep(cluster) {
      for (const node of cluster.nodes) {
        if (!node.up) continue;
        const raft = node.raft();
        let newest: { index: number; conf: ConfState } | undefined;
        for (let i = committed.length - 1; i >= 0; i--) {
          if (committed[i]!.index <= raft.log.committed) {
            newest = committed[i];
            break;
          }
        }
        if (newest === undefined) continue;
        const source = raft.latestConfigIndex();
        if (
          source < newest.index ||
          (source === newest.index && !confStateEqual(raft.conf, newest.conf))
        ) {
          throw new SimViolation(
            "committed-config",
            `node ${node.id} runs the configuration of index ${source}, older than the committed one at ${newest.index}`,
          );
        }
      }
    },
  };
}
