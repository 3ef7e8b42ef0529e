// The chat page and the widget: one UI over the shared client. Model text is rendered by
// render.js (markdown-it, then DOMPurify); user text only ever as text nodes. Nothing a
// user or the model writes becomes live HTML.
import { Attachments } from "./attachments.js";
import { GatewayClient } from "./client.js";
import { copyText, tool } from "./controls.js";
import { clock, errorSentence, errorText, t, translate } from "./i18n.js";
import { DRAW_INTERVAL_MS, StreamView } from "./render.js";
import { closeDrawer, openDrawer, Sidebar } from "./sidebar.js";
import { fromHost, store, stored } from "./storage.js";

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
const jumpButton = $("jump");
const announcer = $("announce");

const base = new URL(config.root || "./", location.href).href; // the gateway's root, relative
const labels = { copyCode: t("copyCode") };

let token = null;
let anonymousToken = false; // the token is the widget's own anonymous one
let client = null;
let running = null; // message id of the reply streaming now
let outgoing = null; // {id, text, images} of the message sent and not yet answered
let editing = null; // id of the user message being edited
let replacing = null; // the assistant message a regenerate replaces
let following = true; // the view sticks to the bottom while the reader is there
const entries = new Map(); // message id -> entry
const attachments = new Attachments($("attachments"), {
  maxBytes: config.maxImageBytes,
  maxImages: config.maxImages,
  problem: (text) => showHint(text),
  changed: () => input.focus(),
});
const sidebar = new Sidebar($("history"), {
  api,
  assistant: config.assistant,
  current: () => client && client.conversationId,
  open: (id) => openConversation(id),
  fail: (text) => showError(text),
});

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
    text.textContent = errorSentence(frameOrText);
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

/** Stick for a few frames: boxes coming on screen take their real height after a jump. */
function settle(frames = 3) {
  stick();
  if (frames > 1 && following) requestAnimationFrame(() => settle(frames - 1));
}

// Only the reader's own scrolling stops the following: a scroll event may also come from
// the page's own scrolling, or from boxes below taking their real height.
let readerScrolledAt = -Infinity;
const readerScrolled = () => { readerScrolledAt = performance.now(); };
for (const type of ["wheel", "touchmove", "pointerdown"]) {
  messages.addEventListener(type, readerScrolled, { passive: true });
}
messages.addEventListener("keydown", (event) => {
  if (["ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End", " "].includes(event.key)) readerScrolled();
});

messages.addEventListener("scroll", () => {
  if (atBottom()) following = true;
  else if (performance.now() - readerScrolledAt < 1000) following = false;
  jumpButton.hidden = following;
}, { passive: true });

jumpButton.addEventListener("click", () => {
  readerScrolledAt = -Infinity; // the jump is the reader's choice to follow, not a scroll away
  following = true;
  settle();
  input.focus();
});

// While following, any growth of the conversation (a box taking its real height once it
// comes on screen, a late image) keeps the view at the bottom, also after a reply ends.
new ResizeObserver(() => { if (following) stick(); }).observe(live);
new ResizeObserver(() => { if (following) stick(); }).observe($("past"));

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
      if (typeof src === "string") img.src = src;
      else keptPicture(img, src);
      img.alt = "";
      row.append(img);
    }
    entry.body.append(row);
  }
}

/** A history image ({id, media_type, bytes}), fetched with the caller's credentials. */
async function keptPicture(img, ref) {
  try {
    const resp = await api(`api/v1/images/${encodeURIComponent(ref.id)}`);
    if (resp.ok) img.src = URL.createObjectURL(await resp.blob());
  } catch {
    // offline: the picture stays blank
  }
}

/** The kept images of a history message or a user_message frame (URL images are not shown). */
function keptPictures(images) {
  return (images || []).filter((image) => !image.url);
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
    settle();
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
      sidebar.refresh();
      showBudget();
      return;
    case "user_message": {
      const entry = entryFor(frame.id, "user");
      if (!entry.text) setUserText(entry, frame.text, keptPictures(frame.images));
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
      sidebar.refresh();
      showBudget(); // the reply's usage is recorded before its done is sent
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
  attachments.giveBack(pictures);
  showHint(errorSentence(frame));
  const retry = frame.retryable ? () => sendMessage() : null;
  showError(frame, { retry });
  if (frame.code === "quota_exceeded") showBudget();
  input.focus();
}

/** Where a quota is set: how much of today's allowance is left (GET api/v1/quota). */
async function showBudget() {
  const el = $("budget");
  if (!config.quota || !el) return;
  let quota = null;
  try {
    const resp = await api(`api/v1/quota?assistant=${encodeURIComponent(config.assistant)}`);
    if (resp.ok) quota = (await resp.json()).quota;
  } catch {
    // offline: the last figure stays
    return;
  }
  el.hidden = !quota;
  if (!quota) return;
  const number = (n) => n.toLocaleString(document.documentElement.lang);
  el.textContent = t("budget", { n: number(quota.remaining) });
  el.title = t("budgetTitle", {
    used: number(quota.used), limit: number(quota.limit), at: clock(new Date(quota.resets_at)),
  });
  el.dataset.remaining = String(quota.remaining);
}

// ----------------------------------------------------------------------------- actions

async function sendMessage() {
  const text = input.value.trim();
  if (!client) return;
  if (!text && !attachments.count) return;
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
  const { urls: pictures, taken } = await attachments.take();
  const id = client.send(text, { images: pictures });
  outgoing = { id, text, pictures: taken };
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

// ----------------------------------------------------------------------------- conversations

/** The page's URL for a conversation (null: a new one), keeping a non-default assistant. */
function pageUrl(conversationId) {
  const url = new URL(conversationId ? `c/${encodeURIComponent(conversationId)}` : "", base);
  if (config.assistant !== "default") url.searchParams.set("assistant", config.assistant);
  return url;
}

function showInAddressBar(conversationId) {
  const wanted = pageUrl(conversationId);
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
      setUserText(entry, message.content, keptPictures(message.images));
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
  settle();
  return true;
}

async function openConversation(conversationId, { push = true } = {}) {
  closeDrawer();
  clearMessages();
  showNotice("");
  if (push && !config.widget) {
    history.pushState({ conversationId }, "", pageUrl(conversationId).href);
  }
  if (conversationId && !(await loadHistory(conversationId))) {
    showNotice(t("forgotten"));
    sidebar.forget(conversationId);
    conversationId = null;
    if (!config.widget) history.replaceState({ conversationId }, "", pageUrl(null).href);
  }
  if (client) client.switchTo(conversationId);
  input.focus();
}

// ----------------------------------------------------------------------------- start

async function start(conversationId) {
  // Deltas no more often than the view redraws: more would only be merged by the page
  // itself, at the cost of a message each on its main thread (docs/page.md#rendering).
  client = new GatewayClient({
    base, assistant: config.assistant, token, conversationId, frameIntervalMs: DRAW_INTERVAL_MS,
  });
  client.addEventListener("frame", onFrame);
  client.addEventListener("state", (e) => setState(e.detail));
  window.gatewayClient = client; // for tests and for embedding pages that want to watch
  if (conversationId && !(await loadHistory(conversationId))) {
    showNotice(t("forgotten"));
    client.conversationId = null;
    if (!config.widget) history.replaceState({}, "", pageUrl(null).href);
  }
  client.connect();
}

/** Keep the layout to the visible area above an on-screen keyboard. Browsers that honour
 * the viewport's interactive-widget=resizes-content resize the page themselves (100dvh);
 * others (Safari, Chrome's default resizes-visual) shrink only the visual viewport, so its
 * height becomes the layout's (--visible-height), unless the reader has pinch-zoomed. */
function fitAboveKeyboard() {
  const view = window.visualViewport;
  if (!view) return;
  const root = document.documentElement.style;
  const fit = () => {
    const keyboard = Math.abs(view.scale - 1) < 0.01 && view.height < window.innerHeight - 1;
    if (keyboard) root.setProperty("--visible-height", `${Math.round(view.height)}px`);
    else root.removeProperty("--visible-height");
    if (document.activeElement === input) {
      if (keyboard) window.scrollTo(0, 0); // the layout now fits; keep its top in view
      settle(); // the latest text stays above the input
    }
  };
  view.addEventListener("resize", fit);
}

function wire() {
  translate();
  fitAboveKeyboard();
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
      attachments.add(files);
    }
  });
  const main = document.querySelector("main");
  main.addEventListener("dragover", (event) => event.preventDefault());
  main.addEventListener("drop", (event) => {
    event.preventDefault();
    attachments.add([...(event.dataTransfer?.files || [])]);
  });
  $("attach").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", (event) => {
    attachments.add([...event.target.files]);
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

async function boot() {
  wire();
  if (config.widget && window.parent !== window) {
    const handed = await fromHost({
      expectToken: config.expectToken,
      onToken: (fresh) => {
        token = fresh;
        if (client) client.setToken(fresh);
      },
    });
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
  if (!token && config.authRequired && !config.proxyUser) {
    showNotice(t("signIn"), config.signInUrl || null);
    setState({ state: "offline" });
    return;
  }
  start(config.widget ? stored(CONV_KEY) : config.conversationId || null);
}

boot();
