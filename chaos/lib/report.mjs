// What a failing `pnpm chaos` run leaves behind: history.json (every operation) and
// report.html, a timeline per failing key in the manner of Porcupine's pictures: one row
// per client, each operation a bar from its call to its answer (an unknown outcome runs to
// the edge, dashed), the call where every linearization fails ringed in red with the window
// around it shaded, and the faults as grey bands.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe } from "@rockraft/test-utils";

const COLORS = { put: "#4e79a7", get: "#59a14f", delete: "#e15759", cas: "#f28e2b" };
const escape = (s) =>
  String(s).replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c],
  );

/** The operations to draw for a violation at call time `at`: the last `n` calls up to it. */
function windowOf(ops, at, n = 40) {
  const upTo = ops.filter((op) => op.call <= (at ?? Infinity)).sort((a, b) => a.call - b.call);
  const shown = upTo.slice(-n);
  const last = shown[shown.length - 1];
  // Operations still open when the violating call was made are part of the picture too.
  const open = ops.filter((op) => op.call < (shown[0]?.call ?? 0) && op.ret > (last?.call ?? 0));
  return { shown: [...open, ...shown], culprit: last };
}

function timeline(key, ops, at, faults) {
  const { shown, culprit } = windowOf(ops, at);
  // As Porcupine draws it: x is the order of calls and answers (each event a step), so that
  // quick operations stay readable beside slow ones; an unknown outcome runs to the edge.
  const events = [];
  for (const op of shown) {
    events.push({ clock: op.call, t: op.t0 });
    if (op.ret !== Infinity) events.push({ clock: op.ret, t: op.t1 });
  }
  events.sort((a, b) => a.clock - b.clock);
  const rank = new Map(events.map((e, i) => [e.clock, i]));
  const width = 1200;
  const left = 110;
  const rowHeight = 26;
  const clients = [...new Set(shown.map((op) => op.client))].sort((a, b) => a - b);
  const height = 40 + clients.length * rowHeight;
  const step = (width - left - 20) / Math.max(1, events.length);
  const x = (i) => left + i * step;
  const xOfClock = (clock) => (clock === Infinity ? x(events.length) : x(rank.get(clock)));
  // A real time's place: before the first event at or after it.
  const xOfTime = (t) => {
    const i = events.findIndex((e) => e.t >= t);
    return x(i === -1 ? events.length : i);
  };
  const parts = [];
  const [first, last] = [events[0]?.t ?? 0, events.at(-1)?.t ?? 0];
  for (const fault of faults) {
    if (fault.end < first || fault.start > last) continue;
    const x0 = xOfTime(fault.start);
    parts.push(
      `<rect x="${x0}" y="20" width="${Math.max(3, xOfTime(fault.end) - x0)}" height="${height - 20}" fill="#ddd"><title>${escape(fault.what)}</title></rect>`,
      `<text x="${x0 + 2}" y="14" font-size="10" fill="#666">${escape(fault.what)}</text>`,
    );
  }
  if (culprit !== undefined) {
    // From the first call still unanswered when the failing call was made, to its answer.
    const open = shown.filter((op) => op.ret > culprit.call && op.ret !== Infinity);
    const w0 = Math.min(...[...open, culprit].map((op) => xOfClock(op.call)));
    parts.push(
      `<rect x="${w0}" y="20" width="${Math.max(3, xOfClock(culprit.ret) + step - w0)}" height="${height - 20}" fill="#f99" opacity="0.35"><title>the window where the checker fails</title></rect>`,
    );
  }
  clients.forEach((client, row) => {
    const y = 28 + row * rowHeight;
    parts.push(
      `<text x="4" y="${y + 13}" font-size="11">${client >= 1000 ? `final read ${client - 999}` : `client ${client}`}</text>`,
    );
    for (const op of shown.filter((o) => o.client === client)) {
      const x0 = rank.has(op.call) ? xOfClock(op.call) : left;
      const x1 = Math.max(x0 + 3, xOfClock(op.ret) + step / 2);
      const label = describe(op).replace(/^\[[^\]]*\] client \d+( on node \d+)? /, "");
      const ring = op === culprit ? ` stroke="red" stroke-width="3"` : "";
      const dash =
        op.ret === Infinity ? ` stroke-dasharray="4 2" stroke="#333" fill-opacity="0.35"` : "";
      const when = `${op.t0.toFixed(1)} to ${op.t1 === undefined ? "?" : op.t1.toFixed(1)} ms`;
      parts.push(
        `<svg x="${x0}" y="${y}" width="${x1 - x0}" height="18"><rect width="100%" height="100%" fill="${COLORS[op.input.op]}"${dash}${ring}><title>${escape(`${describe(op)}, ${when}`)}</title></rect>` +
          `<text x="2" y="13" font-size="10" fill="white">${escape(label)}</text></svg>`,
      );
    }
  });
  const span = (last - first).toFixed(0);
  return `<h2>key ${escape(key)}</h2>
<p>The last ${shown.length} operations (${span} ms) up to the call where every linearization fails, ringed in
red. Hover a bar for its call, answer and times.</p>
<svg width="${width}" height="${height}" font-family="sans-serif">${parts.join("")}</svg>`;
}

/** Writes history.json and report.html into `dir`; returns the page's path. */
export async function writeReport({ dir, history, violations, faults, title }) {
  await writeFile(
    join(dir, "history.json"),
    JSON.stringify(history, (_, v) => (v === Infinity ? "Infinity" : v), 1),
  );
  const legend = Object.entries(COLORS)
    .map(
      ([op, color]) => `<span style="background:${color};color:white;padding:2px 6px">${op}</span>`,
    )
    .join(" ");
  const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body style="font-family:sans-serif">
<h1>${escape(title)}</h1>
<p>${legend} &nbsp; grey bands: faults; dashed bars: unknown outcomes (they may take effect any time after
their call, or never); shaded red: the window where the checker fails. Left to right: calls and answers in the
order the harness saw them; times in ms since the run started.</p>
${violations.map(({ key, ops, at }) => timeline(key, ops, at, faults)).join("\n")}
</body></html>
`;
  const path = join(dir, "report.html");
  await writeFile(path, page);
  return path;
}
