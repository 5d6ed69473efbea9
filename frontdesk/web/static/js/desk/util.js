// Small helpers shared by the desk's modules: labels, badges, storage, error texts, dates.
import { ApiError, problemDetail } from "../lib/api.js";
import { boot, t, timeZone } from "../lib/boot.js";
import { channelLabel, codes, labelMap } from "../lib/labels.js";
import { el } from "../lib/shell.js";

export const me = boot.user || { id: "anonymous", name: "", email: "", role: "agent" };

// Codes are named in one place for every page (lib/labels.js).
export const CHANNEL_LABELS = labelMap("channel");
export const CHANNELS = codes("channel");
export const STATUS_LABELS = labelMap("status");
export const STATUSES = codes("status");
export const PRIORITY_LABELS = labelMap("priority");
export const PRIORITY_RANK = { urgent: 3, high: 2, normal: 1, low: 0 };
export const DELIVERY_LABELS = labelMap("delivery");

export const TIER_LABELS = labelMap("tier");
export const IDENTITY_LABELS = labelMap("identity");

export { channelLabel };

/** A channel marked by colour and by its name (never colour alone). */
export function channelBadge(channel) {
  return el("span", { class: `ch-badge ch-${channel || "api"}` }, channelLabel(channel));
}

export function statusBadge(status) {
  return el("span", { class: `status-badge st-${status}` }, STATUS_LABELS[status] || status);
}

export function priorityBadge(priority) {
  if (!priority || priority === "normal") return null;
  return el("span", { class: `prio-badge pr-${priority}` }, PRIORITY_LABELS[priority] || priority);
}

/** "45 s", "12 min", "3 h", "2 d". */
export function shortDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return t("{n} s", { n: s });
  if (s < 3600) return t("{n} min", { n: Math.floor(s / 60) });
  if (s < 86400) return t("{n} h", { n: Math.floor(s / 3600) });
  return t("{n} d", { n: Math.floor(s / 86400) });
}

/** What a list shows for a conversation's last message: its text, else what it carries, in the
 * viewer's language (the server sends file names and an "empty" flag, never words). */
export function lastMessageText(conversation) {
  if (conversation.last_message_preview) return conversation.last_message_preview;
  const files = conversation.last_message_attachments || [];
  if (files.length) return t("Attachments: {names}", { names: files.join(", ") });
  return conversation.last_message_empty ? t("(no text)") : "";
}

/** The same for a message pushed live (`conversation.message_created`). */
export function messageText(message) {
  if (message.text && message.text.trim()) return message.text;
  const files = (message.attachments || []).map((a) => a.filename);
  return files.length ? t("Attachments: {names}", { names: files.join(", ") }) : t("(no text)");
}

export function initials(name) {
  const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
  return ((parts[0] || "?")[0] + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}

// -- storage: per signed-in user, never throws (private mode, quota) ---------------------------------

const PREFIX = `fd:desk:${me.id}:`;

export const storage = {
  get(key, fallback = null) {
    try {
      const raw = window.localStorage.getItem(PREFIX + key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      if (value === null || value === undefined) window.localStorage.removeItem(PREFIX + key);
      else window.localStorage.setItem(PREFIX + key, JSON.stringify(value));
    } catch {
      /* storage full or disabled: the desk still works, it just forgets */
    }
  },
};

export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** Run `fn` once, `ms` after the first of a burst of calls (never starved by a steady stream). */
export function coalesce(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}

/** True when a key press belongs to a text field (shortcuts must not fire there). */
export function isEditable(target) {
  if (!target || !(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag !== "INPUT") return false;
  return !["button", "checkbox", "radio", "submit", "reset", "file"].includes(target.type);
}


/** A short, translated message for an API error. */
export function errorText(err) {
  if (err instanceof ApiError && err.status === 403) return t("Not allowed: {detail}", { detail: err.message });
  return t("Error: {detail}", { detail: problemDetail(err) });
}

/** Whole days later at 09:00 in the viewer's zone, as a `datetime-local` value. */
export function localDayAt(daysAhead, hour, zone) {
  const today = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date());
  const base = new Date(`${today}T00:00:00Z`);
  base.setUTCDate(base.getUTCDate() + daysAhead);
  return `${base.toISOString().slice(0, 10)}T${String(hour).padStart(2, "0")}:00`;
}

/** Days from today until next Monday (1..7) in the viewer's zone. */
export function daysUntilMonday(zone) {
  const name = new Intl.DateTimeFormat("en-US", { timeZone: zone, weekday: "short" }).format(new Date());
  const index = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].indexOf(name);
  return ((8 - index) % 7) || 7;
}

export function formatSize(bytes) {
  if (bytes < 1024) return t("{n} B", { n: bytes });
  if (bytes < 1024 * 1024) return t("{n} KB", { n: Math.round(bytes / 1024) });
  return t("{n} MB", { n: (bytes / (1024 * 1024)).toFixed(1) });
}

export function formatMoney(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value ?? "");
  return new Intl.NumberFormat(boot.lang === "ru" ? "ru-RU" : "en-GB", {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  }).format(n);
}

export function attributeText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** A customer's name, else their email or phone, else "Unknown customer". */
export function customerLabel(customer, fallbackName = null) {
  if (customer && customer.name) return customer.name;
  if (fallbackName) return fallbackName;
  for (const kind of ["email", "phone"]) {
    const identity = customer && (customer.identities || []).find((i) => i.kind === kind);
    if (identity) return identity.value;
  }
  return t("Unknown customer");
}

const LOCALE = boot.lang === "ru" ? "ru-RU" : "en-GB";
const compactTime = new Intl.DateTimeFormat(LOCALE, { timeZone, hour: "2-digit", minute: "2-digit" });
const compactDay = new Intl.DateTimeFormat(LOCALE, { timeZone, day: "numeric", month: "short" });
const compactYear = new Intl.DateTimeFormat(LOCALE, { timeZone, day: "numeric", month: "short", year: "numeric" });
const dayOf = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });

/** For lists: "14:05" today, "22 Nov" this year, "22 Nov 2025" before. */
export function compactDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const now = new Date();
  if (dayOf.format(d) === dayOf.format(now)) return compactTime.format(d);
  return d.getFullYear() === now.getFullYear() ? compactDay.format(d) : compactYear.format(d);
}
