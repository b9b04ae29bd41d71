import { RockraftClientError } from "@rockraft/transport-grpc";
import { describe, expect, test } from "vitest";
import { RockraftError } from "../src/index.js";
import { forwardedError } from "../src/leader-calls.js";

const failure = (
  code: string,
  options: { serverCode?: string; outcomeUnknown?: boolean } = {},
): RockraftClientError =>
  new RockraftClientError(code, "127.0.0.1:6682: what the leader said", "127.0.0.1:6682", options);

describe("a call forwarded to the leader that fails", () => {
  test.each([
    [
      "the leader stopped waiting for it",
      failure("DEADLINE_EXCEEDED", { serverCode: "RAFT_TIMEOUT", outcomeUnknown: true }),
      "RAFT_TIMEOUT",
      true,
    ],
    ["its answer was lost", failure("UNAVAILABLE", { outcomeUnknown: true }), "RAFT_TIMEOUT", true],
    ["it never reached the leader", failure("UNAVAILABLE"), "RAFT_NO_LEADER", false],
    [
      "the leader had to drop it",
      failure("UNAVAILABLE", { serverCode: "RAFT_PROPOSAL_DROPPED" }),
      "RAFT_PROPOSAL_DROPPED",
      false,
    ],
    [
      "the leader refused it",
      failure("FAILED_PRECONDITION", { serverCode: "RAFT_REQUEST_REFUSED" }),
      "RAFT_REQUEST_REFUSED",
      false,
    ],
    [
      "the leader is not initialized",
      failure("FAILED_PRECONDITION", { serverCode: "RAFT_NOT_INITIALIZED" }),
      "RAFT_NOT_INITIALIZED",
      false,
    ],
    [
      "its input was bad",
      failure("INVALID_ARGUMENT", { serverCode: "RAFT_INVALID_ARGUMENT" }),
      "RAFT_INVALID_ARGUMENT",
      false,
    ],
  ])("because %s, is reported with the right code and outcome", (_why, error, code, unknown) => {
    const reported = forwardedError(error);
    expect(reported).toBeInstanceOf(RockraftError);
    expect(reported).toMatchObject({ code, outcomeUnknown: unknown, cause: error });
    expect(reported.message).toBe("forwarded to the leader: 127.0.0.1:6682: what the leader said");
  });

  test("an error that is not a client call's passes through", () => {
    const error = new Error("boom");
    expect(forwardedError(error)).toBe(error);
  });
});
