// The tab strip: several conversations open at once, remembered across reloads (localStorage),
// addressable as /desk#/c/<conversation id>. Arrow keys move between tabs (ARIA tablist).
import { t } from "../lib/boot.js";
import { el } from "../lib/shell.js";
import "./conversation.js";
import { customerLabel, storage } from "./util.js";

const MAX_TABS = 8;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class Tabs {
  constructor(ctx, tablist, panels, empty) {
    this.ctx = ctx;
    this.tablist = tablist;
    this.panels = panels;
    this.empty = empty;
    this.open = new Map(); // id → {tab, wrap, panel, label}
    this.order = [];
    this.active = null;
    this.recent = []; // activation order, most recent last
    tablist.addEventListener("keydown", (e) => this.onKey(e));
  }

  restore() {
    const saved = storage.get("tabs", { ids: [], active: null }) || { ids: [], active: null };
    const fromHash = this.hashId();
    for (const id of saved.ids || []) if (UUID.test(id)) this.openTab(id, { activate: false, persist: false });
    const target = fromHash || (saved.active && this.open.has(saved.active) ? saved.active : this.order[0]);
    if (target) this.openTab(target);
    else this.showEmpty();
    window.addEventListener("hashchange", () => {
      const id = this.hashId();
      if (id && id !== this.active) this.openTab(id);
    });
  }

  hashId() {
    const match = /^#\/c\/([0-9a-fA-F-]{36})$/.exec(window.location.hash);
    return match && UUID.test(match[1]) ? match[1].toLowerCase() : null;
  }

  persist() {
    storage.set("tabs", { ids: this.order, active: this.active });
  }

  openTab(id, { activate = true, persist = true } = {}) {
    if (!this.open.has(id)) {
      if (this.order.length >= MAX_TABS) {
        const victim = this.recent.find((x) => x !== this.active && this.open.has(x)) || this.order[0];
        this.close(victim, { persist: false });
      }
      const label = el("span", { class: "tab-label" }, t("Loading…"));
      const dot = el("span", { class: "dot", "aria-hidden": "true" });
      const tab = el(
        "button",
        {
          type: "button",
          role: "tab",
          id: `tab-${id}`,
          class: "tab",
          "aria-selected": "false",
          "aria-controls": `panel-${id}`,
          tabindex: "-1",
          onclick: () => this.activate(id),
          onauxclick: (e) => {
            if (e.button === 1) this.close(id);
          },
        },
        dot,
        label,
      );
      const close = el(
        "button",
        { type: "button", class: "tab-close", tabindex: "-1", "aria-label": t("Close tab"), onclick: () => this.close(id) },
        "×",
      );
      const wrap = el("div", { class: "tab-wrap", role: "presentation" }, tab, close);
      const panel = document.createElement("fd-conversation");
      panel.id = `panel-${id}`;
      panel.setAttribute("role", "tabpanel");
      panel.setAttribute("aria-labelledby", `tab-${id}`);
      panel.hidden = true;
      panel.setup(id, this.ctx);
      this.tablist.append(wrap);
      this.panels.append(panel);
      this.open.set(id, { tab, close, wrap, panel, label, dot });
      this.order.push(id);
      this.ctx.socket.subscribe([`conversation:${id}`]);
      panel.load();
    }
    if (activate) this.activate(id);
    else if (persist) this.persist();
  }

  activate(id) {
    const entry = this.open.get(id);
    if (!entry) return;
    this.active = id;
    this.recent = this.recent.filter((x) => x !== id).concat(id);
    for (const [other, e] of this.open) {
      const on = other === id;
      e.tab.setAttribute("aria-selected", String(on));
      e.tab.tabIndex = on ? 0 : -1;
      e.close.tabIndex = on ? 0 : -1;
      e.wrap.classList.toggle("active", on);
      e.panel.hidden = !on;
    }
    entry.wrap.classList.remove("unread");
    this.empty.hidden = true;
    if (window.location.hash !== `#/c/${id}`) history.replaceState(null, "", `#/c/${id}`);
    this.ctx.inbox.setOpened(id);
    entry.panel.onShown();
    this.persist();
  }

  close(id, { persist = true } = {}) {
    const entry = this.open.get(id);
    if (!entry) return;
    const index = this.order.indexOf(id);
    entry.wrap.remove();
    entry.panel.remove();
    this.ctx.socket.unsubscribe([`conversation:${id}`]);
    this.open.delete(id);
    this.order.splice(index, 1);
    this.recent = this.recent.filter((x) => x !== id);
    if (this.active === id) {
      this.active = null;
      const next = this.recent[this.recent.length - 1] || this.order[Math.min(index, this.order.length - 1)];
      if (next) {
        this.activate(next);
        this.open.get(next).tab.focus();
      } else {
        this.showEmpty();
      }
    }
    if (persist) this.persist();
  }

  showEmpty() {
    this.empty.hidden = false;
    this.ctx.inbox.setOpened(null);
    delete document.body.dataset.conversationReady;
    if (window.location.hash) history.replaceState(null, "", window.location.pathname);
  }

  current() {
    return this.active ? this.open.get(this.active).panel : null;
  }

  panel(id) {
    const entry = this.open.get(id);
    return entry ? entry.panel : null;
  }

  all() {
    return [...this.open.values()].map((e) => e.panel);
  }

  setLabel(id, conversation) {
    const entry = this.open.get(id);
    if (!entry) return;
    if (!conversation) {
      entry.label.textContent = t("Unavailable");
      return;
    }
    const panel = entry.panel;
    const name = customerLabel(panel && panel.customer, conversation.customer_name);
    entry.label.textContent = name;
    entry.dot.className = `dot ch-${conversation.channel}`;
    entry.tab.title = conversation.subject ? `${name} — ${conversation.subject}` : name;
  }

  markUnread(id) {
    const entry = this.open.get(id);
    if (entry && id !== this.active) entry.wrap.classList.add("unread");
  }

  cycle(delta) {
    if (!this.order.length) return;
    let index = this.order.indexOf(this.active);
    index = (index + delta + this.order.length) % this.order.length;
    this.activate(this.order[index]);
  }

  onKey(event) {
    if (!event.target.matches('[role="tab"]')) return;
    if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      this.cycle(event.key === "ArrowRight" ? 1 : -1);
      this.open.get(this.active).tab.focus();
      event.preventDefault();
    } else if (event.key === "Home" || event.key === "End") {
      const id = event.key === "Home" ? this.order[0] : this.order[this.order.length - 1];
      if (id) {
        this.activate(id);
        this.open.get(id).tab.focus();
      }
      event.preventDefault();
    } else if (event.key === "Delete") {
      this.close(this.active);
      event.preventDefault();
    }
  }
}

