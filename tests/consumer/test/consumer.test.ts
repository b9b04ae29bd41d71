// What a user gets from npm: every publishable package is packed (scripts/pack.mjs), the
// tarballs are installed with plain `npm install` into a fresh project outside the
// workspace (no links), and used there through their public entry points only.
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

const run = promisify(execFile);
const root = resolve(import.meta.dirname, "../../..");
const here = resolve(import.meta.dirname, "..");
const work = mkdtempSync(join(tmpdir(), "rockraft-consumer-"));
const project = join(work, "project");

interface Packed {
  readonly name: string;
  readonly version: string;
  readonly tarball: string;
}
let packed: Packed[] = [];

/** The code block after `<!-- consumer-test: FILE -->` in the root README. */
function readmeExample(): { file: string; code: string } {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const match = /<!-- consumer-test: (\S+) -->\s*```\w*\n([\s\S]*?)```/.exec(readme);
  if (match === null) throw new Error("README.md has no <!-- consumer-test: FILE --> code block");
  return { file: match[1]!, code: match[2]! };
}

function devVersion(name: string): string {
  const manifest = JSON.parse(readFileSync(join(here, "package.json"), "utf8")) as {
    devDependencies: Record<string, string>;
  };
  return manifest.devDependencies[name]!;
}

beforeAll(async () => {
  const { stdout } = await run("node", [join(root, "scripts/pack.mjs"), join(work, "packs")], {
    encoding: "utf8",
  });
  packed = JSON.parse(stdout) as Packed[];

  mkdirSync(join(project, "src"), { recursive: true });
  const dependencies = Object.fromEntries(packed.map((p) => [p.name, `file:${p.tarball}`]));
  writeFileSync(
    join(project, "package.json"),
    JSON.stringify(
      {
        name: "a-users-project",
        private: true,
        type: "module",
        dependencies,
        devDependencies: {
          typescript: devVersion("typescript"),
          "@types/node": devVersion("@types/node"),
        },
      },
      null,
      2,
    ),
  );
  // A user's own strict setup, not the workspace's; skipLibCheck off, so the shipped
  // declarations themselves must compile with only the published dependencies installed.
  writeFileSync(
    join(project, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        skipLibCheck: false,
        types: ["node"],
        rootDir: "src",
        outDir: "dist",
      },
      include: ["src"],
    }),
  );
  copyFileSync(join(here, "fixture/consumer.ts"), join(project, "src/consumer.ts"));
  const example = readmeExample();
  writeFileSync(join(project, example.file), example.code);

  await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: project,
    encoding: "utf8",
  });
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the packed packages, installed with npm into a fresh project", () => {
  test("every publishable package is packed, and no manifest keeps a workspace range", () => {
    expect(packed.map((p) => p.name).sort()).toEqual([
      "@rockraft/config",
      "@rockraft/raft-core",
      "@rockraft/storage-level",
      "@rockraft/transport-grpc",
      "rockraft",
    ]);
    for (const { name } of packed) {
      const installed = readFileSync(join(project, "node_modules", name, "package.json"), "utf8");
      expect(installed).not.toMatch(/"(workspace|catalog):/);
    }
    // The project's own copy of each package is the tarball: npm fetched none from a registry.
    const lock = JSON.parse(readFileSync(join(project, "package-lock.json"), "utf8")) as {
      packages: Record<string, { resolved?: string }>;
    };
    for (const { name } of packed) {
      expect(lock.packages[`node_modules/${name}`]?.resolved).toMatch(/^file:.*\.tgz$/);
    }
  });

  test("the consumer script type-checks under strict against the shipped .d.ts files", async () => {
    const tsc = join(project, "node_modules/typescript/bin/tsc");
    const result = await run("node", [tsc, "--noEmit", "-p", project], { encoding: "utf8" }).catch(
      (error: { stdout: string }) => ({ stdout: error.stdout, failed: true }),
    );
    expect(result.stdout).toBe("");
    expect("failed" in result).toBe(false);
  });

  test("the consumer script runs: config, raft-core, storage-level, a rockraft cluster", async () => {
    const tsc = join(project, "node_modules/typescript/bin/tsc");
    await run("node", [tsc, "-p", project], { encoding: "utf8" });
    const { stdout } = await run("node", [join(project, "dist/consumer.js")], {
      cwd: project,
      encoding: "utf8",
    });
    const lines = stdout.trim().split("\n");
    expect(lines).toEqual([
      "config: node 1, election 1000 ms",
      expect.stringMatching(
        /^raft-core: "x=1" committed and applied on 3 of 3 nodes after \d+ rounds$/,
      ),
      expect.stringMatching(/^storage-level: color=blue after reopen, applied index \d+$/),
      expect.stringMatching(
        /^rockraft: wrote through node 2 at index \d+, read "hello from a consumer" through node 3$/,
      ),
      "rockraft: 3 nodes shut down",
    ]);
  });

  test("the root README's example runs as written", async () => {
    const { file } = readmeExample();
    const { stdout } = await run("node", [file], { cwd: project, encoding: "utf8" });
    expect(stdout).toMatch(/^written at index \d+ of term \d+\nread: hello, raft\n$/);
  });

  test("the installed rockraft command runs", async () => {
    const { stdout } = await run(join(project, "node_modules/.bin/rockraft"), ["--help"], {
      encoding: "utf8",
    });
    expect(stdout).toContain("usage: rockraft [options] <command>");
  });
});
