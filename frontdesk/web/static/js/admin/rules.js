// Routing rules: which queue a conversation goes to. Rules are tried top to bottom and the first
// enabled one whose conditions all hold wins (an empty condition matches anything); a
// conversation no rule catches goes to the highest-priority queue serving its channel. Each
// rule: conditions (channels, inboxes, customer languages, tags, segments, customer attributes),
// the target queue and an optional priority. Move up / down changes the order.
import { ApiError, api } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { channelLabel, options as labelOptions } from "../lib/labels.js";
import { el, toast } from "../lib/shell.js";
import { checkGroup, checked, joined, list, num, numberField } from "./choices.js";
import { confirmDialog, field, form, pill, problemText, sectionHeader, uid, value } from "./forms.js";
import { AdminSection } from "./section.js";

/** "key = value" lines → {key: value}; "a, b" is a list; true/false and numbers keep their type. */
function parseAttributes(text) {
  const out = {};
  for (const [n, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line) continue;
    const cut = line.indexOf("=");
    if (cut <= 0) {
      const message = t("Line {n}: write key = value.", { n: n + 1 });
      throw new ApiError(422, { detail: message, errors: [{ field: "conditions.attributes", message }] });
    }
    const key = line.slice(0, cut).trim();
    const parts = line
      .slice(cut + 1)
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "")
      .map((s) => (s === "true" ? true : s === "false" ? false : /^-?\d+(\.\d+)?$/.test(s) ? Number(s) : s));
    out[key] = parts.length === 1 ? parts[0] : parts;
  }
  return out;
}

function attributesText(attributes) {
  return Object.entries(attributes || {})
    .map(([key, v]) => `${key} = ${Array.isArray(v) ? v.join(", ") : v}`)
    .join("\n");
}

/** The conditions of a rule in words, one phrase per condition. */
function conditionsText(conditions, inboxNames) {
  const c = conditions || {};
  const parts = [];
  if (c.channels && c.channels.length) parts.push(t("channel: {values}", { values: joined(c.channels.map(channelLabel)) }));
  if (c.inbox_ids && c.inbox_ids.length) parts.push(t("inbox: {values}", { values: joined(c.inbox_ids.map((id) => inboxNames.get(id) || id)) }));
  if (c.languages && c.languages.length) parts.push(t("language: {values}", { values: joined(c.languages) }));
  if (c.tags && c.tags.length) parts.push(t("tag: {values}", { values: joined(c.tags.map((x) => `#${x}`)) }));
  if (c.segments && c.segments.length) parts.push(t("segment: {values}", { values: joined(c.segments) }));
  if (c.attributes && Object.keys(c.attributes).length) parts.push(t("attributes: {values}", { values: attributesText(c.attributes).replace(/\n/g, "; ") }));
  return parts.length ? parts.join(" · ") : t("every conversation");
}

class AdminRules extends AdminSection {
  constructor() {
    super();
    this.editing = null;
  }

  async fetchData() {
    const [rules, queues, inboxes] = await Promise.all([api("GET", "/routing/rules"), api("GET", "/queues"), api("GET", "/inboxes")]);
    return { rules, queues, inboxes };
  }

  render(data) {
    this.data = data;
    const { rules, queues, inboxes } = data;
    const queueNames = new Map(queues.map((q) => [q.id, q.name]));
    const inboxNames = new Map(inboxes.map((i) => [i.id, i.name]));
    const ordered = rules.length
      ? el("ol", { class: "rules", "aria-label": t("Routing rules, tried in this order") }, ...rules.map((rule, i) => this.item(rule, i, rules.length, queueNames, inboxNames)))
      : el("p", { class: "muted empty" }, t("No routing rules yet: every conversation goes to the highest-priority queue serving its channel."));
    const add = el("button", { type: "button", "data-focus-key": "new-rule" }, t("Add a rule"));
    add.addEventListener("click", () => this.open("new"));
    this.editorSlot = el("div", { class: "rule-editor-slot" });
    if (!queues.length) add.disabled = true;
    this.replaceChildren(
      sectionHeader(
        t("Routing rules"),
        t("Tried from the top; the first enabled rule whose conditions all hold sends the conversation to its queue. Conversations no rule catches go to the highest-priority queue serving their channel."),
      ),
      ordered,
      el("div", { class: "actions" }, add, queues.length ? null : el("span", { class: "muted" }, t("Create a queue first."))),
      this.editorSlot,
    );
    if (this.editing) this.open(this.editing, { focus: false });
  }

  item(rule, index, count, queueNames, inboxNames) {
    const headingId = uid("rule");
    const up = el("button", { type: "button", class: "secondary small", disabled: index === 0, "data-focus-key": `up-${rule.id}` }, t("Move up"));
    up.setAttribute("aria-label", t("Move {name} up", { name: rule.name }));
    up.addEventListener("click", () => this.move(rule, index - 1));
    const down = el("button", { type: "button", class: "secondary small", disabled: index === count - 1, "data-focus-key": `down-${rule.id}` }, t("Move down"));
    down.setAttribute("aria-label", t("Move {name} down", { name: rule.name }));
    down.addEventListener("click", () => this.move(rule, index + 1));
    const edit = el("button", { type: "button", class: "secondary small", "data-focus-key": `edit-${rule.id}` }, t("Edit"));
    edit.setAttribute("aria-label", t("Edit the rule {name}", { name: rule.name }));
    edit.addEventListener("click", () => this.open(rule.id));
    const remove = el("button", { type: "button", class: "secondary small danger-text", "data-focus-key": `rm-${rule.id}` }, t("Delete"));
    remove.setAttribute("aria-label", t("Delete the rule {name}", { name: rule.name }));
    remove.addEventListener("click", async () => {
      if (!(await confirmDialog(t("Delete the rule {name}?", { name: rule.name }), t("Delete")))) return;
      try {
        await api("DELETE", `/routing/rules/${rule.id}`);
        toast(t("Rule {name} deleted.", { name: rule.name }));
        if (this.editing === rule.id) this.editing = null;
        await this.reload();
      } catch (error) {
        toast(problemText(error), "error");
      }
    });
    const target = queueNames.get(rule.queue_id) || rule.queue_id;
    return el(
      "li",
      { class: `card rule${rule.enabled ? "" : " inactive"}`, "aria-labelledby": headingId, dataset: { ruleId: rule.id } },
      el("h3", { id: headingId }, `${index + 1}. ${rule.name}`, " ", rule.enabled ? null : pill(t("Off"), "off")),
      el("p", {}, t("When {conditions} → queue {queue}", { conditions: conditionsText(rule.conditions, inboxNames), queue: target })),
      rule.priority ? el("p", { class: "muted small" }, t("Priority {n} instead of the queue's", { n: rule.priority })) : null,
      rule.description ? el("p", { class: "muted small" }, rule.description) : null,
      el("div", { class: "row-actions" }, up, down, edit, remove),
    );
  }

  async move(rule, position) {
    try {
      await api("PATCH", `/routing/rules/${rule.id}`, { position });
      toast(t("Rule {name} is now number {n}.", { name: rule.name, n: position + 1 }));
      await this.reload();
      // Keep the keyboard on the rule that moved.
      const again = this.querySelector(`[data-focus-key="${position === 0 ? "down" : "up"}-${rule.id}"]`) || this.querySelector(`[data-focus-key="edit-${rule.id}"]`);
      if (again) again.focus();
    } catch (error) {
      toast(problemText(error), "error");
    }
  }

  open(id, { focus = true } = {}) {
    const rule = id === "new" ? null : this.data.rules.find((r) => r.id === id);
    if (id !== "new" && !rule) {
      this.editing = null;
      this.editorSlot.replaceChildren();
      return;
    }
    this.editing = id;
    const editor = this.editor(rule);
    this.editorSlot.replaceChildren(editor);
    if (focus) {
      const heading = editor.querySelector("h3");
      heading.setAttribute("tabindex", "-1");
      heading.focus();
      editor.scrollIntoView({ block: "start" });
    }
  }

  editor(rule) {
    const { queues, inboxes, rules } = this.data;
    const c = (rule && rule.conditions) || {};
    const position = rule ? rule.position : rules.length;
    const fields = [
      field({ label: t("Rule name"), name: "name", value: rule ? rule.name : "", required: true, attrs: { maxlength: 200, autocomplete: "off" } }),
      field({
        label: t("Send to queue"),
        name: "queue_id",
        options: [["", t("Choose a queue…")], ...queues.map((q) => [q.id, q.name])],
        value: rule ? rule.queue_id : "",
        required: true,
      }),
      numberField({ label: t("Priority (1–99; empty: the queue's)"), name: "priority", value: rule ? rule.priority : null, min: 1, max: 99, required: false }),
      numberField({ label: t("Position (1 is tried first)"), name: "position", value: position + 1, min: 1, max: rules.length + (rule ? 0 : 1) }),
      field({ label: t("Enabled"), name: "enabled", type: "checkbox", value: rule ? rule.enabled : true }),
      field({ label: t("Description"), name: "description", value: (rule && rule.description) || "", attrs: { maxlength: 2000, autocomplete: "off" } }),
      el("h4", { class: "wide" }, t("Conditions (all must hold; leave one empty to match anything)")),
      checkGroup({ legend: t("Channels"), name: "conditions.channels", options: labelOptions("channel"), values: c.channels || [], className: "wide" }),
      checkGroup({
        legend: t("Inboxes"),
        name: "conditions.inbox_ids",
        options: inboxes.map((i) => [i.id, `${i.name} · ${channelLabel(i.channel)}`]),
        values: c.inbox_ids || [],
        className: "wide",
      }),
      field({ label: t("Tags (any of them)"), name: "conditions.tags", value: (c.tags || []).join(", "), hint: t("Comma-separated, e.g. refund, vip-order."), attrs: { autocomplete: "off", spellcheck: "false" } }),
      field({ label: t("Customer languages"), name: "conditions.languages", value: (c.languages || []).join(", "), hint: t("Comma-separated; ru matches ru-RU."), attrs: { autocomplete: "off", spellcheck: "false" } }),
      field({ label: t("Customer segments (any of them)"), name: "conditions.segments", value: (c.segments || []).join(", "), hint: t("vip, at_risk, debtor, or your own (attributes segment / segments)."), attrs: { autocomplete: "off", spellcheck: "false" } }),
      field({
        label: t("Customer attributes"),
        name: "conditions.attributes",
        type: "textarea",
        value: attributesText(c.attributes),
        hint: t("One per line: key = value, or key = a, b for any of several."),
        attrs: { rows: 2, spellcheck: "false" },
      }),
    ];
    const headingId = uid("rule-editor");
    const editor = form({
      title: rule ? t("Rule {name}", { name: rule.name }) : t("New rule"),
      submitLabel: rule ? t("Save rule") : t("Create rule"),
      className: "rule-editor",
      fields,
      onSubmit: async (f) => {
        const body = {
          name: value(f, "name"),
          description: value(f, "description") || null,
          queue_id: value(f, "queue_id"),
          priority: num(f, "priority"),
          enabled: value(f, "enabled"),
          position: num(f, "position") - 1,
          conditions: {
            channels: checked(f, "conditions.channels"),
            inbox_ids: checked(f, "conditions.inbox_ids"),
            tags: list(f, "conditions.tags"),
            languages: list(f, "conditions.languages"),
            segments: list(f, "conditions.segments"),
            attributes: parseAttributes(f.querySelector('[name="conditions.attributes"]').value),
          },
        };
        const saved = rule ? await api("PATCH", `/routing/rules/${rule.id}`, body) : await api("POST", "/routing/rules", body);
        toast(rule ? t("Rule {name} saved.", { name: saved.name }) : t("Rule {name} created.", { name: saved.name }));
        this.editing = null;
        await this.reload();
        const again = this.querySelector(`[data-focus-key="edit-${saved.id}"]`);
        if (again) again.focus();
      },
    });
    editor.setAttribute("aria-labelledby", headingId);
    editor.querySelector("h3").id = headingId;
    const cancel = el("button", { type: "button", class: "secondary" }, t("Close"));
    cancel.addEventListener("click", () => {
      this.editing = null;
      this.editorSlot.replaceChildren();
      const back = this.querySelector(rule ? `[data-focus-key="edit-${rule.id}"]` : '[data-focus-key="new-rule"]');
      if (back) back.focus();
    });
    editor.lastElementChild.append(cancel);
    return editor;
  }
}

customElements.define("fd-admin-rules", AdminRules);
