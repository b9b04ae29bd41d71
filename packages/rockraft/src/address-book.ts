// Where each member listens: the addresses a configuration carries in its context, the
// addresses peers advertise in their messages, and this node's own.
import type { ConfState, NodeId } from "@rockraft/raft-core";
import type { Member } from "./wait.js";

/** A configuration's context naming each member's address (see `addressesOf`). */
export function addressContext(addresses: ReadonlyMap<NodeId, string>): string {
  const sorted = [...addresses].sort(([a], [b]) => a - b);
  return JSON.stringify({
    addresses: Object.fromEntries(sorted.map(([id, addr]) => [String(id), addr])),
  });
}

/** Parsed addresses from a configuration's context (see `addressContext`). */
export function addressesOf(conf: ConfState): Map<NodeId, string> {
  const result = new Map<NodeId, string>();
  if (conf.context === undefined) return result;
  try {
    const parsed = JSON.parse(conf.context) as { addresses?: Record<string, string> };
    for (const [id, addr] of Object.entries(parsed.addresses ?? {})) result.set(Number(id), addr);
  } catch {
    // A context that is not ours: no addresses.
  }
  return result;
}

/** The members' addresses once `target` is the membership: its own, and known ones. */
export function addressesAfter(
  known: ReadonlyMap<NodeId, string>,
  target: { readonly voters: readonly Member[]; readonly learners: readonly Member[] },
): Map<NodeId, string> {
  const members = [...target.voters, ...target.learners];
  const addresses = new Map<NodeId, string>();
  for (const member of members)
    addresses.set(member.nodeId, member.addr || known.get(member.nodeId) || "");
  return addresses;
}

/**
 * The address book. `refresh` recomputes it when the configuration changed or a peer
 * advertised a new address, and hands the result to `onChange` (the peer network).
 */
export class AddressBook {
  private readonly learned = new Map<NodeId, string>();
  /** The configuration `addresses` were last computed from. */
  private computedFrom: ConfState | undefined;
  private addresses: ReadonlyMap<NodeId, string> = new Map();

  constructor(
    private readonly self: { readonly id: NodeId; readonly addr: string },
    private readonly onChange: (addresses: ReadonlyMap<NodeId, string>) => void,
  ) {}

  /** The address of `id`, if known. */
  get(id: NodeId): string | undefined {
    return this.addresses.get(id);
  }

  /** Every known address. */
  all(): ReadonlyMap<NodeId, string> {
    return this.addresses;
  }

  /** A peer's message said where it listens; true if that was news. */
  learn(id: NodeId, addr: string): boolean {
    if (addr === "" || this.learned.get(id) === addr) return false;
    this.learned.set(id, addr);
    return true;
  }

  /** Recomputes from `conf` when it changed (or `force`, after `learn`). */
  refresh(conf: ConfState, force = false): void {
    if (!force && conf === this.computedFrom) return; // the usual Ready: nothing changed
    this.computedFrom = conf;
    const next = new Map(this.learned);
    for (const [id, addr] of addressesOf(conf)) next.set(id, addr);
    next.set(this.self.id, this.self.addr);
    const same =
      next.size === this.addresses.size &&
      [...next].every(([id, addr]) => this.addresses.get(id) === addr);
    if (same) return;
    this.addresses = next;
    this.onChange(next);
  }
}
