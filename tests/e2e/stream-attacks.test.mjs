// Attacks on a user's stream by other users (issue 11, item 4 and part of 12): a stranger's
// direct messages must never push a backend's event out of the victim's stream, by size or by
// count; repeated renames must not pile up `room.updated` events; and a direct message an admin
// deleted must not come back under a new id when its sender retries the same `client_id`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectUser, createRoom, http, internal, push, token, uid, until } from './helpers.mjs';

const RETENTION_BYTES = Number(process.env.SB_RETENTION_BYTES);
const RETENTION_EVENTS = Number(process.env.SB_RETENTION_EVENTS);

/** The largest direct message a client may send: 4,000 four-byte characters, 8 KiB of data, a
 *  full title and url (about 27 KB stored). */
const maxDirect = (to, i) => ({
  to,
  type: 'image',
  body: '\u{1F600}'.repeat(4000),
  title: '\u{1F600}'.repeat(200),
  url: `https://example.test/${'u'.repeat(2000)}`,
  data: { i, pad: 'x'.repeat(8 * 1024 - 40) },
  client_id: `flood-${i}`,
});

/** Resumes `user` from `since` and follows every batch; returns the events and `synced` frames. */
async function resume(user, since = 0) {
  const client = await connectUser(user, { path: `/v1/connect?since=${since}` });
  const events = [];
  const synced = [];
  for (let batch = 0; batch < 100; batch++) {
    const done = await client.next('synced', 15_000);
    events.push(...client.frames.filter((f) => typeof f.seq === 'number'));
    client.frames = client.frames.filter((f) => typeof f.seq !== 'number');
    synced.push(done.data);
    if (!done.data.more) {
      await client.close();
      return { events, synced };
    }
    client.send({ event: 'sync', id: `sync-${batch}`, data: { since: done.data.seq } });
  }
  throw new Error('the resume never finished');
}

const ascending = (seqs) => seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]);

test("a stranger's flood of maximum-size direct messages never prunes the victim's backend event", async () => {
  const [victim, stranger] = [uid('victim'), uid('stranger')];
  const pushed = await push([victim], 'permission.changed', { role: 'editor' });
  assert.equal(pushed.status, 200, pushed.text);
  assert.equal(pushed.body.results[0].seq, 1);

  const FLOOD = Math.ceil((2 * RETENTION_BYTES) / 27_000);
  for (let i = 0; i < FLOOD; i++) {
    const sent = await http('POST', '/v1/messages', { tok: token(stranger), body: maxDirect([victim], i) });
    assert.equal(sent.status, 201, sent.text);
  }

  const { events, synced } = await resume(victim);
  assert.equal(synced[0].recovered, false, 'direct messages were pruned, and the resume says so');
  assert.deepEqual([events[0].seq, events[0].event], [1, 'permission.changed'], 'the backend event is replayed first');
  assert.deepEqual(events[0].data, { role: 'editor' });
  const direct = events.filter((e) => e.event === 'message');
  assert.ok(direct.length < FLOOD, 'the oldest direct messages went');
  assert.ok(direct.length > 0, 'the newest direct messages stayed');
  assert.equal(direct.at(-1).data.data.i, FLOOD - 1);
  assert.ok(ascending(events.map((e) => e.seq)), 'replayed in seq order');
  const kept = direct.reduce((sum, e) => sum + Buffer.byteLength(JSON.stringify(e.data)) + 'message'.length, 0);
  assert.ok(kept <= RETENTION_BYTES, `direct messages kept ${kept} bytes within ${RETENTION_BYTES}`);

  const later = await push([victim], 'permission.changed', { role: 'viewer' });
  assert.equal(later.status, 200, later.text);
  const again = await resume(victim);
  assert.deepEqual(again.events.filter((e) => e.event === 'permission.changed').map((e) => e.data.role), ['editor', 'viewer']);
});

test("more direct messages than RETENTION_EVENTS prune only direct messages: the backend's events all stay", async () => {
  const [victim, stranger] = [uid('victim'), uid('stranger')];
  for (let i = 0; i < 3; i++) assert.equal((await push([victim], 'grant', { i })).status, 200);
  const FLOOD = RETENTION_EVENTS + 20;
  for (let i = 0; i < FLOOD; i++) {
    const sent = await http('POST', '/v1/messages', {
      tok: token(stranger), body: { to: [victim], type: 'text', body: `spam ${i}`, client_id: `c-${i}` },
    });
    assert.equal(sent.status, 201, sent.text);
  }
  const pruned = await until(async () => {
    const replay = await resume(victim);
    return replay.events.filter((e) => e.event === 'message').length === RETENTION_EVENTS ? replay : null;
  }, { timeoutMs: 20_000, everyMs: 200, what: "the retention pass over the victim's direct messages" });
  assert.equal(pruned.synced[0].recovered, false);
  assert.deepEqual(pruned.events.slice(0, 3).map((e) => [e.seq, e.event, e.data.i]), [[1, 'grant', 0], [2, 'grant', 1], [3, 'grant', 2]]);
  assert.equal(pruned.events.at(-1).data.body, `spam ${FLOOD - 1}`);
});

test('100 renames leave one room.updated with the last name in a member stream, beside a role change', async () => {
  const [owner, member] = [uid('owner'), uid('member')];
  const room = await createRoom(owner, [member]);
  const role = await internal('POST', `/internal/v1/rooms/${room}/members`, { users: [member], role: 'owner' });
  assert.equal(role.status, 200, role.text);
  assert.deepEqual(role.body.updated, [member]);
  const live = await connectUser(member);
  const RENAMES = 100;
  for (let i = 0; i < RENAMES; i++) {
    const res = await http('PATCH', `/v1/rooms/${room}`, { tok: token(owner), body: { name: `name-${i}` } });
    assert.equal(res.status, 200, res.text);
  }
  const heard = await live.take('room.updated', RENAMES);
  assert.equal(heard.at(-1).data.name, `name-${RENAMES - 1}`, 'a connected device still hears every rename');
  await live.close();

  const { events, synced } = await resume(member);
  assert.equal(synced.at(-1).recovered, true, 'nothing was lost: the newest rename carries the name');
  const updates = events.filter((e) => e.event === 'room.updated').map((e) => e.data);
  assert.deepEqual(updates, [{ room_id: room, role: 'owner' }, { room_id: room, name: `name-${RENAMES - 1}` }]);
  assert.equal(events[0].event, 'room.added');
  assert.ok(ascending(events.map((e) => e.seq)));
});

test('a direct message an admin deleted does not come back when its sender retries the client_id', async () => {
  const [alice, bob, admin] = [uid('alice'), uid('bob'), uid('admin')];
  const body = { to: [bob], type: 'text', body: 'abusive', client_id: 'retry-me' };
  const sent = await http('POST', '/v1/messages', { tok: token(alice), body });
  assert.equal(sent.status, 201, sent.text);
  const id = sent.body.message.id;
  const deleted = await http('DELETE', `/v1/admin/messages/${id}`, { tok: token(admin, { roles: ['admin'] }) });
  assert.equal(deleted.status, 200, deleted.text);

  const retry = await http('POST', '/v1/messages', { tok: token(alice), body });
  assert.equal(retry.status, 200, retry.text);
  assert.equal(retry.body.duplicate, true);
  assert.equal(retry.body.message.id, id, 'the deleted message, not a new one');
  assert.equal(retry.body.message.body, '');
  assert.ok(Number.isInteger(retry.body.message.deleted_at));

  const socket = await connectUser(alice);
  const overSocket = await socket.request('message.send', body);
  assert.equal(overSocket.event, 'ack', JSON.stringify(overSocket));
  assert.deepEqual([overSocket.data.duplicate, overSocket.data.message.id, overSocket.data.message.body], [true, id, '']);
  await socket.close();

  const received = await http('GET', '/v1/messages/received', { tok: token(bob) });
  assert.deepEqual(received.body.messages, []);
  const sentList = await http('GET', '/v1/messages/sent', { tok: token(alice) });
  assert.deepEqual(sentList.body.messages, []);
  const admins = await http('GET', `/v1/admin/messages?sender=${alice}`, { tok: token(admin, { roles: ['admin'] }) });
  assert.deepEqual(admins.body.messages, []);
  for (const user of [alice, bob]) {
    const { events } = await resume(user);
    assert.deepEqual(events.map((e) => [e.event, e.data]), [
      ['message', { id, deleted: true }],
      ['message.deleted', { id }],
    ], `${user}'s stream holds the tombstone and the deletion, nothing new`);
  }
  const again = await http('DELETE', `/v1/admin/messages/${id}`, { tok: token(admin, { roles: ['admin'] }) });
  assert.equal(again.status, 404, 'a tombstone is not a message');
});
