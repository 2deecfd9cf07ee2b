// Small DOM helpers shared by the views: no framework, no build step.

// h("button", {type: "button", onclick: f, class: "x"}, "text", child...) -> an element. Attributes starting
// with "on" are listeners; true/false attributes are set or left out; strings are text, never HTML.
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// A labelled form control: <label>text <control></label>, so every control has a name for screen readers.
export function field(labelText, control, hint) {
  return h("label", { class: "field" }, h("span", {}, labelText), control, hint ? h("small", {}, hint) : null);
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

// "2026-11-20T08:00:01.123Z" -> "2026-11-20 08:00:01.123" (UTC; the API's times are UTC).
export function formatTime(iso) {
  if (!iso) return "";
  return String(iso).replace("T", " ").replace(/(\.\d{3})\d*/, "$1").replace(/(Z|\+00:00)$/, "");
}

// Seconds -> "3 h 12 min", "45 s": the largest two units.
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
  let rest = Math.max(0, Math.floor(seconds));
  const units = [
    ["d", 86400],
    ["h", 3600],
    ["min", 60],
    ["s", 1],
  ];
  const parts = [];
  for (const [name, size] of units) {
    if (rest >= size || (name === "s" && parts.length === 0)) {
      parts.push(`${Math.floor(rest / size)} ${name}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

// "2026-11-20T08:00" from an <input type="datetime-local" step="1"> read as UTC -> ISO 8601 with Z; "" -> undefined.
export function inputToIso(value) {
  if (!value) return undefined;
  const withSeconds = value.length === 16 ? `${value}:00` : value;
  return `${withSeconds}Z`;
}

// ISO 8601 -> the value an <input type="datetime-local" step="1"> shows (UTC, to the second).
export function isoToInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toISOString().slice(0, 19);
}

// A collapsible JSON block: <details><summary>label</summary><pre>…</pre></details>.
export function jsonBlock(label, value, open = false) {
  return h("details", { class: "json", open }, h("summary", {}, label), h("pre", {}, JSON.stringify(value, null, 2)));
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error?.message ?? String(error));
}
