// The `disk` fault: each node's data directory on a small filesystem of its own (a tmpfs
// the harness mounts and unmounts; needs root), which the harness can fill to the last
// byte, so that the node's next write fails with ENOSPC, and free again.
import { spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

/** Whether this process can mount filesystems (root, with `mount`). */
export function disksAvailable() {
  return process.getuid?.() === 0 && spawnSync("mount", ["--version"]).status === 0;
}

function run(command, args) {
  const result = spawnSync(command, args, { encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")}: ${(result.stderr || "").trim()}`);
  }
}

export class Disks {
  /** `count` nodes' disks under `dir`; `mounted`: each a tmpfs of `sizeMb` (else plain dirs). */
  constructor(dir, count, { mounted, sizeMb = 256 }) {
    this.dir = dir;
    this.count = count;
    this.mounted = mounted;
    this.sizeMb = sizeMb;
    this.mounts = [];
    process.on("exit", () => this.unmountAll());
  }

  /** Node `id`'s disk (the directory its data lives under). */
  path(id) {
    return join(this.dir, `disk${id}`);
  }

  create() {
    for (let id = 1; id <= this.count; id++) {
      mkdirSync(this.path(id), { recursive: true });
      if (!this.mounted) continue;
      run("mount", [
        "-t",
        "tmpfs",
        "-o",
        `size=${this.sizeMb}m`,
        `rockraft-chaos-${id}`,
        this.path(id),
      ]);
      this.mounts.push(this.path(id));
    }
  }

  /** Fills node `id`'s disk to the last byte; returns the bytes it took. */
  fill(id) {
    const fd = openSync(join(this.path(id), "filler"), "w");
    let written = 0;
    try {
      for (const size of [1 << 20, 1 << 12, 1]) {
        const chunk = Buffer.alloc(size, 0x5a);
        for (;;) {
          try {
            written += writeSync(fd, chunk);
          } catch (error) {
            if (error.code === "ENOSPC") break;
            throw error;
          }
        }
      }
    } finally {
      closeSync(fd);
    }
    return written;
  }

  /** Frees what fill() took. */
  free(id) {
    rmSync(join(this.path(id), "filler"), { force: true });
  }

  /** Unmounts every disk (their contents go with them). Idempotent. */
  unmountAll() {
    for (const path of this.mounts.splice(0)) spawnSync("umount", ["-l", path]);
  }
}
