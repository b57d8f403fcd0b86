// The controller's kiosk API: every request carries the kiosk token (and, for a courier's
// steps, the courier session). Errors become ApiError with the server's stable code.

const TOKEN_KEY = "kiosk.token";
const BASE = "/api/v1/kiosk";
const REQUEST_TIMEOUT_MS = 35000; // longer than the longest long-poll (20 s) plus a door (10 s)

export class ApiError extends Error {
  constructor(status, code, message, details = {}, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
    this.retryAfter = retryAfter;
  }
}

// The token arrives once in the address (#token=...): keep it and clear the address bar,
// so it is not left on screen or in the history.
export function takeTokenFromAddress() {
  const match = /(?:^|[#&])token=([^&]+)/.exec(window.location.hash);
  if (match) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return localStorage.getItem(TOKEN_KEY);
}

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

const listeners = { reachable: [], unauthorised: [] };

export function onReachability(fn) {
  listeners.reachable.push(fn);
}

export function onUnauthorised(fn) {
  listeners.unauthorised.push(fn);
}

function reachable(yes) {
  for (const fn of listeners.reachable) fn(yes);
}

let courierToken = null;

export function setCourierSession(value) {
  courierToken = value;
}

export function courierSession() {
  return courierToken;
}

export function headers(extra = {}) {
  const all = { "X-Kiosk-Token": token() || "", ...extra };
  if (courierToken) all["X-Courier-Session"] = courierToken;
  return all;
}

export async function request(method, path, body, { signal, timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: combined,
      cache: "no-store",
    });
  } catch (error) {
    if (signal && signal.aborted) throw error; // the screen left: nobody is waiting
    const timedOut = timeout.aborted;
    if (!timedOut) reachable(false);
    throw new ApiError(0, timedOut ? "timeout" : "network", String(error));
  }
  reachable(true);
  if (response.status === 204) return null;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const error = (payload && payload.error) || {};
    const retry = Number(response.headers.get("Retry-After"));
    const failure = new ApiError(
      response.status,
      error.code || "unknown",
      error.message || response.statusText,
      error.details,
      Number.isFinite(retry) && retry > 0 ? retry : null,
    );
    if (failure.code === "not_a_kiosk") for (const fn of listeners.unauthorised) fn();
    throw failure;
  }
  return payload;
}

export const api = {
  get: (path, options) => request("GET", path, undefined, options),
  post: (path, body = {}, options) => request("POST", path, body, options),
  put: (path, body, options) => request("PUT", path, body, options),
  del: (path, options) => request("DELETE", path, undefined, options),
};
