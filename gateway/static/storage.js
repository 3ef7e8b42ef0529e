// What the page and the widget remember between visits (a token, the widget's conversation).

// The iframe's own storage (partitioned per host site) when the browser grants it. Where it
// refuses all storage to a third-party frame, the embedding page keeps the widget's few
// values for it (embed.js, in the host's storage, under the gateway's origin): they come in
// a "gateway:state" message before the widget starts, and changes go back as "gateway:save".
let hostValues = null;
const parentOrigin = (location.ancestorOrigins && location.ancestorOrigins[0]) || "*";

export function ownStorage() {
  try {
    localStorage.getItem("gw_probe");
    return true;
  } catch {
    return false;
  }
}

export function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return hostValues ? hostValues[key] ?? null : null; // else: for this visit only
  }
}

export function store(key, value) {
  try {
    if (value) localStorage.setItem(key, value);
    else localStorage.removeItem(key);
  } catch {
    if (!hostValues) return;
    hostValues[key] = value || null;
    window.parent.postMessage({ type: "gateway:save", key, value: value || null }, parentOrigin);
  }
}

/** In a frame: what the embedding page hands over (its user's token, kept values). */
export function fromHost({ expectToken, onToken }) {
  const needState = !ownStorage();
  return new Promise((resolve) => {
    let handed = null;
    let state = !needState;
    const done = () => {
      if ((handed || !expectToken) && state) resolve(handed);
    };
    window.addEventListener("message", (event) => {
      if (event.source !== window.parent || !event.data) return;
      if (event.data.type === "gateway:state" && needState) {
        hostValues = { ...(event.data.values || {}) };
        state = true;
        done();
      } else if (event.data.type === "gateway:token" && expectToken) {
        // The embedding page hands its user's token over by postMessage, never in a URL.
        handed = String(event.data.token);
        onToken(handed); // a fresh token later in the visit goes the same way
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
