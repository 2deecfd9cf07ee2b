// Fleet: every charger (GET /chargers) with its vendor, site, last record, connector states now and its
// collector's health (GET /collectors, matched by vendor and source). Filters vendor, site and state live in the
// URL. A charger that went quiet (no record for QUIET_AFTER_SECONDS) gets a badge and sorts first.
//
// Connector states now: the latest status per connector comes from the charger's status timeline, newest first
// (GET /chargers/{id}/status?order=desc&limit=STATUS_LOOKBACK), fetched only for the rows on screen (and for every
// row while a state filter is set). Keeping the latest state on the charger index entry would cost a write per
// StatusNotification for a figure the viewer reads rarely; a small read per visible row costs nothing at rest.
//
// Alerts: a panel above the table lists the open alerts (GET /alerts?state=open, with the vendor and site filters;
// alerts.js), and the table marks each charger with open alerts ("alerts" in the state filter keeps only those).
// Quiet chargers still come first; among the rest, chargers with open alerts come first.

import { alertsPanel, kindLabel, stateClass } from "./alerts.js";
import { hashFor } from "./app.js";
import { field, formatDuration, formatTime, h } from "./dom.js";

// The schedules collect every 5 minutes by default (ScheduleMinutes, at most 15): an hour is at least 4 missed
// collections, so a charger with no record for that long has stopped talking (or its collector has stopped).
export const QUIET_AFTER_SECONDS = 3600;
const STATUS_LOOKBACK = 50;
const STATE_FETCHES_AT_ONCE = 4;
// State filter words that are not connector states: they need no connector state read.
const SPECIAL_STATES = new Set(["quiet", "alerts", "alert"]);

function ageSeconds(iso, now = Date.now()) {
  const time = Date.parse(iso);
  return Number.isNaN(time) ? null : Math.max(0, (now - time) / 1000);
}

// The latest state per connector from a status timeline read newest first. OCPP entries name their connector;
// a vendor status record (ev.energy) describes the whole charger: "Charging", "Plugged in" or "Idle".
export function latestStates(entries) {
  const states = new Map();
  for (const entry of entries) {
    const connector = entry.connector_id ?? 0;
    if (states.has(connector)) continue;
    let state = entry.connector_status;
    if (!state && entry.kind === "status") {
      state = entry.is_charging ? "Charging" : entry.is_plugged_in ? "Plugged in" : "Idle";
    }
    if (!state) continue;
    states.set(connector, { state, errorCode: entry.error_code, at: entry.timestamp });
  }
  return [...states.entries()].sort(([a], [b]) => a - b).map(([connector, value]) => ({ connector, ...value }));
}

function collectorCell(collector) {
  if (!collector) return h("td", {}, h("span", { class: "muted" }, "no collector"));
  const failing = collector.status && collector.status !== "ok";
  return h(
    "td",
    {},
    h("span", { class: `badge ${failing ? "bad" : "ok"}` }, collector.status ?? "unknown"),
    " ",
    collector.lag_seconds == null ? "" : `lag ${formatDuration(collector.lag_seconds)}`,
    collector.last_error
      ? h("div", { class: "error-text" }, `Last error ${formatTime(collector.last_error_at)}: ${collector.last_error}`)
      : null,
  );
}

export async function render(main, context) {
  const { api, params } = context;
  const filters = {
    vendor: params.get("vendor") ?? "",
    site: params.get("site") ?? "",
    state: params.get("state") ?? "",
    resolved: params.get("resolved") === "1" ? "1" : "",
  };
  // The alerts are read at once, beside the chargers: the panel draws them when they come, whatever else fails;
  // the rows get theirs once both are there.
  let openAlerts = null; // [alerts, outcome] of the panel's latest list
  let drawAlerts = null; // once the rows exist
  const panel = alertsPanel(api, {
    showResolved: filters.resolved === "1",
    onToggleResolved(shown) {
      filters.resolved = shown ? "1" : "";
      context.setParams(filters);
    },
    onOpenAlerts(alerts, outcome) {
      openAlerts = [alerts, outcome];
      drawAlerts?.(alerts, outcome);
    },
  });
  panel.setFilters({ vendor: filters.vendor, site_id: filters.site });
  const [chargerBody, collectorBody] = await Promise.all([api.get("/chargers"), api.get("/collectors")]);
  const collectors = new Map(collectorBody.collectors.map((c) => [`${c.vendor}/${c.source_id}`, c]));
  const now = Date.now();
  const rows = chargerBody.chargers.map((charger) => {
    const age = ageSeconds(charger.last_record_at, now);
    return {
      charger,
      collector: collectors.get(`${charger.vendor}/${charger.source_id}`),
      age,
      quiet: age === null || age > QUIET_AFTER_SECONDS,
      states: null, // filled in by loadStates
      alerts: null, // open alerts, once the panel has them
      element: null,
      stateCell: null,
      alertCell: null,
    };
  });
  // Quiet chargers first (longest silence first), then chargers with open alerts (most first), then by charger id.
  const alertCount = (row) => row.alerts?.length ?? 0;
  const order = (a, b) =>
    Number(b.quiet) - Number(a.quiet) ||
    (b.quiet ? b.age - a.age : 0) ||
    alertCount(b) - alertCount(a) ||
    a.charger.charger_id.localeCompare(b.charger.charger_id);
  rows.sort(order);

  const vendors = [...new Set(rows.map((row) => row.charger.vendor))].sort();
  const sites = [...new Set(rows.map((row) => row.charger.site_id).filter(Boolean))].sort();

  const vendorSelect = h("select", { name: "vendor", id: "fleet-vendor" }, h("option", { value: "" }, "All vendors"), vendors.map((v) => h("option", { value: v, selected: v === filters.vendor }, v)));
  const siteSelect = h("select", { name: "site", id: "fleet-site" }, h("option", { value: "" }, "All sites"), sites.map((s) => h("option", { value: s, selected: s === filters.site }, s)));
  const stateInput = h("input", { name: "state", id: "fleet-state", type: "search", value: filters.state, list: "fleet-state-names", placeholder: "Faulted, Charging…" });
  const stateNames = h("datalist", { id: "fleet-state-names" }, ["Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Reserved", "Unavailable", "Faulted", "Occupied", "Plugged in", "Idle", "quiet", "alerts"].map((s) => h("option", { value: s })));
  const summary = h("p", { class: "muted", id: "fleet-summary", "aria-live": "polite" });
  const body = h("tbody");

  const quietText = `A charger is quiet when its last record is more than ${formatDuration(QUIET_AFTER_SECONDS)} old: the schedules collect every 5 minutes by default (at most 15), so that is several collections without a word. Its collector's health tells whether the charger or the collection went silent.`;

  main.append(
    h("h1", {}, "Fleet"),
    h("form", { class: "filters", role: "search", "aria-label": "Fleet filters", onsubmit: (e) => e.preventDefault() }, field("Vendor", vendorSelect), field("Site", siteSelect), field("Connector state", stateInput, "or “quiet”, “alerts”"), stateNames),
    panel.element,
    h("p", { class: "muted" }, quietText),
    summary,
    h(
      "div",
      { class: "table-wrap" },
      h("table", { id: "fleet-table" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Charger"), h("th", { scope: "col" }, "Vendor"), h("th", { scope: "col" }, "Site"), h("th", { scope: "col" }, "Last record"), h("th", { scope: "col" }, "Connectors now"), h("th", { scope: "col" }, "Alerts"), h("th", { scope: "col" }, "Collector"), h("th", { scope: "col" }, "Open"))), body),
    ),
  );

  let stopped = false;
  const pending = [];
  let running = 0;
  function loadStates(row) {
    if (row.states !== null || row.loading) return row.loading;
    row.loading = new Promise((resolve) => pending.push({ row, resolve }));
    pump();
    return row.loading;
  }
  function pump() {
    while (running < STATE_FETCHES_AT_ONCE && pending.length && !stopped) {
      const { row, resolve } = pending.shift();
      running += 1;
      api
        .get(`/chargers/${encodeURIComponent(row.charger.charger_id)}/status`, { order: "desc", limit: STATUS_LOOKBACK })
        .then((page) => {
          row.states = latestStates(page.entries);
        })
        .catch((error) => {
          row.states = [];
          row.stateError = error.message;
        })
        .finally(() => {
          running -= 1;
          if (!stopped) {
            drawStates(row);
            applyFilters(false);
          }
          resolve();
          pump();
        });
    }
  }

  function drawStates(row) {
    const cell = row.stateCell;
    cell.replaceChildren();
    if (row.states === null) cell.append(h("span", { class: "muted" }, "…"));
    else if (row.stateError) cell.append(h("span", { class: "error-text" }, row.stateError));
    else if (!row.states.length) cell.append(h("span", { class: "muted" }, "no status yet"));
    else
      for (const one of row.states) {
        const error = one.errorCode && one.errorCode !== "NoError" ? ` (${one.errorCode})` : "";
        cell.append(h("span", { class: `badge ${stateClass(one.state)}`, title: `since ${formatTime(one.at)}` }, `${one.connector === 0 ? "charger" : `#${one.connector}`} ${one.state}${error}`), " ");
      }
  }

  const observer = new IntersectionObserver((seen) => {
    for (const entry of seen) if (entry.isIntersecting) loadStates(entry.target.fleetRow);
  });

  for (const row of rows) {
    const { charger } = row;
    const id = charger.charger_id;
    row.stateCell = h("td", { class: "states" });
    row.alertCell = h("td", { class: "alert-count" });
    drawStates(row);
    drawAlertCell(row);
    row.element = h(
      "tr",
      { class: row.quiet ? "flag-warn" : "", dataset: { chargerId: id } },
      h("th", { scope: "row" }, h("a", { href: hashFor("chargers", [id]) }, id)),
      h("td", {}, charger.vendor),
      h("td", {}, charger.site_id ?? h("span", { class: "muted" }, "—")),
      h("td", {}, formatTime(charger.last_record_at), h("br"), h("small", { class: "muted" }, row.age === null ? "" : `${formatDuration(row.age)} ago`), row.quiet ? [" ", h("span", { class: "badge warn" }, "quiet")] : null),
      row.stateCell,
      row.alertCell,
      collectorCell(row.collector),
      h("td", { class: "links" }, h("a", { href: hashFor("chargers", [id]) }, "Timeline"), " · ", h("a", { href: hashFor("chargers", [id, "status"]) }, "Status"), " · ", h("a", { href: hashFor("chargers", [id, "sessions"]) }, "Sessions")),
    );
    row.element.fleetRow = row;
    body.append(row.element);
  }

  function drawAlertCell(row) {
    const cell = row.alertCell;
    const id = row.charger.charger_id;
    if (row.alerts === null) {
      cell.replaceChildren(h("span", { class: "muted", title: row.alertsFailed ? "the open alerts could not be read" : "reading the open alerts" }, row.alertsFailed ? "?" : "…"));
      return;
    }
    const n = row.alerts.length;
    if (!n) {
      cell.replaceChildren(h("span", { class: "muted", title: row.alertsPartial ? "none among the alerts read" : "no open alert" }, "—"));
      return;
    }
    const kinds = [...new Set(row.alerts.map((alert) => kindLabel(alert.kind)))].join(", ");
    cell.replaceChildren(
      h("a", { href: hashFor("chargers", [id]), class: "badge bad", title: kinds, "aria-label": `${n} open alert${n === 1 ? "" : "s"} on ${id}: ${kinds}` }, `${n} open`),
    );
  }

  // The panel's open alerts on the rows (by vendor, source and charger), and the order again.
  drawAlerts = (alerts, { complete, failed }) => {
    const byCharger = new Map();
    for (const alert of alerts) {
      const key = `${alert.vendor}/${alert.source_id}/${alert.charger_id}`;
      if (!byCharger.has(key)) byCharger.set(key, []);
      byCharger.get(key).push(alert);
    }
    for (const row of rows) {
      const found = byCharger.get(`${row.charger.vendor}/${row.charger.source_id}/${row.charger.charger_id}`) ?? [];
      row.alerts = failed && !found.length ? null : found;
      row.alertsFailed = failed;
      row.alertsPartial = !complete;
      drawAlertCell(row);
    }
    rows.sort(order);
    body.append(...rows.map((row) => row.element));
    applyFilters(false);
  };

  function matchesState(row, wanted) {
    if (!wanted) return true;
    const lower = wanted.toLowerCase();
    if (lower === "quiet") return row.quiet;
    if (lower === "alerts" || lower === "alert") return row.alerts === null || row.alerts.length > 0; // not known yet: shown
    if (row.states === null) return true; // not known yet: shown until its states arrive
    return row.states.some((one) => one.state.toLowerCase().includes(lower) || (one.errorCode ?? "").toLowerCase().includes(lower));
  }

  function applyFilters(writeUrl = true) {
    filters.vendor = vendorSelect.value;
    filters.site = siteSelect.value;
    filters.state = stateInput.value.trim();
    let shown = 0;
    let quiet = 0;
    let alerting = 0;
    for (const row of rows) {
      const visible = (!filters.vendor || row.charger.vendor === filters.vendor) && (!filters.site || row.charger.site_id === filters.site) && matchesState(row, filters.state);
      row.element.hidden = !visible;
      if (visible) {
        shown += 1;
        if (row.quiet) quiet += 1;
        if (row.alerts?.length) alerting += 1;
        if (filters.state && !SPECIAL_STATES.has(filters.state.toLowerCase())) loadStates(row);
      }
    }
    summary.textContent = `${shown} of ${rows.length} chargers shown; ${quiet} quiet; ${alerting} with open alerts.`;
    panel.setFilters({ vendor: filters.vendor, site_id: filters.site });
    if (writeUrl) context.setParams(filters);
  }

  if (openAlerts) drawAlerts(...openAlerts);
  vendorSelect.addEventListener("change", () => applyFilters());
  siteSelect.addEventListener("change", () => applyFilters());
  stateInput.addEventListener("input", () => applyFilters());
  applyFilters(false);
  for (const row of rows) observer.observe(row.element);

  return () => {
    stopped = true;
    panel.stop();
    observer.disconnect();
    pending.length = 0;
  };
}
