// Charger health alerts (GET /alerts, GET /chargers/{id}/health): the fleet's alerts panel and the charger page's
// health strip, and what both need of an alert (its kind's name, when it opened, where its evidence is).
//
// Evidence: an alert names the records that show it (`evidence`, oldest first, and `resolution_evidence`). A record
// id as the API lists it is "<time>~<record id>", so its time is in the id: the timeline's range can be set around
// the evidence without reading the records first. An id without the time (a bare record id) is matched by its
// record id part, and the range then comes from the alert's own times (`evidenceRange`).
//
// A panel's failed call shows one line in the panel (what failed and the API's detail); the rest of the page renders.

import { hashFor } from "./app.js";
import { formatDuration, formatTime, h } from "./dom.js";

// The fleet panel reads at most this many alerts at once (newest first); "More…" reads as many again.
export const ALERTS_AT_MOST = 200;
const PAGE_MOST = 500; // the API's largest page (logic/alerts.py MAX_LIMIT)
const PAGES_AT_MOST = 20; // a narrow filter over a long history can give short pages with a cursor: stop somewhere
export const RESOLVED_WITHIN_MS = 24 * 3600 * 1000;
const CHARGER_RESOLVED = 10;
// Records shown before the first evidence record and after the last (the API's CALL/reply pairing window).
const MARGIN_MS = 5 * 60 * 1000;
// Without times in the evidence ids: how long before the alert opened its evidence can start (the kinds' default
// windows, docs/health.md; a stuck session's evidence is its start, stuck_session_hours before).
const LOOKBACK_MS = { stuck_session: 25 * 3600 * 1000, offline: 2 * 3600 * 1000 };
const DEFAULT_LOOKBACK_MS = 3600 * 1000;

export const KIND_LABELS = {
  boot_loop: "Boot loop",
  connector_faulted: "Connector faulted",
  offline: "Offline",
  error_burst: "Error burst",
  authorization_failures: "Authorization failures",
  firmware_failed: "Firmware update failed",
  diagnostics_failed: "Diagnostics upload failed",
  stuck_session: "Stuck session",
};

export function kindLabel(kind) {
  return KIND_LABELS[kind] ?? kind;
}

// A connector status's badge colour (always beside its name).
export function stateClass(state) {
  if (/fault|unavailable|inoperative/i.test(state)) return "bad";
  if (/charging|occupied|preparing|finishing|suspended|plugged/i.test(state)) return "warn";
  return "ok";
}

// "35 min ago", "just now" (from the clock of the browser).
export function ago(iso, now = Date.now()) {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return "";
  const seconds = (now - at) / 1000;
  if (seconds < 0) return `in ${formatDuration(-seconds)}`;
  return seconds < 60 ? "just now" : `${formatDuration(seconds)} ago`;
}

// A time shown relative and absolute (UTC, to the second).
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const absolute = formatTime(iso).replace(/\.\d+$/, "");
  return h("span", { class: "when" }, h("time", { datetime: iso }, ago(iso)), h("br"), h("small", { class: "muted" }, `${absolute} UTC`));
}

function oneLine(text) {
  return String(text ?? "").replace(/\s+/g, " ").trim();
}

// The one line a failed call leaves in its panel.
export function failure(what, error) {
  const status = error?.status ? ` (${error.status})` : "";
  return h("p", { class: "error panel-error", role: "alert" }, `${what}${status}: ${oneLine(error?.message ?? error)}`);
}

// A record id's time: "<time>~<record id>" as the API lists records; null for an id without it.
export function recordTime(id) {
  const cut = String(id).indexOf("~");
  if (cut < 1) return null;
  const at = Date.parse(id.slice(0, cut));
  return Number.isNaN(at) ? null : at;
}

// The record id part of an API record id ("<time>~<record id>"); a bare record id as it is.
export function recordPart(id) {
  const text = String(id);
  return text.slice(text.indexOf("~") + 1);
}

function isoSeconds(ms, up = false) {
  const whole = (up ? Math.ceil(ms / 1000) : Math.floor(ms / 1000)) * 1000;
  return new Date(whole).toISOString().replace(/\.\d{3}Z$/, "Z");
}

// The timeline range that holds an alert's evidence: from a little before its first record; for a resolved alert
// to a little after it resolved (or its last record), for an open one up to now (no end).
export function evidenceRange(alert) {
  const times = [...(alert.evidence ?? []), ...(alert.resolution_evidence ?? [])].map(recordTime).filter((t) => t !== null);
  const opened = Date.parse(alert.opened_at);
  const resolved = alert.resolved_at ? Date.parse(alert.resolved_at) : NaN;
  const starts = [...times];
  if (!Number.isNaN(opened)) {
    starts.push(opened);
    if (!times.length) starts.push(opened - (LOOKBACK_MS[alert.kind] ?? DEFAULT_LOOKBACK_MS));
  }
  if (!starts.length) return null;
  const ends = [...times, ...starts];
  if (!Number.isNaN(resolved)) ends.push(resolved);
  return {
    from: isoSeconds(Math.min(...starts) - MARGIN_MS),
    to: alert.state === "resolved" ? isoSeconds(Math.max(...ends) + MARGIN_MS, true) : "",
  };
}

export function evidenceHash(alert) {
  return hashFor("chargers", [alert.charger_id], { alert: alert.alert_id });
}

// Up to `most` alerts from `cursor` on (every page of GET /alerts until then); {alerts, cursor: where to go on}.
export async function fetchAlerts(api, params, most = ALERTS_AT_MOST, cursor = undefined) {
  const alerts = [];
  let next = cursor;
  let pages = 0;
  do {
    const page = await api.get("/alerts", { ...params, limit: Math.min(PAGE_MOST, most - alerts.length), cursor: next });
    alerts.push(...page.alerts);
    next = page.next_cursor ?? undefined;
    pages += 1;
  } while (next && alerts.length < most && pages < PAGES_AT_MOST);
  return { alerts, cursor: next ?? null };
}

function kindHeader(alert) {
  return h("th", { scope: "row", class: "kind" }, kindLabel(alert.kind), h("br"), h("code", { class: "muted" }, alert.kind));
}

// A table of alerts. columns: "charger" (a link to its timeline), "resolved" (when and why); `evidence(alert)` gives
// the last cell (a link or a button that shows the evidence on the charger's timeline).
function alertTable({ id, label, alerts, charger = false, resolved = false, evidence }) {
  const head = [
    "Alert",
    charger ? "Charger" : null,
    "Conn.",
    "Opened",
    resolved ? "Resolved" : null,
    resolved ? "Resolution" : "Summary",
    "Evidence",
  ].filter(Boolean);
  const rows = alerts.map((alert) =>
    h(
      "tr",
      { dataset: { alertId: alert.alert_id, chargerId: alert.charger_id, kind: alert.kind } },
      kindHeader(alert),
      charger
        ? h("td", {}, h("a", { href: hashFor("chargers", [alert.charger_id]) }, alert.charger_id), h("br"), h("small", { class: "muted" }, [alert.vendor, alert.site_id].filter(Boolean).join(" · ")))
        : null,
      h("td", {}, alert.connector_id ?? h("span", { class: "muted", title: "the charger as a whole" }, "—")),
      h("td", { class: "time" }, when(alert.opened_at)),
      resolved ? h("td", { class: "time" }, when(alert.resolved_at)) : null,
      h("td", { class: "summary" }, resolved ? [alert.resolution ?? "", h("br"), h("small", { class: "muted" }, alert.summary)] : alert.summary),
      h("td", { class: "evidence-cell" }, evidence(alert)),
    ),
  );
  return h(
    "div",
    { class: "table-wrap scroll" },
    h("table", { id, class: "alerts", "aria-label": label }, h("thead", {}, h("tr", {}, head.map((text) => h("th", { scope: "col" }, text)))), h("tbody", {}, rows)),
  );
}

function evidenceCount(alert) {
  const count = (alert.evidence?.length ?? 0) + (alert.resolution_evidence?.length ?? 0);
  return count ? ` (${count} record${count === 1 ? "" : "s"})` : "";
}

// ------------------------------------------------------------------------------------------- fleet: alerts panel
// `panel.element` goes above the fleet table; `panel.setFilters({vendor, site_id})` (re)loads what they select;
// onOpenAlerts(alerts, {complete, failed}) is told of every open alert list drawn, for the fleet table's badges.
export function alertsPanel(api, { showResolved = false, onToggleResolved, onOpenAlerts }) {
  const count = h("span", { class: "badge", id: "alerts-count" }, "…");
  const summary = h("p", { class: "muted", id: "alerts-summary", "aria-live": "polite" }, "Loading the open alerts…");
  const openBox = h("div", { id: "alerts-open" });
  const more = h("button", { type: "button", id: "alerts-more", hidden: true }, "More…");
  const resolvedBox = h("div", { id: "alerts-resolved", class: "resolved", hidden: !showResolved });
  const toggle = h("button", { type: "button", id: "alerts-resolved-toggle", "aria-expanded": String(showResolved), "aria-controls": "alerts-resolved" });
  const element = h(
    "section",
    { class: "panel alerts-panel", id: "fleet-alerts", "aria-labelledby": "alerts-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "alerts-title" }, "Open alerts ", count), toggle),
    summary,
    openBox,
    more,
    resolvedBox,
  );

  let filters = null;
  let open = [];
  let cursor = null;
  let ticket = 0;
  let stopped = false;
  let resolvedShown = showResolved;

  function scope() {
    const parts = [filters.vendor && `vendor ${filters.vendor}`, filters.site_id && `site ${filters.site_id}`].filter(Boolean);
    return parts.length ? ` for ${parts.join(", ")}` : "";
  }

  function drawToggle() {
    toggle.setAttribute("aria-expanded", String(resolvedShown));
    toggle.textContent = resolvedShown ? "Hide recently resolved" : "Show recently resolved";
    resolvedBox.hidden = !resolvedShown;
  }

  function drawOpen() {
    const n = open.length;
    const capped = Boolean(cursor);
    count.textContent = capped ? `${n}+` : String(n);
    count.className = `badge ${n ? "bad" : "ok"}`;
    count.setAttribute("aria-label", `${count.textContent} open alert${n === 1 ? "" : "s"}`);
    if (!n) {
      summary.className = "good";
      summary.textContent = `No open alerts${scope()}: a good sign, no charger needs attention now.`;
      openBox.replaceChildren();
    } else {
      summary.className = "muted";
      summary.textContent = capped
        ? `The newest ${n} open alerts${scope()}; more are open (“More…” reads the next ${ALERTS_AT_MOST}).`
        : `${n} open alert${n === 1 ? "" : "s"}${scope()}, newest first.`;
      openBox.replaceChildren(
        alertTable({
          id: "alerts-table",
          label: "Open alerts",
          alerts: open,
          charger: true,
          evidence: (alert) =>
            h("a", { href: evidenceHash(alert), class: "evidence-link", "aria-label": `Show the evidence of ${kindLabel(alert.kind)} on ${alert.charger_id}${evidenceCount(alert)}` }, "Show evidence"),
        }),
      );
    }
    more.hidden = !capped;
  }

  async function loadOpen({ append = false } = {}) {
    const mine = ++ticket;
    if (!append) {
      open = [];
      cursor = null;
      count.textContent = "…";
      summary.className = "muted";
      summary.textContent = "Loading the open alerts…";
    }
    more.disabled = true;
    try {
      const page = await fetchAlerts(api, { state: "open", ...filters }, ALERTS_AT_MOST, append ? cursor : undefined);
      if (mine !== ticket || stopped) return;
      open = append ? [...open, ...page.alerts] : page.alerts;
      cursor = page.cursor;
      drawOpen();
      onOpenAlerts?.(open, { complete: !cursor, failed: false });
    } catch (error) {
      if (mine !== ticket || stopped) return;
      count.textContent = "?";
      count.className = "badge warn";
      count.setAttribute("aria-label", "open alerts unknown");
      summary.className = "muted";
      summary.textContent = "";
      more.hidden = true;
      openBox.replaceChildren(failure("Could not load the open alerts", error));
      onOpenAlerts?.(append ? open : [], { complete: false, failed: true });
    } finally {
      more.disabled = false;
    }
  }

  const resolvedSummary = h("p", { class: "muted", id: "alerts-resolved-summary", "aria-live": "polite" });
  const resolvedTable = h("div");
  resolvedBox.append(h("h3", { id: "alerts-resolved-title" }, "Recently resolved"), resolvedSummary, resolvedTable);
  let resolvedTicket = 0;
  async function loadResolved() {
    const mine = ++resolvedTicket;
    const since = new Date(Date.now() - RESOLVED_WITHIN_MS).toISOString();
    resolvedSummary.textContent = "Loading the resolved alerts…";
    resolvedTable.replaceChildren();
    try {
      const page = await fetchAlerts(api, { state: "resolved", from: since, ...filters }, ALERTS_AT_MOST);
      if (mine !== resolvedTicket || stopped) return;
      const n = page.alerts.length;
      resolvedSummary.textContent = n
        ? `${page.cursor ? `The newest ${n}` : n} alert${n === 1 ? "" : "s"} opened in the last 24 h${scope()} and resolved since, newest opened first.`
        : `No alert opened in the last 24 h${scope()} has resolved.`;
      if (n) {
        resolvedTable.replaceChildren(
          alertTable({
            id: "alerts-resolved-table",
            label: "Recently resolved alerts",
            alerts: page.alerts,
            charger: true,
            resolved: true,
            evidence: (alert) =>
              h("a", { href: evidenceHash(alert), class: "evidence-link", "aria-label": `Show the evidence of ${kindLabel(alert.kind)} on ${alert.charger_id}${evidenceCount(alert)}` }, "Show evidence"),
          }),
        );
      }
    } catch (error) {
      if (mine !== resolvedTicket || stopped) return;
      resolvedSummary.textContent = "";
      resolvedTable.replaceChildren(failure("Could not load the resolved alerts", error));
    }
  }

  toggle.addEventListener("click", () => {
    resolvedShown = !resolvedShown;
    drawToggle();
    if (resolvedShown && filters) loadResolved();
    onToggleResolved?.(resolvedShown);
  });
  more.addEventListener("click", () => loadOpen({ append: true }));
  drawToggle();

  return {
    element,
    setFilters(wanted) {
      const next = { vendor: wanted.vendor || undefined, site_id: wanted.site_id || undefined };
      if (filters && next.vendor === filters.vendor && next.site_id === filters.site_id) return;
      filters = next;
      loadOpen();
      if (resolvedShown) loadResolved();
    },
    stop() {
      stopped = true;
    },
  };
}

// ---------------------------------------------------------------------------------------- charger: health strip
// GET /chargers/{id}/health (last record, heartbeat interval, connectors now, open alerts) and the charger's
// recently resolved alerts, each alert with a button that shows its evidence on the timeline below
// (onEvidence(alert)); `strip.mark(alertId)` says which alert's evidence is shown (its button is pressed).
export function healthStrip(api, chargerId, { onEvidence, current = "" }) {
  const count = h("span", { class: "badge", id: "health-count", "aria-live": "polite" }, "…");
  const facts = h("p", { class: "muted", id: "health-facts" }, "Loading the charger's health…");
  const connectorsBox = h("div", { id: "health-connectors" });
  const openBox = h("div", { id: "health-open" });
  const resolvedSummary = h("summary", {}, "Recently resolved alerts");
  const resolvedBody = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const resolvedBox = h("details", { id: "health-resolved" }, resolvedSummary, resolvedBody);
  const element = h(
    "section",
    { class: "panel health", id: "charger-health", "aria-labelledby": "health-title" },
    h("div", { class: "panel-head" }, h("h2", { id: "health-title" }, "Health ", count)),
    facts,
    h(
      "div",
      { class: "health-grid" },
      h("div", {}, h("h3", {}, "Connectors now"), connectorsBox),
      h("div", {}, h("h3", {}, "Open alerts"), openBox),
    ),
    resolvedBox,
  );
  const buttons = [];
  let shown = current;

  function evidenceButton(alert) {
    const button = h(
      "button",
      {
        type: "button",
        class: "evidence-button",
        dataset: { alertId: alert.alert_id },
        "aria-pressed": String(alert.alert_id === shown),
        "aria-label": `Show the evidence of ${kindLabel(alert.kind)}, opened ${formatTime(alert.opened_at).replace(/\.\d+$/, "")} UTC${evidenceCount(alert)}`,
        onclick: () => onEvidence(alert, button.getAttribute("aria-pressed") === "true"),
      },
      "Show evidence",
    );
    buttons.push(button);
    return button;
  }

  function connectorTable(connectors) {
    if (!connectors.length) return h("p", { class: "muted" }, "No connector status in the charger's health state yet.");
    return h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "health-connectors-table", "aria-label": "Connectors now" },
        h("thead", {}, h("tr", {}, ["Connector", "Status", "Since"].map((text) => h("th", { scope: "col" }, text)))),
        h(
          "tbody",
          {},
          connectors.map((connector) => {
            const error = connector.error_code && connector.error_code !== "NoError" ? ` (${connector.error_code})` : "";
            const at = recordTime(connector.record_id);
            const link = at === null
              ? null
              : h("a", {
                  href: hashFor("chargers", [chargerId], { from: isoSeconds(at - MARGIN_MS), to: isoSeconds(at + MARGIN_MS, true), record: connector.record_id }),
                  "aria-label": `The record of connector ${connector.connector_id}'s ${connector.status}`,
                }, "record");
            return h(
              "tr",
              { dataset: { connectorId: connector.connector_id } },
              h("th", { scope: "row" }, connector.connector_id === 0 ? "0 (charger)" : String(connector.connector_id)),
              h("td", {}, h("span", { class: `badge ${stateClass(connector.status)}` }, `${connector.status}${error}`)),
              h("td", { class: "time" }, when(connector.since), link ? [" ", link] : null),
            );
          }),
        ),
      ),
    );
  }

  async function loadHealth() {
    try {
      const health = await api.get(`/chargers/${encodeURIComponent(chargerId)}/health`);
      const n = health.open_alerts.length;
      count.textContent = `${n} open alert${n === 1 ? "" : "s"}`;
      count.className = `badge ${n ? "bad" : "ok"}`;
      const heartbeat = health.heartbeat_interval_seconds ? `heartbeat every ${formatDuration(health.heartbeat_interval_seconds)}` : "heartbeat interval not known yet";
      facts.replaceChildren(
        "Last record ",
        health.last_record_at
          ? h("span", {}, h("time", { datetime: health.last_record_at }, ago(health.last_record_at)), ` (${formatTime(health.last_record_at).replace(/\.\d+$/, "")} UTC)`)
          : "not known",
        ` · ${heartbeat}`,
        health.vendor ? ` · ${health.vendor}` : "",
        health.site_id ? ` · site ${health.site_id}` : "",
      );
      connectorsBox.replaceChildren(connectorTable(health.connectors));
      openBox.replaceChildren(
        n
          ? alertTable({ id: "health-open-table", label: "Open alerts of this charger", alerts: health.open_alerts, evidence: evidenceButton })
          : h("p", { class: "good" }, "No open alerts: a good sign, nothing on this charger needs attention now."),
      );
      return health;
    } catch (error) {
      count.textContent = "?";
      count.className = "badge warn";
      facts.replaceChildren(failure("Could not load the charger's health", error));
      connectorsBox.replaceChildren(h("p", { class: "muted" }, "Not known."));
      openBox.replaceChildren(h("p", { class: "muted" }, "Not known."));
      return null;
    }
  }

  async function loadResolved() {
    try {
      const page = await api.get("/alerts", { charger_id: chargerId, state: "resolved", limit: CHARGER_RESOLVED });
      const n = page.alerts.length;
      resolvedSummary.textContent = n ? `Recently resolved alerts (${n === CHARGER_RESOLVED ? "latest " : ""}${n})` : "Recently resolved alerts (none)";
      resolvedBody.replaceChildren(
        n
          ? alertTable({ id: "health-resolved-table", label: "Recently resolved alerts of this charger", alerts: page.alerts, resolved: true, evidence: evidenceButton })
          : h("p", { class: "muted" }, "No resolved alert is kept for this charger."),
      );
      return page.alerts;
    } catch (error) {
      resolvedSummary.textContent = "Recently resolved alerts (not loaded)";
      resolvedBody.replaceChildren(failure("Could not load the resolved alerts", error));
      return [];
    }
  }

  const ready = Promise.all([loadHealth(), loadResolved()]).then(([health, resolved]) => {
    if (shown && resolved.some((alert) => alert.alert_id === shown)) resolvedBox.open = true;
    return { health, resolved };
  });

  return {
    element,
    ready,
    mark(alertId) {
      shown = alertId ?? "";
      for (const button of buttons) button.setAttribute("aria-pressed", String(button.dataset.alertId === shown));
    },
  };
}
