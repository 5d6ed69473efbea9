// <fd-inbox>: the views (Mine, Unassigned, All, by queue/channel/status/tag) with live counts, and
// the conversation list of the chosen view — sorted, paged by `next_cursor` as it scrolls, and kept
// current from the socket (rows are inserted, moved and removed without a reload).
import { api, query } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { el } from "../lib/shell.js";
import { directory } from "./directory.js";
import {
  CHANNELS,
  PRIORITY_RANK,
  STATUS_LABELS,
  STATUSES,
  channelBadge,
  channelLabel,
  coalesce,
  compactDate,
  errorText,
  lastMessageText,
  me,
  messageText,
  priorityBadge,
  shortDuration,
  statusBadge,
  storage,
} from "./util.js";

const PAGE = 30;
const ACTIVE = "open,pending"; // what the view counts count
const SORTS = {
  last_message_at: t("Last activity"),
  waiting: t("Waiting longest"),
  priority: t("Priority"),
};

const BASE_VIEWS = [
  { key: "mine", label: t("Mine"), filter: { assignee: "me" }, count: (c) => c.mine },
  { key: "unassigned", label: t("Unassigned"), filter: { assignee: "none" }, count: (c) => c.unassigned },
  { key: "all", label: t("All"), filter: {}, count: (c) => c.all },
];

function sortKey(conversation) {
  return conversation.last_message_at || conversation.created_at || "";
}

const msOf = (iso) => (iso ? Date.parse(iso) : 0);

/** Does `a` come before `b` in the list sorted by `sort`? (The server's order, reproduced.) */
function compare(sort, a, b) {
  if (sort === "priority") {
    const d = (PRIORITY_RANK[b.priority] ?? 1) - (PRIORITY_RANK[a.priority] ?? 1);
    if (d) return d;
  }
  if (sort === "waiting" || sort === "priority") {
    const wa = a.waiting_since || null;
    const wb = b.waiting_since || null;
    if (wa && !wb) return -1;
    if (!wa && wb) return 1;
    if (wa && wb && msOf(wa) !== msOf(wb)) return msOf(wa) < msOf(wb) ? -1 : 1;
  }
  const ka = msOf(sortKey(a));
  const kb = msOf(sortKey(b));
  if (ka !== kb) return ka > kb ? -1 : 1;
  return a.id > b.id ? -1 : a.id < b.id ? 1 : 0;
}

export function matchesFilter(conversation, filter) {
  if (filter.status && !filter.status.split(",").includes(conversation.status)) return false;
  if (filter.assignee === "me" && conversation.assignee_id !== me.id) return false;
  if (filter.assignee === "none" && conversation.assignee_id) return false;
  if (filter.queue_id && conversation.queue_id !== filter.queue_id) return false;
  if (filter.team_id && conversation.team_id !== filter.team_id) return false;
  if (filter.channel && conversation.channel !== filter.channel) return false;
  if (filter.tag && !(conversation.tags || []).includes(filter.tag)) return false;
  return true;
}

export class InboxElement extends HTMLElement {
  connectedCallback() {
    if (this.built) return;
    this.built = true;
    this.ctx = null;
    this.rows = new Map(); // id → {conversation, node}
    this.order = []; // ids in list order
    this.cursor = null;
    this.loading = false;
    this.generation = 0;
    this.activeId = null;
    this.openedId = null;
    this.snippets = new Map();
    this.counts = null;
    const saved = storage.get("inbox", {}) || {};
    this.viewKey = saved.view || "mine";
    this.status = saved.status ?? ACTIVE;
    this.sort = SORTS[saved.sort] ? saved.sort : "last_message_at";
    this.pendingFetch = new Map();
    this.refreshCountsSoon = coalesce(() => this.refreshCounts(), 1000);
    this.build();
  }

  build() {
    this.classList.add("inbox");
    this.viewsNav = el("nav", { class: "views", "aria-label": t("Views") });
    this.listTitle = el("h2", { class: "list-title", id: "inbox-title" });
    this.statusSelect = el(
      "select",
      { "aria-label": t("Status"), class: "compact", onchange: () => this.changeStatus() },
      el("option", { value: ACTIVE }, t("Active")),
      el("option", { value: "" }, t("Any status")),
      ...STATUSES.map((s) => el("option", { value: s }, STATUS_LABELS[s])),
    );
    this.sortSelect = el(
      "select",
      { "aria-label": t("Sort by"), class: "compact", onchange: () => this.changeSort() },
      ...Object.entries(SORTS).map(([value, label]) => el("option", { value }, label)),
    );
    this.list = el("div", {
      class: "conv-list",
      role: "listbox",
      tabindex: "0",
      "aria-labelledby": "inbox-title",
      onkeydown: (e) => this.onListKey(e),
      onfocus: () => {
        if (!this.activeId && this.order.length) this.setActive(this.order[0], false);
      },
    });
    this.sentinel = el("div", { class: "list-sentinel", "aria-hidden": "true" });
    this.statusLine = el("p", { class: "list-status muted", role: "status" });
    const listPane = el(
      "section",
      { class: "list-pane", "aria-labelledby": "inbox-title" },
      el("header", { class: "list-head" }, this.listTitle, el("div", { class: "list-tools" }, this.statusSelect, this.sortSelect)),
      this.list,
    );
    this.append(this.viewsNav, listPane);
    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) this.loadMore();
      },
      { root: this.list, rootMargin: "200px" },
    );
    setInterval(() => this.tickWaiting(), 30_000);
  }

  init(ctx) {
    this.ctx = ctx;
    this.statusSelect.value = this.status;
    this.sortSelect.value = this.sort;
    this.renderViews();
    this.refreshCounts();
    this.reload();
  }

  // -- views -----------------------------------------------------------------------------------

  views() {
    const c = this.counts || {};
    const views = BASE_VIEWS.map((v) => ({ ...v, group: "", n: this.counts ? v.count(c) : undefined }));
    const byQueue = c.by_queue || {};
    const queues = directory.queues.length
      ? directory.queues
      : Object.keys(byQueue).map((id) => ({ id, name: directory.queueName(id) || t("Queue") }));
    for (const queue of queues) {
      views.push({ key: `queue:${queue.id}`, group: t("Queues"), label: queue.name, filter: { queue_id: queue.id }, n: byQueue[queue.id] });
    }
    const byChannel = c.by_channel || {};
    const channels = this.counts ? Object.keys(byChannel).filter((ch) => byChannel[ch] > 0) : CHANNELS.slice(0, 3);
    if (this.viewKey.startsWith("channel:") && !channels.includes(this.viewKey.slice(8))) channels.push(this.viewKey.slice(8));
    for (const channel of channels) {
      views.push({
        key: `channel:${channel}`,
        group: t("Channels"),
        label: channelLabel(channel),
        channel,
        filter: { channel },
        n: byChannel[channel],
      });
    }
    const byStatus = c.by_status || {};
    for (const status of STATUSES) {
      views.push({
        key: `status:${status}`,
        group: t("Status"),
        label: STATUS_LABELS[status],
        filter: { status },
        fixedStatus: true,
        n: byStatus[status],
      });
    }
    const byTag = c.by_tag || {};
    const tags = Object.keys(byTag).sort();
    if (this.viewKey.startsWith("tag:") && !tags.includes(this.viewKey.slice(4))) tags.push(this.viewKey.slice(4));
    for (const tag of tags) {
      views.push({ key: `tag:${tag}`, group: t("Tags"), label: `#${tag}`, filter: { tag }, n: byTag[tag] });
    }
    return views;
  }

  currentView() {
    return this.views().find((v) => v.key === this.viewKey) || BASE_VIEWS[0];
  }

  renderViews() {
    const groups = new Map();
    for (const view of this.views()) {
      if (!groups.has(view.group)) groups.set(view.group, []);
      groups.get(view.group).push(view);
    }
    const sections = [];
    for (const [group, views] of groups) {
      const items = views.map((view) =>
        el(
          "li",
          {},
          el(
            "button",
            {
              type: "button",
              class: "view",
              "aria-current": view.key === this.viewKey ? "true" : undefined,
              dataset: { view: view.key },
              onclick: () => this.selectView(view.key),
            },
            view.channel ? el("span", { class: `dot ch-${view.channel}`, "aria-hidden": "true" }) : null,
            el("span", { class: "view-label" }, view.label),
            view.n === undefined ? null : el("span", { class: "count" }, String(view.n)),
          ),
        ),
      );
      sections.push(
        el(
          "div",
          { class: "view-group" },
          group ? el("h3", { class: "view-group-title" }, group) : null,
          el("ul", { role: "list" }, ...items),
        ),
      );
    }
    const focused = this.viewsNav.contains(document.activeElement) ? document.activeElement.dataset.view : null;
    this.viewsNav.replaceChildren(...sections);
    if (focused) {
      const again = this.viewsNav.querySelector(`[data-view="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
    const view = this.currentView();
    this.listTitle.textContent = view.label;
    this.statusSelect.hidden = Boolean(view.fixedStatus);
  }

  selectView(key) {
    this.viewKey = key;
    this.save();
    this.renderViews();
    this.reload();
  }

  changeStatus() {
    this.status = this.statusSelect.value;
    this.save();
    this.reload();
  }

  changeSort() {
    this.sort = this.sortSelect.value;
    this.save();
    this.reload();
  }

  save() {
    storage.set("inbox", { view: this.viewKey, status: this.status, sort: this.sort });
  }

  filter() {
    const view = this.currentView();
    const filter = { ...view.filter };
    if (!view.fixedStatus && this.status) filter.status = this.status;
    return filter;
  }

  async refreshCounts() {
    try {
      this.counts = await api("GET", "/conversations/counts");
      this.renderViews();
    } catch {
      /* counts are a nicety; the list still works (and says so if the server is down) */
    }
  }

  // -- the list ---------------------------------------------------------------------------------

  async reload() {
    const generation = ++this.generation;
    this.cursor = null;
    this.done = false;
    this.rows.clear();
    this.order = [];
    this.observer.disconnect();
    this.list.replaceChildren(this.statusLine);
    this.statusLine.textContent = t("Loading…");
    const ok = await this.fetchPage(generation);
    if (generation !== this.generation || ok === false) return;
    document.body.dataset.inboxReady = "1";
  }

  async fetchPage(generation) {
    this.loading = true;
    const params = { ...this.filter(), sort: this.sort, limit: PAGE, cursor: this.cursor };
    let page;
    try {
      page = await api("GET", `/conversations${query(params)}`);
    } catch (err) {
      if (generation !== this.generation) return;
      this.loading = false;
      this.statusLine.replaceChildren(
        el("span", { class: "error" }, errorText(err)),
        " ",
        el("button", { type: "button", class: "link", onclick: () => this.reload() }, t("Retry")),
      );
      this.list.append(this.statusLine);
      return false;
    }
    this.loading = false;
    if (generation !== this.generation) return;
    for (const conversation of page.items) {
      if (this.rows.has(conversation.id)) continue;
      const node = this.renderRow(conversation);
      this.rows.set(conversation.id, { conversation, node });
      this.order.push(conversation.id);
      this.list.insertBefore(node, this.sentinel.isConnected ? this.sentinel : this.statusLine);
    }
    this.cursor = page.next_cursor;
    this.done = !page.next_cursor;
    this.renderTail();
  }

  renderTail() {
    if (!this.sentinel.isConnected) this.list.append(this.sentinel);
    if (!this.order.length) {
      this.statusLine.textContent = t("No conversations here.");
    } else {
      this.statusLine.textContent = this.done ? "" : t("Loading…");
    }
    this.list.append(this.statusLine);
    this.observer.disconnect();
    if (!this.done) this.observer.observe(this.sentinel);
  }

  async loadMore() {
    if (this.loading || this.done) return;
    await this.fetchPage(this.generation);
  }

  renderRow(conversation) {
    const name = conversation.customer_name || t("Unknown customer");
    const snippet = this.snippets.get(conversation.id) || conversation.snippet || lastMessageText(conversation);
    const subject = conversation.subject || "";
    const assignee = conversation.assignee_id
      ? directory.userName(conversation.assignee_id)
      : directory.teamName(conversation.team_id) || directory.queueName(conversation.queue_id) || t("Not assigned");
    const waiting = conversation.waiting_since
      ? el("span", { class: "row-wait", dataset: { since: conversation.waiting_since } }, this.waitingLabel(conversation.waiting_since))
      : null;
    const node = el(
      "div",
      {
        role: "option",
        id: `row-${conversation.id}`,
        class: `row ch-edge-${conversation.channel}`,
        "aria-selected": conversation.id === this.activeId ? "true" : "false",
        dataset: { id: conversation.id },
        onclick: () => {
          this.setActive(conversation.id);
          this.ctx.open(conversation.id);
        },
      },
      el(
        "div",
        { class: "row-top" },
        el("span", { class: "row-name" }, name),
        el("time", { class: "row-time", datetime: sortKey(conversation) }, compactDate(sortKey(conversation))),
      ),
      el(
        "div",
        { class: "row-mid" },
        channelBadge(conversation.channel),
        priorityBadge(conversation.priority),
        conversation.status !== "open" ? statusBadge(conversation.status) : null,
        el("span", { class: subject || snippet ? "row-subject" : "row-subject muted" }, subject || snippet || t("No subject")),
      ),
      subject && snippet ? el("div", { class: "row-snippet" }, snippet) : null,
      el(
        "div",
        { class: "row-bottom" },
        waiting,
        el("span", { class: "row-assignee" }, assignee),
        (conversation.tags || []).length ? el("span", { class: "row-tags" }, conversation.tags.map((x) => `#${x}`).join(" ")) : null,
      ),
    );
    if (conversation.id === this.openedId) node.classList.add("opened");
    return node;
  }

  waitingLabel(since) {
    return t("Waiting {time}", { time: shortDuration((Date.now() - new Date(since).getTime()) / 1000) });
  }

  tickWaiting() {
    for (const node of this.list.querySelectorAll(".row-wait")) {
      node.textContent = this.waitingLabel(node.dataset.since);
    }
  }

  // -- live updates -------------------------------------------------------------------------------

  /** A fresh copy of a conversation (from an event or a fetch): insert, move, update or remove its row. */
  onConversation(conversation) {
    const current = this.rows.get(conversation.id);
    if (current && Date.parse(conversation.updated_at) < Date.parse(current.conversation.updated_at)) {
      return; // an older copy arrived late
    }
    const fits = matchesFilter(conversation, this.filter());
    if (!fits) {
      if (current) this.removeRow(conversation.id);
      return;
    }
    if (current) {
      const node = this.renderRow(conversation);
      current.node.replaceWith(node);
      current.node = node;
      current.conversation = conversation;
      this.reposition(conversation.id);
      return;
    }
    // Not in the list: insert where it sorts, unless that is past the pages loaded so far.
    const index = this.order.findIndex((id) => compare(this.sort, conversation, this.rows.get(id).conversation) < 0);
    if (index === -1 && !this.done) return;
    const node = this.renderRow(conversation);
    this.rows.set(conversation.id, { conversation, node });
    if (index === -1) {
      this.order.push(conversation.id);
      this.list.insertBefore(node, this.sentinel);
    } else {
      this.list.insertBefore(node, this.rows.get(this.order[index]).node);
      this.order.splice(index, 0, conversation.id);
    }
    node.classList.add("fresh");
    setTimeout(() => node.classList.remove("fresh"), 1500);
    this.renderTail();
  }

  reposition(id) {
    const entry = this.rows.get(id);
    const at = this.order.indexOf(id);
    this.order.splice(at, 1);
    let index = this.order.findIndex((other) => compare(this.sort, entry.conversation, this.rows.get(other).conversation) < 0);
    if (index === -1) index = this.order.length;
    if (index === at) {
      this.order.splice(at, 0, id);
      return;
    }
    if (index === this.order.length && !this.done) {
      this.rows.delete(id);
      entry.node.remove();
      return; // now sorts after the loaded pages: it will come with a later page
    }
    this.order.splice(index, 0, id);
    const before = index + 1 < this.order.length ? this.rows.get(this.order[index + 1]).node : this.sentinel;
    const hadFocus = entry.node.contains(document.activeElement);
    this.list.insertBefore(entry.node, before);
    if (hadFocus) entry.node.focus();
  }

  removeRow(id) {
    const entry = this.rows.get(id);
    if (!entry) return;
    const at = this.order.indexOf(id);
    this.order.splice(at, 1);
    this.rows.delete(id);
    entry.node.remove();
    if (this.activeId === id) {
      const next = this.order[Math.min(at, this.order.length - 1)];
      this.activeId = null;
      if (next) this.setActive(next, false);
    }
    this.renderTail();
  }

  /** A message event: refresh that conversation's row (coalescing the copies each topic delivers). */
  onMessageEvent(data) {
    const id = data.conversation_id;
    if (!id) return;
    const text = data.message ? messageText(data.message) : data.preview;
    const direction = data.message ? data.message.direction : data.direction;
    if (text && direction !== "note") this.snippets.set(id, String(text).slice(0, 160));
    this.fetchSoon(id);
    if (data.new_conversation || data.reopened) this.refreshCountsSoon();
  }

  fetchSoon(id) {
    if (this.pendingFetch.has(id)) return;
    this.pendingFetch.set(
      id,
      setTimeout(async () => {
        this.pendingFetch.delete(id);
        try {
          this.onConversation(await api("GET", `/conversations/${id}`));
        } catch {
          /* gone or not visible */
        }
      }, 250),
    );
  }

  // -- keyboard ---------------------------------------------------------------------------------

  setActive(id, scroll = true) {
    if (this.activeId && this.rows.has(this.activeId)) this.rows.get(this.activeId).node.setAttribute("aria-selected", "false");
    this.activeId = id;
    const entry = this.rows.get(id);
    if (!entry) return;
    entry.node.setAttribute("aria-selected", "true");
    this.list.setAttribute("aria-activedescendant", entry.node.id);
    if (scroll) entry.node.scrollIntoView({ block: "nearest" });
  }

  setOpened(id) {
    this.openedId = id;
    for (const node of this.list.querySelectorAll(".row.opened")) node.classList.remove("opened");
    if (id && this.rows.has(id)) this.rows.get(id).node.classList.add("opened");
  }

  move(delta) {
    if (!this.order.length) return;
    if (document.activeElement !== this.list) this.list.focus({ preventScroll: true });
    let index = this.order.indexOf(this.activeId);
    index = index === -1 ? 0 : Math.max(0, Math.min(this.order.length - 1, index + delta));
    this.setActive(this.order[index]);
    if (index >= this.order.length - 3) this.loadMore();
  }

  openActive() {
    if (this.activeId) this.ctx.open(this.activeId);
  }

  focusList() {
    this.list.focus();
  }

  onListKey(event) {
    if (event.key === "ArrowDown") {
      this.move(1);
      event.preventDefault();
    } else if (event.key === "ArrowUp") {
      this.move(-1);
      event.preventDefault();
    } else if (event.key === "Home") {
      if (this.order.length) this.setActive(this.order[0]);
      event.preventDefault();
    } else if (event.key === "End") {
      if (this.order.length) this.setActive(this.order[this.order.length - 1]);
      event.preventDefault();
    } else if (event.key === "Enter" || event.key === " ") {
      this.openActive();
      event.preventDefault();
      event.stopPropagation();
    }
  }
}

customElements.define("fd-inbox", InboxElement);
