// Presence (available / away / offline), routing offers with a countdown and accept/decline, and
// notifications (desktop when permitted and the page is hidden, else an in-page toast).
import { api } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { labelMap } from "../lib/labels.js";
import { el, toast } from "../lib/shell.js";
import { PRIORITY_LABELS, channelBadge, errorText } from "./util.js";

const PRESENCE_LABELS = labelMap("presence");

// -- notifications --------------------------------------------------------------------------------

function region() {
  let box = document.getElementById("toasts");
  if (!box) {
    box = el("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  return box;
}

/** Tell the agent about something that needs them; `open` is called if they click it. */
export function notify(title, body, open = null, { inPage = true } = {}) {
  const desktop = "Notification" in window && Notification.permission === "granted" && document.visibilityState !== "visible";
  if (desktop) {
    try {
      const note = new Notification(title, { body: body || "", tag: title });
      note.onclick = () => {
        window.focus();
        if (open) open();
        note.close();
      };
      return;
    } catch {
      /* fall through to the in-page toast */
    }
  }
  if (!inPage) return;
  const item = el(
    "div",
    { class: "toast notice" },
    el("strong", {}, title),
    body ? el("div", { class: "toast-body" }, body) : null,
    open
      ? el(
          "button",
          {
            type: "button",
            class: "link small",
            onclick: () => {
              item.remove();
              open();
            },
          },
          t("Show"),
        )
      : null,
  );
  region().append(item);
  setTimeout(() => item.remove(), 10_000);
}

export function canAskNotifications() {
  return "Notification" in window && Notification.permission === "default";
}

// -- presence -------------------------------------------------------------------------------------

export class Presence {
  constructor(root) {
    this.root = root;
    this.select = el("select", { class: "compact presence-select", "aria-label": t("My status"), onchange: () => this.change() });
    this.dot = el("span", { class: "presence-dot", "aria-hidden": "true" });
    for (const status of ["available", "away", "offline"]) {
      this.select.append(el("option", { value: status }, PRESENCE_LABELS[status]));
    }
    root.replaceChildren(this.dot, this.select);
    root.hidden = true;
  }

  async load() {
    let data;
    try {
      data = await api("GET", "/agents/me/presence");
    } catch (err) {
      toast(errorText(err), "error");
      return;
    }
    this.show(data.status);
    this.root.hidden = false;
  }

  show(status) {
    if (![...this.select.options].some((o) => o.value === status)) {
      this.select.append(el("option", { value: status }, PRESENCE_LABELS[status] || status));
    }
    this.select.value = status;
    this.dot.className = `presence-dot ps-${status}`;
    this.current = status;
  }

  async change() {
    const wanted = this.select.value;
    try {
      const data = await api("PUT", "/agents/me/presence", { status: wanted });
      this.show(data.status || wanted);
    } catch (err) {
      this.show(this.current);
      notify(errorText(err), "");
    }
  }

  /** Someone (another tab, a supervisor, the router) changed it. */
  onEvent(data) {
    if (data && data.status) this.show(data.status);
  }
}

// -- offers ---------------------------------------------------------------------------------------

export class Offers {
  constructor(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    this.cards = new Map();
  }

  show(offer) {
    if (!offer || !offer.offer_id || this.cards.has(offer.offer_id)) return;
    // "seconds" is relative (immune to a wrong clock on this computer); expires_at is the fallback.
    const deadline =
      typeof offer.seconds === "number" ? Date.now() + offer.seconds * 1000 : offer.expires_at ? Date.parse(offer.expires_at) : Date.now() + 30_000;
    const titleId = `offer-${offer.offer_id}`;
    const countdown = el("span", { class: "countdown", "aria-live": "off" });
    const accept = el("button", { type: "button", onclick: () => this.answer(offer, "accept") }, t("Accept"));
    const decline = el("button", { type: "button", class: "secondary", onclick: () => this.answer(offer, "decline") }, t("Decline"));
    const card = el(
      "div",
      { class: "offer-card", role: "alertdialog", "aria-labelledby": titleId, "aria-describedby": `${titleId}-d` },
      el("h2", { id: titleId }, t("New conversation for you")),
      el(
        "div",
        { id: `${titleId}-d`, class: "offer-detail" },
        channelBadge(offer.channel),
        el("strong", {}, ` ${offer.customer_name || t("Unknown customer")}`),
        offer.queue_name ? el("div", { class: "muted small" }, t("Queue: {name}", { name: offer.queue_name })) : null,
        offer.priority && offer.priority !== "normal" ? el("div", { class: "small" }, PRIORITY_LABELS[offer.priority] || offer.priority) : null,
      ),
      el("div", { class: "offer-actions" }, accept, decline, countdown),
    );
    const tick = () => {
      const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      countdown.textContent = t("{n} s left", { n: left });
      card.classList.toggle("urgent", left <= 5);
      if (left <= 0) this.remove(offer.offer_id);
    };
    tick();
    const timer = setInterval(tick, 250);
    this.cards.set(offer.offer_id, { card, timer });
    this.root.append(card);
    // Never pull focus out of what the agent is doing; only an idle page gets it on Accept.
    const idle = !document.activeElement || document.activeElement === document.body || document.activeElement.id === "main";
    if (idle) accept.focus({ preventScroll: true });
    // The card is the in-page notice; a desktop one only when the tab is in the background.
    notify(t("New conversation for you"), offer.customer_name || "", () => accept.focus(), { inPage: false });
  }

  /** Offers still open after a reload (GET /routing/offers). */
  async restore() {
    let pending;
    try {
      pending = await api("GET", "/routing/offers");
    } catch (err) {
      toast(errorText(err), "error");
      return;
    }
    for (const offer of pending) {
      if (offer.status === "pending") this.show({ ...offer, offer_id: offer.id });
    }
  }

  remove(offerId) {
    const entry = this.cards.get(offerId);
    if (!entry) return;
    clearInterval(entry.timer);
    entry.card.remove();
    this.cards.delete(offerId);
  }

  withdraw(data) {
    if (!this.cards.has(data.offer_id)) return;
    this.remove(data.offer_id);
    notify(t("The offer was withdrawn."), data.reason || "");
  }

  async answer(offer, verdict) {
    if (verdict === "accept") this.ctx.markLocal(offer.conversation_id);
    try {
      const out = await api("POST", `/routing/offers/${offer.offer_id}/${verdict}`);
      this.remove(offer.offer_id);
      if (verdict === "accept") this.ctx.open((out && out.conversation_id) || offer.conversation_id);
    } catch (err) {
      this.remove(offer.offer_id);
      notify(errorText(err), "");
    }
  }
}
