// #/chargers/<id>/status?from&to — connector status over time: one lane per connector, from the status timeline
// (OCPP StatusNotifications and vendor status records such as ev.energy's), drawn as inline SVG. Every state has
// a colour and a name in the legend; each segment's title (on hover and keyboard focus) says lane, state and time.

import { hashFor } from "./app.js";
import { clear, formatDuration, formatTime, h } from "./dom.js";
import { chargerLinks, rangeForm, rangeOrLastDay } from "./range.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_ENTRIES = 20000;
const LABEL_WIDTH = 110;
const LANE_HEIGHT = 28;
const LANE_GAP = 8;
const AXIS_HEIGHT = 34;

// OCPP 1.6 / 2.0.1 connector states, and the states vendor status records give. Unknown ones get a grey.
const COLOURS = {
  Available: "#2e7d32",
  Preparing: "#7cb342",
  Charging: "#1565c0",
  SuspendedEV: "#6a8fd0",
  SuspendedEVSE: "#8e7cc3",
  Finishing: "#00897b",
  Reserved: "#f9a825",
  Occupied: "#5c6bc0",
  Unavailable: "#757575",
  Faulted: "#c62828",
  "Plugged in": "#5c6bc0",
  "Not plugged in": "#9e9e9e",
};
const FALLBACK_COLOUR = "#b0a48a";

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) element.setAttribute(name, String(value));
  }
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(child));
  return element;
}

// A timeline entry as (lane, state, detail): OCPP entries by connector, status records as the charger's own lane.
function reading(entry) {
  if (entry.kind === "status") {
    const state = entry.is_charging ? "Charging" : entry.is_plugged_in ? "Plugged in" : "Not plugged in";
    const power = entry.charge_rate_watts ? `${(entry.charge_rate_watts / 1000).toFixed(1)} kW` : "";
    return { lane: "Vendor status", state, detail: power };
  }
  if (!entry.connector_status) return null;
  const connector = entry.connector_id ?? 0;
  const detail = entry.error_code && entry.error_code !== "NoError" ? entry.error_code : "";
  return { lane: connector === 0 ? "Charger (0)" : `Connector ${connector}`, state: entry.connector_status, detail };
}

// Lanes of segments [start, end) from the entries in time order; a segment lasts until the lane's next entry.
export function lanesOf(entries, rangeEnd) {
  const lanes = new Map();
  for (const entry of entries) {
    const found = reading(entry);
    if (!found) continue;
    const at = new Date(entry.timestamp).getTime();
    if (!lanes.has(found.lane)) lanes.set(found.lane, []);
    const segments = lanes.get(found.lane);
    const previous = segments.at(-1);
    if (previous) previous.end = at;
    if (previous && previous.state === found.state && previous.detail === found.detail) {
      previous.end = null; // the same state again: the segment goes on
      continue;
    }
    segments.push({ start: at, end: null, state: found.state, detail: found.detail, id: entry.id });
  }
  for (const segments of lanes.values()) {
    const last = segments.at(-1);
    if (last) last.end = Math.max(rangeEnd, last.start);
  }
  // Charger (0) first, then connectors in number order, vendor status last.
  const order = (name) => (name.startsWith("Charger") ? -1 : name.startsWith("Connector") ? Number(name.split(" ")[1]) : 1e9);
  return new Map([...lanes.entries()].sort((a, b) => order(a[0]) - order(b[0])));
}

const STEPS = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400].map((s) => s * 1000);

function ticks(start, end, width) {
  const most = Math.max(2, Math.floor(width / 90));
  const step = STEPS.find((candidate) => (end - start) / candidate <= most) ?? STEPS.at(-1);
  const found = [];
  for (let at = Math.ceil(start / step) * step; at <= end; at += step) found.push(at);
  return { found, step };
}

function tickLabel(at, step) {
  const iso = new Date(at).toISOString();
  if (step >= 86400000) return iso.slice(5, 10);
  return iso.slice(11, 16);
}

function chart(lanes, start, end, width) {
  const plot = Math.max(120, width - LABEL_WIDTH - 10);
  const x = (at) => LABEL_WIDTH + ((Math.min(Math.max(at, start), end) - start) / Math.max(1, end - start)) * plot;
  const height = lanes.size * (LANE_HEIGHT + LANE_GAP) + AXIS_HEIGHT;
  const root = svg("svg", {
    class: "status-chart",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "group",
    "aria-label": `Connector status from ${formatTime(new Date(start).toISOString())} to ${formatTime(new Date(end).toISOString())} UTC`,
  });
  let y = 0;
  for (const [lane, segments] of lanes) {
    const group = svg("g", { class: "lane", "data-lane": lane, role: "list", "aria-label": lane });
    group.append(svg("text", { x: 0, y: y + LANE_HEIGHT / 2 + 5, class: "lane-label" }, lane));
    group.append(svg("rect", { x: LABEL_WIDTH, y, width: plot, height: LANE_HEIGHT, class: "lane-bg" }));
    for (const segment of segments) {
      if (segment.end < start || segment.start > end) continue;
      const left = x(segment.start);
      const span = Math.max(1.5, x(segment.end) - left);
      const when = `${formatTime(new Date(segment.start).toISOString())} – ${formatTime(new Date(segment.end).toISOString())} UTC`;
      const text = `${lane}: ${segment.state}${segment.detail ? ` (${segment.detail})` : ""}, ${when}, ${formatDuration((segment.end - segment.start) / 1000)}`;
      const rect = svg(
        "rect",
        {
          x: left,
          y,
          width: span,
          height: LANE_HEIGHT,
          fill: COLOURS[segment.state] ?? FALLBACK_COLOUR,
          class: `segment${segment.detail ? " has-detail" : ""}`,
          "data-state": segment.state,
          tabindex: 0,
          role: "listitem",
          "aria-label": text,
        },
        svg("title", {}, text),
      );
      group.append(rect);
    }
    root.append(group);
    y += LANE_HEIGHT + LANE_GAP;
  }
  const { found, step } = ticks(start, end, plot);
  const axis = svg("g", { class: "axis", "aria-hidden": "true" });
  axis.append(svg("line", { x1: LABEL_WIDTH, x2: LABEL_WIDTH + plot, y1: y, y2: y }));
  for (const at of found) {
    axis.append(svg("line", { x1: x(at), x2: x(at), y1: 0, y2: y + 4, class: "tick" }));
    axis.append(svg("text", { x: x(at), y: y + 18, "text-anchor": "middle" }, tickLabel(at, step)));
  }
  axis.append(svg("text", { x: LABEL_WIDTH + plot, y: y + 32, "text-anchor": "end", class: "axis-unit" }, "UTC"));
  root.append(axis);
  return root;
}

function legend(lanes) {
  const states = new Set();
  for (const segments of lanes.values()) for (const segment of segments) states.add(segment.state);
  return h(
    "ul",
    { class: "legend", "aria-label": "States" },
    [...states].sort().map((state) =>
      h("li", {}, h("span", { class: "swatch", style: `background:${COLOURS[state] ?? FALLBACK_COLOUR}` }), state),
    ),
  );
}

function changesTable(lanes) {
  const rows = [];
  for (const [lane, segments] of lanes) for (const segment of segments) rows.push({ lane, ...segment });
  rows.sort((a, b) => a.start - b.start);
  return h(
    "details",
    { class: "changes" },
    h("summary", {}, `Every change as a table (${rows.length})`),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, h("th", {}, "From (UTC)"), h("th", {}, "Lane"), h("th", {}, "State"), h("th", {}, "For"))),
        h(
          "tbody",
          {},
          rows.map((row) =>
            h(
              "tr",
              {},
              h("td", { class: "mono" }, formatTime(new Date(row.start).toISOString())),
              h("td", {}, row.lane),
              h("td", {}, row.state, row.detail ? ` (${row.detail})` : ""),
              h("td", {}, formatDuration((row.end - row.start) / 1000)),
            ),
          ),
        ),
      ),
    ),
  );
}

export async function render(main, context) {
  const { api, path, params } = context;
  const chargerId = path[0];
  const { from, to } = await rangeOrLastDay(api, chargerId, params);
  const result = h("section", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading the status timeline…"));
  main.append(
    h("h1", {}, `Charger ${chargerId}: connector status`),
    chargerLinks(chargerId, "Status", hashFor),
    rangeForm({
      from,
      to,
      onApply(range) {
        context.setParams(range, { push: true });
        draw(range);
      },
    }),
    result,
  );

  async function draw(range) {
    clear(result).append(h("p", { class: "muted" }, "Loading the status timeline…"));
    const entries = await api.all(`/chargers/${encodeURIComponent(chargerId)}/status`, { ...range, limit: 500 }, "entries", MAX_ENTRIES);
    const times = entries.map((entry) => new Date(entry.timestamp).getTime());
    const start = range.from ? new Date(range.from).getTime() : Math.min(...times);
    const end = range.to ? new Date(range.to).getTime() : Math.max(...times);
    const lanes = lanesOf(entries, end);
    clear(result);
    if (!lanes.size) {
      result.append(h("p", { class: "muted" }, "No status records or StatusNotifications in this range."));
      return;
    }
    const wrap = h("div", { class: "chart-wrap" });
    result.append(h("p", { class: "muted" }, `${entries.length} status entries, ${lanes.size} lanes.`), wrap);
    // As wide as its box (less the box's padding), so the page never scrolls sideways; at least 340 px.
    const width = Math.max(340, wrap.clientWidth - 18);
    wrap.append(chart(lanes, start, end, width));
    result.append(
      legend(lanes),
      changesTable(lanes),
    );
    if (entries.length >= MAX_ENTRIES) {
      result.append(h("p", { class: "error" }, `Only the first ${MAX_ENTRIES} entries: narrow the range.`));
    }
  }

  await draw({ from, to });
}
