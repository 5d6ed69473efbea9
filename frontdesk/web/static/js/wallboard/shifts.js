// Capacity shifts on the wallboard: when a queue's projected service level falls below its
// target, routing makes the blended agents who can serve it stop taking lower-ranked channels
// (email, then chat) until it recovers; each shift and return is recorded with its reason
// (GET /api/v1/routing/capacity-shifts, event `routing.capacity_shift` on the `desk` topic).
// The reason is told here in the viewer's language from the shift's figures (the server's
// `reason` text is English, for logs and integrations).
import { api, problemDetail, query } from "../lib/api.js";
import { boot, t } from "../lib/boot.js";
import { channelLabel } from "../lib/labels.js";
import { el } from "../lib/shell.js";
import { formatShort } from "../lib/time.js";

export const RECENT = 8;

const fraction = new Intl.NumberFormat(boot.lang === "ru" ? "ru-RU" : "en-GB", { style: "percent", maximumFractionDigits: 0 });

/** The sentence that says what happened and why. */
export function shiftText(shift) {
  const values = {
    queue: shift.queue_name || t("(deleted queue)"),
    channels: (shift.channels || []).map(channelLabel).join(", "),
    projected: fraction.format(shift.projected_service_level ?? 0),
    target: fraction.format(shift.target ?? 0),
  };
  return shift.direction === "to"
    ? t("Agents of {queue} stop taking {channels}: the projected service level {projected} is below the target {target}.", values)
    : t("Agents of {queue} take {channels} again: the projected service level {projected} is back at the target {target}.", values);
}

export class CapacityShifts {
  constructor() {
    this.list = el("ol", { class: "wb-shift-list" });
    this.empty = el("p", { class: "muted empty" }, t("No capacity shifts yet: every queue is at its target."));
    this.error = el("p", { class: "error", role: "status", hidden: true });
    this.announcer = el("p", { class: "visually-hidden", "aria-live": "polite" });
    this.root = el(
      "section",
      { class: "wb-shifts", "aria-labelledby": "wb-shifts-h" },
      el("h2", { id: "wb-shifts-h" }, t("Capacity shifts")),
      this.announcer,
      this.error,
      this.list,
      this.empty,
    );
    this.shifts = [];
    this.inFlight = null;
  }

  /** A `routing.capacity_shift` event: show it at once, then confirm from the server. */
  apply(data) {
    if (!data || !data.queue_id) return;
    if (!this.shifts.some((s) => s.id && s.id === data.id)) this.shifts = [{ ...data }, ...this.shifts].slice(0, RECENT);
    this.render();
    this.announcer.textContent = t("Capacity shift: {text}", { text: shiftText(data) });
    this.refresh();
  }

  async refresh() {
    if (this.inFlight) return this.inFlight;
    this.inFlight = (async () => {
      try {
        this.shifts = await api("GET", `/routing/capacity-shifts${query({ limit: RECENT })}`);
        this.error.hidden = true;
        this.render();
      } catch (error) {
        this.error.textContent = t("Capacity shifts could not be loaded: {detail}", { detail: problemDetail(error) });
        this.error.hidden = false;
      } finally {
        this.inFlight = null;
      }
    })();
    return this.inFlight;
  }

  render() {
    // A queue's newest shift "to" it is in effect until a "back" follows.
    const latest = new Map();
    for (const shift of this.shifts) if (!latest.has(shift.queue_id)) latest.set(shift.queue_id, shift);
    const items = this.shifts.map((shift) => {
      const inEffect = shift.direction === "to" && latest.get(shift.queue_id) === shift;
      return el(
        "li",
        { class: `wb-shift shift-${shift.direction}${inEffect ? " in-effect" : ""}`, dataset: { queue: shift.queue_id, direction: shift.direction } },
        el("time", { datetime: shift.at, class: "muted" }, formatShort(shift.at)),
        el("span", { class: "shift-kind" }, inEffect ? t("In effect") : shift.direction === "to" ? t("Shifted") : t("Returned")),
        el("span", { class: "shift-reason" }, shiftText(shift)),
      );
    });
    this.list.replaceChildren(...items);
    this.empty.hidden = items.length > 0;
  }
}
