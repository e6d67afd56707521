// Switchboard demo chat, built only on the client SDK served by the gateway at /client.js.
//
// One SwitchboardClient per signed-in user: its user socket brings direct messages, read
// receipts, room.activity hints (which keep the room list's badges live) and backend pushes (the
// notifications panel). Every room opened in this tab keeps its Room (and socket) open, so
// switching back is instant and the SDK keeps its unread count live. The DOM is rendered with
// textContent only; stable ids and data-testid attributes are there for the browser tests.
//
// Notifications: the page registers sw.js (scope /demo/); "Enable notifications" subscribes this
// browser to Web Push with the SDK's registerPush. While the user has no device connected the
// gateway pushes; sw.js shows it, and a click opens the conversation (?user=<the notified
// user>&room=<id> or &dm=<sender>) in a demo tab already open (told by a message) or a new one.
// Signing out unregisters the subscription, so the next user here does not get this one's.

import { connect, createClientId, decodeToken } from '/client.js';

const params = new URLSearchParams(location.search);
const num = (name, fallback) => {
  const v = Number(params.get(name));
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const SDK_OPTIONS = {
  heartbeatIntervalMs: num('hb', 20_000),
  heartbeatTimeoutMs: num('hbTimeout', 8_000),
  backoff: { initialMs: num('backoffInitial', 500), maxMs: num('backoffMax', 10_000) },
};
// Events the app renders elsewhere; anything else on the user stream is a notification.
const NOT_NOTIFICATIONS = new Set(['message', 'message.read', 'message.deleted', 'room.activity']);

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c) node.append(c);
  return node;
};
const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

const app = {
  client: null,
  me: null,
  dmPeer: null, // the user whose direct conversation is open (?dm=)
  push: { registration: null, handle: null, state: 'off' },
  current: null, // the open room's view state
  views: new Map(), // room id → view state (messages, receipts, typing), kept while the tab lives
  dms: new Map(), // message id → direct message (sent or received)
};
window.demo = app;

// ---------------------------------------------------------------------------------------------
// Sign in / out and connection state
// ---------------------------------------------------------------------------------------------

async function mintToken(name) {
  const res = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: name, ttl: num('ttl', 3600) }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body?.error?.message ?? `POST /dev/token: ${res.status}`);
  return body.token;
}

// The last name signed in here, so a notification's link opens straight into the conversation.
const REMEMBERED = 'switchboard-demo:user';
const remembered = () => {
  try {
    return localStorage.getItem(REMEMBERED);
  } catch {
    return null;
  }
};
const remember = (name) => {
  try {
    if (name) localStorage.setItem(REMEMBERED, name);
    else localStorage.removeItem(REMEMBERED);
  } catch {
    // storage unavailable: nothing remembered
  }
};

/** Keeps the address bar in step with what is open (`room`, `dm`), without reloading. */
function setParams(changes) {
  const next = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined) next.delete(k);
    else next.set(k, v);
  }
  history.replaceState(null, '', `?${next}${location.hash}`);
}

function signIn(name, fixedToken) {
  const getToken = fixedToken ? () => fixedToken : () => mintToken(name);
  if (!fixedToken) remember(name);
  const client = connect({ url: location.origin, getToken, ...SDK_OPTIONS });
  app.client = client;
  app.me = name;
  window.sb = client;
  $('me').textContent = name;
  $('signin-view').hidden = true;
  $('app-view').hidden = false;
  $('signout').hidden = false;

  client.on('state', (state, info) => showState($('conn-state'), state, info, true));
  showState($('conn-state'), client.state, client.stateInfo, true);
  client.on('rooms', renderRooms);
  client.on('message', onDirectMessage);
  client.on('message.read', onDirectRead);
  client.on('event', (frame) => {
    if (!NOT_NOTIFICATIONS.has(frame.event)) addNotification(frame);
  });
  client.on('synced', (data) => {
    // The stream was pruned past our resume point: refetch what REST knows.
    if (!data.recovered) loadDms();
  });
  client.rooms().catch(showError);
  loadDms();
  const room = params.get('room');
  if (room) openRoom(room);
  const dm = params.get('dm');
  if (dm) openDm(dm);
  if (location.hash === '#notifications') showNotificationsPanel();
  refreshPush();
}

async function signOut() {
  // Notifications for this user must not reach whoever signs in next in this browser.
  await app.push.handle?.unregister().catch((err) => console.warn('push unregister', err));
  app.client?.close();
  remember(null);
  location.search = '';
}

function showState(node, state, info = {}, global = false) {
  node.dataset.state = state;
  let text = state.replace('_', ' ');
  if (state === 'disconnected' && info.retryInMs !== undefined) text = `reconnecting in ${Math.ceil(info.retryInMs / 1000)} s`;
  if (state === 'auth_failed') text = `auth failed: ${info.code}`;
  if (state === 'closed' && info.code && info.code !== 1000) text = `closed: ${info.reason || info.code}`;
  node.textContent = text;
  node.title = info.reason ?? '';
  if (!global) return;
  if (state === 'auth_failed') banner(`Sign-in failed (${info.code}): ${info.reason ?? ''}. Sign in again.`, 'auth');
  else if (state === 'closed' && info.code === 4003) banner(`Disconnected by the server: ${info.reason}`, 'closed');
  else if (state === 'connected') banner(null);
}

function banner(text, kind = 'error') {
  const node = $('banner');
  node.hidden = !text;
  node.textContent = text ?? '';
  node.dataset.kind = kind;
}

function showError(err) {
  console.warn(err);
  banner(`${err.code ? `${err.code}: ` : ''}${err.message ?? err}`);
  setTimeout(() => { if ($('banner').dataset.kind === 'error') banner(null); }, 5000);
}

// ---------------------------------------------------------------------------------------------
// Room list
// ---------------------------------------------------------------------------------------------

function renderRooms(rooms) {
  const current = app.current && rooms.find((r) => r.id === app.current.id);
  if (current?.name) $('room-title').textContent = current.name;
  const list = $('room-list');
  list.replaceChildren(...rooms.map((r) => {
    const preview = r.last_message
      ? `${r.last_message.sender_id ?? 'system'}: ${r.last_message.preview || '(message recalled)'}`
      : 'no messages yet';
    const badge = el('span', { class: 'badge', text: String(r.unread), 'data-testid': `unread-${r.id}`, 'data-count': String(r.unread) });
    badge.hidden = !r.unread;
    const item = el('li', { 'data-room-id': r.id, 'data-testid': `room-${r.id}` },
      el('div', { class: 'row' }, el('span', { class: 'name', text: r.name || r.id }), badge),
      el('div', { class: 'preview', text: preview }));
    if (app.current?.id === r.id) item.classList.add('active');
    if (r.unread) item.classList.add('unread');
    item.addEventListener('click', () => openRoom(r.id));
    return item;
  }));
}

$('create-room-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const name = $('new-room-name').value.trim();
  if (!name) return;
  try {
    const room = await app.client.createRoom({ name });
    $('new-room-name').value = '';
    openRoom(room.id);
  } catch (err) {
    showError(err);
  }
});

// ---------------------------------------------------------------------------------------------
// A room
// ---------------------------------------------------------------------------------------------

function viewOf(id) {
  let view = app.views.get(id);
  if (view) return view;
  const room = app.client.room(id);
  view = {
    id,
    room,
    messages: new Map(), // seq → message
    pending: new Map(), // client_id → {body, failed}
    reads: new Map(), // user → read seq
    typing: new Map(), // user → timer
    oldest: null,
    olderDone: false,
  };
  app.views.set(id, view);
  const mine = (fn) => (...args) => { if (app.current === view) fn(...args); };
  room.on('state', mine((state, info) => showState($('room-state'), state, info)));
  room.on('message', (m) => {
    view.messages.set(m.seq, m);
    if (m.client_id) view.pending.delete(m.client_id);
    if (m.sender_id) stopTyping(view, m.sender_id);
    if (view.oldest === null || m.seq < view.oldest) view.oldest = m.seq;
    if (app.current === view) {
      renderMessages(view);
      markRead(view);
    }
  });
  // Edits and recalls: changes of an earlier message (by its seq).
  const change = (c) => {
    const m = view.messages.get(c.seq);
    if (!m) return;
    view.messages.set(c.seq, { ...m, ...(c.deleted_at ? { body: '', deleted_at: c.deleted_at } : { body: c.body, edited_at: c.edited_at }) });
    if (app.current === view) renderMessages(view);
  };
  room.on('message.updated', change);
  room.on('message.deleted', change);
  room.on('presence', mine(() => renderOnline(view)));
  room.on('typing', ({ user_id: user, active }) => {
    if (active) {
      clearTimeout(view.typing.get(user));
      view.typing.set(user, setTimeout(() => stopTyping(view, user), 4000));
    } else stopTyping(view, user);
    if (app.current === view) renderTyping(view);
  });
  room.on('read', ({ user_id: user, seq }) => {
    view.reads.set(user, Math.max(seq, view.reads.get(user) ?? 0));
    if (app.current === view) renderMessages(view);
  });
  room.on('ready', () => loadMembers(view));
  return view;
}

function stopTyping(view, user) {
  clearTimeout(view.typing.get(user));
  if (view.typing.delete(user) && app.current === view) renderTyping(view);
}

async function openRoom(id) {
  const view = viewOf(id);
  app.current = view;
  setParams({ room: id });
  $('room-empty').hidden = true;
  $('room-pane').hidden = false;
  $('room-pane').dataset.roomId = id;
  const summary = app.client.roomSummary(id);
  $('room-title').textContent = summary?.name ?? id;
  showState($('room-state'), view.room.state, view.room.stateInfo);
  renderMessages(view);
  renderOnline(view);
  renderTyping(view);
  renderRooms(app.client.roomList);
  $('composer-input').focus();
  try {
    await view.room.open();
    if (!summary) $('room-title').textContent = (await view.room.info()).name;
    markRead(view);
  } catch (err) {
    showError(err);
  }
}

async function loadMembers(view) {
  try {
    const { members } = await view.room.members({ limit: 100 });
    for (const m of members) view.reads.set(m.user_id, Math.max(m.read_seq ?? 0, view.reads.get(m.user_id) ?? 0));
    if (app.current === view) renderMessages(view);
  } catch (err) {
    console.warn('members', err);
  }
}

// Read receipts: debounced, so a burst of replayed messages is one `read` frame.
function markRead(view) {
  if (document.visibilityState === 'hidden') return;
  clearTimeout(view.readTimer);
  view.readTimer = setTimeout(() => view.room.read().catch(() => undefined), 150);
}

function renderMessages(view) {
  const list = $('messages');
  const atBottom = $('scroller').scrollHeight - $('scroller').scrollTop - $('scroller').clientHeight < 40;
  const sorted = [...view.messages.values()].sort((a, b) => a.seq - b.seq);
  // The newest message of mine each other member has read gets a "seen by" line.
  const seenBy = new Map();
  for (const [user, seq] of view.reads) {
    if (user === app.me) continue;
    const last = sorted.filter((m) => m.sender_id === app.me && m.seq <= seq).at(-1);
    if (last) seenBy.set(last.seq, [...(seenBy.get(last.seq) ?? []), user]);
  }
  const items = sorted.map((m) => {
    const mine = m.sender_id === app.me;
    const item = el('li', {
      class: `msg ${mine ? 'mine' : ''} ${m.sender_id ? '' : 'system'}`,
      'data-seq': String(m.seq),
      'data-status': 'stored',
      'data-sender': m.sender_id ?? '',
      'data-testid': 'message',
    },
    el('div', { class: 'meta' }, el('b', { text: m.sender_id ?? 'system' }),
      el('span', { text: ` ${time(m.created_at)}${m.edited_at && !m.deleted_at ? ' · edited' : ''}` })),
    el('div', { class: 'body', text: m.deleted_at ? 'message recalled' : m.body }),
    mine ? el('div', { class: 'status', text: '✓ stored' }) : null);
    if (m.deleted_at) item.classList.add('recalled');
    else if (mine) {
      const recall = el('button', { type: 'button', class: 'recall', text: '×', title: 'Recall this message', 'data-testid': 'recall' });
      recall.addEventListener('click', () => view.room.deleteMessage(m.id).catch(showError));
      item.querySelector('.meta').append(recall);
    }
    if (m.client_id) item.dataset.clientId = m.client_id;
    const readers = seenBy.get(m.seq);
    if (readers) item.append(el('div', { class: 'receipt', 'data-testid': 'receipt', text: `Seen by ${readers.sort().join(', ')}` }));
    return item;
  });
  for (const [clientId, p] of view.pending) {
    items.push(el('li', { class: 'msg mine pending', 'data-status': p.failed ? 'failed' : 'pending', 'data-client-id': clientId, 'data-testid': 'message' },
      el('div', { class: 'meta' }, el('b', { text: app.me })),
      el('div', { class: 'body', text: p.body }),
      el('div', { class: 'status', text: p.failed ? `✗ ${p.failed}` : '… sending' })));
  }
  list.replaceChildren(...items);
  $('load-older').hidden = view.olderDone || !sorted.length || sorted[0].seq <= 1;
  if (atBottom) $('scroller').scrollTop = $('scroller').scrollHeight;
}

function renderOnline(view) {
  const users = [...view.room.online.keys()].sort();
  $('online').replaceChildren(...users.map((u) => el('li', { text: u, 'data-user': u, class: u === app.me ? 'me' : '' })));
}

function renderTyping(view) {
  const users = [...view.typing.keys()].filter((u) => u !== app.me).sort();
  $('typing').textContent = users.length ? `${users.join(', ')} ${users.length > 1 ? 'are' : 'is'} typing…` : '';
}

$('load-older').addEventListener('click', async () => {
  const view = app.current;
  if (!view) return;
  try {
    const page = await view.room.history({ beforeSeq: view.oldest ?? undefined, limit: 50 });
    for (const m of page.messages) view.messages.set(m.seq, m);
    if (page.messages.length) view.oldest = Math.min(view.oldest ?? Infinity, ...page.messages.map((m) => m.seq));
    if (page.next_before_seq === null || !page.messages.length) view.olderDone = true;
    renderMessages(view);
  } catch (err) {
    showError(err);
  }
});

$('composer').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const view = app.current;
  const body = $('composer-input').value.trim();
  if (!view || !body) return;
  $('composer-input').value = '';
  view.room.typing(false);
  const clientId = createClientId();
  view.pending.set(clientId, { body });
  renderMessages(view);
  view.room.send(body, { clientId }).then(
    (m) => {
      view.pending.delete(clientId);
      view.messages.set(m.seq, m);
      if (app.current === view) renderMessages(view);
    },
    (err) => {
      const p = view.pending.get(clientId);
      if (p) p.failed = err.code ?? 'failed';
      if (app.current === view) renderMessages(view);
    },
  );
});

$('composer-input').addEventListener('input', () => {
  const view = app.current;
  if (view) view.room.typing($('composer-input').value.length > 0);
});

$('add-member-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const view = app.current;
  const name = $('add-member-name').value.trim();
  if (!view || !name) return;
  try {
    await view.room.addMembers([name]);
    $('add-member-name').value = '';
    loadMembers(view);
  } catch (err) {
    showError(err);
  }
});

document.addEventListener('visibilitychange', () => {
  if (app.current && document.visibilityState === 'visible') markRead(app.current);
});

// ---------------------------------------------------------------------------------------------
// Direct messages
// ---------------------------------------------------------------------------------------------

async function loadDms() {
  try {
    const [received, sent] = await Promise.all([app.client.dm.received({ limit: 30 }), app.client.dm.sent({ limit: 30 })]);
    for (const m of [...received.messages, ...sent.messages]) app.dms.set(m.id, { ...app.dms.get(m.id), ...m });
    renderDms();
    refreshDmUnread();
  } catch (err) {
    console.warn('dms', err);
  }
}

function onDirectMessage(m) {
  if (m.deleted && !app.dms.has(m.id)) return; // a tombstone of a message we never listed
  app.dms.set(m.id, { ...app.dms.get(m.id), ...m });
  renderDms();
  if (m.sender_id !== app.me) refreshDmUnread();
}

function onDirectRead({ reader_id: reader, message_ids: ids, read_at: at }) {
  for (const id of ids) {
    const m = app.dms.get(id);
    if (!m) continue;
    m.receipts = (m.receipts ?? (m.to ?? []).map((u) => ({ user_id: u, read_at: null })))
      .map((r) => (r.user_id === reader ? { ...r, read_at: at } : r));
  }
  renderDms();
}

async function refreshDmUnread() {
  try {
    const n = await app.client.dm.unreadCount();
    const badge = $('dm-unread');
    badge.textContent = String(n);
    badge.dataset.count = String(n);
    badge.hidden = n === 0;
  } catch (err) {
    console.warn('unread', err);
  }
}

function renderDms() {
  const items = [...app.dms.values()].sort((a, b) => (b.created_at ?? 0) - (a.created_at ?? 0)).slice(0, 30).map((m) => {
    const mine = m.sender_id === app.me;
    const unread = !mine && !m.read_at;
    const readers = (m.receipts ?? []).filter((r) => r.read_at).map((r) => r.user_id);
    const peer = app.dmPeer && (mine ? (m.to ?? []).includes(app.dmPeer) : m.sender_id === app.dmPeer);
    const item = el('li', { class: `dm ${mine ? 'mine' : ''} ${unread ? 'unread' : ''} ${peer ? 'peer' : ''}`, 'data-id': m.id, 'data-testid': 'dm' },
      el('div', { class: 'meta', text: mine ? `to ${(m.to ?? []).join(', ')} · ${time(m.created_at)}` : `from ${m.sender_id ?? '?'} · ${time(m.created_at)}` }),
      el('div', { class: 'body', text: m.deleted ? '(deleted)' : m.body }),
      mine && readers.length ? el('div', { class: 'receipt', text: `read by ${readers.join(', ')}` }) : null);
    if (unread) {
      item.title = 'click to mark read';
      item.addEventListener('click', async () => {
        try {
          await app.client.dm.read([m.id]);
          m.read_at = Date.now();
          renderDms();
          refreshDmUnread();
        } catch (err) {
          showError(err);
        }
      });
    }
    return item;
  });
  $('dm-list').replaceChildren(...items);
}

/** Opens the direct conversation with `user`: the form addresses them, their messages stand out. */
function openDm(user) {
  app.dmPeer = user;
  $('dm-to').value = user;
  $('dm-list').dataset.peer = user;
  setParams({ dm: user });
  renderDms();
  $('dm-body').focus();
}

$('dm-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const to = $('dm-to').value.split(',').map((s) => s.trim()).filter(Boolean);
  const body = $('dm-body').value.trim();
  if (!to.length || !body) return;
  try {
    const m = await app.client.dm.send(to, body);
    $('dm-body').value = '';
    onDirectMessage(m);
  } catch (err) {
    showError(err);
  }
});

// ---------------------------------------------------------------------------------------------
// Notifications (backend pushes)
// ---------------------------------------------------------------------------------------------

function addNotification(frame) {
  const item = el('li', { 'data-event': frame.event, 'data-seq': String(frame.seq ?? ''), 'data-testid': 'notification' },
    el('div', { class: 'meta' }, el('b', { text: frame.event }), el('span', { text: ` ${time(Date.now())}${frame.seq ? ` · #${frame.seq}` : ''}` })),
    el('code', { text: JSON.stringify(frame.data) }));
  $('notifications').prepend(item);
  while ($('notifications').children.length > 50) $('notifications').lastChild.remove();
}

$('push-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const target = $('push-target').value.trim() || app.me;
  try {
    const res = await fetch('/dev/push', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ users: [target], event: 'permission.changed', data: { role: 'editor', by: app.me, at: Date.now() } }),
    });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw Object.assign(new Error(body?.error?.message ?? `POST /dev/push: ${res.status}`), { code: body?.error?.code });
    }
  } catch (err) {
    showError(err);
  }
});

function showNotificationsPanel() {
  $('notifications').scrollIntoView({ block: 'nearest' });
}

// ---------------------------------------------------------------------------------------------
// Web Push: the service worker, "Enable notifications", and clicks on notifications
// ---------------------------------------------------------------------------------------------

function pushStatus(state, text) {
  app.push.state = state;
  const status = $('push-status');
  status.dataset.state = state;
  status.textContent = text;
  const button = $('push-enable');
  button.textContent = state === 'on' ? 'Disable notifications' : 'Enable notifications';
  button.dataset.on = String(state === 'on');
  button.hidden = !app.client || !app.push.registration || state === 'unsupported' || state === 'disabled';
}

async function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) {
    pushStatus('unsupported', 'No service workers here (they need https or localhost).');
    return;
  }
  try {
    // /demo/sw.js, scope /demo/: every demo URL.
    app.push.registration = await navigator.serviceWorker.register('sw.js');
  } catch (err) {
    pushStatus('unsupported', `Service worker not registered: ${err.message ?? err}`);
    return;
  }
  if (!app.push.registration.pushManager) pushStatus('unsupported', 'This browser has no Web Push.');
  else refreshPush();
}

/** Once signed in with a worker: is Web Push on at the gateway, and already on in this browser? */
async function refreshPush() {
  const reg = app.push.registration;
  if (!app.client || !reg?.pushManager || app.push.state === 'unsupported') return;
  try {
    await app.client.pushPublicKey();
  } catch (err) {
    if (err.code === 'push_disabled') pushStatus('disabled', 'Web Push is off on this gateway (no VAPID keys).');
    else pushStatus('off', '');
    return;
  }
  const existing = await reg.pushManager.getSubscription().catch(() => null);
  if (existing && typeof Notification !== 'undefined' && Notification.permission === 'granted') {
    // This browser subscribed before: make sure the gateway has it for this user (idempotent).
    try {
      app.push.handle = await app.client.registerPush(reg, { requestPermission: false });
      pushStatus('on', 'Notifications on for this browser.');
      return;
    } catch (err) {
      console.warn('push', err);
    }
  }
  pushStatus(typeof Notification !== 'undefined' && Notification.permission === 'denied' ? 'denied' : 'off',
    typeof Notification !== 'undefined' && Notification.permission === 'denied' ? 'Notifications are blocked for this site.' : '');
}

$('push-enable').addEventListener('click', async () => {
  const button = $('push-enable');
  button.disabled = true;
  try {
    if (app.push.handle) {
      await app.push.handle.unregister();
      app.push.handle = null;
      pushStatus('off', 'Notifications off.');
      return;
    }
    // subscribe() needs an active worker: `ready` waits for it.
    const reg = await navigator.serviceWorker.ready;
    pushStatus('pending', 'Subscribing…');
    app.push.handle = await app.client.registerPush(reg);
    pushStatus('on', 'Notifications on for this browser.');
  } catch (err) {
    console.warn('push', err);
    if (err.code === 'push_permission_denied') pushStatus('denied', 'Notifications are blocked: allow them in the site settings.');
    else if (err.code === 'push_disabled') pushStatus('disabled', 'Web Push is off on this gateway (no VAPID keys).');
    else pushStatus('error', `${err.code ?? 'error'}: ${err.message ?? err}`);
  } finally {
    button.disabled = false;
  }
});

/** A click on a notification while this tab is open (sw.js): show what it is about. */
function openFromUrl(url) {
  let u;
  try {
    u = new URL(url, location.href);
  } catch {
    return;
  }
  const user = u.searchParams.get('user');
  if (u.origin !== location.origin || !u.pathname.startsWith('/demo/') || !app.client || (user && user !== app.me)) {
    location.assign(u.href);
    return;
  }
  const room = u.searchParams.get('room');
  const dm = u.searchParams.get('dm');
  if (room) openRoom(room);
  if (dm) openDm(dm);
  if (u.hash === '#notifications') showNotificationsPanel();
}

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.addEventListener('message', (ev) => {
    if (ev.data?.type === 'switchboard.open' && typeof ev.data.url === 'string') openFromUrl(ev.data.url);
  });
  navigator.serviceWorker.startMessages();
}

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

$('signin-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const name = $('signin-name').value.trim();
  if (!name) return;
  const next = new URLSearchParams(location.search);
  next.set('user', name);
  history.replaceState(null, '', `?${next}`);
  signIn(name);
});
$('signout').addEventListener('click', signOut);

const fixedToken = params.get('token');
const startUser = params.get('user') ?? (fixedToken ? decodeToken(fixedToken)?.sub : remembered());
if (startUser) signIn(String(startUser), fixedToken);
else $('signin-name').focus();
registerServiceWorker();
