// The conversation's thread, merged with the customer's whole cross-channel timeline.
//
// Two streams are read newest-first, one page at a time: this conversation's messages and notes
// (GET /conversations/{id}/messages?order=desc) and the customer's timeline (GET
// /customers/{id}/timeline: other conversations on every channel, calls, events). Items are shown
// down to the oldest point both streams have loaded without a gap, so the merge never shows an
// older item above a missing newer one. Older pages load on scroll-up ("Load earlier"); only
// loaded pages are in the DOM, so a conversation with thousands of messages opens as fast as one
// with ten.
import { api, query } from "../lib/api.js";
import { boot, t, timeZone } from "../lib/boot.js";
import { el } from "../lib/shell.js";
import { formatDateTime, formatShort } from "../lib/time.js";
import { directory } from "./directory.js";
import { DELIVERY_LABELS, channelBadge, errorText, formatSize, me } from "./util.js";

const PAGE = 50;
const TIMELINE_PAGES_PER_STEP = 4;

const ms = (iso) => (iso ? Date.parse(iso) : 0);
const dayFormat = new Intl.DateTimeFormat(boot.lang === "ru" ? "ru-RU" : "en-GB", { dateStyle: "full", timeZone });
const dayKey = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });

/** An inbound email whose From address was not proven (no DMARC pass): a visible mark. */
function senderMark(auth) {
  if (!auth || auth.authenticated) return null;
  let title = t("The sender's address is not proven: DMARC {dmarc}, SPF {spf}, DKIM {dkim}.", {
    dmarc: auth.dmarc,
    spf: auth.spf,
    dkim: auth.dkim,
  });
  if (auth.sender && auth.sender.outcome === "kept_apart") {
    title += " " + t("Another customer holds this address verified; see the merge suggestion before trusting it.");
  }
  return el("span", { class: "auth-mark", title, role: "note" }, t("Unverified sender"));
}

/** What an agent reads under an outbound message: never why delivery failed (admins can ask). */
function deliveryText(m) {
  if (m.delivery_status === "failed") return t("Delivery failed");
  if (m.delivery_status === "caught") {
    return t("Not sent: no mail relay is configured, so this e-mail was kept in the local outbox (Admin → Mail outbox). The customer has not received it.");
  }
  return DELIVERY_LABELS[m.delivery_status] || m.delivery_status;
}

/** Admins: a button that fetches and shows why the delivery failed. */
function deliveryDetails(m) {
  const out = el("span", { class: "ds-detail", role: "status" });
  const button = el("button", { type: "button", class: "link" }, t("Why?"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const d = await api("GET", `/messages/${m.id}/delivery`);
      out.textContent = d.error_detail || t("No details were recorded.");
      button.remove();
    } catch (err) {
      out.textContent = errorText(err);
      button.disabled = false;
    }
  });
  return el("span", { class: "ds-why" }, button, out);
}

export class Thread {
  /** `host` gives: conversation (current), customerName(), open(id). */
  constructor(host) {
    this.host = host;
    this.messages = new Map(); // id → MessageOut
    this.foreign = new Map(); // id → TimelineItem (other conversations, events)
    this.early = new Map(); // message id → a delivery update that arrived before the message
    this.nodes = new Map(); // key → DOM node
    this.convCursor = null;
    this.convDone = false;
    this.convOldest = Infinity;
    this.tlLoaded = false;
    this.tlCursor = null;
    this.tlDone = false;
    this.tlOldest = Infinity;
    this.shown = Infinity;
    this.busy = false;
    this.earlierButton = el("button", { type: "button", class: "secondary small", onclick: () => this.loadEarlier() }, t("Load earlier"));
    this.startNote = el("p", { class: "muted thread-start" }, t("Start of the customer's history"));
    this.top = el("div", { class: "thread-top" }, this.earlierButton);
    this.items = el("div", { class: "thread-items" });
    this.root = el(
      "div",
      { class: "thread", role: "log", tabindex: "0", "aria-label": t("Conversation history") },
      this.top,
      this.items,
    );
    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting) && this.started) this.loadEarlier();
      },
      { root: this.root, rootMargin: "150px 0px 0px 0px" },
    );
  }

  get conversation() {
    return this.host.conversation;
  }

  /** Load and render the newest page; resolves when the newest messages are on screen. */
  async start() {
    const timeline = this.fetchTimelinePage().catch(() => {
      this.tlDone = true;
    });
    await this.fetchConversationPage();
    this.recomputeShown();
    this.render("bottom");
    this.started = true;
    timeline.then(async () => {
      await this.coverTimeline();
      this.recomputeShown();
      this.render("keep");
      this.observer.observe(this.top);
    });
  }

  async fetchConversationPage() {
    const page = await api(
      "GET",
      `/conversations/${this.conversation.id}/messages${query({ order: "desc", limit: PAGE, before: this.convCursor })}`,
    );
    for (const message of page.items) {
      this.messages.set(message.id, message);
      this.convOldest = Math.min(this.convOldest, ms(message.created_at));
    }
    this.convCursor = page.next_cursor;
    this.convDone = !page.next_cursor;
  }

  async fetchTimelinePage() {
    const page = await api(
      "GET",
      `/customers/${this.conversation.customer_id}/timeline${query({ order: "desc", limit: PAGE, cursor: this.tlCursor })}`,
    );
    for (const item of page.items) {
      this.tlOldest = Math.min(this.tlOldest, ms(item.at));
      if (item.conversation_id === this.conversation.id && item.kind !== "event") continue; // shown in full
      this.foreign.set(item.id, item);
    }
    this.tlLoaded = true;
    this.tlCursor = page.next_cursor;
    this.tlDone = !page.next_cursor;
  }

  /** Read timeline pages until they reach as far back as the conversation's loaded messages. */
  async coverTimeline() {
    const target = this.convDone ? -Infinity : this.convOldest;
    for (let i = 0; i < TIMELINE_PAGES_PER_STEP && !this.tlDone && this.tlOldest > target; i++) {
      await this.fetchTimelinePage();
      if (this.convDone) break; // only the conversation's start is needed; one page of older history
    }
  }

  recomputeShown() {
    let threshold = -Infinity;
    if (!this.convDone) threshold = Math.max(threshold, this.convOldest);
    if (this.tlLoaded && !this.tlDone) threshold = Math.max(threshold, this.tlOldest);
    this.shown = Math.min(this.shown, threshold);
  }

  async loadEarlier() {
    if (this.busy || (this.convDone && this.tlDone)) return;
    this.busy = true;
    this.earlierButton.disabled = true;
    this.earlierButton.textContent = t("Loading…");
    try {
      if (!this.convDone) await this.fetchConversationPage();
      else if (!this.tlDone) await this.fetchTimelinePage();
      if (this.tlLoaded) await this.coverTimeline();
      this.recomputeShown();
      this.render("keep");
    } catch (err) {
      this.top.append(el("p", { class: "error" }, errorText(err)));
    } finally {
      this.busy = false;
      this.earlierButton.disabled = false;
      this.earlierButton.textContent = t("Load earlier");
    }
  }

  // -- live changes -------------------------------------------------------------------------------

  addMessage(message) {
    if (message.conversation_id !== this.conversation.id) return false;
    const current = this.messages.get(message.id);
    let merged = current ? { ...current, ...message } : { ...message };
    // The HTTP answer, the socket's copy and delivery updates race: the newest status wins.
    const later = this.early.get(message.id);
    this.early.delete(message.id);
    for (const candidate of [current, later]) {
      if (candidate && candidate.delivery_status && ms(candidate.status_at) > ms(merged.status_at)) {
        merged = { ...merged, delivery_status: candidate.delivery_status, status_at: candidate.status_at, error: candidate.error ?? null };
      }
    }
    this.messages.set(message.id, merged);
    this.nodes.delete(message.id);
    this.render(current ? "keep" : "append");
    return !current;
  }

  updateMessage(partial) {
    const current = this.messages.get(partial.id);
    if (!current) {
      this.early.set(partial.id, partial); // the update beat the message here
      return;
    }
    if (ms(partial.status_at) < ms(current.status_at)) return;
    this.messages.set(partial.id, { ...current, ...partial });
    const node = this.nodes.get(partial.id);
    if (node) {
      const fresh = this.renderMessage(this.messages.get(partial.id));
      node.replaceWith(fresh);
      this.nodes.set(partial.id, fresh);
    }
  }

  /** Another conversation of the same customer got a message (from a desk event). */
  addForeign(data) {
    const id = data.message_id || (data.message && data.message.id);
    if (!id || this.foreign.has(id)) return;
    const message = data.message || {};
    this.foreign.set(id, {
      kind: (data.direction || message.direction) === "note" ? "note" : "message",
      id,
      at: data.created_at || message.created_at,
      channel: data.channel || message.channel,
      direction: data.direction || message.direction,
      conversation_id: data.conversation_id,
      text: data.preview || message.text || "",
      author_type: data.author_type || message.author_type,
      author_id: message.author_id || null,
    });
    this.render("append");
  }

  /** Newest inbound web-chat message (for the read receipt). */
  newestInbound() {
    let best = null;
    for (const m of this.messages.values()) {
      if (m.direction === "in" && (!best || ms(m.created_at) >= ms(best.created_at))) best = m;
    }
    return best;
  }

  // -- rendering ----------------------------------------------------------------------------------

  visibleEntries() {
    const entries = [];
    for (const m of this.messages.values()) {
      if (ms(m.created_at) >= this.shown) entries.push({ key: m.id, at: ms(m.created_at), iso: m.created_at, message: m });
    }
    for (const item of this.foreign.values()) {
      if (ms(item.at) >= this.shown) entries.push({ key: item.id, at: ms(item.at), iso: item.at, item });
    }
    entries.sort((a, b) => a.at - b.at || (a.key < b.key ? -1 : 1));
    return entries;
  }

  /** mode: "bottom" (scroll to the newest), "append" (follow if at the bottom), "keep" (hold position). */
  render(mode) {
    const root = this.root;
    const fromBottom = root.scrollHeight - root.scrollTop;
    const atBottom = root.scrollHeight - root.scrollTop - root.clientHeight < 80;
    const children = [];
    let lastDay = null;
    for (const entry of this.visibleEntries()) {
      const day = dayKey.format(new Date(entry.at));
      if (day !== lastDay) {
        lastDay = day;
        const key = `day:${day}`;
        if (!this.nodes.has(key)) {
          this.nodes.set(key, el("div", { class: "day-divider", role: "separator" }, el("span", {}, dayFormat.format(new Date(entry.at)))));
        }
        children.push(this.nodes.get(key));
      }
      let node = this.nodes.get(entry.key);
      if (!node) {
        node = entry.message ? this.renderMessage(entry.message) : this.renderForeign(entry.item);
        this.nodes.set(entry.key, node);
      }
      children.push(node);
    }
    // A run of items from the same other conversation gets one "Open conversation" link.
    let previous = null;
    for (const node of children) {
      if (node.classList.contains("tl-foreign")) {
        node.classList.toggle("continued", Boolean(previous && previous.dataset.conversation === node.dataset.conversation));
        previous = node;
      } else if (!node.classList.contains("day-divider")) {
        previous = null;
      }
    }
    this.items.replaceChildren(...children);
    const more = !(this.convDone && this.tlDone);
    this.top.replaceChildren(more ? this.earlierButton : this.startNote);
    if (mode === "bottom" || (mode === "append" && atBottom)) root.scrollTop = root.scrollHeight;
    else if (mode === "keep") root.scrollTop = root.scrollHeight - fromBottom;
  }

  authorName(m) {
    if (m.author_type === "customer") return this.host.customerName();
    if (m.author_type === "agent") return m.author_id ? directory.userName(m.author_id) : t("Agent");
    if (m.author_type === "bot") return t("Virtual agent");
    return t("System");
  }

  renderMessage(m) {
    const kind = m.direction === "note" ? "note" : m.direction === "in" ? "in" : "out";
    const meta = el(
      "header",
      { class: "msg-meta" },
      el("span", { class: "msg-author" }, this.authorName(m)),
      kind === "note" ? el("span", { class: "note-label" }, t("Internal note")) : channelBadge(m.channel),
      kind === "in" ? senderMark(m.auth) : null,
      el("time", { datetime: m.created_at, title: formatDateTime(m.created_at) }, formatShort(m.created_at)),
    );
    const body =
      m.text || m.html || (m.attachments || []).length
        ? el("div", { class: "msg-body" }, m.text || "")
        : el("div", { class: "msg-body muted" }, t("(no text)"));
    const files = (m.attachments || []).length
      ? el(
          "ul",
          { class: "msg-files", "aria-label": t("Attachments") },
          ...m.attachments.map((a) =>
            el(
              "li",
              {},
              el("a", { href: `/api/v1/attachments/${a.id}`, download: a.filename, class: "file-link" }, a.filename),
              el("span", { class: "muted" }, ` ${formatSize(a.size)}`),
            ),
          ),
        )
      : null;
    let status = null;
    if (kind === "out") {
      status = el(
        "footer",
        { class: `msg-status ds-${m.delivery_status}` },
        el("span", { class: "ds-dot", "aria-hidden": "true" }),
        deliveryText(m),
        m.delivery_status === "failed" && me.role === "admin" ? deliveryDetails(m) : null,
      );
    }
    return el(
      "article",
      {
        class: `msg ${kind} author-${m.author_type}`,
        dataset: { id: m.id, channel: m.channel },
        "aria-label": kind === "note" ? t("Internal note") : undefined,
      },
      meta,
      body,
      files,
      status,
    );
  }

  renderForeign(item) {
    if (item.kind === "event") {
      return el(
        "div",
        { class: "tl-event", dataset: { id: item.id } },
        el("span", { class: "tl-event-type" }, item.event_type || t("Event")),
        item.summary ? el("span", { class: "tl-event-summary" }, item.summary) : null,
        el("time", { datetime: item.at, title: formatDateTime(item.at) }, formatShort(item.at)),
      );
    }
    const note = item.direction === "note";
    const who = item.direction === "in" ? this.host.customerName() : this.authorName(item);
    return el(
      "article",
      {
        class: `tl-foreign ${item.direction === "in" ? "in" : note ? "note" : "out"} ch-edge-${item.channel}`,
        dataset: { id: item.id, channel: item.channel || "", conversation: item.conversation_id || "" },
      },
      el(
        "header",
        { class: "msg-meta" },
        channelBadge(item.channel),
        el("span", { class: "msg-author" }, who),
        note ? el("span", { class: "note-label" }, t("Internal note")) : null,
        el("time", { datetime: item.at, title: formatDateTime(item.at) }, formatShort(item.at)),
        item.conversation_id
          ? el(
              "button",
              { type: "button", class: "link small open-other", onclick: () => this.host.open(item.conversation_id) },
              t("Open conversation"),
            )
          : null,
      ),
      item.text || item.summary ? el("div", { class: "msg-body" }, item.text || item.summary) : el("div", { class: "msg-body muted" }, t("(no text)")),
    );
  }

  destroy() {
    this.observer.disconnect();
  }
}
