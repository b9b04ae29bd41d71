/** Thrown by decoders; the store turns it into STORAGE_CORRUPTED naming what and where. */
export class DecodeError extends Error {
  override readonly name = "DecodeError";
}
