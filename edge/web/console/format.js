// Small helpers: building elements and formatting times, durations, sizes and temperatures.

import { currentLang, t } from "./i18n.js";

/** An element with optional class, text, attributes and children. */
export function el(tag, { cls, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (attrs) for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) if (child) node.append(child);
  return node;
}

function locale() {
  return currentLang() === "zh-CN" ? "zh-CN" : "en-GB";
}

export function fmtTime(iso, now = new Date()) {
  if (!iso) return "—";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return String(iso);
  const sameDay = when.toDateString() === now.toDateString();
  const options = sameDay
    ? { hour: "2-digit", minute: "2-digit", second: "2-digit" }
    : { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" };
  return new Intl.DateTimeFormat(locale(), options).format(when);
}

export function fmtHour(date) {
  return new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit" }).format(date);
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("durS", { n: s });
  const m = Math.floor(s / 60);
  if (m < 60) return t("durM", { n: m });
  const h = Math.floor(m / 60);
  if (h < 48) return t("durHM", { h, m: m % 60 });
  return t("durDH", { d: Math.floor(h / 24), h: h % 24 });
}

export function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function fmtCelsius(value) {
  if (value === null || value === undefined) return "—";
  return `${Number(value).toFixed(1)} °C`;
}

export function fmtMoney(minor, currency) {
  if (minor === null || minor === undefined) return "—";
  try {
    return new Intl.NumberFormat(locale(), { style: "currency", currency: currency || "CNY" }).format(
      minor / 100,
    );
  } catch {
    return `${(minor / 100).toFixed(2)} ${currency ?? ""}`.trim();
  }
}

/** The first part of a UUID is enough to tell sessions and orders apart on screen. */
export function shortId(id) {
  return typeof id === "string" && id.length > 12 ? id.slice(0, 8) : String(id ?? "—");
}
