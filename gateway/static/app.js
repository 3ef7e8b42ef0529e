// The chat page and the widget: one UI over the shared client. Text goes into the DOM only
// as text nodes (see markdown.js); nothing a user or the model writes becomes HTML.
import { GatewayClient } from "./client.js";
import { renderMarkdown } from "./markdown.js";

const config = JSON.parse(document.getElementById("gw-config").textContent);
const $ = (id) => document.getElementById(id);
const messages = $("messages");
const input = $("input");
const statusEl = $("status");
const errorEl = $("error");
const stopButton = $("stop");
const historyList = $("history");

const STATE_TEXT = { connecting: "Connecting…", connected: "Connected",
                     reconnecting: "Reconnecting…", offline: "Offline" };

let token = null;
let client = null;
let running = null; // message id of the reply streaming now
const bubbles = new Map(); // message id -> {el, text, pending}

function authHeaders() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function showError(text) {
  errorEl.textContent = text;
  errorEl.hidden = !text;
}

function setState({ state, reason, offlineDemo }) {
  statusEl.dataset.state = state;
  statusEl.textContent = STATE_TEXT[state] + (state === "offline" && reason ? ` (${reason})` : "");
  if (offlineDemo !== undefined) $("demo-badge").hidden = !offlineDemo;
  if (state === "offline" && reason) showError(explainClose(reason));
  $("send").disabled = state !== "connected";
}

function explainClose(reason) {
  const words = {
    unauthorized: "You need to sign in to chat here.",
    "token expired": "Your session expired. Reload the page to sign in again.",
    forbidden: "This site or conversation is not allowed to use this assistant.",
    "unknown assistant": "This assistant does not exist.",
  };
  return words[reason] || `The connection was refused: ${reason}.`;
}

function bubble(id, role) {
  let entry = bubbles.get(id);
  if (!entry) {
    const el = document.createElement("div");
    el.className = `msg ${role}`;
    el.dataset.id = id;
    const body = document.createElement("div");
    body.className = "body";
    el.appendChild(body);
    messages.appendChild(el);
    entry = { el, body, text: "", pending: false };
    bubbles.set(id, entry);
  }
  return entry;
}

function render(entry, role) {
  if (role === "user") {
    entry.body.textContent = entry.text;
  } else {
    entry.body.replaceChildren(renderMarkdown(entry.text));
  }
  messages.scrollTop = messages.scrollHeight;
}

function renderSoon(entry) {
  if (entry.pending) return;
  entry.pending = true;
  requestAnimationFrame(() => {
    entry.pending = false;
    render(entry, "assistant");
  });
}

function setRunning(messageId) {
  running = messageId;
  stopButton.hidden = !messageId;
}

function onFrame({ detail: frame }) {
  switch (frame.type) {
    case "connected":
      if (!frame.rejoined) {
        loadHistory(frame.conversation_id);
      }
      refreshConversations();
      return;
    case "user_message": {
      const entry = bubble(frame.id, "user");
      entry.text = frame.text;
      render(entry, "user");
      return;
    }
    case "start": {
      const entry = bubble(frame.message_id, "assistant");
      entry.el.dataset.status = "running";
      if (!frame.known) {
        entry.text = "";
      }
      setRunning(frame.message_id);
      showError("");
      return;
    }
    case "delta": {
      const entry = bubble(frame.message_id, "assistant");
      entry.text += frame.text;
      renderSoon(entry);
      return;
    }
    case "done": {
      const entry = bubble(frame.message_id, "assistant");
      render(entry, "assistant");
      entry.el.dataset.status = frame.finish_reason === "stop" ? "complete" : frame.finish_reason;
      if (running === frame.message_id) setRunning(null);
      refreshConversations();
      return;
    }
    case "error":
      if (frame.message_id) {
        const entry = bubble(frame.message_id, "assistant");
        entry.el.dataset.status = "failed";
        if (running === frame.message_id) setRunning(null);
      }
      if (frame.code !== "token_expiring") showError(frame.message);
      return;
    case "history_cleared":
      messages.replaceChildren();
      bubbles.clear();
      return;
    case "broadcast":
      showError(`Notice: ${frame.message}`);
      return;
    default:
  }
}

async function loadHistory(conversationId) {
  try {
    const resp = await fetch(`api/v1/conversations/${encodeURIComponent(conversationId)}/messages`,
                             { headers: authHeaders(), credentials: "same-origin" });
    if (!resp.ok) return;
    const body = await resp.json();
    for (const message of body.messages) {
      if (bubbles.has(message.id) || message.status === "running") continue;
      const entry = bubble(message.id, message.role);
      entry.text = message.content;
      entry.el.dataset.status = message.status;
      render(entry, message.role);
    }
  } catch {
    // history is a convenience: the chat works without it
  }
}

async function refreshConversations() {
  if (!historyList) return;
  try {
    const resp = await fetch("api/v1/conversations", { headers: authHeaders(), credentials: "same-origin" });
    if (!resp.ok) return;
    const list = await resp.json();
    historyList.replaceChildren(...list.filter((c) => c.assistant === config.assistant).map((c) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = c.title || "(empty conversation)";
      button.dataset.id = c.id;
      if (client && c.id === client.conversationId) button.setAttribute("aria-current", "true");
      button.addEventListener("click", () => openConversation(c.id));
      li.appendChild(button);
      return li;
    }));
  } catch {
    // the list is optional
  }
}

function openConversation(id) {
  messages.replaceChildren();
  bubbles.clear();
  setRunning(null);
  showError("");
  client.switchTo(id);
}

function sendMessage() {
  const text = input.value.trim();
  if (!text || !client || client.state !== "connected") return;
  const id = client.send(text);
  const entry = bubble(id, "user");
  entry.text = text;
  render(entry, "user");
  input.value = "";
}

function start() {
  $("title").textContent = config.title;
  if (config.greeting) $("greeting").textContent = config.greeting;
  client = new GatewayClient({ base: new URL(".", location.href).href, assistant: config.assistant, token });
  client.addEventListener("frame", onFrame);
  client.addEventListener("state", (e) => setState(e.detail));
  client.connect();
  window.gatewayClient = client; // for tests and for embedding pages that want to watch
}

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
stopButton.addEventListener("click", () => client && client.cancel());
$("new-chat")?.addEventListener("click", () => openConversation(null));

if (config.widget && config.expectToken) {
  // The embedding page hands its user's token over by postMessage, never in a URL.
  window.addEventListener("message", (event) => {
    if (event.source !== window.parent || !event.data || event.data.type !== "gateway:token") return;
    if (client) return;
    token = String(event.data.token);
    start();
  });
  window.parent.postMessage({ type: "gateway:ready" }, "*");
} else {
  token = (() => { try { return localStorage.getItem("gw_token"); } catch { return null; } })();
  start();
}
