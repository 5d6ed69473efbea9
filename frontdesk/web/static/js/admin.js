// The admin page: one section at a time, picked in the left navigation and deep-linkable
// (#users, #teams, #inboxes, #webhooks, #mail, #canned, #hours, #hours/<inbox id>, #queues, #skills,
// #agents, #agents/<user id>, #rules, #rejected).
import { t } from "./lib/boot.js";
import { startShell } from "./lib/shell.js";
import "./admin/canned.js";
import "./admin/hours.js";
import "./admin/inboxes.js";
import "./admin/mail.js";
import "./admin/rejected.js";
import "./admin/teams.js";
import "./admin/users.js";
import "./admin/webhooks.js";
import "./admin/profiles.js";
import "./admin/queues.js";
import "./admin/rules.js";
import "./admin/skills.js";

const SECTIONS = {
  users: "fd-admin-users",
  teams: "fd-admin-teams",
  inboxes: "fd-admin-inboxes",
  webhooks: "fd-admin-webhooks",
  mail: "fd-admin-mail",
  canned: "fd-admin-canned",
  hours: "fd-admin-hours",
  queues: "fd-admin-queues",
  skills: "fd-admin-skills",
  agents: "fd-admin-profiles",
  rules: "fd-admin-rules",
  rejected: "fd-admin-rejected",
};
const DEFAULT = "users";

startShell();

const nav = document.getElementById("admin-nav");
const panel = document.getElementById("admin-panel");
const made = new Map();

function parseHash() {
  const [name, arg] = window.location.hash.replace(/^#/, "").split("/", 2);
  return SECTIONS[name] ? { name, arg: arg || null } : { name: DEFAULT, arg: null };
}

function show({ focus = false } = {}) {
  const { name, arg } = parseHash();
  for (const link of nav.querySelectorAll("a[data-section]")) {
    if (link.dataset.section === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  let section = made.get(name);
  const revisit = Boolean(section);
  if (!section) {
    section = document.createElement(SECTIONS[name]);
    section.id = `section-${name}`;
    made.set(name, section);
    panel.append(section);
  }
  for (const other of made.values()) other.hidden = other !== section;
  if (arg && typeof section.select === "function") section.select(arg);
  else if (revisit && focus) section.reload(); // fresh data when coming back to a section
  const label = nav.querySelector(`a[data-section="${name}"]`);
  document.title = `${label ? label.textContent : t("Admin")} · ${t("Admin")} · Frontdesk`;
  if (focus) {
    // Focus the section heading once it has rendered (a new section loads first).
    const tryFocus = (left) => {
      const heading = section.querySelector("h2");
      if (heading) heading.focus();
      else if (left > 0) setTimeout(() => tryFocus(left - 1), 50);
    };
    tryFocus(40);
  }
}

window.addEventListener("hashchange", () => show({ focus: true }));
panel.replaceChildren();
show();
