// Building blocks of the routing sections (queues, skills, agents' routing, rules): a group of
// checkboxes that is one API field, numbers that may be left empty, rows that are added and
// removed, and lists typed as text. A group is a <fieldset name="<api field>"> with its own error
// slot, so a 422 naming the field ("channels", "cost", "conditions.tags") lands next to it.
import { t } from "../lib/boot.js";
import { el } from "../lib/shell.js";
import { field, uid } from "./forms.js";

/**
 * checkGroup({legend, name, options: [[value, label]], values}) → a fieldset of checkboxes.
 * Read it back with checked(root, name).
 */
export function checkGroup({ legend, name, options, values = [], hint = "", className = "", empty = "" }) {
  const id = uid(name.replace(/[^\w-]/g, "-"));
  const chosen = new Set((values || []).map(String));
  const hintId = hint ? `${id}-hint` : null;
  const group = el(
    "fieldset",
    { id, name, class: `checks ${className}`.trim(), tabindex: "-1", "aria-describedby": [hintId, `${id}-error`].filter(Boolean).join(" ") },
    el("legend", {}, legend),
  );
  if (!options.length) group.append(el("p", { class: "muted" }, empty || t("None yet.")));
  for (const [optionValue, optionLabel] of options) {
    const boxId = uid(`${id}-o`);
    const box = el("input", { type: "checkbox", id: boxId, dataset: { group: name }, value: optionValue });
    box.checked = chosen.has(String(optionValue));
    group.append(el("div", { class: "check" }, box, el("label", { for: boxId }, optionLabel)));
  }
  if (hintId) group.append(el("p", { id: hintId, class: "hint muted" }, hint));
  group.append(el("p", { id: `${id}-error`, class: "field-error", hidden: true }));
  return group;
}

/** The values ticked in the checkGroup `name` inside `root`. */
export function checked(root, name) {
  return [...root.querySelectorAll(`input[type=checkbox][data-group="${CSS.escape(name)}"]`)].filter((b) => b.checked).map((b) => b.value);
}

/** A number input; `value` null/undefined shows empty. */
export function numberField({ label, name, value, min = 0, max = undefined, step = 1, required = true, hint = "" }) {
  return field({
    label,
    name,
    type: "number",
    value: value === null || value === undefined ? "" : String(value),
    required,
    hint,
    attrs: { min, max, step, inputmode: step === 1 ? "numeric" : "decimal" },
  });
}

/** The number in the control `name` inside `root`, or null when it is empty. */
export function num(root, name) {
  const control = root.querySelector(`[name="${CSS.escape(name)}"]`);
  if (!control || control.value.trim() === "") return null;
  return Number(control.value);
}

/** Text of the control `name`, split at commas and new lines, trimmed, empties dropped. */
export function list(root, name) {
  const control = root.querySelector(`[name="${CSS.escape(name)}"]`);
  return (control ? control.value : "")
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * rowsEditor({legend, name, rows, make, addLabel}) → a fieldset of rows that can be added and
 * removed. `make(row)` returns the row's controls; each control carries `data-row-field` (its
 * field in the row) and is named `${name}.${position}.${field}` by readRows(), so an error on one
 * row ("required_skills.1.min_level") finds it.
 */
export function rowsEditor({ legend, name, rows, make, addLabel, removeLabel, empty = "" }) {
  const id = uid(name.replace(/[^\w-]/g, "-"));
  const body = el("div", { class: "rows" });
  const emptyNote = el("p", { class: "muted" }, empty);
  let next = 0;
  const add = (row, focus = false) => {
    const index = next;
    next += 1;
    const remove = el("button", { type: "button", class: "secondary small" }, t("Remove"));
    const item = el("div", { class: "row-item", dataset: { index: String(index) } }, ...make(row, index), remove);
    item.querySelectorAll("[data-row-field]").forEach((c) => c.setAttribute("name", `${name}.${body.childElementCount}.${c.dataset.rowField}`));
    remove.setAttribute("aria-label", removeLabel ? removeLabel(index) : t("Remove"));
    remove.addEventListener("click", () => {
      item.remove();
      emptyNote.hidden = body.childElementCount > 0;
      addButton.focus();
    });
    body.append(item);
    emptyNote.hidden = true;
    if (focus) {
      const first = item.querySelector("input, select");
      if (first) first.focus();
    }
  };
  const addButton = el("button", { type: "button", class: "secondary" }, addLabel);
  addButton.addEventListener("click", () => add(null, true));
  const group = el(
    "fieldset",
    { id, name, class: "rows-editor", tabindex: "-1", "aria-describedby": `${id}-error` },
    el("legend", {}, legend),
    body,
    emptyNote,
    el("p", { id: `${id}-error`, class: "field-error", hidden: true }),
    el("div", { class: "actions" }, addButton),
  );
  for (const row of rows || []) add(row);
  emptyNote.hidden = body.childElementCount > 0 || !empty;
  group.rows = () => [...body.children];
  return group;
}

/**
 * The rows of a rowsEditor as objects {field: value}, in order; renames their controls by their
 * position (what the API will call them). `kinds` says how to read a field: "number", "bool",
 * "checks" (the ticked values of a checkGroup inside the row) or text.
 */
export function readRows(group, kinds) {
  return group.rows().map((item, position) => {
    const out = {};
    for (const control of item.querySelectorAll("[data-row-field]")) {
      const key = control.dataset.rowField;
      control.setAttribute("name", `${group.getAttribute("name")}.${position}.${key}`);
      const kind = kinds[key];
      if (kind === "checks") out[key] = checked(control, control.dataset.groupName || key);
      else if (kind === "bool") out[key] = control.checked;
      else if (kind === "number") out[key] = control.value.trim() === "" ? null : Number(control.value);
      else out[key] = control.value;
    }
    return out;
  });
}

/** "a, b, c" from a list, "—" when empty. */
export function joined(values) {
  return values && values.length ? values.join(", ") : "—";
}
