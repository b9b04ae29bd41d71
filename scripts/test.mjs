#!/usr/bin/env node
// `pnpm test`: builds, typechecks, lints, builds the API docs (TypeDoc, validation on) and
// tests every workspace package through turbo (cached per package), then prints the closing
// line CI reads: `N passed, N failed`.
//
// Each package's `test` script writes vitest's JSON report to `.vitest-results.json`, which
// turbo caches as the task's output and restores on a cache hit, so the count covers every
// test whether it ran now or was replayed. Stale reports are removed first; a package whose
// tests ran but left no report counts as one failure.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const REPORT = ".vitest-results.json";
const root = join(import.meta.dirname, "..");

function testedPackages() {
  const found = [];
  const dirs = ["chaos"].map((dir) => join(root, dir));
  for (const group of ["packages", "apps", "tests"]) {
    const dir = join(root, group);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) dirs.push(join(dir, name));
  }
  for (const dir of dirs) {
    const manifestPath = join(dir, "package.json");
    if (!existsSync(manifestPath)) continue;
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
    if (manifest.scripts?.test) found.push({ name: manifest.name, dir });
  }
  return found;
}

const packages = testedPackages();
for (const pkg of packages) rmSync(join(pkg.dir, REPORT), { force: true });

const tasks = ["build", "typecheck", "lint", "format:check", "docs", "test"];
const turbo = spawnSync(
  "pnpm",
  ["exec", "turbo", "run", ...tasks, "--continue", ...process.argv.slice(2)],
  {
    cwd: root,
    stdio: "inherit",
    env: { TURBO_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1", ...process.env },
  },
);

let passed = 0;
let failed = 0;
const missing = [];
for (const pkg of packages) {
  const reportPath = join(pkg.dir, REPORT);
  if (!existsSync(reportPath)) {
    missing.push(pkg.name);
    continue;
  }
  const report = JSON.parse(readFileSync(reportPath, "utf8"));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  // A test file that fails to load has no tests to count; count the file instead.
  for (const file of report.testResults ?? []) {
    if (file.status === "failed" && (file.assertionResults ?? []).length === 0) failed += 1;
  }
}
if (missing.length > 0) {
  console.error(
    `no test report from: ${missing.join(", ")} (build, typecheck, lint or tests failed)`,
  );
  failed += missing.length;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(turbo.status === 0 && failed === 0 ? 0 : 1);
