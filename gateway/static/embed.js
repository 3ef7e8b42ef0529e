// The embed snippet: <script src="https://GATEWAY/embed.js" data-assistant="NAME"
// [data-token="JWT"] async></script>. It adds one launcher button, in a shadow root so
// the host page's CSS cannot reach it, which opens the chat in an iframe served by the
// gateway. It touches nothing else on the host page. A token is handed to the iframe by
// postMessage, addressed to the gateway's origin only, never put in a URL.
(() => {
  const script = document.currentScript;
  if (!script) return;
  const src = new URL(script.src);
  const gateway = src.origin;
  const base = new URL(".", src);
  const assistant = script.dataset.assistant || "default";
  const token = script.dataset.token || "";
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
      border-radius: 50%; border: 0; background: #4b5bdc; color: #fff; font: 600 24px/56px system-ui, sans-serif;
      cursor: pointer; box-shadow: 0 4px 16px rgba(0,0,0,.25); }
    .frame { position: fixed; right: 20px; bottom: 88px; z-index: 2147483647; width: min(400px, calc(100vw - 40px));
      height: min(600px, calc(100vh - 120px)); border: 0; border-radius: 12px; box-shadow: 0 8px 32px rgba(0,0,0,.3);
      background: #fff; display: none; }
    .frame.open { display: block; }`;
  const button = document.createElement("button");
  button.className = "launcher";
  button.type = "button";
  button.setAttribute("aria-label", "Open chat");
  button.textContent = "💬";
  const frame = document.createElement("iframe");
  frame.className = "frame";
  frame.title = "Chat";
  frame.allow = "clipboard-write";
  button.addEventListener("click", () => {
    if (!frame.src) frame.src = widget.href;
    const open = frame.classList.toggle("open");
    button.setAttribute("aria-label", open ? "Close chat" : "Open chat");
  });
  window.addEventListener("message", (event) => {
    if (event.origin !== gateway || event.source !== frame.contentWindow) return;
    if (event.data && event.data.type === "gateway:ready" && token) {
      frame.contentWindow.postMessage({ type: "gateway:token", token }, gateway);
    }
  });
  root.append(style, button, frame);
  (document.body || document.documentElement).appendChild(host);
})();
