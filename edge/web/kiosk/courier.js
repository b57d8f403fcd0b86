// Courier drop-off: sign in (courier QR, or ID and PIN), scan or type the parcel, choose a
// size, put the parcel in the open door, close it: deposited. Then the next parcel.

import { api, courierSession, setCourierSession } from "./api.js";
import { DoorScreen } from "./door.js";
import { describe, describeScan } from "./errors.js";
import { t } from "./i18n.js";
import { Entry } from "./keypad.js";
import { actions, button, h, message, screen } from "./ui.js";
import { watchScans } from "./waits.js";

const ZONES = ["ambient", "chilled", "frozen"];

let courierName = "";

function signedIn(session) {
  setCourierSession(session.token);
  courierName = session.courier_name || session.courier_id || "";
}

// Sign out (best effort: the session also ends on its own).
export function signOut() {
  if (!courierSession()) return;
  api.del("/courier/sessions/current").catch(() => {});
  setCourierSession(null);
  courierName = "";
}

// A courier step refused for an expired session goes back to sign-in, saying why.
function expired(app, error) {
  if (error.status !== 401) return false;
  setCourierSession(null);
  app.go(new CourierStartScreen(() => describe(error)));
  return true;
}

export class CourierStartScreen {
  constructor(error = null) {
    this.step = "scan";
    this.error = error;
    this.busy = false;
    this.id = new Entry({
      id: "courier-id",
      label: t("courier.id.field"),
      maxLength: 64,
      letters: true,
      upper: false,
      onEnter: () => this.next(),
    });
    this.pin = new Entry({
      id: "courier-pin",
      label: t("courier.pin.field"),
      maxLength: 32,
      secret: true,
      onEnter: () => this.signIn(),
    });
  }

  enter() {
    void watchScans("courier_sign_in", {
      signal: this.signal,
      onOutcome: (outcome) => {
        if (outcome.status === "accepted") {
          signedIn(outcome.result);
          this.app.go(new ParcelScreen());
        } else {
          this.error = () => describeScan(outcome);
          this.app.paint();
        }
      },
    }).catch(() => {});
  }

  show(step) {
    this.step = step;
    this.autofocus = step === "id" ? "#courier-id" : step === "pin" ? "#courier-pin" : null;
    this.app.paint(true);
  }

  next() {
    if (!this.id.value) return;
    this.error = null;
    this.show("pin");
  }

  async signIn() {
    if (this.busy || !this.pin.value) return;
    this.busy = true;
    this.error = null;
    this.app.paint();
    try {
      const session = await api.post(
        "/courier/sessions",
        { courier_id: this.id.value, credential: this.pin.value },
        { signal: this.signal },
      );
      signedIn(session);
      this.app.go(new ParcelScreen());
    } catch (error) {
      if (this.signal.aborted) return;
      this.busy = false;
      this.pin.set("");
      this.error = () => describe(error, "login");
      this.app.paint();
    }
  }

  render() {
    const back = (to) => button(t("common.back"), to, { kind: "secondary", name: "back" });
    if (this.step === "scan") {
      return screen(
        t("courier.title"),
        h("p", { class: "lead" }, t("courier.scan")),
        h("div", { class: "scan-art", "aria-hidden": "true" }),
        message(this.error),
        actions(
          back(() => this.app.home()),
          button(t("courier.type"), () => this.show("id"), { name: "type" }),
        ),
      );
    }
    const entry = this.step === "id" ? this.id : this.pin;
    this.id.label = t("courier.id.field");
    this.pin.label = t("courier.pin.field");
    return screen(
      t(this.step === "id" ? "courier.id.title" : "courier.pin.title"),
      h(
        "div",
        { class: "entry-layout" },
        h("div", { class: "entry-side" }, entry.field(), message(this.error), this.busy ? message(t("common.working"), "info") : null),
        entry.keys(),
      ),
      actions(
        back(() => this.show(this.step === "id" ? "scan" : "id")),
        this.step === "id"
          ? button(t("common.next"), () => this.next(), { name: "next" })
          : button(t("courier.signin"), () => this.signIn(), { name: "signin", disabled: this.busy }),
      ),
    );
  }
}

export class ParcelScreen {
  constructor(notice = null, error = null) {
    this.notice = notice;
    this.error = error;
    this.entry = new Entry({
      id: "parcel-code",
      label: t("parcel.field"),
      maxLength: 128,
      letters: true,
      onEnter: () => this.next(),
    });
    this.autofocus = "#parcel-code";
  }

  enter() {
    void watchScans("parcel_code", {
      signal: this.signal,
      onOutcome: (outcome) => {
        if (outcome.status === "accepted") this.app.go(new SizeScreen(outcome.result.parcel_code));
        else if (outcome.code === "not_authenticated") expired(this.app, { status: 401, code: outcome.code });
        else {
          this.error = () => describeScan(outcome);
          this.app.paint();
        }
      },
    }).catch((error) => expired(this.app, error));
  }

  next() {
    if (this.entry.value) this.app.go(new SizeScreen(this.entry.value));
  }

  render() {
    this.entry.label = t("parcel.field");
    return screen(
      t("parcel.title"),
      courierName ? h("p", { class: "hint" }, t("courier.hello", { name: courierName })) : null,
      message(this.notice, "info"),
      h(
        "div",
        { class: "entry-layout" },
        h("div", { class: "entry-side" }, h("p", { class: "lead" }, t("parcel.or_type")), this.entry.field(), message(this.error)),
        this.entry.keys(),
      ),
      actions(
        button(t("courier.signout"), () => {
          signOut();
          this.app.home();
        }, { kind: "secondary", name: "signout" }),
        button(t("common.next"), () => this.next(), { name: "next" }),
      ),
    );
  }
}

function sizeRank(size) {
  const order = ["XS", "S", "M", "L", "XL", "XXL"];
  const at = order.indexOf(size);
  return at < 0 ? order.length : at;
}

export class SizeScreen {
  constructor(parcelCode) {
    this.parcelCode = parcelCode;
    this.sizes = null;
    this.error = null;
    this.busy = false;
  }

  async enter() {
    await this.load();
  }

  async load() {
    try {
      // Every size the site has, with 0 free where all are taken (shown as full).
      const sizes = await api.get("/sizes", { signal: this.signal });
      this.sizes = sizes
        .slice()
        .sort((a, b) => ZONES.indexOf(a.zone) - ZONES.indexOf(b.zone) || sizeRank(a.size) - sizeRank(b.size));
    } catch (error) {
      if (this.signal.aborted) return;
      this.error = () => describe(error);
      this.sizes = this.sizes || [];
    }
    if (this.app.showing(this)) this.app.paint();
  }

  async choose(choice) {
    if (this.busy) return;
    this.busy = true;
    this.door = true; // a door is being opened
    this.error = null;
    this.app.paint();
    try {
      const opened = await api.post(
        "/deposits",
        { parcel_code: this.parcelCode, size: choice.size, zone: choice.zone },
        { signal: this.signal },
      );
      this.app.go(
        new DoorScreen(opened, {
          onCancel: () => api.post(`/deposits/${opened.operation_id}/cancel`),
          onClosed: (view) => {
            if (view.state === "completed") this.app.go(new DepositedScreen(view));
            else this.app.go(new ParcelScreen(() => t("deposit.cancelled", { id: view.compartment })));
          },
        }),
      );
    } catch (error) {
      if (this.signal.aborted || expired(this.app, error)) return;
      this.busy = false;
      this.door = false;
      this.error = () => describe(error);
      await this.load();
    }
  }

  render() {
    const zoneName = (zone) => t(`zone.${zone}`);
    let body;
    if (this.sizes === null) body = h("p", { class: "lead" }, t("common.loading"));
    else if (!this.sizes.length) body = message(t("size.none"), "info");
    else {
      body = h(
        "div",
        { class: "sizes" },
        ...this.sizes.map((choice) =>
          button(choice.size, () => this.choose(choice), {
            kind: "size",
            name: `size-${choice.zone}-${choice.size}`,
            disabled: this.busy || choice.free === 0,
            sub: `${zoneName(choice.zone)} · ${choice.free === 0 ? t("size.full") : t("size.free", { n: choice.free })}`,
          }),
        ),
      );
    }
    return screen(
      t("size.title"),
      h("p", { class: "hint" }, t("size.parcel", { code: this.parcelCode })),
      message(this.error),
      this.busy ? message(t("deposit.opening"), "info") : null,
      body,
      actions(button(t("common.back"), () => this.app.go(new ParcelScreen()), { kind: "secondary", name: "back", disabled: this.busy })),
    );
  }
}

export class DepositedScreen {
  constructor(view) {
    this.view = view;
  }

  render() {
    return screen(
      t("deposited.title", { id: this.view.compartment }),
      h("p", { class: "lead" }, t("deposited.body")),
      this.view.pickup_code
        ? h(
            "div",
            { class: "door-card" },
            h("span", { class: "door-label" }, t("deposited.code")),
            h("span", { class: "pickup-code", "data-pickup-code": this.view.pickup_code }, this.view.pickup_code),
          )
        : null,
      actions(
        button(t("courier.signout"), () => {
          signOut();
          this.app.home();
        }, { kind: "secondary", name: "signout" }),
        button(t("deposited.next"), () => this.app.go(new ParcelScreen()), { name: "next" }),
      ),
    );
  }
}
