import {
  MemoryStorage,
  RawNode,
  createPrng,
  makeConfState,
  type Entry,
  type Message,
  type MessageType,
  type RaftOptions,
  type ReadState,
  type Ready,
} from "../../src/index.js";
import { raftOf } from "../../src/raw-node.js";
import type { Raft } from "../../src/raft.js";

export type TestOptions = Partial<Omit<RaftOptions, "id" | "storage">>;

/** Storage of a node whose cluster already has these voters (and learners). */
export function storageWithPeers(voters: number[], learners: number[] = []): MemoryStorage {
  const storage = new MemoryStorage();
  storage.applySnapshot({
    metadata: { index: 0, term: 0, confState: makeConfState(voters, learners) },
    data: new Uint8Array(),
  });
  return storage;
}

export function newNode(id: number, storage: MemoryStorage, options: TestOptions = {}): RawNode {
  return new RawNode({
    id,
    storage,
    prng: createPrng(id),
    electionTick: 10,
    heartbeatTick: 1,
    preVote: false,
    checkQuorum: false,
    ...options,
  });
}

/** Carries out one Ready's duties at once: persist, apply, compact, advance. Returns it. */
export function persist(node: RawNode, storage: MemoryStorage, applied?: Entry[]): Ready {
  const ready = node.ready();
  if (ready.snapshot !== undefined) storage.applySnapshot(ready.snapshot);
  storage.append(ready.entries);
  if (ready.hardState !== undefined) storage.setHardState(ready.hardState);
  applied?.push(...ready.committedEntries);
  if (ready.compactIndex !== undefined) storage.compact(ready.compactIndex);
  node.advance();
  return ready;
}

/** Every message of a Ready, both lists, sorted by recipient then type. */
export function sortedMessages(ready: Ready): Message[] {
  return sortMessages([...ready.messages, ...ready.messagesAfterPersist]);
}

export function sortMessages(messages: Message[]): Message[] {
  return messages.sort((a, b) => a.to - b.to || a.type.localeCompare(b.type));
}

export const bytes = (text: string) => new TextEncoder().encode(text);
export const text = (data: Uint8Array) => new TextDecoder().decode(data);

export interface TestMember {
  readonly id: number;
  readonly storage: MemoryStorage;
  node: RawNode;
  readonly applied: Entry[];
  readonly readStates: ReadState[];
}

/**
 * A cluster of RawNodes on a perfect network with instant disks, driven to quiescence
 * by `stabilize()`. Links can be cut and message types dropped.
 */
export class TestNetwork {
  readonly members = new Map<number, TestMember>();
  private readonly cutLinks = new Set<string>();
  private readonly droppedTypes = new Set<MessageType>();
  private readonly isolated = new Set<number>();
  /** Every message delivered, in order (for tests that inspect the traffic). */
  readonly delivered: Message[] = [];

  constructor(ids: number[], options: TestOptions = {}, storages?: Map<number, MemoryStorage>) {
    for (const id of ids) {
      const storage = storages?.get(id) ?? storageWithPeers(ids);
      this.members.set(id, {
        id,
        storage,
        node: newNode(id, storage, options),
        applied: [],
        readStates: [],
      });
    }
  }

  member(id: number): TestMember {
    const member = this.members.get(id);
    if (member === undefined) throw new Error(`no node ${id}`);
    return member;
  }

  raft(id: number): Raft {
    return raftOf(this.member(id).node);
  }

  cut(a: number, b: number): void {
    this.cutLinks.add(`${a}>${b}`);
    this.cutLinks.add(`${b}>${a}`);
  }

  /** Drops messages from `from` to `to` only. */
  cutOneWay(from: number, to: number): void {
    this.cutLinks.add(`${from}>${to}`);
  }

  isolate(id: number): void {
    this.isolated.add(id);
  }

  drop(type: MessageType): void {
    this.droppedTypes.add(type);
  }

  recover(): void {
    this.cutLinks.clear();
    this.isolated.clear();
    this.droppedTypes.clear();
  }

  tick(id: number, times = 1): void {
    for (let i = 0; i < times; i++) this.member(id).node.tick();
  }

  /** Delivers messages, then keeps persisting and delivering until nothing moves. */
  stabilize(messages: Message[] = []): void {
    let pending = messages;
    for (let round = 0; round < 10_000; round++) {
      for (const message of pending) {
        if (this.blocked(message)) continue;
        const target = this.members.get(message.to);
        if (target === undefined) continue;
        this.delivered.push(message);
        target.node.step(message);
      }
      pending = [];
      for (const member of [...this.members.values()].sort((a, b) => a.id - b.id)) {
        if (!member.node.hasReady()) continue;
        const ready = persist(member.node, member.storage, member.applied);
        member.readStates.push(...ready.readStates);
        pending.push(...ready.messages, ...ready.messagesAfterPersist);
      }
      if (pending.length === 0 && ![...this.members.values()].some((m) => m.node.hasReady()))
        return;
    }
    throw new Error("the network did not stabilize within 10000 rounds");
  }

  /** Makes `id` leader: it campaigns and the network settles. */
  elect(id: number): void {
    this.member(id).node.campaign();
    this.stabilize();
  }

  propose(id: number, data: string): void {
    this.member(id).node.propose(bytes(data));
    this.stabilize();
  }

  private blocked(message: Message): boolean {
    return (
      this.droppedTypes.has(message.type) ||
      this.isolated.has(message.from) ||
      this.isolated.has(message.to) ||
      this.cutLinks.has(`${message.from}>${message.to}`)
    );
  }
}
