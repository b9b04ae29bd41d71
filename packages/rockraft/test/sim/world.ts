// The simulated world: one seeded random source, simulated time, and an event queue. Every
// timer, message delivery, disk write and client call of every node is an event; events
// run one at a time in time order (ties in the order they were scheduled), and after each
// one every promise reaction it caused runs before the next. So a seed replays exactly.
import { setImmediate as turn } from "node:timers/promises";
import { createPrng, type SeededPrng } from "@rockraft/raft-core";
import type { Clock, TimerHandle } from "../../src/seams.js";

interface Event {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
  /** The process it belongs to: its events die with it. */
  readonly owner: Owner | undefined;
  cancelled: boolean;
}

/** A process's liveness, as its events see it. */
export interface Owner {
  /** False once the process crashed or stopped: its events are dropped. */
  alive: boolean;
  /** While paused, its events wait until this time. */
  pausedUntil: number;
}

/** A binary heap of events by (at, seq). */
class EventQueue {
  private readonly heap: Event[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(event: Event): void {
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  pop(): Event | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** Wall-clock time the simulation starts at (a fixed date: histories replay byte for byte). */
const EPOCH = Date.UTC(2026, 0, 1);

export class World {
  readonly prng: SeededPrng;
  /** Simulated milliseconds since the start. */
  now = 0;
  private seq = 0;
  private readonly queue = new EventQueue();
  /** Events run so far. */
  steps = 0;
  /** Called after each event and the promise reactions it caused (invariant checks). */
  afterEach: (() => void) | undefined;

  constructor(readonly seed: number) {
    this.prng = createPrng(seed);
  }

  /** A float in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + (hi - lo) * this.prng.nextFloat();
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.prng.nextFloat() < p;
  }

  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.prng.nextInt(items.length)]!;
  }

  /** Runs `run` after `delay` ms of world time, unless `owner` dies first. */
  schedule(delay: number, run: () => void, owner?: Owner): { cancelled: boolean } {
    const event: Event = {
      at: this.now + Math.max(0, delay),
      seq: this.seq++,
      run,
      owner,
      cancelled: false,
    };
    this.queue.push(event);
    return event;
  }

  /** Runs events until `until` (world ms) or until `stop()` says so. */
  async run(until: number, stop: () => boolean = () => false): Promise<void> {
    while (this.queue.size > 0 && !stop()) {
      const event = this.queue.pop()!;
      if (event.at > until) {
        this.queue.push(event);
        break;
      }
      if (event.cancelled) continue;
      const owner = event.owner;
      if (owner !== undefined) {
        if (!owner.alive) continue;
        if (owner.pausedUntil > event.at) {
          // A paused process runs nothing: the event waits for it (SIGCONT).
          this.queue.push({ ...event, at: owner.pausedUntil, seq: this.seq++ });
          continue;
        }
      }
      this.now = Math.max(this.now, event.at);
      this.steps++;
      event.run();
      await turn(); // every promise reaction the event caused runs now, before the next event
      this.afterEach?.();
    }
    if (this.now < until && !stop()) this.now = until;
  }

  /** A clock for one process: its own rate (clock skew) and offset; its timers die with it. */
  clock(owner: Owner, rate: number): Clock {
    const startedAt = this.now;
    const offset = this.between(0, 1_000);
    const local = () => offset + (this.now - startedAt) * rate;
    const schedule = (delay: number, run: () => void) => this.schedule(delay, run, owner);
    return {
      now: () => EPOCH + local(),
      monotonic: local,
      setTimeout(callback, ms): TimerHandle {
        return schedule(ms / rate, callback);
      },
      setInterval(callback, ms): TimerHandle {
        const handle = {
          cancelled: false,
          current: undefined as { cancelled: boolean } | undefined,
        };
        const arm = () => {
          handle.current = schedule(ms / rate, () => {
            if (handle.cancelled) return;
            arm();
            callback();
          });
        };
        arm();
        return handle;
      },
      clear(timer) {
        if (timer === undefined || timer === null) return;
        const handle = timer as { cancelled: boolean; current?: { cancelled: boolean } };
        handle.cancelled = true;
        if (handle.current !== undefined) handle.current.cancelled = true;
      },
    };
  }
}
