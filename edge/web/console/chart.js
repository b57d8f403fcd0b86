// One sensor's last hours as an inline SVG line chart, with the zone's allowed band shaded,
// and a sentence that says the same for screen readers (and for anyone in a hurry).

import { fmtCelsius, fmtHour } from "./format.js";
import { t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 200;
const MARGIN = { left: 44, right: 12, top: 10, bottom: 26 };
// A gap longer than this between minutes (the sensor was down) breaks the line.
const GAP_MS = 5 * 60 * 1000;
// Fewer minutes than this and the chart says it is still collecting data.
const FEW_POINTS = 10;

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceStep(span) {
  const raw = span / 5;
  for (const step of [0.5, 1, 2, 5, 10, 20, 50]) if (step >= raw) return step;
  return 100;
}

/**
 * @param {{sensor: string, zone: string, min_c: number|null, max_c: number|null,
 *          points: {t: string, mean_c: number, min_c: number, max_c: number}[]}} series
 * @param {{now: Date, hours: number, index: number, summaryId: string}} options
 * @returns {{chart: SVGSVGElement, summary: string, collecting: boolean}}
 */
export function temperatureChart(series, { now, hours, index, summaryId }) {
  const end = now.getTime();
  const start = end - hours * 3600 * 1000;
  const points = series.points
    .map((p) => ({ ...p, at: new Date(p.t).getTime() }))
    .filter((p) => Number.isFinite(p.at) && p.at >= start - 60000);

  const values = points.flatMap((p) => [p.min_c, p.max_c, p.mean_c]);
  for (const limit of [series.min_c, series.max_c]) if (limit !== null) values.push(limit);
  let low = values.length ? Math.min(...values) : 0;
  let high = values.length ? Math.max(...values) : 10;
  const pad = Math.max(1, (high - low) * 0.1);
  low -= pad;
  high += pad;
  const step = niceStep(high - low);
  low = Math.floor(low / step) * step;
  high = Math.ceil(high / step) * step;

  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (at) => MARGIN.left + ((at - start) / (end - start)) * plotW;
  const y = (c) => MARGIN.top + ((high - c) / (high - low)) * plotH;

  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: `chart series-${index % 4}`,
    role: "img",
    "aria-labelledby": summaryId,
    "data-sensor": series.sensor,
  });

  // The allowed band (open-ended when the zone has only one limit).
  if (series.min_c !== null || series.max_c !== null) {
    const top = y(series.max_c ?? high);
    const bottom = y(series.min_c ?? low);
    chart.append(
      svg("rect", {
        class: "band",
        x: MARGIN.left,
        y: top,
        width: plotW,
        height: Math.max(0, bottom - top),
      }),
    );
  }

  const grid = svg("g", { class: "grid" });
  for (let c = low; c <= high + 1e-9; c += step) {
    const at = y(c);
    grid.append(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: at, y2: at }));
    grid.append(
      svg("text", { x: MARGIN.left - 6, y: at + 4, class: "tick y" }, `${Number(c.toFixed(1))}`),
    );
  }
  grid.append(svg("text", { x: 4, y: MARGIN.top + 8, class: "tick unit" }, "°C"));
  // Hour ticks every 3 hours (every hour on short windows), on whole local hours.
  const tickEvery = (hours > 6 ? 3 : 1) * 3600 * 1000;
  const firstHour = new Date(start);
  firstHour.setMinutes(0, 0, 0);
  for (let at = firstHour.getTime() + 3600 * 1000; at <= end; at += 3600 * 1000) {
    if (new Date(at).getHours() % (tickEvery / 3600000) !== 0) continue;
    const px = x(at);
    grid.append(svg("line", { x1: px, x2: px, y1: MARGIN.top, y2: HEIGHT - MARGIN.bottom }));
    grid.append(
      svg("text", { x: px, y: HEIGHT - 8, class: "tick x" }, fmtHour(new Date(at))),
    );
  }
  chart.append(grid);

  // The line, broken where the sensor was silent; a lone minute is a dot.
  const segments = [];
  let current = [];
  for (const p of points) {
    if (current.length && p.at - current[current.length - 1].at > GAP_MS) {
      segments.push(current);
      current = [];
    }
    current.push(p);
  }
  if (current.length) segments.push(current);
  const plot = svg("g", { class: "series" });
  const sparse = points.length < FEW_POINTS;
  for (const segment of segments) {
    if (segment.length === 1 || sparse) {
      // Too few minutes for a line to be seen across 24 hours: a dot per minute.
      for (const p of segment) {
        plot.append(svg("circle", { cx: x(p.at), cy: y(p.mean_c), r: 4, class: "dot" }));
      }
      continue;
    }
    const range = segment
      .map((p) => `${x(p.at).toFixed(1)},${y(p.max_c).toFixed(1)}`)
      .concat(segment.slice().reverse().map((p) => `${x(p.at).toFixed(1)},${y(p.min_c).toFixed(1)}`));
    plot.append(svg("polygon", { points: range.join(" "), class: "range" }));
    const d = segment
      .map((p, i) => `${i ? "L" : "M"}${x(p.at).toFixed(1)},${y(p.mean_c).toFixed(1)}`)
      .join(" ");
    plot.append(svg("path", { d, class: "line" }));
  }
  chart.append(plot);
  if (!points.length) {
    chart.append(
      svg(
        "text",
        { x: MARGIN.left + plotW / 2, y: MARGIN.top + plotH / 2, class: "empty" },
        t("chartNoReadings"),
      ),
    );
  }

  return { chart, summary: summarize(series, points, hours), collecting: points.length < FEW_POINTS };
}

function summarize(series, points, hours) {
  const band = bandText(series.min_c, series.max_c);
  if (!points.length) return t("chartSummaryEmpty", { sensor: series.sensor, hours, band });
  const lowest = Math.min(...points.map((p) => p.min_c));
  const highest = Math.max(...points.map((p) => p.max_c));
  const outside = points.filter(
    (p) =>
      (series.min_c !== null && p.min_c < series.min_c) ||
      (series.max_c !== null && p.max_c > series.max_c),
  ).length;
  return t("chartSummary", {
    sensor: series.sensor,
    hours,
    minutes: points.length,
    last: fmtCelsius(points[points.length - 1].mean_c),
    lowest: fmtCelsius(lowest),
    highest: fmtCelsius(highest),
    band,
    outside,
  });
}

export function bandText(min, max) {
  if (min !== null && max !== null) return t("bandBoth", { min: fmtCelsius(min), max: fmtCelsius(max) });
  if (min !== null) return t("bandMin", { min: fmtCelsius(min) });
  if (max !== null) return t("bandMax", { max: fmtCelsius(max) });
  return t("bandNone");
}
