// On-screen keys: digits for codes and PINs, letters too for courier IDs and tracking codes.
// The field is a real <input> (a barcode scanner acting as a keyboard can type into it);
// inputmode="none" keeps any system keyboard away.

import { t } from "./i18n.js";
import { h } from "./ui.js";

const DIGITS = ["1", "2", "3", "4", "5", "6", "7", "8", "9"];
const LETTER_ROWS = ["QWERTYUIOP", "ASDFGHJKL", "ZXCVBNM"];

export class Entry {
  constructor({ id, label, maxLength = 32, secret = false, letters = false, upper = true, onChange, onEnter }) {
    this.upper = upper;
    this.id = id;
    this.label = label;
    this.maxLength = maxLength;
    this.secret = secret;
    this.letters = letters;
    this.onChange = onChange;
    this.onEnter = onEnter;
    this.value = "";
    this.input = null;
  }

  set(value) {
    this.value = value.slice(0, this.maxLength);
    if (this.input) this.input.value = this.value;
    if (this.onChange) this.onChange(this.value);
  }

  press(key) {
    this.set(this.value + key);
  }

  // The labelled field showing what was typed.
  field() {
    this.input = h("input", {
      id: this.id,
      class: "entry-field",
      type: this.secret ? "password" : "text",
      inputmode: "none",
      autocomplete: "off",
      spellcheck: "false",
      maxlength: this.maxLength,
      oninput: (event) => this.set(event.target.value.trim()),
      onkeydown: (event) => {
        if (event.key === "Enter" && this.onEnter) this.onEnter();
      },
    });
    this.input.value = this.value;
    return h(
      "div",
      { class: "entry" },
      h("label", { class: "entry-label", for: this.id }, this.label),
      this.input,
    );
  }

  // The keys, in a group named after the field.
  keys() {
    this.pad = h("div", {
      class: this.letters ? "keypad keypad-letters" : "keypad",
      role: "group",
      "aria-label": t("keys.label", { field: this.label }),
    });
    this.fillKeys();
    return this.pad;
  }

  fillKeys() {
    const key = (text) => h("button", { type: "button", class: "key", onclick: () => this.press(text) }, text);
    const tool = (text, label, onclick) =>
      h("button", { type: "button", class: "key key-tool", onclick, "aria-label": label }, text);
    const digits = h(
      "div",
      { class: "keys keys-digits" },
      ...DIGITS.map(key),
      tool(t("common.clear"), t("common.clear"), () => this.set("")),
      key("0"),
      tool("⌫", t("common.delete"), () => this.set(this.value.slice(0, -1))),
    );
    this.pad.replaceChildren(digits);
    if (!this.letters) return;
    const rows = LETTER_ROWS.map((row) =>
      h("div", { class: "keys-row" }, ...[...row].map((c) => key(this.upper ? c : c.toLowerCase()))),
    );
    rows[2].append(key("-"));
    const shift = this.upper ? "abc" : "ABC";
    rows[2].prepend(
      tool(shift, shift, () => {
        this.upper = !this.upper;
        this.fillKeys();
      }),
    );
    this.pad.append(h("div", { class: "keys keys-letters" }, ...rows));
  }
}
