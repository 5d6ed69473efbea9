// Webhooks: subscribe a URL to conversation events, pause or resume it, rotate its signing secret
// (shown once), delete it.
import { api } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";
import { confirmDialog, field, form, pill, problemText, sectionHeader, secretBox, uid, value } from "./forms.js";
import { AdminSection } from "./section.js";

export function eventOptions() {
  return [
    ["*", t("Every event (also ones added later)")],
    ["conversation.created", t("Conversation created")],
    ["conversation.updated", t("Conversation updated")],
    ["conversation.message_created", t("New message")],
    ["conversation.message_updated", t("Message updated (delivery status)")],
  ];
}

function eventLabel(name) {
  return Object.fromEntries(eventOptions())[name] || name;
}

class AdminWebhooks extends AdminSection {
  constructor() {
    super();
    this.revealed = null; // {id, secret}: shown once after create or rotate
  }

  async fetchData() {
    return api("GET", "/webhooks");
  }

  render(hooks) {
    this.hooks = hooks;
    const list = hooks.length
      ? el("div", { class: "cards" }, ...hooks.map((hook) => this.card(hook)))
      : el("p", { class: "muted empty" }, t("No webhooks yet."));
    this.replaceChildren(
      sectionHeader(t("Webhooks"), t("Frontdesk posts conversation events to these URLs, signed with each subscription's secret (X-Frontdesk-Signature).")),
      list,
      this.createForm(),
    );
  }

  card(hook) {
    const headingId = uid("hook");
    const toggle = el("button", { type: "button", class: "secondary", "data-focus-key": `toggle-${hook.id}` }, hook.active ? t("Pause") : t("Resume"));
    toggle.addEventListener("click", async () => {
      try {
        await api("PATCH", `/webhooks/${hook.id}`, { active: !hook.active });
        toast(hook.active ? t("Webhook paused.") : t("Webhook resumed."));
        await this.reload();
      } catch (error) {
        toast(problemText(error), "error");
      }
    });
    const rotate = el("button", { type: "button", class: "secondary" }, t("Rotate secret"));
    rotate.addEventListener("click", async () => {
      if (!(await confirmDialog(t("Replace the signing secret of {url}? Deliveries are signed with the new one at once.", { url: hook.url }), t("Rotate secret")))) return;
      try {
        const out = await api("POST", `/webhooks/${hook.id}/rotate-secret`);
        this.revealed = { id: hook.id, secret: out.secret };
        toast(t("New secret created. Copy it now."));
        this.render(this.hooks);
        const box = this.querySelector(".secret-box input");
        if (box) box.focus();
      } catch (error) {
        toast(problemText(error), "error");
      }
    });
    const remove = el("button", { type: "button", class: "secondary danger-text" }, t("Delete"));
    remove.setAttribute("aria-label", t("Delete webhook {url}", { url: hook.url }));
    remove.addEventListener("click", async () => {
      if (!(await confirmDialog(t("Delete the webhook {url} and its queued deliveries?", { url: hook.url }), t("Delete")))) return;
      try {
        await api("DELETE", `/webhooks/${hook.id}`);
        toast(t("Webhook deleted."));
        await this.reload();
      } catch (error) {
        toast(problemText(error), "error");
      }
    });
    return el(
      "article",
      { class: "card webhook", "aria-labelledby": headingId, dataset: { webhookId: hook.id } },
      el("h3", { id: headingId, class: "url" }, hook.url),
      hook.description && el("p", { class: "muted" }, hook.description),
      el("p", {}, hook.active ? pill(t("Delivering"), "ok") : pill(t("Paused"), "off"), " ", hook.events.map(eventLabel).join(", ")),
      this.revealed && this.revealed.id === hook.id ? secretBox(t("Signing secret"), this.revealed.secret) : "",
      el("div", { class: "actions" }, toggle, rotate, remove),
    );
  }

  createForm() {
    const boxes = eventOptions().map(([name, label]) =>
      field({ label, name: `event:${name}`, type: "checkbox", value: name === "*" }),
    );
    const events = el("fieldset", { class: "events" }, el("legend", {}, t("Events")), ...boxes);
    return form({
      title: t("Add a webhook"),
      submitLabel: t("Create webhook"),
      fields: [
        field({ label: t("URL"), name: "url", type: "url", required: true, attrs: { placeholder: "https://example.com/hooks/frontdesk", spellcheck: "false", maxlength: 2000 } }),
        field({ label: t("Description"), name: "description", attrs: { maxlength: 500 } }),
      ],
      extra: [events],
      onSubmit: async (f) => {
        const chosen = eventOptions()
          .map(([name]) => name)
          .filter((name) => value(f, `event:${name}`));
        if (!chosen.length) throw new Error(t("Choose at least one event."));
        const body = { url: value(f, "url"), events: chosen };
        if (value(f, "description")) body.description = value(f, "description");
        const hook = await api("POST", "/webhooks", body);
        this.revealed = { id: hook.id, secret: hook.secret };
        toast(t("Webhook created. Copy its secret now."));
        await this.reload();
        const box = this.querySelector(".secret-box input");
        if (box) box.focus();
      },
    });
  }
}

customElements.define("fd-admin-webhooks", AdminWebhooks);
