// Test helpers for implementations of raft-core's interfaces. Import from
// "@rockraft/raft-core/testing"; it has no dependency on any test framework.
export {
  storageConformanceTests,
  type StorageConformanceOptions,
  type StorageHarness,
} from "./storage-conformance.js";
