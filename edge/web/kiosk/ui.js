// Small DOM builders: no inline styles or handlers (the page's CSP forbids them).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function button(label, onclick, { kind = "primary", sub, disabled, name, extra = {} } = {}) {
  return h(
    "button",
    { type: "button", class: `btn btn-${kind}`, onclick, disabled, "data-action": name, ...extra },
    h("span", { class: "btn-label" }, label),
    sub ? h("span", { class: "btn-sub" }, sub) : null,
  );
}

export function screen(title, ...body) {
  return h(
    "section",
    { class: "screen" },
    h("h1", { class: "screen-title", tabindex: "-1" }, title),
    ...body,
  );
}

// `text` may be a function, so a message already shown follows a language switch.
export function message(text, kind = "error") {
  if (typeof text === "function") text = text();
  if (!text) return null;
  return h("p", { class: `message message-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

export function actions(...buttons) {
  return h("div", { class: "actions" }, ...buttons);
}

// Minor units (fen) as a price: 1250 → ¥12.50.
export function money(minor, currency = "CNY") {
  const sign = currency === "CNY" || !currency ? "¥" : `${currency} `;
  const value = (Number(minor || 0) / 100).toFixed(2);
  return `${sign}${value}`;
}
