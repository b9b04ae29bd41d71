// A rolled-back apply leaves the session table as if it never ran, whatever it did: writes
// in and out of order, retried and late, acknowledgements that drop answers, refusals,
// sessions opened, closed and expired. Random applies from a fixed seed, each checked against a twin that never saw it.
import { createPrng } from "@rockraft/raft-core";
import { expect, test } from "vitest";
import { SessionTable, type SessionResponse } from "../src/index.js";

const LIMITS = { idleTimeoutMs: 50, maxUnacknowledged: 8, maxSessions: 4 };

interface Twin {
  readonly table: SessionTable;
  /** Per session: the next sequence number, and those not acknowledged yet. */
  readonly clients: Map<number, { next: number; open: number[] }>;
}

/** One random step, the same on every table it is given (the clients' numbering too). */
function step(random: (n: number) => number, index: number, twins: Twin[]): void {
  const clients = twins[0]!.clients;
  const choice = random(20);
  const ids = [...clients.keys()];
  if (choice === 0 || ids.length === 0) {
    for (const { table } of twins) table.open(index, LIMITS);
    for (const twin of twins) twin.clients.set(index, { next: 1, open: [] });
    return;
  }
  const id = ids[random(ids.length)]!;
  if (choice === 1) {
    for (const twin of twins) {
      twin.table.close(id);
      twin.clients.delete(id);
    }
    return;
  }
  if (choice === 2) {
    const elapsed = random(30);
    for (const twin of twins) {
      for (const expired of twin.table.advance(elapsed)) twin.clients.delete(expired);
    }
    return;
  }
  // A write: a new one, or a retry of one still open; answered (acknowledged) at random.
  const client = clients.get(id)!;
  const retry = client.open.length > 0 && random(3) === 0;
  // Now and then a late duplicate of an answered write (stale), or a new one.
  const late = !retry && client.next > 1 && random(6) === 0;
  const seq = retry
    ? client.open[random(client.open.length)]!
    : late
      ? 1 + random(client.next - 1)
      : client.next;
  const answered = client.open.length > 0 && random(2) === 0 ? random(client.open.length) : -1;
  for (const twin of twins) {
    const mine = twin.clients.get(id)!;
    if (!retry && !late) {
      mine.next++;
      mine.open.push(seq);
    }
    const acknowledged = Math.min(...mine.open, mine.next);
    const tag = { id, seq, acknowledged };
    const check = twin.table.check(tag, "put");
    if (check.action === "apply") {
      const response: SessionResponse = { kind: "put", index, term: 1 };
      twin.table.record(tag, response);
    }
    if (answered >= 0) mine.open.splice(answered, 1);
  }
}

interface SessionState {
  lastActive: number;
  acknowledged: number;
  responses: Map<number, SessionResponse>;
  ascending: boolean;
  lastSeq: number;
}

/** A table's sessions, to compare (its order flag is checked to hold, not compared). */
function contents(table: SessionTable): Map<number, unknown> {
  const inside = table as unknown as { sessions: Map<number, SessionState>; time: number };
  const sessions = inside.sessions;
  const out = new Map<number, unknown>([[0, { time: inside.time }]]);
  for (const [id, session] of sessions) {
    const seqs = [...session.responses.keys()];
    if (session.ascending) {
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      if (seqs.length > 0) expect(session.lastSeq).toBe(seqs.at(-1));
    }
    out.set(id, {
      lastActive: session.lastActive,
      acknowledged: session.acknowledged,
      responses: new Map([...session.responses].sort(([a], [b]) => a - b)),
    });
  }
  return out;
}

function copyClients(clients: Twin["clients"]): Twin["clients"] {
  return new Map([...clients].map(([id, c]) => [id, { next: c.next, open: [...c.open] }]));
}

test("a rolled-back apply leaves the table as a twin that never ran it (300 random applies)", () => {
  for (let seed = 1; seed <= 300; seed++) {
    const prng = createPrng(seed);
    const random = (n: number) => prng.nextInt(n);
    const twin: Twin = { table: new SessionTable(), clients: new Map() };
    const other: Twin = { table: new SessionTable(), clients: new Map() };
    let index = 1;
    for (let i = random(40); i > 0; i--) step(random, index++, [twin, other]);
    const before = copyClients(twin.clients);
    twin.table.begin();
    const applied: Twin = { table: twin.table, clients: copyClients(twin.clients) };
    for (let i = 1 + random(20); i > 0; i--) step(random, index++, [applied]);
    twin.table.rollback();
    expect(contents(twin.table), `seed ${seed}`).toEqual(contents(other.table));
    // And both go on alike.
    const on: Twin = { table: twin.table, clients: before };
    for (let i = 20; i > 0; i--) step(random, index++, [on, other]);
    expect(contents(twin.table), `seed ${seed}, after`).toEqual(contents(other.table));
  }
});
