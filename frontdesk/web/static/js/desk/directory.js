// Who is who: users, teams and queues for names, pickers and @mentions.
// GET /directory: every active user (with their teams), team and queue an agent may name.
import { api } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { me } from "./util.js";

export const directory = {
  users: [],
  teams: [],
  queues: [],
  usersById: new Map(),
  teamsById: new Map(),
  queuesById: new Map(),
  loaded: false,

  async load() {
    const data = await api("GET", "/directory");
    if (!data.users.some((u) => u.id === me.id)) {
      data.users.push({ id: me.id, name: me.name, email: me.email, role: me.role, team_ids: [] });
    }
    this.users = [...data.users].sort((a, b) => a.name.localeCompare(b.name));
    this.teams = [...(data.teams || [])].sort((a, b) => a.name.localeCompare(b.name));
    this.queues = [...(data.queues || [])].sort((a, b) => a.name.localeCompare(b.name));
    this.usersById = new Map(this.users.map((u) => [u.id, u]));
    this.teamsById = new Map(this.teams.map((x) => [x.id, x]));
    this.queuesById = new Map(this.queues.map((x) => [x.id, x]));
    this.loaded = true;
  },

  userName(id) {
    if (!id) return "";
    if (id === me.id) return me.name;
    const user = this.usersById.get(id);
    return user ? user.name : t("Agent");
  },

  teamName(id) {
    const team = id && this.teamsById.get(id);
    return team ? team.name : "";
  },

  queueName(id) {
    const queue = id && this.queuesById.get(id);
    return queue ? queue.name : "";
  },

  /** The @handle of a user: the local part of their email. */
  handle(user) {
    return String(user.email || "").split("@")[0];
  },
};
