// <fd-agent-panel>: a modal listing one agent's current conversations (open and pending), where a
// supervisor reassigns any of them to another person with a note (PATCH /conversations/{id}
// {assignee_id, note}; the note is kept on the conversation).
import { api, problemDetail, query } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { statusLabel } from "../lib/labels.js";
import { el, toast } from "../lib/shell.js";
import { formatRelative, formatShort } from "../lib/time.js";
import { channelName, presenceName } from "./labels.js";

let seq = 0;
const nextId = (prefix) => `${prefix}-${(seq += 1)}`;

/** Open conversations need no word; the others say why they are quiet. */
function statusName(status) {
  return status === "open" ? "" : statusLabel(status);
}

export class AgentPanel extends HTMLElement {
  connectedCallback() {
    if (this.dialog) return;
    this.heading = el("h2", { id: "agent-panel-title" });
    this.summary = el("p", { class: "muted" });
    this.body = el("div", { class: "agent-conversations" });
    const close = el("button", { type: "button", class: "secondary close" }, t("Close"));
    close.addEventListener("click", () => this.close());
    this.dialog = el(
      "dialog",
      { class: "agent-panel", "aria-labelledby": "agent-panel-title" },
      el("header", {}, el("div", {}, this.heading, this.summary), close),
      this.body,
    );
    this.dialog.addEventListener("close", () => {
      if (this.returnFocus && this.returnFocus.isConnected) this.returnFocus.focus();
      this.agent = null;
    });
    this.append(this.dialog);
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  /** Open for one agent (a wallboard `agents[]` row). */
  async open(agent) {
    this.agent = agent;
    this.returnFocus = document.activeElement;
    this.update(agent);
    if (!this.dialog.open) this.dialog.showModal();
    await this.load();
  }

  /** Fresh figures for the agent shown (from the board); ignored for anyone else. */
  update(agent) {
    if (!this.agent || this.agent.user_id !== agent.user_id) return;
    this.agent = agent;
    this.heading.textContent = agent.name;
    this.summary.textContent = t("{state} · in progress: {n}", { state: presenceName(agent.presence), n: agent.open_conversations ?? 0 });
  }

  async load() {
    const agent = this.agent;
    if (!agent) return;
    this.body.replaceChildren(el("p", { class: "muted" }, t("Loading…")));
    let conversations;
    let people;
    try {
      const [open, pending, users] = await Promise.all([
        api("GET", `/conversations${query({ assignee: agent.user_id, status: "open", limit: 100 })}`),
        api("GET", `/conversations${query({ assignee: agent.user_id, status: "pending", limit: 100 })}`),
        this.people(),
      ]);
      conversations = [...open.items, ...pending.items].sort((a, b) => String(b.last_message_at || b.created_at).localeCompare(String(a.last_message_at || a.created_at)));
      people = users;
    } catch (error) {
      const retry = el("button", { type: "button", class: "secondary" }, t("Retry"));
      retry.addEventListener("click", () => this.load());
      this.body.replaceChildren(el("p", { class: "error", role: "alert" }, t("Error: {detail}", { detail: problemDetail(error) })), retry);
      return;
    }
    if (!this.agent || this.agent.user_id !== agent.user_id) return; // closed, or another agent since
    if (!conversations.length) {
      this.body.replaceChildren(el("p", { class: "muted empty" }, t("{name} has no open or pending conversations.", { name: agent.name })));
      return;
    }
    const others = people.filter((p) => p.id !== agent.user_id && p.is_active !== false);
    this.body.replaceChildren(el("ul", { class: "conversation-list" }, ...conversations.map((c) => this.item(c, others))));
    const first = this.body.querySelector("button");
    if (first) first.focus();
  }

  /** People a conversation can go to: the directory's active users. */
  async people() {
    if (this.cachedPeople) return this.cachedPeople;
    const list = (await api("GET", "/directory")).users;
    this.cachedPeople = list.sort((a, b) => String(a.name).localeCompare(String(b.name)));
    setTimeout(() => (this.cachedPeople = null), 60_000);
    return this.cachedPeople;
  }

  item(conversation, others) {
    const headingId = nextId("conv");
    const selectId = nextId("to");
    const noteId = nextId("note");
    const errorId = nextId("err");
    const select = el("select", { id: selectId, name: "assignee_id", required: true, "aria-describedby": errorId });
    select.append(el("option", { value: "" }, t("Choose a person…")), ...others.map((p) => el("option", { value: p.id }, p.name)));
    const note = el("textarea", { id: noteId, name: "note", rows: 2, maxlength: 10000, "aria-describedby": errorId });
    const error = el("p", { id: errorId, class: "form-error", role: "alert", hidden: true });
    const submit = el("button", { type: "submit" }, t("Reassign"));
    const formNode = el(
      "form",
      { class: "reassign", hidden: true, novalidate: true },
      el("div", { class: "field" }, el("label", { for: selectId }, t("Reassign to")), select),
      el("div", { class: "field" }, el("label", { for: noteId }, t("Note (why; kept on the conversation)")), note),
      error,
      el("div", { class: "actions" }, submit),
    );
    const toggle = el("button", { type: "button", class: "secondary", "aria-expanded": "false" }, t("Reassign…"));
    toggle.setAttribute("aria-label", t("Reassign the conversation with {customer}", { customer: conversation.customer_name || t("Customer") }));
    toggle.addEventListener("click", () => {
      formNode.hidden = !formNode.hidden;
      toggle.setAttribute("aria-expanded", String(!formNode.hidden));
      if (!formNode.hidden) select.focus();
    });
    formNode.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      select.removeAttribute("aria-invalid");
      if (!select.value) {
        error.textContent = t("Choose who takes it over.");
        error.hidden = false;
        select.setAttribute("aria-invalid", "true");
        select.focus();
        return;
      }
      const body = { assignee_id: select.value };
      if (note.value.trim()) body.note = note.value.trim();
      submit.disabled = true;
      try {
        await api("PATCH", `/conversations/${conversation.id}`, body);
        const to = others.find((p) => p.id === select.value);
        toast(t("Conversation reassigned to {name}.", { name: to ? to.name : "" }));
        this.dispatchEvent(new CustomEvent("reassigned", { detail: { conversation, to: select.value } }));
        await this.load();
      } catch (failure) {
        error.textContent = t("Error: {detail}", { detail: problemDetail(failure) });
        error.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
    const since = conversation.last_message_at || conversation.created_at;
    return el(
      "li",
      { class: "conversation", "aria-labelledby": headingId, dataset: { conversationId: conversation.id } },
      el(
        "div",
        { class: "conversation-head" },
        el(
          "div",
          {},
          el("h3", { id: headingId }, conversation.customer_name || t("Customer")),
          el("p", { class: "subject" }, conversation.subject || t("(no subject)")),
          el(
            "p",
            { class: "meta muted" },
            el("span", { class: `channel channel-${conversation.channel}` }, channelName(conversation.channel)),
            statusName(conversation.status) ? ` · ${statusName(conversation.status)}` : "",
            " · ",
            el("time", { datetime: since, title: formatShort(since) }, formatRelative(since)),
          ),
        ),
        toggle,
      ),
      formNode,
    );
  }
}

customElements.define("fd-agent-panel", AgentPanel);
