// The agent desktop (/desk): inbox views and list on the left, conversations in tabs in the
// centre, the customer on the right. This module wires the parts to the socket and the keyboard.
import { t } from "./lib/boot.js";
import { startShell } from "./lib/shell.js";
import { directory } from "./desk/directory.js";
import "./desk/inbox.js";
import { Offers, Presence, notify } from "./desk/presence.js";
import { ProfileMenu } from "./desk/profile.js";
import { Search } from "./desk/search.js";
import { Tabs } from "./desk/tabs.js";
import { isEditable, me } from "./desk/util.js";

const { socket } = startShell({ desk: true });
const $ = (id) => document.getElementById(id);

const recentLocal = new Map(); // conversation id → when this tab last changed it (no self-notifications)
const notified = new Set();

const ctx = {
  socket,
  inbox: $("inbox"),
  open: (id) => tabs.openTab(id),
  isActive: (id) => tabs.active === id,
  markLocal: (id) => recentLocal.set(id, Date.now()),
  onLabel: (id, conversation) => tabs.setLabel(id, conversation),
};

const tabs = new Tabs(ctx, $("tabs"), $("panels"), $("desk-empty"));
const presence = new Presence($("presence"));
const offers = new Offers($("offers"), ctx);
const search = new Search($("desk-search"), $("search-input"), $("search-results"), ctx);
new ProfileMenu($("profile"));

function byLocalChange(id) {
  const at = recentLocal.get(id);
  return at !== undefined && Date.now() - at < 5000;
}

// -- socket events --------------------------------------------------------------------------------

function onConversationUpdated(data) {
  const conversation = data.conversation;
  if (!conversation) return;
  ctx.inbox.onConversation(conversation);
  const panel = tabs.panel(conversation.id);
  if (panel) panel.update(conversation);
  ctx.inbox.refreshCountsSoon();
  const changes = data.changes || [];
  const key = `${conversation.id}:${conversation.updated_at}`;
  if (changes.includes("assignee_id") && conversation.assignee_id === me.id && !byLocalChange(conversation.id) && !notified.has(key)) {
    notified.add(key);
    notify(t("Assigned to you"), conversation.customer_name || conversation.subject || "", () => ctx.open(conversation.id));
  }
}

function onMessageCreated(data) {
  const id = data.conversation_id;
  ctx.inbox.onMessageEvent(data);
  const panel = tabs.panel(id);
  if (panel) {
    panel.onMessage(data);
    const direction = data.message ? data.message.direction : data.direction;
    if (direction === "in") tabs.markUnread(id);
  }
  const customerId = data.customer_id || (data.message && data.message.customer_id);
  for (const other of tabs.all()) {
    if (other.conversation && other.conversationId !== id && other.conversation.customer_id === customerId) other.onForeign(data);
  }
}

socket.addEventListener("event", (e) => {
  const ev = e.detail;
  const data = ev.data || {};
  switch (ev.type) {
    case "conversation.updated":
      onConversationUpdated(data);
      break;
    case "conversation.message_created":
      onMessageCreated(data);
      break;
    case "conversation.message_updated": {
      const panel = tabs.panel(data.conversation_id);
      if (panel) panel.onMessageUpdated(data);
      break;
    }
    case "conversation.typing": {
      const id = data.conversation_id || (ev.topic.startsWith("conversation:") ? ev.topic.slice(13) : null);
      const panel = id && tabs.panel(id);
      if (panel) panel.onTyping(data);
      break;
    }
    case "conversation.mentioned": {
      const key = `mention:${data.message_id}`;
      if (notified.has(key)) break;
      notified.add(key);
      const by = (data.by && data.by.name) || t("A teammate");
      notify(t("{name} mentioned you", { name: by }), data.excerpt || "", () => ctx.open(data.conversation_id));
      break;
    }
    case "routing.offer":
      offers.show(data);
      break;
    case "routing.offer_withdrawn":
      offers.withdraw(data);
      break;
    case "agent.presence":
      if (data.user_id === me.id) presence.onEvent(data);
      break;
    default:
      break;
  }
});

socket.addEventListener("snapshot", (e) => {
  const topic = e.detail.topic;
  if (topic === "desk" || topic === `user:${me.id}`) {
    ctx.inbox.reload();
    ctx.inbox.refreshCounts();
  } else if (topic.startsWith("conversation:")) {
    const panel = tabs.panel(topic.slice(13));
    if (panel) panel.reloadThread();
  }
});

// -- keyboard -------------------------------------------------------------------------------------

const shortcuts = $("shortcuts-dialog");
$("shortcuts-button").addEventListener("click", () => shortcuts.showModal());

document.addEventListener("keydown", (e) => {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  if (isEditable(e.target) || document.querySelector("dialog[open]")) return;
  const current = tabs.current();
  const interactive = e.target instanceof Element && e.target.closest("button, a, summary, [role='tab'], [role='listbox']");
  const actions = {
    "/": () => search.focus(),
    "?": () => shortcuts.showModal(),
    j: () => ctx.inbox.move(1),
    k: () => ctx.inbox.move(-1),
    i: () => ctx.inbox.focusList(),
    "[": () => tabs.cycle(-1),
    "]": () => tabs.cycle(1),
    x: () => tabs.active && tabs.close(tabs.active),
    r: () => current && current.focusComposer("reply"),
    n: () => current && current.focusComposer("note"),
    e: () => current && current.resolve(),
    s: () => current && current.snoozeButton && current.openSnooze(),
    a: () => current && current.conversation && current.openAssign(),
    t: () => current && current.focusTag(),
    Enter: () => (interactive ? null : ctx.inbox.openActive()),
  };
  const action = actions[e.key];
  if (!action) return;
  if (e.key === "Enter" && interactive) return;
  e.preventDefault();
  action();
});

// -- start ----------------------------------------------------------------------------------------

async function start() {
  await directory.load().catch(() => {});
  ctx.inbox.init(ctx);
  tabs.restore();
  await presence.load();
  offers.restore();
}

socket.addEventListener("hello", () => ctx.inbox.refreshCountsSoon && ctx.inbox.refreshCountsSoon());
start();
