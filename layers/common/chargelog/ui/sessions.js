// #/chargers/<id>/sessions?from&to — the charger's charging sessions (GET /chargers/{id}/sessions): start, stop,
// duration, energy, id tag, stop reason; each links to its records on the timeline (transaction_id, from, to).

import { hashFor } from "./app.js";
import { clear, formatDuration, formatTime, h } from "./dom.js";
import { chargerLinks, rangeForm, rangeOrLastDay } from "./range.js";

const STATE_BADGES = {
  ended: ["ok", "ended"],
  unfinished: ["warn", "unfinished"],
  stop_without_start: ["warn", "stop without start"],
};

function kwh(wh) {
  return wh === null || wh === undefined ? "" : `${(wh / 1000).toFixed(2)} kWh`;
}

function earliest(...times) {
  const found = times.filter(Boolean).sort((a, b) => new Date(a) - new Date(b));
  return found[0];
}

// The timeline's link for a session: its transaction's records over the time its messages span.
export function recordsLink(chargerId, session) {
  return hashFor("chargers", [chargerId], {
    transaction_id: session.transaction_id ?? undefined,
    from: earliest(session.started_at, session.first_record_at),
    to: session.last_record_at,
  });
}

function row(chargerId, session) {
  const [tone, label] = STATE_BADGES[session.state] ?? ["", session.state];
  const refused = session.authorization_status && session.authorization_status !== "Accepted";
  return h(
    "tr",
    { class: refused ? "flag-bad" : session.state === "ended" ? null : "flag-warn", dataset: { transaction: session.transaction_id ?? "" } },
    h("td", { class: "mono" }, session.transaction_id ?? h("span", { class: "muted" }, "not answered")),
    h("td", {}, session.connector_id ?? ""),
    h("td", {}, h("span", { class: `badge ${tone}` }, label), refused ? h("span", { class: "badge bad" }, session.authorization_status) : null),
    h("td", { class: "mono" }, formatTime(session.started_at)),
    h("td", { class: "mono" }, formatTime(session.stopped_at)),
    h("td", {}, formatDuration(session.duration_seconds)),
    h("td", { class: "num" }, kwh(session.energy_wh)),
    h("td", { class: "mono" }, session.id_tag ?? ""),
    h("td", {}, session.stop_reason ?? ""),
    h("td", {}, h("a", { href: recordsLink(chargerId, session), class: "records-link" }, `${session.records} ${session.records === 1 ? "record" : "records"}`)),
  );
}

export async function render(main, context) {
  const { api, path, params } = context;
  const chargerId = path[0];
  const { from, to } = await rangeOrLastDay(api, chargerId, params);
  const result = h("section", { "aria-live": "polite" });
  main.append(
    h("h1", {}, `Charger ${chargerId}: sessions`),
    chargerLinks(chargerId, "Sessions", hashFor),
    rangeForm({
      from,
      to,
      onApply(range) {
        context.setParams(range, { push: true });
        show(range);
      },
    }),
    result,
  );

  async function show(range) {
    clear(result).append(h("p", { class: "muted" }, "Loading sessions…"));
    const body = await api.get(`/chargers/${encodeURIComponent(chargerId)}/sessions`, range);
    clear(result);
    if (body.truncated) {
      const earlier = { from: range.from, to: body.complete_from };
      result.append(
        h(
          "p",
          { class: "notice-inline", role: "status" },
          `The range holds more transaction messages than one answer reads: sessions are complete from ${formatTime(body.complete_from)} UTC on. `,
          h(
            "button",
            {
              type: "button",
              onclick: () => {
                context.setParams(earlier, { push: true });
                show(earlier);
              },
            },
            "Show earlier sessions",
          ),
        ),
      );
    }
    if (!body.sessions.length) {
      result.append(h("p", { class: "muted" }, "No sessions in this range."));
      return;
    }
    result.append(
      h("p", { class: "muted" }, `${body.sessions.length} sessions, newest first.`),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "sessions" },
          h("caption", { class: "visually-hidden" }, `Charging sessions of ${chargerId}`),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Transaction", "Connector", "State", "Start (UTC)", "Stop (UTC)", "Duration", "Energy", "Id tag", "Stop reason", "Records"].map(
                (name) => h("th", { scope: "col" }, name),
              ),
            ),
          ),
          h("tbody", {}, body.sessions.map((session) => row(chargerId, session))),
        ),
      ),
    );
  }

  await show({ from, to });
}
