// Skills: what an agent knows (a language, a product, billing…). Queues require skills at a
// minimum level; each agent has a level from 1 to 10 in the skills they have (Agents' routing).
import { api } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";
import { confirmDialog, field, form, problemText, sectionHeader, value } from "./forms.js";
import { AdminSection } from "./section.js";

function skillFields(skill = {}) {
  return [
    field({ label: t("Skill name"), name: "name", value: skill.name || "", required: true, attrs: { maxlength: 100, autocomplete: "off" } }),
    field({ label: t("Description"), name: "description", value: skill.description || "", attrs: { maxlength: 2000, autocomplete: "off" } }),
  ];
}

class AdminSkills extends AdminSection {
  async fetchData() {
    const [skills, queues] = await Promise.all([api("GET", "/skills"), api("GET", "/queues")]);
    return { skills, queues };
  }

  render({ skills, queues }) {
    const usedBy = new Map();
    for (const queue of queues) {
      for (const required of queue.required_skills || []) {
        if (!usedBy.has(required.skill_id)) usedBy.set(required.skill_id, []);
        usedBy.get(required.skill_id).push(t("{queue} (level {level}+)", { queue: queue.name, level: required.min_level }));
      }
    }
    const rows = skills.map((skill) => this.row(skill, usedBy.get(skill.id) || []));
    const table = skills.length
      ? el(
          "table",
          { class: "grid skills" },
          el("caption", { class: "visually-hidden" }, t("Skills")),
          el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("Skill")), el("th", { scope: "col" }, t("Required by")), el("th", { scope: "col" }, t("Actions")))),
          el("tbody", {}, ...rows),
        )
      : el("p", { class: "muted empty" }, t("No skills yet."));
    const create = form({
      title: t("Add a skill"),
      submitLabel: t("Create skill"),
      className: "inline-form",
      fields: skillFields(),
      onSubmit: async (f) => {
        const body = { name: value(f, "name") };
        if (value(f, "description")) body.description = value(f, "description");
        const skill = await api("POST", "/skills", body);
        toast(t("Skill {name} created.", { name: skill.name }));
        f.reset();
        await this.reload();
      },
    });
    this.replaceChildren(
      sectionHeader(t("Skills"), t("What agents know. A queue offers its conversations only to agents with the skills it requires, at the level it asks; among them the most skilled come first.")),
      table,
      create,
    );
  }

  row(skill, requiredBy) {
    const edit = form({
      submitLabel: t("Save"),
      className: "row-form",
      fields: skillFields(skill).map((f) => {
        f.control.dataset.focusKey = `${f.dataset.field}-${skill.id}`;
        return f;
      }),
      onSubmit: async (f) => {
        const updated = await api("PATCH", `/skills/${skill.id}`, { name: value(f, "name"), description: value(f, "description") || null });
        toast(t("Skill {name} saved.", { name: updated.name }));
        await this.reload();
      },
    });
    const remove = el("button", { type: "button", class: "secondary danger-text", "data-focus-key": `rm-${skill.id}` }, t("Delete"));
    remove.setAttribute("aria-label", t("Delete the skill {name}", { name: skill.name }));
    remove.addEventListener("click", async () => {
      if (!(await confirmDialog(t("Delete the skill {name}? Agents lose it.", { name: skill.name }), t("Delete")))) return;
      try {
        await api("DELETE", `/skills/${skill.id}`);
        toast(t("Skill {name} deleted.", { name: skill.name }));
        await this.reload();
      } catch (error) {
        toast(problemText(error), "error");
      }
    });
    return el(
      "tr",
      { dataset: { skillId: skill.id } },
      el("th", { scope: "row" }, el("span", { class: "skill-name" }, skill.name), skill.description ? el("p", { class: "muted small" }, skill.description) : null),
      el("td", {}, requiredBy.length ? requiredBy.join(", ") : el("span", { class: "muted" }, t("No queue requires it."))),
      el("td", {}, el("details", {}, el("summary", {}, t("Edit")), edit), remove),
    );
  }
}

customElements.define("fd-admin-skills", AdminSkills);
