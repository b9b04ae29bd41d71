// The user-space link emulator's process (forked by links.mjs): one TCP proxy in front of
// each address a node serves. Bytes pass through unchanged, in order; a connection touching
// a "slow" node (the node it leads to, or, when nodes have addresses of their own, the node
// it comes from) has each chunk held back by a delay with jitter, and a "lost" chunk held
// back as long as a TCP retransmission would take (TCP under loss delays; it never drops).
// A connection between two nodes the harness has partitioned holds everything until the
// partition heals (the nodes' own blackhole routes cut what they send to a proxy; this cuts
// what a proxy would pass on to them).
// It runs apart from the harness so that the workload and the checker never stall a link.
import { createServer, connect } from "node:net";

/** Per node id: { delayMs, jitterMs, lossPercent } while slow. */
const slow = new Map();
/** Cut pairs of nodes ("a-b", a < b): their connections hold every byte until healed. */
const cuts = new Set();
const isCut = (nodes) =>
  nodes.length === 2 && cuts.has(`${Math.min(...nodes)}-${Math.max(...nodes)}`);
/** Node id by host, when every node has an address of its own (network namespaces). */
let nodeByHost = new Map();
const RETRANSMIT_MS = 200; // Linux's minimal retransmission timeout

function holdFor(nodes) {
  let ms = 0;
  for (const id of nodes) {
    const link = slow.get(id);
    if (link === undefined) continue;
    let hold = link.delayMs + (Math.random() * 2 - 1) * link.jitterMs;
    if (Math.random() * 100 < link.lossPercent) hold += RETRANSMIT_MS * (1 + Math.random());
    ms = Math.max(ms, hold);
  }
  return Math.max(0, ms);
}

/** Forwards `from` to `to`, each chunk released no sooner than its hold nor its predecessor. */
function pipe(from, to, nodes) {
  const queue = []; // [releaseAt, chunk], in arrival order, releaseAt never decreasing
  let timer;
  let ended = false;
  const drain = () => {
    timer = undefined;
    const now = performance.now();
    // A cut link passes nothing: what it holds goes once the cut heals, as TCP would resend it.
    if (isCut(nodes)) {
      timer = setTimeout(drain, 50);
      return;
    }
    while (queue.length > 0 && queue[0][0] <= now) {
      const [, chunk] = queue.shift();
      if (!to.destroyed) to.write(chunk);
    }
    if (queue.length > 0) timer = setTimeout(drain, queue[0][0] - now);
    else if (ended) to.end();
  };
  from.on("data", (chunk) => {
    const hold = holdFor(nodes);
    if (hold === 0 && queue.length === 0 && !isCut(nodes)) {
      to.write(chunk);
      return;
    }
    const last = queue.length > 0 ? queue[queue.length - 1][0] : 0;
    queue.push([Math.max(last, performance.now() + hold), chunk]);
    timer ??= setTimeout(drain, queue[0][0] - performance.now());
  });
  from.on("end", () => {
    ended = true;
    if (queue.length === 0) to.end();
  });
}

function listen({ node, listen: [host, port], target: [targetHost, targetPort] }) {
  return new Promise((resolve, reject) => {
    const server = createServer({ noDelay: true }, (client) => {
      const from = nodeByHost.get(client.remoteAddress?.replace(/^::ffff:/, ""));
      const nodes = from === undefined ? [node] : [node, from];
      const upstream = connect({ host: targetHost, port: targetPort, noDelay: true });
      const destroy = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", destroy).on("close", destroy);
      upstream.on("error", destroy).on("close", destroy);
      pipe(client, upstream, nodes);
      pipe(upstream, client, nodes);
    });
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

process.on("message", async (message) => {
  try {
    if (message.type === "routes") {
      nodeByHost = new Map(message.nodeHosts);
      for (const route of message.routes) await listen(route);
      process.send({ type: "ready" });
    } else if (message.type === "slow") {
      slow.set(message.node, message.link);
    } else if (message.type === "heal") {
      slow.clear();
    } else if (message.type === "cut") {
      for (const [a, b] of message.pairs) cuts.add(`${Math.min(a, b)}-${Math.max(a, b)}`);
    } else if (message.type === "heal-cuts") {
      cuts.clear();
    }
  } catch (error) {
    process.send({ type: "error", message: String(error?.message ?? error) });
  }
});
process.on("disconnect", () => process.exit(0));
