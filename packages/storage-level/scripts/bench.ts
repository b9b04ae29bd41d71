// Storage throughput on this machine's disk:
//   pnpm --filter @rockraft/storage-level bench [-- --seconds 3]
// synced appends (one Ready = one synced batch) at batch sizes 1, 16, 256 with 256-byte
// values; apply throughput; snapshot build and install MB/s; and the raw fdatasync cost of
// the same disk, measured in the same run.
import { closeSync, fdatasyncSync, openSync, writeSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Entry } from "@rockraft/raft-core";
import { openValue, sealValue } from "../src/codec.js";
import { encodeCommand, openStorage, type SnapshotChunk } from "../src/index.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: { seconds: { type: "string", default: "3" } },
});
const seconds = Number(values.seconds);
const VALUE = new Uint8Array(256).fill(97);
const root = await mkdtemp(join(tmpdir(), "rockraft-bench-"));
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

function command(index: number): Entry {
  const key = new TextEncoder().encode(`key-${index % 10_000}`);
  return { index, term: 1, type: "normal", data: encodeCommand({ op: "put", key, value: VALUE }) };
}

function fdatasyncCost(): number {
  const fd = openSync(join(root, "fdatasync.bin"), "w");
  const block = Buffer.alloc(4096, 1);
  const began = performance.now();
  let count = 0;
  while (performance.now() - began < seconds * 1000) {
    writeSync(fd, block);
    fdatasyncSync(fd);
    count++;
  }
  closeSync(fd);
  return ((performance.now() - began) * 1000) / count;
}

console.log(
  `storage-level bench: ${seconds} s per row, 256-byte values, ${cpus().length} × ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
);
console.log(`raw fdatasync of a 4 KiB append on this disk: ${fdatasyncCost().toFixed(1)} µs each`);
console.log("");
console.log("| batch | synced batches/s | entries/s | MB/s |");
console.log("|---:|---:|---:|---:|");
let last = 0;
const store = await openStorage({ dataPath: join(root, "append"), nodeId: 1, clusterId: "bench" });
for (const batch of [1, 16, 256]) {
  const began = performance.now();
  let batches = 0;
  let bytes = 0;
  while (performance.now() - began < seconds * 1000) {
    const entries = Array.from({ length: batch }, (_, i) => command(last + 1 + i));
    last += batch;
    for (const entry of entries) bytes += entry.data.byteLength;
    await store.persist({ entries, hardState: { term: 1, vote: 1, commit: last }, mustSync: true });
    batches++;
  }
  const elapsed = (performance.now() - began) / 1000;
  console.log(
    `| ${batch} | ${fmt(batches / elapsed)} | ${fmt((batches * batch) / elapsed)} | ${(bytes / elapsed / 2 ** 20).toFixed(1)} |`,
  );
}

// Apply everything appended above, 256 entries per call.
{
  const began = performance.now();
  for (let from = 1; from <= last; from += 256) {
    await store.apply(store.raftStorage.entries(from, Math.min(last, from + 255) + 1));
  }
  const elapsed = (performance.now() - began) / 1000;
  console.log("");
  console.log(
    `apply: ${fmt(last / elapsed)} entries/s (${last} entries, 256 per batch, 10,000 distinct keys)`,
  );
}

// Reads of the applied state, each value's checksum verified; and that verification alone
// (the CRC-32 of key and value), so that its share of a read is measured in the same run.
{
  const keys = Array.from({ length: 10_000 }, (_, i) => new TextEncoder().encode(`key-${i}`));
  let began = performance.now();
  let reads = 0;
  while (performance.now() - began < seconds * 1000) {
    await store.get(keys[reads % keys.length]!);
    reads++;
  }
  const readRate = reads / ((performance.now() - began) / 1000);
  const sealed = sealValue(keys[0]!, VALUE);
  began = performance.now();
  let checks = 0;
  while (performance.now() - began < 200) {
    for (let i = 0; i < 1000; i++) openValue(keys[0]!, sealed);
    checks += 1000;
  }
  const checkUs = ((performance.now() - began) * 1000) / checks;
  console.log(
    `get: ${fmt(readRate)} reads/s (10,000 distinct keys); verifying a 256-byte value's checksum: ${checkUs.toFixed(2)} µs, ${((checkUs * readRate) / 1e4).toFixed(1)}% of a read`,
  );
}

// Snapshot build (stream out) and install (stream in + switch) of the resulting state.
{
  const reader = await store.openSnapshotReader(1024 * 1024);
  const chunks: SnapshotChunk[] = [];
  let size = 0;
  let began = performance.now();
  for await (const chunk of reader.chunks()) {
    chunks.push(chunk);
    size += chunk.data.byteLength;
  }
  const build = (performance.now() - began) / 1000;
  const target = await openStorage({
    dataPath: join(root, "install"),
    nodeId: 2,
    clusterId: "bench",
  });
  began = performance.now();
  const installer = await target.beginSnapshotInstall(reader.metadata);
  for (const chunk of chunks) await installer.write(chunk);
  await installer.finish(chunks.at(-1)!.checksum!);
  await target.persist({
    entries: [],
    snapshot: { metadata: reader.metadata, data: new Uint8Array() },
    mustSync: true,
  });
  const install = (performance.now() - began) / 1000;
  const mb = size / 2 ** 20;
  console.log(
    `snapshot of ${mb.toFixed(1)} MB: build ${(mb / build).toFixed(0)} MB/s, install ${(mb / install).toFixed(0)} MB/s`,
  );
  await target.close();
}
await store.close();
await rm(root, { recursive: true, force: true });
