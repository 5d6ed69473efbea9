// The customer sidebar of an open conversation: identities, details, editable attributes, consents,
// the customer's conversations on every channel, and merge suggestions (find, accept, reject).
import { api, query } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";
import { formatDateTime } from "../lib/time.js";
import {
  IDENTITY_LABELS,
  TIER_LABELS,
  attributeText,
  channelBadge,
  customerLabel,
  channelLabel,
  compactDate,
  errorText,
  formatMoney,
  initials,
  statusBadge,
} from "./util.js";

const REASONS = {
  identity_claimed: t("Both claim the same identity"),
  attribute_matches_identity: t("An attribute matches the other's identity"),
  identity_in_attributes: t("Its identity appears in the other's attributes"),
  same_name_overlapping_identity: t("Same name and a shared identity value"),
  webchat_email_claimed: t("A chat visitor gave this address without proving it"),
  webchat_signed_in: t("A chat visitor signed in as this customer"),
  webchat_email_confirmed: t("A chat visitor confirmed an address of another account"),
  verified_identity_taken: t("Proved an identity the other had only claimed"),
};

// A customer known only by what they typed: nothing but an anonymous chat visitor was proven.
function onlyClaimed(customer) {
  const ids = customer.identities || [];
  return ids.some((i) => !i.verified) && !ids.some((i) => i.verified && i.kind !== "webchat_visitor");
}

const CONSENT_LABELS = { granted: t("Granted"), denied: t("Denied"), withdrawn: t("Withdrawn") };

function section(title, ...children) {
  return el("section", { class: "side-section" }, el("h3", {}, title), ...children);
}

export class CustomerSidebar {
  /** host: conversation, open(id), onCustomer(customer) */
  constructor(host) {
    this.host = host;
    this.customer = null;
    this.editing = false;
    this.root = el("aside", { class: "customer-panel", "aria-label": t("Customer") }, el("p", { class: "muted" }, t("Loading…")));
  }

  async load() {
    try {
      this.customer = await api("GET", `/customers/${this.host.conversation.customer_id}`);
      // The record lists the first identities; the rest (the reply channels need them all) page by page.
      for (let cursor = this.customer.identities_next_cursor; cursor; ) {
        const page = await api("GET", `/customers/${this.customer.id}/identities${query({ cursor, limit: 200 })}`);
        this.customer.identities.push(...page.items);
        cursor = page.next_cursor;
      }
    } catch (err) {
      this.root.replaceChildren(el("p", { class: "error" }, errorText(err)));
      return null;
    }
    this.render();
    this.host.onCustomer(this.customer);
    this.loadConversations();
    this.loadSuggestions();
    return this.customer;
  }

  render() {
    const c = this.customer;
    const name = customerLabel(c);
    this.conversationsBox = this.conversationsBox || el("div", { class: "side-conversations" }, el("p", { class: "muted" }, t("Loading…")));
    this.suggestionsBox = this.suggestionsBox || el("div", { class: "side-suggestions" });
    this.attributesBox = el("div", { class: "side-attributes" });
    this.renderAttributes();
    // replaceChildren() below takes nodes only (a null would be written as the text "null").
    const claimed = onlyClaimed(c)
      ? [
          el(
            "p",
            { class: "claimed-only", role: "note" },
            el("strong", {}, t("Identity not confirmed")),
            ". ",
            t("Nobody proved these contact details are the customer's: do not share account details until they are confirmed."),
          ),
        ]
      : [];
    this.root.replaceChildren(
      el(
        "header",
        { class: "customer-head" },
        el("span", { class: "avatar", "aria-hidden": "true" }, initials(name)),
        el(
          "div",
          { class: "customer-title" },
          el("h2", { class: "customer-name", title: name }, name),
          el("span", { class: `tier tier-${c.satisfaction_tier}` }, TIER_LABELS[c.satisfaction_tier] || c.satisfaction_tier),
        ),
      ),
      ...claimed,
      section(
        t("Contact"),
        c.identities.length
          ? el(
              "ul",
              { class: "identities" },
              ...c.identities.map((i) =>
                el(
                  "li",
                  { class: i.undeliverable ? "undeliverable" : "" },
                  el("span", { class: "identity-kind" }, IDENTITY_LABELS[i.kind] || i.kind),
                  el("span", { class: "identity-value" }, i.value),
                  i.verified
                    ? el("span", { class: "ok small" }, t("verified"))
                    : el("span", { class: "unproven small", title: t("Given by the customer; nobody proved it is theirs.") }, t("not confirmed")),
                  i.undeliverable ? el("span", { class: "error small" }, t("undeliverable")) : null,
                ),
              ),
            )
          : el("p", { class: "muted" }, t("No contact details.")),
      ),
      section(
        t("Details"),
        el(
          "dl",
          { class: "facts" },
          el("dt", {}, t("Lifetime value")),
          el("dd", {}, formatMoney(c.lifetime_value)),
          el("dt", {}, t("Satisfaction")),
          el("dd", {}, TIER_LABELS[c.satisfaction_tier] || c.satisfaction_tier),
          c.locale ? el("dt", {}, t("Language")) : null,
          c.locale ? el("dd", {}, c.locale) : null,
          c.time_zone ? el("dt", {}, t("Time zone")) : null,
          c.time_zone ? el("dd", {}, c.time_zone) : null,
          el("dt", {}, t("Customer since")),
          el("dd", {}, formatDateTime(c.created_at)),
        ),
      ),
      section(t("Attributes"), this.attributesBox),
      section(
        t("Consents"),
        (c.consents || []).length
          ? el(
              "ul",
              { class: "consents" },
              ...c.consents.map((x) =>
                el(
                  "li",
                  {},
                  channelBadge(x.channel),
                  el("span", {}, ` ${x.category} `),
                  el("span", { class: `consent-${x.status}` }, CONSENT_LABELS[x.status] || x.status),
                ),
              ),
            )
          : el("p", { class: "muted" }, t("No consents recorded.")),
      ),
      section(t("Conversations"), this.conversationsBox),
      section(
        t("Possible duplicates"),
        this.suggestionsBox,
        el("button", { type: "button", class: "secondary small", onclick: () => this.findDuplicates() }, t("Find duplicates")),
      ),
    );
  }

  // -- attributes -------------------------------------------------------------------------------

  renderAttributes() {
    const attributes = this.customer.attributes || {};
    const keys = Object.keys(attributes).sort();
    if (!this.editing) {
      this.attributesBox.replaceChildren(
        keys.length
          ? el("dl", { class: "facts" }, ...keys.flatMap((k) => [el("dt", {}, k), el("dd", {}, attributeText(attributes[k]))]))
          : el("p", { class: "muted" }, t("No attributes.")),
        el("button", { type: "button", class: "link small", onclick: () => this.editAttributes() }, t("Edit attributes")),
      );
      return;
    }
    const rows = keys.map((k) => this.attributeRow(k, attributeText(attributes[k]), true));
    const list = el("div", { class: "attr-rows" }, ...rows);
    const form = el(
      "form",
      { class: "attr-form", onsubmit: (e) => this.saveAttributes(e, list) },
      list,
      el("button", { type: "button", class: "link small", onclick: () => list.append(this.attributeRow("", "", false)) }, t("Add attribute")),
      el(
        "div",
        { class: "form-actions" },
        el("button", { type: "submit", class: "small" }, t("Save")),
        el("button", { type: "button", class: "secondary small", onclick: () => this.cancelEdit() }, t("Cancel")),
      ),
    );
    this.attributesBox.replaceChildren(form);
    const first = form.querySelector("input");
    if (first) first.focus();
  }

  attributeRow(key, value, existing) {
    const keyInput = el("input", { type: "text", class: "attr-key", value: key, "aria-label": t("Attribute name"), readonly: existing || undefined });
    const valueInput = el("input", { type: "text", class: "attr-value", value, "aria-label": t("Value of {name}", { name: key || t("new attribute") }) });
    const row = el(
      "div",
      { class: "attr-row", dataset: { original: existing ? key : "" } },
      keyInput,
      valueInput,
      el(
        "button",
        {
          type: "button",
          class: "link small",
          "aria-label": t("Remove {name}", { name: key || t("new attribute") }),
          onclick: () => {
            row.hidden = true;
            row.dataset.removed = "1";
          },
        },
        "×",
      ),
    );
    return row;
  }

  editAttributes() {
    this.editing = true;
    this.renderAttributes();
  }

  cancelEdit() {
    this.editing = false;
    this.renderAttributes();
  }

  async saveAttributes(event, list) {
    event.preventDefault();
    const current = this.customer.attributes || {};
    const patch = {};
    for (const row of list.querySelectorAll(".attr-row")) {
      const original = row.dataset.original;
      const key = row.querySelector(".attr-key").value.trim();
      const raw = row.querySelector(".attr-value").value;
      if (row.dataset.removed) {
        if (original) patch[original] = null;
        continue;
      }
      if (!key) continue;
      // Keep numbers, booleans and JSON values typed as they were.
      let value = raw;
      const before = current[key];
      if (typeof before !== "string" && before !== undefined) {
        try {
          value = JSON.parse(raw);
        } catch {
          value = raw;
        }
      }
      if (JSON.stringify(value) !== JSON.stringify(before)) patch[key] = value;
    }
    if (!Object.keys(patch).length) return this.cancelEdit();
    try {
      this.customer = await api("PATCH", `/customers/${this.customer.id}`, { attributes: patch });
      this.editing = false;
      this.renderAttributes();
      toast(t("Saved."));
    } catch (err) {
      toast(errorText(err), "error");
    }
  }

  // -- the customer's conversations -------------------------------------------------------------

  async loadConversations() {
    let page;
    try {
      page = await api("GET", `/conversations${query({ customer_id: this.customer.id, limit: 25 })}`);
    } catch (err) {
      this.conversationsBox.replaceChildren(el("p", { class: "error" }, errorText(err)));
      return;
    }
    const items = page.items;
    const open = items.filter((c) => c.status !== "resolved");
    const past = items.filter((c) => c.status === "resolved");
    const row = (c) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: `side-conv ch-edge-${c.channel}${c.id === this.host.conversation.id ? " current" : ""}`,
            "aria-current": c.id === this.host.conversation.id ? "true" : undefined,
            onclick: () => this.host.open(c.id),
          },
          el("span", { class: "side-conv-top" }, channelBadge(c.channel), statusBadge(c.status), el("time", { datetime: c.last_message_at || c.created_at }, compactDate(c.last_message_at || c.created_at))),
          el("span", { class: "side-conv-subject" }, c.subject || t("No subject")),
        ),
      );
    const channels = [...new Set(items.map((c) => c.channel))];
    // replaceChildren() writes null as the text "null": leave the absent parts out.
    const parts = [
      channels.length > 1 ? el("p", { class: "muted small" }, t("On {channels}", { channels: channels.map(channelLabel).join(", ") })) : null,
      open.length ? el("h4", {}, t("Open ({n})", { n: open.length })) : null,
      open.length ? el("ul", { class: "side-list" }, ...open.map(row)) : null,
      past.length ? el("h4", {}, t("Past ({n})", { n: past.length })) : null,
      past.length ? el("ul", { class: "side-list" }, ...past.map(row)) : null,
    ];
    this.conversationsBox.replaceChildren(...parts.filter(Boolean));
  }

  refreshConversations() {
    if (this.customer) this.loadConversations();
  }

  // -- merge suggestions ------------------------------------------------------------------------

  async loadSuggestions() {
    try {
      const page = await api("GET", `/merge-suggestions${query({ customer_id: this.customer.id, status: "open", limit: 20 })}`);
      await this.renderSuggestions(page.items);
    } catch {
      this.suggestionsBox.replaceChildren();
    }
  }

  async findDuplicates() {
    try {
      const found = await api("POST", `/customers/${this.customer.id}/merge-suggestions`);
      await this.renderSuggestions(found.filter((s) => s.status === "open"));
      if (!found.length) toast(t("No duplicates found."));
    } catch (err) {
      toast(errorText(err), "error");
    }
  }

  async renderSuggestions(suggestions) {
    if (!suggestions.length) {
      this.suggestionsBox.replaceChildren(el("p", { class: "muted" }, t("None found.")));
      return;
    }
    const cards = await Promise.all(
      suggestions.map(async (s) => {
        const otherId = s.customer_a_id === this.customer.id ? s.customer_b_id : s.customer_a_id;
        let other = null;
        try {
          other = await api("GET", `/customers/${otherId}`);
        } catch {
          other = null;
        }
        const otherName = (other && other.name) || t("Unknown customer");
        const ids = other ? other.identities.map((i) => i.value).join(", ") : "";
        return el(
          "div",
          { class: "suggestion" },
          el("strong", {}, otherName),
          ids ? el("div", { class: "muted small" }, ids) : null,
          el("div", { class: "small" }, REASONS[s.reason] || s.reason),
          el(
            "div",
            { class: "form-actions" },
            el("button", { type: "button", class: "small", onclick: () => this.decide(s, "accept") }, t("Merge")),
            el("button", { type: "button", class: "secondary small", onclick: () => this.decide(s, "reject") }, t("Not the same")),
          ),
        );
      }),
    );
    this.suggestionsBox.replaceChildren(...cards);
  }

  async decide(suggestion, verdict) {
    try {
      await api("POST", `/merge-suggestions/${suggestion.id}/${verdict}`);
      toast(verdict === "accept" ? t("Customers merged.") : t("Suggestion rejected."));
      await this.load();
    } catch (err) {
      toast(errorText(err), "error");
    }
  }
}

