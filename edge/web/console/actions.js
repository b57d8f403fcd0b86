// The operator's actions: open a door, disable or enable a compartment, settle or void a held
// cabinet session. Each one is confirmed; the controller records who did it and why.

import { api, ApiError } from "./api.js";
import { shortId } from "./format.js";
import { t, tOr } from "./i18n.js";
import { compartmentFacts, renderFacts } from "./panels.js";

const $ = (id) => document.getElementById(id);
// Opening waits until the door is seen open (the board may retry): give it time.
const ACTION_TIMEOUT_MS = 45000;

/** One sentence for a failed action, from the API's error or what went wrong on the way. */
export function errorText(error) {
  if (error instanceof ApiError) {
    if (error.code === "timeout") return t("errTimeout");
    if (error.code === "unreachable") return t("errUnreachable");
    if (error.status === 401) return t("tokenRejected");
    return error.message || t("errUnknown");
  }
  return t("errUnknown");
}

// ---- confirm dialog -------------------------------------------------------------------------

/**
 * Ask before acting. Resolves with ``{reason}`` (reason only when asked for) or null.
 * @param {{title: string, text: string, yes: string, askReason?: boolean, danger?: boolean}} options
 */
export function confirmAction({ title, text, yes, askReason = false, danger = false }) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-error").textContent = "";
  $("confirm-reason-box").hidden = !askReason;
  $("confirm-reason").value = "";
  const yesButton = $("confirm-yes");
  yesButton.textContent = yes;
  yesButton.className = danger ? "danger" : "primary";
  return new Promise((resolve) => {
    const finish = (value) => {
      yesButton.removeEventListener("click", onYes);
      $("confirm-no").removeEventListener("click", onNo);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onYes = () => {
      const reason = $("confirm-reason").value.trim();
      if (askReason && !reason) {
        $("confirm-error").textContent = t("reasonNeeded");
        $("confirm-reason").focus();
        return;
      }
      finish(askReason ? { reason } : {});
    };
    const onNo = () => finish(null);
    const onClose = () => finish(null); // Escape
    yesButton.addEventListener("click", onYes);
    $("confirm-no").addEventListener("click", onNo);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    (askReason ? $("confirm-reason") : $("confirm-no")).focus();
  });
}

// ---- compartment details --------------------------------------------------------------------

export class CompartmentDetails {
  /** @param {{current: () => any[], changed: () => void}} site */
  constructor(site) {
    this.site = site;
    this.id = null;
    this.busy = false;
    $("open-door").addEventListener("click", () => this.openDoor());
    $("toggle-enabled").addEventListener("click", () => this.toggleEnabled());
    $("details").addEventListener("close", () => {
      this.id = null;
    });
  }

  show(id) {
    this.id = id;
    $("open-reason").value = "";
    this.say("", false);
    this.refresh();
    $("details").showModal();
  }

  /** Called after every overview load: the panel follows the compartment's state. */
  refresh() {
    if (this.id === null) return;
    const comp = this.site.current().find((c) => c.id === this.id);
    if (!comp) return;
    $("details-title").textContent = t("compartmentTitle", { id: comp.id });
    renderFacts($("details-facts"), compartmentFacts(comp));
    $("toggle-enabled").textContent = comp.enabled ? t("disable") : t("enable");
    $("toggle-enabled").dataset.enabled = String(comp.enabled);
  }

  say(text, bad) {
    const result = $("details-result");
    result.textContent = text;
    result.classList.toggle("bad", Boolean(bad));
  }

  async openDoor() {
    const id = this.id;
    const reason = $("open-reason").value.trim();
    if (!reason) {
      this.say(t("reasonNeeded"), true);
      $("open-reason").focus();
      return;
    }
    this.say("", false);
    const answer = await confirmAction({
      title: t("confirmOpenTitle", { id }),
      text: t("confirmOpenText", { id, reason }),
      yes: t("openDoor"),
      danger: true,
    });
    if (!answer) return;
    await this.run(t("opening", { id }), async () => {
      const opened = await api(`/api/v1/compartments/${encodeURIComponent(id)}/open`, {
        method: "POST",
        body: { reason },
        timeoutMs: ACTION_TIMEOUT_MS,
      });
      $("open-reason").value = "";
      return t("openedResult", { id: opened.compartment, operation: shortId(opened.operation_id) });
    });
  }

  async toggleEnabled() {
    const id = this.id;
    const enable = $("toggle-enabled").dataset.enabled !== "true";
    await this.run(enable ? t("enabling", { id }) : t("disabling", { id }), async () => {
      const comp = await api(
        `/api/v1/compartments/${encodeURIComponent(id)}/${enable ? "enable" : "disable"}`,
        { method: "POST", timeoutMs: ACTION_TIMEOUT_MS },
      );
      return comp.enabled ? t("enabledResult", { id }) : t("disabledResult", { id });
    });
  }

  async run(progress, work) {
    if (this.busy) return;
    this.busy = true;
    for (const button of [$("open-door"), $("toggle-enabled")]) button.disabled = true;
    this.say(progress, false);
    try {
      this.say(await work(), false);
    } catch (error) {
      this.say(errorText(error), true);
    } finally {
      this.busy = false;
      for (const button of [$("open-door"), $("toggle-enabled")]) button.disabled = false;
      this.site.changed();
    }
  }
}

// ---- held cabinet sessions ------------------------------------------------------------------

let settling = null;

/** The outcome of a session being settled again, from the event stream. */
export function followSettling(envelope) {
  const data = envelope.data ?? {};
  if (settling === null || data.session_id !== settling) return;
  const id = shortId(settling);
  const result = $("held-result");
  if (envelope.type === "cabinet.session_closed") {
    settling = null;
    result.classList.remove("bad");
    result.textContent = t("settledResult", { id, outcome: tOr(`outcome_${data.outcome}`, data.outcome) });
  } else if (envelope.type === "cabinet.session_held") {
    settling = null;
    result.classList.add("bad");
    result.textContent = t("heldAgainResult", {
      id,
      reason: tOr(`hold_${data.reason}`, data.reason ?? t("forReview")),
    });
  }
}

export async function heldSessionAction(action, session, changed) {
  const result = $("held-result");
  const id = shortId(session.id);
  const answer =
    action === "settle"
      ? await confirmAction({
          title: t("confirmSettleTitle", { id }),
          text: t("confirmSettleText", { cabinet: session.cabinet_id }),
          yes: t("settleAgain"),
        })
      : await confirmAction({
          title: t("confirmVoidTitle", { id }),
          text: t("confirmVoidText", { cabinet: session.cabinet_id }),
          yes: t("void"),
          askReason: true,
          danger: true,
        });
  if (!answer) return;
  result.classList.remove("bad");
  result.textContent = t(action === "settle" ? "settling" : "voiding", { id });
  try {
    const path = `/api/v1/cabinet-sessions/${encodeURIComponent(session.id)}/${action}`;
    const view = await api(path, {
      method: "POST",
      body: action === "void" ? { reason: answer.reason } : undefined,
      timeoutMs: ACTION_TIMEOUT_MS,
    });
    result.textContent = t("sessionResult", { id, state: tOr(`sessionState_${view.state}`, view.state) });
    // Settling counts the cabinet again: its outcome arrives later, as an event.
    settling = view.state === "settling" ? session.id : null;
  } catch (error) {
    result.classList.add("bad");
    result.textContent = errorText(error);
  } finally {
    changed();
  }
}
