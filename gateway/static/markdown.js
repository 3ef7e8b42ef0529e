// A safe Markdown subset rendered with DOM APIs only: text never becomes HTML.
//
// Blocks: paragraphs, "-"/"*"/"1." lists, ``` fenced code (an unterminated fence while a
// reply streams renders as code so far), "#" headings (as strong paragraphs).
// Inline: `code`, **bold**, [text](url) links for http:, https: and mailto: only, opened
// with rel="noopener noreferrer". Anything else, <img ...> included, stays literal text.

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

export function renderMarkdown(source) {
  const root = document.createDocumentFragment();
  const lines = source.split("\n");
  let i = 0;
  let paragraph = [];
  let list = null;

  const flushParagraph = () => {
    if (paragraph.length) {
      const p = document.createElement("p");
      appendInline(p, paragraph.join("\n"));
      root.appendChild(p);
      paragraph = [];
    }
  };
  const flushList = () => {
    if (list) {
      root.appendChild(list);
      list = null;
    }
  };

  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^```\s*([\w+-]*)\s*$/);
    if (fence) {
      flushParagraph();
      flushList();
      const body = [];
      i += 1;
      while (i < lines.length && !/^```\s*$/.test(lines[i])) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // the closing fence (or past the end while streaming)
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      if (fence[1]) code.dataset.lang = fence[1];
      code.textContent = body.join("\n");
      pre.appendChild(code);
      root.appendChild(pre);
      continue;
    }
    const item = line.match(/^\s*(?:[-*]|(\d+)\.)\s+(.*)$/);
    if (item) {
      flushParagraph();
      const ordered = item[1] !== undefined;
      const tag = ordered ? "OL" : "UL";
      if (!list || list.tagName !== tag) {
        flushList();
        list = document.createElement(tag.toLowerCase());
      }
      const li = document.createElement("li");
      appendInline(li, item[2]);
      list.appendChild(li);
      i += 1;
      continue;
    }
    if (!line.trim()) {
      flushParagraph();
      flushList();
      i += 1;
      continue;
    }
    const heading = line.match(/^#{1,6}\s+(.*)$/);
    if (heading) {
      flushParagraph();
      flushList();
      const p = document.createElement("p");
      const strong = document.createElement("strong");
      appendInline(strong, heading[1]);
      p.appendChild(strong);
      root.appendChild(p);
      i += 1;
      continue;
    }
    flushList();
    paragraph.push(line);
    i += 1;
  }
  flushParagraph();
  flushList();
  return root;
}

const INLINE = /`([^`\n]+)`|\*\*([^*\n]+)\*\*|\[([^\]\n]+)\]\(([^)\s]+)\)/g;

function appendInline(parent, text) {
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) appendText(parent, text.slice(last, match.index));
    if (match[1] !== undefined) {
      const code = document.createElement("code");
      code.textContent = match[1];
      parent.appendChild(code);
    } else if (match[2] !== undefined) {
      const strong = document.createElement("strong");
      strong.textContent = match[2];
      parent.appendChild(strong);
    } else {
      parent.appendChild(link(match[3], match[4]));
    }
    last = match.index + match[0].length;
  }
  if (last < text.length) appendText(parent, text.slice(last));
}

function appendText(parent, text) {
  const parts = text.split("\n");
  parts.forEach((part, index) => {
    if (index) parent.appendChild(document.createElement("br"));
    if (part) parent.appendChild(document.createTextNode(part));
  });
}

function link(label, href) {
  let url = null;
  try {
    url = new URL(href);
  } catch {
    url = null;
  }
  if (!url || !SAFE_PROTOCOLS.has(url.protocol)) {
    return document.createTextNode(`[${label}](${href})`); // shown, never followed
  }
  const a = document.createElement("a");
  a.href = url.href;
  a.textContent = label;
  a.rel = "noopener noreferrer";
  a.target = "_blank";
  return a;
}
