// Chat as users of socket.io gateways expect it: sending and reading over REST exactly as over
// the room socket, a backend publishing as a member, one unread total, membership told to the
// room and to each user's other apps, renaming and deleting rooms.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectRoom, connectUser, createRoom, http, internal, refused, token, uid, until } from './helpers.mjs';

const roomPath = (id) => `/v1/rooms/${encodeURIComponent(id)}`;
const post = (user, room, body) => http('POST', `${roomPath(room)}/messages`, { tok: token(user), body });

test('a message sent over REST is stored, idempotent by client_id and delivered like a socket send', async () => {
  const [alice, bob, mallory] = [uid('alice'), uid('bob'), uid('mallory')];
  const room = await createRoom(alice, [bob]);
  const b = await connectRoom(bob, room);
  const first = await post(alice, room, { type: 'text', body: 'over REST', client_id: 'r-1' });
  assert.equal(first.status, 201, first.text);
  assert.equal(first.body.duplicate, false);
  assert.equal(first.body.message.sender_id, alice);
  assert.equal(first.body.message.seq, 1);
  const again = await post(alice, room, { type: 'text', body: 'over REST', client_id: 'r-1' });
  assert.equal(again.status, 200);
  assert.equal(again.body.duplicate, true);
  assert.equal(again.body.message.id, first.body.message.id);
  const image = await post(alice, room, { type: 'image', url: 'https://cdn.example/cat.png', title: 'cat' });
  assert.equal(image.status, 201);
  assert.equal(image.body.message.seq, 2);

  const live = await b.take('message', 2);
  assert.deepEqual(live.map((f) => f.data), [first.body.message, image.body.message]);
  const bySocket = await b.request('send', { type: 'text', body: 'and by socket', client_id: 'r-1' });
  assert.equal(bySocket.data.duplicate, false, 'client ids are per sender');
  assert.equal(bySocket.data.message.seq, 3);

  assert.equal((await post(mallory, room, { type: 'text', body: 'let me in' })).status, 403);
  assert.equal((await post(alice, 'no-such-room', { type: 'text', body: 'x' })).status, 404);
  for (const bad of [{ type: 'text', body: '' }, { type: 'image' }, { type: 'text', body: 'x', extra: 1 }, ['x']]) {
    const res = await post(alice, room, bad);
    assert.equal(res.status, 400, JSON.stringify(bad));
    assert.equal(res.body.error.code, 'validation');
  }
  const history = await http('GET', `${roomPath(room)}/messages`, { tok: token(bob) });
  await until(async () => (await http('GET', `${roomPath(room)}/messages`, { tok: token(bob) })).body.messages.length === 3,
    { what: 'the D1 copy of three messages' });
  assert.equal(history.status, 200);
  b.close();
});

test('a backend publishes as a member with any type, or as the system; non-members and bad types are refused', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const room = await createRoom(alice);
  const a = await connectRoom(alice, room);
  const path = `/internal/v1/rooms/${room}/publish`;
  const asAlice = await internal('POST', path, { sender: alice, type: 'video', url: 'https://cdn.example/v.mp4', idempotency_key: 'up-1' });
  assert.equal(asAlice.status, 201, asAlice.text);
  assert.equal(asAlice.body.message.sender_id, alice);
  assert.equal(asAlice.body.message.type, 'video');
  assert.equal(asAlice.body.message.client_id, 'up-1');
  const again = await internal('POST', path, { sender: alice, type: 'video', url: 'https://cdn.example/v.mp4', idempotency_key: 'up-1' });
  assert.equal(again.status, 200);
  assert.equal(again.body.message.id, asAlice.body.message.id);
  assert.deepEqual((await a.next('message')).data, asAlice.body.message);

  const system = await internal('POST', path, { type: 'system', body: 'Maintenance at 5' });
  assert.equal(system.status, 201);
  assert.equal(system.body.message.sender_id, null);
  assert.equal(system.body.message.type, 'system');
  const refusals = [
    [{ sender: bob, body: 'not a member' }, 403],
    [{ type: 'image', url: 'https://cdn.example/x.png' }, 400],
    [{ sender: alice, type: 'system', body: 'x' }, 400],
    [{ sender: 'a b', body: 'x' }, 400],
    [{ body: 'x', client_id: 'c' }, 400],
  ];
  for (const [body, status] of refusals) {
    assert.equal((await internal('POST', path, body)).status, status, JSON.stringify(body));
  }
  a.close();
});

test('reading over REST moves the cursor forward only, sends a read receipt, and GET /v1/unread totals everything', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const roomA = await createRoom(alice, [bob]);
  const roomB = await createRoom(alice, [bob]);
  for (let i = 1; i <= 3; i++) assert.equal((await post(alice, roomA, { type: 'text', body: `a${i}` })).status, 201);
  assert.equal((await post(alice, roomB, { type: 'text', body: 'b1' })).status, 201);
  assert.equal((await http('POST', '/v1/messages', { tok: token(alice), body: { to: [bob], body: 'direct' } })).status, 201);

  const unread = await until(async () => {
    const res = await http('GET', '/v1/unread', { tok: token(bob) });
    return res.body.total === 5 && res.body;
  }, { what: 'five unread (the rooms\' D1 copy)' });
  assert.equal(unread.direct, 1);
  assert.deepEqual(Object.fromEntries(unread.rooms.map((r) => [r.room_id, r.unread])), { [roomA]: 3, [roomB]: 1 });

  const watcher = await connectRoom(alice, roomA);
  const read = await http('POST', `${roomPath(roomA)}/read`, { tok: token(bob), body: { seq: 2 } });
  assert.equal(read.status, 200, read.text);
  assert.deepEqual(read.body, { read_seq: 2, unread: 1 });
  assert.deepEqual((await watcher.next('read')).data, { user_id: bob, seq: 2 });
  const back = await http('POST', `${roomPath(roomA)}/read`, { tok: token(bob), body: { seq: 1 } });
  assert.deepEqual(back.body, { read_seq: 2, unread: 1 }, 'never backwards');
  assert.equal((await http('POST', `${roomPath(roomA)}/read`, { tok: token(bob), body: { seq: 99 } })).status, 400);
  assert.equal((await http('POST', `${roomPath(roomA)}/read`, { tok: token(bob), body: { seq: -1 } })).status, 400);
  assert.equal((await http('POST', `${roomPath(roomA)}/read`, { tok: token(uid('eve')), body: { seq: 1 } })).status, 403);
  await until(async () => (await http('GET', '/v1/unread', { tok: token(bob) })).body.total === 3, { what: 'the read copied to D1' });
  watcher.close();
});

test('membership is told: room.added / room.updated / room.removed to the user, member.* to the room', async () => {
  const [alice, bob, carol] = [uid('alice'), uid('bob'), uid('carol')];
  const room = await createRoom(alice, [bob]);
  const bobsApp = await connectUser(bob, { path: '/v1/connect?since=0' });
  const added = await bobsApp.next('room.added');
  assert.equal(added.data.room.id, room);
  assert.equal(added.data.room.role, 'member');
  assert.equal(typeof added.seq, 'number', 'durable: it has a seq in the user stream');

  const inRoom = await connectRoom(alice, room);
  const carolsApp = await connectUser(carol);
  const add = await http('POST', `${roomPath(room)}/members`, { tok: token(alice), body: { users: [carol, bob] } });
  assert.equal(add.status, 200);
  assert.deepEqual(add.body.added, [carol]);
  assert.deepEqual(add.body.unnotified, []);
  assert.deepEqual((await inRoom.next('member.added')).data, { user_id: carol, role: 'member' });
  assert.equal((await carolsApp.next('room.added')).data.room.id, room);

  const promote = await internal('POST', `/internal/v1/rooms/${room}/members`, { users: [bob], role: 'owner' });
  assert.deepEqual(promote.body.updated, [bob]);
  assert.deepEqual((await inRoom.next('member.updated')).data, { user_id: bob, role: 'owner' });
  assert.deepEqual((await bobsApp.next('room.updated')).data, { room_id: room, role: 'owner' });

  const carolInRoom = await connectRoom(carol, room);
  const removed = await http('DELETE', `${roomPath(room)}/members/${carol}`, { tok: token(alice) });
  assert.equal(removed.status, 200);
  assert.equal((await carolInRoom.closed).code, 4003);
  assert.deepEqual((await inRoom.next('member.removed')).data, { user_id: carol });
  assert.deepEqual((await carolsApp.next('room.removed')).data, { room_id: room, reason: 'removed' });

  const resumed = await connectUser(carol, { path: '/v1/connect?since=0' });
  await resumed.next('synced');
  assert.deepEqual(resumed.unread().filter((f) => f.event.startsWith('room.')).map((f) => f.event), ['room.added', 'room.removed'],
    'a resume replays the membership story in order');
  for (const client of [bobsApp, inRoom, carolsApp, resumed]) client.close();
});

test('the owner renames and deletes a room: sockets close 4004, members hear room.removed, REST forgets it', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const room = await createRoom(alice, [bob]);
  assert.equal((await post(bob, room, { type: 'text', body: 'soon gone' })).status, 201);
  const b = await connectRoom(bob, room);
  const bobsApp = await connectUser(bob);

  assert.equal((await http('PATCH', roomPath(room), { tok: token(bob), body: { name: 'Mine now' } })).status, 403);
  assert.equal((await http('PATCH', roomPath(room), { tok: token(alice), body: { name: '  ' } })).status, 400);
  const renamed = await http('PATCH', roomPath(room), { tok: token(alice), body: { name: 'Renamed' } });
  assert.equal(renamed.status, 200, renamed.text);
  assert.equal(renamed.body.name, 'Renamed');
  assert.deepEqual((await b.next('room.updated')).data, { room_id: room, name: 'Renamed' });
  assert.deepEqual((await bobsApp.next('room.updated')).data, { room_id: room, name: 'Renamed' });
  assert.equal((await http('GET', roomPath(room), { tok: token(bob) })).body.name, 'Renamed');

  assert.equal((await http('DELETE', roomPath(room), { tok: token(bob) })).status, 403);
  const deleted = await http('DELETE', roomPath(room), { tok: token(alice) });
  assert.equal(deleted.status, 200, deleted.text);
  assert.equal(deleted.body.members, 2);
  const closed = await b.closed;
  assert.equal(closed.code, 4004);
  assert.deepEqual((await bobsApp.next('room.removed')).data, { room_id: room, reason: 'deleted' });
  assert.equal((await http('GET', roomPath(room), { tok: token(bob) })).status, 404);
  assert.equal((await http('GET', `${roomPath(room)}/messages`, { tok: token(bob) })).status, 404);
  assert.equal((await refused(`${roomPath(room)}/connect`, token(bob))).status, 404);
  const list = await http('GET', '/v1/rooms', { tok: token(bob) });
  assert.ok(!list.body.rooms.some((r) => r.id === room));

  const internalRoom = await createRoom(alice, [bob]);
  assert.equal((await internal('DELETE', `/internal/v1/rooms/${internalRoom}`)).status, 200);
  assert.equal((await internal('DELETE', `/internal/v1/rooms/${internalRoom}`)).status, 404);
  assert.equal((await http('DELETE', `/internal/v1/rooms/${internalRoom}`, { tok: token(alice) })).status, 401);
  bobsApp.close();
});

const RECALL_WINDOW_MS = Number(process.env.SB_RECALL_WINDOW_SECONDS ?? 900) * 1000;
const text = (body) => ({ type: 'text', body });
const editPath = (room, id) => `${roomPath(room)}/messages/${id}`;
const historyOf = async (user, room) => (await http('GET', `${roomPath(room)}/messages`, { tok: token(user) })).body.messages;

test('the sender edits over REST and the socket: message.updated in order, history and resume show the newest body', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const room = await createRoom(alice, [bob]);
  const a = await connectRoom(alice, room);
  const b = await connectRoom(bob, room);
  const m1 = (await a.request('send', text('first draft'))).data.message;
  const m2 = (await a.request('send', text('second draft'))).data.message;

  const edited = await http('PATCH', editPath(room, m1.id), { tok: token(alice), body: { body: 'first, edited' } });
  assert.equal(edited.status, 200, edited.text);
  assert.equal(edited.body.changed, true);
  assert.equal(edited.body.message.body, 'first, edited');
  assert.equal(typeof edited.body.message.edited_at, 'number');
  const same = await http('PATCH', editPath(room, m1.id), { tok: token(alice), body: { body: 'first, edited' } });
  assert.equal(same.body.changed, false, 'the same body again changes nothing');
  const bySocket = await a.request('edit', { id: m2.id, body: 'second, edited' });
  assert.equal(bySocket.event, 'ack', JSON.stringify(bySocket));
  assert.equal(bySocket.data.message.body, 'second, edited');

  const live = [...await b.take('message', 2), ...await b.take('message.updated', 2)].sort((x, y) => x.seq - y.seq);
  assert.deepEqual(live.map((f) => [f.event, f.seq]), [['message', 1], ['message', 2], ['message.updated', 3], ['message.updated', 4]]);
  assert.deepEqual(live[2].data, { id: m1.id, seq: 1, room_id: room, body: 'first, edited', edited_at: edited.body.message.edited_at });

  const notSender = await http('PATCH', editPath(room, m1.id), { tok: token(bob), body: { body: 'hijack' } });
  assert.equal(notSender.status, 403);
  assert.equal(notSender.body.error.code, 'not_sender');
  assert.equal((await b.request('edit', { id: m1.id, body: 'hijack' })).data.code, 'not_sender');
  assert.equal((await http('PATCH', editPath(room, m1.id), { tok: token(alice), body: { body: ' ' } })).status, 400);
  assert.equal((await http('PATCH', editPath(room, 'm_nope'), { tok: token(alice), body: { body: 'x' } })).status, 400);
  assert.equal((await http('PATCH', editPath(room, `m_${'0'.repeat(32)}`), { tok: token(alice), body: { body: 'x' } })).status, 404);
  assert.equal((await http('PATCH', editPath(room, m1.id), { tok: token(uid('eve')), body: { body: 'x' } })).status, 403);

  const resumed = await connectRoom(bob, room, { query: 'since=0' });
  await resumed.next('synced');
  const replay = resumed.unread().filter((f) => f.seq !== undefined);
  assert.deepEqual(replay.map((f) => [f.event, f.seq]), [['message', 1], ['message', 2], ['message.updated', 3], ['message.updated', 4]]);
  assert.equal(replay[0].data.body, 'first, edited', 'a replayed message is its newest version');
  const history = await until(async () => {
    const list = await historyOf(bob, room);
    return list.length === 2 && list.every((m) => m.edited_at) && list;
  }, { what: 'edits copied to D1' });
  assert.deepEqual(history.map((m) => m.body), ['second, edited', 'first, edited']);
  for (const client of [a, b, resumed]) client.close();
});

test('concurrent edits are ordered: every receiver and the history end on the last one', async () => {
  const alice = uid('alice');
  const room = await createRoom(alice);
  const a = await connectRoom(alice, room);
  const m = (await a.request('send', text('v0'))).data.message;
  const edits = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2
    ? a.request('edit', { id: m.id, body: `v${i + 1}` }).then((f) => f.data)
    : http('PATCH', editPath(room, m.id), { tok: token(alice), body: { body: `v${i + 1}` } }).then((r) => r.body))));
  assert.ok(edits.every((e) => e.changed), JSON.stringify(edits));
  const updates = await a.take('message.updated', 6);
  const seqs = updates.map((f) => f.seq);
  assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'delivered in seq order');
  const last = updates.at(-1).data.body;
  await until(async () => (await historyOf(alice, room))[0]?.body === last, { what: 'the last edit in D1' });
  a.close();
});

test('a recall empties a room message for everyone and keeps its seq; owners and admins delete any; the window holds', async () => {
  const [owner, bob, carol, admin] = [uid('owner'), uid('bob'), uid('carol'), uid('admin')];
  const room = await createRoom(owner, [bob, carol, admin]);
  const b = await connectRoom(bob, room);
  const c = await connectRoom(carol, room);
  const b1 = (await b.request('send', text('oops, secret'))).data.message;
  const b2 = (await b.request('send', text('b2'))).data.message;
  const c1 = (await c.request('send', text('c1'))).data.message;

  const recalled = await b.request('delete', { id: b1.id });
  assert.equal(recalled.event, 'ack', JSON.stringify(recalled));
  assert.equal(recalled.data.message.body, '');
  assert.equal(typeof recalled.data.message.deleted_at, 'number');
  assert.equal(recalled.data.message.seq, b1.seq);
  assert.equal((await b.request('delete', { id: b1.id })).data.changed, false, 'idempotent');
  const deleted = await c.next('message.deleted');
  assert.deepEqual(deleted.data, { id: b1.id, seq: b1.seq, room_id: room, deleted_at: recalled.data.message.deleted_at });
  assert.equal((await http('PATCH', editPath(room, b1.id), { tok: token(bob), body: { body: 'x' } })).status, 409);

  const notYours = await http('DELETE', editPath(room, b2.id), { tok: token(carol) });
  assert.equal(notYours.status, 403);
  assert.equal(notYours.body.error.code, 'not_sender');
  assert.equal((await http('DELETE', editPath(room, b2.id), { tok: token(owner) })).status, 200, 'the owner deletes any message');
  const byAdmin = await http('DELETE', editPath(room, c1.id), { tok: token(admin, { roles: ['admin'] }) });
  assert.equal(byAdmin.status, 200, 'an admin deletes any message');

  const late = (await c.request('send', text('too late to take back'))).data.message;
  await new Promise((resolve) => setTimeout(resolve, RECALL_WINDOW_MS + 200));
  const tooLate = await http('DELETE', editPath(room, late.id), { tok: token(carol) });
  assert.equal(tooLate.status, 403);
  assert.equal(tooLate.body.error.code, 'recall_window_passed');

  const resumed = await connectRoom(owner, room, { query: 'since=0' });
  await resumed.next('synced');
  assert.ok(!resumed.raw.join('\n').includes('oops, secret'), 'the recalled content is in no replayed frame');
  const replayed = resumed.unread().filter((f) => f.seq !== undefined);
  assert.deepEqual(replayed.map((f) => f.seq), replayed.map((_, i) => i + 1), 'no gap');
  assert.deepEqual(replayed.filter((f) => f.event === 'message.deleted').map((f) => f.data.seq), [b1.seq, b2.seq, c1.seq]);
  const history = await until(async () => {
    const list = await historyOf(owner, room);
    return list.filter((m) => m.deleted_at).length === 3 && list;
  }, { what: 'recalls copied to D1' });
  assert.ok(history.filter((m) => m.deleted_at).every((m) => m.body === '' && m.seq), 'tombstones keep their seq');
  for (const client of [b, c, resumed]) client.close();
});

test('a direct message recalled by its sender within the window is gone for everyone', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const bobsApp = await connectUser(bob);
  const sent = await http('POST', '/v1/messages', { tok: token(alice), body: { to: [bob], body: 'unsend me' } });
  const id = sent.body.message.id;
  await bobsApp.next('message');
  assert.equal((await http('DELETE', `/v1/messages/sent/${id}?everyone=true`, { tok: token(bob) })).status, 404, 'only the sender');
  const recalled = await http('DELETE', `/v1/messages/sent/${id}?everyone=true`, { tok: token(alice) });
  assert.equal(recalled.status, 200, recalled.text);
  assert.equal((await bobsApp.next('message.deleted')).data.id, id);
  const received = await http('GET', '/v1/messages/received', { tok: token(bob) });
  assert.ok(!received.body.messages.some((m) => m.id === id));

  const late = await http('POST', '/v1/messages', { tok: token(alice), body: { to: [bob], body: 'stays' } });
  await new Promise((resolve) => setTimeout(resolve, RECALL_WINDOW_MS + 200));
  const tooLate = await http('DELETE', `/v1/messages/sent/${late.body.message.id}?everyone=true`, { tok: token(alice) });
  assert.equal(tooLate.status, 403);
  assert.equal(tooLate.body.error.code, 'recall_window_passed');
  bobsApp.close();
});
