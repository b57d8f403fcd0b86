// The operator API: every call carries the bearer token kept for this browser tab only.

const TOKEN_KEY = "edge.console.token";
const DEFAULT_TIMEOUT_MS = 20000;

export const tokenStore = {
  get() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

// Called on any 401, so that a token changed on the controller sends the operator back to login.
let unauthorizedHandler = () => {};

export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

export function authHeaders(token = tokenStore.get()) {
  return { Authorization: `Bearer ${token ?? ""}` };
}

export async function api(path, { method = "GET", body, token, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const headers = { ...authHeaders(token), Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: abort.signal,
      cache: "no-store",
    });
  } catch {
    const code = abort.signal.aborted ? "timeout" : "unreachable";
    throw new ApiError(0, code, code);
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok) {
    let error = { code: "http_error", message: `HTTP ${response.status}`, details: {} };
    try {
      const parsed = await response.json();
      if (parsed && parsed.error) error = { ...error, ...parsed.error };
    } catch {
      // Not JSON (a proxy's page): keep the status line.
    }
    if (response.status === 401 && token === undefined) unauthorizedHandler();
    throw new ApiError(response.status, error.code, error.message, error.details || {});
  }
  if (response.status === 204) return null;
  return response.json();
}
