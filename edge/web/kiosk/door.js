// An open locker door: the compartment's id, big, and what to do; stays until the door is
// closed (never left on idle), with a reminder when it is left open.

import { describe } from "./errors.js";
import { t } from "./i18n.js";
import { actions, button, h, message, screen } from "./ui.js";
import { waitForOperation } from "./waits.js";

const THANKS_MS = 6000;

export class DoorScreen {
  // `opened`: the API's answer ({operation_id, compartment, kind}); `onClosed(view)` runs once
  // the operation finished; `onCancel` (deposits) offers a cancel button.
  constructor(opened, { onClosed, onCancel } = {}) {
    this.opened = opened;
    this.onClosed = onClosed;
    this.onCancel = onCancel;
    this.door = true;
    this.leftOpen = false;
    this.error = null;
    this.cancelling = false;
  }

  async enter() {
    const view = await waitForOperation(this.opened.operation_id, {
      signal: this.signal,
      onEvent: (event) => {
        if (event.type === "door.left_open" && this.app.showing(this)) {
          this.leftOpen = true;
          this.app.paint();
          this.app.announce(t("door.left_open"));
        }
      },
    });
    if (this.app.showing(this)) this.onClosed(view);
  }

  async cancel() {
    this.cancelling = true;
    this.error = null;
    this.app.paint();
    try {
      await this.onCancel();
      this.cancelled = true;
    } catch (error) {
      this.error = () => describe(error);
    }
    this.cancelling = false;
    if (this.app.showing(this)) this.app.paint();
  }

  render() {
    const id = this.opened.compartment;
    const kind = this.cancelled ? "cancelled" : this.opened.kind === "deposit" ? "deposit" : "pickup";
    const instruction = t(`door.${kind}`);
    return screen(
      t("door.title", { id }),
      h(
        "div",
        { class: "door-card" },
        h("span", { class: "door-label" }, t("door.label")),
        h("span", { class: "door-id", "data-compartment": id }, id),
      ),
      h("p", { class: "lead" }, instruction),
      this.leftOpen ? message(t("door.left_open"), "warning") : null,
      message(this.error),
      h("p", { class: "hint" }, t("door.waiting")),
      this.onCancel && !this.cancelled
        ? actions(
            button(t("deposit.cancel"), () => this.cancel(), {
              kind: "secondary",
              name: "cancel",
              disabled: this.cancelling,
            }),
          )
        : null,
    );
  }
}

export class ThanksScreen {
  enter() {
    const timer = setTimeout(() => {
      if (this.app.showing(this)) this.app.home();
    }, THANKS_MS);
    this.signal.addEventListener("abort", () => clearTimeout(timer));
  }

  render() {
    return screen(
      t("thanks.title"),
      h("p", { class: "lead" }, t("thanks.body")),
      actions(button(t("common.home"), () => this.app.home(), { kind: "secondary", name: "home" })),
    );
  }
}
