// `pnpm release:check`: everything short of publishing. Builds, runs the consumer test (the
// packed tarballs installed with npm into a fresh project and used there), then packs every
// package again and runs `npm publish --dry-run` on each tarball, which is exactly what
// `npm publish` would upload. Needs no npm login.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const step = (title) => console.log(`\n== ${title}`);
const sh = (command, args, options = {}) =>
  execFileSync(command, args, { cwd: root, stdio: "inherit", ...options });

step("build");
sh("pnpm", ["build"]);

step("consumer test (tests/consumer)");
sh("pnpm", ["--filter", "consumer-test", "test"]);

const dir = mkdtempSync(join(tmpdir(), "rockraft-release-"));
try {
  step("pack");
  const packed = JSON.parse(
    execFileSync("node", [join(root, "scripts/pack.mjs"), dir], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }),
  );
  for (const { name, version, tarball } of packed) {
    step(`npm publish --dry-run ${name}@${version}`);
    sh("npm", ["publish", "--dry-run", tarball], { cwd: dir });
  }
  console.log(`\nrelease check passed: ${packed.map((p) => `${p.name}@${p.version}`).join(", ")}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
