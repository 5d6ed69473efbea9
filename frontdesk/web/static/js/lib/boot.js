// What the server put in the page: the signed-in user, the CSRF token, the language, the viewer's
// time zone and the translation catalog. Every page module imports from here.

const raw = document.getElementById("fd-boot");
export const boot = raw ? JSON.parse(raw.textContent) : { user: null, csrf: "", lang: "en", time_zone: "", catalog: {} };

/** Translate an English msgid and fill `{name}` placeholders. Missing entries show the English text. */
export function t(msgid, values = undefined) {
  let text = (boot.catalog && boot.catalog[msgid]) || msgid;
  if (values) {
    text = text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
  }
  return text;
}

/** The viewer's IANA zone: the one chosen in the profile, else the browser's. */
export const timeZone = boot.time_zone || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
