// REST calls and the session (access token in memory and localStorage,
// refresh token in localStorage). Refreshing is serialized across tabs with
// the Web Locks API: the server treats a refresh token used twice as
// stolen, so two tabs must never refresh with the same one.

const KEY = 'aichat.session';
const listeners = new Set();
let session = load();

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `Request failed (${status}).`);
    this.status = status;
    this.code = (body && body.code) || 'http.' + status;
    this.field = body && body.field;
    this.retryAfter = body && body.retry_after;
  }
}

function load() {
  try { return JSON.parse(localStorage.getItem(KEY)) || null; } catch { return null; }
}

function store(s) {
  session = s;
  if (s) localStorage.setItem(KEY, JSON.stringify(s)); else localStorage.removeItem(KEY);
}

// onSignedOut(fn): fn(message) runs when the session ends (here or in
// another tab).
export function onSignedOut(fn) { listeners.add(fn); }
function signedOut(message) {
  store(null);
  for (const fn of listeners) fn(message);
}

window.addEventListener('storage', (e) => {
  if (e.key !== KEY) return;
  const next = load();
  if (!next && session) { session = null; for (const fn of listeners) fn('You signed out in another tab.'); }
  else session = next;
});

export function currentUser() { return session && session.user; }
export function signedIn() { return !!(session && session.refresh); }

function fromTokens(t, user) {
  return { access: t.access_token, refresh: t.refresh_token, exp: Date.now() + t.expires_in * 1000, user: t.user || user };
}

export async function login(email, password) {
  const t = await call('POST', '/auth/login', { email, password }, false);
  store(fromTokens(t));
  return t.user;
}

export async function register(name, email, password) {
  const t = await call('POST', '/auth/register', { name, email, password }, false);
  store(fromTokens(t));
  return t.user;
}

export async function logout() {
  const s = session;
  store(null);
  if (s && s.refresh) {
    try { await call('POST', '/auth/logout', { refresh_token: s.refresh }, false); } catch { /* signed out locally anyway */ }
  }
}

// token returns a valid access token, refreshing it when it is about to
// expire (or when force is set, after the server said it expired).
export async function token(force = false) {
  if (!session) throw new ApiError(401, { code: 'auth.required', message: 'Sign in first.' });
  if (!force && session.exp - Date.now() > 20000) return session.access;
  const stale = session.access;
  const run = async () => {
    const cur = load(); // another tab may have refreshed while we waited
    if (!cur) { signedOut('Your session has ended; sign in again.'); throw new ApiError(401, { code: 'auth.required', message: 'Sign in again.' }); }
    if (cur.access !== stale && cur.exp - Date.now() > 20000) { session = cur; return cur.access; }
    try {
      const t = await call('POST', '/auth/refresh', { refresh_token: cur.refresh }, false);
      store(fromTokens(t, cur.user));
      return session.access;
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        signedOut(e.status === 403 ? e.message : 'Your session has ended; sign in again.');
      }
      throw e;
    }
  };
  if (navigator.locks) return navigator.locks.request('aichat.refresh', run);
  return run();
}

async function call(method, path, body, auth = true, retried = false) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth) headers.Authorization = 'Bearer ' + await token();
  let res;
  try {
    res = await fetch('/api/v1' + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { code: 'network.offline', message: 'The server cannot be reached.' });
  }
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch { /* empty or not JSON */ }
  if (res.ok) return data;
  if (auth && res.status === 401 && !retried && data && data.code === 'auth.tokenExpired') {
    await token(true);
    return call(method, path, body, auth, true);
  }
  if (auth && res.status === 401) signedOut('Your session has ended; sign in again.');
  throw new ApiError(res.status, data);
}

export const api = {
  get: (p) => call('GET', p),
  post: (p, b = {}) => call('POST', p, b),
  patch: (p, b) => call('PATCH', p, b),
  del: (p) => call('DELETE', p),
};
