// <fd-wallboard>: the live supervisor board. One GET /api/v1/wallboard?tz=<viewer's zone> is the
// whole picture; it is fetched again shortly after any conversation or presence event on the
// `desk` topic (debounced), after a reconnect that needs a snapshot, and every 10 s as a safety
// net. Between fetches the longest waits and the agents' time in state tick every second.
//
// Rows are keyed and updated in place, so a focused agent button keeps its focus across updates.
import { ApiError, api, problemDetail, query } from "../lib/api.js";
import { t, timeZone } from "../lib/boot.js";
import { el } from "../lib/shell.js";
import { formatDuration, formatShort, formatSpan } from "../lib/time.js";
import { PRESENCE_ORDER, channelName, number, percent, presenceName, serviceVerdict } from "./labels.js";
import { CapacityShifts } from "./shifts.js";

export const POLL_MS = 10_000;
export const DEBOUNCE_MS = 400;
export const MAX_DELAY_MS = 2_000;
const REFRESH_ON = new Set(["conversation.updated", "conversation.message_created", "conversation.created", "agent.presence"]);

function tile(key, label) {
  const value = el("span", { class: "tile-value", dataset: { key } }, "—");
  const sub = el("span", { class: "tile-sub" });
  const node = el("div", { class: `tile tile-${key}`, role: "group", "aria-label": label }, el("span", { class: "tile-label" }, label), value, sub);
  return { node, value, sub };
}

/** When "today" began, as a wall-clock time in the zone the server counted the day in. */
function dayStartText(data) {
  if (!data.time_zone || data.time_zone === timeZone) return formatShort(data.day_start);
  try {
    return new Intl.DateTimeFormat(document.documentElement.lang || "en", { timeZone: data.time_zone, hour: "2-digit", minute: "2-digit" }).format(new Date(data.day_start));
  } catch {
    return formatShort(data.day_start);
  }
}

function verdictNode(verdict) {
  return el("span", { class: `verdict verdict-${verdict.kind}` }, verdict.symbol && el("span", { class: "symbol", "aria-hidden": "true" }, verdict.symbol), verdict.text);
}

export class Wallboard extends HTMLElement {
  constructor() {
    super();
    this.data = null;
    this.receivedAt = 0; // performance.now() when `data` arrived
    this.serverOffset = 0; // server clock − browser clock, ms
    this.inFlight = null;
    this.again = false;
    this.timer = null;
    this.firstEventAt = 0;
    this.queueRows = new Map();
    this.agentRows = new Map();
    this.tz = timeZone; // "today" is the viewer's day
    this.shifts = new CapacityShifts();
  }

  connectedCallback() {
    if (this.built) return;
    this.built = true;
    this.build();
    this.refresh();
    this.ticker = setInterval(() => this.tick(), 1000);
    // A board nobody looks at (a background tab) asks nothing; it catches up when shown again.
    this.shifts.refresh();
    this.poller = setInterval(() => document.hidden || (this.refresh(), this.shifts.refresh()), POLL_MS);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) {
        this.refresh();
        this.shifts.refresh();
      }
    });
  }

  disconnectedCallback() {
    clearInterval(this.ticker);
    clearInterval(this.poller);
  }

  /** Connect to the shell's socket: refresh (debounced) on the events that change the board. */
  listen(socket) {
    socket.addEventListener("event", (e) => {
      const event = e.detail;
      if (event.topic === "desk" && event.type === "routing.capacity_shift") this.shifts.apply(event.data || {});
      if (event.topic !== "desk" || !REFRESH_ON.has(event.type)) return;
      if (event.type === "agent.presence") this.applyPresence(event.data || {});
      this.soon();
    });
    socket.addEventListener("snapshot", () => {
      this.refresh();
      this.shifts.refresh();
    });
    socket.addEventListener("hello", () => this.soon());
  }

  /** Refresh after a short quiet spell, but at most MAX_DELAY_MS after the first event of a burst. */
  soon() {
    if (document.hidden) return; // the visibilitychange refresh catches up
    const now = performance.now();
    if (!this.timer) this.firstEventAt = now;
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(DEBOUNCE_MS, this.firstEventAt + MAX_DELAY_MS - now));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refresh();
    }, wait);
  }

  async refresh() {
    if (this.inFlight) {
      this.again = true;
      return this.inFlight;
    }
    this.inFlight = (async () => {
      try {
        const sentAt = Date.now();
        const data = await api("GET", `/wallboard${query({ tz: this.tz })}`);
        const now = Date.now();
        if (data.generated_at) this.serverOffset = Date.parse(data.generated_at) - (sentAt + now) / 2;
        this.data = data;
        this.receivedAt = performance.now();
        this.failure = null;
        this.render();
      } catch (error) {
        if (error instanceof ApiError && error.status === 422 && this.tz !== "UTC") {
          this.tz = "UTC"; // a zone the server does not know: count the day in UTC (the line under the figures says so)
          this.again = true;
        } else {
          this.failure = error;
          this.renderFailure(error);
        }
      } finally {
        this.inFlight = null;
      }
      if (this.again) {
        this.again = false;
        await this.refresh();
      }
    })();
    return this.inFlight;
  }

  // -- building ---------------------------------------------------------------------------------

  build() {
    this.tiles = {
      waiting: tile("waiting", t("Waiting now")),
      longest: tile("longest", t("Longest wait")),
      answered: tile("answered", t("Answered today")),
      abandoned: tile("abandoned", t("Abandoned today")),
      service: tile("service", t("Service level today")),
    };
    this.status = el("p", { class: "wb-status", role: "status", "aria-live": "polite" });
    this.announcer = el("p", { class: "visually-hidden", "aria-live": "polite" });
    this.day = el("p", { class: "wb-day muted" });
    this.queueBody = el("tbody");
    this.queueEmpty = el("p", { class: "muted empty", hidden: true }, t("Nobody is waiting and nothing was answered yet today."));
    this.agentBody = el("tbody");
    this.agentEmpty = el("p", { class: "muted empty", hidden: true }, t("No agents yet."));
    const th = (text, cls = "") => el("th", { scope: "col", class: cls }, text);
    this.replaceChildren(
      el("h1", { class: "visually-hidden" }, t("Wallboard")),
      this.status,
      this.announcer,
      el("section", { class: "wb-totals", "aria-label": t("Totals") }, ...Object.values(this.tiles).map((x) => x.node)),
      this.day,
      el(
        "div",
        { class: "wb-columns" },
        el(
          "section",
          { class: "wb-queues", "aria-labelledby": "wb-queues-h" },
          el("h2", { id: "wb-queues-h" }, t("Queues")),
          el(
            "table",
            { class: "grid wb-table" },
            el("thead", {}, el("tr", {}, th(t("Queue")), th(t("Channel")), th(t("Waiting"), "num"), th(t("Longest wait"), "num"), th(t("Answered"), "num"), th(t("Abandoned"), "num"), th(t("Service level"), "num"))),
            this.queueBody,
          ),
          this.queueEmpty,
        ),
        el(
          "section",
          { class: "wb-agents", "aria-labelledby": "wb-agents-h" },
          el("h2", { id: "wb-agents-h" }, t("Agents")),
          el(
            "table",
            { class: "grid wb-table" },
            el("thead", {}, el("tr", {}, th(t("Agent")), th(t("State")), th(t("In state"), "num"), th(t("Load")), th(t("In progress"), "num"))),
            this.agentBody,
          ),
          this.agentEmpty,
        ),
      ),
      this.shifts.root,
    );
  }

  // -- rendering --------------------------------------------------------------------------------

  render() {
    const data = this.data;
    const totals = data.totals || {};
    const queues = data.queues || [];
    const agents = data.agents || [];
    this.status.textContent = "";
    this.status.classList.remove("error");
    this.dispatchEvent(new CustomEvent("updated", { detail: data }));

    const waiting = totals.waiting ?? queues.reduce((n, q) => n + (q.waiting || 0), 0);
    if (this.lastWaiting !== undefined && this.lastWaiting !== waiting) this.announcer.textContent = t("Waiting now: {n}", { n: waiting });
    this.lastWaiting = waiting;
    this.tiles.waiting.value.textContent = number(waiting);
    this.tiles.waiting.node.classList.toggle("alert", waiting > 0);
    this.tiles.answered.value.textContent = number(totals.answered_today);
    this.tiles.abandoned.value.textContent = number(totals.abandoned_today);
    const targets = [...new Set(queues.map((q) => q.target_percent).filter((x) => x !== null && x !== undefined))];
    const target = targets.length === 1 ? targets[0] : null;
    this.tiles.service.value.textContent = percent(totals.service_level_today);
    const verdict = serviceVerdict(totals.service_level_today, target);
    this.tiles.service.node.dataset.verdict = verdict.kind;
    this.tiles.service.sub.replaceChildren(
      verdict.text ? verdictNode(verdict) : "",
      target !== null ? el("span", { class: "target" }, t("target {percent}", { percent: percent(target) })) : "",
    );
    this.day.textContent = data.day_start ? t("Today = since {time} ({zone})", { time: dayStartText(data), zone: data.time_zone || this.tz }) : "";

    this.renderQueues(queues);
    this.renderAgents(agents);
    this.tick();
  }

  renderQueues(queues) {
    const seen = new Set();
    const ordered = [];
    for (const q of queues) {
      const key = `${q.queue_id || "none"}:${q.channel || "all"}`;
      seen.add(key);
      let row = this.queueRows.get(key);
      if (!row) {
        row = {
          tr: el("tr", { dataset: { queue: key } }),
          name: el("th", { scope: "row" }),
          channel: el("td"),
          waiting: el("td", { class: "num big" }),
          longest: el("td", { class: "num big tick" }),
          answered: el("td", { class: "num" }),
          abandoned: el("td", { class: "num" }),
          service: el("td", { class: "num" }),
        };
        row.tr.append(row.name, row.channel, row.waiting, row.longest, row.answered, row.abandoned, row.service);
        this.queueRows.set(key, row);
      }
      row.data = q;
      row.name.textContent = q.queue_name || t("No queue");
      row.channel.replaceChildren(el("span", { class: `channel channel-${q.channel || "all"}` }, channelName(q.channel)));
      row.waiting.textContent = number(q.waiting);
      row.tr.classList.toggle("has-waiting", (q.waiting || 0) > 0);
      row.answered.textContent = number(q.answered_today);
      row.abandoned.textContent = number(q.abandoned_today);
      const verdict = serviceVerdict(q.service_level_today, q.target_percent);
      row.service.replaceChildren(
        el("span", { class: "sl-value" }, percent(q.service_level_today)),
        " ",
        verdictNode(verdict),
        el("span", { class: "target" }, t("target {percent} in {time}", {
          percent: percent(q.target_percent),
          time: q.target_seconds === null || q.target_seconds === undefined ? "—" : formatSpan(q.target_seconds),
        })),
      );
      row.service.dataset.verdict = verdict.kind;
      ordered.push(row.tr);
    }
    for (const [key, row] of this.queueRows) {
      if (!seen.has(key)) {
        row.tr.remove();
        this.queueRows.delete(key);
      }
    }
    this.place(this.queueBody, ordered);
    this.queueEmpty.hidden = queues.length > 0;
  }

  renderAgents(agents) {
    const sorted = [...agents].sort((a, b) => {
      const pa = PRESENCE_ORDER.indexOf(a.presence);
      const pb = PRESENCE_ORDER.indexOf(b.presence);
      return (pa < 0 ? 99 : pa) - (pb < 0 ? 99 : pb) || String(a.name).localeCompare(String(b.name));
    });
    const seen = new Set();
    const ordered = [];
    for (const agent of sorted) {
      seen.add(agent.user_id);
      let row = this.agentRows.get(agent.user_id);
      if (!row) {
        const button = el("button", { type: "button", class: "agent-name link" });
        button.addEventListener("click", () => this.dispatchEvent(new CustomEvent("agent", { detail: this.agentRows.get(agent.user_id).data })));
        row = {
          tr: el("tr", { dataset: { agent: agent.user_id } }),
          button,
          state: el("td"),
          since: el("td", { class: "num tick" }),
          load: el("td"),
          open: el("td", { class: "num big" }),
        };
        row.tr.append(el("th", { scope: "row" }, button), row.state, row.since, row.load, row.open);
        this.agentRows.set(agent.user_id, row);
      }
      row.data = agent;
      row.button.textContent = agent.name;
      row.button.setAttribute("aria-label", t("Conversations of {name}", { name: agent.name }));
      this.paintPresence(row);
      const load = Object.entries(agent.load || {}).filter(([, n]) => n > 0);
      row.load.replaceChildren(
        ...(load.length
          ? load.map(([channel, n]) => el("span", { class: `load channel-${channel}` }, el("span", { class: "load-channel" }, channelName(channel)), " ", el("b", {}, number(n))))
          : [el("span", { class: "muted" }, t("Idle"))]),
      );
      row.open.textContent = number(agent.open_conversations);
      ordered.push(row.tr);
    }
    for (const [key, row] of this.agentRows) {
      if (!seen.has(key)) {
        row.tr.remove();
        this.agentRows.delete(key);
      }
    }
    this.place(this.agentBody, ordered);
    this.agentEmpty.hidden = agents.length > 0;
  }

  paintPresence(row) {
    const status = row.data.presence || "offline";
    row.tr.dataset.presence = status;
    row.state.replaceChildren(el("span", { class: `presence presence-${status}` }, el("span", { class: "dot", "aria-hidden": "true" }), presenceName(status)));
  }

  /** Put rows in order, moving only those out of place (moving a node would drop its focus). */
  place(body, rows) {
    rows.forEach((tr, i) => {
      if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    });
  }

  /** An `agent.presence` event: show the new state at once (the refresh that follows confirms it). */
  applyPresence({ user_id: userId, status, since }) {
    const row = this.agentRows.get(userId);
    if (!row || !status) return;
    row.data = { ...row.data, presence: status, presence_since: since || new Date(Date.now() + this.serverOffset).toISOString() };
    this.paintPresence(row);
    this.tick();
  }

  /** Every second: the longest waits grow while someone waits; time in state grows. */
  tick() {
    if (!this.data) return;
    const elapsed = (performance.now() - this.receivedAt) / 1000;
    let longest = 0;
    for (const row of this.queueRows.values()) {
      const q = row.data;
      const seconds = (q.waiting || 0) > 0 && q.longest_wait_seconds !== null && q.longest_wait_seconds !== undefined ? q.longest_wait_seconds + elapsed : 0;
      longest = Math.max(longest, seconds);
      row.longest.textContent = (q.waiting || 0) > 0 ? formatDuration(seconds) : "—";
    }
    this.tiles.longest.value.textContent = longest > 0 ? formatDuration(longest) : "—";
    // "12 d 5 h" is wider than a clock: a smaller size keeps it inside its tile.
    this.tiles.longest.value.classList.toggle("compact", longest >= 86400);
    this.tiles.longest.node.classList.toggle("alert", longest > 0);
    const serverNow = Date.now() + this.serverOffset;
    for (const row of this.agentRows.values()) {
      const since = row.data.presence_since ? Date.parse(row.data.presence_since) : NaN;
      row.since.textContent = Number.isNaN(since) ? "—" : formatDuration((serverNow - since) / 1000);
    }
  }

  renderFailure(error) {
    this.status.classList.add("error");
    const detail = problemDetail(error);
    this.status.textContent = this.data ? t("Showing data from {time}; the last update failed: {detail}", { time: formatShort(new Date(Date.now() - (performance.now() - this.receivedAt)).toISOString()), detail }) : t("Error: {detail}", { detail });
  }
}

customElements.define("fd-wallboard", Wallboard);
