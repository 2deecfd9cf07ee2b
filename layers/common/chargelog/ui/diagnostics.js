// #/diagnostics?charger=<id>&request=<request id> — ask a charger for its log file: issue an upload address
// (POST /diagnostics/requests) and show the GetLog (2.0.1) and GetDiagnostics (1.6) payloads to send, with Copy
// buttons; list the charger's requests and follow their state (polled while any is open); open one to see its
// payloads, the charger's status reports and its files, each with a download link.

import { clear, errorBox, field, formatTime, h, inputToIso } from "./dom.js";

const POLL_MS = 3000;
const OPEN_STATES = new Set(["requested", "uploading"]);
const STATE_TONES = { uploaded: "ok", uploading: "warn", requested: "", failed: "bad", expired: "bad" };

function stateBadge(state) {
  return h("span", { class: `badge ${STATE_TONES[state] ?? ""}`, "data-state": state }, state);
}

function bytes(size) {
  if (size === null || size === undefined) return "";
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`;
  return `${(size / 1024 / 1024).toFixed(1)} MiB`;
}

// A block of text to copy: <pre> and a Copy button (navigator.clipboard where the page may use it).
function copyBlock(label, text, name) {
  const pre = h("pre", { class: "copy-text", "data-copy": name, tabindex: 0, "aria-label": label }, text);
  const status = h("span", { class: "muted", role: "status" });
  const button = h(
    "button",
    {
      type: "button",
      onclick: async () => {
        try {
          if (!navigator.clipboard) throw new Error("no clipboard here");
          await navigator.clipboard.writeText(text);
          status.textContent = "Copied.";
        } catch {
          // No clipboard (plain HTTP other than localhost, or refused): select the text for Ctrl+C.
          const selection = getSelection();
          selection.removeAllRanges();
          const range = document.createRange();
          range.selectNodeContents(pre);
          selection.addRange(range);
          status.textContent = "Selected: press Ctrl+C to copy.";
        }
      },
    },
    `Copy ${label}`,
  );
  return h("div", { class: "copy" }, h("h3", {}, label), pre, h("div", { class: "copy-actions" }, button, status));
}

function requestForm(chargerId, chargers, onCreated) {
  const charger = h("input", { name: "charger", required: true, value: chargerId ?? "", list: "diag-chargers", autocomplete: "off" });
  const logType = h("select", { name: "log_type" }, h("option", { value: "DiagnosticsLog" }, "DiagnosticsLog"), h("option", { value: "SecurityLog" }, "SecurityLog (2.0.1)"));
  const oldest = h("input", { type: "datetime-local", step: "1", name: "oldest" });
  const latest = h("input", { type: "datetime-local", step: "1", name: "latest" });
  const expires = h("input", { type: "number", name: "expires", min: 5, max: 10080, value: 1440 });
  const message = h("div", { role: "alert" });
  const form = h(
    "form",
    { class: "filters", "aria-label": "Ask a charger for its log file" },
    field("Charger", charger),
    h("datalist", { id: "diag-chargers" }, chargers.map((id) => h("option", { value: id }))),
    field("Log", logType),
    field("Oldest entries (UTC)", oldest, "optional"),
    field("Latest entries (UTC)", latest, "optional"),
    field("Address works for (minutes)", expires),
    h("button", { type: "submit", class: "primary" }, "Issue upload address"),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(message);
    try {
      await onCreated({
        charger_id: charger.value.trim(),
        log_type: logType.value,
        oldest_timestamp: inputToIso(oldest.value),
        latest_timestamp: inputToIso(latest.value),
        expires_in_minutes: Number(expires.value) || undefined,
      });
    } catch (error) {
      message.append(errorBox(error));
    }
  });
  return form;
}

function detailView(detail) {
  const files = detail.files ?? [];
  return h(
    "section",
    { class: "diag-detail", "data-request": detail.request_id, "aria-labelledby": "diag-detail-title" },
    h("h2", { id: "diag-detail-title" }, "Request ", h("code", {}, detail.request_id.slice(0, 8)), " ", stateBadge(detail.state)),
    h(
      "p",
      { class: "muted" },
      `${detail.charger_id} · ${detail.log_type} · requestId ${detail.ocpp_request_id} · requested ${formatTime(detail.requested_at)} UTC · address works until ${formatTime(detail.upload_expires_at)} UTC`,
    ),
    detail.remote_location
      ? h(
          "div",
          { class: "copies" },
          copyBlock("upload address", detail.remote_location, "remote_location"),
          copyBlock("GetLog (OCPP 2.0.1)", JSON.stringify(detail.getlog, null, 2), "getlog"),
          copyBlock("GetDiagnostics (OCPP 1.6)", JSON.stringify(detail.getdiagnostics, null, 2), "getdiagnostics"),
        )
      : h("p", { class: "error" }, "The upload address can no longer be rebuilt (the upload token key was replaced)."),
    detail.last_upload_error ? h("p", { class: "error" }, `Last upload rejected: ${detail.last_upload_error}`) : null,
    h("h3", {}, `Files (${files.length})`),
    files.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "diag-files" },
            h("thead", {}, h("tr", {}, ["File", "Size", "SHA-256", "Compression", "Received (UTC)"].map((name) => h("th", { scope: "col" }, name)))),
            h(
              "tbody",
              {},
              files.map((file) =>
                h(
                  "tr",
                  {},
                  h("td", {}, file.download_url ? h("a", { href: file.download_url, class: "download", download: file.filename, rel: "noopener" }, file.filename) : `${file.filename} (deleted)`),
                  h("td", {}, bytes(file.size)),
                  h("td", { class: "mono sha" }, file.sha256),
                  h("td", {}, file.compression),
                  h("td", { class: "mono" }, formatTime(file.received_at)),
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No file yet: send the GetLog or GetDiagnostics above to the charger."),
    detail.status_notifications?.length
      ? h(
          "div",
          {},
          h("h3", {}, "The charger's status reports"),
          h(
            "ul",
            {},
            detail.status_notifications.map((report) => h("li", {}, `${formatTime(report.timestamp)} UTC ${report.action}: ${report.status}`)),
          ),
        )
      : null,
  );
}

export async function render(main, context) {
  const { api, params } = context;
  let chargerId = params.get("charger") ?? "";
  let openRequest = params.get("request") ?? "";
  let timer = null;
  let stopped = false;
  const chargers = [...new Set(((await api.get("/chargers")).chargers ?? []).map((entry) => entry.charger_id))].sort();
  const list = h("section", { "aria-live": "polite", "aria-labelledby": "diag-list-title" });
  const detail = h("div", { "aria-live": "polite" });

  function writeUrl(push = false) {
    context.setParams({ charger: chargerId || undefined, request: openRequest || undefined }, { push });
  }

  async function openDetail(requestId) {
    openRequest = requestId;
    writeUrl(true);
    await refreshDetail();
  }

  async function refreshDetail() {
    if (!openRequest) {
      clear(detail);
      return null;
    }
    const found = await api.get(`/diagnostics/${encodeURIComponent(openRequest)}`);
    clear(detail).append(detailView(found));
    return found;
  }

  async function refreshList() {
    if (!chargerId) {
      clear(list).append(h("p", { class: "muted" }, "Give a charger to see its requests."));
      return [];
    }
    const requests = await api.all("/diagnostics", { charger_id: chargerId, limit: 100 }, "requests", 100);
    clear(list).append(h("h2", { id: "diag-list-title" }, `Requests for ${chargerId}`));
    if (!requests.length) {
      list.append(h("p", { class: "muted" }, "No requests yet."));
      return requests;
    }
    list.append(
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "diag-requests" },
          h("thead", {}, h("tr", {}, ["Requested (UTC)", "Log", "State", "Files", "Bytes", "Address until (UTC)", ""].map((name) => h("th", { scope: "col" }, name)))),
          h(
            "tbody",
            {},
            requests.map((request) =>
              h(
                "tr",
                { "data-request": request.request_id, class: request.request_id === openRequest ? "selected" : null },
                h("td", { class: "mono" }, formatTime(request.requested_at)),
                h("td", {}, request.log_type),
                h("td", {}, stateBadge(request.state)),
                h("td", {}, request.files_received),
                h("td", {}, bytes(request.bytes_received)),
                h("td", { class: "mono" }, formatTime(request.upload_expires_at)),
                h("td", {}, h("button", { type: "button", onclick: () => openDetail(request.request_id) }, "Open")),
              ),
            ),
          ),
        ),
      ),
    );
    return requests;
  }

  // Poll while a request can still change (requested, uploading); stop() clears the timer.
  async function poll() {
    timer = null;
    try {
      const requests = await refreshList();
      const shown = openRequest ? await refreshDetail() : null;
      const open = requests.some((request) => OPEN_STATES.has(request.state)) || (shown && OPEN_STATES.has(shown.state));
      if (open && !stopped) {
        if (timer) clearTimeout(timer);
        timer = setTimeout(poll, POLL_MS);
      }
    } catch (error) {
      if (!stopped) context.notice(`Could not refresh the requests: ${error.message}`);
    }
  }

  main.append(
    h("h1", {}, "Diagnostics: ask a charger for its log file"),
    h(
      "p",
      { class: "muted" },
      "chargelog issues an upload address; send the GetLog (OCPP 2.0.1) or GetDiagnostics (1.6) payload below to the charger from its CSMS, and the file it uploads appears here.",
    ),
    requestForm(chargerId, chargers, async (body) => {
      const created = await api.post("/diagnostics/requests", body);
      chargerId = created.charger_id;
      if (timer) clearTimeout(timer);
      await openDetail(created.request_id);
      await poll();
    }),
    detail,
    list,
  );
  await poll();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
