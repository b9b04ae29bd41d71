// The client's side of a session (the Raft dissertation, §6.3): each write gets the next
// sequence number, and each write tells the cluster the lowest one still waiting for its
// answer, so that the responses below it can be dropped. A retry sends the same sequence
// number: the state machine answers it with the first attempt's response.

/** Which client session a write belongs to, as the wire carries it. */
export interface SessionTag {
  /** The session's id (the log index of the entry that opened it). */
  readonly id: number;
  /** The write's sequence number in the session, from 1. */
  readonly seq: number;
  /** Every write below this sequence number has been answered: its response may go. */
  readonly acknowledged: number;
}

/** One open session's numbering: which writes are in flight, what is acknowledged. */
export class SessionSequence {
  private next = 1;
  /** The lowest sequence number still in flight (or `next` when none is). */
  private lowest = 1;
  private readonly inFlight = new Set<number>();

  constructor(
    /** The session's id: what opening it answered. */
    readonly id: number,
  ) {}

  /** Numbers a new write: its sequence number, in flight until {@link end}. */
  begin(): number {
    const seq = this.next++;
    this.inFlight.add(seq);
    return seq;
  }

  /** The tag to send write `seq` with (again, for a retry: the acknowledgement moves on). */
  tag(seq: number): SessionTag {
    return { id: this.id, seq, acknowledged: this.lowest };
  }

  /** Write `seq` was answered, or given up on: its response is no longer needed. */
  end(seq: number): void {
    if (!this.inFlight.delete(seq)) return;
    while (this.lowest < this.next && !this.inFlight.has(this.lowest)) this.lowest++;
  }
}

/** Time and timers (rockraft's `Clock` fits; by default the process's). */
export interface Timers {
  /** Milliseconds since the epoch: deadlines are expressed in it. */
  now(): number;
  /** Calls `callback` once after `ms`. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancels a timer made by `setTimeout`. */
  clear(timer: unknown): void;
}

const SYSTEM_TIMERS: Timers = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clear: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

/** What a failed write's error says of its session. */
export interface SessionVerdict {
  /** The session expired (or was closed): the write was not applied this time. */
  readonly expired: boolean;
  /** An attempt of the write may have applied. */
  readonly outcomeUnknown: boolean;
}

/** How a {@link ClientSessions} reaches its cluster and reads its answers. */
export interface ClientSessionsOptions {
  /** Opens a session by `deadline`: its id, or undefined when the cluster has none. */
  readonly open: (deadline: number) => Promise<number | undefined>;
  /** What a failed write's `error` says of its session. */
  readonly expired: (error: unknown) => SessionVerdict;
  /** The error of a write whose deadline passed before its session opened (never sent). */
  readonly tooLate: () => Error;
  /** Whether an open that failed with `error` may succeed if tried again (no answer yet). */
  readonly openAgain?: (error: unknown) => boolean;
  /** Time and timers; the process's by default. */
  readonly timers?: Timers;
}

/**
 * A client's session (a `RockraftClient`'s, or a node's in-process API's), opened on its
 * first write: each write is numbered in it, and one the session refused as expired is
 * made again in a new session when no earlier attempt of it may have applied. When the
 * cluster has no sessions (a server older than them, or one with sessions disabled), the
 * client writes without one, as before, and asks again a minute later.
 */
export class ClientSessions {
  private current: Promise<SessionSequence | undefined> | undefined;
  /** `current`'s session once it opened (no promise to wait for on each write). */
  private opened: SessionSequence | undefined;
  /** Until when (ms since the epoch) the cluster is taken to have no sessions. */
  private unsupportedUntil = 0;
  private readonly timers: Timers;

  constructor(private readonly options: ClientSessionsOptions) {
    this.timers = options.timers ?? SYSTEM_TIMERS;
  }

  /** Runs `write` with a tag in the session (undefined: no sessions), until it settles. */
  async write<T>(deadline: number, write: (tag: SessionTag | undefined) => Promise<T>): Promise<T> {
    const { timers, options } = this;
    for (;;) {
      if (timers.now() < this.unsupportedUntil) return write(undefined);
      const opening = this.session(deadline);
      let session: SessionSequence | undefined;
      try {
        // Opening is shared by the writes that wait for it: each waits until its own deadline.
        session = this.opened ?? (await this.byDeadline(opening, deadline));
      } catch (error) {
        // An open made for a write with an earlier deadline may fail (unanswered) while this
        // one has time; a refusal is the answer for this write too.
        const again = options.openAgain?.(error) ?? false;
        if (!again || timers.now() + RETRY_OPEN_MS >= deadline) throw error;
        await new Promise<void>((resolve) => timers.setTimeout(resolve, RETRY_OPEN_MS));
        continue;
      }
      if (session === undefined) return write(undefined);
      const seq = session.begin();
      try {
        return await write(session.tag(seq));
      } catch (error) {
        const { expired, outcomeUnknown } = options.expired(error);
        if (!expired) throw error;
        if (this.current === opening) {
          this.current = undefined; // the next write opens anew
          this.opened = undefined;
        }
        if (outcomeUnknown) throw error;
      } finally {
        session.end(seq);
      }
    }
  }

  /** The open session's id, if one is open (for closing it). */
  async openId(): Promise<number | undefined> {
    const session = await this.current?.catch(() => undefined);
    return session?.id;
  }

  private session(deadline: number): Promise<SessionSequence | undefined> {
    if (this.current !== undefined) return this.current;
    const opening = this.options.open(deadline).then((id) => {
      if (id === undefined) {
        // Asked again a minute later: a cluster being upgraded may offer sessions by then.
        this.unsupportedUntil = this.timers.now() + UNSUPPORTED_MS;
        if (this.current === opening) this.current = undefined;
        return undefined;
      }
      const session = new SessionSequence(id);
      if (this.current === opening) this.opened = session;
      return session;
    });
    this.current = opening;
    opening.catch(() => {
      if (this.current === opening) this.current = undefined; // the next write tries again
    });
    return opening;
  }

  /** `promise`, or `tooLate()` once `deadline` passes. */
  private byDeadline<T>(promise: Promise<T>, deadline: number): Promise<T> {
    const timers = this.timers;
    let timer: unknown;
    const late = new Promise<never>((_, reject) => {
      const ms = Math.max(0, deadline - timers.now());
      timer = timers.setTimeout(() => reject(this.options.tooLate()), ms);
    });
    return Promise.race([promise, late]).finally(() => timers.clear(timer));
  }
}

/** The pause before a write tries again to open a session after an open failed. */
const RETRY_OPEN_MS = 50;
/** How long a cluster that answered it has no sessions is written to without one. */
const UNSUPPORTED_MS = 60_000;
