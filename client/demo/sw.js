// Switchboard demo's service worker (scope /demo/): shows the gateway's Web Push notifications
// and opens the conversation they are about when one is clicked.
//
// The gateway sends one push per user when none of their devices took an event in time
// (docs/PROTOCOL.md, "Notifications"). The browser decrypts it; its JSON is
//   {user_id, title, body, url, count, kind: "message"|"push"|"room", sender_id, room_id,
//    message_id, seq, urgent, at}
// with null for what does not apply. One notification tag for them all: a newer one replaces
// the older (it counts everything still pending anyway).
//
// No SDK here: a service worker is not a module by default and needs nothing of it.

const TAG = 'switchboard';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** The payload of a push: JSON from the gateway, or plain text from anything else. */
function payloadOf(event) {
  if (!event.data) return {};
  try {
    const json = event.data.json();
    return json && typeof json === 'object' ? json : { body: String(json) };
  } catch {
    return { body: event.data.text() };
  }
}

/** Where a click leads: the payload's own `url`, else the demo opened on the conversation. */
function urlFor(p) {
  const scope = self.registration.scope; // …/demo/
  if (typeof p.url === 'string' && p.url) {
    try {
      const u = new URL(p.url, scope);
      if (u.protocol === 'https:' || u.protocol === 'http:') return u.href;
    } catch {
      // not a URL: fall through
    }
  }
  const u = new URL(scope);
  // Whose notification it is: the demo signs in as them (a browser may hold several users).
  if (typeof p.user_id === 'string' && p.user_id) u.searchParams.set('user', p.user_id);
  if (p.kind === 'room' && p.room_id) u.searchParams.set('room', p.room_id);
  else if (p.kind === 'message' && p.sender_id) u.searchParams.set('dm', p.sender_id);
  else u.hash = 'notifications';
  return u.href;
}

/** The notification for a payload: title, body (with the count), tag, and where to go. */
function notificationOf(p) {
  const count = Number.isInteger(p.count) ? p.count : 1;
  const preview = typeof p.body === 'string' ? p.body : '';
  let title = typeof p.title === 'string' && p.title ? p.title : '';
  if (!title) {
    if (p.kind === 'message' && p.sender_id) title = `Message from ${p.sender_id}`;
    else if (p.kind === 'room' && p.room_id) title = `New in ${p.room_id}`;
    else title = 'Switchboard';
  }
  let body = preview;
  if (count > 1) body = preview ? `${count} new messages — latest: ${preview}` : `${count} new messages`;
  return {
    title,
    options: {
      body,
      tag: TAG,
      renotify: true,
      timestamp: typeof p.at === 'number' ? p.at : Date.now(),
      data: { url: urlFor(p), payload: p },
    },
  };
}

/** ExtendableEvent.waitUntil, which a script-made event (a test's `new PushEvent`) refuses. */
function keepAlive(event, promise) {
  try {
    event.waitUntil(promise);
  } catch {
    // An untrusted event: the work runs anyway; say so if it fails.
    promise.catch((err) => console.warn(`${event.type}:`, err));
  }
  return promise;
}

self.addEventListener('push', (event) => {
  const { title, options } = notificationOf(payloadOf(event));
  keepAlive(event, self.registration.showNotification(title, options));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = event.notification.data?.url ?? self.registration.scope;
  keepAlive(event, openOrFocus(url));
});

/** A demo tab already open is told to show the conversation and focused; else a new one. */
async function openOrFocus(url) {
  const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const tab = tabs.find((c) => c.url.startsWith(self.registration.scope));
  if (tab) {
    tab.postMessage({ type: 'switchboard.open', url });
    try {
      await tab.focus();
    } catch {
      // focusing needs a real click on the notification
    }
    return tab;
  }
  return self.clients.openWindow(url);
}
