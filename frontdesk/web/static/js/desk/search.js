// The search box: full-text search over customers and conversations (GET /search), shown as a
// combobox; choosing a conversation opens it, choosing a customer opens their latest conversation.
import { api, query } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";
import { formatShort } from "../lib/time.js";
import { IDENTITY_LABELS, channelBadge, debounce, errorText, statusBadge } from "./util.js";

export class Search {
  constructor(form, input, results, ctx) {
    this.form = form;
    this.input = input;
    this.results = results;
    this.ctx = ctx;
    this.options = [];
    this.index = -1;
    this.asked = "";
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", results.id);
    results.setAttribute("role", "listbox");
    results.setAttribute("aria-label", t("Search results"));
    const run = debounce(() => this.run(), 200);
    input.addEventListener("input", run);
    input.addEventListener("keydown", (e) => this.onKey(e));
    input.addEventListener("focus", () => {
      if (this.options.length) this.show();
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      run.cancel();
      this.run().then(() => this.move(1));
    });
    document.addEventListener("mousedown", (e) => {
      if (!form.contains(e.target)) this.hide();
    });
    form.addEventListener("focusout", (e) => {
      if (!e.relatedTarget || !form.contains(e.relatedTarget)) this.hide();
    });
  }

  focus() {
    this.input.focus();
    this.input.select();
  }

  async run() {
    const q = this.input.value.trim();
    this.asked = q;
    if (q.length < 2) {
      this.options = [];
      this.hide();
      return;
    }
    let data;
    try {
      data = await api("GET", `/search${query({ q, limit: 8 })}`);
    } catch (err) {
      if (q !== this.asked) return;
      this.render([], errorText(err));
      return;
    }
    if (q !== this.asked) return; // a newer search is on its way
    const options = [];
    for (const customer of data.customers || []) options.push({ kind: "customer", customer });
    for (const conversation of data.conversations || []) options.push({ kind: "conversation", conversation });
    this.render(options);
  }

  render(options, error = "") {
    this.options = options;
    this.index = -1;
    const nodes = [];
    let group = null;
    options.forEach((option, i) => {
      if (option.kind !== group) {
        group = option.kind;
        nodes.push(el("li", { class: "result-group", role: "presentation" }, group === "customer" ? t("Customers") : t("Conversations")));
      }
      nodes.push(this.renderOption(option, i));
    });
    if (!options.length) {
      nodes.push(el("li", { class: "result-empty", role: "presentation" }, error || t("Nothing found.")));
    }
    this.results.replaceChildren(...nodes);
    this.show();
  }

  renderOption(option, i) {
    const attrs = {
      role: "option",
      id: `search-option-${i}`,
      class: `result result-${option.kind}`,
      "aria-selected": "false",
      onmousedown: (e) => {
        e.preventDefault();
        this.choose(i);
      },
    };
    if (option.kind === "customer") {
      const c = option.customer;
      const ids = (c.identities || []).slice(0, 3).map((x) => `${IDENTITY_LABELS[x.kind] || x.kind}: ${x.value}`);
      return el(
        "li",
        attrs,
        el("span", { class: "result-title" }, c.name || t("Unknown customer")),
        ids.length ? el("span", { class: "result-detail muted" }, ids.join(" · ")) : null,
      );
    }
    const c = option.conversation;
    return el(
      "li",
      attrs,
      el(
        "span",
        { class: "result-title" },
        channelBadge(c.channel),
        " ",
        c.customer_name || t("Unknown customer"),
        c.status ? [" ", statusBadge(c.status)] : null,
        c.last_message_at ? el("time", { class: "muted small", datetime: c.last_message_at }, ` ${formatShort(c.last_message_at)}`) : null,
      ),
      el("span", { class: "result-detail" }, c.subject || ""),
      c.snippet ? el("span", { class: "result-detail muted" }, c.snippet) : null,
    );
  }

  show() {
    this.results.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
  }

  hide() {
    this.results.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }

  move(delta) {
    if (!this.options.length) return;
    this.show();
    this.index = (this.index + delta + this.options.length) % this.options.length;
    for (const node of this.results.querySelectorAll('[role="option"]')) {
      node.setAttribute("aria-selected", String(node.id === `search-option-${this.index}`));
    }
    const active = this.results.querySelector(`#search-option-${this.index}`);
    this.input.setAttribute("aria-activedescendant", active.id);
    active.scrollIntoView({ block: "nearest" });
  }

  onKey(event) {
    if (event.key === "ArrowDown") {
      this.move(1);
      event.preventDefault();
    } else if (event.key === "ArrowUp") {
      this.move(-1);
      event.preventDefault();
    } else if (event.key === "Enter" && this.index >= 0) {
      event.preventDefault();
      this.choose(this.index);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      if (!this.results.hidden) this.hide();
      else {
        this.input.value = "";
        this.input.blur();
      }
    }
  }

  async choose(i) {
    const option = this.options[i];
    if (!option) return;
    this.hide();
    if (option.kind === "conversation") {
      this.ctx.open(option.conversation.id);
      return;
    }
    try {
      const page = await api("GET", `/conversations${query({ customer_id: option.customer.id, limit: 1 })}`);
      if (page.items.length) this.ctx.open(page.items[0].id);
      else toast(t("{name} has no conversations yet.", { name: option.customer.name || t("Unknown customer") }));
    } catch (err) {
      toast(errorText(err), "error");
    }
  }
}
