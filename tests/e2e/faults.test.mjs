// Faults: the runtime killed (SIGKILL) in the middle of a room conversation and a push burst,
// then started again on the same state — every acked message and every push answered 2xx is
// there, in order, exactly once, and the D1 copy catches up; the room is sharded (one socket per
// object), so the kill lands mid-fan-out to shards, and receivers held by two shards resume from
// where they were with nothing lost or repeated; D1 failing (its tables renamed away
// under a running gateway) and coming back; and a reconnect storm of 1,000 clients resuming at
// once — every one synced, nothing lost.
//
// The crash and D1 tests run gateways of their own (same build, their own state) so that the
// fault touches no other test; the storm runs against the suite's gateway.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { claims, connectUser, push, signHS256, uid, until } from './helpers.mjs';
import { GENEROUS_RATES, ownGateway } from '../server.mjs';

const quiet = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('SIGKILL mid-conversation and mid-burst loses nothing acked or answered 2xx', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-crash-'));
  const gw = await ownGateway(dir, GENEROUS_RATES, { ROOM_SHARD_SOCKETS: '1' });
  let child = await gw.start(1);
  t.after(() => {
    child.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const [owner, member, target] = ['crash-owner', 'crash-member', 'crash-target'];
  const watchers = ['crash-watcher-1', 'crash-watcher-2'];
  const created = await gw.call('POST', '/v1/rooms', { id: 'crash-room', name: 'crash', members: [member, ...watchers] }, gw.tok(owner));
  assert.equal(created.status, 201);
  const sender = await gw.socket('/v1/rooms/crash-room/connect', owner);
  const live = [];
  for (const watcher of watchers) live.push(await gw.socket('/v1/rooms/crash-room/connect', watcher));
  const spread = await gw.call('GET', '/internal/v1/rooms/crash-room/shards', undefined, gw.internalToken);
  assert.deepEqual(spread.body.shards.map((s) => s.sockets), [1, 1, 1], 'sender here, watchers on shards 1 and 2');

  const acked = new Map();
  const pushed = new Map();
  let sending = true;
  const conversation = (async () => {
    for (let i = 0; sending; i++) {
      sender.ws.send(JSON.stringify({ event: 'send', id: `s${i}`, data: { type: 'text', body: `message ${i}`, client_id: `c${i}` } }));
      await quiet(25);
      for (const f of sender.frames.splice(0)) {
        if (f.event === 'ack') acked.set(f.data.message.id, f.data.message.seq);
      }
    }
  })();
  const burst = (async () => {
    for (let i = 0; sending; i++) {
      const res = await gw.call('POST', '/internal/v1/push', { users: [target], event: 'burst.event', data: { i } }, gw.internalToken).catch(() => ({ status: 0 }));
      // A 200 whose body the kill cut off was never answered.
      if (res.status === 200 && res.body?.results) pushed.set(i, res.body.results[0].seq);
    }
  })();
  await until(() => acked.size >= 20 && pushed.size >= 20, { timeoutMs: 30_000, what: 'traffic under way' });
  child.kill('SIGKILL');
  sending = false;
  await Promise.all([conversation, burst]);
  await child.exited;
  sender.ws.terminate();
  for (const w of live) w.ws.terminate();
  const ackedBefore = new Map(acked);
  assert.ok(ackedBefore.size >= 20 && pushed.size >= 20);

  child = await gw.start(2);
  const resume = await gw.socket('/v1/rooms/crash-room/connect?since=0', member);
  await until(() => resume.frames.some((f) => f.event === 'synced'), { what: 'room synced after the restart' });
  const messages = resume.frames.filter((f) => f.event === 'message');
  assert.deepEqual(messages.map((m) => m.seq), messages.map((_, i) => i + 1), 'in order, no gap');
  const seen = new Map(messages.map((m) => [m.data.id, m.seq]));
  assert.equal(seen.size, messages.length, 'no duplicate');
  for (const [id, seq] of ackedBefore) assert.equal(seen.get(id), seq, `acked message ${id} kept its seq`);

  const stream = await gw.socket('/v1/connect?since=0', target);
  await until(() => stream.frames.some((f) => f.event === 'synced'), { what: 'user synced after the restart' });
  const events = stream.frames.filter((f) => f.event === 'burst.event');
  assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), 'in order, no gap');
  const bySeq = new Map(events.map((e) => [e.seq, e.data.i]));
  for (const [i, seq] of pushed) assert.equal(bySeq.get(seq), i, `push ${i} answered 2xx is at seq ${seq}`);

  // Each watcher resumes from the last message it saw on its shard: before and after together
  // are the room's stream, once each, in order.
  for (const [i, watcher] of watchers.entries()) {
    const before = live[i].frames.filter((f) => f.event === 'message').map((f) => f.seq);
    assert.deepEqual(before, before.map((_, k) => k + 1), `${watcher} saw a prefix before the kill`);
    const again = await gw.socket(`/v1/rooms/crash-room/connect?since=${before.length}`, watcher);
    await until(() => again.frames.some((f) => f.event === 'synced'), { what: `${watcher} resumed` });
    const after = again.frames.filter((f) => f.event === 'message').map((f) => f.seq);
    assert.deepEqual([...before, ...after], messages.map((m) => m.seq), `${watcher}: no gap, no duplicate`);
    again.ws.terminate();
  }

  const last = messages.at(-1).seq;
  await until(async () => {
    const history = await gw.call('GET', `/v1/rooms/crash-room/messages?limit=1`, undefined, gw.tok(owner));
    return history.body?.messages?.[0]?.seq === last;
  }, { timeoutMs: 30_000, what: 'the D1 copy catching up after the restart' });
  console.log(`crash: ${ackedBefore.size} acked messages and ${pushed.size} answered pushes before SIGKILL; after the restart the room has ${messages.length} and the stream ${events.length}`);
  resume.ws.terminate();
  stream.ws.terminate();
});

test('D1 failing: no 2xx for a direct message that is not durable; room messages keep flowing and the copy catches up in order', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-d1-'));
  const gw = await ownGateway(dir, GENEROUS_RATES);
  const child = await gw.start(1);
  t.after(() => {
    child.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const [owner, member] = ['d1-owner', 'd1-member'];
  assert.equal((await gw.call('POST', '/v1/rooms', { id: 'd1-room', name: 'd1', members: [member] }, gw.tok(owner))).status, 201);
  const sender = await gw.socket('/v1/rooms/d1-room/connect', owner);
  const receiver = await gw.socket('/v1/rooms/d1-room/connect', member);
  const send = async (i) => {
    sender.ws.send(JSON.stringify({ event: 'send', id: `s${i}`, data: { type: 'text', body: `message ${i}` } }));
    return until(() => sender.frames.find((f) => f.id === `s${i}`), { what: `the answer to s${i}` });
  };
  for (let i = 1; i <= 3; i++) assert.equal((await send(i)).event, 'ack');

  // D1 fails: the tables messages are written to are gone.
  gw.execute('ALTER TABLE room_messages RENAME TO room_messages_away; ALTER TABLE direct_messages RENAME TO direct_messages_away');
  const dm = await gw.call('POST', '/v1/messages', { to: [member], type: 'text', body: 'not durable' }, gw.tok(owner));
  assert.ok(dm.status >= 500, `a direct message that could not be stored is not acknowledged: ${dm.status}`);
  for (let i = 4; i <= 8; i++) assert.equal((await send(i)).event, 'ack', 'room messages keep flowing');
  await until(() => receiver.frames.filter((f) => f.event === 'message').length === 8, { what: 'delivery while D1 is down' });
  const during = await gw.call('GET', '/v1/rooms/d1-room/messages?limit=100', undefined, gw.tok(owner));
  assert.notEqual(during.status, 200, 'history cannot be read while D1 is down');

  // D1 is back: the copy catches up, in order, with nothing missing.
  gw.execute('ALTER TABLE room_messages_away RENAME TO room_messages; ALTER TABLE direct_messages_away RENAME TO direct_messages');
  const history = await until(async () => {
    const res = await gw.call('GET', '/v1/rooms/d1-room/messages?limit=100', undefined, gw.tok(owner));
    return res.status === 200 && res.body.messages.length === 8 ? res.body.messages : null;
  }, { timeoutMs: 60_000, everyMs: 500, what: 'the D1 copy catching up' });
  assert.deepEqual(history.map((m) => m.seq), [8, 7, 6, 5, 4, 3, 2, 1]);
  assert.deepEqual(history.map((m) => m.body).reverse(), Array.from({ length: 8 }, (_, i) => `message ${i + 1}`));
  const retry = await gw.call('POST', '/v1/messages', { to: [member], type: 'text', body: 'durable now' }, gw.tok(owner));
  assert.equal(retry.status, 201);
  sender.ws.terminate();
  receiver.ws.terminate();
});

test('a reconnect storm of 1,000 clients resuming at once: every one synced, nothing lost', async () => {
  const USERS = 125;
  const DEVICES = 8;
  const EVENTS = 12;
  const users = Array.from({ length: USERS }, (_, i) => uid(`storm${i}`));
  for (let e = 0; e < EVENTS; e++) {
    const res = await push(users, 'storm.event', { e });
    assert.equal(res.status, 200, res.text);
  }
  const started = Date.now();
  const clients = await Promise.all(users.flatMap((user) => Array.from({ length: DEVICES }, () =>
    connectUser(user, { path: '/v1/connect?since=0', tok: signHS256(claims(user)) }))));
  assert.equal(clients.length, USERS * DEVICES);
  await Promise.all(clients.map(async (client) => {
    const synced = await client.next('synced', 60_000);
    assert.deepEqual(synced.data, { seq: EVENTS, recovered: true, more: false });
    assert.deepEqual(client.unread('storm.event').map((f) => f.seq), Array.from({ length: EVENTS }, (_, i) => i + 1));
  }));
  console.log(`reconnect storm: ${clients.length} clients resumed and synced in ${Date.now() - started} ms`);
  for (const client of clients) client.ws.terminate();
});
