// Binary encodings of everything stored, each value ending in a CRC32 of what precedes it,
// so that corruption is detected and named rather than decoded into nonsense.
import { crc32 } from "node:zlib";
import {
  type LogPosition,
  decodeConfState,
  encodeConfState,
  type ConfState,
  type Entry,
  type HardState,
  type SnapshotMetadata,
} from "@rockraft/raft-core";
import type { AuthChange, AuthTag } from "./auth.js";
import type { SessionLimits, SessionTag } from "./sessions.js";

import { DecodeError } from "./decode-error.js";
import { decodeAuthChange, encodeAuthChange } from "./auth-codec.js";

export { DecodeError };

const ENTRY_VERSION = 1;
const ENTRY_HEADER = 1 + 1 + 8 + 8;

/**
 * A byte array of `length` for LevelDB or a checksum, whose every byte the caller writes:
 * carved from Node's shared pool, outside V8's heap. A small `new Uint8Array` lives inside
 * the heap, and native code (LevelDB's binding, zlib's crc32) must move it out before it
 * can read it, which costs more than building it; keys and small records are made per
 * write, so this matters (storage-level's apply, about a tenth of its CPU).
 */
export function allocate(length: number): Uint8Array {
  const pooled = Buffer.allocUnsafe(length);
  // A plain Uint8Array over the pooled bytes: `slice` copies, as everywhere else.
  return new Uint8Array(pooled.buffer, pooled.byteOffset, length);
}

// Big-endian integers are written and read byte by byte: no DataView to allocate per key.

/** Writes `value` (0 to 2^32 - 1) as a big-endian u32 at `at` of `bytes`. */
export function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}

/** Reads a big-endian u32 at `at`; DecodeError when `bytes` ends before it. */
export function readU32(bytes: Uint8Array, at: number): number {
  if (at < 0 || at + 4 > bytes.byteLength)
    throw new DecodeError(`a 32-bit value at byte ${at} of ${bytes.byteLength}`);
  return (
    bytes[at]! * 0x100_0000 + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!)
  );
}

/** Writes `value` (0 to 2^53) as a big-endian u64 (two u32 halves) at `at` of `bytes`. */
export function writeU64(bytes: Uint8Array, at: number, value: number): void {
  writeU32(bytes, at, Math.floor(value / 0x1_0000_0000));
  writeU32(bytes, at + 4, value >>> 0);
}

/** Reads a big-endian u64 at `at`; DecodeError when it is beyond 2^53 or past the end. */
export function readU64(bytes: Uint8Array, at: number): number {
  const value = readU32(bytes, at) * 0x1_0000_0000 + readU32(bytes, at + 4);
  if (!Number.isSafeInteger(value))
    throw new DecodeError(`a 64-bit value beyond 2^53 at byte ${at}`);
  return value;
}

function sealed(bytes: Uint8Array): Uint8Array {
  writeU32(bytes, bytes.byteLength - 4, crc32(bytes.subarray(0, bytes.byteLength - 4)));
  return bytes;
}

function unseal(bytes: Uint8Array, minimum: number): void {
  if (bytes.byteLength < minimum + 4) throw new DecodeError(`${bytes.byteLength} bytes, too short`);
  const stored = readU32(bytes, bytes.byteLength - 4);
  const actual = crc32(bytes.subarray(0, bytes.byteLength - 4));
  if (stored !== actual) throw new DecodeError("checksum mismatch");
}

/** Log entry: version, type, index, term, data, CRC32. */
export function encodeEntry(entry: Entry): Uint8Array {
  const bytes = allocate(ENTRY_HEADER + entry.data.byteLength + 4);
  bytes[0] = ENTRY_VERSION;
  bytes[1] = entry.type === "config" ? 1 : 0;
  writeU64(bytes, 2, entry.index);
  writeU64(bytes, 10, entry.term);
  bytes.set(entry.data, ENTRY_HEADER);
  return sealed(bytes);
}

export function decodeEntry(bytes: Uint8Array): Entry {
  unseal(bytes, ENTRY_HEADER);
  if (bytes[0] !== ENTRY_VERSION) throw new DecodeError(`unknown entry version ${bytes[0]}`);
  const type = bytes[1] === 0 ? "normal" : bytes[1] === 1 ? "config" : undefined;
  if (type === undefined) throw new DecodeError(`unknown entry type ${bytes[1]}`);
  return {
    index: readU64(bytes, 2),
    term: readU64(bytes, 10),
    type,
    data: bytes.slice(ENTRY_HEADER, bytes.byteLength - 4),
  };
}

export function encodeHardState(state: HardState): Uint8Array {
  const bytes = allocate(24 + 4);
  writeU64(bytes, 0, state.term);
  writeU64(bytes, 8, state.vote);
  writeU64(bytes, 16, state.commit);
  return sealed(bytes);
}

export function decodeHardState(bytes: Uint8Array): HardState {
  unseal(bytes, 24);
  return { term: readU64(bytes, 0), vote: readU64(bytes, 8), commit: readU64(bytes, 16) };
}

export function encodePosition(position: LogPosition): Uint8Array {
  const bytes = allocate(16 + 4);
  writeU64(bytes, 0, position.index);
  writeU64(bytes, 8, position.term);
  return sealed(bytes);
}

export function decodePosition(bytes: Uint8Array): LogPosition {
  unseal(bytes, 16);
  return { index: readU64(bytes, 0), term: readU64(bytes, 8) };
}

// The state machine's applied state is written with every apply, and its membership seldom
// changes: the last one's encoding is kept, for a frozen ConfState (raft-core's are; the
// same frozen object always encodes the same). Any other is encoded every time.
let lastConf: ConfState | undefined;
let lastConfBytes: Uint8Array = new Uint8Array(0);

function frozen(conf: ConfState): boolean {
  return (
    Object.isFrozen(conf) &&
    Object.isFrozen(conf.voters) &&
    Object.isFrozen(conf.learners) &&
    Object.isFrozen(conf.votersOutgoing)
  );
}

function encodedConf(conf: ConfState): Uint8Array {
  if (conf === lastConf) return lastConfBytes;
  const bytes = encodeConfState(conf);
  if (frozen(conf)) {
    lastConf = conf;
    lastConfBytes = bytes;
  }
  return bytes;
}

/** A position plus a membership: snapshot metadata, and a state machine's applied state. */
export function encodeMetadata(metadata: SnapshotMetadata): Uint8Array {
  const conf = encodedConf(metadata.confState);
  const bytes = allocate(16 + conf.byteLength + 4);
  writeU64(bytes, 0, metadata.index);
  writeU64(bytes, 8, metadata.term);
  bytes.set(conf, 16);
  return sealed(bytes);
}

export function decodeMetadata(bytes: Uint8Array): SnapshotMetadata {
  unseal(bytes, 16);
  let confState: ConfState;
  try {
    confState = decodeConfState(bytes.subarray(16, bytes.byteLength - 4));
  } catch (cause) {
    throw new DecodeError(`membership does not decode: ${(cause as Error).message}`);
  }
  return { index: readU64(bytes, 0), term: readU64(bytes, 8), confState };
}

export function encodeU32(value: number): Uint8Array {
  const bytes = allocate(4 + 4);
  writeU32(bytes, 0, value);
  return sealed(bytes);
}

export function decodeU32(bytes: Uint8Array): number {
  unseal(bytes, 4);
  return readU32(bytes, 0);
}

export function encodeU64(value: number): Uint8Array {
  const bytes = allocate(8 + 4);
  writeU64(bytes, 0, value);
  return sealed(bytes);
}

export function decodeU64(bytes: Uint8Array): number {
  unseal(bytes, 8);
  return readU64(bytes, 0);
}

// ---- Commands: the KV state machine's log entry payloads -------------------------------

/** A KV command, as carried in a normal log entry (the client API of docs/architecture.md). */
export type Command =
  | {
      /** Set `key` to `value`. */
      readonly op: "put";
      /** The key, 1 byte or more. */
      readonly key: Uint8Array;
      /** The value; may be empty. */
      readonly value: Uint8Array;
      /** Identifies the request that proposed it, when the proposer tagged it. */
      readonly requestId?: Uint8Array;
      /** The client session and sequence number, for exactly-once (sessions.ts). */
      readonly session?: SessionTag;
      /** The caller it was proposed for, checked again at apply if auth changed (auth.ts). */
      readonly auth?: AuthTag;
    }
  | {
      /** Remove `key`. */
      readonly op: "delete";
      /** The key. */
      readonly key: Uint8Array;
      /** Identifies the request that proposed it, when the proposer tagged it. */
      readonly requestId?: Uint8Array;
      /** The client session and sequence number, for exactly-once (sessions.ts). */
      readonly session?: SessionTag;
      /** The caller it was proposed for, checked again at apply if auth changed (auth.ts). */
      readonly auth?: AuthTag;
    }
  | {
      /** Compare-and-swap: set `key` to `value` if it holds what is expected. */
      readonly op: "cas";
      /** The key. */
      readonly key: Uint8Array;
      /** Succeeds when the key's presence equals this and, if present, its value equals `expected`. */
      readonly expectFound: boolean;
      /** The value expected when `expectFound` is true. */
      readonly expected: Uint8Array;
      /** The value written on success. */
      readonly value: Uint8Array;
      /** Identifies the request that proposed it, when the proposer tagged it. */
      readonly requestId?: Uint8Array;
      /** The client session and sequence number, for exactly-once (sessions.ts). */
      readonly session?: SessionTag;
      /** The caller it was proposed for, checked again at apply if auth changed (auth.ts). */
      readonly auth?: AuthTag;
    }
  | ({
      /** Open a client session: its id is this entry's index. */
      readonly op: "session-open";
      /** Identifies the request that proposed it, when the proposer tagged it. */
      readonly requestId?: Uint8Array;
      /** The user it is opened for, who alone may write in it (auth.ts). */
      readonly auth?: AuthTag;
    } & SessionLimits)
  | {
      /** Close a client session, dropping what it kept. */
      readonly op: "session-close";
      /** The session to close. */
      readonly sessionId: number;
      /** Identifies the request that proposed it, when the proposer tagged it. */
      readonly requestId?: Uint8Array;
      /** The user closing it: only its owner's close closes it. */
      readonly auth?: AuthTag;
    }
  | {
      /** A change to the users, roles and permissions (auth.ts). */
      readonly op: "auth";
      /** The change. */
      readonly change: AuthChange;
      /** Identifies the request that proposed it, when the proposer tagged it. */
      readonly requestId?: Uint8Array;
      /** The caller it was proposed for, checked again at apply if auth changed. */
      readonly auth?: AuthTag;
    }
  | {
      /** The log's time moves on (a leader's measured interval): sessions expire by it. */
      readonly op: "clock";
      /** Milliseconds since the proposing leader's previous clock entry (0 for its first). */
      readonly elapsedMs: number;
      /** Identifies the request that proposed it, when the proposer tagged it. */
      readonly requestId?: Uint8Array;
    };

const OP_PUT = 1;
const OP_DELETE = 2;
const OP_CAS = 3;
const OP_SESSION_OPEN = 4;
const OP_SESSION_CLOSE = 5;
const OP_CLOCK = 6;
const OP_AUTH = 7;
/** A request id (u8 length, bytes), then the command it tags. */
const OP_REQUEST = 0x10;
/** A session tag (id, seq, acknowledged: u64 each), then the write it tags. */
const OP_SESSION = 0x11;
const SESSION_TAG = 1 + 24;
/** An auth tag (revision u64, user length u8, user UTF-8), then the command it tags. */
const OP_AUTH_TAG = 0x12;

/**
 * Encodes a command: op byte, then length-prefixed (u32) fields; the last field runs to the
 * end. put: key, value. delete: key. cas: expectFound byte, key, expected, value.
 * session-open: idle timeout u64, max unacknowledged u32, max sessions u32. session-close:
 * id u64. clock: elapsed ms u64. auth: the change as JSON (bytes as base64). A write with a
 * `session` is prefixed by op 0x11 and the tag's id, seq and acknowledged (u64 each); a
 * write or auth change with an `auth` tag by op 0x12, the revision (u64), the user's length
 * (one byte) and its UTF-8; a command with a `requestId` by op 0x10, the id's length (one
 * byte) and the id, before everything.
 */
export function encodeCommand(command: Command): Uint8Array {
  const { requestId } = command;
  if (requestId !== undefined && requestId.byteLength > 255) {
    throw new RangeError(`encodeCommand: requestId is ${requestId.byteLength} bytes, at most 255`);
  }
  const session = "session" in command ? command.session : undefined;
  const auth = "auth" in command ? command.auth : undefined;
  checkFields(command);
  const user = auth === undefined ? undefined : encoder.encode(auth.user);
  if (user !== undefined && user.byteLength > 255)
    throw new RangeError(`encodeCommand: auth user is ${user.byteLength} bytes, at most 255`);
  const change = command.op === "auth" ? encodeAuthChange(command.change) : undefined;
  // One allocation: the tags' room is left in front of the op.
  const tag = requestId === undefined ? 0 : 2 + requestId.byteLength;
  const authTag = user === undefined ? 0 : 1 + 8 + 1 + user.byteLength;
  const sessionTag = session === undefined ? 0 : SESSION_TAG;
  const length = change === undefined ? opLength(command) : 1 + change.byteLength;
  const bytes = new Uint8Array(tag + authTag + sessionTag + length);
  if (requestId !== undefined) {
    bytes[0] = OP_REQUEST;
    bytes[1] = requestId.byteLength;
    bytes.set(requestId, 2);
  }
  if (user !== undefined) {
    bytes[tag] = OP_AUTH_TAG;
    writeU64(bytes, tag + 1, auth!.revision);
    bytes[tag + 9] = user.byteLength;
    bytes.set(user, tag + 10);
  }
  const at = tag + authTag;
  if (session !== undefined) {
    bytes[at] = OP_SESSION;
    writeU64(bytes, at + 1, session.id);
    writeU64(bytes, at + 9, session.seq);
    writeU64(bytes, at + 17, session.acknowledged);
  }
  if (change !== undefined) {
    bytes[at + sessionTag] = OP_AUTH;
    bytes.set(change, at + sessionTag + 1);
  } else writeOp(command, bytes, at + sessionTag);
  return bytes;
}

const encoder = new TextEncoder();

/** Refuses a number a field cannot hold (it would be written wrapped or rounded). */
function checkFields(command: Command): void {
  const check = (name: string, value: number, max: number) => {
    if (!Number.isSafeInteger(value) || value < 0 || value > max)
      throw new RangeError(
        `encodeCommand: ${name} must be an integer from 0 to ${max}, got ${value}`,
      );
  };
  const u64 = Number.MAX_SAFE_INTEGER;
  if ("auth" in command && command.auth !== undefined)
    check("auth.revision", command.auth.revision, u64);
  if ("session" in command && command.session !== undefined) {
    check("session.id", command.session.id, u64);
    check("session.seq", command.session.seq, u64);
    check("session.acknowledged", command.session.acknowledged, u64);
  }
  if (command.op === "session-open") {
    check("idleTimeoutMs", command.idleTimeoutMs, u64);
    check("maxUnacknowledged", command.maxUnacknowledged, 0xffffffff);
    check("maxSessions", command.maxSessions, 0xffffffff);
  } else if (command.op === "session-close") check("sessionId", command.sessionId, u64);
  else if (command.op === "clock") check("elapsedMs", command.elapsedMs, u64);
}

function opLength(command: Command): number {
  const key = "key" in command ? command.key : new Uint8Array(0);
  switch (command.op) {
    case "put":
      return 1 + 4 + key.byteLength + command.value.byteLength;
    case "delete":
      return 1 + 4 + key.byteLength;
    case "cas":
      return 2 + 4 + key.byteLength + 4 + command.expected.byteLength + command.value.byteLength;
    case "session-open":
      return 1 + 8 + 4 + 4;
    case "session-close":
    case "clock":
      return 1 + 8;
    case "auth":
      throw new Error("opLength: an auth command's length is its JSON's");
  }
}

function writeOp(command: Command, bytes: Uint8Array, at: number): void {
  const key = "key" in command ? command.key : new Uint8Array(0);
  switch (command.op) {
    case "session-open":
      bytes[at] = OP_SESSION_OPEN;
      writeU64(bytes, at + 1, command.idleTimeoutMs);
      writeU32(bytes, at + 9, command.maxUnacknowledged);
      writeU32(bytes, at + 13, command.maxSessions);
      return;
    case "session-close":
      bytes[at] = OP_SESSION_CLOSE;
      writeU64(bytes, at + 1, command.sessionId);
      return;
    case "clock":
      bytes[at] = OP_CLOCK;
      writeU64(bytes, at + 1, command.elapsedMs);
      return;
    case "auth":
      throw new Error("writeOp: an auth command is written by encodeCommand");
    case "put":
      bytes[at] = OP_PUT;
      writeU32(bytes, at + 1, key.byteLength);
      bytes.set(key, at + 5);
      bytes.set(command.value, at + 5 + key.byteLength);
      return;
    case "delete":
      bytes[at] = OP_DELETE;
      writeU32(bytes, at + 1, key.byteLength);
      bytes.set(key, at + 5);
      return;
    case "cas": {
      const { expected, value } = command;
      bytes[at] = OP_CAS;
      bytes[at + 1] = command.expectFound ? 1 : 0;
      writeU32(bytes, at + 2, key.byteLength);
      bytes.set(key, at + 6);
      writeU32(bytes, at + 6 + key.byteLength, expected.byteLength);
      bytes.set(expected, at + 10 + key.byteLength);
      bytes.set(value, at + 10 + key.byteLength + expected.byteLength);
      return;
    }
  }
}

/**
 * Decodes what {@link encodeCommand} wrote. Throws an `Error` named `DecodeError` that names
 * the problem when the bytes are not a command. The command's byte fields are views of
 * `bytes`, not copies (log entries are never changed once written).
 */
export function decodeCommand(bytes: Uint8Array): Command {
  return decodeAt(bytes, 0);
}

/** Decodes the command at `at` of `bytes` to their end (a tag's inner command: no view of it). */
function decodeAt(bytes: Uint8Array, at: number): Command {
  switch (bytes[at]) {
    case OP_PUT: {
      const [key, end] = fieldAt(bytes, at + 1);
      return { op: "put", key, value: bytes.subarray(end) };
    }
    case OP_DELETE: {
      const [key, end] = fieldAt(bytes, at + 1);
      if (end !== bytes.byteLength) throw new DecodeError("delete command has trailing bytes");
      return { op: "delete", key };
    }
    case OP_CAS: {
      if (bytes.byteLength - at < 2 || (bytes[at + 1] !== 0 && bytes[at + 1] !== 1)) {
        throw new DecodeError("cas command truncated");
      }
      const [key, afterKey] = fieldAt(bytes, at + 2);
      const [expected, afterExpected] = fieldAt(bytes, afterKey);
      return {
        op: "cas",
        key,
        expectFound: bytes[at + 1] === 1,
        expected,
        value: bytes.subarray(afterExpected),
      };
    }
    case OP_SESSION_OPEN:
      exactly(bytes, at, 1 + 16);
      return {
        op: "session-open",
        idleTimeoutMs: readU64(bytes, at + 1),
        maxUnacknowledged: readU32(bytes, at + 9),
        maxSessions: readU32(bytes, at + 13),
      };
    case OP_SESSION_CLOSE:
      exactly(bytes, at, 1 + 8);
      return { op: "session-close", sessionId: readU64(bytes, at + 1) };
    case OP_CLOCK:
      exactly(bytes, at, 1 + 8);
      return { op: "clock", elapsedMs: readU64(bytes, at + 1) };
    case OP_AUTH:
      return { op: "auth", change: decodeAuthChange(bytes.subarray(at + 1)) };
    case OP_AUTH_TAG: {
      const length = bytes[at + 9];
      if (length === undefined || bytes.byteLength - at < 10 + length + 1)
        throw new DecodeError("auth tag truncated");
      if (bytes[at + 10 + length] === OP_AUTH_TAG) throw new DecodeError("nested auth tag");
      const inner = decodeAt(bytes, at + 10 + length);
      if (inner.op === "clock") throw new DecodeError(`an auth tag on a ${inner.op} command`);
      if (inner.requestId !== undefined) throw new DecodeError("a request id inside an auth tag");
      let user: string;
      try {
        user = new TextDecoder("utf-8", { fatal: true }).decode(
          bytes.subarray(at + 10, at + 10 + length),
        );
      } catch {
        throw new DecodeError("auth tag: the user is not UTF-8");
      }
      (inner as { auth?: AuthTag }).auth = { user, revision: readU64(bytes, at + 1) }; // a fresh object
      return inner;
    }
    case OP_REQUEST: {
      const length = bytes[at + 1];
      if (length === undefined || bytes.byteLength - at < 2 + length + 1) {
        throw new DecodeError("request id truncated");
      }
      if (bytes[at + 2 + length] === OP_REQUEST) throw new DecodeError("nested request id");
      // A fresh object of this call's: tagged in place rather than copied.
      const inner = decodeAt(bytes, at + 2 + length) as { requestId?: Uint8Array };
      inner.requestId = bytes.subarray(at + 2, at + 2 + length);
      return inner as Command;
    }
    case OP_SESSION: {
      if (bytes.byteLength - at < SESSION_TAG + 1) throw new DecodeError("session tag truncated");
      if (bytes[at + SESSION_TAG] === OP_SESSION) throw new DecodeError("nested session tag");
      const inner = decodeAt(bytes, at + SESSION_TAG);
      if (inner.op !== "put" && inner.op !== "delete" && inner.op !== "cas")
        throw new DecodeError(`a session tag on a ${inner.op} command`);
      if (inner.requestId !== undefined) throw new DecodeError("a request id inside a session tag");
      if (inner.auth !== undefined) throw new DecodeError("an auth tag inside a session tag");
      const session = {
        id: readU64(bytes, at + 1),
        seq: readU64(bytes, at + 9),
        acknowledged: readU64(bytes, at + 17),
      };
      (inner as { session?: SessionTag }).session = session; // a fresh object of this call's
      return inner;
    }
    default:
      throw new DecodeError(`unknown command op ${bytes[at]}`);
  }
}

/** Refuses a command at `at` that is not exactly `length` bytes long. */
function exactly(bytes: Uint8Array, at: number, length: number): void {
  if (bytes.byteLength - at !== length)
    throw new DecodeError(`${bytes.byteLength - at} bytes for a command of ${length}`);
}

/** A command's length-prefixed (u32) field at `offset`: its bytes (a view), and its end. */
function fieldAt(bytes: Uint8Array, offset: number): [Uint8Array, number] {
  if (offset + 4 > bytes.byteLength) throw new DecodeError("command truncated");
  const length = readU32(bytes, offset);
  const end = offset + 4 + length;
  if (end > bytes.byteLength) throw new DecodeError("command truncated");
  return [bytes.subarray(offset + 4, end), end];
}

/**
 * A state machine value as stored: the value, then a CRC-32 of the user key and the value
 * (so a damaged byte, or a value found under another key, is caught when read).
 */
export function sealValue(key: Uint8Array, value: Uint8Array): Uint8Array {
  const sealed = allocate(value.byteLength + 4);
  sealed.set(value);
  writeU32(sealed, value.byteLength, crc32(value, crc32(key)));
  return sealed;
}

/** The value of a stored (sealed) one, a view into it; throws DecodeError when damaged. */
export function openValue(key: Uint8Array, stored: Uint8Array): Uint8Array {
  if (stored.byteLength < 4) throw new DecodeError(`${stored.byteLength} bytes, too short`);
  const value = stored.subarray(0, stored.byteLength - 4);
  const expected = readU32(stored, stored.byteLength - 4);
  if (crc32(value, crc32(key)) !== expected) throw new DecodeError("checksum mismatch");
  return value;
}
