// The page shell every signed-in page shares: sign out, the connection indicator, one socket.
import { api } from "./api.js";
import { t } from "./boot.js";
import { DeskSocket } from "./socket.js";

/** `desk`: this page is the agent's desk, where routing offers are answered (`/ws?desk=1`). */
export function startShell({ desk = false } = {}) {
  const signOut = document.getElementById("sign-out");
  if (signOut) {
    signOut.addEventListener("click", async () => {
      try {
        await api("POST", "/auth/logout");
      } finally {
        window.location.assign("/");
      }
    });
  }
  const socket = new DeskSocket(desk ? "/ws?desk=1" : "/ws");
  const indicator = document.getElementById("connection");
  socket.addEventListener("state", (e) => {
    if (!indicator) return;
    indicator.dataset.state = e.detail;
    indicator.textContent = e.detail === "open" ? t("Connected") : t("Reconnecting…");
  });
  return { socket };
}

/** Create an element: el("button", {class: "x", onclick: fn}, "text", child…). Text is never parsed as HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A transient message in the page's live region. */
export function toast(text, kind = "info") {
  let region = document.getElementById("toasts");
  if (!region) {
    region = el("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  const item = el("div", { class: `toast ${kind}` }, text);
  region.append(item);
  setTimeout(() => item.remove(), 6000);
}
