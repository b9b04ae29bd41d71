import { describe, expect, test } from "vitest";
import { ConfigError, parseConfig, parseAddress } from "../src/index.js";

const SOURCE = "conf/node1.toml";
const BASE =
  '[node]\nnode_id = 1\nraft_addr = "127.0.0.1:6682"\n\n[rocksdb]\ndata_path = "/tmp/rockraft/node1"\n';

function parse(text: string) {
  return parseConfig(text, { source: SOURCE, baseDir: "/etc/rockraft" });
}

/** The error's message lines, each `source: path: message`. */
function problems(text: string): string[] {
  try {
    parse(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    expect(configError.code).toBe("CONFIG_INVALID");
    expect(configError.source).toBe(SOURCE);
    expect(configError.message.split("\n")).toEqual(
      configError.issues.map((issue) => `${SOURCE}: ${issue.path}: ${issue.message}`),
    );
    return configError.message.split("\n");
  }
  return expect.fail("expected a ConfigError");
}

describe("valid documents", () => {
  test("every optional table and key is read", () => {
    const config = parse(`${BASE}
[raft]
tick_interval_ms = 10
heartbeat_interval_ms = 50
election_timeout_min_ms = 150
election_timeout_max_ms = 300
max_entries_per_append = 64
max_bytes_per_append = 65536
max_inflight_appends = 8
pre_vote = false
check_quorum = true
read_mode = "lease"
lease_clock_drift_ms = 20
snapshot_logs_since_last = 0
snapshot_keep_logs = 10
snapshot_chunk_bytes = 1024

[cluster]
cluster_id = "prod-eu.1"
[[cluster.members]]
node_id = 3
addr = "[::1]:6684"
[[cluster.members]]
node_id = 1
addr = "127.0.0.1:6682"

[tls]
cert_file = "node.pem"
key_file = "/abs/node.key"
ca_file = "ca.pem"
require_client_cert = true

[limits]
max_key_bytes = 128
max_value_bytes = 0

[metrics]
addr = "0.0.0.0:9100"

[log]
level = "debug"
pretty = true
`);
    expect(config.source).toMatch(/conf\/node1\.toml$/);
    expect(config.raft).toEqual({
      tickIntervalMs: 10,
      heartbeatIntervalMs: 50,
      electionTimeoutMinMs: 150,
      electionTimeoutMaxMs: 300,
      maxEntriesPerAppend: 64,
      maxBytesPerAppend: 65536,
      maxInflightAppends: 8,
      preVote: false,
      checkQuorum: true,
      readMode: "lease",
      leaseClockDriftMs: 20,
      snapshotLogsSinceLast: 0,
      snapshotKeepLogs: 10,
      snapshotChunkBytes: 1024,
      promoteMaxLagEntries: 1000,
    });
    expect(config.cluster).toEqual({
      clusterId: "prod-eu.1",
      members: [
        { nodeId: 1, addr: "127.0.0.1:6682" },
        { nodeId: 3, addr: "[::1]:6684" },
      ],
    });
    expect(config.tls).toEqual({
      caFile: "/etc/rockraft/ca.pem",
      certFile: "/etc/rockraft/node.pem",
      keyFile: "/abs/node.key",
      requireClientCert: true,
      clientCertAuth: false,
    });
    expect(config.limits).toEqual({ maxKeyBytes: 128, maxValueBytes: 0 });
    expect(config.metrics).toEqual({ addr: "0.0.0.0:9100", path: "/metrics" });
    expect(config.log).toEqual({ level: "debug", pretty: true });
  });

  test("advertise_addr defaults to raft_addr and may differ from it", () => {
    expect(parse(BASE).node.advertiseAddr).toBe("127.0.0.1:6682");
    const config = parse(BASE.replace("[rocksdb]", 'advertise_addr = "10.0.0.5:6682"\n[rocksdb]'));
    expect(config.node).toEqual({
      nodeId: 1,
      raftAddr: "127.0.0.1:6682",
      advertiseAddr: "10.0.0.5:6682",
    });
  });

  test("without a source, relative paths resolve against the cwd and the source is <config>", () => {
    const config = parseConfig(BASE.replace("/tmp/rockraft/node1", "data"));
    expect(config.source).toBe("<config>");
    expect(config.storage.dataPath).toBe(`${process.cwd()}/data`);
  });

  test("a wildcard raft_addr is fine with an advertise_addr", () => {
    const config = parse(
      BASE.replace("127.0.0.1:6682", "0.0.0.0:6682").replace(
        "[rocksdb]",
        'advertise_addr = "node1.internal:6682"\n[rocksdb]',
      ),
    );
    expect(config.node.raftAddr).toBe("0.0.0.0:6682");
  });
});

describe("bad values name the source, the key and what was expected", () => {
  test.each([
    ["node.node_id", 'node_id = "abc"', 'expected a positive integer, got "abc"'],
    ["node.node_id", "node_id = 0", "expected a positive integer, got 0"],
    ["node.node_id", "node_id = -4", "expected a positive integer, got -4"],
    ["node.node_id", "node_id = 1.5", "expected a positive integer, got 1.5"],
    ["node.node_id", "node_id = true", "expected a positive integer, got true"],
    ["node.node_id", "node_id = [1]", "expected a positive integer, got an array"],
    ["node.node_id", "node_id = {}", "expected a positive integer, got a table"],
    ["node.node_id", "node_id = 1979-05-27", "expected a positive integer, got a date-time"],
  ])("%s: %s", (path, line, message) => {
    expect(problems(BASE.replace("node_id = 1", line))).toEqual([`${SOURCE}: ${path}: ${message}`]);
  });

  test.each([
    "127.0.0.1",
    "127.0.0.1:0",
    "127.0.0.1:65536",
    ":6682",
    "127.0.0.1:port",
    "::1:6682",
    "a b:1",
    "",
  ])("raft_addr %j is not host:port with a port from 1 to 65535", (address) => {
    expect(problems(BASE.replace("127.0.0.1:6682", address))).toEqual([
      `${SOURCE}: node.raft_addr: expected "host:port" with a port from 1 to 65535, got ${JSON.stringify(address)}`,
    ]);
  });

  test("addresses parse as host:port, IPv6 in brackets", () => {
    expect(parseAddress("localhost:1")).toEqual({ host: "localhost", port: 1 });
    expect(parseAddress("[::1]:65535")).toEqual({ host: "[::1]", port: 65535 });
    expect(parseAddress("[::1]:65536")).toBeUndefined();
  });

  test.each([
    [
      "rocksdb.max_open_files = 15",
      "rocksdb.max_open_files",
      "expected an integer from 16 to 1000000, got 15",
    ],
    [
      "rocksdb.cache_size = -1",
      "rocksdb.cache_size",
      "expected a size in bytes from 0 to 64 GiB, got -1",
    ],
    [
      "rocksdb.write_buffer_size = 1",
      "rocksdb.write_buffer_size",
      "expected a size in bytes from 64 KiB to 1 GiB, got 1",
    ],
    [
      "rocksdb.block_size = 4.5",
      "rocksdb.block_size",
      "expected a size in bytes from 1 KiB to 4 MiB, got 4.5",
    ],
    ['rocksdb.compression = "yes"', "rocksdb.compression", 'expected true or false, got "yes"'],
    ['rocksdb.data_path = ""', "rocksdb.data_path", 'expected a path, got ""'],
    [
      "raft.tick_interval_ms = 0",
      "raft.tick_interval_ms",
      "expected milliseconds from 1 to 60000, got 0",
    ],
    [
      "raft.max_entries_per_append = 0",
      "raft.max_entries_per_append",
      "expected an integer from 1 to 1000000, got 0",
    ],
    [
      "raft.max_bytes_per_append = 10",
      "raft.max_bytes_per_append",
      "expected a size in bytes from 1 KiB to 64 MiB, got 10",
    ],
    [
      "raft.max_inflight_appends = 70000",
      "raft.max_inflight_appends",
      "expected an integer from 1 to 65536, got 70000",
    ],
    ["raft.pre_vote = 1", "raft.pre_vote", "expected true or false, got 1"],
    ['raft.read_mode = "local"', "raft.read_mode", 'expected "read_index" or "lease", got "local"'],
    [
      "raft.snapshot_logs_since_last = -1",
      "raft.snapshot_logs_since_last",
      "expected a non-negative integer (0 turns automatic snapshots off), got -1",
    ],
    [
      'cluster.cluster_id = "has space"',
      "cluster.cluster_id",
      `expected 1 to 64 characters of letters, digits, '.', '_' or '-' for the cluster id, got "has space"`,
    ],
    [
      "cluster.members = 3",
      "cluster.members",
      "expected an array of [[cluster.members]] tables, got 3",
    ],
    [
      "limits.max_key_bytes = 0",
      "limits.max_key_bytes",
      "expected a size in bytes from 1 to 64 MiB, got 0",
    ],
    [
      'metrics.addr = "nowhere"',
      "metrics.addr",
      'expected "host:port" with a port from 1 to 65535, got "nowhere"',
    ],
    [
      'metrics.path = "metrics"',
      "metrics.path",
      'expected a URL path starting with "/", got "metrics"',
    ],
    [
      'log.level = "loud"',
      "log.level",
      'expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "loud"',
    ],
    ["log.pretty = 3", "log.pretty", 'expected true, false or "auto", got 3'],
  ])("%s", (assignment, path, message) => {
    const [key, value] = assignment.split(" = ") as [string, string];
    const [table, name] = key.split(".") as [string, string];
    const text =
      name === "data_path"
        ? BASE.replace('"/tmp/rockraft/node1"', value)
        : table === "rocksdb"
          ? `${BASE}${name} = ${value}\n`
          : `${BASE}\n[${table}]\n${name} = ${value}\n`;
    const metricsAddr = table === "metrics" && name !== "addr" ? 'addr = "127.0.0.1:9100"\n' : "";
    expect(problems(text + metricsAddr)).toEqual([`${SOURCE}: ${path}: ${message}`]);
  });

  test("a table given as a value", () => {
    expect(problems(`node = 5\n[rocksdb]\ndata_path = "x"\n`)).toEqual([
      `${SOURCE}: node: expected a [node] table, got 5`,
    ]);
  });

  test("required tables and keys that are missing", () => {
    expect(problems("")).toEqual([
      `${SOURCE}: node: expected a [node] table, but it is missing`,
      `${SOURCE}: rocksdb: expected a [rocksdb] table, but it is missing`,
    ]);
    expect(problems("[node]\n[rocksdb]\n")).toEqual([
      `${SOURCE}: node.node_id: expected a positive integer, but it is missing`,
      `${SOURCE}: node.raft_addr: expected "host:port" with a port from 1 to 65535, but it is missing`,
      `${SOURCE}: rocksdb.data_path: expected a path, but it is missing`,
    ]);
    expect(problems(`${BASE}[tls]\nrequire_client_cert = false\n[metrics]\n`)).toEqual([
      `${SOURCE}: tls.cert_file: expected a path, but it is missing`,
      `${SOURCE}: tls.key_file: expected a path, but it is missing`,
      `${SOURCE}: metrics.addr: expected "host:port" with a port from 1 to 65535, but it is missing`,
    ]);
  });
});

describe("unknown keys are errors, never silent defaults", () => {
  test("a key spelt in camelCase is unknown: the file's keys are snake_case", () => {
    expect(problems(`${BASE}[raft]\ntickIntervalMs = 10\n`)).toEqual([
      `${SOURCE}: raft.tickIntervalMs: unknown key; did you mean "tick_interval_ms"?`,
    ]);
  });

  test("a misspelt key gets a suggestion", () => {
    expect(problems(BASE.replace("data_path", "dta_path"))).toEqual([
      `${SOURCE}: rocksdb.data_path: expected a path, but it is missing`,
      `${SOURCE}: rocksdb.dta_path: unknown key; did you mean "data_path"?`,
    ]);
  });

  test("an unknown table lists the known ones", () => {
    expect(problems(`${BASE}[server]\nport = 1\n`)).toEqual([
      `${SOURCE}: server: unknown table; expected one of node, rocksdb, raft, cluster, tls, limits, sessions, auth, metrics, log`,
    ]);
  });

  test("an unknown key inside an array of tables", () => {
    expect(
      problems(`${BASE}[[cluster.members]]\nnode_id = 1\naddr = "127.0.0.1:6682"\nport = 2\n`),
    ).toEqual([`${SOURCE}: cluster.members[0].port: unknown key; expected one of node_id, addr`]);
  });
});

describe("cross-field rules", () => {
  test("heartbeat interval is at least one tick", () => {
    expect(problems(`${BASE}[raft]\ntick_interval_ms = 100\nheartbeat_interval_ms = 50\n`)).toEqual(
      [
        `${SOURCE}: raft.heartbeat_interval_ms: expected at least raft.tick_interval_ms (100), got 50`,
      ],
    );
  });

  test("election timeout min is more than the heartbeat interval", () => {
    expect(problems(`${BASE}[raft]\nelection_timeout_min_ms = 100\n`)).toEqual([
      `${SOURCE}: raft.election_timeout_min_ms: expected more than raft.heartbeat_interval_ms (100), got 100`,
    ]);
  });

  test("election timeout min is less than max", () => {
    expect(problems(`${BASE}[raft]\nelection_timeout_max_ms = 1000\n`)).toEqual([
      `${SOURCE}: raft.election_timeout_max_ms: expected more than raft.election_timeout_min_ms (1000), got 1000`,
    ]);
  });

  test("lease reads need check quorum", () => {
    expect(problems(`${BASE}[raft]\nread_mode = "lease"\ncheck_quorum = false\n`)).toEqual([
      `${SOURCE}: raft.read_mode: "lease" needs raft.check_quorum = true (a leader must step down before its lease can expire)`,
    ]);
  });

  test("a lease clock drift bound that leaves no lease is refused", () => {
    expect(problems(`${BASE}[raft]\nread_mode = "lease"\nlease_clock_drift_ms = 850\n`)).toEqual([
      `${SOURCE}: raft.lease_clock_drift_ms: expected less than raft.election_timeout_min_ms - 3 × raft.tick_interval_ms (850), got 850: it would leave no lease`,
    ]);
  });

  test("a wildcard raft_addr needs an advertise_addr", () => {
    expect(problems(BASE.replace("127.0.0.1:6682", "0.0.0.0:6682"))).toEqual([
      `${SOURCE}: node.advertise_addr: required when node.raft_addr listens on a wildcard address (0.0.0.0:6682): peers cannot dial it`,
    ]);
  });

  test("the node itself is among the members when members are given", () => {
    expect(problems(`${BASE}[[cluster.members]]\nnode_id = 2\naddr = "127.0.0.1:6683"\n`)).toEqual([
      `${SOURCE}: cluster.members: expected an entry for this node (node.node_id = 1)`,
    ]);
  });

  test("the node's member address is its advertised address", () => {
    expect(problems(`${BASE}[[cluster.members]]\nnode_id = 1\naddr = "127.0.0.1:7000"\n`)).toEqual([
      `${SOURCE}: cluster.members[0].addr: expected this node's advertised address "127.0.0.1:6682", got "127.0.0.1:7000"`,
    ]);
  });

  test("member ids and addresses are unique", () => {
    const members = [
      [1, "127.0.0.1:6682"],
      [2, "127.0.0.1:6683"],
      [2, "127.0.0.1:6683"],
    ]
      .map(([id, addr]) => `[[cluster.members]]\nnode_id = ${id}\naddr = "${addr}"\n`)
      .join("");
    expect(problems(BASE + members)).toEqual([
      `${SOURCE}: cluster.members[2].node_id: duplicate node id 2 (also at cluster.members[1])`,
      `${SOURCE}: cluster.members[2].addr: duplicate address "127.0.0.1:6683" (also at cluster.members[1])`,
    ]);
  });

  test("client certificate checking needs a CA", () => {
    expect(
      problems(`${BASE}[tls]\ncert_file = "a"\nkey_file = "b"\nrequire_client_cert = true\n`),
    ).toEqual([
      `${SOURCE}: tls.ca_file: required when tls.require_client_cert = true (client certificates are verified against it)`,
    ]);
  });

  test("a peer common name needs mutual TLS", () => {
    const tls = `${BASE}[tls]
cert_file = "a"
key_file = "b"
ca_file = "c"
`;
    expect(
      problems(`${tls}peer_common_name = "rockraft-peer"
`),
    ).toEqual([
      `${SOURCE}: tls.peer_common_name: needs tls.require_client_cert = true (peers are told apart by their certificates)`,
    ]);
    const mutual = parseConfig(
      `${tls}require_client_cert = true
peer_common_name = "rockraft-peer"
`,
    );
    expect(mutual.tls?.peerCommonName).toBe("rockraft-peer");
    expect(problems(`${tls}client_cert_auth = true\n`)).toEqual([
      `${SOURCE}: tls.client_cert_auth: needs tls.require_client_cert = true (only a verified certificate may name a user)`,
    ]);
  });
});

describe("all problems at once", () => {
  test("errors in several tables and a cross-field rule are reported together", () => {
    const text = `[node]
node_id = "abc"
raft_addr = "127.0.0.1:99999"

[rocksdb]
dta_path = "/tmp/x"

[raft]
heartbeat_interval_ms = 5000
`;
    const error = (() => {
      try {
        parse(text);
      } catch (caught) {
        return caught as ConfigError;
      }
      return expect.fail("expected a ConfigError");
    })();
    expect(error.issues).toEqual([
      { path: "node.node_id", message: 'expected a positive integer, got "abc"' },
      {
        path: "node.raft_addr",
        message: 'expected "host:port" with a port from 1 to 65535, got "127.0.0.1:99999"',
      },
      { path: "rocksdb.data_path", message: "expected a path, but it is missing" },
      { path: "rocksdb.dta_path", message: 'unknown key; did you mean "data_path"?' },
      {
        path: "raft.election_timeout_min_ms",
        message: "expected more than raft.heartbeat_interval_ms (5000), got 1000",
      },
    ]);
    expect(error.name).toBe("ConfigError");
  });
});

describe("TOML syntax errors", () => {
  test("name the line and column and show the line", () => {
    const text = `${BASE}max_open_files = 10 000\n`;
    try {
      parse(text);
      expect.fail("expected a ConfigError");
    } catch (error) {
      const configError = error as ConfigError;
      expect(configError.code).toBe("CONFIG_SYNTAX");
      expect(configError.line).toBe(7);
      expect(configError.column).toBe(21);
      expect(configError.issues).toEqual([]);
      expect(configError.message).toBe(
        `${SOURCE}:7:21: invalid TOML: each key-value declaration must be followed by an end-of-line\n` +
          "  max_open_files = 10 000\n" +
          "                      ^",
      );
    }
  });

  test("integers beyond 2^53 are refused by the parser, not rounded", () => {
    expect(() => parse(BASE.replace("node_id = 1", "node_id = 9007199254740993"))).toThrow(
      /^conf\/node1\.toml:2:\d+: invalid TOML: integer value cannot be represented losslessly/,
    );
  });

  test("a non-string argument is a programmer error", () => {
    expect(() => parseConfig(42 as unknown as string)).toThrow(TypeError);
  });
});

describe("[sessions]", () => {
  test("defaults, and a timeout shorter than four clock intervals refused with the rule", () => {
    expect(parseConfig(BASE, { source: SOURCE }).sessions).toEqual({
      enabled: true,
      idleTimeoutMs: 600_000,
      maxSessions: 4096,
      maxUnacknowledged: 1024,
      clockIntervalMs: 1000,
    });
    expect(
      problems(`${BASE}[sessions]\nidle_timeout_ms = 1000\nclock_interval_ms = 500\n`),
    ).toEqual([
      `${SOURCE}: sessions.idle_timeout_ms: expected at least 4 × sessions.clock_interval_ms (2000), got 1000: a session may expire up to one interval early`,
    ]);
    expect(problems(`${BASE}[sessions]\nmax_sessions = 0\nenabled = "yes"\n`)).toEqual([
      `${SOURCE}: sessions.enabled: expected true or false, got "yes"`,
      `${SOURCE}: sessions.max_sessions: expected an integer from 1 to 1000000, got 0`,
    ]);
  });
});

describe("[auth]", () => {
  test("a token lifetime of 5 minutes by default; one under a second is refused", () => {
    expect(parseConfig(BASE, { source: SOURCE }).auth).toEqual({ tokenTtlMs: 300_000 });
    expect(parseConfig(`${BASE}[auth]\ntoken_ttl_ms = 2000\n`).auth.tokenTtlMs).toBe(2000);
    expect(problems(`${BASE}[auth]\ntoken_ttl_ms = 10\n`)).toEqual([
      `${SOURCE}: auth.token_ttl_ms: expected milliseconds from 1000 to a week, got 10`,
    ]);
  });
});

describe("overrides (a node's config set)", () => {
  test("replace the text's value before validation, and are validated as it is", () => {
    const overridden = parseConfig(`${BASE}[limits]\nmax_value_bytes = 10\n`, {
      overrides: { "limits.max_value_bytes": 20, "sessions.max_sessions": 3 },
    });
    expect(overridden.limits.maxValueBytes).toBe(20);
    expect(overridden.sessions.maxSessions).toBe(3);
    expect(() =>
      parseConfig(BASE, { source: SOURCE, overrides: { "limits.max_value_bytes": -1 } }),
    ).toThrow(
      `${SOURCE}: limits.max_value_bytes: expected a size in bytes from 0 to 64 MiB, got -1`,
    );
    expect(() => parseConfig(BASE, { overrides: { "limits.nope": 1 } })).toThrow(/limits\.nope/);
  });
});
