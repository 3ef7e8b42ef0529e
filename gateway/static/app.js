// The chat page and the widget: one UI over the shared client. Model text is rendered by
// render.js (markdown-it, then DOMPurify); user text only ever as text nodes. Nothing a
// user or the model writes becomes live HTML.
import { GatewayClient } from "./client.js";
import { errorText, t, translate, when } from "./i18n.js";
import { StreamView } from "./render.js";

const config = JSON.parse(document.getElementById("gw-config").textContent);
const $ = (id) => document.getElementById(id);
const messages = $("messages");
const past = $("past");
const live = $("live");
const input = $("input");
const statusEl = $("status");
const errorEl = $("error");
const hintEl = $("hint");
const stopButton = $("stop");
const sendButton = $("send");
const historyList = $("history");
const jumpButton = $("jump");
const announcer = $("announce");
const attachments = $("attachments");

const base = new URL(config.root || "./", location.href).href; // the gateway's root, relative
const labels = { copyCode: t("copyCode") };
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];

let token = null;
let anonymousToken = false; // the token is the widget's own anonymous one
let client = null;
let running = null; // message id of the reply streaming now
let outgoing = null; // {id, text, images} of the message sent and not yet answered
let editing = null; // id of the user message being edited
let replacing = null; // the assistant message a regenerate replaces
let following = true; // the view sticks to the bottom while the reader is there
let images = []; // {file, url} attached to the next message
const entries = new Map(); // message id -> entry

// ----------------------------------------------------------------------------- storage

// The iframe's own storage (partitioned per host site) when the browser grants it. Where it
// refuses all storage to a third-party frame, the embedding page keeps the widget's few
// values for it (embed.js, in the host's storage, under the gateway's origin): they come in
// a "gateway:state" message before the widget starts, and changes go back as "gateway:save".
let hostValues = null;
const parentOrigin = (location.ancestorOrigins && location.ancestorOrigins[0]) || "*";

function ownStorage() {
  try {
    localStorage.getItem("gw_probe");
    return true;
  } catch {
    return false;
  }
}

function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return hostValues ? hostValues[key] ?? null : null; // else: for this visit only
  }
}

function store(key, value) {
  try {
    if (value) localStorage.setItem(key, value);
    else localStorage.removeItem(key);
  } catch {
    if (!hostValues) return;
    hostValues[key] = value || null;
    window.parent.postMessage({ type: "gateway:save", key, value: value || null }, parentOrigin);
  }
}

const TOKEN_KEY = config.widget ? "gw_widget_token" : "gw_token";
const CONV_KEY = `gw_widget_conversation:${config.assistant}`;

function authHeaders() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function api(path, options = {}) {
  return fetch(new URL(path, base), {
    credentials: "same-origin",
    ...options,
    headers: { ...authHeaders(), ...(options.headers || {}) },
  });
}

/** A `#token=...` hand-over: taken from the address bar at once, kept for the next visit. */
function takeHandedToken() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!match) return null;
  history.replaceState(history.state, "", location.pathname + location.search);
  const handed = decodeURIComponent(match[1]);
  store(TOKEN_KEY, handed);
  return handed;
}

/** The widget's own anonymous identity, a gateway-signed token kept in its own storage. */
async function widgetAnonymousToken() {
  const kept = stored("gw_anon_token");
  if (kept) return kept;
  try {
    const resp = await fetch(new URL("api/v1/anonymous", base), { method: "POST", credentials: "omit" });
    if (!resp.ok) return null; // an older gateway: the cookie carries the identity
    const body = await resp.json();
    store("gw_anon_token", body.token);
    return body.token || null;
  } catch {
    return null;
  }
}

// ----------------------------------------------------------------------------- notices

function showError(frameOrText, { retry = null } = {}) {
  const text = errorEl.querySelector(".text");
  const details = errorEl.querySelector("details");
  const retryButton = errorEl.querySelector(".retry");
  if (!frameOrText) {
    errorEl.hidden = true;
    return;
  }
  if (typeof frameOrText === "string") {
    text.textContent = frameOrText;
    details.hidden = true;
  } else {
    text.textContent = errorText(frameOrText.code);
    details.querySelector("pre").textContent = `${frameOrText.code}: ${frameOrText.message || ""}`;
    details.hidden = false;
  }
  retryButton.hidden = !retry;
  retryButton.onclick = retry && (() => {
    showError(null);
    retry();
    input.focus();
  });
  errorEl.hidden = false;
}

function showHint(text) {
  hintEl.textContent = text || "";
  hintEl.hidden = !text;
}

function showNotice(text, link = null) {
  const notice = $("notice");
  notice.replaceChildren(text);
  if (link) {
    const a = document.createElement("a");
    a.href = link;
    a.textContent = t("signInLink");
    notice.append(" ", a);
  }
  notice.hidden = !text;
}

function announce(text) {
  announcer.textContent = "";
  setTimeout(() => { announcer.textContent = text; }, 50); // a change the reader hears once
}

function setState({ state, reason, offlineDemo }) {
  statusEl.dataset.state = state;
  statusEl.textContent = t(state);
  if (offlineDemo !== undefined) $("demo-badge").hidden = !offlineDemo;
  sendButton.disabled = state !== "connected";
  if (state !== "offline" || !reason) return;
  if (reason === "unauthorized" && anonymousToken) {
    // The widget's anonymous token was refused (expired, new key): get a new one once.
    anonymousToken = false;
    store("gw_anon_token", null);
    widgetAnonymousToken().then((fresh) => {
      if (!fresh) return;
      token = fresh;
      client.token = fresh;
      client.connect();
    });
    return;
  }
  if (reason === "unauthorized" || reason === "token expired") {
    store(TOKEN_KEY, null);
    showNotice(errorText(reason), config.signInUrl || null);
  }
  if (running) endRunning(running, "failed");
  showError(errorText(reason));
}

// ----------------------------------------------------------------------------- messages

function atBottom() {
  return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 48;
}

function stick() {
  if (following) {
    messages.scrollTop = messages.scrollHeight;
  }
  jumpButton.hidden = following || atBottom();
}

messages.addEventListener("scroll", () => {
  following = atBottom();
  jumpButton.hidden = following;
}, { passive: true });

jumpButton.addEventListener("click", () => {
  following = true;
  stick();
  input.focus();
});

function tool(label, action, className = "") {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.className = className;
  button.addEventListener("click", action);
  return button;
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "sr-only";
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const before = button.textContent;
  button.textContent = t("copied");
  setTimeout(() => { button.textContent = before; }, 1500);
}

function entryFor(id, role, { into = live } = {}) {
  let entry = entries.get(id);
  if (entry) return entry;
  const el = document.createElement("article");
  el.className = `msg ${role}`;
  el.dataset.id = id;
  const body = document.createElement("div");
  body.className = "body";
  const tools = document.createElement("div");
  tools.className = "tools";
  entry = { id, role, el, body, tools, text: "", view: null, thinking: null };
  if (role === "assistant") {
    entry.view = new StreamView(body, labels, { onRender: stick });
    tools.append(
      tool(t("copy"), (e) => copyText(entry.view.text, e.currentTarget), "copy"),
      tool(t("regenerate"), () => regenerate(entry), "regenerate"),
    );
  } else {
    tools.append(
      tool(t("copy"), (e) => copyText(entry.text, e.currentTarget), "copy"),
      tool(t("edit"), () => startEdit(entry), "edit"),
    );
  }
  el.append(body, tools);
  into.append(el);
  entries.set(id, entry);
  return entry;
}

function setUserText(entry, text, pictures = []) {
  entry.text = text;
  entry.body.textContent = text; // as text, never as HTML
  if (pictures.length) {
    const row = document.createElement("div");
    row.className = "pictures";
    for (const src of pictures) {
      const img = document.createElement("img");
      img.src = src;
      img.alt = "";
      row.append(img);
    }
    entry.body.append(row);
  }
}

function thinkingOf(entry) {
  if (!entry.thinking) {
    const box = document.createElement("details");
    box.className = "thinking";
    box.open = true;
    const summary = document.createElement("summary");
    summary.textContent = t("thinking");
    const text = document.createElement("div");
    text.className = "thinking-text";
    box.append(summary, text);
    entry.el.insertBefore(box, entry.body);
    entry.thinking = { box, summary, text, started: performance.now(), folded: false };
  }
  return entry.thinking;
}

function foldThinking(entry, seconds = null) {
  const thinking = entry.thinking;
  if (!thinking || thinking.folded) return;
  thinking.folded = true;
  thinking.box.open = false;
  const s = seconds ?? Math.max(1, Math.round((performance.now() - thinking.started) / 1000));
  thinking.summary.textContent = t("thought", { s });
}

function setRunning(messageId) {
  running = messageId;
  stopButton.hidden = !messageId;
  sendButton.hidden = Boolean(messageId);
}

function endRunning(messageId, status) {
  const entry = entries.get(messageId);
  if (entry) {
    entry.view.finish();
    foldThinking(entry);
    entry.el.dataset.status = status;
    entry.el.removeAttribute("aria-busy");
  }
  if (running === messageId) {
    const hadFocus = document.activeElement === stopButton;
    setRunning(null);
    if (hadFocus) input.focus();
  }
}

function clearMessages() {
  past.replaceChildren();
  live.replaceChildren();
  entries.clear();
  setRunning(null);
  outgoing = null;
  showError(null);
  showHint("");
  following = true;
  jumpButton.hidden = true;
}

// ----------------------------------------------------------------------------- frames

function onFrame({ detail: frame }) {
  switch (frame.type) {
    case "connected":
      if (config.widget) store(CONV_KEY, frame.conversation_id);
      else showInAddressBar(frame.conversation_id);
      refreshConversations();
      return;
    case "user_message": {
      const entry = entryFor(frame.id, "user");
      if (!entry.text) setUserText(entry, frame.text);
      entry.el.dataset.status = "sent";
      stick();
      return;
    }
    case "queued":
      showHint(t("queued", { n: frame.position }));
      return;
    case "start": {
      showHint("");
      if (replacing && !frame.resumed) {
        const old = entries.get(replacing);
        if (old) old.el.remove();
        entries.delete(replacing);
        replacing = null;
      }
      if (outgoing && frame.reply_to === outgoing.id) {
        const mine = entries.get(outgoing.id);
        if (mine) mine.el.dataset.status = "sent";
        outgoing = null;
      }
      const entry = entryFor(frame.message_id, "assistant");
      if (!frame.known) entry.view.reset();
      entry.el.dataset.status = "running";
      entry.el.setAttribute("aria-busy", "true");
      setRunning(frame.message_id);
      showError(null);
      stick();
      return;
    }
    case "reasoning": {
      const entry = entryFor(frame.message_id, "assistant");
      thinkingOf(entry).text.append(frame.text); // a text node: linear, and never HTML
      stick();
      return;
    }
    case "delta": {
      const entry = entryFor(frame.message_id, "assistant");
      foldThinking(entry);
      entry.view.append(frame.text);
      return;
    }
    case "done": {
      const entry = entries.get(frame.message_id);
      const status = frame.finish_reason === "stop" || frame.finish_reason === "length"
        ? "complete" : frame.finish_reason;
      endRunning(frame.message_id, status);
      if (entry) announce(status === "complete" ? t("replyDone") : t("replyStopped"));
      refreshConversations();
      return;
    }
    case "error":
      onError(frame);
      return;
    case "history_cleared":
      clearMessages();
      return;
    case "broadcast":
      showNotice(frame.message);
      return;
    default:
  }
}

function onError(frame) {
  if (frame.code === "token_expiring") {
    refreshToken();
    return;
  }
  if (frame.message_id && entries.has(frame.message_id)) {
    endRunning(frame.message_id, "failed");
    announce(t("replyFailed"));
    const entry = entries.get(frame.message_id);
    showError(frame, { retry: frame.retryable ? () => regenerate(entry) : null });
    return;
  }
  if (outgoing && frame.reply_to === outgoing.id) {
    refused(frame);
    return;
  }
  showError(frame);
}

/** A refused message: its bubble goes, its text (and images) back in the input, and why. */
function refused(frame) {
  const { id, text, pictures } = outgoing;
  outgoing = null;
  const mine = entries.get(id);
  if (mine) mine.el.remove();
  entries.delete(id);
  if (!input.value) input.value = text;
  if (!images.length) images = pictures;
  drawAttachments();
  showHint(errorText(frame.code));
  const retry = frame.retryable ? () => sendMessage() : null;
  showError(frame, { retry });
  errorEl.querySelector(".text").textContent = errorText(frame.code);
  input.focus();
}

// ----------------------------------------------------------------------------- actions

async function sendMessage() {
  const text = input.value.trim();
  if (!client) return;
  if (!text && !images.length) return;
  if (client.state !== "connected") {
    showHint(t("notConnected"));
    return;
  }
  const length = [...text].length;
  if (length > config.maxMessageChars) {
    showHint(t("tooLong", { n: length, max: config.maxMessageChars }));
    return;
  }
  showHint("");
  showError(null);
  if (editing) {
    const entry = entries.get(editing);
    editing = null;
    $("composer").classList.remove("editing");
    if (entry) {
      let next = entry.el.nextElementSibling;
      while (next) {
        const after = next.nextElementSibling;
        entries.delete(next.dataset.id);
        next.remove();
        next = after;
      }
      setUserText(entry, text);
    }
    input.value = "";
    client.edit(entry ? entry.id : "", text);
    input.focus();
    return;
  }
  const pictures = await Promise.all(images.map((image) => dataUrl(image.file)));
  const attached = images;
  images = [];
  drawAttachments();
  const id = client.send(text, { images: pictures });
  outgoing = { id, text, pictures: attached };
  const entry = entryFor(id, "user");
  setUserText(entry, text, pictures);
  entry.el.dataset.status = "sending";
  input.value = "";
  following = true;
  stick();
  input.focus();
}

function regenerate(entry) {
  if (!client || running) return;
  replacing = entry ? entry.id : null;
  showError(null);
  client.regenerate();
  input.focus();
}

function startEdit(entry) {
  editing = entry.id;
  input.value = entry.text;
  $("composer").classList.add("editing");
  input.focus();
}

function stop() {
  if (client && running) client.cancel();
  input.focus(); // focus stays where the person types
}

function refreshToken() {
  if (config.widget && config.expectToken) {
    window.parent.postMessage({ type: "gateway:token-expiring" }, "*");
  }
}

// ----------------------------------------------------------------------------- images

function dataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function addImages(files) {
  const mb = (n) => (n / 1048576).toFixed(1);
  for (const file of files) {
    if (!IMAGE_TYPES.includes(file.type)) {
      showHint(t("imageType", { name: file.name }));
      continue;
    }
    if (file.size > config.maxImageBytes) {
      showHint(t("imageTooBig", { name: file.name, size: mb(file.size), max: mb(config.maxImageBytes) }));
      continue;
    }
    if (images.length >= config.maxImages) {
      showHint(t("tooManyImages", { max: config.maxImages }));
      break;
    }
    images.push({ file, url: URL.createObjectURL(file) });
  }
  drawAttachments();
}

function drawAttachments() {
  attachments.replaceChildren(...images.map((image, i) => {
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.src = image.url;
    img.alt = image.file.name;
    const remove = tool("×", () => {
      URL.revokeObjectURL(image.url);
      images.splice(i, 1);
      drawAttachments();
      input.focus();
    });
    remove.setAttribute("aria-label", t("removeImage", { name: image.file.name }));
    figure.append(img, remove);
    return figure;
  }));
  attachments.hidden = images.length === 0;
}

// ----------------------------------------------------------------------------- conversations

function showInAddressBar(conversationId) {
  const wanted = new URL(`c/${encodeURIComponent(conversationId)}`, base);
  if (location.pathname !== wanted.pathname) history.replaceState({ conversationId }, "", wanted.href);
}

/** Show a conversation's history; false when the server no longer has it. */
async function loadHistory(conversationId) {
  let resp;
  try {
    resp = await api(`api/v1/conversations/${encodeURIComponent(conversationId)}/messages`);
  } catch {
    return true; // offline: the socket will say so; the chat works without the history
  }
  if (resp.status === 404 || resp.status === 403) return false;
  if (!resp.ok) return true;
  const body = await resp.json();
  for (const message of body.messages) {
    if (message.status === "replaced") continue;
    const entry = entryFor(message.id, message.role, { into: past });
    if (message.role === "user") {
      setUserText(entry, message.content);
      continue;
    }
    if (message.reasoning) {
      thinkingOf(entry).text.append(message.reasoning);
      foldThinking(entry, 0);
      entry.thinking.summary.textContent = t("thoughts"); // its duration was not kept
    }
    entry.el.dataset.status = message.status;
    if (message.status === "running") continue; // the resume brings it, from step 1
    entry.view.reset(message.content);
    entry.view.finish();
  }
  stick();
  return true;
}

async function openConversation(conversationId, { push = true } = {}) {
  closeDrawer();
  clearMessages();
  showNotice("");
  if (push && !config.widget) {
    const target = conversationId ? new URL(`c/${encodeURIComponent(conversationId)}`, base) : new URL(base);
    history.pushState({ conversationId }, "", target.href);
  }
  if (conversationId && !(await loadHistory(conversationId))) {
    showNotice(t("forgotten"));
    historyList?.querySelector(`li[data-id="${CSS.escape(conversationId)}"]`)?.remove();
    conversationId = null;
    if (!config.widget) history.replaceState({ conversationId }, "", base);
  }
  if (client) client.switchTo(conversationId);
  input.focus();
}

async function refreshConversations() {
  if (!historyList) return;
  let list;
  try {
    const resp = await api("api/v1/conversations");
    if (!resp.ok) return;
    list = await resp.json();
  } catch {
    return;
  }
  const current = client && client.conversationId;
  const rows = list.filter((c) => c.assistant === config.assistant
    && (c.id === current || c.message_count === undefined || c.message_count > 0));
  historyList.replaceChildren(...rows.map((c) => {
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
    if (c.id === current) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => openConversation(c.id));
    const rename = tool("✎", () => renameConversation(c), "rename");
    rename.setAttribute("aria-label", `${t("rename")}: ${c.title || t("untitled")}`);
    const remove = tool("🗑", () => deleteConversation(c), "delete");
    remove.setAttribute("aria-label", `${t("delete")}: ${c.title || t("untitled")}`);
    li.append(open, rename, remove);
    return li;
  }));
}

async function renameConversation(c) {
  const title = window.prompt(t("renamePrompt"), c.title || "");
  if (title === null || !title.trim()) return;
  const resp = await api(`api/v1/conversations/${encodeURIComponent(c.id)}`, {
    method: "PATCH",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ title: title.trim() }),
  }).catch(() => null);
  if (resp && !resp.ok) showError(errorText("default"));
  refreshConversations();
}

async function deleteConversation(c) {
  if (!window.confirm(t("deleteConfirm"))) return;
  const resp = await api(`api/v1/conversations/${encodeURIComponent(c.id)}`, { method: "DELETE" })
    .catch(() => null);
  if (resp && !resp.ok && resp.status !== 404) {
    showError(errorText("default"));
    return;
  }
  if (client && c.id === client.conversationId) openConversation(null);
  else refreshConversations();
}

// ----------------------------------------------------------------------------- drawer

function openDrawer() {
  document.body.classList.add("drawer-open");
  $("menu").setAttribute("aria-expanded", "true");
  $("new-chat").focus();
}

function closeDrawer() {
  if (!document.body.classList.contains("drawer-open")) return;
  document.body.classList.remove("drawer-open");
  $("menu").setAttribute("aria-expanded", "false");
}

// ----------------------------------------------------------------------------- start

async function start(conversationId) {
  client = new GatewayClient({ base, assistant: config.assistant, token, conversationId });
  client.addEventListener("frame", onFrame);
  client.addEventListener("state", (e) => setState(e.detail));
  window.gatewayClient = client; // for tests and for embedding pages that want to watch
  if (conversationId && !(await loadHistory(conversationId))) {
    showNotice(t("forgotten"));
    client.conversationId = null;
    if (!config.widget) history.replaceState({}, "", base);
  }
  client.connect();
}

function wire() {
  translate();
  $("title").textContent = config.title;
  if (config.greeting) $("greeting").textContent = config.greeting;
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendMessage();
    }
  });
  input.addEventListener("input", () => showHint(""));
  input.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (files.length) {
      event.preventDefault();
      addImages(files);
    }
  });
  const main = document.querySelector("main");
  main.addEventListener("dragover", (event) => event.preventDefault());
  main.addEventListener("drop", (event) => {
    event.preventDefault();
    addImages([...(event.dataTransfer?.files || [])]);
  });
  $("attach").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", (event) => {
    addImages([...event.target.files]);
    event.target.value = "";
    input.focus();
  });
  stopButton.addEventListener("click", stop);
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (document.body.classList.contains("drawer-open")) {
      closeDrawer();
      $("menu").focus();
    } else if (running) {
      event.preventDefault();
      stop();
    } else if (editing) {
      editing = null;
      input.value = "";
      $("composer").classList.remove("editing");
    }
  });
  messages.addEventListener("click", (event) => {
    const button = event.target.closest(".copy-code");
    if (!button) return;
    const pre = button.closest(".code")?.querySelector("pre");
    if (pre) copyText(pre.textContent, button);
  });
  if (!config.widget) {
    $("new-chat").addEventListener("click", () => openConversation(null));
    $("menu").addEventListener("click", openDrawer);
    $("close-drawer").addEventListener("click", () => {
      closeDrawer();
      $("menu").focus();
    });
    $("scrim").addEventListener("click", closeDrawer);
    window.addEventListener("popstate", () => {
      const match = /\/c\/([^/]+)$/.exec(location.pathname);
      openConversation(match ? decodeURIComponent(match[1]) : null, { push: false });
    });
  }
}

/** In a frame: what the embedding page hands over (its user's token, kept values). */
function fromHost() {
  const needState = !ownStorage();
  return new Promise((resolve) => {
    let handed = null;
    let state = !needState;
    const done = () => {
      if ((handed || !config.expectToken) && state) resolve(handed);
    };
    window.addEventListener("message", (event) => {
      if (event.source !== window.parent || !event.data) return;
      if (event.data.type === "gateway:state" && needState) {
        hostValues = { ...(event.data.values || {}) };
        state = true;
        done();
      } else if (event.data.type === "gateway:token" && config.expectToken) {
        // The embedding page hands its user's token over by postMessage, never in a URL.
        handed = String(event.data.token);
        if (client) {
          token = handed;
          client.setToken(handed);
        }
        done();
      }
    });
    if (needState) {
      setTimeout(() => {
        if (!state) {
          hostValues = {}; // an older embed.js: values last for this visit only
          state = true;
          done();
        }
      }, 3000);
    }
    window.parent.postMessage({ type: "gateway:ready" }, parentOrigin);
    done();
  });
}

async function boot() {
  wire();
  if (config.widget && window.parent !== window) {
    const handed = await fromHost();
    if (config.expectToken) {
      token = handed;
      start(stored(CONV_KEY));
      return;
    }
  }
  token = takeHandedToken() || stored(TOKEN_KEY);
  if (!token && config.widget && !config.authRequired) {
    token = await widgetAnonymousToken();
    anonymousToken = Boolean(token);
  }
  if (!token && config.authRequired) {
    showNotice(t("signIn"), config.signInUrl || null);
    setState({ state: "offline" });
    return;
  }
  start(config.widget ? stored(CONV_KEY) : config.conversationId || null);
}

boot();
