// A linearizability checker for a key-value store, per key (a KV history is linearizable iff
// each key's history is: P-compositionality). The search is Wing & Gong's, with Lowe's
// memoisation of (operations linearized, state) as Porcupine does it: operations are tried
// in call order, one is linearized when the model accepts its output in the current state,
// and a return whose call is not yet linearized backtracks.
//
// An operation whose outcome is unknown (a timeout, a crash) returns "at infinity" with any
// output: it may take effect at any point after its call, or never (placed last, it changes
// nothing anyone observed).

/** One client call on one key. Values are strings; undefined is "absent". */
export type KvInput =
  | { readonly op: "put"; readonly value: string }
  | { readonly op: "get" }
  | { readonly op: "delete" }
  | {
      readonly op: "cas";
      readonly expectFound: boolean;
      readonly expected: string | undefined;
      readonly value: string;
    };

export type KvOutput =
  | { readonly op: "put" }
  | { readonly op: "get"; readonly value: string | undefined }
  | { readonly op: "delete"; readonly found: boolean }
  | {
      readonly op: "cas";
      readonly succeeded: boolean;
      readonly found: boolean;
      readonly current: string | undefined;
    };

export interface Operation {
  readonly client: number;
  /** The node the call went to, and where the write landed in the log (for reports). */
  readonly node?: number;
  readonly index?: number;
  readonly key: string;
  readonly input: KvInput;
  /** Undefined: the outcome is unknown. */
  readonly output: KvOutput | undefined;
  /** Logical time of the call and of the answer (Infinity when unknown); all distinct. */
  readonly call: number;
  readonly ret: number;
}

type State = string | undefined;

/** The register model: is `output` possible for `input` in `state`, and the state after. */
export function step(
  state: State,
  input: KvInput,
  output: KvOutput | undefined,
): { ok: boolean; next: State } {
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

interface Node {
  op: Operation | undefined;
  id: number;
  /** For a call node: its return node. */
  match: Node | undefined;
  prev: Node | undefined;
  next: Node | undefined;
}

function lift(call: Node): void {
  call.prev!.next = call.next;
  call.next!.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next !== undefined) ret.next.prev = ret.prev;
}

function unlift(call: Node): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== undefined) ret.next.prev = ret;
  call.prev!.next = call;
  call.next!.prev = call;
}

export interface CheckResult {
  readonly ok: boolean;
  /** When not ok: the most operations linearized at once before the search gave up. */
  readonly linearizedUpTo?: number;
  /**
   * When not ok: the call time of the first operation the deepest attempt could not
   * linearize (where to look).
   */
  readonly stuckAt?: number;
  /** The search ran out of its step budget: neither proven nor refuted. */
  readonly undecided?: boolean;
}

/** Whether one key's history is linearizable from the absent state. */
export function checkKey(operations: readonly Operation[], budget = 2_000_000): CheckResult {
  const events: { time: number; call: boolean; id: number }[] = [];
  operations.forEach((op, id) => {
    events.push({ time: op.call, call: true, id });
    events.push({ time: op.ret, call: false, id });
  });
  events.sort((a, b) => a.time - b.time || (a.call === b.call ? a.id - b.id : a.call ? -1 : 1));
  const head: Node = { op: undefined, id: -1, match: undefined, prev: undefined, next: undefined };
  const calls = new Map<number, Node>();
  let last = head;
  for (const event of events) {
    const node: Node = {
      op: event.call ? operations[event.id] : undefined,
      id: event.id,
      match: undefined,
      prev: last,
      next: undefined,
    };
    if (event.call) calls.set(event.id, node);
    else calls.get(event.id)!.match = node;
    last.next = node;
    last = node;
  }
  const linearized = new Uint8Array(Math.ceil(operations.length / 8));
  const cache = new Map<string, Set<State>>();
  const stack: { node: Node; state: State }[] = [];
  let state: State = undefined;
  let entry = head.next;
  let best = 0;
  let stuckAt: number | undefined;
  let steps = 0;
  while (head.next !== undefined) {
    if (++steps > budget) return { ok: true, undecided: true };
    if (entry === undefined) break;
    if (entry.match !== undefined) {
      const op = entry.op!;
      const { ok, next } = step(state, op.input, op.output);
      if (ok) {
        linearized[entry.id >> 3]! |= 1 << (entry.id & 7);
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
        linearized[entry.id >> 3]! &= ~(1 << (entry.id & 7));
      }
      entry = entry.next;
    } else {
      // A return whose call is not linearized: undo the last choice.
      const top = stack.pop();
      if (top === undefined) {
        return { ok: false, linearizedUpTo: best, ...(stuckAt === undefined ? {} : { stuckAt }) };
      }
      state = top.state;
      linearized[top.node.id >> 3]! &= ~(1 << (top.node.id & 7));
      unlift(top.node);
      entry = top.node.next;
    }
  }
  return { ok: true };
}

/** Describes an operation for a report. */
export function describe(op: Operation): string {
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
export function firstViolation(operations: readonly Operation[]): number | undefined {
  const sorted = [...operations].sort((a, b) => a.call - b.call);
  const prefixFails = (k: number): boolean => {
    // Answers that came before the next call count; later ones are unknown.
    const t = k < sorted.length ? sorted[k]!.call : Infinity;
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
  return sorted[lo - 1]!.call;
}
