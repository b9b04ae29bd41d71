import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { ConfigError, loadConfig } from "../src/index.js";

// The seed example's three files, as its README gives them (apps/basic-example checks that its
// own copies stay the same).
const exampleConf = join(import.meta.dirname, "fixtures/seed");

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "rockraft-config-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function expectConfigError(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => expect.fail("expected a ConfigError"),
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe("the seed's example files", () => {
  test.each([
    [1, "127.0.0.1:6682"],
    [2, "127.0.0.1:6683"],
    [3, "127.0.0.1:6684"],
  ])("node%i.toml loads unchanged with defaults filled in", async (nodeId, raftAddr) => {
    const path = join(exampleConf, `node${nodeId}.toml`);
    const config = await loadConfig(path);
    expect(config).toEqual({
      source: path,
      node: { nodeId, raftAddr, advertiseAddr: raftAddr },
      storage: {
        dataPath: `/tmp/rockraft/node${nodeId}`,
        maxOpenFiles: 10000,
        cacheSize: 8 * 1024 * 1024,
        writeBufferSize: 4 * 1024 * 1024,
        blockSize: 4096,
        compression: true,
      },
      raft: {
        tickIntervalMs: 50,
        heartbeatIntervalMs: 100,
        electionTimeoutMinMs: 1000,
        electionTimeoutMaxMs: 2000,
        maxEntriesPerAppend: 300,
        maxBytesPerAppend: 1024 * 1024,
        maxInflightAppends: 256,
        preVote: true,
        checkQuorum: true,
        readMode: "read_index",
        leaseClockDriftMs: 200,
        snapshotLogsSinceLast: 5000,
        snapshotKeepLogs: 1000,
        snapshotChunkBytes: 3 * 1024 * 1024,
        promoteMaxLagEntries: 1000,
      },
      cluster: { clusterId: "rockraft", members: [] },
      tls: undefined,
      limits: { maxKeyBytes: 4096, maxValueBytes: 1024 * 1024 },
      sessions: {
        enabled: true,
        idleTimeoutMs: 600_000,
        maxSessions: 4096,
        maxUnacknowledged: 1024,
        clockIntervalMs: 1000,
      },
      auth: { tokenTtlMs: 300_000 },
      metrics: undefined,
      log: { level: "info", pretty: "auto" },
    });
  });

  test("the fixtures are byte for byte the seed's", async () => {
    const text = await readFile(join(exampleConf, "node1.toml"), "utf8");
    expect(text).toBe(
      '[node]\nnode_id = 1\nraft_addr = "127.0.0.1:6682"\n\n[rocksdb]\ndata_path = "/tmp/rockraft/node1"\nmax_open_files = 10000\n',
    );
  });

  test("the returned config is deeply frozen", async () => {
    const config = await loadConfig(join(exampleConf, "node1.toml"));
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.node)).toBe(true);
    expect(Object.isFrozen(config.cluster.members)).toBe(true);
    expect(() => {
      (config.node as { nodeId: number }).nodeId = 9;
    }).toThrow(TypeError);
  });
});

describe("paths", () => {
  test("relative paths resolve against the config file's directory, not the cwd", async () => {
    await mkdir(join(dir, "conf"));
    await mkdir(join(dir, "certs"));
    for (const file of ["ca.pem", "node.pem", "node.key"])
      await writeFile(join(dir, "certs", file), "x");
    const path = join(dir, "conf", "node.toml");
    await writeFile(
      path,
      `[node]
node_id = 1
raft_addr = "127.0.0.1:7000"
[rocksdb]
data_path = "../data/node1"
[tls]
ca_file = "../certs/ca.pem"
cert_file = "../certs/node.pem"
key_file = "../certs/node.key"
`,
    );
    const config = await loadConfig(path);
    expect(config.storage.dataPath).toBe(join(dir, "data", "node1"));
    expect(config.tls).toEqual({
      caFile: join(dir, "certs", "ca.pem"),
      certFile: join(dir, "certs", "node.pem"),
      keyFile: join(dir, "certs", "node.key"),
      requireClientCert: false,
      clientCertAuth: false,
    });
  });

  test("TLS files that do not exist are named with their key and resolved path", async () => {
    const path = join(dir, "node.toml");
    await writeFile(
      path,
      `[node]
node_id = 1
raft_addr = "127.0.0.1:7000"
[rocksdb]
data_path = "data"
[tls]
cert_file = "node.pem"
key_file = "node.key"
`,
    );
    await writeFile(join(dir, "node.key"), "x");
    const error = await expectConfigError(loadConfig(path));
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toBe(
      `${path}: tls.cert_file: file not found or not readable: ${join(dir, "node.pem")}`,
    );
  });
});

describe("reading the file", () => {
  test("a missing file says so with the path", async () => {
    const path = join(dir, "missing.toml");
    const error = await expectConfigError(loadConfig(path));
    expect(error.code).toBe("CONFIG_READ");
    expect(error.message).toBe(`${path}: file not found`);
    expect(error.source).toBe(path);
    expect((error.cause as NodeJS.ErrnoException).code).toBe("ENOENT");
  });

  test("a directory is not a config file", async () => {
    const error = await expectConfigError(loadConfig(dir));
    expect(error.code).toBe("CONFIG_READ");
    expect(error.message).toBe(`${dir}: is a directory, expected a TOML file`);
  });

  test("an empty path is a programmer error", async () => {
    await expect(loadConfig("")).rejects.toThrow(TypeError);
  });

  test("a syntax error in a file names the file, line and column", async () => {
    const path = join(dir, "bad.toml");
    await writeFile(path, '[node]\nnode_id = 1\nraft_addr = "127.0.0.1:1\n');
    const error = await expectConfigError(loadConfig(path));
    expect(error.code).toBe("CONFIG_SYNTAX");
    expect(error.line).toBe(3);
    expect(error.message.split("\n")[0]).toMatch(new RegExp(`^${path}:3:\\d+: invalid TOML: `));
  });
});
