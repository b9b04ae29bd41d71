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

/** Thrown by decoders; the store turns it into STORAGE_CORRUPTED naming what and where. */
export class DecodeError extends Error {
  override readonly name = "DecodeError";
}

const ENTRY_VERSION = 1;
const ENTRY_HEADER = 1 + 1 + 8 + 8;

function writeU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, Math.floor(value / 0x1_0000_0000));
  view.setUint32(offset + 4, value >>> 0);
}

function readU64(view: DataView, offset: number): number {
  const value = view.getUint32(offset) * 0x1_0000_0000 + view.getUint32(offset + 4);
  if (!Number.isSafeInteger(value))
    throw new DecodeError(`a 64-bit value beyond 2^53 at byte ${offset}`);
  return value;
}

function sealed(bytes: Uint8Array): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(bytes.byteLength - 4, crc32(bytes.subarray(0, bytes.byteLength - 4)));
  return bytes;
}

function unseal(bytes: Uint8Array, minimum: number): DataView {
  if (bytes.byteLength < minimum + 4) throw new DecodeError(`${bytes.byteLength} bytes, too short`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stored = view.getUint32(bytes.byteLength - 4);
  const actual = crc32(bytes.subarray(0, bytes.byteLength - 4));
  if (stored !== actual) throw new DecodeError("checksum mismatch");
  return view;
}

/** Log entry: version, type, index, term, data, CRC32. */
export function encodeEntry(entry: Entry): Uint8Array {
  const bytes = new Uint8Array(ENTRY_HEADER + entry.data.byteLength + 4);
  const view = new DataView(bytes.buffer);
  bytes[0] = ENTRY_VERSION;
  bytes[1] = entry.type === "config" ? 1 : 0;
  writeU64(view, 2, entry.index);
  writeU64(view, 10, entry.term);
  bytes.set(entry.data, ENTRY_HEADER);
  return sealed(bytes);
}

export function decodeEntry(bytes: Uint8Array): Entry {
  const view = unseal(bytes, ENTRY_HEADER);
  if (bytes[0] !== ENTRY_VERSION) throw new DecodeError(`unknown entry version ${bytes[0]}`);
  const type = bytes[1] === 0 ? "normal" : bytes[1] === 1 ? "config" : undefined;
  if (type === undefined) throw new DecodeError(`unknown entry type ${bytes[1]}`);
  return {
    index: readU64(view, 2),
    term: readU64(view, 10),
    type,
    data: bytes.slice(ENTRY_HEADER, bytes.byteLength - 4),
  };
}

export function encodeHardState(state: HardState): Uint8Array {
  const bytes = new Uint8Array(24 + 4);
  const view = new DataView(bytes.buffer);
  writeU64(view, 0, state.term);
  writeU64(view, 8, state.vote);
  writeU64(view, 16, state.commit);
  return sealed(bytes);
}

export function decodeHardState(bytes: Uint8Array): HardState {
  const view = unseal(bytes, 24);
  return { term: readU64(view, 0), vote: readU64(view, 8), commit: readU64(view, 16) };
}

export function encodePosition(position: LogPosition): Uint8Array {
  const bytes = new Uint8Array(16 + 4);
  const view = new DataView(bytes.buffer);
  writeU64(view, 0, position.index);
  writeU64(view, 8, position.term);
  return sealed(bytes);
}

export function decodePosition(bytes: Uint8Array): LogPosition {
  const view = unseal(bytes, 16);
  return { index: readU64(view, 0), term: readU64(view, 8) };
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
  const bytes = new Uint8Array(16 + conf.byteLength + 4);
  const view = new DataView(bytes.buffer);
  writeU64(view, 0, metadata.index);
  writeU64(view, 8, metadata.term);
  bytes.set(conf, 16);
  return sealed(bytes);
}

export function decodeMetadata(bytes: Uint8Array): SnapshotMetadata {
  const view = unseal(bytes, 16);
  let confState: ConfState;
  try {
    confState = decodeConfState(bytes.subarray(16, bytes.byteLength - 4));
  } catch (cause) {
    throw new DecodeError(`membership does not decode: ${(cause as Error).message}`);
  }
  return { index: readU64(view, 0), term: readU64(view, 8), confState };
}

export function encodeU32(value: number): Uint8Array {
  const bytes = new Uint8Array(4 + 4);
  new DataView(bytes.buffer).setUint32(0, value);
  return sealed(bytes);
}

export function decodeU32(bytes: Uint8Array): number {
  return unseal(bytes, 4).getUint32(0);
}

export function encodeU64(value: number): Uint8Array {
  const bytes = new Uint8Array(8 + 4);
  writeU64(new DataView(bytes.buffer), 0, value);
  return sealed(bytes);
}

export function decodeU64(bytes: Uint8Array): number {
  return readU64(unseal(bytes, 8), 0);
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
    }
  | {
      /** Remove `key`. */
      readonly op: "delete";
      /** The key. */
      readonly key: Uint8Array;
      /** Identifies the request that proposed it, when the proposer tagged it. */
      readonly requestId?: Uint8Array;
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
    };

const OP_PUT = 1;
const OP_DELETE = 2;
const OP_CAS = 3;
/** A request id (u8 length, bytes), then the command it tags. */
const OP_REQUEST = 0x10;

/**
 * Encodes a command: op byte, then length-prefixed (u32) fields; the last field runs to the
 * end. put: key, value. delete: key. cas: expectFound byte, key, expected, value. A command
 * with a `requestId` is prefixed by op 0x10, the id's length (one byte) and the id.
 */
export function encodeCommand(command: Command): Uint8Array {
  const { requestId } = command;
  if (requestId !== undefined && requestId.byteLength > 255) {
    throw new RangeError(`encodeCommand: requestId is ${requestId.byteLength} bytes, at most 255`);
  }
  // One allocation: the tag's room is left in front of the op.
  const tag = requestId === undefined ? 0 : 2 + requestId.byteLength;
  const bytes = new Uint8Array(tag + opLength(command));
  if (requestId !== undefined) {
    bytes[0] = OP_REQUEST;
    bytes[1] = requestId.byteLength;
    bytes.set(requestId, 2);
  }
  writeOp(command, bytes, tag);
  return bytes;
}

function opLength(command: Command): number {
  const { key } = command;
  switch (command.op) {
    case "put":
      return 1 + 4 + key.byteLength + command.value.byteLength;
    case "delete":
      return 1 + 4 + key.byteLength;
    case "cas":
      return 2 + 4 + key.byteLength + 4 + command.expected.byteLength + command.value.byteLength;
  }
}

function writeOp(command: Command, bytes: Uint8Array, at: number): void {
  const { key } = command;
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, bytes.byteLength - at);
  switch (command.op) {
    case "put":
      bytes[at] = OP_PUT;
      view.setUint32(1, key.byteLength);
      bytes.set(key, at + 5);
      bytes.set(command.value, at + 5 + key.byteLength);
      return;
    case "delete":
      bytes[at] = OP_DELETE;
      view.setUint32(1, key.byteLength);
      bytes.set(key, at + 5);
      return;
    case "cas": {
      const { expected, value } = command;
      bytes[at] = OP_CAS;
      bytes[at + 1] = command.expectFound ? 1 : 0;
      view.setUint32(2, key.byteLength);
      bytes.set(key, at + 6);
      view.setUint32(6 + key.byteLength, expected.byteLength);
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
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const field = (offset: number): [Uint8Array, number] => {
    if (offset + 4 > bytes.byteLength) throw new DecodeError("command truncated");
    const length = view.getUint32(offset);
    const end = offset + 4 + length;
    if (end > bytes.byteLength) throw new DecodeError("command truncated");
    return [bytes.subarray(offset + 4, end), end];
  };
  switch (bytes[0]) {
    case OP_PUT: {
      const [key, end] = field(1);
      return { op: "put", key, value: bytes.subarray(end) };
    }
    case OP_DELETE: {
      const [key, end] = field(1);
      if (end !== bytes.byteLength) throw new DecodeError("delete command has trailing bytes");
      return { op: "delete", key };
    }
    case OP_CAS: {
      if (bytes.byteLength < 2 || (bytes[1] !== 0 && bytes[1] !== 1)) {
        throw new DecodeError("cas command truncated");
      }
      const [key, afterKey] = field(2);
      const [expected, afterExpected] = field(afterKey);
      return {
        op: "cas",
        key,
        expectFound: bytes[1] === 1,
        expected,
        value: bytes.subarray(afterExpected),
      };
    }
    case OP_REQUEST: {
      const length = bytes[1];
      if (length === undefined || bytes.byteLength < 2 + length + 1) {
        throw new DecodeError("request id truncated");
      }
      if (bytes[2 + length] === OP_REQUEST) throw new DecodeError("nested request id");
      const inner = decodeCommand(bytes.subarray(2 + length));
      return { ...inner, requestId: bytes.subarray(2, 2 + length) };
    }
    default:
      throw new DecodeError(`unknown command op ${bytes[0]}`);
  }
}

/**
 * A state machine value as stored: the value, then a CRC-32 of the user key and the value
 * (so a damaged byte, or a value found under another key, is caught when read).
 */
export function sealValue(key: Uint8Array, value: Uint8Array): Uint8Array {
  const sealed = new Uint8Array(value.byteLength + 4);
  sealed.set(value);
  new DataView(sealed.buffer).setUint32(value.byteLength, crc32(value, crc32(key)));
  return sealed;
}

/** The value of a stored (sealed) one, a view into it; throws DecodeError when damaged. */
export function openValue(key: Uint8Array, stored: Uint8Array): Uint8Array {
  if (stored.byteLength < 4) throw new DecodeError(`${stored.byteLength} bytes, too short`);
  const value = stored.subarray(0, stored.byteLength - 4);
  const expected = new DataView(stored.buffer, stored.byteOffset, stored.byteLength).getUint32(
    stored.byteLength - 4,
  );
  if (crc32(value, crc32(key)) !== expected) throw new DecodeError("checksum mismatch");
  return value;
}
