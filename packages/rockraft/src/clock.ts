import type { RawNode } from "@rockraft/raft-core";
import type { Clock } from "./seams.js";

/**
 * Raft's logical clock, driven by monotonic time: `catchUp()` gives raft-core the ticks
 * that are due since the last call. A leader's logical time must not fall behind real time:
 * after an event-loop stall or a stopped process, an interval timer fires once, not once
 * per missed period, and a leader whose clock lagged would think its lease still holds. So
 * the runtime calls `catchUp()` before it steps anything, and a leader gets every tick due
 * (at most `maxCatchUp` at once, enough for every timer to expire). Any other role gets one
 * tick and the rest are dropped (as etcd's ticker does): it hears from the leader before it
 * may time out, instead of campaigning at once.
 */
export class TickClock {
  private readonly epoch: number;
  private given = 0;

  constructor(
    private readonly clock: Clock,
    private readonly raw: RawNode,
    private readonly tickMs: number,
    private readonly maxCatchUp: number,
  ) {
    this.epoch = clock.monotonic();
  }

  /** Gives the ticks that are due; true if any were. */
  catchUp(): boolean {
    const due = Math.floor((this.clock.monotonic() - this.epoch) / this.tickMs) - this.given;
    if (due <= 0) return false;
    this.given += due;
    const leader = this.raw.softState().role === "leader";
    const ticks = Math.min(due, leader ? this.maxCatchUp : 1);
    for (let i = 0; i < ticks; i++) this.raw.tick();
    return true;
  }
}

/**
 * The log's time, kept moving by the leader while client sessions are open: every
 * `intervalMs` it proposes a `clock` entry with the whole milliseconds its monotonic clock
 * moved since its previous one, and every node expires idle sessions by their sum
 * (storage-level's sessions.ts), at the same index whatever its own clock says. Time with
 * no leader, or with no session open, is not counted, and a lost entry's interval is lost:
 * a session may outlive its idle timeout, but expires at most one interval early.
 */
export class LogClock {
  /** When (monotonic ms) this leader's previous interval ended. */
  private last: number | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
  ) {}

  /** Called periodically: the milliseconds to propose in a clock entry now, if any. */
  due(leader: boolean, sessionsOpen: boolean): number | undefined {
    const now = this.clock.monotonic();
    if (!leader) {
      this.last = undefined;
      return undefined;
    }
    if (this.last === undefined || !sessionsOpen) {
      this.last = now;
      return undefined;
    }
    const elapsed = Math.floor(now - this.last);
    if (elapsed < this.intervalMs) return undefined;
    this.last += elapsed;
    return elapsed;
  }
}
