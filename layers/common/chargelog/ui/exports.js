// #/exports?charger=&site=&from=&to=&action=...&direction=&message_type=&transaction_id=&connector_status=&status=
// &kind=&format= — export the current filter (as the timeline links it here) as CSV or NDJSON: POST /exports,
// follow GET /exports/{id} until it is done, then download. The exports made in this tab are listed (their ids
// only, in sessionStorage).

import { clear, errorBox, field, formatTime, h, inputToIso, isoToInput } from "./dom.js";

const POLL_MS = 1500;
const STORED = "chargelog.exports";
const MOST_STORED = 50;
const STATE_TONES = { done: "ok", failed: "bad", running: "warn", queued: "" };
// Filters passed through as they are named in the URL and in POST /exports.
const TEXT_FILTERS = ["transaction_id", "connector_status", "status", "message_id"];
const CHOICES = {
  direction: ["", "cp_to_csms", "csms_to_cp"],
  message_type: ["", "CALL", "CALLRESULT", "CALLERROR"],
  kind: ["", "ocpp", "status"],
  vendor: ["", "plugchoice", "ocpplab", "chargepilot", "evenergy"],
};

function storedIds() {
  try {
    return JSON.parse(sessionStorage.getItem(STORED) ?? "[]").filter((id) => typeof id === "string");
  } catch {
    return [];
  }
}

function remember(id) {
  const ids = [id, ...storedIds().filter((known) => known !== id)].slice(0, MOST_STORED);
  sessionStorage.setItem(STORED, JSON.stringify(ids));
}

function describe(request) {
  const scope = request.charger_id ? `charger ${request.charger_id}` : request.site_id ? `site ${request.site_id}` : "fleet";
  const parts = [scope];
  if (request.from || request.to) parts.push(`${formatTime(request.from) || "…"} – ${formatTime(request.to) || "…"} UTC`);
  if (request.actions?.length) parts.push(request.actions.join(", "));
  for (const name of ["direction", "message_type", "kind", "vendor", ...TEXT_FILTERS]) {
    if (request[name]) parts.push(`${name}=${request[name]}`);
  }
  return parts.join(" · ");
}

function select(name, values, current) {
  return h("select", { name }, values.map((value) => h("option", { value, selected: value === (current ?? "") }, value || "any")));
}

export async function render(main, context) {
  const { api, params } = context;
  let timer = null;
  let stopped = false;
  const inputs = {
    charger: h("input", { name: "charger", value: params.get("charger") ?? params.get("charger_id") ?? "", autocomplete: "off" }),
    site: h("input", { name: "site", value: params.get("site") ?? params.get("site_id") ?? "", autocomplete: "off" }),
    from: h("input", { type: "datetime-local", step: "1", name: "from", value: isoToInput(params.get("from")) }),
    to: h("input", { type: "datetime-local", step: "1", name: "to", value: isoToInput(params.get("to")) }),
    action: h("input", { name: "action", value: params.getAll("action").join(", "), placeholder: "e.g. StartTransaction, StopTransaction" }),
    format: select("format", ["csv", "ndjson"], params.get("format") ?? "csv"),
  };
  for (const [name, values] of Object.entries(CHOICES)) inputs[name] = select(name, values, params.get(name));
  for (const name of TEXT_FILTERS) inputs[name] = h("input", { name, value: params.get(name) ?? "", autocomplete: "off" });
  const message = h("div", { role: "alert" });
  const list = h("section", { "aria-live": "polite", "aria-labelledby": "exports-title" });

  function formValues() {
    const actions = inputs.action.value.split(/[\s,]+/).filter(Boolean);
    const values = {
      charger: inputs.charger.value.trim() || undefined,
      site: inputs.site.value.trim() || undefined,
      from: inputToIso(inputs.from.value),
      to: inputToIso(inputs.to.value),
      action: actions,
      format: inputs.format.value,
    };
    for (const name of [...Object.keys(CHOICES), ...TEXT_FILTERS]) values[name] = inputs[name].value.trim() || undefined;
    return values;
  }

  function requestBody(values) {
    const body = {
      charger_id: values.charger,
      site_id: values.charger ? undefined : values.site,
      from: values.from,
      to: values.to,
      actions: values.action,
      format: values.format,
    };
    for (const name of [...Object.keys(CHOICES), ...TEXT_FILTERS]) body[name] = values[name];
    return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined && !(Array.isArray(value) && !value.length)));
  }

  async function refresh() {
    const ids = storedIds();
    const exports = await Promise.all(
      ids.map((id) => api.get(`/exports/${encodeURIComponent(id)}`).catch((error) => ({ id, state: "gone", error: error.message }))),
    );
    clear(list).append(h("h2", { id: "exports-title" }, "Exports made in this tab"));
    if (!exports.length) {
      list.append(h("p", { class: "muted" }, "None yet."));
      return exports;
    }
    list.append(
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "exports" },
          h("thead", {}, h("tr", {}, ["Asked (UTC)", "What", "Format", "State", "Records", "File"].map((name) => h("th", { scope: "col" }, name)))),
          h(
            "tbody",
            {},
            exports.map((item) =>
              h(
                "tr",
                { "data-export": item.id, "data-state": item.state },
                h("td", { class: "mono" }, formatTime(item.created_at)),
                h("td", {}, item.request ? describe(item.request) : ""),
                h("td", {}, item.format ?? ""),
                h("td", {}, h("span", { class: `badge ${STATE_TONES[item.state] ?? "bad"}` }, item.state), item.error ? h("div", { class: "error" }, item.error) : null),
                h("td", {}, item.state === "done" ? item.records : ""),
                h(
                  "td",
                  {},
                  item.download_url
                    ? h("a", { href: item.download_url, class: "download", rel: "noopener", download: `chargelog-export-${item.id}.${item.format}` }, `Download (${item.bytes} bytes)`)
                    : "",
                ),
              ),
            ),
          ),
        ),
      ),
    );
    return exports;
  }

  async function poll() {
    timer = null;
    try {
      const exports = await refresh();
      if (!stopped && exports.some((item) => item.state === "queued" || item.state === "running")) {
        if (timer) clearTimeout(timer);
        timer = setTimeout(poll, POLL_MS);
      }
    } catch (error) {
      if (!stopped) context.notice(`Could not refresh the exports: ${error.message}`);
    }
  }

  const form = h(
    "form",
    { "aria-label": "Export records" },
    h(
      "div",
      { class: "filters" },
      field("Charger", inputs.charger, "or a site; neither: the fleet"),
      field("Site", inputs.site),
      field("From (UTC)", inputs.from),
      field("To (UTC)", inputs.to),
      field("Actions", inputs.action, "comma-separated; required for the fleet"),
      field("Direction", inputs.direction),
      field("Message type", inputs.message_type),
      field("Kind", inputs.kind),
      field("Vendor", inputs.vendor),
      field("Transaction id", inputs.transaction_id),
      field("Connector status", inputs.connector_status),
      field("Status", inputs.status),
      field("Message id", inputs.message_id),
      field("Format", inputs.format),
    ),
    h("button", { type: "submit", class: "primary" }, "Export"),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(message);
    const values = formValues();
    context.setParams(values);
    try {
      const created = await api.post("/exports", requestBody(values));
      remember(created.id);
      if (timer) clearTimeout(timer);
      await poll();
    } catch (error) {
      message.append(errorBox(error));
    }
  });

  main.append(
    h("h1", {}, "Exports"),
    h("p", { class: "muted" }, "A whole query written to one CSV or NDJSON file in the background; the download link works for 15 minutes."),
    form,
    list,
  );
  await poll();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
