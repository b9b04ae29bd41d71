import type { ApplyResult, Command } from "@rockraft/storage-level";
import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { RockraftError } from "../src/errors.js";
import type { AppliedWrite } from "../src/proposals.js";
import { systemClock } from "../src/seams.js";
import { proposeUntilKnown, type Proposing } from "../src/session-writes.js";

// proposeUntilKnown on a fake clock: how a write refused for its session's limit of
// unacknowledged answers is proposed again, and what is reported at the deadline.
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const write: Command = {
  op: "put",
  key: new TextEncoder().encode("k"),
  value: new Uint8Array([1]),
  session: { id: 1, seq: 3, acknowledged: 1 },
};

/** A node that answers every attempt with a SESSION_LIMIT refusal after `latencyMs`. */
function alwaysFull(latencyMs: number): Proposing & { attempts: number } {
  const refused: ApplyResult = {
    index: 7,
    term: 1,
    kind: "refused",
    refusal: "SESSION_LIMIT",
    reason: "session 1 holds max_unacknowledged = 2 answers",
  };
  const node = {
    clock: systemClock,
    attempts: 0,
    write(_command: Command, timeoutMs: number): Promise<AppliedWrite> {
      node.attempts++;
      return new Promise((resolve, reject) => {
        if (timeoutMs < latencyMs) {
          // Proposed, but not answered in time: the attempt's outcome is unknown.
          const error = new RockraftError("RAFT_TIMEOUT", "not applied in time", {
            outcomeUnknown: true,
          });
          setTimeout(() => reject(error), timeoutMs);
        } else {
          setTimeout(
            () => resolve({ result: refused, logId: { index: 7, term: 1, nodeId: 1 } }),
            latencyMs,
          );
        }
      });
    },
  };
  return node;
}

test("a write refused for max_unacknowledged until its deadline ends RAFT_SESSION_LIMIT, not an unknown outcome", async () => {
  const node = alwaysFull(20);
  const outcome = proposeUntilKnown(node, write, Date.now() + 500, { attemptMs: 1_000 }).then(
    () => undefined,
    (error: unknown) => error,
  );
  await vi.runAllTimersAsync();
  const error = await outcome;
  expect(error).toMatchObject({ code: "RAFT_SESSION_LIMIT", outcomeUnknown: false });
  // It was proposed again while there was time for an answer.
  expect(node.attempts).toBeGreaterThan(1);
});

test("a write refused for max_unacknowledged applies once the session has room", async () => {
  const full = alwaysFull(5);
  const node: Proposing = {
    clock: systemClock,
    write: (command, timeoutMs) =>
      full.attempts < 2
        ? full.write(command, timeoutMs)
        : Promise.resolve({
            result: { index: 9, term: 1, kind: "put" },
            logId: { index: 9, term: 1, nodeId: 1 },
          }),
  };
  const outcome = proposeUntilKnown(node, write, Date.now() + 5_000, { attemptMs: 1_000 });
  await vi.runAllTimersAsync();
  expect(await outcome).toMatchObject({ logId: { index: 9, term: 1 } });
  expect(full.attempts).toBe(2);
});
