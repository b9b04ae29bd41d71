import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
const { encodeCommand, openStorage } = await import(process.env.DIST ?? "./dist/index.js");
const VALUE = new Uint8Array(256).fill(97);
const BATCH = Number(process.env.BATCH ?? 16), SESSIONS = 16, INFLIGHT = 4, ROUNDS = Number(process.env.ROUNDS ?? 2000);
async function run(tagged) {
  const store = await openStorage({ dataPath: await mkdtemp(join(tmpdir(), "sb-")), nodeId: 1, clusterId: "b" });
  let last = 0;
  const persist = async (datas) => {
    const entries = datas.map((data, i) => ({ index: last + 1 + i, term: 1, type: "normal", data }));
    last += entries.length;
    return store.persist({ entries, hardState: { term: 1, vote: 1, commit: last }, committedEntries: entries, mustSync: false }, { apply: entries });
  };
  const ids = [];
  if (tagged) for (let s = 0; s < SESSIONS; s++) { await persist([encodeCommand({ op: "session-open", idleTimeoutMs: 3600000, maxUnacknowledged: 1000, maxSessions: 1000 })]); ids.push(last); }
  const seq = new Array(SESSIONS).fill(0);
  let n = 0;
  const cpu0 = process.cpuUsage();
  for (let r = 0; r < ROUNDS; r++) {
    const datas = [];
    for (let i = 0; i < BATCH; i++) {
      const s = n++ % SESSIONS;
      const key = new TextEncoder().encode(`key-${n % 10000}`);
      const c = { op: "put", key, value: VALUE, requestId: new Uint8Array(12) };
      if (tagged) { seq[s]++; c.session = { id: ids[s], seq: seq[s], acknowledged: Math.max(1, seq[s] - INFLIGHT) }; }
      datas.push(encodeCommand(c));
    }
    await persist(datas);
  }
  const cpu = process.cpuUsage(cpu0);
  await store.close();
  return (cpu.user + cpu.system) / n;
}
const res = { p: [], s: [] };
for (let rep = 0; rep < Number(process.env.REPS ?? 8); rep++) { res.p.push(await run(false)); res.s.push(await run(true)); }
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(`plain ${med(res.p).toFixed(2)} µs/write, sessions ${med(res.s).toFixed(2)} µs/write, delta ${(med(res.s) - med(res.p)).toFixed(2)} (medians of ${res.p.length})`);
