// A safe Markdown subset for message bodies, built with DOM APIs only (createElement,
// text nodes; never innerHTML), so no input can inject markup:
//
//   **bold**            <strong>
//   *italics* _italics_ <em>  (`_` only at word edges: snake_case stays as it is)
//   `code`              <code>
//   ```                 <pre><code>  (a fenced block: ``` on its own line, optionally with a
//   code                 language word, up to the next ``` line; unterminated: plain text)
//   ```
//   [text](url)         <a>   (only http:, https: and mailto: URLs; anything else stays text)
//   https://… mailto:…  <a>   (bare links)
//
// Links open in a new tab with rel="noopener noreferrer" and show their address as a
// tooltip. Markers that do not close are kept as typed. Everything else is text; line
// breaks are kept by the stylesheet (white-space: pre-wrap).
//
// Extension point: `decorate(text)` turns each plain text run into nodes (default: the
// text itself). Mention highlighting plugs in there.

const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);
const MAX_DEPTH = 4; // nesting of emphasis and links
const AUTOLINK = /^(?:https?:\/\/[^\s<>"'`]+[^\s<>"'`.,;:!?)\]*_]|mailto:[^\s<>"'`@]+@[^\s<>"'`]+[^\s<>"'`.,;:!?)\]*_])/;
const LINK = /^\[([^\]\n]{1,1000})\]\(\s*([^\s()]{1,2048})\s*\)/;
const FENCE = /^```[\w+-]{0,32}[ \t]*$/;

/** The `href` for a link to `url` if its protocol is allowed, else null. */
export function safeHref(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  return SAFE_PROTOCOLS.has(u.protocol) ? u.href : null;
}

function link(href, children) {
  const a = document.createElement('a');
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  a.title = href;
  a.append(...children);
  return a;
}

function el(tag, children) {
  const e = document.createElement(tag);
  e.append(...children);
  return e;
}

/**
 * Renders `text` as Markdown (the subset above) into a DocumentFragment. `decorate`
 * maps a plain text run to nodes or strings.
 */
export function renderMarkdown(text, { decorate = (t) => [t] } = {}) {
  const frag = document.createDocumentFragment();
  const lines = String(text).split('\n');
  let prose = [];
  const flush = () => {
    if (!prose.length) return;
    frag.append(...inline(prose.join('\n'), decorate, 0, false));
    prose = [];
  };
  for (let i = 0; i < lines.length; i++) {
    if (FENCE.test(lines[i])) {
      let end = i + 1;
      while (end < lines.length && lines[end].trim() !== '```') end++;
      if (end < lines.length) {
        // A block is a line of its own: the line breaks around it are the block's edges.
        flush();
        frag.append(el('pre', [el('code', [lines.slice(i + 1, end).join('\n')])]));
        i = end;
        continue;
      }
    }
    prose.push(lines[i]);
  }
  flush();
  return frag;
}

const isSpace = (c) => c === undefined || /\s/.test(c);
const isWord = (c) => c !== undefined && /[\p{L}\p{N}_]/u.test(c);

/**
 * The inline Markdown of `s` as nodes. `inLink`: inside a link's text (no nested links).
 */
function inline(s, decorate, depth, inLink) {
  const out = [];
  let text = '';
  const push = (node) => {
    if (text) out.push(...decorate(text));
    text = '';
    out.push(node);
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    // `code` (or ``code``: a run of backticks closes on a run of the same length); its
    // content is text, no Markdown inside.
    if (c === '`') {
      let n = 1;
      while (s[i + n] === '`') n++;
      const close = findRun(s, n, i + n);
      if (close > i + n) {
        push(el('code', [s.slice(i + n, close)]));
        i = close + n;
      } else {
        text += s.slice(i, i + n);
        i += n;
      }
      continue;
    }
    // **bold**
    if (c === '*' && s[i + 1] === '*' && depth < MAX_DEPTH && !isSpace(s[i + 2])) {
      const close = findClose(s, '**', i + 2);
      if (close > 0) {
        push(el('strong', inline(s.slice(i + 2, close), decorate, depth + 1, inLink)));
        i = close + 2;
        continue;
      }
    }
    // *italics* and _italics_ (the underscore only at word edges)
    if ((c === '*' || c === '_') && s[i + 1] !== c && depth < MAX_DEPTH && !isSpace(s[i + 1])
        && !(c === '_' && isWord(s[i - 1]))) {
      const close = findClose(s, c, i + 1);
      if (close > 0 && !(c === '_' && isWord(s[close + 1]))) {
        push(el('em', inline(s.slice(i + 1, close), decorate, depth + 1, inLink)));
        i = close + 1;
        continue;
      }
    }
    // [text](url)
    if (c === '[' && !inLink && depth < MAX_DEPTH) {
      const m = LINK.exec(s.slice(i));
      const href = m && safeHref(m[2]);
      if (href) {
        push(link(href, inline(m[1], decorate, depth + 1, true)));
        i += m[0].length;
        continue;
      }
    }
    // Bare http(s) and mailto links, starting at a word edge.
    if ((c === 'h' || c === 'm') && !inLink && !isWord(s[i - 1])) {
      const m = AUTOLINK.exec(s.slice(i, i + 2048));
      const href = m && safeHref(m[0]);
      if (href) {
        push(link(href, [m[0]]));
        i += m[0].length;
        continue;
      }
    }
    text += c;
    i++;
  }
  if (text) out.push(...decorate(text));
  return out;
}

/**
 * Where the closing `marker` of an emphasis opened before `from` is: the next one that
 * follows a non-space character and is not part of a longer run of the same character
 * (so `*` does not close on `**`). -1 if none.
 */
function findClose(s, marker, from) {
  let at = from;
  for (;;) {
    at = s.indexOf(marker, at);
    if (at < 0) return -1;
    const ch = marker[0];
    const longer = s[at + marker.length] === ch || (marker.length === 1 && s[at - 1] === ch && at - 1 >= from);
    if (at > from && !isSpace(s[at - 1]) && !longer) return at;
    at += marker.length;
  }
}

/** Where the next run of exactly `n` backticks at or after `from` starts; -1 if none. */
function findRun(s, n, from) {
  for (let at = s.indexOf('`', from); at >= 0; at = s.indexOf('`', at)) {
    let len = 1;
    while (s[at + len] === '`') len++;
    if (len === n) return at;
    at += len;
  }
  return -1;
}
