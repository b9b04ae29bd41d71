// Loaded into each node by `pnpm bench:gc-tail` (node --import): records every garbage
// collection pause (wall-clock start in ms since the epoch, duration in ms, and V8's kind: 1 a
// young-generation collection, 2 a full one, 4 incremental marking, 8 weak callbacks) and
// writes them as JSON to $ROCKRAFT_GC_DIR/<pid>.json when the process gets SIGUSR2.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { PerformanceObserver, performance } from "node:perf_hooks";

const pauses = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    pauses.push([performance.timeOrigin + entry.startTime, entry.duration, entry.detail.kind]);
  }
}).observe({ entryTypes: ["gc"] });
process.on("SIGUSR2", () => {
  writeFileSync(join(process.env.ROCKRAFT_GC_DIR, `${process.pid}.json`), JSON.stringify(pauses));
});
