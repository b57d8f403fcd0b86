// Drawing the overview's panels from the API's data. Nothing here talks to the controller.

import { bandText, temperatureChart } from "./chart.js";
import { el, fmtBytes, fmtCelsius, fmtDuration, fmtMoney, fmtTime, shortId } from "./format.js";
import { t, tOr } from "./i18n.js";

export const STATES = [
  "free",
  "reserved",
  "open_for_deposit",
  "occupied",
  "open_for_pickup",
  "faulted",
  "disabled",
];

const $ = (id) => document.getElementById(id);

// ---- alarms ---------------------------------------------------------------------------------

export function renderAlarms(alarms) {
  const list = $("alarms");
  list.replaceChildren();
  // Critical first: they put goods or money at risk.
  const sorted = [...alarms].sort(
    (a, b) => Number(b.severity === "critical") - Number(a.severity === "critical"),
  );
  for (const alarm of sorted) {
    const severity = alarm.severity === "critical" ? "critical" : "warning";
    list.append(
      el("li", { cls: `alarm ${severity}`, attrs: { "data-kind": alarm.kind } }, [
        el("span", { cls: "severity", text: t(`severity_${severity}`) }),
        el("span", { cls: "alarm-body" }, [
          el("strong", { text: `${tOr(`alarm_${alarm.kind}`, alarm.kind)} · ${alarm.target}` }),
          el("span", { cls: "alarm-message", text: alarm.message }),
          el("span", { cls: "alarm-hint", text: tOr(`hint_${alarm.kind}`, "") }),
        ]),
      ]),
    );
  }
  $("all-clear").hidden = alarms.length > 0;
}

// ---- compartments ---------------------------------------------------------------------------

const tiles = new Map();

export function renderLegend() {
  $("legend").replaceChildren(
    ...STATES.map((state) =>
      el("li", { cls: "legend-item" }, [
        el("span", { cls: `swatch state-${state}`, attrs: { "aria-hidden": "true" } }),
        el("span", { text: t(`state_${state}`) }),
      ]),
    ),
  );
}

export function renderCompartments(compartments, onSelect) {
  const box = $("compartments");
  const ids = compartments.map((c) => c.id).join(",");
  if (box.dataset.ids !== ids) {
    // The site's compartments changed (first load, new config): build the tiles again.
    tiles.clear();
    box.replaceChildren();
    box.dataset.ids = ids;
    const zones = [...new Set(compartments.map((c) => c.zone))];
    for (const zone of zones) {
      const grid = el("div", { cls: "tile-grid" });
      const heading = el("h3", { cls: "zone-title", attrs: { "data-zone": zone } });
      box.append(el("div", { cls: "zone" }, [heading, grid]));
      for (const comp of compartments.filter((c) => c.zone === zone)) {
        const tile = el("button", { cls: "tile", attrs: { type: "button", "data-id": comp.id } });
        tile.addEventListener("click", () => onSelect(comp.id));
        tiles.set(comp.id, tile);
        grid.append(tile);
      }
    }
  }
  for (const heading of box.querySelectorAll(".zone-title")) {
    heading.textContent = tOr(`zone_${heading.dataset.zone}`, heading.dataset.zone);
  }
  for (const comp of compartments) updateTile(tiles.get(comp.id), comp);
}

function updateTile(tile, comp) {
  tile.className = `tile state-${comp.state}`;
  tile.dataset.state = comp.state;
  const badges = [];
  if (comp.fault) badges.push(el("span", { cls: "badge fault", text: t("badgeFault") }));
  if (comp.door_open) badges.push(el("span", { cls: "badge door", text: t("badgeDoorOpen") }));
  if (!comp.enabled) badges.push(el("span", { cls: "badge off", text: t("badgeDisabled") }));
  tile.replaceChildren(
    el("span", { cls: "tile-id", text: comp.id }),
    el("span", { cls: "tile-meta", text: `${comp.size} · ${tOr(`zone_${comp.zone}`, comp.zone)}` }),
    el("span", { cls: "tile-state", text: tOr(`state_${comp.state}`, comp.state) }),
    el("span", { cls: "badges" }, badges),
  );
}

export function compartmentFacts(comp) {
  return [
    [t("factState"), tOr(`state_${comp.state}`, comp.state)],
    [t("factSize"), comp.size],
    [t("factZone"), tOr(`zone_${comp.zone}`, comp.zone)],
    [t("factEnabled"), comp.enabled ? t("yes") : t("no")],
    [t("factDoor"), doorText(comp.door_open)],
    [t("factFault"), comp.fault ?? t("none")],
    [t("factParcel"), comp.parcel_id ?? t("none")],
    [t("factLock"), `${comp.bus} / ${t("board")} ${comp.board} / ${t("lock")} ${comp.lock}`],
  ];
}

export function renderFacts(dl, facts) {
  dl.replaceChildren(
    ...facts.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", { text: value })]),
  );
}

function doorText(open) {
  if (open === true) return t("doorOpen");
  if (open === false) return t("doorClosed");
  return t("unknown");
}

// ---- cabinets and held sessions -------------------------------------------------------------

export function renderCabinets(cabinets) {
  const box = $("cabinets");
  if (!cabinets.length) {
    box.replaceChildren(el("p", { cls: "muted", text: t("noCabinets") }));
    return;
  }
  box.replaceChildren(
    ...cabinets.map((cab) => {
      const dl = el("dl", { cls: "facts" });
      renderFacts(dl, [
        [t("cabAvailable"), cab.available ? t("cabOpenToShoppers") : t("cabClosedToShoppers")],
        [t("cabReader"), cab.reader_available ? t("up") : t("down")],
        [t("factDoor"), doorText(cab.door_open)],
        [t("cabItems"), String(cab.items)],
        [t("cabSession"), cab.session_id ? shortId(cab.session_id) : t("none")],
        [t("cabHeld"), cab.held ? t("cabHeldYes") : t("no")],
      ]);
      return el("div", { cls: `cabinet${cab.held ? " held" : ""}` }, [
        el("h3", { text: `${cab.id} · ${cab.name}` }),
        dl,
      ]);
    }),
  );
}

export function renderHeld(sessions, onAction) {
  const list = $("held");
  list.replaceChildren();
  $("held-none").hidden = sessions.length > 0;
  for (const session of sessions) {
    const descId = `held-${session.id}`;
    const settle = el("button", {
      cls: "secondary",
      text: t("settleAgain"),
      attrs: { type: "button", "aria-describedby": descId },
    });
    const voidIt = el("button", {
      cls: "danger",
      text: t("void"),
      attrs: { type: "button", "aria-describedby": descId },
    });
    settle.addEventListener("click", () => onAction("settle", session));
    voidIt.addEventListener("click", () => onAction("void", session));
    list.append(
      el("li", { cls: "held-session", attrs: { "data-session": session.id } }, [
        el("div", { attrs: { id: descId } }, [
          el("strong", { text: `${session.cabinet_id} · ${t("session")} ${shortId(session.id)}` }),
          el("span", {
            cls: "held-reason",
            text: `${t("holdReason")}: ${tOr(`hold_${session.hold_reason}`, session.hold_reason ?? t("forReview"))}`,
          }),
          el("span", {
            cls: "muted",
            text: `${tOr(`kind_${session.kind}`, session.kind)} · ${session.member_id ?? t("noMember")} · ${t("since")} ${fmtTime(session.created_at)}`,
          }),
        ]),
        el("div", { cls: "buttons" }, [settle, voidIt]),
      ]),
    );
  }
}

// ---- devices --------------------------------------------------------------------------------

export function renderDevices(devices) {
  const body = $("devices").tBodies[0];
  body.replaceChildren(
    ...devices.map((d) => {
      const status = d.available === true ? "up" : d.available === false ? "down" : "unknown";
      return el("tr", { attrs: { "data-device": d.name } }, [
        el("th", { text: d.name, attrs: { scope: "row" } }),
        el("td", { text: tOr(`device_${d.kind}`, d.kind) }),
        el("td", {}, [el("span", { cls: `pill ${status}`, text: t(status) })]),
        el("td", { text: fmtTime(d.since) }),
        el("td", { text: d.reason ?? "" }),
      ]);
    }),
  );
}

// ---- temperatures ---------------------------------------------------------------------------

export function renderTemperatures(now, history, at) {
  const box = $("temperatures");
  if (!now.length) {
    box.replaceChildren(el("p", { cls: "muted", text: t("noSensors") }));
    return;
  }
  const serverNow = at ? new Date(at) : new Date();
  box.replaceChildren(
    ...now.map((sensor, index) => {
      const status = sensor.available === false ? "offline" : sensor.alarmed ? "alarm" : "ok";
      const series = history?.find((s) => s.sensor === sensor.sensor) ?? {
        ...sensor,
        points: [],
      };
      const summaryId = `temp-summary-${index}`;
      const { chart, summary, collecting } = temperatureChart(series, {
        now: serverNow,
        hours: 24,
        index,
        summaryId,
      });
      return el("figure", { cls: `temp ${status}`, attrs: { "data-sensor": sensor.sensor } }, [
        el("div", { cls: "temp-head" }, [
          el("h3", { text: `${sensor.sensor} · ${tOr(`zone_${sensor.zone}`, sensor.zone)}` }),
          el("span", { cls: "temp-now", text: fmtCelsius(sensor.celsius) }),
          el("span", { cls: `pill ${status}`, text: t(`temp_${status}`) }),
        ]),
        el("p", { cls: "muted band-text", text: bandText(sensor.min_c, sensor.max_c) }),
        chart,
        collecting ? el("p", { cls: "collecting", text: t("collecting") }) : null,
        el("figcaption", { cls: "summary", text: summary, attrs: { id: summaryId } }),
      ]);
    }),
  );
}

// ---- sync -----------------------------------------------------------------------------------

export function renderSync(sync) {
  const dl = $("sync");
  if (!sync.configured) {
    renderFacts(dl, [[t("syncLink"), t("syncNotConfigured")]]);
  } else {
    const share = sync.cap_bytes ? Math.min(1, sync.backlog_bytes / sync.cap_bytes) : 0;
    renderFacts(dl, [
      [t("syncLink"), sync.connected ? t("syncConnected") : t("syncDisconnected")],
      [t("syncDownFor"), sync.connected ? "—" : fmtDuration(sync.down_for_s)],
      [t("syncLastError"), sync.last_error ?? t("none")],
    ]);
    dl.querySelector("dd").className = sync.connected ? "good" : "bad";
    const meter = el("meter", {
      attrs: {
        min: "0",
        max: "1",
        low: "0.5",
        high: "0.8",
        optimum: "0",
        value: String(share),
        "aria-label": t("syncBacklog"),
      },
    });
    dl.append(
      el("dt", { text: t("syncPending") }),
      el("dd", { text: String(sync.pending_events) }),
      el("dt", { text: t("syncOldest") }),
      el("dd", { text: fmtTime(sync.oldest_pending_at) }),
      el("dt", { text: t("syncBacklog") }),
      el("dd", {}, [
        el("span", {
          text: t("syncBacklogOf", {
            used: fmtBytes(sync.backlog_bytes),
            cap: fmtBytes(sync.cap_bytes),
            pct: (share * 100).toFixed(share < 0.01 && share > 0 ? 2 : 0),
          }),
        }),
        meter,
      ]),
    );
  }
  if (!sync.configured) {
    dl.append(
      el("dt", { text: t("syncPending") }),
      el("dd", { text: String(sync.pending_events) }),
    );
  }
}

// ---- events ---------------------------------------------------------------------------------

const KEY_FIELDS = [
  "compartment",
  "cabinet",
  "device",
  "sensor",
  "parcel_code",
  "session_id",
  "order_id",
  "member_id",
  "kind",
  "outcome",
  "reason",
  "state",
  "actor",
  "celsius",
  "status",
  "pending",
];

export function eventSummary(event) {
  const data = event.data ?? {};
  const parts = [];
  for (const field of KEY_FIELDS) {
    const value = data[field];
    if (value === null || value === undefined || typeof value === "object") continue;
    const shown = field.endsWith("_id") ? shortId(value) : String(value);
    parts.push(`${tOr(`field_${field}`, field)}: ${shown}`);
  }
  if (typeof data.total === "number") parts.push(`${t("field_total")}: ${fmtMoney(data.total, data.currency)}`);
  if (typeof data.amount === "number") parts.push(`${t("field_amount")}: ${fmtMoney(data.amount, data.currency)}`);
  return parts.slice(0, 6).join(" · ");
}

export function renderEvents(events, ackedSeq) {
  const list = $("events");
  const shown = events.slice(0, 60);
  // Update in place: an unchanged row keeps its node, so the live region announces only news.
  const existing = new Map([...list.children].map((li) => [li.dataset.seq, li]));
  const rows = shown.map((event) => {
    const delivered = event.delivered === true || (ackedSeq !== null && event.seq <= ackedSeq);
    const key = String(event.seq);
    let li = existing.get(key);
    const stamp = `${delivered}|${document.documentElement.lang}`;
    if (!li || li.dataset.stamp !== stamp) {
      li = el("li", { cls: "event", attrs: { "data-seq": key, "data-type": event.type } }, [
        el("div", { cls: "event-head" }, [
          el("time", { text: fmtTime(event.ts), attrs: { datetime: event.ts } }),
          el("code", { cls: "event-type", text: event.type }),
          el("span", {
            cls: `pill ${delivered ? "up" : "pending"}`,
            text: delivered ? t("delivered") : t("notDelivered"),
          }),
        ]),
        el("div", { cls: "event-data", text: eventSummary(event) }),
      ]);
      li.dataset.stamp = stamp;
    }
    return li;
  });
  list.replaceChildren(...rows);
  if (!rows.length) list.append(el("li", { cls: "muted", text: t("noEvents") }));
}
