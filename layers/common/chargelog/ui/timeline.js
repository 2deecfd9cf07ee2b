// Charger timeline (#/chargers/<id>?filters&record=<id>): every vendor's records of one charger in time order,
// either way, fetched a page at a time with the API's cursors as the list scrolls (an IntersectionObserver on a
// sentinel below the table; never everything).
//
// Pairs: an OCPP CALL and the CALLRESULT / CALLERROR that shares its message id, comes from the other side and is
// logged at or after it within the API's pairing window (5 minutes, logic/exchanges.py) are paired among the loaded
// records; both rows show the response time and a button that jumps to the other one. A partner not loaded yet is
// looked up with the API's message_id filter over the pairing window and the list pages on until it is loaded.
// Flags (badge with text, row edge in colour): CALLERROR, an unanswered CALL (judged only when the view holds the
// whole pairing window and no filter hides answers), Rejected-like answers, Faulted connectors, error codes.
//
// Alert evidence (#/chargers/<id>?alert=<alert id>, and the health strip's "Show evidence"): the range is set around
// the alert's evidence records (oldest first, other filters cleared), every evidence record loaded is highlighted
// (class "evidence", and a badge saying so), and the first one is selected and scrolled to; "Clear" drops the
// highlight. The health strip at the top (alerts.js) shows the charger's connectors, open and resolved alerts.
//
// Free text is matched in the browser over the records loaded so far (payloads, results, ids, actions): the API
// has no text search (DynamoDB cannot search text without reading everything), so the page says how many of the
// loaded records match and "Load more" reads further pages. Every other filter is an API parameter.

import { evidenceRange, healthStrip, kindLabel, recordPart, when } from "./alerts.js";
import { ApiError } from "./api.js";
import { hashFor } from "./app.js";
import { clear, errorBox, field, formatTime, h, inputToIso, isoToInput, jsonBlock } from "./dom.js";

export const PAGE_SIZE = 200; // moto reads its whole table per Query: fewer, larger pages scroll faster locally
const PAIRING_WINDOW_MS = 5 * 60 * 1000; // logic/exchanges.py PAIRING_WINDOW
const LIVE_EVERY_MS = 5000;
const LIVE_PAGES_AT_MOST = 5;
const JUMP_PAGES_AT_MOST = 60;
const FILTER_DELAY_MS = 350;
const COLUMNS = 8;

// OCPP 1.6 and 2.0.1 actions (the specifications' message names): the action picker offers them, and any other
// action seen in the loaded records.
const OCPP_ACTIONS = [
  "Authorize", "BootNotification", "CancelReservation", "CertificateSigned", "ChangeAvailability",
  "ChangeConfiguration", "ClearCache", "ClearChargingProfile", "ClearDisplayMessage", "ClearedChargingLimit",
  "ClearVariableMonitoring", "CostUpdated", "CustomerInformation", "DataTransfer", "DeleteCertificate",
  "DiagnosticsStatusNotification", "FirmwareStatusNotification", "Get15118EVCertificate", "GetBaseReport",
  "GetCertificateStatus", "GetChargingProfiles", "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics",
  "GetDisplayMessages", "GetInstalledCertificateIds", "GetLocalListVersion", "GetLog", "GetMonitoringReport",
  "GetReport", "GetTransactionStatus", "GetVariables", "Heartbeat", "InstallCertificate", "LogStatusNotification",
  "MeterValues", "NotifyChargingLimit", "NotifyCustomerInformation", "NotifyDisplayMessages", "NotifyEVChargingNeeds",
  "NotifyEVChargingSchedule", "NotifyEvent", "NotifyMonitoringReport", "NotifyReport", "PublishFirmware",
  "PublishFirmwareStatusNotification", "RemoteStartTransaction", "RemoteStopTransaction", "ReportChargingProfiles",
  "RequestStartTransaction", "RequestStopTransaction", "ReservationStatusUpdate", "ReserveNow", "Reset",
  "SecurityEventNotification", "SendLocalList", "SetChargingProfile", "SetDisplayMessage", "SetMonitoringBase",
  "SetMonitoringLevel", "SetNetworkProfile", "SetVariableMonitoring", "SetVariables", "SignCertificate",
  "StartTransaction", "StatusNotification", "StopTransaction", "TransactionEvent", "TriggerMessage",
  "UnlockConnector", "UnpublishFirmware", "UpdateFirmware",
];
const REFUSALS = new Set([
  "Rejected", "Blocked", "Expired", "Invalid", "ConcurrentTx", "NotSupported", "Failed", "Unknown",
  "UnknownMessageId", "NotImplemented", "Faulted", "Occupied", "Unavailable", "VersionMismatch",
]);
const API_FILTERS = ["from", "to", "direction", "message_type", "transaction_id", "connector_status", "kind"];

const timeOf = (iso) => Date.parse(iso);
const isReply = (record) => record.message_type === "CALLRESULT" || record.message_type === "CALLERROR";

export function formatMs(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

// Is `answer` the reply to `call`? The API's pairing rule (logic/exchanges.py).
export function answers(call, answer) {
  if (call.message_type !== "CALL" || !isReply(answer) || !call.message_id) return false;
  if (call.message_id !== answer.message_id || call.direction === answer.direction) return false;
  const gap = timeOf(answer.timestamp) - timeOf(call.timestamp);
  return gap >= 0 && gap <= PAIRING_WINDOW_MS;
}

// What is wrong with a record, as text: [{level: "bad" | "warn", text}].
export function flagsOf(record) {
  const flags = [];
  const extracted = record.extracted ?? {};
  if (record.message_type === "CALLERROR") {
    flags.push({ level: "bad", text: `CALLERROR ${record.status ?? record.result?.errorCode ?? ""}`.trim() });
  }
  const answered = [record.result?.status, record.result?.idTagInfo?.status, extracted.authorization_status];
  for (const status of new Set(answered.filter(Boolean))) {
    if (typeof status === "string" && REFUSALS.has(status)) flags.push({ level: "bad", text: status });
  }
  if (extracted.connector_status === "Faulted") flags.push({ level: "bad", text: "Faulted" });
  if (extracted.error_code && extracted.error_code !== "NoError") {
    flags.push({ level: "bad", text: `error ${extracted.error_code}` });
  }
  return flags;
}

function summaryOf(record) {
  const extracted = record.extracted ?? {};
  const parts = [];
  if (extracted.connector_status) parts.push(extracted.connector_status);
  if (record.kind === "status" && record.status) parts.push(record.status);
  if (record.result?.status) parts.push(`→ ${record.result.status}`);
  if (extracted.transaction_id) parts.push(`tx ${extracted.transaction_id}`);
  if (extracted.id_tag) parts.push(`tag ${extracted.id_tag}`);
  if (extracted.meter?.energy_wh != null) parts.push(`${(extracted.meter.energy_wh / 1000).toFixed(1)} kWh`);
  if (extracted.meter?.power_w != null) parts.push(`${Math.round(extracted.meter.power_w)} W`);
  if (extracted.firmware_status) parts.push(`firmware ${extracted.firmware_status}`);
  if (extracted.diagnostics_status) parts.push(`diagnostics ${extracted.diagnostics_status}`);
  if (record.payload && record.result && !isReply(record)) parts.push("answer in the same record");
  return parts.join(" · ");
}

function directionText(direction) {
  if (direction === "cp_to_csms") return "CP → CSMS";
  if (direction === "csms_to_cp") return "CSMS → CP";
  return "—";
}

function readFilters(params) {
  return {
    from: params.get("from") ?? "",
    to: params.get("to") ?? "",
    action: params.getAll("action"),
    direction: params.get("direction") ?? "",
    message_type: params.get("message_type") ?? "",
    transaction_id: params.get("transaction_id") ?? "",
    connector_status: params.get("connector_status") ?? "",
    kind: params.get("kind") ?? "",
    q: params.get("q") ?? "",
    order: params.get("order") === "asc" ? "asc" : "desc",
    live: params.get("live") === "1" ? "1" : "",
    record: params.get("record") ?? "",
    alert: params.get("alert") ?? "",
  };
}

function select(name, label, value, options) {
  const control = h(
    "select",
    { name, id: `timeline-${name}` },
    options.map(([optionValue, text]) => h("option", { value: optionValue, selected: optionValue === value }, text)),
  );
  return [field(label, control), control];
}

function input(name, label, value, attributes = {}, hint) {
  const control = h("input", { name, id: `timeline-${name}`, value, ...attributes });
  return [field(label, control, hint), control];
}

export async function render(main, context) {
  performance.clearMarks("timeline-start");
  performance.clearMeasures("timeline-first-render");
  performance.mark("timeline-start");
  const { api } = context;
  const chargerId = context.path[0];
  const logsPath = `/chargers/${encodeURIComponent(chargerId)}/logs`;
  const state = readFilters(context.params);

  // ---- the filter form ----
  const [fromField, fromInput] = input("from", "From (UTC)", isoToInput(state.from), { type: "datetime-local", step: 1 });
  const [toField, toInput] = input("to", "To (UTC)", isoToInput(state.to), { type: "datetime-local", step: 1 });
  const [orderField, orderSelect] = select("order", "Order", state.order, [["desc", "Newest first"], ["asc", "Oldest first"]]);
  const [directionField, directionSelect] = select("direction", "Direction", state.direction, [["", "Both"], ["cp_to_csms", "CP → CSMS"], ["csms_to_cp", "CSMS → CP"]]);
  const [typeField, typeSelect] = select("message_type", "Message type", state.message_type, [["", "Any"], ["CALL", "CALL"], ["CALLRESULT", "CALLRESULT"], ["CALLERROR", "CALLERROR"]]);
  const [kindField, kindSelect] = select("kind", "Kind", state.kind, [["", "Any"], ["ocpp", "OCPP"], ["status", "Vendor status"]]);
  const [transactionField, transactionInput] = input("transaction_id", "Transaction id", state.transaction_id, { type: "text", size: 10 });
  const [connectorField, connectorInput] = input("connector_status", "Connector status", state.connector_status, { type: "text", size: 12, list: "timeline-connector-statuses" });
  const [textField, textInput] = input("q", "Free text", state.q, { type: "search", size: 16 }, "in loaded records");
  const liveInput = h("input", { type: "checkbox", name: "live", id: "timeline-live", checked: state.live === "1" });
  const connectorStatuses = h("datalist", { id: "timeline-connector-statuses" }, ["Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Reserved", "Unavailable", "Faulted", "Occupied"].map((s) => h("option", { value: s })));

  // The action picker: a search box over a list of checkboxes, inside a disclosure.
  const chosenActions = new Set(state.action);
  const actionNames = new Set([...OCPP_ACTIONS, ...state.action]);
  const actionSearch = h("input", { type: "search", id: "timeline-action-search", placeholder: "Find an action", "aria-label": "Find an action", autocomplete: "off" });
  const actionList = h("div", { class: "picker-list", role: "group", "aria-label": "Actions" });
  const actionSummary = h("summary", { id: "timeline-actions-summary" });
  const actionClear = h("button", { type: "button", onclick: () => { chosenActions.clear(); drawActions(); schedule(); } }, "Clear");
  const actionPicker = h("details", { class: "picker", id: "timeline-actions" }, actionSummary, h("div", { class: "picker-body" }, actionSearch, actionClear, actionList));
  function drawActions() {
    actionSummary.textContent = chosenActions.size ? `Actions: ${[...chosenActions].sort().join(", ")}` : "Actions: all";
    const wanted = actionSearch.value.trim().toLowerCase();
    actionList.replaceChildren(
      ...[...actionNames]
        .sort((a, b) => Number(chosenActions.has(b)) - Number(chosenActions.has(a)) || a.localeCompare(b))
        .filter((name) => !wanted || name.toLowerCase().includes(wanted) || chosenActions.has(name))
        .map((name) => {
          const box = h("input", { type: "checkbox", value: name, checked: chosenActions.has(name), name: "action" });
          box.addEventListener("change", () => {
            if (box.checked) chosenActions.add(name);
            else chosenActions.delete(name);
            actionSummary.textContent = chosenActions.size ? `Actions: ${[...chosenActions].sort().join(", ")}` : "Actions: all";
            schedule();
          });
          return h("label", { class: "pick" }, box, " ", name);
        }),
    );
  }
  actionSearch.addEventListener("input", drawActions);
  drawActions();

  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Timeline filters", id: "timeline-filters" },
    fromField, toField, orderField, h("div", { class: "field" }, h("span", {}, "Actions"), actionPicker), directionField,
    typeField, kindField, transactionField, connectorField, connectorStatuses, textField,
    h("label", { class: "field inline" }, h("span", {}, "Live"), h("span", {}, liveInput, " follow new records")),
    h("button", { type: "submit", class: "primary" }, "Apply"),
  );

  const status = h("p", { class: "muted", id: "timeline-status", "aria-live": "polite", tabindex: -1 });
  const pinned = h("div", { id: "timeline-pinned" });
  const body = h("tbody", { id: "timeline-rows" });
  const table = h(
    "table",
    { id: "timeline-table", "aria-describedby": "timeline-status" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Time (UTC)"), h("th", { scope: "col" }, "Direction"), h("th", { scope: "col" }, "Type"),
      h("th", { scope: "col" }, "Action"), h("th", { scope: "col", class: "hide-narrow" }, "Conn."),
      h("th", { scope: "col" }, "Summary"), h("th", { scope: "col" }, "Reply"), h("th", { scope: "col" }, "Flags"),
    )),
    body,
  );
  const loadMore = h("button", { type: "button", id: "timeline-load-more" }, "Load more");
  const sentinel = h("div", { class: "sentinel", id: "timeline-sentinel" }, loadMore, " ", h("span", { class: "muted" }));

  // "Export this view": the exports page with the timeline's API filters (free text stays in the browser).
  const exportLink = h("a", { id: "timeline-export" }, "Export this view");
  function drawExportLink() {
    const filters = { charger: chargerId, action: state.action };
    for (const name of API_FILTERS) if (state[name]) filters[name] = state[name];
    exportLink.href = hashFor("exports", [], filters);
  }
  drawExportLink();

  // The health strip and the evidence of an alert.
  const strip = healthStrip(api, chargerId, {
    current: state.alert,
    onEvidence: (alert, shown) => (shown ? clearEvidence() : showEvidence(alert)),
  });
  const evidenceBar = h("section", { class: "evidence-bar", id: "timeline-evidence", "aria-labelledby": "timeline-evidence-title", hidden: true });

  main.append(
    h("h1", {}, "Charger ", h("span", { class: "mono" }, chargerId)),
    h("p", { class: "links" },
      h("a", { href: "#/fleet" }, "Fleet"), " · ",
      h("a", { href: `#/chargers/${encodeURIComponent(chargerId)}/status` }, "Connector status"), " · ",
      h("a", { href: `#/chargers/${encodeURIComponent(chargerId)}/sessions` }, "Sessions"), " · ",
      h("a", { href: hashFor("diagnostics", [], { charger: chargerId }) }, "Diagnostics"), " · ",
      exportLink,
    ),
    strip.element,
    form,
    h("p", { class: "muted legend" },
      h("span", { class: "swatch to-charger" }, "CSMS → CP"), " ", h("span", { class: "swatch from-charger" }, "CP → CSMS"),
      " rows by direction. Free text searches the records loaded so far; other filters ask the API. Times are UTC."),
    status,
    evidenceBar,
    pinned,
    h("div", { class: "table-wrap" }, table),
    sentinel,
  );

  // ---- the loaded records ----
  let records = []; // in display order
  let byId = new Map(); // id -> {record, row, detail, partner}
  let byMessageId = new Map(); // message_id -> [entries]
  let cursor = null;
  let exhausted = false;
  let loading = null;
  let generation = 0;
  let selected = null;
  let liveTimer = null;
  let liveBehind = 0;
  let stopped = false;
  let firstRendered = false;
  let evidence = null; // the alert whose evidence is shown: {alert, roles: Map(record id -> "evidence" | "resolution"), first}

  function apiParams() {
    const params = { order: state.order, limit: PAGE_SIZE, action: state.action };
    for (const name of API_FILTERS) if (state[name]) params[name] = state[name];
    return params;
  }

  function answersHidden() {
    // Filters that drop a CALL's answer from the view: an unanswered CALL cannot be told from a hidden answer.
    return Boolean(state.direction || state.message_type || state.transaction_id || state.connector_status || state.kind === "status");
  }

  function writeUrl(push = false) {
    drawExportLink();
    const { record, ...rest } = state;
    context.setParams({ ...rest, record: record || undefined }, { push });
  }

  function textOf(entry) {
    entry.text ??= JSON.stringify(entry.record).toLowerCase();
    return entry.text;
  }

  function applyText() {
    const wanted = state.q.trim().toLowerCase();
    let shown = 0;
    for (const entry of byId.values()) {
      const visible = !wanted || textOf(entry).includes(wanted);
      entry.row.hidden = !visible;
      if (entry.detail) entry.detail.hidden = !visible;
      if (visible) shown += 1;
    }
    drawStatus(shown);
  }

  function drawStatus(shown) {
    const loaded = records.length;
    const text = [];
    if (state.q.trim()) text.push(`${shown ?? "?"} of ${loaded} loaded records match “${state.q.trim()}”.`);
    else text.push(`${loaded} record${loaded === 1 ? "" : "s"} loaded.`);
    text.push(exhausted ? "No more records." : "Scroll for more.");
    if (liveTimer) text.push(liveBehind ? `Live: ${liveBehind} new records past the end of the list.` : "Live: following new records.");
    status.textContent = text.join(" ");
    loadMore.hidden = exhausted;
    sentinel.lastChild.textContent = loading ? "Loading…" : "";
  }

  // ---- pairing ----
  function partnerOf(entry) {
    const { record } = entry;
    if (!record.message_id || record.kind !== "ocpp") return null;
    const candidates = byMessageId.get(record.message_id) ?? [];
    if (record.message_type === "CALL") {
      let best = null;
      for (const other of candidates) {
        if (answers(record, other.record) && (!best || timeOf(other.record.timestamp) < timeOf(best.record.timestamp))) best = other;
      }
      return best;
    }
    if (isReply(record)) {
      let best = null;
      for (const other of candidates) {
        if (answers(other.record, record) && (!best || timeOf(other.record.timestamp) > timeOf(best.record.timestamp))) best = other;
      }
      return best;
    }
    return null;
  }

  // Does the view hold the whole pairing window after this CALL?
  function windowLoaded(record) {
    if (answersHidden()) return false;
    const end = timeOf(record.timestamp) + PAIRING_WINDOW_MS;
    if (end > Date.now()) return false;
    if (state.to && timeOf(state.to) < end) return false;
    // Newest first: the list was read from the newest record down, so everything after a loaded CALL is loaded.
    if (state.order === "desc") return true;
    const last = records[records.length - 1];
    return exhausted || (last && timeOf(last.timestamp) >= end);
  }

  function drawReply(entry) {
    const { record } = entry;
    const cell = entry.replyCell;
    const flagCell = entry.flagCell;
    cell.replaceChildren();
    const flags = flagsOf(record);
    entry.partner = partnerOf(entry);
    if (entry.partner) {
      const gap = Math.abs(timeOf(entry.partner.record.timestamp) - timeOf(record.timestamp));
      const label = record.message_type === "CALL" ? `Reply ${entry.partner.record.message_type}` : "CALL";
      cell.append(
        h("button", {
          type: "button", class: "jump",
          "aria-label": `Jump to the ${label} (${formatMs(gap)})`,
          onclick: () => jump(entry),
        }, record.message_type === "CALL" ? "↪ reply" : "↩ call"),
        " ", h("span", { class: "response-time" }, formatMs(gap)),
      );
    } else if (record.message_id && (record.message_type === "CALL" || isReply(record))) {
      const unanswered = record.message_type === "CALL" && windowLoaded(record);
      if (unanswered) flags.push({ level: "warn", text: "no reply" });
      else {
        cell.append(h("button", {
          type: "button", class: "jump",
          "aria-label": record.message_type === "CALL" ? "Find the reply" : "Find the CALL",
          onclick: () => jump(entry),
        }, record.message_type === "CALL" ? "find reply" : "find call"));
      }
    }
    flagCell.replaceChildren(
      ...evidenceBadges(entry),
      ...flags.map((flag) => h("span", { class: `badge ${flag.level}` }, flag.text)),
    );
    entry.row.classList.toggle("flag-bad", flags.some((f) => f.level === "bad"));
    entry.row.classList.toggle("flag-warn", !flags.some((f) => f.level === "bad") && flags.length > 0);
  }

  // ---- rows ----
  function rowFor(record) {
    const entry = { record, row: null, detail: null, partner: null };
    const direction = record.direction === "cp_to_csms" ? "from-charger" : record.direction === "csms_to_cp" ? "to-charger" : "";
    entry.openButton = h("button", {
      type: "button", class: "link open-record", "aria-expanded": "false",
      "aria-label": `Open the record of ${formatTime(record.timestamp)}`,
      onclick: () => (entry.detail ? closeRecord(entry) : selectRecord(entry, { open: true })),
    }, formatTime(record.timestamp));
    entry.replyCell = h("td", { class: "reply" });
    entry.flagCell = h("td", { class: "flags" });
    entry.row = h("tr", { class: direction, dataset: { recordId: record.id, messageId: record.message_id ?? "" } },
      h("td", { class: "time" }, entry.openButton),
      h("td", {}, directionText(record.direction)),
      h("td", {}, record.message_type ?? record.kind),
      h("td", {}, record.action ?? ""),
      h("td", { class: "hide-narrow" }, record.connector_id ?? ""),
      h("td", { class: "summary" }, summaryOf(record)),
      entry.replyCell,
      entry.flagCell,
    );
    markEvidence(entry);
    return entry;
  }

  function index(entry) {
    byId.set(entry.record.id, entry);
    if (entry.record.message_id) {
      const list = byMessageId.get(entry.record.message_id) ?? [];
      list.push(entry);
      byMessageId.set(entry.record.message_id, list);
    }
    for (const name of [entry.record.action]) {
      if (name && !actionNames.has(name)) {
        actionNames.add(name);
        if (actionPicker.open) drawActions();
      }
    }
  }

  function redrawPairs(newEntries) {
    const touched = new Set();
    for (const entry of newEntries) {
      touched.add(entry);
      for (const other of byMessageId.get(entry.record.message_id) ?? []) touched.add(other);
    }
    for (const entry of touched) drawReply(entry);
    // CALLs without a reply whose pairing window the new page completes.
    for (const entry of byId.values()) {
      if (!touched.has(entry) && entry.record.message_type === "CALL" && entry.record.message_id && !entry.partner) drawReply(entry);
    }
  }

  function addRecords(page, { atTop = false } = {}) {
    const fresh = [];
    for (const record of page) {
      if (byId.has(record.id)) continue;
      const entry = rowFor(record);
      index(entry);
      fresh.push(entry);
    }
    if (!fresh.length) return fresh;
    if (atTop) {
      records = [...fresh.map((e) => e.record), ...records];
      body.prepend(...fresh.map((e) => e.row));
    } else {
      records.push(...fresh.map((e) => e.record));
      body.append(...fresh.map((e) => e.row));
    }
    redrawPairs(fresh);
    if (evidence && fresh.some((entry) => entry.evidenceRole)) drawEvidenceBar();
    return fresh;
  }

  async function loadPage() {
    if (loading) return loading;
    if (exhausted || stopped) return null;
    const ticket = generation;
    loading = (async () => {
      drawStatus();
      try {
        const page = await api.get(logsPath, { ...apiParams(), cursor: cursor ?? undefined });
        if (ticket !== generation || stopped) return;
        cursor = page.next_cursor;
        exhausted = !cursor;
        addRecords(page.records);
        if (!firstRendered) {
          firstRendered = true;
          const measure = performance.measure("timeline-first-render", "timeline-start");
          table.dataset.firstRenderMs = String(Math.round(measure.duration));
        }
        applyText();
      } finally {
        if (ticket === generation) loading = null;
        drawStatus(state.q ? undefined : records.length);
        if (state.q) applyText();
      }
      // The observer only tells when the sentinel comes into view: if it is still in view once this page is drawn
      // (a short page, a tall window, a scroll made while loading), read on without waiting for another scroll.
      if (ticket === generation && !stopped && sentinelInView()) await loadPage();
    })();
    return loading;
  }

  function sentinelInView() {
    if (!sentinel.isConnected) return false;
    return sentinel.getBoundingClientRect().top < window.innerHeight + 800; // the observer's rootMargin
  }

  // ---- selection, details, jumps ----
  function closeRecord(entry) {
    entry.detail?.remove();
    entry.detail = null;
    entry.openButton.setAttribute("aria-expanded", "false");
    if (state.record === entry.record.id) {
      state.record = "";
      writeUrl();
    }
  }

  function rawBlock(record) {
    const pre = h("pre", {}, "Loading…");
    const block = h("details", { class: "json raw" }, h("summary", {}, "Raw, as the vendor sent it"), pre);
    let fetched = false;
    block.addEventListener("toggle", async () => {
      if (!block.open || fetched) return;
      fetched = true;
      try {
        const full = await api.get(`${logsPath}/${encodeURIComponent(record.id)}`);
        pre.textContent = JSON.stringify(full.raw, null, 2);
      } catch (error) {
        pre.textContent = error.message;
        fetched = false;
      }
    });
    return block;
  }

  function detailFor(record) {
    return [
      h("div", { class: "record-meta muted" },
        `id ${record.id} · vendor ${record.vendor} · source ${record.source_id}`,
        record.message_id ? ` · message id ${record.message_id}` : "",
        record.site_id ? ` · site ${record.site_id}` : ""),
      record.payload != null ? jsonBlock("Payload", record.payload, true) : null,
      record.result != null ? jsonBlock("Result", record.result, true) : null,
      record.extracted ? jsonBlock("Extracted fields", record.extracted) : null,
      record.payload_ref ? h("p", { class: "muted" }, "The payload was too large to list: open Raw.") : null,
      rawBlock(record),
    ];
  }

  function selectRecord(entry, { open = false, focus = true } = {}) {
    if (selected && selected !== entry) selected.row.classList.remove("selected");
    selected = entry;
    entry.row.classList.add("selected");
    entry.row.hidden = false;
    if (open && !entry.detail) {
      entry.detail = h("tr", { class: "detail" }, h("td", { colspan: COLUMNS }, detailFor(entry.record)));
      entry.row.after(entry.detail);
      entry.openButton.setAttribute("aria-expanded", "true");
    }
    state.record = entry.record.id;
    writeUrl();
    entry.row.scrollIntoView({ block: "center" });
    if (focus) entry.openButton.focus({ preventScroll: true });
  }

  // Load pages in the list's order until found() finds an entry, or it is certainly not coming (past `at`, when
  // known; the end of the list; JUMP_PAGES_AT_MOST pages).
  async function ensureFound(found, at) {
    const wanted = at === undefined ? null : timeOf(at);
    for (let pages = 0; !found() && !exhausted && pages < JUMP_PAGES_AT_MOST && !stopped; pages += 1) {
      const last = records[records.length - 1];
      if (wanted !== null && last && (state.order === "desc" ? timeOf(last.timestamp) < wanted : timeOf(last.timestamp) > wanted)) break;
      await loadPage();
    }
    return found() ?? null;
  }

  // Load pages in the list's order until the record is loaded, or it is certainly not coming.
  function ensureLoaded(id, at) {
    return ensureFound(() => byId.get(id), at);
  }

  function pin(record, why) {
    clear(pinned).append(
      h("section", { class: "pinned", "aria-label": "Record outside the list" },
        h("h2", {}, `${record.message_type ?? record.kind} ${record.action ?? ""} at ${formatTime(record.timestamp)}`),
        h("p", { class: "muted" }, why),
        detailFor(record),
        h("button", { type: "button", onclick: () => clear(pinned) }, "Close")),
    );
    pinned.scrollIntoView({ block: "start" });
  }

  async function jump(entry) {
    const { record } = entry;
    if (entry.partner) {
      selectRecord(entry.partner, { open: true });
      return;
    }
    const isCall = record.message_type === "CALL";
    const at = timeOf(record.timestamp);
    const range = isCall ? [at, at + PAIRING_WINDOW_MS] : [at - PAIRING_WINDOW_MS, at];
    try {
      const found = await api.get(logsPath, {
        message_id: record.message_id,
        from: new Date(range[0]).toISOString(),
        to: new Date(range[1]).toISOString(),
        order: isCall ? "asc" : "desc",
        limit: 20,
      });
      const partner = found.records.find((other) => (isCall ? answers(record, other) : answers(other, record)));
      if (!partner) {
        context.notice(isCall ? "No reply to this CALL within 5 minutes." : "No CALL for this reply within 5 minutes before it.");
        return;
      }
      const loaded = byId.get(partner.id) ?? (await ensureLoaded(partner.id, partner.timestamp));
      if (loaded) {
        drawReply(entry);
        selectRecord(loaded, { open: true });
      } else {
        pin(partner, "Its partner is outside this view (a filter hides it, or it lies beyond the loaded pages).");
      }
    } catch (error) {
      context.notice(error.message);
    }
  }

  // ---- alert evidence ----
  function setEvidence(alert) {
    const roles = new Map();
    for (const id of alert.evidence ?? []) roles.set(id, "evidence");
    for (const id of alert.resolution_evidence ?? []) if (!roles.has(id)) roles.set(id, "resolution");
    evidence = { alert, roles, first: alert.evidence?.[0] ?? alert.resolution_evidence?.[0] ?? null };
    state.alert = alert.alert_id;
    strip.mark(alert.alert_id);
    buildEvidenceBar();
  }

  // "evidence", "resolution" or null: a record's part in the shown alert. An evidence id is the API's record id
  // ("<time>~<record id>") or a bare record id, matched by the record id part.
  function roleOf(record) {
    if (!evidence) return null;
    return evidence.roles.get(record.id) ?? evidence.roles.get(recordPart(record.id)) ?? null;
  }

  function evidenceBadges(entry) {
    if (entry.evidenceRole === "evidence") return [h("span", { class: "badge evidence" }, "evidence")];
    if (entry.evidenceRole === "resolution") return [h("span", { class: "badge evidence" }, "resolved it")];
    return [];
  }

  function markEvidence(entry) {
    const role = roleOf(entry.record);
    const changed = role !== (entry.evidenceRole ?? null);
    entry.evidenceRole = role;
    entry.row.classList.toggle("evidence", role !== null);
    entry.row.classList.toggle("evidence-resolution", role === "resolution");
    return changed;
  }

  function markAllEvidence() {
    for (const entry of byId.values()) if (markEvidence(entry)) drawReply(entry);
    drawEvidenceBar();
  }

  // The bar above the list: which alert, how many of its records are loaded, "First evidence record", "Clear".
  const evidenceCount = h("p", { class: "muted", id: "timeline-evidence-count", "aria-live": "polite" });
  function buildEvidenceBar() {
    if (!evidence) {
      evidenceBar.hidden = true;
      evidenceBar.replaceChildren();
      return;
    }
    const { alert } = evidence;
    const where = [alert.connector_id != null ? `connector ${alert.connector_id}` : null, alert.state].filter(Boolean).join(", ");
    evidenceBar.hidden = false;
    evidenceBar.replaceChildren(
      h("h2", { id: "timeline-evidence-title" }, `Evidence: ${kindLabel(alert.kind)} `, h("code", { class: "muted" }, alert.kind), ` (${where})`),
      h("p", {}, alert.summary, alert.resolution ? ` · Resolved: ${alert.resolution}` : ""),
      evidenceCount,
      h("p", { class: "evidence-actions" },
        evidence.first ? h("button", { type: "button", id: "timeline-evidence-first", onclick: () => focusEvidence() }, "First evidence record") : null,
        " ",
        h("button", { type: "button", id: "timeline-evidence-clear", onclick: () => clearEvidence() }, "Clear evidence")),
    );
    drawEvidenceBar();
  }

  function drawEvidenceBar() {
    if (!evidence) return;
    const { alert, roles } = evidence;
    let inView = 0;
    for (const entry of byId.values()) if (entry.evidenceRole) inView += 1;
    evidenceCount.textContent = roles.size
      ? `${inView} of ${roles.size} evidence record${roles.size === 1 ? "" : "s"} loaded, highlighted and marked “evidence”${alert.resolution_evidence?.length ? " (“resolved it”: the records that ended it)" : ""}.`
      : "This alert names no evidence records.";
  }

  // The range around the alert's evidence, oldest first, no other filter (a filter could hide evidence).
  function evidenceView(alert) {
    const range = evidenceRange(alert);
    if (range) {
      state.from = range.from;
      state.to = range.to;
    }
    state.order = "asc";
    for (const name of ["direction", "message_type", "transaction_id", "connector_status", "kind", "q"]) state[name] = "";
    state.action = [];
    state.live = "";
    fillForm();
  }

  // Select the first evidence record: loaded, or loaded page by page, or beside the list when it is not in it.
  async function focusEvidence() {
    const wanted = evidence;
    const first = wanted?.first;
    if (!first) return;
    const matches = () => byId.get(first) ?? [...byId.values()].find((entry) => recordPart(entry.record.id) === recordPart(first));
    const at = first.includes("~") ? first.split("~")[0] : undefined;
    const found = await ensureFound(matches, at);
    if (wanted !== evidence || stopped) return;
    if (found) {
      selectRecord(found);
      return;
    }
    if (!first.includes("~")) {
      context.notice("The alert's first evidence record is not in this view.");
      return;
    }
    try {
      pin(await api.get(`${logsPath}/${encodeURIComponent(first)}`), "The alert's first evidence record is not in the list as filtered and loaded.");
    } catch (error) {
      context.notice(`The alert's first evidence record: ${error.message}`);
    }
  }

  async function showEvidence(alert) {
    setEvidence(alert);
    evidenceView(alert);
    state.record = "";
    writeUrl(true);
    setLive();
    await reload();
    await focusEvidence();
  }

  function clearEvidence() {
    const hadFocus = evidenceBar.contains(document.activeElement);
    evidence = null;
    state.alert = "";
    strip.mark("");
    markAllEvidence();
    buildEvidenceBar();
    writeUrl();
    if (hadFocus) status.focus();
  }

  // ---- filters ----
  function fillForm() {
    fromInput.value = isoToInput(state.from);
    toInput.value = isoToInput(state.to);
    orderSelect.value = state.order;
    directionSelect.value = state.direction;
    typeSelect.value = state.message_type;
    kindSelect.value = state.kind;
    transactionInput.value = state.transaction_id;
    connectorInput.value = state.connector_status;
    textInput.value = state.q;
    liveInput.checked = state.live === "1";
    chosenActions.clear();
    for (const name of state.action) chosenActions.add(name);
    drawActions();
  }

  function readForm() {
    state.from = inputToIso(fromInput.value) ?? "";
    state.to = inputToIso(toInput.value) ?? "";
    state.order = orderSelect.value;
    state.direction = directionSelect.value;
    state.message_type = typeSelect.value;
    state.kind = kindSelect.value;
    state.transaction_id = transactionInput.value.trim();
    state.connector_status = connectorInput.value.trim();
    state.action = [...chosenActions].sort();
    state.live = liveInput.checked ? "1" : "";
  }

  async function reload() {
    generation += 1;
    loading = null;
    records = [];
    byId = new Map();
    byMessageId = new Map();
    cursor = null;
    exhausted = false;
    selected = null;
    liveBehind = 0;
    body.replaceChildren();
    clear(pinned);
    context.notice("");
    try {
      await loadPage();
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) throw error;
      body.append(h("tr", {}, h("td", { colspan: COLUMNS }, errorBox(error))));
    }
  }

  let filterTimer = null;
  function schedule() {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(apply, FILTER_DELAY_MS);
  }
  async function apply() {
    clearTimeout(filterTimer);
    const before = JSON.stringify(apiParams());
    readForm();
    state.record = "";
    writeUrl(true);
    setLive();
    if (JSON.stringify(apiParams()) !== before) await reload();
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  for (const control of [fromInput, toInput, orderSelect, directionSelect, typeSelect, kindSelect, transactionInput, connectorInput, liveInput]) {
    control.addEventListener("change", schedule);
  }
  textInput.addEventListener("input", () => {
    state.q = textInput.value;
    writeUrl();
    applyText();
  });
  textInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") event.preventDefault();
  });

  // ---- live mode: poll for records newer than the newest seen ----
  function newest() {
    let best = state.from ? timeOf(state.from) : 0;
    for (const record of records) best = Math.max(best, timeOf(record.timestamp));
    return best;
  }

  async function poll() {
    if (stopped || loading) return;
    const ticket = generation;
    const since = newest();
    let pageCursor;
    const found = [];
    try {
      for (let pages = 0; pages < LIVE_PAGES_AT_MOST; pages += 1) {
        const page = await api.get(logsPath, {
          ...apiParams(),
          order: "asc",
          from: since ? new Date(since).toISOString() : undefined,
          cursor: pageCursor,
        });
        found.push(...page.records);
        pageCursor = page.next_cursor;
        if (!pageCursor) break;
      }
    } catch (error) {
      context.notice(`Live mode: ${error.message}`);
      return;
    }
    if (ticket !== generation || stopped) return;
    const fresh = found.filter((record) => !byId.has(record.id));
    if (!fresh.length) return;
    if (state.order === "desc") addRecords(fresh.reverse(), { atTop: true });
    else if (exhausted) addRecords(fresh);
    else liveBehind += fresh.length;
    applyText();
  }

  function setLive() {
    const wanted = state.live === "1" && !state.to;
    if (wanted && !liveTimer) liveTimer = setInterval(poll, LIVE_EVERY_MS);
    if (!wanted && liveTimer) {
      clearInterval(liveTimer);
      liveTimer = null;
    }
    if (state.live === "1" && state.to) context.notice("Live mode follows new records: clear “To” to use it.");
  }

  // ---- scrolling ----
  const observer = new IntersectionObserver(
    (seen) => {
      if (seen.some((entry) => entry.isIntersecting)) loadPage()?.catch((error) => context.notice(error.message));
    },
    { rootMargin: "0px 0px 800px 0px" },
  );
  loadMore.addEventListener("click", () => loadPage()?.catch((error) => context.notice(error.message)));

  // An alert in the address: its evidence, in the range around it unless the address gives a range.
  let alertProblem = "";
  if (state.alert) {
    try {
      const alert = await api.get(`/alerts/${encodeURIComponent(state.alert)}`);
      if (alert.charger_id !== chargerId) throw new Error(`it is an alert of charger ${alert.charger_id}`);
      setEvidence(alert);
      if (!state.from && !state.to) {
        evidenceView(alert);
        writeUrl();
      }
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) throw error;
      alertProblem = `The alert in the address: ${error.message}`;
      state.alert = "";
      strip.mark("");
      writeUrl();
    }
  }

  await reload();
  observer.observe(sentinel);
  setLive();
  if (alertProblem) context.notice(alertProblem);

  if (state.record) {
    const wanted = state.record;
    const at = wanted.split("~")[0];
    const found = byId.get(wanted) ?? (await ensureLoaded(wanted, at));
    if (found) selectRecord(found, { open: true });
    else {
      try {
        pin(await api.get(`${logsPath}/${encodeURIComponent(wanted)}`), "This record is not in the list as filtered and loaded.");
      } catch (error) {
        context.notice(`The record in the address: ${error.message}`);
      }
    }
  } else if (evidence) {
    await focusEvidence();
  }

  return () => {
    stopped = true;
    generation += 1;
    clearTimeout(filterTimer);
    if (liveTimer) clearInterval(liveTimer);
    observer.disconnect();
  };
}
