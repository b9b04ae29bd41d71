// A linearizability checker for a key-value store, per key (a KV history is linearizable iff
// each key's history is: P-compositionality). The search is Wing & Gong's, with Lowe's
// memoisation of (operations linearized, state) as Porcupine does it: operations are tried
// in call order, one is linearized when the model accepts its output in the current state,
// and a return whose call is not yet linearized backtracks.
//
// An operation whose outcome is unknown (a timeout, a crash) returns "at infinity" with any
// output: it may take effect at any point after its call, or never (placed last, it changes
// nothing anyone observed).

/** The register model: is `output` possible for `input` in `state`, and the state after. */
export function step(state, input, output) {
  switch (input.op) {
    case "put":
      return { ok: true, next: input.value };
    case "get":
      return {
        ok: output === undefined || (output.op === "get" && output.value === state),
        next: state,
      };
    case "delete":
      return {
        ok:
          output === undefined ||
          (output.op === "delete" && output.found === (state !== undefined)),
        next: undefined,
      };
    case "cas": {
      const found = state !== undefined;
      const succeeded = found === input.expectFound && (!found || state === input.expected);
      const ok =
        output === undefined ||
        (output.op === "cas" &&
          output.succeeded === succeeded &&
          output.found === found &&
          output.current === state);
      return { ok, next: succeeded ? input.value : state };
    }
  }
}

function lift(call) {
  call.prev.next = call.next;
  call.next.prev = call.prev;
  const ret = call.match;
  ret.prev.next = ret.next;
  if (ret.next !== undefined) ret.next.prev = ret.prev;
}

function unlift(call) {
  const ret = call.match;
  ret.prev.next = ret;
  if (ret.next !== undefined) ret.next.prev = ret;
  call.prev.next = call;
  call.next.prev = call;
}

/** Whether one key's history is linearizable from the absent state. */
export function checkKey(operations, budget = 2_000_000) {
  const events = [];
  operations.forEach((op, id) => {
    events.push({ time: op.call, call: true, id });
    events.push({ time: op.ret, call: false, id });
  });
  events.sort((a, b) => a.time - b.time || (a.call === b.call ? a.id - b.id : a.call ? -1 : 1));
  const head = { op: undefined, id: -1, match: undefined, prev: undefined, next: undefined };
  const calls = new Map();
  let last = head;
  for (const event of events) {
    const node = {
      op: event.call ? operations[event.id] : undefined,
      id: event.id,
      match: undefined,
      prev: last,
      next: undefined,
    };
    if (event.call) calls.set(event.id, node);
    else calls.get(event.id).match = node;
    last.next = node;
    last = node;
  }
  const linearized = new Uint8Array(Math.ceil(operations.length / 8));
  const cache = new Map();
  const stack = [];
  let state = undefined;
  let entry = head.next;
  let best = 0;
  let stuckAt;
  let steps = 0;
  while (head.next !== undefined) {
    if (++steps > budget) return { ok: true, undecided: true };
    // Unreachable: every call's return comes after it in the list, and a return backtracks.
    if (entry === undefined) throw new Error("checkKey: ran past the last event");
    if (entry.match !== undefined) {
      const op = entry.op;
      const { ok, next } = step(state, op.input, op.output);
      if (ok) {
        linearized[entry.id >> 3] |= 1 << (entry.id & 7);
        const key = Buffer.from(linearized).toString("latin1");
        let states = cache.get(key);
        if (states === undefined) cache.set(key, (states = new Set()));
        if (!states.has(next)) {
          states.add(next);
          stack.push({ node: entry, state });
          state = next;
          lift(entry);
          if (stack.length > best) {
            best = stack.length;
            stuckAt = head.next?.op?.call ?? head.next?.match?.op?.call;
          }
          entry = head.next;
          continue;
        }
        linearized[entry.id >> 3] &= ~(1 << (entry.id & 7));
      }
      entry = entry.next;
    } else {
      // A return whose call is not linearized: undo the last choice.
      const top = stack.pop();
      if (top === undefined) {
        return { ok: false, linearizedUpTo: best, ...(stuckAt === undefined ? {} : { stuckAt }) };
      }
      state = top.state;
      linearized[top.node.id >> 3] &= ~(1 << (top.node.id & 7));
      unlift(top.node);
      entry = top.node.next;
    }
  }
  return { ok: true };
}

/** Describes an operation for a report. */
export function describe(op) {
  const input =
    op.input.op === "put"
      ? `put(${op.input.value})`
      : op.input.op === "cas"
        ? `cas(${op.input.expectFound ? op.input.expected : "absent"} -> ${op.input.value})`
        : `${op.input.op}()`;
  const output =
    op.output === undefined
      ? "unknown"
      : op.output.op === "get"
        ? String(op.output.value ?? "absent")
        : op.output.op === "delete"
          ? `found=${op.output.found}`
          : op.output.op === "cas"
            ? `succeeded=${op.output.succeeded} current=${op.output.current ?? "absent"}`
            : "ok";
  const ret = op.ret === Infinity ? "∞" : String(op.ret);
  const where = `${op.node === undefined ? "" : ` on node ${op.node}`}${op.index === undefined ? "" : ` at index ${op.index}`}`;
  return `[${op.call}, ${ret}] client ${op.client}${where} ${input} -> ${output}`;
}

/**
 * Where a history that is not linearizable first goes wrong: the smallest k such that the
 * first k calls (by call time), with every answer that came after the next call treated as
 * unknown, are already not linearizable. Returns the k-th call's time: the violation lies
 * among the calls up to it.
 */
export function firstViolation(operations) {
  const sorted = [...operations].sort((a, b) => a.call - b.call);
  const prefixFails = (k) => {
    // Answers that came before the next call count; later ones are unknown.
    const t = k < sorted.length ? sorted[k].call : Infinity;
    const prefix = sorted
      .slice(0, k)
      .map((op) => (op.ret > t ? { ...op, output: undefined, ret: Infinity } : op));
    return !checkKey(prefix).ok;
  };
  if (sorted.length === 0 || !prefixFails(sorted.length)) return undefined;
  let lo = 1;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (prefixFails(mid)) hi = mid;
    else lo = mid + 1;
  }
  return sorted[lo - 1].call;
}
