// Mail outbox: e-mail Frontdesk kept instead of sending, because no SMTP relay is configured (a mail
// catcher inside the product). List, open one (headers, text, the HTML in a sandboxed frame with
// no scripts and no same-origin access), download the .eml, delete one or clear them all.
import { api, query } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";
import { formatDateTime, formatShort } from "../lib/time.js";
import { confirmDialog, problemText, sectionHeader } from "./forms.js";
import { AdminSection } from "./section.js";

const PAGE = 50;

function formatBytes(n) {
  if (n < 1024) return t("{n} B", { n });
  if (n < 1024 * 1024) return t("{n} KB", { n: (n / 1024).toFixed(1) });
  return t("{n} MB", { n: (n / 1024 / 1024).toFixed(1) });
}

class AdminMail extends AdminSection {
  constructor() {
    super();
    this.openId = null;
  }

  async fetchData() {
    const page = await api("GET", `/caught-mail${query({ limit: PAGE })}`);
    return { items: page.items, next: page.next_cursor };
  }

  render(data) {
    this.data = data;
    const clear = el("button", { type: "button", class: "secondary danger-text", "data-focus-key": "clear" }, t("Clear the outbox"));
    clear.disabled = data.items.length === 0;
    clear.addEventListener("click", () => this.clearAll());
    const list = data.items.length ? this.table(data.items) : el("p", { class: "muted empty" }, t("No mail kept: nothing was sent without a relay."));
    const more = data.next ? el("button", { type: "button", class: "secondary" }, t("Load more")) : null;
    if (more) more.addEventListener("click", () => this.loadMore(more));
    this.viewer = el("div", { class: "mail-viewer" });
    const parts = [
      sectionHeader(
        t("Mail outbox"),
        t("No SMTP relay is configured (FRONTDESK_SMTP_RELAY), so replies by e-mail are kept here instead of being sent: customers have not received them. Set a relay to send mail."),
      ),
      el("div", { class: "actions" }, clear),
      list,
      more,
      this.viewer,
    ];
    this.replaceChildren(...parts.filter(Boolean));
  }

  table(items) {
    this.tbody = el("tbody", {}, ...items.map((mail) => this.row(mail)));
    return el(
      "table",
      { class: "grid mail-list" },
      el("caption", { class: "visually-hidden" }, t("Kept e-mail")),
      el(
        "thead",
        {},
        el("tr", {}, el("th", { scope: "col" }, t("Kept at")), el("th", { scope: "col" }, t("To")), el("th", { scope: "col" }, t("Subject")), el("th", { scope: "col" }, t("Size")), el("th", { scope: "col" }, t("Actions"))),
      ),
      this.tbody,
    );
  }

  row(mail) {
    const open = el("button", { type: "button", class: "secondary", "data-focus-key": `open-${mail.id}` }, t("Show"));
    open.setAttribute("aria-label", t("Show the e-mail to {to}: {subject}", { to: mail.to, subject: mail.subject }));
    open.addEventListener("click", () => this.open(mail));
    return el(
      "tr",
      { dataset: { mailId: mail.id } },
      el("td", {}, el("time", { datetime: mail.created_at, title: formatDateTime(mail.created_at) }, formatShort(mail.created_at))),
      el("td", {}, mail.to),
      el("td", {}, mail.subject),
      el("td", {}, formatBytes(mail.size)),
      el("td", {}, el("div", { class: "row-actions" }, open)),
    );
  }

  async loadMore(button) {
    button.disabled = true;
    try {
      const page = await api("GET", `/caught-mail${query({ limit: PAGE, cursor: this.data.next })}`);
      this.data.items.push(...page.items);
      this.data.next = page.next_cursor;
      for (const mail of page.items) this.tbody.append(this.row(mail));
      if (!page.next_cursor) button.remove();
      else button.disabled = false;
    } catch (error) {
      toast(problemText(error), "error");
      button.disabled = false;
    }
  }

  async open(mail) {
    this.viewer.replaceChildren(el("p", { class: "muted" }, t("Loading…")));
    let detail;
    try {
      detail = await api("GET", `/caught-mail/${mail.id}`);
    } catch (error) {
      this.viewer.replaceChildren(el("p", { class: "error", role: "alert" }, problemText(error)));
      return;
    }
    this.openId = mail.id;
    const headingId = `mail-${mail.id}`;
    const headers = el(
      "table",
      { class: "grid mail-headers" },
      el("caption", { class: "visually-hidden" }, t("Headers")),
      el("tbody", {}, ...detail.headers.map(([name, value]) => el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, value)))),
    );
    const download = el("a", { class: "button secondary", href: `/api/v1/caught-mail/${mail.id}/raw`, download: `mail-${mail.message_id || mail.id}.eml` }, t("Download .eml"));
    const remove = el("button", { type: "button", class: "secondary danger-text" }, t("Delete"));
    remove.addEventListener("click", () => this.remove(mail));
    const parts = [
      el("h3", { id: headingId, tabindex: "-1" }, detail.subject || t("(no subject)")),
      el("div", { class: "actions" }, download, remove, mail.conversation_id ? el("a", { href: `/desk#/c/${mail.conversation_id}` }, t("Open the conversation")) : null),
      el("details", { open: true }, el("summary", {}, t("Headers")), headers),
    ];
    if (detail.text !== null) parts.push(el("h4", {}, t("Text version")), el("pre", { class: "mail-text" }, detail.text));
    if (detail.html !== null) {
      // sandbox="" : no scripts, no forms, no same-origin access; the page's CSP also blocks remote images.
      const frame = el("iframe", { class: "mail-html", sandbox: "", title: t("HTML version of the e-mail"), referrerpolicy: "no-referrer" });
      frame.srcdoc = detail.html;
      parts.push(el("h4", {}, t("HTML version")), frame);
    }
    if (detail.attachments.length) {
      parts.push(
        el("h4", {}, t("Attachments")),
        el("ul", {}, ...detail.attachments.map((a) => el("li", {}, `${a.filename || t("(no name)")} · ${a.content_type} · ${formatBytes(a.size)}`))),
      );
    }
    this.viewer.replaceChildren(el("article", { class: "card mail", "aria-labelledby": headingId, dataset: { mailId: mail.id } }, ...parts));
    this.viewer.querySelector("h3").focus();
  }

  async remove(mail) {
    if (!(await confirmDialog(t("Delete the e-mail to {to}?", { to: mail.to }), t("Delete")))) return;
    try {
      await api("DELETE", `/caught-mail/${mail.id}`);
      toast(t("E-mail deleted."));
      await this.reload();
    } catch (error) {
      toast(problemText(error), "error");
    }
  }

  async clearAll() {
    if (!(await confirmDialog(t("Delete every kept e-mail? This cannot be undone."), t("Clear the outbox")))) return;
    try {
      const out = await api("DELETE", "/caught-mail");
      toast(t("{n} e-mails deleted.", { n: out.deleted }));
      await this.reload();
    } catch (error) {
      toast(problemText(error), "error");
    }
  }
}

customElements.define("fd-admin-mail", AdminMail);
