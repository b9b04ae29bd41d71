// Client sessions in the replicated state, for exactly-once writes (the Raft dissertation,
// §6.3; LogCabin does the same). A session is opened through the log: its id is the index
// of the entry that opened it, the same on every node. Every write of a session carries its
// sequence number; the state machine keeps the response of each write the client has not
// acknowledged yet, so that a retried write answers what the first one did instead of
// applying twice. Sessions expire after an idle time in the log's own time: the sum of the
// intervals the leaders measured on their monotonic clocks and wrote into `clock` entries,
// so every node expires the same sessions at the same index, whatever its own clock says.
import { allocate, DecodeError } from "./codec.js";

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
  /** The user that opened it (auth.ts; "" without one): only that user may write in it. */
  readonly owner: string;
  lastActive: number;
  /** Every kept response's sequence number is at least this. */
  acknowledged: number;
  readonly responses: Map<number, SessionResponse>;
  /**
   * Whether `responses` iterates in ascending sequence numbers (the usual case: a client's
   * writes apply in order), so that acknowledged ones are found at its start. False is
   * always safe (whole passes instead).
   */
  ascending: boolean;
  /** The sequence number kept last (when `ascending`: the highest). */
  lastSeq: number;
}

/**
 * What an apply's rollback needs (begin..commit): the undo of each open and close, in the
 * order made; each session a write touched, with its fields before and the answers the
 * apply recorded and dropped (data, not a closure per write: this is every write's path);
 * and the log's time before.
 */
interface Journal {
  readonly undo: (() => void)[];
  readonly touched: Map<Session, Touched>;
  readonly time: number;
  readonly timeChanged: boolean;
}

/** A session's fields before an apply's writes touched it, and their answers (Journal). */
interface Touched {
  readonly lastActive: number;
  readonly acknowledged: number;
  readonly ascending: boolean;
  readonly lastSeq: number;
  /** The sequence numbers of the answers the apply recorded. */
  readonly recorded: number[];
  /** The answers the apply dropped (acknowledged), in the order they were kept. */
  readonly dropped: Map<number, SessionResponse>;
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
 * sessions were opened with) and written through: `changes()` lists what to persist after
 * each apply: one record per session the apply touched, however many of its writes it
 * applied (few LevelDB writes), each answer in it a few bytes (varints).
 */
export class SessionTable {
  private readonly sessions = new Map<number, Session>();
  /** The log's time: the sum of the leaders' measured intervals. */
  private time = 0;
  /** Sessions whose record changed since the last `changes()`. */
  private readonly dirty = new Set<number>();
  private timeChanged = false;
  /**
   * While an apply runs (begin..commit): what `rollback` needs to undo it (see Journal).
   * (Records marked changed stay marked: a marked record is written as the table holds it,
   * so a mark too many writes what is stored already.)
   */
  private journal: Journal | undefined;

  /** Sessions open. */
  get size(): number {
    return this.sessions.size;
  }

  /** Starts an apply: until `commit`, `rollback` undoes every change. */
  begin(): void {
    this.journal = { undo: [], touched: new Map(), time: this.time, timeChanged: this.timeChanged };
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
    for (const [session, before] of journal.touched) {
      session.lastActive = before.lastActive;
      session.acknowledged = before.acknowledged;
      if (before.dropped.size === 0) {
        for (const seq of before.recorded) session.responses.delete(seq);
        session.ascending = before.ascending;
        session.lastSeq = before.lastSeq;
        continue;
      }
      // The dropped answers go back, in order (they would come after the others), without
      // the recorded ones (an answer may have been recorded and dropped in this apply; none
      // recorded was kept before: its write would have been a duplicate, or stale).
      const recorded = new Set(before.recorded);
      const kept = [...before.dropped, ...session.responses]
        .filter(([seq]) => !recorded.has(seq))
        .sort(([a], [b]) => a - b);
      session.responses.clear();
      for (const [seq, response] of kept) session.responses.set(seq, response);
      session.ascending = true;
      session.lastSeq = kept.at(-1)?.[0] ?? 0;
    }
    for (let i = journal.undo.length - 1; i >= 0; i--) journal.undo[i]!();
    this.time = journal.time;
    this.timeChanged = journal.timeChanged;
  }

  /** Keeps `undo` to roll this change back, while an apply runs (opens and closes). */
  private undoWith(undo: () => void): void {
    this.journal?.undo.push(undo);
  }

  /** What a write changes in `session` while an apply runs: what it was before (once). */
  private touch(session: Session): Touched | undefined {
    const journal = this.journal;
    if (journal === undefined) return undefined;
    let before = journal.touched.get(session);
    if (before === undefined) {
      const { lastActive, acknowledged, ascending, lastSeq } = session;
      before = {
        lastActive,
        acknowledged,
        ascending,
        lastSeq,
        recorded: [],
        dropped: new Map(),
      };
      journal.touched.set(session, before);
    }
    return before;
  }

  /**
   * Opens session `id` (the index of its entry) for `owner` (the user that opened it, ""
   * for none); a refusal when at the limit.
   */
  open(id: number, limits: SessionLimits, owner = ""): SessionCheck {
    if (this.sessions.has(id)) {
      return refuse("SESSION_LIMIT", `session ${id} is already open (an entry applied twice?)`);
    }
    if (this.sessions.size >= limits.maxSessions) {
      return refuse(
        "SESSION_LIMIT",
        `${this.sessions.size} sessions are open, the most allowed (max_sessions); close or let some expire`,
      );
    }
    this.dirty.add(id);
    this.sessions.set(id, {
      idleTimeoutMs: limits.idleTimeoutMs,
      maxUnacknowledged: limits.maxUnacknowledged,
      owner,
      lastActive: this.time,
      acknowledged: 1,
      responses: new Map(),
      ascending: true,
      lastSeq: 0,
    });
    this.undoWith(() => this.sessions.delete(id));
    return { action: "apply" };
  }

  /**
   * Closes session `id`; whether it was open. With `caller` (a user's close), only its
   * owner's closes it; another user's close finds nothing.
   */
  close(id: number, caller?: string): boolean {
    const session = this.sessions.get(id);
    if (session === undefined) return false;
    if (caller !== undefined && caller !== session.owner) return false;
    this.dirty.add(id);
    this.sessions.delete(id);
    this.undoWith(() => this.sessions.set(id, session));
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
   * `kind`, when given, is the write's: a sequence number whose kept answer is another
   * kind's was reused for another write (a client's bug), refused rather than answered.
   * `caller`, when given (a user's write), must be the session's owner: another user's
   * session is not open for it (refused as expired, so nothing of it is revealed).
   */
  check(tag: SessionTag, kind?: SessionResponse["kind"], caller?: string): SessionCheck {
    const session = this.sessions.get(tag.id);
    if (session === undefined) {
      return refuse(
        "SESSION_EXPIRED",
        `session ${tag.id} has expired or was closed; open a new session (the write was not applied)`,
      );
    }
    if (caller !== undefined && caller !== session.owner) {
      return refuse(
        "SESSION_EXPIRED",
        `session ${tag.id} is not open for user ${JSON.stringify(caller)} (another user opened it, or it was opened before authentication was enabled); open a new session (this attempt was not applied)`,
      );
    }
    const acknowledged = Math.max(session.acknowledged, tag.acknowledged);
    const kept = tag.seq >= acknowledged ? session.responses.get(tag.seq) : undefined;
    if (kept !== undefined && kind !== undefined && kept.kind !== kind) {
      return refuse(
        "SESSION_STALE",
        `write ${tag.seq} of session ${tag.id} was a ${kept.kind}, not a ${kind}: a sequence number used for two writes`,
      );
    }
    if (kept === undefined) {
      if (tag.seq < acknowledged) {
        return refuse(
          "SESSION_STALE",
          `write ${tag.seq} of session ${tag.id} is below what the client acknowledged (${acknowledged}): a late duplicate`,
        );
      }
      const outstanding = session.responses.size - countBelow(session, acknowledged);
      if (outstanding >= session.maxUnacknowledged) {
        return refuse(
          "SESSION_LIMIT",
          `session ${tag.id} holds ${outstanding} unacknowledged writes, the most allowed (max_unacknowledged)`,
        );
      }
    }
    this.dirty.add(tag.id);
    const touched = this.touch(session);
    session.lastActive = this.time;
    if (acknowledged > session.acknowledged) dropBelow(session, acknowledged, touched);
    session.acknowledged = acknowledged;
    return kept === undefined ? APPLY : { action: "duplicate", response: kept };
  }

  /** Keeps the response of the write tagged `tag`, applied after check() said so. */
  record(tag: SessionTag, response: SessionResponse): void {
    const session = this.sessions.get(tag.id);
    if (session === undefined) return;
    this.dirty.add(tag.id);
    this.touch(session)?.recorded.push(tag.seq);
    if (session.responses.size === 0) session.ascending = true;
    else if (tag.seq < session.lastSeq) session.ascending = false;
    session.lastSeq = tag.seq;
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

/** How many of `session`'s responses are below `acknowledged`. */
function countBelow(session: Session, acknowledged: number): number {
  if (acknowledged <= session.acknowledged) return 0; // none is kept below that
  let count = 0;
  for (const seq of session.responses.keys()) {
    if (seq < acknowledged) count++;
    else if (session.ascending) break; // the rest are higher
  }
  return count;
}

/**
 * Drops `session`'s responses below `acknowledged`, keeping them in `touched` (the apply's
 * journal of this session, for a rollback).
 * (Over the keys, not the entries: no pair is made per answer on every write's path.)
 */
function dropBelow(session: Session, acknowledged: number, touched: Touched | undefined): void {
  let previous = 0;
  let ascending = true;
  const responses = session.responses;
  for (const seq of responses.keys()) {
    if (seq < acknowledged) {
      touched?.dropped.set(seq, responses.get(seq)!);
      responses.delete(seq);
      continue;
    }
    if (session.ascending) break; // the rest are higher, and stay in order
    if (seq < previous) ascending = false;
    previous = seq;
  }
  if (!session.ascending && ascending) {
    // A whole pass found the rest in order: cheap passes again.
    session.ascending = true;
    session.lastSeq = previous;
  }
}

/** The most one clock entry moves the log's time. */
const MAX_CLOCK_STEP_MS = 24 * 3600 * 1000;

const APPLY: SessionCheck = Object.freeze({ action: "apply" });

function refuse(refusal: SessionRefusal, reason: string): SessionCheck {
  return { action: "refuse", refusal, reason };
}

// ---- Encoding: version u8 (1), then varints (LEB128): idle timeout, max unacknowledged,
// last active, acknowledged, count; then per answer: seq - acknowledged (varint), kind and
// flags u8 (kind in bits 0-1; found 4, succeeded 8, has current 16), index, term (varints),
// and for a current value its length (varint) and bytes. A put's answer takes about eight
// bytes. (Sealed by the caller's checksum.)

/** A session's record: version 1, or 2 with its owner's name after the answers. */
const RECORD_VERSION = 1;
const RECORD_VERSION_OWNED = 2;
const KINDS = ["put", "delete", "cas"] as const;

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

function writeVarint(bytes: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) {
    bytes[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  bytes[at++] = value;
  return at;
}

/** Reads varints from a record, refusing truncation and values beyond 2^53. */
class VarintReader {
  at = 0;
  constructor(private readonly bytes: Uint8Array) {}

  varint(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      const byte = this.bytes[this.at++];
      if (byte === undefined) throw new DecodeError("session record truncated");
      value += (byte & 0x7f) * scale;
      if (!Number.isSafeInteger(value))
        throw new DecodeError("a session record number beyond 2^53");
      if ((byte & 0x80) === 0) return value;
      scale *= 0x80;
    }
  }

  byte(): number {
    const byte = this.bytes[this.at++];
    if (byte === undefined) throw new DecodeError("session record truncated");
    return byte;
  }

  take(length: number): Uint8Array {
    if (this.at + length > this.bytes.byteLength) throw new DecodeError("session record truncated");
    const taken = this.bytes.slice(this.at, this.at + length);
    this.at += length;
    return taken;
  }
}

function encodeSession(session: Session): Uint8Array {
  const base = session.acknowledged;
  let size =
    1 +
    varintSize(session.idleTimeoutMs) +
    varintSize(session.maxUnacknowledged) +
    varintSize(session.lastActive) +
    varintSize(base) +
    varintSize(session.responses.size);
  // forEach, not for..of over entries: no pair is made per answer (every apply encodes
  // each session it touched, with all its kept answers).
  session.responses.forEach((r, seq) => {
    size += varintSize(seq - base) + 1 + varintSize(r.index) + varintSize(r.term);
    if (r.current !== undefined) size += varintSize(r.current.byteLength) + r.current.byteLength;
  });
  const owner = session.owner === "" ? undefined : new TextEncoder().encode(session.owner);
  if (owner !== undefined) size += varintSize(owner.byteLength) + owner.byteLength;
  const bytes = allocate(size); // every byte written below
  bytes[0] = owner === undefined ? RECORD_VERSION : RECORD_VERSION_OWNED;
  let at = writeVarint(bytes, 1, session.idleTimeoutMs);
  at = writeVarint(bytes, at, session.maxUnacknowledged);
  at = writeVarint(bytes, at, session.lastActive);
  at = writeVarint(bytes, at, base);
  at = writeVarint(bytes, at, session.responses.size);
  session.responses.forEach((r, seq) => {
    // Every kept answer is at or above the acknowledged number (dropBelow keeps it so).
    if (seq < base) throw new Error(`encodeSession: answer ${seq} is below ${base}`);
    at = writeVarint(bytes, at, seq - base);
    bytes[at++] =
      KINDS.indexOf(r.kind) |
      (r.found === true ? 4 : 0) |
      (r.succeeded === true ? 8 : 0) |
      (r.current !== undefined ? 16 : 0);
    at = writeVarint(bytes, at, r.index);
    at = writeVarint(bytes, at, r.term);
    if (r.current !== undefined) {
      at = writeVarint(bytes, at, r.current.byteLength);
      bytes.set(r.current, at);
      at += r.current.byteLength;
    }
  });
  if (owner !== undefined) {
    at = writeVarint(bytes, at, owner.byteLength);
    bytes.set(owner, at);
    at += owner.byteLength;
  }
  if (at !== size) throw new Error(`encodeSession: wrote ${at} of ${size} bytes`);
  return bytes;
}

export function decodeSession(bytes: Uint8Array): Session {
  const version = bytes[0];
  if (version !== RECORD_VERSION && version !== RECORD_VERSION_OWNED)
    throw new DecodeError(`session record version ${version}`);
  const reader = new VarintReader(bytes);
  reader.at = 1;
  const idleTimeoutMs = reader.varint();
  const maxUnacknowledged = reader.varint();
  const lastActive = reader.varint();
  const acknowledged = reader.varint();
  const responses = new Map<number, SessionResponse>();
  let ascending = true;
  let lastSeq = 0;
  for (let count = reader.varint(); count > 0; count--) {
    const seq = acknowledged + reader.varint();
    if (!Number.isSafeInteger(seq)) throw new DecodeError("a session record number beyond 2^53");
    const flags = reader.byte();
    const kind = KINDS[flags & 3];
    if (kind === undefined) throw new DecodeError(`session answer kind ${flags & 3}`);
    const index = reader.varint();
    const term = reader.varint();
    const current = (flags & 16) !== 0 ? reader.take(reader.varint()) : undefined;
    responses.set(seq, {
      kind,
      index,
      term,
      ...(kind === "put" ? {} : { found: (flags & 4) !== 0 }),
      ...(kind === "cas" ? { succeeded: (flags & 8) !== 0, current } : {}),
    });
    if (seq < lastSeq) ascending = false;
    lastSeq = seq;
  }
  let owner = "";
  if (version === RECORD_VERSION_OWNED) {
    try {
      owner = new TextDecoder("utf-8", { fatal: true }).decode(reader.take(reader.varint()));
    } catch (cause) {
      if (cause instanceof DecodeError) throw cause;
      throw new DecodeError("a session owner that is not UTF-8");
    }
  }
  if (reader.at !== bytes.byteLength) throw new DecodeError("session record has trailing bytes");
  return {
    idleTimeoutMs,
    maxUnacknowledged,
    owner,
    lastActive,
    acknowledged,
    responses,
    ascending,
    lastSeq,
  };
}
