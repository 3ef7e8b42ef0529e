// The gateway's browser client: one chat connection that survives drops.
//
//   const client = new GatewayClient({ base, assistant, token, conversationId, frameIntervalMs });
//   client.addEventListener("frame", (e) => ...e.detail...);   // every server frame
//   client.addEventListener("state", (e) => ...e.detail...);   // "connecting" | "connected" | "reconnecting" | "offline"
//   client.connect(); client.send("Hello"); client.cancel();
//   client.regenerate(); client.edit(userMessageId, "new text"); client.setToken(fresh);
//
// It derives the WebSocket URL from `base` (default: the page's own location), so it works
// under a path prefix behind a proxy and uses wss: on https pages. A token goes in the first
// frame, never in the URL. After a drop it reconnects with exponential backoff and jitter
// (never after a 1008 close), rejoins the conversation and resumes the running reply from
// the last seq it holds. Message ids are the client's own: a message re-sent after a
// reconnect is recognised by the server and starts nothing twice. `frameIntervalMs` (0: off)
// asks the server for at most one delta frame per that many milliseconds, the steps between
// merged into it: fewer messages for a page that cannot draw them any faster.

const MAX_BACKOFF_MS = 30000;

function randomId(prefix) {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return prefix + "-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function socketUrl(base, assistant, query) {
  const url = new URL(`api/v1/assistants/${encodeURIComponent(assistant)}/ws`, base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (const [key, value] of Object.entries(query)) {
    if (value) url.searchParams.set(key, value);
  }
  return url.toString();
}

export class GatewayClient extends EventTarget {
  constructor({ base = location.href, assistant = "default", token = null,
                conversationId = null, sessionType = "person", frameIntervalMs = 0 } = {}) {
    super();
    this.base = base;
    this.assistant = assistant;
    this.token = token;
    this.conversationId = conversationId;
    this.sessionType = sessionType;
    this.frameIntervalMs = frameIntervalMs;
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.state = "offline";
    this.reply = null; // {messageId, seq, text, reasoning} of the reply being received
    this.pending = null; // the message sent whose reply has not started
    this.timer = null;
  }

  connect() {
    this.stopped = false;
    clearTimeout(this.timer);
    this._setState(this.attempt ? "reconnecting" : "connecting");
    const url = socketUrl(this.base, this.assistant, {
      session_type: this.sessionType,
      conversation_id: this.conversationId,
      auth: this.token ? "frame" : null, // the server waits for the auth frame below
      frame_interval_ms: this.frameIntervalMs ? String(this.frameIntervalMs) : null,
    });
    const ws = new WebSocket(url, ["gateway.v1"]);
    this.ws = ws;
    ws.onopen = () => {
      if (this.token) ws.send(JSON.stringify({ type: "auth", token: this.token }));
    };
    ws.onmessage = (event) => this._onFrame(JSON.parse(event.data));
    ws.onclose = (event) => this._onClose(event);
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "bye");
    this._setState("offline");
  }

  /** Start over in a new conversation (or the given one). */
  switchTo(conversationId = null) {
    this.conversationId = conversationId;
    this.reply = null;
    this.pending = null;
    this.attempt = 0;
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, "switch");
    }
    this.connect();
  }

  send(text, { interrupt = false, images = [] } = {}) {
    const frame = { type: "message", id: randomId("c"), text };
    if (interrupt) frame.interrupt = true;
    if (images.length) frame.images = images;
    this.pending = frame;
    this._send(frame);
    return frame.id;
  }

  /** Replace the last reply with a new one to the same turn (contract section 14). */
  regenerate() {
    this._send({ type: "regenerate" });
  }

  /** Change a user message's text, drop what came after it, and get a new reply. */
  edit(messageId, text) {
    this._send({ type: "edit", message_id: messageId, text });
  }

  /** A fresh token for this connection (and the next ones). */
  setToken(token) {
    this.token = token;
    if (token) this._send({ type: "auth", token });
  }

  cancel() {
    this._send({ type: "cancel", ...(this.reply ? { message_id: this.reply.messageId } : {}) });
  }

  reset() {
    this._send({ type: "reset" });
  }

  _send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  _setState(state, detail = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...detail } }));
  }

  _emit(frame) {
    this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
  }

  _onFrame(frame) {
    switch (frame.type) {
      case "connected": {
        const rejoined = this.attempt > 0;
        this.attempt = 0;
        this.conversationId = frame.conversation_id;
        this._setState("connected", { offlineDemo: frame.offline_demo, user: frame.user });
        this._emit({ ...frame, rejoined });
        if (this.reply && !this.reply.done) {
          this._send({ type: "resume", message_id: this.reply.messageId, last_seq: this.reply.seq });
        } else if (this.pending) {
          this._send(this.pending); // same id: the server will not start it twice
        } else if (frame.running_message_id && !rejoined) {
          this._send({ type: "resume", message_id: frame.running_message_id, last_seq: 0 });
        }
        return;
      }
      case "start":
        if (this.reply && this.reply.messageId === frame.message_id && frame.resumed) {
          this._emit({ ...frame, known: true });
          return;
        }
        this.pending = null;
        this.reply = { messageId: frame.message_id, seq: 0, text: "", reasoning: "", done: false };
        this._emit(frame);
        return;
      case "delta":
        if (!this.reply || frame.message_id !== this.reply.messageId) return;
        if (frame.seq <= this.reply.seq) return; // already held
        this.reply.seq = frame.seq;
        this.reply.text += frame.text;
        this._emit(frame);
        return;
      case "reasoning": // numbered with the deltas: resume's last_seq covers both
        if (!this.reply || frame.message_id !== this.reply.messageId) return;
        if (frame.seq <= this.reply.seq) return; // already held
        this.reply.seq = frame.seq;
        this.reply.reasoning += frame.text;
        this._emit(frame);
        return;
      case "done":
        if (this.reply && frame.message_id === this.reply.messageId) this.reply.done = true;
        this._emit(frame);
        return;
      case "error":
        if (frame.code === "resume_unavailable" && this.reply && !this.reply.done && !frame.message_id) {
          frame = { ...frame, message_id: this.reply.messageId }; // the reply it was about
        }
        if (this.reply && frame.message_id === this.reply.messageId) this.reply.done = true;
        if (this.pending && frame.reply_to === this.pending.id) this.pending = null;
        this._emit(frame);
        return;
      default:
        this._emit(frame);
    }
  }

  _onClose(event) {
    this.ws = null;
    if (this.stopped) return;
    if (event.code === 1000 && event.reason === "conversation deleted") {
      this._setState("offline", { code: event.code, reason: event.reason });
      return;
    }
    if (event.code === 1008 || event.code === 1009) {
      // Policy refusal (unauthorized, forbidden, unknown assistant, expired token):
      // reconnecting would be refused again.
      this._setState("offline", { code: event.code, reason: event.reason || "refused" });
      return;
    }
    this.attempt += 1;
    const ceiling = Math.min(MAX_BACKOFF_MS, 250 * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2); // jitter
    this._setState("reconnecting", { code: event.code, reason: event.reason, delay });
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
