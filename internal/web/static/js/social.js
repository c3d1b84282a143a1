// Friends, the notification bell and its toasts.
import { $, h, toast, showError, when } from './dom.js';
import { api } from './api.js';

export class Social {
  constructor(app) {
    this.app = app;
    this.friends = null;
    this.notes = [];
    this.unread = 0;
    this.hasMore = false;
    $('open-friends').addEventListener('click', () => this.openFriends());
    $('friends-close').addEventListener('click', () => $('friends-dialog').close());
    $('friend-form').addEventListener('submit', (e) => { e.preventDefault(); this.request(); });
    $('bell').addEventListener('click', () => this.openNotifications());
    $('notifications-close').addEventListener('click', () => $('notifications-dialog').close());
    $('notifications-read-all').addEventListener('click', () => this.readAll());
    $('notifications-more').addEventListener('click', () => this.loadNotifications(true));
  }

  async start() {
    await Promise.all([this.loadFriends().catch(() => {}), this.loadNotifications(false).catch(() => {}),
      this.loadInvitations().catch(() => {})]);
  }

  // ---------------------------------------------------------------- invitations

  async loadInvitations() {
    const { invitations } = await api.get('/invitations');
    $('invitations').hidden = invitations.length === 0;
    $('invitation-list').replaceChildren(...invitations.map((inv) => h('li', { dataset: { invitationId: inv.id } },
      h('span.n', { text: `${inv.invited_by ? inv.invited_by.email : 'Someone'} invited you to ${inv.chat_title || 'a chat'}` }),
      h('button.accept', { type: 'button', text: 'Join', onclick: async () => {
        try {
          const c = await api.post(`/invitations/${inv.id}/accept`);
          this.app.upsertChat(c);
          location.hash = `#/chat/${c.id}`;
        } catch (e) { toast(e.message); }
        this.loadInvitations().catch(() => {});
      } }),
      h('button', { type: 'button', text: 'Decline', onclick: async () => {
        try { await api.post(`/invitations/${inv.id}/decline`); } catch (e) { toast(e.message); }
        this.loadInvitations().catch(() => {});
      } }))));
  }

  stop() {
    this.friends = null;
    this.notes = [];
    this.setUnread(0);
  }

  // ---------------------------------------------------------------- friends

  async loadFriends() {
    this.friends = await api.get('/friends');
    for (const f of this.friends.friends) if (f.online) this.app.online.add(f.id);
    $('friends-count').textContent = String(this.friends.incoming.length);
    $('friends-count').hidden = this.friends.incoming.length === 0;
    this.renderFriends();
  }

  async openFriends() {
    showError($('friends-error'), null);
    $('friends-notice').hidden = true;
    $('friend-email').value = '';
    this.app.dialogs.show('friends-dialog');
    $('friend-email').focus();
    try { await this.loadFriends(); } catch (e) { showError($('friends-error'), e); }
  }

  renderFriends() {
    const f = this.friends;
    if (!f) return;
    const person = (p) => p.name ? `${p.name} (${p.email})` : p.email;
    const act = (text, fn, cls = '') => h('button' + cls, { type: 'button', text, onclick: () => this.run(fn) });
    $('incoming-list').replaceChildren(...(f.incoming.length ? f.incoming.map((r) => h('li', { dataset: { requestId: r.id } },
      h('span.n', { text: person(r.from) }),
      act('Accept', () => api.post(`/friends/requests/${r.id}/accept`)),
      act('Decline', () => api.post(`/friends/requests/${r.id}/decline`)))) : [h('li.empty', { text: 'None.' })]));
    $('friend-list').replaceChildren(...(f.friends.length ? f.friends.map((p) => {
      const on = this.app.online.has(p.id);
      return h('li', { dataset: { userId: p.id } },
        h('span.dot' + (on ? '.on' : ''), { title: on ? 'online' : 'offline', 'aria-label': on ? 'online' : 'offline' }),
        h('span.n', { text: person(p), title: p.email }),
        h('button.chat-with', { type: 'button', text: 'Chat', onclick: () => this.chatWith(p) }),
        act('Remove', () => api.del(`/friends/${p.id}`)),
        act('Block', () => api.put(`/blocks/${p.id}`)));
    }) : [h('li.empty', { text: 'No friends yet: send a request above.' })]));
    $('outgoing-list').replaceChildren(...(f.outgoing.length ? f.outgoing.map((r) => h('li', {},
      h('span.n', { text: r.email }), act('Cancel', () => api.del(`/friends/requests/${r.id}`)))) : [h('li.empty', { text: 'None.' })]));
    $('blocked-list').replaceChildren(...(f.blocked.length ? f.blocked.map((p) => h('li', {},
      h('span.n', { text: person(p) }), act('Unblock', () => api.del(`/blocks/${p.id}`)))) : [h('li.empty', { text: 'Nobody.' })]));
  }

  async run(fn) {
    showError($('friends-error'), null);
    try {
      await fn();
      await this.loadFriends();
    } catch (e) {
      showError($('friends-error'), e);
    }
  }

  async request() {
    const email = $('friend-email').value.trim();
    if (!email) return;
    showError($('friends-error'), null);
    try {
      await api.post('/friends/requests', { email });
      $('friend-email').value = '';
      // The answer is the same whether the address has an account or not.
      $('friends-notice').textContent = `If ${email} has an account, they will get your request.`;
      $('friends-notice').hidden = false;
      await this.loadFriends();
    } catch (e) {
      showError($('friends-error'), e);
    }
  }

  async chatWith(p) {
    try {
      const c = await api.post(`/friends/${p.id}/chat`);
      this.app.upsertChat(c.chat || c);
      $('friends-dialog').close();
      location.hash = `#/chat/${(c.chat || c).id}`;
    } catch (e) {
      showError($('friends-error'), e);
    }
  }

  presenceChanged() {
    if ($('friends-dialog').open) this.renderFriends();
  }

  // ---------------------------------------------------------------- notifications

  setUnread(n) {
    this.unread = n;
    $('bell-count').textContent = String(n);
    $('bell-count').hidden = n === 0;
    $('bell').setAttribute('aria-label', n ? `Notifications, ${n} unread` : 'Notifications');
  }

  async loadNotifications(more) {
    const cursor = more && this.next ? `&cursor=${encodeURIComponent(this.next)}` : '';
    const page = await api.get(`/notifications?limit=20${cursor}`);
    this.notes = more ? this.notes.concat(page.notifications) : page.notifications;
    this.next = page.next_cursor || '';
    this.hasMore = !!this.next;
    if (typeof page.unread === 'number') this.setUnread(page.unread);
    this.renderNotifications();
  }

  async openNotifications() {
    this.app.dialogs.show('notifications-dialog');
    try { await this.loadNotifications(false); } catch (e) { toast(e.message); }
  }

  renderNotifications() {
    const items = this.notes.map((n) => h('li' + (n.read ? '' : '.unread'), { dataset: { id: n.id, kind: n.kind } },
      h('span.t', { text: n.text }),
      h('span.w', { text: when(n.created_at) }),
      n.read ? null : h('button', { type: 'button', text: 'Open', onclick: () => this.open(n) })));
    $('notification-list').replaceChildren(...items);
    $('notifications-empty').hidden = items.length > 0;
    $('notifications-more').hidden = !this.hasMore;
  }

  // open marks a notification read and goes where it points.
  async open(n) {
    try { await api.post(`/notifications/${n.id}/read`); } catch { /* still go there */ }
    n.read = true;
    this.renderNotifications();
    $('notifications-dialog').close();
    if (n.subject && n.subject.type === 'chat' && this.app.chats.has(n.subject.id)) location.hash = `#/chat/${n.subject.id}`;
    else if (n.kind === 'chat_invite') { this.loadInvitations().catch(() => {}); $('invitations').scrollIntoView(); }
    else if (n.kind === 'friend_request' || n.kind === 'friend_accepted') this.openFriends();
  }

  async readAll() {
    try {
      await api.post('/notifications/read-all');
      for (const n of this.notes) n.read = true;
      this.setUnread(0);
      this.renderNotifications();
    } catch (e) {
      toast(e.message);
    }
  }

  // onNotification handles the live frame: a toast, the list, the friends.
  onNotification(n) {
    if (!this.notes.some((x) => x.id === n.id)) this.notes.unshift(n);
    if ($('notifications-dialog').open) this.renderNotifications();
    const t = toast(n.text, 6000);
    if (t) {
      t.classList.add('clickable');
      t.addEventListener('click', () => { t.remove(); this.open(n); });
    }
    if (n.kind === 'friend_request' || n.kind === 'friend_accepted') this.loadFriends().catch(() => {});
    if (n.kind === 'chat_invite') this.loadInvitations().catch(() => {});
  }
}
