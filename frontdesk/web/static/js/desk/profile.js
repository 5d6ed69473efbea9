// The profile menu: the desk's language and time zone (PATCH /auth/me, then a reload) and the
// permission for desktop notifications.
import { api } from "../lib/api.js";
import { boot, t, timeZone } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";
import { canAskNotifications } from "./presence.js";
import { errorText, me } from "./util.js";

const LANGUAGES = { en: "English", ru: "Русский" };

function zones() {
  try {
    return Intl.supportedValuesOf("timeZone");
  } catch {
    return [timeZone, "UTC"];
  }
}

export class ProfileMenu {
  constructor(root) {
    this.root = root;
    this.button = el(
      "button",
      { type: "button", class: "secondary small", "aria-haspopup": "dialog", "aria-expanded": "false", onclick: () => this.toggle() },
      t("Profile"),
    );
    this.pop = el("div", {
      class: "popover profile-pop",
      role: "dialog",
      "aria-label": t("Profile"),
      hidden: true,
      onkeydown: (e) => {
        if (e.key === "Escape") {
          e.stopPropagation();
          this.close();
          this.button.focus();
        }
      },
    });
    root.replaceChildren(this.button, this.pop);
    document.addEventListener("mousedown", (e) => {
      if (!root.contains(e.target)) this.close();
    });
  }

  build() {
    const language = el(
      "select",
      { name: "locale" },
      ...Object.entries(LANGUAGES).map(([code, name]) => el("option", { value: code, selected: code === boot.lang, lang: code }, name)),
    );
    const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    const zone = el(
      "select",
      { name: "time_zone" },
      el("option", { value: "", selected: !boot.time_zone }, t("Automatic ({zone})", { zone: browserZone })),
      ...zones().map((z) => el("option", { value: z, selected: z === boot.time_zone }, z)),
    );
    const notifyButton = canAskNotifications()
      ? el(
          "button",
          {
            type: "button",
            class: "secondary small",
            onclick: async () => {
              const answer = await Notification.requestPermission();
              toast(answer === "granted" ? t("Desktop notifications are on.") : t("Desktop notifications stay off."));
              notifyButton.remove();
            },
          },
          t("Turn on desktop notifications"),
        )
      : null;
    const form = el(
      "form",
      { class: "stack", onsubmit: (e) => this.save(e, language.value, zone.value) },
      el("p", { class: "muted small" }, `${me.name} · ${me.email}`),
      el("label", {}, t("Language"), language),
      el("label", {}, t("Time zone"), zone),
      el("div", { class: "form-actions" }, el("button", { type: "submit", class: "small" }, t("Save"))),
      notifyButton,
    );
    this.pop.replaceChildren(form);
  }

  toggle() {
    if (this.pop.hidden) this.openMenu();
    else this.close();
  }

  openMenu() {
    this.build();
    this.pop.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    this.pop.querySelector("select").focus();
  }

  close() {
    this.pop.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
  }

  async save(event, locale, zone) {
    event.preventDefault();
    // "UTC" is the stored default and means "not chosen" (the browser's zone is used then).
    const body = { locale, time_zone: zone || "UTC" };
    try {
      await api("PATCH", "/auth/me", body);
      window.location.reload();
    } catch (err) {
      toast(errorText(err), "error");
    }
  }
}
