// Small DOM helpers. Text always goes in through textContent; the only
// innerHTML in the app is the server's sanitized rendering of answers.

export const $ = (id) => document.getElementById(id);

// h('li.msg.mine', {dataset: {seq: 3}}, child, 'text') builds an element.
export function h(tag, props = {}, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function toast(message, ms = 5000) {
  const t = h('div.toast', { text: message });
  $('toasts').append(t);
  setTimeout(() => t.remove(), ms);
  return t;
}

export function showError(el, err) {
  el.textContent = err ? (err.message || String(err)) : '';
  el.hidden = !err;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
export function when(iso) {
  const d = new Date(iso);
  return (Date.now() - d.getTime() < 20 * 3600 * 1000 ? timeFmt : dayFmt).format(d);
}

export function newClientId() {
  return 'c-' + (crypto.randomUUID ? crypto.randomUUID() : Math.random().toString(36).slice(2) + Date.now().toString(36));
}
