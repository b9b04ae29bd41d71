// Many crash rounds: real child processes SIGKILLed at random moments (see test/crash.test.ts).
//   pnpm --filter @rockraft/storage-level crash -- --rounds 500 [--seed 1]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { crashPlan, crashRound } from "../test/helpers/crash.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: { rounds: { type: "string", default: "200" }, seed: { type: "string", default: "1" } },
});
const rounds = Number(values.rounds);
const seed = Number(values.seed);
const dataPath = await mkdtemp(join(tmpdir(), "rockraft-crash-"));
const began = performance.now();
let failures = 0;
try {
  for (const [i, round] of crashPlan(seed, rounds).entries()) {
    try {
      const outcome = await crashRound(dataPath, seed * 100_000 + i, round);
      if ((i + 1) % 25 === 0) console.log(`round ${i + 1}: ${outcome}`);
    } catch (error) {
      failures++;
      console.log(
        `round ${i + 1} FAILED (${JSON.stringify(round.killAt)}): ${(error as Error).message}`,
      );
      break;
    }
  }
} finally {
  await rm(dataPath, { recursive: true, force: true });
}
console.log(
  `${rounds} crash rounds, seed ${seed}: ${failures} failed in ${((performance.now() - began) / 1000).toFixed(0)} s`,
);
process.exit(failures === 0 ? 0 : 1);
