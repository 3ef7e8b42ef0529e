// Images attached to the next message: checked (type, size, count) as they are added, so a
// refusal is said before anything is sent; shown as previews that can be removed; read as
// data: URLs when the message goes.
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

  /** Empty the tray; the images as data: URLs, and what to give back() if refused. */
  async take() {
    const taken = this.images;
    const urls = await Promise.all(taken.map((image) => dataUrl(image.file)));
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
