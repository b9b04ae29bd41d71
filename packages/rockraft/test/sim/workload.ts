// Clients: each calls the public RaftApi of a random node, one call at a time, with a
// deadline, and classifies the answer as a real client must: success, definite failure (it
// did not happen: left out of the history), or unknown outcome (it may have happened).
import type { NodeId } from "@rockraft/raft-core";
import { RockraftError } from "../../src/errors.js";
import type { KvInput, KvOutput, Operation } from "@rockraft/test-utils";
import type { SimNode } from "./process.js";
import type { World } from "./world.js";

const decoder = new TextDecoder();

function stripIndex(answer: Answer): KvOutput {
  const { index: _index, readIndex: _readIndex, ...output } = answer;
  return output;
}
const text = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : decoder.decode(bytes);

/** A call that did not settle by its deadline plus the margin, on an undisturbed node. */
export interface LateCall {
  readonly node: NodeId;
  readonly what: string;
  readonly calledAt: number;
}

/** What a call answered, with where its write landed or the read index it read at. */
type Answer = KvOutput & { readonly index?: number; readonly readIndex?: number };

export class Workload {
  readonly history: Operation[] = [];
  /** Calls that definitely failed (left out of the history), with why. */
  readonly failed: {
    readonly key: string;
    readonly what: string;
    readonly call: number;
    readonly ret: number;
    readonly why: string;
  }[] = [];
  readonly late: LateCall[] = [];
  /** Reads whose read index was below a write acknowledged before they began. */
  readonly staleReadIndexes: string[] = [];
  /** A node most calls go to, until a time (a fault's target). */
  private focus: { node: SimNode; until: number } | undefined;
  /** The highest log index of a write acknowledged so far. */
  private ackedWriteIndex = 0;
  /** Answers seen, by kind (for the report). */
  readonly answers = { ok: 0, failed: 0, unknown: 0 };
  private logical = 0;
  /** Calls not answered yet: at the end of a run each becomes an unknown outcome. */
  private readonly inFlight = new Set<() => void>();
  private running = true;
  readonly keys: string[];

  constructor(
    private readonly world: World,
    private readonly nodes: readonly SimNode[],
    private readonly options: {
      readonly clients: number;
      readonly keys: number;
      /** Extra time past a call's deadline it may take to settle. */
      readonly marginMs: number;
    },
  ) {
    this.keys = Array.from({ length: options.keys }, (_, i) => `k${i}`);
    for (const node of nodes) {
      // A dead process's connections break: its callers learn at once that they do not know.
      node.onCrash = () => {
        for (const abandon of [...(this.calls.get(node) ?? [])]) abandon();
      };
    }
  }

  /** Unanswered calls, by the node they went to. */
  private readonly calls = new Map<SimNode, Set<() => void>>();

  start(): void {
    for (let client = 0; client < this.options.clients; client++) {
      this.world.schedule(this.world.between(0, 50), () => this.next(client, 0));
    }
  }

  stop(): void {
    this.running = false;
  }

  /** Sends most calls to `node` for the next `ms` (a fault wants traffic there). */
  focusOn(node: SimNode, ms: number): void {
    this.focus = { node, until: this.world.now + ms };
  }

  /**
   * A linearizable read: through the RaftApi, or (half the time) through the runtime's own
   * two steps, as RaftApi.read takes them, so that the read index is seen and checked.
   */
  private read(
    api: NonNullable<SimNode["api"]>,
    node: SimNode,
    key: string,
    timeoutMs: number,
  ): Promise<Answer> {
    const runtime = node.runtime;
    if (runtime === undefined || this.world.chance(0.5)) {
      return api.read(key, { timeoutMs }).then((v) => ({ op: "get" as const, value: text(v) }));
    }
    return runtime.readIndex(timeoutMs).then(async (readIndex) => {
      const value = await runtime.readState(new TextEncoder().encode(key));
      return { op: "get" as const, value: text(value), readIndex };
    });
  }

  /**
   * A linearizable read of `key` on `node` after the faults, recorded in the history (as
   * client -1); resolves once answered (a failed one is left out).
   */
  finalRead(node: SimNode, key: string): Promise<void> {
    const call = this.tick();
    const api = node.api;
    if (api === undefined) return Promise.resolve();
    return api.read(key, { timeoutMs: 5_000 }).then(
      (value) => {
        const output = { op: "get" as const, value: text(value) };
        this.history.push({
          client: -1,
          node: node.id,
          key,
          input: { op: "get" },
          output,
          call,
          ret: this.tick(),
        });
      },
      () => undefined,
    );
  }

  /** The run is over: calls still unanswered have unknown outcomes (reads are dropped). */
  abandonInFlight(): void {
    for (const abandon of [...this.inFlight]) abandon();
  }

  /** Logical time: every call and answer gets a distinct, increasing number. */
  private tick(): number {
    return ++this.logical;
  }

  private next(client: number, n: number): void {
    if (!this.running) return;
    const world = this.world;
    const focus = this.focus !== undefined && this.focus.until > world.now ? this.focus : undefined;
    const node = focus !== undefined && world.chance(0.7) ? focus.node : world.pick(this.nodes);
    const key = world.pick(this.keys);
    const value = `c${client}.${n}`;
    const roll = world.prng.nextFloat();
    const input: KvInput =
      roll < 0.35
        ? { op: "put", value }
        : roll < 0.7
          ? { op: "get" }
          : roll < 0.8
            ? { op: "delete" }
            : world.chance(0.3)
              ? { op: "cas", expectFound: false, expected: undefined, value }
              : {
                  op: "cas",
                  expectFound: true,
                  expected: `c${world.prng.nextInt(this.options.clients)}.${Math.max(0, n - 1 - world.prng.nextInt(3))}`,
                  value,
                };
    const timeoutMs = world.between(300, 2_000);
    const api = node.api;
    const call = this.tick();
    const disturbances = node.disturbances;
    const calledAt = world.now;
    const pausedAtCall = node.owner.pausedUntil > calledAt;
    const floor = this.ackedWriteIndex;
    let settled = false;
    const abandon = () => finish(undefined, input.op === "get");
    this.inFlight.add(abandon);
    const atNode = this.calls.get(node) ?? new Set();
    this.calls.set(node, atNode);
    atNode.add(abandon);
    const finish = (output: Answer | undefined, definiteFailure: boolean, why = "") => {
      if (settled) return;
      settled = true;
      this.inFlight.delete(abandon);
      atNode.delete(abandon);
      if (definiteFailure && input.op !== "get") {
        this.failed.push({
          key,
          what: `client ${client} ${input.op}${"value" in input ? `(${input.value})` : "()"}`,
          call,
          ret: this.tick(),
          why,
        });
      }
      if (output?.index !== undefined) {
        this.ackedWriteIndex = Math.max(this.ackedWriteIndex, output.index);
      }
      if (output?.readIndex !== undefined && output.readIndex < floor) {
        this.staleReadIndexes.push(
          `a read of ${key} on node ${node.id} got read index ${output.readIndex}, below the write at index ${floor} acknowledged before it began`,
        );
      }
      if (definiteFailure) this.answers.failed++;
      else if (output === undefined) this.answers.unknown++;
      else this.answers.ok++;
      const isRead = input.op === "get";
      if (!definiteFailure && !(isRead && output === undefined)) {
        this.history.push({
          client,
          key,
          input,
          output: output === undefined ? undefined : stripIndex(output),
          node: node.id,
          ...(output?.index === undefined ? {} : { index: output.index }),
          call,
          ret: output === undefined ? Infinity : this.tick(),
        });
      }
      if (this.running) world.schedule(world.between(0, 20), () => this.next(client, n + 1));
    };
    // The client's own deadline: a call that never answers (its node crashed) is unknown.
    // The node measures the call's deadline with its own clock, which may run slow.
    world.schedule(timeoutMs / node.rate + this.options.marginMs, () => {
      if (settled) return;
      if (node.disturbances === disturbances && node.running() && !pausedAtCall) {
        this.late.push({
          node: node.id,
          what: `${input.op} ${key} with a ${timeoutMs.toFixed(0)} ms deadline`,
          calledAt,
        });
      }
      finish(undefined, input.op === "get");
    });
    if (api === undefined) {
      // Connection refused: the call was never made.
      world.schedule(world.between(0.1, 1), () => finish(undefined, true, "connection refused"));
      return;
    }
    // The call reaches the node's process after a network hop (a paused process takes it
    // when it resumes; one that crashed meanwhile never does).
    world.schedule(
      world.between(0.05, 0.5),
      () => this.invoke(api, node, input, key, timeoutMs, finish),
      node.owner,
    );
  }

  private invoke(
    api: NonNullable<SimNode["api"]>,
    node: SimNode,
    input: KvInput,
    key: string,
    timeoutMs: number,
    finish: (output: Answer | undefined, definiteFailure: boolean, why?: string) => void,
  ): void {
    const keyBytes = key;
    // Most writes go through the node's session (retried until their outcome is known);
    // some go without one, as a client without sessions sends them.
    const session = this.world.chance(0.25) ? false : undefined;
    const promise: Promise<Answer> =
      input.op === "put"
        ? api
            .clientWrite({ key: keyBytes, value: input.value }, { timeoutMs, session })
            .then((r) => ({ op: "put" as const, index: r.logId.index }))
        : input.op === "get"
          ? this.read(api, node, keyBytes, timeoutMs)
          : input.op === "delete"
            ? api
                .delete(keyBytes, { timeoutMs, session })
                .then((r) => ({ op: "delete" as const, found: r.found, index: r.logId.index }))
            : api
                .compareAndSwap(
                  {
                    key: keyBytes,
                    expectFound: input.expectFound,
                    ...(input.expected === undefined ? {} : { expected: input.expected }),
                    value: input.value,
                  },
                  { timeoutMs, session },
                )
                .then((r) => ({
                  op: "cas" as const,
                  succeeded: r.succeeded,
                  found: r.found,
                  current: text(r.current),
                  index: r.logId.index,
                }));
    promise.then(
      (output) => finish(output, false),
      (error: unknown) => {
        const unknown = error instanceof RockraftError ? error.outcomeUnknown === true : true;
        const why =
          error instanceof RockraftError ? `${error.code}: ${error.message}` : String(error);
        finish(undefined, input.op === "get" || !unknown, why);
      },
    );
  }
}
