// Packs every publishable package (each packages/* that is not private) into a directory
// with `pnpm pack`, which rewrites workspace: and catalog: ranges to real versions, and
// checks what users would get: the manifest fields a published package needs, no range left
// that npm cannot resolve, every exported file present, nothing dev-only.
//
//   node scripts/pack.mjs <destination>   (after `pnpm build`)
//
// Prints a JSON array of { name, version, tarball } on standard output; problems go to
// standard error, one line each, and exit code 1.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const destination = process.argv[2];
if (destination === undefined) {
  console.error("usage: node scripts/pack.mjs <destination>");
  process.exit(2);
}
mkdirSync(destination, { recursive: true });

const DEPENDENCY_FIELDS = ["dependencies", "peerDependencies", "optionalDependencies"];
const REQUIRED_FILES = ["package.json", "README.md", "CHANGELOG.md", "LICENSE"];
const problems = [];
const packed = [];

for (const name of readdirSync(join(root, "packages")).sort()) {
  const dir = join(root, "packages", name);
  const source = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  if (source.private === true) continue;
  const result = JSON.parse(
    execFileSync("pnpm", ["pack", "--json", "--pack-destination", resolve(destination)], {
      cwd: dir,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }),
  );
  const tarball = result.filename;
  const files = new Set(
    execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .map((path) => path.replace(/^package\//, "")),
  );
  const manifest = JSON.parse(
    execFileSync("tar", ["-xzOf", tarball, "package/package.json"], { encoding: "utf8" }),
  );
  const where = `${manifest.name} (${tarball})`;
  const problem = (text) => problems.push(`${where}: ${text}`);

  for (const field of ["version", "description", "license", "repository", "engines"]) {
    if (manifest[field] === undefined) problem(`package.json has no "${field}"`);
  }
  if (manifest.type !== "module") problem('package.json "type" is not "module"');
  if (!/^>=\s*20/.test(manifest.engines?.node ?? "")) problem('"engines.node" is not ">=20..."');
  if (manifest.name.startsWith("@") && manifest.publishConfig?.access !== "public") {
    problem('a scoped package needs "publishConfig": { "access": "public" }');
  }
  for (const field of DEPENDENCY_FIELDS) {
    for (const [dep, range] of Object.entries(manifest[field] ?? {})) {
      if (/^(workspace|catalog|link|file):/.test(range)) {
        problem(`${field}.${dep} is "${range}", which npm cannot install`);
      }
    }
  }
  for (const [subpath, target] of Object.entries(manifest.exports ?? {})) {
    if (typeof target === "string") continue; // "./package.json"
    const keys = Object.keys(target);
    if (keys[0] !== "types") problem(`exports["${subpath}"] does not list "types" first`);
    for (const file of Object.values(target)) {
      if (!files.has(file.replace(/^\.\//, ""))) problem(`exports["${subpath}"]: ${file} missing`);
    }
  }
  for (const file of Object.values(manifest.bin ?? {})) {
    if (!files.has(file.replace(/^\.\//, ""))) problem(`bin ${file} missing`);
  }
  for (const file of REQUIRED_FILES) if (!files.has(file)) problem(`${file} missing`);
  for (const file of files) {
    if (/(^|\/)(test|tests|__tests__)\//.test(file) || /\.test\.[cm]?[jt]s$/.test(file)) {
      problem(`dev-only file shipped: ${file}`);
    }
    if (file.endsWith(".tsbuildinfo") || file.includes("node_modules/")) {
      problem(`build artifact shipped: ${file}`);
    }
  }
  if (![...files].some((file) => file.endsWith(".d.ts.map"))) problem("no declaration maps");
  if (![...files].some((file) => file.endsWith(".js.map"))) problem("no source maps");
  packed.push({ name: manifest.name, version: manifest.version, tarball });
}

for (const line of problems) console.error(line);
console.log(JSON.stringify(packed, null, 2));
process.exit(problems.length === 0 ? 0 : 1);
