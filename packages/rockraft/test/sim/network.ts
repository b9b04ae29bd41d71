// The simulated network between nodes: per-link loss, duplication and delay (reordering
// follows from the delays), partitions of every shape (a link cut one way or both), and
// snapshot streams that can break mid-way. Messages to a node that is down, or across a
// cut link, are reported unreachable and dropped unsent (as the gRPC transport reports the
// messages for a stream it cannot open).
import type { Message, MsgSnap, NodeId } from "@rockraft/raft-core";
import { decodeCommand } from "@rockraft/storage-level";
import type { PeerNetwork, PeerNetworkEvents } from "../../src/seams.js";
import type { Owner, World } from "./world.js";
import type { SimNode } from "./process.js";

/** A link's behaviour. */
export interface LinkFaults {
  /** Chance a message is lost in flight. */
  readonly loss: number;
  /** Chance a message arrives twice (never a forwarded proposal: see `send`). */
  readonly duplicate: number;
  /** Delay range, ms. */
  readonly delay: readonly [number, number];
  /**
   * Extra loss of heartbeat responses only: reads wait for the leader's heartbeat round
   * while appends (and so writes) go on, the window in which a read can go stale.
   */
  readonly heartbeatResponseLoss?: number;
  /** Extra loss of heartbeats only (a follower then learns the commit index late). */
  readonly heartbeatLoss?: number;
}

export const CALM: LinkFaults = { loss: 0, duplicate: 0, delay: [0.2, 2] };

/** Takes one fault back, leaving the others in place. */
export type Undo = () => void;

export class SimNetwork {
  /** Cuts in force, per link ("from>to"), counted: overlapping faults each take theirs back. */
  private readonly cut = new Map<string, number>();
  /** Link faults in force, per link, the newest last. */
  private readonly faults = new Map<string, LinkFaults[]>();
  /** Chances that a snapshot stream breaks at each chunk; the largest in force applies. */
  private readonly snapshotBreaks: number[] = [];
  /** Messages delivered (for tests). */
  delivered = 0;

  constructor(
    private readonly world: World,
    private readonly node: (id: NodeId) => SimNode | undefined,
  ) {}

  /** The peer network of `from`'s current process: it dies with that process. */
  attach(from: SimNode, events: PeerNetworkEvents): PeerNetwork {
    const owner = from.owner;
    let closed = false;
    const open = () => !closed && owner.alive;
    const inFlight = new Set<NodeId>();
    return {
      send: (messages) => {
        if (!open()) return;
        for (const message of messages) {
          if (message.type === "MsgSnap") {
            if (inFlight.has(message.to)) continue; // one stream per peer at a time
            inFlight.add(message.to);
            void this.streamSnapshot(from, owner, message, events).then((ok) => {
              inFlight.delete(message.to);
              if (open()) events.onSnapshotStatus(message.to, ok);
            });
            continue;
          }
          this.send(from, message, events);
        }
      },
      setPeers: () => undefined, // routing is by node id
      close: () => {
        closed = true;
      },
    };
  }

  /** Cuts the link from `a` to `b` (one way). */
  cutLink(a: NodeId, b: NodeId): Undo {
    const key = `${a}>${b}`;
    this.cut.set(key, (this.cut.get(key) ?? 0) + 1);
    let undone = false;
    return () => {
      if (undone) return;
      undone = true;
      const count = (this.cut.get(key) ?? 1) - 1;
      if (count <= 0) this.cut.delete(key);
      else this.cut.set(key, count);
    };
  }

  /** Cuts both ways between every node of `left` and every node of `right`. */
  split(left: readonly NodeId[], right: readonly NodeId[]): Undo {
    const undos: Undo[] = [];
    for (const a of left) {
      for (const b of right) undos.push(this.cutLink(a, b), this.cutLink(b, a));
    }
    return () => undos.forEach((undo) => undo());
  }

  setFaults(a: NodeId, b: NodeId, faults: LinkFaults): Undo {
    const key = `${a}>${b}`;
    const list = this.faults.get(key) ?? [];
    list.push(faults);
    this.faults.set(key, list);
    return () => {
      const at = list.indexOf(faults);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0) this.faults.delete(key);
    };
  }

  /** Snapshot streams break with chance `p` at each chunk until undone. */
  breakSnapshots(p: number): Undo {
    this.snapshotBreaks.push(p);
    let undone = false;
    return () => {
      if (undone) return;
      undone = true;
      const at = this.snapshotBreaks.indexOf(p);
      if (at >= 0) this.snapshotBreaks.splice(at, 1);
    };
  }

  private get snapshotBreak(): number {
    return this.snapshotBreaks.length === 0 ? 0 : Math.max(...this.snapshotBreaks);
  }

  /** Every link whole and calm again. */
  heal(): void {
    this.cut.clear();
    this.faults.clear();
    this.snapshotBreaks.length = 0;
  }

  isCut(a: NodeId, b: NodeId): boolean {
    return this.cut.has(`${a}>${b}`);
  }

  private linkFaults(a: NodeId, b: NodeId): LinkFaults {
    return this.faults.get(`${a}>${b}`)?.at(-1) ?? CALM;
  }

  private reachable(from: NodeId, to: NodeId): SimNode | undefined {
    const target = this.node(to);
    if (target === undefined || !target.running() || this.isCut(from, to)) return undefined;
    return target;
  }

  private send(from: SimNode, message: Message, events: PeerNetworkEvents): void {
    const to = message.to;
    if (this.reachable(from.id, to) === undefined) {
      // No connection: nothing is sent, and the sender is told (as the gRPC network does).
      events.onDropped(to, [message]);
      events.onUnreachable(to);
      return;
    }
    const faults = this.linkFaults(from.id, to);
    if (this.world.chance(faults.loss)) return;
    if (
      message.type === "MsgHeartbeatResp" &&
      faults.heartbeatResponseLoss !== undefined &&
      this.world.chance(faults.heartbeatResponseLoss)
    ) {
      return;
    }
    if (
      message.type === "MsgHeartbeat" &&
      faults.heartbeatLoss !== undefined &&
      this.world.chance(faults.heartbeatLoss)
    ) {
      return;
    }
    // Any Raft message may arrive twice, except a forwarded proposal of writes without a
    // session: the gRPC transport delivers each at most once (one stream, never resent), and
    // a duplicate would be a second, distinct proposal of the same write. A session's writes
    // may arrive twice: their sessions must apply each once.
    const duplicable = message.type !== "MsgProp" || message.entries.every(inSession);
    const copies = duplicable && this.world.chance(faults.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.world.between(faults.delay[0], faults.delay[1]);
      const target = this.node(to)!;
      this.world.schedule(
        delay,
        () => {
          if (this.isCut(from.id, to) || !target.running()) return; // lost with the connection
          this.delivered++;
          target.runtime!.receive([message], from.id, from.addr);
        },
        target.owner,
      );
    }
  }

  /** Streams `from`'s current snapshot to the MsgSnap's target; true once it is delivered. */
  private async streamSnapshot(
    from: SimNode,
    owner: Owner,
    message: MsgSnap,
    events: PeerNetworkEvents,
  ): Promise<boolean> {
    const to = message.to;
    const target = this.reachable(from.id, to);
    if (target === undefined) return false;
    const targetOwner = target.owner;
    const hop = () => {
      const faults = this.linkFaults(from.id, to);
      return new Promise<boolean>((resolve) => {
        this.world.schedule(this.world.between(faults.delay[0], faults.delay[1]), () =>
          resolve(
            !this.isCut(from.id, to) &&
              targetOwner.alive &&
              owner.alive &&
              !this.world.chance(this.snapshotBreak),
          ),
        );
      });
    };
    let source;
    try {
      source = await events.snapshotSource();
    } catch {
      return false;
    }
    let sink;
    try {
      if (!(await hop())) return false;
      sink = await target.runtime!.beginSnapshot(source.metadata);
      let checksum = 0;
      for await (const chunk of source.chunks()) {
        if (!(await hop())) {
          await sink.abort();
          return false;
        }
        await sink.write(chunk);
        if (chunk.last) checksum = chunk.checksum ?? 0;
      }
      await sink.finish(checksum);
      if (!(await hop())) return false;
      if (!target.running() || target.owner !== targetOwner) return false;
      target.runtime!.receive(
        [
          {
            type: "MsgSnap",
            from: from.id,
            to,
            term: message.term,
            snapshot: { metadata: source.metadata, data: new Uint8Array(0) },
          },
        ],
        from.id,
        from.addr,
      );
      return true;
    } catch {
      await sink?.abort().catch(() => undefined);
      return false;
    } finally {
      await source.close();
    }
  }
}

/** Whether an entry is a write tagged with a client session. */
function inSession(entry: { data: Uint8Array }): boolean {
  try {
    const command = decodeCommand(entry.data);
    return "session" in command && command.session !== undefined;
  } catch {
    return false;
  }
}
