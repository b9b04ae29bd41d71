// Client sessions in the replicated state, for exactly-once writes (the Raft dissertation,
// §6.3; LogCabin does the same). A session is opened through the log: its id is the index
// of the entry that opened it, the same on every node. Every write of a session carries its
// sequence number; the state machine keeps the response of each write the client has not
// acknowledged yet, so that a retried write answers what the first one did instead of
// applying twice. Sessions expire after an idle time in the log's own time: the sum of the
// intervals the leaders measured on their monotonic clocks and wrote into `clock` entries,
// so every node expires the same sessions at the same index, whatever its own clock says.
import { DecodeError, readU64, writeU64 } from "./codec.js";

/** Which client session a write belongs to. */
export interface SessionTag {
  /** The session's id: the log index of the entry that opened it. */
  readonly id: number;
  /** The write's sequence number within the session, from 1, unique per write. */
  readonly seq: number;
  /**
   * Every write with a lower sequence number has been answered to the client: their
   * responses may go. A write below it is never applied again.
   */
  readonly acknowledged: number;
}

/** The limits a session is opened with (from the proposing node's config; kept in the log). */
export interface SessionLimits {
  /** Idle time, in the log's time, after which the session expires. */
  readonly idleTimeoutMs: number;
  /** Most responses kept for writes the client has not acknowledged. */
  readonly maxUnacknowledged: number;
  /** Most sessions open at once: a session beyond it is refused. */
  readonly maxSessions: number;
}

/** A write's response as kept for its retries: what its result said, and where it applied. */
export interface SessionResponse {
  /** The write's kind. */
  readonly kind: "put" | "delete" | "cas";
  /** The log index where the write applied. */
  readonly index: number;
  /** The term of that entry. */
  readonly term: number;
  /** A delete's or compare-and-swap's: whether the key existed. */
  readonly found?: boolean;
  /** A compare-and-swap's: whether it swapped. */
  readonly succeeded?: boolean;
  /** A compare-and-swap's: the value before it ran. */
  readonly current?: Uint8Array | undefined;
}

/** Why a session's write or open was refused (nothing was applied). */
export type SessionRefusal =
  /** The session expired, was closed, or never existed. */
  | "SESSION_EXPIRED"
  /** Too many sessions, or too many unacknowledged writes in this one. */
  | "SESSION_LIMIT"
  /** A write below what the client acknowledged: a late duplicate nobody waits for. */
  | "SESSION_STALE";

interface Session {
  readonly idleTimeoutMs: number;
  readonly maxUnacknowledged: number;
  lastActive: number;
  acknowledged: number;
  readonly responses: Map<number, SessionResponse>;
}

/** What a session's write must do: apply, answer as before, or be refused. */
export type SessionCheck =
  | {
      /** Apply it (and record its response). */
      readonly action: "apply";
    }
  | {
      /** A retry of a write that applied: answer `response`, change nothing. */
      readonly action: "duplicate";
      /** What the write answered when it applied. */
      readonly response: SessionResponse;
    }
  | {
      /** Refuse it: nothing changes. */
      readonly action: "refuse";
      /** Why, as a stable code. */
      readonly refusal: SessionRefusal;
      /** Why, in words. */
      readonly reason: string;
    };

/** What a session table changed, to persist (see `SessionTable.changes`). */
export interface SessionChanges {
  /** Each changed session's id, with its record to write (undefined: delete it). */
  readonly sessions: [number, Uint8Array | undefined][];
  /** The log time to write, when it moved. */
  readonly time: number | undefined;
}

/**
 * The session table of one state machine, kept whole in memory (bounded by the limits its
 * sessions were opened with) and written through: `changes()` lists what to persist after each apply.
 */
export class SessionTable {
  private readonly sessions = new Map<number, Session>();
  /** The log's time: the sum of the leaders' measured intervals. */
  private time = 0;
  private readonly dirty = new Set<number>();
  private timeChanged = false;
  /** While an apply runs (begin..commit): what it changed, as it was before, to roll back. */
  private journal:
    | {
        sessions: Map<number, Session | undefined>;
        time: number;
        timeChanged: boolean;
        dirty: Set<number>;
      }
    | undefined;

  /** Sessions open. */
  get size(): number {
    return this.sessions.size;
  }

  /** The log's time, in milliseconds. */
  get logTime(): number {
    return this.time;
  }

  /** Starts an apply: until `commit`, `rollback` undoes every change. */
  begin(): void {
    this.journal = {
      sessions: new Map(),
      time: this.time,
      timeChanged: this.timeChanged,
      dirty: new Set(this.dirty),
    };
  }

  /** The apply's changes stay. */
  commit(): void {
    this.journal = undefined;
  }

  /** Undoes every change since `begin` (an apply that threw changes nothing). */
  rollback(): void {
    const journal = this.journal;
    if (journal === undefined) return;
    this.journal = undefined;
    for (const [id, before] of journal.sessions) {
      if (before === undefined) this.sessions.delete(id);
      else this.sessions.set(id, before);
    }
    this.time = journal.time;
    this.timeChanged = journal.timeChanged;
    this.dirty.clear();
    for (const id of journal.dirty) this.dirty.add(id);
  }

  /** Session `id` is about to change: keeps a copy of it for a rollback, and marks it. */
  private touch(id: number): void {
    this.dirty.add(id);
    const journal = this.journal;
    if (journal === undefined || journal.sessions.has(id)) return;
    const session = this.sessions.get(id);
    journal.sessions.set(
      id,
      session === undefined ? undefined : { ...session, responses: new Map(session.responses) },
    );
  }

  /** Opens session `id` (the index of its entry); a refusal when at the limit. */
  open(id: number, limits: SessionLimits): SessionCheck {
    if (this.sessions.has(id)) {
      return refuse("SESSION_LIMIT", `session ${id} is already open (an entry applied twice?)`);
    }
    if (this.sessions.size >= limits.maxSessions) {
      return refuse(
        "SESSION_LIMIT",
        `${this.sessions.size} sessions are open, the most allowed (max_sessions); close or let some expire`,
      );
    }
    this.touch(id);
    this.sessions.set(id, {
      idleTimeoutMs: limits.idleTimeoutMs,
      maxUnacknowledged: limits.maxUnacknowledged,
      lastActive: this.time,
      acknowledged: 1,
      responses: new Map(),
    });
    return { action: "apply" };
  }

  /** Closes session `id`; whether it was open. */
  close(id: number): boolean {
    if (!this.sessions.has(id)) return false;
    this.touch(id);
    this.sessions.delete(id);
    return true;
  }

  /**
   * The log's time moves on by `elapsedMs` (at most a day per entry, and never past 2^53,
   * so that a wild interval cannot make the time unreadable); returns the ids of the
   * sessions it expired.
   */
  advance(elapsedMs: number): number[] {
    const step = Math.min(Math.max(0, elapsedMs), MAX_CLOCK_STEP_MS);
    if (step === 0 || this.time + step > Number.MAX_SAFE_INTEGER) return [];
    this.time += step;
    this.timeChanged = true;
    const expired: number[] = [];
    for (const [id, session] of this.sessions) {
      if (this.time - session.lastActive > session.idleTimeoutMs) expired.push(id);
    }
    for (const id of expired) this.close(id);
    return expired;
  }

  /**
   * What a write tagged `tag` must do. A refusal changes nothing; a write to apply or a
   * retry to answer takes the client's acknowledgement in and marks the session active.
   */
  check(tag: SessionTag): SessionCheck {
    const session = this.sessions.get(tag.id);
    if (session === undefined) {
      return refuse(
        "SESSION_EXPIRED",
        `session ${tag.id} has expired or was closed; open a new session (the write was not applied)`,
      );
    }
    const acknowledged = Math.max(session.acknowledged, tag.acknowledged);
    const kept = tag.seq >= acknowledged ? session.responses.get(tag.seq) : undefined;
    if (kept === undefined) {
      if (tag.seq < acknowledged) {
        return refuse(
          "SESSION_STALE",
          `write ${tag.seq} of session ${tag.id} is below what the client acknowledged (${acknowledged}): a late duplicate`,
        );
      }
      let outstanding = 0;
      for (const seq of session.responses.keys()) if (seq >= acknowledged) outstanding++;
      if (outstanding >= session.maxUnacknowledged) {
        return refuse(
          "SESSION_LIMIT",
          `session ${tag.id} holds ${outstanding} unacknowledged writes, the most allowed (max_unacknowledged)`,
        );
      }
    }
    this.touch(tag.id);
    session.lastActive = this.time;
    if (acknowledged > session.acknowledged) {
      session.acknowledged = acknowledged;
      for (const seq of session.responses.keys()) {
        if (seq < acknowledged) session.responses.delete(seq);
      }
    }
    return kept === undefined ? { action: "apply" } : { action: "duplicate", response: kept };
  }

  /** Keeps the response of the write tagged `tag`, applied after check() said so. */
  record(tag: SessionTag, response: SessionResponse): void {
    const session = this.sessions.get(tag.id);
    if (session === undefined) return;
    this.touch(tag.id);
    session.responses.set(tag.seq, response);
  }

  /** What changed since the last call, to persist with the apply's writes. */
  changes(): SessionChanges {
    const sessions: [number, Uint8Array | undefined][] = [];
    for (const id of this.dirty) {
      const session = this.sessions.get(id);
      sessions.push([id, session === undefined ? undefined : encodeSession(session)]);
    }
    this.dirty.clear();
    const time = this.timeChanged ? this.time : undefined;
    this.timeChanged = false;
    return { sessions, time };
  }

  /** Loads a persisted session (at open, or from a snapshot). */
  load(id: number, bytes: Uint8Array): void {
    this.sessions.set(id, decodeSession(bytes));
  }

  /** Loads the persisted log time. */
  loadTime(time: number): void {
    this.time = time;
  }
}

/** The most one clock entry moves the log's time. */
const MAX_CLOCK_STEP_MS = 24 * 3600 * 1000;

function refuse(refusal: SessionRefusal, reason: string): SessionCheck {
  return { action: "refuse", refusal, reason };
}

// ---- Encoding: idle u64, max unacknowledged u32, last active u64, acknowledged u64,
// count u32, then per response: seq u64, kind u8, flags u8 (found, succeeded, has current),
// index u64, term u64, current length u32 and bytes. (Sealed by the caller's checksum.)

const KINDS = ["put", "delete", "cas"] as const;

function encodeSession(session: Session): Uint8Array {
  let size = 8 + 4 + 8 + 8 + 4;
  for (const r of session.responses.values()) size += 8 + 2 + 16 + 4 + (r.current?.byteLength ?? 0);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  writeU64(view, 0, session.idleTimeoutMs);
  view.setUint32(8, session.maxUnacknowledged);
  writeU64(view, 12, session.lastActive);
  writeU64(view, 20, session.acknowledged);
  view.setUint32(28, session.responses.size);
  let at = 32;
  for (const [seq, r] of session.responses) {
    writeU64(view, at, seq);
    bytes[at + 8] = KINDS.indexOf(r.kind);
    bytes[at + 9] =
      (r.found === true ? 1 : 0) | (r.succeeded === true ? 2 : 0) | (r.current ? 4 : 0);
    writeU64(view, at + 10, r.index);
    writeU64(view, at + 18, r.term);
    const current = r.current ?? new Uint8Array(0);
    view.setUint32(at + 26, current.byteLength);
    bytes.set(current, at + 30);
    at += 30 + current.byteLength;
  }
  return bytes;
}

export function decodeSession(bytes: Uint8Array): Session {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (at: number, n: number) => {
    if (at + n > bytes.byteLength) throw new DecodeError("session record truncated");
  };
  need(0, 32);
  const responses = new Map<number, SessionResponse>();
  const count = view.getUint32(28);
  let at = 32;
  for (let i = 0; i < count; i++) {
    need(at, 30);
    const kind = KINDS[bytes[at + 8]!];
    if (kind === undefined) throw new DecodeError(`session response kind ${bytes[at + 8]}`);
    const flags = bytes[at + 9]!;
    const length = view.getUint32(at + 26);
    need(at + 30, length);
    const response: SessionResponse = {
      kind,
      index: readU64(view, at + 10),
      term: readU64(view, at + 18),
      ...(kind === "put" ? {} : { found: (flags & 1) !== 0 }),
      ...(kind === "cas"
        ? {
            succeeded: (flags & 2) !== 0,
            current: (flags & 4) !== 0 ? bytes.slice(at + 30, at + 30 + length) : undefined,
          }
        : {}),
    };
    responses.set(readU64(view, at), response);
    at += 30 + length;
  }
  if (at !== bytes.byteLength) throw new DecodeError("session record has trailing bytes");
  return {
    idleTimeoutMs: readU64(view, 0),
    maxUnacknowledged: view.getUint32(8),
    lastActive: readU64(view, 12),
    acknowledged: readU64(view, 20),
    responses,
  };
}
