// The start screen (three big choices) and the "not set up" screen for the installer.

import { api } from "./api.js";
import { CourierStartScreen, signOut } from "./courier.js";
import { t } from "./i18n.js";
import { PickupScreen } from "./pickup.js";
import { ShopScreen } from "./shop.js";
import { button, h, screen } from "./ui.js";

// Whether the site has a cabinet, as last seen: the home screen does not flicker while asking.
let hasCabinets = false;

export class HomeScreen {
  async enter() {
    signOut(); // back at the start, nobody stays signed in
    try {
      const cabinets = await api.get("/cabinets", { signal: this.signal });
      const any = cabinets.length > 0;
      if (any !== hasCabinets && this.app.showing(this)) {
        hasCabinets = any;
        this.app.paint();
      }
      hasCabinets = any;
    } catch {
      // unreachable: the header says so; the locker choices work without it
    }
  }

  render() {
    const choice = (name, label, sub, next) =>
      button(label, () => this.app.go(next()), { kind: "choice", sub, name });
    return screen(
      t("home.title"),
      h(
        "div",
        { class: "choices" },
        choice("pickup", t("home.pickup"), t("home.pickup.sub"), () => new PickupScreen()),
        choice("courier", t("home.courier"), t("home.courier.sub"), () => new CourierStartScreen()),
        hasCabinets ? choice("shop", t("home.shop"), t("home.shop.sub"), () => new ShopScreen()) : null,
      ),
    );
  }
}

export class SetupScreen {
  render() {
    return screen(t("setup.title"), h("p", { class: "lead", role: "alert" }, t("setup.body")));
  }
}
