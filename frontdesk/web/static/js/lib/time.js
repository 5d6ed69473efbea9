// Dates and times in the viewer's zone and language (Intl; no library).
import { boot, t, timeZone } from "./boot.js";

const locale = boot.lang === "ru" ? "ru-RU" : "en-GB";
const dateTime = new Intl.DateTimeFormat(locale, { timeZone, dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(locale, { timeZone, timeStyle: "short" });
const dayKey = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });
const relative = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });

export function formatDateTime(iso) {
  if (!iso) return "";
  return dateTime.format(new Date(iso));
}

/** Today → "14:05"; otherwise date and time. */
export function formatShort(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return dayKey.format(d) === dayKey.format(new Date()) ? timeOnly.format(d) : dateTime.format(d);
}

/** "5 minutes ago", "in 2 hours". */
export function formatRelative(iso, now = Date.now()) {
  if (!iso) return "";
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 60) return relative.format(seconds, "second");
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  return relative.format(Math.round(seconds / 86400), "day");
}

/** A duration in seconds as "4:02" / "1:05:09"; from a day on "3 d 5 h" (a clock would not fit). */
export function formatDuration(totalSeconds) {
  const s = Math.max(0, Math.floor(totalSeconds || 0));
  if (s >= 86400) {
    const days = Math.floor(s / 86400);
    return `${t("{n} d", { n: days })} ${t("{n} h", { n: Math.floor((s % 86400) / 3600) })}`;
  }
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** A target time in its natural unit: "20 s", "5 min", "4 h". */
export function formatSpan(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  if (s >= 3600 && s % 3600 === 0) return t("{n} h", { n: s / 3600 });
  if (s >= 60 && s % 60 === 0) return t("{n} min", { n: s / 60 });
  return t("{n} s", { n: s });
}

/** A local date-time input value ("2026-11-23T14:05") in the viewer's zone → ISO UTC string. */
export function localInputToIso(value) {
  // Interpret the wall-clock time in `timeZone` by finding the zone's offset at that moment.
  const asUtc = new Date(`${value}:00Z`);
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  }).formatToParts(asUtc);
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const shown = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"));
  return new Date(asUtc.getTime() - (shown - asUtc.getTime())).toISOString();
}
