// Teams: create, rename, delete, add and remove members.
import { api } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";
import { confirmDialog, field, form, problemText, sectionHeader, showProblem, uid, value } from "./forms.js";
import { AdminSection } from "./section.js";
import { roleLabel } from "./users.js";

class AdminTeams extends AdminSection {
  async fetchData() {
    const [teams, users] = await Promise.all([api("GET", "/teams"), api("GET", "/users")]);
    return { teams, users };
  }

  render({ teams, users }) {
    const byId = new Map(users.map((u) => [u.id, u]));
    const createForm = form({
      title: t("Create a team"),
      submitLabel: t("Create team"),
      className: "inline-form",
      fields: [
        field({ label: t("Team name"), name: "name", required: true, attrs: { maxlength: 200, autocomplete: "off" } }),
        field({ label: t("Description"), name: "description", attrs: { maxlength: 2000, autocomplete: "off" } }),
      ],
      onSubmit: async (f) => {
        const body = { name: value(f, "name") };
        if (value(f, "description")) body.description = value(f, "description");
        const team = await api("POST", "/teams", body);
        toast(t("Team {name} created.", { name: team.name }));
        f.reset();
        await this.reload();
      },
    });
    const list = teams.length
      ? el("div", { class: "cards" }, ...teams.map((team) => this.card(team, users, byId)))
      : el("p", { class: "muted empty" }, t("No teams yet."));
    this.replaceChildren(sectionHeader(t("Teams"), t("Teams group agents; conversations can be assigned to a team.")), list, createForm);
  }

  card(team, users, byId) {
    const headingId = uid("team");
    const rename = form({
      submitLabel: t("Rename"),
      className: "row-form",
      fields: [field({ label: t("Team name"), name: "name", value: team.name, required: true, attrs: { maxlength: 200, "data-focus-key": `name-${team.id}` } })],
      onSubmit: async (f) => {
        const updated = await api("PATCH", `/teams/${team.id}`, { name: value(f, "name") });
        toast(t("Team renamed to {name}.", { name: updated.name }));
        await this.reload();
      },
    });

    const members = team.member_ids.map((id) => byId.get(id)).filter(Boolean);
    const memberList = members.length
      ? el(
          "ul",
          { class: "members", "aria-label": t("Members") },
          ...members.map((member) => {
            const remove = el("button", { type: "button", class: "link", "aria-label": t("Remove {name} from {team}", { name: member.name, team: team.name }), "data-focus-key": `rm-${team.id}-${member.id}` }, t("Remove"));
            remove.addEventListener("click", async () => {
              try {
                await api("DELETE", `/teams/${team.id}/members/${member.id}`);
                toast(t("{name} removed from {team}.", { name: member.name, team: team.name }));
                await this.reload();
              } catch (error) {
                toast(problemText(error), "error");
              }
            });
            return el("li", {}, el("span", {}, member.name), el("span", { class: "muted" }, ` · ${roleLabel(member.role)}`), remove);
          }),
        )
      : el("p", { class: "muted" }, t("No members yet."));

    const candidates = users.filter((u) => u.is_active && !team.member_ids.includes(u.id));
    const add = form({
      submitLabel: t("Add member"),
      className: "row-form",
      fields: [
        field({
          label: t("Add a member"),
          name: "user_id",
          required: true,
          options: [["", t("Choose a person…")], ...candidates.map((u) => [u.id, `${u.name} (${u.email})`])],
          attrs: { "data-focus-key": `add-${team.id}` },
        }),
      ],
      onSubmit: async (f) => {
        const userId = value(f, "user_id");
        await api("PUT", `/teams/${team.id}/members/${userId}`);
        toast(t("{name} added to {team}.", { name: byId.get(userId)?.name || "", team: team.name }));
        await this.reload();
      },
    });

    const remove = el("button", { type: "button", class: "secondary danger-text" }, t("Delete team"));
    remove.setAttribute("aria-label", t("Delete team {name}", { name: team.name }));
    remove.addEventListener("click", async () => {
      if (!(await confirmDialog(t("Delete the team {name}? Its conversations stay, without a team.", { name: team.name }), t("Delete team")))) return;
      try {
        await api("DELETE", `/teams/${team.id}`);
        toast(t("Team {name} deleted.", { name: team.name }));
        await this.reload();
      } catch (error) {
        showProblem(rename, error);
      }
    });

    return el(
      "article",
      { class: "card team", "aria-labelledby": headingId, dataset: { teamId: team.id } },
      el("h3", { id: headingId }, team.name),
      team.description && el("p", { class: "muted" }, team.description),
      rename,
      el("h4", {}, t("Members")),
      memberList,
      add,
      el("div", { class: "card-footer" }, remove),
    );
  }
}

customElements.define("fd-admin-teams", AdminTeams);
