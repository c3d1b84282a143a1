// Assistant answers are Markdown rendered to sanitized HTML by the server
// (POST /api/v1/render), never in the browser. Requests made in the same
// tick are batched into one call, and results are cached by text.
import { api } from './api.js';

const cache = new Map(); // key -> html
const MAX = 600;
let queue = [];
let scheduled = false;

function key(text, partial) { return (partial ? 'p:' : 'c:') + text; }

export function cached(text, partial = false) { return cache.get(key(text, partial)); }

// render resolves to the HTML of text (partial: still streaming).
export function render(text, partial = false) {
  const k = key(text, partial);
  const hit = cache.get(k);
  if (hit !== undefined) return Promise.resolve(hit);
  return new Promise((resolve, reject) => {
    queue.push({ text, partial, k, resolve, reject });
    if (!scheduled) { scheduled = true; queueMicrotask(flush); }
  });
}

async function flush() {
  scheduled = false;
  const batch = queue.splice(0, 100);
  if (queue.length) { scheduled = true; queueMicrotask(flush); }
  try {
    const res = await api.post('/render', { items: batch.map((b) => ({ text: b.text, partial: b.partial })) });
    batch.forEach((b, i) => {
      if (!b.partial) cache.set(b.k, res.html[i]); // a stream's text is new every time
      b.resolve(res.html[i]);
    });
    while (cache.size > MAX) cache.delete(cache.keys().next().value);
  } catch (e) {
    batch.forEach((b) => b.reject(e));
  }
}

// decorate adds a copy button to every code block in el.
export function decorate(el) {
  for (const pre of el.querySelectorAll('pre')) {
    if (pre.querySelector(':scope > button.copy')) continue;
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'copy';
    b.textContent = 'Copy';
    b.setAttribute('aria-label', 'Copy code');
    b.addEventListener('click', async () => {
      const code = (pre.querySelector('code') || pre).textContent;
      try {
        await navigator.clipboard.writeText(code);
      } catch {
        const range = document.createRange();
        range.selectNodeContents(pre.querySelector('code') || pre);
        const sel = getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        document.execCommand('copy');
        sel.removeAllRanges();
      }
      b.textContent = 'Copied';
      setTimeout(() => { b.textContent = 'Copy'; }, 1500);
    });
    pre.appendChild(b);
  }
}
