// The bounded `pnpm chaos` that CI runs: 60 s of kill, pause and partition faults against
// the example's node processes, every history checked (it must pass); and the harness's
// proof that it can fail: the nodes with reads served without ReadIndex, under partitions,
// must be reported not linearizable; and with every client retrying in a session, no write
// may end with its outcome unknown. (The checker's own tests, with known-bad histories,
// are in packages/rockraft/test/linearizability.test.ts.)
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, test } from "vitest";

/** Runs the harness; SIGTERM (which it cleans up after) once `timeoutMs` passes. */
function chaos(args, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(import.meta.dirname, "../run.mjs"), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
    child.once("close", () => clearTimeout(timer));
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.once("error", reject);
    child.once("exit", (code) =>
      resolve({ code, output, verdict: output.trimEnd().split("\n").at(-1) }),
    );
  });
}

describe("pnpm chaos", () => {
  test("60 s of kills, pauses and partitions: every history is linearizable", async () => {
    const { code, output, verdict } = await chaos(
      [...["--seconds", "60", "--faults", "kill,pause,partition", "--seed", "20261206"]],
      200_000,
    );
    expect(verdict, output).toMatch(/^LINEARIZABLE: \d+ operations on 8 keys; seed 20261206/);
    // No node stopped by itself.
    expect(output).not.toMatch(/exited by itself/);
    expect(code).toBe(0);
    // The faults happened: the schedule said so, one line each.
    expect(output).toMatch(/fault: kill node \d \(SIGKILL\)/);
    expect(output).toMatch(/fault: pause node \d/);
    if (process.getuid?.() === 0) expect(output).toMatch(/fault: partition /);
  }, 240_000);

  test("with retries on (every client a RockraftClient writing in a session): no write outcome stays unknown", async () => {
    const { code, output, verdict } = await chaos(
      [...["--seconds", "40", "--faults", "kill,pause,partition", "--seed", "7", "--retries"]],
      200_000,
    );
    expect(verdict, output).toMatch(/^LINEARIZABLE: \d+ operations on 8 keys; seed 7/);
    expect(output).toMatch(
      /operations: \d+ ok, \d+ failed \(not applied\), 0 with an unknown outcome/,
    );
    expect(output).toMatch(/fault: kill node \d \(SIGKILL\)/);
    expect(code).toBe(0);
  }, 240_000);

  test.runIf(process.getuid?.() === 0)(
    "reads served without ReadIndex, under partitions: caught as not linearizable",
    async () => {
      const { code, output, verdict } = await chaos(
        [...["--seconds", "30", "--faults", "partition", "--seed", "5", "--unsafe", "local-reads"]],
        150_000,
      );
      expect(verdict, output).toMatch(/^NOT LINEARIZABLE: \d of 8 keys \(.*report\.html;/);
      expect(code).toBe(1);
      // The report is kept: the history, the page and the nodes' logs.
      const dir = /\((\/.*)\/report\.html;/.exec(verdict)[1];
      const { readdir, rm } = await import("node:fs/promises");
      expect(await readdir(dir)).toEqual(
        expect.arrayContaining(["history.json", "report.html", "node1.log"]),
      );
      await rm(dir, { recursive: true, force: true });
    },
    180_000,
  );
});
