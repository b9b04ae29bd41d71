// The on-disk format's version and its conversion, and how damaged data is recognised and
// named. See the README, "On-disk layout".
import type { ClassicLevel } from "classic-level";
import { DecodeError, encodeU32, sealValue } from "./codec.js";
import {
  META_FORMAT,
  META_GENERATION,
  dataKey,
  dataRange,
  generationRange,
  stateMetaKey,
  userKey,
} from "./keys.js";

type Db = ClassicLevel<Uint8Array, Uint8Array>;
type BatchOp = { type: "put"; key: Uint8Array; value: Uint8Array };

/**
 * The on-disk format this version writes and reads. 2: state machine values carry a
 * CRC-32 of their key and value (format 1 stores are converted when opened). 3: the state
 * machine holds client sessions, and the log may carry session commands an older version
 * cannot apply (format 2 stores hold neither, and are marked format 3 when opened).
 */
export const FORMAT_VERSION = 3;

/** What the operator can do about a node whose data is damaged (ends every such error). */
export const REMEDY =
  "remove it from the cluster, then add it back with an empty data directory (it copies the state from the leader)";

/** Whether LevelDB reported damaged files (a block that fails to decode or its checksum). */
export function isLevelCorruption(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  const cause = (error as { cause?: { message?: string } }).cause;
  return (
    code === "LEVEL_CORRUPTION" ||
    /^Corruption:/.test(cause?.message ?? "") ||
    /^Corruption:/.test((error as Error).message ?? "")
  );
}

/** LevelDB's own words for a corruption, as the detail of our error. */
export function levelCause(error: unknown): DecodeError {
  const cause = (error as { cause?: { message?: string } }).cause;
  return new DecodeError(`LevelDB: ${cause?.message ?? (error as Error).message}`);
}

/** A key for an error message: as text when it is printable UTF-8, else as hex. */
export function printableKey(key: Uint8Array): string {
  const text = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("utf8");
  return /^[\x20-\x7e]*$/.test(text) && text.length <= 200
    ? JSON.stringify(text)
    : `0x${Buffer.from(key.buffer, key.byteOffset, Math.min(key.byteLength, 100)).toString("hex")}`;
}

/**
 * Converts a format 1 store (values without checksums) to format 2: the state machine is
 * copied, each value sealed, into a new generation, which one synced batch then makes the
 * active one together with the new format marker. A crash midway leaves format 1 and the
 * old generation in place, and the copy is made again. Returns the new generation.
 */
export async function convertFormat1(db: Db, generation: number): Promise<number> {
  const target = generation + 1;
  await db.clear(generationRange(target));
  let ops: BatchOp[] = [];
  for await (const [key, value] of db.iterator(dataRange(generation))) {
    const user = userKey(key);
    ops.push({ type: "put", key: dataKey(target, user), value: sealValue(user, value) });
    if (ops.length === 1000) {
      await db.batch(ops);
      ops = [];
    }
  }
  const meta = await db.get(stateMetaKey(generation));
  if (meta !== undefined) ops.push({ type: "put", key: stateMetaKey(target), value: meta });
  if (ops.length > 0) await db.batch(ops);
  await db.batch(
    [
      { type: "put", key: META_GENERATION, value: encodeU32(target) },
      { type: "put", key: META_FORMAT, value: encodeU32(FORMAT_VERSION) },
    ],
    { sync: true },
  );
  await db.clear(generationRange(generation));
  return target;
}
