// The composer: reply (in the conversation's channel or another one the customer can be reached
// on) or internal note with @mentions; canned responses ("/" + shortcut, or the picker) rendered by
// the server with the conversation's variables; attachments; a draft per conversation that
// survives a reload; a throttled typing indicator for the customer's widget.
import { api } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";
import { directory } from "./directory.js";
import { channelLabel, errorText, formatSize, storage } from "./util.js";

const TYPING_EVERY_MS = 3000;
const TYPING_IDLE_MS = 4000;
let composerCount = 0;

/** Channels a reply can go out on: the conversation's own (a call is not answered in writing: not
 * voice), then what the customer's identities allow. */
export function replyChannels(conversation, customer) {
  const own = conversation.channel === "voice" ? [] : [conversation.channel];
  const options = own.map((channel) => ({ channel, detail: "" }));
  const seen = new Set(own);
  for (const identity of (customer && customer.identities) || []) {
    if (identity.undeliverable) continue;
    const channel = { email: "email", webchat_visitor: "webchat", phone: "sms" }[identity.kind];
    if (!channel) continue;
    if (seen.has(channel)) {
      const known = options.find((o) => o.channel === channel);
      if (known && !known.detail && channel !== "webchat") known.detail = identity.value;
      continue;
    }
    seen.add(channel);
    options.push({ channel, detail: channel === "webchat" ? "" : identity.value });
  }
  return options;
}

export class Composer {
  /** host: conversation, customer, socket, onSent(message) */
  constructor(host) {
    this.host = host;
    this.id = ++composerCount;
    this.mode = "reply";
    this.attachments = []; // {key, file, id|null, state}
    this.typingOn = false;
    this.typingSentAt = 0;
    this.typingIdle = null;
    this.suggest = { open: false, items: [], index: 0, token: null };
    this.build();
    this.restoreDraft();
  }

  get conversation() {
    return this.host.conversation;
  }

  build() {
    const textId = `composer-text-${this.id}`;
    this.replyButton = el("button", { type: "button", class: "mode", "aria-pressed": "true", onclick: () => this.setMode("reply", true) }, t("Reply"));
    this.noteButton = el("button", { type: "button", class: "mode", "aria-pressed": "false", onclick: () => this.setMode("note", true) }, t("Note"));
    this.channelSelect = el("select", { class: "compact", "aria-label": t("Reply via"), onchange: () => this.saveDraft() });
    this.channelWrap = el("label", { class: "reply-via" }, el("span", {}, t("Via")), this.channelSelect);
    this.text = el("textarea", {
      id: textId,
      rows: "3",
      class: "composer-text",
      "aria-label": t("Message"),
      "aria-autocomplete": "list",
      "aria-expanded": "false",
      oninput: () => this.onInput(),
      onkeydown: (e) => this.onKey(e),
      onblur: () => {
        this.typing(false);
        setTimeout(() => {
          if (document.activeElement !== this.text) this.closeSuggest();
        }, 150);
      },
    });
    this.suggestList = el("ul", { class: "suggest", role: "listbox", id: `suggest-${this.id}`, "aria-label": t("Suggestions"), hidden: true });
    this.text.setAttribute("aria-controls", this.suggestList.id);
    this.chips = el("ul", { class: "chips", "aria-label": t("Attachments") });
    this.fileInput = el("input", { type: "file", multiple: true, class: "visually-hidden", tabindex: "-1", "aria-hidden": "true", onchange: () => this.onFiles() });
    this.attachButton = el("button", { type: "button", class: "secondary small", onclick: () => this.fileInput.click() }, t("Attach file"));
    this.cannedButton = el(
      "button",
      { type: "button", class: "secondary small", "aria-haspopup": "listbox", onclick: () => this.openCannedPicker() },
      t("Canned responses"),
    );
    this.sendButton = el("button", { type: "submit", class: "send" }, t("Send"));
    this.hint = el("span", { class: "hint muted" }, t("Ctrl+Enter to send"));
    this.root = el(
      "form",
      {
        class: "composer mode-reply",
        "aria-label": t("Composer"),
        onsubmit: (e) => {
          e.preventDefault();
          this.send();
        },
      },
      el("div", { class: "composer-top" }, el("div", { class: "modes", role: "group", "aria-label": t("Message type") }, this.replyButton, this.noteButton), this.channelWrap),
      el("div", { class: "composer-box" }, this.text, this.suggestList),
      this.chips,
      el("div", { class: "composer-actions" }, this.attachButton, this.fileInput, this.cannedButton, el("span", { class: "spacer" }), this.hint, this.sendButton),
    );
    this.updatePlaceholder();
  }

  /** Fill the channel picker once the customer's identities are known. */
  setCustomer(customer) {
    const options = replyChannels(this.conversation, customer);
    const draft = storage.get(`draft:${this.conversation.id}`) || {};
    const wanted = this.channelSelect.value || draft.channel || this.conversation.channel;
    this.channelSelect.replaceChildren(
      ...options.map((o) => el("option", { value: o.channel }, o.detail ? `${channelLabel(o.channel)} · ${o.detail}` : channelLabel(o.channel))),
    );
    // Without a written channel (a call from an unknown number) the server explains on send.
    this.channelSelect.value = options.some((o) => o.channel === wanted) ? wanted : options[0] ? options[0].channel : "";
    this.channelWrap.hidden = this.mode !== "reply";
  }

  setMode(mode, focus = false) {
    this.mode = mode;
    this.root.classList.toggle("mode-note", mode === "note");
    this.root.classList.toggle("mode-reply", mode === "reply");
    this.replyButton.setAttribute("aria-pressed", String(mode === "reply"));
    this.noteButton.setAttribute("aria-pressed", String(mode === "note"));
    this.channelWrap.hidden = mode !== "reply";
    this.sendButton.textContent = mode === "note" ? t("Add note") : t("Send");
    this.updatePlaceholder();
    if (mode === "note") this.typing(false);
    this.saveDraft();
    if (focus) this.text.focus();
  }

  updatePlaceholder() {
    const canned = ` ${t("Type / for canned responses.")}`;
    this.text.placeholder =
      this.mode === "note" ? t("Internal note — only your team sees it. Type @ to mention someone.") : t("Reply to the customer…") + canned;
  }

  focus(mode) {
    if (mode) this.setMode(mode);
    this.text.focus();
  }

  // -- drafts -----------------------------------------------------------------------------------

  restoreDraft() {
    const draft = storage.get(`draft:${this.conversation.id}`);
    if (!draft) return;
    this.text.value = draft.text || "";
    if (draft.mode === "note") this.setMode("note");
  }

  saveDraft() {
    const key = `draft:${this.conversation.id}`;
    const text = this.text.value;
    if (!text && this.mode === "reply") storage.set(key, null);
    else storage.set(key, { text, mode: this.mode, channel: this.channelSelect.value || null, at: Date.now() });
  }

  // -- typing -----------------------------------------------------------------------------------

  typing(on) {
    const socket = this.host.socket;
    if (!socket) return;
    clearTimeout(this.typingIdle);
    if (on) {
      const now = Date.now();
      if (!this.typingOn || now - this.typingSentAt > TYPING_EVERY_MS) {
        socket.send({ type: "typing", conversation_id: this.conversation.id, on: true });
        this.typingSentAt = now;
        this.typingOn = true;
      }
      this.typingIdle = setTimeout(() => this.typing(false), TYPING_IDLE_MS);
    } else if (this.typingOn) {
      socket.send({ type: "typing", conversation_id: this.conversation.id, on: false });
      this.typingOn = false;
    }
  }

  onInput() {
    this.saveDraft();
    if (this.mode === "reply" && this.text.value.trim()) this.typing(true);
    else this.typing(false);
    this.updateSuggest();
  }

  // -- suggestions: "/" canned responses, "@" mentions -----------------------------------------------

  tokenAtCaret() {
    const upto = this.text.value.slice(0, this.text.selectionStart);
    const match = /(^|\s)([@/])([\p{L}\p{N}_.\-]*)$/u.exec(upto);
    if (!match) return null;
    return { sigil: match[2], query: match[3], start: upto.length - match[3].length - 1, end: upto.length };
  }

  async updateSuggest() {
    const token = this.tokenAtCaret();
    if (!token) return this.closeSuggest();
    if (token.sigil === "@") {
      if (this.mode !== "note") return this.closeSuggest();
      const q = token.query.toLowerCase();
      const items = directory.users
        .filter((u) => directory.handle(u).toLowerCase().startsWith(q) || u.name.toLowerCase().includes(q))
        .slice(0, 8)
        .map((u) => ({ kind: "mention", user: u, label: u.name, detail: `@${directory.handle(u)}` }));
      return this.showSuggest(token, items);
    }
    const asked = this.text.value;
    let list;
    try {
      list = await api("GET", `/canned-responses?q=${encodeURIComponent(token.query)}`);
    } catch (err) {
      toast(errorText(err), "error");
      return this.closeSuggest();
    }
    if (this.text.value !== asked) return; // typed on meanwhile; a newer lookup follows
    const items = (Array.isArray(list) ? list : list.items || []).slice(0, 8).map((c) => ({
      kind: "canned",
      canned: c,
      label: `/${c.shortcut}`,
      detail: c.title || "",
    }));
    this.showSuggest(token, items);
  }

  async openCannedPicker() {
    let list;
    try {
      list = await api("GET", "/canned-responses");
    } catch (err) {
      toast(errorText(err), "error");
      return;
    }
    const caret = this.text.selectionStart ?? this.text.value.length;
    const items = (Array.isArray(list) ? list : list.items || []).map((c) => ({ kind: "canned", canned: c, label: `/${c.shortcut}`, detail: c.title || "" }));
    if (!items.length) {
      toast(t("No canned responses yet."));
      return;
    }
    this.text.focus();
    this.showSuggest({ sigil: "", query: "", start: caret, end: caret }, items);
  }

  showSuggest(token, items) {
    if (!items.length) return this.closeSuggest();
    this.suggest = { open: true, items, index: 0, token };
    this.suggestList.replaceChildren(
      ...items.map((item, i) =>
        el(
          "li",
          {
            role: "option",
            id: `suggest-${this.id}-${i}`,
            "aria-selected": i === 0 ? "true" : "false",
            onmousedown: (e) => {
              e.preventDefault();
              this.choose(i);
            },
          },
          el("span", { class: "suggest-label" }, item.label),
          item.detail ? el("span", { class: "suggest-detail muted" }, item.detail) : null,
        ),
      ),
    );
    this.suggestList.hidden = false;
    this.text.setAttribute("aria-expanded", "true");
    this.text.setAttribute("aria-activedescendant", `suggest-${this.id}-0`);
  }

  closeSuggest() {
    this.suggest.open = false;
    this.suggestList.hidden = true;
    this.text.setAttribute("aria-expanded", "false");
    this.text.removeAttribute("aria-activedescendant");
  }

  moveSuggest(delta) {
    const { items } = this.suggest;
    this.suggest.index = (this.suggest.index + delta + items.length) % items.length;
    [...this.suggestList.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === this.suggest.index)));
    this.text.setAttribute("aria-activedescendant", `suggest-${this.id}-${this.suggest.index}`);
    this.suggestList.children[this.suggest.index].scrollIntoView({ block: "nearest" });
  }

  replaceToken(token, insert) {
    const value = this.text.value;
    this.text.value = value.slice(0, token.start) + insert + value.slice(token.end);
    const caret = token.start + insert.length;
    this.text.setSelectionRange(caret, caret);
    this.saveDraft();
  }

  async choose(index) {
    const item = this.suggest.items[index];
    const token = this.suggest.token;
    this.closeSuggest();
    if (!item) return;
    if (item.kind === "mention") {
      this.replaceToken(token, `@${directory.handle(item.user)} `);
      return;
    }
    const canned = item.canned;
    let text = canned.body || "";
    try {
      const rendered = await api("POST", `/conversations/${this.conversation.id}/canned-responses/${canned.id}/render`, {});
      text = rendered.text;
      if (rendered.missing && rendered.missing.length) {
        toast(t("Fill in: {fields}", { fields: rendered.missing.join(", ") }));
      }
    } catch (err) {
      toast(errorText(err), "error");
    }
    this.replaceToken(token, text);
    this.text.focus();
  }

  onKey(event) {
    if (this.suggest.open) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        this.moveSuggest(event.key === "ArrowDown" ? 1 : -1);
        event.preventDefault();
        return;
      }
      if ((event.key === "Enter" && !event.ctrlKey && !event.metaKey) || event.key === "Tab") {
        this.choose(this.suggest.index);
        event.preventDefault();
        return;
      }
      if (event.key === "Escape") {
        this.closeSuggest();
        event.preventDefault();
        event.stopPropagation();
        return;
      }
    }
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      this.send();
    } else if (event.key === "Escape") {
      event.preventDefault();
      this.text.blur();
      this.host.focusThread();
    }
  }

  // -- attachments ------------------------------------------------------------------------------

  async onFiles() {
    const files = [...this.fileInput.files];
    this.fileInput.value = "";
    await Promise.all(files.map((file) => this.upload(file)));
  }

  async upload(file) {
    const item = { key: `${Date.now()}-${Math.random()}`, file, id: null, state: "uploading", error: "" };
    this.attachments.push(item);
    this.renderChips();
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const out = await api("POST", "/attachments", form);
      item.id = out.id;
      item.state = "ready";
    } catch (err) {
      item.state = "failed";
      item.error = errorText(err);
    }
    this.renderChips();
  }

  renderChips() {
    this.chips.replaceChildren(
      ...this.attachments.map((item) =>
        el(
          "li",
          { class: `chip ${item.state}` },
          el("span", { class: "chip-name" }, item.file.name),
          el(
            "span",
            { class: "muted" },
            item.state === "uploading" ? ` ${t("Uploading…")}` : item.state === "failed" ? ` ${item.error}` : ` ${formatSize(item.file.size)}`,
          ),
          el(
            "button",
            {
              type: "button",
              class: "link small",
              "aria-label": t("Remove {name}", { name: item.file.name }),
              onclick: () => {
                this.attachments = this.attachments.filter((a) => a !== item);
                this.renderChips();
              },
            },
            "×",
          ),
        ),
      ),
    );
  }

  // -- send -------------------------------------------------------------------------------------

  async send() {
    const text = this.text.value.trim();
    if (this.attachments.some((a) => a.state === "uploading")) {
      toast(t("Wait for the upload to finish."));
      return;
    }
    const ids = this.attachments.filter((a) => a.state === "ready").map((a) => a.id);
    if (!text && !ids.length) {
      this.text.focus();
      return;
    }
    this.sendButton.disabled = true;
    try {
      let message;
      if (this.mode === "note") {
        message = await api("POST", `/conversations/${this.conversation.id}/notes`, { text, attachment_ids: ids });
      } else {
        const body = { text, attachment_ids: ids };
        const channel = this.channelSelect.value;
        if (channel && channel !== this.conversation.channel) body.channel = channel;
        message = await api("POST", `/conversations/${this.conversation.id}/messages`, body);
      }
      this.typing(false);
      this.text.value = "";
      this.attachments = [];
      this.renderChips();
      storage.set(`draft:${this.conversation.id}`, null);
      this.host.onSent(message);
    } catch (err) {
      toast(errorText(err), "error");
    } finally {
      this.sendButton.disabled = false;
    }
  }
}
