// The embed snippet: <script src="https://GATEWAY/embed.js" data-assistant="NAME"
// [data-token="JWT"] async></script>. It first asks the gateway whether this site may embed
// the assistant (GET api/v1/assistants/NAME/embed-check, answered from the request's Origin)
// and adds nothing at all when it may not. Otherwise it adds one launcher button, in a
// shadow root so the host page's CSS cannot reach it, which opens the chat in an iframe
// served by the gateway. It touches nothing else on the host page. A token is handed to the
// iframe by postMessage, addressed to the gateway's origin only, never put in a URL. The
// iframe keeps its own anonymous identity and conversation in its own storage, so it needs
// no third-party cookie; where the browser refuses the frame any storage, this script keeps
// them for it in the host's storage (see kept()).
(() => {
  const script = document.currentScript;
  if (!script) return;
  const src = new URL(script.src);
  const gateway = src.origin;
  const base = new URL(".", src);
  const assistant = script.dataset.assistant || "default";
  const token = script.dataset.token || "";
  const chinese = /^zh/i.test(navigator.language || "");
  const words = chinese
    ? { open: "打开聊天", close: "关闭聊天", title: "聊天" }
    : { open: "Open chat", close: "Close chat", title: "Chat" };

  // Where the browser refuses the widget's frame any storage of its own (third-party
  // storage blocked), the widget's few values (its anonymous token, its conversation) are
  // kept here, in this site's storage, under the gateway's origin, and handed back to it.
  const storeKey = `qwen-gateway:${gateway}:${assistant}`;
  function kept() {
    try {
      return JSON.parse(localStorage.getItem(storeKey) || "{}");
    } catch {
      return {};
    }
  }

  function add() {
    const widget = new URL("widget", base);
    widget.searchParams.set("assistant", assistant);
    if (token) widget.searchParams.set("auth", "frame");

    const host = document.createElement("div");
    host.setAttribute("data-qwen-gateway", assistant);
    const root = host.attachShadow({ mode: "open" }); // its own styles; host CSS cannot reach in
    const style = document.createElement("style");
    style.textContent = `
      :host { all: initial; }
      .launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483646; width: 56px; height: 56px;
        border-radius: 50%; border: 0; background: #3d4ed8; color: #fff; font: 600 24px/56px system-ui, sans-serif;
        cursor: pointer; box-shadow: 0 4px 16px rgba(0,0,0,.25); }
      .launcher:focus-visible { outline: 3px solid #3d4ed8; outline-offset: 3px; }
      .frame { position: fixed; right: 20px; bottom: 88px; z-index: 2147483647; width: min(400px, calc(100vw - 40px));
        height: min(600px, calc(100vh - 120px)); border: 0; border-radius: 12px; box-shadow: 0 8px 32px rgba(0,0,0,.3);
        background: #fff; display: none; }
      .frame.open { display: block; }
      @media (max-width: 480px) { .frame { right: 0; bottom: 0; width: 100vw; height: 100dvh; border-radius: 0; } }`;
    const button = document.createElement("button");
    button.className = "launcher";
    button.type = "button";
    button.setAttribute("aria-label", words.open);
    button.setAttribute("aria-expanded", "false");
    button.textContent = "💬";
    const frame = document.createElement("iframe");
    frame.className = "frame";
    frame.title = words.title;
    frame.allow = "clipboard-write";
    button.addEventListener("click", () => {
      if (!frame.src) frame.src = widget.href;
      const open = frame.classList.toggle("open");
      button.setAttribute("aria-label", open ? words.close : words.open);
      button.setAttribute("aria-expanded", String(open));
    });
    window.addEventListener("message", (event) => {
      if (event.origin !== gateway || event.source !== frame.contentWindow || !event.data) return;
      if (event.data.type === "gateway:ready") {
        frame.contentWindow.postMessage({ type: "gateway:state", values: kept() }, gateway);
        if (token) frame.contentWindow.postMessage({ type: "gateway:token", token }, gateway);
      } else if (event.data.type === "gateway:save" && typeof event.data.key === "string") {
        const values = kept();
        if (event.data.value) values[event.data.key] = String(event.data.value);
        else delete values[event.data.key];
        try {
          localStorage.setItem(storeKey, JSON.stringify(values));
        } catch {
          // the host's storage refused too: the widget remembers this visit only
        }
      }
    });
    root.append(style, button, frame);
    (document.body || document.documentElement).appendChild(host);
  }

  const check = new URL(`api/v1/assistants/${encodeURIComponent(assistant)}/embed-check`, base);
  fetch(check, { credentials: "omit", mode: "cors" })
    .then((resp) => (resp.ok ? resp.json() : { allowed: false }))
    .then((answer) => {
      if (answer && answer.allowed === true) add();
    })
    .catch(() => {}); // the gateway unreachable: add nothing
})();
