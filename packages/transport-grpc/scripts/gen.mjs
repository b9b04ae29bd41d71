// Generates the TypeScript for proto/rockraft/v1/*.proto (buf from npm + ts-proto, both
// offline) and copies the .proto files into this package, which serves them for reflection.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);

const packageDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const protoRoot = join(packageDir, "../../proto");
execFileSync("buf", ["generate", protoRoot, "--template", join(packageDir, "buf.gen.yaml")], {
  cwd: packageDir,
  stdio: "inherit",
});
rmSync(join(packageDir, "proto"), { recursive: true, force: true });
mkdirSync(join(packageDir, "proto"), { recursive: true });
cpSync(join(protoRoot, "rockraft"), join(packageDir, "proto/rockraft"), { recursive: true });

// The descriptors server reflection serves: the files exactly as buf builds them from
// proto/ (their real names, fields and comments), and grpc.health.v1 under its upstream
// name, grpc/health/v1/health.proto.
execFileSync(
  "buf",
  ["build", protoRoot, "--as-file-descriptor-set", "-o", join(packageDir, "proto/rockraft.binpb")],
  { cwd: packageDir, stdio: "inherit" },
);
const healthRoot = join(packageDir, "proto/.health");
const healthProto = join(
  dirname(require.resolve("grpc-health-check/package.json")),
  "proto/health/v1/health.proto",
);
mkdirSync(join(healthRoot, "grpc/health/v1"), { recursive: true });
cpSync(healthProto, join(healthRoot, "grpc/health/v1/health.proto"));
execFileSync(
  "buf",
  ["build", healthRoot, "--as-file-descriptor-set", "-o", join(packageDir, "proto/health.binpb")],
  { cwd: packageDir, stdio: "inherit" },
);
rmSync(healthRoot, { recursive: true, force: true });
