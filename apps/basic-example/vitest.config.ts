import { defineConfig } from "vitest/config";

export default defineConfig({
  // One file at a time: each starts node processes on ports picked free beforehand, and a
  // file's node could take a port another file picked for a node it has yet to start.
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    testTimeout: 120_000,
    fileParallelism: false,
  },
});
