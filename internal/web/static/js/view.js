// The open chat: history pages, live messages, the assistant's answer as it
// streams, the composer. DOM changes are batched per animation frame; the
// view sticks to the bottom unless the person scrolled up.
import { $, h, when, toast, newClientId } from './dom.js';
import { api } from './api.js';
import { render, cached, decorate } from './markdown.js';

const PAGE = 50;
const RENDER_EVERY = 150; // ms between partial renders of a streaming answer

export class ChatView {
  constructor(app) {
    this.app = app;
    this.chat = null;
    this.items = new Map();   // seq -> entry {msg, el, body}
    this.pending = new Map(); // client_id -> entry
    this.dirty = new Set();
    this.frame = 0;
    this.stick = true;
    this.lastTop = 0;
    this.minSeq = 0;
    this.maxSeq = 0;
    this.hasMore = false;
    this.loadingOlder = false;
    this.lastTyping = 0;
    this.readTimer = 0;
    this.box = $('messages');
    this.list = $('message-list');
    this.box.addEventListener('scroll', () => this.onScroll(), { passive: true });
    $('new-pill').addEventListener('click', () => { this.scrollToBottom(); this.markRead(); });
    $('composer').addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    const input = $('input');
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.submit(); }
    });
    input.addEventListener('input', () => { this.autosize(); this.typing(); });
    $('stop').addEventListener('click', () => this.stop());
    document.addEventListener('visibilitychange', () => this.markRead());
    // A rotated phone, a resized window or an opening keyboard must not
    // unstick the view from the newest message.
    new ResizeObserver(() => { if (this.stick && !this.box.hidden) this.box.scrollTop = this.box.scrollHeight; }).observe(this.box);
  }

  get id() { return this.chat && this.chat.id; }

  async open(chat) {
    const t0 = performance.now();
    window.aichatMetrics = null;
    this.chat = chat;
    this.items.clear();
    this.pending.clear();
    this.dirty.clear();
    this.list.replaceChildren();
    this.minSeq = this.maxSeq = 0;
    this.hasMore = false;
    this.stick = true;
    $('new-pill').hidden = true;
    $('empty-chat').hidden = true;
    this.box.hidden = false;
    $('composer').hidden = false;
    this.header();
    this.renderTyping();
    let page;
    try {
      page = await api.get(`/chats/${chat.id}/messages?limit=${PAGE}`);
    } catch (e) {
      toast(e.message);
      return;
    }
    if (this.id !== chat.id) return; // another chat was opened meanwhile (an update may replace the object)
    this.hasMore = page.has_more;
    this.addPage(page.messages.reverse(), false);
    for (const [cid, m] of this.app.socket.pending()) if (m.chat_id === chat.id) this.showPending(cid, m.content);
    this.paint();
    this.scrollToBottom();
    window.aichatMetrics = { openMs: performance.now() - t0, messages: this.items.size };
    this.updateStop();
    this.markRead();
    if (matchMedia('(min-width: 701px)').matches) $('input').focus({ preventScroll: true });
  }

  close() {
    this.chat = null;
    this.list.replaceChildren();
    this.items.clear();
    this.box.hidden = true;
    $('composer').hidden = true;
    $('empty-chat').hidden = false;
    $('chat-title').textContent = '';
    $('chat-sub').textContent = '';
    $('typing').textContent = '';
  }

  header() {
    const c = this.chat;
    if (!c) return;
    $('chat-title').textContent = this.app.title(c);
    const people = c.participants.length;
    const online = c.participants.filter((p) => p.id !== this.app.me.id && this.app.online.has(p.id)).length;
    $('chat-sub').textContent = c.kind === 'personal'
      ? 'with the assistant'
      : `${people} people, ${online} online · assistant: ${({ always: 'every message', mention: 'when @ai is mentioned', off: 'off' })[c.settings.ai_mode] || c.settings.ai_mode}`;
  }

  // ---------------------------------------------------------------- messages

  addPage(msgs, older) {
    if (older) {
      const before = this.box.scrollHeight;
      const top = this.box.scrollTop;
      const frag = document.createDocumentFragment();
      for (const m of msgs) {
        if (this.items.has(m.seq)) continue;
        const e = this.entry(m);
        frag.append(e.el);
      }
      this.list.prepend(frag);
      this.box.scrollTop = top + (this.box.scrollHeight - before);
    } else {
      for (const m of msgs) this.upsert(m, true);
    }
    for (const m of msgs) {
      if (!this.minSeq || m.seq < this.minSeq) this.minSeq = m.seq;
      if (m.seq > this.maxSeq) this.maxSeq = m.seq;
      this.app.socket.seen(m.chat_id, m.seq);
    }
  }

  entry(m) {
    const e = { msg: m, el: null, body: null, shown: null, inflight: false, lastReq: 0 };
    e.el = h('li.msg', { dataset: { seq: m.seq, id: m.id } });
    this.items.set(m.seq, e);
    this.fill(e);
    return e;
  }

  // upsert adds or updates a message (from history, the socket or an ack).
  upsert(m, quiet = false) {
    if (m.chat_id !== this.id) return;
    const mine = m.author === this.app.me.id;
    if (mine && m.client_id && this.pending.has(m.client_id)) {
      this.pending.get(m.client_id).el.remove();
      this.pending.delete(m.client_id);
    }
    const have = this.items.get(m.seq);
    if (have) {
      have.msg = m;
      this.fill(have);
      this.schedule(null, true);
      return;
    }
    if (this.maxSeq && m.seq > this.maxSeq + 1 && !quiet) this.fillGap(this.maxSeq);
    const e = this.entry(m);
    // Insert in seq order; almost always at the end (before pending ones).
    let after = null;
    for (const el of this.list.children) {
      const s = Number(el.dataset.seq);
      if (el.dataset.seq && s > m.seq) { after = el; break; }
      if (!el.dataset.seq && !after) { after = el; break; }
    }
    this.list.insertBefore(e.el, after);
    if (m.seq > this.maxSeq) this.maxSeq = m.seq;
    if (!this.minSeq || m.seq < this.minSeq) this.minSeq = m.seq;
    if (!quiet) this.schedule(null, true);
  }

  async fillGap(after) {
    try {
      const page = await api.get(`/chats/${this.id}/messages?after=${after}&limit=200`);
      for (const m of page.messages) this.upsert(m, true);
      this.schedule(null, true);
    } catch { /* the next reconnect's resume fills it */ }
  }

  fill(e) {
    const m = e.msg;
    const mine = m.author === this.app.me.id;
    const el = e.el;
    el.className = `msg ${m.author_kind}${mine ? ' mine' : ''}${m.status === 'streaming' ? ' streaming' : ''}${m.status === 'failed' ? ' failed' : ''}`;
    el.setAttribute('aria-busy', m.status === 'streaming' ? 'true' : 'false');
    const who = m.author_kind === 'assistant'
      ? 'Assistant' + (m.model ? ` · ${m.model}` : '')
      : mine ? 'You' : this.app.nameOf(this.chat, m.author);
    const body = h('div.body');
    e.body = body;
    e.shown = null;
    const parts = [h('div.who', { text: `${who} · ${when(m.created_at)}` }), body];
    if (m.author_kind === 'assistant') {
      if (m.status === 'stopped') parts.push(h('div.state', { text: 'Stopped.' }));
      if (m.status === 'failed') parts.push(h('div.state.err', { text: e.error || 'The answer failed.' }));
    } else {
      body.textContent = m.content;
    }
    el.replaceChildren(...parts);
    e.actions = false;
    this.actionsKey = null;
    if (m.author_kind === 'assistant') this.paintAnswer(e);
  }

  // The Regenerate button belongs to the chat's last message only, when
  // that is a finished answer.
  refreshLastActions() {
    const last = this.items.get(this.maxSeq);
    const key = last ? `${last.msg.id}:${last.msg.status}` : '';
    if (key === this.actionsKey) return;
    this.actionsKey = key;
    for (const el of this.list.querySelectorAll('.actions')) el.remove();
    if (last && last.msg.author_kind === 'assistant' && last.msg.status !== 'streaming') {
      last.el.append(h('div.actions', {}, h('button.regen', { type: 'button', text: 'Regenerate', onclick: () => this.regenerate(last.msg) })));
    }
  }

  // paintAnswer shows an answer as HTML, re-rendering a streaming one at
  // most every RENDER_EVERY ms; until the first HTML arrives, plain text.
  paintAnswer(e) {
    const m = e.msg;
    const s = this.app.streams.get(m.id);
    const streaming = m.status === 'streaming';
    const text = streaming && s ? s.text : m.content;
    const key = (streaming ? 'p:' : 'c:') + text;
    if (e.shown === key) return;
    if (!text) {
      e.body.textContent = streaming ? '' : '(no text)';
      e.shown = key;
      return;
    }
    const html = cached(text, streaming);
    if (html !== undefined) { this.setHTML(e, html, key); return; }
    if (e.shown === null) e.body.textContent = text;
    if (e.inflight) return;
    const wait = streaming ? Math.max(0, e.lastReq + RENDER_EVERY - performance.now()) : 0;
    e.inflight = true;
    setTimeout(async () => {
      e.lastReq = performance.now();
      const cur = e.msg.status === 'streaming' ? (this.app.streams.get(e.msg.id) || {}).text || e.msg.content : e.msg.content;
      const partial = e.msg.status === 'streaming';
      try {
        const out = await render(cur, partial);
        e.inflight = false;
        e.rendered = { key: (partial ? 'p:' : 'c:') + cur, html: out };
      } catch {
        e.inflight = false;
        e.rendered = { key: null, text: cur };
      }
      this.schedule(e);
    }, wait);
  }

  setHTML(e, html, key) {
    e.body.innerHTML = html; // sanitized by the server (internal/render)
    decorate(e.body);
    e.shown = key;
  }

  // schedule repaints entry e (or just re-evaluates scrolling) on the next
  // animation frame.
  schedule(e, grew = false) {
    if (e) this.dirty.add(e);
    if (grew) this.grew = true;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.paint());
  }

  paint() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    const stick = this.stick;
    const grew = this.grew || this.dirty.size > 0;
    this.grew = false;
    for (const e of this.dirty) {
      if (!e.el.isConnected) continue;
      if (e.rendered) {
        const r = e.rendered;
        e.rendered = null;
        if (r.key) this.setHTML(e, r.html, r.key);
        else { e.body.textContent = r.text; e.shown = null; }
      }
      this.paintAnswer(e);
    }
    this.dirty.clear();
    this.refreshLastActions();
    if (stick) this.scrollToBottom();
    else if (grew) $('new-pill').hidden = false;
    this.markRead();
  }

  atBottom() { return this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight < 48; }

  scrollToBottom() {
    this.box.scrollTop = this.box.scrollHeight;
    this.lastTop = this.box.scrollTop;
    this.stick = true;
    $('new-pill').hidden = true;
  }

  onScroll() {
    // Unstick only when the reader moved up. A scroll event can arrive
    // after our own scroll to the bottom and after the content grew again,
    // when the view is no longer at the bottom though nobody scrolled.
    const top = this.box.scrollTop;
    if (this.atBottom()) this.stick = true;
    else if (top < this.lastTop - 1) this.stick = false;
    this.lastTop = top;
    if (this.stick) { $('new-pill').hidden = true; this.markRead(); }
    if (this.box.scrollTop < 400) this.loadOlder();
  }

  async loadOlder() {
    if (!this.hasMore || this.loadingOlder || !this.chat) return;
    this.loadingOlder = true;
    $('older').hidden = false;
    const chat = this.chat;
    try {
      const page = await api.get(`/chats/${chat.id}/messages?before=${this.minSeq}&limit=${PAGE}`);
      if (this.id !== chat.id) return; // another chat was opened meanwhile (an update may replace the object)
      this.hasMore = page.has_more;
      this.addPage(page.messages.reverse(), true);
    } catch (e) {
      toast(e.message);
    } finally {
      this.loadingOlder = false;
      $('older').hidden = true;
    }
  }

  // reveal shows message seq of chatId (opening older pages as needed),
  // scrolled into the middle of the view and outlined for a moment.
  async reveal(chatId, seq) {
    for (let i = 0; i < 200 && this.id !== chatId; i++) await new Promise((r) => setTimeout(r, 25));
    if (this.id !== chatId) return;
    for (let i = 0; i < 200 && !window.aichatMetrics; i++) await new Promise((r) => setTimeout(r, 25));
    for (let guard = 0; !this.items.has(seq) && this.hasMore && this.minSeq > seq && guard < 400; guard++) {
      if (this.loadingOlder) await new Promise((r) => setTimeout(r, 25)); // a scroll started one
      else await this.loadOlder();
      if (this.id !== chatId) return;
    }
    const e = this.items.get(seq);
    if (!e) return;
    this.stick = false;
    e.el.scrollIntoView({ block: 'center' });
    this.lastTop = this.box.scrollTop;
    e.el.classList.add('found');
    setTimeout(() => e.el.classList.remove('found'), 2500);
  }

  // markRead tells the server the person has seen the chat up to the end,
  // when the view is visible and at the bottom.
  markRead() {
    if (!this.chat || document.visibilityState !== 'visible' || !this.atBottom()) return;
    if (!this.app.unreadOf(this.chat.id)) return;
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => {
      if (!this.chat) return;
      const data = { chat_id: this.chat.id, seq: this.maxSeq };
      if (!this.app.socket.command('read', data)) {
        api.post(`/chats/${this.chat.id}/read`, { seq: this.maxSeq }).then((u) => this.app.setUnread(u)).catch(() => {});
      }
    }, 250);
  }

  // ---------------------------------------------------------------- live events

  onStream(s) {
    if (s.chatId !== this.id) return;
    const e = this.items.get(s.seq);
    if (e) this.schedule(e);
  }

  onAnswerEnded(d) {
    if (d.chat_id !== this.id) return;
    const e = this.items.get(d.seq);
    if (e) {
      e.msg = { ...e.msg, status: d.status || 'failed', content: d.content ?? e.msg.content, model: d.model || e.msg.model };
      e.error = d.code ? d.message : null;
      this.fill(e);
      this.schedule(e, true);
    }
    this.updateStop();
  }

  notice(text) {
    this.list.append(h('li.msg.system', {}, h('div.body', { text })));
    this.schedule(null, true);
  }

  updateStop() {
    const streaming = this.chat && this.app.streams.inChat(this.chat.id);
    $('stop').hidden = !streaming;
  }

  // ---------------------------------------------------------------- composer

  autosize() {
    const i = $('input');
    i.style.height = 'auto';
    i.style.height = Math.min(i.scrollHeight + 2, innerHeight * 0.4) + 'px';
  }

  typing() {
    if (!this.chat || !$('input').value) return;
    const now = Date.now();
    if (now - this.lastTyping < 2000) return;
    this.lastTyping = now;
    this.app.socket.command('typing', { chat_id: this.chat.id });
  }

  submit() {
    const input = $('input');
    const content = input.value.trim();
    if (!content || !this.chat) return;
    const cid = newClientId();
    this.showPending(cid, content);
    this.app.socket.sendMessage(this.chat.id, content, cid);
    input.value = '';
    this.autosize();
    this.lastTyping = 0;
    this.scrollToBottom();
  }

  showPending(cid, content) {
    if (this.pending.has(cid)) return;
    const state = h('div.state', { text: this.app.socket.ready ? 'Sending…' : 'Waiting for the connection…' });
    const el = h('li.msg.user.mine.pending', { dataset: { clientId: cid } },
      h('div.who', { text: 'You' }), h('div.body', { text: content }), state);
    this.pending.set(cid, { el, content, state });
    this.list.append(el);
    this.schedule(null, true);
  }

  sendFailed(d) {
    const p = this.pending.get(d.client_id);
    if (!p) { toast(d.message); return; }
    p.el.classList.add('failed');
    p.state.className = 'state err';
    p.state.replaceChildren(d.message + ' ', h('button', {
      type: 'button', text: 'Retry', onclick: () => {
        p.el.classList.remove('failed');
        p.state.className = 'state';
        p.state.textContent = 'Sending…';
        this.app.socket.sendMessage(this.chat.id, p.content, d.client_id);
      },
    }));
  }

  connectionChanged(ready) {
    for (const p of this.pending.values()) {
      if (!p.el.classList.contains('failed')) p.state.textContent = ready ? 'Sending…' : 'Waiting for the connection…';
    }
  }

  stop() {
    if (!this.chat) return;
    if (!this.app.socket.command('ai_stop', { chat_id: this.chat.id })) {
      api.post(`/chats/${this.chat.id}/ai/stop`).catch((e) => toast(e.message));
    }
  }

  async regenerate(m) {
    try {
      await api.post(`/chats/${m.chat_id}/messages/${m.seq}/regenerate`);
    } catch (e) {
      toast(e.message);
    }
  }

  // ---------------------------------------------------------------- typing

  renderTyping() {
    const el = $('typing');
    if (!this.chat) { el.textContent = ''; return; }
    const names = [...(this.app.typing.get(this.chat.id) || new Map()).keys()].map((u) => this.app.nameOf(this.chat, u));
    el.textContent = names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.join(', ')} are typing…`;
  }
}
