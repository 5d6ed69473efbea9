// Agents' routing: each person's skill levels and capacity profile (PUT
// /agents/{id}/routing-profile). Capacity: at most so many conversations at once per channel AND
// a shared budget each conversation uses part of (a call 100, a chat 25, an email 10), after-call
// work time, and which channel may not interrupt which. One person at a time, picked in the list
// (deep link: #agents/<user id>).
import { api } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { channelLabel, codes, roleLabel } from "../lib/labels.js";
import { el, toast } from "../lib/shell.js";
import { checkGroup, checked, num, numberField } from "./choices.js";
import { field, form, sectionHeader, uid } from "./forms.js";
import { AdminSection } from "./section.js";

const LEVELS = [["", null], ...Array.from({ length: 10 }, (_, i) => [String(i + 1), i + 1])];

class AdminProfiles extends AdminSection {
  constructor() {
    super();
    this.userId = null;
  }

  /** Show one person's routing (from the #agents/<id> deep link). */
  select(userId) {
    this.userId = userId || null;
    if (this.data) this.render(this.data);
  }

  async fetchData() {
    const [users, skills, teams] = await Promise.all([api("GET", "/users"), api("GET", "/skills"), api("GET", "/teams")]);
    const people = users.filter((u) => u.is_active);
    return { people, skills, teams };
  }

  render(data) {
    this.data = data;
    const { people } = data;
    if (!people.length) {
      this.replaceChildren(sectionHeader(t("Agents' routing")), el("p", { class: "muted empty" }, t("No users yet.")));
      return;
    }
    if (!people.some((p) => p.id === this.userId)) this.userId = (people.find((p) => p.role === "agent") || people[0]).id;
    const picker = field({
      label: t("Person"),
      name: "person",
      options: people.map((p) => [p.id, `${p.name} · ${roleLabel(p.role)}`]),
      value: this.userId,
    });
    picker.control.addEventListener("change", () => {
      history.replaceState(null, "", `#agents/${picker.control.value}`);
      this.select(picker.control.value);
      const again = this.querySelector("[name=person]");
      if (again) again.focus();
    });
    this.editorSlot = el("div", { class: "profile-slot" }, el("p", { class: "muted" }, t("Loading…")));
    this.replaceChildren(
      sectionHeader(
        t("Agents' routing"),
        t("Each person's skills and how much work routing gives them at once. Routing offers a conversation only to someone with room for it on its channel and in their budget."),
      ),
      el("div", { class: "inline-form" }, picker),
      this.editorSlot,
    );
    this.load(this.userId);
  }

  async load(userId) {
    // Only the newest load fills the editor: an older answer arriving late (the same person picked
    // twice, or another person) would otherwise replace a form the admin is already editing.
    const seq = (this.loadSeq = (this.loadSeq || 0) + 1);
    const slot = this.editorSlot;
    const person = this.data.people.find((p) => p.id === userId);
    let profile;
    try {
      profile = await api("GET", `/agents/${userId}/routing-profile`);
    } catch (error) {
      if (seq === this.loadSeq) slot.replaceChildren(el("p", { class: "error", role: "alert" }, t("Error: {detail}", { detail: error.message })));
      return;
    }
    if (seq !== this.loadSeq || userId !== this.userId) return; // a newer load, or another person, meanwhile
    slot.replaceChildren(this.editor(person, profile));
  }

  editor(person, profile) {
    const { skills, teams } = this.data;
    const levels = new Map((profile.skills || []).map((s) => [s.skill_id, s.level]));

    const skillRows = skills.map((skill) => {
      const id = uid("level");
      const select = el("select", { id, dataset: { skillId: skill.id }, "aria-describedby": `${id}-hint` });
      for (const [v, n] of LEVELS) select.append(el("option", { value: v }, n === null ? t("Does not have it") : t("Level {n}", { n })));
      select.value = levels.has(skill.id) ? String(levels.get(skill.id)) : "";
      return el("tr", {}, el("th", { scope: "row" }, el("label", { for: id }, skill.name)), el("td", {}, select), el("td", { id: `${id}-hint`, class: "muted small" }, skill.description || ""));
    });
    const skillsBlock = el(
      "fieldset",
      { name: "skills", class: "wide table-fieldset", tabindex: "-1", id: uid("skills") },
      el("legend", {}, t("Skills and levels (1–10)")),
      skills.length
        ? el(
            "table",
            { class: "grid" },
            el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("Skill")), el("th", { scope: "col" }, t("Level")), el("th", { scope: "col" }, t("Description")))),
            el("tbody", {}, ...skillRows),
          )
        : el("p", { class: "muted" }, t("No skills yet: add them under Skills.")),
    );
    skillsBlock.append(el("p", { id: `${skillsBlock.id}-error`, class: "field-error", hidden: true }));

    const channelRows = codes("channel").map((channel) => {
      const max = numberField({ label: t("At most at once"), name: `max_per_channel.${channel}`, value: profile.max_per_channel[channel] ?? null, max: 1000, required: false });
      const cost = numberField({ label: t("Budget used by each"), name: `cost.${channel}`, value: profile.cost[channel] ?? null, max: 100000, required: false });
      for (const [wrapper, what] of [
        [max, t("{channel}: at most at once", { channel: channelLabel(channel) })],
        [cost, t("{channel}: budget used by each", { channel: channelLabel(channel) })],
      ]) {
        wrapper.querySelector("label").classList.add("visually-hidden");
        wrapper.querySelector("label").textContent = what;
      }
      return el("tr", { dataset: { channel } }, el("th", { scope: "row" }, channelLabel(channel)), el("td", {}, max), el("td", {}, cost));
    });
    const capacity = el(
      "fieldset",
      { class: "wide table-fieldset" },
      el("legend", {}, t("Capacity per channel")),
      el(
        "table",
        { class: "grid capacity" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("Channel")), el("th", { scope: "col" }, t("At most at once")), el("th", { scope: "col" }, t("Budget used by each")))),
        el("tbody", {}, ...channelRows),
      ),
      el("p", { class: "hint muted" }, t("Leave “at most at once” empty for a channel this person does not work on.")),
    );

    const blocks = el(
      "fieldset",
      { class: "wide blocks" },
      el("legend", {}, t("Interruptions")),
      el("p", { class: "hint muted" }, t("While this person has work on a channel, the channels ticked next to it are not offered to them (nothing interrupts a call, say).")),
      ...codes("channel").map((channel) =>
        checkGroup({
          legend: t("While busy with {channel}, do not offer", { channel: channelLabel(channel) }),
          name: `blocks.${channel}`,
          options: codes("channel")
            .filter((other) => other !== channel)
            .map((other) => [other, channelLabel(other)]),
          values: (profile.blocks || {})[channel] || [],
          className: "inline-checks",
        }),
      ),
    );

    const teamNames = new Map(teams.map((team) => [team.id, team.name]));
    const memberOf = (profile.teams || []).map((id) => teamNames.get(id)).filter(Boolean);
    const headingId = uid("profile");
    const editor = form({
      title: t("Routing of {name}", { name: person.name }),
      submitLabel: t("Save routing"),
      className: "profile-editor",
      fields: [
        el(
          "p",
          { class: "note wide" },
          profile.is_default ? t("Uses the default capacity until saved here.") : t("Has a capacity profile of their own."),
          " ",
          memberOf.length ? t("Teams: {teams} (changed under Teams).", { teams: memberOf.join(", ") }) : t("In no team."),
        ),
        skillsBlock,
        capacity,
        numberField({ label: t("Budget (shared by all channels)"), name: "budget", value: profile.budget, min: 1, max: 100000 }),
        numberField({ label: t("After-call work (seconds)"), name: "after_call_work_seconds", value: profile.after_call_work_seconds, hint: t("Time to wrap up after a call before the next one is offered.") }),
        blocks,
      ],
      onSubmit: async (f) => {
        const body = {
          skills: [...f.querySelectorAll("select[data-skill-id]")].filter((s) => s.value).map((s) => ({ skill_id: s.dataset.skillId, level: Number(s.value) })),
          max_per_channel: {},
          cost: {},
          blocks: {},
          budget: num(f, "budget"),
          after_call_work_seconds: num(f, "after_call_work_seconds"),
        };
        for (const channel of codes("channel")) {
          const max = num(f, `max_per_channel.${channel}`);
          const cost = num(f, `cost.${channel}`);
          if (max !== null) body.max_per_channel[channel] = max;
          if (cost !== null) body.cost[channel] = cost;
          const blocked = checked(f, `blocks.${channel}`);
          if (blocked.length) body.blocks[channel] = blocked;
        }
        await api("PUT", `/agents/${person.id}/routing-profile`, body);
        toast(t("Routing of {name} saved.", { name: person.name }));
        await this.load(person.id);
        const heading = this.editorSlot.querySelector("h3");
        if (heading) {
          heading.setAttribute("tabindex", "-1");
          heading.focus();
        }
      },
    });
    editor.setAttribute("aria-labelledby", headingId);
    editor.querySelector("h3").id = headingId;
    return editor;
  }
}

customElements.define("fd-admin-profiles", AdminProfiles);
