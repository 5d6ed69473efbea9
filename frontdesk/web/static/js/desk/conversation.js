// <fd-conversation>: one open conversation (a tab panel) — header with actions (status, snooze,
// assign/transfer, priority, tags), the merged thread, the composer and the customer sidebar.
import { api } from "../lib/api.js";
import { t, timeZone } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";
import { formatDateTime, localInputToIso } from "../lib/time.js";
import { Composer } from "./composer.js";
import { directory } from "./directory.js";
import { CustomerSidebar } from "./sidebar.js";
import { Thread } from "./thread.js";
import {
  PRIORITY_LABELS,
  STATUS_LABELS,
  channelBadge,
  customerLabel,
  daysUntilMonday,
  errorText,
  localDayAt,
  me,
  statusBadge,
} from "./util.js";

const TYPING_SHOWN_MS = 8000;

function normaliseTag(value) {
  return value.trim().toLowerCase().replace(/\s+/g, "-").replace(/^#/, "");
}

export class ConversationElement extends HTMLElement {
  /** ctx: socket, open(id), inbox, markLocal(id), isActive(id), onLabel(id, conv) */
  setup(conversationId, ctx) {
    this.conversationId = conversationId;
    this.ctx = ctx;
    this.conversation = null;
    this.customer = null;
    this.ready = false;
    this.readSent = new Set();
    this.fetching = new Set();
    this.classList.add("conv");
    this.append(el("p", { class: "muted conv-loading" }, t("Loading…")));
  }

  async load() {
    try {
      this.conversation = await api("GET", `/conversations/${this.conversationId}`);
    } catch (err) {
      this.replaceChildren(el("div", { class: "conv-error" }, el("p", { class: "error" }, errorText(err))));
      this.ctx.onLabel(this.conversationId, null);
      return;
    }
    this.ctx.onLabel(this.conversationId, this.conversation);
    this.build();
    this.sidebar.load();
    try {
      await this.thread.start();
    } catch (err) {
      this.thread.items.replaceChildren(el("p", { class: "error" }, errorText(err)));
    }
    this.ready = true;
    if (this.ctx.isActive(this.conversationId)) this.onShown();
  }

  build() {
    const host = {
      conversation: null,
      customerName: () => this.customerName(),
      open: (id) => this.ctx.open(id),
    };
    Object.defineProperty(host, "conversation", { get: () => this.conversation });
    this.thread = new Thread(host);
    this.composer = new Composer({
      get conversation() {
        return host.conversation;
      },
      socket: this.ctx.socket,
      onSent: (message) => {
        this.thread.addMessage(message);
        this.thread.render("bottom");
      },
      focusThread: () => this.thread.root.focus(),
    });
    this.sidebar = new CustomerSidebar({
      get conversation() {
        return host.conversation;
      },
      open: (id) => this.ctx.open(id),
      onCustomer: (customer) => {
        this.customer = customer;
        this.composer.setCustomer(customer);
        this.ctx.onLabel(this.conversationId, this.conversation);
        this.renderHeader();
        this.thread.nodes.clear(); // author names are the customer's now
        this.thread.render("keep");
      },
    });
    this.header = el("header", { class: "conv-head" });
    this.typingLine = el("div", { class: "typing-line", role: "status", "aria-live": "polite" });
    this.snoozePop = this.buildSnooze();
    this.assignDialog = this.buildAssign();
    const main = el("div", { class: "conv-main" }, this.header, this.thread.root, this.typingLine, this.composer.root);
    this.replaceChildren(main, this.sidebar.root, this.assignDialog);
    this.renderHeader();
  }

  customerName() {
    return customerLabel(this.customer, this.conversation && this.conversation.customer_name);
  }

  // -- header and actions -----------------------------------------------------------------------

  renderHeader() {
    const c = this.conversation;
    const resolved = c.status === "resolved";
    const assignee = c.assignee_id ? t("Assignee: {name}", { name: directory.userName(c.assignee_id) }) : t("No assignee");
    const where = [directory.teamName(c.team_id), directory.queueName(c.queue_id)].filter(Boolean).join(" · ");
    const prioritySelect = el(
      "select",
      { class: "compact", "aria-label": t("Priority"), onchange: (e) => this.patch({ priority: e.target.value }) },
      ...Object.entries(PRIORITY_LABELS).map(([value, label]) => el("option", { value, selected: value === c.priority }, label)),
    );
    this.tagInput = el("input", {
      type: "text",
      class: "tag-input",
      placeholder: t("Add tag"),
      "aria-label": t("Add a tag (contact reason)"),
      maxlength: "64",
      onkeydown: (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          this.addTag(e.target.value);
        }
      },
    });
    const focused = this.header.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    this.snoozeButton = el(
      "button",
      {
        type: "button",
        class: "secondary small",
        dataset: { action: "snooze" },
        "aria-haspopup": "true",
        "aria-expanded": "false",
        "aria-keyshortcuts": "s",
        onclick: () => this.toggleSnooze(),
      },
      t("Snooze"),
    );
    this.header.replaceChildren(
      el(
        "div",
        { class: "conv-title-row" },
        el("h2", { class: "conv-name" }, this.customerName()),
        channelBadge(c.channel),
        statusBadge(c.status),
        c.status === "snoozed" && c.snoozed_until ? el("span", { class: "muted small" }, t("until {time}", { time: formatDateTime(c.snoozed_until) })) : null,
      ),
      el(
        "div",
        { class: "conv-sub-row" },
        c.subject ? el("span", { class: "conv-subject" }, c.subject) : null,
        el("span", { class: "conv-assignee" }, assignee, where ? ` · ${where}` : ""),
      ),
      el(
        "div",
        { class: "conv-tools" },
        el(
          "div",
          { class: "conv-actions", role: "toolbar", "aria-label": t("Conversation actions") },
          resolved
            ? el("button", { type: "button", class: "small", dataset: { action: "reopen" }, onclick: () => this.setStatus("open") }, t("Reopen"))
            : el("button", { type: "button", class: "small", dataset: { action: "resolve" }, "aria-keyshortcuts": "e", onclick: () => this.setStatus("resolved") }, t("Resolve")),
          c.status !== "pending" && !resolved
            ? el("button", { type: "button", class: "secondary small", dataset: { action: "pending" }, onclick: () => this.setStatus("pending") }, t("Mark pending"))
            : null,
          c.status === "pending" || c.status === "snoozed"
            ? el("button", { type: "button", class: "secondary small", dataset: { action: "open" }, onclick: () => this.setStatus("open") }, t("Mark open"))
            : null,
          el("span", { class: "pop-anchor" }, this.snoozeButton, this.snoozePop),
          el("button", { type: "button", class: "secondary small", dataset: { action: "assign" }, "aria-keyshortcuts": "a", onclick: () => this.openAssign() }, t("Assign…")),
          prioritySelect,
        ),
        el(
          "div",
          { class: "conv-tags", role: "group", "aria-label": t("Tags") },
          ...(c.tags || []).map((tag) =>
            el(
              "span",
              { class: "tag-chip" },
              `#${tag}`,
              el("button", { type: "button", class: "tag-remove", "aria-label": t("Remove tag {tag}", { tag }), onclick: () => this.removeTag(tag) }, "×"),
            ),
          ),
          this.tagInput,
        ),
      ),
    );
    if (focused) {
      const again = this.header.querySelector(`[data-action="${focused}"]`);
      if (again) again.focus();
    }
  }

  update(conversation) {
    if (!this.conversation) return;
    if (Date.parse(conversation.updated_at) < Date.parse(this.conversation.updated_at)) return; // a late, older copy
    const customerChanged = conversation.customer_id !== this.conversation.customer_id;
    this.conversation = conversation;
    this.ctx.onLabel(this.conversationId, conversation);
    const tagFocused = document.activeElement === this.tagInput;
    const typed = this.tagInput ? this.tagInput.value : "";
    this.renderHeader();
    if (tagFocused) {
      this.tagInput.value = typed;
      this.tagInput.focus();
    }
    if (customerChanged) this.sidebar.load();
  }

  async patch(body) {
    this.ctx.markLocal(this.conversationId);
    try {
      const conversation = await api("PATCH", `/conversations/${this.conversationId}`, body);
      this.update(conversation);
      this.ctx.inbox.onConversation(conversation);
      this.sidebar.refreshConversations();
      return conversation;
    } catch (err) {
      toast(errorText(err), "error");
      this.renderHeader();
      return null;
    }
  }

  async setStatus(status, snoozedUntil = undefined) {
    const body = { status };
    if (status === "snoozed") body.snoozed_until = snoozedUntil;
    const done = await this.patch(body);
    if (done) {
      const label = STATUS_LABELS[status] || status;
      toast(status === "snoozed" ? t("Snoozed until {time}.", { time: formatDateTime(done.snoozed_until) }) : t("Status: {status}.", { status: label }));
    }
  }

  resolve() {
    if (this.conversation && this.conversation.status !== "resolved") this.setStatus("resolved");
  }

  // -- snooze -----------------------------------------------------------------------------------

  buildSnooze() {
    const input = el("input", { type: "datetime-local", "aria-label": t("Snooze until (your time)"), required: true });
    const quick = (label, iso) =>
      el(
        "button",
        {
          type: "button",
          class: "link",
          onclick: () => {
            this.closeSnooze();
            this.setStatus("snoozed", iso());
          },
        },
        label,
      );
    const pop = el(
      "div",
      {
        class: "popover snooze-pop",
        role: "dialog",
        "aria-label": t("Snooze"),
        hidden: true,
        onkeydown: (e) => {
          if (e.key === "Escape") {
            e.stopPropagation();
            this.closeSnooze();
            this.snoozeButton.focus();
          }
        },
      },
      quick(t("In 1 hour"), () => new Date(Date.now() + 3600_000).toISOString()),
      quick(t("In 4 hours"), () => new Date(Date.now() + 4 * 3600_000).toISOString()),
      quick(t("Tomorrow 09:00"), () => localInputToIso(localDayAt(1, 9, timeZone))),
      quick(t("Next Monday 09:00"), () => localInputToIso(localDayAt(daysUntilMonday(timeZone), 9, timeZone))),
      el(
        "form",
        {
          class: "snooze-custom",
          onsubmit: (e) => {
            e.preventDefault();
            if (!input.value) return;
            this.closeSnooze();
            this.setStatus("snoozed", localInputToIso(input.value));
          },
        },
        el("label", {}, t("Until"), input),
        el("span", { class: "muted small" }, timeZone),
        el("button", { type: "submit", class: "small" }, t("Snooze")),
      ),
    );
    this.snoozeInput = input;
    return pop;
  }

  toggleSnooze() {
    if (this.snoozePop.hidden) this.openSnooze();
    else this.closeSnooze();
  }

  openSnooze() {
    this.snoozeInput.value = localDayAt(1, 9, timeZone);
    this.snoozePop.hidden = false;
    this.snoozeButton.setAttribute("aria-expanded", "true");
    this.snoozePop.querySelector("button").focus();
    this.outside = (e) => {
      if (!this.snoozePop.contains(e.target) && e.target !== this.snoozeButton) this.closeSnooze();
    };
    document.addEventListener("mousedown", this.outside);
  }

  closeSnooze() {
    this.snoozePop.hidden = true;
    if (this.snoozeButton) this.snoozeButton.setAttribute("aria-expanded", "false");
    if (this.outside) document.removeEventListener("mousedown", this.outside);
  }

  // -- assign / transfer ------------------------------------------------------------------------

  buildAssign() {
    const dialog = el("dialog", { class: "assign-dialog", "aria-labelledby": `assign-title-${this.conversationId}` });
    dialog.addEventListener("close", () => this.header && this.header.querySelector('[data-action="assign"]')?.focus());
    return dialog;
  }

  openAssign() {
    const c = this.conversation;
    const none = (label) => el("option", { value: "" }, label);
    const agent = el(
      "select",
      { name: "assignee_id" },
      none(t("— Nobody —")),
      ...directory.users.map((u) => el("option", { value: u.id, selected: u.id === c.assignee_id }, u.id === me.id ? t("{name} (me)", { name: u.name }) : u.name)),
    );
    if (c.assignee_id && !directory.usersById.has(c.assignee_id)) {
      agent.append(el("option", { value: c.assignee_id, selected: true }, directory.userName(c.assignee_id)));
    }
    const team = el("select", { name: "team_id" }, none(t("— No team —")), ...directory.teams.map((x) => el("option", { value: x.id, selected: x.id === c.team_id }, x.name)));
    const queue = el("select", { name: "queue_id" }, none(t("— No queue —")), ...directory.queues.map((x) => el("option", { value: x.id, selected: x.id === c.queue_id }, x.name)));
    const note = el("textarea", { name: "note", rows: "3", maxlength: "10000", placeholder: t("Why, and what the next person should know (optional)") });
    const titleId = `assign-title-${this.conversationId}`;
    const form = el(
      "form",
      {
        method: "dialog",
        class: "stack",
        onsubmit: async (e) => {
          e.preventDefault();
          const body = {};
          const pick = (select, field) => {
            const value = select.value || null;
            if (value !== (c[field] || null)) body[field] = value;
          };
          pick(agent, "assignee_id");
          pick(team, "team_id");
          if (directory.queues.length) pick(queue, "queue_id");
          const text = note.value.trim();
          if (!Object.keys(body).length && !text) {
            this.assignDialog.close();
            return;
          }
          if (text) {
            body.note = text;
            if (!Object.keys(body).some((k) => k !== "note")) body.assignee_id = c.assignee_id; // a note needs an assignment field
          }
          const done = await this.patch(body);
          if (done) {
            this.assignDialog.close();
            toast(t("Assigned to {name}.", { name: done.assignee_id ? directory.userName(done.assignee_id) : directory.teamName(done.team_id) || directory.queueName(done.queue_id) || t("nobody") }));
          }
        },
      },
      el("h2", { id: titleId }, t("Assign or transfer")),
      el("label", {}, t("Agent"), agent),
      el("label", {}, t("Team"), team),
      directory.queues.length ? el("label", {}, t("Queue"), queue) : null,
      el("label", {}, t("Note"), note),
      el(
        "div",
        { class: "form-actions" },
        el("button", { type: "button", class: "link", onclick: () => (agent.value = me.id) }, t("Assign to me")),
        el("span", { class: "spacer" }),
        el("button", { type: "button", class: "secondary", onclick: () => this.assignDialog.close() }, t("Cancel")),
        el("button", { type: "submit" }, t("Assign")),
      ),
    );
    this.assignDialog.replaceChildren(form);
    this.assignDialog.showModal();
    agent.focus();
  }

  // -- tags -------------------------------------------------------------------------------------

  async addTag(raw) {
    const tag = normaliseTag(raw);
    if (!tag) return;
    if (!/^[a-z0-9_-]{1,64}$/.test(tag)) {
      toast(t("Tags use a-z, 0-9, '_' and '-'."), "error");
      return;
    }
    this.ctx.markLocal(this.conversationId);
    try {
      const conversation = await api("PUT", `/conversations/${this.conversationId}/tags/${encodeURIComponent(tag)}`);
      this.tagInput.value = "";
      this.update(conversation);
      this.tagInput.value = "";
      this.tagInput.focus();
      this.ctx.inbox.onConversation(conversation);
    } catch (err) {
      toast(errorText(err), "error");
    }
  }

  async removeTag(tag) {
    this.ctx.markLocal(this.conversationId);
    try {
      const conversation = await api("DELETE", `/conversations/${this.conversationId}/tags/${encodeURIComponent(tag)}`);
      this.update(conversation);
      this.tagInput.focus();
      this.ctx.inbox.onConversation(conversation);
    } catch (err) {
      toast(errorText(err), "error");
    }
  }

  focusTag() {
    if (this.tagInput) this.tagInput.focus();
  }

  // -- events -----------------------------------------------------------------------------------

  async onMessage(data) {
    if (!this.thread) return;
    let message = data.message;
    if (!message && data.message_id) {
      // Each topic (desk, this conversation, the assignee) delivers its own copy: fetch once.
      if (this.fetching.has(data.message_id) || this.thread.messages.has(data.message_id)) return;
      this.fetching.add(data.message_id);
      try {
        message = await api("GET", `/messages/${data.message_id}`);
      } catch {
        return;
      } finally {
        this.fetching.delete(data.message_id);
      }
    }
    if (!message) return;
    const added = this.thread.addMessage(message);
    if (added && message.direction === "in") {
      this.showTyping(null);
      this.markRead();
    }
    if (added && data.new_conversation) this.sidebar.refreshConversations();
  }

  onMessageUpdated(data) {
    if (this.thread && data.message) this.thread.updateMessage(data.message);
  }

  onForeign(data) {
    if (this.thread && this.thread.tlLoaded) {
      this.thread.addForeign(data);
      if (data.new_conversation) this.sidebar.refreshConversations();
    }
  }

  onTyping(data) {
    if (data.author_type && data.author_type !== "customer") return;
    this.showTyping(data.on ? data.author_name || this.customerName() : null);
  }

  showTyping(name) {
    clearTimeout(this.typingTimer);
    if (!this.typingLine) return;
    if (!name) {
      this.typingLine.textContent = "";
      return;
    }
    this.typingLine.textContent = t("{name} is typing…", { name });
    this.typingTimer = setTimeout(() => (this.typingLine.textContent = ""), TYPING_SHOWN_MS);
  }

  /** Tell the widget the agent has seen the visitor's newest message (read receipt). */
  markRead() {
    if (!this.thread || document.visibilityState !== "visible" || !this.ctx.isActive(this.conversationId)) return;
    const newest = this.thread.newestInbound();
    if (!newest || newest.channel !== "webchat" || this.readSent.has(newest.id)) return;
    this.readSent.add(newest.id);
    api("POST", `/widget/messages/${newest.id}/read`).catch(() => {});
  }

  /** The tab became the visible one. */
  onShown() {
    if (!this.ready) return;
    document.body.dataset.conversationReady = this.conversationId;
    this.markRead();
  }

  reloadThread() {
    if (!this.thread) return;
    const old = this.thread.root;
    this.thread.destroy();
    const host = this.thread.host;
    this.thread = new Thread(host);
    old.replaceWith(this.thread.root);
    this.thread.start().catch(() => {});
  }

  focusComposer(mode) {
    if (this.composer) this.composer.focus(mode);
  }

  disconnectedCallback() {
    if (this.composer) this.composer.typing(false);
    this.closeSnooze && this.snoozePop && this.closeSnooze();
  }
}

customElements.define("fd-conversation", ConversationElement);
