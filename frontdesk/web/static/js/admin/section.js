// The base of every admin section: renders once when first shown, reloads on demand, and shows
// a load failure in place (with a Retry button) instead of an empty screen.
import { t } from "../lib/boot.js";
import { el } from "../lib/shell.js";
import { problemText } from "./forms.js";

export class AdminSection extends HTMLElement {
  connectedCallback() {
    if (this.started) return;
    this.started = true;
    this.classList.add("admin-section");
    this.reload();
  }

  /** Fetch what the section needs (override); returns the data handed to render(). */
  async fetchData() {
    return null;
  }

  /** Build the section's DOM from the data (override). */
  render(_data) {}

  async reload() {
    if (!this.childElementCount) this.replaceChildren(el("p", { class: "muted" }, t("Loading…")));
    let data;
    try {
      data = await this.fetchData();
    } catch (error) {
      const retry = el("button", { type: "button", class: "secondary" }, t("Retry"));
      retry.addEventListener("click", () => this.reload());
      this.replaceChildren(el("div", { class: "load-error", role: "alert" }, el("p", { class: "error" }, problemText(error)), retry));
      return;
    }
    // Keep focus where it was across a re-render when the same control exists again.
    const active = document.activeElement && this.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
    this.render(data);
    if (active) {
      const again = this.querySelector(`[data-focus-key="${CSS.escape(active)}"]`);
      if (again) again.focus();
    }
  }

  /** Move focus to the section's heading (after navigation). */
  focusHeading() {
    const heading = this.querySelector("h2");
    if (heading) heading.focus();
  }
}
