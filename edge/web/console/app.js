// The operator console: sign in with the operator token, then the site's overview, kept live
// by the event stream and refreshed every 30 s anyway (device health changes without events).

import { CompartmentDetails, errorText, followSettling, heldSessionAction } from "./actions.js";
import { api, ApiError, onUnauthorized, tokenStore } from "./api.js";
import { fmtTime } from "./format.js";
import { applyLanguage, currentLang, setLanguage, t } from "./i18n.js";
import {
  renderAlarms,
  renderCabinets,
  renderCompartments,
  renderDevices,
  renderEvents,
  renderHeld,
  renderLegend,
  renderSync,
  renderTemperatures,
} from "./panels.js";
import { LiveStream } from "./stream.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 30000;
const RELOAD_AT_MOST_EVERY_MS = 1000;
const HISTORY_EVERY_MS = 60000;
const KEPT_EVENTS = 200;

const state = {
  overview: null,
  history: null,
  historyAt: 0,
  events: new Map(), // seq -> envelope (with "delivered" when the overview said so)
  loading: false,
  loadAgain: false,
  lastLoadAt: 0,
  reloadTimer: null,
  refreshTimer: null,
  signedIn: false,
};

const stream = new LiveStream({
  onEvent: (envelope) => {
    addEvents([envelope]);
    followSettling(envelope);
    drawEvents();
    scheduleReload();
  },
  onResync: () => scheduleReload(),
  onState: (status) => showLive(status),
  onUnauthorized: () => signOut(t("tokenRejected")),
});

const details = new CompartmentDetails({
  current: () => state.overview?.compartments ?? [],
  changed: () => scheduleReload(),
});

// ---- login ----------------------------------------------------------------------------------

function showLogin(message = "") {
  state.signedIn = false;
  $("overview").hidden = true;
  $("sign-out").hidden = true;
  $("live").hidden = true;
  $("updated").hidden = true;
  $("site-name").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").value = "";
  $("token").focus();
}

function loginErrorText(error) {
  if (error instanceof ApiError) {
    if (error.status === 401) return t("tokenRejected");
    if (error.status === 503 && error.code === "operator_api_disabled") return t("apiDisabled");
  }
  return errorText(error);
}

async function submitLogin(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) {
    $("login-error").textContent = t("tokenMissing");
    return;
  }
  $("login-submit").disabled = true;
  $("login-error").textContent = t("checking");
  try {
    // The token is tried before it is kept: a wrong one never lands in storage.
    const overview = await api("/api/v1/overview", { token });
    tokenStore.set(token);
    $("login-error").textContent = "";
    enterConsole(overview);
  } catch (error) {
    $("login-error").textContent = loginErrorText(error);
    $("token").select();
  } finally {
    $("login-submit").disabled = false;
  }
}

function signOut(message = "") {
  stream.stop();
  clearTimeout(state.reloadTimer);
  clearInterval(state.refreshTimer);
  state.reloadTimer = null;
  state.overview = null;
  state.history = null;
  state.historyAt = 0;
  state.events.clear();
  if (document.getElementById("details").open) $("details").close();
  if (document.getElementById("confirm").open) $("confirm").close();
  tokenStore.clear();
  showLogin(message);
}

// ---- overview -------------------------------------------------------------------------------

function enterConsole(overview) {
  state.signedIn = true;
  $("login").hidden = true;
  $("overview").hidden = false;
  $("sign-out").hidden = false;
  $("live").hidden = false;
  $("updated").hidden = false;
  showOverview(overview);
  loadHistory();
  stream.start(overview.sync.last_seq);
  state.refreshTimer = setInterval(() => scheduleReload(), REFRESH_MS);
}

async function loadOverview() {
  if (state.loading) {
    state.loadAgain = true;
    return;
  }
  state.loading = true;
  state.lastLoadAt = Date.now();
  try {
    const overview = await api("/api/v1/overview");
    if (!state.signedIn) return;
    $("load-error").textContent = "";
    showOverview(overview);
    if (Date.now() - state.historyAt > HISTORY_EVERY_MS) loadHistory();
  } catch (error) {
    if (state.signedIn && !(error instanceof ApiError && error.status === 401)) {
      $("load-error").textContent = t("loadFailed", { reason: errorText(error) });
    }
  } finally {
    state.loading = false;
    if (state.loadAgain) {
      state.loadAgain = false;
      scheduleReload();
    }
  }
}

/** Reload soon, but at most once a second however many events arrive. */
function scheduleReload() {
  if (!state.signedIn || state.reloadTimer !== null) return;
  const wait = Math.max(0, state.lastLoadAt + RELOAD_AT_MOST_EVERY_MS - Date.now());
  state.reloadTimer = setTimeout(() => {
    state.reloadTimer = null;
    loadOverview();
  }, wait);
}

async function loadHistory() {
  state.historyAt = Date.now();
  try {
    state.history = await api("/api/v1/temperatures?hours=24");
    if (state.overview) drawTemperatures();
  } catch {
    // The current values still show; the chart tries again with the next refresh.
    state.historyAt = 0;
  }
}

function showOverview(overview) {
  state.overview = overview;
  for (const event of overview.recent_events) state.events.set(event.seq, event);
  draw();
}

function addEvents(envelopes) {
  for (const envelope of envelopes) {
    if (!state.events.has(envelope.seq)) state.events.set(envelope.seq, envelope);
  }
  if (state.events.size > KEPT_EVENTS) {
    const keep = [...state.events.keys()].sort((a, b) => b - a).slice(0, KEPT_EVENTS);
    const kept = new Set(keep);
    for (const seq of [...state.events.keys()]) if (!kept.has(seq)) state.events.delete(seq);
  }
}

function drawEvents() {
  const newestFirst = [...state.events.values()].sort((a, b) => b.seq - a.seq);
  renderEvents(newestFirst, state.overview?.sync.acked_seq ?? null);
}

function drawTemperatures() {
  const o = state.overview;
  renderTemperatures(o.temperatures, state.history, o.at);
}

function draw() {
  const o = state.overview;
  if (!o) return;
  $("site-name").textContent = `${o.site} · v${o.version}${o.ready ? "" : ` · ${t("starting")}`}`;
  $("updated").textContent = t("updatedAt", { time: fmtTime(o.at) });
  renderAlarms(o.alarms);
  renderLegend();
  renderCompartments(o.compartments, (id) => details.show(id));
  details.refresh();
  renderCabinets(o.cabinets);
  renderHeld(o.held_sessions, (action, session) =>
    heldSessionAction(action, session, () => scheduleReload()),
  );
  renderDevices(o.devices);
  drawTemperatures();
  renderSync(o.sync);
  drawEvents();
}

function showLive(status) {
  const live = $("live");
  live.dataset.status = status;
  live.textContent = t(`live_${status}`);
}

// ---- start ----------------------------------------------------------------------------------

function switchLanguage() {
  setLanguage(currentLang() === "en" ? "zh-CN" : "en");
  if ($("live").dataset.status) showLive($("live").dataset.status);
  draw();
}

async function boot() {
  applyLanguage();
  $("login-form").addEventListener("submit", submitLogin);
  $("sign-out").addEventListener("click", () => signOut());
  $("lang").addEventListener("click", switchLanguage);
  onUnauthorized(() => {
    if (state.signedIn) signOut(t("tokenRejected"));
  });
  const token = tokenStore.get();
  if (!token) {
    showLogin();
    return;
  }
  try {
    enterConsole(await api("/api/v1/overview", { token }));
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 503)) {
      tokenStore.clear();
      showLogin(loginErrorText(error));
    } else {
      showLogin(loginErrorText(error));
    }
  }
}

boot();
