// Form building blocks of the admin page: labelled fields with an error slot each, the server's
// problem `detail` shown next to the field it names (or above the buttons), one-time secrets with
// a Copy button, and a small confirm dialog. Every value is set with textContent / properties,
// never parsed as HTML.
import { ApiError, problemDetail } from "../lib/api.js";
import { t } from "../lib/boot.js";
import { el, toast } from "../lib/shell.js";

let counter = 0;
/** A unique element id with a readable prefix. */
export function uid(prefix = "f") {
  counter += 1;
  return `${prefix}-${counter}`;
}

/**
 * A labelled input: field({label, name, type, value, required, options:[[value, label]], hint}).
 * Returns the wrapper; the control is `wrapper.control`. `name` is the API field it maps to
 * (dotted for nested config: "config.imap.host") so a 422 `errors[].field` finds it.
 */
export function field({ label, name, type = "text", value = "", required = false, options = null, hint = "", attrs = {} }) {
  const id = uid(name ? name.replace(/[^\w-]/g, "-") : "f");
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  let control;
  if (options) {
    control = el("select", { id, name, required, ...attrs });
    for (const [optionValue, optionLabel] of options) control.append(el("option", { value: optionValue }, optionLabel));
    control.value = value ?? "";
  } else if (type === "textarea") {
    control = el("textarea", { id, name, required, rows: 4, ...attrs });
    control.value = value ?? "";
  } else if (type === "checkbox") {
    control = el("input", { id, name, type: "checkbox", ...attrs });
    control.checked = Boolean(value);
  } else {
    control = el("input", { id, name, type, required, ...attrs });
    control.value = value ?? "";
  }
  control.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  const error = el("p", { id: errorId, class: "field-error", hidden: true });
  const wrapper =
    type === "checkbox"
      ? el("div", { class: "field checkbox" }, control, el("label", { for: id }, label), hintId && el("p", { id: hintId, class: "hint muted" }, hint), error)
      : el("div", { class: "field" }, el("label", { for: id }, label), control, hintId && el("p", { id: hintId, class: "hint muted" }, hint), error);
  wrapper.control = control;
  wrapper.dataset.field = name || "";
  return wrapper;
}

/** A form with a title, fields, an error region and a submit button. `onSubmit(form)` may throw ApiError. */
export function form({ title = "", fields = [], submitLabel, onSubmit, extra = [], className = "" }) {
  const formError = el("p", { class: "form-error", role: "alert", hidden: true });
  const submit = el("button", { type: "submit" }, submitLabel || t("Save"));
  const node = el(
    "form",
    { class: `admin-form ${className}`.trim(), novalidate: true },
    title && el("h3", {}, title),
    el("div", { class: "fields" }, ...fields),
    ...extra,
    formError,
    el("div", { class: "actions" }, submit),
  );
  node.formError = formError;
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(node);
    const invalid = [...node.querySelectorAll("input, select, textarea")].find((c) => !c.checkValidity());
    if (invalid) {
      showFieldError(node, invalid, invalid.validationMessage);
      invalid.focus();
      return;
    }
    submit.disabled = true;
    try {
      await onSubmit(node);
    } catch (error) {
      showProblem(node, error);
    } finally {
      submit.disabled = false;
    }
  });
  return node;
}

export function clearErrors(root) {
  for (const p of root.querySelectorAll(".field-error, .form-error")) {
    p.textContent = "";
    p.hidden = true;
  }
  for (const c of root.querySelectorAll("[aria-invalid]")) c.removeAttribute("aria-invalid");
}

function showFieldError(root, control, message) {
  control.setAttribute("aria-invalid", "true");
  const slot = root.querySelector(`#${CSS.escape(control.id)}-error`);
  if (slot) {
    slot.textContent = message;
    slot.hidden = false;
  }
}

/** The control for an API field name ("email", "config.imap.host", "config.business_hours.days.mon"). */
function controlFor(root, name) {
  let key = name;
  while (key) {
    const found = root.querySelector(`[name="${CSS.escape(key)}"]`);
    if (found) return found;
    const cut = key.lastIndexOf(".");
    if (cut < 0) break;
    key = key.slice(0, cut);
  }
  return null;
}

/**
 * Show an error from the server: each `errors[].field` next to its control (when the form has it),
 * the `detail` in the form's alert region. Anything that is not an ApiError is shown as-is.
 */
export function showProblem(root, error) {
  const region = root.formError || root.querySelector(".form-error");
  const detail = problemDetail(error);
  if (error instanceof ApiError && Array.isArray(error.problem.errors)) {
    for (const item of error.problem.errors) {
      const control = item && item.field ? controlFor(root, String(item.field)) : null;
      if (control) showFieldError(root, control, String(item.message || detail));
    }
  }
  if (region) {
    region.textContent = t("Error: {detail}", { detail });
    region.hidden = false;
  } else {
    toast(t("Error: {detail}", { detail }), "error");
  }
  const first = root.querySelector("[aria-invalid='true']");
  if (first) first.focus();
}

/** The value of a named control inside `root` (checkbox → boolean, number → number or null, else trimmed text). */
export function value(root, name) {
  const control = root.querySelector(`[name="${CSS.escape(name)}"]`);
  if (!control) return undefined;
  if (control.type === "checkbox") return control.checked;
  if (control.type === "number") return control.value === "" ? null : Number(control.value);
  return control.value.trim();
}

/** Copy text to the clipboard; falls back to selecting it in a hidden textarea. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = el("textarea", { class: "visually-hidden", "aria-hidden": "true", tabindex: "-1" });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

/** A "Copy" button for `getText()`; says "Copied" for a moment (and in the live region). */
export function copyButton(getText, label = t("Copy")) {
  const button = el("button", { type: "button", class: "secondary copy" }, label);
  button.addEventListener("click", async () => {
    const ok = await copyText(getText());
    toast(ok ? t("Copied to the clipboard.") : t("Could not copy; select the text and copy it by hand."), ok ? "info" : "error");
    if (ok) {
      button.textContent = t("Copied");
      setTimeout(() => (button.textContent = label), 2000);
    }
  });
  return button;
}

/** A read-only block of code (a snippet) with a Copy button. */
export function codeBlock(label, text) {
  const id = uid("code");
  const code = el("pre", { class: "code", id, tabindex: "0", "aria-label": label }, el("code", {}, text));
  return el("div", { class: "code-block" }, el("p", { class: "code-label" }, label), code, copyButton(() => text));
}

/** A secret shown once: read-only field, Copy button and the warning that it will not be shown again. */
export function secretBox(label, secret) {
  const id = uid("secret");
  const input = el("input", { id, type: "text", readonly: true, class: "secret", spellcheck: "false", autocomplete: "off" });
  input.value = secret;
  input.addEventListener("focus", () => input.select());
  return el(
    "div",
    { class: "secret-box" },
    el("label", { for: id }, label),
    el("div", { class: "secret-row" }, input, copyButton(() => secret)),
    el("p", { class: "warn" }, t("Shown only once: store it now. Rotate it to get a new one.")),
  );
}

/** A modal confirmation; resolves true when confirmed. Esc or Cancel resolve false. */
export function confirmDialog(message, confirmLabel, { danger = true } = {}) {
  return new Promise((resolve) => {
    const ok = el("button", { type: "button", class: danger ? "danger" : "" }, confirmLabel);
    const cancel = el("button", { type: "button", class: "secondary" }, t("Cancel"));
    const dialog = el("dialog", { class: "confirm", "aria-label": confirmLabel }, el("p", {}, message), el("div", { class: "actions" }, cancel, ok));
    const finish = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    ok.addEventListener("click", () => finish(true));
    cancel.addEventListener("click", () => finish(false));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** Format a problem for a toast. */
export function problemText(error) {
  return t("Error: {detail}", { detail: problemDetail(error) });
}

/** A section heading with an optional intro paragraph. */
export function sectionHeader(title, intro = "") {
  return el("header", { class: "section-header" }, el("h2", { tabindex: "-1" }, title), intro && el("p", { class: "muted" }, intro));
}

/** A small status pill: text always present, colour only as a second cue. */
export function pill(text, kind = "") {
  return el("span", { class: `pill ${kind}`.trim() }, text);
}

/** Lists from endpoints that answer either a list or a page ({items}). */
export function items(data) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}
