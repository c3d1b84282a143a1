// The app's entry point: the sign-in screen, the chat list, and the wiring
// between the socket's events and the views.
import { $, h, toast, showError } from './dom.js';
import { api, login, register, logout, onSignedOut, signedIn, currentUser } from './api.js';
import { Socket } from './socket.js';
import { Streams } from './stream.js';
import { ChatView } from './view.js';
import { Dialogs } from './dialogs.js';
import { Social } from './social.js';
import { Admin } from './admin.js';
import { Search } from './search.js';

class App {
  constructor() {
    this.me = null;
    this.chats = new Map();
    this.unread = { total: 0, chats: {} };
    this.online = new Set();
    this.typing = new Map(); // chat id -> Map(user id -> timer)
    this.streams = new Streams();
    this.socket = new Socket();
    this.view = new ChatView(this);
    this.dialogs = new Dialogs(this);
    this.social = new Social(this);
    this.admin = new Admin(this);
    this.search = new Search(this);
    this.bannerTimer = 0;
    this.wireSocket();
    addEventListener('hashchange', () => this.route());
    $('logout').addEventListener('click', async () => { await this.signOut(); });
  }

  // ---------------------------------------------------------------- session

  async start() {
    this.me = currentUser();
    $('auth').hidden = true;
    $('app').hidden = false;
    $('me').textContent = this.me.name || this.me.email;
    $('me').title = this.me.email;
    try {
      const { chats } = await api.get('/chats');
      this.chats = new Map(chats.map((c) => [c.id, c]));
      for (const c of chats) {
        this.socket.seen(c.id, c.last_seq);
        this.unread.chats[c.id] = c.unread_count;
      }
      this.unread.total = chats.reduce((n, c) => n + c.unread_count, 0);
    } catch (e) {
      if (!signedIn()) return;
      toast(e.message);
    }
    this.renderList();
    this.socket.start();
    this.route();
    $('open-admin').hidden = !['admin', 'support'].includes(this.me.role);
    this.social.start();
  }

  async signOut(message) {
    this.socket.stop();
    this.socket.outbox.clear();
    this.socket.saveOutbox();
    if (message === undefined) await logout();
    this.view.close();
    this.chats.clear();
    this.online.clear();
    this.social.stop();
    this.search.clear();
    this.me = null;
    location.hash = '';
    showAuth(message);
  }

  // ---------------------------------------------------------------- routing

  route() {
    const staff = this.me && ['admin', 'support'].includes(this.me.role);
    const adminView = location.hash === '#/admin' && staff;
    $('app').classList.toggle('show-admin', adminView);
    if (adminView) {
      if (this.view.chat) this.view.close();
      this.admin.open();
      this.renderList();
      return;
    }
    this.admin.close();
    const m = location.hash.match(/^#\/chat\/([\w-]+)$/);
    const chat = m && this.chats.get(m[1]);
    $('app').classList.toggle('show-chat', !!chat);
    if (!chat) {
      if (m) { toast('That chat does not exist or you are no longer in it.'); location.hash = '#/'; }
      if (this.view.chat) this.view.close();
      this.renderList();
      return;
    }
    if (this.view.id !== chat.id) this.view.open(chat);
    this.renderList();
  }

  // ---------------------------------------------------------------- chat list

  title(c) {
    if (c.title) return c.title;
    const others = c.participants.filter((p) => p.id !== this.me.id);
    if (c.kind === 'personal' || others.length === 0) return 'Assistant';
    return others.map((p) => p.name || p.email).join(', ');
  }

  nameOf(chat, userId) {
    const p = chat && chat.participants.find((x) => x.id === userId);
    return p ? (p.name || p.email) : 'Someone';
  }

  unreadOf(id) { return this.unread.chats[id] || 0; }

  setUnread(u) {
    if (!u) return;
    this.unread = { total: u.total, chats: { ...u.chats } };
    this.renderList();
  }

  renderList() {
    const list = [...this.chats.values()].sort((a, b) =>
      (b.last_activity_at || b.created_at).localeCompare(a.last_activity_at || a.created_at));
    const watching = (id) => this.view.id === id && this.view.stick && document.visibilityState === 'visible';
    const items = list.map((c) => {
      // The open chat, read to the end on screen, is marked read in a moment.
      const n = watching(c.id) ? 0 : this.unreadOf(c.id);
      const last = c.last_message;
      const preview = last ? (last.author_kind === 'assistant' ? 'Assistant: ' : last.author === this.me.id ? 'You: ' : '') + last.content.slice(0, 120) : 'No messages yet';
      return h('li', {}, h('a', {
        href: `#/chat/${c.id}`, 'aria-current': this.view.id === c.id ? 'page' : null,
        dataset: { chatId: c.id }, 'aria-label': `${this.title(c)}${n ? `, ${n} unread` : ''}`,
      }, h('span.t', { text: this.title(c) }), n ? h('span.badge', { text: String(n) }) : h('span'), h('span.p', { text: preview })));
    });
    $('chat-list').replaceChildren(...items);
    $('no-chats').hidden = list.length > 0;
    document.title = this.unread.total ? `(${this.unread.total}) aichat` : 'aichat';
  }

  upsertChat(c) {
    this.chats.set(c.id, c);
    if (this.view.id === c.id) { this.view.chat = c; this.view.header(); }
    this.renderList();
  }

  async reloadChat(id) {
    try {
      this.upsertChat(await api.get(`/chats/${id}`));
      this.route();
    } catch (e) {
      if (e.status === 404) this.removeChat(id);
    }
  }

  removeChat(id, quiet = false) {
    if (!this.chats.delete(id)) return;
    delete this.unread.chats[id];
    if (this.view.id === id) {
      if (!quiet) toast('You are no longer in that chat.');
      location.hash = '#/';
    }
    this.renderList();
  }

  // ---------------------------------------------------------------- socket

  wireSocket() {
    const s = this.socket;
    const on = (type, fn) => s.addEventListener(type, (e) => fn(e.detail));
    on('state', (d) => {
      clearTimeout(this.bannerTimer);
      if (d.connected) { $('banner').hidden = true; }
      else this.bannerTimer = setTimeout(() => { $('banner').textContent = 'Reconnecting…'; $('banner').hidden = false; }, 1000);
      this.view.connectionChanged(d.connected);
    });
    on('fatal', (d) => this.signOut(d.message));
    on('hello', (d) => { if (d.unread) this.setUnread(d.unread); });
    on('resumed', (d) => {
      if (d.unread) this.setUnread(d.unread);
      // A role change closes the socket; the refreshed session names the new role.
      const me = currentUser();
      if (me && this.me && me.id === this.me.id && me.role !== this.me.role) {
        this.me = me;
        $('open-admin').hidden = !['admin', 'support'].includes(me.role);
        this.route();
      }
      for (const id of d.gone || []) this.removeChat(id);
      if (this.view.id && (d.truncated || []).includes(this.view.id)) this.view.open(this.chats.get(this.view.id));
    });
    on('chat_message', (m) => {
      const c = this.chats.get(m.chat_id);
      if (!c) { this.reloadChat(m.chat_id); return; }
      if (!c.last_message || m.seq >= c.last_message.seq) {
        c.last_message = m;
        c.last_seq = Math.max(c.last_seq, m.seq);
        c.last_activity_at = m.created_at;
      }
      this.clearTyping(m.chat_id, m.author);
      this.view.upsert(m);
      if (m.author_kind === 'assistant' && m.status === 'streaming' && !this.streams.get(m.id)) {
        this.streams.start({ chat_id: m.chat_id, message_id: m.id, seq: m.seq, model: m.model });
        if (this.view.id === m.chat_id) this.view.updateStop();
      }
      this.renderList();
    });
    on('ack', (d) => {
      if (d.message) this.view.upsert(d.message);
      if (d.unread) this.setUnread(d.unread);
    });
    on('unread_count', (d) => {
      this.unread.chats[d.chat_id] = d.count;
      this.unread.total = d.total;
      this.renderList();
    });
    on('presence', (d) => {
      if (d.online) this.online.add(d.user_id); else this.online.delete(d.user_id);
      this.view.header();
      this.dialogs.refreshMembers();
      this.social.presenceChanged();
    });
    on('notification', (n) => this.social.onNotification(n));
    on('notifications_unread', (d) => this.social.setUnread(d.unread));
    on('friends_updated', () => this.social.loadFriends().catch(() => {}));
    on('typing', (d) => this.setTyping(d));
    on('chat_updated', (d) => this.reloadChat(d.chat_id));
    on('chat_removed', (d) => this.removeChat(d.chat_id));
    on('error', (d) => {
      if (d.command === 'send_message') this.view.sendFailed(d);
      else if (d.code === 'webSocket.closed') { /* the close handler reconnects */ }
      else if (d.command !== 'read' && d.command !== 'typing') toast(d.message);
    });
    on('ai_start', (d) => {
      if (!this.streams.get(d.message_id)) this.streams.start(d);
      if (this.view.id === d.chat_id) this.view.updateStop();
    });
    on('ai_delta', (d) => {
      const st = this.streams.delta(d);
      if (st) this.view.onStream(st);
    });
    on('ai_done', (d) => {
      this.streams.end(d.message_id);
      const c = this.chats.get(d.chat_id);
      if (c && c.last_message && c.last_message.id === d.message_id) {
        c.last_message = { ...c.last_message, content: d.content, status: d.status };
        this.renderList();
      }
      this.view.onAnswerEnded(d);
    });
    on('ai_error', (d) => {
      if (d.message_id) {
        this.streams.end(d.message_id);
        this.view.onAnswerEnded({ ...d, status: 'failed' });
      } else if (this.view.id === d.chat_id) {
        this.view.notice(`Assistant: ${d.message}`);
      } else {
        toast(`Assistant: ${d.message}`);
      }
    });
  }

  setTyping(d) {
    if (d.user_id === this.me.id) return;
    let m = this.typing.get(d.chat_id);
    if (!m) this.typing.set(d.chat_id, (m = new Map()));
    clearTimeout(m.get(d.user_id));
    m.set(d.user_id, setTimeout(() => this.clearTyping(d.chat_id, d.user_id), d.expires_in_ms || 5000));
    if (this.view.id === d.chat_id) this.view.renderTyping();
  }

  clearTyping(chatId, userId) {
    const m = this.typing.get(chatId);
    if (!m || !m.has(userId)) return;
    clearTimeout(m.get(userId));
    m.delete(userId);
    if (this.view.id === chatId) this.view.renderTyping();
  }
}

// ---------------------------------------------------------------- sign-in

let mode = 'login';
let app = null;

function setMode(next) {
  mode = next;
  $('tab-login').setAttribute('aria-selected', String(mode === 'login'));
  $('tab-register').setAttribute('aria-selected', String(mode === 'register'));
  $('name-row').hidden = mode === 'login';
  $('auth-submit').textContent = mode === 'login' ? 'Sign in' : 'Create account';
  $('auth-password').autocomplete = mode === 'login' ? 'current-password' : 'new-password';
  showError($('auth-error'), null);
}

function showAuth(message) {
  $('app').hidden = true;
  $('auth').hidden = false;
  $('auth-notice').textContent = message || '';
  $('auth-notice').hidden = !message;
  $('auth-password').value = '';
  $('auth-email').focus();
}

$('tab-login').addEventListener('click', () => setMode('login'));
$('tab-register').addEventListener('click', () => setMode('register'));
$('auth-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const email = $('auth-email').value.trim();
  const password = $('auth-password').value;
  if (!email || !password) { showError($('auth-error'), new Error('Enter your email and password.')); return; }
  $('auth-submit').disabled = true;
  try {
    if (mode === 'login') await login(email, password);
    else await register($('auth-name').value.trim(), email, password);
    showError($('auth-error'), null);
    $('auth-notice').hidden = true;
    app.start();
  } catch (err) {
    showError($('auth-error'), err);
  } finally {
    $('auth-submit').disabled = false;
  }
});

onSignedOut((message) => { if (app && app.me) app.signOut(message || 'Your session has ended; sign in again.'); });

app = new App();
window.aichat = app; // for the browser tests and the curious
if (signedIn()) app.start(); else showAuth();
