// Business hours per inbox: a time zone and, per weekday, any number of opening ranges. Written to
// the inbox's `config.business_hours` = {tz, days: {mon: [["09:00", "18:00"]], …}}; a day with no
// range is closed; no business hours at all means always open.
import { api } from "../lib/api.js";
import { t, timeZone } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";
import { channelLabel } from "./inboxes.js";
import { clearErrors, field, sectionHeader, showProblem, uid } from "./forms.js";
import { AdminSection } from "./section.js";

export const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

export function dayName(day) {
  const names = {
    mon: t("Monday"),
    tue: t("Tuesday"),
    wed: t("Wednesday"),
    thu: t("Thursday"),
    fri: t("Friday"),
    sat: t("Saturday"),
    sun: t("Sunday"),
  };
  return names[day];
}

function zones() {
  try {
    return Intl.supportedValuesOf("timeZone");
  } catch {
    return ["UTC", "Europe/London", "Europe/Berlin", "Europe/Moscow", "America/New_York", "Asia/Tokyo"];
  }
}

/** Ranges of one day from stored config: [["09:00","18:00"], …] or a single ["09:00","18:00"]. */
function storedRanges(spec) {
  if (!Array.isArray(spec) || !spec.length) return [];
  const pairs = typeof spec[0] === "string" ? [spec] : spec;
  return pairs.filter((p) => Array.isArray(p) && p.length === 2).map((p) => [String(p[0]), String(p[1])]);
}

class AdminHours extends AdminSection {
  constructor() {
    super();
    this.inboxId = null;
  }

  /** Show the hours of one inbox (from the #hours/<id> deep link). */
  select(inboxId) {
    this.inboxId = inboxId || null;
    if (this.inboxes) this.render(this.inboxes);
  }

  async fetchData() {
    return api("GET", "/inboxes");
  }

  render(inboxes) {
    this.inboxes = inboxes;
    if (!inboxes.length) {
      this.replaceChildren(sectionHeader(t("Business hours")), el("p", { class: "muted empty" }, t("Create an inbox first.")));
      return;
    }
    if (!inboxes.some((i) => i.id === this.inboxId)) this.inboxId = inboxes[0].id;
    const picker = field({
      label: t("Inbox"),
      name: "inbox",
      options: inboxes.map((i) => [i.id, `${i.name} · ${channelLabel(i.channel)}`]),
      value: this.inboxId,
    });
    picker.control.addEventListener("change", () => {
      history.replaceState(null, "", `#hours/${picker.control.value}`);
      this.select(picker.control.value);
      const again = this.querySelector("[name=inbox]");
      if (again) again.focus();
    });
    const inbox = inboxes.find((i) => i.id === this.inboxId);
    this.replaceChildren(
      sectionHeader(
        t("Business hours"),
        t("Outside business hours the chat widget tells visitors that the answer comes by email, and when you are back. Times are wall-clock times in the inbox's time zone."),
      ),
      el("div", { class: "inline-form" }, picker),
      this.editor(inbox),
    );
  }

  editor(inbox) {
    const config = inbox.config || {};
    const hours = config.business_hours && typeof config.business_hours === "object" ? config.business_hours : null;
    const listId = uid("zones");
    const tz = field({
      label: t("Time zone"),
      name: "config.business_hours.tz",
      value: hours?.tz || timeZone,
      required: true,
      hint: t("An IANA name such as Europe/Moscow."),
      attrs: { list: listId, spellcheck: "false", autocomplete: "off" },
    });
    const datalist = el("datalist", { id: listId }, ...zones().map((z) => el("option", { value: z })));
    const always = field({ label: t("Always open (no business hours)"), name: "always_open", type: "checkbox", value: !hours });

    const dayRows = DAYS.map((day) => this.dayRow(day, storedRanges(hours?.days?.[day] ?? (hours ? [] : day === "sat" || day === "sun" ? [] : [["09:00", "18:00"]]))));
    const table = el(
      "table",
      { class: "grid hours" },
      el("caption", { class: "visually-hidden" }, t("Opening hours per day")),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("Day")), el("th", { scope: "col" }, t("Hours")), el("th", { scope: "col" }, t("Actions")))),
      el("tbody", {}, ...dayRows),
    );
    const fieldset = el("fieldset", { class: "days", disabled: !hours }, el("legend", {}, t("Opening hours")), tz, datalist, table);
    always.control.addEventListener("change", () => {
      fieldset.disabled = always.control.checked;
    });

    const copy = el("button", { type: "button", class: "secondary" }, t("Copy Monday to Tuesday–Friday"));
    copy.addEventListener("click", () => {
      const monday = this.readDay(fieldset, "mon");
      for (const day of ["tue", "wed", "thu", "fri"]) {
        const row = fieldset.querySelector(`tr[data-day="${day}"]`);
        row.replaceWith(this.dayRow(day, monday));
      }
      toast(t("Monday's hours copied to Tuesday–Friday."));
    });
    fieldset.append(el("div", { class: "actions" }, copy));

    const formError = el("p", { class: "form-error", role: "alert", hidden: true });
    const save = el("button", { type: "submit" }, t("Save business hours"));
    const node = el("form", { class: "admin-form hours-form", novalidate: true }, always, fieldset, formError, el("div", { class: "actions" }, save));
    node.formError = formError;
    node.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(node);
      const next = { ...config };
      if (always.control.checked) {
        delete next.business_hours;
      } else {
        const problem = this.validate(fieldset);
        if (problem) {
          showProblem(node, new Error(problem));
          return;
        }
        const days = {};
        for (const day of DAYS) days[day] = this.readDay(fieldset, day);
        next.business_hours = { tz: tz.control.value.trim(), days };
      }
      save.disabled = true;
      try {
        await api("PATCH", `/inboxes/${inbox.id}`, { config: next });
        toast(t("Business hours of {name} saved.", { name: inbox.name }));
        await this.reload();
      } catch (error) {
        showProblem(node, error);
      } finally {
        save.disabled = false;
      }
    });
    return el("section", { class: "card", "aria-label": t("Business hours of {name}", { name: inbox.name }) }, node);
  }

  dayRow(day, ranges) {
    const list = el("div", { class: "ranges" });
    const closed = el("span", { class: "muted closed" }, t("Closed"));
    const sync = () => {
      closed.hidden = list.childElementCount > 0;
    };
    const addRange = (start = "09:00", end = "18:00") => {
      const startId = uid(`${day}-from`);
      const endId = uid(`${day}-to`);
      const from = el("input", { type: "time", id: startId, required: true, class: "from" });
      from.value = start;
      const to = el("input", { type: "time", id: endId, required: true, class: "to" });
      to.value = end;
      const remove = el("button", { type: "button", class: "link", "aria-label": t("Remove this range of {day}", { day: dayName(day) }) }, "✕");
      const range = el(
        "div",
        { class: "range" },
        el("label", { for: startId, class: "visually-hidden" }, t("{day} opens at", { day: dayName(day) })),
        from,
        el("span", { "aria-hidden": "true" }, "–"),
        el("label", { for: endId, class: "visually-hidden" }, t("{day} closes at", { day: dayName(day) })),
        to,
        remove,
      );
      remove.addEventListener("click", () => {
        range.remove();
        sync();
        add.focus();
      });
      list.append(range);
      sync();
      return from;
    };
    const add = el("button", { type: "button", class: "secondary", "aria-label": t("Add range to {day}", { day: dayName(day) }) }, t("Add range"));
    add.addEventListener("click", () => addRange().focus());
    for (const [start, end] of ranges) addRange(start, end);
    sync();
    return el("tr", { dataset: { day } }, el("th", { scope: "row" }, dayName(day)), el("td", {}, list, closed), el("td", {}, add));
  }

  readDay(root, day) {
    const row = root.querySelector(`tr[data-day="${day}"]`);
    return [...row.querySelectorAll(".range")].map((r) => [r.querySelector(".from").value, r.querySelector(".to").value]);
  }

  /** A sentence naming the first bad range, or null. */
  validate(root) {
    for (const day of DAYS) {
      const ranges = this.readDay(root, day).sort();
      for (let i = 0; i < ranges.length; i += 1) {
        const [start, end] = ranges[i];
        if (!start || !end) return t("{day}: every range needs a start and an end.", { day: dayName(day) });
        if (start >= end) return t("{day}: a range must end after it starts ({start}–{end}).", { day: dayName(day), start, end });
        if (i > 0 && start < ranges[i - 1][1]) return t("{day}: ranges overlap.", { day: dayName(day) });
      }
    }
    return null;
  }
}

customElements.define("fd-admin-hours", AdminHours);
