// Switchboard operator page: one user's or one room's numbers, from the internal API's
// inspection routes, refreshed every 2 s while the page is open.
//
// The internal token is the gateway's master key for backends, so it is handled narrowly: typed
// in, kept in sessionStorage (this tab only, gone when it closes), sent only in the
// Authorization header of same-origin /internal/v1 requests, never put in the URL or the DOM
// after it is typed. A refused token (401) is forgotten at once. Every value is rendered with
// textContent; ids and data-testid attributes are there for the browser test.

const TOKEN_KEY = 'switchboard-ops-token';
const params = new URLSearchParams(location.search);
const EVERY_MS = Number(params.get('every')) > 0 ? Number(params.get('every')) : 2000;

const $ = (id) => document.getElementById(id);
const el = (tag, text, attrs = {}) => {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
};

const ops = {
  lookup: null, // {kind: 'user' | 'room', id}
  timer: null,
  generation: 0, // bumped by each new lookup, so a slow answer to an old one is dropped
  refreshes: 0,
};
window.ops = ops;

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

/** A unix-ms time as a clock time with how long ago or ahead it is; '—' for none. */
function when(ms) {
  if (ms === null || ms === undefined) return '—';
  const delta = Math.round((ms - Date.now()) / 1000);
  const rel = delta === 0 ? 'now' : delta > 0 ? `in ${delta} s` : `${-delta} s ago`;
  return `${new Date(ms).toLocaleTimeString()} (${rel})`;
}
const whenSecs = (secs) => (secs === null || secs === undefined ? '—' : when(secs * 1000));
const orDash = (value) => (value === null || value === undefined ? '—' : String(value));

/** The alarm as "time: reason, reason" (or "none"). */
function alarmText(alarm) {
  if (!alarm || alarm.at === null) return alarm?.reasons?.length ? `unset (${reasonNames(alarm)})` : 'none';
  return `${when(alarm.at)}: ${reasonNames(alarm) || 'no reason left'}`;
}
const reasonNames = (alarm) => alarm.reasons.map((r) => r.reason.replace(/_/g, ' ')).join(', ');

function rows(tbody, items, cells) {
  tbody.replaceChildren(...items.map((item) => {
    const tr = el('tr');
    for (const cell of cells(item)) tr.append(el('td', cell));
    return tr;
  }));
}

// ---------------------------------------------------------------------------------------------
// Token
// ---------------------------------------------------------------------------------------------

const token = () => sessionStorage.getItem(TOKEN_KEY);

function setStatus(state, text) {
  const status = $('status');
  status.dataset.state = state;
  status.textContent = text;
}

function showToken(present) {
  $('token-view').hidden = present;
  $('ops-view').hidden = !present;
  $('forget-token').hidden = !present;
  if (!present) {
    stop();
    setStatus('idle', 'no token');
  } else if (!ops.lookup) {
    setStatus('ready', 'ready');
  }
}

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = $('token-input').value.trim();
  $('token-input').value = '';
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  showToken(true);
  openFromUrl();
});

$('forget-token').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showToken(false);
});

// ---------------------------------------------------------------------------------------------
// Lookups and refresh
// ---------------------------------------------------------------------------------------------

const pathOf = ({ kind, id }) => (kind === 'user'
  ? `/internal/v1/users/${encodeURIComponent(id)}`
  : `/internal/v1/rooms/${encodeURIComponent(id)}/stats`);

function stop() {
  clearTimeout(ops.timer);
  ops.timer = null;
  ops.generation += 1;
}

/** Starts showing `lookup`, refreshing it every EVERY_MS until another lookup replaces it. */
function start(lookup) {
  stop();
  ops.lookup = lookup;
  $('user-report').hidden = true;
  $('room-report').hidden = true;
  $('error').hidden = true;
  setStatus('loading', `loading ${lookup.kind} ${lookup.id}`);
  refresh(ops.generation);
}

async function refresh(generation) {
  const lookup = ops.lookup;
  let answer;
  try {
    const res = await fetch(pathOf(lookup), { headers: { authorization: `Bearer ${token()}` } });
    answer = { status: res.status, body: await res.json().catch(() => null) };
  } catch (err) {
    answer = { status: 0, body: { error: { message: String(err) } } };
  }
  if (generation !== ops.generation) return;
  if (answer.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showToken(false);
    setStatus('error', 'the gateway refused the token');
    return;
  }
  if (answer.status === 200) {
    render(lookup, answer.body);
  } else {
    showError(lookup, answer);
  }
  ops.timer = setTimeout(() => refresh(generation), EVERY_MS);
}

function showError(lookup, { status, body }) {
  $('user-report').hidden = true;
  $('room-report').hidden = true;
  const error = $('error');
  error.hidden = false;
  error.dataset.status = String(status);
  error.textContent = `${lookup.kind} ${lookup.id}: ${status || 'no answer'} ${body?.error?.message ?? ''}`;
  setStatus('error', `error ${status}`);
}

function render(lookup, report) {
  $('error').hidden = true;
  if (lookup.kind === 'user') renderUser(report);
  else renderRoom(report);
  ops.refreshes += 1;
  const updated = $('updated');
  updated.dataset.count = String(ops.refreshes);
  updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  setStatus('ok', `${lookup.kind} ${lookup.id}`);
}

$('lookup-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const id = $('lookup-id').value.trim();
  if (id) start({ kind: $('lookup-kind').value, id });
});

function openFromUrl() {
  for (const kind of ['user', 'room']) {
    const id = params.get(kind);
    if (id && token()) {
      $('lookup-kind').value = kind;
      $('lookup-id').value = id;
      start({ kind, id });
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

function renderUser(r) {
  $('user-report').hidden = false;
  $('user-id').textContent = r.user_id;
  $('user-open-devices').textContent = String(r.open_devices);
  $('user-head-seq').textContent = String(r.stream.head_seq);
  $('user-pruned-through').textContent = String(r.stream.pruned_through);
  $('user-revoked-before').textContent = whenSecs(r.revoked_before);
  $('user-last-seen').textContent = when(r.last_seen);
  $('user-alarm').textContent = alarmText(r.alarm);
  $('user-alarm-wakes').textContent = String(r.alarm.wakes);
  rows($('user-devices'), r.devices, (d) => [
    d.device, d.kind, orDash(d.carrier), when(d.connected_at), whenSecs(d.expires_at),
    d.closing ? 'closing' : d.syncing ? 'syncing' : 'open', d.conn_id,
  ]);
  rows($('user-classes'), Object.entries(r.stream.classes), ([name, c]) => [name, c.events, c.bytes, c.pruned_through]);
  $('user-cursor-count').textContent = r.cursor_count > r.cursors.length
    ? `(${r.cursors.length} of ${r.cursor_count})` : `(${r.cursor_count})`;
  rows($('user-cursors'), r.cursors, (c) => [c.device, c.seq, when(c.updated_at)]);
  $('user-push-pending').textContent = String(r.push.pending);
  $('user-push-queued').textContent = String(r.push.queued);
  $('user-push-notify-at').textContent = when(r.push.notify_at);
  $('user-push-last-sent').textContent = when(r.push.last_sent);
  rows($('user-subscriptions'), r.push.subscriptions, (s) => [s.id, orDash(s.host), orDash(s.device), when(s.created_at)]);
}

function renderRoom(r) {
  $('room-report').hidden = false;
  $('room-id').textContent = r.room_id;
  $('room-sockets').textContent = String(r.sockets.total);
  $('room-users').textContent = String(r.sockets.users);
  $('room-shard-sockets').textContent = String(r.sockets.shard_sockets);
  $('room-members').textContent = String(r.members);
  $('room-head-seq').textContent = String(r.stream.head_seq);
  $('room-window').textContent = r.stream.messages_kept
    ? `${r.stream.messages_kept} messages from seq ${r.stream.oldest_kept_seq}` : 'none';
  $('room-flushed').textContent = String(r.copy.flushed_through);
  const age = r.copy.oldest_uncopied_age_ms;
  $('room-lag').textContent = `${r.copy.lag}${age === null ? '' : ` (oldest ${age} ms)`}${r.copy.cursors_waiting ? `, ${r.copy.cursors_waiting} cursors` : ''}`;
  $('room-failures').textContent = r.copy.failures ? `${r.copy.failures}, retry ${when(r.copy.retry_at)}` : '0';
  $('room-activity').textContent = r.activity.pending_since === null ? 'none' : `due ${when(r.activity.due_at)}`;
  $('room-alarm').textContent = alarmText(r.alarm);
  $('room-alarm-wakes').textContent = String(r.alarm.wakes);
  rows($('room-shards'), r.sockets.shards, (s) => [s.shard, s.sockets, s.users]);
}

showToken(Boolean(token()));
openFromUrl();
