// REST calls and the session (access and refresh tokens in IndexedDB, with
// a copy in localStorage for a fast start and for the storage event that
// tells other tabs about a sign-out). Refreshing is serialized across tabs
// with the Web Locks API: the server treats a refresh token used twice as
// stolen, so two tabs must never refresh with the same one. Inside the lock
// the session is read from IndexedDB, not localStorage: a localStorage
// write reaches other tabs' processes some time later, so a tab could take
// the lock right after another refreshed and still see the old token.
// IndexedDB transactions are consistent across tabs.

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
  return idbPut(s);
}

let dbPromise = null;
function db() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const r = indexedDB.open('aichat', 1);
      r.onupgradeneeded = () => r.result.createObjectStore('kv');
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  }
  return dbPromise;
}

async function idbPut(s) {
  try {
    const d = await db();
    await new Promise((resolve, reject) => {
      const tx = d.transaction('kv', 'readwrite');
      if (s) tx.objectStore('kv').put(s, KEY); else tx.objectStore('kv').delete(KEY);
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
    });
  } catch { /* no IndexedDB (some private modes): localStorage alone */ }
}

// latest reads the session as the last tab to refresh left it.
async function latest() {
  try {
    const d = await db();
    return await new Promise((resolve, reject) => {
      const q = d.transaction('kv', 'readonly').objectStore('kv').get(KEY);
      q.onsuccess = () => resolve(q.result || load()); // empty: a session from before IndexedDB held it
      q.onerror = () => reject(q.error);
    });
  } catch {
    return load();
  }
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
  return { access: t.access_token, refresh: t.refresh_token, exp: Date.now() + t.expires_in * 1000, ttl: t.expires_in * 1000, user: t.user || user };
}

// fresh: the token has more than a third of its life, or 20 s, left.
function fresh(s) { return s.exp - Date.now() > Math.min(20000, (s.ttl || 900000) / 3); }

export async function login(email, password) {
  const t = await call('POST', '/auth/login', { email, password }, false);
  await store(fromTokens(t));
  return t.user;
}

export async function register(name, email, password) {
  const t = await call('POST', '/auth/register', { name, email, password }, false);
  await store(fromTokens(t));
  return t.user;
}

export async function logout() {
  const s = session;
  await store(null);
  if (s && s.refresh) {
    try { await call('POST', '/auth/logout', { refresh_token: s.refresh }, false); } catch { /* signed out locally anyway */ }
  }
}

// token returns a valid access token, refreshing it when it is about to
// expire (or when force is set, after the server said it expired).
export async function token(force = false) {
  if (!session) throw new ApiError(401, { code: 'auth.required', message: 'Sign in first.' });
  if (!force && fresh(session)) return session.access;
  const stale = session.access;
  const run = async () => {
    const cur = await latest(); // another tab may have refreshed while we waited
    if (!cur) { signedOut('Your session has ended; sign in again.'); throw new ApiError(401, { code: 'auth.required', message: 'Sign in again.' }); }
    if (cur.access !== stale && fresh(cur)) { session = cur; return cur.access; }
    try {
      const t = await call('POST', '/auth/refresh', { refresh_token: cur.refresh }, false);
      await store(fromTokens(t, cur.user));
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
  put: (p, b = {}) => call('PUT', p, b),
  del: (p) => call('DELETE', p),
};
