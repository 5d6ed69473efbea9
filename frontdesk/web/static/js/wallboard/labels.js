// Words the wallboard shows for codes the server sends — channels and presence states come from
// the one list every page shares (lib/labels.js) — and the service-level verdict (always text
// and a symbol, colour only as a second cue).
import { t } from "../lib/boot.js";
import { channelLabel, codes, presenceLabel } from "../lib/labels.js";

export function channelName(channel) {
  return channel ? channelLabel(channel) : t("All channels");
}

// Presence states in the order every page lists them (i18n.LABELS).
export const PRESENCE_ORDER = codes("presence");

export function presenceName(status) {
  return status ? presenceLabel(status) : t("Unknown");
}

/**
 * The verdict on a service level against its target: {kind, symbol, text}.
 * `kind` is "ok" (at or above target), "warn" (within 10 points below), "bad" or "none" (nothing
 * answered or abandoned yet today).
 */
export function serviceVerdict(value, target) {
  if (value === null || value === undefined) return { kind: "none", symbol: "", text: t("No contacts yet") };
  if (target === null || target === undefined) return { kind: "none", symbol: "", text: "" };
  if (value >= target) return { kind: "ok", symbol: "✓", text: t("On target") };
  if (value >= target - 10) return { kind: "warn", symbol: "▲", text: t("Close to target") };
  return { kind: "bad", symbol: "✕", text: t("Below target") };
}

/** A percentage as the viewer's language writes it ("87%", "87 %"). */
export function percent(value) {
  if (value === null || value === undefined) return "—";
  return new Intl.NumberFormat(document.documentElement.lang || "en", { style: "percent", maximumFractionDigits: 0 }).format(value / 100);
}

export function number(value) {
  return new Intl.NumberFormat(document.documentElement.lang || "en").format(value || 0);
}
