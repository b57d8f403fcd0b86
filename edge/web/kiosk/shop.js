// Shopping at a cabinet: choose it, prove who you are (face, or member QR), the door opens,
// take what you like, close it: the receipt.

import { api } from "./api.js";
import { describe, describeFailure, describeScan } from "./errors.js";
import { t } from "./i18n.js";
import { Entry } from "./keypad.js";
import { actions, button, h, message, money, screen } from "./ui.js";
import { waitForPayment, waitForSession, watchScans } from "./waits.js";

const RECEIPT_MS = 30000;
const FACE_WAIT_S = 10;
const CABINETS_REFRESH_MS = 3000;

function whyUnavailable(cabinet) {
  if (!cabinet.reader_available) return t("shop.why.reader");
  if (cabinet.held) return t("shop.why.held");
  if (cabinet.session_id) return t("shop.why.busy");
  if (cabinet.door_open) return t("shop.why.door");
  return t("shop.why.counting");
}

export class ShopScreen {
  constructor() {
    this.cabinets = null;
    this.error = null;
  }

  async enter() {
    await this.load();
    // A cabinet being counted or used becomes free by itself: look again while this shows.
    const timer = setInterval(() => this.load(), CABINETS_REFRESH_MS);
    this.signal.addEventListener("abort", () => clearInterval(timer));
  }

  async load() {
    const before = JSON.stringify(this.cabinets);
    try {
      this.cabinets = await api.get("/cabinets", { signal: this.signal });
      this.error = null;
    } catch (error) {
      if (this.signal.aborted) return;
      this.cabinets = this.cabinets || [];
      this.error = () => describe(error);
    }
    // Repaint only on a change: a repaint under a finger could swallow the touch.
    const changed = this.error || JSON.stringify(this.cabinets) !== before;
    if (changed && this.app.showing(this)) this.app.paint();
  }

  render() {
    let body;
    if (this.cabinets === null) body = h("p", { class: "lead" }, t("common.loading"));
    else if (!this.cabinets.length) body = message(t("shop.none"), "info");
    else {
      body = h(
        "div",
        { class: "choices" },
        ...this.cabinets.map((cabinet) =>
          button(cabinet.name || cabinet.id, () => this.app.go(new FaceScreen(cabinet)), {
            kind: "choice",
            name: `cabinet-${cabinet.id}`,
            disabled: !cabinet.available,
            sub: cabinet.available ? t("shop.items", { n: cabinet.items }) : whyUnavailable(cabinet),
          }),
        ),
      );
    }
    return screen(
      t("shop.title"),
      message(this.error),
      body,
      actions(button(t("common.back"), () => this.app.home(), { kind: "secondary", name: "back" })),
    );
  }
}

export class FaceScreen {
  constructor(cabinet) {
    this.cabinet = cabinet;
    this.check = null;
    this.error = null;
    this.unavailable = false;
    this.busy = false;
    this.digits = new Entry({
      id: "phone-digits",
      label: t("face.digits.field"),
      maxLength: 4,
      secret: false,
      onEnter: () => this.sendDigits(),
    });
  }

  enter() {
    this.signal.addEventListener("abort", () => {
      // Walked away or chose the QR code: stop the camera check.
      if (this.check && !["verified", "failed"].includes(this.check.state)) {
        api.del(`/face/checks/${this.check.id}`).catch(() => {});
      }
    });
    return this.start();
  }

  async start() {
    this.check = null;
    this.error = null;
    this.unavailable = false;
    this.app.paint();
    try {
      this.check = await api.post("/face/checks", {}, { signal: this.signal });
    } catch (error) {
      if (this.signal.aborted) return;
      this.unavailable = ["facepay_disabled", "camera_unavailable", "no_face_terminal"].includes(error.code);
      this.error = this.unavailable ? null : () => describe(error);
      this.unavailableText = () => (error.code === "facepay_disabled" ? t("face.unavailable") : describe(error));
      this.app.paint();
      return;
    }
    this.app.paint();
    await this.follow();
  }

  // Long-poll the check, showing each prompt and hint, until it ends.
  async follow() {
    let failures = 0;
    while (this.app.showing(this) && this.check && !["verified", "failed"].includes(this.check.state)) {
      try {
        const previous = this.check;
        this.check = await api.get(`/face/checks/${this.check.id}?wait=${FACE_WAIT_S}`, { signal: this.signal });
        failures = 0;
        if (previous.prompt !== this.check.prompt || previous.hint !== this.check.hint || previous.state !== this.check.state) {
          this.autofocus = this.check.state === "needs_phone_digits" ? "#phone-digits" : null;
          this.app.paint(previous.state !== this.check.state);
        }
      } catch (error) {
        if (this.signal.aborted) return;
        failures += 1;
        if (failures > 3 || error.status === 404) {
          this.error = () => describe(error);
          this.check = { ...this.check, state: "failed", reason: "timeout" };
          this.app.paint();
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    if (this.app.showing(this) && this.check && this.check.state === "verified") await this.openCabinet();
  }

  async sendDigits() {
    if (this.busy || this.digits.value.length !== 4) return;
    this.busy = true;
    this.error = null;
    try {
      this.check = await api.post(`/face/checks/${this.check.id}/digits`, { digits: this.digits.value }, { signal: this.signal });
    } catch (error) {
      if (this.signal.aborted) return;
      this.error = () => describe(error);
    }
    this.busy = false;
    this.digits.set("");
    this.app.paint();
    if (this.check.state === "verified") await this.openCabinet();
    else if (this.check.state !== "failed") await this.follow();
  }

  async openCabinet() {
    this.busy = true;
    this.door = true;
    this.app.paint();
    try {
      const session = await api.post(
        `/cabinets/${this.cabinet.id}/sessions`,
        { member_source: "face", face_check_id: this.check.id },
        { signal: this.signal },
      );
      this.app.go(new CabinetDoorScreen(session));
    } catch (error) {
      if (this.signal.aborted) return;
      this.busy = false;
      this.door = false;
      this.error = () => describe(error);
      this.check = { ...this.check, state: "failed", reason: null };
      this.app.paint();
    }
  }

  useQr() {
    this.app.go(new QrScreen(this.cabinet));
  }

  render() {
    const qr = button(t("face.use_qr"), () => this.useQr(), { kind: "secondary", name: "qr" });
    const cancel = button(t("common.cancel"), () => this.app.home(), { kind: "secondary", name: "cancel" });
    if (this.unavailable) {
      return screen(this.unavailableText(), h("p", { class: "lead" }, t("face.unavailable.body")), actions(cancel, qr));
    }
    const check = this.check;
    if (check && check.state === "needs_phone_digits") {
      this.digits.label = t("face.digits.field");
      return screen(
        t("face.digits.title"),
        h(
          "div",
          { class: "entry-layout" },
          h(
            "div",
            { class: "entry-side" },
            this.digits.field(),
            check.hint ? message(t(`face.hint.${check.hint}`), "warning") : null,
            Number.isInteger(check.digit_attempts_left)
              ? h("p", { class: "hint" }, t("face.digits.left", { n: check.digit_attempts_left }))
              : null,
            message(this.error),
          ),
          this.digits.keys(),
        ),
        actions(cancel, button(t("face.digits.submit"), () => this.sendDigits(), { name: "digits" })),
      );
    }
    if (check && check.state === "failed") {
      return screen(
        t("face.failed"),
        message(this.error || describeFailure(check.reason)),
        actions(cancel, qr, button(t("common.retry"), () => this.start(), { name: "retry" })),
      );
    }
    if (check && check.state === "verified") {
      return screen(t("face.verified"), message(this.error), h("p", { class: "lead" }, t("common.working")));
    }
    const prompt = check && check.prompt ? t(`face.prompt.${check.prompt}`) : null;
    const hint = check && check.hint ? t(`face.hint.${check.hint}`) : null;
    return screen(
      t("face.title"),
      h("div", { class: "face-ring", "aria-hidden": "true" }),
      h("p", { class: "prompt", "data-prompt": check ? check.prompt || "" : "" }, prompt || (check ? "" : t("face.starting"))),
      hint ? message(hint, "warning") : null,
      message(this.error),
      actions(cancel, qr),
    );
  }
}

export class QrScreen {
  constructor(cabinet) {
    this.cabinet = cabinet;
    this.error = null;
  }

  enter() {
    void watchScans("cabinet_member", {
      signal: this.signal,
      cabinet: this.cabinet.id,
      onOutcome: (outcome) => {
        if (outcome.status === "accepted") {
          this.app.go(new CabinetDoorScreen({ id: outcome.result.session_id, cabinet_id: this.cabinet.id }));
        } else {
          this.error = () => describeScan(outcome);
          this.app.paint();
        }
      },
    }).catch((error) => {
      this.error = () => describe(error);
      if (this.app.showing(this)) this.app.paint();
    });
  }

  render() {
    return screen(
      t("qr.title"),
      h("p", { class: "lead" }, t("qr.body")),
      h("div", { class: "scan-art", "aria-hidden": "true" }),
      message(this.error),
      actions(button(t("common.cancel"), () => this.app.home(), { kind: "secondary", name: "cancel" })),
    );
  }
}

export class CabinetDoorScreen {
  constructor(session) {
    this.session = session;
    this.door = true;
    this.leftOpen = false;
  }

  async enter() {
    const view = await waitForSession(this.session.id, {
      signal: this.signal,
      onEvent: (event) => {
        if (event.type === "door.left_open" && this.app.showing(this)) {
          this.leftOpen = true;
          this.app.paint();
        }
      },
    });
    if (this.app.showing(this)) this.app.go(new ReceiptScreen(view));
  }

  render() {
    return screen(
      t("door.shop"),
      h("div", { class: "door-card" }, h("span", { class: "door-id" }, this.session.cabinet_id || "")),
      this.leftOpen ? message(t("door.left_open"), "warning") : null,
      h("p", { class: "hint" }, t("door.waiting")),
    );
  }
}

export class ReceiptScreen {
  constructor(view) {
    this.view = view;
    this.payment = view.order_id ? "pending" : null;
  }

  async enter() {
    const timer = setTimeout(() => this.app.showing(this) && this.app.home(), RECEIPT_MS);
    this.signal.addEventListener("abort", () => clearTimeout(timer));
    if (!this.view.order_id) return;
    const verdict = await waitForPayment(this.view.order_id, { signal: this.signal });
    if (verdict && this.app.showing(this)) {
      this.payment = verdict;
      this.app.paint();
      this.app.announce(t(verdict === "authorized" ? "receipt.paid" : "receipt.declined"));
    }
  }

  render() {
    const view = this.view;
    const done = actions(button(t("common.done"), () => this.app.home(), { name: "done" }));
    if (view.state === "held") return screen(t("receipt.title"), message(t("receipt.held"), "info"), done);
    if (view.state === "cancelled") return screen(t("receipt.title"), message(t("receipt.cancelled"), "info"), done);
    if (!view.lines.length) return screen(t("receipt.title"), message(t("receipt.nothing"), "info"), done);
    const rows = view.lines.map((line) =>
      h("tr", {}, h("td", {}, line.name || line.gtin), h("td", { class: "amount" }, money(line.amount, view.currency))),
    );
    const status = {
      pending: message(t("receipt.pending"), "info"),
      authorized: message(t("receipt.paid"), "success"),
      declined: message(t("receipt.declined")),
    }[this.payment];
    return screen(
      t("receipt.title"),
      h(
        "table",
        { class: "receipt" },
        h("tbody", {}, ...rows),
        h("tfoot", {}, h("tr", {}, h("th", { scope: "row" }, t("receipt.total")), h("td", { class: "amount" }, money(view.total, view.currency)))),
      ),
      status || null,
      done,
    );
  }
}
