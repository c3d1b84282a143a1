// The one WebSocket of this tab: connects with a single-use ticket, resumes
// from the last seq seen per chat after every reconnect (nothing missed,
// nothing doubled), queues messages while it is down and resends them with
// the same client_id, and reconnects with backoff.
import { api, token, signedIn } from './api.js';

export class Socket extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.ready = false;      // hello received and resume answered
    this.lastSeq = new Map(); // chat id -> highest seq seen
    this.outbox = new Map();  // client_id -> {chat_id, content}
    this.attempt = 0;
    this.nextId = 1;
    this.stopped = true;
    this.timer = 0;
    this.restoreOutbox();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000); }
    this.ws = null;
    this.setReady(false);
  }

  seen(chatId, seq) {
    if (seq > (this.lastSeq.get(chatId) || 0)) this.lastSeq.set(chatId, seq);
  }

  async connect() {
    if (this.stopped) return;
    let ticket;
    try {
      ticket = (await api.post('/ws/ticket')).ticket;
    } catch (e) {
      if (!signedIn()) return; // signed out: nothing to reconnect
      this.retry();
      return;
    }
    if (this.stopped) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}&resume=1`);
    this.ws = ws;
    ws.onmessage = (e) => this.onFrame(e.data);
    ws.onclose = (e) => this.onClose(e);
  }

  retry() {
    if (this.stopped) return;
    this.attempt++;
    const base = Math.min(15000, 500 * 2 ** Math.min(this.attempt - 1, 5));
    const wait = base / 2 + Math.random() * base / 2;
    this.emit('state', { connected: false, retryIn: wait });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  async onClose(e) {
    this.ws = null;
    this.setReady(false);
    if (this.stopped) return;
    if (e.code === 4001) {
      // Access token expired or the session changed: refresh first (this
      // signs out when the session is gone).
      try { await token(true); } catch { if (!signedIn()) return; }
    }
    if (e.code === 1008 && /blocked/i.test(e.reason)) {
      this.emit('fatal', { message: e.reason });
      return;
    }
    this.retry();
  }

  setReady(ready) {
    if (this.ready === ready) return;
    this.ready = ready;
    this.emit('state', { connected: ready });
  }

  onFrame(raw) {
    let f;
    try { f = JSON.parse(raw); } catch { return; }
    const d = f.data || {};
    switch (f.type) {
      case 'hello': {
        const chats = {};
        for (const [id, seq] of this.lastSeq) chats[id] = seq;
        this.sendRaw({ type: 'resume', id: 'resume', data: { chats } });
        this.emit('hello', d);
        return;
      }
      case 'resumed':
        this.attempt = 0;
        this.setReady(true);
        this.emit('resumed', d);
        this.flushOutbox();
        return;
      case 'resync': {
        const chats = {};
        for (const [id, seq] of this.lastSeq) chats[id] = seq;
        this.sendRaw({ type: 'resume', id: 'resume', data: { chats } });
        return;
      }
      case 'chat_message':
        if (d.client_id) this.dropFromOutbox(d.client_id);
        this.seen(d.chat_id, d.seq);
        break;
      case 'ack':
        if (d.client_id) this.dropFromOutbox(d.client_id);
        if (d.message) this.seen(d.message.chat_id, d.message.seq);
        break;
      case 'error':
        if (d.command === 'send_message' && d.client_id && d.code !== 'rateLimit.exceeded') {
          this.dropFromOutbox(d.client_id); // refused for good: the view shows why
        }
        break;
    }
    this.emit(f.type, d, f.id);
  }

  emit(type, detail, id) { this.dispatchEvent(new CustomEvent(type, { detail: { ...detail, _id: id } })); }

  sendRaw(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // command sends a command if the socket is up; it returns false when it
  // could not (the caller decides whether that matters).
  command(type, data) {
    if (!this.ready) return false;
    return this.sendRaw({ type, id: String(this.nextId++), data });
  }

  // sendMessage queues a message; it leaves at once when connected, and
  // again with the same client_id after every reconnect until acked.
  sendMessage(chatId, content, clientId) {
    this.outbox.set(clientId, { chat_id: chatId, content });
    this.saveOutbox();
    if (this.ready) this.sendRaw({ type: 'send_message', id: clientId, data: { chat_id: chatId, content, client_id: clientId } });
  }

  flushOutbox() {
    for (const [clientId, m] of this.outbox) {
      this.sendRaw({ type: 'send_message', id: clientId, data: { chat_id: m.chat_id, content: m.content, client_id: clientId } });
    }
  }

  dropFromOutbox(clientId) {
    if (this.outbox.delete(clientId)) this.saveOutbox();
  }

  pending() { return this.outbox; }

  saveOutbox() {
    try { sessionStorage.setItem('aichat.outbox', JSON.stringify([...this.outbox])); } catch { /* private mode */ }
  }

  restoreOutbox() {
    try { this.outbox = new Map(JSON.parse(sessionStorage.getItem('aichat.outbox')) || []); } catch { this.outbox = new Map(); }
  }
}
