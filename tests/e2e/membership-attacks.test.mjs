// Membership attacks: adding someone to spy on their presence, racing creates and adds past the
// room limits, and bulk adds over the member cap. Each test is the hostile thing itself, done by
// raw clients.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import {
  connectRoom, connectUser, createRoom, http, internal, token, uid,
} from './helpers.mjs';

const MAX_MEMBERS = Number(process.env.SB_MAX_ROOM_MEMBERS);
const MAX_ROOMS = Number(process.env.SB_MAX_ROOMS_PER_DAY);
const roomPath = (room) => `/v1/rooms/${encodeURIComponent(room)}`;
const many = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

async function presenceOf(asker, users) {
  const res = await http('GET', `/v1/presence?users=${users.join(',')}`, { tok: token(asker) });
  assert.equal(res.status, 200, res.text);
  return res.body.users;
}

async function allMembers(room, asker) {
  const out = [];
  let after = '';
  for (;;) {
    const res = await http('GET', `${roomPath(room)}/members?limit=100${after ? `&after=${after}` : ''}`, { tok: token(asker) });
    assert.equal(res.status, 200, res.text);
    out.push(...res.body.members);
    if (!res.body.next_after) return out;
    after = res.body.next_after;
  }
}

/** A room a backend made with `owner` and `members` (none of them pending). */
async function backendRoom(owner, members) {
  const res = await internal('POST', '/internal/v1/rooms', { name: 'seeded', owner, members });
  assert.equal(res.status, 201, res.text);
  return res.body.id;
}

test('a user added by a stranger reveals nothing: presence and the member list answer as for nobody', async () => {
  const [spy, victim, nobody] = [uid('spy'), uid('victim'), uid('nobody')];
  const room = await createRoom(spy, [victim]);
  const victimApp = await connectUser(victim);

  const [ofVictim, ofNobody] = await presenceOf(spy, [victim, nobody]);
  const { user_id: _v, ...victimSeen } = ofVictim;
  const { user_id: _n, ...nobodySeen } = ofNobody;
  assert.deepEqual(victimSeen, nobodySeen, 'the victim looks exactly like an unknown id');
  assert.deepEqual(victimSeen, { online: false, devices: 0, last_seen: null });

  const members = await allMembers(room, spy);
  const listed = members.find((m) => m.user_id === victim);
  assert.deepEqual(Object.keys(listed).sort(), ['joined_at', 'pending', 'role', 'user_id']);
  assert.equal(listed.pending, true);
  assert.equal(members.find((m) => m.user_id === spy).pending, false, 'the creator is never pending');

  // Adding them to a second room changes nothing either.
  const other = await createRoom(spy, []);
  assert.equal((await http('POST', `${roomPath(other)}/members`, { tok: token(spy), body: { users: [victim] } })).status, 200);
  const [again] = await presenceOf(spy, [victim]);
  assert.deepEqual(again, { user_id: victim, online: false, devices: 0, last_seen: null });

  // The victim opens the room: from now on they are an ordinary member there.
  const inRoom = await connectRoom(victim, room);
  const [seen] = await presenceOf(spy, [victim]);
  assert.equal(seen.online, true);
  assert.ok(seen.devices >= 1);
  const now = (await allMembers(room, spy)).find((m) => m.user_id === victim);
  assert.equal(now.pending, false);
  assert.equal(now.online, true);
  assert.equal(now.in_room, 1);
  assert.equal(typeof now.read_seq, 'number');
  assert.equal((await allMembers(other, spy)).find((m) => m.user_id === victim).pending, true, 'per room');
  await Promise.all([victimApp.close(), inRoom.close()]);
});

test('only the member\'s own act ends pending: REST read, send, edit and delete do; looking does not', async () => {
  const [owner, reader, sender, editor, deleter, looker] = ['owner', 'reader', 'sender', 'editor', 'deleter', 'looker'].map(uid);
  const room = await createRoom(owner, [reader, sender, editor, deleter, looker]);
  const apps = await Promise.all([reader, sender, editor, deleter, looker].map((u) => connectUser(u)));
  const visible = async (user) => (await presenceOf(owner, [user]))[0].online;

  for (const path of ['', '/members', '/messages']) {
    assert.equal((await http('GET', `${roomPath(room)}${path}`, { tok: token(looker) })).status, 200);
  }
  assert.equal((await http('GET', '/v1/rooms', { tok: token(looker) })).status, 200);
  assert.equal(await visible(looker), false, 'reading the room list, the room, its members or history is not acting');

  const read = await http('POST', `${roomPath(room)}/read`, { tok: token(reader), body: { seq: 0 } });
  assert.equal(read.status, 200, read.text);
  assert.equal(await visible(reader), true, 'a read is an act');

  const sent = await http('POST', `${roomPath(room)}/messages`, { tok: token(sender), body: { body: 'hi', client_id: randomUUID() } });
  assert.equal(sent.status, 201, sent.text);
  assert.equal(await visible(sender), true, 'a send is an act');
  assert.equal(await visible(looker), false);

  // A backend may publish as a member; that is not the member's act, editing or deleting it is.
  const published = {};
  for (const user of [editor, deleter]) {
    const res = await internal('POST', `/internal/v1/rooms/${room}/publish`, { sender: user, body: 'from the app' });
    assert.equal(res.status, 201, res.text);
    published[user] = res.body.message.id;
    assert.equal(await visible(user), false);
  }
  const edited = await http('PATCH', `${roomPath(room)}/messages/${published[editor]}`, { tok: token(editor), body: { body: 'mine' } });
  assert.equal(edited.status, 200, edited.text);
  assert.equal(await visible(editor), true, 'an edit is an act');
  const deleted = await http('DELETE', `${roomPath(room)}/messages/${published[deleter]}`, { tok: token(deleter) });
  assert.equal(deleted.status, 200, deleted.text);
  assert.equal(await visible(deleter), true, 'a delete is an act');
  assert.equal(await visible(looker), false);

  // Members a backend adds are not pending.
  const seeded = uid('seeded');
  const seededApp = await connectUser(seeded);
  assert.equal((await internal('POST', `/internal/v1/rooms/${room}/members`, { users: [seeded] })).status, 200);
  assert.equal(await visible(seeded), true);
  await Promise.all([...apps, seededApp].map((app) => app.close()));
});

test('parallel creates by one user make exactly MAX_ROOMS_PER_DAY rooms; every other answers 429 with Retry-After', async () => {
  const user = uid('hoarder');
  const attempts = await Promise.all(Array.from({ length: 4 * MAX_ROOMS + 4 }, (_, i) =>
    http('POST', '/v1/rooms', { tok: token(user), body: { name: `room ${i}`, members: [uid('m')] } })));
  const made = attempts.filter((res) => res.status === 201);
  const refused = attempts.filter((res) => res.status !== 201);
  assert.equal(made.length, MAX_ROOMS, attempts.map((res) => res.status).join(','));
  for (const res of refused) {
    assert.equal(res.status, 429, res.text);
    assert.equal(res.body.error.code, 'rate_limited');
    assert.ok(Number(res.headers.get('retry-after')) > 0);
  }
  const listed = await http('GET', '/v1/rooms?limit=100', { tok: token(user) });
  assert.equal(listed.body.rooms.length, MAX_ROOMS, 'no refused create left a room or a membership behind');
});

test('parallel adds by several owners never pass MAX_ROOM_MEMBERS, and D1 and the room agree', async () => {
  const owners = many(4, uid('owner'));
  const room = await backendRoom(owners[0], []);
  assert.equal((await internal('POST', `/internal/v1/rooms/${room}/members`, { users: owners.slice(1), role: 'owner' })).status, 200);
  const watcher = await connectRoom(owners[0], room);

  const batch = 10;
  const adders = Array.from({ length: 8 }, (_, i) => ({ owner: owners[i % owners.length], users: many(batch, uid(`b${i}`)) }));
  const answers = await Promise.all(adders.map(({ owner, users }) =>
    http('POST', `${roomPath(room)}/members`, { tok: token(owner), body: { users } })));
  const fits = Math.floor((MAX_MEMBERS - owners.length) / batch);
  const ok = answers.filter((res) => res.status === 200);
  assert.equal(ok.length, fits, answers.map((res) => `${res.status} ${res.body?.error?.code ?? ''}`).join(','));
  for (const res of answers.filter((r) => r.status !== 200)) {
    assert.equal(res.status, 409, res.text);
    assert.equal(res.body.error.code, 'room_full');
  }
  const added = ok.flatMap((res) => res.body.added);
  assert.equal(added.length, fits * batch, 'each accepted add added all of its users');

  const members = await allMembers(room, owners[0]);
  assert.equal(members.length, owners.length + added.length);
  assert.ok(members.length <= MAX_MEMBERS);
  assert.deepEqual(members.map((m) => m.user_id).sort(), [...owners, ...added].sort());

  // The room heard of exactly those D1 holds: one member.added each, and nothing else.
  const heard = (await watcher.take('member.added', added.length)).map((f) => f.data.user_id);
  assert.deepEqual(heard.sort(), [...added].sort());
  const marker = await watcher.request('send', { body: 'after the adds', client_id: randomUUID() });
  assert.equal(marker.event, 'ack');
  await watcher.next('message');
  assert.deepEqual(watcher.unread('member.added'), []);
  await watcher.close();
});

test('a bulk add over MAX_ROOM_MEMBERS answers 409 room_full at once and adds nobody, internal or REST', async () => {
  const owner = uid('owner');
  const seated = many(MAX_MEMBERS - 10, uid('seated'));
  const room = await backendRoom(owner, seated.slice(1));
  const watcher = await connectRoom(owner, room);
  const roles = async () => (await allMembers(room, owner)).map((m) => `${m.user_id}:${m.role}`);
  const before = await roles();
  assert.equal(before.length, MAX_MEMBERS - 10);

  const overs = [
    ['internal, 100 new', () => internal('POST', `/internal/v1/rooms/${room}/members`, { users: many(100, uid('n')) })],
    ['internal, 1000 new', () => internal('POST', `/internal/v1/rooms/${room}/members`, { users: many(1000, uid('n')) })],
    ['internal, members and 11 new', () => internal('POST', `/internal/v1/rooms/${room}/members`, {
      users: [...seated.slice(1, 80), ...many(11, uid('n'))], role: 'owner',
    })],
    ['REST, 100 new', () => http('POST', `${roomPath(room)}/members`, { tok: token(owner), body: { users: many(100, uid('n')) } })],
  ];
  for (const [what, call] of overs) {
    const res = await call();
    assert.equal(res.status, 409, `${what}: ${res.text}`);
    assert.equal(res.body.error.code, 'room_full', what);
  }
  assert.deepEqual(await roles(), before, 'nobody was added and no role changed');

  // Exactly up to the cap still works, and the room heard of those only.
  const last = many(10, uid('last'));
  const fill = await internal('POST', `/internal/v1/rooms/${room}/members`, { users: last });
  assert.equal(fill.status, 200, fill.text);
  assert.deepEqual(fill.body.added, last);
  const heard = (await watcher.take('member.added', last.length)).map((f) => f.data.user_id);
  assert.deepEqual(heard, last);
  assert.deepEqual(watcher.unread('member.updated'), []);
  assert.equal((await allMembers(room, owner)).length, MAX_MEMBERS);
  await watcher.close();
});
