// The words for the codes the server sends — channels, conversation statuses, priorities,
// presence states, roles, delivery states, identity kinds, satisfaction tiers — in the viewer's
// language. The one place the desk,
// the wallboard and the admin pages get them from: the server puts them in every page's boot
// data, translated from the gettext catalogs (frontdesk/web/i18n.py LABELS, locale/*/labels.po).
// A code this page does not know yet is shown as it is, never as an empty string.
import { boot } from "./boot.js";

// boot.labels = {kind: [[code, word], …]} in display order.
const ORDERED = boot.labels || {};
const LABELS = Object.fromEntries(Object.entries(ORDERED).map(([kind, pairs]) => [kind, new Map(pairs)]));

/** The word for `code` of `kind` ("channel", "status", "priority", "presence", "role", "delivery",
 * "identity", "tier", "selection"). */
export function label(kind, code) {
  if (code === null || code === undefined || code === "") return "";
  const words = LABELS[kind];
  return words && words.has(code) ? words.get(code) : String(code);
}

/** The codes of `kind` in display order. */
export function codes(kind) {
  return (ORDERED[kind] || []).map(([code]) => code);
}

/** [[code, word], …] of `kind`, in display order (for a <select>). */
export function options(kind) {
  return (ORDERED[kind] || []).map(([code, word]) => [code, word]);
}

/** {code: word} of `kind`. */
export function labelMap(kind) {
  return Object.fromEntries(ORDERED[kind] || []);
}

export const channelLabel = (code) => label("channel", code);
export const statusLabel = (code) => label("status", code);
export const priorityLabel = (code) => label("priority", code);
export const presenceLabel = (code) => label("presence", code);
export const roleLabel = (code) => label("role", code);
export const deliveryLabel = (code) => label("delivery", code);
