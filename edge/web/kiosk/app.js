// The kiosk shell: header (clock, connection, language), one screen at a time, the idle
// return to the start, and the live stream.

import { onReachability, onUnauthorised, takeTokenFromAddress } from "./api.js";
import { DEFAULT_LANGUAGE, language, setLanguage, t } from "./i18n.js";
import { HomeScreen, SetupScreen } from "./home.js";
import { onStatus, run as runStream, stop as stopStream } from "./stream.js";
import { h } from "./ui.js";

// A screen not waiting on a door goes back to the start after this long without a touch.
const IDLE_MS = 60000;

class Kiosk {
  constructor(root) {
    this.root = root;
    this.screen = null;
    this.controller = null;
    this.lastTouch = Date.now();
    this.streamUp = true;
    this.apiUp = true;
    this.blocked = false;
  }

  start() {
    setLanguage(DEFAULT_LANGUAGE);
    this.header = h("header", { class: "bar" });
    this.main = h("main", { class: "main", id: "main" });
    this.live = h("div", { class: "visually-hidden", "aria-live": "polite", role: "status" });
    this.root.replaceChildren(this.header, this.main, this.live);
    for (const type of ["pointerdown", "keydown", "touchstart"]) {
      document.addEventListener(type, () => (this.lastTouch = Date.now()), { capture: true, passive: true });
    }
    setInterval(() => this.tick(), 1000);
    onReachability((up) => {
      this.apiUp = up;
      this.paintHeader();
    });
    onStatus((up) => {
      this.streamUp = up;
      this.paintHeader();
    });
    onUnauthorised(() => this.notSetUp());
    if (!takeTokenFromAddress()) {
      this.notSetUp();
      return;
    }
    this.go(new HomeScreen());
    void runStream(() => this.notSetUp());
  }

  notSetUp() {
    if (this.blocked) return;
    this.blocked = true;
    stopStream();
    this.go(new SetupScreen());
  }

  // Show `screen`: the one before stops whatever it was waiting for.
  go(screen) {
    if (this.blocked && !(screen instanceof SetupScreen)) return;
    if (this.controller) this.controller.abort();
    if (this.screen && this.screen.leave) this.screen.leave();
    this.controller = new AbortController();
    screen.app = this;
    screen.signal = this.controller.signal;
    this.screen = screen;
    this.lastTouch = Date.now();
    this.paint(true);
    if (screen.enter) {
      Promise.resolve(screen.enter()).catch((error) => {
        if (!screen.signal.aborted) console.warn("screen failed", error);
      });
    }
  }

  home() {
    this.go(new HomeScreen());
  }

  // Draw the current screen again (its state changed, or the language did).
  paint(fresh = false) {
    const focused = document.activeElement;
    const action = focused && focused.dataset ? focused.dataset.action : undefined;
    this.paintHeader();
    const screen = this.screen;
    this.main.replaceChildren(screen.render());
    const title = this.main.querySelector("h1");
    if (fresh) {
      const first = screen.autofocus && this.main.querySelector(screen.autofocus);
      (first || title)?.focus({ preventScroll: true });
      if (title) this.announce(title.textContent);
    } else if (!this.root.contains(document.activeElement) || document.activeElement === document.body) {
      const again = action && this.root.querySelector(`[data-action="${action}"]`);
      (again || title)?.focus({ preventScroll: true });
    }
  }

  // Whether `screen` is still the one shown (async work checks before painting).
  showing(screen) {
    return this.screen === screen && !screen.signal.aborted;
  }

  announce(text) {
    this.live.textContent = "";
    // A new node each time, so a screen reader reads the same words again.
    this.live.append(h("span", {}, text));
  }

  switchLanguage() {
    setLanguage(language() === "en" ? DEFAULT_LANGUAGE : "en");
    this.paint();
  }

  paintHeader() {
    const now = new Date();
    const time = now.toLocaleTimeString(language(), { hour: "2-digit", minute: "2-digit", hour12: false });
    const date = now.toLocaleDateString(language(), { month: "long", day: "numeric", weekday: "long" });
    const up = this.streamUp && this.apiUp;
    this.header.replaceChildren(
      h(
        "div",
        { class: "brand" },
        h("span", { class: "brand-name" }, t("app.name")),
        h("time", { class: "clock", datetime: now.toISOString() }, h("span", { class: "clock-time" }, time), h("span", { class: "clock-date" }, date)),
      ),
      h(
        "div",
        { class: up ? "conn conn-up" : "conn conn-down", role: "status" },
        up ? null : h("span", { class: "conn-dot", "aria-hidden": "true" }),
        up ? null : h("span", { class: "conn-text" }, t("conn.lost")),
      ),
      this.blocked
        ? h("span")
        : h(
            "button",
            {
              type: "button",
              class: "btn btn-lang",
              lang: language() === "en" ? DEFAULT_LANGUAGE : "en",
              onclick: () => this.switchLanguage(),
              "data-action": "language",
            },
            t("lang.switch"),
          ),
    );
  }

  tick() {
    const minute = new Date().getMinutes();
    if (minute !== this.minute) {
      this.minute = minute;
      this.paintHeader();
    }
    if (this.blocked || !this.screen || this.screen.door) return;
    if (Date.now() - this.lastTouch < IDLE_MS) return;
    this.lastTouch = Date.now();
    const atHome = this.screen instanceof HomeScreen;
    if (atHome && language() === DEFAULT_LANGUAGE) return;
    setLanguage(DEFAULT_LANGUAGE);
    if (atHome) this.paint();
    else this.home();
  }
}

new Kiosk(document.getElementById("kiosk")).start();
