// Search over the user's messages (GET /api/v1/search; the server matches
// a blind index and returns snippets with UTF-16 highlight ranges). A
// result opens its chat scrolled to the message.
import { $, h, when } from './dom.js';
import { api } from './api.js';

export class Search {
  constructor(app) {
    this.app = app;
    this.timer = 0;
    this.seq = 0; // answers to older queries are dropped
    this.next = '';
    const input = $('search');
    input.addEventListener('input', () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.run(false), 300);
    });
    input.addEventListener('keydown', (e) => { if (e.key === 'Escape') this.clear(); });
    $('search-form').addEventListener('submit', (e) => { e.preventDefault(); clearTimeout(this.timer); this.run(false); });
    $('search-more').addEventListener('click', () => this.run(true));
  }

  clear() {
    $('search').value = '';
    $('search-results').hidden = true;
    $('app').classList.remove('searching');
  }

  async run(more) {
    const q = $('search').value.trim();
    if (q.length < 2) { this.clear(); $('search').value = q; return; }
    const my = ++this.seq;
    $('app').classList.add('searching');
    $('search-results').hidden = false;
    if (!more) { $('search-status').textContent = 'Searching…'; $('search-list').replaceChildren(); }
    let page;
    try {
      page = await api.get(`/search?q=${encodeURIComponent(q)}&limit=30${more && this.next ? `&cursor=${encodeURIComponent(this.next)}` : ''}`);
    } catch (e) {
      if (my === this.seq) $('search-status').textContent = e.message;
      return;
    }
    if (my !== this.seq) return;
    this.next = page.next_cursor || '';
    $('search-more').hidden = !this.next;
    const items = page.results.map((r) => this.item(r));
    $('search-list').append(...items);
    const n = $('search-list').children.length;
    $('search-status').textContent = n === 0 ? 'No messages match.' : `${n}${this.next ? '+' : ''} message${n === 1 ? '' : 's'}`;
  }

  item(r) {
    const chat = this.app.chats.get(r.chat_id);
    const who = r.author_kind === 'assistant' ? 'Assistant' : r.author === this.app.me.id ? 'You' : this.app.nameOf(chat, r.author);
    return h('li', {}, h('a', { href: `#/chat/${r.chat_id}`, dataset: { chatId: r.chat_id, seq: r.seq },
      onclick: (e) => { e.preventDefault(); this.open(r); } },
    h('span.t', { text: chat ? this.app.title(chat) : 'A chat' }), h('span.sub', { text: `${who} · ${when(r.created_at)}` }),
    h('span.p', {}, ...highlight(r.snippet, r.highlights))));
  }

  async open(r) {
    location.hash = `#/chat/${r.chat_id}`;
    await this.app.view.reveal(r.chat_id, r.seq);
  }
}

// highlight splits text into plain and <mark> nodes at the given ranges
// (UTF-16 offsets, as JavaScript strings index).
function highlight(text, ranges) {
  const out = [];
  let at = 0;
  for (const { start, end } of [...(ranges || [])].sort((a, b) => a.start - b.start)) {
    if (start < at || end <= start || end > text.length) continue;
    if (start > at) out.push(text.slice(at, start));
    out.push(h('mark', { text: text.slice(start, end) }));
    at = end;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}
