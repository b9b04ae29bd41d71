// The `disk` fault: each node's data directory on a small filesystem of its own (a tmpfs
// the harness mounts and unmounts; needs root), which the harness can fill to the last
// byte, so that the node's next write fails with ENOSPC, and free again.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Whether this process can mount a filesystem: tried, with a tiny tmpfs. */
export function disksAvailable() {
  if (process.getuid?.() !== 0) return false;
  const probe = mkdtempSync(join(tmpdir(), "rockraft-chaos-probe-"));
  try {
    if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "rockraft-probe", probe]).status !== 0)
      return false;
    spawnSync("umount", [probe]);
    return true;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
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

  /**
   * Fills node `id`'s disk to the last byte; resolves with the bytes it took. `dd` does it, in
   * a process of its own, so that the harness's clients and clock never stall meanwhile.
   */
  async fill(id) {
    const filler = join(this.path(id), "filler");
    // 1 MiB blocks until the disk is full, then 4 KiB ones (a tmpfs page) for the rest.
    for (const [bs, flags] of [
      ["1M", []],
      ["4K", ["oflag=append", "conv=notrunc"]],
    ]) {
      await new Promise((resolve, reject) => {
        const dd = spawn("dd", ["if=/dev/zero", `of=${filler}`, `bs=${bs}`, ...flags], {
          stdio: ["ignore", "ignore", "pipe"],
        });
        let errors = "";
        dd.stderr.on("data", (chunk) => (errors += chunk));
        dd.once("error", reject);
        // dd ends with an error once the disk is full: that is the point.
        dd.once("close", () =>
          /No space left/.test(errors)
            ? resolve()
            : reject(new Error(`dd to ${filler}: ${errors.trim()}`)),
        );
      });
    }
    return statSync(filler).size;
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
