import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { expect, test } from "vitest";

// The example's config files are the seed's, byte for byte: `pnpm start -- --conf
// conf/node1.toml` behaves as the seed's README says.
test.each([1, 2, 3])("conf/node%i.toml is the seed's file", async (id) => {
  const text = await readFile(join(import.meta.dirname, `../conf/node${id}.toml`), "utf8");
  expect(text).toBe(
    `[node]\nnode_id = ${id}\nraft_addr = "127.0.0.1:${6681 + id}"\n\n[rocksdb]\ndata_path = "/tmp/rockraft/node${id}"\nmax_open_files = 10000\n`,
  );
});
