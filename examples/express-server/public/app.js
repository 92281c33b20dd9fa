/* global localStorage, FormData, CSS */
// The example server's web page: vanilla JS, no build step, no external network.
// It talks to the REST API with the key kept in localStorage, and follows live state over SSE.

const API = '/api/v1';
const KEY_STORAGE = 'multisession.apiKey';

const $ = (id) => document.getElementById(id);
const state = {
  key: localStorage.getItem(KEY_STORAGE) || '',
  sessions: new Map(),
  /** Session id → its row in the list, and the ids in list order. */
  rows: new Map(),
  order: [],
  /** List loads started; while one runs, what events changed meanwhile (id → snapshot, or null: deleted). */
  loads: 0,
  touched: null,
  adapters: [],
  selected: null,
  events: null,
  qrFor: null,
  refreshTimers: new Map(),
  /** Session id → the newest messages seen on the event stream (both directions). */
  messages: new Map(),
  /** The selected session's messages per minute: { id, buckets: [{ at, in, out }] } (the server's last hour, then live). */
  traffic: null,
  /** The cluster nodes (GET /nodes; admin keys only: null when the key may not read them). */
  nodes: null,
  nodesTimer: null,
  /** Webhook endpoints (GET /webhooks; admin keys only: null when the key may not read them), and the one whose log is open. */
  webhooks: null,
  webhookOpen: null,
  /** Work units (admin keys only: null when the key may not read them): workers and a page of units. */
  units: null,
  unitsTimer: null,
};

// ---------- HTTP ----------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(method, path, body) {
  const res = await fetch(API + path, {
    method,
    headers: {
      Authorization: `Bearer ${state.key}`,
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    if (res.status === 401) askForKey('That key was refused; paste a valid one.');
    throw new ApiError(res.status, data);
  }
  return data;
}

function problemText(err) {
  if (!(err instanceof ApiError)) return String(err?.message ?? err);
  const p = err.problem || {};
  const lines = [p.detail || err.message];
  if (Array.isArray(p.errors) && p.errors.length) {
    lines.length = 0;
    lines.push(`${p.title || 'Invalid input'}:`);
    for (const e of p.errors) lines.push(`• ${e.path.replace(/^body\./, '')}: ${e.message}`);
  }
  return lines.join('\n');
}

// ---------- small DOM helpers ----------

/**
 * Bidirectional control characters (embeddings, overrides, isolates, marks) in text users wrote
 * would reorder what the page shows ("😀\u202Eevil" reads "😀live"): each becomes a visible
 * U+FFFD, so text reads in the order it was written.
 */
const BIDI_CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
function clean(text) {
  return String(text).replace(BIDI_CONTROLS, '\uFFFD');
}

function setText(node, text) {
  node.textContent = clean(text);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') setText(node, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : clean(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(typeof c === 'string' ? clean(c) : c);
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function show(node, visible) {
  node.classList.toggle('hidden', !visible);
}

function toast(text) {
  const t = $('toast');
  setText(t, text);
  show(t, true);
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => show(t, false), 3000);
}

function timeOf(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// ---------- API key ----------

function askForKey(message) {
  $('key-error').textContent = message || '';
  show($('key-error'), Boolean(message));
  show($('key-dialog'), true);
  $('key-input').value = '';
  $('key-input').focus();
}

$('key-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const key = $('key-input').value.trim();
  const res = await fetch(`${API}/adapters`, { headers: { Authorization: `Bearer ${key}` } });
  if (!res.ok) {
    const p = await res.json().catch(() => ({}));
    setText($('key-error'), p.detail || `The server answered ${res.status}.`);
    show($('key-error'), true);
    return;
  }
  state.key = key;
  localStorage.setItem(KEY_STORAGE, key);
  show($('key-dialog'), false);
  await boot();
});

$('change-key').addEventListener('click', () => askForKey());

// ---------- create form, driven by the adapters' JSON Schemas ----------

function schemaFields(container, schema, prefix) {
  for (const old of container.querySelectorAll('.field')) old.remove();
  const props = schema?.properties || {};
  const required = new Set(schema?.required || []);
  const names = Object.keys(props);
  show(container, names.length > 0);
  for (const name of names) {
    const p = props[name] || {};
    const type = fieldType(p);
    const secret = prefix === 'credentials' || /pass|secret|token|key/i.test(name);
    const title = p.title || name;
    const desc = p.description ? el('span', { class: 'field-desc', text: ` ${p.description}` }) : null;
    let input;
    if (Array.isArray(p.enum)) {
      input = el('select', { name: `${prefix}.${name}`, 'data-type': 'enum' },
        (required.has(name) ? [] : [el('option', { value: '', text: '(default)' })]),
        p.enum.map((v) => el('option', { value: JSON.stringify(v), text: String(v), selected: p.default === v })));
    } else if (type === 'boolean') {
      input = el('input', { type: 'checkbox', name: `${prefix}.${name}`, 'data-type': 'boolean', checked: p.default === true });
      container.append(el('label', { class: 'check field' }, input, ` ${title}`, desc));
      continue;
    } else {
      const numeric = type === 'integer' || type === 'number';
      // Lists of strings are typed comma-separated; objects as JSON.
      const kind = numeric ? type : type === 'array' ? 'list' : type === 'object' ? 'json' : 'string';
      const hint = kind === 'list' ? 'comma-separated, ' : kind === 'json' ? 'JSON, ' : '';
      input = el('input', {
        name: `${prefix}.${name}`,
        'data-type': kind,
        type: numeric ? 'number' : secret ? 'password' : 'text',
        step: type === 'integer' ? '1' : numeric ? 'any' : undefined,
        min: p.minimum ?? p.exclusiveMinimum,
        max: p.maximum,
        required: required.has(name) && p.default === undefined,
        placeholder: hint + (p.default !== undefined ? `default: ${p.default}` : required.has(name) ? 'required' : 'optional'),
      });
    }
    container.append(el('label', { class: 'field' }, title, desc, input));
  }
}

/** A JSON Schema property's input type: its own, or a string when any of its `anyOf` allows one, else the first that is not null. */
function fieldType(p) {
  const types = Array.isArray(p.type) ? p.type : p.type ? [p.type] : (p.anyOf || []).map((a) => a.type);
  const real = types.filter((t) => t && t !== 'null');
  return real.includes('string') ? 'string' : real[0];
}

function renderAdapterForm() {
  const name = $('platform-select').value;
  const adapter = state.adapters.find((a) => a.name === name);
  setText($('adapter-description'), adapter?.description || '');
  schemaFields($('credentials-fields'), adapter?.credentialsSchema, 'credentials');
  schemaFields($('config-fields'), adapter?.configSchema, 'config');
}

/** JSON text as a value; text that is not JSON as it is (the server then names the field). */
function parseOr(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function readFields(form, prefix) {
  const out = {};
  for (const input of form.querySelectorAll(`[name^="${prefix}."]`)) {
    const key = input.name.slice(prefix.length + 1);
    const kind = input.dataset.type;
    if (kind === 'boolean') out[key] = input.checked;
    else if (input.value === '') continue;
    else if (kind === 'integer' || kind === 'number') out[key] = Number(input.value);
    else if (kind === 'enum') out[key] = JSON.parse(input.value);
    else if (kind === 'list') out[key] = input.value.split(',').map((v) => v.trim()).filter(Boolean);
    else if (kind === 'json') out[key] = parseOr(input.value);
    else out[key] = input.value;
  }
  return out;
}

$('platform-select').addEventListener('change', renderAdapterForm);
$('toggle-create').addEventListener('click', () => {
  const form = $('create-form');
  show(form, form.classList.contains('hidden'));
  if (!form.classList.contains('hidden')) form.elements.id.focus();
});
$('cancel-create').addEventListener('click', () => show($('create-form'), false));

$('create-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  const data = new FormData(form);
  const labels = {};
  for (const part of String(data.get('labels') || '').split(',')) {
    const [k, ...rest] = part.split('=');
    if (k && k.trim()) labels[k.trim()] = rest.join('=').trim();
  }
  const adapter = state.adapters.find((a) => a.name === data.get('platform'));
  const body = {
    id: String(data.get('id')).trim(),
    platform: String(data.get('platform')),
    labels,
  };
  if (adapter?.credentialsSchema?.properties && Object.keys(adapter.credentialsSchema.properties).length) {
    body.credentials = readFields(form, 'credentials');
  }
  body.config = readFields(form, 'config');
  show($('create-error'), false);
  clearFieldErrors(form);
  const submit = form.querySelector('[type=submit]');
  submit.disabled = true;
  try {
    const snap = await api('POST', '/sessions', body);
    upsert(snap);
    select(snap.id);
    form.reset();
    renderAdapterForm();
    show(form, false);
    toast(`Session ${snap.id} created`);
    if (data.get('start')) await control(snap.id, 'start');
  } catch (err) {
    setText($('create-error'), problemText(err));
    show($('create-error'), true);
    markFieldErrors(form, err?.problem?.errors);
  } finally {
    submit.disabled = false;
  }
});

/** The form control a problem's field path points at (`body.credentials.token` → `credentials.token`). */
function controlFor(form, path) {
  const parts = String(path).replace(/^body\.?/, '').split('.');
  const [head, sub] = parts;
  if ((head === 'credentials' || head === 'config') && sub !== undefined) {
    return form.querySelector(`[name="${CSS.escape(`${head}.${sub}`)}"]`) || $(`${head}-fields`);
  }
  if (head === 'credentials' || head === 'config') return $(`${head}-fields`);
  return form.querySelector(`[name="${CSS.escape(head)}"]`);
}

/** Marks each field the server refused, with its message beside it. */
function markFieldErrors(form, errors) {
  if (!Array.isArray(errors)) return;
  for (const e of errors) {
    const control = controlFor(form, e.path);
    if (!control) continue;
    control.setAttribute('aria-invalid', 'true');
    const name = control.getAttribute('name') || control.id;
    const where = String(e.path).replace(/^body\.?/, '');
    // Say which part of the field is wrong when the field holds several (a label's key).
    const part = where.startsWith(`${name}.`) ? where.slice(name.length + 1) : where === name ? '' : where;
    const note = el('span', { class: 'field-error', 'data-testid': `field-error-${name}`, text: part ? `${part}: ${e.message}` : e.message });
    (control.closest('label') || control).append(note);
  }
  form.querySelector('[aria-invalid="true"]')?.focus();
}

function clearFieldErrors(form) {
  for (const note of form.querySelectorAll('.field-error')) note.remove();
  for (const control of form.querySelectorAll('[aria-invalid]')) control.removeAttribute('aria-invalid');
}

$('create-form').addEventListener('input', (ev) => {
  const label = ev.target.closest('label');
  ev.target.removeAttribute('aria-invalid');
  for (const note of label?.querySelectorAll('.field-error') ?? []) note.remove();
});

// ---------- session list ----------
// One row per session, kept by id: an event re-renders only its session's row, so a list of
// thousands stays quick while sessions change state live.

function upsert(snap) {
  state.sessions.set(snap.id, snap);
  state.touched?.set(snap.id, snap);
  const row = rowFor(snap);
  const old = state.rows.get(snap.id);
  if (old) old.replaceWith(row);
  else {
    // Keep the server's order (ids by code unit): insert before the next id.
    const i = insertAt(state.order, snap.id);
    state.order.splice(i, 0, snap.id);
    const next = state.order[i + 1];
    $('sessions').insertBefore(row, next === undefined ? null : state.rows.get(next));
  }
  state.rows.set(snap.id, row);
  updateCount();
  if (state.selected === snap.id) renderDetail();
}

/** Where `id` goes in the sorted `ids`. */
function insertAt(ids, id) {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function matchesFilter(s, q) {
  if (!q) return true;
  const hay = [s.id, s.platform, s.state, s.health, ...Object.entries(s.labels || {}).map(([k, v]) => `${k}=${v}`)].join(' ').toLowerCase();
  return q.toLowerCase().split(/\s+/).every((w) => hay.includes(w));
}

function rowFor(s) {
  const row = el('li', {
    class: `session${s.id === state.selected ? ' selected' : ''}`,
    'data-id': s.id,
    'data-testid': `session-${s.id}`,
    onclick: () => select(s.id),
  },
  el('span', { class: 'sid user-text', text: s.id }),
  el('span', { class: `pill s-${s.state}`, 'data-testid': 'row-state', text: s.state }),
  el('span', { class: 'sub-line' },
    el('span', { text: s.platform }),
    el('span', { text: `health: ${s.health}` }),
    el('span', { text: `wants ${s.desiredState}` }),
    el('span', { text: `priority ${s.priority}` }),
    s.owner ? el('span', { class: 'user-text', 'data-testid': 'row-owner', text: `node ${s.owner.nodeId}` }) : null,
    s.capacity === null || s.capacity === undefined ? null : el('span', { text: `capacity ${s.capacity}` }),
    ...Object.entries(s.labels || {}).map(([k, v]) => el('span', { class: 'user-text', text: `${k}=${v}` }))));
  show(row, matchesFilter(s, $('filter').value.trim()));
  return row;
}

function updateCount() {
  const n = state.sessions.size;
  $('count').textContent = n ? `(${n})` : '';
  show($('empty'), n === 0);
}

/** Builds every row anew (after loading the list). */
function renderList() {
  state.order = [...state.sessions.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  state.rows = new Map(state.order.map((id) => [id, rowFor(state.sessions.get(id))]));
  $('sessions').replaceChildren(...state.rows.values());
  updateCount();
}

$('filter').addEventListener('input', () => {
  const q = $('filter').value.trim();
  for (const [id, row] of state.rows) show(row, matchesFilter(state.sessions.get(id), q));
});

// ---------- detail panel ----------

function select(id) {
  if (state.selected !== id) show($('send-result'), false);
  state.rows.get(state.selected)?.classList.remove('selected');
  state.selected = id;
  state.rows.get(id)?.classList.add('selected');
  renderDetail();
  refreshExtras(id);
}

function renderDetail() {
  const s = state.sessions.get(state.selected);
  show($('detail-empty'), !s);
  show($('detail'), Boolean(s));
  if (!s) return;
  setText($('d-id'), s.id);
  setText($('d-platform'), s.platform);
  $('d-labels').replaceChildren(...Object.entries(s.labels || {}).map(([k, v]) => el('span', { class: 'label-tag user-text', text: `${k}=${v}` })));
  const props = [
    ['priority', String(s.priority)],
    ['capacity', s.capacity === null || s.capacity === undefined ? 'unlimited' : String(s.capacity)],
    ['metadata', s.metadata === null || s.metadata === undefined ? '—' : JSON.stringify(s.metadata, null, 1)],
  ];
  $('d-props').replaceChildren(...props.map(([k, v]) => el('div', { 'data-prop': k }, el('dt', { text: k }), el('dd', { class: k === 'metadata' ? 'user-text json' : '', text: v }))));
  const info = [`wants ${s.desiredState}`, `created ${new Date(s.createdAt).toLocaleString()}`];
  if (s.lastActivityAt) info.push(`last activity ${timeOf(s.lastActivityAt)}`);
  info.push(s.owner ? `runs on node ${s.owner.nodeId} since ${timeOf(s.owner.since)}` : 'no node runs it');
  info.push(s.hasCredentials ? 'credentials encrypted at rest' : 'no credentials');
  setText($('d-info'), info.join(' · '));
  show($('send-form'), ['ready', 'degraded'].includes(s.state));
  setText($('d-state'), s.state);
  $('d-state').className = `pill s-${s.state}`;
  setText($('d-health'), s.health);
  $('d-health').className = `pill health h-${s.health}`;

  const running = ['starting', 'authenticating', 'ready', 'degraded', 'backoff'].includes(s.state);
  const act = (name) => document.querySelector(`[data-action="${name}"]`);
  act('start').disabled = running || s.state === 'stopping';
  act('stop').disabled = !running && !['failed', 'expired'].includes(s.state);
  act('restart').disabled = s.state === 'stopping';

  if (s.lastError) {
    setText($('d-error'), `Last error (${timeOf(s.lastError.at)}): ${s.lastError.code}: ${s.lastError.message}`);
    show($('d-error'), true);
  } else show($('d-error'), false);

  $('transitions').replaceChildren(
    ...[...(s.transitions || [])].reverse().slice(0, 12).map((t) =>
      el('li', {}, el('time', { text: timeOf(t.at) }), el('span', { class: 'move', text: `${t.from} → ${t.to}` }), el('span', { class: 'muted why', title: t.reason || '', text: t.reason || '' }))),
  );
  renderAuth(s);
  renderMessages(s.id);
  renderTimeline(s);
  renderTraffic();
}

function renderMessages(id) {
  const list = state.messages.get(id) || [];
  show($('messages-box'), list.length > 0);
  $('messages').replaceChildren(
    ...[...list].reverse().map((m) =>
      el('li', { class: m.direction },
        el('span', { class: 'dir', text: m.direction }),
        el('span', { class: 'body', text: JSON.stringify(m.message) }),
        el('time', { text: timeOf(m.at) }))),
  );
}

// ---------- pictures: messages per minute, states over time ----------

const MINUTE = 60_000;

/** Counts a live message into the selected session's chart (the server's buckets came first). */
function countTraffic(e) {
  const t = state.traffic;
  if (!t || t.id !== e.id) return;
  const at = Math.floor(e.at / MINUTE) * MINUTE;
  let bucket = t.buckets.find((b) => b.at === at);
  if (!bucket) {
    bucket = { at, in: 0, out: 0 };
    t.buckets.push(bucket);
    t.buckets = t.buckets.filter((b) => b.at > at - 60 * MINUTE);
  }
  bucket[e.direction === 'in' ? 'in' : 'out'] += 1;
  renderTraffic();
}

/** Bars of messages in and out for each of the last 60 minutes (inline SVG, scaled to the busiest minute). */
function renderTraffic() {
  const box = $('traffic');
  const t = state.traffic;
  if (!t || t.id !== state.selected) {
    box.replaceChildren();
    setText($('traffic-summary'), '');
    return;
  }
  const end = Math.floor(Date.now() / MINUTE) * MINUTE;
  const byMinute = new Map(t.buckets.map((b) => [b.at, b]));
  const minutes = Array.from({ length: 60 }, (_, i) => byMinute.get(end - (59 - i) * MINUTE) ?? { at: end - (59 - i) * MINUTE, in: 0, out: 0 });
  const max = Math.max(1, ...minutes.map((b) => Math.max(b.in, b.out)));
  const H = 100;
  const bars = minutes.map((b, i) => {
    const x = i * 10;
    const hIn = (b.in / max) * (H - 4);
    const hOut = (b.out / max) * (H - 4);
    return svg('g', { 'data-minute': b.at, 'data-in': b.in, 'data-out': b.out },
      svg('title', {}, `${timeOf(b.at).slice(0, 5)}: ${b.in} in, ${b.out} out`),
      svg('rect', { class: 'bar-hit', x, y: 0, width: 10, height: H }),
      b.in ? svg('rect', { class: 'bar bar-in', x: x + 1, y: H - hIn, width: 4, height: hIn }) : null,
      b.out ? svg('rect', { class: 'bar bar-out', x: x + 5, y: H - hOut, width: 4, height: hOut }) : null);
  });
  const grid = [0.5, 1].map((f) => svg('line', { class: 'grid', x1: 0, x2: 600, y1: H - f * (H - 4), y2: H - f * (H - 4) }));
  box.replaceChildren(svg('svg', { viewBox: `0 0 600 ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'Messages in and out per minute, the last hour' },
    ...grid, svg('line', { class: 'base', x1: 0, x2: 600, y1: H, y2: H }), ...bars));
  const totalIn = minutes.reduce((a, b) => a + b.in, 0);
  const totalOut = minutes.reduce((a, b) => a + b.out, 0);
  setText($('traffic-summary'), `${totalIn} in · ${totalOut} out`);
}

/** The session's states as coloured bands from its oldest kept transition to now. */
function renderTimeline(s) {
  const box = $('timeline');
  const transitions = [...(s.transitions || [])].sort((a, b) => a.at - b.at);
  const now = Math.max(Date.now(), ...transitions.map((t) => t.at));
  const spans = [];
  if (transitions.length === 0) spans.push({ state: s.state, from: s.createdAt, to: now });
  transitions.forEach((t, i) => spans.push({ state: t.to, from: t.at, to: transitions[i + 1]?.at ?? now, reason: t.reason }));
  const start = spans[0].from;
  const span = Math.max(1, now - start);
  const W = 600;
  const xOf = (at) => ((at - start) / span) * W;
  const bands = spans.map((p) => {
    const x = xOf(p.from);
    const w = Math.max(2, xOf(p.to) - x);
    return svg('g', { 'data-state': p.state, 'data-from': p.from },
      svg('title', {}, clean(`${p.state} from ${timeOf(p.from)}${p.reason ? ` (${p.reason})` : ''}`)),
      svg('rect', { class: `seg st-${p.state}`, x, y: 0, width: w, height: 24 }));
  });
  box.replaceChildren(svg('svg', { viewBox: `0 0 ${W} 24`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `States of ${clean(s.id)} over time` }, ...bands));
  setText($('timeline-start'), timeOf(start));
  const seen = [...new Set(spans.map((p) => p.state))];
  $('timeline-legend').replaceChildren(...seen.map((st) => el('span', { class: 'legend-item' }, el('span', { class: `key st-${st}` }), st)));
}

function renderAuth(s) {
  const authing = s.state === 'authenticating' && s.auth;
  show($('auth'), Boolean(authing));
  if (!authing) {
    state.qrFor = null;
    return;
  }
  const isQr = s.auth.kind === 'qr';
  show($('qr-box'), isQr);
  show($('code-form'), !isQr);
  if (isQr) {
    const payload = typeof s.auth.data === 'string' ? s.auth.data : '';
    show($('demo-scan'), s.platform === 'demo' && /^multisession-demo:/.test(payload));
    $('qr-expiry').textContent = s.auth.expiresAt ? ` (this one expires at ${timeOf(s.auth.expiresAt)})` : '';
    const stamp = `${s.id}|${payload}`;
    if (state.qrFor !== stamp) {
      state.qrFor = stamp;
      api('GET', `/sessions/${encodeURIComponent(s.id)}/qr`)
        .then((qr) => {
          if (state.qrFor === stamp) $('qr-img').src = qr.dataUrl;
        })
        .catch(() => {});
    }
  } else {
    const labels = { code: 'Code', password: 'Password', 'pairing-code': 'Pairing code' };
    $('code-label').textContent = labels[s.auth.kind] || 'Code';
    $('code-input').type = s.auth.kind === 'password' ? 'password' : 'text';
    const hint = s.auth.data && typeof s.auth.data === 'object' ? Object.values(s.auth.data).join(' · ') : s.auth.data;
    setText($('code-hint'), hint ? String(hint) : '');
  }
}

async function refreshExtras(id) {
  if (state.selected !== id) return;
  const level = $('log-level').value;
  try {
    const [stats, logs, traffic] = await Promise.all([
      api('GET', `/sessions/${encodeURIComponent(id)}/statistics`),
      api('GET', `/sessions/${encodeURIComponent(id)}/logs?limit=200${level ? `&level=${level}` : ''}`),
      api('GET', `/sessions/${encodeURIComponent(id)}/traffic`),
    ]);
    if (state.selected !== id) return;
    state.traffic = { id, buckets: traffic.buckets };
    renderTraffic();
    const counters = [
      ['starts', stats.starts], ['restarts', stats.restarts], ['failures', stats.failures],
      ['msgs in', stats.messagesIn], ['msgs out', stats.messagesOut], ['errors', stats.errors],
      ...Object.entries(stats.custom || {}),
    ];
    $('stats').replaceChildren(...counters.map(([k, v]) => el('div', {}, el('dt', { text: k }), el('dd', { text: String(v) }))));
    const pre = $('logs');
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 30;
    pre.replaceChildren(
      ...(logs.length ? logs : [{ at: Date.now(), level: 'debug', msg: '(no log lines yet)' }]).map((l) =>
        el('div', { class: `l-${l.level}` },
          el('span', { class: 'at', text: `${timeOf(l.at)} ` }),
          `${l.level.padEnd(5)} ${l.msg}${l.data && Object.keys(l.data).length ? ` ${JSON.stringify(l.data)}` : ''}`)),
    );
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  } catch {
    // The session may just have been deleted; the next event refreshes the view.
  }
}

$('log-level').addEventListener('change', () => state.selected && refreshExtras(state.selected));

async function control(id, action) {
  show($('action-error'), false);
  try {
    const snap = await api('POST', `/sessions/${encodeURIComponent(id)}/${action}`, {});
    upsert(snap);
  } catch (err) {
    setText($('action-error'), problemText(err));
    show($('action-error'), true);
  }
  refreshExtras(id);
}

for (const btn of document.querySelectorAll('[data-action]')) {
  btn.addEventListener('click', async () => {
    const id = state.selected;
    if (!id) return;
    const action = btn.dataset.action;
    if (action === 'delete') {
      const s = state.sessions.get(id);
      const running = s && !['stopped', 'failed', 'expired'].includes(s.state);
      const question = running
        ? `Session ${id} is ${s.state}. Stop and delete it, with its stored login and data?`
        : `Delete session ${id}, with its stored login and data?`;
      if (!window.confirm(question)) return;
      show($('action-error'), false);
      try {
        await api('DELETE', `/sessions/${encodeURIComponent(id)}${running ? '?force=true' : ''}`);
        removeSession(id);
        toast(`Session ${id} deleted`);
      } catch (err) {
        setText($('action-error'), problemText(err));
        show($('action-error'), true);
      }
      return;
    }
    btn.disabled = true;
    await control(id, action);
    renderDetail();
  });
}

function removeSession(id) {
  state.sessions.delete(id);
  state.touched?.set(id, null);
  state.messages.delete(id);
  state.rows.get(id)?.remove();
  state.rows.delete(id);
  const i = insertAt(state.order, id);
  if (state.order[i] === id) state.order.splice(i, 1);
  if (state.selected === id) state.selected = null;
  updateCount();
  renderDetail();
}

async function submitAuth(id, kind, value) {
  show($('action-error'), false);
  try {
    upsert(await api('POST', `/sessions/${encodeURIComponent(id)}/auth`, { kind, value }));
  } catch (err) {
    setText($('action-error'), problemText(err));
    show($('action-error'), true);
  }
}

$('simulate-scan').addEventListener('click', () => {
  const s = state.sessions.get(state.selected);
  const payload = typeof s?.auth?.data === 'string' ? s.auth.data : '';
  // Demo QR payload: multisession-demo:<session id>:<6-digit code>. A phone would read this code.
  const code = payload.split(':').pop();
  if (s && code) submitAuth(s.id, 'code', code);
});

$('code-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const s = state.sessions.get(state.selected);
  if (!s?.auth) return;
  submitAuth(s.id, s.auth.kind, $('code-input').value);
  $('code-input').value = '';
});

$('send-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = state.selected;
  const text = $('send-input').value.trim();
  if (!id || !text) return;
  let action;
  try {
    action = JSON.parse(text);
  } catch {
    action = { text };
  }
  const out = $('send-result');
  try {
    const res = await api('POST', `/sessions/${encodeURIComponent(id)}/messages`, action);
    setText(out, `→ ${JSON.stringify(res.result)}`);
    out.classList.remove('failed');
    $('send-input').value = '';
  } catch (err) {
    setText(out, problemText(err));
    out.classList.add('failed');
  }
  show(out, true);
  refreshExtras(id);
});

// ---------- live events ----------

function refreshSoon(id) {
  clearTimeout(state.refreshTimers.get(id));
  state.refreshTimers.set(id, setTimeout(async () => {
    state.refreshTimers.delete(id);
    try {
      upsert(await api('GET', `/sessions/${encodeURIComponent(id)}`));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) removeSession(id);
    }
    if (state.selected === id) refreshExtras(id);
  }, 120));
}

function connectEvents() {
  state.events?.close();
  const es = new EventSource(`${API}/events?key=${encodeURIComponent(state.key)}`);
  state.events = es;
  const live = $('live');
  es.addEventListener('open', () => {
    live.textContent = 'live';
    live.classList.replace('off', 'on');
  });
  es.addEventListener('error', () => {
    live.textContent = 'reconnecting';
    live.classList.replace('on', 'off');
    // No stream yet (a proxy that buffers it, say): show the list anyway, without live updates.
    if (state.loads === 0) loadSessions().catch(() => {});
  });
  es.addEventListener('hello', () => {
    loadSessions().catch(() => {});
    loadNodes();
    loadWebhooks();
    loadUnits();
  });
  es.addEventListener('units.moved', () => loadUnitsSoon());
  // The server ended the stream: the key was revoked (or the server is stopping; it reconnects).
  es.addEventListener('bye', (ev) => {
    const { reason } = JSON.parse(ev.data);
    if (/revoked/.test(reason)) {
      es.close();
      live.textContent = 'offline';
      live.classList.replace('on', 'off');
      askForKey('This API key was revoked; paste another one.');
    }
  });
  es.addEventListener('session.state', (ev) => {
    const e = JSON.parse(ev.data);
    const s = state.sessions.get(e.id);
    if (s) {
      // Show the new state at once; the full snapshot follows.
      upsert({ ...s, state: e.to, auth: e.to === 'authenticating' ? s.auth : null });
    }
    refreshSoon(e.id);
  });
  for (const name of ['session.created', 'session.updated']) {
    es.addEventListener(name, (ev) => upsert(JSON.parse(ev.data).session));
  }
  es.addEventListener('session.deleted', (ev) => removeSession(JSON.parse(ev.data).id));
  es.addEventListener('session.message', (ev) => {
    const e = JSON.parse(ev.data);
    const list = state.messages.get(e.id) || [];
    list.push({ direction: e.direction, message: e.message, at: e.at });
    state.messages.set(e.id, list.slice(-20));
    if (state.selected === e.id) {
      renderMessages(e.id);
      countTraffic(e);
    }
    refreshSoon(e.id);
  });
  for (const name of ['session.auth', 'session.ready', 'session.health', 'session.error']) {
    es.addEventListener(name, (ev) => refreshSoon(JSON.parse(ev.data).id));
  }
  // The node that runs a session changed (started, drained, failed over): show it at once.
  es.addEventListener('session.owner', (ev) => {
    const e = JSON.parse(ev.data);
    const s = state.sessions.get(e.id);
    if (s) upsert({ ...s, owner: e.to ? { nodeId: e.to, since: e.at } : null });
    refreshSoon(e.id);
    loadNodesSoon();
  });
}

// ---------- cluster nodes ----------

function renderNodes() {
  const nodes = state.nodes?.nodes;
  show($('nodes-card'), Boolean(nodes));
  if (!nodes) return;
  $('nodes-count').textContent = `(${nodes.length})`;
  $('nodes').replaceChildren(...nodes.map((n) => el('li', { class: 'node', 'data-testid': `node-${n.nodeId}` },
    el('span', { class: 'nid user-text', text: n.nodeId }),
    n.nodeId === state.nodes.self ? el('span', { class: 'self', text: '(this server)' }) : null,
    el('span', { class: `pill ${n.live ? 'n-live' : 'n-down'}`, 'data-testid': 'node-live', text: n.live ? 'live' : 'not seen' }),
    n.draining ? el('span', { class: 'pill n-draining', 'data-testid': 'node-draining', text: 'draining' }) : null,
    el('span', { class: 'muted', 'data-testid': 'node-running', text: `${n.running} running${n.maxRunning ? ` of at most ${n.maxRunning}` : ''}` }),
    el('span', { class: 'muted user-text', text: `${n.host} pid ${n.pid}` }))));
}

async function loadNodes() {
  try {
    state.nodes = await api('GET', '/nodes');
  } catch (err) {
    // A session-scoped key may not read the nodes: the card stays hidden.
    if (err instanceof ApiError && err.status === 403) state.nodes = null;
  }
  renderNodes();
}

function loadNodesSoon() {
  clearTimeout(state.nodesTimer);
  state.nodesTimer = setTimeout(() => loadNodes(), 300);
}

// ---------- webhooks ----------

function renderWebhooks() {
  const list = state.webhooks;
  show($('webhooks-card'), Boolean(list));
  if (!list) return;
  $('webhooks-count').textContent = `(${list.length})`;
  $('webhooks').replaceChildren(...list.map((w) => el('li', { class: 'webhook', 'data-testid': `webhook-${w.id}` },
    el('span', { class: 'wurl user-text', text: w.url }),
    el('span', { class: `pill ${w.enabled ? 'w-on' : 'w-off'}`, 'data-testid': 'webhook-enabled', text: w.enabled ? 'enabled' : `disabled${w.disabledReason ? ` (${w.disabledReason})` : ''}` }),
    el('span', { class: 'muted', text: w.events.join(', ') }),
    el('span', { class: 'wbtns' },
      el('button', { class: 'btn small', type: 'button', 'data-testid': 'webhook-test', onclick: () => webhookAction(w, 'test') }, 'Test'),
      el('button', { class: 'btn small', type: 'button', 'data-testid': 'webhook-log', onclick: () => openDeliveries(w.id) }, 'Deliveries'),
      el('button', { class: 'btn small', type: 'button', 'data-testid': 'webhook-toggle', onclick: () => webhookAction(w, 'toggle') }, w.enabled ? 'Disable' : 'Enable'),
      el('button', { class: 'btn small danger', type: 'button', 'data-testid': 'webhook-delete', onclick: () => webhookAction(w, 'delete') }, 'Delete')))));
}

async function loadWebhooks() {
  try {
    state.webhooks = await api('GET', '/webhooks');
  } catch (err) {
    // A session-scoped key may not read them (403), or the server has none (404): no panel.
    if (err instanceof ApiError && (err.status === 403 || err.status === 404)) state.webhooks = null;
  }
  renderWebhooks();
  if (state.webhookOpen && !state.webhooks?.some((w) => w.id === state.webhookOpen)) openDeliveries(null);
}

async function webhookAction(w, action) {
  const path = `/webhooks/${encodeURIComponent(w.id)}`;
  try {
    if (action === 'test') {
      const d = await api('POST', `${path}/test`);
      toast(d.status === 'succeeded' ? `Test delivered: HTTP ${d.responseStatus}` : `Test failed: ${d.lastError || d.status}`);
      if (state.webhookOpen === w.id) await openDeliveries(w.id);
    } else if (action === 'toggle') {
      await api('PATCH', path, { enabled: !w.enabled });
    } else if (action === 'delete') {
      if (!window.confirm(`Delete the endpoint ${w.url} and its delivery log?`)) return;
      await api('DELETE', path);
    }
  } catch (err) {
    toast(problemText(err));
  }
  await loadWebhooks();
}

async function openDeliveries(id) {
  state.webhookOpen = id;
  show($('deliveries-box'), Boolean(id));
  if (!id) return;
  const w = state.webhooks?.find((x) => x.id === id);
  setText($('deliveries-of'), w ? w.url : id);
  let list = [];
  try {
    list = await api('GET', `/webhooks/${encodeURIComponent(id)}/deliveries?limit=50`);
  } catch (err) {
    toast(problemText(err));
  }
  $('deliveries').replaceChildren(...list.map((d) => el('tr', { 'data-testid': `delivery-${d.id}` },
    el('td', { text: timeOf(d.createdAt) }),
    el('td', { text: d.eventType }),
    el('td', {}, el('span', { class: `pill d-${d.status}`, 'data-testid': 'delivery-status', title: d.lastError || '', text: d.status })),
    el('td', { text: String(d.attempts) }),
    el('td', { 'data-testid': 'delivery-code', text: d.responseStatus === null ? '–' : String(d.responseStatus) }),
    el('td', { text: d.latencyMs === null ? '–' : String(d.latencyMs) }),
    el('td', {}, el('button', { class: 'btn small', type: 'button', 'data-testid': 'delivery-replay', onclick: async () => {
      try {
        await api('POST', `/webhooks/${encodeURIComponent(id)}/deliveries/${encodeURIComponent(d.id)}/replay`);
        toast('Sent again, with the same webhook-id');
      } catch (err) {
        toast(problemText(err));
      }
      setTimeout(() => openDeliveries(id), 400);
    } }, 'Replay')))));
}

$('toggle-webhook').addEventListener('click', () => show($('webhook-form'), $('webhook-form').classList.contains('hidden')));
$('webhook-secret-done').addEventListener('click', () => {
  $('webhook-secret-value').textContent = '';
  show($('webhook-secret'), false);
});
$('webhook-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const events = String(form.get('events') || '*').split(',').map((e) => e.trim()).filter(Boolean);
  show($('webhook-error'), false);
  try {
    const made = await api('POST', '/webhooks', { url: String(form.get('url') || '').trim(), events });
    // The secret is in this answer only: shown once, never read again.
    $('webhook-secret-value').textContent = made.secret;
    show($('webhook-secret'), true);
    ev.target.reset();
    show($('webhook-form'), false);
  } catch (err) {
    setText($('webhook-error'), problemText(err));
    show($('webhook-error'), true);
  }
  await loadWebhooks();
});

// ---------- work units ----------

function renderUnits() {
  const u = state.units;
  show($('units-card'), Boolean(u));
  if (!u) return;
  $('units-count').textContent = `(${u.units.length}${u.more ? '+' : ''})`;
  // Each session's capacity as a bar: units / capacity (no capacity: unlimited).
  $('capacity').replaceChildren(...u.workers.map((w) => {
    const pct = w.capacity ? Math.min(100, Math.round((100 * w.units) / w.capacity)) : 0;
    const fill = el('span', { class: `fill${pct >= 100 ? ' full' : ''}`, 'data-testid': 'capacity-fill' });
    fill.style.width = `${pct}%`; // through the CSSOM: the page's CSP allows no inline style attribute
    return el('li', { class: 'cap', 'data-testid': `capacity-${w.sessionId}` },
      el('span', { class: 'user-text', text: w.sessionId }),
      el('span', { class: 'bar', title: `${w.units} of ${w.capacity ?? 'unlimited'}` }, fill),
      el('span', { class: 'muted', 'data-testid': 'capacity-text', text: `${w.units} / ${w.capacity ?? '∞'}` }));
  }));
  $('units').replaceChildren(...u.units.map((x) => el('tr', { 'data-testid': `unit-${x.id}` },
    el('td', { class: 'user-text', text: x.id }), el('td', { class: 'user-text', text: x.kind }),
    el('td', { class: 'user-text', 'data-testid': 'unit-session', text: x.sessionId ?? '—' }), el('td', { text: x.group === null ? '—' : String(x.group) }))));
  const to = $('reassign-to');
  const chosen = to.value;
  to.replaceChildren(...u.workers.map((w) => el('option', { value: w.sessionId, text: w.sessionId })));
  if (chosen) to.value = chosen;
}

async function loadUnits() {
  try {
    const [workers, page] = await Promise.all([api('GET', '/workers'), api('GET', '/units?limit=200')]);
    state.units = { workers, units: page.items, more: Boolean(page.nextCursor) };
  } catch (err) {
    // A session-scoped key may not read them: the card stays hidden.
    if (err instanceof ApiError && err.status === 403) state.units = null;
  }
  renderUnits();
}

function loadUnitsSoon() {
  clearTimeout(state.unitsTimer);
  state.unitsTimer = setTimeout(() => loadUnits(), 200);
}

/** The reassign dialog: a dry-run preview first; Apply sends the same request for real. */
function reassignRequest(dryRun) {
  const reason = $('reassign-reason').value.trim();
  return { selector: $('reassign-selector').value.trim(), to: $('reassign-to').value, dryRun, ...(reason ? { reason } : {}) };
}

function setupReassign() {
  const form = $('reassign');
  const plan = $('reassign-plan');
  const apply = $('reassign-apply');
  const reset = () => {
    apply.disabled = true;
    plan.textContent = '';
  };
  $('open-reassign').addEventListener('click', () => show(form, form.classList.contains('hidden')));
  $('reassign-cancel').addEventListener('click', () => (show(form, false), reset()));
  for (const id of ['reassign-selector', 'reassign-to']) $(id).addEventListener('input', reset);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    reset();
    try {
      const p = await api('POST', '/units/reassign', reassignRequest(true));
      plan.textContent = `${p.moves.length} unit(s) move to ${p.to} (${p.unchanged.length} already there): ${p.unitsBefore} → ${p.unitsAfter} of ${p.capacity ?? 'unlimited'}.`;
      apply.disabled = p.moves.length === 0;
    } catch (err) {
      plan.textContent = err.message;
    }
  });
  apply.addEventListener('click', async () => {
    apply.disabled = true;
    try {
      const p = await api('POST', '/units/reassign', reassignRequest(false));
      plan.textContent = `Moved ${p.moves.length} unit(s) to ${p.to}.`;
      loadUnits();
    } catch (err) {
      plan.textContent = err.message;
    }
  });
}

// ---------- start ----------

/** Sessions a page holds: the most the server gives at once, so 2,000 sessions are 2 requests. */
const PAGE_SIZE = 1000;

async function loadSessions() {
  // Every page, following nextCursor: the list shows every session the key may see.
  const load = ++state.loads;
  state.touched = new Map();
  const sessions = new Map();
  let cursor = null;
  do {
    const page = await api('GET', `/sessions?limit=${PAGE_SIZE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    if (load !== state.loads) return; // a newer load (the stream reconnected) took over
    for (const s of page.items) sessions.set(s.id, s);
    cursor = page.nextCursor;
  } while (cursor);
  // What the event stream said while the pages were read is newer than the pages.
  for (const [id, snap] of state.touched) {
    if (snap) sessions.set(id, snap);
    else sessions.delete(id);
  }
  state.touched = null;
  state.sessions = sessions;
  if (state.selected && !state.sessions.has(state.selected)) state.selected = null;
  renderList();
  renderDetail();
}

async function boot() {
  try {
    state.adapters = await api('GET', '/adapters');
  } catch {
    return;
  }
  $('platform-select').replaceChildren(...state.adapters.map((a) => el('option', { value: a.name, text: a.name })));
  renderAdapterForm();
  // The list is read once the event stream is subscribed (its hello), so no change falls between.
  connectEvents();
}

setInterval(() => {
  // Heartbeats and running counts change without events: the nodes are read again now and then.
  if (state.nodes && document.visibilityState === 'visible') loadNodes();
  // Deliveries are made in the background: the open log is read again now and then.
  if (state.webhooks && document.visibilityState === 'visible') loadWebhooks();
  if (state.webhookOpen && document.visibilityState === 'visible') openDeliveries(state.webhookOpen);
  if (state.units && document.visibilityState === 'visible') loadUnits();
  if (state.selected && document.visibilityState === 'visible') {
    refreshExtras(state.selected);
    const s = state.sessions.get(state.selected);
    if (s) renderTimeline(s); // the current state's bar grows with the time
  }
}, 5000);

setupReassign();
if (state.key) boot();
else askForKey();

