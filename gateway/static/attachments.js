// Images attached to the next message: checked (type, size, count) as they are added, so a
// refusal is said before anything is sent; shown as previews that can be removed. When the
// message goes, each is uploaded first (POST api/v1/images, its bytes as they are: the
// gateway then holds about one copy of it, not the several a data: URL in the frame costs,
// docs/performance.md) and the message names it ({id, media_type, bytes}); where that is
// refused or fails, it goes as a data: URL in the frame, as the contract says.
import { tool } from "./controls.js";
import { t } from "./i18n.js";

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
const mb = (n) => (n / 1048576).toFixed(1);

function dataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

/** The image kept by the gateway for the conversation ({id, media_type, bytes}), or null. */
async function upload(file) {
  const client = window.gatewayClient;
  if (!client || !client.conversationId) return null;
  const url = new URL("api/v1/images", client.base);
  url.searchParams.set("conversation_id", client.conversationId);
  const headers = { "Content-Type": file.type };
  if (client.token) headers.Authorization = `Bearer ${client.token}`;
  try {
    const resp = await fetch(url, { method: "POST", credentials: "same-origin", headers, body: file });
    if (resp.status !== 201) return null;
    const kept = await resp.json();
    return { id: kept.id, media_type: kept.media_type, bytes: kept.bytes };
  } catch {
    return null; // offline or refused: the data: URL goes instead
  }
}

/** What the message's `images` lists for `file`: the uploaded image, else a data: URL. */
async function sendable(file) {
  return (await upload(file)) || dataUrl(file);
}

/** The previews in `el`; `problem(text)` is told why a file was refused. */
export class Attachments {
  constructor(el, { maxBytes, maxImages, problem, changed }) {
    this.el = el;
    this.maxBytes = maxBytes;
    this.maxImages = maxImages;
    this.problem = problem;
    this.changed = changed || (() => {});
    this.images = []; // {file, url}
  }

  get count() {
    return this.images.length;
  }

  add(files) {
    for (const file of files) {
      if (!IMAGE_TYPES.includes(file.type)) {
        this.problem(t("imageType", { name: file.name }));
        continue;
      }
      if (file.size > this.maxBytes) {
        this.problem(t("imageTooBig", { name: file.name, size: mb(file.size), max: mb(this.maxBytes) }));
        continue;
      }
      if (this.images.length >= this.maxImages) {
        this.problem(t("tooManyImages", { max: this.maxImages }));
        break;
      }
      this.images.push({ file, url: URL.createObjectURL(file) });
    }
    this.draw();
  }

  /** Empty the tray; the images for the message (uploaded, or data: URLs), and what to
   * giveBack() if refused. */
  async take() {
    const taken = this.images;
    const urls = await Promise.all(taken.map((image) => sendable(image.file)));
    this.images = [];
    this.draw();
    return { urls, taken };
  }

  /** A refused message's images come back to the tray (unless new ones were added). */
  giveBack(taken) {
    if (this.images.length || !taken.length) return;
    this.images = taken;
    this.draw();
  }

  draw() {
    this.el.replaceChildren(...this.images.map((image, i) => {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = image.url;
      img.alt = image.file.name;
      const remove = tool("×", () => {
        URL.revokeObjectURL(image.url);
        this.images.splice(i, 1);
        this.draw();
        this.changed();
      });
      remove.setAttribute("aria-label", t("removeImage", { name: image.file.name }));
      figure.append(img, remove);
      return figure;
    }));
    this.el.hidden = this.images.length === 0;
  }
}
