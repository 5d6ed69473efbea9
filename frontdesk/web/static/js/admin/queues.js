// Queues: where routing puts conversations and how it offers them — channels served, required
// skills (with a minimum level), priority, the service-level target, how an agent is picked,
// sticky wait, offer timeout, auto-accept, teams, ageing, bullseye rings and overflow.
// Every field maps to one of POST/PATCH /queues (docs/architecture/routing.md); the server's
// validation errors are shown next to the field they name.
import { ApiError, api } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { channelLabel, options as labelOptions } from "../lib/labels.js";
import { el, toast } from "../lib/shell.js";
import { formatSpan } from "../lib/time.js";
import { checkGroup, checked, joined, num, numberField, readRows, rowsEditor } from "./choices.js";
import { confirmDialog, field, form, problemText, sectionHeader, uid, value } from "./forms.js";
import { AdminSection } from "./section.js";

const DEFAULTS = {
  channels: ["webchat"],
  priority: 50,
  service_level_percent: 80,
  service_level_seconds: 60,
  required_skills: [],
  team_ids: [],
  selection: "longest_idle",
  sticky_wait_seconds: 0,
  offer_timeout_seconds: 30,
  auto_accept: false,
  ageing_per_minute: 1,
  handle_time_seconds: 300,
  redecline_after_seconds: 60,
  bullseye: [],
  overflow_queue_id: null,
  overflow_after_seconds: null,
};

class AdminQueues extends AdminSection {
  constructor() {
    super();
    this.editing = null; // the queue id whose editor is open, "new" for the create form
  }

  async fetchData() {
    const [queues, skills, teams] = await Promise.all([api("GET", "/queues"), api("GET", "/skills"), api("GET", "/teams")]);
    return { queues, skills, teams };
  }

  render(data) {
    this.data = data;
    const { queues } = data;
    const table = queues.length
      ? el(
          "table",
          { class: "grid queues" },
          el("caption", { class: "visually-hidden" }, t("Queues")),
          el(
            "thead",
            {},
            el(
              "tr",
              {},
              el("th", { scope: "col" }, t("Queue")),
              el("th", { scope: "col" }, t("Channels")),
              el("th", { scope: "col" }, t("Priority")),
              el("th", { scope: "col" }, t("Target")),
              el("th", { scope: "col" }, t("Required skills")),
              el("th", { scope: "col" }, t("Actions")),
            ),
          ),
          el("tbody", {}, ...queues.map((queue) => this.row(queue))),
        )
      : el("p", { class: "muted empty" }, t("No queues yet. Conversations then wait unrouted."));
    const add = el("button", { type: "button", "data-focus-key": "new-queue" }, t("Add a queue"));
    add.addEventListener("click", () => this.open("new"));
    this.editorSlot = el("div", { class: "queue-editor-slot" });
    this.replaceChildren(
      sectionHeader(
        t("Queues"),
        t("Routing puts every conversation in a queue (by the routing rules, else the highest-priority queue serving its channel) and offers it to the best agent the queue allows."),
      ),
      table,
      el("div", { class: "actions" }, add),
      this.editorSlot,
    );
    if (this.editing) this.open(this.editing, { focus: false });
  }

  row(queue) {
    const edit = el("button", { type: "button", class: "secondary", "data-focus-key": `edit-${queue.id}` }, t("Edit"));
    edit.setAttribute("aria-label", t("Edit the queue {name}", { name: queue.name }));
    edit.addEventListener("click", () => this.open(queue.id));
    const remove = el("button", { type: "button", class: "secondary danger-text", "data-focus-key": `rm-${queue.id}` }, t("Delete"));
    remove.setAttribute("aria-label", t("Delete the queue {name}", { name: queue.name }));
    remove.addEventListener("click", () => this.remove(queue));
    const skills = (queue.required_skills || []).map((r) => t("{skill} ≥ {level}", { skill: r.name, level: r.min_level }));
    return el(
      "tr",
      { dataset: { queueId: queue.id } },
      el("th", { scope: "row" }, queue.name, queue.auto_accept ? el("span", { class: "pill" }, t("Auto-accept")) : null),
      el("td", {}, joined(queue.channels.map(channelLabel))),
      el("td", {}, String(queue.priority)),
      el("td", {}, t("{percent}% in {time}", { percent: queue.service_level_percent, time: formatSpan(queue.service_level_seconds) })),
      el("td", {}, joined(skills)),
      el("td", {}, el("div", { class: "row-actions" }, edit, remove)),
    );
  }

  async remove(queue) {
    if (!(await confirmDialog(t("Delete the queue {name}? Its conversations stay, in no queue.", { name: queue.name }), t("Delete")))) return;
    try {
      await api("DELETE", `/queues/${queue.id}`);
      toast(t("Queue {name} deleted.", { name: queue.name }));
      if (this.editing === queue.id) this.editing = null;
      await this.reload();
    } catch (error) {
      toast(problemText(error), "error");
    }
  }

  /** Show the editor of one queue ("new": the create form) under the list. */
  open(id, { focus = true } = {}) {
    const queue = id === "new" ? null : this.data.queues.find((q) => q.id === id);
    if (id !== "new" && !queue) {
      this.editing = null;
      this.editorSlot.replaceChildren();
      return;
    }
    this.editing = id;
    const editor = this.editor(queue);
    this.editorSlot.replaceChildren(editor);
    if (focus) {
      const heading = editor.querySelector("h3");
      heading.setAttribute("tabindex", "-1");
      heading.focus();
      editor.scrollIntoView({ block: "start" });
    }
  }

  editor(queue) {
    const { queues, skills, teams } = this.data;
    const q = { ...DEFAULTS, ...(queue || {}) };
    const teamOptions = teams.map((team) => [team.id, team.name]);
    const skillOptions = [["", t("Choose a skill…")], ...skills.map((s) => [s.id, s.name])];

    const required = rowsEditor({
      legend: t("Required skills"),
      name: "required_skills",
      rows: q.required_skills,
      addLabel: t("Add a required skill"),
      removeLabel: () => t("Remove this required skill"),
      empty: t("None: any agent serving the channels may take them."),
      make: (row) => {
        const skill = field({ label: t("Skill"), name: "", options: skillOptions, value: row ? row.skill_id : "", required: true });
        skill.control.dataset.rowField = "skill_id";
        const level = numberField({ label: t("Minimum level (1–10)"), name: "", value: row ? row.min_level : 1, min: 1, max: 10 });
        level.control.dataset.rowField = "min_level";
        return [skill, level];
      },
    });

    const rings = rowsEditor({
      legend: t("Bullseye: widen the pool while a conversation waits"),
      name: "bullseye",
      rows: q.bullseye,
      addLabel: t("Add a ring"),
      removeLabel: () => t("Remove this ring"),
      empty: t("No rings: only agents who meet the requirements are offered conversations."),
      make: (row) => {
        const after = numberField({ label: t("After waiting (seconds)"), name: "", value: row ? row.after_seconds : 60, min: 1 });
        after.control.dataset.rowField = "after_seconds";
        const drop = numberField({ label: t("Lower required levels by"), name: "", value: row ? row.level_drop : 1, min: 0, max: 9 });
        drop.control.dataset.rowField = "level_drop";
        const anyAgent = field({ label: t("Any agent serving the channel"), name: "", type: "checkbox", value: row ? row.any_agent : false });
        anyAgent.control.dataset.rowField = "any_agent";
        const groupName = uid("ring-teams");
        const backup = checkGroup({ legend: t("Backup teams join"), name: groupName, options: teamOptions, values: row ? row.add_team_ids : [], empty: t("No teams yet.") });
        backup.dataset.rowField = "add_team_ids";
        backup.dataset.groupName = groupName;
        return [after, drop, anyAgent, backup];
      },
    });

    const others = queues.filter((other) => !queue || other.id !== queue.id);
    const fields = [
      field({ label: t("Queue name"), name: "name", value: queue ? queue.name : "", required: true, attrs: { maxlength: 200, autocomplete: "off" } }),
      field({ label: t("Description"), name: "description", value: q.description || "", attrs: { maxlength: 2000, autocomplete: "off" } }),
      checkGroup({ legend: t("Channels"), name: "channels", options: labelOptions("channel"), values: q.channels, className: "wide" }),
      numberField({ label: t("Priority (1–99, higher first)"), name: "priority", value: q.priority, min: 1, max: 99 }),
      numberField({ label: t("Service-level target: percent answered"), name: "service_level_percent", value: q.service_level_percent, min: 1, max: 100 }),
      numberField({
        label: t("… within (seconds)"),
        name: "service_level_seconds",
        value: q.service_level_seconds,
        min: 1,
        hint: t("20 for calls, 60 for chats, 14400 (4 hours) for email are common."),
      }),
      field({ label: t("Pick the agent who is"), name: "selection", options: labelOptions("selection"), value: q.selection }),
      numberField({
        label: t("Sticky wait (seconds)"),
        name: "sticky_wait_seconds",
        value: q.sticky_wait_seconds,
        hint: t("How long a conversation waits for the customer's last agent before anyone else gets it. 0: no waiting."),
      }),
      numberField({ label: t("Offer timeout (seconds)"), name: "offer_timeout_seconds", value: q.offer_timeout_seconds, min: 1, max: 3600, hint: t("An offer not answered in time goes to the next agent.") }),
      field({ label: t("Auto-accept: offers are assignments at once"), name: "auto_accept", type: "checkbox", value: q.auto_accept }),
      required,
      checkGroup({
        legend: t("Only these teams"),
        name: "team_ids",
        options: teamOptions,
        values: q.team_ids,
        hint: t("None ticked: agents of any team."),
        className: "wide",
        empty: t("No teams yet."),
      }),
      numberField({ label: t("Ageing: priority added per minute of waiting"), name: "ageing_per_minute", value: q.ageing_per_minute, step: 0.1, max: 100 }),
      numberField({ label: t("Expected handling time (seconds)"), name: "handle_time_seconds", value: q.handle_time_seconds, min: 1, hint: t("Used to project the service level.") }),
      numberField({ label: t("Offer again to an agent who declined after (seconds)"), name: "redecline_after_seconds", value: q.redecline_after_seconds }),
      rings,
      field({
        label: t("Overflow to queue"),
        name: "overflow_queue_id",
        options: [["", t("No overflow")], ...others.map((o) => [o.id, o.name])],
        value: q.overflow_queue_id || "",
      }),
      numberField({ label: t("Overflow after waiting (seconds)"), name: "overflow_after_seconds", value: q.overflow_after_seconds, min: 1, required: false }),
    ];
    for (const group of [required, rings]) group.classList.add("wide");

    const headingId = uid("queue");
    const editor = form({
      title: queue ? t("Queue {name}", { name: queue.name }) : t("New queue"),
      submitLabel: queue ? t("Save queue") : t("Create queue"),
      className: "queue-editor",
      fields,
      onSubmit: async (f) => {
        const body = this.read(f, required, rings);
        const saved = queue ? await api("PATCH", `/queues/${queue.id}`, body) : await api("POST", "/queues", body);
        toast(queue ? t("Queue {name} saved.", { name: saved.name }) : t("Queue {name} created.", { name: saved.name }));
        this.editing = saved.id;
        await this.reload();
      },
    });
    editor.setAttribute("aria-labelledby", headingId);
    editor.querySelector("h3").id = headingId;
    const cancel = el("button", { type: "button", class: "secondary" }, t("Close"));
    cancel.addEventListener("click", () => {
      this.editing = null;
      this.editorSlot.replaceChildren();
      const back = this.querySelector(queue ? `[data-focus-key="edit-${queue.id}"]` : '[data-focus-key="new-queue"]');
      if (back) back.focus();
    });
    editor.lastElementChild.append(cancel);
    return editor;
  }

  /** The API body from the editor; throws (shown like a server error) when it cannot be sent. */
  read(f, required, rings) {
    const overflowTo = value(f, "overflow_queue_id") || null;
    const overflowAfter = num(f, "overflow_after_seconds");
    if ((overflowTo === null) !== (overflowAfter === null)) {
      // The API wants both or neither; say so where the missing one is.
      const message = t("Choose the overflow queue and the wait together.");
      const missing = overflowTo === null ? "overflow_queue_id" : "overflow_after_seconds";
      throw new ApiError(422, { detail: message, errors: [{ field: missing, message }] });
    }
    return {
      name: value(f, "name"),
      description: value(f, "description") || null,
      channels: checked(f, "channels"),
      priority: num(f, "priority"),
      service_level_percent: num(f, "service_level_percent"),
      service_level_seconds: num(f, "service_level_seconds"),
      selection: value(f, "selection"),
      sticky_wait_seconds: num(f, "sticky_wait_seconds"),
      offer_timeout_seconds: num(f, "offer_timeout_seconds"),
      auto_accept: value(f, "auto_accept"),
      required_skills: readRows(required, { min_level: "number" }),
      team_ids: checked(f, "team_ids"),
      ageing_per_minute: num(f, "ageing_per_minute"),
      handle_time_seconds: num(f, "handle_time_seconds"),
      redecline_after_seconds: num(f, "redecline_after_seconds"),
      bullseye: readRows(rings, { after_seconds: "number", level_drop: "number", any_agent: "bool", add_team_ids: "checks" }),
      overflow_queue_id: overflowTo,
      overflow_after_seconds: overflowAfter,
    };
  }
}

customElements.define("fd-admin-queues", AdminQueues);
