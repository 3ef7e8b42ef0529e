// Markdown for the page: markdown-it (CommonMark, GFM tables and strikethrough, task lists)
// with raw HTML off, highlight.js for fenced code, and every piece of output through
// DOMPurify before it reaches the DOM. The libraries are the vendored browser builds,
// loaded as classic scripts before this module (window.markdownit, DOMPurify, hljs).
//
// Streaming is incremental. BlockSplitter cuts the text, as it grows, at places where a
// Markdown block surely ends (a blank line before an unindented line, outside fenced code);
// StreamView renders each finished piece once and appends it, and re-renders only the
// unfinished tail, at most once per animation frame. So the work for a whole reply grows
// with its length, not with its length squared. A tail that grows long without such a
// place (one huge paragraph or code block) is cut at a line break, a code block closed and
// reopened across the cut, so the tail stays short.

const TAIL_LIMIT = 2048; // characters of tail before a cut at a line break is forced
const PLAIN_LIMIT = 65536; // a tail this long with no line break at all is shown as text
const FRAME_BUDGET_MS = 8; // rendering finished pieces stops here; the rest waits a frame
// Laying out new text costs the frame more than rendering its Markdown (mixed scripts and
// emoji are shaped with font fallback): at most this many characters of finished pieces
// are added per redraw, a few times what even a fast stream brings in one, so that catching
// up after a stall spreads over a few short frames instead of one long one.
const FRAME_BUDGET_CHARS = 8000;
// While text streams in, the view is redrawn (new pieces, the tail) at most this often:
// every other frame at 60 Hz (with room for the frames' jitter) is smooth to read, and it
// halves what a fast stream costs the page, its compositor and the browser (each redraw
// scrolls and repaints the view).
export const DRAW_INTERVAL_MS = 25;
// Finished pieces go into groups of this many, each group one content-visibility box: the
// browser checks every such box for being on screen on each frame, so fewer, larger boxes
// keep that check from growing with the reply.
const GROUP_PIECES = 32;

const md = window.markdownit({ html: false, linkify: true, breaks: false, highlight });
md.use(window.markdownitTaskLists, { enabled: false });

function highlight(code, language) {
  if (language && window.hljs && window.hljs.getLanguage(language)) {
    try {
      return window.hljs.highlight(code, { language, ignoreIllegals: true }).value;
    } catch {
      return ""; // markdown-it escapes it itself
    }
  }
  return "";
}

window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

const PURIFY = {
  RETURN_DOM_FRAGMENT: true,
  FORBID_TAGS: ["style", "form", "textarea", "select", "button", "img", "svg", "math"],
  FORBID_ATTR: ["style"],
  // DOMPurify's own rule with fewer schemes: http(s), mailto, or no scheme at all.
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
};

/** Markdown text -> a sanitized DocumentFragment, code blocks given a copy control. */
export function renderMarkdown(text, labels) {
  const fragment = window.DOMPurify.sanitize(md.render(text), PURIFY);
  for (const pre of fragment.querySelectorAll("pre")) decorateCode(pre, labels);
  return fragment;
}

function decorateCode(pre, labels) {
  const box = document.createElement("div");
  box.className = "code";
  pre.replaceWith(box);
  const bar = document.createElement("div");
  bar.className = "code-bar";
  const code = pre.querySelector("code");
  const language = /language-([\w+-]+)/.exec(code ? code.className : "");
  const name = document.createElement("span");
  name.textContent = language ? language[1] : "";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy-code";
  button.textContent = labels ? labels.copyCode : "Copy code";
  bar.append(name, button);
  box.append(bar, pre);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})/;

/** Cuts a growing Markdown text into pieces that render the same alone as together.
 *
 * Only the text after the last cut is kept as one string (short, see TAIL_LIMIT), so each
 * character is scanned once; the whole text is kept as a list of chunks, joined on demand.
 */
export class BlockSplitter {
  constructor() {
    this.chunks = [];
    this.length = 0;
    this.buf = ""; // the text after the last cut
    this.scan = 0; // start, in buf, of the first line not yet looked at
    this.fence = null; // {char, size, open} while inside fenced code
    this.prefix = ""; // a reopened fence's first line, put before the next piece
    this.blank = true; // the last line looked at was blank
  }

  get text() {
    if (this.chunks.length > 1) this.chunks = [this.chunks.join("")];
    return this.chunks[0] || "";
  }

  /** Add text; the pieces it finished (strings of Markdown, each to be rendered once). */
  push(chunk) {
    this.chunks.push(chunk);
    this.length += chunk.length;
    this.buf += chunk;
    const pieces = [];
    let end;
    while ((end = this.buf.indexOf("\n", this.scan)) !== -1) {
      const start = this.scan;
      const line = this.buf.slice(start, end);
      this.scan = end + 1;
      if (this.fence) {
        const close = FENCE.exec(line);
        if (close && close[1][0] === this.fence.char && close[1].length >= this.fence.size
            && line.trim() === close[1]) {
          this.fence = null;
          this.blank = true; // what follows a closed fence starts a block
          this._take(pieces, this.scan);
        } else if (start > TAIL_LIMIT) {
          const closing = this.fence.char.repeat(this.fence.size);
          pieces.push(this.prefix + this.buf.slice(0, start) + closing + "\n");
          this.prefix = this.fence.open + "\n";
          this._drop(start);
        }
        continue;
      }
      const open = FENCE.exec(line);
      if (open) {
        this._take(pieces, start); // a fence interrupts any paragraph
        this.fence = { char: open[1][0], size: open[1].length, open: line };
        this.blank = false;
        continue;
      }
      if (line.trim() === "") {
        this.blank = true;
        continue;
      }
      const unindented = !/^[ \t]/.test(line);
      if (this.blank && unindented) {
        this._take(pieces, start);
      } else if (unindented && start > TAIL_LIMIT && !/^[|=\-+*>#\d]/.test(line)) {
        this._take(pieces, start); // a long paragraph: cut at a line break
      }
      this.blank = false;
    }
    return pieces;
  }

  _take(pieces, at) {
    if (at > 0) {
      pieces.push(this.prefix + this.buf.slice(0, at));
      this.prefix = "";
      this._drop(at);
    }
  }

  _drop(at) {
    this.buf = this.buf.slice(at);
    this.scan -= at;
  }

  /** The unfinished tail, as Markdown. */
  tail() {
    return this.prefix + this.buf;
  }

  /** True when the tail is too long to render as Markdown on every frame. */
  tailIsHuge() {
    return this.buf.length > PLAIN_LIMIT;
  }

  /** Everything is in: the tail becomes the last piece. */
  end() {
    const tail = this.tail();
    this.buf = "";
    this.scan = 0;
    this.prefix = "";
    return tail;
  }
}

/** One message body being streamed: finished pieces appended once, the tail redrawn per frame. */
export class StreamView {
  constructor(container, labels, { onRender } = {}) {
    this.blocks = document.createElement("div");
    this.blocks.className = "blocks";
    this.tailEl = document.createElement("div");
    this.tailEl.className = "tail";
    container.replaceChildren(this.blocks, this.tailEl);
    this.labels = labels;
    this.onRender = onRender;
    this.splitter = new BlockSplitter();
    this.pieces = [];
    this.frame = 0;
    this.dirty = false;
    this.group = null; // the group finished pieces are added to now
    this.grouped = 0; // pieces in it
    this.drawnAt = -Infinity;
  }

  get text() {
    return this.splitter.text;
  }

  /** Add streamed text; drawn on the next animation frame. */
  append(text) {
    for (const piece of this.splitter.push(text)) this.pieces.push(piece);
    this.dirty = true;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  /** Draw what is pending: per frame, within a time budget unless `all` (the end, history). */
  draw(all = false) {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    if (!this.dirty) return;
    const now = performance.now();
    if (!all && now - this.drawnAt < DRAW_INTERVAL_MS) {
      this.frame = requestAnimationFrame(() => this.draw()); // still dirty: a later frame
      return;
    }
    this.drawnAt = now;
    this.dirty = false;
    if (this.pieces.length) {
      const until = now + FRAME_BUDGET_MS;
      let done = 0;
      let chars = 0;
      let group = this.group;
      while (done < this.pieces.length
             && (all || done === 0 || (performance.now() < until && chars < FRAME_BUDGET_CHARS))) {
        // Finished pieces in boxes of GROUP_PIECES: the browser lays out and paints only the
        // boxes on screen (content-visibility), so a frame's cost does not grow with the reply.
        if (!group || this.grouped >= GROUP_PIECES) {
          group = document.createElement("div");
          group.className = "group";
          this.blocks.append(group);
          this.grouped = 0;
        }
        const box = document.createElement("div");
        box.className = "piece";
        box.append(renderMarkdown(this.pieces[done], this.labels));
        group.append(box);
        this.grouped += 1;
        chars += this.pieces[done].length;
        done += 1;
      }
      this.group = group;
      this.pieces = done === this.pieces.length ? [] : this.pieces.slice(done);
    }
    if (this.pieces.length) {
      // Behind: the rest next frame. The tail would repeat what is still pending; hide it.
      this.tailEl.replaceChildren();
      this.dirty = true;
      this.frame = requestAnimationFrame(() => this.draw());
      if (this.onRender) this.onRender();
      return;
    }
    const tail = this.splitter.tail();
    if (this.splitter.tailIsHuge()) {
      this.tailEl.textContent = tail;
    } else {
      this.tailEl.replaceChildren(tail ? renderMarkdown(tail, this.labels) : "");
    }
    if (this.onRender) this.onRender();
  }

  /** The text is complete: render the tail as a finished piece. */
  finish() {
    const tail = this.splitter.end();
    if (tail) this.pieces.push(tail);
    this.dirty = true;
    this.draw(true);
    this.tailEl.replaceChildren();
  }

  /** Replace everything with a whole text (history, a resumed reply's restart). */
  reset(text = "") {
    this.splitter = new BlockSplitter();
    this.pieces = [];
    this.group = null;
    this.grouped = 0;
    this.blocks.replaceChildren();
    this.tailEl.replaceChildren();
    if (text) this.append(text);
  }
}
