// The dialogs: a new chat, the chat's settings, and its people.
import { $, h, toast, showError } from './dom.js';
import { api } from './api.js';

const FIELDS = ['ai_mode', 'model', 'temperature', 'depth', 'persona', 'context', 'max_tokens', 'stop'];

export class Dialogs {
  constructor(app) {
    this.app = app;
    this.models = null;
    for (const d of document.querySelectorAll('dialog')) {
      d.addEventListener('close', () => { if (this.returnFocus) this.returnFocus.focus(); });
    }
    $('new-chat').addEventListener('click', () => this.openNewChat());
    $('new-cancel').addEventListener('click', () => $('new-chat-dialog').close());
    $('new-chat-form').addEventListener('submit', (e) => { e.preventDefault(); this.createChat(); });
    $('open-settings').addEventListener('click', () => this.openSettings());
    $('settings-cancel').addEventListener('click', () => $('settings-dialog').close());
    $('settings-form').addEventListener('submit', (e) => { e.preventDefault(); this.saveSettings(); });
    $('open-members').addEventListener('click', () => this.openMembers());
    $('members-close').addEventListener('click', () => $('members-dialog').close());
    $('add-member-form').addEventListener('submit', (e) => { e.preventDefault(); this.addMember(); });
    $('leave-chat').addEventListener('click', () => this.leave());
  }

  show(id) {
    this.returnFocus = document.activeElement;
    $(id).showModal();
  }

  // ---------------------------------------------------------------- new chat

  openNewChat() {
    $('new-title').value = '';
    $('new-people').value = '';
    showError($('new-chat-error'), null);
    this.show('new-chat-dialog');
    $('new-title').focus();
  }

  async createChat() {
    const participants = $('new-people').value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
    try {
      const c = await api.post('/chats', { title: $('new-title').value.trim(), participants });
      this.app.upsertChat(c);
      this.returnFocus = null; // the new chat's composer takes the focus
      $('new-chat-dialog').close();
      location.hash = `#/chat/${c.id}`;
    } catch (e) {
      showError($('new-chat-error'), e);
    }
  }

  // ---------------------------------------------------------------- settings

  async openSettings() {
    const c = this.app.view.chat;
    if (!c) return;
    const owner = c.owner_id === this.app.me.id;
    $('settings-owner-only').hidden = owner;
    showError($('settings-error'), null);
    $('set-title').value = c.title || '';
    const st = c.settings;
    $('set-require_acceptance').checked = !!st.require_acceptance;
    $('set-require_acceptance').disabled = !owner;
    for (const f of FIELDS) {
      const el = $('set-' + f);
      el.disabled = !owner;
      el.removeAttribute('aria-invalid');
      if (f === 'stop') el.value = (st.stop || []).join('\n');
      else if (f !== 'model') el.value = st[f] ?? '';
    }
    await this.fillModels(st.model);
    this.show('settings-dialog');
    $('set-title').focus();
  }

  async fillModels(current) {
    if (!this.models) {
      try { this.models = (await api.get('/models')).models || []; } catch { this.models = []; }
    }
    const sel = $('set-model');
    const ids = this.models.map((m) => m.id);
    if (current && !ids.includes(current)) ids.unshift(current);
    sel.replaceChildren(h('option', { value: '', text: 'default' }), ...ids.map((id) => h('option', { value: id, text: id })));
    sel.value = current || '';
  }

  async saveSettings() {
    const c = this.app.view.chat;
    if (!c) return;
    const body = {};
    const title = $('set-title').value.trim();
    if (title !== (c.title || '')) body.title = title;
    if (c.owner_id === this.app.me.id) {
      const num = (id) => { const v = $(id).value.trim(); return v === '' ? 0 : Number(v); };
      body.settings = {
        ai_mode: $('set-ai_mode').value,
        model: $('set-model').value,
        temperature: num('set-temperature'),
        depth: num('set-depth'),
        persona: $('set-persona').value,
        context: $('set-context').value,
        max_tokens: num('set-max_tokens'),
        stop: $('set-stop').value.split('\n').map((s) => s.trim()).filter(Boolean),
        require_acceptance: $('set-require_acceptance').checked,
      };
    }
    if (!body.title && !body.settings) { $('settings-dialog').close(); return; }
    for (const f of FIELDS) $('set-' + f).removeAttribute('aria-invalid');
    try {
      const updated = await api.patch(`/chats/${c.id}`, body);
      this.app.upsertChat(updated);
      $('settings-dialog').close();
      toast('Settings saved.', 2500);
    } catch (e) {
      showError($('settings-error'), e);
      const field = e.field && e.field.split('.').pop();
      const el = field && $('set-' + field);
      if (el) { el.setAttribute('aria-invalid', 'true'); el.focus(); }
    }
  }

  // ---------------------------------------------------------------- people

  openMembers() {
    if (!this.app.view.chat) return;
    showError($('members-error'), null);
    $('members-notice').hidden = true;
    $('add-member-email').value = '';
    this.refreshMembers();
    this.show('members-dialog');
  }

  refreshMembers() {
    const c = this.app.view.chat;
    if (!c) return;
    const owner = c.owner_id === this.app.me.id;
    $('add-member-form').hidden = !owner;
    $('leave-chat').textContent = owner ? 'Delete chat' : 'Leave chat';
    const items = c.participants.map((p) => {
      const me = p.id === this.app.me.id;
      const on = me || this.app.online.has(p.id);
      return h('li', { dataset: { userId: p.id } },
        h('span.dot' + (on ? '.on' : ''), { title: on ? 'online' : 'offline', 'aria-label': on ? 'online' : 'offline' }),
        h('span.n', { text: `${p.name || p.email}${me ? ' (you)' : ''}${p.role === 'owner' ? ' · owner' : ''}`, title: p.email }),
        owner && !me ? h('button', { type: 'button', text: 'Remove', onclick: () => this.remove(p) }) : null);
    });
    $('member-list').replaceChildren(...items);
    this.refreshPending(c, owner);
  }

  // refreshPending lists who is invited and has not joined yet.
  async refreshPending(c, owner) {
    let list = [];
    try { list = (await api.get(`/chats/${c.id}/invitations`)).invitations; } catch { /* shown as none */ }
    if (this.app.view.chat !== c) return;
    $('pending-title').hidden = list.length === 0;
    $('pending-list').replaceChildren(...list.map((inv) => h('li', { dataset: { invitationId: inv.id } },
      h('span.n', { text: inv.user.name || inv.user.email, title: inv.user.email }),
      owner ? h('button', { type: 'button', text: 'Withdraw', onclick: async () => {
        try { await api.del(`/chats/${c.id}/invitations/${inv.id}`); this.refreshPending(c, owner); } catch (e) { showError($('members-error'), e); }
      } }) : null)));
  }

  async addMember() {
    const c = this.app.view.chat;
    const email = $('add-member-email').value.trim();
    if (!c || !email) return;
    try {
      const r = await api.post(`/chats/${c.id}/participants`, { email });
      $('add-member-email').value = '';
      showError($('members-error'), null);
      $('members-notice').hidden = !r.invitation;
      if (r.invitation) $('members-notice').textContent = `${email} is invited; they join when they accept.`;
      else this.app.upsertChat(r);
      this.refreshMembers();
    } catch (e) {
      showError($('members-error'), e);
    }
  }

  async remove(p) {
    const c = this.app.view.chat;
    try {
      await api.del(`/chats/${c.id}/participants/${p.id}`);
      c.participants = c.participants.filter((x) => x.id !== p.id);
      this.app.upsertChat(c);
      this.refreshMembers();
    } catch (e) {
      showError($('members-error'), e);
    }
  }

  async leave() {
    const c = this.app.view.chat;
    if (!c) return;
    const owner = c.owner_id === this.app.me.id;
    if (!confirm(owner ? 'Delete this chat for everyone?' : 'Leave this chat?')) return;
    try {
      if (owner) await api.del(`/chats/${c.id}`);
      else await api.del(`/chats/${c.id}/participants/me`);
      $('members-dialog').close();
      this.app.removeChat(c.id, true);
      location.hash = '#/';
    } catch (e) {
      showError($('members-error'), e);
    }
  }
}
