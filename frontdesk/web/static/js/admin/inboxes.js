// Inboxes: create web-chat, email and API inboxes; the web-chat embed snippet with a Copy button
// and the widget's title and greeting per language;
// email in (address, IMAP) and out (from name; the SMTP relay is a server setting); API inbox
// secrets shown once; deactivate and activate.
//
// `config` is sent whole on PATCH: every form starts from the inbox's stored (masked) config and
// changes only its own keys, so business hours and other settings survive. A masked secret sent
// back ("********") keeps the stored value.
import { api } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { channelLabel } from "../lib/labels.js";
import { el, toast } from "../lib/shell.js";
import { codeBlock, confirmDialog, field, form, pill, problemText, sectionHeader, secretBox, uid, value } from "./forms.js";
import { AdminSection } from "./section.js";

const MASK = "********";

export { channelLabel };

/** The embed snippet of a web-chat inbox (docs/channels/webchat-widget.md). */
export function widgetSnippet(inbox) {
  const token = inbox.public_token.replace(/"/g, "&quot;");
  return `<script src="${window.location.origin}/widget.js" data-inbox="${token}" async></script>`;
}

function setOrDelete(target, key, v) {
  if (v === undefined || v === null || v === "") delete target[key];
  else target[key] = v;
}

// -- channel-specific fields -------------------------------------------------------------------

// The widget's title and greeting: text for every language, or one per language code
// (config.title = {"en": "Help", "ru": "Помощь"}). The first pair of fields is in the inbox's
// default language (config.default_language, "en" when unset); each other language is a row.
const LANGUAGE_CODE = /^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$/;
const sameCode = (code) => code.trim().toLowerCase().replace(/_/g, "-");

function textsByLanguage(config) {
  const def = typeof config.default_language === "string" && config.default_language ? config.default_language : "en";
  const byCode = new Map(); // normalised code -> {code, title, greeting}
  const entry = (code) => {
    const key = sameCode(code);
    if (!byCode.has(key)) byCode.set(key, { code, title: "", greeting: "" });
    return byCode.get(key);
  };
  entry(def);
  for (const key of ["title", "greeting"]) {
    const texts = config[key];
    if (typeof texts === "string") entry(def)[key] = texts;
    else if (texts && typeof texts === "object") for (const [code, text] of Object.entries(texts)) entry(code)[key] = String(text);
  }
  const main = byCode.get(sameCode(def));
  // By code: PostgreSQL keeps JSON object keys in its own order, so the stored order means nothing.
  const others = [...byCode.values()].filter((e) => e !== main).sort((a, b) => sameCode(a.code).localeCompare(sameCode(b.code)));
  return { def, main, others };
}

/** Codes must look like en, ru or pt-BR, and each language appears once (the default included). */
function checkLanguageCodes(root) {
  if (!root) return;
  const controls = [root.querySelector('[name="config.default_language"]'), ...[...root.querySelectorAll(".lang-row")].map((row) => row.codeInput)];
  const seen = new Set();
  for (const control of controls.filter(Boolean)) {
    const code = control.value.trim();
    let problem = "";
    if (code && !LANGUAGE_CODE.test(code)) problem = t("Use a language code like en, ru or pt-BR.");
    else if (code && seen.has(sameCode(code))) problem = t("{code} is listed twice.", { code });
    if (code) seen.add(sameCode(code));
    control.setCustomValidity(problem);
  }
}

function renumberLanguages(rows) {
  [...rows.querySelectorAll(".lang-row")].forEach((row, i) => {
    const n = i + 2; // language 1 is the default, above
    row.legendEl.textContent = t("Language {n}", { n });
    row.removeButton.setAttribute("aria-label", t("Remove language {n}", { n }));
  });
}

function languageRow(rows, entry = {}) {
  const code = field({ label: t("Language code"), name: "lang.code", value: entry.code || "", required: true, attrs: { maxlength: 20, spellcheck: "false", autocomplete: "off", placeholder: "ru" } });
  const title = field({ label: t("Title"), name: "lang.title", value: entry.title || "", attrs: { maxlength: 200 } });
  const greeting = field({ label: t("Greeting"), name: "lang.greeting", type: "textarea", value: entry.greeting || "", attrs: { maxlength: 1000, rows: 2 } });
  const legend = el("legend", {});
  const remove = el("button", { type: "button", class: "link" }, t("Remove"));
  const row = el("fieldset", { class: "lang-row" }, legend, code, title, greeting, el("div", { class: "actions" }, remove));
  Object.assign(row, { legendEl: legend, removeButton: remove, codeInput: code.control, titleInput: title.control, greetingInput: greeting.control });
  // Named after their language, so a server error about config.title.<code> lands beside them.
  const rename = () => {
    const lang = code.control.value.trim();
    title.control.name = lang ? `config.title.${lang}` : "lang.title";
    greeting.control.name = lang ? `config.greeting.${lang}` : "lang.greeting";
  };
  code.control.addEventListener("input", () => {
    rename();
    checkLanguageCodes(row.closest("form"));
  });
  remove.addEventListener("click", () => {
    const form = row.closest("form");
    row.remove();
    renumberLanguages(rows);
    checkLanguageCodes(form);
  });
  rows.append(row);
  rename();
  renumberLanguages(rows);
  return row;
}

function languageFields(config) {
  const { def, main, others } = textsByLanguage(config);
  const defaultLanguage = field({
    label: t("Language of this title and greeting"),
    name: "config.default_language",
    value: def,
    hint: t("A code like en, ru or pt-BR. Visitors whose language has no title or greeting of its own see these."),
    attrs: { maxlength: 20, spellcheck: "false", autocomplete: "off" },
  });
  defaultLanguage.control.addEventListener("input", () => checkLanguageCodes(defaultLanguage.control.closest("form")));
  const rows = el("div", { class: "lang-rows wide" });
  for (const entry of others) languageRow(rows, entry);
  const add = el("button", { type: "button", class: "secondary" }, t("Add a language"));
  add.addEventListener("click", () => {
    const row = languageRow(rows);
    checkLanguageCodes(row.closest("form"));
    row.codeInput.focus();
  });
  return [
    field({ label: t("Widget title"), name: "config.title", value: main.title, hint: t("Shown at the top of the chat window; the inbox name when empty."), attrs: { maxlength: 200 } }),
    field({ label: t("Greeting"), name: "config.greeting", type: "textarea", value: main.greeting, attrs: { maxlength: 1000, rows: 2 } }),
    defaultLanguage,
    el(
      "fieldset",
      { class: "languages" },
      el("legend", {}, t("Other languages")),
      el("p", { class: "hint muted wide" }, t("A visitor whose page or browser is in one of these languages sees its title and greeting.")),
      rows,
      el("div", { class: "actions wide" }, add),
    ),
  ];
}

function readLanguages(f, out) {
  const def = value(f, "config.default_language") || "en";
  const mainTitle = value(f, "config.title");
  const mainGreeting = value(f, "config.greeting");
  const rows = [...f.querySelectorAll(".lang-row")]
    .map((row) => ({ code: row.codeInput.value.trim(), title: row.titleInput.value.trim(), greeting: row.greetingInput.value.trim() }))
    .filter((row) => row.code);
  if (!rows.length) {
    setOrDelete(out, "title", mainTitle);
    setOrDelete(out, "greeting", mainGreeting);
  } else {
    const titles = {};
    const greetings = {};
    if (mainTitle) titles[def] = mainTitle;
    if (mainGreeting) greetings[def] = mainGreeting;
    for (const row of rows) {
      if (row.title) titles[row.code] = row.title;
      if (row.greeting) greetings[row.code] = row.greeting;
    }
    setOrDelete(out, "title", Object.keys(titles).length ? titles : null);
    setOrDelete(out, "greeting", Object.keys(greetings).length ? greetings : null);
  }
  setOrDelete(out, "default_language", def);
}

function webchatFields(config) {
  const prechat = config.prechat && typeof config.prechat === "object" ? config.prechat : {};
  const origins = Array.isArray(config.allowed_origins) ? config.allowed_origins.join("\n") : "";
  return [
    ...languageFields(config),
    field({ label: t("Accent colour"), name: "config.accent_color", type: "color", value: /^#[0-9a-fA-F]{6}$/.test(config.accent_color || "") ? config.accent_color : "#2563eb" }),
    field({ label: t("Ask for name and email before the first message"), name: "config.prechat.enabled", type: "checkbox", value: Boolean(prechat.enabled) }),
    field({ label: t("Require the email address"), name: "config.prechat.require_email", type: "checkbox", value: Boolean(prechat.require_email) }),
    field({
      label: t("Sites allowed to embed the widget"),
      name: "config.allowed_origins",
      type: "textarea",
      value: origins,
      hint: t("One per line, like https://shop.example. Empty: any site."),
      attrs: { rows: 2, spellcheck: "false" },
    }),
  ];
}

function readWebchat(f, config) {
  const out = { ...config };
  readLanguages(f, out);
  setOrDelete(out, "accent_color", value(f, "config.accent_color"));
  out.prechat = { enabled: value(f, "config.prechat.enabled"), require_email: value(f, "config.prechat.require_email") };
  const origins = value(f, "config.allowed_origins")
    .split(/\s+/)
    .map((s) => s.trim())
    .filter(Boolean);
  setOrDelete(out, "allowed_origins", origins.length ? origins : null);
  return out;
}

function emailFields(config) {
  const imap = config.imap && typeof config.imap === "object" ? config.imap : null;
  const imapFields = el(
    "fieldset",
    { class: "imap", disabled: !imap },
    el("legend", {}, t("IMAP mailbox")),
    field({ label: t("IMAP server"), name: "config.imap.host", value: imap?.host || "", required: true, attrs: { placeholder: "imap.example.com", spellcheck: "false" } }),
    field({ label: t("Port"), name: "config.imap.port", type: "number", value: imap?.port ?? "", hint: t("Empty: 993 with TLS, 143 without."), attrs: { min: 1, max: 65535 } }),
    field({ label: t("User name"), name: "config.imap.username", value: imap?.username || "", required: true, attrs: { autocomplete: "off", spellcheck: "false" } }),
    field({
      label: t("IMAP password"),
      name: "config.imap.password",
      type: "password",
      value: "",
      required: !imap?.password,
      hint: imap?.password ? t("Stored. Leave empty to keep it.") : "",
      attrs: { autocomplete: "new-password" },
    }),
    field({ label: t("Folder"), name: "config.imap.folder", value: imap?.folder || "INBOX" }),
    field({ label: t("TLS from the first byte (port 993)"), name: "config.imap.tls", type: "checkbox", value: imap ? imap.tls !== false : true }),
    field({ label: t("STARTTLS (port 143)"), name: "config.imap.starttls", type: "checkbox", value: Boolean(imap?.starttls) }),
  );
  const useImap = field({ label: t("Fetch mail from an IMAP mailbox"), name: "use_imap", type: "checkbox", value: Boolean(imap) });
  useImap.control.addEventListener("change", () => {
    imapFields.disabled = !useImap.control.checked;
  });
  return [
    el("h4", { class: "wide" }, t("Incoming mail")),
    field({
      label: t("Address customers write to"),
      name: "config.address",
      type: "email",
      value: config.address || "",
      hint: t("Mail to it reaches this inbox through the built-in SMTP receiver, or is fetched from the IMAP mailbox below."),
      attrs: { placeholder: "support@example.com", spellcheck: "false" },
    }),
    useImap,
    imapFields,
    el("h4", { class: "wide" }, t("Outgoing mail")),
    field({ label: t("Sender name"), name: "config.from_name", value: config.from_name || "", hint: t("Replies are sent from “Sender name <address>”."), attrs: { maxlength: 200, placeholder: "Acme Support" } }),
    el(
      "p",
      { class: "note wide" },
      t("Replies leave through the server's SMTP relay. The relay (host, port, user, password) is a server setting, FRONTDESK_SMTP_RELAY, not configured here."),
    ),
  ];
}

function readEmail(f, config) {
  const out = { ...config };
  setOrDelete(out, "address", value(f, "config.address"));
  setOrDelete(out, "from_name", value(f, "config.from_name"));
  if (value(f, "use_imap")) {
    const stored = config.imap && typeof config.imap === "object" ? config.imap : {};
    const imap = { ...stored };
    imap.host = value(f, "config.imap.host");
    setOrDelete(imap, "port", value(f, "config.imap.port"));
    imap.username = value(f, "config.imap.username");
    const password = f.querySelector('[name="config.imap.password"]').value;
    imap.password = password || (stored.password ? MASK : "");
    setOrDelete(imap, "folder", value(f, "config.imap.folder"));
    imap.tls = value(f, "config.imap.tls");
    imap.starttls = value(f, "config.imap.starttls");
    out.imap = imap;
  } else {
    delete out.imap;
  }
  return out;
}

function apiFields(config) {
  return [
    field({
      label: t("Webhook URL for agent replies"),
      name: "config.webhook_url",
      type: "url",
      value: config.webhook_url || "",
      hint: t("Frontdesk posts every agent reply in this inbox here, signed with the webhook secret."),
      attrs: { placeholder: "https://shop.example.com/frontdesk", spellcheck: "false" },
    }),
  ];
}

function readApi(f, config) {
  const out = { ...config };
  setOrDelete(out, "webhook_url", value(f, "config.webhook_url"));
  return out;
}

const CHANNELS = {
  webchat: { fields: webchatFields, read: readWebchat },
  email: { fields: emailFields, read: readEmail },
  api: { fields: apiFields, read: readApi },
};

// -- the section -------------------------------------------------------------------------------

class AdminInboxes extends AdminSection {
  constructor() {
    super();
    this.selected = null; // inbox id shown in the detail panel
    this.revealed = null; // {inbox_id, inbound_secret, webhook_secret} just created/rotated: shown once
  }

  async fetchData() {
    return api("GET", "/inboxes");
  }

  render(inboxes) {
    this.inboxes = inboxes;
    const table = el(
      "table",
      { class: "grid inboxes" },
      el("caption", { class: "visually-hidden" }, t("Inboxes")),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("Name")), el("th", { scope: "col" }, t("Channel")), el("th", { scope: "col" }, t("Status")), el("th", { scope: "col" }, t("Actions")))),
      el("tbody", {}, ...inboxes.map((inbox) => this.row(inbox))),
    );
    const selected = inboxes.find((i) => i.id === this.selected);
    this.replaceChildren(
      sectionHeader(t("Inboxes"), t("An inbox is one way customers reach you: a chat widget, a mailbox or an API integration.")),
      inboxes.length ? table : el("p", { class: "muted empty" }, t("No inboxes yet: create the first one below.")),
      selected ? this.detail(selected) : "",
      this.createForm(),
    );
  }

  row(inbox) {
    const open = el("button", { type: "button", class: "secondary", "aria-expanded": String(this.selected === inbox.id), "data-focus-key": `open-${inbox.id}` }, t("Settings"));
    open.setAttribute("aria-label", t("Settings of {name}", { name: inbox.name }));
    open.addEventListener("click", () => {
      this.selected = this.selected === inbox.id ? null : inbox.id;
      this.revealed = null;
      this.render(this.inboxes);
      const panel = this.querySelector(".inbox-detail h3");
      if (panel) panel.focus();
    });
    const toggle = el("button", { type: "button", class: "link", "data-focus-key": `toggle-${inbox.id}` }, inbox.is_active ? t("Deactivate") : t("Activate"));
    toggle.setAttribute("aria-label", inbox.is_active ? t("Deactivate {name}", { name: inbox.name }) : t("Activate {name}", { name: inbox.name }));
    toggle.addEventListener("click", async () => {
      try {
        if (inbox.is_active) {
          if (!(await confirmDialog(t("Deactivate {name}? It stops taking new messages; its conversations are kept.", { name: inbox.name }), t("Deactivate")))) return;
          await api("DELETE", `/inboxes/${inbox.id}`);
          toast(t("{name} is deactivated.", { name: inbox.name }));
        } else {
          await api("PATCH", `/inboxes/${inbox.id}`, { is_active: true });
          toast(t("{name} is active again.", { name: inbox.name }));
        }
        await this.reload();
      } catch (error) {
        toast(problemText(error), "error");
      }
    });
    return el(
      "tr",
      { dataset: { inboxId: inbox.id } },
      el("td", {}, inbox.name),
      el("td", {}, el("span", { class: `channel channel-${inbox.channel}` }, channelLabel(inbox.channel))),
      el("td", {}, inbox.is_active ? pill(t("Receiving"), "ok") : pill(t("Inactive"), "off")),
      el("td", { class: "row-actions" }, open, toggle),
    );
  }

  detail(inbox) {
    const headingId = uid("inbox");
    const config = inbox.config || {};
    const parts = [];
    if (inbox.channel === "webchat") {
      parts.push(
        el("p", {}, t("Paste this before </body> on every page of your site that should show the chat button:")),
        codeBlock(t("Embed snippet"), widgetSnippet(inbox)),
      );
    }
    if (inbox.channel === "api") {
      parts.push(el("p", {}, t("Your system posts customer messages to {path}, signed with the inbound secret.", { path: `${window.location.origin}/api/v1/inboxes/${inbox.id}/messages` })));
      if (this.revealed && this.revealed.inbox_id === inbox.id) {
        parts.push(
          el(
            "div",
            { class: "secrets" },
            this.revealed.inbound_secret && secretBox(t("Inbound secret (you sign requests with it)"), this.revealed.inbound_secret),
            this.revealed.webhook_secret && secretBox(t("Webhook secret (we sign replies with it)"), this.revealed.webhook_secret),
          ),
        );
      }
      const rotate = el("button", { type: "button", class: "secondary" }, t("Rotate secrets"));
      rotate.addEventListener("click", async () => {
        if (!(await confirmDialog(t("Replace both secrets of {name}? Requests signed with the old inbound secret are refused at once.", { name: inbox.name }), t("Rotate secrets")))) return;
        try {
          this.revealed = await api("POST", `/inboxes/${inbox.id}/secrets`, { secrets: ["inbound_secret", "webhook_secret"] });
          toast(t("New secrets created. Copy them now."));
          this.render(this.inboxes);
          const box = this.querySelector(".secret-box input");
          if (box) box.focus();
        } catch (error) {
          toast(problemText(error), "error");
        }
      });
      parts.push(el("div", { class: "actions" }, rotate));
    }
    const channel = CHANNELS[inbox.channel];
    const settings = form({
      title: t("Settings"),
      submitLabel: t("Save settings"),
      fields: [
        field({ label: t("Inbox name"), name: "name", value: inbox.name, required: true, attrs: { maxlength: 200 } }),
        ...(channel ? channel.fields(config) : []),
      ],
      onSubmit: async (f) => {
        const body = { name: value(f, "name") };
        if (channel) body.config = channel.read(f, config);
        await api("PATCH", `/inboxes/${inbox.id}`, body);
        toast(t("Settings of {name} saved.", { name: body.name }));
        await this.reload();
      },
    });
    const hours = el("a", { href: `#hours/${inbox.id}` }, t("Business hours of this inbox"));
    return el(
      "section",
      { class: "card inbox-detail", "aria-labelledby": headingId, dataset: { inboxId: inbox.id } },
      el("h3", { id: headingId, tabindex: "-1" }, inbox.name, " ", el("span", { class: `channel channel-${inbox.channel}` }, channelLabel(inbox.channel))),
      ...parts,
      settings,
      el("p", {}, hours),
    );
  }

  createForm() {
    const channelSlot = el("div", { class: "fields channel-fields" });
    const channelField = field({
      label: t("Channel"),
      name: "channel",
      options: Object.keys(CHANNELS).map((c) => [c, channelLabel(c)]),
      value: "webchat",
    });
    const fill = () => channelSlot.replaceChildren(...CHANNELS[channelField.control.value].fields({}));
    channelField.control.addEventListener("change", fill);
    fill();
    return form({
      title: t("Create an inbox"),
      submitLabel: t("Create inbox"),
      className: "create-inbox",
      fields: [field({ label: t("Inbox name"), name: "name", required: true, attrs: { maxlength: 200, autocomplete: "off" } }), channelField],
      extra: [channelSlot],
      onSubmit: async (f) => {
        const channel = value(f, "channel");
        const body = { name: value(f, "name"), channel, config: CHANNELS[channel].read(f, {}) };
        const inbox = await api("POST", "/inboxes", body);
        this.selected = inbox.id;
        this.revealed = null;
        if (channel === "api") {
          // Secrets are generated on create but never read back: rotate once to show them.
          this.revealed = await api("POST", `/inboxes/${inbox.id}/secrets`, { secrets: ["inbound_secret", "webhook_secret"] });
        }
        toast(t("Inbox {name} created.", { name: inbox.name }));
        await this.reload();
        const heading = this.querySelector(".inbox-detail h3");
        if (heading) heading.focus();
      },
    });
  }
}

customElements.define("fd-admin-inboxes", AdminInboxes);
