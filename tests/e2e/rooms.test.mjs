// Rooms: group chat over the room socket, membership and history over REST, the backends'
// internal API, and room.activity through the user socket.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  alarmOf, connectRoom, connectUser, createRoom, http, internal, refused, token, uid, until,
} from './helpers.mjs';

const text = (body, client_id) => ({ type: 'text', body, ...(client_id ? { client_id } : {}) });
const roomPath = (id) => `/v1/rooms/${encodeURIComponent(id)}`;

test('two members chat across three sockets: acks carry the stored message, everyone sees seq order', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const room = await createRoom(alice, [bob]);
  const a1 = await connectRoom(alice, room);
  const a2 = await connectRoom(alice, room);
  const b1 = await connectRoom(bob, room);
  assert.equal(a1.ready.data.room_id, room);
  assert.equal(a1.ready.data.seq, 0);
  assert.deepEqual(b1.presence.data.users, { [alice]: 2, [bob]: 1 });

  const acks = [];
  for (let i = 1; i <= 5; i++) acks.push(await a1.request('send', text(`a${i}`, `a-${i}`)));
  acks.push(await b1.request('send', text('b1', 'b-1')));
  assert.deepEqual(acks.map((a) => a.event), Array(6).fill('ack'));
  assert.deepEqual(acks.map((a) => a.data.message.seq), [1, 2, 3, 4, 5, 6]);
  const stored = acks[0].data.message;
  assert.equal(stored.room_id, room);
  assert.equal(stored.sender_id, alice);
  assert.equal(stored.type, 'text');
  assert.match(stored.id, /^m_[0-9a-f]{32}$/);
  assert.equal(typeof stored.created_at, 'number');

  for (const socket of [a1, a2, b1]) {
    const got = await socket.take('message', 6);
    assert.deepEqual(got.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(got.map((m) => m.data.body), ['a1', 'a2', 'a3', 'a4', 'a5', 'b1']);
    assert.deepEqual(got[0].data, stored);
  }
  await Promise.all([a1.close(), a2.close(), b1.close()]);
});

test('concurrent senders never produce a gap, a duplicate or a reorder at any receiver', async () => {
  const users = [uid('c1'), uid('c2'), uid('c3')];
  const room = await createRoom(users[0], users.slice(1));
  const senders = await Promise.all(users.map((u) => connectRoom(u, room)));
  const watcher = await connectRoom(users[1], room);
  const PER = 40;
  for (let i = 0; i < PER; i++) {
    senders.forEach((s, n) => s.send({ event: 'send', id: `${n}-${i}`, data: text(`${n}:${i}`, `k-${n}-${i}`) }));
  }
  const total = PER * senders.length;
  for (const socket of [...senders, watcher]) {
    const got = await socket.take('message', total, 20_000);
    assert.deepEqual(got.map((m) => m.seq), Array.from({ length: total }, (_, i) => i + 1));
    for (let n = 0; n < senders.length; n++) {
      const mine = got.filter((m) => m.data.sender_id === users[n]).map((m) => m.data.body);
      assert.deepEqual(mine, Array.from({ length: PER }, (_, i) => `${n}:${i}`), 'each sender in its own order');
    }
  }
  await Promise.all([...senders, watcher].map((s) => s.close()));
});

test('a repeated client_id returns the original message and delivers nothing new', async () => {
  const alice = uid('alice');
  const room = await createRoom(alice);
  const a = await connectRoom(alice, room);
  const first = await a.request('send', text('once', 'same-key'));
  const again = await a.request('send', text('once (retry)', 'same-key'));
  assert.equal(first.data.duplicate, false);
  assert.equal(again.data.duplicate, true);
  assert.deepEqual(again.data.message, first.data.message);
  const next = await a.request('send', text('next', 'other-key'));
  assert.equal(next.data.message.seq, 2);
  const got = await a.take('message', 2);
  assert.deepEqual(got.map((m) => [m.seq, m.data.body]), [[1, 'once'], [2, 'next']]);
  await a.close();
});

test('a non-member, an unknown room and a bad token are refused before the upgrade', async () => {
  const [alice, mallory] = [uid('alice'), uid('mallory')];
  const room = await createRoom(alice);
  const notMember = await refused(`${roomPath(room)}/connect`, token(mallory));
  assert.equal(notMember.status, 403);
  assert.equal(notMember.body.error.code, 'not_a_member');
  const missing = await refused(`${roomPath('no-such-room')}/connect`, token(alice));
  assert.equal(missing.status, 404);
  const badToken = await refused(`${roomPath(room)}/connect`, 'not.a.jwt');
  assert.equal(badToken.status, 401);
  const badRoom = await refused('/v1/rooms/a%20b/connect', token(alice));
  assert.equal(badRoom.status, 400);
  const plain = await http('GET', `${roomPath(room)}/connect`, { tok: token(alice) });
  assert.equal(plain.status, 426);
});

test('each message reaches D1 as it is delivered, not through an alarm wake per message', async () => {
  const alice = uid('alice');
  const room = await createRoom(alice);
  const a = await connectRoom(alice, room);
  const tok = token(alice);
  for (let i = 1; i <= 20; i++) {
    const ack = await a.request('send', text(`m${i}`));
    assert.equal(ack.event, 'ack');
  }
  await until(async () => {
    const res = await http('GET', `${roomPath(room)}/messages?limit=1`, { tok });
    return res.body.messages[0]?.seq === 20;
  }, { what: 'the D1 copy reaching seq 20' });
  // The only alarm left for a busy room with everyone present is its activity plan, at most
  // one a second; a wake per message would be 20.
  const { alarm_wakes: wakes } = await alarmOf('rooms', room);
  assert.ok(wakes < 10, `${wakes} alarm wakes for 20 messages`);
  await a.close();
});

test('a busy room copies to D1 at most once a second, a quiet one at once', async () => {
  const alice = uid('alice');
  const room = await createRoom(alice);
  const a = await connectRoom(alice, room);
  const tok = token(alice);
  const newestInD1 = async () => (await http('GET', `${roomPath(room)}/messages?limit=1`, { tok })).body.messages[0]?.seq;
  const before = (await alarmOf('rooms', room)).d1_batches;
  // The first message of a quiet room is in D1 at once, in its own batch.
  await a.request('send', text('first'));
  await until(async () => (await newestInD1()) === 1, { what: 'the first message in D1' });
  assert.equal((await alarmOf('rooms', room)).d1_batches, before + 1);
  // 30 more over ~1.5 s: one batch per message would be 30 more.
  const started = Date.now();
  for (let i = 2; i <= 31; i++) {
    assert.equal((await a.request('send', text(`m${i}`))).event, 'ack');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await until(async () => (await newestInD1()) === 31, { what: 'the D1 copy reaching seq 31' });
  const seconds = Math.ceil((Date.now() - started) / 1000);
  const batches = (await alarmOf('rooms', room)).d1_batches - before - 1;
  assert.ok(batches >= 1 && batches <= seconds + 1, `${batches} D1 batches for 30 messages in ${seconds} s`);
  await a.close();
});

test('history pages backwards from D1 with no gap and no repeat', async () => {
  const alice = uid('alice');
  const room = await createRoom(alice);
  const a = await connectRoom(alice, room);
  for (let i = 1; i <= 25; i++) a.send({ event: 'send', data: text(`m${i}`) });
  await a.take('message', 25);
  const tok = token(alice);
  await until(async () => {
    const res = await http('GET', `${roomPath(room)}/messages?limit=1`, { tok });
    return res.body.messages[0]?.seq === 25;
  }, { what: 'the D1 copy reaching seq 25' });

  const seen = [];
  let before = null;
  for (;;) {
    const res = await http('GET', `${roomPath(room)}/messages?limit=10${before ? `&before_seq=${before}` : ''}`, { tok });
    assert.equal(res.status, 200);
    seen.push(...res.body.messages.map((m) => m.seq));
    before = res.body.next_before_seq;
    if (!before) break;
  }
  assert.deepEqual(seen, Array.from({ length: 25 }, (_, i) => 25 - i));

  for (const bad of ['limit=0', 'limit=101', 'before_seq=0', 'before_seq=x']) {
    const res = await http('GET', `${roomPath(room)}/messages?${bad}`, { tok });
    assert.equal(res.status, 400, bad);
  }
  const stranger = await http('GET', `${roomPath(room)}/messages`, { tok: token(uid('x')) });
  assert.equal(stranger.status, 403);
  await a.close();
});

test('resume after a dropped socket replays what was sent meanwhile, in order, then synced', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const room = await createRoom(alice, [bob]);
  const a = await connectRoom(alice, room);
  const b = await connectRoom(bob, room);
  await a.request('send', text('before'));
  const seen = (await b.next('message')).seq;
  await b.close();
  for (let i = 1; i <= 5; i++) await a.request('send', text(`while away ${i}`));
  const again = await connectRoom(bob, room, { query: `since=${seen}` });
  const replayed = await again.take('message', 5);
  assert.deepEqual(replayed.map((m) => m.seq), [2, 3, 4, 5, 6]);
  const synced = await again.next('synced');
  assert.deepEqual(synced.data, { seq: 6, recovered: true, more: false });
  assert.equal(again.unread('message').length, 0);
  await a.request('send', text('live'));
  assert.equal((await again.next('message')).seq, 7);
  await Promise.all([a.close(), again.close()]);
});

test('read cursors move forward only, receipts reach the room, unread counts follow', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const room = await createRoom(alice, [bob]);
  const a = await connectRoom(alice, room);
  const b = await connectRoom(bob, room);
  for (let i = 1; i <= 5; i++) await a.request('send', text(`m${i}`));
  await b.take('message', 5);

  const read3 = await b.request('read', { seq: 3 });
  assert.deepEqual(read3.data, { read_seq: 3, unread: 2 });
  const receipt = await a.next('read');
  assert.deepEqual(receipt.data, { user_id: bob, seq: 3 });
  const back = await b.request('read', { seq: 1 });
  assert.deepEqual(back.data, { read_seq: 3, unread: 2 }, 'a cursor never moves back');
  const ahead = await b.request('read', { seq: 99 });
  assert.equal(ahead.event, 'error');
  assert.equal(ahead.data.code, 'validation');

  const listed = await until(async () => {
    const res = await http('GET', '/v1/rooms', { tok: token(bob) });
    const mine = res.body.rooms.find((r) => r.id === room);
    return mine?.read_seq === 3 && mine.last_seq === 5 ? mine : null;
  }, { what: 'the room list catching up' });
  assert.equal(listed.unread, 2);
  assert.equal(listed.last_message.seq, 5);
  assert.equal(listed.last_message.preview, 'm5', 'the same preview shape as room.activity');
  const aliceView = (await http('GET', '/v1/rooms', { tok: token(alice) })).body.rooms.find((r) => r.id === room);
  assert.equal(aliceView.unread, 0, 'your own messages are never unread');

  const again = await connectRoom(bob, room);
  assert.equal(again.ready.data.read_seq, 3);
  assert.equal(again.ready.data.unread, 2);
  await Promise.all([a.close(), b.close(), again.close()]);
});

test('user.joined and user.left only for the first device in and the last device out', async () => {
  const [alice, bob, carol] = [uid('alice'), uid('bob'), uid('carol')];
  const room = await createRoom(alice, [bob, carol]);
  const a = await connectRoom(alice, room);
  const b1 = await connectRoom(bob, room);
  assert.deepEqual((await a.next('user.joined')).data, { user_id: bob });
  const b2 = await connectRoom(bob, room);
  assert.deepEqual(b2.presence.data.users, { [alice]: 1, [bob]: 2 });
  const c = await connectRoom(carol, room);
  assert.deepEqual((await a.next('user.joined')).data, { user_id: carol }, 'no second joined for bob');
  await b1.close();
  await c.close();
  assert.deepEqual((await a.next('user.left')).data, { user_id: carol }, 'no left while bob has a device');
  await b2.close();
  assert.deepEqual((await a.next('user.left')).data, { user_id: bob });
  await a.close();
});

test('typing is relayed to the others and not stored', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const room = await createRoom(alice, [bob]);
  const a = await connectRoom(alice, room);
  const b = await connectRoom(bob, room);
  const ack = await a.request('typing', { active: true });
  assert.equal(ack.event, 'ack');
  assert.deepEqual((await b.next('typing')).data, { user_id: alice, active: true });
  a.send({ event: 'typing', data: { active: false } });
  assert.deepEqual((await b.next('typing')).data, { user_id: alice, active: false });
  const sent = await a.request('send', text('after typing'));
  assert.equal(sent.data.message.seq, 1, 'typing took no seq');
  await Promise.all([a.close(), b.close()]);
});

test('a member removed while connected is closed with 4003 and cannot come back', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const room = await createRoom(alice, [bob]);
  const a = await connectRoom(alice, room);
  const b = await connectRoom(bob, room);
  await a.next('user.joined');
  const res = await http('DELETE', `${roomPath(room)}/members/${bob}`, { tok: token(alice) });
  assert.equal(res.status, 200);
  const closed = await b.closed;
  assert.equal(closed.code, 4003);
  assert.deepEqual((await a.next('user.left')).data, { user_id: bob });
  const again = await refused(`${roomPath(room)}/connect`, token(bob));
  assert.equal(again.status, 403);
  await a.close();
});

test('room.activity reaches members on their user socket, at most once a second', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const room = await createRoom(alice, [bob]);
  const a = await connectRoom(alice, room);
  const bUser = await connectUser(bob);
  const started = Date.now();
  for (let i = 1; i <= 8; i++) await a.request('send', text(`m${i}`));
  const notes = [];
  for (;;) {
    const note = await bUser.next('room.activity');
    notes.push(note.data);
    if (note.data.seq === 8) break;
  }
  assert.ok(notes.length <= Math.ceil((Date.now() - started) / 1000) + 1, `coalesced: ${notes.length} notes`);
  for (let i = 1; i < notes.length; i++) {
    assert.ok(notes[i].at - notes[i - 1].at >= 1000, `notes at least a second apart: ${JSON.stringify(notes)}`);
  }
  const last = notes.at(-1);
  assert.equal(last.room_id, room);
  assert.equal(last.unread, 8);
  assert.equal(a.unread('room.activity').length, 0, 'a member on the room socket gets messages, not notes');
  await Promise.all([a.close(), bUser.close()]);
});

test('room.activity skips a member who saw every message live before leaving', async () => {
  const [alice, bob, carol] = [uid('alice'), uid('bob'), uid('carol')];
  const room = await createRoom(alice, [bob, carol]);
  const a = await connectRoom(alice, room);
  const bRoom = await connectRoom(bob, room);
  const bUser = await connectUser(bob);
  const cUser = await connectUser(carol);
  const noteFor = async (socket, seq) => {
    for (;;) if ((await socket.next('room.activity')).data.seq === seq) return;
  };
  await a.request('send', text('m1'));
  await noteFor(cUser, 1);
  await a.request('send', text('m2'));
  assert.equal((await bRoom.next('message')).data.seq, 1);
  assert.equal((await bRoom.next('message')).data.seq, 2);
  await bRoom.close();
  assert.deepEqual((await a.next('user.left')).data, { user_id: bob });
  await noteFor(cUser, 2);
  await a.request('send', text('m3'));
  const first = await bUser.next('room.activity');
  assert.equal(first.data.seq, 3, 'bob saw m1 and m2 in the room: his first note is about m3');
  assert.equal(first.data.unread, 3);
  await Promise.all([a.close(), bUser.close(), cUser.close()]);
});

test('each kind of bad frame gets a clear error and the socket keeps working', async () => {
  const alice = uid('alice');
  const room = await createRoom(alice);
  const a = await connectRoom(alice, room);
  const cases = [
    ['send', undefined, 'validation'],
    ['send', { type: 'poll', body: 'x' }, 'validation'],
    ['send', { body: '' }, 'validation'],
    ['send', { body: 'x'.repeat(4001) }, 'validation'],
    ['send', { type: 'image', body: 'no url' }, 'validation'],
    ['send', { body: 'x', colour: 'red' }, 'validation'],
    ['send', { body: 'x', client_id: 'has space' }, 'validation'],
    ['read', {}, 'validation'],
    ['read', { seq: -1 }, 'validation'],
    ['typing', { active: 'yes' }, 'validation'],
    ['shout', {}, 'unknown_event'],
  ];
  for (const [event, data, code] of cases) {
    const res = await a.request(event, data);
    assert.equal(res.event, 'error', `${event} ${JSON.stringify(data)}`);
    assert.equal(res.data.code, code, `${event} ${JSON.stringify(data)}`);
    assert.ok(res.data.message.length > 0);
  }
  a.send('not json');
  assert.equal((await a.next('error')).data.code, 'bad_frame');
  a.ws.send(Buffer.from([1, 2, 3]));
  assert.equal((await a.next('error')).data.code, 'bad_frame');
  const ok = await a.request('send', text('still works'));
  assert.equal(ok.data.message.seq, 1);
  await a.close();
});

test('a backend publishes system messages into the room stream, idempotently', async () => {
  const alice = uid('alice');
  const room = await createRoom(alice);
  const a = await connectRoom(alice, room);
  const path = `/internal/v1/rooms/${room}/publish`;
  const first = await internal('POST', path, { body: 'Deploy finished', data: { build: 42 }, idempotency_key: 'deploy-42' });
  assert.equal(first.status, 201);
  assert.equal(first.body.message.type, 'system');
  assert.equal(first.body.message.sender_id, null);
  const again = await internal('POST', path, { body: 'Deploy finished', idempotency_key: 'deploy-42' });
  assert.equal(again.status, 200);
  assert.equal(again.body.duplicate, true);
  assert.equal(again.body.message.id, first.body.message.id);
  const got = await a.next('message');
  assert.deepEqual(got.data, first.body.message);

  assert.equal((await http('POST', path, { body: { body: 'x' } })).status, 401);
  assert.equal((await internal('POST', '/internal/v1/rooms/nope-room/publish', { body: 'x' })).status, 404);
  assert.equal((await internal('POST', path, { body: '' })).status, 400);
  assert.equal((await internal('POST', path, { body: 'x', extra: 1 })).status, 400);
  await a.close();
});

test('rooms over REST: create, get, list, add, members with online state, leave, remove', async () => {
  const [alice, bob, carol] = [uid('alice'), uid('bob'), uid('carol')];
  const created = await http('POST', '/v1/rooms', { tok: token(alice), body: { id: uid('team'), name: 'Team', members: [bob] } });
  assert.equal(created.status, 201);
  const room = created.body.id;
  assert.equal(created.body.members, 2);
  const dup = await http('POST', '/v1/rooms', { tok: token(alice), body: { id: room, name: 'Again' } });
  assert.equal(dup.status, 409);

  const got = await http('GET', roomPath(room), { tok: token(bob) });
  assert.equal(got.status, 200);
  assert.equal(got.body.name, 'Team');
  assert.equal(got.body.role, 'member');
  assert.equal((await http('GET', roomPath(room), { tok: token(carol) })).status, 403);
  assert.equal((await http('GET', roomPath('missing-room'), { tok: token(bob) })).status, 404);

  const notOwner = await http('POST', `${roomPath(room)}/members`, { tok: token(bob), body: { users: [carol] } });
  assert.equal(notOwner.status, 403);
  const added = await http('POST', `${roomPath(room)}/members`, { tok: token(alice), body: { users: [carol] } });
  assert.equal(added.status, 200);

  const bobSocket = await connectUser(bob);
  assert.equal((await http('POST', `${roomPath(room)}/read`, { tok: token(bob), body: { seq: 0 } })).status, 200);
  const members = await http('GET', `${roomPath(room)}/members`, { tok: token(carol) });
  assert.equal(members.status, 200);
  const byId = Object.fromEntries(members.body.members.map((m) => [m.user_id, m]));
  assert.equal(byId[alice].role, 'owner');
  assert.equal(byId[bob].pending, false, 'bob acted in the room (a read)');
  assert.equal(byId[bob].online, true);
  assert.equal(byId[bob].in_room, 0);
  assert.deepEqual(byId[carol], { user_id: carol, role: 'member', joined_at: byId[carol].joined_at, pending: true });

  const carolRooms = await http('GET', '/v1/rooms', { tok: token(carol) });
  assert.ok(carolRooms.body.rooms.some((r) => r.id === room));

  const bobRemovesCarol = await http('DELETE', `${roomPath(room)}/members/${carol}`, { tok: token(bob) });
  assert.equal(bobRemovesCarol.status, 403);
  const carolLeaves = await http('DELETE', `${roomPath(room)}/members/${carol}`, { tok: token(carol) });
  assert.equal(carolLeaves.status, 200);
  assert.equal((await http('GET', roomPath(room), { tok: token(carol) })).status, 403);

  const aliceLeaves = await http('DELETE', `${roomPath(room)}/members/${alice}`, { tok: token(alice) });
  assert.equal(aliceLeaves.status, 200);
  assert.equal((await http('GET', roomPath(room), { tok: token(bob) })).body.role, 'owner', 'the longest member is promoted');

  for (const [body, status] of [
    [{ name: '' }, 400], [{ name: 'x', id: 'a b' }, 400], [{ name: 'x', members: ['a/b'] }, 400],
    [{ name: 'x', owner: bob }, 400], [{ name: 'x', unknown: 1 }, 400],
  ]) {
    assert.equal((await http('POST', '/v1/rooms', { tok: token(alice), body })).status, status, JSON.stringify(body));
  }
  assert.equal((await http('POST', '/v1/rooms', { body: { name: 'x' } })).status, 401);
  await bobSocket.close();
});

test('the internal API creates rooms and manages members for backends that own groups', async () => {
  const [owner, m1, m2] = [uid('own'), uid('m1'), uid('m2')];
  const id = uid('grp');
  const created = await internal('POST', '/internal/v1/rooms', { id, name: 'Group', owner, members: [m1] });
  assert.equal(created.status, 201);
  assert.equal(created.body.created_by, owner);
  const added = await internal('POST', `/internal/v1/rooms/${id}/members`, { users: [m2], role: 'owner' });
  assert.equal(added.status, 200);
  assert.equal((await http('GET', roomPath(id), { tok: token(m2) })).body.role, 'owner');
  const s = await connectRoom(m1, id);
  const removed = await internal('DELETE', `/internal/v1/rooms/${id}/members/${m1}`);
  assert.equal(removed.status, 200);
  assert.equal((await s.closed).code, 4003);
  assert.equal((await internal('DELETE', `/internal/v1/rooms/${id}/members/${m1}`)).status, 404);
  assert.equal((await internal('POST', `/internal/v1/rooms/${id}/members`, { users: [m1], role: 'king' })).status, 400);
  assert.equal((await internal('POST', '/internal/v1/rooms/nope-x/members', { users: [m1] })).status, 404);
  assert.equal((await http('POST', '/internal/v1/rooms', { body: { name: 'x' }, tok: token(owner) })).status, 401);
});
