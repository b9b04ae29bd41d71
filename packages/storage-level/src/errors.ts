/** Stable codes of {@link StorageError}; callers branch on these, never on messages. */
export type StorageErrorCode =
  /** The data path is held by another process (or another open store in this one). */
  | "STORAGE_LOCKED"
  /** The data path belongs to another node id or cluster id. */
  | "STORAGE_IDENTITY_MISMATCH"
  /** The data was written in a format this version does not understand. */
  | "STORAGE_FORMAT"
  /** Stored data fails a checksum, does not decode, or is inconsistent; nothing is guessed. */
  | "STORAGE_CORRUPTED"
  /** The data path cannot be created, written or read. */
  | "STORAGE_IO"
  /** A received snapshot stream is broken (a gap in offsets, a checksum mismatch, bad records). */
  | "STORAGE_SNAPSHOT_INVALID"
  /** The store was closed, or stopped after a failed write. */
  | "STORAGE_CLOSED";

/** An error from the store, with a stable `code` and the data path concerned. */
export class StorageError extends Error {
  /** Always `"StorageError"`. */
  override readonly name = "StorageError";
  /** Stable code to branch on. */
  readonly code: StorageErrorCode;
  /** The data path concerned. */
  readonly path: string;

  constructor(
    code: StorageErrorCode,
    path: string,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.path = path;
  }
}
