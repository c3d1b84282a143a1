// The administration view (#/admin) for admins and support: users, usage,
// status, the moderation queue, the audit log and bots. Support sees usage,
// status and the moderation queue; the server enforces the same.
import { $, h, toast, showError, when } from './dom.js';
import { api } from './api.js';

export class Admin {
  constructor(app) {
    this.app = app;
    this.tab = 'users';
    for (const b of document.querySelectorAll('.admin-tabs button')) {
      b.addEventListener('click', () => this.show(b.dataset.tab));
    }
  }

  get isAdmin() { return this.app.me && this.app.me.role === 'admin'; }

  open() {
    for (const b of document.querySelectorAll('.admin-tabs [data-admin-only]')) b.hidden = !this.isAdmin;
    // Support has the read-only views and the moderation queue, not users.
    if (!this.isAdmin && ['users', 'audit', 'bots'].includes(this.tab)) this.tab = 'usage';
    $('admin').hidden = false;
    this.show(this.tab);
  }

  close() { $('admin').hidden = true; }

  async show(tab, arg) {
    this.tab = tab;
    for (const b of document.querySelectorAll('.admin-tabs button')) b.setAttribute('aria-selected', String(b.dataset.tab === tab));
    showError($('admin-error'), null);
    try {
      await this[tab](arg);
    } catch (e) {
      showError($('admin-error'), e);
    }
  }

  body(...children) { $('admin-body').replaceChildren(...children); }

  action(fn) {
    return async () => {
      showError($('admin-error'), null);
      try { await fn(); } catch (e) { showError($('admin-error'), e); }
    };
  }

  // ---------------------------------------------------------------- users

  async users(q = this.query || '') {
    this.query = q;
    const page = await api.get(`/admin/users?limit=100&q=${encodeURIComponent(q)}`);
    const search = h('input', { type: 'search', id: 'admin-search', value: q, placeholder: 'email or name' });
    const form = h('form.row', { onsubmit: (e) => { e.preventDefault(); this.show('users', search.value); } },
      h('label', {}, 'Search users', search), h('button', { type: 'submit', text: 'Search' }));
    const rows = page.users.map((u) => {
      const role = this.isAdmin
        ? h('select', { 'aria-label': `Role of ${u.email}`, onchange: (e) => this.action(async () => { await api.patch(`/admin/users/${u.id}`, { role: e.target.value }); toast(`${u.email} is now ${e.target.value}.`, 2500); })() },
          ...['user', 'support', 'admin', 'bot'].map((r) => h('option', { value: r, text: r, selected: r === u.role })))
        : h('span', { text: u.role });
      const actions = this.isAdmin ? [
        h('button.block', { type: 'button', text: u.blocked ? 'Unblock' : 'Block', onclick: this.action(async () => {
          await api.patch(`/admin/users/${u.id}`, { blocked: !u.blocked });
          await this.users();
        }) }),
        h('button', { type: 'button', text: 'Reset quota', onclick: this.action(async () => {
          await api.post(`/admin/users/${u.id}/quota/reset`);
          toast(`Today's allowance of ${u.email} is reset.`, 2500);
        }) }),
      ] : [];
      return h('tr', { dataset: { userId: u.id, email: u.email } },
        h('td', { text: u.email }), h('td', { text: u.name }), h('td', {}, role),
        h('td', { text: u.blocked ? 'blocked' : 'active', class: u.blocked ? 'bad' : '' }), h('td', {}, ...actions));
    });
    this.body(form, h('p.sub', { text: page.total === 1 ? '1 user' : `${page.total} users` }),
      h('table', {}, h('thead', {}, h('tr', {}, ...['Email', 'Name', 'Role', 'State', ''].map((t) => h('th', { text: t })))), h('tbody', {}, ...rows)));
  }

  // ---------------------------------------------------------------- usage

  async usage() {
    const r = await api.get('/admin/usage?days=7');
    const row = (u) => h('tr', {}, h('td', { text: u.email || u.user_id || '' }), h('td', { text: u.model || '' }),
      h('td', { text: String(u.requests) }), h('td', { text: String(u.prompt_tokens) }), h('td', { text: String(u.completion_tokens) }));
    this.body(h('p', { text: `Last ${r.days} days: ${r.total.requests} answers, ${r.total.prompt_tokens + r.total.completion_tokens} tokens.` }),
      h('table', {}, h('thead', {}, h('tr', {}, ...['User', 'Model', 'Answers', 'Prompt tokens', 'Completion tokens'].map((t) => h('th', { text: t })))),
        h('tbody', {}, ...(r.usage || []).map(row))));
  }

  // ---------------------------------------------------------------- status

  async status() {
    const s = await api.get('/admin/status');
    const health = (x) => h('span', { class: x.ok ? 'ok' : 'bad', text: x.ok ? `ok (${x.latency_ms.toFixed(1)} ms)` : `down: ${x.error || ''}` });
    const pairs = [
      ['Version', s.version], ['Up since', `${when(s.started_at)} (${Math.round(s.uptime_seconds / 60)} min)`],
      ['Open sockets (this instance)', s.connections], ['Answers streaming (this instance)', s.active_generations],
      ['Database', health(s.database)], ['Broker', health(s.broker)],
      ['Assistant', s.ai.configured ? `${s.ai.models} models` : 'not configured'],
      ['Users', `${s.users.total} (${s.users.blocked} blocked, ${s.users.admins} admins, ${s.users.support} support, ${s.users.bots} bots)`],
      ['Open moderation flags', s.open_flags], ['Goroutines', s.goroutines],
    ];
    this.body(h('dl', {}, ...pairs.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', {}, v instanceof Node ? v : String(v))])),
      h('button', { type: 'button', text: 'Refresh', onclick: () => this.show('status') }));
  }

  // ---------------------------------------------------------------- moderation

  async flags() {
    const r = await api.get('/admin/flags?status=open&limit=100');
    const rows = r.flags.map((f) => h('tr', { dataset: { flagId: f.id } },
      h('td', { text: when(f.created_at) }), h('td', { text: f.user_email || '' }), h('td', { text: `${f.stage} · ${f.source}` }),
      h('td', { text: f.matched }),
      h('td', {}, h('button', { type: 'button', text: 'Reviewed', onclick: this.action(async () => { await api.post(`/admin/flags/${f.id}/review`); await this.flags(); }) }))));
    this.body(rows.length
      ? h('table', {}, h('thead', {}, h('tr', {}, ...['When', 'User', 'Where', 'Matched', ''].map((t) => h('th', { text: t })))), h('tbody', {}, ...rows))
      : h('p.empty', { text: 'Nothing waits for review.' }));
  }

  // ---------------------------------------------------------------- audit

  async audit() {
    const r = await api.get('/admin/audit?limit=100');
    const rows = r.entries.map((e) => h('tr', {}, h('td', { text: when(e.created_at) }), h('td', { text: e.actor_email }),
      h('td', { text: e.action }), h('td', { text: `${e.target_type} ${e.target_id}` }), h('td', { text: e.details ? JSON.stringify(e.details) : '' })));
    this.body(h('table', {}, h('thead', {}, h('tr', {}, ...['When', 'Who', 'What', 'Target', 'Details'].map((t) => h('th', { text: t })))), h('tbody', {}, ...rows)));
  }

  // ---------------------------------------------------------------- bots

  async bots() {
    const page = await api.get('/admin/users?role=bot&limit=100');
    const email = h('input', { type: 'email', placeholder: 'bot@example.com' });
    const name = h('input', { placeholder: 'Deploy bot' });
    const create = h('form.row', { onsubmit: (e) => { e.preventDefault(); this.action(async () => { await api.post('/admin/bots', { email: email.value.trim(), name: name.value.trim() }); await this.bots(); })(); } },
      h('label', {}, 'New bot email', email), h('label', {}, 'Name', name), h('button', { type: 'submit', text: 'Create bot' }));
    const sections = [];
    for (const bot of page.users) {
      const { api_keys: keys } = await api.get(`/admin/bots/${bot.id}/keys`);
      const keyName = h('input', { placeholder: 'ci' });
      const chats = h('input', { placeholder: 'chat ids, comma separated' });
      const shown = h('div');
      const issue = h('form.row', { onsubmit: (e) => { e.preventDefault(); this.action(async () => {
        const r = await api.post(`/admin/bots/${bot.id}/keys`, { name: keyName.value.trim(), chats: chats.value.split(/[\s,]+/).filter(Boolean) });
        await this.bots();
        $('admin-body').prepend(h('div', {}, h('p', { text: `The key for ${bot.email} (shown once; copy it now):` }), h('p.key', { text: r.key })));
      })(); } }, h('label', {}, 'Key name', keyName), h('label', {}, 'Chats it may use', chats), h('button', { type: 'submit', text: 'Issue key' }));
      const rows = keys.map((k) => h('tr', {}, h('td', { text: k.name }), h('td', { text: k.prefix + '…' }), h('td', { text: (k.chats || []).length + ' chats' }),
        h('td', { text: k.revoked_at ? 'revoked' : k.last_used_at ? `used ${when(k.last_used_at)}` : 'unused' }),
        h('td', {}, k.revoked_at ? null : h('button', { type: 'button', text: 'Revoke', onclick: this.action(async () => { await api.del(`/admin/keys/${k.id}`); await this.bots(); }) }))));
      sections.push(h('h4', { text: `${bot.name || bot.email} (${bot.email})` }), issue, shown,
        rows.length ? h('table', {}, h('tbody', {}, ...rows)) : h('p.empty', { text: 'No keys.' }));
    }
    this.body(create, ...sections);
  }
}
