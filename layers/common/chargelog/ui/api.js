// The API client: every call sends the key in the x-api-key header (never in a URL) and turns a problem body
// (application/problem+json: title, detail, status) into an ApiError with a one-line message.

const KEY = "chargelog.apiKey";

export function storedKey() {
  return sessionStorage.getItem(KEY);
}

export function storeKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

// The page is served at <api base>/ui/: the API is one level up (on AWS the base holds the stage, /Prod/).
export const API_BASE = new URL("../", document.baseURI);

export class ApiError extends Error {
  constructor(status, message, problem) {
    super(message);
    this.status = status;
    this.problem = problem;
  }
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params ?? {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(name, String(one));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export class Api {
  // onRefused: called when the API refuses the key (401/403), before the ApiError is thrown.
  constructor(key, onRefused) {
    this.key = key;
    this.onRefused = onRefused;
  }

  url(path, params) {
    return new URL(path.replace(/^\//, "") + query(params), API_BASE);
  }

  async request(method, path, { params, body, accept = "application/json", signal } = {}) {
    const headers = { "x-api-key": this.key, accept };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(this.url(path, params), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        credentials: "omit",
        cache: "no-store",
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, `The API did not answer (${error.message}).`);
    }
    if (response.ok) {
      return accept === "application/json" ? response.json() : response;
    }
    let problem = {};
    try {
      problem = await response.json();
    } catch {
      // not JSON: keep the status line
    }
    if (response.status === 401 || response.status === 403) this.onRefused?.(response.status);
    const message = problem.detail || problem.title || problem.message || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message, problem);
  }

  get(path, params, options = {}) {
    return this.request("GET", path, { ...options, params });
  }

  post(path, body, options = {}) {
    return this.request("POST", path, { ...options, body });
  }

  // Every page of a cursor-paged list route (body[field] and next_cursor), up to `most` items.
  async all(path, params, field, most = 10000) {
    const found = [];
    let cursor;
    do {
      const body = await this.get(path, { ...params, cursor });
      found.push(...body[field]);
      cursor = body.next_cursor;
    } while (cursor && found.length < most);
    return found;
  }
}
