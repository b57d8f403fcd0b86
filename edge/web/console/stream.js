// The operator event stream (SSE) read with fetch(): EventSource cannot send the bearer token.
// Reconnects with backoff (1 s doubling to 15 s) and resumes after the last seq it saw.

import { authHeaders } from "./api.js";

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 15000;
// Keepalives come every 15 s: a stream silent for longer than this is dead, whatever TCP says.
const SILENCE_LIMIT_MS = 40000;

export class LiveStream {
  /**
   * @param {{onEvent: Function, onResync: Function, onState: Function, onUnauthorized: Function}} handlers
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.lastSeq = null;
    this.stopped = true;
    this.abort = null;
    this.wakeUp = null;
  }

  start(afterSeq) {
    if (!this.stopped) return;
    this.lastSeq = afterSeq ?? null;
    this.stopped = false;
    this.run();
  }

  stop() {
    this.stopped = true;
    if (this.abort) this.abort.abort();
    if (this.wakeUp) this.wakeUp();
  }

  async run() {
    let delay = FIRST_DELAY_MS;
    while (!this.stopped) {
      this.handlers.onState("connecting");
      let outcome;
      try {
        outcome = await this.connectOnce();
      } catch {
        outcome = "failed";
      }
      if (this.stopped) return;
      if (outcome === "unauthorized") {
        this.stopped = true;
        this.handlers.onUnauthorized();
        return;
      }
      if (outcome === "was_live") delay = FIRST_DELAY_MS;
      this.handlers.onState("reconnecting");
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = null;
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }

  async connectOnce() {
    this.abort = new AbortController();
    const query = this.lastSeq === null ? "" : `?after=${this.lastSeq}`;
    const response = await fetch(`/api/v1/stream${query}`, {
      headers: { ...authHeaders(), Accept: "text/event-stream" },
      signal: this.abort.signal,
      cache: "no-store",
    });
    if (response.status === 401) return "unauthorized";
    if (!response.ok || !response.body) return "failed";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let watchdog = setTimeout(() => this.abort.abort(), SILENCE_LIMIT_MS);
    let buffer = "";
    let wasLive = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => this.abort.abort(), SILENCE_LIMIT_MS);
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message = parseMessage(block);
          if (message === null) continue;
          if (message.event === "ready") {
            wasLive = true;
            this.handlers.onState("live");
          } else if (message.event === "resync") {
            this.lastSeq = null;
            this.handlers.onResync();
          } else {
            this.deliver(message);
          }
        }
      }
    } finally {
      clearTimeout(watchdog);
    }
    return wasLive ? "was_live" : "failed";
  }

  deliver(message) {
    let envelope;
    try {
      envelope = JSON.parse(message.data);
    } catch {
      return; // not an event we can read: skip it rather than stop the stream
    }
    const seq = Number(message.id ?? envelope.seq);
    if (Number.isFinite(seq)) {
      if (this.lastSeq !== null && seq <= this.lastSeq) return;
      this.lastSeq = seq;
    }
    this.handlers.onEvent(envelope);
  }
}

// One SSE message: "event:", "id:" and "data:" lines; lines starting with ":" are keepalives.
export function parseMessage(block) {
  let event = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0 && event === "message") return null;
  return { event, id, data: data.join("\n") };
}
