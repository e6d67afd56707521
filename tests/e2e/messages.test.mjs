// Direct messages: sending over REST and over the user socket, delivery through user streams,
// and the sender's, receiver's and admin's management routes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectUser, http, token, uid } from './helpers.mjs';

const send = (from, body) => http('POST', '/v1/messages', { tok: token(from), body });
const get = (user, path, extra) => http('GET', path, { tok: token(user, extra) });
const fakeId = () => `m_${'0'.repeat(24)}${Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, '0')}`;

/** Every page of a listing, following next_cursor. */
async function allPages(user, path, limit = 100) {
  const out = [];
  let cursor = null;
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const res = await get(user, `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    assert.equal(res.status, 200, res.text);
    out.push(...res.body.messages);
    cursor = res.body.next_cursor;
    if (!cursor) return out;
  }
}

test('the whole lifecycle for a sender, two receivers and an admin', async () => {
  const [alice, bob, carol, dave] = [uid('alice'), uid('bob'), uid('carol'), uid('admin')];
  const aliceOther = await connectUser(alice);
  const bobSocket = await connectUser(bob);

  const sent = await send(alice, { to: [bob, carol], type: 'text', body: 'lunch?', title: 'Plans', data: { place: 'cafe' }, client_id: 'lunch-1' });
  assert.equal(sent.status, 201, sent.text);
  const message = sent.body.message;
  assert.match(message.id, /^m_[0-9a-f]{32}$/);
  assert.deepEqual(message.to, [bob, carol]);
  assert.equal(message.sender_id, alice);

  const live = await bobSocket.next('message');
  assert.equal(typeof live.seq, 'number');
  assert.deepEqual(live.data, message);
  assert.deepEqual((await aliceOther.next('message')).data, message, "the sender's other devices get it");

  const retry = await send(alice, { to: [bob, carol], body: 'lunch?', client_id: 'lunch-1' });
  assert.equal(retry.status, 200);
  assert.equal(retry.body.duplicate, true);
  assert.equal(retry.body.message.id, message.id);
  const second = await send(alice, { to: [bob], body: 'second' });
  assert.equal((await bobSocket.next('message')).data.id, second.body.message.id, 'the retry was not delivered again');

  const carolSocket = await connectUser(carol, { path: '/v1/connect?since=0' });
  const replayed = await carolSocket.next('message');
  assert.deepEqual(replayed.data, message, 'an offline receiver gets it on connect');
  await carolSocket.next('synced');

  const sentList = await get(alice, '/v1/messages/sent');
  const mine = sentList.body.messages.find((m) => m.id === message.id);
  assert.deepEqual(mine.receipts.map((r) => [r.user_id, r.read_at, r.deleted]), [[bob, null, false], [carol, null, false]]);

  assert.equal((await get(bob, '/v1/messages/unread-count')).body.unread, 2);
  const unreadList = await get(bob, '/v1/messages/received?unread=true');
  assert.deepEqual(unreadList.body.messages.map((m) => m.id), [second.body.message.id, message.id]);

  const read = await get(bob, `/v1/messages/received/${message.id}`);
  assert.equal(read.status, 200);
  assert.equal(read.body.id, message.id);
  assert.equal(typeof read.body.read_at, 'number');
  const receipt = await aliceOther.next('message.read');
  assert.deepEqual(receipt.data.message_ids, [message.id]);
  assert.equal(receipt.data.reader_id, bob);
  const again = await get(bob, `/v1/messages/received/${message.id}`);
  assert.equal(again.body.read_at, read.body.read_at, 'the first read time is kept');
  assert.equal((await get(bob, '/v1/messages/unread-count')).body.unread, 1);

  const ghost = fakeId();
  const many = await http('POST', '/v1/messages/received/read', { tok: token(carol), body: { ids: [message.id, ghost] } });
  assert.deepEqual(many.body, { read: [message.id], not_found: [ghost] });
  const states = (await get(alice, '/v1/messages/sent')).body.messages.find((m) => m.id === message.id).receipts;
  assert.ok(states.every((r) => typeof r.read_at === 'number'), 'both receivers read it');

  assert.equal((await get(alice, `/v1/messages/received/${message.id}`)).status, 404, 'the sender is not a receiver');
  assert.equal((await get(dave, `/v1/messages/received/${message.id}`)).status, 404, "another user's message is 404");
  assert.equal((await http('DELETE', `/v1/messages/sent/${message.id}`, { tok: token(bob) })).status, 404);

  assert.equal((await http('DELETE', `/v1/messages/received/${message.id}`, { tok: token(bob) })).status, 200);
  assert.ok(!(await get(bob, '/v1/messages/received')).body.messages.some((m) => m.id === message.id));
  assert.ok((await get(carol, '/v1/messages/received')).body.messages.some((m) => m.id === message.id), 'deletes are per party');
  const bobDeleted = (await get(alice, '/v1/messages/sent')).body.messages.find((m) => m.id === message.id).receipts;
  assert.deepEqual(bobDeleted.map((r) => r.deleted), [true, false]);

  assert.equal((await http('DELETE', `/v1/messages/sent/${message.id}`, { tok: token(alice) })).status, 200);
  assert.ok(!(await get(alice, '/v1/messages/sent')).body.messages.some((m) => m.id === message.id));
  assert.ok((await get(carol, '/v1/messages/received')).body.messages.some((m) => m.id === message.id));
  assert.equal((await http('DELETE', `/v1/messages/sent/${message.id}`, { tok: token(alice) })).status, 404, 'deleted once');

  assert.equal((await get(bob, `/v1/admin/messages?sender=${alice}`)).status, 403);
  const listed = await get(dave, `/v1/admin/messages?sender=${alice}&receiver=${carol}`, { roles: ['admin'] });
  assert.equal(listed.status, 200);
  assert.deepEqual(listed.body.messages.map((m) => m.id), [message.id]);
  const future = await get(dave, `/v1/admin/messages?sender=${alice}&from=${Date.now() + 60_000}`, { roles: ['admin'] });
  assert.deepEqual(future.body.messages, []);
  const removed = await http('DELETE', `/v1/admin/messages/${message.id}`, { tok: token(dave, { roles: ['admin'] }) });
  assert.equal(removed.status, 200);
  assert.equal((await get(carol, `/v1/messages/received/${message.id}`)).status, 404);
  assert.equal((await http('DELETE', `/v1/admin/messages/${message.id}`, { tok: token(dave, { roles: ['admin'] }) })).status, 404);
  assert.equal((await http('DELETE', `/v1/admin/messages/${second.body.message.id}`, { tok: token(bob) })).status, 403);

  await Promise.all([aliceOther.close(), bobSocket.close(), carolSocket.close()]);
});

test('message.send over the user socket: acked once stored, delivered to both sides', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const a1 = await connectUser(alice);
  const a2 = await connectUser(alice);
  const b = await connectUser(bob);
  const ack = await a1.request('message.send', { to: [bob], body: 'hi bob', client_id: 'c-1' });
  assert.equal(ack.event, 'ack', JSON.stringify(ack));
  assert.equal(ack.data.duplicate, false);
  const message = ack.data.message;
  assert.deepEqual((await b.next('message')).data, message);
  assert.deepEqual((await a2.next('message')).data, message);
  assert.deepEqual((await a1.next('message')).data, message, 'the sending device has it in its stream too');

  const dup = await a1.request('message.send', { to: [bob], body: 'hi bob', client_id: 'c-1' });
  assert.equal(dup.data.duplicate, true);
  assert.equal(dup.data.message.id, message.id);

  const bad = await a1.request('message.send', { to: [], body: 'x' });
  assert.equal(bad.event, 'error');
  assert.equal(bad.data.code, 'validation');
  assert.match(bad.data.message, /^to:/);
  const after = await a1.request('message.send', { to: [bob], body: 'still works' });
  assert.equal(after.event, 'ack');
  assert.equal((await b.next('message')).data.body, 'still works', 'no duplicate of c-1 came first');
  await Promise.all([a1.close(), a2.close(), b.close()]);
});

test('paging over 250 messages has no gap and no repeat, for sender and receiver', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const ids = [];
  for (let batch = 0; batch < 25; batch++) {
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => send(alice, { to: [bob], body: `n${batch * 10 + i}` })));
    for (const res of answers) {
      assert.equal(res.status, 201);
      ids.push(res.body.message.id);
    }
  }
  const key = (m) => `${String(m.created_at).padStart(15, '0')}.${m.id}`;
  for (const [user, path] of [[bob, '/v1/messages/received'], [alice, '/v1/messages/sent']]) {
    const pages = await allPages(user, path, 100);
    assert.equal(pages.length, 250, path);
    assert.equal(new Set(pages.map((m) => m.id)).size, 250, `${path}: no repeat`);
    assert.deepEqual(new Set(pages.map((m) => m.id)), new Set(ids), `${path}: no gap`);
    const keys = pages.map(key);
    assert.deepEqual(keys, [...keys].sort().reverse(), `${path}: newest first, stable`);
  }
  const odd = await allPages(bob, '/v1/messages/received', 33);
  assert.equal(new Set(odd.map((m) => m.id)).size, 250, 'pages of 33 too');

  const firstFifty = ids.slice(0, 50);
  for (let i = 0; i < 50; i += 25) {
    const res = await http('POST', '/v1/messages/received/read', { tok: token(bob), body: { ids: firstFifty.slice(i, i + 25) } });
    assert.equal(res.body.read.length, 25);
  }
  const unread = await allPages(bob, '/v1/messages/received?unread=true', 100);
  assert.equal(unread.length, 200);
  assert.ok(unread.every((m) => m.read_at === null && !firstFifty.includes(m.id)));
  assert.equal((await get(bob, '/v1/messages/unread-count')).body.unread, 200);
  const bulk = await http('POST', '/v1/messages/sent/delete', { tok: token(alice), body: { ids: ids.slice(0, 100) } });
  assert.equal(bulk.body.deleted.length, 100);
  assert.equal((await allPages(alice, '/v1/messages/sent')).length, 150);
  assert.equal((await allPages(bob, '/v1/messages/received')).length, 250, "the sender's delete is theirs alone");
});

test('every validation error is a 400 that names the field, or a 413 for a body over the limit', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const many = Array.from({ length: 101 }, (_, i) => `u${i}`);
  const cases = [
    [{ to: [], body: 'x' }, 'to'],
    [{ to: many, body: 'x' }, 'to'],
    [{ to: ['a/b'], body: 'x' }, 'to'],
    [{ to: [bob], body: '' }, 'body'],
    [{ to: [bob], body: 'x'.repeat(4001) }, 'body'],
    [{ to: [bob], type: 'sticker', body: 'x' }, 'type'],
    [{ to: [bob], type: 'image' }, 'url'],
    [{ to: [bob], type: 'file', url: 'javascript:alert(1)' }, 'url'],
    [{ to: [bob], body: 'x', data: 'not an object' }, 'data'],
    [{ to: [bob], body: 'x', client_id: 'a b' }, 'client_id'],
    [{ to: [bob], body: 'x', cc: [bob] }, 'cc'],
    [{ body: 'x' }, 'to'],
  ];
  for (const [body, field] of cases) {
    const res = await send(alice, body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(res.body.error.code, 'validation');
    assert.match(res.body.error.message, new RegExp(field), JSON.stringify(body));
  }
  const huge = await send(alice, { to: [bob], body: 'x'.repeat(1_100_000) });
  assert.equal(huge.status, 413);
  assert.equal((await http('POST', '/v1/messages', { tok: token(alice), raw: '{', headers: { 'content-type': 'application/json' } })).status, 400);
  assert.equal((await http('POST', '/v1/messages', { body: { to: [bob], body: 'x' } })).status, 401);

  const tok = token(alice);
  for (const path of [
    '/v1/messages/received/not-an-id', '/v1/messages/sent?limit=0', '/v1/messages/sent?limit=101',
    '/v1/messages/sent?cursor=bogus', '/v1/messages/received?unread=maybe',
  ]) {
    const res = await http('GET', path, { tok });
    assert.equal(res.status, 400, path);
  }
  assert.equal((await http('DELETE', '/v1/messages/sent/m_xyz', { tok })).status, 400);
  for (const body of [{ ids: [] }, { ids: Array.from({ length: 101 }, fakeId) }, { ids: ['nope'] }, { ids: [fakeId()], extra: 1 }]) {
    const res = await http('POST', '/v1/messages/received/delete', { tok, body });
    assert.equal(res.status, 400, JSON.stringify(body).slice(0, 60));
  }
  const admin = token(alice, { roles: ['admin'] });
  for (const query of ['from=yesterday', 'until=-5', 'sender=a%20b', 'receiver=a/b']) {
    assert.equal((await http('GET', `/v1/admin/messages?${query}`, { tok: admin })).status, 400, query);
  }
});
