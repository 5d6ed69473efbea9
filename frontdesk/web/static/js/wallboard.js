// The supervisor wallboard: live totals, queues and agents; click an agent to see and reassign
// their conversations. See docs/wallboard.md.
import { boot, t, timeZone } from "./lib/boot.js";
import { startShell } from "./lib/shell.js";
import "./wallboard/agent-panel.js";
import "./wallboard/board.js";

const { socket } = startShell();
const board = document.querySelector("fd-wallboard");
const panel = document.querySelector("fd-agent-panel");
board.listen(socket);
board.addEventListener("agent", (e) => panel.open(e.detail));
panel.addEventListener("reassigned", () => board.refresh());

// Keep the open panel's summary in step with the board.
board.addEventListener("updated", (e) => {
  if (!panel.agent) return;
  const fresh = (e.detail.agents || []).find((a) => a.user_id === panel.agent.user_id);
  if (fresh) panel.update(fresh);
});

const updated = document.getElementById("wb-updated");
const clock = new Intl.DateTimeFormat(boot.lang === "ru" ? "ru-RU" : "en-GB", { timeZone, hour: "2-digit", minute: "2-digit", second: "2-digit" });
board.addEventListener("updated", () => {
  updated.textContent = t("Updated {time}", { time: clock.format(new Date()) });
});

const full = document.getElementById("wb-fullscreen");
if (full) {
  if (!document.fullscreenEnabled) full.hidden = true;
  full.addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.documentElement.requestFullscreen().catch(() => {});
  });
  document.addEventListener("fullscreenchange", () => {
    full.textContent = document.fullscreenElement ? t("Exit full screen") : t("Full screen");
  });
}
