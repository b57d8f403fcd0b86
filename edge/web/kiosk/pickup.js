// Pickup: type the code on big keys (or scan a pickup QR), the door opens, close it, thanks.

import { api } from "./api.js";
import { DoorScreen, ThanksScreen } from "./door.js";
import { describe, describeScan } from "./errors.js";
import { t } from "./i18n.js";
import { Entry } from "./keypad.js";
import { actions, button, h, message, screen } from "./ui.js";
import { watchScans } from "./waits.js";

const MIN_CODE = 6;

export class PickupScreen {
  constructor() {
    this.error = null;
    this.busy = false;
    this.entry = new Entry({
      id: "pickup-code",
      label: t("pickup.field"),
      maxLength: 12,
      onChange: () => this.syncSubmit(),
      onEnter: () => this.submit(),
    });
    this.autofocus = "#pickup-code";
  }

  enter() {
    // A pickup QR shown to the scanner opens the door the same way.
    void watchScans("pickup", {
      signal: this.signal,
      onOutcome: (outcome) => {
        if (outcome.status === "accepted") this.opened(outcome.result);
        else this.fail(() => describeScan(outcome, "pickup"));
      },
    }).catch(() => {});
  }

  syncSubmit() {
    if (this.submitButton) this.submitButton.disabled = this.busy || this.entry.value.length < MIN_CODE;
  }

  fail(text) {
    if (!this.app.showing(this)) return;
    this.error = text;
    this.app.paint();
  }

  opened(door) {
    this.app.go(new DoorScreen(door, { onClosed: () => this.app.go(new ThanksScreen()) }));
  }

  async submit() {
    if (this.busy || this.entry.value.length < MIN_CODE) return;
    this.busy = true;
    this.door = true; // a door may be opening: do not leave on idle now
    this.error = null;
    this.app.paint();
    try {
      const door = await api.post("/pickups", { code: this.entry.value }, { signal: this.signal });
      if (this.app.showing(this)) this.opened(door);
    } catch (error) {
      if (this.signal.aborted) return;
      this.busy = false;
      this.door = false;
      this.entry.set("");
      this.fail(() => describe(error, "pickup"));
    }
  }

  render() {
    this.entry.label = t("pickup.field");
    this.submitButton = button(this.busy ? t("pickup.opening") : t("pickup.submit"), () => this.submit(), {
      name: "submit",
    });
    this.syncSubmit();
    return screen(
      t("pickup.title"),
      h(
        "div",
        { class: "entry-layout" },
        h(
          "div",
          { class: "entry-side" },
          this.entry.field(),
          message(this.error),
          this.busy ? message(t("common.working"), "info") : null,
          h("p", { class: "hint" }, t("pickup.scan")),
        ),
        this.entry.keys(),
      ),
      actions(
        button(t("common.back"), () => this.app.home(), { kind: "secondary", name: "back", disabled: this.busy }),
        this.submitButton,
      ),
    );
  }
}
