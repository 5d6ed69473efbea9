// Rejected inputs: what the intakes refused (e-mails, API-channel messages, events). Filter by source
// and date, read the reason and a preview, download the raw item, replay it through its intake once
// the cause is fixed, or discard it. Every value is set as text, never parsed as HTML.
import { api, query } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";
import { formatDateTime } from "../lib/time.js";
import { confirmDialog, field, form, pill, problemText, sectionHeader, uid, value } from "./forms.js";
import { AdminSection } from "./section.js";

const PAGE = 25;

export function sourceOptions() {
  return [
    ["", t("All sources")],
    ["email.smtp", t("E-mail (SMTP)")],
    ["email.imap", t("E-mail (IMAP)")],
    ["api.inbound", t("API channel")],
    ["api.events", t("Events API")],
  ];
}

function sourceLabel(source) {
  return Object.fromEntries(sourceOptions())[source] || source;
}

/** A date input's value (the viewer's local midnight) as an ISO instant, or "". */
function dayStart(day, plusDays = 0) {
  if (!day) return "";
  const d = new Date(`${day}T00:00:00`);
  d.setDate(d.getDate() + plusDays);
  return d.toISOString();
}

class AdminRejected extends AdminSection {
  constructor() {
    super();
    this.filters = { source: "", from: "", to: "" };
  }

  params(cursor = null) {
    return query({
      source: this.filters.source,
      since: dayStart(this.filters.from),
      until: dayStart(this.filters.to, 1), // the whole "to" day
      limit: PAGE,
      cursor,
    });
  }

  async fetchData() {
    return api("GET", `/rejected-inputs${this.params()}`);
  }

  render(page) {
    this.items = [...page.items];
    this.cursor = page.next_cursor;
    this.list = el("div", { class: "rejected-list", role: "list", "aria-label": t("Rejected inputs") });
    this.more = el("button", { type: "button", class: "secondary" }, t("Show more"));
    this.more.addEventListener("click", () => this.loadMore());
    this.replaceChildren(
      sectionHeader(
        t("Rejected inputs"),
        t("E-mails, API-channel messages and events that Frontdesk refused, kept for inspection. Download the raw item, replay it through its intake once the cause is fixed, or discard it."),
      ),
      this.filterForm(),
      this.list,
      this.more,
    );
    this.fill();
  }

  fill() {
    this.list.replaceChildren(...this.items.map((item) => this.card(item)));
    if (!this.items.length) this.list.append(el("p", { class: "muted empty" }, t("Nothing was refused.")));
    this.more.hidden = !this.cursor;
  }

  async loadMore() {
    try {
      const page = await api("GET", `/rejected-inputs${this.params(this.cursor)}`);
      this.items.push(...page.items);
      this.cursor = page.next_cursor;
      this.fill();
    } catch (error) {
      toast(problemText(error), "error");
    }
  }

  filterForm() {
    return form({
      className: "inline-form rejected-filters",
      submitLabel: t("Show"),
      fields: [
        field({ label: t("Source"), name: "source", options: sourceOptions(), value: this.filters.source }),
        field({ label: t("Received from"), name: "from", type: "date", value: this.filters.from }),
        field({ label: t("Received until"), name: "to", type: "date", value: this.filters.to }),
      ],
      onSubmit: async (f) => {
        this.filters = { source: value(f, "source"), from: value(f, "from"), to: value(f, "to") };
        const page = await api("GET", `/rejected-inputs${this.params()}`);
        this.items = [...page.items];
        this.cursor = page.next_cursor;
        this.fill();
      },
    });
  }

  card(item) {
    const headingId = uid("rejected");
    const facts = [t("{kept} of {size} bytes kept", { kept: item.kept, size: item.size })];
    if (item.origin) facts.push(t("Sent by {origin}", { origin: item.origin }));
    const download = el(
      "a",
      { class: "button secondary", href: `/api/v1/rejected-inputs/${encodeURIComponent(item.id)}/raw`, download: "" },
      t("Download"),
    );
    const replay = el("button", { type: "button", disabled: !item.replayable, "data-focus-key": `replay-${item.id}` }, t("Replay"));
    replay.addEventListener("click", () => this.replay(item, replay));
    const discard = el("button", { type: "button", class: "secondary danger-text" }, t("Discard"));
    discard.addEventListener("click", () => this.discard(item));
    return el(
      "article",
      { class: "card rejected", role: "listitem", "aria-labelledby": headingId, dataset: { rejectedId: item.id } },
      el("h3", { id: headingId }, `${sourceLabel(item.source)} · ${formatDateTime(item.received_at)}`),
      el("p", { class: "reason" }, item.reason),
      el(
        "p",
        { class: "muted" },
        item.anonymous ? [pill(t("Anonymous"), "off"), " "] : "",
        item.replays ? [pill(t("Replays refused: {n}", { n: item.replays })), " "] : "",
        facts.join(" · "),
      ),
      item.replayable ? "" : el("p", { class: "muted" }, t("Cannot be replayed: {reason}", { reason: item.not_replayable_because || "" })),
      el("details", {}, el("summary", {}, t("Preview")), el("pre", { class: "code" }, item.preview)),
      el("div", { class: "actions" }, download, replay, discard),
    );
  }

  async replay(item, button) {
    button.disabled = true;
    try {
      const out = await api("POST", `/rejected-inputs/${encodeURIComponent(item.id)}/replay`);
      if (out.outcome === "accepted" || out.outcome === "duplicate") {
        toast(t("Replayed: stored."));
        this.items = this.items.filter((x) => x.id !== item.id);
        this.fill();
      } else {
        toast(t("Replayed: refused again — {reason}", { reason: out.reason || "" }), "error");
        const fresh = await api("GET", `/rejected-inputs/${encodeURIComponent(item.id)}`);
        this.items = this.items.map((x) => (x.id === item.id ? fresh : x));
        this.fill();
      }
    } catch (error) {
      toast(problemText(error), "error");
      button.disabled = false;
    }
  }

  async discard(item) {
    if (!(await confirmDialog(t("Discard this rejected input for good?"), t("Discard")))) return;
    try {
      await api("DELETE", `/rejected-inputs/${encodeURIComponent(item.id)}`);
      toast(t("Rejected input discarded."));
      this.items = this.items.filter((x) => x.id !== item.id);
      this.fill();
    } catch (error) {
      toast(problemText(error), "error");
    }
  }
}

customElements.define("fd-admin-rejected", AdminRejected);
