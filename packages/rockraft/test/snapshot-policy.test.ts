import { describe, expect, test } from "vitest";
import { SnapshotPolicy } from "../src/snapshot-policy.js";

describe("SnapshotPolicy", () => {
  const policy = (every: number, keep = 3) => new SnapshotPolicy(every, keep);

  test("a snapshot is due once `snapshot_logs_since_last` entries were applied since the last", () => {
    expect(policy(5).due(104, 100)).toBe(false);
    expect(policy(5).due(105, 100)).toBe(true);
    expect(policy(5).due(5, 0)).toBe(true);
  });

  test("0 never snapshots", () => {
    expect(policy(0).due(1_000_000, 0)).toBe(false);
  });

  test("keeps `snapshot_keep_logs` entries behind a snapshot", () => {
    expect(policy(5, 7).keepEntries).toBe(7);
  });
});
