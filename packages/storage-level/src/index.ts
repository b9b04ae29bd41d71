export {
  FORMAT_VERSION,
  LevelStorage,
  type ApplyResult,
  type DuplicateOf,
  type OpenStorageOptions,
  type PersistableReady,
} from "./level-storage.js";
export { StorageError, type StorageErrorCode } from "./errors.js";
export { decodeCommand, encodeCommand, type Command } from "./codec.js";
export { applyCommands, type AppliedCommands } from "./state-machine.js";
export {
  AuthTable,
  EMPTY_AUTH,
  ROOT_ROLE,
  checkAccess,
  checkAdmin,
  type AuthChange,
  type AuthRefusal,
  type AuthRole,
  type AuthState,
  type AuthTag,
  type AuthUser,
  type AuthVerdict,
  type PasswordHash,
  type Permission,
  type PermissionType,
} from "./auth.js";
export {
  SessionTable,
  type SessionChanges,
  type SessionCheck,
  type SessionLimits,
  type SessionRefusal,
  type SessionResponse,
  type SessionTag,
} from "./sessions.js";
export type { SnapshotChunk, SnapshotInstaller, SnapshotReader } from "./snapshot.js";

import { LevelStorage, type OpenStorageOptions } from "./level-storage.js";

/** Opens (creating if needed) a node's store; see `LevelStorage.open`. */
export function openStorage(options: OpenStorageOptions): Promise<LevelStorage> {
  return LevelStorage.open(options);
}
