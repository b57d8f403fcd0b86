// Waiting for something the person does (closing a door): the live stream tells at once; a
// long-poll runs alongside, so a screen never hangs when the stream is down.

import { api } from "./api.js";
import { recentEvents, subscribe } from "./stream.js";

const FINISHED_OPERATION = new Set(["completed", "cancelled", "interrupted", "not_opened"]);
const FINISHED_SESSION = new Set(["closed", "held", "cancelled"]);
const RETRY_MS = 2000;
const SESSION_POLL_MS = 3000;
// Short long-polls for scans: a controller that stops waits for the open ones to end.
const SCAN_WAIT_S = 5;

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// Resolves with the finished operation (GET /operations/{id}); `onEvent` sees every stream
// event about it (door.left_open, for a reminder).
export function waitForOperation(operationId, { signal, onEvent } = {}) {
  const stop = new AbortController();
  const done = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  return new Promise((resolve, reject) => {
    let finished = false;
    const finish = (view) => {
      if (finished) return;
      finished = true;
      unsubscribe();
      stop.abort();
      resolve(view);
    };
    const settle = async () => {
      // The stream says the door closed: read the outcome (a deposit's pickup code with it).
      while (!done.aborted) {
        try {
          const view = await api.get(`/operations/${operationId}`, { signal: done });
          if (FINISHED_OPERATION.has(view.state)) return finish(view);
          return;
        } catch {
          await pause(RETRY_MS, done);
        }
      }
    };
    const unsubscribe = subscribe((event) => {
      if (event.type === "resync") return void settle();
      if (event.data.operation !== operationId) return;
      if (onEvent) onEvent(event);
      if (["door.closed", "parcel.deposited", "parcel.picked_up", "parcel.deposit_cancelled"].includes(event.type)) {
        void settle();
      }
    });
    (async () => {
      while (!done.aborted) {
        try {
          const view = await api.get(`/operations/${operationId}?wait=20`, { signal: done });
          if (FINISHED_OPERATION.has(view.state)) return finish(view);
        } catch (error) {
          if (done.aborted) return;
          if (error.status === 404) {
            unsubscribe();
            return reject(error);
          }
          await pause(RETRY_MS, done);
        }
      }
    })();
    done.addEventListener("abort", () => unsubscribe());
  });
}

// Resolves with the finished cabinet session (closed, held or cancelled).
export function waitForSession(sessionId, { signal, onEvent } = {}) {
  const stop = new AbortController();
  const done = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  return new Promise((resolve) => {
    let finished = false;
    const check = async () => {
      try {
        const view = await api.get(`/cabinet-sessions/${sessionId}`, { signal: done });
        if (!finished && FINISHED_SESSION.has(view.state)) {
          finished = true;
          stop.abort();
          resolve(view);
        }
      } catch {
        // polled again below
      }
    };
    const unsubscribe = subscribe((event) => {
      if (event.type === "resync") return void check();
      if (event.data.session_id !== sessionId) return;
      if (onEvent) onEvent(event);
      if (event.type === "cabinet.session_closed" || event.type === "cabinet.session_held") void check();
    });
    done.addEventListener("abort", () => unsubscribe());
    (async () => {
      while (!done.aborted) {
        await check();
        await pause(SESSION_POLL_MS, done);
      }
    })();
  });
}

// The payment decision for an order: resolves "authorized" / "declined", or null after
// `timeoutMs` (the payment may be decided later, upstream).
export function waitForPayment(orderId, { signal, timeoutMs = 15000 } = {}) {
  return new Promise((resolve) => {
    const verdict = (event) => {
      if (event.data.order_id !== orderId) return null;
      if (event.type === "payment.authorized") return "authorized";
      if (event.type === "payment.declined") return "declined";
      return null;
    };
    for (const event of recentEvents()) {
      const found = verdict(event);
      if (found) return resolve(found);
    }
    const timer = setTimeout(() => end(null), timeoutMs);
    const unsubscribe = subscribe((event) => {
      const found = verdict(event);
      if (found) end(found);
    });
    function end(value) {
      clearTimeout(timer);
      unsubscribe();
      resolve(value);
    }
    if (signal) signal.addEventListener("abort", () => end(null));
  });
}

// The codes scanned at this kiosk while a flow is set: calls `onOutcome(outcome)` for each
// handled scan until the signal aborts. The flow is set first, and cleared when leaving.
export async function watchScans(flow, { signal, onOutcome, cabinet } = {}) {
  try {
    await api.put("/scan-flow", cabinet ? { flow, cabinet } : { flow }, { signal });
  } catch (error) {
    if (signal.aborted) return;
    throw error;
  }
  signal.addEventListener("abort", () => {
    api.del("/scan-flow").catch(() => {});
  });
  let after = 0;
  try {
    after = (await api.get("/scans", { signal })).last_seq; // only what is scanned from now on
  } catch {
    after = 0;
  }
  let refreshed = Date.now();
  while (!signal.aborted) {
    try {
      if (Date.now() - refreshed > 120000) {
        // the flow lapses after a few minutes of nobody scanning: renew it while on screen
        await api.put("/scan-flow", cabinet ? { flow, cabinet } : { flow }, { signal });
        refreshed = Date.now();
      }
      const found = await api.get(`/scans?after=${after}&wait=${SCAN_WAIT_S}`, { signal });
      let pending = false;
      for (const scan of found.scans) {
        if (scan.outcome === null) {
          pending = true; // still being handled (a door opening): ask again shortly
          break;
        }
        after = scan.seq;
        if (scan.outcome.status !== "ignored" && !signal.aborted) onOutcome(scan.outcome);
      }
      if (pending) await pause(300, signal);
      else after = Math.max(after, found.last_seq);
    } catch {
      if (signal.aborted) return;
      await pause(RETRY_MS, signal);
    }
  }
}
