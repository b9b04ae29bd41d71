// Server reflection serves the real file descriptors buf builds from proto/ (the files'
// names, snake_case fields and comments) and grpc.health.v1's.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { PackageDefinition } from "@grpc/proto-loader";

const protoDir = fileURLToPath(new URL("../proto", import.meta.url));

/**
 * What server reflection serves: the FileDescriptorProtos buf builds from proto/ (the
 * files' real names, snake_case fields and comments) and grpc.health.v1's, in the shape
 * @grpc/reflection reads (a package definition whose entries list encoded descriptors).
 */
export function reflectionDescriptors(): PackageDefinition {
  const files: Uint8Array[] = [];
  for (const name of ["rockraft.binpb", "health.binpb"]) {
    files.push(...descriptorSetFiles(readFileSync(join(protoDir, name))));
  }
  return { "rockraft.v1": { fileDescriptorProtos: files } } as unknown as PackageDefinition;
}

/** The encoded FileDescriptorProtos of a FileDescriptorSet (field 1, repeated). */
function descriptorSetFiles(set: Uint8Array): Uint8Array[] {
  const files: Uint8Array[] = [];
  let at = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = set[at++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
  };
  while (at < set.length) {
    const tag = varint();
    if (tag !== ((1 << 3) | 2)) throw new Error(`not a FileDescriptorSet (tag ${tag})`);
    const length = varint();
    files.push(set.subarray(at, at + length));
    at += length;
  }
  return files;
}
