#!/usr/bin/env node
// Summarizes a V8 .cpuprofile: self time by function and by package.
//   node scripts/profile-summary.mjs file.cpuprofile [top]
import { readFileSync } from "node:fs";

const [file, topText = "25"] = process.argv.slice(2);
const profile = JSON.parse(readFileSync(file, "utf8"));
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfTime = new Map();
const deltas = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  selfTime.set(id, (selfTime.get(id) ?? 0) + (deltas[i] ?? 0));
}
const total = [...selfTime.values()].reduce((a, b) => a + b, 0);
const byFunction = new Map();
const byPackage = new Map();
for (const [id, micros] of selfTime) {
  const frame = byId.get(id).callFrame;
  const name = `${frame.functionName || "(anonymous)"} ${frame.url.replace(/^.*node_modules\/\.pnpm\/[^/]+\/node_modules\//, "").replace(/^file:\/\/.*\/packages\//, "")}:${frame.lineNumber + 1}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
  const pkg =
    frame.url === ""
      ? frame.functionName.startsWith("(")
        ? frame.functionName
        : "(native)"
      : (/node_modules\/\.pnpm\/([^/]+)\//.exec(frame.url)?.[1]?.replace(/@[\d.]+.*$/, "") ??
        /packages\/([^/]+)\//.exec(frame.url)?.[1] ??
        (frame.url.startsWith("node:") ? "node:" + frame.url.slice(5).split("/")[0] : frame.url));
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + micros);
}
const show = (map, top) =>
  [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, micros]) => `${((100 * micros) / total).toFixed(1).padStart(5)}%  ${name}`)
    .join("\n");
console.log(
  `${file}: ${(total / 1e6).toFixed(2)} s sampled\n\nby package:\n${show(byPackage, 15)}\n\nby function:\n${show(byFunction, Number(topText))}`,
);
