// The floor: a bare grpc-js server of rockraft's KV service that answers every call at once
// (no Raft, no storage), one process per port given. What any grpc-js service costs per
// call on this machine, with rockraft's messages.
//   node lib/echo-server.mjs PORT
import { grpc, rockraftService } from "@rockraft/test-utils/stubs";

const port = Number(process.argv[2]);
const value = Buffer.alloc(256, 120);
let index = 0;
const logId = () => ({ term: "1", node_id: "1", index: String(++index) });
const server = new grpc.Server();
server.addService(rockraftService(), {
  Put: (_call, callback) => callback(null, { log_id: logId() }),
  Get: (_call, callback) => callback(null, { found: true, value }),
  Delete: (_call, callback) => callback(null, { log_id: logId(), found: true }),
  CompareAndSwap: (_call, callback) =>
    callback(null, { succeeded: true, found: true, current: value, log_id: logId() }),
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error) => {
  if (error) throw error;
  console.log(`echo server is running on ${port}`);
});
process.on("SIGINT", () => server.tryShutdown(() => process.exit(0)));
