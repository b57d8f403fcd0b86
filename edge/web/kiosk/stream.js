// Live events from the controller (GET /api/v1/kiosk/stream), read with fetch so the kiosk
// token can ride in a header (EventSource cannot send one). Reconnects with backoff from the
// last seq seen; `resync` tells waiting screens to reload what they wait on.

import { headers } from "./api.js";

const FIRST_RETRY_MS = 1000;
const LAST_RETRY_MS = 15000;
const RECENT_LIMIT = 100;

const subscribers = new Set();
const statusListeners = [];
// The last events, for a screen that starts waiting just after its event went by.
const recent = [];
let lastSeq = null;
let connected = false;
let stopped = false;

export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

export function recentEvents() {
  return recent.slice();
}

export function onStatus(fn) {
  statusListeners.push(fn);
}

export function isConnected() {
  return connected;
}

function setConnected(yes) {
  if (connected === yes && yes) return; // every failure is told: the first one too
  connected = yes;
  for (const fn of statusListeners) fn(yes);
}

function dispatch(type, id, data) {
  if (id !== null && /^\d+$/.test(id)) lastSeq = Number(id);
  if (type === "ready") {
    setConnected(true);
    return;
  }
  const event = { type, seq: lastSeq, data: (data && data.data) || {}, raw: data };
  if (type !== "resync") {
    recent.push(event);
    if (recent.length > RECENT_LIMIT) recent.shift();
  } else {
    lastSeq = null;
  }
  for (const fn of [...subscribers]) {
    try {
      fn(event);
    } catch (error) {
      console.warn("stream subscriber failed", error);
    }
  }
}

// One SSE message: `event:`, `id:` and `data:` lines; ':' lines are keepalives.
function parseMessage(block) {
  let type = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length && type === "message") return;
  let parsed = null;
  try {
    parsed = data.length ? JSON.parse(data.join("\n")) : null;
  } catch {
    parsed = null;
  }
  dispatch(type, id, parsed);
}

async function readOnce(onUnauthorised) {
  const query = lastSeq === null ? "" : `?after=${lastSeq}`;
  const response = await fetch(`/api/v1/kiosk/stream${query}`, {
    headers: { ...headers(), Accept: "text/event-stream" },
    cache: "no-store",
  });
  if (response.status === 401) {
    onUnauthorised();
    return false;
  }
  if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      parseMessage(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
  return true;
}

export async function run(onUnauthorised) {
  let delay = FIRST_RETRY_MS;
  while (!stopped) {
    try {
      const again = await readOnce(onUnauthorised);
      if (!again) return;
      delay = FIRST_RETRY_MS; // it was up: the end is a restart or a cut-off, come back soon
    } catch {
      // unreachable; retried below
    }
    setConnected(false);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, LAST_RETRY_MS);
  }
}

export function stop() {
  stopped = true;
}
