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

// The charger's latest record time from GET /chargers (a charger may be listed once per vendor and source).
export async function lastRecordAt(api, chargerId) {
  const body = await api.get("/chargers");
  const times = (body.chargers ?? [])
    .filter((entry) => entry.charger_id === chargerId)
    .map((entry) => entry.last_record_at)
    .filter(Boolean)
    .sort();
  return times.at(-1);
}

// from/to of the URL, or the day before the charger's last record when the URL gives neither.
export async function rangeOrLastDay(api, chargerId, params) {
  let from = params.get("from") ?? undefined;
  let to = params.get("to") ?? undefined;
  if (!from && !to) {
    const last = await lastRecordAt(api, chargerId);
    if (last) {
      const end = new Date(last);
      end.setUTCSeconds(end.getUTCSeconds() + 1, 0);
      to = end.toISOString().replace(".000Z", "Z");
      from = new Date(end.getTime() - DAY_MS).toISOString().replace(".000Z", "Z");
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
