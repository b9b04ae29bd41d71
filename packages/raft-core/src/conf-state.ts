import { EMPTY_CONF_STATE, type ConfState, type NodeId } from "./types.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function sortedUnique(ids: readonly NodeId[]): NodeId[] {
  return [...new Set(ids)].sort((a, b) => a - b);
}

function validIds(ids: unknown): ids is NodeId[] {
  return Array.isArray(ids) && ids.every((id) => Number.isSafeInteger(id) && (id as number) > 0);
}

/**
 * A frozen membership with sorted, de-duplicated lists; throws RangeError on an invalid one (no
 * voters, a non-positive id, a node both voter and learner).
 */
export function makeConfState(
  voters: readonly NodeId[],
  learners: readonly NodeId[] = [],
  votersOutgoing: readonly NodeId[] = [],
  context?: string,
): ConfState {
  return Object.freeze({
    voters: Object.freeze(sortedUnique(voters)),
    learners: Object.freeze(sortedUnique(learners)),
    votersOutgoing: Object.freeze(sortedUnique(votersOutgoing)),
    ...(context === undefined ? {} : { context }),
  });
}

/** The payload of a `config` entry: a small JSON document, so any tool can read it. */
export function encodeConfState(conf: ConfState): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      voters: conf.voters,
      learners: conf.learners,
      votersOutgoing: conf.votersOutgoing,
      ...(conf.context === undefined ? {} : { context: conf.context }),
    }),
  );
}

/** Decodes a `config` entry's payload; throws `RangeError` on anything malformed. */
export function decodeConfState(data: Uint8Array): ConfState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (cause) {
    throw new RangeError("config entry: payload is not valid JSON", { cause });
  }
  const value = parsed as Partial<Record<keyof ConfState, unknown>>;
  if (
    typeof parsed !== "object" ||
    parsed === null ||
    !validIds(value.voters) ||
    !validIds(value.learners ?? []) ||
    !validIds(value.votersOutgoing ?? []) ||
    (value.context !== undefined && typeof value.context !== "string")
  ) {
    throw new RangeError("config entry: expected { voters, learners, votersOutgoing } of node ids");
  }
  return makeConfState(
    value.voters,
    (value.learners ?? []) as NodeId[],
    (value.votersOutgoing ?? []) as NodeId[],
    value.context,
  );
}

/** Whether two memberships have the same voters, learners, outgoing voters and context. */
export function confStateEqual(a: ConfState, b: ConfState): boolean {
  const same = (x: readonly NodeId[], y: readonly NodeId[]) =>
    x.length === y.length && x.every((id, i) => id === y[i]);
  return (
    same(a.voters, b.voters) &&
    same(a.learners, b.learners) &&
    same(a.votersOutgoing, b.votersOutgoing) &&
    a.context === b.context
  );
}

export function isEmptyConfState(conf: ConfState): boolean {
  return confStateEqual(conf, EMPTY_CONF_STATE);
}

/** Every node the configuration replicates to: voters (both halves) and learners. */
export function allMembers(conf: ConfState): NodeId[] {
  return sortedUnique([...conf.voters, ...conf.votersOutgoing, ...conf.learners]);
}
