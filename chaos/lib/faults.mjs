// The faults of `pnpm chaos`, one at a time from a seeded schedule, each healed before the
// next: kill, pause, partition, slow, disk. Every event is said (one line, with the time)
// and kept for the report.

export const FAULT_CLASSES = ["kill", "pause", "partition", "slow", "disk"];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class FaultSchedule {
  /**
   * `faults`: the classes to draw from; `random(n)`: the schedule's own generator (a seed
   * replays it); `say(line)`: prints a line with the time; `now()`: ms since the start.
   * `network`, `links`, `disks`: present when their fault classes run.
   */
  constructor({ faults, cluster, network, links, disks, random, say, now }) {
    Object.assign(this, { faults, cluster, network, links, disks, random, say, now });
    this.nodeCount = cluster.count;
    /** { fault, what, start, end } per fault, in ms since the start. */
    this.events = [];
    /** What a fault showed that must not happen (a node that kept running on a full disk). */
    this.anomalies = [];
  }

  /** Strikes until `until` (ms since the start) is 8 s away, or `stopping()`. */
  async run(until, stopping) {
    if (this.faults.length === 0) return;
    while (this.now() + 8_000 < until && !stopping()) {
      await sleep(2_000 + this.random(3_000));
      const fault = this.faults[this.random(this.faults.length)];
      const event = { fault, start: this.now() };
      event.what = await this[fault](1 + this.random(this.nodeCount));
      event.end = this.now();
      this.events.push(event);
    }
  }

  async kill(node) {
    this.say(`fault: kill node ${node} (SIGKILL)`);
    await this.cluster.kill(node);
    await sleep(500 + this.random(2_500));
    this.say(`heal: restart node ${node}`);
    this.cluster.restart(node);
    return `node ${node} killed`;
  }

  async pause(node) {
    const ms = 2_500 + this.random(2_000); // longer than the 2 s maximal election timeout
    this.say(`fault: pause node ${node} for ${ms} ms (SIGSTOP)`);
    this.cluster.pause(node);
    await sleep(ms);
    this.say(`heal: resume node ${node} (SIGCONT)`);
    this.cluster.resume(node);
    return `node ${node} paused`;
  }

  async partition() {
    const ids = Array.from({ length: this.nodeCount }, (_, i) => i + 1);
    for (let i = ids.length - 1; i > 0; i--) {
      const j = this.random(i + 1);
      [ids[i], ids[j]] = [ids[j], ids[i]];
    }
    const kind = ["isolate", "split", "bridge"][this.random(3)];
    const cuts = [];
    let what;
    if (kind === "bridge") {
      // Two nodes cannot see each other; a third sees both.
      cuts.push([ids[0], ids[1]]);
      what = `bridge: ${ids[0]} and ${ids[1]} cut from each other, ${ids[2]} sees both`;
    } else {
      const minority = kind === "isolate" ? 1 : Math.floor((this.nodeCount - 1) / 2);
      const small = ids.slice(0, minority);
      const large = ids.slice(minority);
      for (const a of small) for (const b of large) cuts.push([a, b]);
      what = `${kind}: {${small.join(",")}} | {${large.join(",")}}`;
    }
    const ms = 3_000 + this.random(3_000);
    this.say(`fault: partition ${what} for ${ms} ms`);
    for (const [a, b] of cuts) this.network.disconnect(a, b);
    // Connections through the link emulator's proxies are cut there too.
    this.links?.cut(cuts);
    await sleep(ms);
    this.say("heal: every link whole");
    this.network.healAll();
    this.links?.healCuts();
    return `partition ${what}`;
  }

  async slow(node) {
    const delayMs = 20 + this.random(480);
    const link = { delayMs, jitterMs: Math.round(delayMs / 2), lossPercent: this.random(6) };
    const ms = 3_000 + this.random(3_000);
    const what = `node ${node}'s links ${delayMs} ± ${link.jitterMs} ms, ${link.lossPercent}% loss`;
    this.say(`fault: slow ${what}, for ${ms} ms`);
    this.links.slow(node, link);
    await sleep(ms);
    this.say("heal: every link at full speed");
    this.links.heal();
    return `slow ${what}`;
  }

  async disk(node) {
    // The node may stop now: that is what it must do.
    this.cluster.expectExit(node);
    const bytes = await this.disks.fill(node);
    this.say(`fault: disk of node ${node} full (${(bytes / 2 ** 20).toFixed(1)} MiB written)`);
    const stopped = await this.cluster.exitsWithin(node, 10_000);
    if (stopped) {
      const { child } = this.cluster.nodes.get(node);
      const status = child.signalCode ?? `exit status ${child.exitCode}`;
      this.say(`node ${node} stopped (${status}): ${this.cluster.lastError(node)}`);
    } else {
      this.cluster.expectExit(node, false);
      this.anomalies.push(`node ${node} was still running 10 s after its disk filled`);
      this.say(`node ${node} still running 10 s after its disk filled`);
    }
    await sleep(500 + this.random(1_500));
    this.disks.free(node);
    this.say(`heal: disk of node ${node} freed${stopped ? "; restart node " + node : ""}`);
    if (stopped) this.cluster.restart(node);
    return `disk of node ${node} full`;
  }
}
