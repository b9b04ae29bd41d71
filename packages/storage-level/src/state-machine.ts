// The KV state machine: what a committed entry does to the data (put, delete,
// compare-and-swap; membership and no-op entries only move the applied position), and how a
// stored value is read back and verified.
import { decodeConfState, type Entry, type SnapshotMetadata } from "@rockraft/raft-core";
import {
  decodeCommand,
  decodeU64,
  encodeMetadata,
  encodeU64,
  openValue,
  sealValue,
} from "./codec.js";
import { StorageError } from "./errors.js";
import { REMEDY, isLevelCorruption, levelCause, printableKey } from "./format.js";
import {
  authKey,
  dataKey,
  logTimeKey,
  sessionKey,
  sessionKeyId,
  sessionRange,
  stateMetaKey,
  userKey,
} from "./keys.js";
import {
  AuthTable,
  checkAccess,
  decodeAuthState,
  checkAdmin,
  type AuthState,
  type AuthTag,
  type AuthVerdict,
} from "./auth.js";
import { SessionTable, type SessionResponse } from "./sessions.js";
import type { ApplyResult, BatchOp, Db } from "./types.js";

export function keyString(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

/** What {@link applyCommands} returns. */
export interface AppliedCommands {
  /** One result per entry applied, in order. */
  readonly results: ApplyResult[];
  /** The applied position afterwards (the one given when no entry was new). */
  readonly applied: SnapshotMetadata;
}

/**
 * What committed entries do to a key-value state machine: the KV commands (put, delete,
 * compare-and-swap) read and write through `read` and `write`; session commands open and
 * close sessions in `sessions`, and clock entries move its time (expiring idle sessions);
 * auth commands change the users and roles in `auth`, and a command proposed for a caller
 * is checked again when they changed since it was checked (refused, changing nothing, if
 * the caller may no longer make it); membership entries change the membership and no-ops
 * only move the applied position. A
 * write tagged with a session applies once: a retry answers what the first one did
 * (`duplicateOf`), and a write the session cannot take is refused (`kind: "refused"`),
 * changing nothing. Entries at or below `applied` are skipped (so that applying again is
 * exactly once); the rest must follow it without a gap. Within the call, a read sees the
 * writes before it. Returns one result per entry applied and the new applied position
 * (`applied` itself when none was new). LevelStorage applies with it; so can a store of
 * your own, or a simulated one.
 */
export async function applyCommands(
  entries: readonly Entry[],
  applied: SnapshotMetadata,
  read: (key: Uint8Array) => Promise<Uint8Array | undefined> | Uint8Array | undefined,
  write: (key: Uint8Array, value: Uint8Array | undefined) => void,
  sessions: SessionTable,
  auth: AuthTable,
): Promise<AppliedCommands> {
  // An apply that throws (a gap, a failed read) leaves the tables as it found them.
  sessions.begin();
  auth.begin();
  try {
    const applying = await applyAll(entries, applied, read, write, sessions, auth);
    sessions.commit();
    auth.commit();
    return applying;
  } catch (error) {
    sessions.rollback();
    auth.rollback();
    throw error;
  }
}

/**
 * Whose session a tagged command may use: while authentication is on, only its caller's
 * (a session is its opener's); while it is off, anyone's (undefined), as without auth.
 */
function sessionCaller(auth: AuthTable, tag: AuthTag | undefined): string | undefined {
  return auth.state.enabled ? tag?.user : undefined;
}

/** What a write's caller must be allowed: a compare-and-swap also reveals the value. */
function writeAccess(state: AuthState, user: string, op: string, key: Uint8Array): AuthVerdict {
  const write = checkAccess(state, user, "write", key);
  return op === "cas" && write.allowed ? checkAccess(state, user, "read", key) : write;
}

async function applyAll(
  entries: readonly Entry[],
  applied: SnapshotMetadata,
  read: (key: Uint8Array) => Promise<Uint8Array | undefined> | Uint8Array | undefined,
  write: (key: Uint8Array, value: Uint8Array | undefined) => void,
  sessions: SessionTable,
  auth: AuthTable,
): Promise<AppliedCommands> {
  const overlay = new Map<string, Uint8Array | null>();
  const results: ApplyResult[] = [];
  let { index: lastIndex, term: lastTerm, confState } = applied;
  const current = async (key: Uint8Array): Promise<Uint8Array | undefined> => {
    const pending = overlay.get(keyString(key));
    // A copy: the value is a view of a log entry (decodeCommand), and callers get it.
    if (pending !== undefined) return pending?.slice() ?? undefined;
    return read(key);
  };
  for (const entry of entries) {
    if (entry.index <= lastIndex) continue;
    if (entry.index !== lastIndex + 1) {
      throw new RangeError(
        `apply: entry ${entry.index} does not follow the applied index ${lastIndex}`,
      );
    }
    const { index, term } = entry;
    lastIndex = index;
    lastTerm = term;
    if (entry.type === "config") {
      confState = decodeConfState(entry.data);
      results.push({ index, term, kind: "config" });
      continue;
    }
    if (entry.data.byteLength === 0) {
      results.push({ index, term, kind: "noop" });
      continue;
    }
    let command;
    try {
      command = decodeCommand(entry.data);
    } catch (error) {
      results.push({ index, term, kind: "invalid", reason: (error as Error).message });
      continue;
    }
    const tag = command.requestId === undefined ? {} : { requestId: command.requestId };
    switch (command.op) {
      case "session-open": {
        // A user's session is that user's; one whose token was void by now opens nothing.
        const caller = auth.recheck(command.auth, () => ({ allowed: true }));
        if (!caller.allowed) {
          const { refusal, reason } = caller;
          results.push({ index, term, kind: "refused", refusal, reason, ...tag });
          continue;
        }
        const check = sessions.open(index, command, command.auth?.user);
        results.push(
          check.action === "refuse"
            ? { index, term, kind: "refused", refusal: check.refusal, reason: check.reason, ...tag }
            : { index, term, kind: "session-open", sessionId: index, ...tag },
        );
        continue;
      }
      case "session-close":
        results.push({
          index,
          term,
          kind: "session-close",
          found: sessions.close(command.sessionId, sessionCaller(auth, command.auth)),
          ...tag,
        });
        continue;
      case "clock":
        results.push({
          index,
          term,
          kind: "clock",
          expired: sessions.advance(command.elapsedMs),
          ...tag,
        });
        continue;
      case "auth": {
        const caller = auth.recheck(command.auth, (state, user) =>
          checkAdmin(state, user, "change users or roles"),
        );
        const verdict = caller.allowed ? auth.apply(command.change, index) : caller;
        results.push(
          verdict.allowed
            ? { index, term, kind: "auth", revision: auth.state.revision, ...tag }
            : {
                index,
                term,
                kind: "refused",
                refusal: verdict.refusal,
                reason: verdict.reason,
                ...tag,
              },
        );
        continue;
      }
    }
    // The session first: a retry of a write that applied answers what it did (only to the
    // session's owner), whatever the caller may do now; a new write is checked again if the
    // users and roles changed since its node checked it.
    const session = command.session;
    if (session !== undefined) {
      const check = sessions.check(session, command.op, sessionCaller(auth, command.auth));
      if (check.action === "refuse") {
        const { refusal, reason } = check;
        results.push({ index, term, kind: "refused", refusal, reason, ...tag });
        continue;
      }
      if (check.action === "duplicate") {
        const { kind, index: original, term: originalTerm, ...kept } = check.response;
        const duplicateOf = { index: original, term: originalTerm };
        // A copy: the table keeps its own.
        const answer =
          kept.current === undefined ? kept : { ...kept, current: kept.current.slice() };
        results.push({ index, term, kind, ...answer, duplicateOf, ...tag } as ApplyResult);
        continue;
      }
    }
    const verdict = auth.recheck(command.auth, (state, user) =>
      writeAccess(state, user, command.op, command.key),
    );
    if (!verdict.allowed) {
      const { refusal, reason } = verdict;
      results.push({ index, term, kind: "refused", refusal, reason, ...tag });
      continue;
    }
    const key = keyString(command.key);
    let result: ApplyResult;
    switch (command.op) {
      case "put":
        overlay.set(key, command.value);
        write(command.key, command.value);
        result = { index, term, kind: "put", ...tag };
        break;
      case "delete": {
        const found = (await current(command.key)) !== undefined;
        overlay.set(key, null);
        write(command.key, undefined);
        result = { index, term, kind: "delete", found, ...tag };
        break;
      }
      case "cas": {
        const before = await current(command.key);
        const found = before !== undefined;
        const succeeded =
          found === command.expectFound && (!found || sameBytes(before, command.expected));
        if (succeeded) {
          overlay.set(key, command.value);
          write(command.key, command.value);
        }
        result = { index, term, kind: "cas", succeeded, found, current: before, ...tag };
        break;
      }
    }
    if (session !== undefined) sessions.record(session, responseOf(result));
    results.push(result);
  }
  if (results.length === 0) return { results, applied };
  return { results, applied: { index: lastIndex, term: lastTerm, confState } };
}

/** What a session keeps of a write's result for its retries. */
function responseOf(result: ApplyResult): SessionResponse {
  switch (result.kind) {
    case "put":
      return { kind: "put", index: result.index, term: result.term };
    case "delete":
      return { kind: "delete", index: result.index, term: result.term, found: result.found };
    case "cas": {
      const { index, term, succeeded, found, current } = result;
      // A copy: the caller gets `current` too.
      return { kind: "cas", index, term, succeeded, found, current: current?.slice() };
    }
    default:
      throw new Error(`responseOf: a ${result.kind} result is not a write's`);
  }
}

/**
 * Applies `entries` to the state machine of `generation` (see `applyCommands`): appends the
 * data and session writes and the new applied position to `ops` (nothing when no entry is
 * new) and returns the results and the position, which the caller records once `ops` are
 * written.
 */
export async function applyEntries(
  entries: readonly Entry[],
  ops: BatchOp[],
  state: {
    readonly generation: number;
    readonly applied: SnapshotMetadata;
    readonly read: (dataKey: Uint8Array) => Promise<Uint8Array | undefined>;
    /** The generation's session table, in memory; its changes join `ops`. */
    readonly sessions: SessionTable;
    /** The generation's auth table, in memory; its changes join `ops`. */
    readonly auth: AuthTable;
  },
): Promise<{ results: ApplyResult[]; applied: SnapshotMetadata }> {
  const generation = state.generation;
  const outcome = await applyCommands(
    entries,
    state.applied,
    (key) => state.read(dataKey(generation, key)),
    (key, value) =>
      ops.push(
        value === undefined
          ? { type: "del", key: dataKey(generation, key) }
          : { type: "put", key: dataKey(generation, key), value: sealValue(key, value) },
      ),
    state.sessions,
    state.auth,
  );
  const authRecord = state.auth.changes();
  if (authRecord !== undefined) {
    const key = authKey(generation);
    ops.push({ type: "put", key, value: sealValue(key, authRecord) });
  }
  const changed = state.sessions.changes();
  for (const [id, record] of changed.sessions) {
    const key = sessionKey(generation, id);
    ops.push(
      record === undefined
        ? { type: "del", key }
        : { type: "put", key, value: sealValue(key, record) },
    );
  }
  if (changed.time !== undefined)
    ops.push({ type: "put", key: logTimeKey(generation), value: encodeU64(changed.time) });
  if (outcome.results.length > 0) {
    ops.push({
      type: "put",
      key: stateMetaKey(generation),
      value: encodeMetadata(outcome.applied),
    });
  }
  return outcome;
}

/**
 * A data key's value: a deferred apply's (from `deferred`), else LevelDB's, its checksum
 * verified. A value that fails it is never returned: STORAGE_CORRUPTED, which stops the node.
 */
export async function readValue(
  db: Db,
  deferred: ReadonlyMap<string, Uint8Array | null>,
  key: Uint8Array,
  path: string,
): Promise<Uint8Array | undefined> {
  let stored: Uint8Array | null | undefined;
  if (deferred.size > 0) stored = deferred.get(keyString(key));
  // A deferred value is shared (the pending batch holds it): callers get a copy of it.
  const shared = stored !== undefined;
  if (stored === undefined) {
    try {
      stored = await db.get(key);
    } catch (error) {
      // LevelDB found a damaged table block: the node must stop, not answer per key.
      if (isLevelCorruption(error)) throw damagedValue(userKey(key), levelCause(error), path);
      throw error;
    }
  }
  if (stored === undefined || stored === null) return undefined;
  try {
    const value = openValue(userKey(key), stored);
    return shared ? value.slice() : value;
  } catch (error) {
    throw damagedValue(userKey(key), error, path);
  }
}

function damagedValue(key: Uint8Array, error: unknown, path: string): StorageError {
  return new StorageError(
    "STORAGE_CORRUPTED",
    path,
    `data path ${path}: the stored value of key ${printableKey(key)} is damaged: ${(error as Error).message}. The node must not serve it: ${REMEDY}`,
    { cause: error },
  );
}

/**
 * The session table of `generation` as stored, each record's checksum verified: a damaged
 * one is STORAGE_CORRUPTED, which stops the node.
 */
export async function loadSessions(
  db: Db,
  generation: number,
  path: string,
): Promise<SessionTable> {
  const table = new SessionTable();
  try {
    const time = await db.get(logTimeKey(generation));
    if (time !== undefined) table.loadTime(decodeU64(time));
    for await (const [key, stored] of db.iterator(sessionRange(generation))) {
      table.load(sessionKeyId(key), openValue(key, stored));
    }
  } catch (cause) {
    throw new StorageError(
      "STORAGE_CORRUPTED",
      path,
      `data path ${path}: the client session table is damaged: ${(cause as Error).message}. ${REMEDY}`,
      { cause },
    );
  }
  return table;
}

/** The auth table of `generation` as stored, its checksum verified (STORAGE_CORRUPTED if not). */
export async function loadAuth(db: Db, generation: number, path: string): Promise<AuthTable> {
  const table = new AuthTable();
  try {
    const key = authKey(generation);
    const stored = await db.get(key);
    if (stored !== undefined) table.load(decodeAuthState(openValue(key, stored)));
  } catch (cause) {
    throw new StorageError(
      "STORAGE_CORRUPTED",
      path,
      `data path ${path}: the users and roles table is damaged: ${(cause as Error).message}. ${REMEDY}`,
      { cause },
    );
  }
  return table;
}

/** A generation's replicated tables besides its data: client sessions, users and roles. */
export interface Tables {
  /** The client sessions (sessions.ts). */
  readonly sessions: SessionTable;
  /** The users, roles and permissions (auth.ts). */
  readonly auth: AuthTable;
}

/** The tables of a new state machine: no session, no user. */
export function emptyTables(): Tables {
  return { sessions: new SessionTable(), auth: new AuthTable() };
}

/** Both tables of `generation` as stored, verified (see loadSessions and loadAuth). */
export async function loadTables(db: Db, generation: number, path: string): Promise<Tables> {
  return {
    sessions: await loadSessions(db, generation, path),
    auth: await loadAuth(db, generation, path),
  };
}
