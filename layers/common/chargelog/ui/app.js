// The shell: asks for the API key once (kept in sessionStorage, sent in a header, never put in a URL), routes
// the hash (#/view/...?filters) to a view module, and shows errors as one line.
//
// A view module exports `render(main, context)`; it may return a function that stops what it started (a live
// mode's timer). context = { api, path: [segments after the view], params: URLSearchParams,
// setParams(object, {push}) — writes the view's state into the URL without re-rendering —, navigate(hash), notice(text) }.

import { Api, ApiError, forgetKey, storeKey, storedKey } from "./api.js";
import { clear, errorBox, field, h } from "./dom.js";

const VIEWS = {
  fleet: () => import("./fleet.js"),
  chargers: () => import("./timeline.js"),
  diagnostics: () => import("./diagnostics.js"),
  exports: () => import("./exports.js"),
};
// #/chargers/<id>/status and /sessions are views of their own.
const CHARGER_VIEWS = {
  status: () => import("./status.js"),
  sessions: () => import("./sessions.js"),
};

const main = document.getElementById("main");
const notice = document.getElementById("notice");
const forget = document.getElementById("forget-key");
let stopView = null;
let rendering = 0;

function showNotice(text) {
  notice.textContent = text ?? "";
  notice.hidden = !text;
}

export function parseHash(hash = location.hash) {
  const [pathPart, queryPart = ""] = hash.replace(/^#\/?/, "").split("?", 2);
  const path = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  return { view: path[0] || "fleet", path: path.slice(1), params: new URLSearchParams(queryPart) };
}

export function hashFor(view, path = [], params = {}) {
  const search = new URLSearchParams();
  const entries = params instanceof URLSearchParams ? [...params.entries()] : Object.entries(params);
  for (const [name, value] of entries) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(name, String(one));
  }
  const text = search.toString();
  return `#/${[view, ...path].map(encodeURIComponent).join("/")}${text ? `?${text}` : ""}`;
}

function askForKey(message) {
  forget.hidden = true;
  const input = h("input", { type: "password", name: "api-key", autocomplete: "off", required: true, id: "api-key" });
  const form = h(
    "form",
    { class: "key-form", "aria-labelledby": "key-title" },
    h("h1", { id: "key-title" }, "API key"),
    h(
      "p",
      {},
      "The viewer reads through the chargelog API. Give its key (`make run` prints it; on AWS: ",
      h("code", {}, "aws apigateway get-api-key --api-key <ApiKeyId> --include-value"),
      "). It is kept for this browser tab only.",
    ),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    field("API key", input),
    h("button", { type: "submit" }, "Open"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    // One small read checks the key before it is kept: a refused key is asked for again at once, whatever view.
    try {
      await new Api(key).get("/chargers");
    } catch (error) {
      const refused = error instanceof ApiError && (error.status === 401 || error.status === 403);
      askForKey(refused ? "The API refused this key: give it again." : error.message);
      return;
    }
    storeKey(key);
    route();
  });
  clear(main).append(form);
  input.focus();
}

function markNav(view) {
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === view || (view === "chargers" && link.dataset.view === "fleet")) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
  }
}

export async function route() {
  const ticket = ++rendering;
  stopView?.();
  stopView = null;
  showNotice("");
  const key = storedKey();
  if (!key) {
    askForKey();
    return;
  }
  forget.hidden = false;
  const { view, path, params } = parseHash();
  const api = new Api(key, () => {
    forgetKey();
    askForKey("The API refused this key: give it again.");
  });
  const load = view === "chargers" && path.length > 1 ? CHARGER_VIEWS[path[1]] : VIEWS[view];
  markNav(view);
  if (!load) {
    clear(main).append(errorBox(`No such view: ${view}`), h("a", { href: "#/fleet" }, "Go to the fleet"));
    return;
  }
  const context = {
    api,
    path,
    params,
    setParams(values, { push = false } = {}) {
      const target = hashFor(view, path, values);
      if (target === location.hash) return;
      history[push ? "pushState" : "replaceState"](null, "", target);
    },
    navigate(hash) {
      location.hash = hash;
    },
    notice: showNotice,
  };
  try {
    const module = await load();
    if (ticket !== rendering) return;
    clear(main);
    const stop = await module.render(main, context);
    if (ticket !== rendering) stop?.();
    else stopView = stop ?? null;
  } catch (error) {
    if (ticket !== rendering) return;
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return; // asking for the key
    console.warn(error);
    clear(main).append(errorBox(error));
  }
}

forget.addEventListener("click", () => {
  forgetKey();
  route();
});
window.addEventListener("hashchange", route);
route();
