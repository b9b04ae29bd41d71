// The key layout of one node's LevelDB. Every key starts with a one-byte key space:
//
//   0x00 0x01            format version
//   0x00 0x02            identity (cluster id, node id)
//   0x00 0x03            hard state
//   0x00 0x04            snapshot metadata
//   0x00 0x05            active state machine generation
//   0x00 0x06            log start: (index, term) of the last compacted entry
//   0x00 0x07            synced writes: the number of the last synced write (durable-mark.ts)
//   0x01 index:u64be     Raft log entries (big-endian, so keys sort by index)
//   0x02 gen:u32be 0x00  state machine metadata of a generation (applied log id, membership)
//   0x02 gen:u32be 0x01 key   state machine data of a generation
//   0x02 gen:u32be 0x02 id:u64be   a client session of a generation (sessions.ts)
//   0x02 gen:u32be 0x03  the log's time of a generation (sessions expire by it)
//   0x02 gen:u32be 0x04  the users, roles and permissions of a generation (auth.ts)
//
// The state machine lives in generations: a snapshot is installed into a fresh generation,
// and one small batch switches the active one, so an install is all or nothing.

import { allocate, readU32, readU64, writeU32, writeU64 } from "./codec.js";

export const META_FORMAT = Uint8Array.of(0x00, 0x01);
export const META_IDENTITY = Uint8Array.of(0x00, 0x02);
export const META_HARD_STATE = Uint8Array.of(0x00, 0x03);
export const META_SNAPSHOT = Uint8Array.of(0x00, 0x04);
export const META_GENERATION = Uint8Array.of(0x00, 0x05);
export const META_LOG_START = Uint8Array.of(0x00, 0x06);
export const META_SYNCED_WRITES = Uint8Array.of(0x00, 0x07);

const LOG = 0x01;
const STATE = 0x02;

// Numbers in keys are big-endian, so that keys sort by them. Keys made per write come from
// codec's `allocate` (outside V8's heap, every byte written here).

export function logKey(index: number): Uint8Array {
  const key = allocate(9);
  key[0] = LOG;
  writeU64(key, 1, index);
  return key;
}

export function logKeyIndex(key: Uint8Array): number {
  return readU64(key, 1);
}

export const LOG_START_KEY = logKey(0);
export const LOG_END_KEY = Uint8Array.of(LOG + 1);

/**
 * A key of `length` bytes that starts with `generation`'s prefix for `kind`; bytes past the
 * prefix (6) are the caller's to write.
 */
function generationKey(generation: number, kind: number, length = 6): Uint8Array {
  const key = allocate(length);
  key[0] = STATE;
  writeU32(key, 1, generation);
  key[5] = kind;
  return key;
}

/** Range of every key of a generation: [gte, lt). */
export function generationRange(generation: number): { gte: Uint8Array; lt: Uint8Array } {
  const gte = new Uint8Array(5);
  gte[0] = STATE;
  writeU32(gte, 1, generation);
  const lt = new Uint8Array(5);
  lt[0] = STATE;
  if (generation === 0xffffffff) lt[0] = STATE + 1;
  else writeU32(lt, 1, generation + 1);
  return { gte, lt };
}

export const STATE_START_KEY = Uint8Array.of(STATE);
export const STATE_END_KEY = Uint8Array.of(STATE + 1);

export function generationOf(key: Uint8Array): number {
  return readU32(key, 1);
}

export function stateMetaKey(generation: number): Uint8Array {
  return generationKey(generation, 0x00);
}

export function dataKey(generation: number, key: Uint8Array): Uint8Array {
  const full = generationKey(generation, 0x01, 6 + key.byteLength);
  full.set(key, 6);
  return full;
}

/** Range of a generation's data keys: [gte, lt). */
export function dataRange(generation: number): { gte: Uint8Array; lt: Uint8Array } {
  return { gte: generationKey(generation, 0x01), lt: generationKey(generation, 0x02) };
}

/** The user key of a data key. */
export function userKey(full: Uint8Array): Uint8Array {
  return full.subarray(6);
}

/** A client session's key: the generation's session prefix and the id (u64 big-endian). */
export function sessionKey(generation: number, id: number): Uint8Array {
  const key = generationKey(generation, 0x02, 6 + 8);
  writeU64(key, 6, id);
  return key;
}

/** The session id of a session key. */
export function sessionKeyId(key: Uint8Array): number {
  return readU64(key, 6);
}

/** Range of a generation's session keys: [gte, lt). */
export function sessionRange(generation: number): { gte: Uint8Array; lt: Uint8Array } {
  return { gte: generationKey(generation, 0x02), lt: generationKey(generation, 0x03) };
}

/** The key of a generation's log time. */
export function logTimeKey(generation: number): Uint8Array {
  return generationKey(generation, 0x03);
}

/** The key of a generation's auth table. */
export function authKey(generation: number): Uint8Array {
  return generationKey(generation, 0x04);
}
