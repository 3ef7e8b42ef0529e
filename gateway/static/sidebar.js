// The list of past conversations (titles, times, rename, delete) and, below 640 px, the
// drawer that holds it.
import { tool } from "./controls.js";
import { errorText, t, when } from "./i18n.js";

/** The sidebar over `list` (a <ul>); `api(path, options)` calls the REST API. */
export class Sidebar {
  constructor(list, { api, assistant, current, open, fail }) {
    this.list = list;
    this.api = api;
    this.assistant = assistant;
    this.current = current; // () => the conversation shown now
    this.open = open; // (id | null) => show that conversation (null: a new one)
    this.fail = fail; // (sentence) => show an error
  }

  async refresh() {
    if (!this.list) return;
    let rows;
    try {
      const resp = await this.api("api/v1/conversations");
      if (!resp.ok) return;
      rows = await resp.json();
    } catch {
      return;
    }
    const current = this.current();
    rows = rows.filter((c) => c.assistant === this.assistant
      && (c.id === current || c.message_count === undefined || c.message_count > 0));
    this.list.replaceChildren(...rows.map((c) => this.row(c, current)));
  }

  /** A conversation the server no longer has leaves the list. */
  forget(id) {
    this.list?.querySelector(`li[data-id="${CSS.escape(id)}"]`)?.remove();
  }

  row(c, current) {
    const li = document.createElement("li");
    li.dataset.id = c.id;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.dataset.id = c.id;
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = c.title || t("untitled");
    const time = document.createElement("time");
    time.dateTime = c.updated_at || c.created_at || "";
    time.textContent = when(time.dateTime);
    open.append(title, time);
    if (c.id === current) {
      open.setAttribute("aria-current", "true");
      li.className = "current";
    }
    open.addEventListener("click", () => this.open(c.id));
    const rename = tool("✎", () => this.rename(c), "rename");
    rename.setAttribute("aria-label", `${t("rename")}: ${c.title || t("untitled")}`);
    const remove = tool("🗑", () => this.remove(c), "delete");
    remove.setAttribute("aria-label", `${t("delete")}: ${c.title || t("untitled")}`);
    li.append(open, rename, remove);
    return li;
  }

  async rename(c) {
    const title = window.prompt(t("renamePrompt"), c.title || "");
    if (title === null || !title.trim()) return;
    const resp = await this.api(`api/v1/conversations/${encodeURIComponent(c.id)}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ title: title.trim() }),
    }).catch(() => null);
    if (resp && !resp.ok) this.fail(errorText("default"));
    this.refresh();
  }

  async remove(c) {
    if (!window.confirm(t("deleteConfirm"))) return;
    const resp = await this.api(`api/v1/conversations/${encodeURIComponent(c.id)}`, { method: "DELETE" })
      .catch(() => null);
    if (resp && !resp.ok && resp.status !== 404) {
      this.fail(errorText("default"));
      return;
    }
    if (c.id === this.current()) this.open(null);
    else this.refresh();
  }
}

export function openDrawer() {
  document.body.classList.add("drawer-open");
  document.getElementById("menu").setAttribute("aria-expanded", "true");
  document.getElementById("new-chat").focus();
}

export function closeDrawer() {
  if (!document.body.classList.contains("drawer-open")) return;
  document.body.classList.remove("drawer-open");
  document.getElementById("menu").setAttribute("aria-expanded", "false");
}
