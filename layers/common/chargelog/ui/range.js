// A time range form (UTC, to the second) kept in the URL as ?from=&to= (ISO 8601), and the charger's last
// record time, for views that default to the last day of a charger's records.

import { field, h, inputToIso, isoToInput } from "./dom.js";

const DAY_MS = 24 * 3600 * 1000;

// <form> with From / To inputs and a submit button; onApply({from, to}) gets ISO strings or undefined.
export function rangeForm({ from, to, onApply, submitText = "Show", extra = [] }) {
  const fromInput = h("input", { type: "datetime-local", step: "1", name: "from", value: isoToInput(from) });
  const toInput = h("input", { type: "datetime-local", step: "1", name: "to", value: isoToInput(to) });
  const form = h(
    "form",
    { class: "filters", role: "search" },
    field("From (UTC)", fromInput),
    field("To (UTC)", toInput),
    ...extra,
    h("button", { type: "submit", class: "primary" }, submitText),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onApply({ from: inputToIso(fromInput.value), to: inputToIso(toInput.value) });
  });
  return form;
}

function isoSeconds(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

// The charger's first and latest record times from GET /chargers (listed once per vendor and source).
export async function recordSpan(api, chargerId) {
  const body = await api.get("/chargers");
  const entries = (body.chargers ?? []).filter((entry) => entry.charger_id === chargerId);
  const firsts = entries.map((entry) => entry.first_record_at).filter(Boolean).sort();
  const lasts = entries.map((entry) => entry.last_record_at).filter(Boolean).sort();
  return { first: firsts[0], last: lasts.at(-1) };
}

// from/to of the URL; when it gives neither, the last day of the charger's records (from its first record when
// it has less than a day of them), to the second.
export async function rangeOrLastDay(api, chargerId, params) {
  let from = params.get("from") ?? undefined;
  let to = params.get("to") ?? undefined;
  if (!from && !to) {
    const { first, last } = await recordSpan(api, chargerId);
    if (last) {
      const end = new Date(last);
      end.setUTCSeconds(end.getUTCSeconds() + 1, 0);
      const start = new Date(Math.max(end.getTime() - DAY_MS, first ? new Date(first).getTime() : 0));
      start.setUTCMilliseconds(0);
      to = isoSeconds(end);
      from = isoSeconds(start);
    }
  }
  return { from, to };
}

// A heading's "Charger X: Timeline · Status · Sessions" links between a charger's views.
export function chargerLinks(chargerId, current, hashFor) {
  const links = [
    ["Timeline", hashFor("chargers", [chargerId])],
    ["Status", hashFor("chargers", [chargerId, "status"])],
    ["Sessions", hashFor("chargers", [chargerId, "sessions"])],
  ];
  return h(
    "nav",
    { class: "charger-links", "aria-label": `Charger ${chargerId}` },
    links.map(([text, href]) =>
      text === current ? h("strong", { "aria-current": "page" }, text) : h("a", { href }, text),
    ),
  );
}
