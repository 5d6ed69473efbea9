// Users & roles: list, create with a password, change role, disable and enable again.
import { api } from "../lib/api.js";
import { boot, t } from "../lib/boot.js";
import { options, roleLabel } from "../lib/labels.js";
import { el, toast } from "../lib/shell.js";
import { formatShort } from "../lib/time.js";
import { confirmDialog, field, form, pill, problemText, sectionHeader, value } from "./forms.js";
import { AdminSection } from "./section.js";

export { roleLabel };

export function roleOptions() {
  return options("role");
}

class AdminUsers extends AdminSection {
  async fetchData() {
    return api("GET", "/users");
  }

  render(users) {
    const createForm = form({
      title: t("Add a user"),
      submitLabel: t("Create user"),
      className: "inline-form",
      fields: [
        field({ label: t("Name"), name: "name", required: true, attrs: { maxlength: 200, autocomplete: "off" } }),
        field({ label: t("Email"), name: "email", type: "email", required: true, attrs: { maxlength: 320, autocomplete: "off" } }),
        field({
          label: t("Password"),
          name: "password",
          type: "password",
          required: true,
          hint: t("At least 8 characters. Give it to the person privately; they can change it."),
          attrs: { minlength: 8, maxlength: 1024, autocomplete: "new-password" },
        }),
        field({ label: t("Role"), name: "role", options: roleOptions(), value: "agent" }),
        field({ label: t("Language"), name: "locale", options: [["", t("Browser's choice")], ["en", "English"], ["ru", "Русский"]] }),
      ],
      onSubmit: async (f) => {
        const body = { name: value(f, "name"), email: value(f, "email"), password: f.querySelector("[name=password]").value, role: value(f, "role") };
        if (value(f, "locale")) body.locale = value(f, "locale");
        const user = await api("POST", "/users", body);
        toast(t("User {name} created.", { name: user.name }));
        f.reset();
        await this.reload();
      },
    });

    const rows = users.map((user) => this.row(user));
    const table = el(
      "table",
      { class: "grid users" },
      el("caption", { class: "visually-hidden" }, t("Users")),
      el(
        "thead",
        {},
        el("tr", {}, el("th", { scope: "col" }, t("Name")), el("th", { scope: "col" }, t("Email")), el("th", { scope: "col" }, t("Role")), el("th", { scope: "col" }, t("Status")), el("th", { scope: "col" }, t("Last sign-in")), el("th", { scope: "col" }, t("Actions"))),
      ),
      el("tbody", {}, ...rows),
    );
    this.replaceChildren(sectionHeader(t("Users & roles"), t("Agents answer conversations; supervisors also see the wallboard and manage teams; admins configure everything.")), table, createForm);
  }

  row(user) {
    const self = boot.user && boot.user.id === user.id;
    const role = el("select", { "aria-label": t("Role of {name}", { name: user.name }), disabled: self || !user.is_active, "data-focus-key": `role-${user.id}` });
    for (const [v, label] of roleOptions()) role.append(el("option", { value: v }, label));
    role.value = user.role;
    if (self) role.title = t("You cannot change your own role.");
    role.addEventListener("change", async () => {
      const previous = user.role;
      role.disabled = true;
      try {
        const updated = await api("PATCH", `/users/${user.id}`, { role: role.value });
        user.role = updated.role;
        toast(t("{name} is now {role}.", { name: user.name, role: roleLabel(updated.role) }));
      } catch (error) {
        role.value = previous;
        toast(problemText(error), "error");
      } finally {
        role.disabled = false;
      }
    });

    let action;
    if (self) {
      action = el("span", { class: "muted" }, t("You"));
    } else if (user.is_active) {
      action = el("button", { type: "button", class: "secondary danger-text", "data-focus-key": `toggle-${user.id}` }, t("Disable"));
      action.setAttribute("aria-label", t("Disable {name}", { name: user.name }));
      action.addEventListener("click", async () => {
        const sure = await confirmDialog(t("Disable {name}? They are signed out at once and their API tokens stop working.", { name: user.name }), t("Disable"));
        if (!sure) return;
        try {
          await api("POST", `/users/${user.id}/disable`);
          toast(t("{name} is disabled.", { name: user.name }));
          await this.reload();
        } catch (error) {
          toast(problemText(error), "error");
        }
      });
    } else {
      action = el("button", { type: "button", class: "secondary", "data-focus-key": `toggle-${user.id}` }, t("Enable"));
      action.setAttribute("aria-label", t("Enable {name}", { name: user.name }));
      action.addEventListener("click", async () => {
        try {
          await api("PATCH", `/users/${user.id}`, { is_active: true });
          toast(t("{name} can sign in again.", { name: user.name }));
          await this.reload();
        } catch (error) {
          toast(problemText(error), "error");
        }
      });
    }
    return el(
      "tr",
      { dataset: { userId: user.id }, class: user.is_active ? "" : "inactive" },
      el("td", {}, user.name),
      el("td", {}, user.email),
      el("td", {}, role),
      el("td", {}, user.is_active ? pill(t("Can sign in"), "ok") : pill(t("Disabled"), "off")),
      el("td", {}, user.last_login_at ? formatShort(user.last_login_at) : el("span", { class: "muted" }, t("Never"))),
      el("td", {}, action),
    );
  }
}

customElements.define("fd-admin-users", AdminUsers);
