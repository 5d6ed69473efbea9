// Canned responses shared by everyone (scope "global"): create, edit, delete. Agents keep their
// personal ones in the desk; those are not listed here.
import { api } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";
import { confirmDialog, field, form, items, problemText, sectionHeader, uid, value } from "./forms.js";
import { AdminSection } from "./section.js";

function cannedFields(item = {}) {
  return [
    field({
      label: t("Shortcut"),
      name: "shortcut",
      value: item.shortcut || "",
      required: true,
      hint: t("Letters a–z, digits, _ and -. Agents type / and the shortcut in the reply box, e.g. /refund."),
      attrs: { maxlength: 64, autocomplete: "off", spellcheck: "false", pattern: "/?[A-Za-z0-9_\\-]+" },
    }),
    field({ label: t("Title"), name: "title", value: item.title || "", required: true, attrs: { maxlength: 200, autocomplete: "off" } }),
    field({
      label: t("Text"),
      name: "body",
      type: "textarea",
      value: item.body || "",
      required: true,
      hint: t("Variables are filled in when an agent uses it: {{customer.first_name}}, {{customer.name}}, {{agent.name}}, {{conversation.id}}."),
      attrs: { maxlength: 20000, rows: 4 },
    }),
  ];
}

function readCanned(f) {
  return { shortcut: value(f, "shortcut").replace(/^\//, ""), title: value(f, "title"), body: f.querySelector("[name=body]").value };
}

class AdminCanned extends AdminSection {
  async fetchData() {
    return items(await api("GET", "/canned-responses"));
  }

  render(all) {
    const globals = all.filter((c) => !c.scope || c.scope === "global");
    const list = globals.length
      ? el("div", { class: "cards" }, ...globals.map((item) => this.card(item)))
      : el("p", { class: "muted empty" }, t("No shared canned responses yet."));
    const create = form({
      title: t("Add a canned response"),
      submitLabel: t("Create canned response"),
      fields: cannedFields(),
      onSubmit: async (f) => {
        const made = await api("POST", "/canned-responses", { ...readCanned(f), scope: "global" });
        toast(t("Canned response /{shortcut} created.", { shortcut: made.shortcut }));
        f.reset();
        await this.reload();
      },
    });
    this.replaceChildren(sectionHeader(t("Canned responses"), t("Shared answers every agent can insert into a reply.")), list, create);
  }

  card(item) {
    const headingId = uid("canned");
    const edit = form({
      submitLabel: t("Save"),
      fields: cannedFields(item),
      onSubmit: async (f) => {
        await api("PATCH", `/canned-responses/${item.id}`, readCanned(f));
        toast(t("Canned response saved."));
        await this.reload();
      },
    });
    const remove = el("button", { type: "button", class: "secondary danger-text" }, t("Delete"));
    remove.setAttribute("aria-label", t("Delete /{shortcut}", { shortcut: item.shortcut }));
    remove.addEventListener("click", async () => {
      if (!(await confirmDialog(t("Delete the canned response /{shortcut}?", { shortcut: item.shortcut }), t("Delete")))) return;
      try {
        await api("DELETE", `/canned-responses/${item.id}`);
        toast(t("Canned response deleted."));
        await this.reload();
      } catch (error) {
        toast(problemText(error), "error");
      }
    });
    return el(
      "article",
      { class: "card canned", "aria-labelledby": headingId, dataset: { cannedId: item.id } },
      el("h3", { id: headingId }, el("code", {}, `/${item.shortcut}`), " ", item.title),
      el("p", { class: "canned-body" }, item.body),
      el("details", {}, el("summary", {}, t("Edit")), edit),
      el("div", { class: "actions" }, remove),
    );
  }
}

customElements.define("fd-admin-canned", AdminCanned);
