// Generates the TypeScript for proto/rockraft/v1/*.proto (buf from npm + ts-proto, both
// offline) and copies the .proto files into this package, which serves them for reflection.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const packageDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const protoRoot = join(packageDir, "../../proto");
execFileSync("buf", ["generate", protoRoot, "--template", join(packageDir, "buf.gen.yaml")], {
  cwd: packageDir,
  stdio: "inherit",
});
rmSync(join(packageDir, "proto"), { recursive: true, force: true });
mkdirSync(join(packageDir, "proto"), { recursive: true });
cpSync(join(protoRoot, "rockraft"), join(packageDir, "proto/rockraft"), { recursive: true });
