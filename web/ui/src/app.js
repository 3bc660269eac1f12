// The gateway's web panel: pages rendered here from the JSON API
// (docs/api.md). No inline script or style (the CSP forbids them); every
// text from the network goes in as text, never as HTML.

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const signoutButton = document.getElementById('signout');
const toast = document.getElementById('toast');
let csrf = '';
let timers = [];

// h makes an element: attributes (on* are listeners), then children
// (strings become text).
function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  return fill(e, attrs, kids);
}
function svg(tag, attrs, ...kids) {
  return fill(document.createElementNS('http://www.w3.org/2000/svg', tag), attrs, kids);
}
function fill(e, attrs, kids) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat(Infinity)) {
    if (k == null || k === false) continue;
    e.append(k instanceof Node ? k : String(k));
  }
  return e;
}

class APIError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

async function api(method, path, body) {
  const opt = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    opt.headers['Content-Type'] = 'application/json';
    opt.body = JSON.stringify(body);
  }
  if (method !== 'GET') opt.headers['X-CSRF-Token'] = csrf;
  let r;
  try {
    r = await fetch('/api/v1' + path, opt);
  } catch (e) {
    throw new APIError(0, 'The gateway does not answer (' + e.message + ').');
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (r.status === 401 && !path.startsWith('/auth/')) {
    start();
    const e = new APIError(401, 'Signed out.');
    e.signedOut = true;
    throw e;
  }
  if (!r.ok) throw new APIError(r.status, (data && data.error) || r.status + ' ' + r.statusText, data && data.field);
  return data;
}

// ---- formatting

const plural = (n, w) => n + ' ' + w + (n === 1 ? '' : 's');
function duration(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return plural(s, 'second');
  if (s < 3600) return plural(Math.round(s / 60), 'minute');
  if (s < 86400) return plural(Math.floor(s / 3600), 'hour') + (s % 3600 >= 60 ? ' ' + plural(Math.floor(s % 3600 / 60), 'minute') : '');
  return plural(Math.floor(s / 86400), 'day') + (s % 86400 >= 3600 ? ' ' + plural(Math.floor(s % 86400 / 3600), 'hour') : '');
}
const zeroTime = t => !t || t.startsWith('0001-');
function until(t, never = 'permanent') {
  if (zeroTime(t)) return never;
  const s = (Date.parse(t) - Date.now()) / 1000;
  return h('time', { datetime: t, title: new Date(t).toLocaleString() }, s <= 0 ? 'expired' : 'in ' + duration(s));
}
function ago(t) {
  const d = new Date(t);
  return h('time', { datetime: t, title: d.toLocaleString() }, d.toLocaleTimeString());
}
function bps(n) {
  const u = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)) + ' ' + u[i];
}
const owners = { static: 'Static forward', admin: 'Administrator', upnp: 'UPnP', natpmp: 'NAT-PMP', pcp: 'PCP' };
const kinds = {
  public: 'Public address',
  private: 'Double NAT: a private address from another router',
  shared: 'CGNAT: the ISP shares its address (100.64.0.0/10)',
  bogon: 'Not routable on the internet',
  none: 'No address',
};
const addrOf = ap => String(ap || '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');

// names maps an address to a device's name from the DHCP leases.
async function names() {
  const m = new Map();
  try {
    for (const l of await api('GET', '/leases') || []) if (l.hostname) m.set(l.addr, l.hostname);
  } catch { /* DHCP off */ }
  return m;
}
function device(names, ap) {
  const a = addrOf(ap);
  const n = names.get(a);
  return h('span', {}, n ? [h('strong', {}, n), ' ', h('span', { class: 'muted' }, ap)] : ap);
}

// ---- page furniture

function say(msg, bad) {
  toast.textContent = msg;
  toast.className = bad ? 'bad show' : 'show';
  clearTimeout(say.t);
  say.t = setTimeout(() => { toast.className = ''; }, 5000);
}
function every(ms, fn) {
  timers.push(setInterval(() => { if (!document.hidden) fn().catch(showError); }, ms));
}
function showError(e) {
  if (!e.signedOut) say(e.message, true);
}
function section(title, ...kids) {
  const id = 'h-' + title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, title), kids);
}
function note(text, cls = 'note') {
  return h('p', { class: cls }, text);
}
// table: cols are [heading, cell(row)]; on phones each row is a card
// whose cells carry their heading (data-label).
function table(caption, cols, rows, empty) {
  if (!rows.length) return note(empty, 'muted');
  return h('div', { class: 'table' }, h('table', {},
    h('caption', { class: 'sr' }, caption),
    h('thead', {}, h('tr', {}, cols.map(([t]) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map(r => h('tr', {}, cols.map(([t, f]) => h('td', { 'data-label': t }, f(r))))))));
}
function button(label, onclick, attrs = {}) {
  return h('button', {
    type: 'button', ...attrs, onclick: async ev => {
      const b = ev.currentTarget;
      b.disabled = true;
      try { await onclick(); } catch (e) { showError(e); } finally { b.disabled = false; }
    },
  }, label);
}
function field(label, input, hint) {
  const id = input.id || (input.id = 'f-' + input.name);
  const hid = hint && id + '-hint';
  if (hid) input.setAttribute('aria-describedby', hid);
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint && h('small', { id: hid }, hint));
}
// form: a <form> whose submit calls fn(data); an API error naming a field
// marks that input and says why.
function form(label, kids, submit, fn) {
  const err = h('div', { class: 'error', role: 'alert', hidden: true });
  const f = h('form', { 'aria-label': label, novalidate: true }, err, kids, h('div', { class: 'actions' }, h('button', { type: 'submit' }, submit)));
  f.addEventListener('submit', async ev => {
    ev.preventDefault();
    err.hidden = true;
    for (const i of f.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
    const b = f.querySelector('button[type=submit]');
    b.disabled = true;
    try {
      await fn(f);
    } catch (e) {
      if (e.signedOut) return;
      const input = e.field && f.querySelector('[name="' + CSS.escape(e.field) + '"]');
      err.replaceChildren(input ? h('strong', {}, labelOf(input) + ': ') : '', e.message);
      err.hidden = false;
      if (input) {
        input.setAttribute('aria-invalid', 'true');
        input.focus();
      } else err.focus();
    } finally {
      b.disabled = false;
    }
  });
  err.tabIndex = -1;
  return f;
}
const labelOf = i => (i.labels && i.labels[0] ? i.labels[0].textContent : i.name);
const input = (name, attrs = {}) => h('input', { name, id: 'f-' + name, ...attrs });

// ---- sign in

function authPage(setup) {
  nav.hidden = signoutButton.hidden = true;
  const pw = input('password', { type: 'password', autocomplete: setup ? 'new-password' : 'current-password', required: true, minlength: setup ? 8 : null });
  const kids = [field('Password', pw, setup ? 'At least 8 characters. You will need it to sign in again.' : null)];
  let again;
  if (setup) kids.push(field('Password again', again = input('again', { type: 'password', autocomplete: 'new-password', required: true })));
  main.replaceChildren(h('div', { class: 'auth' },
    h('h1', {}, setup ? 'Welcome: choose a password' : 'Sign in'),
    setup ? note('This gateway has no administrator password yet. Choose one to protect this panel.') : null,
    form(setup ? 'Choose a password' : 'Sign in', kids, setup ? 'Set password and sign in' : 'Sign in', async () => {
      if (setup && pw.value !== again.value) throw new APIError(400, 'the two passwords differ', 'again');
      if (setup && pw.value.length < 8) throw new APIError(400, 'use at least 8 characters', 'password');
      const r = await api('POST', setup ? '/auth/setup' : '/auth/login', { password: pw.value });
      csrf = r.csrf;
      signedIn(false);
    })));
  pw.focus();
}

async function start() {
  clearTimers();
  let a;
  try {
    a = await api('GET', '/auth');
  } catch (e) {
    main.replaceChildren(h('h1', {}, 'Gateway'), note(e.message, 'error'), button('Try again', start));
    return;
  }
  if (!a.password_set) return authPage(true);
  if (!a.signed_in) return authPage(false);
  csrf = a.csrf;
  signedIn(true);
}

// signedIn shows the page the address names; after the sign-in form,
// focus goes to its heading.
function signedIn(first) {
  nav.hidden = signoutButton.hidden = false;
  route(first);
}

signoutButton.addEventListener('click', async () => {
  try { await api('POST', '/auth/logout'); } catch (e) { showError(e); }
  csrf = '';
  say('Signed out.');
  start();
});

// ---- pages

const pages = {
  '': overview, devices, mappings, pinholes, sessions, events, settings,
};
const titles = {
  '': 'Overview', devices: 'LAN devices', mappings: 'Port mappings', pinholes: 'IPv6 pinholes',
  sessions: 'NAT sessions', events: 'Event log', settings: 'Settings',
};

function clearTimers() {
  timers.forEach(clearInterval);
  timers = [];
}

async function route(first) {
  if (nav.hidden) return;
  clearTimers();
  const name = location.hash.replace(/^#\/?/, '');
  const page = pages[name] ? name : '';
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === '#/' + page) {
      a.setAttribute('aria-current', 'page');
      a.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    }
    else a.removeAttribute('aria-current');
  }
  document.title = titles[page] + ' · Gateway';
  const h1 = h('h1', { tabindex: -1 }, titles[page]);
  const body = h('div', { class: 'page page-' + (page || 'overview'), 'aria-busy': 'true' });
  main.replaceChildren(h1, body);
  if (!first) h1.focus();
  try {
    await pages[page](body);
  } catch (e) {
    if (!e.signedOut) body.replaceChildren(note(e.message, 'error'));
  }
  body.removeAttribute('aria-busy');
}
window.addEventListener('hashchange', () => {
  if (location.hash === '' || location.hash.startsWith('#/')) route(false);
});
// The skip link moves the focus, not the route.
document.querySelector('.skip').addEventListener('click', ev => {
  ev.preventDefault();
  main.focus();
});

// refresher renders into box with fn now and every ms.
async function refresher(box, ms, fn) {
  const draw = async () => box.replaceChildren(...[await fn()].flat(Infinity));
  await draw();
  every(ms, draw);
}

async function overview(body) {
  const chart = h('div', { class: 'chart' });
  const cards = h('div', { class: 'cards' });
  body.append(cards, section('WAN throughput', chart));
  await refresher(cards, 5000, async () => {
    const s = await api('GET', '/status');
    const v6 = s.ipv6;
    const up = s.started ? duration((Date.now() - Date.parse(s.started)) / 1000) : '—';
    const svcs = s.services || [];
    return [
      card('Internet (IPv4)', h('p', { class: 'big' }, s.wan_addr || 'none'), note(kinds[s.wan_kind] || s.wan_kind || ''),
        s.double_nat ? note('Another NAT stands between this gateway and the internet: apps behind it may not be reachable from outside.', 'warn') : null),
      card('IPv6', v6 && v6.prefix && !v6.prefix.startsWith('invalid')
        ? [h('p', { class: 'big' }, v6.prefix), note('Uplink: ' + (v6.uplink || 'none') + (v6.delegated && !v6.delegated.startsWith('invalid') ? ', delegated ' + v6.delegated : '')), teredoNote(v6)]
        : note(v6 ? 'No IPv6 uplink yet' + (v6.error ? ': ' + v6.error : '') : 'IPv6 is off.')),
      card('Uptime', h('p', { class: 'big' }, up), s.version ? note('Version ' + s.version, 'muted') : null),
      card('Open ports', h('p', { class: 'big' }, h('a', { href: '#/mappings' }, plural((s.nat && s.nat.mappings) || 0, 'port mapping'))),
        note(plural((s.nat && s.nat.pinholes) || 0, 'IPv6 pinhole') + (s.nat && s.nat.filtering ? '; filtering ' + s.nat.filtering : ''))),
      h('section', { class: 'card wide', 'aria-label': 'Services' }, h('h2', {}, 'Services'), svcs.length ? h('ul', { class: 'svcs' }, svcs.map(x => h('li', { title: x.last_error || null },
        h('span', { class: 'dot ' + (x.state === 'running' ? 'ok' : 'bad'), 'aria-hidden': 'true' }), x.name,
        x.state === 'running' ? h('span', { class: 'sr' }, ': running') : h('strong', {}, ': ' + x.state)))) : note('none', 'muted')),
    ];
  });
  await refresher(chart, 2000, throughputChart);
}
// teredoNote says what the Teredo client or relay is doing, if one runs.
function teredoNote(v6) {
  const t = v6.teredo, r = v6.teredo_relay;
  if (t) {
    if (!t.qualified) return note('Teredo: qualifying' + (t.error ? ' (' + t.error + ')' : '') + '…', 'muted');
    return note('Teredo ' + t.address + ' (' + (t.cone ? 'cone' : 'restricted') + ' NAT, mapped ' + t.mapped + ', server ' + t.server + ', ' + plural((t.peers || []).length, 'peer') + ')');
  }
  if (r) return note('Teredo relay for 2001::/32: ' + plural(r.stats.Peers || 0, 'peer'), 'muted');
  return null;
}
const card = (title, ...kids) => h('section', { class: 'card', 'aria-label': title }, h('h2', {}, title), kids);

async function throughputChart() {
  let t;
  try {
    t = await api('GET', '/throughput');
  } catch (e) {
    if (e.status === 404 || e.status === 503) return note('No throughput figures: ' + e.message, 'muted');
    throw e;
  }
  const ss = t.samples || [];
  const W = 600, H = 180, P = 4;
  const max = Math.max(1000, ...ss.map(s => Math.max(s.rx_bps, s.tx_bps)));
  const step = ss.length > 1 ? (W - 2 * P) / (ss.length - 1) : 0;
  const line = k => ss.map((s, i) => (P + i * step).toFixed(1) + ',' + (H - P - (s[k] / max) * (H - 2 * P)).toFixed(1)).join(' ');
  const last = ss[ss.length - 1] || { rx_bps: 0, tx_bps: 0 };
  const span = ss.length ? duration(ss.length * (t.interval || 2)) : '';
  const label = 'WAN throughput over the last ' + span + ': now ' + bps(last.rx_bps) + ' down, ' + bps(last.tx_bps) + ' up; peak ' + bps(max);
  return [
    svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, preserveAspectRatio: 'none', class: 'plot' },
      [0.25, 0.5, 0.75].map(f => svg('line', { x1: 0, x2: W, y1: H * f, y2: H * f, class: 'grid' })),
      svg('polyline', { points: line('rx_bps'), class: 'rx' }),
      svg('polyline', { points: line('tx_bps'), class: 'tx' })),
    h('p', { class: 'legend' },
      h('span', { class: 'key rx' }, 'Download ' + bps(last.rx_bps)), ' ',
      h('span', { class: 'key tx' }, 'Upload ' + bps(last.tx_bps)), ' ',
      h('span', { class: 'muted' }, 'scale ' + bps(max) + ', last ' + span)),
  ];
}

async function devices(body) {
  const leases = h('div');
  const res = h('div');
  body.append(section('Leases', leases), section('Reservations', res));
  const draw = async () => {
    let ls, rs;
    try {
      [ls, rs] = await Promise.all([api('GET', '/leases'), api('GET', '/reservations')]);
    } catch (e) {
      if (e.status === 404) return leases.replaceChildren(note(e.message + '.')), res.replaceChildren();
      throw e;
    }
    rs = (rs || []).sort((a, b) => a.addr.localeCompare(b.addr, undefined, { numeric: true }));
    const reserved = new Set(rs.map(r => r.mac.toLowerCase()));
    ls = (ls || []).sort((a, b) => (b.online ? 1 : 0) - (a.online ? 1 : 0) || (a.hostname || '~').localeCompare(b.hostname || '~'));
    leases.replaceChildren(table('DHCP leases', [
      ['Device', l => l.hostname || h('span', { class: 'muted' }, 'unnamed')],
      ['MAC', l => h('code', {}, l.mac)],
      ['Address', l => l.addr],
      ['Lease expires', l => until(l.expires, 'never')],
      ['Online', l => h('span', { class: 'badge ' + (l.online ? 'ok' : 'off') }, l.online ? 'online' : 'offline')],
      ['', l => l.reserved || reserved.has(l.mac.toLowerCase()) ? h('span', { class: 'muted' }, 'reserved')
        : button('Reserve', async () => {
          await api('POST', '/reservations', { mac: l.mac, addr: l.addr, hostname: l.hostname || '' });
          say(l.addr + ' is now reserved for ' + (l.hostname || l.mac) + '.');
          await draw();
        }, { 'aria-label': 'Reserve ' + l.addr + ' for ' + (l.hostname || l.mac) })],
    ], ls, 'No device has a lease yet.'));
    res.replaceChildren(table('DHCP reservations', [
      ['Device', r => r.hostname || '—'],
      ['MAC', r => h('code', {}, r.mac)],
      ['Address', r => r.addr],
      ['', r => button('Remove', async () => {
        await api('DELETE', '/reservations/' + encodeURIComponent(r.mac));
        say('Reservation of ' + r.addr + ' removed.');
        await draw();
      }, { 'aria-label': 'Remove the reservation of ' + r.addr })],
    ], rs, 'No reservations.'), addReservation(draw));
  };
  await draw();
  every(10000, async () => { if (!body.contains(document.activeElement) || document.activeElement === document.body) await draw(); });
}

function addReservation(done) {
  return h('details', {}, h('summary', {}, 'Add a reservation'), form('Add a reservation', [
    field('MAC address', input('mac', { required: true, placeholder: 'aa:bb:cc:dd:ee:ff', autocomplete: 'off' })),
    field('Address', input('addr', { required: true, inputmode: 'decimal', autocomplete: 'off' })),
    field('Name', input('hostname', { autocomplete: 'off' })),
  ], 'Add', async f => {
    await api('POST', '/reservations', { mac: f.elements.mac.value.trim(), addr: f.elements.addr.value.trim(), hostname: f.elements.hostname.value.trim() });
    say('Reservation added.');
    await done();
  }));
}

async function mappings(body) {
  const off = h('div');
  const list = h('div');
  const fwd = h('div');
  body.append(off, section('Open ports', list), section('Static forwards', fwd, addForward(() => draw())));
  const draw = async () => {
    const [ms, fs, nm, st] = await Promise.all([api('GET', '/mappings'), api('GET', '/forwards'), names(), api('GET', '/settings').catch(() => null)]);
    if (st) {
      const o = [['UPnP', st.upnp], ['NAT-PMP', st.natpmp], ['PCP', st.pcp]].filter(x => x[1] === false).map(x => x[0]);
      off.replaceChildren(o.length ? note(o.join(', ') + (o.length > 1 ? ' are' : ' is') + ' off: apps cannot open ports with ' + (o.length > 1 ? 'them' : 'it') + ' (Settings).') : '');
    }
    list.replaceChildren(table('Port mappings', [
      ['Protocol', m => m.proto.toUpperCase()],
      ['Port', m => String(m.external_port)],
      ['Device', m => device(nm, m.internal)],
      ['App', m => m.description || h('span', { class: 'muted' }, '—')],
      ['Opened by', m => owners[m.owner] || m.owner],
      ['Until', m => until(m.expires)],
      ['', m => m.owner === 'static' ? h('span', { class: 'muted' }, 'config')
        : button('Revoke', async () => {
          await api('DELETE', '/mappings/' + m.proto + '/' + m.external_port);
          say(m.proto.toUpperCase() + ' port ' + m.external_port + ' revoked.');
          await draw();
        }, { 'aria-label': 'Revoke ' + m.proto.toUpperCase() + ' port ' + m.external_port })],
    ], (ms || []).sort((a, b) => a.external_port - b.external_port), 'No port is open.'));
    fwd.replaceChildren(table('Static forwards', [
      ['Name', f => f.name || '—'],
      ['Protocol', f => f.proto.toUpperCase()],
      ['Port', f => String(f.external_port)],
      ['To', f => device(nm, f.internal)],
      ['', f => button('Remove', async () => {
        for (const p of f.proto === 'tcpudp' ? ['tcp', 'udp'] : [f.proto]) {
          try { await api('DELETE', '/forwards/' + p + '/' + f.external_port); } catch (e) { if (e.status !== 404 || f.proto !== 'tcpudp') throw e; }
        }
        say('Forward of port ' + f.external_port + ' removed.');
        await draw();
      }, { 'aria-label': 'Remove the forward of port ' + f.external_port })],
    ], fs || [], 'No static forwards.'));
  };
  await draw();
  every(5000, async () => { if (!body.contains(document.activeElement)) await draw(); });
}

function addForward(done) {
  return h('details', {}, h('summary', {}, 'Add a static forward'), form('Add a static forward', [
    field('Name', input('name', { required: true, autocomplete: 'off' })),
    field('Protocol', h('select', { name: 'proto', id: 'f-proto' }, h('option', { value: 'tcp' }, 'TCP'), h('option', { value: 'udp' }, 'UDP'), h('option', { value: 'tcpudp' }, 'TCP and UDP'))),
    field('External port', input('external_port', { type: 'number', min: 1, max: 65535, required: true, inputmode: 'numeric' })),
    field('To (LAN address:port)', input('internal', { required: true, placeholder: '192.168.1.10:80', autocomplete: 'off' })),
  ], 'Add forward', async f => {
    const port = Number(f.elements.external_port.value);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new APIError(400, 'a port is a number from 1 to 65535', 'external_port');
    await api('POST', '/forwards', { name: f.elements.name.value.trim(), proto: f.elements.proto.value, external_port: port, internal: f.elements.internal.value.trim() });
    say('Port ' + port + ' now forwards to ' + f.elements.internal.value.trim() + '.');
    f.reset();
    await done();
  }));
}

async function pinholes(body) {
  const st = await api('GET', '/status');
  if (!st.ipv6) body.append(note('IPv6 is off: there are no pinholes.'));
  const list = h('div');
  body.append(list);
  const nm = await names();
  const draw = async () => {
    const ps = await api('GET', '/pinholes');
    list.replaceChildren(table('IPv6 pinholes', [
      ['Protocol', p => p.proto.toUpperCase()],
      ['Device', p => device(nm, p.internal)],
      ['From', p => p.remote || 'any host'],
      ['App', p => p.description || '—'],
      ['Opened by', p => owners[p.owner] || p.owner],
      ['Until', p => until(p.expires)],
      ['', p => button('Close', async () => {
        await api('DELETE', '/pinholes/' + p.id);
        say('Pinhole closed.');
        await draw();
      }, { 'aria-label': 'Close the pinhole to ' + p.internal })],
    ], ps || [], 'No pinholes: nothing on the internet can reach a LAN device over IPv6 unless it asked.'));
  };
  await draw();
  every(5000, draw);
}

async function sessions(body) {
  const nm = await names();
  await refresher(body, 5000, async () => {
    let ss;
    try {
      ss = await api('GET', '/sessions');
    } catch (e) {
      return note('Sessions cannot be read: ' + e.message, 'error');
    }
    ss = ss || [];
    if (!ss.length) return note('No live sessions.', 'muted');
    const by = new Map();
    for (const s of ss) {
      const a = addrOf(s.internal);
      if (!by.has(a)) by.set(a, []);
      by.get(a).push(s);
    }
    return [note(plural(ss.length, 'session') + ' across the WAN address.', 'muted'), [...by].sort((a, b) => b[1].length - a[1].length).map(([a, l]) =>
      section((nm.get(a) ? nm.get(a) + ' (' + a + ')' : a) + ': ' + plural(l.length, 'session'), table('Sessions of ' + a, [
        ['Protocol', s => s.proto.toUpperCase()],
        ['Direction', s => s.inbound ? 'inbound' : 'outbound'],
        ['Local port', s => s.internal.replace(/^.*:/, '')],
        ['Remote', s => s.remote],
        ['WAN port', s => s.external.replace(/^.*:/, '')],
        ['State', s => s.state || '—'],
        ['Expires', s => duration(s.timeout > 1e7 ? s.timeout / 1e9 : s.timeout)],
      ], l, '')))];
  });
}

async function events(body) {
  const nm = await names();
  let last = 0;
  const seen = [];
  const list = h('ol', { class: 'events', reversed: true });
  body.append(list);
  const load = async () => {
    const es = await api('GET', '/events' + (last ? '?after=' + last : '')) || [];
    for (const e of es) {
      last = Math.max(last, e.id);
      seen.unshift(e);
    }
    seen.length = Math.min(seen.length, 300);
    list.replaceChildren(...seen.map(e => h('li', {}, ago(e.time), ' ', h('span', { class: 'badge k-' + e.kind }, e.kind), ' ',
      e.host ? h('strong', {}, (nm.get(e.host) ? nm.get(e.host) + ' (' + e.host + ')' : e.host) + ' ') : '', e.message)));
    if (!seen.length) list.replaceChildren(h('li', { class: 'muted' }, 'Nothing yet.'));
  };
  await load();
  every(3000, load);
}

const filterings = {
  'endpoint-independent': 'Endpoint-independent (full cone)',
  'address-dependent': 'Address-dependent',
  'address-and-port-dependent': 'Address- and port-dependent',
};

async function settings(body) {
  const s = await api('GET', '/settings');
  const d = s.dhcp || {};
  const check = (name, label, hint) => h('div', { class: 'check' },
    h('input', { type: 'checkbox', name, id: 'f-' + name, checked: !!s[name], 'aria-describedby': hint ? 'f-' + name + '-hint' : null }),
    h('label', { for: 'f-' + name }, label), hint ? h('small', { id: 'f-' + name + '-hint' }, hint) : null);
  const f = form('Settings', [
    h('fieldset', {}, h('legend', {}, 'DHCP'), s.dhcp ? [
      field('First address (offset in the LAN)', input('dhcp.start', { type: 'number', min: 1, value: d.start, inputmode: 'numeric' })),
      field('Number of addresses', input('dhcp.limit', { type: 'number', min: 1, value: d.limit, inputmode: 'numeric' })),
      field('Lease time (seconds)', input('dhcp.lease_time', { type: 'number', min: 60, value: d.lease_time, inputmode: 'numeric' }), 'How long a device keeps its address without renewing; 43200 is 12 hours.'),
    ] : note('The DHCP server is off (the config has no dhcp section).')),
    h('fieldset', {}, h('legend', {}, 'Port mapping for apps'),
      check('upnp', 'UPnP IGD', 'Games, consoles, Windows, torrent clients.'),
      check('natpmp', 'NAT-PMP', 'Apple devices, libnatpmp.'),
      check('pcp', 'PCP', 'Port Control Protocol, also IPv6 pinholes.'),
      check('secure_mode', 'Secure mode', 'A device may open ports only to itself.'),
      field('Ports per device', input('host_limit', { type: 'number', min: 0, value: s.host_limit, inputmode: 'numeric' }), '0: no limit.')),
    h('fieldset', {}, h('legend', {}, 'NAT'),
      field('Filtering of inbound UDP', h('select', { name: 'filtering', id: 'f-filtering' },
        Object.entries(filterings).map(([v, t]) => h('option', { value: v, selected: s.filtering === v }, t))),
        'Who may answer a device\'s UDP: anyone (best for games and P2P), only hosts it wrote to, or only the exact address and port it wrote to (strictest).')),
  ], 'Save settings', async f => {
    const num = n => {
      const i = f.elements[n];
      const v = Number(i.value);
      if (i.value.trim() === '' || !Number.isInteger(v) || v < 0) throw new APIError(400, 'a whole number, please', n);
      return v;
    };
    const body = {
      dhcp: s.dhcp ? { start: num('dhcp.start'), limit: num('dhcp.limit'), lease_time: num('dhcp.lease_time') } : undefined,
      upnp: f.elements.upnp.checked, natpmp: f.elements.natpmp.checked, pcp: f.elements.pcp.checked, secure_mode: f.elements.secure_mode.checked,
      filtering: f.elements.filtering.value, host_limit: num('host_limit'),
    };
    const ch = {};
    for (const k of Object.keys(body)) {
      if (body[k] !== undefined && JSON.stringify(body[k]) !== JSON.stringify(k === 'dhcp' ? { start: d.start, limit: d.limit, lease_time: d.lease_time } : s[k])) ch[k] = body[k];
    }
    if (!Object.keys(ch).length) return say('Nothing changed.');
    const now = await api('PUT', '/settings', ch);
    Object.assign(s, now);
    Object.assign(d, now.dhcp || {});
    say('Settings saved and applied.');
  });
  body.append(f, section('Password', passwordForm()));
}

function passwordForm() {
  return form('Change the password', [
    field('Current password', input('old', { type: 'password', autocomplete: 'current-password' })),
    field('New password', input('new', { type: 'password', autocomplete: 'new-password', minlength: 8 }), 'At least 8 characters. Other sessions are signed out.'),
  ], 'Change password', async f => {
    if (f.elements.new.value.length < 8) throw new APIError(400, 'use at least 8 characters', 'new');
    await api('POST', '/auth/password', { old: f.elements.old.value, new: f.elements.new.value });
    f.reset();
    say('Password changed.');
  });
}

start();
