// What an API error means for the person at the screen: one sentence, and what to do next.

import { has, t } from "./i18n.js";

// Minutes to wait, from Retry-After or the error's details, rounded up (at least 1).
export function lockedMinutes(error) {
  const seconds = error.retryAfter ?? Number(error.details.retry_after_s) ?? 60;
  return Math.max(1, Math.ceil((Number(seconds) || 60) / 60));
}

// `context` picks the meaning where one code means different things: "pickup" or "login".
export function describe(error, context = "") {
  const code = (error && error.code) || "unknown";
  const details = (error && error.details) || {};
  if (code === "code_input_locked") return t("err.code_input_locked", { min: lockedMinutes(error) });
  if (code === "no_free_compartment") return t("err.no_free_compartment", { size: details.size || "" });
  let text;
  if (context && has(`err.${code}.${context}`)) text = t(`err.${code}.${context}`);
  else if (has(`err.${code}`)) text = t(`err.${code}`);
  else text = t("err.unknown");
  if (Number.isInteger(details.attempts_left) && details.attempts_left > 0) {
    text += " " + t("err.attempts_left", { n: details.attempts_left });
  }
  return text;
}

// A refused scan (outcome.code) as a sentence.
export function describeScan(outcome, context = "") {
  return describe({ code: outcome.code || "unknown", details: outcome.result || {} }, context);
}

// Why a face check failed, as a sentence.
export function describeFailure(reason) {
  if (has(`fail.${reason}`)) return t(`fail.${reason}`);
  return t("fail.liveness");
}
